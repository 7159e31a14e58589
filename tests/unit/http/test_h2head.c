/* test_h2head.c: http/h2head.c, the HTTP/1 request head -> HTTP/2 fields conversion: pseudo
 * headers, lower-cased names, hop-by-hop rules, body framing, upgrade detection, refusals. */
#include <stdlib.h>
#include <string.h>

#include "http/h2head.h"
#include "test.h"

static gw_h2_req_t req;
static char names[4096];

static int conv(const char *head)
{
    return gw_h2_request_from_h1(head, strlen(head), names, &req);
}

/* The value of field name (exact, as converted), or NULL; *count: how many there are. */
static const char *field(const char *name, int *count)
{
    static char v[512];
    const char *out = NULL;
    *count = 0;
    for (size_t i = 0; i < req.nfields; i++) {
        gw_str_t n = req.fields[i].name;
        if (n.n == strlen(name) && memcmp(n.p, name, n.n) == 0) {
            (*count)++;
            if (!out) {
                snprintf(v, sizeof(v), "%.*s", (int)req.fields[i].value.n, req.fields[i].value.p);
                out = v;
            }
        }
    }
    return out;
}

static void expect(const char *name, const char *value)
{
    int n;
    const char *v = field(name, &n);
    CHECK(n == 1);
    if (v) CHECK_EQ_STR(v, value);
}

static void absent(const char *name)
{
    int n;
    field(name, &n);
    CHECK_EQ_INT(n, 0);
}

static void test_pseudo_headers_first(void)
{
    CHECK_EQ_INT(conv("GET /a/b?c=d HTTP/1.1\r\nHost: api.example:8443\r\nAccept: */*\r\n\r\n"), GW_OK);
    CHECK(req.nfields == 5);
    static const char *const order[] = {":method", ":scheme", ":authority", ":path", "accept"};
    for (size_t i = 0; i < 5; i++)
        CHECK(req.fields[i].name.n == strlen(order[i]) && memcmp(req.fields[i].name.p, order[i], strlen(order[i])) == 0);
    expect(":method", "GET");
    expect(":scheme", "https");
    expect(":authority", "api.example:8443");
    expect(":path", "/a/b?c=d");
    expect("accept", "*/*");
    CHECK(req.body == GW_BODY_NONE && !req.upgrade);
}

static void test_names_lower_cased_values_kept(void)
{
    CHECK_EQ_INT(conv("POST /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"
                      "Content-Type: Text/Plain\r\nAuthorization: Bearer AbC\r\nContent-Length: 5\r\n\r\n"), GW_OK);
    expect("x-forwarded-for", "10.0.0.1, 127.0.0.1");
    expect("content-type", "Text/Plain");
    expect("authorization", "Bearer AbC");
    expect("content-length", "5");
    CHECK(req.body == GW_BODY_LENGTH && req.content_length == 5);
}

static void test_hop_by_hop_dropped(void)
{
    CHECK_EQ_INT(conv("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: 5\r\n"
                      "Proxy-Connection: keep-alive\r\nX-Private: secret\r\nTE: gzip\r\nX-Kept: 1\r\n\r\n"), GW_OK);
    absent("connection");
    absent("keep-alive");
    absent("proxy-connection");
    absent("x-private"); /* named by Connection */
    absent("te");        /* anything but "trailers" */
    absent("host");      /* it is :authority */
    expect("x-kept", "1");
    CHECK(req.nfields == 5);
}

static void test_te_trailers_kept(void)
{
    CHECK_EQ_INT(conv("GET / HTTP/1.1\r\nHost: h\r\nTE: Trailers\r\n\r\n"), GW_OK);
    expect("te", "trailers");
}

static void test_chunked_body(void)
{
    CHECK_EQ_INT(conv("PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), GW_OK);
    CHECK(req.body == GW_BODY_CHUNKED);
    absent("transfer-encoding");
}

static void test_upgrade_detected(void)
{
    CHECK_EQ_INT(conv("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), GW_OK);
    CHECK(req.upgrade);
    absent("upgrade");
}

/* The quick scan agrees with the conversion on whether a head asks for an upgrade. */
static void test_upgrade_scan(void)
{
    static const char *heads[] = {
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: a\r\nUPGRADE: h2c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Upgrade: no\r\nUpgrade-Insecure-Requests: 1\r\n\r\n",
        "GET /upgrade: HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: upgrade: no\r\n\r\n",
    };
    static const bool want[] = {true, true, false, false, false};
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        CHECK_EQ_INT(gw_h2_head_upgrade(heads[i], strlen(heads[i])), want[i]);
        CHECK_EQ_INT(conv(heads[i]), GW_OK);
        CHECK_EQ_INT(req.upgrade, want[i]);
    }
}

static void test_options_star(void)
{
    CHECK_EQ_INT(conv("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), GW_OK);
    expect(":path", "*");
    CHECK_EQ_INT(conv("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), GW_EBADMSG);
}

static void test_refused(void)
{
    CHECK_EQ_INT(conv("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), GW_EBADMSG);           /* no Host */
    CHECK_EQ_INT(conv("GET / HTTP/1.1\r\nHost:\r\n\r\n"), GW_EBADMSG);                  /* empty Host */
    CHECK_EQ_INT(conv("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), GW_EBADMSG);
    CHECK_EQ_INT(conv("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n"), GW_EBADMSG);       /* absolute-form */
    CHECK_EQ_INT(conv("GET / HTTP/1.1\r\nHost: h\r\n"), GW_EBADMSG);                    /* incomplete */
    CHECK_EQ_INT(conv("GET / HTTP/1.1\r\nHost: h\r\n\r\nextra"), GW_EBADMSG);           /* bytes after it */
    CHECK_EQ_INT(conv("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                 GW_EBADMSG);
}

int main(void)
{
    GW_RUN(test_pseudo_headers_first);
    GW_RUN(test_names_lower_cased_values_kept);
    GW_RUN(test_hop_by_hop_dropped);
    GW_RUN(test_te_trailers_kept);
    GW_RUN(test_chunked_body);
    GW_RUN(test_upgrade_detected);
    GW_RUN(test_upgrade_scan);
    GW_RUN(test_options_star);
    GW_RUN(test_refused);
    return gw_test_summary();
}
