/* series.h: the label sets /metrics reports requests under (one per app/service, one per
 * upstream host), each with one counter block per worker. Snapshots hold them, so a series
 * lives exactly as long as some route table names it: only configured APIs become label
 * values, and a deleted API's series goes when the last snapshot naming it does. */
#ifndef GW_CORE_SERIES_H
#define GW_CORE_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "http/counters.h"

/* One upstream host's figures on one worker, counted by the proxy. */
typedef struct {
    uint64_t connects;        /* new connections started */
    uint64_t reused;          /* requests sent on a pooled connection */
    uint64_t connect_errors;  /* connection or TLS handshake failed */
    uint64_t errors;          /* other failures: lost, malformed, timed out */
} __attribute__((aligned(64))) gw_upstats_t;

typedef enum { GW_SERIES_API, GW_SERIES_HOST } gw_series_kind_t;

typedef struct gw_series_s {
    gw_series_kind_t kind;
    char *a;                  /* API: app; HOST: host[:port] as in the Host header */
    char *b;                  /* API: service name as written; HOST: "https" or "http" */
    void *blocks;             /* nworkers × gw_reqstats_t (API) or gw_upstats_t (HOST) */
    uint32_t refs;            /* under the registry lock */
    struct gw_series_s *next;
} gw_series_t;

/* Sets the number of workers (blocks per series). Call once, before the first snapshot is
 * built; without it a series has one block (unit tests, fuzzers). */
void gw_series_init(int nworkers);
int gw_series_nworkers(void);

/* Takes a reference on the series for these labels, creating it (zeroed) if none is live. */
gw_series_t *gw_series_get(gw_series_kind_t kind, const char *a, const char *b);
/* Drops a reference; the last one frees the series. Any thread. NULL is ignored. */
void gw_series_put(gw_series_t *s);

static inline gw_reqstats_t *gw_series_req(gw_series_t *s, int worker)
{
    return &((gw_reqstats_t *)s->blocks)[worker];
}
static inline gw_upstats_t *gw_series_up(gw_series_t *s, int worker)
{
    return &((gw_upstats_t *)s->blocks)[worker];
}

/* Calls fn for every live series of a kind, sorted by labels, under the registry lock
 * (scrapes only: fn must not get or put series). */
void gw_series_foreach(gw_series_kind_t kind, void (*fn)(const gw_series_t *s, void *ud), void *ud);

#endif
