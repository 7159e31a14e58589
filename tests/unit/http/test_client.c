/* test_client.c: http/client.c on a real libuv loop against a scripted upstream on 127.0.0.1:
 * staged callbacks, 1xx skipping, framing, decoding, reuse decisions and every error kind. */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "http/client.h"
#include "test.h"
#include "util/buf.h"
#include "util/common.h"

/* ---------- scripted upstream: answers each request head with `resp`, then maybe closes ---------- */

static uv_loop_t loop;
static uv_tcp_t srv;
static int port;
static const char *resp;   /* bytes to answer with (NULL: close without answering) */
static size_t resp_len;
static bool close_after;   /* close the connection after answering */
static int accepted, requests;
static char last_request[4096];

typedef struct {
    uv_tcp_t tcp;
    char buf[4096];
    size_t len;
} sconn_t;

static void on_sclosed(uv_handle_t *h) { free(h->data); }

static void on_swritten(uv_write_t *w, int status)
{
    (void)status;
    sconn_t *c = w->data;
    if (close_after && !uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_sclosed);
    free(w);
}

static void salloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    sconn_t *c = h->data;
    b->base = c->buf + c->len;
    b->len = sizeof(c->buf) - c->len - 1;
}

static void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    sconn_t *c = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_sclosed);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return;
    size_t hl = (size_t)(end + 4 - c->buf);
    /* a request body, if announced, is small in these tests: wait for all of it */
    const char *cl = strstr(c->buf, "Content-Length: ");
    size_t need = hl + (cl && cl < end ? (size_t)atoi(cl + 16) : 0);
    if (c->len < need) return;
    memcpy(last_request, c->buf, need);
    last_request[need] = 0;
    memmove(c->buf, c->buf + need, c->len - need);
    c->len -= need;
    requests++;
    if (!resp) {
        uv_close((uv_handle_t *)s, on_sclosed);
        return;
    }
    uv_write_t *w = malloc(sizeof(*w));
    w->data = c;
    uv_buf_t ob = uv_buf_init((char *)resp, (unsigned)resp_len);
    uv_write(w, s, &ob, 1, on_swritten);
}

static void on_sconn(uv_stream_t *s, int status)
{
    if (status < 0) return;
    sconn_t *c = calloc(1, sizeof(*c));
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(s, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_sclosed);
        return;
    }
    accepted++;
    uv_read_start((uv_stream_t *)&c->tcp, salloc, on_sread);
}

static void script(const char *r, bool close)
{
    resp = r;
    resp_len = r ? strlen(r) : 0;
    close_after = close;
}

/* ---------- the caller side ---------- */

typedef struct {
    gw_client_t *cl;
    int connects, heads, errors, dones;
    int status;
    gw_body_kind_t kind;
    gw_client_err_t err;
    gw_buf_t body;
    bool decode;       /* ask for decoded chunks in on_head */
    bool decline;      /* return GW_DECLINED from on_head */
    bool abort_in_head;
    bool finished;
} rec_t;

static void r_connect(void *ud) { ((rec_t *)ud)->connects++; }

static int r_head(void *ud, const gw_resp_head_t *h, gw_body_kind_t kind, uint64_t cl)
{
    (void)cl;
    rec_t *r = ud;
    r->heads++;
    r->status = h->status;
    r->kind = kind;
    if (r->decode) gw_client_decode_chunked(r->cl);
    if (r->abort_in_head) {
        gw_client_abort(r->cl);
        r->finished = true;
        return GW_OK; /* ignored: the exchange is already over */
    }
    if (r->decline) {
        r->finished = true;
        return GW_DECLINED;
    }
    return GW_OK;
}

static void r_body(void *ud, gw_block_t *b, size_t off, size_t len, bool done)
{
    rec_t *r = ud;
    if (len) gw_buf_append(&r->body, b->data + off, len);
    if (done) {
        r->dones++;
        r->finished = true;
    }
}

static void r_error(void *ud, gw_client_err_t err, int status, const char *reason)
{
    (void)status;
    (void)reason;
    rec_t *r = ud;
    r->errors++;
    r->err = err;
    r->finished = true;
}

static void r_drain(void *ud) { (void)ud; }

static const gw_client_cb_t cbs = {r_connect, r_head, r_body, r_error, r_drain};

static gw_counters_t counters;
static gw_upstream_pool_t *pool;
static gw_target_t target;

/* Runs one exchange to its end (bounded: 2 s of loop time). Returns gw_client_start's result. */
static int exchange(rec_t *r, const char *head, bool head_request)
{
    gw_buf_init(&r->body, 1 << 20);
    int rc = gw_client_start(pool, &target, false, NULL, head, strlen(head), false, head_request, &cbs, r, &r->cl);
    uint64_t deadline = uv_now(&loop) + 2000;
    while (!r->finished && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
    /* let pooled/closed connections settle, and the server see closes */
    for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
    return rc;
}

static void body_is(rec_t *r, const char *want)
{
    gw_buf_append(&r->body, "", 1);
    CHECK_EQ_STR(r->body.base ? r->body.base : "", want);
    gw_buf_free(&r->body);
}

static const char GET[] = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

static void test_length_body_and_reuse(void)
{
    script("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
    int acc = accepted;
    rec_t r = {0};
    CHECK_EQ_INT(exchange(&r, GET, false), GW_AGAIN);
    CHECK_EQ_INT(r.connects, 1);
    CHECK_EQ_INT(r.heads, 1);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.kind, GW_BODY_LENGTH);
    CHECK_EQ_INT(r.dones, 1);
    CHECK_EQ_INT(r.errors, 0);
    body_is(&r, "hello");
    CHECK(strncmp(last_request, GET, sizeof(GET) - 1) == 0);
    /* the connection went back to the pool: the next exchange takes it at once */
    rec_t r2 = {0};
    CHECK_EQ_INT(exchange(&r2, GET, false), GW_OK);
    CHECK_EQ_INT(r2.connects, 0); /* no on_connect for a pooled connection */
    CHECK_EQ_INT(r2.dones, 1);
    body_is(&r2, "hello");
    CHECK_EQ_INT(accepted, acc + 1);
}

static void test_interim_skipped_and_chunked(void)
{
    script("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
           "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
           false);
    rec_t r = {0};
    exchange(&r, GET, false);
    CHECK_EQ_INT(r.heads, 1);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_INT(r.kind, GW_BODY_CHUNKED);
    CHECK_EQ_INT(r.dones, 1);
    body_is(&r, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"); /* framing passed on canonical: the extension is gone */
    rec_t d = {.decode = true};
    exchange(&d, GET, false);
    CHECK_EQ_INT(d.dones, 1);
    body_is(&d, "abcde");
}

static void test_close_delimited_not_pooled(void)
{
    script("HTTP/1.1 200 OK\r\n\r\nuntil close", true);
    int acc = accepted;
    rec_t r = {0};
    int fresh = exchange(&r, GET, false) == GW_AGAIN; /* may reuse the previous test's connection */
    CHECK_EQ_INT(r.kind, GW_BODY_EOF);
    CHECK_EQ_INT(r.dones, 1);
    body_is(&r, "until close");
    script("HTTP/1.1 204 No Content\r\n\r\n", false);
    rec_t r2 = {0};
    CHECK_EQ_INT(exchange(&r2, GET, false), GW_AGAIN); /* a new connection */
    CHECK_EQ_INT(accepted, acc + fresh + 1);
    CHECK_EQ_INT(r2.kind, GW_BODY_NONE);
    CHECK_EQ_INT(r2.dones, 1);
    gw_buf_free(&r2.body);
}

static void test_not_pooled_after_extra_bytes_or_close_header(void)
{
    int acc = accepted;
    script("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE", false);
    rec_t r = {0};
    int fresh = exchange(&r, GET, false) == GW_AGAIN;
    body_is(&r, "ok");
    script("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", false);
    rec_t r2 = {0};
    CHECK_EQ_INT(exchange(&r2, GET, false), GW_AGAIN);
    body_is(&r2, "ok");
    rec_t r3 = {0};
    CHECK_EQ_INT(exchange(&r3, GET, false), GW_AGAIN);
    gw_buf_free(&r3.body);
    CHECK_EQ_INT(accepted, acc + fresh + 2);
}

static void test_head_request_has_no_body(void)
{
    script("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false);
    rec_t r = {0};
    exchange(&r, "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n", true);
    CHECK_EQ_INT(r.kind, GW_BODY_NONE);
    CHECK_EQ_INT(r.dones, 1);
    body_is(&r, "");
}

static void test_errors(void)
{
    script(NULL, false); /* closes without a byte */
    rec_t r = {0};
    exchange(&r, GET, false);
    CHECK_EQ_INT(r.errors, 1);
    CHECK_EQ_INT(r.err, GW_CLIENT_ECLOSED);
    gw_buf_free(&r.body);

    script("HTTP/1.1 200 OK\r\nContent-Le", true); /* part of a head */
    rec_t l = {0};
    exchange(&l, GET, false);
    CHECK_EQ_INT(l.err, GW_CLIENT_ELOST);
    gw_buf_free(&l.body);

    script("HTTP/1.1 2x0 OK\r\n\r\n", false);
    rec_t m = {0};
    exchange(&m, GET, false);
    CHECK_EQ_INT(m.err, GW_CLIENT_EMALFORMED);
    CHECK_EQ_INT(m.heads, 0);
    gw_buf_free(&m.body);

    script("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false);
    rec_t u = {0};
    exchange(&u, GET, false);
    CHECK_EQ_INT(u.err, GW_CLIENT_EMALFORMED);
    gw_buf_free(&u.body);

    script("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false);
    rec_t f = {0};
    exchange(&f, GET, false);
    CHECK_EQ_INT(f.err, GW_CLIENT_EMALFORMED);
    gw_buf_free(&f.body);

    script("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true);
    rec_t b = {0};
    exchange(&b, GET, false);
    CHECK_EQ_INT(b.heads, 1);
    CHECK_EQ_INT(b.err, GW_CLIENT_EBODY);
    CHECK_EQ_INT(b.dones, 0);
    body_is(&b, "short");

    script("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false);
    rec_t c = {0};
    exchange(&c, GET, false);
    CHECK_EQ_INT(c.err, GW_CLIENT_EBODY);
    gw_buf_free(&c.body);

    gw_target_t closed = target;
    static uv_tcp_t probe; /* a port that refuses: bind one, never listen (static: closed later) */
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &probe);
    uv_tcp_bind(&probe, (const struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    uv_tcp_getsockname(&probe, (struct sockaddr *)&ss, &sl);
    closed.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    rec_t k = {0};
    gw_buf_init(&k.body, 16);
    CHECK_EQ_INT(gw_client_start(pool, &closed, false, NULL, GET, sizeof(GET) - 1, false, false, &cbs, &k, &k.cl),
                 GW_AGAIN);
    uint64_t deadline = uv_now(&loop) + 2000;
    while (!k.finished && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(k.err, GW_CLIENT_ECONNECT);
    CHECK_EQ_INT(k.connects, 0);
    uv_close((uv_handle_t *)&probe, NULL);
}

/* Ending the exchange from inside on_head (or declining the body) is safe and final. */
static void test_abort_and_decline_in_head(void)
{
    script("HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nno!", false);
    rec_t a = {.abort_in_head = true};
    exchange(&a, GET, false);
    CHECK_EQ_INT(a.heads, 1);
    CHECK_EQ_INT(a.dones + a.errors, 0);
    body_is(&a, "");
    rec_t d = {.decline = true};
    int acc = accepted;
    CHECK_EQ_INT(exchange(&d, GET, false), GW_AGAIN); /* the aborted connection was not pooled */
    CHECK_EQ_INT(d.heads, 1);
    CHECK_EQ_INT(d.dones + d.errors, 0);
    body_is(&d, "");
    CHECK_EQ_INT(accepted, acc + 1);
}

/* A request body: the head waits and leaves with the first body bytes. */
static void test_request_body(void)
{
    script("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
    static const char head[] = "POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n";
    rec_t r = {0};
    gw_buf_init(&r.body, 64);
    int rc = gw_client_start(pool, &target, false, NULL, head, sizeof(head) - 1, true, false, &cbs, &r, &r.cl);
    uint64_t deadline = uv_now(&loop) + 2000;
    while (rc != GW_OK && !r.connects && !r.finished && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
    gw_block_t *b = gw_block_get();
    memcpy(b->data, "body", 4);
    CHECK_EQ_INT(gw_client_send(r.cl, b, 0, 4), 0);
    gw_block_unref(b);
    CHECK_EQ_INT(gw_client_request_done(r.cl), 0);
    while (!r.finished && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(r.dones, 1);
    CHECK(strstr(last_request, "Content-Length: 4\r\n\r\nbody") != NULL);
    gw_buf_free(&r.body);
}

int main(void)
{
    uv_loop_init(&loop);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &srv);
    uv_tcp_bind(&srv, (const struct sockaddr *)&a, 0);
    if (uv_listen((uv_stream_t *)&srv, 64, on_sconn) != 0) return 1;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    uv_tcp_getsockname(&srv, (struct sockaddr *)&ss, &sl);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    char hh[32];
    snprintf(hh, sizeof(hh), "127.0.0.1:%d", port);
    target = (gw_target_t){.url = "", .https = false, .hostname = "127.0.0.1", .port = (uint16_t)port,
                           .host_header = hh, .path = "", .query = ""};
    pool = gw_upstream_pool_new(&loop, &counters);

    GW_RUN(test_length_body_and_reuse);
    GW_RUN(test_interim_skipped_and_chunked);
    GW_RUN(test_close_delimited_not_pooled);
    GW_RUN(test_not_pooled_after_extra_bytes_or_close_header);
    GW_RUN(test_head_request_has_no_body);
    GW_RUN(test_errors);
    GW_RUN(test_abort_and_decline_in_head);
    GW_RUN(test_request_body);

    gw_upstream_pool_free(pool);
    uv_close((uv_handle_t *)&srv, NULL);
    for (int i = 0; i < 50 && uv_run(&loop, UV_RUN_NOWAIT); i++) {
    }
    gw_block_drain_cache();
    return gw_test_summary();
}
