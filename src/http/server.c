/* server.c: the client side of the gateway: one state machine per TCP connection that turns
 * bytes into validated requests for a handler and carries the handler's response back.
 * Guarantees: a head is never larger than 64 KiB, framing is unambiguous (no smuggling), a
 * slow or vanished client is noticed, and an idle connection holds no buffers. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/rewrite.h"
#include "http/writeq.h"
#include "util/alloc.h"
#include "util/freelist.h"
#include "util/buf.h"
#include "util/log.h"

#define GW_IDLE_TIMEOUT_MS (90 * 1000)
#define GW_PENDING_MAX (GW_HTTP_MAX_HEAD + GW_BLOCK_SIZE)

typedef enum {
    CONN_IDLE = 0,   /* waiting for the first byte of a request */
    CONN_HEAD,       /* part of a head received */
    CONN_REQUEST,    /* a request is with the handler */
    CONN_TUNNEL,     /* after a protocol switch: raw bytes go to the handler until a close */
    CONN_CLOSING,
} conn_state_t;

struct gw_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    gw_server_t *server;
    const gw_listener_t *listener;
    struct gw_conn_s *prev, *next;  /* the server's connection list */
    gw_request_t *req;
    gw_buf_t pending;               /* head bytes / pipelined bytes not yet used */
    conn_state_t state;
    int handles_open;
    bool reading;                   /* uv_read_start active */
    bool body_paused;               /* handler asked to stop reading the body */
    bool above_high_water;          /* handler wants on_drain */
    bool notify_empty;              /* handler wants on_drain once the write queue is empty */
    bool resume_scheduled;          /* timer set to 0 to parse pending bytes */
    bool timer_is_request;          /* the running timer is a request timeout (408) */
    gw_head_scan_t head_scan;       /* how far the head in pending was checked */
    gw_chunked_t chunked;
    uint64_t body_left;
    uint64_t last_body_ms;          /* loop time of the last body bytes (inactivity timeout) */
    uint64_t body_bytes;            /* body bytes read for the current request */
    uint64_t rate_start_ms;         /* minBodyRate window: loop time it began ... */
    uint64_t rate_start_bytes;      /* ... and body_bytes then */
    bool rate_first_done;           /* the first window (exempt) is over */
    char peer_ip[INET6_ADDRSTRLEN];
    uv_shutdown_t shutdown_req;
    size_t wpend;                   /* bytes waiting in the worker's write batch */
    bool shutdown_done;             /* our FIN was sent (lingering close) */
    bool peer_eof;                  /* the client closed its side or the connection failed */
};

static void conn_close(gw_conn_t *c, bool graceful);
static void process(gw_conn_t *c, gw_block_t *b, size_t off, size_t len);

/* ---------- helpers ---------- */

static void set_timer(gw_conn_t *c, uint64_t ms, bool request_timeout);

static void read_start(gw_conn_t *c);
static void read_stop(gw_conn_t *c);

static void conn_unlink(gw_conn_t *c)
{
    gw_server_t *w = c->server;
    if (c->prev) c->prev->next = c->next;
    else if (w->conns == c) w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_conn_t *c = h->data;
    if (--c->handles_open > 0) return;
    conn_unlink(c);
    gw_buf_free(&c->pending);
    GW_COUNT(c->server->counters, conns_active, (uint64_t)-1);
    free(c);
}

/* Spent requests whose head fit REQ_CACHED_HEAD bytes and REQ_CACHED_HEADERS fields, reused:
 * one is made per request. */
#define REQ_CACHED_HEAD 2048
#define REQ_CACHED_HEADERS 32
static _Thread_local gw_freelist_t tl_requests = {.max = GW_FREELIST_MAX};

static void free_request(gw_conn_t *c)
{
    gw_request_t *r = c->req;
    if (!r) return;
    c->req = NULL;
    if (!r->cached || !gw_freelist_push(&tl_requests, r)) free(r);
}

void gw_server_drain_cache(void) { gw_freelist_drain(&tl_requests); }

/* Ends the request under way, telling its handler why: abort_status is the status the server
 * is about to answer (408, 400), 0 when the client went away. */
static void abort_request(gw_conn_t *c, int abort_status)
{
    gw_request_t *r = c->req;
    if (!r) return;
    r->abort_status = abort_status;
    const gw_handler_t *h = c->listener->handler;
    if (h->on_abort) h->on_abort(r);
    GW_COUNT(c->server->counters, requests_ended, 1);
    free_request(c);
}

#define GW_LINGER_MS (10 * 1000)

static void close_handles(gw_conn_t *c)
{
    gw_stream_flush((uv_stream_t *)&c->tcp, &c->wpend);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    gw_conn_t *c = s->data;
    c->shutdown_done = true;
    /* Our FIN is out after the last response byte; wait for the client's unless it already
     * closed (or the shutdown failed). */
    if (status < 0 || c->peer_eof) close_handles(c);
}

/* A client that neither reads its last response nor closes is not waited for forever. */
static void on_linger(uv_timer_t *t)
{
    close_handles(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Closes the connection. graceful ("lingering close", as nginx does): flush the queued
 * response, send FIN, and keep reading and discarding what the client still sends (e.g. the
 * rest of an upload the answer came before) until it closes, at most GW_LINGER_MS. Closing
 * with unread input would make the kernel send RST, which can destroy the response in the
 * client's receive buffer. */
static void conn_close(gw_conn_t *c, bool graceful)
{
    if (c->state == CONN_CLOSING) return;
    c->state = CONN_CLOSING;
    abort_request(c, 0);
    if (graceful) {
        c->shutdown_req.data = c;
        gw_stream_flush((uv_stream_t *)&c->tcp, &c->wpend);
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
            uv_timer_start(&c->timer, on_linger, GW_LINGER_MS, 0);
            if (!c->peer_eof && !c->reading &&
                uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
                c->reading = true;
            return;
        }
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    close_handles(c);
}

const char *gw_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ---------- writing ---------- */

static void on_write(uv_write_t *w, int status)
{
    gw_conn_t *c = gw_write_done(w);
    if (status < 0) {
        if (c->state != CONN_CLOSING) conn_close(c, false);
        return;
    }
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if ((c->above_high_water && c->req && queued < GW_CONN_LOW_WATER) ||
        (c->notify_empty && c->req && queued == 0 && c->wpend == 0)) {
        c->above_high_water = false;
        if (queued == 0 && c->wpend == 0) c->notify_empty = false;
        const gw_handler_t *h = c->listener->handler;
        if (h->on_drain) h->on_drain(c->req);
    }
}

/* Queues heap[0..hlen) (ours to free) then p[0..len) inside block b (our reference). */
static int conn_writev(gw_conn_t *c, char *heap, size_t hlen, gw_block_t *b, const char *p, size_t len)
{
    if (c->state == CONN_CLOSING) {
        if (b) gw_block_unref(b);
        free(heap);
        return UV_EPIPE;
    }
    int rc = gw_stream_writev((uv_stream_t *)&c->tcp, &c->wpend, heap, hlen, b, p, len, c, on_write);
    if (rc == 0 && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= GW_CONN_HIGH_WATER)
        c->above_high_water = true;
    return rc;
}

static int conn_write(gw_conn_t *c, gw_block_t *b, char *heap, const char *p, size_t len)
{
    if (b) return conn_writev(c, NULL, 0, b, p, len);
    return conn_writev(c, heap, len, NULL, NULL, 0);
}

int gw_request_write_head_and_block(gw_request_t *req, char *head, size_t hlen, gw_block_t *b, size_t off,
                                    size_t len)
{
    req->responded = true;
    return conn_writev(req->conn, head, hlen, len ? gw_block_ref(b) : NULL, len ? b->data + off : NULL, len);
}

int gw_request_write_block(gw_request_t *req, gw_block_t *b, size_t off, size_t len)
{
    req->responded = true;
    if (!len) return 0;
    return conn_write(req->conn, gw_block_ref(b), NULL, b->data + off, len);
}

int gw_request_write_copy(gw_request_t *req, const void *p, size_t len)
{
    req->responded = true;
    gw_conn_t *c = req->conn;
    if (c->state == CONN_CLOSING) return UV_EPIPE;
    int rc = gw_stream_write_copy((uv_stream_t *)&c->tcp, &c->wpend, p, len, c, on_write);
    if (rc == 0 && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= GW_CONN_HIGH_WATER)
        c->above_high_water = true;
    return rc;
}

int gw_request_fd(const gw_request_t *req)
{
    uv_os_fd_t fd;
    if (req->conn->state == CONN_CLOSING || uv_fileno((const uv_handle_t *)&req->conn->tcp, &fd) != 0) return -1;
    return fd;
}

size_t gw_request_flush(gw_request_t *req)
{
    gw_conn_t *c = req->conn;
    gw_stream_flush((uv_stream_t *)&c->tcp, &c->wpend);
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->wpend;
}

void gw_request_notify_empty(gw_request_t *req) { req->conn->notify_empty = true; }

size_t gw_request_write_queue(const gw_request_t *req)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&req->conn->tcp) + req->conn->wpend;
}

/* Canned response written by the server itself (400, 408, 431) before closing. A request the
 * handler had was counted by the handler (abort_request); anything earlier counts here, as a
 * request that matched no API. */
static void write_error_and_close(gw_conn_t *c, int status, const char *text, bool count)
{
    gw_buf_t body, out;
    gw_buf_init(&body, 4096);
    gw_buf_init(&out, 8192);
    gw_append_error_body(&body, status, text);
    gw_buf_appendf(&out,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, gw_http_reason(status), body.len);
    gw_buf_append(&out, body.base, body.len);
    if (count)
        gw_reqstats_record(&c->server->counters->unmatched, status,
                           status == 408 ? GW_OUTCOME_TIMEOUT : GW_OUTCOME_GATEWAY_ERROR, 0, 0, 0, 0);
    size_t len;
    char *p = gw_buf_take(&out, &len);
    conn_write(c, NULL, p, p, len);
    gw_buf_free(&body);
    conn_close(c, true);
}

/* ---------- reading ---------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    gw_block_t *b = gw_block_get();
    buf->base = b->data;
    buf->len = b->cap;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gw_conn_t *c = s->data;
    gw_block_t *b = buf->base ? GW_CONTAINER_OF(buf->base, gw_block_t, data) : NULL;
    if (nread < 0) {
        if (b) gw_block_unref(b);
        c->peer_eof = true;
        if (c->state == CONN_CLOSING) {
            /* Lingering close: the client is done too. */
            if (c->shutdown_done) close_handles(c);
            return;
        }
        if (c->state == CONN_TUNNEL && nread == UV_EOF && c->req) {
            /* Half-close: the client sends no more, but may still receive. */
            read_stop(c);
            c->listener->handler->on_body(c->req, NULL, 0, 0, true);
            return;
        }
        /* Client closed or reset: whatever it was doing is over. */
        conn_close(c, c->req == NULL && nread == UV_EOF);
        return;
    }
    if (nread > 0 && c->state != CONN_CLOSING) process(c, b, 0, (size_t)nread);
    if (b) gw_block_unref(b);
}

static void read_start(gw_conn_t *c)
{
    if (c->reading || c->state == CONN_CLOSING) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

static void read_stop(gw_conn_t *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_timer(uv_timer_t *t);

/* Starts a minBodyRate window now (also after backpressure: paused time is not counted). */
static void rate_window_restart(gw_conn_t *c)
{
    c->rate_start_ms = uv_now(c->server->loop);
    c->rate_start_bytes = c->body_bytes;
}

static void set_timer(gw_conn_t *c, uint64_t ms, bool request_timeout)
{
    c->timer_is_request = request_timeout;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    gw_conn_t *c = t->data;
    if (c->resume_scheduled) {
        c->resume_scheduled = false;
        if (!c->pending.len || !(c->state == CONN_IDLE || (c->state == CONN_TUNNEL && c->req))) return;
        /* Parse pipelined bytes left over from the previous request, or relay the bytes the
         * client sent right behind its upgrade request. */
        size_t n = c->pending.len;
        gw_block_t *b = gw_block_alloc(n);
        memcpy(b->data, c->pending.base, n);
        gw_buf_reset(&c->pending);
        memset(&c->head_scan, 0, sizeof(c->head_scan));
        process(c, b, 0, n);
        gw_block_unref(b);
        return;
    }
    if (c->state == CONN_IDLE) {
        conn_close(c, false);
        return;
    }
    const char *why = "request timeout";
    if (c->req && !c->req->body_done) {
        /* Body inactivity and minimum rate: the timer is armed once and re-armed lazily here,
         * so a body read costs no timer operation. */
        uint64_t limit = (uint64_t)c->server->request_timeout * 1000, now = uv_now(c->server->loop);
        uint64_t idle = now - c->last_body_ms;
        if (c->body_paused) { /* we stopped reading (backpressure): not the client's fault */
            idle = 0;
            rate_window_restart(c);
        }
        bool slow = false;
        if (idle < limit && c->server->min_body_rate && now - c->rate_start_ms >= limit) {
            /* A requestTimeout window ended: after the first one, the body must have come at
             * minBodyRate on average (a trickle is not inactivity, but holds both sides). */
            uint64_t got = c->body_bytes - c->rate_start_bytes;
            slow = c->rate_first_done &&
                   got < (uint64_t)c->server->min_body_rate * (now - c->rate_start_ms) / 1000;
            rate_window_restart(c);
            c->rate_first_done = true;
        }
        if (idle < limit && !slow) {
            uint64_t next = limit - idle;
            if (c->server->min_body_rate && c->rate_start_ms + limit - now < next) next = c->rate_start_ms + limit - now;
            set_timer(c, next, true);
            return;
        }
        if (slow) {
            why = "request body too slow";
            gw_log(GW_LOG_WARN, "request body slower than minBodyRate: closed", "client", c->peer_ip, NULL);
        }
    }
    if (c->state == CONN_HEAD || (c->req && !c->req->body_done)) {
        bool responded = c->req && c->req->responded, had_req = c->req != NULL;
        abort_request(c, 408);
        if (!responded) write_error_and_close(c, 408, why, !had_req);
        else conn_close(c, false);
    }
}

static void shift_slices(gw_req_head_t *h, const char *from, const char *to)
{
#define SHIFT(s) ((s).p = (s).p ? to + ((s).p - from) : NULL)
    SHIFT(h->method);
    SHIFT(h->target);
    for (size_t i = 0; i < h->nheaders; i++) {
        SHIFT(h->headers[i].name);
        SHIFT(h->headers[i].value);
    }
#undef SHIFT
}

static bool header_has_token(const gw_req_head_t *h, const char *name, const char *token)
{
    size_t tn = strlen(token);
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!gw_str_ieq(h->headers[i].name, name, strlen(name))) continue;
        gw_str_t rest = h->headers[i].value, e;
        while (gw_str_next_token(&rest, &e))
            if (gw_str_ieq(e, token, tn)) return true;
    }
    return false;
}

/* Builds the request from a complete head (head bytes at p[0..n), copied). */
static gw_request_t *make_request(gw_conn_t *c, const char *p, size_t n, const gw_req_head_t *parsed)
{
    /* Room for the used headers only, then the head bytes. cacheable: made with room for
     * REQ_CACHED_HEADERS headers and REQ_CACHED_HEAD bytes (without a cache, as under ASan,
     * exactly as big as needed). */
    bool cacheable = GW_FREELIST_ON && n <= REQ_CACHED_HEAD && parsed->nheaders <= REQ_CACHED_HEADERS;
    size_t hcap = cacheable ? REQ_CACHED_HEADERS : parsed->nheaders;
    gw_request_t *r = cacheable ? gw_freelist_pop(&tl_requests) : NULL;
    if (!r)
        r = gw_malloc(offsetof(gw_request_t, head.headers) + hcap * sizeof(gw_header_t) +
                      (cacheable ? REQ_CACHED_HEAD : n));
    memset(r, 0, offsetof(gw_request_t, head));
    r->cached = cacheable;
    char *copy = (char *)&r->head.headers[hcap];
    memcpy(copy, p, n);
    memcpy(&r->head, parsed, offsetof(gw_req_head_t, headers) + parsed->nheaders * sizeof(gw_header_t));
    shift_slices(&r->head, p, copy);
    r->conn = c;
    r->server = c->server;
    r->listener = c->listener;
    r->peer_ip = c->peer_ip;
    r->start_ns = uv_hrtime();
    c->req = r;
    c->state = CONN_REQUEST;
    return r;
}

/* Validates framing and hands the request to the handler. */
static void dispatch_request(gw_conn_t *c, gw_request_t *r)
{
    if (gw_http_request_framing(&r->head, &r->body_kind, &r->content_length) != GW_OK) {
        free_request(c);
        write_error_and_close(c, 400, "invalid request framing", true);
        return;
    }
    /* RFC 9112 §3.2: exactly one Host header on HTTP/1.1 (as the original's net/http demands). */
    size_t hosts = 0;
    for (size_t i = 0; i < r->head.nheaders; i++)
        if (GW_STR_IEQ_LIT(r->head.headers[i].name, "host")) hosts++;
    if (hosts > 1 || (hosts == 0 && r->head.minor_version >= 1)) {
        free_request(c);
        write_error_and_close(c, 400, hosts ? "too many Host headers" : "missing required Host header", true);
        return;
    }
    r->keep_alive = r->head.minor_version >= 1 ? !header_has_token(&r->head, "connection", "close")
                                               : header_has_token(&r->head, "connection", "keep-alive");
    r->expect_continue = header_has_token(&r->head, "expect", "100-continue");
    if (c->server->draining) r->keep_alive = false;
    memset(&c->chunked, 0, sizeof(c->chunked));
    c->body_left = r->body_kind == GW_BODY_LENGTH ? r->content_length : 0;
    if (r->body_kind == GW_BODY_NONE || (r->body_kind == GW_BODY_LENGTH && r->content_length == 0)) {
        r->body_kind = GW_BODY_NONE;
        r->body_done = true;
        uv_timer_stop(&c->timer);
    } else {
        /* Body inactivity (and rate, --minBodyRate) is bounded by requestTimeout too. */
        c->last_body_ms = uv_now(c->server->loop);
        c->body_bytes = 0;
        c->rate_first_done = false;
        rate_window_restart(c);
        set_timer(c, (uint64_t)c->server->request_timeout * 1000, true);
    }
    GW_COUNT(c->server->counters, requests_started, 1);
    c->listener->handler->on_request(r);
}

/* Delivers body bytes from b[off..off+len); returns how many belong to the body. */
static size_t feed_body(gw_conn_t *c, gw_block_t *b, size_t off, size_t len)
{
    gw_request_t *r = c->req;
    size_t used, fwd;
    bool last = false;
    if (r->body_kind == GW_BODY_LENGTH) {
        used = fwd = (size_t)GW_MIN((uint64_t)len, c->body_left);
        c->body_left -= used;
        last = c->body_left == 0;
    } else {
        /* Forwarded framing is canonical: extensions and trailers never reach the upstream,
         * which might read them differently (issue 7). */
        int rc = gw_chunked_canon(&c->chunked, b->data + off, len, &used, &fwd);
        if (rc < 0) {
            bool responded = r->responded;
            abort_request(c, 400);
            if (!responded) write_error_and_close(c, 400, "invalid chunked request body", false);
            else conn_close(c, false);
            return len;
        }
        last = rc == 1;
    }
    r->body_bytes += used;
    c->body_bytes += used;
    if (last) {
        r->body_done = true;
        if (c->timer_is_request) uv_timer_stop(&c->timer);
    } else {
        c->last_body_ms = uv_now(c->server->loop);
    }
    c->listener->handler->on_body(r, b, off, fwd, last);
    return used;
}

static int parse_head_status(int rc)
{
    return rc == GW_E2BIG ? 431 : 400;
}

static void process(gw_conn_t *c, gw_block_t *b, size_t off, size_t len)
{
    if (c->state == CONN_TUNNEL) {
        c->req->body_bytes += len;
        c->listener->handler->on_body(c->req, b, off, len, false);
        return;
    }
    while (len > 0 && c->state != CONN_CLOSING) {
        if (c->state == CONN_IDLE || c->state == CONN_HEAD) {
            gw_req_head_t head;
            const char *p;
            size_t avail, before = c->pending.len;
            if (before == 0) {
                p = b->data + off;
                avail = len;
            } else {
                if (gw_buf_append(&c->pending, b->data + off, len) != GW_OK) {
                    write_error_and_close(c, 431, "request header fields too large", true);
                    break;
                }
                p = c->pending.base;
                avail = c->pending.len;
            }
            /* A head in pieces is checked from where the last read stopped (linear, however
             * it is cut), and parsed once it is complete. */
            int rc = before == 0 ? gw_http_parse_request(p, avail, &head) : gw_http_scan_request(p, avail, &c->head_scan);
            if (before && rc > 0) rc = gw_http_parse_request(p, avail, &head);
            if (rc == 0) {
                if (before == 0 && gw_buf_append(&c->pending, p, avail) != GW_OK) {
                    write_error_and_close(c, 431, "request header fields too large", true);
                    break;
                }
                if (c->state == CONN_IDLE) {
                    c->state = CONN_HEAD;
                    set_timer(c, (uint64_t)c->server->request_timeout * 1000, true);
                }
                len = 0;
                break;
            }
            if (rc < 0) {
                int st = parse_head_status(rc);
                write_error_and_close(c, st, st == 431 ? "request header fields too large" : "malformed request", true);
                break;
            }
            size_t head_len = (size_t)rc;
            /* Bytes of this block consumed by the head. */
            size_t from_block = head_len - before;
            gw_request_t *r = make_request(c, p, head_len, &head);
            if (before) {
                gw_buf_reset(&c->pending);
                memset(&c->head_scan, 0, sizeof(c->head_scan));
            }
            off += from_block;
            len -= from_block;
            dispatch_request(c, r);
            continue;
        }
        /* CONN_REQUEST */
        gw_request_t *r = c->req;
        if (r && !r->body_done) {
            size_t used = feed_body(c, b, off, len);
            off += used;
            len -= used;
            continue;
        }
        /* Pipelined bytes of a next request while this one is still being answered. */
        /* pending never exceeds GW_HTTP_MAX_HEAD here and a read is at most one block, so
         * the append fits; past the head limit we stop reading until this response is done. */
        gw_buf_append(&c->pending, b->data + off, len);
        if (c->pending.len >= GW_HTTP_MAX_HEAD) read_stop(c);
        len = 0;
    }
}

/* ---------- request API ---------- */

void gw_request_pause_body(gw_request_t *req)
{
    gw_conn_t *c = req->conn;
    c->body_paused = true;
    read_stop(c);
}

void gw_request_resume_body(gw_request_t *req)
{
    gw_conn_t *c = req->conn;
    if (c->body_paused) rate_window_restart(c);
    c->body_paused = false;
    read_start(c);
}

void gw_request_finish(gw_request_t *req, bool reuse)
{
    gw_conn_t *c = req->conn;
    gw_server_t *w = c->server;
    GW_COUNT(w->counters, requests_ended, 1);
    bool keep = reuse && req->keep_alive && req->body_done && !w->draining;
    free_request(c);
    if (!keep) {
        conn_close(c, true);
        return;
    }
    c->state = CONN_IDLE;
    c->body_paused = false;
    c->above_high_water = false;
    c->notify_empty = false;
    read_start(c);
    if (c->pending.len) {
        /* Parse the pipelined request from the loop, not from inside the handler. */
        c->resume_scheduled = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
    } else {
        set_timer(c, GW_IDLE_TIMEOUT_MS, false);
    }
}

void gw_request_tunnel(gw_request_t *req)
{
    gw_conn_t *c = req->conn;
    c->state = CONN_TUNNEL;
    c->timer_is_request = false;
    uv_timer_stop(&c->timer);
    c->body_paused = false;
    read_start(c);
    if (c->pending.len) {
        c->resume_scheduled = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
    }
}

void gw_request_abort(gw_request_t *req)
{
    gw_conn_t *c = req->conn;
    GW_COUNT(c->server->counters, requests_ended, 1);
    free_request(c);
    conn_close(c, false);
}

void gw_request_respond(gw_request_t *req, int status, const char *content_type, const char *body,
                        size_t body_len)
{
    gw_conn_t *c = req->conn;
    /* An unread request body means the connection cannot carry another request. */
    bool reuse = req->keep_alive && req->body_done && !c->server->draining;
    gw_buf_t out;
    gw_buf_init(&out, body_len + 1024);
    gw_buf_appendf(&out, "HTTP/1.1 %d %s\r\n", status, gw_http_reason(status));
    if (content_type) gw_buf_appendf(&out, "Content-Type: %s\r\n", content_type);
    if (req->request_id_len)
        gw_buf_appendf(&out, "X-Request-Id: %.*s\r\n", (int)req->request_id_len, req->request_id);
    gw_buf_appendf(&out, "Content-Length: %zu\r\n%s\r\n", body_len, reuse ? "" : "Connection: close\r\n");
    if (body_len && !gw_str_eq(req->head.method, "HEAD", 4)) gw_buf_append(&out, body, body_len);
    size_t n;
    char *p = gw_buf_take(&out, &n);
    req->responded = true;
    conn_write(c, NULL, p, p, n);
    gw_request_finish(req, reuse);
}

void gw_request_respond_error(gw_request_t *req, int status, const char *text)
{
    gw_buf_t body;
    gw_buf_init(&body, 16384);
    gw_append_error_body(&body, status, text);
    gw_request_respond(req, status, "application/json;charset=UTF-8", body.base, body.len);
    gw_buf_free(&body);
}

/* ---------- accepting ---------- */

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

static void start_conn(gw_listener_t *l, int fd)
{
    gw_server_t *w = l->server;
    gw_conn_t *c = gw_calloc(1, sizeof(*c));
    c->server = w;
    c->listener = l;
    gw_buf_init(&c->pending, GW_PENDING_MAX);
    uv_tcp_init(w->loop, &c->tcp);
    uv_timer_init(w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    GW_COUNT(w->counters, conns_active, 1);
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        GW_COUNT(w->counters, accept_errors, 1);
        c->state = CONN_CLOSING;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    GW_COUNT(w->counters, conns_accepted, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
        /* IPv4 clients of a dual-stack listener: report 1.2.3.4, not ::ffff:1.2.3.4. */
        if (strncmp(c->peer_ip, "::ffff:", 7) == 0 && strchr(c->peer_ip + 7, '.'))
            memmove(c->peer_ip, c->peer_ip + 7, strlen(c->peer_ip + 7) + 1);
    }
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    if (w->draining) {
        conn_close(c, false);
        return;
    }
    set_timer(c, GW_IDLE_TIMEOUT_MS, false);
    read_start(c);
}

static void on_acceptable(uv_poll_t *p, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
    gw_listener_t *l = t->data;
    if (l->reserve_fd < 0) l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
}

/* Out of file descriptors: refuse what is queued (accept with the reserve fd's slot, close),
 * then stop polling for a moment so the loop keeps serving existing connections. */
static void accept_exhausted(gw_listener_t *l)
{
    gw_server_t *w = l->server;
    GW_COUNT(w->counters, accept_errors, 1);
    if (l->reserve_fd >= 0) {
        close(l->reserve_fd);
        l->reserve_fd = -1;
        for (int i = 0; i < 4096; i++) {
            int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break;
            close(fd);
            GW_COUNT(w->counters, accept_errors, 1);
        }
        l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        gw_log(GW_LOG_WARN, "out of file descriptors: refusing new connections until some close", NULL);
    uv_poll_stop(&l->poll);
    uv_timer_start(&l->pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    gw_listener_t *l = p->data;
    if (status < 0) return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            start_conn(l, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) accept_exhausted(l);
        break; /* EAGAIN: queue empty */
    }
}

int gw_server_listen(gw_listener_t *l)
{
    if (listen(l->fd, 4096) != 0) return -errno;
    int rc = uv_poll_init_socket(l->server->loop, &l->poll, l->fd);
    if (rc) return rc;
    l->poll.data = l;
    uv_timer_init(l->server->loop, &l->pause);
    l->pause.data = l;
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
}

static void on_listener_closed(uv_handle_t *h) { (void)h; }

void gw_server_listener_close(gw_listener_t *l)
{
    uv_close((uv_handle_t *)&l->poll, on_listener_closed);
    uv_close((uv_handle_t *)&l->pause, on_listener_closed);
    close(l->fd);
    l->fd = -1;
    if (l->reserve_fd >= 0) close(l->reserve_fd);
    l->reserve_fd = -1;
}

void gw_server_drain(gw_server_t *w)
{
    w->draining = true;
    gw_conn_t *c = w->conns;
    while (c) {
        gw_conn_t *next = c->next;
        if (c->state == CONN_CLOSING) {
            /* already on its way out */
        } else if (c->state == CONN_IDLE) conn_close(c, false);
        else if (c->req) c->req->keep_alive = false;
        c = next;
    }
}

void gw_server_close_all(gw_server_t *w)
{
    for (gw_conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_CLOSING) close_handles(c); /* lingering: stop waiting */
        else conn_close(c, false);
    }
}
