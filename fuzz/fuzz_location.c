/* fuzz_location.c: libFuzzer driver for the untrusted-input parts of gateway/rewrite.c (Location
 * rewriting, gateway path splitting, upstream path/query building, error bodies), with invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "gateway/rewrite.h"
#include "util/common.h"
#include "util/url.h"
#include "require.h"

#define NPARTS 7

/* Input: one control byte, then parts separated by '\n': location, request URL, target
 * host name, target path, prefix, gateway request path, caller query. */
typedef struct {
    uint8_t ctl;
    gw_str_t part[NPARTS];
    char *cstr[NPARTS]; /* NUL-terminated copies (cut at the first NUL) */
} input_t;

static void split_input(const uint8_t *data, size_t size, input_t *in)
{
    memset(in, 0, sizeof(*in));
    in->ctl = size ? data[0] : 0;
    const char *p = size ? (const char *)data + 1 : "", *end = size ? (const char *)data + size : p;
    for (int i = 0; i < NPARTS; i++) {
        const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        const char *e = i == NPARTS - 1 || !nl ? end : nl;
        in->part[i] = (gw_str_t){p, (size_t)(e - p)};
        in->cstr[i] = malloc(in->part[i].n + 1);
        memcpy(in->cstr[i], p, in->part[i].n);
        in->cstr[i][in->part[i].n] = '\0';
        p = e < end ? e + 1 : end;
    }
}

static bool is_literal(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~$&+,/:;=@", c));
}

static bool is_upper_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

/* Every byte is literal or part of an upper-case %XX escape. */
static void require_encoded(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (is_literal((unsigned char)p[i])) continue;
        REQUIRE(p[i] == '%' && i + 2 < n);
        REQUIRE(is_upper_hex((unsigned char)p[i + 1]) && is_upper_hex((unsigned char)p[i + 2]));
        i += 2;
    }
}

static void fuzz_location(const input_t *in)
{
    gw_target_t t = {0};
    t.hostname = in->cstr[2];
    t.path = in->cstr[3];
    t.query = (char *)"";
    gw_str_t prefix = gw_str(in->cstr[4]);

    gw_buf_t out;
    gw_buf_init(&out, 1 << 16);
    REQUIRE(gw_buf_puts(&out, "X") == 0);
    int rc = gw_rewrite_location(&out, in->part[0], in->part[1], &t, prefix);
    REQUIRE(rc == 0 || rc == 1);
    if (rc == 0) {
        REQUIRE(out.len == 1 && strcmp(out.base, "X") == 0);
    } else {
        REQUIRE(out.len >= 1 + prefix.n && memcmp(out.base + 1, prefix.p, prefix.n) == 0);
        REQUIRE(out.base[out.len] == '\0');
        char c = out.len > 1 + prefix.n ? out.base[1 + prefix.n] : '/';
        REQUIRE(c == '/' || c == '?' || c == '#');
        /* the same call into a buffer one byte too small fails and leaves it untouched */
        if (out.len >= 2) {
            gw_buf_t small;
            gw_buf_init(&small, out.len - 2);
            REQUIRE(gw_rewrite_location(&small, in->part[0], in->part[1], &t, prefix) == GW_ENOMEM);
            REQUIRE(small.len == 0);
            gw_buf_free(&small);
        }
        /* deterministic */
        gw_buf_t again;
        gw_buf_init(&again, 1 << 16);
        REQUIRE(gw_rewrite_location(&again, in->part[0], in->part[1], &t, prefix) == 1);
        REQUIRE(again.len == out.len - 1 && (again.len == 0 || memcmp(again.base, out.base + 1, again.len) == 0));
        gw_buf_free(&again);
    }
    gw_buf_free(&out);

    /* constructive: an absolute Location on the target host below the target path is rewritten */
    const char *h = t.hostname, *tp = t.path;
    bool simple = h[0] != '\0' && strspn(h, "abcdefghijklmnopqrstuvwxyz0123456789.-") == strlen(h) &&
                  strspn(tp, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/") == strlen(tp) &&
                  (tp[0] == '\0' || tp[0] == '/');
    if (simple) {
        gw_buf_t loc, req, res;
        gw_buf_init(&loc, 1 << 16);
        gw_buf_init(&req, 1 << 16);
        gw_buf_init(&res, 1 << 17);
        REQUIRE(gw_buf_appendf(&loc, "http://%s%s/z?q#f", h, tp) == 0);
        REQUIRE(gw_buf_appendf(&req, "https://%s:1/", h) == 0);
        REQUIRE(gw_rewrite_location(&res, (gw_str_t){loc.base, loc.len}, (gw_str_t){req.base, req.len}, &t,
                                    prefix) == 1);
        size_t tl = strlen(tp);
        while (tl && tp[tl - 1] == '/') tl--;
        const char *path = loc.base + strlen("http://") + strlen(h);
        REQUIRE(res.len == prefix.n + strlen(path) - tl);
        REQUIRE(memcmp(res.base + prefix.n, path + tl, res.len - prefix.n) == 0);
        gw_buf_free(&loc);
        gw_buf_free(&req);
        gw_buf_free(&res);
    }
}

static void fuzz_split(const input_t *in)
{
    gw_str_t path = in->part[5];
    const char *p = path.p, *end = path.p + path.n;
    while (p < end && *p == '/') p++;
    while (end > p && end[-1] == '/') end--;
    size_t nsegs = 1;
    for (const char *c = p; c < end; c++) nsegs += *c == '/';
    for (int nseg = 2; nseg <= 3; nseg++) {
        gw_str_t seg[3], rest;
        int rc = gw_split_gateway_path(path, nseg, seg, &rest);
        if (nsegs < (size_t)nseg) {
            REQUIRE(rc == GW_EINVAL);
            continue;
        }
        REQUIRE(rc == 0);
        /* trimmed path == seg0/seg1[/seg2][/rest] */
        const char *q = p;
        for (int i = 0; i < nseg; i++) {
            REQUIRE(seg[i].p == q && !memchr(seg[i].p, '/', seg[i].n));
            q += seg[i].n;
            if (i < nseg - 1) {
                REQUIRE(q < end && *q == '/');
                q++;
            }
        }
        if (rest.n) {
            REQUIRE(q < end && *q == '/' && rest.p == q + 1 && rest.p + rest.n == end);
        } else {
            REQUIRE(q == end);
        }
    }
}

static void fuzz_target_and_url(const input_t *in)
{
    gw_str_t t = in->part[5], path, query;
    bool hq;
    int rc = gw_split_target(t, &path, &query, &hq);
    bool absolute = (t.n >= 7 && strncasecmp(t.p, "http://", 7) == 0) || (t.n >= 8 && strncasecmp(t.p, "https://", 8) == 0);
    if (absolute) {
        /* absolute-form: path and query are the tail of the target, starting at a '/' */
        if (rc == 0) {
            REQUIRE(path.n && path.p[0] == '/' && path.p > t.p && !memchr(path.p, '?', path.n));
            REQUIRE(path.p + path.n + (hq ? 1 + query.n : 0) == t.p + t.n);
        } else {
            REQUIRE(rc == GW_EINVAL);
        }
    } else if (t.n == 0 || t.p[0] != '/') {
        REQUIRE(rc == GW_EINVAL);
    } else {
        REQUIRE(rc == 0 && path.p == t.p && !memchr(path.p, '?', path.n));
        REQUIRE(path.n + (hq ? 1 + query.n : 0) == t.n);
        if (hq) REQUIRE(query.p == t.p + path.n + 1);
    }
    gw_url_t u;
    if (gw_url_split(in->part[1], &u) == 0) {
        uint16_t port = gw_url_port(&u);
        bool web = GW_STR_IEQ_LIT(u.scheme, "http") || GW_STR_IEQ_LIT(u.scheme, "https");
        REQUIRE(web || port == 0);
        REQUIRE(u.host.p != NULL && u.path.p != NULL && u.query.p != NULL);
        REQUIRE(u.scheme.n + u.authority.n + u.path.n + u.query.n + u.fragment.n <= in->part[1].n);
    }
}

static void fuzz_upstream(const input_t *in)
{
    bool encode = in->ctl & 1;
    const char *base = in->cstr[3];
    gw_str_t tpath = in->part[5];
    gw_buf_t out;
    gw_buf_init(&out, 1 << 18);
    int prc = gw_append_upstream_path(&out, base, tpath, encode);
    /* dot-segments climbing above the base are refused, the buffer left as it was */
    REQUIRE(prc == 0 || (prc == GW_EPATH_ESCAPES && out.len == 0));
    /* path-absolute, and never "//" (leading slashes collapse) */
    REQUIRE(prc || (out.len >= 1 && out.base[0] == '/' && (out.len == 1 || out.base[1] != '/')));
    size_t bn = strlen(base);
    bool base_2slash = bn >= 2 && base[0] == '/' && base[1] == '/';
    /* the target path has dot-segments only if it has a '.' (or %2e) somewhere */
    bool dots = memchr(tpath.p, '.', tpath.n) != NULL;
    for (size_t i = 0; !dots && i + 2 < tpath.n; i++)
        dots = tpath.p[i] == '%' && tpath.p[i + 1] == '2' && (tpath.p[i + 2] | 0x20) == 'e';
    if (!prc && bn && base[0] == '/' && !base_2slash) REQUIRE(memcmp(out.base, base, bn) == 0);
    if (prc) {
        /* refused: nothing more to check on the path */
    } else if (encode) {
        size_t off = bn && base[0] != '/' ? bn + 1 : bn;
        if (!base_2slash) require_encoded(out.base + off, out.len - off);
    } else if (tpath.n && !dots && !(tpath.n >= 2 && tpath.p[0] == '/' && tpath.p[1] == '/')) {
        /* raw: the target path (minus at most one joining '/') ends the output */
        size_t tail = tpath.n - (tpath.p[0] == '/' ? 1 : 0);
        REQUIRE(out.len >= tail && memcmp(out.base + out.len - tail, tpath.p + tpath.n - tail, tail) == 0);
    }
    if (!prc && out.len > 1) {
        gw_buf_t small;
        gw_buf_init(&small, out.len - 1);
        REQUIRE(gw_buf_puts(&small, "") == 0);
        REQUIRE(gw_append_upstream_path(&small, base, tpath, encode) == GW_ENOMEM);
        REQUIRE(small.len == 0);
        gw_buf_free(&small);
    }

    /* encode / decode round trip */
    gw_buf_t enc, dec;
    gw_buf_init(&enc, 1 << 18);
    gw_buf_init(&dec, 1 << 18);
    REQUIRE(gw_append_path_encoded(&enc, tpath.p, tpath.n) == 0);
    require_encoded(enc.base ? enc.base : "", enc.len);
    REQUIRE(gw_append_percent_decoded(&dec, enc.base ? enc.base : "", enc.len) == 0);
    REQUIRE(dec.len == tpath.n && (tpath.n == 0 || memcmp(dec.base, tpath.p, tpath.n) == 0));
    gw_buf_free(&enc);
    gw_buf_free(&dec);

    /* query: base&caller, then extras whose key the caller lacks */
    gw_kv_t extra[2] = {{in->cstr[0], in->cstr[4]}, {in->cstr[2], in->cstr[1]}};
    gw_buf_reset(&out);
    REQUIRE(gw_append_upstream_query(&out, in->cstr[3], in->part[6], extra, 2) == 0);
    size_t qn = strlen(in->cstr[3]);
    REQUIRE(out.len >= qn + in->part[6].n);
    if (qn) REQUIRE(memcmp(out.base, in->cstr[3], qn) == 0);
    if (in->part[6].n) {
        size_t at = qn ? qn + 1 : 0;
        REQUIRE(memcmp(out.base + at, in->part[6].p, in->part[6].n) == 0);
    }
    gw_buf_free(&out);
}

static void fuzz_error_body(const input_t *in)
{
    gw_buf_t out;
    gw_buf_init(&out, 1 << 18);
    int code = 400 + in->ctl;
    REQUIRE(gw_append_error_body(&out, code, in->cstr[0]) == 0);
    json_error_t jerr;
    json_t *j = json_loadb(out.base, out.len, 0, &jerr);
    REQUIRE(j != NULL);
    REQUIRE(json_integer_value(json_object_get(j, "code")) == code);
    const char *text = json_string_value(json_object_get(j, "error"));
    REQUIRE(text != NULL);
    /* valid UTF-8 input round-trips exactly */
    json_t *probe = json_string(in->cstr[0]); /* NULL unless valid UTF-8 */
    if (probe) REQUIRE(strcmp(text, in->cstr[0]) == 0);
    json_decref(probe);
    json_decref(j);
    gw_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    input_t in;
    split_input(data, size, &in);
    fuzz_location(&in);
    fuzz_split(&in);
    fuzz_target_and_url(&in);
    fuzz_upstream(&in);
    fuzz_error_body(&in);
    for (int i = 0; i < NPARTS; i++) free(in.cstr[i]);
    return 0;
}
