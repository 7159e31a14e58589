/* server.h: inbound HTTP/1.1 connections: accept, read, parse and validate request heads,
 * deliver bodies, write responses, keep-alive, pipelining, request/idle timeouts.
 * What to do with a request is a handler's business (gateway/proxy.c, admin/admin.c). */
#ifndef GW_HTTP_SERVER_H
#define GW_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "http/counters.h"
#include "http/parser.h"
#include "util/block.h"

typedef struct gw_conn_s gw_conn_t;
typedef struct gw_request_s gw_request_t;
typedef struct gw_handler_s gw_handler_t;

/* The connections one event loop serves, from any number of listeners. Filled in by the owner
 * (a worker, or the control loop for the admin port) before the first listener starts; the
 * HTTP layer knows nothing else about its owner. */
typedef struct gw_server_s {
    uv_loop_t *loop;
    int request_timeout;         /* seconds allowed to read a request (requestTimeout) */
    int min_body_rate;           /* bytes/s a body must average per requestTimeout window after
                                    the first (minBodyRate); 0: no minimum */
    gw_counters_t *counters;     /* where this server's figures go */
    gw_conn_t *conns;            /* open connections (for draining) */
    bool draining;               /* no keep-alive any more; set by gw_server_drain */
    void *data;                  /* the owner's */
} gw_server_t;

typedef struct gw_listener_s {
    uv_poll_t poll;      /* readiness of the listening socket (we accept ourselves) */
    uv_timer_t pause;    /* accepting paused after running out of file descriptors */
    int reserve_fd;      /* spare fd, given up to accept-and-close when out of fds */
    gw_server_t *server;
    const gw_handler_t *handler;
    int mode;   /* handler-specific: e.g. number of path segments to route on */
    int fd;     /* bound, not yet listening, socket made by gw_listener_socket */
} gw_listener_t;

/* A handler's callbacks. All run on the server's loop. */
struct gw_handler_s {
    /* The request head is complete and valid. The handler must eventually call
     * gw_request_finish or gw_request_abort (possibly from inside this call). */
    void (*on_request)(gw_request_t *req);
    /* Body bytes as received; for chunked bodies the chunked framing made canonical (size
     * digits, data and CRLFs as received; extensions and trailers removed, in place). The
     * handler gets its own reference on b if it keeps it. last is true on the final piece
     * (len may be 0). */
    void (*on_body)(gw_request_t *req, gw_block_t *b, size_t off, size_t len, bool last);
    /* The client went away (req->abort_status 0) or the server ends the request with
     * req->abort_status (408 timeout, 400 bad chunked body): drop everything. req is freed
     * after this returns. */
    void (*on_abort)(gw_request_t *req);
    /* The client's write queue fell below the low-water mark after being above it. */
    void (*on_drain)(gw_request_t *req);
};

struct gw_request_s {
    gw_conn_t *conn;
    gw_server_t *server;
    const gw_listener_t *listener;
    gw_body_kind_t body_kind;
    uint64_t content_length;
    bool body_done;              /* every body byte was delivered to the handler */
    bool keep_alive;             /* the client allows another request on this connection */
    bool cached;                 /* goes back to the thread's cache of requests when done */
    bool expect_continue;        /* "Expect: 100-continue" was sent */
    bool responded;              /* the handler wrote (part of) a response */
    int abort_status;            /* on_abort: the status the server answers (408, 400), 0 when
                                    the client went away */
    uint64_t body_bytes;         /* request body bytes received so far */
    /* Set by the handler (NUL-terminated): echoed as X-Request-Id on responses the server
     * writes for it. */
    uint8_t request_id_len;
    char request_id[129];
    const char *peer_ip;         /* client's IP address as text */
    uint64_t start_ns;           /* uv_hrtime at head completion */
    void *data;                  /* the handler's */
    gw_req_head_t head;          /* last: allocated with room for the used headers only
                                    (head.headers[nheaders..] is not there); slices point into
                                    an owned copy of the head bytes */
};

/* Upper bound of a client's write queue before handlers should stop producing. */
#define GW_CONN_HIGH_WATER (256 * 1024)
#define GW_CONN_LOW_WATER (64 * 1024)

/* Starts listening on l->fd on its server's loop. Returns 0 or a negative uv error.
 * Accepting is ours (not libuv's): out of file descriptors, pending connections are accepted
 * and closed with a reserve fd and accepting pauses briefly, so the loop never spins and
 * existing connections keep being served. */
int gw_server_listen(gw_listener_t *l);
/* Stops accepting and closes the listening socket. */
void gw_server_listener_close(gw_listener_t *l);

/* Queues response bytes: _block takes its own reference on b; _copy copies. Sets
 * req->responded. Returns 0, or a negative uv error when the connection is already broken
 * (the handler then gets on_abort soon). */
int gw_request_write_block(gw_request_t *req, gw_block_t *b, size_t off, size_t len);
int gw_request_write_copy(gw_request_t *req, const void *p, size_t len);
/* Queues head[0..hlen) (malloc'd; ownership passes) followed by b[off..off+len) (own
 * reference taken) with a single writev where possible. */
int gw_request_write_head_and_block(gw_request_t *req, char *head, size_t hlen, gw_block_t *b, size_t off,
                                    size_t len);
/* Bytes queued to the client and not yet written. */
size_t gw_request_write_queue(const gw_request_t *req);

/* For splice(2) (gateway/proxy.c): the connection's socket. Response bytes the handler moves
 * on it itself must follow everything queued: see gw_request_flush. */
int gw_request_fd(const gw_request_t *req);
/* Sends the response bytes waiting in the loop's write batch now; returns what is still
 * queued (0: the kernel has everything). */
size_t gw_request_flush(gw_request_t *req);
/* The handler's on_drain is called once when nothing is queued to the client any more. */
void gw_request_notify_empty(gw_request_t *req);

/* Stops / resumes reading the request body (backpressure towards the client). */
void gw_request_pause_body(gw_request_t *req);
void gw_request_resume_body(gw_request_t *req);

/* The response is completely queued. With reuse the connection waits for the next request
 * (when the body was read completely and the server is not draining), otherwise it is closed
 * after the queued bytes are written. req is freed; do not touch it afterwards. */
void gw_request_finish(gw_request_t *req, bool reuse);
/* After the handler queued a 101 (Switching Protocols) head: the connection stops speaking
 * HTTP. Every byte the client sends from now on (including bytes it sent right behind the
 * request) goes to on_body with last false; the client's half-close is on_body(len 0, last
 * true), after which the connection stays open for writing. No server timeout applies any
 * more (the handler bounds idleness). End it with gw_request_finish(req, false) (queued bytes
 * are flushed, then FIN) or gw_request_abort. */
void gw_request_tunnel(gw_request_t *req);
/* Closes the connection now (e.g. the upstream broke after the response head was sent).
 * on_abort is NOT called. req is freed. */
void gw_request_abort(gw_request_t *req);

/* Writes a complete small response (status line, Content-Type if given, Content-Length,
 * Connection: close when the connection will not be reused) and finishes the request. */
void gw_request_respond(gw_request_t *req, int status, const char *content_type, const char *body,
                        size_t body_len);
/* gw_request_respond with the gateway's JSON error body (§4). */
void gw_request_respond_error(gw_request_t *req, int status, const char *text);

/* Reason phrase for a status code ("Unknown" if none). */
const char *gw_http_reason(int status);

/* Draining: closes idle connections now and makes busy ones close after their current
 * response. */
void gw_server_drain(gw_server_t *s);

/* Frees this thread's cache of spent requests (at the end of a worker thread). */
void gw_server_drain_cache(void);
/* Closes every connection of the server immediately (end of the grace period). */
void gw_server_close_all(gw_server_t *s);

#endif
