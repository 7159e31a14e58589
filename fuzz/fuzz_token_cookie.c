/* fuzz_token_cookie.c: libFuzzer driver for src/auth/oauth_wire.c and src/auth/cookie.c: token and
 * error response parsing, form/query encoding, Set-Cookie collection and Cookie merging, with invariants. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/cookie.h"
#include "auth/oauth_wire.h"
#include "util/common.h"
#include "require.h"

#define MAX_PARTS 64

/* Input: one control byte (low 2 bits: mode; the rest: caps and options), then the payload.
 * Mode 0: the payload is a token endpoint body. Mode 1: '\n'-separated Set-Cookie values, an
 * empty line, then '\n'-separated caller Cookie values. Mode 2: name '\n' value to encode. */

/* ---- mode 0: token and error responses ---- */

static void fuzz_token(uint8_t ctl, const char *body, size_t n)
{
    gw_token_response_t t;
    const char *why = "unset";
    int rc = gw_token_response_parse(body, n, &t, &why);
    REQUIRE(rc == 0 || rc == GW_EBADMSG);
    if (rc == 0) {
        REQUIRE(why == NULL);
        REQUIRE(t.access_token != NULL);
        size_t len = strlen(t.access_token);
        REQUIRE(len > 0 && len <= GW_TOKEN_MAX_LEN);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)t.access_token[i];
            REQUIRE(c >= 0x20 && c != 0x7f);
        }
        REQUIRE(t.expires_in == -1 || (t.expires_in >= 0 && t.expires_in <= GW_TOKEN_EXPIRES_MAX));
        gw_token_response_clear(&t);
        REQUIRE(t.access_token == NULL && t.token_type == NULL && t.expires_in == -1);
        gw_token_response_clear(&t);
    } else {
        REQUIRE(why != NULL && why[0] != '\0' && strcmp(why, "unset") != 0);
        REQUIRE(t.access_token == NULL && t.token_type == NULL && t.expires_in == 0);
    }

    size_t cap = (size_t)(ctl >> 2) % 24; /* 0 .. 23 */
    char code[32];
    memset(code, 'Z', sizeof(code));
    bool is_err = gw_oauth_error_response(body, n, cap ? code : NULL, cap);
    REQUIRE(gw_oauth_error_response(body, n, NULL, 0) == is_err);
    if (cap) {
        size_t len = strnlen(code, cap);
        REQUIRE(len < cap);
        if (!is_err) REQUIRE(len == 0);
        for (size_t i = 0; i < len; i++) REQUIRE(code[i] >= 0x20 && code[i] < 0x7f);
        for (size_t i = cap; i < sizeof(code); i++) REQUIRE(code[i] == 'Z'); /* no overrun */
    }
}

/* ---- mode 1: cookies ---- */

static gw_str_t trim(gw_str_t s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) { s.p++; s.n--; }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

/* Splits s on ';' into trimmed non-empty pieces; returns how many (at most max stored). */
static size_t pieces(gw_str_t s, gw_str_t *out, size_t max)
{
    size_t k = 0, start = 0;
    if (!s.n) return 0; /* s.p may be NULL */
    for (size_t i = 0; i <= s.n; i++) {
        if (i < s.n && s.p[i] != ';') continue;
        gw_str_t e = trim((gw_str_t){s.p + start, i - start});
        if (e.n) {
            if (k < max) out[k] = e;
            k++;
        }
        start = i + 1;
    }
    return k;
}

/* Name of a piece: trimmed text before its first '='; false when it has no '='. */
static bool name_of(gw_str_t piece, gw_str_t *name)
{
    const char *eq = memchr(piece.p, '=', piece.n);
    if (!eq) return false;
    *name = trim((gw_str_t){piece.p, (size_t)(eq - piece.p)});
    return true;
}

static bool same(gw_str_t a, gw_str_t b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

static bool has_bad(gw_str_t s)
{
    return memchr(s.p, '\r', s.n) || memchr(s.p, '\n', s.n) || memchr(s.p, '\0', s.n);
}

#define MAXP 4096

/* out as built by gw_cookie_add_set_cookie: valid names, each once, no CTL anywhere. */
static void check_token_cookies(const gw_buf_t *b)
{
    static gw_str_t p[MAXP];
    size_t np = pieces((gw_str_t){b->base, b->len}, p, MAXP);
    REQUIRE(np <= MAXP);
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->base[i];
        REQUIRE(c >= 0x20 && c != 0x7f);
    }
    for (size_t i = 0; i < np; i++) {
        gw_str_t ni, nj;
        REQUIRE(name_of(p[i], &ni) && ni.n > 0);
        for (size_t j = i + 1; j < np; j++) REQUIRE(name_of(p[j], &nj) && !same(ni, nj));
    }
}

static void fuzz_cookies(uint8_t ctl, const char *d, size_t n)
{
    gw_str_t part[MAX_PARTS];
    size_t nparts = 0, start = 0;
    for (size_t i = 0; i <= n && nparts < MAX_PARTS; i++) {
        if (i < n && d[i] != '\n') continue;
        part[nparts++] = (gw_str_t){d + start, i - start};
        start = i + 1;
    }
    size_t sep = nparts; /* first empty part separates Set-Cookie values from caller values */
    for (size_t i = 0; i < nparts; i++)
        if (part[i].n == 0) { sep = i; break; }

    gw_buf_t tok;
    gw_buf_init(&tok, 8 + (size_t)((ctl >> 2) & 7) * 24);
    for (size_t i = 0; i < sep; i++) {
        char *before = tok.len ? strndup(tok.base, tok.len) : NULL;
        size_t blen = tok.len;
        int rc = gw_cookie_add_set_cookie(&tok, part[i]);
        REQUIRE(rc == 0 || rc == GW_EBADMSG || rc == GW_ENOMEM);
        if (rc != 0) {
            REQUIRE(tok.len == blen && (blen == 0 || memcmp(tok.base, before, blen) == 0));
        } else {
            /* the new pair is there, under its trimmed name */
            const char *semi = memchr(part[i].p, ';', part[i].n);
            gw_str_t pr = trim((gw_str_t){part[i].p, semi ? (size_t)(semi - part[i].p) : part[i].n}), nm;
            static gw_str_t q[MAXP];
            REQUIRE(name_of(pr, &nm));
            size_t nq = pieces((gw_str_t){tok.base, tok.len}, q, MAXP), hits = 0;
            for (size_t j = 0; j < nq && j < MAXP; j++) {
                gw_str_t qn;
                hits += name_of(q[j], &qn) && same(qn, nm);
            }
            REQUIRE(hits == 1);
        }
        check_token_cookies(&tok);
        free(before);
    }

    /* merge, optionally after a prefix already in out */
    const char *prefix = (ctl & 0x80) ? "Cookie: " : "";
    gw_buf_t out;
    gw_buf_init(&out, strlen(prefix) + (size_t)((ctl >> 2) & 31) * 16);
    if (gw_buf_puts(&out, prefix) != 0) prefix = "";
    size_t plen = out.len, ncaller = sep < nparts ? nparts - sep - 1 : 0;
    const gw_str_t *caller = part + (sep < nparts ? sep + 1 : nparts);
    gw_str_t token = {tok.base, tok.len};
    int rc = gw_cookie_merge(&out, caller, ncaller, token);
    REQUIRE(rc == 0 || rc == GW_ENOMEM);
    REQUIRE(out.len >= plen && (plen == 0 || memcmp(out.base, prefix, plen) == 0));
    if (rc != 0) {
        REQUIRE(out.len == plen);
    } else {
        gw_str_t res = {out.base + plen, out.len - plen};
        REQUIRE(!has_bad(res));
        static gw_str_t tp[MAXP], op[MAXP], cp[MAXP];
        size_t nt = pieces(token, tp, MAXP), no = pieces(res, op, MAXP);
        /* expected count: caller pieces kept + token pieces */
        size_t expect = nt;
        for (size_t c = 0; c < ncaller; c++) {
            size_t nc = pieces(caller[c], cp, MAXP);
            for (size_t j = 0; j < nc && j < MAXP; j++) {
                gw_str_t cn;
                bool dropped = has_bad(cp[j]);
                for (size_t k = 0; !dropped && name_of(cp[j], &cn) && k < nt; k++) {
                    gw_str_t tn;
                    dropped = name_of(tp[k], &tn) && same(tn, cn);
                }
                expect += !dropped;
            }
        }
        REQUIRE(no == expect);
        if (no == 0) REQUIRE(res.n == 0);
        /* every token cookie name exactly once, and the token pairs come last, in order */
        for (size_t k = 0; k < nt && k < MAXP; k++) {
            gw_str_t tn, on;
            REQUIRE(name_of(tp[k], &tn));
            size_t hits = 0;
            for (size_t j = 0; j < no && j < MAXP; j++) hits += name_of(op[j], &on) && same(on, tn);
            REQUIRE(hits == 1);
            REQUIRE(no >= nt && same(op[no - nt + k], tp[k]));
        }
    }
    gw_buf_free(&out);
    gw_buf_free(&tok);
}

/* ---- mode 2: encoders ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; /* upper only */
}

/* Decodes p[0..n) (form: '+' is space) into dst; every byte must be literal or %XX upper-case. */
static size_t decode(const char *p, size_t n, char *dst, bool form)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum || c == '-' || c == '.' || c == '_' || (form ? c == '*' : c == '~')) {
            dst[o++] = (char)c;
        } else if (form && c == '+') {
            dst[o++] = ' ';
        } else {
            REQUIRE(c == '%' && i + 2 < n);
            int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
            REQUIRE(h >= 0 && l >= 0);
            dst[o++] = (char)(h * 16 + l);
            i += 2;
        }
    }
    return o;
}

static void fuzz_encode(uint8_t ctl, const char *d, size_t n)
{
    const char *nl = memchr(d, '\n', n);
    size_t nn = nl ? (size_t)(nl - d) : n;
    char *name = strndup(d, nn), *value = nl ? strndup(nl + 1, n - nn - 1) : strdup("");
    size_t ln = strlen(name), lv = strlen(value);
    char *dec = malloc(3 * (ln + lv) + 8);

    gw_buf_t b;
    gw_buf_init(&b, (ctl & 0x80) ? (size_t)(ctl >> 2 & 31) * 4 : 3 * (ln + lv) + 8);
    bool pre = ctl & 0x40;
    if (pre && gw_buf_puts(&b, "x=1") != 0) pre = false;
    size_t blen = b.len;
    int rc = gw_form_append(&b, name, value);
    REQUIRE(rc == 0 || rc == GW_ENOMEM);
    if (rc != 0) {
        REQUIRE(b.len == blen);
    } else {
        const char *s = b.base + blen;
        size_t sn = b.len - blen;
        if (pre) {
            REQUIRE(sn > 0 && s[0] == '&');
            s++;
            sn--;
        }
        const char *eq = memchr(s, '=', sn);
        REQUIRE(eq != NULL);
        REQUIRE(decode(s, (size_t)(eq - s), dec, true) == ln && memcmp(dec, name, ln) == 0);
        size_t vn = sn - (size_t)(eq - s) - 1;
        REQUIRE(decode(eq + 1, vn, dec, true) == lv && memcmp(dec, value, lv) == 0);
    }

    gw_buf_reset(&b);
    rc = gw_url_query_escape(&b, name);
    REQUIRE(rc == 0 || rc == GW_ENOMEM);
    if (rc == 0)
        REQUIRE(decode(b.base, b.len, dec, false) == ln && memcmp(dec, name, ln) == 0);
    else
        REQUIRE(b.len == 0);
    gw_buf_free(&b);
    free(dec);
    free(name);
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    uint8_t ctl = data[0];
    size_t n = size - 1;
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
    memcpy(copy, data + 1, n);
    switch (ctl & 3) {
    case 0:
    case 3: fuzz_token(ctl, copy, n); break;
    case 1: fuzz_cookies(ctl, copy, n); break;
    case 2: fuzz_encode(ctl, copy, n); break;
    }
    free(copy);
    return 0;
}
