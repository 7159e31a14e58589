/* test_server.c: http/server.c on a real libuv loop with a test handler, driven by a raw
 * non-blocking client socket on 127.0.0.1: request delivery, bodies, keep-alive, pipelining,
 * malformed input and draining, observed as bytes on the wire and handler callbacks. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http/server.h"
#include "test.h"
#include "util/buf.h"

static uv_loop_t loop;
static gw_counters_t counters;
static gw_server_t srv;
static gw_listener_t lst;
static int port;

/* ---------- the handler: answers "<method> <target> <body>" as the body ---------- */

static int requests, bodies_done;
static char last_body[256];

typedef struct {
    gw_buf_t body;
} hreq_t;

static void answer(gw_request_t *req, hreq_t *h)
{
    char out[512];
    int n = snprintf(out, sizeof(out), "%.*s %.*s %.*s", (int)req->head.method.n, req->head.method.p,
                     (int)req->head.target.n, req->head.target.p, (int)h->body.len, h->body.base ? h->body.base : "");
    snprintf(last_body, sizeof(last_body), "%.*s", (int)h->body.len, h->body.base ? h->body.base : "");
    gw_buf_free(&h->body);
    free(h);
    req->data = NULL;
    gw_request_respond(req, 200, "text/plain", out, (size_t)n);
}

static void h_request(gw_request_t *req)
{
    requests++;
    hreq_t *h = calloc(1, sizeof(*h));
    gw_buf_init(&h->body, 1 << 16);
    if (req->body_done) {
        answer(req, h);
        return;
    }
    req->data = h;
}

static void h_body(gw_request_t *req, gw_block_t *b, size_t off, size_t len, bool last)
{
    hreq_t *h = req->data;
    if (!h) return;
    gw_buf_append(&h->body, b->data + off, len);
    if (last) {
        bodies_done++;
        answer(req, h);
    }
}

static void h_abort(gw_request_t *req)
{
    hreq_t *h = req->data;
    if (h) {
        gw_buf_free(&h->body);
        free(h);
    }
}

static void h_drain(gw_request_t *req) { (void)req; }

static const gw_handler_t handler = {h_request, h_body, h_abort, h_drain};

/* ---------- a raw client ---------- */

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) return -1;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = write(fd, s + off, n - off);
        if (w > 0) off += (size_t)w;
        else uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* Runs the loop and reads from fd until `want` occurrences of "HTTP/1.1 " arrived with their
 * bodies (Content-Length known), or EOF, or 2 s passed. Returns what was read; *eof set. */
static char *read_responses(int fd, int want, bool *eof)
{
    static char buf[65536];
    size_t len = 0;
    *eof = false;
    uint64_t deadline = uv_hrtime() + 2000000000ull;
    while (uv_hrtime() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
        if (r == 0) {
            *eof = true;
            break;
        }
        if (r > 0) len += (size_t)r;
        buf[len] = 0;
        int complete = 0;
        const char *p = buf;
        while ((p = strstr(p, "HTTP/1.1 ")) != NULL) {
            const char *cl = strstr(p, "Content-Length: "), *end = strstr(p, "\r\n\r\n");
            if (!cl || !end) break;
            size_t need = (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16);
            if (need > len) break;
            complete++;
            p = buf + need;
        }
        if (want && complete >= want) break;
        if (r < 0) usleep(1000);
    }
    return buf;
}

static void test_get_and_keepalive(void)
{
    int fd = client();
    CHECK(fd >= 0);
    int before = requests;
    send_all(fd, "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    bool eof;
    char *r = read_responses(fd, 1, &eof);
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(r, "\r\n\r\nGET /a?x=1 ") != NULL);
    CHECK(!eof);
    send_all(fd, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"); /* same connection */
    r = read_responses(fd, 1, &eof);
    CHECK(strstr(r, "GET /b ") != NULL);
    CHECK_EQ_INT(requests, before + 2);
    close(fd);
}

static void test_bodies(void)
{
    int fd = client();
    send_all(fd, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
    bool eof;
    char *r = read_responses(fd, 1, &eof);
    CHECK(strstr(r, "POST /p hello") != NULL);
    send_all(fd, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    r = read_responses(fd, 1, &eof);
    CHECK(strstr(r, "POST /c ") != NULL);
    CHECK_EQ_STR(last_body, "3\r\nabc\r\n0\r\n\r\n"); /* the handler sees the raw chunked framing */
    close(fd);
}

static void test_pipelining(void)
{
    int fd = client();
    int before = requests;
    send_all(fd, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    bool eof;
    char *r = read_responses(fd, 3, &eof);
    char *a = strstr(r, "GET /1 "), *b = strstr(r, "GET /2 "), *c = strstr(r, "GET /3 ");
    CHECK(a && b && c && a < b && b < c); /* answered in order */
    CHECK_EQ_INT(requests, before + 3);
    close(fd);
}

static void test_bad_requests_close(void)
{
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",                                  /* no Host */
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = client();
        int before = requests;
        send_all(fd, bad[i]);
        bool eof;
        char *r = read_responses(fd, 0, &eof);
        CHECK(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
        CHECK(eof); /* and the connection is closed */
        CHECK_EQ_INT(requests, before);
        close(fd);
    }
}

static void test_http10_closes(void)
{
    int fd = client();
    send_all(fd, "GET /old HTTP/1.0\r\n\r\n");
    bool eof;
    char *r = read_responses(fd, 0, &eof);
    CHECK(strstr(r, "GET /old ") != NULL);
    CHECK(eof);
    close(fd);
}

static void test_drain_closes_idle(void)
{
    int fd = client();
    send_all(fd, "GET /d HTTP/1.1\r\nHost: h\r\n\r\n");
    bool eof;
    read_responses(fd, 1, &eof);
    CHECK(srv.conns != NULL);
    gw_server_drain(&srv);
    CHECK(srv.draining);
    read_responses(fd, 0, &eof);
    CHECK(eof); /* the idle keep-alive connection was closed */
    close(fd);
}

int main(void)
{
    uv_loop_init(&loop);
    srv = (gw_server_t){.loop = &loop, .request_timeout = 5, .counters = &counters};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) return 1;
    socklen_t sl = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    port = ntohs(a.sin_port);
    lst = (gw_listener_t){.server = &srv, .handler = &handler, .mode = 0, .fd = fd};
    if (gw_server_listen(&lst) != 0) return 1;

    GW_RUN(test_get_and_keepalive);
    GW_RUN(test_bodies);
    GW_RUN(test_pipelining);
    GW_RUN(test_bad_requests_close);
    GW_RUN(test_http10_closes);
    GW_RUN(test_drain_closes_idle);
    CHECK(counters.conns_accepted >= 8);

    gw_server_listener_close(&lst);
    gw_server_close_all(&srv);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++) {
    }
    uv_loop_close(&loop);
    gw_block_drain_cache();
    return gw_test_summary();
}
