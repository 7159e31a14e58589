/* test_rewrite.c: unit tests for src/gateway/rewrite.c (SPEC §1, §5, §7 rewriting rules). */
#include <stdlib.h>

#include "gateway/rewrite.h"
#include "test.h"
#include "util/common.h"

#define BIG 4096

/* ---- gw_split_gateway_path ---- */

static int split(const char *path, int nseg, gw_str_t seg[3], gw_str_t *rest)
{
    return gw_split_gateway_path(gw_str(path), nseg, seg, rest);
}

static void test_split_standalone(void)
{
    gw_str_t seg[3], rest;
    CHECK_EQ_INT(split("/app/svc/a/b/c", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[0], "app");
    CHECK_EQ_SLICE(seg[1], "svc");
    CHECK_EQ_SLICE(rest, "a/b/c");

    CHECK_EQ_INT(split("/app/svc", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[0], "app");
    CHECK_EQ_SLICE(seg[1], "svc");
    CHECK_EQ_SLICE(rest, "");

    CHECK_EQ_INT(split("app/svc/x", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(rest, "x");

    /* all leading and trailing slashes are trimmed */
    CHECK_EQ_INT(split("///app/svc/x///", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[0], "app");
    CHECK_EQ_SLICE(rest, "x");
    CHECK_EQ_INT(split("/app/svc/", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[1], "svc");
    CHECK_EQ_SLICE(rest, "");

    /* escaped bytes are not decoded */
    CHECK_EQ_INT(split("/app/my%2Fsvc/a%20b", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[1], "my%2Fsvc");
    CHECK_EQ_SLICE(rest, "a%20b");
}

static void test_split_empty_segments(void)
{
    gw_str_t seg[3], rest;
    CHECK_EQ_INT(split("/app//svc/x", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[0], "app");
    CHECK_EQ_SLICE(seg[1], "");
    CHECK_EQ_SLICE(rest, "svc/x");

    CHECK_EQ_INT(split("/app/svc//x", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(rest, "/x");

    CHECK_EQ_INT(split("/app/svc/a//b", 2, seg, &rest), 0);
    CHECK_EQ_SLICE(rest, "a//b");
}

static void test_split_too_few(void)
{
    gw_str_t seg[3], rest;
    CHECK_EQ_INT(split("", 2, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/", 2, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("////", 2, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/app", 2, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/app/", 2, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/app/svc", 3, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/app/svc/", 3, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/a/b/c", 0, seg, &rest), GW_EINVAL);
    CHECK_EQ_INT(split("/a/b/c", 4, seg, &rest), GW_EINVAL);
    /* one (empty) segment exists even for "/" */
    CHECK_EQ_INT(split("/", 1, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[0], "");
    CHECK_EQ_SLICE(rest, "");
}

static void test_split_compass(void)
{
    gw_str_t seg[3], rest;
    CHECK_EQ_INT(split("/app/svc/entry/orders/1", 3, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[0], "app");
    CHECK_EQ_SLICE(seg[1], "svc");
    CHECK_EQ_SLICE(seg[2], "entry");
    CHECK_EQ_SLICE(rest, "orders/1");

    CHECK_EQ_INT(split("/app/svc/entry", 3, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[2], "entry");
    CHECK_EQ_SLICE(rest, "");

    CHECK_EQ_INT(split("/app/svc//x", 3, seg, &rest), 0);
    CHECK_EQ_SLICE(seg[2], "");
    CHECK_EQ_SLICE(rest, "x");
}

/* ---- gw_split_target ---- */

static void test_split_target(void)
{
    gw_str_t path, query;
    bool hq;
    CHECK_EQ_INT(gw_split_target(gw_str("/a/b?x=1&y=2"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(path, "/a/b");
    CHECK_EQ_SLICE(query, "x=1&y=2");
    CHECK(hq);

    CHECK_EQ_INT(gw_split_target(gw_str("/a/b"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(path, "/a/b");
    CHECK_EQ_SLICE(query, "");
    CHECK(!hq);

    CHECK_EQ_INT(gw_split_target(gw_str("/a?"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(path, "/a");
    CHECK_EQ_SLICE(query, "");
    CHECK(hq);

    CHECK_EQ_INT(gw_split_target(gw_str("/a?b?c"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(query, "b?c");

    CHECK_EQ_INT(gw_split_target(gw_str("/"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(path, "/");

    CHECK_EQ_INT(gw_split_target(gw_str(""), &path, &query, &hq), GW_EINVAL);
    CHECK_EQ_INT(gw_split_target(gw_str("*"), &path, &query, &hq), GW_EINVAL);
    CHECK_EQ_INT(gw_split_target(gw_str("http://h:1/a/b?q=1"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(path, "/a/b");
    CHECK_EQ_SLICE(query, "q=1");
    CHECK_EQ_INT(gw_split_target(gw_str("HTTPS://h/x"), &path, &query, &hq), 0);
    CHECK_EQ_SLICE(path, "/x");
    CHECK_EQ_INT(gw_split_target(gw_str("http://h"), &path, &query, &hq), GW_EINVAL);
    CHECK_EQ_INT(gw_split_target(gw_str("http://h?a=/b"), &path, &query, &hq), GW_EINVAL);
    CHECK_EQ_INT(gw_split_target(gw_str("ftp://h/a"), &path, &query, &hq), GW_EINVAL);
    CHECK_EQ_INT(gw_split_target(gw_str("?x"), &path, &query, &hq), GW_EINVAL);
}

/* ---- gw_append_upstream_path ---- */

static char *upath(const char *base, const char *tp, bool enc)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    int rc = gw_append_upstream_path(&b, base, gw_str(tp), enc);
    char *s = gw_buf_take(&b, NULL);
    if (rc) {
        free(s);
        return NULL;
    }
    return s;
}

#define CHECK_UPATH(base, tp, enc, want)   \
    do {                                   \
        char *_s = upath(base, tp, enc);   \
        CHECK_EQ_STR(_s, want);            \
        free(_s);                          \
    } while (0)

static void test_upstream_path_join(void)
{
    for (int enc = 0; enc < 2; enc++) {
        CHECK_UPATH("/api/", "x", enc, "/api/x");
        CHECK_UPATH("/api", "x", enc, "/api/x");
        CHECK_UPATH("/api", "", enc, "/api");
        CHECK_UPATH("", "", enc, "/");
        CHECK_UPATH("", "x", enc, "/x");
        CHECK_UPATH("/api/", "", enc, "/api/");
        CHECK_UPATH("/", "", enc, "/");
        CHECK_UPATH("/", "x/y", enc, "/x/y");
        CHECK_UPATH("/api/v1", "orders/1", enc, "/api/v1/orders/1");
        /* a leading '/' of the target path (from "//" in the request) is merged */
        CHECK_UPATH("/api", "/x", enc, "/api/x");
        CHECK_UPATH("/api/", "/x", enc, "/api/x");
        CHECK_UPATH("", "/x", enc, "/x");
        CHECK_UPATH("/api/", "//x", enc, "/api//x");
        CHECK_UPATH(NULL, "x", enc, "/x");
        /* the base path is never re-encoded */
        CHECK_UPATH("/a%20b", "x", enc, "/a%20b/x");
    }
}

static void test_upstream_path_encode(void)
{
    CHECK_UPATH("/api", "a%2Fb", true, "/api/a/b");
    CHECK_UPATH("/api", "People('O''Neil')", true, "/api/People%28%27O%27%27Neil%27%29");
    CHECK_UPATH("/api", "a%20b", true, "/api/a%20b");
    CHECK_UPATH("/api", "a b", true, "/api/a%20b");
    CHECK_UPATH("/api", "%7Euser", true, "/api/~user");
    CHECK_UPATH("/api", "$&+,/:;=@", true, "/api/$&+,/:;=@");
    CHECK_UPATH("/api", "-._~AZaz09", true, "/api/-._~AZaz09");
    CHECK_UPATH("/api", "%24%26%2B%2C%3A%3B%3D%40", true, "/api/$&+,:;=@");
    CHECK_UPATH("/api", "a%3fb%23c", true, "/api/a%3Fb%23c");
    CHECK_UPATH("/api", "%e2%82%ac", true, "/api/%E2%82%AC");
    CHECK_UPATH("/api", "%zz%", true, "/api/%25zz%25");
    CHECK_UPATH("/api", "%2", true, "/api/%252");
    CHECK_UPATH("/api", "!*()[]{}\"<>|\\^`", true, "/api/%21%2A%28%29%5B%5D%7B%7D%22%3C%3E%7C%5C%5E%60");
    /* a decoded leading '/' joins like a literal one */
    CHECK_UPATH("/api/", "%2Fx", true, "/api/x");
    CHECK_UPATH("/api", "%2Fx", true, "/api/x");
    CHECK_UPATH("", "%2Fx", true, "/x");
}

static void test_upstream_path_raw(void)
{
    CHECK_UPATH("/api", "People('O''Neil')", false, "/api/People('O''Neil')");
    CHECK_UPATH("/api", "a%2Fb", false, "/api/a%2Fb");
    CHECK_UPATH("/api", "a%20b%zz", false, "/api/a%20b%zz");
    CHECK_UPATH("/api", "%2Fx", false, "/api/%2Fx");
}

static void test_upstream_path_cap(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 8);
    CHECK_EQ_INT(gw_buf_puts(&b, "ab"), 0);
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/api", gw_str("xyz"), true), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 2);
    CHECK_EQ_STR(b.base, "ab");
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/api", gw_str("'"), true), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab");
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/api", gw_str("x"), false), 0);
    CHECK_EQ_STR(b.base, "ab/api/x");
    CHECK_EQ_INT(gw_append_upstream_path(&b, "", gw_str(""), false), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab/api/x");
    gw_buf_free(&b);
}

/* ---- gw_append_upstream_path: dot-segments and leading "//" ([better] §5.1) ---- */

/* The path must be refused with GW_EPATH_ESCAPES, leaving the buffer as it was. */
static void check_escapes(int line, const char *base, const char *tp, bool enc)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    CHECK_EQ_INT(gw_buf_puts(&b, "ab"), 0);
    int rc = gw_append_upstream_path(&b, base, gw_str(tp), enc);
    if (rc != GW_EPATH_ESCAPES)
        fprintf(stderr, "line %d: base \"%s\" path \"%s\" enc %d: rc %d, out \"%s\"\n", line,
                base ? base : "(null)", tp, (int)enc, rc, b.base);
    CHECK_EQ_INT(rc, GW_EPATH_ESCAPES);
    CHECK_EQ_INT(b.len, 2);
    CHECK_EQ_STR(b.base, "ab");
    gw_buf_free(&b);
}

#define CHECK_UPATH_ESC(base, tp, enc) check_escapes(__LINE__, base, tp, enc)

static void test_upstream_path_dot_escapes(void)
{
    for (int enc = 0; enc < 2; enc++) {
        /* the reported variants */
        CHECK_UPATH_ESC("/alpha", "..%2f..%2fbeta%2fsecret", enc);
        CHECK_UPATH_ESC("/alpha", "..%2F..%2Fbeta%2Fsecret", enc);
        CHECK_UPATH_ESC("/alpha", "../../beta/secret", enc);
        CHECK_UPATH_ESC("/alpha", "%2e%2e/%2e%2e/beta/secret", enc);
        CHECK_UPATH_ESC("/alpha", "/%2e%2e/%2e%2e/beta/secret", enc);
        CHECK_UPATH_ESC("/alpha", "%2E%2E/beta", enc);
        CHECK_UPATH_ESC("/alpha", "%2e%2E/beta", enc);
        CHECK_UPATH_ESC("/alpha", "%2E%2e/beta", enc);
        CHECK_UPATH_ESC("/alpha", ".%2e/beta", enc);
        CHECK_UPATH_ESC("/alpha", ".%2E/beta", enc);
        CHECK_UPATH_ESC("/alpha", "%2e./beta", enc);
        CHECK_UPATH_ESC("/alpha", "%2e%2e%2fbeta", enc);
        /* a single ".." in every position and spelling */
        CHECK_UPATH_ESC("/alpha", "..", enc);
        CHECK_UPATH_ESC("/alpha", "../", enc);
        CHECK_UPATH_ESC("/alpha", "/..", enc);
        CHECK_UPATH_ESC("/alpha", "/../", enc);
        CHECK_UPATH_ESC("/alpha", "%2e%2e", enc);
        CHECK_UPATH_ESC("/alpha", "./..", enc);
        CHECK_UPATH_ESC("/alpha", "./../x", enc);
        CHECK_UPATH_ESC("/alpha", "a/../..", enc);
        CHECK_UPATH_ESC("/alpha", "a/../../x", enc);
        CHECK_UPATH_ESC("/alpha", "a/b/../../..", enc);
        CHECK_UPATH_ESC("/alpha", "a/./.././../x", enc);
        CHECK_UPATH_ESC("/alpha", "a/%2e%2e/%2E%2E/x", enc);
        CHECK_UPATH_ESC("/alpha", "a//../../..", enc);
        /* every shape of targetUrl path */
        CHECK_UPATH_ESC("", "..", enc);
        CHECK_UPATH_ESC("", "../x", enc);
        CHECK_UPATH_ESC("", "/../x", enc);
        CHECK_UPATH_ESC("", "a/../../x", enc);
        CHECK_UPATH_ESC(NULL, "../x", enc);
        CHECK_UPATH_ESC("/", "..", enc);
        CHECK_UPATH_ESC("/", "/../x", enc);
        CHECK_UPATH_ESC("/", "%2e%2e/x", enc);
        CHECK_UPATH_ESC("/base", "../base2/x", enc);
        CHECK_UPATH_ESC("/base/", "..", enc);
        CHECK_UPATH_ESC("/base/", "/..", enc);
        CHECK_UPATH_ESC("/base/", "x/../../y", enc);
        CHECK_UPATH_ESC("/base/", ".%2E/y", enc);
        CHECK_UPATH_ESC("base", "../x", enc);
        /* the targetUrl path is not resolved, and still bounds the target path */
        CHECK_UPATH_ESC("/a/./", "..", enc);
        CHECK_UPATH_ESC("/a/b/..", "../x", enc);
        /* under encodeUrl false these are one segment, but an upstream decoding %2F would
         * climb out: refused in both modes */
        CHECK_UPATH_ESC("/alpha", "a%2F..%2F..%2Fx", enc);
        CHECK_UPATH_ESC("/alpha", "a%2f..%2f..", enc);
        CHECK_UPATH_ESC("/alpha", "x/..%2F..", enc);
    }
    /* encodeUrl false: with %2F decoded (and "//" merged) an upstream would see
     * "/alpha/a/../../x" */
    CHECK_UPATH_ESC("/alpha", "a%2F%2F..%2F..%2Fx", false);
    CHECK_UPATH_ESC("/alpha", "a%2F/..%2F..%2Fx", false);
    /* encodeUrl true: %2F is a separator before resolving */
    CHECK_UPATH_ESC("/alpha", "a%2F..%2F..", true);
    CHECK_UPATH_ESC("/alpha", "%2F..", true);
    CHECK_UPATH_ESC("/alpha", "%2F%2E%2E%2Fbeta", true);
}

static void test_upstream_path_dot_inside(void)
{
    for (int enc = 0; enc < 2; enc++) {
        CHECK_UPATH("/base", "a/../b", enc, "/base/b");
        CHECK_UPATH("/base", "./a", enc, "/base/a");
        CHECK_UPATH("/base", "a/./b", enc, "/base/a/b");
        CHECK_UPATH("/base", "%2E/x", enc, "/base/x");
        CHECK_UPATH("/base", "%2e/x", enc, "/base/x");
        CHECK_UPATH("/base", "a/%2e%2e/b", enc, "/base/b");
        CHECK_UPATH("/base", "a/.%2E/b", enc, "/base/b");
        CHECK_UPATH("/base", "a/%2E./b", enc, "/base/b");
        CHECK_UPATH("/base", "a/b/../../c", enc, "/base/c");
        CHECK_UPATH("/base", "a/b/c/../../d/./e", enc, "/base/a/d/e");
        CHECK_UPATH("/base", "/./a", enc, "/base/a");
        CHECK_UPATH("/base", "/a/../b", enc, "/base/b");
        CHECK_UPATH("/base", "././.", enc, "/base/");
        /* a trailing "." or ".." leaves a trailing '/' (RFC 3986 §5.2.4 output) */
        CHECK_UPATH("/base", ".", enc, "/base/");
        CHECK_UPATH("/base", "./", enc, "/base/");
        CHECK_UPATH("/base", "a/.", enc, "/base/a/");
        CHECK_UPATH("/base", "a/..", enc, "/base/");
        CHECK_UPATH("/base", "a/../", enc, "/base/");
        CHECK_UPATH("/base", "a/b/..", enc, "/base/a/");
        CHECK_UPATH("/base", "a/%2e%2e", enc, "/base/");
        /* empty segments are kept, and are segments ".." can remove */
        CHECK_UPATH("/base", "a//b/./c", enc, "/base/a//b/c");
        CHECK_UPATH("/base", "a//b/..", enc, "/base/a//");
        CHECK_UPATH("/base", "a//../b", enc, "/base/a/b");
        CHECK_UPATH("/base", "//..", enc, "/base/");
        CHECK_UPATH("/base/", "//x/..", enc, "/base//");
        /* every shape of targetUrl path */
        CHECK_UPATH("", "a/../b", enc, "/b");
        CHECK_UPATH("", "./a", enc, "/a");
        CHECK_UPATH("", "a/..", enc, "/");
        CHECK_UPATH("", ".", enc, "/");
        CHECK_UPATH("", "/./x", enc, "/x");
        CHECK_UPATH(NULL, "a/./b", enc, "/a/b");
        CHECK_UPATH("/", "a/../b", enc, "/b");
        CHECK_UPATH("/", ".", enc, "/");
        CHECK_UPATH("/", "a/..", enc, "/");
        CHECK_UPATH("/", "%2E/x", enc, "/x");
        CHECK_UPATH("/base/", "a/../b", enc, "/base/b");
        CHECK_UPATH("/base/", "./a", enc, "/base/a");
        CHECK_UPATH("/base/", ".", enc, "/base/");
        CHECK_UPATH("/base/", "a/..", enc, "/base/");
        CHECK_UPATH("/base/", "/a/./b", enc, "/base/a/b");
        CHECK_UPATH("base", "a/../b", enc, "/base/b");
        /* the targetUrl path stays as configured, dot-segments included */
        CHECK_UPATH("/a/../b", "x/../y", enc, "/a/../b/y");
        CHECK_UPATH("/a/./", "./x", enc, "/a/./x");
        /* not dot-segments */
        CHECK_UPATH("/base", "...", enc, "/base/...");
        CHECK_UPATH("/base", "..a/.b/a./a..", enc, "/base/..a/.b/a./a..");
        CHECK_UPATH("/base", ".../..../x", enc, "/base/.../..../x");
        CHECK_UPATH("/base", "%252e%252e/x", enc, "/base/%252e%252e/x");
    }
    /* encodeUrl false: kept segments stay byte for byte; %2F does not split */
    CHECK_UPATH("/base", "%2e%2e%2e/x", false, "/base/%2e%2e%2e/x");
    CHECK_UPATH("/base", "x/%2e%2e/People('O''Neil')", false, "/base/People('O''Neil')");
    CHECK_UPATH("/base", "a%20b/c/../d%zz", false, "/base/a%20b/d%zz");
    CHECK_UPATH("/base", "a%2Fb/../c", false, "/base/c");
    CHECK_UPATH("/base", "a%2Fb/./c", false, "/base/a%2Fb/c");
    CHECK_UPATH("/base", "a%2Fb/..", false, "/base/");
    CHECK_UPATH("/base", "a/b%2F..", false, "/base/a/b%2F..");
    CHECK_UPATH("/base", "a/b%2F..%2F..", false, "/base/a/b%2F..%2F..");
    CHECK_UPATH("/base", "a/%2E%2E%2Fb", false, "/base/a/%2E%2E%2Fb");
    CHECK_UPATH("/base", "%2Fx/%2E", false, "/base/%2Fx/");
    CHECK_UPATH("/base", "a%2F%2Fb/./c", false, "/base/a%2F%2Fb/c");
    /* encodeUrl true: decoded first (%2F is '/', %2E is '.'), then resolved, then encoded */
    CHECK_UPATH("/base", "%2e%2e%2e/x", true, "/base/.../x");
    CHECK_UPATH("/base", "a%2Fb%2F..%2Fc", true, "/base/a/c");
    CHECK_UPATH("/base", "a%2Fb/..", true, "/base/a/");
    CHECK_UPATH("/base", "a%2F..", true, "/base/");
    CHECK_UPATH("/base", "a/b%2F..%2F..", true, "/base/");
    CHECK_UPATH("/base", "a%20b/c/%2E%2E/d'", true, "/base/a%20b/d%27");
    CHECK_UPATH("/base", "x/%2e/People('O''Neil')", true, "/base/x/People%28%27O%27%27Neil%27%29");
    CHECK_UPATH("/base/", "%2F.%2Fx", true, "/base/x");
    CHECK_UPATH("", "%2F%2E%2Fx", true, "/x");
    CHECK_UPATH("/base", "%2e%2e%2", true, "/base/..%252");
}

static void test_upstream_path_leading_slashes(void)
{
    for (int enc = 0; enc < 2; enc++) {
        /* targetUrl http://h + "///evil.example/x" must not become "//evil.example/x" */
        CHECK_UPATH("", "/evil.example/x", enc, "/evil.example/x");
        CHECK_UPATH("", "//evil.example/x", enc, "/evil.example/x");
        CHECK_UPATH(NULL, "//evil.example/x", enc, "/evil.example/x");
        CHECK_UPATH("", "///x", enc, "/x");
        CHECK_UPATH("/", "//evil.example/x", enc, "/evil.example/x");
        CHECK_UPATH("/", "///x", enc, "/x");
        CHECK_UPATH("", "//", enc, "/");
        CHECK_UPATH("/", "//", enc, "/");
        CHECK_UPATH("", "//x/..", enc, "/");
        CHECK_UPATH("", "//../x", enc, "/x");
        CHECK_UPATH("", "/./x", enc, "/x");
        CHECK_UPATH("", "./", enc, "/");
        CHECK_UPATH("", "a/..//x", enc, "/x");
        CHECK_UPATH_ESC("/", "a/../../", enc);
        /* nor when the targetUrl path itself starts with "//" */
        CHECK_UPATH("//p", "x", enc, "/p/x");
        CHECK_UPATH("///p/", "", enc, "/p/");
        CHECK_UPATH("//", "", enc, "/");
        CHECK_UPATH("//", "x", enc, "/x");
        /* "//" later in the path is untouched */
        CHECK_UPATH("/api/", "//x", enc, "/api//x");
        CHECK_UPATH("/a//b", "c//d", enc, "/a//b/c//d");
    }
    CHECK_UPATH("", "%2F%2Fevil.example/x", true, "/evil.example/x");
    CHECK_UPATH("/", "%2F%2Fevil.example/x", true, "/evil.example/x");
    CHECK_UPATH("", "%2F%2Fevil.example/x", false, "/%2F%2Fevil.example/x");
}

static void test_upstream_path_dot_cap(void)
{
    gw_buf_t b;
    /* the cap applies to the join before resolution: "/api/x/../y" is 11 bytes */
    gw_buf_init(&b, 12);
    CHECK_EQ_INT(gw_buf_puts(&b, "ab"), 0);
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/api", gw_str("x/../y"), false), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab");
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/api", gw_str("x/.."), false), 0);
    CHECK_EQ_STR(b.base, "ab/api/");
    /* an escaping path leaves the buffer as it was */
    CHECK_EQ_INT(gw_append_upstream_path(&b, "", gw_str(".."), true), GW_EPATH_ESCAPES);
    CHECK_EQ_STR(b.base, "ab/api/");
    CHECK_EQ_INT(b.len, 7);
    /* ... but a join over the cap is GW_ENOMEM even when it would escape */
    CHECK_EQ_INT(gw_append_upstream_path(&b, "", gw_str("a/../.."), true), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab/api/");
    gw_buf_free(&b);
    gw_buf_init(&b, BIG);
    CHECK_EQ_INT(gw_buf_puts(&b, "ab/api/"), 0);
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/x", gw_str("a/b/c/../../../.."), false), GW_EPATH_ESCAPES);
    CHECK_EQ_STR(b.base, "ab/api/");
    CHECK_EQ_INT(gw_append_upstream_path(&b, "/x", gw_str("a%2F..%2F..%2Fy"), false), GW_EPATH_ESCAPES);
    CHECK_EQ_STR(b.base, "ab/api/");
    /* collapsing "//" only looks at what this call appended */
    gw_buf_reset(&b);
    CHECK_EQ_INT(gw_buf_puts(&b, "/"), 0);
    CHECK_EQ_INT(gw_append_upstream_path(&b, "", gw_str("//x"), true), 0);
    CHECK_EQ_STR(b.base, "//x");
    gw_buf_free(&b);
    CHECK_EQ_INT(GW_EPATH_ESCAPES < 0, 1);
    CHECK(GW_EPATH_ESCAPES != GW_ENOMEM && GW_EPATH_ESCAPES != GW_EINVAL);
}

/* ---- gw_append_path_encoded / gw_append_percent_decoded ---- */

static void test_path_encoded(void)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    CHECK_EQ_INT(gw_append_path_encoded(&b, "a b/c'd", 7), 0);
    CHECK_EQ_STR(b.base, "a%20b/c%27d");
    gw_buf_reset(&b);
    CHECK_EQ_INT(gw_append_path_encoded(&b, "\0\x7f\x80\xff%", 5), 0);
    CHECK_EQ_STR(b.base, "%00%7F%80%FF%25");
    gw_buf_reset(&b);
    CHECK_EQ_INT(gw_append_path_encoded(&b, "", 0), 0);
    CHECK_EQ_INT(b.len, 0);
    gw_buf_free(&b);

    gw_buf_init(&b, 4);
    CHECK_EQ_INT(gw_append_path_encoded(&b, "ab'", 3), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(gw_append_path_encoded(&b, "ab", 2), 0);
    CHECK_EQ_INT(gw_append_path_encoded(&b, "c'", 2), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab");
    gw_buf_free(&b);
}

static void test_percent_decoded(void)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    CHECK_EQ_INT(gw_append_percent_decoded(&b, "a%20b%2f%2F+", 12), 0);
    CHECK_EQ_STR(b.base, "a b//+");
    gw_buf_reset(&b);
    CHECK_EQ_INT(gw_append_percent_decoded(&b, "%zz%4%%41", 9), 0);
    CHECK_EQ_STR(b.base, "%zz%4%A");
    gw_buf_reset(&b);
    CHECK_EQ_INT(gw_append_percent_decoded(&b, "%00x", 4), 0);
    CHECK_EQ_INT(b.len, 2);
    CHECK(b.base[0] == '\0' && b.base[1] == 'x');
    gw_buf_free(&b);

    /* decoding shrinks: fits even though the escaped form would not */
    gw_buf_init(&b, 3);
    CHECK_EQ_INT(gw_append_percent_decoded(&b, "%41%42%43", 9), 0);
    CHECK_EQ_STR(b.base, "ABC");
    CHECK_EQ_INT(gw_append_percent_decoded(&b, "x", 1), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ABC");
    gw_buf_free(&b);

    /* longer than the internal chunk */
    gw_buf_init(&b, BIG);
    char in[1200], want[401];
    for (int i = 0; i < 400; i++) {
        memcpy(in + 3 * i, "%61", 3);
        want[i] = 'a';
    }
    want[400] = '\0';
    CHECK_EQ_INT(gw_append_percent_decoded(&b, in, 1200), 0);
    CHECK_EQ_STR(b.base, want);
    gw_buf_free(&b);
}

/* ---- gw_append_upstream_query ---- */

static char *uquery(const char *base, const char *caller, const gw_kv_t *extra, size_t n)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    int rc = gw_append_upstream_query(&b, base, gw_str(caller), extra, n);
    char *s = gw_buf_take(&b, NULL);
    if (rc) {
        free(s);
        return NULL;
    }
    return s;
}

#define CHECK_UQUERY(base, caller, extra, n, want) \
    do {                                          \
        char *_s = uquery(base, caller, extra, n); \
        CHECK_EQ_STR(_s, want);                   \
        free(_s);                                 \
    } while (0)

static void test_upstream_query_basic(void)
{
    CHECK_UQUERY("a=1", "b=2", NULL, 0, "a=1&b=2");
    CHECK_UQUERY("a=1", "", NULL, 0, "a=1");
    CHECK_UQUERY("", "b=2", NULL, 0, "b=2");
    CHECK_UQUERY(NULL, "b=2", NULL, 0, "b=2");
    CHECK_UQUERY("", "", NULL, 0, "");
    CHECK_UQUERY("a=1", "a=2", NULL, 0, "a=1&a=2");
    /* the caller's query is forwarded as sent */
    CHECK_UQUERY("", "x=%2F+y&&z", NULL, 0, "x=%2F+y&&z");
}

static void test_upstream_query_extra(void)
{
    gw_kv_t ex[] = {{"k", "v"}, {"multi", "1"}, {"multi", "2"}, {"sp ace", "a b&c=d/é"}};
    CHECK_UQUERY("", "", ex, 1, "k=v");
    CHECK_UQUERY("a=1", "b=2", ex, 1, "a=1&b=2&k=v");
    CHECK_UQUERY("a=1", "", ex, 1, "a=1&k=v");
    CHECK_UQUERY("", "", ex, 3, "k=v&multi=1&multi=2");
    CHECK_UQUERY("", "", ex + 3, 1, "sp+ace=a+b%26c%3Dd%2F%C3%A9");
    /* the caller's key wins (compared decoded) */
    CHECK_UQUERY("", "k=mine", ex, 1, "k=mine");
    CHECK_UQUERY("", "%6B=mine", ex, 1, "%6B=mine");
    CHECK_UQUERY("", "k", ex, 1, "k");
    CHECK_UQUERY("", "x=1&k=", ex, 1, "x=1&k=");
    CHECK_UQUERY("", "multi=9", ex, 3, "multi=9&k=v");
    CHECK_UQUERY("", "sp+ace=1", ex + 3, 1, "sp+ace=1");
    CHECK_UQUERY("", "sp%20ace=1", ex + 3, 1, "sp%20ace=1");
    /* keys of the targetUrl query do not suppress extras; values are not keys */
    CHECK_UQUERY("k=base", "", ex, 1, "k=base&k=v");
    CHECK_UQUERY("", "x=k", ex, 1, "x=k&k=v");
    CHECK_UQUERY("", "kk=1&K=2", ex, 1, "kk=1&K=2&k=v");
    gw_kv_t odd[] = {{"e", ""}, {"n", NULL}, {NULL, "x"}, {"~-._", "~-._"}};
    CHECK_UQUERY("", "", odd, 4, "e=&n=&~-._=~-._");
}

static void test_upstream_query_cap(void)
{
    gw_kv_t ex[] = {{"key", "value"}};
    gw_buf_t b;
    gw_buf_init(&b, 10);
    CHECK_EQ_INT(gw_buf_puts(&b, "?"), 0);
    CHECK_EQ_INT(gw_append_upstream_query(&b, "a=1", gw_str("b=2"), ex, 1), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "?");
    CHECK_EQ_INT(gw_append_upstream_query(&b, "a=1", gw_str("b=2"), NULL, 0), 0);
    CHECK_EQ_STR(b.base, "?a=1&b=2");
    gw_buf_free(&b);
}

/* ---- hop-by-hop ---- */

static void test_hop_by_hop(void)
{
    const char *hop[] = {"Connection", "keep-alive", "PROXY-CONNECTION", "Proxy-Authenticate",
                         "proxy-authorization", "TE", "te", "Trailer", "Transfer-Encoding", "upgrade"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(hop); i++) CHECK(gw_is_hop_by_hop(gw_str(hop[i])));
    const char *not_hop[] = {"Trailers", "Content-Length", "Authorization", "X-Forwarded-For", "", "T",
                             "Connection2", "Keep-Alive "};
    for (size_t i = 0; i < GW_ARRAY_SIZE(not_hop); i++) CHECK(!gw_is_hop_by_hop(gw_str(not_hop[i])));
}

static void test_connection_lists(void)
{
    gw_str_t v[] = {GW_STR_LIT("keep-alive, X-Foo"), GW_STR_LIT(" ,  x-bar ,"), GW_STR_LIT("close")};
    CHECK(gw_connection_lists(v, 3, gw_str("x-foo")));
    CHECK(gw_connection_lists(v, 3, gw_str("X-Bar")));
    CHECK(gw_connection_lists(v, 3, gw_str("Keep-Alive")));
    CHECK(gw_connection_lists(v, 3, gw_str("close")));
    CHECK(!gw_connection_lists(v, 3, gw_str("X-Baz")));
    CHECK(!gw_connection_lists(v, 3, gw_str("X")));
    CHECK(!gw_connection_lists(v, 2, gw_str("close")));
    CHECK(!gw_connection_lists(v, 0, gw_str("x-foo")));
    CHECK(!gw_connection_lists(v, 3, gw_str("")));
}

/* ---- gw_rewrite_location ---- */

static gw_target_t mk_target(const char *host, const char *path)
{
    gw_target_t t;
    memset(&t, 0, sizeof(t));
    t.hostname = (char *)host;
    t.path = (char *)path;
    t.query = (char *)"";
    return t;
}

/* Returns the rewritten Location, or NULL when it is left alone. */
static char *loc(const char *location, const char *req_url, const gw_target_t *t, const char *prefix, int *rcp)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    int rc = gw_rewrite_location(&b, gw_str(location), gw_str(req_url), t, gw_str(prefix));
    if (rcp) *rcp = rc;
    if (rc != 1) {
        CHECK_EQ_INT(b.len, 0);
        gw_buf_free(&b);
        return NULL;
    }
    return gw_buf_take(&b, NULL);
}

#define CHECK_LOC(location, req, t, prefix, want)          \
    do {                                                   \
        int _rc;                                           \
        char *_s = loc(location, req, t, prefix, &_rc);    \
        const char *_w = (want);                           \
        if (_w) {                                          \
            CHECK_EQ_INT(_rc, 1);                          \
            CHECK_EQ_STR(_s, _w);                          \
        } else {                                           \
            CHECK_EQ_INT(_rc, 0);                          \
            CHECK(_s == NULL);                             \
        }                                                  \
        free(_s);                                          \
    } while (0)

static void test_location_spec_examples(void)
{
    gw_target_t t = mk_target("127.0.0.1", "/");
    const char *req = "http://127.0.0.1:9000/target";
    const char *pre = "/redirects/unsecured";
    CHECK_LOC("http://127.0.0.1:9000/target", req, &t, pre, "/redirects/unsecured/target");
    CHECK_LOC("/target?x=1#f", req, &t, pre, "/redirects/unsecured/target?x=1#f");
    CHECK_LOC("http://other.example/target", req, &t, pre, NULL);
    CHECK_LOC("mailto:someone@example.com", req, &t, pre, NULL);
    t.path = (char *)"";
    CHECK_LOC("http://127.0.0.1:9000/target", "http://127.0.0.1:9000/x", &t, pre, "/redirects/unsecured/target");
}

static void test_location_target_path(void)
{
    gw_target_t t = mk_target("api.example.com", "/api");
    const char *req = "https://api.example.com/api/orders";
    const char *pre = "/app/svc";
    CHECK_LOC("/api/v2/x", req, &t, pre, "/app/svc/v2/x");
    CHECK_LOC("/apix", req, &t, pre, NULL);
    CHECK_LOC("/api", req, &t, pre, "/app/svc");
    CHECK_LOC("/api/", req, &t, pre, "/app/svc/");
    CHECK_LOC("/ap", req, &t, pre, NULL);
    CHECK_LOC("/", req, &t, pre, NULL);
    CHECK_LOC("/other/api", req, &t, pre, NULL);
    CHECK_LOC("https://api.example.com/api/v2?q=1", req, &t, pre, "/app/svc/v2?q=1");
    /* trailing '/' of the target path is ignored */
    t.path = (char *)"/api/";
    CHECK_LOC("/api", req, &t, pre, "/app/svc");
    CHECK_LOC("/api/x", req, &t, pre, "/app/svc/x");
    CHECK_LOC("/apix", req, &t, pre, NULL);
    /* compass prefix */
    CHECK_LOC("/api/x", req, &t, "/app/svc/entry", "/app/svc/entry/x");
    /* path compared byte for byte (escaped, case-sensitive) */
    CHECK_LOC("/API/x", req, &t, pre, NULL);
    CHECK_LOC("/api/a%20b", req, &t, pre, "/app/svc/a%20b");
}

static void test_location_host_scheme(void)
{
    gw_target_t t = mk_target("Api.Example.com", "");
    const char *req = "http://api.example.com:8080/x";
    const char *pre = "/a/s";
    /* host case-insensitive, port not compared, scheme may change between http and https */
    CHECK_LOC("HTTPS://API.EXAMPLE.COM:9999/y", req, &t, pre, "/a/s/y");
    CHECK_LOC("http://api.example.com/y", req, &t, pre, "/a/s/y");
    CHECK_LOC("http://user:pw@api.example.com/y", req, &t, pre, "/a/s/y");
    CHECK_LOC("ftp://api.example.com/y", req, &t, pre, NULL);
    CHECK_LOC("ws://api.example.com/y", req, &t, pre, NULL);
    CHECK_LOC("http://api.example.com.evil/y", req, &t, pre, NULL);
    CHECK_LOC("http://evil@other/y", req, &t, pre, NULL);
    CHECK_LOC("http:/y", req, &t, pre, NULL);
    CHECK_LOC("http://api.example.com:bad/y", req, &t, pre, NULL);
    CHECK_LOC("http://api.example.com", req, &t, pre, "/a/s");
    CHECK_LOC("http://api.example.com?q", req, &t, pre, "/a/s?q");
    CHECK_LOC("  /padded  ", req, &t, pre, "/a/s/padded");

    gw_target_t t6 = mk_target("::1", "/v");
    CHECK_LOC("http://[::1]:81/v/w", "http://[::1]:81/v/q", &t6, pre, "/a/s/w");
    CHECK_LOC("/v/w#frag", "http://[::1]:81/v/q", &t6, pre, "/a/s/w#frag");
    CHECK_LOC("http://[::2]/v/w", "http://[::1]:81/v/q", &t6, pre, NULL);
    CHECK_LOC("http://[::1/v/w", "http://[::1]:81/v/q", &t6, pre, NULL);
}

static void test_location_relative(void)
{
    gw_target_t t = mk_target("h", "/api");
    const char *req = "http://h/api/b/c/d;p?q";
    const char *pre = "/p";
    /* RFC 3986 §5.4.1 examples (base http://a/b/c/d;p?q), reanchored below /api */
    CHECK_LOC("g", req, &t, pre, "/p/b/c/g");
    CHECK_LOC("./g", req, &t, pre, "/p/b/c/g");
    CHECK_LOC("g/", req, &t, pre, "/p/b/c/g/");
    CHECK_LOC("?y", req, &t, pre, "/p/b/c/d;p?y");
    CHECK_LOC("g?y", req, &t, pre, "/p/b/c/g?y");
    CHECK_LOC("#s", req, &t, pre, "/p/b/c/d;p?q#s");
    CHECK_LOC("g?y#s", req, &t, pre, "/p/b/c/g?y#s");
    CHECK_LOC(";x", req, &t, pre, "/p/b/c/;x");
    CHECK_LOC("", req, &t, pre, "/p/b/c/d;p?q");
    CHECK_LOC(".", req, &t, pre, "/p/b/c/");
    CHECK_LOC("./", req, &t, pre, "/p/b/c/");
    CHECK_LOC("..", req, &t, pre, "/p/b/");
    CHECK_LOC("../", req, &t, pre, "/p/b/");
    CHECK_LOC("../g", req, &t, pre, "/p/b/g");
    CHECK_LOC("../..", req, &t, pre, "/p/");
    CHECK_LOC("../../g", req, &t, pre, "/p/g");
    CHECK_LOC("../../..", req, &t, pre, NULL); /* resolves to "/" : outside /api */
    CHECK_LOC("../../../g", req, &t, pre, NULL);
    CHECK_LOC("../../../../../api/g", req, &t, pre, "/p/g");
    CHECK_LOC("/./api/g", req, &t, pre, "/p/g");
    CHECK_LOC("/api/../g", req, &t, pre, NULL);
    CHECK_LOC("/api/x/..", req, &t, pre, "/p/");
    CHECK_LOC("/api/x/.", req, &t, pre, "/p/x/");
    CHECK_LOC("g.", req, &t, pre, "/p/b/c/g.");
    CHECK_LOC(".g", req, &t, pre, "/p/b/c/.g");
    CHECK_LOC("g..", req, &t, pre, "/p/b/c/g..");
    CHECK_LOC("..g", req, &t, pre, "/p/b/c/..g");
    CHECK_LOC("./../g", req, &t, pre, "/p/b/g");
    CHECK_LOC("./g/.", req, &t, pre, "/p/b/c/g/");
    CHECK_LOC("g/./h", req, &t, pre, "/p/b/c/g/h");
    CHECK_LOC("g/../h", req, &t, pre, "/p/b/c/h");
    CHECK_LOC("g;x=1/./y", req, &t, pre, "/p/b/c/g;x=1/y");
    CHECK_LOC("g;x=1/../y", req, &t, pre, "/p/b/c/y");
    CHECK_LOC("http:g", req, &t, pre, NULL); /* strict RFC: no authority */
    /* network-path references */
    CHECK_LOC("//h/api/z", req, &t, pre, "/p/z");
    CHECK_LOC("//H/api/z?1", req, &t, pre, "/p/z?1");
    CHECK_LOC("//g/api/z", req, &t, pre, NULL);
    CHECK_LOC("//h", req, &t, pre, NULL);

    /* base with an authority and an empty path */
    gw_target_t t2 = mk_target("h", "");
    CHECK_LOC("g", "http://h", &t2, pre, "/p/g");
    CHECK_LOC("?x", "http://h", &t2, pre, "/p?x");
    CHECK_LOC("", "http://h?a", &t2, pre, "/p?a");
    /* a bad base leaves the Location alone */
    CHECK_LOC("g", "/relative/base", &t2, pre, NULL);
    CHECK_LOC("g", "http://[h/", &t2, pre, NULL);
}

static void test_location_edge(void)
{
    gw_target_t t = mk_target("h", "/");
    const char *req = "http://h/";
    CHECK_LOC("http://h//evil.example/x", req, &t, "/a/s", "/a/s//evil.example/x");
    CHECK_LOC("/x?#", req, &t, "/a/s", "/a/s/x?#");
    CHECK_LOC("/x#a?b", req, &t, "/a/s", "/a/s/x#a?b");
    /* empty or NULL target host never matches */
    gw_target_t t0 = mk_target("", "/");
    CHECK_LOC("http:///x", "http:///", &t0, "/a/s", NULL);
    CHECK_EQ_INT(gw_rewrite_location(NULL, gw_str("/x"), gw_str(req), NULL, gw_str("/a")), 0);
}

static void test_location_cap(void)
{
    gw_target_t t = mk_target("h", "/api");
    gw_buf_t b;
    gw_buf_init(&b, 12);
    CHECK_EQ_INT(gw_buf_puts(&b, "L:"), 0);
    CHECK_EQ_INT(gw_rewrite_location(&b, gw_str("/api/xyz?q=1#f"), gw_str("http://h/api"), &t, gw_str("/a/s")),
                 GW_ENOMEM);
    CHECK_EQ_STR(b.base, "L:");
    CHECK_EQ_INT(gw_rewrite_location(&b, gw_str("/api/xyz?q"), gw_str("http://h/api"), &t, gw_str("/a/s")), 1);
    CHECK_EQ_STR(b.base, "L:/a/s/xyz?q");
    CHECK_EQ_INT(gw_rewrite_location(&b, gw_str("/other"), gw_str("http://h/api"), &t, gw_str("/a/s")), 0);
    CHECK_EQ_STR(b.base, "L:/a/s/xyz?q");
    gw_buf_free(&b);
}

/* ---- gw_append_error_body ---- */

static char *errbody(int code, const char *text)
{
    gw_buf_t b;
    gw_buf_init(&b, BIG);
    int rc = gw_append_error_body(&b, code, text);
    char *s = gw_buf_take(&b, NULL);
    if (rc) {
        free(s);
        return NULL;
    }
    return s;
}

#define CHECK_ERR(code, text, want)        \
    do {                                   \
        char *_s = errbody(code, text);    \
        CHECK_EQ_STR(_s, want);            \
        free(_s);                          \
    } while (0)

static void test_error_body(void)
{
    CHECK_ERR(404, "service with name x not found", "{\"code\":404,\"error\":\"service with name x not found\"}");
    CHECK_ERR(400, "failed to extract API Identifier from path",
              "{\"code\":400,\"error\":\"failed to extract API Identifier from path\"}");
    CHECK_ERR(500, "a \"q\" \\ b", "{\"code\":500,\"error\":\"a \\\"q\\\" \\\\ b\"}");
    CHECK_ERR(500, "nl\ntab\t\x01\x1f", "{\"code\":500,\"error\":\"nl\\u000atab\\u0009\\u0001\\u001f\"}");
    CHECK_ERR(404, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "{\"code\":404,\"error\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    /* invalid UTF-8 becomes U+FFFD so the body stays valid JSON */
    CHECK_ERR(404, "a\xff" "b\xc3", "{\"code\":404,\"error\":\"a\\ufffdb\\ufffd\"}");
    CHECK_ERR(404, "\xed\xa0\x80", "{\"code\":404,\"error\":\"\\ufffd\\ufffd\\ufffd\"}");
    CHECK_ERR(404, "\xc0\xaf", "{\"code\":404,\"error\":\"\\ufffd\\ufffd\"}");
    CHECK_ERR(502, "", "{\"code\":502,\"error\":\"\"}");
    CHECK_ERR(502, NULL, "{\"code\":502,\"error\":\"\"}");
    CHECK_ERR(404, "<&>/", "{\"code\":404,\"error\":\"<&>/\"}");

    gw_buf_t b;
    gw_buf_init(&b, 30);
    CHECK_EQ_INT(gw_append_error_body(&b, 404, "too long for the cap"), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(gw_append_error_body(&b, 404, "ok"), 0);
    CHECK_EQ_STR(b.base, "{\"code\":404,\"error\":\"ok\"}");
    CHECK_EQ_INT(gw_append_error_body(&b, 404, "ok"), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "{\"code\":404,\"error\":\"ok\"}");
    gw_buf_free(&b);
}

int main(void)
{
    GW_RUN(test_split_standalone);
    GW_RUN(test_split_empty_segments);
    GW_RUN(test_split_too_few);
    GW_RUN(test_split_compass);
    GW_RUN(test_split_target);
    GW_RUN(test_upstream_path_join);
    GW_RUN(test_upstream_path_encode);
    GW_RUN(test_upstream_path_raw);
    GW_RUN(test_upstream_path_cap);
    GW_RUN(test_upstream_path_dot_escapes);
    GW_RUN(test_upstream_path_dot_inside);
    GW_RUN(test_upstream_path_leading_slashes);
    GW_RUN(test_upstream_path_dot_cap);
    GW_RUN(test_path_encoded);
    GW_RUN(test_percent_decoded);
    GW_RUN(test_upstream_query_basic);
    GW_RUN(test_upstream_query_extra);
    GW_RUN(test_upstream_query_cap);
    GW_RUN(test_hop_by_hop);
    GW_RUN(test_connection_lists);
    GW_RUN(test_location_spec_examples);
    GW_RUN(test_location_target_path);
    GW_RUN(test_location_host_scheme);
    GW_RUN(test_location_relative);
    GW_RUN(test_location_edge);
    GW_RUN(test_location_cap);
    GW_RUN(test_error_body);
    return gw_test_summary();
}
