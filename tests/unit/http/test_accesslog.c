/* test_accesslog.c: unit tests for src/http/accesslog.c (line format, escaping, omissions). */
#include <string.h>

#include <jansson.h>

#include "http/accesslog.h"
#include "test.h"

static json_t *line(const gw_access_t *e)
{
    gw_buf_t b;
    gw_buf_init(&b, 1 << 20);
    gw_accesslog_format(&b, "2026-11-30T05:00:00", 7, e);
    CHECK(b.len > 0 && b.base[b.len - 1] == '\n');
    CHECK(memchr(b.base, '\n', b.len) == b.base + b.len - 1); /* one line */
    json_error_t err;
    json_t *j = json_loadb(b.base, b.len, 0, &err);
    if (!j) fprintf(stderr, "not JSON (%s): %.*s", err.text, (int)b.len, b.base);
    CHECK(j != NULL);
    gw_buf_free(&b);
    return j;
}

static void test_full(void)
{
    gw_access_t e = {.method = gw_str("POST"), .path = gw_str("/app/svc/x"), .app = "app", .service = "My \"S\"",
                     .status = 502, .upstream_status = 503, .bytes_in = 12, .bytes_out = 34,
                     .total_ns = 1234567, .upstream_ns = 1000, .request_id = gw_str("rid-1"), .client = "::1"};
    json_t *j = line(&e);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "level")), "info");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "ts")), "2026-11-30T05:00:00.007Z");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "msg")), "request");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "method")), "POST");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "service")), "My \"S\"");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "path")), "/app/svc/x");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "status")), 502);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "upstream_status")), 503);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "bytes_in")), 12);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "bytes_out")), 34);
    CHECK(json_real_value(json_object_get(j, "duration_ms")) == 1.234);
    CHECK(json_real_value(json_object_get(j, "upstream_ms")) == 0.001);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "request_id")), "rid-1");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "client")), "::1");
    json_decref(j);
}

static void test_omitted_and_hostile(void)
{
    /* no API, no upstream answer, invalid UTF-8 and control bytes in the path */
    gw_access_t e = {.method = gw_str("GET"), .path = {"/\xff\x01\"x\\", 6}, .status = 404};
    json_t *j = line(&e);
    CHECK(json_object_get(j, "app") == NULL && json_object_get(j, "service") == NULL);
    CHECK(json_object_get(j, "upstream_status") == NULL && json_object_get(j, "upstream_ms") == NULL);
    CHECK(json_object_get(j, "request_id") == NULL && json_object_get(j, "client") == NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "path")), "/\xef\xbf\xbd\x01\"x\\");
    CHECK(json_real_value(json_object_get(j, "duration_ms")) == 0.0);
    json_decref(j);
}

static void test_long_path_cut(void)
{
    static char p[5000];
    memset(p, 'a', sizeof(p));
    p[2047] = '\xc3'; /* a two-byte character cut in half by the limit */
    p[2048] = '\xa9';
    gw_access_t e = {.method = gw_str("GET"), .path = {p, sizeof(p)}, .status = 200};
    json_t *j = line(&e);
    const char *lp = json_string_value(json_object_get(j, "path"));
    CHECK(lp && strlen(lp) == 2047 + 3); /* the half character became U+FFFD */
    CHECK(json_is_true(json_object_get(j, "path_truncated")));
    json_decref(j);
}

int main(void)
{
    GW_RUN(test_full);
    GW_RUN(test_omitted_and_hostile);
    GW_RUN(test_long_path_cut);
    return gw_test_summary();
}
