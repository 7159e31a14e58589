/* fuzz_response.c: libFuzzer driver for the response-head parser, response framing (HEAD and
 * non-HEAD) and the chunked decoder on the rest; abort()s when an invariant of parser.h is broken. */
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

static void check_framing(const gw_resp_head_t *h, bool head)
{
    gw_body_kind_t kind = (gw_body_kind_t)-1;
    uint64_t cl = 12345;
    int fr = gw_http_response_framing(h, head, &kind, &cl);
    REQUIRE(fr == 0 || fr == GW_EBADMSG);
    if (fr != 0)
        return;
    REQUIRE(kind == GW_BODY_NONE || kind == GW_BODY_LENGTH || kind == GW_BODY_CHUNKED ||
            kind == GW_BODY_EOF);
    if (kind != GW_BODY_LENGTH)
        REQUIRE(cl == 0);
    int nobody = head || h->status / 100 == 1 || h->status == 204 || h->status == 304;
    REQUIRE((kind == GW_BODY_NONE) == nobody);
    int has_te = gw_http_find_header(h->headers, h->nheaders, "transfer-encoding") != NULL;
    if (kind == GW_BODY_LENGTH)
        REQUIRE(!has_te && gw_http_find_header(h->headers, h->nheaders, "content-length"));
    if (kind == GW_BODY_CHUNKED)
        REQUIRE(has_te);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_resp_head_t h, h2;
    int rc = gw_http_parse_response((const char *)data, size, &h);

    REQUIRE(rc == 0 || rc == GW_EBADMSG || rc == GW_E2BIG || rc > 0);
    if (rc == 0)
        REQUIRE(size < GW_HTTP_MAX_HEAD);

    size_t cuts[2] = {size ? size - 1 : 0, size / 2};
    for (int i = 0; i < 2; i++) {
        int r = gw_http_parse_response((const char *)data, cuts[i], &h2);
        if (r != 0)
            REQUIRE(r == rc);
    }

    if (rc <= 0)
        return 0;
    size_t hl = (size_t)rc;
    REQUIRE(hl <= size && hl <= GW_HTTP_MAX_HEAD);
    REQUIRE(data[hl - 1] == '\n');
    REQUIRE(gw_http_parse_response((const char *)data, hl, &h2) == rc);
    REQUIRE(gw_http_parse_response((const char *)data, hl - 1, &h2) == 0);
    REQUIRE(h.minor_version >= 0 && h.minor_version <= 9);
    REQUIRE(h.status >= 100 && h.status <= 999);
    check_slice(h.reason, data, hl);
    for (size_t i = 0; i < h.reason.n; i++) {
        unsigned char c = (unsigned char)h.reason.p[i];
        REQUIRE((c >= 0x20 && c != 0x7f) || c == '\t');
    }
    check_headers(h.headers, h.nheaders, data, hl);
    check_framing(&h, false);
    check_framing(&h, true);

    size_t rest = size - hl;
    check_chunked(data + hl, rest, rest ? data[hl] % (rest + 1) : 0);
    return 0;
}
