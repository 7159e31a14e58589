/* fuzz_http_common.h: invariants of parser.h shared by the HTTP fuzz drivers (slices inside
 * the input, legal header bytes, chunked decoding identical in every mode and split). */
#ifndef GW_FUZZ_HTTP_COMMON_H
#define GW_FUZZ_HTTP_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define REQUIRE(c) \
    do {           \
        if (!(c))  \
            abort(); \
    } while (0)

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_slice(gw_str_t s, const uint8_t *base, size_t n)
{
    REQUIRE(s.n <= n);
    REQUIRE(s.n == 0 || ((const uint8_t *)s.p >= base && (const uint8_t *)s.p + s.n <= base + n));
}

static void check_headers(const gw_header_t *h, size_t nh, const uint8_t *base, size_t n)
{
    REQUIRE(nh <= GW_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < nh; i++) {
        check_slice(h[i].name, base, n);
        check_slice(h[i].value, base, n);
        REQUIRE(h[i].name.n > 0);
        for (size_t j = 0; j < h[i].name.n; j++)
            REQUIRE(is_tchar((unsigned char)h[i].name.p[j]));
        const gw_str_t v = h[i].value;
        for (size_t j = 0; j < v.n; j++) {
            unsigned char c = (unsigned char)v.p[j];
            REQUIRE((c >= 0x20 && c != 0x7f) || c == '\t');
        }
        if (v.n)
            REQUIRE(v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t');
        REQUIRE(gw_http_find_header(h, nh, "x") == NULL || gw_http_find_header(h, nh, "X") != NULL);
    }
}

/* The body decoder must agree with itself in every mode and split. */
static void check_chunked(const uint8_t *d, size_t n, size_t cut)
{
    gw_chunked_t a, b, c;
    size_t ca, oa, cb, ob, c1, o1, c2 = 0, o2 = 0;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));

    int ra = gw_chunked_feed(&a, (const char *)d, n, &ca, NULL, &oa);
    REQUIRE(ra == 0 || ra == 1 || ra == GW_EBADMSG);
    REQUIRE(ca <= n && oa <= ca);
    if (ra == 0)
        REQUIRE(ca == n);

    char *buf = malloc(n ? n : 1), *sep = malloc(n ? n : 1);
    memcpy(buf, d, n);
    int rb = gw_chunked_feed(&b, buf, n, &cb, buf, &ob); /* in place */
    REQUIRE(rb == ra && cb == ca && ob == oa && ob <= cb);

    if (cut > n)
        cut = n;
    int rc = gw_chunked_feed(&c, (const char *)d, cut, &c1, sep, &o1);
    REQUIRE(c1 <= cut && o1 <= c1);
    if (rc == 0) {
        rc = gw_chunked_feed(&c, (const char *)d + cut, n - cut, &c2, sep + o1, &o2);
        REQUIRE(c2 <= n - cut && o2 <= c2);
    }
    REQUIRE(rc == ra && c1 + c2 == ca && o1 + o2 == oa);
    REQUIRE(memcmp(sep, buf, ob) == 0);
    free(buf);
    free(sep);
}

#endif
