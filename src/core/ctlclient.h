/* ctlclient.h: control-plane HTTP requests (OAuth token and CSRF endpoints, later the
 * Kubernetes API) through libcurl's multi interface driven by one libuv loop. The only module
 * that touches libcurl. Not for the request path: workers never call it. Not thread-safe: every
 * call happens on the loop given to gw_ctl_init. */
#ifndef GW_CORE_CTLCLIENT_H
#define GW_CORE_CTLCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

typedef struct {
    const char *method;               /* "GET", "POST" */
    const char *url;                  /* http:// or https:// only */
    const char *const *headers;       /* "Name: value" lines, copied by the call */
    size_t nheaders;
    const char *body;                 /* copied by the call; NULL for none */
    size_t body_len;
    const char *crt_pem, *key_pem;    /* TLS client identity (PEM, copied) or NULL */
    bool verify;                      /* verify the server certificate and host name */
    const char *ca_pem;               /* trust this CA bundle (PEM, copied) instead of the default */
    long timeout_ms;                  /* whole exchange, connect included; <= 0: 10 s */
    long connect_timeout_ms;          /* connect + TLS handshake; <= 0: timeout_ms */
    size_t max_body;                  /* larger responses fail ("response too large") */
    /* Optional. The final response head arrived (status); runs before any body byte. */
    void (*on_head)(void *ud, int status);
    /* Optional streaming: body bytes of a 2xx response go here as they arrive instead of into
     * the buffer (max_body does not apply to them); return non-zero to abort the transfer (the
     * final callback then reports error "aborted by the caller"). Bodies of other statuses are
     * still buffered and handed to the final callback. */
    int (*on_data)(void *ud, const char *p, size_t n);
} gw_ctl_request_t;

typedef struct {
    char *name, *value;
} gw_ctl_header_t;

typedef struct {
    int status;                       /* HTTP status, 0 when no response arrived */
    const char *error;                /* transport failure text (NULL when status != 0) */
    const char *body;                 /* NUL-terminated, body_len bytes */
    size_t body_len;
    const gw_ctl_header_t *headers;   /* headers of the final response, in order */
    size_t nheaders;
} gw_ctl_response_t;

/* The response (or failure); everything it points at is freed when the callback returns. */
typedef void (*gw_ctl_cb)(void *ud, const gw_ctl_response_t *r);

/* Sets up the client on loop (CA file/dir from SSL_CERT_FILE / SSL_CERT_DIR when set, like
 * the upstream TLS layer). 0 or GW_EINVAL. */
int gw_ctl_init(uv_loop_t *loop);
/* Abandons every request in flight (their callbacks never run), closes the loop handles and
 * frees the client. */
void gw_ctl_shutdown(void);

typedef struct xfer_s gw_ctl_xfer_t;

/* Starts a request. Returns 0 (cb runs exactly once, later, never from inside this call) or a
 * negative GW_E* (cb never runs). *out (may be NULL) names the transfer for gw_ctl_cancel; it
 * is valid until cb returns. */
int gw_ctl_fetch(const gw_ctl_request_t *rq, gw_ctl_cb cb, void *ud, gw_ctl_xfer_t **out);
/* Abandons a transfer under way: cb never runs. Not from inside that transfer's callbacks
 * (return non-zero from on_data instead). */
void gw_ctl_cancel(gw_ctl_xfer_t *x);

/* The value of the first header called name (case-insensitive) in r, or NULL. */
const char *gw_ctl_header(const gw_ctl_response_t *r, const char *name);

#endif
