/* test_oauth_wire.c: unit tests for src/auth/oauth_wire.c (form/query encoding, token and
 * error response parsing); bodies are parsed from exact-size heap copies so ASan sees over-reads. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oauth_wire.h"
#include "test.h"
#include "util/common.h"

/* ---- encoding ---- */

static void test_form_basic(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 256);
    CHECK_EQ_INT(gw_form_append(&b, "client_id", "a b&c=d/\xc3\xa9"), 0);
    CHECK_EQ_STR(b.base, "client_id=a+b%26c%3Dd%2F%C3%A9");
    CHECK_EQ_INT(gw_form_append(&b, "grant_type", "client_credentials"), 0);
    CHECK_EQ_STR(b.base, "client_id=a+b%26c%3Dd%2F%C3%A9&grant_type=client_credentials");
    gw_buf_free(&b);

    /* empty value, empty name; '&' only between pairs */
    gw_buf_init(&b, 256);
    CHECK_EQ_INT(gw_form_append(&b, "k", ""), 0);
    CHECK_EQ_STR(b.base, "k=");
    CHECK_EQ_INT(gw_form_append(&b, "", ""), 0);
    CHECK_EQ_STR(b.base, "k=&=");
    gw_buf_free(&b);

    /* the literal set: ALPHA DIGIT * - . _ ; '~' and '+' are escaped */
    gw_buf_init(&b, 256);
    CHECK_EQ_INT(gw_form_append(&b, "AZaz09*-._", "~+%!'()\t\x7f\x01"), 0);
    CHECK_EQ_STR(b.base, "AZaz09*-._=%7E%2B%25%21%27%28%29%09%7F%01");
    gw_buf_free(&b);
}

static void test_form_cap(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 9);
    CHECK_EQ_INT(gw_form_append(&b, "a", "b c"), 0); /* "a=b+c" 5 bytes */
    CHECK_EQ_INT(gw_form_append(&b, "d", "/"), GW_ENOMEM); /* "&d=%2F" would make 11 */
    CHECK_EQ_INT(b.len, 5);
    CHECK_EQ_STR(b.base, "a=b+c");
    CHECK_EQ_INT(gw_form_append(&b, "d", "e"), 0); /* "&d=e" exactly fills the cap */
    CHECK_EQ_INT(b.len, 9);
    CHECK_EQ_STR(b.base, "a=b+c&d=e");
    CHECK_EQ_INT(gw_form_append(&b, "", ""), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "a=b+c&d=e");
    gw_buf_free(&b);

    gw_buf_init(&b, 0);
    CHECK_EQ_INT(gw_form_append(&b, "", ""), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 0);
    gw_buf_free(&b);
}

static void test_query_escape(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 256);
    CHECK_EQ_INT(gw_url_query_escape(&b, "a b&c=d/\xc3\xa9~-._*+"), 0);
    CHECK_EQ_STR(b.base, "a%20b%26c%3Dd%2F%C3%A9~-._%2A%2B");
    CHECK_EQ_INT(gw_url_query_escape(&b, ""), 0);
    CHECK_EQ_INT(gw_url_query_escape(&b, "?#%"), 0);
    CHECK_EQ_STR(b.base, "a%20b%26c%3Dd%2F%C3%A9~-._%2A%2B%3F%23%25");
    gw_buf_free(&b);

    gw_buf_init(&b, 4);
    CHECK_EQ_INT(gw_url_query_escape(&b, "x"), 0);
    CHECK_EQ_INT(gw_url_query_escape(&b, " "), 0); /* "%20" exactly fills */
    CHECK_EQ_STR(b.base, "x%20");
    CHECK_EQ_INT(gw_url_query_escape(&b, "y"), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "x%20");
    gw_buf_free(&b);
}

/* ---- token responses ---- */

static const char *why;
static gw_token_response_t tok;

/* Parses s[0..n) from an exact-size heap copy with no NUL terminator. */
static int parse_n(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    why = "unset";
    int rc = gw_token_response_parse(b, n, &tok, &why);
    free(b);
    return rc;
}

static int parse(const char *s) { return parse_n(s, strlen(s)); }

static bool zeroed(const gw_token_response_t *t)
{
    return !t->access_token && !t->token_type && t->expires_in == 0;
}

static void test_token_ok(void)
{
    CHECK_EQ_INT(parse("{\"access_token\":\"abc.def\",\"token_type\":\"Bearer\",\"expires_in\":3600}"), 0);
    CHECK_EQ_STR(tok.access_token, "abc.def");
    CHECK_EQ_STR(tok.token_type, "Bearer");
    CHECK_EQ_INT(tok.expires_in, 3600);
    CHECK(why == NULL);
    gw_token_response_clear(&tok);
    CHECK(tok.access_token == NULL && tok.token_type == NULL);
    CHECK_EQ_INT(tok.expires_in, -1);
    gw_token_response_clear(&tok); /* twice is harmless */

    /* whitespace, other members, unicode escapes, non-ASCII */
    CHECK_EQ_INT(parse(" \n{ \"scope\": \"x y\", \"access_token\" : \"t\\u00e9\\/k\", \"n\": [1,{}] }\r\n"), 0);
    CHECK_EQ_STR(tok.access_token, "t\xc3\xa9/k");
    CHECK(tok.token_type == NULL);
    CHECK_EQ_INT(tok.expires_in, -1);
    gw_token_response_clear(&tok);

    /* token_type of another type counts as absent; duplicate key: the last wins */
    CHECK_EQ_INT(parse("{\"access_token\":\"a\",\"access_token\":\"b\",\"token_type\":1}"), 0);
    CHECK_EQ_STR(tok.access_token, "b");
    CHECK(tok.token_type == NULL);
    gw_token_response_clear(&tok);

    /* why may be NULL */
    const char *body = "{\"access_token\":\"z\"}";
    CHECK_EQ_INT(gw_token_response_parse(body, strlen(body), &tok, NULL), 0);
    CHECK_EQ_STR(tok.access_token, "z");
    gw_token_response_clear(&tok);
    CHECK_EQ_INT(gw_token_response_parse(body, 5, &tok, NULL), GW_EBADMSG);
    CHECK(zeroed(&tok));
}

static long long expires(const char *json_value)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"expires_in\":%s,\"access_token\":\"t\"}", json_value);
    if (parse(body) != 0) return -1000;
    long long e = tok.expires_in;
    gw_token_response_clear(&tok);
    return e;
}

static void test_token_expires(void)
{
    CHECK_EQ_INT(expires("0"), 0);
    CHECK_EQ_INT(expires("1"), 1);
    CHECK_EQ_INT(expires("3599.99"), 3599);  /* real: truncated */
    CHECK_EQ_INT(expires("1.5e3"), 1500);
    CHECK_EQ_INT(expires("\"3600\""), 3600); /* string of digits */
    CHECK_EQ_INT(expires("\"007\""), 7);
    CHECK_EQ_INT(expires("null"), -1);
    CHECK_EQ_INT(expires("-1"), -1);
    CHECK_EQ_INT(expires("-5"), -1);
    CHECK_EQ_INT(expires("-0.5"), -1);
    CHECK_EQ_INT(expires("true"), -1);
    CHECK_EQ_INT(expires("[3600]"), -1);
    CHECK_EQ_INT(expires("{}"), -1);
    CHECK_EQ_INT(expires("\"\""), -1);
    CHECK_EQ_INT(expires("\" 3600\""), -1);
    CHECK_EQ_INT(expires("\"3600 \""), -1);
    CHECK_EQ_INT(expires("\"-3600\""), -1);
    CHECK_EQ_INT(expires("\"+3600\""), -1);
    CHECK_EQ_INT(expires("\"36.5\""), -1);
    CHECK_EQ_INT(expires("\"1e3\""), -1);
    /* clamped to 10 years */
    CHECK_EQ_INT(expires("315360000"), GW_TOKEN_EXPIRES_MAX);
    CHECK_EQ_INT(expires("315359999"), 315359999);
    CHECK_EQ_INT(expires("315360001"), GW_TOKEN_EXPIRES_MAX);
    CHECK_EQ_INT(expires("99999999999999999999999999"), GW_TOKEN_EXPIRES_MAX); /* > int64 */
    CHECK_EQ_INT(expires("1e300"), GW_TOKEN_EXPIRES_MAX);
    CHECK_EQ_INT(expires("\"315360001\""), GW_TOKEN_EXPIRES_MAX);
    CHECK_EQ_INT(expires("\"99999999999999999999999999999999\""), GW_TOKEN_EXPIRES_MAX);
    /* absent */
    CHECK_EQ_INT(parse("{\"access_token\":\"t\"}"), 0);
    CHECK_EQ_INT(tok.expires_in, -1);
    gw_token_response_clear(&tok);
}

/* Expects GW_EBADMSG, a zeroed result and the given reason. */
static void bad(const char *body, const char *reason)
{
    int rc = parse(body);
    CHECK_EQ_INT(rc, GW_EBADMSG);
    CHECK(zeroed(&tok));
    CHECK_EQ_STR(why, reason);
    if (rc == 0) gw_token_response_clear(&tok);
}

static void test_token_bad(void)
{
    const char *nojson = "response is not valid JSON", *noobj = "response is not a JSON object";
    const char *missing = "access_token missing or empty", *notstr = "access_token is not a string";
    const char *ctl = "access_token has control characters";
    bad("", nojson);
    bad("   ", nojson);
    bad("access_token=abc", nojson);
    bad("{\"access_token\":\"t\"", nojson);
    bad("{\"access_token\":\"t\"} x", nojson);           /* trailing garbage */
    bad("{\"access_token\":\"t\"}{}", nojson);
    bad("{\"access_token\":\"t\\u0000u\"}", nojson);     /* NUL refused by the JSON parser */
    bad("{\"access_token\":\"\xff\"}", nojson);          /* invalid UTF-8 */
    bad("{\"access_token\":\"t\",\"expires_in\":1e999}", nojson);
    bad("[{\"access_token\":\"t\"}]", noobj);
    bad("[]", noobj);
    bad("{}", missing);
    bad("{\"token\":\"t\"}", missing);
    bad("{\"access_token\":\"\"}", missing);
    bad("{\"access_token\":null}", missing);
    bad("{\"access_token\":42}", notstr);
    bad("{\"access_token\":[\"t\"]}", notstr);
    bad("{\"access_token\":{}}", notstr);
    bad("{\"access_token\":true}", notstr);
    bad("{\"access_token\":\"abc\\r\\nX-Evil: 1\"}", ctl);
    bad("{\"access_token\":\"abc\\n\"}", ctl);
    bad("{\"access_token\":\"a\\tb\"}", ctl);
    bad("{\"access_token\":\"a\\u007fb\"}", ctl);
    bad("{\"access_token\":\"a\\u001fb\"}", ctl);

    /* NUL bytes and an empty body given as NULL */
    CHECK_EQ_INT(parse_n("{\"access_token\":\"t\"}\0", 21), GW_EBADMSG);
    CHECK_EQ_INT(gw_token_response_parse(NULL, 0, &tok, &why), GW_EBADMSG);
    CHECK(zeroed(&tok));
    CHECK_EQ_STR(why, nojson);
}

static void test_token_length(void)
{
    size_t pre = strlen("{\"access_token\":\""), n = pre + GW_TOKEN_MAX_LEN + 1 + 2;
    char *body = malloc(n + 1);
    memcpy(body, "{\"access_token\":\"", pre);
    memset(body + pre, 'x', GW_TOKEN_MAX_LEN);
    memcpy(body + pre + GW_TOKEN_MAX_LEN, "\"}", 3);
    CHECK_EQ_INT(parse(body), 0); /* exactly the limit */
    CHECK_EQ_INT(tok.access_token ? strlen(tok.access_token) : 0, GW_TOKEN_MAX_LEN);
    gw_token_response_clear(&tok);
    memset(body + pre, 'x', GW_TOKEN_MAX_LEN + 1);
    memcpy(body + pre + GW_TOKEN_MAX_LEN + 1, "\"}", 3);
    bad(body, "access_token is too long");
    free(body);
}

/* ---- error responses ---- */

static bool err_n(const char *s, size_t n, char *code, size_t cap)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    bool r = gw_oauth_error_response(b, n, code, cap);
    free(b);
    return r;
}

static bool err(const char *s, char *code, size_t cap) { return err_n(s, strlen(s), code, cap); }

static void test_error_response(void)
{
    char code[16];
    CHECK(err("{\"error\":\"invalid_client\",\"error_description\":\"bad secret\"}", code, sizeof(code)));
    CHECK_EQ_STR(code, "invalid_client");
    CHECK(err("{\"error\":\"invalid_client\"}", NULL, 0));
    CHECK(err("{\"error\":\"invalid_client\"}", code, 0)); /* codecap 0: code not written */
    CHECK(err("{\"error\":\"\"}", code, sizeof(code)));
    CHECK_EQ_STR(code, "");

    /* truncated to codecap-1 */
    CHECK(err("{\"error\":\"unauthorized_client_x\"}", code, 8));
    CHECK_EQ_STR(code, "unautho");
    CHECK(err("{\"error\":\"abc\"}", code, 1));
    CHECK_EQ_STR(code, "");
    /* non-printable and non-ASCII bytes become '?' */
    CHECK(err("{\"error\":\"a\\r\\nb\\u00e9\\u007f~\"}", code, sizeof(code)));
    CHECK_EQ_STR(code, "a??b???~");

    /* not error responses: code becomes "" */
    memcpy(code, "junk", 5);
    CHECK(!err("{\"error\":42}", code, sizeof(code)));
    CHECK_EQ_STR(code, "");
    CHECK(!err("{\"error\":null}", code, sizeof(code)));
    CHECK(!err("{\"error\":{\"code\":\"x\"}}", code, sizeof(code)));
    CHECK(!err("{\"access_token\":\"t\"}", code, sizeof(code)));
    CHECK(!err("[\"error\"]", code, sizeof(code)));
    CHECK(!err("{\"error\":\"x\"} trailing", code, sizeof(code)));
    CHECK(!err("{\"error\":\"x\"", code, sizeof(code)));
    CHECK(!err("error=invalid_client", code, sizeof(code)));
    CHECK(!err("", code, sizeof(code)));
    CHECK(!gw_oauth_error_response(NULL, 0, code, sizeof(code)));
    CHECK_EQ_STR(code, "");
    /* a huge integer elsewhere does not hide the error */
    CHECK(err("{\"n\":123456789012345678901234567890,\"error\":\"e\"}", code, sizeof(code)));
    CHECK_EQ_STR(code, "e");
}

int main(void)
{
    GW_RUN(test_form_basic);
    GW_RUN(test_form_cap);
    GW_RUN(test_query_escape);
    GW_RUN(test_token_ok);
    GW_RUN(test_token_expires);
    GW_RUN(test_token_bad);
    GW_RUN(test_token_length);
    GW_RUN(test_error_response);
    return gw_test_summary();
}
