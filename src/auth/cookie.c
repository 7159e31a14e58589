/* cookie.c: Set-Cookie pair extraction and Cookie header merging for CSRF tokens (SPEC §6.5);
 * pure functions over capped buffers, every failure leaves the output as it was. */
#include "auth/cookie.h"

#include <stdbool.h>
#include <string.h>

#include "util/common.h"

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool valid_name(gw_str_t n)
{
    if (!n.n) return false;
    for (size_t i = 0; i < n.n; i++)
        if (!is_tchar((unsigned char)n.p[i])) return false;
    return true;
}

/* Cookie value per cookie.h: no CTL, SP, ';', '\\', '"' (except one wrapping pair). */
static bool valid_value(gw_str_t v)
{
    if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') {
        v.p++;
        v.n -= 2;
    }
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < 0x21 || c == 0x7f || c == ';' || c == '\\' || c == '"') return false;
    }
    return true;
}

/* Sets *pair to the next trimmed, non-empty ';'-separated piece of *rest; false when done. */
static bool next_pair(gw_str_t *rest, gw_str_t *pair)
{
    while (rest->n) {
        const char *semi = memchr(rest->p, ';', rest->n);
        size_t len = semi ? (size_t)(semi - rest->p) : rest->n;
        gw_str_t e = gw_str_trim((gw_str_t){rest->p, len});
        rest->p += semi ? len + 1 : len;
        rest->n -= semi ? len + 1 : len;
        if (e.n) {
            *pair = e;
            return true;
        }
    }
    return false;
}

/* The trimmed text before the first '=' of pair; false (no name) when there is no '='. */
static bool pair_name(gw_str_t pair, gw_str_t *name)
{
    const char *eq = memchr(pair.p, '=', pair.n);
    if (!eq) return false;
    *name = gw_str_trim((gw_str_t){pair.p, (size_t)(eq - pair.p)});
    return true;
}

static bool same_name(gw_str_t pair, gw_str_t name)
{
    gw_str_t n;
    return pair_name(pair, &n) && gw_str_eq(n, name.p, name.n);
}

/* Appends "; " (unless *first) then a, '=' and b when b is not NULL. 0 or GW_ENOMEM (untouched). */
static int emit(gw_buf_t *out, bool *first, gw_str_t a, const gw_str_t *b)
{
    size_t sep = *first ? 0 : 2, total = sep + a.n + (b ? 1 + b->n : 0);
    if (a.n > out->max || (b && b->n > out->max)) return GW_ENOMEM; /* total cannot wrap */
    char *dst = gw_buf_reserve(out, total);
    if (!dst) return GW_ENOMEM;
    memcpy(dst, "; ", sep);
    memcpy(dst + sep, a.p, a.n);
    if (b) {
        dst[sep + a.n] = '=';
        if (b->n) memcpy(dst + sep + a.n + 1, b->p, b->n);
    }
    out->len += total;
    out->base[out->len] = '\0';
    *first = false;
    return GW_OK;
}

int gw_cookie_add_set_cookie(gw_buf_t *out, gw_str_t set_cookie)
{
    if (!set_cookie.n) return GW_EBADMSG;
    const char *semi = memchr(set_cookie.p, ';', set_cookie.n);
    gw_str_t pair = gw_str_trim((gw_str_t){set_cookie.p, semi ? (size_t)(semi - set_cookie.p) : set_cookie.n});
    const char *eq = pair.n ? memchr(pair.p, '=', pair.n) : NULL;
    if (!eq) return GW_EBADMSG;
    gw_str_t name = gw_str_trim((gw_str_t){pair.p, (size_t)(eq - pair.p)});
    gw_str_t value = gw_str_trim((gw_str_t){eq + 1, (size_t)(pair.p + pair.n - eq - 1)});
    if (!valid_name(name) || !valid_value(value)) return GW_EBADMSG;

    /* Rebuild into tmp so that a failure leaves out untouched. */
    gw_buf_t tmp;
    gw_buf_init(&tmp, out->max);
    gw_str_t rest = {out->base, out->len}, p;
    bool first = true, placed = false;
    int rc = GW_OK;
    while (rc == GW_OK && next_pair(&rest, &p)) {
        bool same = same_name(p, name);
        if (same && placed) continue; /* drop any further duplicate */
        rc = same ? emit(&tmp, &first, name, &value) : emit(&tmp, &first, p, NULL);
        placed = placed || same;
    }
    if (rc == GW_OK && !placed) rc = emit(&tmp, &first, name, &value);
    if (rc != GW_OK) {
        gw_buf_free(&tmp);
        return rc;
    }
    gw_buf_free(out);
    *out = tmp;
    return GW_OK;
}

static bool has_crlf_nul(gw_str_t s)
{
    return memchr(s.p, '\r', s.n) || memchr(s.p, '\n', s.n) || memchr(s.p, '\0', s.n);
}

/* True when some pair of token_cookies is named name. */
static bool token_has_name(gw_str_t token_cookies, gw_str_t name)
{
    gw_str_t p;
    while (next_pair(&token_cookies, &p))
        if (same_name(p, name)) return true;
    return false;
}

int gw_cookie_merge(gw_buf_t *out, const gw_str_t *caller, size_t ncaller, gw_str_t token_cookies)
{
    size_t old = out->len;
    bool first = true;
    int rc = GW_OK;
    gw_str_t p, name;
    for (size_t i = 0; rc == GW_OK && i < ncaller; i++) {
        gw_str_t rest = caller[i];
        while (rc == GW_OK && next_pair(&rest, &p)) {
            if (has_crlf_nul(p)) continue;
            if (pair_name(p, &name) && token_has_name(token_cookies, name)) continue;
            rc = emit(out, &first, p, NULL);
        }
    }
    gw_str_t rest = token_cookies;
    while (rc == GW_OK && next_pair(&rest, &p))
        if (!has_crlf_nul(p)) rc = emit(out, &first, p, NULL);
    if (rc != GW_OK) {
        out->len = old;
        if (out->base) out->base[old] = '\0';
    }
    return rc;
}
