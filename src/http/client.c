/* client.c: the HTTP/1.1 exchange of http/client.h: head held for the first body bytes,
 * response head accumulated across reads (1xx skipped), body framing tracked (length, chunked,
 * close-delimited), reuse decided from both messages. A caller may end the exchange from inside
 * any callback: the client then only marks itself dead and is freed when the outermost
 * callback returns. With --upstreamHTTP2 an HTTPS exchange may run as a stream of an HTTP/2
 * session instead (http/h2.c): it then waits for a connection another exchange is making to
 * the same upstream, or makes one; when its TLS handshake picks "h2" the connection becomes
 * the upstream's shared session, else the exchange goes on in HTTP/1.1 as usual. */
#include "http/client.h"

#include <stdlib.h>
#include <string.h>

#include "http/h2.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/freelist.h"
#include "util/str.h"

struct gw_client_s {
    gw_upconn_t *up;               /* NULL once released */
    const gw_client_cb_t *cb;
    void *ud;
    const char *head;              /* the caller's, valid for the whole exchange */
    size_t hlen;
    bool head_pending;             /* not written yet: waits for the first body bytes */
    bool head_request;
    bool has_body;                 /* the request has a body (the head waits for it) */
    bool connected;
    bool write_failed;
    bool request_done;             /* every request byte was handed over */
    bool got_bytes;                /* a response byte arrived */
    bool in_body;                  /* the final head was delivered */
    bool body_done;                /* the response is complete */
    bool keepalive;                /* the upstream allows another request on the connection */
    bool decode;                   /* deliver a chunked body decoded */
    bool upgrade_ok;               /* a 101 is the answer to a protocol upgrade we asked for */
    bool tunnel;                   /* after that 101: raw bytes both ways until a close */
    bool dead;                     /* the exchange is over; freed when no callback is running */
    int busy;                      /* callbacks into the caller on the stack */
    gw_buf_t resp_buf;             /* partial response head */
    gw_body_kind_t kind;
    uint64_t left;
    gw_chunked_t chunked;
    /* HTTPS with --upstreamHTTP2 */
    gw_h2_stream_t *h2;            /* the exchange runs as this HTTP/2 stream */
    gw_h2_key_t *h2key;            /* the upstream's HTTP/2 state */
    gw_h2_req_t *h2req;            /* the head converted for HTTP/2, until a stream opens */
    char *h2names;                 /* its lower-cased names */
    gw_h2_waiter_t waiter;
    bool waiting;                  /* on h2key's waiter list */
    bool connector;                /* making a connection counted in h2key */
    bool joined;                   /* waited, then got a stream or a pooled connection */
    gw_upstream_pool_t *pool;      /* for a connection made after waiting */
    const gw_target_t *target;
    bool skip_verify;
    gw_tls_ctx_t *identity;
};

static void h2_req_free(gw_client_t *c)
{
    free(c->h2req);
    free(c->h2names);
    c->h2req = NULL;
    c->h2names = NULL;
}

/* Spent exchanges, reused: one is made per upstream request. */
static _Thread_local gw_freelist_t tl_clients = {.max = GW_FREELIST_MAX};

static void client_free(gw_client_t *c)
{
    gw_buf_free(&c->resp_buf);
    h2_req_free(c);
    if (!gw_freelist_push(&tl_clients, c)) free(c);
}

void gw_client_drain_cache(void) { gw_freelist_drain(&tl_clients); }

/* After a callback into the caller: true when c is gone or over (do not touch it any more
 * beyond returning). */
static bool leave(gw_client_t *c)
{
    c->busy--;
    if (!c->dead) return false;
    if (c->busy == 0) client_free(c);
    return true;
}

static void release(gw_client_t *c, bool reusable)
{
    if (!c->up) return;
    gw_upconn_release(c->up, reusable);
    c->up = NULL;
}

/* Ends the exchange with an error; the caller hears of it once. Only from inside an event
 * handler below, which holds c (busy) around it. */
static void fail(gw_client_t *c, gw_client_err_t err, int status, const char *reason)
{
    release(c, false);
    c->dead = true;
    c->cb->on_error(c->ud, err, status, reason);
}

/* Ends the HTTP/2 side of the exchange: its stream, or its place in the key's queue or its
 * count of connections being made (waking the waiters when that was the last one). */
static void h2_end(gw_client_t *c)
{
    if (c->h2) {
        gw_h2_stream_detach(c->h2);
        c->h2 = NULL;
    }
    if (c->waiting) {
        c->waiting = false;
        gw_h2_key_unwait(c->h2key, &c->waiter);
    }
    if (c->connector) {
        c->connector = false;
        bool wake;
        gw_h2_key_connect_end(c->h2key, NULL, &wake);
        release(c, false);
        if (wake) gw_h2_key_wake(c->h2key);
    }
}

void gw_client_abort(gw_client_t *c)
{
    if (c->dead) return;
    c->dead = true;
    if (c->h2key) h2_end(c);
    release(c, false);
    if (!c->busy) client_free(c);
}

static int flush_head(gw_client_t *c)
{
    if (!c->head_pending || !c->up || c->write_failed) return c->write_failed ? UV_EPIPE : 0;
    c->head_pending = false;
    int rc = gw_upconn_write_copy(c->up, c->head, c->hlen);
    if (rc < 0) c->write_failed = true;
    return rc;
}

int gw_client_send(gw_client_t *c, gw_block_t *b, size_t off, size_t len)
{
    if (c->h2) return gw_h2_stream_send(c->h2, b, off, len);
    if (c->write_failed || !c->up) return UV_EPIPE;
    int rc;
    if (c->head_pending) {
        c->head_pending = false;
        rc = gw_upconn_write_head_and_block(c->up, c->head, c->hlen, b, off, len);
    } else {
        rc = gw_upconn_write_block(c->up, b, off, len);
    }
    if (rc < 0) c->write_failed = true;
    return rc;
}

int gw_client_request_done(gw_client_t *c)
{
    c->request_done = true;
    if (c->h2) return gw_h2_stream_end(c->h2);
    return c->connected ? flush_head(c) : 0;
}

bool gw_client_joined(const gw_client_t *c) { return c->joined; }

bool gw_client_write_failed(const gw_client_t *c) { return c->h2 ? gw_h2_stream_write_failed(c->h2) : c->write_failed; }

size_t gw_client_write_queue(const gw_client_t *c)
{
    if (c->h2) return gw_h2_stream_queued(c->h2);
    return c->up ? gw_upconn_write_queue(c->up) : 0;
}

void gw_client_pause(gw_client_t *c)
{
    if (c->up) gw_upconn_pause(c->up);
    else if (c->h2) gw_h2_stream_pause(c->h2, true);
}

void gw_client_resume(gw_client_t *c)
{
    if (c->up) gw_upconn_resume(c->up);
    else if (c->h2) gw_h2_stream_pause(c->h2, false);
}

int gw_client_splice_begin(gw_client_t *c, uint64_t min, uint64_t *left)
{
    if (c->h2 || !c->up || c->dead || !c->in_body || c->body_done || c->tunnel || c->decode ||
        c->kind != GW_BODY_LENGTH || c->left == 0 || c->left < min)
        return -1;
    int fd = gw_upconn_plain_fd(c->up);
    if (fd < 0) return -1;
    gw_upconn_pause(c->up);
    *left = c->left;
    return fd;
}

void gw_client_splice_done(gw_client_t *c)
{
    c->left = 0;
    c->body_done = true;
    release(c, c->keepalive && c->request_done && !c->write_failed);
    c->dead = true;
    if (!c->busy) client_free(c);
}

void gw_client_decode_chunked(gw_client_t *c)
{
    c->decode = true;
    if (c->h2) gw_h2_stream_decode_chunked(c->h2);
}

void gw_client_allow_upgrade(gw_client_t *c) { c->upgrade_ok = true; }

int gw_client_shutdown(gw_client_t *c)
{
    if (c->h2) return gw_h2_stream_end(c->h2);
    if (!c->up || c->write_failed) return UV_EPIPE;
    int rc = flush_head(c);
    if (rc == 0) rc = gw_upconn_shutdown(c->up);
    if (rc < 0) c->write_failed = true;
    return rc;
}

/* ---------- upstream events ---------- */

static bool h2_open(gw_client_t *c, gw_h2_session_t *s);
static bool h2_convert(gw_client_t *c);

static void up_connect(void *ud, int status, const char *reason)
{
    gw_client_t *c = ud;
    c->busy++;
    gw_h2_key_t *k = c->h2key;
    gw_h2_session_t *s = NULL;
    bool wake = false;
    if (c->connector) {
        c->connector = false;
        s = gw_h2_key_connect_end(k, status < 0 ? NULL : c->up, &wake);
    }
    if (status < 0) {
        c->up = NULL; /* already released by the pool */
        fail(c, GW_CLIENT_ECONNECT, status, reason);
    } else if (s) {
        c->up = NULL; /* the session's now */
        if ((c->h2req || h2_convert(c)) && h2_open(c, s)) {
            c->connected = true;
            c->cb->on_connect(c->ud);
        } else {
            fail(c, GW_CLIENT_ECONNECT, UV_EPROTO, "cannot open an HTTP/2 stream");
        }
    } else if (k && gw_upconn_alpn_h2(c->up)) {
        fail(c, GW_CLIENT_ECONNECT, UV_ENOMEM, "cannot start an HTTP/2 session");
    } else {
        h2_req_free(c);
        c->connected = true;
        if (!c->has_body) flush_head(c);
        c->cb->on_connect(c->ud);
    }
    if (wake) gw_h2_key_wake(k);
    leave(c);
}

static void up_drain(void *ud)
{
    gw_client_t *c = ud;
    c->busy++;
    c->cb->on_drain(c->ud);
    leave(c);
}

static bool says_close(const gw_resp_head_t *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!GW_STR_IEQ_LIT(h->headers[i].name, "connection")) continue;
        gw_str_t rest = h->headers[i].value, e;
        while (gw_str_next_token(&rest, &e))
            if (GW_STR_IEQ_LIT(e, "close")) return true;
    }
    return false;
}

/* Body bytes of one read: framing tracked, then handed to the caller (maybe empty). Called
 * with c held by up_data. */
static void deliver_body(gw_client_t *c, gw_block_t *b, size_t off, size_t len)
{
    bool done = c->body_done;
    gw_block_t *out = b, *copy = NULL;
    size_t ooff = off, olen = 0;
    if (!done && len) {
        size_t used = len;
        if (c->kind == GW_BODY_LENGTH) {
            used = (size_t)GW_MIN((uint64_t)len, c->left);
            c->left -= used;
            olen = used;
            done = c->left == 0;
        } else if (c->kind == GW_BODY_CHUNKED) {
            int rc;
            if (c->decode) {
                copy = out = gw_block_get();
                ooff = 0;
                rc = gw_chunked_feed(&c->chunked, b->data + off, len, &used, copy->data, &olen);
            } else {
                /* Framing passed on is canonical (extensions, trailers removed in place), so
                 * the client cannot read the body differently from how we framed it. */
                rc = gw_chunked_canon(&c->chunked, b->data + off, len, &used, &olen);
            }
            if (rc < 0) {
                if (copy) gw_block_unref(copy);
                fail(c, GW_CLIENT_EBODY, 0, "invalid chunked framing in the response body");
                return;
            }
            done = rc == 1;
        } else {
            olen = len; /* close-delimited */
        }
        if (used < len) c->keepalive = false; /* bytes after the message */
    } else if (done && len) {
        c->keepalive = false;
    }
    if (done) {
        c->body_done = true;
        release(c, c->keepalive && c->request_done && c->kind != GW_BODY_EOF && !c->write_failed);
        c->dead = true;
    }
    c->cb->on_body(c->ud, out, ooff, olen, done);
    if (copy) gw_block_unref(copy);
}

static void up_data(void *ud, gw_block_t *b, size_t off, size_t len)
{
    gw_client_t *c = ud;
    c->got_bytes = true;
    c->busy++;
    while (!c->in_body && len > 0) {
        const char *p;
        size_t avail, before = c->resp_buf.len;
        if (before == 0) {
            p = b->data + off;
            avail = len;
        } else {
            if (gw_buf_append(&c->resp_buf, b->data + off, len) != GW_OK) {
                fail(c, GW_CLIENT_EMALFORMED, 0, "response head too large");
                goto out;
            }
            p = c->resp_buf.base;
            avail = c->resp_buf.len;
        }
        gw_resp_head_t h;
        int rc = gw_http_parse_response(p, avail, &h);
        if (rc == 0) {
            if (before == 0 && gw_buf_append(&c->resp_buf, p, avail) != GW_OK)
                fail(c, GW_CLIENT_EMALFORMED, 0, "response head too large");
            goto out;
        }
        if (rc < 0 || (h.status == 101 && !c->upgrade_ok)) {
            fail(c, GW_CLIENT_EMALFORMED, 0, rc < 0 ? "malformed response head" : "unexpected 101 response");
            goto out;
        }
        size_t from_block = (size_t)rc - before;
        if (h.status < 200 && h.status != 101) {
            /* Interim response: skip it (a 100-continue is the gateway's own business). */
            if (before) {
                gw_buf_consume(&c->resp_buf, (size_t)rc);
                /* Whatever stayed in resp_buf came from this block: hand it back. */
                size_t keep = c->resp_buf.len;
                gw_buf_reset(&c->resp_buf);
                off += len - keep;
                len = keep;
            } else {
                off += from_block;
                len -= from_block;
            }
            continue;
        }
        if (h.status == 101) {
            /* Switching protocols: what follows is the new protocol's, until a close. */
            c->tunnel = true;
            c->kind = GW_BODY_EOF;
            c->left = 0;
        } else if (gw_http_response_framing(&h, c->head_request, &c->kind, &c->left) != GW_OK) {
            fail(c, GW_CLIENT_EMALFORMED, 0, "invalid response framing");
            goto out;
        }
        c->keepalive = h.minor_version >= 1 && !says_close(&h);
        c->in_body = true;
        c->body_done = c->kind == GW_BODY_NONE || (c->kind == GW_BODY_LENGTH && c->left == 0);
        int r = c->cb->on_head(c->ud, &h, c->kind, c->left);
        if (c->dead) goto out;
        if (r != GW_OK) {
            release(c, false);
            c->dead = true;
            goto out;
        }
        gw_buf_reset(&c->resp_buf);
        off += from_block;
        len -= from_block;
    }
    if (c->in_body) deliver_body(c, b, off, len);
out:
    leave(c);
}

static void up_close(void *ud, int status)
{
    gw_client_t *c = ud;
    c->up = NULL; /* released by the pool */
    c->busy++;
    if (!c->in_body) {
        fail(c, c->got_bytes ? GW_CLIENT_ELOST : GW_CLIENT_ECLOSED, status,
             status ? uv_strerror(status) : "closed before a response");
    } else if (c->kind == GW_BODY_EOF && status == 0) {
        c->body_done = true;
        c->dead = true;
        c->cb->on_body(c->ud, NULL, 0, 0, true);
    } else {
        fail(c, GW_CLIENT_EBODY, status, status ? uv_strerror(status) : "closed before the end of the body");
    }
    leave(c);
}

static const gw_upconn_cb_t up_cb = {up_connect, up_data, up_close, up_drain};

/* A connection of the pool's (GW_OK: pooled, connected now; the head leaves at once unless it
 * waits for body bytes) or a new one (GW_AGAIN: up_connect follows). */
static int h1_get(gw_client_t *c, gw_upstream_pool_t *pool, const gw_target_t *target, bool skip_verify,
                  gw_tls_ctx_t *identity, bool h1_only)
{
    int rc = gw_upstream_get(pool, target, skip_verify, identity, h1_only, &up_cb, c, &c->up);
    if (rc == GW_OK) {
        c->connected = true;
        if (!c->has_body) flush_head(c);
    }
    return rc;
}

/* ---------- HTTP/2 stream events (ud: the client) ---------- */

static void h2_on_connect(void *ud) { (void)ud; }

static int h2_on_head(void *ud, const gw_resp_head_t *h, gw_body_kind_t kind, uint64_t content_length)
{
    gw_client_t *c = ud;
    c->busy++;
    c->got_bytes = true;
    c->in_body = true;
    c->kind = kind;
    int r = c->cb->on_head(c->ud, h, kind, content_length);
    if (!c->dead && r != GW_OK) {
        c->dead = true;
        h2_end(c);
    }
    leave(c);
    return r;
}

static void h2_on_body(void *ud, gw_block_t *b, size_t off, size_t len, bool done)
{
    gw_client_t *c = ud;
    c->busy++;
    if (done) {
        c->body_done = true;
        c->dead = true;
        h2_end(c);
    }
    c->cb->on_body(c->ud, b, off, len, done);
    leave(c);
}

static void h2_on_error(void *ud, gw_client_err_t err, int status, const char *reason)
{
    gw_client_t *c = ud;
    c->busy++;
    c->dead = true;
    h2_end(c);
    c->cb->on_error(c->ud, err, status, reason);
    leave(c);
}

static void h2_on_drain(void *ud)
{
    gw_client_t *c = ud;
    c->busy++;
    c->cb->on_drain(c->ud);
    leave(c);
}

static const gw_client_cb_t h2_cb = {h2_on_connect, h2_on_head, h2_on_body, h2_on_error, h2_on_drain};

static bool h2_open(gw_client_t *c, gw_h2_session_t *s)
{
    c->h2 = gw_h2_stream_open(s, c->h2req, c->has_body, c->head_request, &h2_cb, c);
    if (!c->h2) return false;
    h2_req_free(c);
    if (c->has_body && c->request_done) gw_h2_stream_end(c->h2);
    return true;
}

/* A connection for the exchange, counted as one being made to the key: if it picks "h2" it
 * becomes a session (up_connect). GW_OK: a pooled HTTP/1.1 connection, connected now. */
static int h2_connect(gw_client_t *c)
{
    gw_h2_key_connect_begin(c->h2key);
    c->connector = true;
    int rc = gw_upstream_get(c->pool, c->target, c->skip_verify, c->identity, false, &up_cb, c, &c->up);
    if (rc == GW_OK) {
        c->connector = false;
        bool wake;
        gw_h2_key_connect_end(c->h2key, c->up, &wake);
        h2_req_free(c);
        c->connected = true;
        if (!c->has_body) flush_head(c);
        if (wake) gw_h2_key_wake(c->h2key);
    }
    return rc;
}

/* The connection another exchange was making is there (or not): a stream on a session, or a
 * connection of its own. */
static void h2_wake(gw_h2_waiter_t *w)
{
    gw_client_t *c = GW_CONTAINER_OF(w, gw_client_t, waiter);
    c->waiting = false;
    c->busy++;
    gw_h2_session_t *s = gw_h2_key_pick(c->h2key);
    if (s && h2_open(c, s)) {
        c->connected = true;
        c->joined = true;
        c->cb->on_connect(c->ud);
    } else if (gw_h2_key_should_wait(c->h2key)) {
        c->waiting = true; /* the session is full and another connection is on its way */
        gw_h2_key_wait(c->h2key, &c->waiter);
    } else if (h2_connect(c) == GW_OK) {
        c->joined = true;
        c->cb->on_connect(c->ud);
    }
    leave(c);
}

/* The head converted for HTTP/2 (c->h2req); false when it cannot go over HTTP/2 (invalid for
 * it, or a protocol upgrade). */
static bool h2_convert(gw_client_t *c)
{
    c->h2req = gw_malloc(sizeof(*c->h2req));
    c->h2names = gw_malloc(c->hlen ? c->hlen : 1);
    if (gw_h2_request_from_h1(c->head, c->hlen, c->h2names, c->h2req) != GW_OK || c->h2req->upgrade) {
        h2_req_free(c);
        return false;
    }
    return true;
}

/* HTTPS with --upstreamHTTP2: a new stream on a session of the upstream, else wait for the
 * connection being made to it, else make one. A protocol upgrade goes over HTTP/1.1 only. An
 * upstream known to answer in HTTP/1.1 gets its pooled connections as before, the head
 * converted only if a new connection picks h2 after all. */
static int h2_start(gw_client_t *c)
{
    gw_h2_key_t *k = gw_h2_key(c->pool, c->target, c->skip_verify, c->identity);
    gw_h2_session_t *s = gw_h2_key_pick(k);
    if (!s && gw_h2_key_h1_known(k) && !gw_h2_head_upgrade(c->head, c->hlen)) {
        c->h2key = k;
        return h2_connect(c);
    }
    if (!h2_convert(c)) return h1_get(c, c->pool, c->target, c->skip_verify, c->identity, true);
    c->h2key = k;
    if (s && h2_open(c, s)) {
        c->connected = true;
        return GW_OK;
    }
    if (gw_h2_key_should_wait(c->h2key)) {
        c->waiting = true;
        c->waiter.wake = h2_wake;
        gw_h2_key_wait(c->h2key, &c->waiter);
        return GW_AGAIN;
    }
    return h2_connect(c);
}

int gw_client_start(gw_upstream_pool_t *pool, const gw_target_t *target, bool skip_verify,
                    gw_tls_ctx_t *identity, const char *head, size_t hlen, bool has_body, bool head_request,
                    const gw_client_cb_t *cb, void *ud, gw_client_t **out)
{
    gw_client_t *c = gw_freelist_pop(&tl_clients);
    if (c) memset(c, 0, sizeof(*c));
    else c = gw_calloc(1, sizeof(*c));
    c->cb = cb;
    c->ud = ud;
    c->head = head;
    c->hlen = hlen;
    c->head_pending = true;
    c->head_request = head_request;
    gw_buf_init(&c->resp_buf, GW_HTTP_MAX_HEAD + GW_BLOCK_SIZE);
    c->has_body = has_body;
    c->request_done = !has_body;
    *out = c;
    if (target->https && gw_upstream_pool_http2(pool)) {
        c->pool = pool;
        c->target = target;
        c->skip_verify = skip_verify;
        c->identity = identity;
        return h2_start(c);
    }
    return h1_get(c, pool, target, skip_verify, identity, false);
}
