/* h2.c: the HTTP/2 sessions and streams of http/h2.h over nghttp2 (mem_recv / mem_send: the
 * I/O stays http/upstream.c's). Flow control is ours: no automatic WINDOW_UPDATE; the
 * connection window is reopened as bytes arrive, a stream's only once its caller took them
 * (not while paused). The request body goes through a data provider that defers when nothing
 * is queued and is resumed by the next gw_h2_stream_send. Responses are presented as HTTP/1.1
 * would deliver them: a head, then a Content-Length body or canonical chunked framing.
 * Callbacks into the caller come from nghttp2's receive callbacks or the loop, never from
 * inside a caller's own call; a fatal session error found while sending is reported from the
 * loop (the session's timer). What the callers submit is written once per loop iteration (a
 * check handle), so the requests of many clients share TLS records and write calls. */
#include "http/h2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/log.h"

#define H2_STREAM_WINDOW (1024 * 1024)       /* per stream: what a paused caller may receive */
#define H2_CONN_WINDOW (16 * 1024 * 1024)
#define H2_MAX_STREAMS_CAP 256               /* our own cap on streams per session */
#define H2_HEAD_MAX GW_HTTP_MAX_HEAD

struct gw_h2_key_s {
    gw_upstream_pool_t *pool;
    gw_h2_session_t *sessions;
    gw_h2_waiter_t *waiters;
    gw_h2_waiter_t *rewaiters; /* waiting again while the waiters are being woken */
    bool waking;
    int connecting;     /* connections being made that may become sessions, and new sessions
                         * whose peer SETTINGS (its stream limit) have not arrived yet */
    bool h1_known;      /* the last connection made answered in HTTP/1.1 */
};

typedef struct piece_s {
    struct piece_s *next;
    gw_block_t *b;
    size_t off, len;
} piece_t;

struct gw_h2_session_s {
    gw_h2_session_t *next;   /* in key->sessions */
    gw_h2_key_t *key;        /* NULL once off the key */
    gw_upconn_t *up;         /* NULL once released */
    nghttp2_session *ng;
    uv_timer_t timer;        /* idle expiry, or a deferred fatal close */
    uv_check_t check;        /* the flush after this loop iteration's I/O callbacks */
    int handles;             /* timer and check not closed yet */
    gw_h2_stream_t *streams;
    size_t nstreams;
    gw_block_t *in;          /* the block being read by mem_recv */
    int busy;                /* inside nghttp2 */
    bool dead;               /* closed: nothing more is done with it */
    bool fatal;              /* to be closed from the loop (fatal_reason) */
    bool write_failed;
    bool flushing, drains;
    bool pending;            /* new: counted in key->connecting until the peer's SETTINGS */
    bool settings_seen;      /* the peer's SETTINGS arrived */
    uint32_t goaway_sent;    /* error code of the GOAWAY nghttp2 sent (a protocol error), or 0 */
    char fatal_reason[96];
};

struct gw_h2_stream_s {
    gw_h2_stream_t *prev, *next;
    gw_h2_session_t *s;
    int32_t id;
    const gw_client_cb_t *cb; /* NULL once detached */
    void *ud;
    bool head_request;
    bool request_done;       /* every body byte was handed over */
    bool body_end;           /* the chunked request body's last chunk was seen */
    bool deferred;           /* the data provider waits for bytes */
    bool above_high, drain_pending;
    bool head_seen, done, paused, decode, head_bad, proto_err;
    bool closed;             /* nghttp2 is closing it (on_stream_close): nothing more is sent */
    bool remote_end;         /* END_STREAM received (nghttp2 marks it only after the callbacks) */
    gw_body_kind_t req_kind;
    gw_chunked_t req_chunked;
    piece_t *q, *qtail;
    size_t queued;
    size_t held;             /* bytes received while paused, window not reopened yet */
    gw_body_kind_t kind;     /* response body framing presented to the caller */
    int status;
    size_t nh;
    uint32_t hidx[GW_HTTP_MAX_HEADERS][4]; /* name offset, length, value offset, length in hbuf */
    gw_buf_t hbuf;
};

static void flush(gw_h2_session_t *s, bool top);
static void flush_later(gw_h2_session_t *s);
static void session_close(gw_h2_session_t *s, int status, const char *reason);

/* ---------- streams ---------- */

static void pieces_free(gw_h2_stream_t *st)
{
    while (st->q) {
        piece_t *p = st->q;
        st->q = p->next;
        gw_block_unref(p->b);
        free(p);
    }
    st->qtail = NULL;
    st->queued = 0;
}

static void on_session_timer(uv_timer_t *t);

static void stream_free(gw_h2_stream_t *st)
{
    gw_h2_session_t *s = st->s;
    if (st->prev) st->prev->next = st->next;
    else s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    pieces_free(st);
    gw_buf_free(&st->hbuf);
    free(st);
    s->nstreams--;
    if (s->nstreams == 0 && !s->dead && !s->fatal) {
        bool gone = nghttp2_session_check_request_allowed(s->ng) == 0;
        uv_timer_start(&s->timer, on_session_timer, gone ? 0 : GW_UP_IDLE_TIMEOUT_MS, 0);
    }
}

void gw_h2_stream_detach(gw_h2_stream_t *st)
{
    if (!st->cb) return;
    st->cb = NULL;
    st->ud = NULL;
    pieces_free(st);
    gw_h2_session_t *s = st->s;
    st->held = 0;
    if (s->dead || st->closed) return;
    /* a stream whose both halves are done closes by itself: no reset for it */
    if (nghttp2_session_find_stream(s->ng, st->id) &&
        !(nghttp2_session_get_stream_local_close(s->ng, st->id) == 1 &&
          (st->remote_end || nghttp2_session_get_stream_remote_close(s->ng, st->id) == 1)))
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    flush_later(s);
}

static void stream_error(gw_h2_stream_t *st, gw_client_err_t err, const char *reason)
{
    if (!st->cb) return;
    st->cb->on_error(st->ud, err, 0, reason); /* the caller detaches */
    if (st->cb) gw_h2_stream_detach(st);
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)ng;
    (void)id;
    gw_h2_stream_t *st = src->ptr;
    gw_h2_session_t *s = ud;
    size_t n = 0;
    while (n < length && st->q) {
        piece_t *p = st->q;
        size_t take = GW_MIN(length - n, p->len);
        memcpy(buf + n, p->b->data + p->off, take);
        n += take;
        p->off += take;
        p->len -= take;
        if (p->len == 0) {
            st->q = p->next;
            if (!st->q) st->qtail = NULL;
            gw_block_unref(p->b);
            free(p);
        }
    }
    st->queued -= n;
    if (st->above_high && st->queued < GW_UP_LOW_WATER) {
        st->above_high = false;
        st->drain_pending = true;
        s->drains = true;
    }
    if (!st->q && (st->request_done || st->body_end || !st->cb)) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void resume(gw_h2_stream_t *st)
{
    if (!st->deferred || st->s->dead) return;
    st->deferred = false;
    nghttp2_session_resume_data(st->s->ng, st->id);
}

int gw_h2_stream_send(gw_h2_stream_t *st, gw_block_t *b, size_t off, size_t len)
{
    gw_h2_session_t *s = st->s;
    if (gw_h2_stream_write_failed(st) || st->request_done) return UV_EPIPE;
    if (!len) return 0;
    gw_block_t *keep;
    size_t koff = 0, klen = 0;
    if (st->req_kind == GW_BODY_CHUNKED) {
        if (st->body_end) return 0; /* nothing follows the last chunk */
        keep = len <= GW_BLOCK_SIZE ? gw_block_get() : gw_block_alloc(len);
        size_t used = 0;
        int rc = gw_chunked_feed(&st->req_chunked, b->data + off, len, &used, keep->data, &klen);
        if (rc < 0) {
            gw_block_unref(keep);
            return UV_EINVAL;
        }
        if (rc == 1) st->body_end = true;
    } else {
        keep = gw_block_ref(b);
        koff = off;
        klen = len;
    }
    if (klen) {
        piece_t *p = gw_malloc(sizeof(*p));
        *p = (piece_t){NULL, keep, koff, klen};
        if (st->qtail) st->qtail->next = p;
        else st->q = p;
        st->qtail = p;
        st->queued += klen;
        if (st->queued >= GW_UP_HIGH_WATER) st->above_high = true;
    } else {
        gw_block_unref(keep);
    }
    resume(st);
    flush_later(s);
    return 0;
}

int gw_h2_stream_end(gw_h2_stream_t *st)
{
    if (gw_h2_stream_write_failed(st)) return UV_EPIPE;
    st->request_done = true;
    resume(st);
    flush_later(st->s);
    return 0;
}

bool gw_h2_stream_write_failed(const gw_h2_stream_t *st)
{
    return st->s->dead || st->s->fatal || st->s->write_failed || !st->cb;
}

size_t gw_h2_stream_queued(const gw_h2_stream_t *st) { return st->queued; }

void gw_h2_stream_pause(gw_h2_stream_t *st, bool paused)
{
    st->paused = paused;
    if (paused || !st->held || st->s->dead) return;
    nghttp2_session_consume_stream(st->s->ng, st->id, st->held);
    st->held = 0;
    flush_later(st->s);
}

void gw_h2_stream_decode_chunked(gw_h2_stream_t *st) { st->decode = true; }

gw_h2_stream_t *gw_h2_stream_open(gw_h2_session_t *s, const gw_h2_req_t *req, bool has_body, bool head_request,
                                  const gw_client_cb_t *cb, void *ud)
{
    nghttp2_nv nva[GW_H2_MAX_FIELDS];
    for (size_t i = 0; i < req->nfields; i++) {
        nva[i] = (nghttp2_nv){(uint8_t *)(uintptr_t)req->fields[i].name.p, (uint8_t *)(uintptr_t)req->fields[i].value.p,
                              req->fields[i].name.n, req->fields[i].value.n, NGHTTP2_NV_FLAG_NONE};
    }
    gw_h2_stream_t *st = gw_calloc(1, sizeof(*st));
    st->s = s;
    st->cb = cb;
    st->ud = ud;
    st->head_request = head_request;
    st->req_kind = has_body ? req->body : GW_BODY_NONE;
    gw_buf_init(&st->hbuf, H2_HEAD_MAX);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    st->id = nghttp2_submit_request(s->ng, NULL, nva, req->nfields, has_body ? &prd : NULL, st);
    if (st->id < 0) {
        gw_buf_free(&st->hbuf);
        free(st);
        return NULL;
    }
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    if (!s->fatal) uv_timer_stop(&s->timer);
    flush_later(s);
    return st;
}

/* ---------- receiving ---------- */

static gw_h2_stream_t *stream_of(nghttp2_session *ng, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(ng, id) : NULL;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    gw_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
    if (st && !st->head_seen) {
        st->nh = 0;
        st->status = 0;
        gw_buf_reset(&st->hbuf);
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    gw_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
    if (!st || !st->cb || st->head_seen) return 0; /* trailers are dropped, as HTTP/1.1 framing does */
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        st->status = 0;
        for (size_t i = 0; i < vlen && i < 3; i++) st->status = st->status * 10 + (value[i] - '0');
        return 0;
    }
    if (nlen && name[0] == ':') return 0;
    size_t at = st->hbuf.len;
    if (st->nh == GW_HTTP_MAX_HEADERS || gw_buf_append(&st->hbuf, name, nlen) != GW_OK ||
        gw_buf_append(&st->hbuf, value, vlen) != GW_OK) {
        st->head_bad = true;
        return 0;
    }
    /* HTTP/2 names are lower case; HTTP/1.1 clients get them as Go's transport hands them to
     * its ReverseProxy (CanonicalMIMEHeaderKey: "content-type" -> "Content-Type"). */
    char *n = st->hbuf.base + at;
    for (size_t i = 0; i < nlen; i++)
        if ((i == 0 || n[i - 1] == '-') && n[i] >= 'a' && n[i] <= 'z') n[i] = (char)(n[i] - 32);
    st->hidx[st->nh][0] = (uint32_t)at;
    st->hidx[st->nh][1] = (uint32_t)nlen;
    st->hidx[st->nh][2] = (uint32_t)(at + nlen);
    st->hidx[st->nh][3] = (uint32_t)vlen;
    st->nh++;
    return 0;
}

static int on_invalid_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                             const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)name, (void)nlen, (void)value, (void)vlen, (void)flags, (void)ud;
    gw_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
    if (st) st->proto_err = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    (void)err, (void)ud;
    gw_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
    if (st) st->proto_err = true;
    return 0;
}

/* The final response head arrived on st: framing decided, handed to the caller. */
static void deliver_head(gw_h2_stream_t *st, bool end_stream)
{
    st->head_seen = true;
    if (st->head_bad || st->status < 200 || st->status > 999) {
        stream_error(st, GW_CLIENT_EMALFORMED, st->head_bad ? "response head too large" : "invalid :status");
        return;
    }
    gw_resp_head_t *h = gw_malloc(sizeof(*h));
    h->minor_version = 1;
    h->status = st->status;
    h->reason = (gw_str_t){"", 0};
    h->nheaders = 0;
    const char *base = st->hbuf.base;
    const gw_header_t *cl = NULL;
    for (size_t i = 0; i < st->nh; i++) {
        gw_header_t *x = &h->headers[h->nheaders++];
        x->name = (gw_str_t){base + st->hidx[i][0], st->hidx[i][1]};
        x->value = (gw_str_t){base + st->hidx[i][2], st->hidx[i][3]};
        if (!cl && GW_STR_IEQ_LIT(x->name, "content-length")) cl = x;
    }
    uint64_t len = 0;
    if (st->head_request || st->status == 204 || st->status == 304) {
        st->kind = GW_BODY_NONE;
    } else if (cl) {
        st->kind = GW_BODY_LENGTH;
        if (gw_http_parse_content_length(cl->value, &len) != GW_OK) {
            free(h);
            stream_error(st, GW_CLIENT_EMALFORMED, "invalid content-length");
            return;
        }
    } else if (end_stream) {
        /* no body at all: say so the HTTP/1.1 way */
        st->kind = GW_BODY_LENGTH;
        if (h->nheaders < GW_HTTP_MAX_HEADERS)
            h->headers[h->nheaders++] = (gw_header_t){{"Content-Length", 14}, {"0", 1}};
    } else {
        st->kind = GW_BODY_CHUNKED;
    }
    int r = st->cb->on_head(st->ud, h, st->kind, len);
    free(h);
    if (st->cb && r != GW_OK) gw_h2_stream_detach(st);
}

/* END_STREAM from the upstream: the response is complete. */
static void finish(gw_h2_stream_t *st)
{
    if (!st->cb || st->done || !st->head_seen) return;
    st->done = true;
    if (st->kind == GW_BODY_CHUNKED && !st->decode) {
        gw_block_t *b = gw_block_get();
        memcpy(b->data, "0\r\n\r\n", 5);
        st->cb->on_body(st->ud, b, 0, 5, true);
        gw_block_unref(b);
    } else {
        st->cb->on_body(st->ud, NULL, 0, 0, true);
    }
    if (st->cb) gw_h2_stream_detach(st); /* the caller detaches; in case it did not */
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    gw_h2_session_t *s = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) s->settings_seen = true;
    gw_h2_stream_t *st = stream_of(ng, f->hd.stream_id);
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (st && end && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) st->remote_end = true;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (!st || !st->cb) break;
        if (!st->head_seen) {
            if (st->status >= 100 && st->status < 200 && !end) break; /* interim: wait for the final one */
            deliver_head(st, end);
        }
        if (end && st->cb) finish(st);
        break;
    case NGHTTP2_DATA:
        if (st && end) finish(st);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    gw_h2_session_t *s = ud;
    nghttp2_session_consume_connection(ng, len);
    gw_h2_stream_t *st = stream_of(ng, id);
    if (!st || !st->cb || !st->head_seen || st->done || st->kind == GW_BODY_NONE) {
        nghttp2_session_consume_stream(ng, id, len);
        return 0;
    }
    gw_block_t *b;
    size_t off = 0, n = len;
    if (st->kind == GW_BODY_CHUNKED && !st->decode) {
        b = len + 32 <= GW_BLOCK_SIZE ? gw_block_get() : gw_block_alloc(len + 32);
        off = (size_t)snprintf(b->data, 32, "%zx\r\n", len);
        memcpy(b->data + off, data, len);
        memcpy(b->data + off + len, "\r\n", 2);
        n = off + len + 2;
        off = 0;
    } else if (s->in && (const char *)data >= s->in->data && (const char *)data + len <= s->in->data + s->in->cap) {
        b = gw_block_ref(s->in); /* the bytes are in the block being read: no copy */
        off = (size_t)((const char *)data - s->in->data);
    } else {
        b = len <= GW_BLOCK_SIZE ? gw_block_get() : gw_block_alloc(len);
        memcpy(b->data, data, len);
    }
    st->cb->on_body(st->ud, b, off, n, false);
    gw_block_unref(b);
    if (st->cb && st->paused) st->held += len;
    else nghttp2_session_consume_stream(ng, id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ud;
    gw_h2_stream_t *st = stream_of(ng, id);
    if (!st) return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    st->closed = true;
    if (st->cb) {
        char reason[96];
        gw_client_err_t err;
        if (st->head_seen) {
            err = GW_CLIENT_EBODY;
        } else if (code == NGHTTP2_REFUSED_STREAM) {
            err = GW_CLIENT_ECLOSED; /* never processed: may be sent again */
        } else if (st->proto_err) {
            err = GW_CLIENT_EMALFORMED;
        } else {
            err = GW_CLIENT_ELOST;
        }
        snprintf(reason, sizeof(reason), "HTTP/2 stream %s (%s)",
                 st->proto_err ? "protocol error" : code == NGHTTP2_REFUSED_STREAM ? "refused" : "reset",
                 nghttp2_http2_strerror(code));
        stream_error(st, err, reason);
    }
    stream_free(st);
    return 0;
}

/* ---------- the connection ---------- */

static void session_free_cb(uv_handle_t *h)
{
    gw_h2_session_t *s = h->data;
    if (--s->handles == 0) free(s);
}

/* The peer's SETTINGS arrived (its stream limit is known), or the session ended before: the
 * requests waiting for it may open their streams now, or make connections of their own. */
static void settle(gw_h2_session_t *s)
{
    if (!s->pending) return;
    s->pending = false;
    if (!s->key) return;
    s->key->connecting--;
    gw_h2_key_wake(s->key);
}

/* Takes the session off its key: no new streams (a session still waiting for the peer's
 * SETTINGS lets its waiters go first). */
static void key_remove(gw_h2_session_t *s)
{
    settle(s);
    if (!s->key) return;
    for (gw_h2_session_t **pp = &s->key->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    s->key = NULL;
}

/* Ends the session: every stream still attached fails (ECLOSED before its head, EBODY after),
 * the connection is closed. Only from the loop (never inside nghttp2 or a caller's call). */
static void session_close(gw_h2_session_t *s, int status, const char *reason)
{
    if (s->dead) return;
    s->dead = true;
    key_remove(s);
    for (gw_h2_stream_t *st = s->streams; st; st = st->next) {
        if (!st->cb) continue;
        gw_client_err_t err = st->head_seen ? GW_CLIENT_EBODY : s->fatal ? GW_CLIENT_EMALFORMED : GW_CLIENT_ECLOSED;
        const gw_client_cb_t *cb = st->cb;
        void *ud = st->ud;
        st->cb = NULL;
        cb->on_error(ud, err, status, reason);
    }
    while (s->streams) {
        gw_h2_stream_t *st = s->streams;
        s->streams = st->next;
        pieces_free(st);
        gw_buf_free(&st->hbuf);
        free(st);
    }
    s->nstreams = 0;
    if (s->up) {
        gw_upconn_release(s->up, false);
        s->up = NULL;
    }
    nghttp2_session_del(s->ng);
    s->ng = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, session_free_cb);
    uv_close((uv_handle_t *)&s->check, session_free_cb);
}

static void on_session_timer(uv_timer_t *t)
{
    gw_h2_session_t *s = t->data;
    if (s->dead) return;
    if (s->fatal) session_close(s, UV_EPROTO, s->fatal_reason);
    else if (s->nstreams == 0) session_close(s, 0, "idle");
}

/* Closes the session from the loop, not from the call that found the error. */
static void session_fail_later(gw_h2_session_t *s, const char *what, int rc)
{
    if (s->fatal || s->dead) return;
    s->fatal = true; /* no longer picked; off the key (waiters woken) when closed */
    snprintf(s->fatal_reason, sizeof(s->fatal_reason), "%s%s", what, rc ? nghttp2_strerror(rc) : "");
    uv_timer_start(&s->timer, on_session_timer, 0, 0);
}

/* Writes what nghttp2 has to send, while the connection's queue is below its high-water mark
 * (the rest waits for its on_drain). top: called from a loop event, so the callers whose
 * queued body bytes drained may hear of it now. */
static void flush(gw_h2_session_t *s, bool top)
{
    if (s->dead || s->fatal || s->busy || s->flushing || !s->up) return;
    s->flushing = true;
    s->busy++;
    char out[32 * 1024];
    size_t olen = 0;
    int rc = 0;
    while (!s->write_failed && gw_upconn_write_queue(s->up) < GW_UP_HIGH_WATER) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(s->ng, &d);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) break;
        if (olen + (size_t)n > sizeof(out)) {
            if (gw_upconn_write_copy(s->up, out, olen) < 0) s->write_failed = true;
            olen = 0;
        }
        if ((size_t)n > sizeof(out)) {
            if (gw_upconn_write_copy(s->up, d, (size_t)n) < 0) s->write_failed = true;
        } else {
            memcpy(out + olen, d, (size_t)n);
            olen += (size_t)n;
        }
        if (olen && gw_upconn_write_queue(s->up) >= GW_UP_HIGH_WATER) break;
    }
    if (olen && !s->write_failed && gw_upconn_write_copy(s->up, out, olen) < 0) s->write_failed = true;
    s->busy--;
    s->flushing = false;
    if (rc < 0) {
        session_fail_later(s, "HTTP/2 send failed: ", rc);
        return;
    }
    if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) {
        if (s->goaway_sent) {
            char what[64];
            snprintf(what, sizeof(what), "HTTP/2 protocol error (%s)", nghttp2_http2_strerror(s->goaway_sent));
            session_fail_later(s, what, 0);
        } else {
            session_fail_later(s, "HTTP/2 session ended", 0);
        }
        return;
    }
    if (!top || !s->drains) return;
    s->drains = false;
    for (gw_h2_stream_t *st = s->streams; st && !s->dead; st = st->next) {
        if (!st->drain_pending) continue;
        st->drain_pending = false;
        if (st->cb && st->cb->on_drain) st->cb->on_drain(st->ud);
    }
}

static void on_check(uv_check_t *h)
{
    gw_h2_session_t *s = h->data;
    uv_check_stop(h);
    flush(s, true);
}

/* What callers submitted goes out once this loop iteration's I/O callbacks are done. */
static void flush_later(gw_h2_session_t *s)
{
    if (!s->dead && !uv_is_active((uv_handle_t *)&s->check)) uv_check_start(&s->check, on_check);
}

/* nghttp2 ends the session by itself (GOAWAY with an error code) when the peer broke the
 * protocol: remembered for the reason the streams fail with. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    gw_h2_session_t *s = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code) s->goaway_sent = f->goaway.error_code;
    return 0;
}

static void up_connect_unused(void *ud, int status, const char *reason) { (void)ud, (void)status, (void)reason; }

static void up_data(void *ud, gw_block_t *b, size_t off, size_t len)
{
    gw_h2_session_t *s = ud;
    if (s->dead || s->fatal) return;
    s->busy++;
    s->in = b;
    ssize_t n = nghttp2_session_mem_recv(s->ng, (const uint8_t *)b->data + off, len);
    s->in = NULL;
    s->busy--;
    if (s->dead) return;
    if (n < 0) {
        gw_log(GW_LOG_WARN, "HTTP/2 protocol error from upstream", "reason", nghttp2_strerror((int)n), NULL);
        s->fatal = true; /* attached streams fail as malformed */
        snprintf(s->fatal_reason, sizeof(s->fatal_reason), "HTTP/2 protocol error: %s", nghttp2_strerror((int)n));
        session_close(s, UV_EPROTO, s->fatal_reason);
        return;
    }
    if (s->settings_seen) settle(s);
    if (!nghttp2_session_check_request_allowed(s->ng)) key_remove(s); /* GOAWAY: no new streams */
    flush(s, true);
}

static void up_close(void *ud, int status)
{
    gw_h2_session_t *s = ud;
    s->up = NULL; /* released by the pool */
    session_close(s, status, status ? uv_strerror(status) : "upstream closed the HTTP/2 connection");
}

static void up_drain(void *ud) { flush(ud, true); }

static const gw_upconn_cb_t session_up_cb = {up_connect_unused, up_data, up_close, up_drain};

static gw_h2_session_t *session_new(gw_h2_key_t *k, gw_upconn_t *up)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_invalid_header_callback(cbs, on_invalid_header);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    gw_h2_session_t *s = gw_calloc(1, sizeof(*s));
    int rc = nghttp2_session_client_new2(&s->ng, cbs, s, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rc != 0) {
        free(s);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
    };
    nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, GW_ARRAY_SIZE(iv));
    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    uv_timer_init(gw_upstream_pool_loop(k->pool), &s->timer);
    uv_check_init(gw_upstream_pool_loop(k->pool), &s->check);
    s->timer.data = s;
    s->check.data = s;
    s->handles = 2;
    s->up = up;
    gw_upconn_rebind(up, &session_up_cb, s);
    s->key = k;
    s->next = k->sessions;
    k->sessions = s;
    return s;
}

/* ---------- keys ---------- */

static void key_dtor(void *p)
{
    gw_h2_key_t *k = p;
    while (k->sessions) session_close(k->sessions, 0, "shutting down");
    free(k);
}

gw_h2_key_t *gw_h2_key(gw_upstream_pool_t *p, const gw_target_t *t, bool skip_verify, gw_tls_ctx_t *identity)
{
    void **slot = gw_upstream_h2_slot(p, t, skip_verify, identity, key_dtor);
    if (!*slot) {
        gw_h2_key_t *k = gw_calloc(1, sizeof(*k));
        k->pool = p;
        *slot = k;
    }
    return *slot;
}

gw_h2_session_t *gw_h2_key_pick(gw_h2_key_t *k)
{
    for (gw_h2_session_t *s = k->sessions; s; s = s->next) {
        if (s->dead || s->fatal || s->pending || s->write_failed || !nghttp2_session_check_request_allowed(s->ng))
            continue;
        uint32_t max = nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (max > H2_MAX_STREAMS_CAP) max = H2_MAX_STREAMS_CAP;
        if (s->nstreams < max) return s;
    }
    return NULL;
}

bool gw_h2_key_should_wait(const gw_h2_key_t *k) { return k->connecting > 0 && !k->h1_known; }

bool gw_h2_key_h1_known(const gw_h2_key_t *k) { return k->h1_known; }

void gw_h2_key_wait(gw_h2_key_t *k, gw_h2_waiter_t *w)
{
    gw_h2_waiter_t **list = k->waking ? &k->rewaiters : &k->waiters; /* the next round's */
    w->next = *list;
    *list = w;
}

void gw_h2_key_unwait(gw_h2_key_t *k, gw_h2_waiter_t *w)
{
    for (int i = 0; i < 2; i++)
        for (gw_h2_waiter_t **pp = i ? &k->rewaiters : &k->waiters; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                return;
            }
}

void gw_h2_key_wake(gw_h2_key_t *k)
{
    if (k->waking) return; /* the running round sees what changed */
    k->waking = true;
    while (k->waiters) {
        gw_h2_waiter_t *w = k->waiters;
        k->waiters = w->next;
        w->next = NULL;
        w->wake(w); /* a stream, a connection of its own, or waiting again (next round) */
    }
    k->waking = false;
    k->waiters = k->rewaiters;
    k->rewaiters = NULL;
}

void gw_h2_key_connect_begin(gw_h2_key_t *k) { k->connecting++; }

gw_h2_session_t *gw_h2_key_connect_end(gw_h2_key_t *k, gw_upconn_t *up, bool *wake)
{
    gw_h2_session_t *s = NULL;
    if (up && gw_upconn_alpn_h2(up)) {
        s = session_new(k, up);
        k->h1_known = false;
    } else if (up) {
        k->h1_known = true;
    }
    if (s) {
        s->pending = true; /* still counted: waiters wait for its SETTINGS (settle) */
    } else {
        k->connecting--;
    }
    *wake = !s && k->connecting == 0;
    return s;
}
