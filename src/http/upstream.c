/* upstream.c: connect (DNS cache, TCP, TLS) and keep-alive pooling for upstream connections.
 * A pooled connection keeps reading while idle so that a close by the server removes it at
 * once instead of failing the next request. */
#include "http/upstream.h"

#include <stdlib.h>
#include <string.h>

#include "http/egress.h"
#include "http/parser.h"
#include "http/tls.h"
#include "http/writeq.h"
#include "util/buf.h"
#include "util/alloc.h"
#include "util/common.h"
#include "util/log.h"

#define POOL_BUCKETS 256
/* Idle connections kept per upstream (and worker): as many as a busy worker has clients in
 * flight, so 1,000 concurrent callers do not churn new connections (they expire after
 * POOL_IDLE_TIMEOUT_MS anyway). */
#define POOL_MAX_IDLE_PER_KEY 1024
#define POOL_IDLE_TIMEOUT_MS GW_UP_IDLE_TIMEOUT_MS
/* A pooled TLS connection idle this long gives its record buffers back (kept until then, so
 * requests following each other allocate none). */
#define POOL_TLS_BUFFERS_IDLE_MS 1000
#define DNS_TTL_MS 5000
#define DNS_MAX_ADDRS 4
#define CONNECT_RESPONSE_MAX (16 * 1024) /* a proxy's answer to CONNECT */

typedef enum {
    UP_RESOLVING,
    UP_CONNECTING,
    UP_PROXY_CONNECT, /* CONNECT sent to the egress proxy, waiting for its answer */
    UP_HANDSHAKE,
    UP_ACTIVE,
    UP_IDLE,
    UP_CLOSING,
} up_state_t;

typedef struct dns_entry_s {
    struct dns_entry_s *next;
    char *host;
    struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    int naddrs;
    uint64_t expires;
} dns_entry_t;

typedef struct pool_key_s {
    struct pool_key_s *next;
    char *hostname;      /* (proxy, https, hostname, port, verify, client identity) identify a pool */
    uint16_t port;
    const gw_proxy_t *proxy; /* egress proxy the connections go through; NULL: direct */
    bool https, verify;
    bool alpn_h2;        /* connections offer ALPN "h2" (--upstreamHTTP2, not HTTP/1.1-only) */
    void *h2;            /* http/h2.c's state for this key (alpn_h2 keys only), or NULL */
    uint8_t ident[32];   /* gw_tls_ctx_id of the client certificate; zero: none */
    gw_upconn_t *idle;   /* LIFO list of idle connections */
    gw_tls_session_slot_t tls_session; /* newest TLS session of this upstream, for resumption */
    size_t nidle;
} pool_key_t;

struct gw_upconn_s {
    uv_tcp_t tcp;
    uv_timer_t idle_timer;
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai;
    gw_upstream_pool_t *pool;
    pool_key_t *pk;
    gw_upconn_t *idle_next;
    up_state_t state;
    bool released;      /* the user let go while we were still resolving/connecting */
    bool reading;
    bool paused;
    bool above_high_water;
    bool tcp_inited;     /* tcp handle is open (needs uv_close) */
    bool write_failed;   /* a write failed: nothing more is sent; reading goes on until close */
    bool retry_closing;  /* tcp is closing to retry the next address */
    bool shut;           /* our write side is shut (gw_upconn_shutdown); never pooled again */
    bool tls_trimmed;    /* idle, and its TLS record buffers given back */
    uv_shutdown_t shutdown_req;
    size_t wpend;                    /* bytes waiting in the worker's write batch */
    int handles_open;
    int pending_status;  /* failure to report from the loop (fail_async) */
    const char *pending_reason;
    gw_tls_t *tls;
    const gw_upconn_cb_t *cb;
    void *ud;
    char *hostname;      /* what is resolved and connected to: the target, or its egress proxy */
    uint16_t port;
    const gw_proxy_t *proxy;
    char *connect_head;  /* the CONNECT request for the proxy (https through a proxy), until sent */
    gw_buf_t connect_resp; /* the proxy's answer to CONNECT, until complete */
    char reason[160];    /* a failure text built here (proxy refusals) */
    struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    int naddrs, addr_idx;
};

struct gw_upstream_pool_s {
    uv_loop_t *loop;
    pool_key_t *buckets[POOL_BUCKETS];
    dns_entry_t *dns;
    gw_tls_ctx_t *tls_verify, *tls_noverify;
    gw_counters_t *counters;
    void (*h2_dtor)(void *);
    bool http2;
    bool freeing;
    size_t live; /* connections not yet freed */
};

static void up_close(gw_upconn_t *c);
static void start_connect(gw_upconn_t *c);
static void start_tls_or_connected(gw_upconn_t *c);

static const uint8_t no_ident[32];

static pool_key_t *pool_key(gw_upstream_pool_t *p, const gw_target_t *t, bool verify, const uint8_t *ident,
                           bool alpn_h2)
{
    uint32_t h = 2166136261u;
    for (const char *c = t->hostname; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    h = (h ^ t->port) * 16777619u;
    h = (h ^ (unsigned)(t->https * 4 + verify * 2 + alpn_h2)) * 16777619u;
    h = (h ^ ident[0]) * 16777619u;
    h %= POOL_BUCKETS;
    for (pool_key_t *k = p->buckets[h]; k; k = k->next)
        if (k->port == t->port && k->https == t->https && k->verify == verify && k->proxy == t->proxy &&
            k->alpn_h2 == alpn_h2 && strcmp(k->hostname, t->hostname) == 0 && memcmp(k->ident, ident, 32) == 0)
            return k;
    pool_key_t *k = gw_calloc(1, sizeof(*k));
    k->hostname = gw_strdup(t->hostname);
    k->port = t->port;
    k->https = t->https;
    k->alpn_h2 = alpn_h2;
    k->verify = verify;
    k->proxy = t->proxy;
    memcpy(k->ident, ident, 32);
    k->next = p->buckets[h];
    p->buckets[h] = k;
    return k;
}

gw_upstream_pool_t *gw_upstream_pool_new(uv_loop_t *loop, gw_counters_t *counters)
{
    gw_upstream_pool_t *p = gw_calloc(1, sizeof(*p));
    p->loop = loop;
    p->counters = counters;
    return p;
}

static void pool_maybe_free(gw_upstream_pool_t *p)
{
    if (!p->freeing || p->live) return;
    for (int i = 0; i < POOL_BUCKETS; i++) {
        while (p->buckets[i]) {
            pool_key_t *k = p->buckets[i];
            p->buckets[i] = k->next;
            gw_tls_session_slot_clear(&k->tls_session);
            free(k->hostname);
            free(k);
        }
    }
    while (p->dns) {
        dns_entry_t *d = p->dns;
        p->dns = d->next;
        free(d->host);
        free(d);
    }
    gw_tls_ctx_free(p->tls_verify);
    gw_tls_ctx_free(p->tls_noverify);
    free(p);
}

void gw_upstream_pool_set_http2(gw_upstream_pool_t *p, bool on) { p->http2 = on; }

bool gw_upstream_pool_http2(const gw_upstream_pool_t *p) { return p->http2; }

uv_loop_t *gw_upstream_pool_loop(gw_upstream_pool_t *p) { return p->loop; }

void gw_upstream_pool_free(gw_upstream_pool_t *p)
{
    p->freeing = true;
    for (int i = 0; i < POOL_BUCKETS; i++)
        for (pool_key_t *k = p->buckets[i]; k; k = k->next) {
            if (k->h2) {
                void *h2 = k->h2;
                k->h2 = NULL;
                p->h2_dtor(h2); /* closes its sessions: their connections are released */
            }
            while (k->idle) {
                gw_upconn_t *c = k->idle;
                k->idle = c->idle_next;
                k->nidle--;
                if (c->pool->counters) GW_COUNT(c->pool->counters, upstream_idle, (uint64_t)-1);
                c->state = UP_ACTIVE;
                up_close(c);
            }
        }
    pool_maybe_free(p);
}

/* ---------- closing ---------- */

static void on_up_handle_closed(uv_handle_t *h)
{
    gw_upconn_t *c = h->data;
    if (--c->handles_open > 0) return;
    gw_upstream_pool_t *p = c->pool;
    gw_tls_free(c->tls);
    free(c->hostname);
    free(c->connect_head);
    gw_buf_free(&c->connect_resp);
    free(c);
    p->live--;
    if (p->counters) GW_COUNT(p->counters, upstream_open, (uint64_t)-1);
    pool_maybe_free(p);
}

static void remove_idle(gw_upconn_t *c)
{
    pool_key_t *k = c->pk;
    for (gw_upconn_t **pp = &k->idle; *pp; pp = &(*pp)->idle_next) {
        if (*pp == c) {
            *pp = c->idle_next;
            k->nidle--;
            if (c->pool->counters) GW_COUNT(c->pool->counters, upstream_idle, (uint64_t)-1);
            break;
        }
    }
    c->idle_next = NULL;
}

static void up_close(gw_upconn_t *c)
{
    if (c->state == UP_CLOSING) return;
    if (c->state == UP_IDLE) remove_idle(c);
    c->state = UP_CLOSING;
    c->cb = NULL;
    if (c->tcp_inited) {
        c->tcp_inited = false;
        gw_stream_flush((uv_stream_t *)&c->tcp, &c->wpend);
        uv_close((uv_handle_t *)&c->tcp, on_up_handle_closed);
    } else if (!c->retry_closing) {
        c->handles_open--; /* no socket was ever opened */
    }
    uv_close((uv_handle_t *)&c->idle_timer, on_up_handle_closed);
}

/* A failure while the user still holds the connection: tell them, once. */
static void fail_user(gw_upconn_t *c, int status, const char *reason)
{
    const gw_upconn_cb_t *cb = c->cb;
    void *ud = c->ud;
    bool connecting = c->state != UP_ACTIVE;
    up_close(c);
    if (!cb || c->released) return;
    if (connecting) cb->on_connect(ud, status, reason);
    else cb->on_close(ud, status);
}

/* ---------- writing ---------- */

static void on_up_write(uv_write_t *w, int status)
{
    gw_upconn_t *c = gw_write_done(w);
    if (c->state == UP_CLOSING) return;
    if (status < 0) {
        /* The peer may have answered before closing (e.g. 413 without reading the body):
         * stop writing, keep reading; the read side reports the close. */
        c->write_failed = true;
        if (c->state != UP_ACTIVE) fail_user(c, status, uv_strerror(status));
        return;
    }
    if (c->above_high_water && c->cb &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < GW_UP_LOW_WATER) {
        c->above_high_water = false;
        if (c->cb->on_drain) c->cb->on_drain(c->ud);
    }
}

/* What a write's result means for the connection: a failure stops its writes, a full queue
 * asks the user to wait for on_drain. Returns rc. */
static int after_write(gw_upconn_t *c, int rc)
{
    if (rc < 0) c->write_failed = true;
    else if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= GW_UP_HIGH_WATER)
        c->above_high_water = true;
    return rc;
}

/* Queues heap[0..hlen) (ours to free) then p[0..len) inside block b (our reference). */
static int raw_writev(gw_upconn_t *c, char *heap, size_t hlen, gw_block_t *b, const char *p, size_t len)
{
    return after_write(c, gw_stream_writev((uv_stream_t *)&c->tcp, &c->wpend, heap, hlen, b, p, len, c, on_up_write));
}

static int raw_write(gw_upconn_t *c, gw_block_t *b, char *heap, const char *p, size_t len)
{
    if (b) return raw_writev(c, NULL, 0, b, p, len);
    return raw_writev(c, heap, len, NULL, NULL, 0);
}

/* Writes p[0..len) (the caller's memory; a short write waits in the write itself). */
static int raw_write_copy(gw_upconn_t *c, const void *p, size_t len)
{
    return after_write(c, gw_stream_write_copy((uv_stream_t *)&c->tcp, &c->wpend, p, len, c, on_up_write));
}

/* Sends whatever ciphertext the TLS layer has produced. */
static int tls_flush(gw_upconn_t *c)
{
    size_t n;
    while ((n = gw_tls_pending_out(c->tls)) > 0) {
        int rc;
        if (n <= GW_WRITE_INLINE) { /* a request head's record: no allocation */
            char small[GW_WRITE_INLINE];
            rc = raw_write_copy(c, small, gw_tls_take_out(c->tls, small, n));
        } else {
            char *heap = gw_malloc(n);
            size_t got = gw_tls_take_out(c->tls, heap, n);
            rc = raw_write(c, NULL, heap, heap, got);
        }
        if (rc < 0) return rc;
    }
    return 0;
}

int gw_upconn_write_block(gw_upconn_t *c, gw_block_t *b, size_t off, size_t len)
{
    if (c->state != UP_ACTIVE || c->write_failed) return UV_EPIPE;
    if (!len) return 0;
    if (c->tls) {
        if (gw_tls_write(c->tls, b->data + off, len) != GW_OK) return UV_EPROTO;
        return tls_flush(c);
    }
    return raw_write(c, gw_block_ref(b), NULL, b->data + off, len);
}

int gw_upconn_write_copy(gw_upconn_t *c, const void *p, size_t len)
{
    if (c->state != UP_ACTIVE || c->write_failed) return UV_EPIPE;
    if (!len) return 0;
    if (c->tls) {
        if (gw_tls_write(c->tls, p, len) != GW_OK) return UV_EPROTO;
        return tls_flush(c);
    }
    return raw_write_copy(c, p, len);
}

int gw_upconn_write_head_and_block(gw_upconn_t *c, const char *head, size_t hlen, gw_block_t *b, size_t off,
                                   size_t len)
{
    if (c->state != UP_ACTIVE || c->write_failed) return UV_EPIPE;
    if (c->tls) {
        /* The head and the body's first bytes share a record (one seal, one header and tag). */
        size_t first = hlen < GW_TLS_RECORD_MAX ? GW_MIN(len, GW_TLS_RECORD_MAX - hlen) : 0;
        int rc = GW_OK;
        if (first) {
            gw_block_t *rec = gw_block_get();
            memcpy(rec->data, head, hlen);
            memcpy(rec->data + hlen, b->data + off, first);
            rc = gw_tls_write(c->tls, rec->data, hlen + first);
            gw_block_unref(rec);
        } else {
            rc = gw_tls_write(c->tls, head, hlen);
        }
        if (rc != GW_OK || gw_tls_write(c->tls, b->data + off + first, len - first) != GW_OK) return UV_EPROTO;
        return tls_flush(c);
    }
    char *copy = gw_malloc(hlen ? hlen : 1);
    memcpy(copy, head, hlen);
    return raw_writev(c, copy, hlen, len ? gw_block_ref(b) : NULL, len ? b->data + off : NULL, len);
}

static void on_up_shutdown(uv_shutdown_t *s, int status)
{
    (void)s;
    (void)status; /* a failure shows up on the read side */
}

int gw_upconn_shutdown(gw_upconn_t *c)
{
    if (c->state != UP_ACTIVE || c->write_failed || c->shut) return UV_EPIPE;
    c->shut = true;
    if (c->tls) {
        gw_tls_shutdown(c->tls);
        if (tls_flush(c) < 0) return UV_EPIPE;
    }
    gw_stream_flush((uv_stream_t *)&c->tcp, &c->wpend);
    return uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_up_shutdown);
}

size_t gw_upconn_write_queue(const gw_upconn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) + c->wpend;
}

/* ---------- reading ---------- */

static void on_up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    gw_block_t *b = gw_block_get();
    buf->base = b->data;
    buf->len = b->cap;
}

static void handshake_step(gw_upconn_t *c);

/* Decrypts everything available and hands it to the user: the records that arrived together
 * fill one block (an SSL read returns one record, up to 16 KiB), so the user sees, and writes
 * on, as large pieces as a plain connection gives. */
static void deliver_tls(gw_upconn_t *c)
{
    while (c->state == UP_ACTIVE && c->cb) {
        gw_block_t *out = gw_block_get();
        size_t used = 0;
        int n;
        while ((n = gw_tls_read(c->tls, out->data + used, out->cap - used)) > 0) {
            used += (size_t)n;
            if (used == out->cap) break;
        }
        if (used) c->cb->on_data(c->ud, out, 0, used);
        gw_block_unref(out);
        if (n > 0) continue; /* the block is full: more may wait */
        if (n == 0) break;
        if (c->state == UP_ACTIVE && c->cb) fail_user(c, n == GW_ENOENT ? 0 : UV_EPROTO, gw_tls_error(c->tls));
        return;
    }
    if (c->state == UP_ACTIVE) tls_flush(c);
}

static void proxy_connect_read(gw_upconn_t *c, const char *p, size_t n);

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gw_upconn_t *c = s->data;
    gw_block_t *b = buf->base ? GW_CONTAINER_OF(buf->base, gw_block_t, data) : NULL;
    if (c->state == UP_CLOSING) {
        if (b) gw_block_unref(b);
        return;
    }
    if (nread < 0) {
        if (b) gw_block_unref(b);
        if (c->state == UP_IDLE) {
            up_close(c);
            return;
        }
        if (c->state == UP_PROXY_CONNECT) {
            snprintf(c->reason, sizeof(c->reason), "proxy %s closed the connection before answering CONNECT: %s",
                     c->proxy->url, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
            fail_user(c, nread == UV_EOF ? UV_ECONNRESET : (int)nread, c->reason);
            return;
        }
        fail_user(c, nread == UV_EOF ? 0 : (int)nread, nread == UV_EOF ? "connection closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) {
        if (b) gw_block_unref(b);
        return;
    }
    if (c->state == UP_IDLE) {
        /* Unsolicited bytes on an idle connection make it unusable, except TLS records that
         * carry no application data (TLS 1.3 session tickets, key updates). */
        bool keep = false;
        if (c->tls) {
            char probe[1];
            gw_tls_feed(c->tls, b->data, (size_t)nread);
            keep = gw_tls_read(c->tls, probe, sizeof(probe)) == 0;
            gw_tls_feed_end(c->tls);
            if (keep) tls_flush(c);
        }
        gw_block_unref(b);
        if (!keep) up_close(c);
        return;
    }
    if (c->state == UP_PROXY_CONNECT) {
        proxy_connect_read(c, b->data, (size_t)nread);
        gw_block_unref(b);
        return;
    }
    if (c->tls) {
        gw_tls_feed(c->tls, b->data, (size_t)nread); /* read in place: b lives until feed_end */
        if (c->state == UP_HANDSHAKE) handshake_step(c);
        else deliver_tls(c);
        gw_tls_feed_end(c->tls);
        gw_block_unref(b);
        return;
    }
    if (c->cb) c->cb->on_data(c->ud, b, 0, (size_t)nread);
    gw_block_unref(b);
}

static void up_read_start(gw_upconn_t *c)
{
    if (c->reading) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_up_alloc, on_up_read) == 0) c->reading = true;
}

static void up_read_stop(gw_upconn_t *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

int gw_upconn_plain_fd(const gw_upconn_t *c)
{
    uv_os_fd_t fd;
    if (c->tls || c->state != UP_ACTIVE || !c->tcp_inited) return -1;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0) return -1;
    return fd;
}

void gw_upconn_pause(gw_upconn_t *c)
{
    c->paused = true;
    if (c->state == UP_ACTIVE) up_read_stop(c);
}

void gw_upconn_resume(gw_upconn_t *c)
{
    c->paused = false;
    if (c->state == UP_ACTIVE) up_read_start(c);
}

/* ---------- connecting ---------- */

static void connected(gw_upconn_t *c)
{
    c->state = UP_ACTIVE;
    if (c->released) {
        up_close(c);
        return;
    }
    if (!c->paused) up_read_start(c);
    c->cb->on_connect(c->ud, 0, NULL);
}

static void handshake_step(gw_upconn_t *c)
{
    int rc = gw_tls_handshake(c->tls);
    if (tls_flush(c) < 0) {
        fail_user(c, UV_EPIPE, "write failed during TLS handshake");
        return;
    }
    if (rc == GW_AGAIN) return;
    if (rc != GW_OK) {
        gw_log(GW_LOG_WARN, "upstream TLS handshake failed", "host", c->hostname, "reason", gw_tls_error(c->tls), NULL);
        fail_user(c, UV_EPROTO, gw_tls_error(c->tls));
        return;
    }
    if (c->pool->counters) {
        GW_COUNT(c->pool->counters, upstream_tls_handshakes, 1);
        if (gw_tls_session_reused(c->tls))
            GW_COUNT(c->pool->counters, upstream_tls_resumed, 1);
    }
    connected(c);
    /* Application data may have arrived together with the end of the handshake. */
    if (c->state == UP_ACTIVE) deliver_tls(c);
}

static void on_retry_closed(uv_handle_t *h)
{
    gw_upconn_t *c = h->data;
    c->retry_closing = false;
    if (c->state == UP_CLOSING) {
        on_up_handle_closed(h);
        return;
    }
    start_connect(c);
}

static void on_tcp_connect(uv_connect_t *req, int status)
{
    gw_upconn_t *c = req->data;
    if (c->state == UP_CLOSING) return;
    if (c->released && status == 0) {
        up_close(c);
        return;
    }
    if (status < 0) {
        if (c->addr_idx + 1 < c->naddrs && !c->released) {
            /* Try the next address: close this socket and start over on a fresh one. */
            c->addr_idx++;
            c->tcp_inited = false;
            c->retry_closing = true;
            uv_close((uv_handle_t *)&c->tcp, on_retry_closed);
            return;
        }
        if (c->proxy) {
            snprintf(c->reason, sizeof(c->reason), "cannot reach proxy %s: %s", c->proxy->url, uv_strerror(status));
            fail_user(c, status, c->reason);
        } else {
            fail_user(c, status, uv_strerror(status));
        }
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->connect_head) {
        /* https through an egress proxy: a tunnel first, then TLS inside it */
        c->state = UP_PROXY_CONNECT;
        gw_buf_init(&c->connect_resp, CONNECT_RESPONSE_MAX);
        int rc = gw_stream_write_copy((uv_stream_t *)&c->tcp, &c->wpend, c->connect_head, strlen(c->connect_head), c, on_up_write);
        free(c->connect_head);
        c->connect_head = NULL;
        if (rc < 0) {
            fail_user(c, rc, uv_strerror(rc));
            return;
        }
        up_read_start(c);
        return;
    }
    start_tls_or_connected(c);
}

/* TCP connected (to the target, or through the proxy's tunnel): TLS handshake or ready. */
static void start_tls_or_connected(gw_upconn_t *c)
{
    if (c->tls) {
        c->state = UP_HANDSHAKE;
        up_read_start(c);
        handshake_step(c);
        return;
    }
    connected(c);
}

/* The proxy's answer to CONNECT: a complete, valid head with a 2xx status opens the tunnel;
 * anything else fails the connection with the proxy's status in the reason. */
static void proxy_connect_read(gw_upconn_t *c, const char *p, size_t n)
{
    if (gw_buf_append(&c->connect_resp, p, n) != GW_OK) {
        snprintf(c->reason, sizeof(c->reason), "proxy %s: CONNECT response head too large", c->proxy->url);
        fail_user(c, UV_EPROTO, c->reason);
        return;
    }
    gw_resp_head_t *h = gw_malloc(sizeof(*h));
    int rc = gw_http_parse_response(c->connect_resp.base, c->connect_resp.len, h);
    if (rc == 0) {
        free(h);
        return;
    }
    if (rc < 0) {
        snprintf(c->reason, sizeof(c->reason), "proxy %s: malformed CONNECT response", c->proxy->url);
    } else if (h->status < 200 || h->status > 299) {
        snprintf(c->reason, sizeof(c->reason), "proxy refused CONNECT: %d %.*s", h->status,
                 (int)GW_MIN(h->reason.n, 64), h->reason.p);
    } else if ((size_t)rc != c->connect_resp.len) {
        /* nothing may come from the target before our TLS ClientHello */
        snprintf(c->reason, sizeof(c->reason), "proxy %s: unexpected bytes after the CONNECT response",
                 c->proxy->url);
    } else {
        free(h);
        gw_buf_free(&c->connect_resp);
        start_tls_or_connected(c);
        return;
    }
    free(h);
    gw_log(GW_LOG_WARN, "egress proxy tunnel failed", "proxy", c->proxy->url, "reason", c->reason, NULL);
    fail_user(c, UV_ECONNREFUSED, c->reason);
}

/* The connection's timer: while pooled, first (TLS) giving the record buffers back, then idle
 * expiry; or a failure to report from the loop. */
static void on_conn_timer(uv_timer_t *t)
{
    gw_upconn_t *c = t->data;
    if (c->state == UP_IDLE) {
        if (c->tls && !c->tls_trimmed) {
            gw_tls_release_buffers(c->tls);
            c->tls_trimmed = true;
            uv_timer_start(t, on_conn_timer, POOL_IDLE_TIMEOUT_MS - POOL_TLS_BUFFERS_IDLE_MS, 0);
            return;
        }
        up_close(c);
        return;
    }
    if (c->pending_status && c->state != UP_CLOSING) {
        if (c->released) up_close(c);
        else fail_user(c, c->pending_status, c->pending_reason);
    }
}

/* Reports a failure from the loop, never from inside the caller's call. */
static void fail_async(gw_upconn_t *c, int status, const char *reason)
{
    c->pending_status = status;
    c->pending_reason = reason;
    uv_timer_start(&c->idle_timer, on_conn_timer, 0, 0);
}

static void start_connect(gw_upconn_t *c)
{
    c->state = UP_CONNECTING;
    uv_tcp_init(c->pool->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_inited = true;
    c->connect_req.data = c;
    struct sockaddr_storage *sa = &c->addrs[c->addr_idx];
    if (sa->ss_family == AF_INET) ((struct sockaddr_in *)sa)->sin_port = htons(c->port);
    else ((struct sockaddr_in6 *)sa)->sin6_port = htons(c->port);
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)sa, on_tcp_connect);
    if (rc < 0) fail_async(c, rc, uv_strerror(rc));
}

static dns_entry_t *dns_lookup(gw_upstream_pool_t *p, const char *host)
{
    uint64_t now = uv_now(p->loop);
    for (dns_entry_t **pp = &p->dns; *pp;) {
        dns_entry_t *d = *pp;
        if (d->expires <= now) {
            *pp = d->next;
            free(d->host);
            free(d);
            continue;
        }
        if (strcmp(d->host, host) == 0) return d;
        pp = &d->next;
    }
    return NULL;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gw_upconn_t *c = req->data;
    gw_upstream_pool_t *p = c->pool;
    if (status < 0 || !res) {
        if (res) uv_freeaddrinfo(res);
        if (c->released) {
            up_close(c);
            return;
        }
        gw_log(GW_LOG_WARN, "upstream DNS lookup failed", "host", c->hostname, "reason", uv_strerror(status), NULL);
        if (c->proxy) {
            snprintf(c->reason, sizeof(c->reason), "cannot resolve proxy %s: %s", c->proxy->url, uv_strerror(status));
            fail_user(c, status < 0 ? status : UV_EAI_NONAME, c->reason);
            return;
        }
        fail_user(c, status < 0 ? status : UV_EAI_NONAME, uv_strerror(status));
        return;
    }
    c->naddrs = 0;
    for (struct addrinfo *ai = res; ai && c->naddrs < DNS_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        memcpy(&c->addrs[c->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
    uv_freeaddrinfo(res);
    if (c->naddrs == 0) {
        fail_user(c, UV_EAI_NONAME, "no usable address");
        return;
    }
    if (!dns_lookup(p, c->hostname)) {
        dns_entry_t *d = gw_calloc(1, sizeof(*d));
        d->host = gw_strdup(c->hostname);
        memcpy(d->addrs, c->addrs, sizeof(d->addrs));
        d->naddrs = c->naddrs;
        d->expires = uv_now(p->loop) + DNS_TTL_MS;
        d->next = p->dns;
        p->dns = d;
    }
    if (c->released) {
        up_close(c);
        return;
    }
    start_connect(c);
}


static gw_tls_ctx_t *tls_ctx(gw_upstream_pool_t *p, bool verify)
{
    gw_tls_ctx_t **slot = verify ? &p->tls_verify : &p->tls_noverify;
    if (!*slot) {
        const char *err = NULL;
        *slot = gw_tls_ctx_new(verify, NULL, NULL, &err);
        if (!*slot) gw_log(GW_LOG_ERROR, "cannot create TLS context", "reason", err, NULL);
    }
    return *slot;
}

void gw_upstream_flush_idle(gw_upstream_pool_t *p, const gw_target_t *t, bool skip_verify, gw_tls_ctx_t *identity)
{
    if (!t->https) identity = NULL;
    for (int h2 = 0; h2 <= (t->https && p->http2); h2++) {
        pool_key_t *k = pool_key(p, t, !skip_verify, identity ? gw_tls_ctx_id(identity) : no_ident, h2);
        while (k->idle) up_close(k->idle); /* up_close takes it off the idle list */
    }
}

void **gw_upstream_h2_slot(gw_upstream_pool_t *p, const gw_target_t *t, bool skip_verify, gw_tls_ctx_t *identity,
                           void (*dtor)(void *))
{
    p->h2_dtor = dtor;
    return &pool_key(p, t, !skip_verify, identity ? gw_tls_ctx_id(identity) : no_ident, true)->h2;
}

bool gw_upconn_alpn_h2(const gw_upconn_t *c) { return c->tls && gw_tls_alpn_h2(c->tls); }

void gw_upconn_rebind(gw_upconn_t *c, const gw_upconn_cb_t *cb, void *ud)
{
    c->cb = cb;
    c->ud = ud;
}

int gw_upstream_get(gw_upstream_pool_t *p, const gw_target_t *t, bool skip_verify, gw_tls_ctx_t *identity,
                    bool h1_only, const gw_upconn_cb_t *cb, void *ud, gw_upconn_t **out)
{
    if (!t->https) identity = NULL;
    bool alpn_h2 = t->https && p->http2 && !h1_only;
    pool_key_t *k = pool_key(p, t, !skip_verify, identity ? gw_tls_ctx_id(identity) : no_ident, alpn_h2);
    if (k->idle) {
        gw_upconn_t *c = k->idle;
        remove_idle(c);
        uv_timer_stop(&c->idle_timer);
        c->state = UP_ACTIVE;
        c->cb = cb;
        c->ud = ud;
        c->released = false;
        c->paused = false;
        c->above_high_water = false;
        up_read_start(c);
        *out = c;
        return GW_OK;
    }
    gw_upconn_t *c = gw_calloc(1, sizeof(*c));
    c->pool = p;
    c->pk = k;
    c->cb = cb;
    c->ud = ud;
    /* Through an egress proxy the proxy is resolved and connected to, never the target. */
    const char *host = t->proxy ? t->proxy->host : t->hostname;
    uint16_t port = t->proxy ? t->proxy->port : t->port;
    c->hostname = gw_strdup(host);
    c->port = port;
    c->proxy = t->proxy;
    if (t->proxy && t->https) {
        bool v6 = strchr(t->hostname, ':') != NULL;
        const char *auth = t->proxy->authorization;
        c->connect_head = gw_asprintf(v6 ? "CONNECT [%s]:%u HTTP/1.1\r\nHost: [%s]:%u\r\n%s%s%s\r\n"
                                         : "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n%s%s%s\r\n",
                                      t->hostname, (unsigned)t->port, t->hostname, (unsigned)t->port,
                                      auth ? "Proxy-Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    }
    c->handles_open = 2; /* timer + tcp (up_close accounts for a tcp never opened) */
    uv_timer_init(p->loop, &c->idle_timer);
    c->idle_timer.data = c;
    p->live++;
    if (p->counters) GW_COUNT(p->counters, upstream_open, 1);
    if (t->https) {
        gw_tls_ctx_t *ctx = identity ? identity : tls_ctx(p, !skip_verify);
        c->tls = ctx ? gw_tls_new(ctx, t->hostname) : NULL;
        if (c->tls) gw_tls_use_session_slot(c->tls, &k->tls_session);
        if (c->tls && alpn_h2) gw_tls_offer_h2(c->tls);
    }
    *out = c;
    /* Resolve (or use the cache / an IP literal), then connect; always asynchronously. */
    c->state = UP_RESOLVING;
    c->gai.data = c;
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    dns_entry_t *d;
    if (uv_ip4_addr(host, port, &s4) == 0) {
        memcpy(&c->addrs[0], &s4, sizeof(s4));
        c->naddrs = 1;
    } else if (uv_ip6_addr(host, port, &s6) == 0) {
        memcpy(&c->addrs[0], &s6, sizeof(s6));
        c->naddrs = 1;
    } else if ((d = dns_lookup(p, host)) != NULL) {
        memcpy(c->addrs, d->addrs, sizeof(c->addrs));
        c->naddrs = d->naddrs;
    }
    if (t->https && !c->tls) {
        fail_async(c, UV_EPROTO, "cannot create TLS session");
        return GW_AGAIN;
    }
    if (c->naddrs > 0) {
        /* Known address: libuv reports the connect result from the loop. */
        start_connect(c);
        return GW_AGAIN;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int rc = uv_getaddrinfo(p->loop, &c->gai, on_resolved, host, NULL, &hints);
    if (rc < 0) {
        gw_log(GW_LOG_WARN, "upstream DNS lookup failed", "host", host, "reason", uv_strerror(rc), NULL);
        fail_async(c, rc, "DNS lookup failed");
    }
    return GW_AGAIN;
}

void gw_upconn_release(gw_upconn_t *c, bool reusable)
{
    c->cb = NULL;
    c->ud = NULL;
    if (c->state == UP_RESOLVING && !c->pending_status) {
        /* A running lookup cannot be cancelled; on_resolved sees `released` and closes. */
        c->released = true;
        uv_cancel((uv_req_t *)&c->gai);
        return;
    }
    if (c->state == UP_RESOLVING) {
        c->released = true;
        up_close(c);
        return;
    }
    if (c->state == UP_CONNECTING || c->state == UP_PROXY_CONNECT || c->state == UP_HANDSHAKE) {
        c->released = true;
        up_close(c);
        return;
    }
    if (c->state != UP_ACTIVE) return;
    gw_upstream_pool_t *p = c->pool;
    pool_key_t *k = c->pk;
    if (!reusable || c->write_failed || c->shut || p->freeing || k->nidle >= POOL_MAX_IDLE_PER_KEY ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0 || c->wpend) {
        up_close(c);
        return;
    }
    c->state = UP_IDLE;
    c->paused = false;
    c->idle_next = k->idle;
    k->idle = c;
    k->nidle++;
    if (p->counters) GW_COUNT(p->counters, upstream_idle, 1);
    up_read_start(c);
    c->tls_trimmed = false;
    uv_timer_start(&c->idle_timer, on_conn_timer, c->tls ? POOL_TLS_BUFFERS_IDLE_MS : POOL_IDLE_TIMEOUT_MS, 0);
}
