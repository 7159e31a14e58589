/* test_egress.c: unit tests for src/http/egress.c: proxy URLs, the upper/lower-case variables
 * and NO_PROXY matching against the cases of Go's httpproxy proxy_test.go. */
#include <stdlib.h>

#include "http/egress.h"
#include "test.h"
#include "util/common.h"

static gw_egress_t *parse(const char *http, const char *https, const char *no)
{
    char err[256] = "";
    gw_egress_t *e = NULL;
    int rc = gw_egress_parse(http, https, no, &e, err, sizeof(err));
    if (rc != GW_OK) fprintf(stderr, "unexpected parse error: %s\n", err);
    return e;
}

/* The proxy URL chosen for url, "<nil>" for direct (Go's test notation). */
static const char *proxy_for(const gw_egress_t *e, const char *url)
{
    const gw_proxy_t *p = gw_egress_proxy_for_url(e, url);
    return p ? p->url : "<nil>";
}

/* Go's proxyForURLTests (http/https proxy schemes; https://, socks5:// and foo:// proxies are
 * refused here, see test_bad_proxy_urls; IDNA and zone cases are not supported). */
static void test_go_proxy_for_url(void)
{
    static const struct {
        const char *http, *https, *no, *req, *want;
    } cases[] = {
        {"127.0.0.1:8080", NULL, NULL, NULL, "http://127.0.0.1:8080"},
        {"cache.corp.example.com:1234", NULL, NULL, NULL, "http://cache.corp.example.com:1234"},
        {"cache.corp.example.com", NULL, NULL, NULL, "http://cache.corp.example.com:80"},
        {"localhost", NULL, NULL, NULL, "http://localhost:80"},
        {"http://127.0.0.1:8080", NULL, NULL, NULL, "http://127.0.0.1:8080"},
        {"http.proxy.tld", "secure.proxy.tld", NULL, "http://insecure.tld/", "http://http.proxy.tld:80"},
        {"http.proxy.tld", "secure.proxy.tld", NULL, "https://secure.tld/", "http://secure.proxy.tld:80"},
        {"http.proxy.tld", NULL, NULL, "https://secure.tld/", "<nil>"},
        {"http.proxy.tld", NULL, NULL, "ftp://insecure.tld/", "<nil>"},
        {NULL, NULL, NULL, NULL, "<nil>"},
        {"proxy", NULL, "example.com", "http://example.com/", "<nil>"},
        {"proxy", NULL, ".example.com", "http://example.com/", "http://proxy:80"},
        {"proxy", NULL, "ample.com", "http://example.com/", "http://proxy:80"},
        {"proxy", NULL, "example.com", "http://foo.example.com/", "<nil>"},
        {"proxy", NULL, ".foo.com", "http://example.com/", "http://proxy:80"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_egress_t *e = parse(cases[i].http, cases[i].https, cases[i].no);
        CHECK(e != NULL);
        const char *got = proxy_for(e, cases[i].req ? cases[i].req : "http://example.com");
        if (strcmp(got, cases[i].want) != 0) fprintf(stderr, "case %zu: got %s\n", i, got);
        CHECK_EQ_STR(got, cases[i].want);
        gw_egress_free(e);
    }
}

/* Go's UseProxyTests with its noProxy list; each host is asked for on port 80. */
static const char go_no_proxy[] =
    "foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, 10.0.0.0/30, "
    "2001:db8::52:0:1, [2001:db8::52:0:2]:443, [2001:db8::52:0:3]:80, 2002:db8:a::45/64";

static const struct {
    const char *host;
    bool proxied;
} use_proxy_cases[] = {
    {"localhost", false},
    {"127.0.0.1", false},
    {"127.0.0.2", false},
    {"::1", false},
    {"::2", true},
    {"192.168.1.1", false},
    {"192.168.1.2", true},
    {"192.168.1.3", false},
    {"192.168.1.4", true},
    {"10.0.0.2", false},
    {"2001:db8::52:0:1", false},
    {"2001:db8::52:0:2", true},
    {"2001:db8::52:0:3", false},
    {"2002:db8:a::123", false},
    {"fe80::424b:c8be:1643:a1b6", true},
    {"barbaz.net", true},
    {"www.barbaz.net", false},
    {"foobar.com", false},
    {"www.foobar.com", false},
    {"foofoobar.com", true},
    {"baz.com", true},
    {"localhost.net", true},
    {"local.localhost", true},
    {"barbarbaz.net", true},
    {"wildcard.io", true},
    {"nested.wildcard.io", false},
    {"awildcard.io", true},
};

static void test_go_use_proxy(void)
{
    gw_egress_t *e = parse("http://proxy.example.org:3128", "proxy.example.org:3129", go_no_proxy);
    const gw_proxy_t *hp = gw_egress_http(e), *sp = gw_egress_https(e);
    CHECK(hp && sp && hp != sp);
    for (size_t i = 0; i < sizeof(use_proxy_cases) / sizeof(use_proxy_cases[0]); i++) {
        const gw_proxy_t *got = gw_egress_proxy_for(e, false, use_proxy_cases[i].host, 80);
        if ((got != NULL) != use_proxy_cases[i].proxied) fprintf(stderr, "host %s\n", use_proxy_cases[i].host);
        CHECK((got != NULL) == use_proxy_cases[i].proxied);
        if (got) CHECK(got == hp);
        got = gw_egress_proxy_for(e, true, use_proxy_cases[i].host, 80);
        CHECK((got != NULL) == use_proxy_cases[i].proxied);
        if (got) CHECK(got == sp);
    }
    gw_egress_free(e);

    /* Go's TestAllNoProxy: "*" sends everything direct */
    e = parse("proxy", "proxy", "*");
    for (size_t i = 0; i < sizeof(use_proxy_cases) / sizeof(use_proxy_cases[0]); i++)
        CHECK(gw_egress_proxy_for(e, true, use_proxy_cases[i].host, 80) == NULL);
    gw_egress_free(e);

    /* Go's TestInvalidNoProxy: ":1" is ignored, not a crash and not a match */
    e = parse("proxy", NULL, ":1");
    CHECK(gw_egress_proxy_for(e, false, "example.com", 80) != NULL);
    gw_egress_free(e);
}

static void test_no_proxy_details(void)
{
    gw_egress_t *e = parse("proxy:3128", "proxy:3128",
                           " Example.COM:8443 ,,  .Sub.Net, 172.16.0.0/12, [::ffff:10.9.0.0]:443, ::ffff:11.0.0.0/104");
    /* case-insensitive names, ports compared when the entry has one */
    CHECK(gw_egress_proxy_for(e, true, "example.com", 8443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "API.example.com", 8443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "example.com", 443) != NULL);
    CHECK(gw_egress_proxy_for(e, true, "a.sub.net", 443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "sub.net", 443) != NULL);
    /* CIDR ranges, IPv4 and an IPv4 network written as IPv6 */
    CHECK(gw_egress_proxy_for(e, true, "172.31.255.255", 443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "172.32.0.1", 443) != NULL);
    CHECK(gw_egress_proxy_for(e, true, "11.200.0.1", 443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "12.0.0.1", 443) != NULL);
    /* an IPv4-mapped literal equals its IPv4 address (Go's IP.Equal) */
    CHECK(gw_egress_proxy_for(e, true, "10.9.0.0", 443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "10.9.0.0", 80) != NULL);
    /* loopback, whatever NO_PROXY says: localhost (any case), 127/8, ::1, mapped 127/8 */
    CHECK(gw_egress_proxy_for(e, true, "LocalHost", 443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "127.255.0.1", 443) == NULL);
    CHECK(gw_egress_proxy_for(e, true, "::ffff:127.0.0.1", 443) == NULL);
    /* a name is a name: "127.1" is not an IP literal for Go either */
    CHECK(gw_egress_proxy_for(e, true, "127.1", 443) != NULL);
    CHECK(gw_egress_proxy_for(NULL, true, "example.org", 443) == NULL);
    /* URLs: default ports, brackets */
    CHECK(gw_egress_proxy_for_url(e, "https://example.com:8443/x") == NULL);
    CHECK(gw_egress_proxy_for_url(e, "https://example.com/x") != NULL);
    CHECK(gw_egress_proxy_for_url(e, "https://[::1]:8443/x") == NULL);
    CHECK(gw_egress_proxy_for_url(e, "https://[2001:db8::1]/x") != NULL);
    CHECK(gw_egress_proxy_for_url(e, "not a url") == NULL);
    gw_egress_free(e);
}

static void test_proxy_urls(void)
{
    gw_egress_t *e = parse("http://us%40r:p%3Ass@proxy.corp:3128/", "HTTP://[2001:db8::1]:8080", NULL);
    const gw_proxy_t *p = gw_egress_http(e);
    CHECK_EQ_STR(p->host, "proxy.corp");
    CHECK_EQ_INT(p->port, 3128);
    CHECK_EQ_STR(p->url, "http://proxy.corp:3128");
    CHECK_EQ_STR(p->username, "us@r");
    CHECK_EQ_STR(p->password, "p:ss");
    CHECK_EQ_STR(p->authorization, "Basic dXNAcjpwOnNz"); /* base64("us@r:p:ss") */
    p = gw_egress_https(e);
    CHECK_EQ_STR(p->host, "2001:db8::1");
    CHECK_EQ_STR(p->url, "http://[2001:db8::1]:8080");
    CHECK(p->username == NULL && p->authorization == NULL);
    gw_egress_free(e);

    /* userinfo without scheme; user without password */
    e = parse("user:pw@10.0.0.1:3128", "alice@proxy", NULL);
    CHECK_EQ_STR(gw_egress_http(e)->url, "http://10.0.0.1:3128");
    CHECK_EQ_STR(gw_egress_http(e)->authorization, "Basic dXNlcjpwdw==");
    CHECK_EQ_STR(gw_egress_https(e)->authorization, "Basic YWxpY2U6"); /* "alice:" as Go */
    CHECK(gw_egress_https(e)->password == NULL);
    gw_egress_free(e);

    /* empty values mean unset */
    e = parse("", "", "");
    CHECK(gw_egress_http(e) == NULL && gw_egress_https(e) == NULL);
    gw_egress_free(e);
}

static void test_bad_proxy_urls(void)
{
    static const char *const bad[] = {
        "https://secure.proxy.tld", "socks5://127.0.0.1", "foo://host", "http://", "http://:3128",
        "http://host:0", "http://host:65536", "http://host:80x", "http://ho st", "http://[::1",
        "http://[nope]:1", "http://u%zz@host", "http://u:%00@host", "http://host\r\n:1", "http://h%41st",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        gw_egress_t *e = (gw_egress_t *)1;
        CHECK_EQ_INT(gw_egress_parse(NULL, bad[i], NULL, &e, err, sizeof(err)), GW_EINVAL);
        CHECK(e == NULL);
        CHECK(strncmp(err, "HTTPS_PROXY: ", 13) == 0);
    }
    /* the error names the variable and the reason, never the value (it may hold a password) */
    char err[256] = "";
    gw_egress_t *e = NULL;
    CHECK_EQ_INT(gw_egress_parse("socks5://user:SECRET@h:1", NULL, NULL, &e, err, sizeof(err)), GW_EINVAL);
    CHECK(strstr(err, "SECRET") == NULL && strstr(err, "HTTP_PROXY") && strstr(err, "unsupported proxy scheme"));
}

/* Upper case wins when set and not empty; else the lower-case name (Go's getEnvAny). */
static void test_env_precedence(void)
{
    static const char *const names[] = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
                                        "no_proxy"};
    for (size_t i = 0; i < 6; i++) unsetenv(names[i]);
    char err[256];
    gw_egress_t *e = NULL;
    setenv("HTTPS_PROXY", "upper:1", 1);
    setenv("https_proxy", "lower:2", 1);
    setenv("http_proxy", "lower:3", 1);
    setenv("NO_PROXY", "", 1);
    setenv("no_proxy", "skip.me", 1);
    CHECK_EQ_INT(gw_egress_from_env(&e, err, sizeof(err)), GW_OK);
    CHECK_EQ_STR(gw_egress_https(e)->url, "http://upper:1");
    CHECK_EQ_STR(gw_egress_http(e)->url, "http://lower:3");
    CHECK(gw_egress_proxy_for(e, true, "skip.me", 443) == NULL); /* empty NO_PROXY: no_proxy used */
    gw_egress_free(e);

    setenv("HTTPS_PROXY", "", 1); /* empty upper case: the lower-case one applies */
    CHECK_EQ_INT(gw_egress_from_env(&e, err, sizeof(err)), GW_OK);
    CHECK_EQ_STR(gw_egress_https(e)->url, "http://lower:2");
    gw_egress_free(e);

    setenv("https_proxy", "socks5://x", 1); /* the error names the variable actually read */
    CHECK_EQ_INT(gw_egress_from_env(&e, err, sizeof(err)), GW_EINVAL);
    CHECK(strncmp(err, "https_proxy: ", 13) == 0);
    for (size_t i = 0; i < 6; i++) unsetenv(names[i]);
    CHECK_EQ_INT(gw_egress_from_env(&e, err, sizeof(err)), GW_OK);
    CHECK(gw_egress_http(e) == NULL && gw_egress_https(e) == NULL);
    gw_egress_free(e);
}

int main(void)
{
    GW_RUN(test_go_proxy_for_url);
    GW_RUN(test_go_use_proxy);
    GW_RUN(test_no_proxy_details);
    GW_RUN(test_proxy_urls);
    GW_RUN(test_bad_proxy_urls);
    GW_RUN(test_env_precedence);
    return gw_test_summary();
}
