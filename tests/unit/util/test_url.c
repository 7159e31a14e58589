/* test_url.c: unit tests for src/util/url.c (URI reference splitting and default ports). */
#include "test.h"
#include "util/common.h"
#include "util/url.h"

static int split(const char *s, gw_url_t *u) { return gw_url_split(gw_str(s), u); }

static void test_absolute(void)
{
    gw_url_t u;
    CHECK_EQ_INT(split("https://user:pw@Example.COM:8443/a/b%20c?x=1&y#frag", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "https");
    CHECK_EQ_SLICE(u.authority, "user:pw@Example.COM:8443");
    CHECK_EQ_SLICE(u.host, "Example.COM");
    CHECK_EQ_SLICE(u.port, "8443");
    CHECK_EQ_SLICE(u.path, "/a/b%20c");
    CHECK_EQ_SLICE(u.query, "x=1&y");
    CHECK_EQ_SLICE(u.fragment, "frag");
    CHECK(u.has_authority && u.has_query && u.has_fragment);
    CHECK_EQ_INT(gw_url_port(&u), 8443);

    CHECK_EQ_INT(split("http://h", &u), 0);
    CHECK_EQ_SLICE(u.host, "h");
    CHECK_EQ_SLICE(u.port, "");
    CHECK_EQ_SLICE(u.path, "");
    CHECK(u.has_authority && !u.has_query && !u.has_fragment);
    CHECK_EQ_INT(gw_url_port(&u), 80);

    CHECK_EQ_INT(split("HTTPS://h/", &u), 0);
    CHECK_EQ_SLICE(u.path, "/");
    CHECK_EQ_INT(gw_url_port(&u), 443);

    CHECK_EQ_INT(split("http://h:/x", &u), 0); /* empty port: the default */
    CHECK_EQ_SLICE(u.port, "");
    CHECK_EQ_INT(gw_url_port(&u), 80);

    CHECK_EQ_INT(split("http://h?q", &u), 0);
    CHECK_EQ_SLICE(u.host, "h");
    CHECK_EQ_SLICE(u.path, "");
    CHECK_EQ_SLICE(u.query, "q");

    CHECK_EQ_INT(split("http://h#f", &u), 0);
    CHECK_EQ_SLICE(u.host, "h");
    CHECK_EQ_SLICE(u.fragment, "f");
    CHECK(!u.has_query);

    CHECK_EQ_INT(split("http://h/p?#", &u), 0);
    CHECK(u.has_query && u.has_fragment);
    CHECK_EQ_SLICE(u.query, "");
    CHECK_EQ_SLICE(u.fragment, "");

    CHECK_EQ_INT(split("http://h/p#a?b#c", &u), 0);
    CHECK(!u.has_query);
    CHECK_EQ_SLICE(u.fragment, "a?b#c");

    CHECK_EQ_INT(split("http://h:65535", &u), 0);
    CHECK_EQ_INT(gw_url_port(&u), 65535);
    CHECK_EQ_INT(split("http://h:0", &u), 0);
    CHECK_EQ_INT(gw_url_port(&u), 0);
    CHECK_EQ_INT(split("http://h:00080", &u), 0);
    CHECK_EQ_INT(gw_url_port(&u), 80);
}

static void test_userinfo(void)
{
    gw_url_t u;
    CHECK_EQ_INT(split("http://a@b@host:81/x", &u), 0); /* the last '@' ends the userinfo */
    CHECK_EQ_SLICE(u.host, "host");
    CHECK_EQ_SLICE(u.port, "81");
    CHECK_EQ_INT(split("http://user:p:w@host/x", &u), 0); /* ':' in userinfo is not a port */
    CHECK_EQ_SLICE(u.host, "host");
    CHECK_EQ_SLICE(u.port, "");
    CHECK_EQ_INT(split("http://@host", &u), 0);
    CHECK_EQ_SLICE(u.host, "host");
    CHECK_EQ_INT(split("http://evil.com@good.com/", &u), 0);
    CHECK_EQ_SLICE(u.host, "good.com");
    CHECK_EQ_INT(split("http://good.com/@evil.com", &u), 0); /* '@' in the path */
    CHECK_EQ_SLICE(u.host, "good.com");
    CHECK_EQ_SLICE(u.path, "/@evil.com");
    CHECK_EQ_INT(split("http://good.com?@evil.com", &u), 0);
    CHECK_EQ_SLICE(u.host, "good.com");
    CHECK_EQ_INT(split("http://u@[::1]:9/", &u), 0);
    CHECK_EQ_SLICE(u.host, "::1");
    CHECK_EQ_SLICE(u.port, "9");
}

static void test_ipv6(void)
{
    gw_url_t u;
    CHECK_EQ_INT(split("http://[::1]:8080/x", &u), 0);
    CHECK_EQ_SLICE(u.host, "::1");
    CHECK_EQ_SLICE(u.port, "8080");
    CHECK_EQ_SLICE(u.authority, "[::1]:8080");
    CHECK_EQ_SLICE(u.path, "/x");
    CHECK_EQ_INT(gw_url_port(&u), 8080);
    CHECK_EQ_INT(split("https://[2001:db8::7]", &u), 0);
    CHECK_EQ_SLICE(u.host, "2001:db8::7");
    CHECK_EQ_SLICE(u.port, "");
    CHECK_EQ_INT(gw_url_port(&u), 443);
    CHECK_EQ_INT(split("http://[fe80::1%25eth0]:1/", &u), 0);
    CHECK_EQ_SLICE(u.host, "fe80::1%25eth0");
    CHECK_EQ_INT(split("http://[]/", &u), 0);
    CHECK_EQ_SLICE(u.host, "");

    CHECK_EQ_INT(split("http://[::1/x", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://[::1]x/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://[::1]:8x/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://[::1", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://[::1/]", &u), GW_EINVAL); /* ']' after the authority does not count */
}

static void test_bad_port(void)
{
    gw_url_t u;
    CHECK_EQ_INT(split("http://h:65536/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://h:99999999999999999999/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://h:8o/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://h:-1/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://h:+1/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://h:80:81/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("http://h: 80/", &u), GW_EINVAL);
    CHECK_EQ_INT(split("//h:x", &u), GW_EINVAL);
}

static void test_relative(void)
{
    gw_url_t u;
    CHECK_EQ_INT(split("/a/b?q#f", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "");
    CHECK(!u.has_authority);
    CHECK_EQ_SLICE(u.host, "");
    CHECK_EQ_SLICE(u.path, "/a/b");
    CHECK_EQ_SLICE(u.query, "q");
    CHECK_EQ_SLICE(u.fragment, "f");
    CHECK_EQ_INT(gw_url_port(&u), 0);

    CHECK_EQ_INT(split("//host:81/p", &u), 0); /* network-path reference */
    CHECK_EQ_SLICE(u.scheme, "");
    CHECK(u.has_authority);
    CHECK_EQ_SLICE(u.host, "host");
    CHECK_EQ_SLICE(u.port, "81");
    CHECK_EQ_SLICE(u.path, "/p");
    CHECK_EQ_INT(gw_url_port(&u), 0);

    CHECK_EQ_INT(split("g;x?y#s", &u), 0);
    CHECK_EQ_SLICE(u.path, "g;x");
    CHECK_EQ_INT(split("../g", &u), 0);
    CHECK_EQ_SLICE(u.path, "../g");
    CHECK_EQ_INT(split("?y", &u), 0);
    CHECK_EQ_SLICE(u.path, "");
    CHECK(u.has_query);
    CHECK_EQ_INT(split("#s", &u), 0);
    CHECK(u.has_fragment && !u.has_query);
    CHECK_EQ_INT(split("", &u), 0);
    CHECK(!u.has_authority && !u.has_query && !u.has_fragment && u.path.n == 0);

    /* a colon after a '/', '?' or '#' does not make a scheme */
    CHECK_EQ_INT(split("./a:b", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "");
    CHECK_EQ_SLICE(u.path, "./a:b");
    CHECK_EQ_INT(split("a/b:c", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "");
    CHECK_EQ_INT(split("a?b:c", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "");
    CHECK_EQ_SLICE(u.path, "a");
    CHECK_EQ_INT(split("1a:b", &u), 0); /* scheme must start with a letter */
    CHECK_EQ_SLICE(u.scheme, "");
    CHECK_EQ_SLICE(u.path, "1a:b");
    CHECK_EQ_INT(split(":x", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "");
}

static void test_other_schemes(void)
{
    gw_url_t u;
    CHECK_EQ_INT(split("mailto:a@b.c", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "mailto");
    CHECK(!u.has_authority);
    CHECK_EQ_SLICE(u.path, "a@b.c");
    CHECK_EQ_INT(gw_url_port(&u), 0);
    CHECK_EQ_INT(split("svn+ssh.x-y://h/", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "svn+ssh.x-y");
    CHECK_EQ_INT(gw_url_port(&u), 0);
    CHECK_EQ_INT(split("http:/x", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "http");
    CHECK(!u.has_authority);
    CHECK_EQ_SLICE(u.path, "/x");
    CHECK_EQ_INT(split("ftp://h:21/x", &u), 0);
    CHECK_EQ_INT(gw_url_port(&u), 0);
    CHECK_EQ_INT(split("httpx://h/", &u), 0);
    CHECK_EQ_INT(gw_url_port(&u), 0);
    CHECK_EQ_INT(split("http:", &u), 0);
    CHECK_EQ_SLICE(u.scheme, "http");
    CHECK_EQ_SLICE(u.path, "");
    CHECK_EQ_INT(split("http:///x", &u), 0); /* empty authority */
    CHECK(u.has_authority);
    CHECK_EQ_SLICE(u.host, "");
    CHECK_EQ_SLICE(u.path, "/x");
}

static void test_not_nul_terminated(void)
{
    /* parts never reach past n */
    const char raw[] = "http://h:8080/p?q#fXXXX";
    gw_url_t u;
    CHECK_EQ_INT(gw_url_split((gw_str_t){raw, 19}, &u), 0);
    CHECK_EQ_SLICE(u.fragment, "f");
    CHECK_EQ_INT(gw_url_split((gw_str_t){raw, 11}, &u), 0);
    CHECK_EQ_SLICE(u.host, "h");
    CHECK_EQ_SLICE(u.port, "80");
    CHECK_EQ_INT(gw_url_split((gw_str_t){raw, 0}, &u), 0);
    /* a NUL byte is data, not a delimiter */
    const char nul[] = "http://h\0x/p\0?q";
    CHECK_EQ_INT(gw_url_split((gw_str_t){nul, sizeof(nul) - 1}, &u), 0);
    CHECK_EQ_INT(u.host.n, 3);
    CHECK_EQ_INT(u.path.n, 3);
    CHECK_EQ_SLICE(u.query, "q");
    CHECK_EQ_INT(gw_url_split((gw_str_t){NULL, 0}, &u), 0);
    CHECK_EQ_INT(u.path.n, 0);
}

int main(void)
{
    GW_RUN(test_absolute);
    GW_RUN(test_userinfo);
    GW_RUN(test_ipv6);
    GW_RUN(test_bad_port);
    GW_RUN(test_relative);
    GW_RUN(test_other_schemes);
    GW_RUN(test_not_nul_terminated);
    return gw_test_summary();
}
