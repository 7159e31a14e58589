/* tls.h: client-side TLS as a transport-agnostic layer (OpenSSL over in-memory BIOs): the caller
 * moves ciphertext between the socket and this layer; no I/O happens here.
 * Not for: server-side TLS (the gateway listens in plain HTTP inside the cluster). */
#ifndef GW_HTTP_TLS_H
#define GW_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_tls_ctx_s gw_tls_ctx_t;
typedef struct gw_tls_s gw_tls_t;

/* A client context: system CA store (honours SSL_CERT_FILE / SSL_CERT_DIR), TLS >= 1.2, peer
 * verification on unless verify is false, optional client certificate/key (PEM text, any text
 * before "-----BEGIN" is ignored). Returns NULL and sets *err (static text) on failure. */
gw_tls_ctx_t *gw_tls_ctx_new(bool verify, const char *crt_pem, const char *key_pem, const char **err);
void gw_tls_ctx_free(gw_tls_ctx_t *ctx);
/* 32 bytes naming the context's client identity and verification setting (SHA-256 of them);
 * all zero for a context without client certificate. Equal ids mean interchangeable contexts,
 * so connections may be pooled by it. */
const uint8_t *gw_tls_ctx_id(const gw_tls_ctx_t *ctx);

/* A session for one connection to hostname (SNI unless an IP literal; hostname or IP SAN
 * verification when the context verifies). NULL on allocation failure inside OpenSSL. */
gw_tls_t *gw_tls_new(gw_tls_ctx_t *ctx, const char *hostname);
void gw_tls_free(gw_tls_t *t);

/* Where the sessions of one upstream (host, port, TLS settings) are kept for resumption: the
 * newest session a server issued. Zeroed memory is an empty slot. Owned by the caller; free
 * with gw_tls_session_slot_clear, and only after every gw_tls_t using it is freed. */
typedef struct {
    void *session; /* SSL_SESSION * */
} gw_tls_session_slot_t;

/* Offers the slot's session for resumption on this (not yet started) connection, and keeps
 * the sessions the server issues on it (TLS 1.3 tickets arrive after the handshake) there. */
void gw_tls_use_session_slot(gw_tls_t *t, gw_tls_session_slot_t *slot);
void gw_tls_session_slot_clear(gw_tls_session_slot_t *slot);
/* True when the handshake resumed a session. */
bool gw_tls_session_reused(gw_tls_t *t);

/* ALPN: offer "h2" then "http/1.1" on this (not yet started) connection. Without it nothing
 * is offered and the server speaks HTTP/1.1. */
void gw_tls_offer_h2(gw_tls_t *t);
/* True when the handshake picked "h2" (only after gw_tls_offer_h2). */
bool gw_tls_alpn_h2(gw_tls_t *t);

/* Hands ciphertext received from the socket to the layer, which reads it in place: data must
 * stay valid and unchanged until gw_tls_feed_end, called once the handshake/read calls that
 * follow are done; what they left unread is then copied (rare: only when the caller stopped
 * reading before the layer wanted more). */
void gw_tls_feed(gw_tls_t *t, const char *data, size_t len);
void gw_tls_feed_end(gw_tls_t *t);

/* Drives the handshake: 0 when done, GW_AGAIN when it needs more ciphertext (check
 * gw_tls_pending_out first: there may be bytes to send), GW_EBADMSG on failure
 * (gw_tls_error tells why: certificate verify failure, handshake alert, ...). */
int gw_tls_handshake(gw_tls_t *t);

/* Reads decrypted bytes: > 0 count, 0 when more ciphertext is needed, GW_ENOENT on a clean
 * close_notify, GW_EBADMSG on error. */
int gw_tls_read(gw_tls_t *t, char *buf, size_t len);

/* Plaintext bytes in one TLS record at most (RFC 8446 5.1): one gw_tls_write up to this size
 * makes one record. */
#define GW_TLS_RECORD_MAX 16384

/* Encrypts all of data into the outgoing ciphertext queue. 0 or GW_EBADMSG. */
int gw_tls_write(gw_tls_t *t, const char *data, size_t len);

/* Outgoing ciphertext waiting to be sent. Takes up to cap bytes into buf; returns count. */
size_t gw_tls_pending_out(gw_tls_t *t);
/* Queues a close_notify (our half-close) in the output; reading may go on. */
void gw_tls_shutdown(gw_tls_t *t);
size_t gw_tls_take_out(gw_tls_t *t, char *buf, size_t cap);

/* OpenSSL's record buffers (about 34 KiB) stay with a session while it is used, so requests
 * on a kept-alive connection allocate none; this gives them back (a connection gone idle).
 * They are allocated again when needed. */
void gw_tls_release_buffers(gw_tls_t *t);

/* Human-readable reason for the last failure (static or owned by t). */
const char *gw_tls_error(gw_tls_t *t);

#endif
