/* test_parser.c: unit tests for src/http/parser.c: head parsing, limits, incremental input,
 * smuggling rejections, body framing rules and the chunked decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/parser.h"
#include "test.h"

static gw_req_head_t req;
static gw_resp_head_t resp;

/* Parses from an exact-size heap copy so ASan flags any read past len. */
static int preq_n(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int rc = gw_http_parse_request(b, n, &req);
    /* re-point slices into s so callers can inspect them after free */
    if (rc > 0) {
        req.method.p = s + (req.method.p - b);
        req.target.p = s + (req.target.p - b);
        for (size_t i = 0; i < req.nheaders; i++) {
            req.headers[i].name.p = s + (req.headers[i].name.p - b);
            req.headers[i].value.p = s + (req.headers[i].value.p - b);
        }
    }
    free(b);
    return rc;
}

static int preq(const char *s) { return preq_n(s, strlen(s)); }

static int presp_n(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int rc = gw_http_parse_response(b, n, &resp);
    if (rc > 0) {
        resp.reason.p = s + (resp.reason.p - b);
        for (size_t i = 0; i < resp.nheaders; i++) {
            resp.headers[i].name.p = s + (resp.headers[i].name.p - b);
            resp.headers[i].value.p = s + (resp.headers[i].value.p - b);
        }
    }
    free(b);
    return rc;
}

static int presp(const char *s) { return presp_n(s, strlen(s)); }

/* Every strict prefix must say "need more", the full message its length. */
static int incremental_req_ok(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++)
        if (preq_n(s, k) != 0)
            return 0;
    return preq_n(s, n) == (int)n;
}

static int incremental_resp_ok(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++)
        if (presp_n(s, k) != 0)
            return 0;
    return presp_n(s, n) == (int)n;
}

static int req_framing(const char *s, gw_body_kind_t *kind, uint64_t *cl)
{
    int rc = preq(s);
    if (rc <= 0)
        return 1000 + rc; /* distinguishable from framing results */
    return gw_http_request_framing(&req, kind, cl);
}

static int resp_framing(const char *s, bool head, gw_body_kind_t *kind, uint64_t *cl)
{
    int rc = presp(s);
    if (rc <= 0)
        return 1000 + rc;
    return gw_http_response_framing(&resp, head, kind, cl);
}

/* ---------------------------------------------------------------- request heads */

static void test_simple_get(void)
{
    const char *m = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    CHECK_EQ_INT(preq(m), strlen(m));
    CHECK_EQ_SLICE(req.method, "GET");
    CHECK_EQ_SLICE(req.target, "/index.html?x=1");
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.nheaders, 2);
    CHECK_EQ_SLICE(req.headers[0].name, "Host");
    CHECK_EQ_SLICE(req.headers[0].value, "example.com");
    CHECK_EQ_SLICE(req.headers[1].name, "Accept");
    CHECK_EQ_SLICE(req.headers[1].value, "*/*");

    const char *m10 = "GET / HTTP/1.0\r\n\r\n";
    CHECK_EQ_INT(preq(m10), strlen(m10));
    CHECK_EQ_INT(req.minor_version, 0);
    CHECK_EQ_INT(req.nheaders, 0);

    /* trailing bytes (body / pipelined request) are not part of the head */
    const char *pipe = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(preq(pipe), 19);
    CHECK_EQ_SLICE(req.target, "/a");
}

static void test_methods(void)
{
    static const char *ok[] = {"GET",   "HEAD",  "POST",     "PUT",      "DELETE", "CONNECT",
                               "OPTIONS", "TRACE", "PATCH", "M-SEARCH", "PROPFIND", "get",
                               "X!#$%&'*+-.^_`|~9"};
    char buf[128];
    for (size_t i = 0; i < GW_ARRAY_SIZE(ok); i++) {
        snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: h\r\n\r\n", ok[i]);
        CHECK_EQ_INT(preq(buf), strlen(buf));
        CHECK_EQ_SLICE(req.method, ok[i]);
    }
    static const char *bad[] = {"GE(T", "GE T", "G\"ET", "GET,", "GE\tT", "GE:T", "GE/T",
                                "G{}", "G\x7f", "G\x80"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad); i++) {
        snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: h\r\n\r\n", bad[i]);
        CHECK_EQ_INT(preq(buf), GW_EBADMSG);
    }
    CHECK_EQ_INT(preq(" / HTTP/1.1\r\n\r\n"), GW_EBADMSG);  /* empty method */
    CHECK_EQ_INT(preq("GET\r\n\r\n"), GW_EBADMSG);
}

static void test_targets(void)
{
    static const char *ok[] = {"/", "*", "http://example.com:80/a?b#c", "example.com:443",
                               "/p%20q?a=%22&b='x'", "/\xc3\xa9t\xc3\xa9", "/{}|\\^`[]"};
    char buf[256];
    for (size_t i = 0; i < GW_ARRAY_SIZE(ok); i++) {
        snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\n\r\n", ok[i]);
        CHECK_EQ_INT(preq(buf), strlen(buf));
        CHECK_EQ_SLICE(req.target, ok[i]);
    }
    static const char *bad[] = {"/a\tb", "/a\x01", "/a\x7f", "/a\x1f", "/a\rb", "/a\x0b"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad); i++) {
        snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\n\r\n", bad[i]);
        CHECK_EQ_INT(preq(buf), GW_EBADMSG);
    }
    CHECK_EQ_INT(preq_n("GET /a\0b HTTP/1.1\r\n\r\n", 22), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET  / HTTP/1.1\r\n\r\n"), GW_EBADMSG); /* empty target / double SP */
    CHECK_EQ_INT(preq("GET / HTTP/1.1 \r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / / HTTP/1.1\r\n\r\n"), GW_EBADMSG);
    /* long target crosses the 8-byte fast path with a control byte at every position */
    for (int pos = 1; pos < 40; pos++) {
        char t[64];
        memset(t, 'a', sizeof(t));
        t[0] = '/';
        t[pos] = '\x02';
        snprintf(buf, sizeof(buf), "GET %.*s HTTP/1.1\r\n\r\n", 41, t);
        CHECK_EQ_INT(preq(buf), GW_EBADMSG);
    }
}

static void test_versions(void)
{
    static const char *bad[] = {"HTTP/2.0", "HTTP/1.2", "HTTP/1.10", "http/1.1", "HTTP/1",
                                "HTTP/1.", "HTTP/0.9", "HTTP/1.1x", "HTTPS/1.1", "HTTP/11",
                                "HTTP/ 1.1", "HTTP/1.a"};
    char buf[128];
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad); i++) {
        snprintf(buf, sizeof(buf), "GET / %s\r\n\r\n", bad[i]);
        CHECK_EQ_INT(preq(buf), GW_EBADMSG);
    }
    CHECK_EQ_INT(preq("GET /\r\n\r\n"), GW_EBADMSG);           /* HTTP/0.9 form */
    CHECK_EQ_INT(preq("GET / HTTP/1.1\n\n"), GW_EBADMSG);        /* bare LF in request line */
    CHECK_EQ_INT(preq("GET / HTTP/1.1\nHost: a\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\rX\r\n\r\n"), GW_EBADMSG);
    /* early rejection: a bad version prefix is fatal before the line is complete */
    CHECK_EQ_INT(preq("GET / HTTP/2"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1"), 0);
}

static void test_leading_empty_lines(void)
{
    const char *m = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_EQ_INT(preq(m), strlen(m));
    CHECK_EQ_SLICE(req.method, "GET");
    CHECK(incremental_req_ok(m));
    CHECK_EQ_INT(preq("\r\n"), 0);
    CHECK_EQ_INT(preq("\r"), 0);
    CHECK_EQ_INT(preq("\rGET / HTTP/1.1\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("\nGET / HTTP/1.1\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq(" GET / HTTP/1.1\r\n\r\n"), GW_EBADMSG);
    /* an endless stream of empty lines runs into the head limit */
    size_t n = GW_HTTP_MAX_HEAD;
    char *b = malloc(n);
    for (size_t i = 0; i < n; i += 2)
        memcpy(b + i, "\r\n", 2);
    CHECK_EQ_INT(gw_http_parse_request(b, n, &req), GW_E2BIG);
    CHECK_EQ_INT(gw_http_parse_request(b, n - 2, &req), 0);
    free(b);
}

static void test_headers_ows(void)
{
    const char *m = "GET / HTTP/1.1\r\n"
                    "A:b\r\n"
                    "B:   spaced   \r\n"
                    "C:\t\ttabbed\t \r\n"
                    "D: in  ner \t val\r\n"
                    "E:\r\n"
                    "F:    \r\n"
                    "G: \xc3\xa9 obs-text \x80\xff\r\n"
                    "H: \"quoted\", (comment), a=b;c\r\n"
                    "\r\n";
    CHECK_EQ_INT(preq(m), strlen(m));
    CHECK_EQ_INT(req.nheaders, 8);
    CHECK_EQ_SLICE(req.headers[0].value, "b");
    CHECK_EQ_SLICE(req.headers[1].value, "spaced");
    CHECK_EQ_SLICE(req.headers[2].value, "tabbed");
    CHECK_EQ_SLICE(req.headers[3].value, "in  ner \t val");
    CHECK_EQ_SLICE(req.headers[4].value, "");
    CHECK_EQ_SLICE(req.headers[5].value, "");
    CHECK_EQ_SLICE(req.headers[6].value, "\xc3\xa9 obs-text \x80\xff");
    CHECK_EQ_SLICE(req.headers[7].value, "\"quoted\", (comment), a=b;c");
    CHECK_EQ_SLICE(req.headers[7].name, "H");
    CHECK(incremental_req_ok(m));

    /* bare LF line endings between headers are accepted */
    const char *lf = "GET / HTTP/1.1\r\nHost: a\nX: b \n\n";
    CHECK_EQ_INT(preq(lf), strlen(lf));
    CHECK_EQ_INT(req.nheaders, 2);
    CHECK_EQ_SLICE(req.headers[1].value, "b");
    const char *mixed = "GET / HTTP/1.1\r\nHost: a\n\r\n";
    CHECK_EQ_INT(preq(mixed), strlen(mixed));
}

static void test_many_headers(void)
{
    static char buf[16384];
    size_t off;
    for (int count = 127; count <= 130; count++) {
        off = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
        for (int i = 0; i < count; i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X-H%d: v%d\r\n", i, i);
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\r\n");
        int rc = preq_n(buf, off);
        if (count <= GW_HTTP_MAX_HEADERS) {
            CHECK_EQ_INT(rc, off);
            CHECK_EQ_INT(req.nheaders, count);
            CHECK_EQ_SLICE(req.headers[count - 1].value, count == 127 ? "v126" : "v127");
        } else {
            CHECK_EQ_INT(rc, GW_E2BIG);
        }
    }
    /* the same for responses */
    off = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 129; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X: %d\r\n", i);
    CHECK_EQ_INT(presp_n(buf, off), GW_E2BIG); /* detected before the head is complete */
}

/* Builds a request head of exactly total bytes using one big header. */
static char *make_sized_head(size_t total, size_t *n)
{
    const char *pre = "GET / HTTP/1.1\r\nX-Big: ";
    const char *post = "\r\n\r\n";
    char *b = malloc(total);
    size_t pl = strlen(pre), ql = strlen(post);
    memcpy(b, pre, pl);
    memset(b + pl, 'a', total - pl - ql);
    memcpy(b + total - ql, post, ql);
    *n = total;
    return b;
}

static void test_head_limit(void)
{
    size_t n;
    char *b = make_sized_head(GW_HTTP_MAX_HEAD, &n);
    CHECK_EQ_INT(gw_http_parse_request(b, n, &req), GW_HTTP_MAX_HEAD);
    CHECK_EQ_INT(req.headers[0].value.n, GW_HTTP_MAX_HEAD - 27);
    CHECK_EQ_INT(gw_http_parse_request(b, n - 1, &req), 0);
    free(b);

    b = make_sized_head(GW_HTTP_MAX_HEAD + 1, &n);
    CHECK_EQ_INT(gw_http_parse_request(b, n, &req), GW_E2BIG);
    CHECK_EQ_INT(gw_http_parse_request(b, n - 1, &req), GW_E2BIG); /* 64 KiB, incomplete */
    CHECK_EQ_INT(gw_http_parse_request(b, n - 2, &req), 0);
    free(b);

    /* a small head followed by a large body is fine */
    b = malloc(200000);
    memset(b, 'z', 200000);
    memcpy(b, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 38);
    CHECK_EQ_INT(gw_http_parse_request(b, 200000, &req), 38);
    free(b);

    /* response heads share the limit */
    b = malloc(GW_HTTP_MAX_HEAD + 10);
    memset(b, 'a', GW_HTTP_MAX_HEAD + 10);
    memcpy(b, "HTTP/1.1 200 OK\r\nX: ", 20);
    CHECK_EQ_INT(gw_http_parse_response(b, GW_HTTP_MAX_HEAD - 1, &resp), 0);
    CHECK_EQ_INT(gw_http_parse_response(b, GW_HTTP_MAX_HEAD, &resp), GW_E2BIG);
    CHECK_EQ_INT(gw_http_parse_response(b, GW_HTTP_MAX_HEAD + 10, &resp), GW_E2BIG);
    memcpy(b + GW_HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
    CHECK_EQ_INT(gw_http_parse_response(b, GW_HTTP_MAX_HEAD + 10, &resp), GW_HTTP_MAX_HEAD);
    free(b);
}

static void test_incremental(void)
{
    CHECK(incremental_req_ok("GET / HTTP/1.1\r\n\r\n"));
    CHECK(incremental_req_ok("POST /submit/form?x=y HTTP/1.0\r\nHost: example.com:8080\r\n"
                             "Content-Type: application/x-www-form-urlencoded\r\n"
                             "Content-Length: 27\r\nX-Tab:\tv\t\r\n\r\n"));
    CHECK(incremental_req_ok("\r\nOPTIONS * HTTP/1.1\r\nA: b\n\n"));
    CHECK(incremental_resp_ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    CHECK(incremental_resp_ok("HTTP/1.0 404\r\nServer: x\r\n\r\n"));
    CHECK(incremental_resp_ok("HTTP/1.1 100 Continue\r\n\r\n"));
    /* the byte that makes a message bad is reported as soon as it arrives */
    const char *bad = "GET / HTTP/1.1\r\nHo st: a\r\n\r\n";
    CHECK_EQ_INT(preq_n(bad, 18), 0);
    CHECK_EQ_INT(preq_n(bad, 19), GW_EBADMSG);
}

/* gw_http_scan_request fed s one byte more at a time gives, for every prefix, the verdict
 * gw_http_parse_request gives on that prefix (until the first non-zero one). */
static int scan_agrees(const char *s, size_t n)
{
    gw_head_scan_t st;
    memset(&st, 0, sizeof(st));
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int good = 1;
    for (size_t k = 1; k <= n; k++) {
        int want = preq_n(s, k), got = gw_http_scan_request(b, k, &st);
        if (got != want) {
            fprintf(stderr, "scan of %zu bytes of %.40s: %d, parse: %d\n", k, s, got, want);
            good = 0;
            break;
        }
        if (got != 0)
            break;
    }
    free(b);
    return good;
}

#define SCAN_AGREES(s) CHECK(scan_agrees((s), sizeof(s) - 1))

static void test_scan_request(void)
{
    SCAN_AGREES("GET / HTTP/1.1\r\n\r\n");
    SCAN_AGREES("POST /submit/form?x=y HTTP/1.0\r\nHost: example.com:8080\r\nX-Tab:\tv\t\r\n\r\nBODY");
    SCAN_AGREES("\r\n\r\nOPTIONS * HTTP/1.1\r\nA: b\n\n");
    SCAN_AGREES("GET /\xc3\xa9 HTTP/1.1\r\nX: \xff\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\nA:\r\nB:  \r\n\n");
    SCAN_AGREES("GET / HTTP/1.1\r\nHo st: a\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\nX: a\x00\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\n: a\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\r\n\rX");
    SCAN_AGREES("GET  / HTTP/1.1\r\n\r\n");
    SCAN_AGREES("GET /  HTTP/1.1\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.2\r\n\r\n");
    SCAN_AGREES("GET / HTTP/1.1\n\r\n");
    SCAN_AGREES("GET / http/1.1\r\n\r\n");
    SCAN_AGREES(" GET / HTTP/1.1\r\n\r\n");
    SCAN_AGREES("\nGET / HTTP/1.1\r\n\r\n");
    SCAN_AGREES("\r\rGET / HTTP/1.1\r\n\r\n");
    SCAN_AGREES("G\x01T / HTTP/1.1\r\n\r\n");
    SCAN_AGREES("GET /a\tb HTTP/1.1\r\n\r\n");

    /* 128 headers are fine, the 129th is 431 */
    static char many[8192];
    size_t off = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 129; i++)
        off += (size_t)sprintf(many + off, "H%d: v\r\n", i);
    off += (size_t)sprintf(many + off, "\r\n");
    CHECK(scan_agrees(many, off));
    gw_head_scan_t st = {0};
    CHECK_EQ_INT(gw_http_scan_request(many, off, &st), GW_E2BIG);

    /* an unfinished 64 KiB head is 431, as for the parser */
    char *big = malloc(GW_HTTP_MAX_HEAD + 10);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'v', GW_HTTP_MAX_HEAD + 10 - 19);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(gw_http_scan_request(big, GW_HTTP_MAX_HEAD - 1, &st), 0);
    CHECK_EQ_INT(gw_http_scan_request(big, GW_HTTP_MAX_HEAD, &st), GW_E2BIG);
    CHECK_EQ_INT(preq_n(big, GW_HTTP_MAX_HEAD), GW_E2BIG);
    free(big);
}

/* A 64 KiB head fed one byte at a time (issue 7 item 6): every byte is examined once. Bytes an
 * earlier call checked are overwritten with NUL (invalid anywhere in a head), so a scan that
 * went back over them would fail; and the whole feed costs a few milliseconds, where parsing
 * from the start on every byte costs about N^2/2 byte steps. */
static void test_scan_linear(void)
{
    size_t n = 0, cap = GW_HTTP_MAX_HEAD;
    char *head = malloc(cap), *work = malloc(cap);
    n += (size_t)sprintf(head, "POST /app/svc/path HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 100; i++) { /* long names: byte-by-byte tchar work for a re-parse */
        n += (size_t)sprintf(head + n, "X-%03d-", i);
        memset(head + n, 'n', 300);
        n += 300;
        n += (size_t)sprintf(head + n, ": %d\r\n", i);
    }
    n += (size_t)sprintf(head + n, "X-Huge: ");
    size_t fill = cap - n - 4 - 100;
    for (size_t i = 0; i < fill; i++) /* "a<TAB>": the slowest value bytes (no 16-byte skips) */
        head[n + i] = i % 2 ? '\t' : 'a';
    n += fill;
    memcpy(head + n, "\r\n\r\n", 4);
    n += 4;
    CHECK(n < GW_HTTP_MAX_HEAD && n > 60 * 1024);

    gw_head_scan_t st = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    int rc = 0;
    size_t calls = 0;
    for (size_t k = 1; k <= n && rc == 0; k++) {
        work[k - 1] = head[k - 1];
        uint32_t before = st.pos;
        rc = gw_http_scan_request(work, k, &st);
        calls++;
        CHECK(st.pos >= before); /* never goes back */
        memset(work + before, 0, st.pos - before); /* checked bytes are never read again */
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK_EQ_INT(rc, (int)n);
    CHECK_EQ_INT(calls, n);
    CHECK_EQ_INT(preq_n(head, n), (int)n); /* the parse the server does then */
    CHECK_EQ_INT(req.nheaders, 102);
    fprintf(stderr, "scan of a %zu-byte head fed 1 byte at a time: %.2f ms CPU\n", n, ms);
    CHECK(ms < 50.0);
    free(head);
    free(work);
}

static void test_smuggling_heads(void)
{
    /* obs-fold */
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(presp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), GW_EBADMSG);
    /* whitespace between name and colon */
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(presp("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"), GW_EBADMSG);
    /* bare CR */
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\r\n\rX\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX\r: a\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(presp("HTTP/1.1 200 OK\r\nX: a\rContent-Length: 0\r\n\r\n"), GW_EBADMSG);
    /* NUL and other controls in values */
    CHECK_EQ_INT(preq_n("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(presp_n("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", 25), GW_EBADMSG);
    /* control byte at every position of a long value (exercises the 8-byte scan) */
    char buf[128];
    for (int pos = 0; pos < 40; pos++) {
        char v[41];
        memset(v, 'v', 40);
        v[40] = 0;
        v[pos] = pos & 1 ? '\x0b' : '\r';
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: x%s\r\n\r\n", v);
        CHECK_EQ_INT(preq_n(buf, (size_t)n), GW_EBADMSG);
        v[pos] = '\t'; /* HTAB is fine anywhere */
        n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: x%s\r\n\r\n", v);
        CHECK_EQ_INT(preq_n(buf, (size_t)n), n);
    }
    /* header names */
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\n: empty\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX(y): z\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX/y: z\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nX\"y: z\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\n\xc3\xa9: z\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(preq_n("GET / HTTP/1.1\r\nX\0: z\r\n\r\n", 25), GW_EBADMSG);
    const char *odd = "GET / HTTP/1.1\r\nX-A!#$%&'*+-.^_`|~9: ok\r\nY::z\r\n\r\n";
    CHECK_EQ_INT(preq(odd), strlen(odd));
    CHECK_EQ_SLICE(req.headers[1].value, ":z");
}

static void test_find_header(void)
{
    const char *m = "GET / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 1\r\nX: first\r\nx: second\r\n\r\n";
    CHECK_EQ_INT(preq(m), strlen(m));
    const gw_header_t *h = gw_http_find_header(req.headers, req.nheaders, "Content-Length");
    CHECK(h != NULL);
    if (h)
        CHECK_EQ_SLICE(h->value, "1");
    h = gw_http_find_header(req.headers, req.nheaders, "x");
    CHECK(h != NULL);
    if (h)
        CHECK_EQ_SLICE(h->value, "first");
    CHECK(gw_http_find_header(req.headers, req.nheaders, "Content") == NULL);
    CHECK(gw_http_find_header(req.headers, req.nheaders, "Hostx") == NULL);
    CHECK(gw_http_find_header(req.headers, 0, "Host") == NULL);
}

/* ---------------------------------------------------------------- framing */

static void test_content_length_parse(void)
{
    uint64_t v = 77;
    CHECK_EQ_INT(gw_http_parse_content_length(GW_STR_LIT("0"), &v), 0);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(gw_http_parse_content_length(GW_STR_LIT("0012"), &v), 0);
    CHECK_EQ_INT(v, 12);
    CHECK_EQ_INT(gw_http_parse_content_length(GW_STR_LIT("9223372036854775807"), &v), 0);
    CHECK(v == 9223372036854775807ull);
    /* above 2^63-1 (what Go accepts) a body cannot be real: 400, never a hanging connection */
    static const char *bad[] = {"",   "18446744073709551616", "99999999999999999999", "9223372036854775808",
                                "9999999999999999999",
                                "+5", "-5", " 5", "5 ", "0x5", "5a", "1_0", "5,5", "1e3", "\xd9\xa5"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad); i++)
        CHECK_EQ_INT(gw_http_parse_content_length(gw_str(bad[i]), &v), GW_EBADMSG);
}

static void test_request_framing(void)
{
    gw_body_kind_t k;
    uint64_t cl;

    CHECK_EQ_INT(req_framing("GET / HTTP/1.1\r\n\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_NONE);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_LENGTH);
    CHECK_EQ_INT(cl, 42);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_LENGTH);
    CHECK_EQ_INT(cl, 0);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_CHUNKED);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\ntransfer-encoding:  ChUnKeD \r\n\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_CHUNKED);

    /* CL + TE, in both orders */
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n", &k, &cl), GW_EBADMSG);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: "
                             "5\r\n\r\n", &k, &cl), GW_EBADMSG);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: "
                             "0\r\n\r\n", &k, &cl), GW_EBADMSG);
    /* repeated Content-Length */
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                             &k, &cl), GW_EBADMSG);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                             &k, &cl), 0);
    CHECK_EQ_INT(cl, 5);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_LENGTH);
    CHECK_EQ_INT(cl, 5);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5,5\r\ncontent-length: 5\r\n\r\n",
                             &k, &cl), 0);
    CHECK_EQ_INT(cl, 5);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", &k, &cl),
                 GW_EBADMSG);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\n",
                             &k, &cl), GW_EBADMSG);
    /* malformed Content-Length */
    static const char *badcl[] = {"+5", "-5", "5 5", "0x5", "5a", "", ",", "1e2", "5;", "\"5\"",
                                  "99999999999999999999"};
    char buf[256];
    for (size_t i = 0; i < GW_ARRAY_SIZE(badcl); i++) {
        snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", badcl[i]);
        CHECK_EQ_INT(req_framing(buf, &k, &cl), GW_EBADMSG);
    }
    /* Transfer-Encoding other than exactly "chunked" */
    static const char *badte[] = {"identity", "gzip", "gzip, chunked", "chunked, chunked",
                                  "chunked, gzip", "xchunked", "chunkedx", "chunked;q=1",
                                  "\"chunked\"", "", ",", "chunk", "deflate"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(badte); i++) {
        snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nTransfer-Encoding: %s\r\n\r\n", badte[i]);
        CHECK_EQ_INT(req_framing(buf, &k, &cl), GW_EBADMSG);
    }
    /* chunked split over two headers is still "chunked, chunked" / "gzip, chunked" */
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n", &k, &cl), GW_EBADMSG);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n", &k, &cl), GW_EBADMSG);
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:"
                             "\r\n\r\n", &k, &cl), 0); /* empty list element is ignored */
    /* TE on HTTP/1.0 */
    CHECK_EQ_INT(req_framing("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &k, &cl),
                 GW_EBADMSG);
    /* names are matched exactly (case-insensitively), not by prefix */
    CHECK_EQ_INT(req_framing("POST / HTTP/1.1\r\nContent-Lengthx: 5\r\nTransfer-Encodings: gzip\r\n"
                             "\r\n", &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_NONE);
}

static void test_response_heads(void)
{
    const char *m = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    CHECK_EQ_INT(presp(m), strlen(m) - 5);
    CHECK_EQ_INT(resp.minor_version, 1);
    CHECK_EQ_INT(resp.status, 200);
    CHECK_EQ_SLICE(resp.reason, "OK");
    CHECK_EQ_INT(resp.nheaders, 2);
    CHECK_EQ_SLICE(resp.headers[1].value, "5");

    CHECK_EQ_INT(presp("HTTP/1.0 404 Not  Found\t!\r\n\r\n"), 29);
    CHECK_EQ_INT(resp.minor_version, 0);
    CHECK_EQ_INT(resp.status, 404);
    CHECK_EQ_SLICE(resp.reason, "Not  Found\t!");
    CHECK_EQ_INT(presp("HTTP/1.1 204\r\n\r\n"), 16);
    CHECK_EQ_SLICE(resp.reason, "");
    CHECK_EQ_INT(presp("HTTP/1.1 204 \r\n\r\n"), 17);
    CHECK_EQ_SLICE(resp.reason, "");
    CHECK_EQ_INT(presp("HTTP/1.9 999 Whatever \xc3\xa9\r\n\r\n"), 28);
    CHECK_EQ_INT(resp.minor_version, 9);
    CHECK_EQ_INT(resp.status, 999);
    CHECK_EQ_INT(presp("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), 25);
    CHECK_EQ_INT(resp.status, 100);
    CHECK_EQ_INT(presp("HTTP/1.1 200 OK\nX: y\n\n"), GW_EBADMSG); /* bare LF status line */
    CHECK_EQ_INT(presp("HTTP/1.1 200 OK\r\nX: y\n\n"), 23);      /* bare LF between headers */

    static const char *bad[] = {"HTTP/2 200 OK",   "HTTP/2.0 200 OK", "HTTP/1.1 20 OK",
                                "HTTP/1.1 2000 OK", "HTTP/1.1 099 OK", "HTTP/1.1 000 OK",
                                "HTTP/1.1 2x0 OK", "HTTP/1.1  200 OK", "HTTP/1.1 -20 OK",
                                "http/1.1 200 OK", "HTTP/1.x 200 OK", "HTTP/1.11 200 OK",
                                "HTTP/1.1 200 O\x01K", "HTTP/1.1 200 O\x7fK", "HTTP/1.1 200 O\rK",
                                "ICY 200 OK", "HTTP/1.1 200OK"};
    char buf[128];
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad); i++) {
        snprintf(buf, sizeof(buf), "%s\r\n\r\n", bad[i]);
        CHECK_EQ_INT(presp(buf), GW_EBADMSG);
    }
    CHECK_EQ_INT(presp("\r\nHTTP/1.1 200 OK\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(presp("HTTP/1.1 2"), 0);
    CHECK_EQ_INT(presp("HTTP/1.1 0"), GW_EBADMSG);
}

static void test_response_framing(void)
{
    gw_body_kind_t k;
    uint64_t cl = 1;

    const char *clresp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    CHECK_EQ_INT(resp_framing(clresp, false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_LENGTH);
    CHECK_EQ_INT(cl, 10);
    CHECK_EQ_INT(resp_framing(clresp, true, &k, &cl), 0); /* HEAD */
    CHECK_EQ_INT(k, GW_BODY_NONE);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, &k,
                              &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_NONE);

    static const char *nobody[] = {"100 Continue", "101 Switching Protocols", "103 Early Hints",
                                   "199 X", "204 No Content", "304 Not Modified"};
    char buf[256];
    for (size_t i = 0; i < GW_ARRAY_SIZE(nobody); i++) {
        snprintf(buf, sizeof(buf), "HTTP/1.1 %s\r\nContent-Length: 7\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n", nobody[i]);
        CHECK_EQ_INT(resp_framing(buf, false, &k, &cl), 0);
        CHECK_EQ_INT(k, GW_BODY_NONE);
    }
    /* chunked wins over Content-Length */
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nTransfer-Encoding: chunked"
                              "\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_CHUNKED);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n"
                              "Content-Length: x\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_CHUNKED);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
                              "chunked\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_CHUNKED);
    /* TE not ending in chunked: read until close */
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n"
                              "Content-Length: 7\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_EOF);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", false, &k,
                              &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_EOF);
    /* Content-Length */
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_LENGTH);
    CHECK_EQ_INT(cl, 0);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n",
                              false, &k, &cl), 0);
    CHECK_EQ_INT(cl, 3);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                              false, &k, &cl), GW_EBADMSG);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, &k, &cl),
                 GW_EBADMSG);
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", false, &k, &cl),
                 GW_EBADMSG);
    /* close-delimited */
    CHECK_EQ_INT(resp_framing("HTTP/1.1 200 OK\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_EOF);
    CHECK_EQ_INT(resp_framing("HTTP/1.0 500 Oops\r\nServer: x\r\n\r\n", false, &k, &cl), 0);
    CHECK_EQ_INT(k, GW_BODY_EOF);
}

/* ---------------------------------------------------------------- chunked decoder */

/* Decodes s (length n) fed in pieces cut at the given offsets; mode 0 = separate out buffer,
 * 1 = in place, 2 = pass-through, 3 = canonical pass-through (body gets the forwarded bytes).
 * Returns the final feed result; body/total/consumed out. */
static int chunk_decode(const char *s, size_t n, const size_t *cuts, size_t ncuts, int mode,
                        char *body, size_t *body_len, size_t *consumed_total)
{
    gw_chunked_t st;
    memset(&st, 0, sizeof(st));
    char *in = malloc(n ? n : 1);
    memcpy(in, s, n);
    size_t pos = 0, blen = 0;
    int rc = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        /* each piece gets its own exact-size buffer */
        size_t plen = end - pos;
        char *piece = malloc(plen ? plen : 1);
        memcpy(piece, in + pos, plen);
        char *outbuf = mode == 0 ? malloc(plen ? plen : 1) : mode == 1 ? piece : NULL;
        size_t used = 99999, olen = 99999;
        if (mode == 3) {
            rc = gw_chunked_canon(&st, piece, plen, &used, &olen);
            outbuf = piece;
        } else {
            rc = gw_chunked_feed(&st, piece, plen, &used, outbuf, &olen);
        }
        if (used > plen || olen > used)
            rc = -1000;
        if (rc == 0 && used != plen)
            rc = -1001;
        if (mode != 2)
            memcpy(body + blen, outbuf, olen);
        blen += olen;
        pos += used;
        if (mode == 0)
            free(outbuf);
        free(piece);
        if (rc != 0)
            break;
    }
    free(in);
    *body_len = blen;
    *consumed_total = pos;
    return rc;
}

static int chunk_ok(const char *s, size_t n, const char *want, size_t trailing)
{
    char body[4096];
    size_t blen, used, wl = strlen(want);
    int good = 1;
    for (int mode = 0; mode < 3; mode++) {
        /* whole */
        int rc = chunk_decode(s, n, NULL, 0, mode, body, &blen, &used);
        good &= rc == 1 && used == n - trailing && blen == wl && (mode == 2 || !memcmp(body, want, wl));
        /* split at every offset */
        for (size_t cut = 0; cut <= n; cut++) {
            rc = chunk_decode(s, n, &cut, 1, mode, body, &blen, &used);
            good &= rc == 1 && used == n - trailing && blen == wl &&
                    (mode == 2 || !memcmp(body, want, wl));
        }
        /* byte by byte */
        size_t cuts[1024];
        for (size_t i = 0; i < n && i < 1024; i++)
            cuts[i] = i + 1;
        rc = chunk_decode(s, n, cuts, n < 1024 ? n : 1024, mode, body, &blen, &used);
        good &= rc == 1 && used == n - trailing && blen == wl && (mode == 2 || !memcmp(body, want, wl));
    }
    return good;
}

/* Malformed input must fail however it is split, and never report completion. */
static int chunk_bad(const char *s, size_t n)
{
    char body[4096];
    size_t blen, used;
    int good = 1;
    for (int mode = 0; mode < 4; mode++) {
        good &= chunk_decode(s, n, NULL, 0, mode, body, &blen, &used) == GW_EBADMSG;
        for (size_t cut = 0; cut <= n; cut++)
            good &= chunk_decode(s, n, &cut, 1, mode, body, &blen, &used) == GW_EBADMSG;
    }
    return good;
}

/* Canonical pass-through forwards exactly want for s, however s is split. */
static int canon_ok(const char *s, size_t n, const char *want, size_t trailing)
{
    char out[4096];
    size_t olen, used, wl = strlen(want);
    int good = chunk_decode(s, n, NULL, 0, 3, out, &olen, &used) == 1 && used == n - trailing && olen == wl &&
               !memcmp(out, want, wl);
    for (size_t cut = 0; cut <= n; cut++)
        good &= chunk_decode(s, n, &cut, 1, 3, out, &olen, &used) == 1 && used == n - trailing && olen == wl &&
                !memcmp(out, want, wl);
    size_t cuts[1024];
    for (size_t i = 0; i < n && i < 1024; i++)
        cuts[i] = i + 1;
    good &= chunk_decode(s, n, cuts, n < 1024 ? n : 1024, 3, out, &olen, &used) == 1 && olen == wl &&
            !memcmp(out, want, wl);
    if (!good)
        fprintf(stderr, "canon_ok failed for %.*s\n", (int)n, s);
    return good;
}

#define CANON_OK(s, want, trailing) CHECK(canon_ok((s), sizeof(s) - 1, (want), (trailing)))
#define CHUNK_OK(s, want, trailing) CHECK(chunk_ok((s), sizeof(s) - 1, (want), (trailing)))
#define CHUNK_BAD(s) CHECK(chunk_bad((s), sizeof(s) - 1))

static void test_chunked_basic(void)
{
    CHUNK_OK("0\r\n\r\n", "", 0);
    CHUNK_OK("5\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0);
    CHUNK_OK("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0);
    CHUNK_OK("000005\r\nhello\r\n000\r\n\r\n", "hello", 0);
    CHUNK_OK("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n", 0); /* CR/LF inside data are data */

    /* in-place decoding leaves the body at the start of the buffer */
    char buf[] = "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nNEXT";
    gw_chunked_t st = {0};
    size_t used, olen;
    CHECK_EQ_INT(gw_chunked_feed(&st, buf, sizeof(buf) - 1, &used, buf, &olen), 1);
    CHECK_EQ_INT(used, sizeof(buf) - 5);
    CHECK_EQ_INT(olen, 7);
    CHECK(memcmp(buf, "abcdefg", 7) == 0);
    CHECK(memcmp(buf + used, "NEXT", 4) == 0); /* bytes past the end untouched */

    /* pass-through: out NULL, out_len counts body bytes, input untouched */
    char pt[] = "3\r\nabc\r\n0\r\n\r\n";
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(gw_chunked_feed(&st, pt, sizeof(pt) - 1, &used, NULL, &olen), 1);
    CHECK_EQ_INT(used, sizeof(pt) - 1);
    CHECK_EQ_INT(olen, 3);
    CHECK_EQ_STR(pt, "3\r\nabc\r\n0\r\n\r\n");
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(gw_chunked_feed(&st, pt, sizeof(pt) - 1, NULL, NULL, NULL), 1);

    /* incomplete input: 0 with everything consumed */
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(gw_chunked_feed(&st, "5\r\nhel", 6, &used, NULL, &olen), 0);
    CHECK_EQ_INT(used, 6);
    CHECK_EQ_INT(olen, 3);
    CHECK_EQ_INT(gw_chunked_feed(&st, "", 0, &used, NULL, &olen), 0);
    CHECK_EQ_INT(used, 0);
    CHECK_EQ_INT(gw_chunked_feed(&st, "lo\r\n0\r\n\r\n", 9, &used, NULL, &olen), 1);
    CHECK_EQ_INT(used, 9);
    CHECK_EQ_INT(olen, 2);
}

static void test_chunked_after_end(void)
{
    CHUNK_OK("0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "", 18);
    CHUNK_OK("2\r\nhi\r\n0\r\n\r\n0\r\n\r\n", "hi", 5);
    CHUNK_OK("2\r\nhi\r\n0\r\n\r\nX", "hi", 1);

    /* once done, more input is not consumed */
    gw_chunked_t st = {0};
    size_t used = 5, olen = 5;
    CHECK_EQ_INT(gw_chunked_feed(&st, "0\r\n\r\n", 5, &used, NULL, &olen), 1);
    CHECK_EQ_INT(gw_chunked_feed(&st, "1\r\na\r\n", 6, &used, NULL, &olen), 1);
    CHECK_EQ_INT(used, 0);
    CHECK_EQ_INT(olen, 0);
}

static void test_chunked_extensions(void)
{
    CHUNK_OK("5;name=value\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5;a;b=c;d=\"quoted str\"\r\nhello\r\n0;last\r\n\r\n", "hello", 0);
    CHUNK_OK("5 ;a = b\r\nhello\r\n0\t;x\r\n\r\n", "hello", 0);
    CHUNK_OK("5 \r\nhello\r\n0\r\n\r\n", "hello", 0); /* BWS before CRLF */
    CHUNK_BAD("5;a\nhello\r\n0\r\n\r\n");              /* bare LF ends the extension */
    CHUNK_BAD("5;a\rb\r\nhello\r\n0\r\n\r\n");          /* bare CR */
    CHUNK_BAD("5;a\x01\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5 5\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5 x\r\nhello\r\n0\r\n\r\n");
    /* RFC 9112 §7.1.1 grammar: BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] */
    CHUNK_OK("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5;a=\"q\\\"x\" ;b\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5;a ;b\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5;a=b ;c=\"d\" \r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5\t\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_OK("5;a=\"\xe9\"\r\nhello\r\n0\r\n\r\n", "hello", 0); /* obs-text */
    CHUNK_BAD("5;\r\nhello\r\n0\r\n\r\n");                   /* empty name */
    CHUNK_BAD("5; \r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;;a\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;=b\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a=\r\nhello\r\n0\r\n\r\n");                 /* empty value */
    CHUNK_BAD("5;a=\"x\r\nhello\r\n0\r\n\r\n");              /* unterminated quoted string */
    CHUNK_BAD("5;a=\"x\\\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a=b c\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a b\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a=b/c\r\nhello\r\n0\r\n\r\n");              /* '/' is no tchar */
    CHUNK_BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a\x7f\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5 ;\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("0;\r\n\r\n");
    /* at most 16 hex digits, leading zeros included (Go refuses more) */
    CHUNK_OK("0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CHUNK_BAD("00000000000000005\r\nhello\r\n0\r\n\r\n");

    /* extension up to the 8 KiB line cap is fine, over it is not */
    size_t n = 8300;
    char *b = malloc(n + 32);
    for (size_t ext = 8180; ext < 8200; ext++) {
        size_t off = 0;
        b[off++] = '1';
        b[off++] = ';';
        memset(b + off, 'x', ext);
        off += ext;
        memcpy(b + off, "\r\nZ\r\n0\r\n\r\n", 10);
        off += 10;
        gw_chunked_t st = {0};
        size_t used, olen;
        int rc = gw_chunked_feed(&st, b, off, &used, NULL, &olen);
        CHECK_EQ_INT(rc, ext + 2 <= 8192 ? 1 : GW_EBADMSG);
        /* split into two pieces: same verdict */
        memset(&st, 0, sizeof(st));
        rc = gw_chunked_feed(&st, b, 100, &used, NULL, &olen);
        CHECK_EQ_INT(rc, 0);
        rc = gw_chunked_feed(&st, b + 100, off - 100, &used, NULL, &olen);
        CHECK_EQ_INT(rc, ext + 2 <= 8192 ? 1 : GW_EBADMSG);
    }
    /* endless leading zeros hit the same cap */
    memset(b, '0', 8300);
    gw_chunked_t st = {0};
    size_t used, olen;
    CHECK_EQ_INT(gw_chunked_feed(&st, b, 8300, &used, NULL, &olen), GW_EBADMSG);
    free(b);
}

static void test_chunked_canonical(void)
{
    /* canonical input is forwarded as it is, in place, nothing moved */
    CANON_OK("5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 0);
    CANON_OK("000005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT",
             "000005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n", 4);
    char plain[] = "3\r\nabc\r\n0\r\n\r\n";
    gw_chunked_t st = {0};
    size_t used, olen;
    CHECK_EQ_INT(gw_chunked_canon(&st, plain, sizeof(plain) - 1, &used, &olen), 1);
    CHECK_EQ_INT(used, sizeof(plain) - 1);
    CHECK_EQ_INT(olen, used);
    CHECK_EQ_STR(plain, "3\r\nabc\r\n0\r\n\r\n");
    /* BWS, extensions and trailers removed; digits, data and CRLFs as received */
    CANON_OK("5 \r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 0);
    CANON_OK("5\t\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 0);
    CANON_OK("5;a=b\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 0);
    CANON_OK("5 ; a = \"x;y\\\"z\" ; b\r\nhello\r\n3;c\r\n\r\n;\r\n0;last\r\nX-T: 1\r\nY:\r\n\r\nNEXT",
             "5\r\nhello\r\n3\r\n\r\n;\r\n0\r\n\r\n", 4);
    CANON_OK("0\r\nX-Sum: abc\r\n\r\n", "0\r\n\r\n", 0);
    /* the bytes past the consumed part are untouched */
    char ext[] = "2;x=\"long extension\"\r\nhi\r\n0\r\nT: v\r\n\r\nGET";
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(gw_chunked_canon(&st, ext, sizeof(ext) - 1, &used, &olen), 1);
    CHECK_EQ_INT(used, sizeof(ext) - 4);
    CHECK_EQ_INT(olen, 12);
    CHECK(memcmp(ext, "2\r\nhi\r\n0\r\n\r\n", 12) == 0);
    CHECK(memcmp(ext + used, "GET", 3) == 0);
    /* malformed lines fail in canonical mode too (CHUNK_BAD covers mode 3) */
    CHUNK_BAD("5;a=\"x\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_trailers(void)
{
    CHUNK_OK("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:\t1 2 \r\n\r\n", "hello", 0);
    CHUNK_OK("0\r\nA:\r\n\r\nrest", "", 4);
    CHUNK_BAD("0\r\nX: a\r\n b\r\n\r\n");    /* obs-fold */
    CHUNK_BAD("0\r\nX : a\r\n\r\n");         /* SP before colon */
    CHUNK_BAD("0\r\nNoColon\r\n\r\n");
    CHUNK_BAD("0\r\nX: a\nY: b\r\n\r\n");   /* bare LF */
    CHUNK_BAD("0\r\nX: a\rY: b\r\n\r\n");   /* bare CR */
    CHUNK_BAD("0\r\n\n");
    CHUNK_BAD("0\r\n\r\r");

    /* trailer section cap */
    char *b = malloc(9000);
    for (size_t vlen = 8180; vlen < 8195; vlen++) {
        size_t off = 0;
        memcpy(b, "0\r\nX:", 5);
        off = 5;
        memset(b + off, 'v', vlen);
        off += vlen;
        memcpy(b + off, "\r\n\r\n", 4);
        off += 4;
        gw_chunked_t st = {0};
        size_t used, olen;
        int rc = gw_chunked_feed(&st, b, off, &used, NULL, &olen);
        CHECK_EQ_INT(rc, 2 + vlen + 4 <= 8192 ? 1 : GW_EBADMSG);
    }
    free(b);
}

static void test_chunked_bad_framing(void)
{
    CHUNK_BAD("\r\nhello\r\n0\r\n\r\n");     /* empty size */
    CHUNK_BAD("g\r\n");                      /* bad hex */
    CHUNK_BAD("-1\r\n");
    CHUNK_BAD("+5\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("0x5\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD(" 5\r\nhello\r\n0\r\n\r\n");
    CHUNK_BAD("5\nhello\r\n0\r\n\r\n");      /* bare LF after size */
    CHUNK_BAD("5\rhello\r\n0\r\n\r\n");
    CHUNK_BAD("5\r\nhelloX\r\n0\r\n\r\n");   /* missing CRLF after data */
    CHUNK_BAD("5\r\nhello\n0\r\n\r\n");
    CHUNK_BAD("5\r\nhello\rX0\r\n\r\n");
    CHUNK_BAD("5\r\nhello0\r\n\r\n");
    CHUNK_BAD("3\r\nhello\r\n0\r\n\r\n");     /* size too small */
    CHUNK_BAD("0\r\n\n");
    CHUNK_BAD("0\n\n");
    CHUNK_BAD("1111111111111111111111\r\n"); /* oversize hex */
    CHUNK_BAD("ffffffffffffffffff\r\n");
    CHUNK_BAD("1000000000000001\r\n");      /* 2^60 + 1 */
    CHUNK_BAD("0000000010000000000000001\r\n");

    /* exactly 2^60 is accepted (then waits for data) */
    gw_chunked_t st = {0};
    size_t used, olen;
    CHECK_EQ_INT(gw_chunked_feed(&st, "1000000000000000\r\nab", 20, &used, NULL, &olen), 0);
    CHECK_EQ_INT(used, 20);
    CHECK(st.remaining == ((uint64_t)1 << 60) - 2);
    CHECK_EQ_INT(olen, 2);

    /* errors are sticky */
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(gw_chunked_feed(&st, "5\r\nhelloXY", 10, &used, NULL, &olen), GW_EBADMSG);
    CHECK_EQ_INT(used, 8);
    CHECK_EQ_INT(gw_chunked_feed(&st, "0\r\n\r\n", 5, &used, NULL, &olen), GW_EBADMSG);
}

static void test_chunked_large(void)
{
    /* 3 chunks of 1000 bytes with varied contents, every split offset, all modes */
    static char msg[3100], want[3001];
    size_t off = 0, w = 0;
    for (int c = 0; c < 3; c++) {
        off += (size_t)sprintf(msg + off, "3E8\r\n");
        for (int i = 0; i < 1000; i++) {
            char ch = (char)('a' + (c * 7 + i) % 26);
            msg[off++] = ch;
            want[w++] = ch;
        }
        msg[off++] = '\r';
        msg[off++] = '\n';
    }
    off += (size_t)sprintf(msg + off, "0\r\n\r\n");
    want[w] = 0;
    CHECK(chunk_ok(msg, off, want, 0));
}

int main(void)
{
    GW_RUN(test_simple_get);
    GW_RUN(test_methods);
    GW_RUN(test_targets);
    GW_RUN(test_versions);
    GW_RUN(test_leading_empty_lines);
    GW_RUN(test_headers_ows);
    GW_RUN(test_many_headers);
    GW_RUN(test_head_limit);
    GW_RUN(test_incremental);
    GW_RUN(test_scan_request);
    GW_RUN(test_scan_linear);
    GW_RUN(test_smuggling_heads);
    GW_RUN(test_find_header);
    GW_RUN(test_content_length_parse);
    GW_RUN(test_request_framing);
    GW_RUN(test_response_heads);
    GW_RUN(test_response_framing);
    GW_RUN(test_chunked_basic);
    GW_RUN(test_chunked_after_end);
    GW_RUN(test_chunked_extensions);
    GW_RUN(test_chunked_canonical);
    GW_RUN(test_chunked_trailers);
    GW_RUN(test_chunked_bad_framing);
    GW_RUN(test_chunked_large);
    return gw_test_summary();
}
