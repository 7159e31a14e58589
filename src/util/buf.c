/* buf.c: capped growable buffer; every failure leaves the buffer as it was. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/common.h"

void gw_buf_init(gw_buf_t *b, size_t max)
{
    b->base = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

char *gw_buf_reserve(gw_buf_t *b, size_t n)
{
    if (n > b->max || b->len > b->max - n) return NULL;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1) ncap *= 2;
        if (ncap > b->max + 1) ncap = b->max + 1;
        b->base = gw_realloc(b->base, ncap);
        b->cap = ncap;
    }
    return b->base + b->len;
}

int gw__buf_append_slow(gw_buf_t *b, const void *p, size_t n)
{
    char *dst = gw_buf_reserve(b, n);
    if (!dst) return GW_ENOMEM;
    if (n) memcpy(dst, p, n);
    b->len += n;
    b->base[b->len] = '\0';
    return GW_OK;
}

int gw_buf_appendf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return GW_EINVAL;
    char *dst = gw_buf_reserve(b, (size_t)n);
    if (!dst) return GW_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return GW_OK;
}

void gw_buf_consume(gw_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->base, b->base + n, b->len - n);
        b->len -= n;
    }
    if (b->base) b->base[b->len] = '\0';
}

void gw_buf_reset(gw_buf_t *b)
{
    b->len = 0;
    if (b->base) b->base[0] = '\0';
}

void gw_buf_free(gw_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

char *gw_buf_take(gw_buf_t *b, size_t *len)
{
    char *p = b->base ? b->base : gw_strdup("");
    if (len) *len = b->len;
    b->base = NULL;
    b->len = b->cap = 0;
    return p;
}
