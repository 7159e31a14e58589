/* test_tls.c: http/tls.c against an in-process OpenSSL server over memory: handshake and data
 * with the ciphertext fed in any split (one byte, odd sizes, records across feeds), partial
 * reads, what is left unread kept past the caller's buffer, close_notify, large writes, and
 * garbage rejected. Observed as the plaintext each side gets. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http/tls.h"
#include "test.h"
#include "util/common.h"

typedef struct {
    char *p;
    size_t n, cap;
} bytes_t;

static void append(bytes_t *b, const char *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static SSL_CTX *srv_ctx;
static gw_tls_ctx_t *cli_ctx;
static SSL *srv;
static BIO *s_in, *s_out; /* the server's ciphertext in and out */
static gw_tls_t *cli;

static void make_server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    CHECK(key && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    srv_ctx = SSL_CTX_new(TLS_server_method());
    CHECK(SSL_CTX_use_certificate(srv_ctx, x) == 1);
    CHECK(SSL_CTX_use_PrivateKey(srv_ctx, key) == 1);
    X509_free(x);
    EVP_PKEY_free(key);
    const char *err = NULL;
    cli_ctx = gw_tls_ctx_new(false, NULL, NULL, &err);
    CHECK(cli_ctx != NULL);
}

/* All the client's pending ciphertext goes to the server. */
static void c2s(void)
{
    char buf[16384];
    size_t n;
    while ((n = gw_tls_take_out(cli, buf, sizeof(buf))) > 0) CHECK(BIO_write(s_in, buf, (int)n) == (int)n);
}

/* All the server's pending ciphertext, in a buffer of its own. */
static bytes_t server_out(void)
{
    bytes_t b = {0};
    char buf[16384];
    int n;
    while ((n = BIO_read(s_out, buf, sizeof(buf))) > 0) append(&b, buf, (size_t)n);
    return b;
}

/* Feeds ct to the client chunk bytes at a time (each in a fresh buffer, scribbled over and
 * freed after gw_tls_feed_end), reading with a buffer of rdsize after each feed. Returns the
 * last gw_tls_read result (0: wants more, < 0: close or error). */
static int client_consume(const bytes_t *ct, size_t chunk, size_t rdsize, bytes_t *pt)
{
    int r = 0;
    char *rb = malloc(rdsize);
    for (size_t off = 0; off < ct->n; off += chunk) {
        size_t n = GW_MIN(chunk, ct->n - off);
        char *feed = malloc(n);
        memcpy(feed, ct->p + off, n);
        gw_tls_feed(cli, feed, n);
        while ((r = gw_tls_read(cli, rb, rdsize)) > 0) append(pt, rb, (size_t)r);
        gw_tls_feed_end(cli);
        memset(feed, 0xAA, n);
        free(feed);
        if (r < 0) break;
    }
    free(rb);
    return r;
}

/* A fresh client/server pair, handshake done with the server's flights fed chunk bytes at a time. */
static void connect_pair(size_t chunk)
{
    srv = SSL_new(srv_ctx);
    s_in = BIO_new(BIO_s_mem());
    s_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(s_in, -1);
    SSL_set_bio(srv, s_in, s_out);
    SSL_set_accept_state(srv);
    cli = gw_tls_new(cli_ctx, "localhost");
    CHECK(cli != NULL);
    int rc = gw_tls_handshake(cli), sr = 0;
    for (int i = 0; i < 20 && !(rc == GW_OK && sr == 1); i++) {
        c2s();
        sr = SSL_do_handshake(srv);
        bytes_t ct = server_out();
        for (size_t off = 0; off < ct.n; off += chunk) {
            size_t n = GW_MIN(chunk, ct.n - off);
            char *feed = malloc(n);
            memcpy(feed, ct.p + off, n);
            gw_tls_feed(cli, feed, n);
            rc = gw_tls_handshake(cli);
            gw_tls_feed_end(cli);
            memset(feed, 0xAA, n);
            free(feed);
        }
        free(ct.p);
        if (rc != GW_OK && rc != GW_AGAIN) break;
    }
    c2s();
    if (sr != 1) sr = SSL_do_handshake(srv);
    CHECK_EQ_INT(rc, GW_OK);
    CHECK_EQ_INT(sr, 1);
}

static void close_pair(void)
{
    gw_tls_free(cli);
    SSL_free(srv);
    cli = NULL;
    srv = NULL;
}

static char pattern(size_t i) { return (char)('a' + (i * 7 + i / 251) % 26); }

/* The server sends `total` bytes in writes of `per_write` (one or more records each). */
static bytes_t server_send(size_t total, size_t per_write)
{
    char *p = malloc(total);
    for (size_t i = 0; i < total; i++) p[i] = pattern(i);
    for (size_t off = 0; off < total; off += per_write) {
        size_t w = 0;
        CHECK(SSL_write_ex(srv, p + off, GW_MIN(per_write, total - off), &w) == 1);
    }
    free(p);
    return server_out();
}

static void check_pattern(const bytes_t *pt, size_t total)
{
    CHECK_EQ_INT(pt->n, total);
    size_t bad = 0;
    for (size_t i = 0; i < pt->n && i < total; i++) bad += pt->p[i] != pattern(i);
    CHECK_EQ_INT(bad, 0);
}

static void test_request_and_response(void)
{
    connect_pair(1 << 20);
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_EQ_INT(gw_tls_write(cli, req, sizeof(req) - 1), GW_OK);
    CHECK(gw_tls_pending_out(cli) > sizeof(req) - 1);
    c2s();
    char got[256];
    size_t n = 0;
    CHECK(SSL_read_ex(srv, got, sizeof(got), &n) == 1);
    CHECK_EQ_INT(n, sizeof(req) - 1);
    CHECK(memcmp(got, req, sizeof(req) - 1) == 0);
    bytes_t ct = server_send(6, 6), pt = {0};
    CHECK_EQ_INT(client_consume(&ct, ct.n, 4096, &pt), 0);
    check_pattern(&pt, 6);
    free(ct.p);
    free(pt.p);
    close_pair();
}

static void test_one_byte_at_a_time(void)
{
    connect_pair(1); /* the handshake too */
    bytes_t ct = server_send(40000, 40000), pt = {0}; /* three records */
    CHECK_EQ_INT(client_consume(&ct, 1, 65536, &pt), 0);
    check_pattern(&pt, 40000);
    free(ct.p);
    free(pt.p);
    close_pair();
}

static void test_odd_splits_and_small_reads(void)
{
    static const size_t chunks[] = {7, 4999, 16384 + 22 + 5, 70000};
    static const size_t reads[] = {1, 100, 16384, 131072};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        connect_pair(chunks[i]);
        bytes_t ct = server_send(100000, 3000 + 9000 * i), pt = {0};
        CHECK_EQ_INT(client_consume(&ct, chunks[i], reads[i], &pt), 0);
        check_pattern(&pt, 100000);
        free(ct.p);
        free(pt.p);
        close_pair();
    }
}

/* The caller stops reading before the layer took all it was fed: the rest is kept (the fed
 * buffer is scribbled over and freed), read later, and followed in order by the next feed. */
static void test_unread_rest_is_kept(void)
{
    connect_pair(1 << 20);
    bytes_t ct = server_send(60000, 10000), pt = {0}; /* six records */
    char *feed = malloc(ct.n);
    memcpy(feed, ct.p, ct.n / 2);
    gw_tls_feed(cli, feed, ct.n / 2);
    char rb[100];
    int r = gw_tls_read(cli, rb, sizeof(rb));
    CHECK_EQ_INT(r, 100);
    append(&pt, rb, 100);
    gw_tls_feed_end(cli);
    memset(feed, 0xAA, ct.n);
    r = gw_tls_read(cli, rb, sizeof(rb)); /* from what was kept, no feed */
    CHECK_EQ_INT(r, 100);
    append(&pt, rb, 100);
    memcpy(feed, ct.p + ct.n / 2, ct.n - ct.n / 2);
    gw_tls_feed(cli, feed, ct.n - ct.n / 2); /* goes after the kept rest */
    char big[65536];
    while ((r = gw_tls_read(cli, big, sizeof(big))) > 0) append(&pt, big, (size_t)r);
    gw_tls_feed_end(cli);
    free(feed);
    CHECK_EQ_INT(r, 0);
    check_pattern(&pt, 60000);
    free(ct.p);
    free(pt.p);
    close_pair();
}

static void test_close_notify(void)
{
    connect_pair(1 << 20);
    size_t w = 0;
    CHECK(SSL_write_ex(srv, "bye", 3, &w) == 1);
    CHECK(SSL_shutdown(srv) == 0); /* sent ours, not yet the peer's */
    bytes_t ct = server_out(), pt = {0};
    CHECK_EQ_INT(client_consume(&ct, 5, 64, &pt), GW_ENOENT);
    CHECK_EQ_INT(pt.n, 3);
    CHECK(pt.n == 3 && memcmp(pt.p, "bye", 3) == 0);
    gw_tls_shutdown(cli); /* our close_notify goes out */
    c2s();
    CHECK_EQ_INT(SSL_shutdown(srv), 1);
    free(ct.p);
    free(pt.p);
    close_pair();
}

static void test_large_write(void)
{
    connect_pair(1 << 20);
    size_t total = (1 << 20) + 1;
    char *p = malloc(total);
    for (size_t i = 0; i < total; i++) p[i] = pattern(i);
    CHECK_EQ_INT(gw_tls_write(cli, p, total), GW_OK);
    CHECK(gw_tls_pending_out(cli) >= total + 64 * 22); /* 65 records, each with header and tag */
    c2s();
    CHECK_EQ_INT(gw_tls_pending_out(cli), 0);
    bytes_t pt = {0};
    char buf[16384];
    size_t n = 0;
    for (int i = 0; i < 1000 && SSL_read_ex(srv, buf, sizeof(buf), &n) == 1; i++) append(&pt, buf, n);
    check_pattern(&pt, total);
    free(p);
    free(pt.p);
    close_pair();
}

static void test_garbage_is_an_error(void)
{
    connect_pair(1 << 20);
    static const char junk[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    gw_tls_feed(cli, junk, sizeof(junk) - 1);
    char rb[64];
    CHECK_EQ_INT(gw_tls_read(cli, rb, sizeof(rb)), GW_EBADMSG);
    gw_tls_feed_end(cli);
    CHECK(strlen(gw_tls_error(cli)) > 0);
    close_pair();

    /* in the handshake */
    cli = gw_tls_new(cli_ctx, "localhost");
    CHECK_EQ_INT(gw_tls_handshake(cli), GW_AGAIN);
    CHECK(gw_tls_pending_out(cli) > 0); /* the ClientHello */
    gw_tls_feed(cli, junk, sizeof(junk) - 1);
    CHECK_EQ_INT(gw_tls_handshake(cli), GW_EBADMSG);
    gw_tls_feed_end(cli);
    gw_tls_free(cli);
    cli = NULL;
}

int main(void)
{
    make_server_ctx();
    GW_RUN(test_request_and_response);
    GW_RUN(test_one_byte_at_a_time);
    GW_RUN(test_odd_splits_and_small_reads);
    GW_RUN(test_unread_rest_is_kept);
    GW_RUN(test_close_notify);
    GW_RUN(test_large_write);
    GW_RUN(test_garbage_is_an_error);
    gw_tls_ctx_free(cli_ctx);
    SSL_CTX_free(srv_ctx);
    return gw_test_summary();
}
