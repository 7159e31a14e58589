/* h2.h: HTTP/2 to HTTPS upstreams. A session is one connection of http/upstream.c whose TLS
 * handshake picked ALPN "h2", driven by nghttp2 through our own I/O (plaintext in through the
 * connection's on_data, out through gw_upconn_write_*); a stream is one exchange of
 * http/client.h on it, reporting through the same gw_client_cb_t callbacks as an HTTP/1.1
 * exchange does. The sessions of one pool key (upstream, TLS settings, client identity) and
 * worker are shared by concurrent exchanges up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS;
 * http/client.c decides which exchange uses what. Not thread-safe: one worker loop. */
#ifndef GW_HTTP_H2_H
#define GW_HTTP_H2_H

#include <stdbool.h>
#include <stddef.h>

#include "http/client.h"
#include "http/h2head.h"
#include "http/upstream.h"

typedef struct gw_h2_key_s gw_h2_key_t;
typedef struct gw_h2_session_s gw_h2_session_t;
typedef struct gw_h2_stream_s gw_h2_stream_t;

/* An exchange waiting for the connection another one is making to its key (it may become a
 * session all can share). wake runs once that attempt ended (the waiter is off the list). */
typedef struct gw_h2_waiter_s {
    struct gw_h2_waiter_s *next;
    void (*wake)(struct gw_h2_waiter_s *w);
} gw_h2_waiter_t;

/* The HTTP/2 state of the connections gw_upstream_get(..., h1_only false) pools for target;
 * made on first use, freed with the pool. */
gw_h2_key_t *gw_h2_key(gw_upstream_pool_t *p, const gw_target_t *target, bool skip_verify, gw_tls_ctx_t *identity);
/* A session that takes another stream now, or NULL. */
gw_h2_session_t *gw_h2_key_pick(gw_h2_key_t *k);
/* A connection to the key is being made and the key is not known to answer in HTTP/1.1:
 * better wait for it (gw_h2_key_wait) than open another. */
bool gw_h2_key_should_wait(const gw_h2_key_t *k);
/* The last connection made to the key's upstream answered in HTTP/1.1. */
bool gw_h2_key_h1_known(const gw_h2_key_t *k);
void gw_h2_key_wait(gw_h2_key_t *k, gw_h2_waiter_t *w);
void gw_h2_key_unwait(gw_h2_key_t *k, gw_h2_waiter_t *w);
/* Wakes every waiter (each wake callback runs once). */
void gw_h2_key_wake(gw_h2_key_t *k);
/* A connection to the key is being made / is over: up is the connected connection, or NULL
 * when it failed or was given up. When up picked "h2" it becomes a new session of the key
 * (returned; up belongs to it from now on): the caller may open its own stream on it at once;
 * the waiters are woken when the peer's SETTINGS arrive (its real stream limit: streams beyond
 * it would be refused), or when the session ends before. Otherwise the key is remembered as
 * HTTP/1.1, and *wake says whether the waiters should be woken now (no attempt is left). */
void gw_h2_key_connect_begin(gw_h2_key_t *k);
gw_h2_session_t *gw_h2_key_connect_end(gw_h2_key_t *k, gw_upconn_t *up, bool *wake);

/* Opens a stream for req (converted head; copied) on s: HEADERS now, the body (has_body) as it
 * is handed to gw_h2_stream_send in its HTTP/1 framing (req->body: length or chunked, decoded
 * here). cb/ud as gw_client_start's, except that on_connect is never called. NULL when s
 * cannot open another stream. */
gw_h2_stream_t *gw_h2_stream_open(gw_h2_session_t *s, const gw_h2_req_t *req, bool has_body, bool head_request,
                                  const gw_client_cb_t *cb, void *ud);
/* Body bytes (own reference taken when kept). 0, or < 0 when nothing more can be sent. */
int gw_h2_stream_send(gw_h2_stream_t *st, gw_block_t *b, size_t off, size_t len);
/* Every body byte was handed over: END_STREAM after them. */
int gw_h2_stream_end(gw_h2_stream_t *st);
bool gw_h2_stream_write_failed(const gw_h2_stream_t *st);
/* Body bytes handed over and not yet framed (the caller's write queue). */
size_t gw_h2_stream_queued(const gw_h2_stream_t *st);
/* Paused, body bytes still arrive (at most the stream's flow-control window) but the window
 * is not reopened until resumed: backpressure towards the upstream. */
void gw_h2_stream_pause(gw_h2_stream_t *st, bool paused);
/* From on_head: deliver the body as bytes instead of presenting it chunked. */
void gw_h2_stream_decode_chunked(gw_h2_stream_t *st);
/* The exchange is over for the caller (done, failed or aborted): no callback follows; a stream
 * still open is reset (CANCEL). May be called from inside a callback. */
void gw_h2_stream_detach(gw_h2_stream_t *st);

#endif
