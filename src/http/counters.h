/* counters.h: what one event loop counts for /metrics (client connections, upstream
 * connections and TLS, requests by outcome with their latencies and bytes). Every figure has
 * exactly one writer, the loop's own thread, which adds with a relaxed load + store (no locked
 * instruction); the admin thread sums them with relaxed loads when scraped. Types, macros and
 * one inline recorder; no functions to link. */
#ifndef GW_HTTP_COUNTERS_H
#define GW_HTTP_COUNTERS_H

#include <stdint.h>

/* Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit. Fine below 1 ms,
 * where a loopback proxy hop lives. */
#define GW_DURATION_BUCKETS                                                                                     \
    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
#define GW_NDURATION_BUCKETS 17

/* How a request ended (the "outcome" label). */
typedef enum {
    GW_OUTCOME_PROXIED = 0,   /* the upstream's answer was forwarded completely */
    GW_OUTCOME_GATEWAY_ERROR, /* the gateway answered itself: routing, configuration, credentials */
    GW_OUTCOME_UPSTREAM_ERROR,/* the upstream failed: connect, TLS, malformed, broke off */
    GW_OUTCOME_TIMEOUT,       /* proxyTimeout / requestTimeout ran out */
    GW_OUTCOME_CLIENT_GONE,   /* the client left before the response was complete */
    GW_NOUTCOMES
} gw_outcome_t;

/* Status code recorded when nothing was sent (the client left first), as nginx logs it. */
#define GW_STATUS_CLIENT_GONE 499

/* Distinct (code, outcome) pairs one series keeps per loop; later pairs count in `other` by
 * outcome (code label "other"). A series rarely sees more than a handful. */
#define GW_REQSTATS_SLOTS 24

typedef struct {
    uint64_t bucket[GW_NDURATION_BUCKETS + 1]; /* non-cumulative; last = +Inf */
    uint64_t sum_ns;
} gw_histogram_t;

/* One series' requests on one loop (a series = one app/service, or the unmatched bucket). */
typedef struct {
    uint32_t key[GW_REQSTATS_SLOTS];   /* code * 8 + outcome + 1; 0 = free slot */
    uint64_t count[GW_REQSTATS_SLOTS];
    uint64_t other[GW_NOUTCOMES];      /* requests whose pair found no free slot */
    gw_histogram_t total;              /* head complete → last response byte queued */
    gw_histogram_t upstream;           /* connect + wait for the response head (proxied only) */
    uint64_t bytes_in;                 /* request body bytes received */
    uint64_t bytes_out;                /* response body bytes sent */
} __attribute__((aligned(64))) gw_reqstats_t;

typedef struct {
    uint64_t conns_accepted;
    uint64_t conns_active;            /* gauge */
    uint64_t accept_errors;
    uint64_t requests_started;        /* in flight = started - ended */
    uint64_t requests_ended;
    uint64_t upstream_connects;
    uint64_t upstream_reused;
    uint64_t upstream_errors;
    uint64_t upstream_tls_handshakes;
    uint64_t upstream_tls_resumed;    /* handshakes that resumed a session */
    uint64_t upstream_open;           /* gauge: upstream connections open */
    uint64_t upstream_idle;           /* gauge: of which idle in the pool */
    uint64_t cred_hits;               /* fetched credentials served from the cache */
    uint64_t spliced_bytes;           /* response body bytes moved by splice(2) (also in bytes_out) */
    gw_reqstats_t unmatched;          /* requests that matched no API (bad paths, 404s, 400s) */
} __attribute__((aligned(64))) gw_counters_t;

/* Adds n to a gw_counters_t / gw_reqstats_t field; only the owning loop's thread may call it. */
#define GW_COUNT(cnt, field, n) GW_ADD((cnt)->field, (n))
#define GW_ADD(lv, n) __atomic_store_n(&(lv), __atomic_load_n(&(lv), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
/* Reader side (any thread). */
#define GW_LOAD(lv) __atomic_load_n(&(lv), __ATOMIC_RELAXED)

static inline void gw_histogram_add(gw_histogram_t *h, uint64_t ns)
{
    /* bucket bounds in ns, matching GW_DURATION_BUCKETS */
    static const uint64_t b[GW_NDURATION_BUCKETS] = {
        100000,    250000,     500000,     1000000,    2500000,    5000000,     10000000,   25000000,  50000000,
        100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000, 30000000000};
    int i = 0;
    while (i < GW_NDURATION_BUCKETS && ns > b[i]) i++;
    GW_ADD(h->bucket[i], 1);
    GW_ADD(h->sum_ns, ns);
}

/* Counts one finished request. upstream_ns is 0 when no upstream head was waited for. */
static inline void gw_reqstats_record(gw_reqstats_t *s, int code, gw_outcome_t outcome, uint64_t total_ns,
                                      uint64_t upstream_ns, uint64_t bytes_in, uint64_t bytes_out)
{
    if (bytes_in) GW_ADD(s->bytes_in, bytes_in);
    if (bytes_out) GW_ADD(s->bytes_out, bytes_out);
    if (code < 0 || code > 999) code = 0;
    uint32_t key = (uint32_t)code * 8u + (uint32_t)outcome + 1u;
    int i = 0;
    for (; i < GW_REQSTATS_SLOTS; i++) {
        uint32_t k = __atomic_load_n(&s->key[i], __ATOMIC_RELAXED);
        if (k == key) break;
        if (k == 0) { /* claim it: the reader sees the key before (or with) a count */
            __atomic_store_n(&s->key[i], key, __ATOMIC_RELEASE);
            break;
        }
    }
    if (i < GW_REQSTATS_SLOTS) GW_ADD(s->count[i], 1);
    else GW_ADD(s->other[outcome], 1);
    gw_histogram_add(&s->total, total_ns);
    if (upstream_ns) gw_histogram_add(&s->upstream, upstream_ns);
}

#endif
