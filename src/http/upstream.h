/* upstream.h: connections from a worker to external APIs: DNS (off-thread, briefly cached),
 * TCP connect (to the target, or to its egress proxy: target->proxy, then CONNECT for https),
 * optional TLS (stacked over the socket), and a keep-alive pool per
 * (egress proxy, scheme, host, port, TLS settings). Bytes in and out are opaque here; HTTP framing is the
 * caller's (gateway/proxy.c). One pool per worker; nothing here is thread-safe. */
#ifndef GW_HTTP_UPSTREAM_H
#define GW_HTTP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "http/counters.h"
#include "http/tls.h"
#include "registry/snapshot.h"
#include "util/block.h"

typedef struct gw_upstream_pool_s gw_upstream_pool_t;
typedef struct gw_upconn_s gw_upconn_t;

/* Callbacks for the connection's current user; none fires after gw_upconn_release. */
typedef struct {
    /* Connected (TLS handshake done). status < 0 with a reason on failure; the connection is
     * then already released and must not be touched. */
    void (*on_connect)(void *ud, int status, const char *reason);
    /* Plaintext bytes from the upstream; take a reference on b to keep them. */
    void (*on_data)(void *ud, gw_block_t *b, size_t off, size_t len);
    /* The upstream closed (status 0) or failed (< 0). The connection is already released:
     * drop the pointer, do not call gw_upconn_release. */
    void (*on_close)(void *ud, int status);
    /* The write queue fell below the low-water mark after being above it. */
    void (*on_drain)(void *ud);
} gw_upconn_cb_t;

#define GW_UP_HIGH_WATER (256 * 1024)
#define GW_UP_LOW_WATER (64 * 1024)
/* How long an unused connection (or HTTP/2 session) is kept. */
#define GW_UP_IDLE_TIMEOUT_MS (30 * 1000)

/* counters (may be NULL) receive the TLS handshake statistics. */
gw_upstream_pool_t *gw_upstream_pool_new(uv_loop_t *loop, gw_counters_t *counters);
/* Closes idle connections and frees the pool once in-use connections are released. */
void gw_upstream_pool_free(gw_upstream_pool_t *p);
/* --upstreamHTTP2: new TLS connections offer ALPN "h2" (unless asked for HTTP/1.1 only). */
void gw_upstream_pool_set_http2(gw_upstream_pool_t *p, bool on);
bool gw_upstream_pool_http2(const gw_upstream_pool_t *p);
uv_loop_t *gw_upstream_pool_loop(gw_upstream_pool_t *p);

/* A connection to target (TLS when https; verify unless skip_verify), through target->proxy
 * when set: a proxy that cannot be reached or refuses CONNECT fails on_connect with the reason
 * ("proxy refused CONNECT: 407 ..."). identity (may be NULL)
 * is the TLS context presenting a client certificate (CertificateGen, made with the same
 * verification setting); connections are pooled per identity, so one made with a certificate
 * never serves another. h1_only: the connection must speak HTTP/1.1 (a protocol upgrade):
 * no ALPN "h2" offer, and a pool apart from the connections that offered it. Returns 0 with *out ready to use (taken from the pool; no on_connect),
 * GW_AGAIN when a new connection is being made (on_connect follows, never from inside this
 * call). */
int gw_upstream_get(gw_upstream_pool_t *p, const gw_target_t *target, bool skip_verify, gw_tls_ctx_t *identity,
                    bool h1_only, const gw_upconn_cb_t *cb, void *ud, gw_upconn_t **out);

/* The HTTP/2 state (http/h2.c) kept with the connections gw_upstream_get(..., h1_only false)
 * would pool: *slot is NULL until set. dtor runs on it when the pool is freed. */
void **gw_upstream_h2_slot(gw_upstream_pool_t *p, const gw_target_t *target, bool skip_verify,
                           gw_tls_ctx_t *identity, void (*dtor)(void *));

/* The TLS handshake of this connection picked ALPN "h2". */
bool gw_upconn_alpn_h2(const gw_upconn_t *c);
/* Hands a connected connection to another user (its callbacks from now on). */
void gw_upconn_rebind(gw_upconn_t *c, const gw_upconn_cb_t *cb, void *ud);

/* Closes every idle pooled connection to target (both keys of gw_upstream_get): after one of
 * them turned out dead, its siblings (opened to the same server before, e.g., a reload) are
 * likely dead too, so the next connection is a fresh one. */
void gw_upstream_flush_idle(gw_upstream_pool_t *p, const gw_target_t *target, bool skip_verify,
                            gw_tls_ctx_t *identity);

/* Queue bytes for the upstream; _block takes its own reference. 0 or a negative error. After
 * a failed write nothing more is sent, but reading goes on: an answer the upstream gave before
 * closing still arrives through on_data, then on_close reports the end. */
int gw_upconn_write_block(gw_upconn_t *c, gw_block_t *b, size_t off, size_t len);
int gw_upconn_write_copy(gw_upconn_t *c, const void *p, size_t len);
/* head[0..hlen) (copied) followed by b[off..off+len) (own reference), in one writev if
 * possible. */
int gw_upconn_write_head_and_block(gw_upconn_t *c, const char *head, size_t hlen, gw_block_t *b, size_t off,
                                   size_t len);
size_t gw_upconn_write_queue(const gw_upconn_t *c);
/* Half-close: no more bytes go to the upstream (TLS close_notify, then FIN after the queued
 * writes); reading goes on. The connection is never pooled afterwards. */
int gw_upconn_shutdown(gw_upconn_t *c);

/* The socket of a connected plain-TCP connection (no TLS) for splice(2) while reading is
 * paused, or -1. The connection stays ours: it is pooled or closed as usual afterwards. */
int gw_upconn_plain_fd(const gw_upconn_t *c);

/* Stop / resume reading from the upstream (backpressure towards the client). */
void gw_upconn_pause(gw_upconn_t *c);
void gw_upconn_resume(gw_upconn_t *c);

/* The user is done. reusable: the last response was complete and the connection may carry
 * another request; it goes back to the pool. Otherwise it is closed. */
void gw_upconn_release(gw_upconn_t *c, bool reusable);

#endif
