/* tls.c: OpenSSL client sessions over in-memory BIOs, so TLS stacks over any uv stream: the
 * ciphertext read is taken in place from the caller's buffer, the ciphertext written queues in
 * a memory BIO. */
#include "http/tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/alloc.h"
#include "util/common.h"

struct gw_tls_ctx_s {
    SSL_CTX *ctx;
    uint8_t id[32];
};

/* ex_data index on SSL objects pointing at their gw_tls_session_slot_t. */
static int slot_index = -1;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void slot_index_init(void)
{
    slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A server issued a session on this connection: it replaces the slot's older one. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    gw_tls_session_slot_t *slot = slot_index >= 0 ? SSL_get_ex_data(ssl, slot_index) : NULL;
    if (!slot) return 0;
    if (slot->session) SSL_SESSION_free(slot->session);
    slot->session = sess;
    return 1; /* we keep the reference */
}

struct gw_tls_s {
    SSL *ssl;
    BIO *rbio; /* ciphertext in: SSL reads in[0..in_len) */
    BIO *wbio; /* ciphertext out (SSL writes, we read) */
    const char *in; /* ciphertext fed and not yet read: the caller's (gw_tls_feed) or spill */
    size_t in_len;
    bool in_spill;  /* in points into spill */
    char *spill;    /* what SSL left of a feed when the caller was done with it */
    size_t spill_cap;
    bool failed; /* a protocol error happened: its session must not be resumed */
    char err[160];
};

/* ---- the read BIO: SSL takes the fed ciphertext straight from where it is ---- */

static BIO_METHOD *in_method;
static pthread_once_t in_method_once = PTHREAD_ONCE_INIT;

static int in_read(BIO *b, char *out, size_t outl, size_t *readbytes)
{
    gw_tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t->in_len) {
        BIO_set_retry_read(b); /* no more for now: SSL reports WANT_READ */
        *readbytes = 0;
        return 0;
    }
    size_t n = GW_MIN(outl, t->in_len);
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    *readbytes = n;
    return 1;
}

static long in_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    if (cmd == BIO_CTRL_PENDING) return (long)((gw_tls_t *)BIO_get_data(b))->in_len;
    if (cmd == BIO_CTRL_FLUSH) return 1;
    return 0;
}

static int in_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void in_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "appgw ciphertext in");
    if (m && (BIO_meth_set_read_ex(m, in_read) != 1 || BIO_meth_set_ctrl(m, in_ctrl) != 1 ||
              BIO_meth_set_create(m, in_create) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    in_method = m;
}

static const char *skip_to_pem(const char *pem)
{
    const char *b = strstr(pem, "-----BEGIN");
    return b ? b : pem;
}

static int load_identity(SSL_CTX *ctx, const char *crt_pem, const char *key_pem, const char **err)
{
    const char *c = skip_to_pem(crt_pem), *k = skip_to_pem(key_pem);
    BIO *cb = BIO_new_mem_buf(c, (int)strlen(c));
    BIO *kb = BIO_new_mem_buf(k, (int)strlen(k));
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *pk = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int rc = GW_EINVAL;
    if (!x) {
        *err = "invalid client certificate";
    } else if (!pk) {
        *err = "invalid client key";
    } else if (SSL_CTX_use_certificate(ctx, x) != 1) {
        *err = "client certificate rejected";
    } else {
        /* Intermediate certificates following the leaf go into the chain. */
        X509 *extra;
        while ((extra = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
            if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) X509_free(extra);
        if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1)
            *err = "client key does not match certificate";
        else
            rc = GW_OK;
    }
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(pk);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

gw_tls_ctx_t *gw_tls_ctx_new(bool verify, const char *crt_pem, const char *key_pem, const char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *err = "cannot create TLS context";
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    pthread_once(&slot_once, slot_index_init);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            ERR_clear_error();
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (crt_pem && key_pem && load_identity(ctx, crt_pem, key_pem, err) != GW_OK) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    gw_tls_ctx_t *t = gw_calloc(1, sizeof(*t));
    t->ctx = ctx;
    if (crt_pem && key_pem) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char v = verify;
        unsigned int n = 0;
        bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(md, &v, 1) == 1 &&
                  EVP_DigestUpdate(md, crt_pem, strlen(crt_pem) + 1) == 1 &&
                  EVP_DigestUpdate(md, key_pem, strlen(key_pem) + 1) == 1 && EVP_DigestFinal_ex(md, t->id, &n) == 1;
        EVP_MD_CTX_free(md);
        if (!ok) {
            ERR_clear_error();
            *err = "cannot hash the client identity";
            gw_tls_ctx_free(t);
            return NULL;
        }
    }
    return t;
}

const uint8_t *gw_tls_ctx_id(const gw_tls_ctx_t *ctx)
{
    return ctx->id;
}

void gw_tls_ctx_free(gw_tls_ctx_t *ctx)
{
    if (!ctx) return;
    SSL_CTX_free(ctx->ctx);
    free(ctx);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

gw_tls_t *gw_tls_new(gw_tls_ctx_t *ctx, const char *hostname)
{
    gw_tls_t *t = gw_calloc(1, sizeof(*t));
    pthread_once(&in_method_once, in_method_init);
    t->ssl = SSL_new(ctx->ctx);
    t->rbio = in_method ? BIO_new(in_method) : NULL;
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) goto fail;
    BIO_set_data(t->rbio, t);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_connect_state(t->ssl);
    if (is_ip_literal(hostname)) {
        X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set1_ip_asc(p, hostname);
    } else {
        SSL_set_tlsext_host_name(t->ssl, hostname);
        SSL_set1_host(t->ssl, hostname);
    }
    return t;
fail: /* the BIOs are not the SSL's yet */
    SSL_free(t->ssl);
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    ERR_clear_error();
    free(t);
    return NULL;
}

void gw_tls_free(gw_tls_t *t)
{
    if (!t) return;
    /* OpenSSL marks the session of a connection freed without a shutdown as not resumable.
     * Our connections end by close, not by close_notify, so unless TLS itself failed, record
     * a (quiet) shutdown to keep the session for the next connection. */
    if (!t->failed && SSL_is_init_finished(t->ssl)) {
        SSL_set_quiet_shutdown(t->ssl, 1);
        SSL_shutdown(t->ssl);
    }
    SSL_free(t->ssl); /* frees both BIOs */
    free(t->spill);
    free(t);
}

/* Keeps in[0..in_len) plus data[0..len) in spill, and reads from there. */
static void spill_append(gw_tls_t *t, const char *data, size_t len)
{
    size_t keep = t->in_len;
    if (keep + len > t->spill_cap) {
        char *n = gw_malloc(keep + len);
        if (keep) memcpy(n, t->in, keep);
        free(t->spill);
        t->spill = n;
        t->spill_cap = keep + len;
    } else if (keep && t->in != t->spill) {
        memmove(t->spill, t->in, keep);
    }
    if (len) memcpy(t->spill + keep, data, len);
    t->in = t->spill;
    t->in_len = keep + len;
    t->in_spill = true;
}

void gw_tls_release_buffers(gw_tls_t *t)
{
    SSL_free_buffers(t->ssl); /* refuses (and keeps them) while a record is half read or written */
}

void gw_tls_feed(gw_tls_t *t, const char *data, size_t len)
{
    if (t->in_len) {
        spill_append(t, data, len); /* after what is left of the previous feed */
        return;
    }
    t->in = data;
    t->in_len = len;
    t->in_spill = false;
}

void gw_tls_feed_end(gw_tls_t *t)
{
    if (!t->in_len) {
        t->in = NULL;
        t->in_spill = false;
        free(t->spill); /* an idle connection holds no ciphertext */
        t->spill = NULL;
        t->spill_cap = 0;
    } else if (!t->in_spill) {
        spill_append(t, NULL, 0);
    }
}

static int fail(gw_tls_t *t, int r)
{
    unsigned long e = ERR_peek_last_error();
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) {
        snprintf(t->err, sizeof(t->err), "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    } else if (e) {
        char b[120];
        ERR_error_string_n(e, b, sizeof(b));
        snprintf(t->err, sizeof(t->err), "%s", b);
    } else {
        snprintf(t->err, sizeof(t->err), "TLS error %d", SSL_get_error(t->ssl, r));
    }
    ERR_clear_error();
    t->failed = true;
    return GW_EBADMSG;
}

int gw_tls_handshake(gw_tls_t *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return GW_OK;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return GW_AGAIN;
    return fail(t, r);
}

int gw_tls_read(gw_tls_t *t, char *buf, size_t len)
{
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, buf, len, &got);
    if (r == 1) return (int)got;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return GW_ENOENT;
    return fail(t, r);
}

int gw_tls_write(gw_tls_t *t, const char *data, size_t len)
{
    while (len) {
        size_t w = 0;
        int r = SSL_write_ex(t->ssl, data, len, &w);
        if (r != 1) return fail(t, r);
        data += w;
        len -= w;
    }
    return GW_OK;
}

void gw_tls_shutdown(gw_tls_t *t)
{
    /* Queues our close_notify; reading goes on until the peer's (half-close). */
    if (!(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t gw_tls_pending_out(gw_tls_t *t) { return BIO_ctrl_pending(t->wbio); }

size_t gw_tls_take_out(gw_tls_t *t, char *buf, size_t cap)
{
    int r = BIO_read(t->wbio, buf, (int)GW_MIN(cap, (size_t)0x7fffffff));
    return r > 0 ? (size_t)r : 0;
}

void gw_tls_use_session_slot(gw_tls_t *t, gw_tls_session_slot_t *slot)
{
    if (slot_index < 0) return;
    SSL_set_ex_data(t->ssl, slot_index, slot);
    if (slot->session) SSL_set_session(t->ssl, slot->session);
}

void gw_tls_session_slot_clear(gw_tls_session_slot_t *slot)
{
    if (slot->session) SSL_SESSION_free(slot->session);
    slot->session = NULL;
}

void gw_tls_offer_h2(gw_tls_t *t)
{
    static const unsigned char protos[] = "\x02h2\x08http/1.1";
    if (SSL_set_alpn_protos(t->ssl, protos, sizeof(protos) - 1) != 0) ERR_clear_error();
}

bool gw_tls_alpn_h2(gw_tls_t *t)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

bool gw_tls_session_reused(gw_tls_t *t) { return SSL_session_reused(t->ssl) == 1; }

const char *gw_tls_error(gw_tls_t *t) { return t->err[0] ? t->err : "TLS error"; }
