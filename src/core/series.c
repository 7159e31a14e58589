/* series.c: the registry of metric label sets (series.h); a mutex guards the list, taken when
 * a snapshot is built or freed and when /metrics is scraped, never per request. */
#include "core/series.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "util/alloc.h"

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static gw_series_t *live;
static int nworkers = 1;

static void init_mutex(void)
{
    if (uv_mutex_init(&mu) != 0) abort();
}

void gw_series_init(int n)
{
    uv_once(&once, init_mutex);
    if (n > 0) nworkers = n;
}

int gw_series_nworkers(void) { return nworkers; }

static size_t block_size(gw_series_kind_t kind)
{
    return kind == GW_SERIES_API ? sizeof(gw_reqstats_t) : sizeof(gw_upstats_t);
}

gw_series_t *gw_series_get(gw_series_kind_t kind, const char *a, const char *b)
{
    uv_once(&once, init_mutex);
    uv_mutex_lock(&mu);
    gw_series_t *s = live;
    for (; s; s = s->next)
        if (s->kind == kind && strcmp(s->a, a) == 0 && strcmp(s->b, b) == 0) break;
    if (s) {
        s->refs++;
    } else {
        s = gw_calloc(1, sizeof(*s));
        s->kind = kind;
        s->a = gw_strdup(a);
        s->b = gw_strdup(b);
        size_t sz = block_size(kind) * (size_t)nworkers;
        /* 64-byte aligned: each worker's block on its own cache lines */
        if (posix_memalign(&s->blocks, 64, sz) != 0) abort();
        memset(s->blocks, 0, sz);
        s->refs = 1;
        s->next = live;
        live = s;
    }
    uv_mutex_unlock(&mu);
    return s;
}

void gw_series_put(gw_series_t *s)
{
    if (!s) return;
    uv_mutex_lock(&mu);
    bool last = --s->refs == 0;
    if (last)
        for (gw_series_t **pp = &live; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
    uv_mutex_unlock(&mu);
    if (!last) return;
    free(s->a);
    free(s->b);
    free(s->blocks);
    free(s);
}

static int cmp_series(const void *x, const void *y)
{
    const gw_series_t *p = *(gw_series_t *const *)x, *q = *(gw_series_t *const *)y;
    int c = strcmp(p->a, q->a);
    return c ? c : strcmp(p->b, q->b);
}

void gw_series_foreach(gw_series_kind_t kind, void (*fn)(const gw_series_t *s, void *ud), void *ud)
{
    uv_once(&once, init_mutex);
    uv_mutex_lock(&mu);
    size_t n = 0;
    for (gw_series_t *s = live; s; s = s->next) n += s->kind == kind;
    gw_series_t **v = gw_malloc((n ? n : 1) * sizeof(*v));
    n = 0;
    for (gw_series_t *s = live; s; s = s->next)
        if (s->kind == kind) v[n++] = s;
    qsort(v, n, sizeof(*v), cmp_series);
    for (size_t i = 0; i < n; i++) fn(v[i], ud);
    uv_mutex_unlock(&mu);
    free(v);
}
