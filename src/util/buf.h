/* buf.h: growable byte buffer with a hard cap fixed at creation (curl dynbuf idea). */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct gw_buf_s {
    char *base;  /* owned; NULL while empty */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated */
    size_t max;  /* never grows past this many bytes */
} gw_buf_t;

/* Zeroed memory plus a max is a valid empty buffer. */
void gw_buf_init(gw_buf_t *b, size_t max);
/* Appends n bytes. Returns 0, or GW_ENOMEM when len+n would exceed max (buffer untouched).
 * Inline when the bytes fit the allocation (the request path appends a lot of short pieces). */
static inline int gw_buf_append(gw_buf_t *b, const void *p, size_t n);
int gw_buf_appendf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a NUL-terminated string. */
static inline int gw_buf_puts(gw_buf_t *b, const char *s);
/* Ensures room for n more bytes; returns a pointer to them or NULL when over max. */
char *gw_buf_reserve(gw_buf_t *b, size_t n);
/* Drops the first n bytes (memmove). */
void gw_buf_consume(gw_buf_t *b, size_t n);
void gw_buf_reset(gw_buf_t *b);
/* Frees memory; the buffer stays usable (empty, same max). */
void gw_buf_free(gw_buf_t *b);
/* Hands the bytes (NUL-terminated) to the caller, who frees them; buffer becomes empty. */
char *gw_buf_take(gw_buf_t *b, size_t *len);

/* --- inline --- */
int gw__buf_append_slow(gw_buf_t *b, const void *p, size_t n);

static inline int gw_buf_append(gw_buf_t *b, const void *p, size_t n)
{
    if (n < b->cap - b->len) { /* room for n bytes and the NUL (cap > len whenever cap > 0) */
        if (n) memcpy(b->base + b->len, p, n);
        b->len += n;
        b->base[b->len] = '\0';
        return 0;
    }
    return gw__buf_append_slow(b, p, n);
}

static inline int gw_buf_puts(gw_buf_t *b, const char *s) { return gw_buf_append(b, s, strlen(s)); }

#endif
