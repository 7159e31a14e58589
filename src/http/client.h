/* client.h: one HTTP/1.1 exchange with an upstream over a connection of http/upstream.c: the
 * request head leaves with the first body bytes, the body streams with backpressure, the
 * response head is parsed (interim 1xx skipped) and the body's framing is tracked, and the
 * connection goes back to the pool only when both messages were complete and the upstream
 * allows it. Staged callbacks: connect -> head -> body ... done, or error (h2o's
 * lib/common/http1client.c). What the request means (routing, credentials, rewriting, when to
 * resend) is the caller's business (gateway/proxy.c). Not thread-safe: one worker loop. */
#ifndef GW_HTTP_CLIENT_H
#define GW_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parser.h"
#include "http/upstream.h"
#include "util/block.h"

typedef struct gw_client_s gw_client_t;

/* Where an exchange failed. */
typedef enum {
    GW_CLIENT_ECONNECT = 1, /* DNS, TCP connect or TLS handshake failed; nothing was sent */
    GW_CLIENT_ECLOSED,      /* closed or reset before any response byte (a resend may work) */
    GW_CLIENT_ELOST,        /* closed or reset in the middle of the response head */
    GW_CLIENT_EMALFORMED,   /* the response head or its framing is invalid (or an unasked 101) */
    GW_CLIENT_EBODY,        /* the body broke off or its chunked framing is invalid */
} gw_client_err_t;

/* The caller's callbacks; ud is the caller's. None runs from inside gw_client_start. After a
 * terminal callback (on_body with done, on_error) the exchange is over: the connection was
 * pooled or closed and the gw_client_t is gone once the callback returns. */
typedef struct {
    /* A new connection is ready (TLS handshake done): body bytes may be sent now. */
    void (*on_connect)(void *ud);
    /* The final response head (valid during the call only) and its body framing. Return GW_OK
     * to receive the body; anything else ends the exchange here (connection closed, no more
     * callbacks). */
    int (*on_head)(void *ud, const gw_resp_head_t *h, gw_body_kind_t kind, uint64_t content_length);
    /* Body bytes b[off..off+len) (take a reference to keep them), as framed by the upstream
     * (chunked framing included, made canonical in place: chunk extensions and trailer
     * fields removed) unless gw_client_decode_chunked was called. Called after
     * on_head for the rest of each read, even when that is empty (len 0). done: the response
     * is complete. */
    void (*on_body)(void *ud, gw_block_t *b, size_t off, size_t len, bool done);
    /* The exchange failed; status is the libuv error (0 for a clean close), reason a text or
     * NULL. */
    void (*on_error)(void *ud, gw_client_err_t err, int status, const char *reason);
    /* The write queue fell below the low-water mark after being above it. */
    void (*on_drain)(void *ud);
} gw_client_cb_t;

/* Starts an exchange with target (see gw_upstream_get for skip_verify and identity). head
 * (not copied: it must stay valid until the exchange ends) is sent when connected; with
 * has_body it is held back to leave with the first body bytes in one writev. head_request: the
 * request is a HEAD (no response body whatever the headers say). Returns GW_OK when a pooled
 * connection was taken (connected now, no on_connect), GW_AGAIN when on_connect or on_error
 * follows. *out is valid until the exchange ends. */
int gw_client_start(gw_upstream_pool_t *pool, const gw_target_t *target, bool skip_verify,
                    gw_tls_ctx_t *identity, const char *head, size_t hlen, bool has_body, bool head_request,
                    const gw_client_cb_t *cb, void *ud, gw_client_t **out);

/* Sends body bytes (own block reference taken), the held head first. Only once connected.
 * Returns 0, or < 0 when the upstream no longer takes bytes: nothing more is sent but reading
 * goes on, so an answer the upstream gave before closing still arrives (then on_head), else
 * on_error. */
int gw_client_send(gw_client_t *c, gw_block_t *b, size_t off, size_t len);
/* Every request byte has been handed to gw_client_send (or there is no body): the connection
 * may be pooled after the response. Flushes a head still held back. Returns like
 * gw_client_send. */
int gw_client_request_done(gw_client_t *c);
/* After a GW_AGAIN start: the exchange made no connection of its own: it waited for the one
 * another exchange was making to the same upstream and became a stream on it (HTTP/2), or then
 * took a pooled connection. */
bool gw_client_joined(const gw_client_t *c);
/* True once a write failed (see gw_client_send). */
bool gw_client_write_failed(const gw_client_t *c);
size_t gw_client_write_queue(const gw_client_t *c);

/* Stops / resumes reading the response (backpressure towards the caller's client). */
void gw_client_pause(gw_client_t *c);
void gw_client_resume(gw_client_t *c);

/* Raw body hand-over (splice(2), see gateway/proxy.c): when the rest of the response body is
 * Content-Length framed, at least min bytes, on a plain-TCP HTTP/1.1 connection (no TLS,
 * HTTP/2, upgrade or decoding), reading stops and the socket is returned with *left, the body bytes still to
 * come; the caller moves them itself (or, having moved none, calls gw_client_resume and the
 * body arrives as usual). Else -1 (nothing changes). */
int gw_client_splice_begin(gw_client_t *c, uint64_t min, uint64_t *left);
/* The caller moved every remaining body byte: the response is complete and the connection is
 * pooled when it may be, as after on_body with done (no callback follows; the exchange is
 * over). Failures go through gw_client_abort. */
void gw_client_splice_done(gw_client_t *c);

/* From on_head: deliver a chunked body decoded (for HTTP/1.0 callers). */
void gw_client_decode_chunked(gw_client_t *c);

/* The request asks for a protocol upgrade: a 101 answer is then delivered through on_head
 * (otherwise it is GW_CLIENT_EMALFORMED), and everything after it arrives through on_body as
 * a close-delimited body (done when the upstream closes), while gw_client_send keeps sending
 * the caller's bytes. The connection is never pooled. */
void gw_client_allow_upgrade(gw_client_t *c);
/* Half-close towards the upstream (flushing a held head first): nothing more is sent, the
 * response keeps arriving. Returns like gw_client_send. */
int gw_client_shutdown(gw_client_t *c);

/* Ends the exchange now (the connection is closed, never pooled); no callback follows. May be
 * called from inside a callback. */
void gw_client_abort(gw_client_t *c);

/* Frees this thread's cache of spent exchanges (at the end of a worker thread). */
void gw_client_drain_cache(void);

#endif
