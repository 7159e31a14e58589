/* str.h: non-owning string slices and the byte-level helpers HTTP code needs; no allocation, no I/O. */
#ifndef GW_STR_H
#define GW_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* A view into someone else's bytes; valid as long as those bytes are. */
typedef struct {
    const char *p;
    size_t n;
} gw_str_t;

#define GW_STR_LIT(s) ((gw_str_t){(s), sizeof(s) - 1})

static inline gw_str_t gw_str(const char *s) { return (gw_str_t){s, s ? strlen(s) : 0}; }

static inline bool gw_str_eq(gw_str_t a, const char *b, size_t bn)
{
    return a.n == bn && memcmp(a.p, b, bn) == 0;
}

/* ASCII case-insensitive equality, as HTTP header names need. */
static inline bool gw_str_ieq(gw_str_t a, const char *b, size_t bn)
{
    return a.n == bn && strncasecmp(a.p, b, bn) == 0;
}

#define GW_STR_IEQ_LIT(a, lit) gw_str_ieq((a), (lit), sizeof(lit) - 1)

/* Trim optional whitespace (SP / HTAB) on both ends. */
static inline gw_str_t gw_str_trim(gw_str_t s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) { s.p++; s.n--; }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

/* Iterate over comma-separated list elements (RFC 9110 #rule): sets *elem to the
 * next trimmed, non-empty element and advances *rest. Returns false when done. */
static inline bool gw_str_next_token(gw_str_t *rest, gw_str_t *elem)
{
    while (rest->n) {
        const char *c = memchr(rest->p, ',', rest->n);
        size_t len = c ? (size_t)(c - rest->p) : rest->n;
        gw_str_t e = gw_str_trim((gw_str_t){rest->p, len});
        rest->p += c ? len + 1 : len;
        rest->n -= c ? len + 1 : len;
        if (e.n) { *elem = e; return true; }
    }
    return false;
}

#endif
