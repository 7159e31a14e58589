/* client.c: the HTTP/1.1 exchange of http/client.h: head held for the first body bytes,
 * response head accumulated across reads (1xx skipped), body framing tracked (length, chunked,
 * close-delimited), reuse decided from both messages. A caller may end the exchange from inside
 * any callback: the client then only marks itself dead and is freed when the outermost
 * callback returns. */
#include "http/client.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
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
};

static void client_free(gw_client_t *c)
{
    gw_buf_free(&c->resp_buf);
    free(c);
}

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

void gw_client_abort(gw_client_t *c)
{
    if (c->dead) return;
    release(c, false);
    c->dead = true;
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
    return c->connected ? flush_head(c) : 0;
}

bool gw_client_write_failed(const gw_client_t *c) { return c->write_failed; }

size_t gw_client_write_queue(const gw_client_t *c) { return c->up ? gw_upconn_write_queue(c->up) : 0; }

void gw_client_pause(gw_client_t *c)
{
    if (c->up) gw_upconn_pause(c->up);
}

void gw_client_resume(gw_client_t *c)
{
    if (c->up) gw_upconn_resume(c->up);
}

void gw_client_decode_chunked(gw_client_t *c) { c->decode = true; }

void gw_client_allow_upgrade(gw_client_t *c) { c->upgrade_ok = true; }

int gw_client_shutdown(gw_client_t *c)
{
    if (!c->up || c->write_failed) return UV_EPIPE;
    int rc = flush_head(c);
    if (rc == 0) rc = gw_upconn_shutdown(c->up);
    if (rc < 0) c->write_failed = true;
    return rc;
}

/* ---------- upstream events ---------- */

static void up_connect(void *ud, int status, const char *reason)
{
    gw_client_t *c = ud;
    c->busy++;
    if (status < 0) {
        c->up = NULL; /* already released by the pool */
        fail(c, GW_CLIENT_ECONNECT, status, reason);
    } else {
        c->connected = true;
        if (!c->has_body) flush_head(c);
        c->cb->on_connect(c->ud);
    }
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

int gw_client_start(gw_upstream_pool_t *pool, const gw_target_t *target, bool skip_verify,
                    gw_tls_ctx_t *identity, const char *head, size_t hlen, bool has_body, bool head_request,
                    const gw_client_cb_t *cb, void *ud, gw_client_t **out)
{
    gw_client_t *c = gw_calloc(1, sizeof(*c));
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
    int rc = gw_upstream_get(pool, target, skip_verify, identity, &up_cb, c, &c->up);
    if (rc == GW_OK) {
        c->connected = true;
        if (!has_body) flush_head(c);
    }
    return rc;
}
