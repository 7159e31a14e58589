/* alloc.c: allocation that aborts on out-of-memory, so callers never handle NULL from malloc. */
#include "util/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *gw_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) gw_oom(n);
    return p;
}

void *gw_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) gw_oom(n * size);
    return p;
}

void *gw_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) gw_oom(n);
    return q;
}

char *gw_strndup(const char *s, size_t n)
{
    char *p = gw_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gw_strdup(const char *s)
{
    return gw_strndup(s, strlen(s));
}

char *gw_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *p = gw_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
