/* counters.h: what one event loop counts for /metrics (client connections, responses by status,
 * durations, upstream connections and TLS, body bytes). Written by the loop's own thread with
 * relaxed atomics, summed by the admin side; types and one macro, no functions. */
#ifndef GW_HTTP_COUNTERS_H
#define GW_HTTP_COUNTERS_H

#include <stdint.h>

/* Upper bounds (seconds) of the request duration histogram buckets; +Inf is implicit. */
#define GW_DURATION_BUCKETS {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
#define GW_NDURATION_BUCKETS 14

typedef struct {
    uint64_t requests_by_status[600]; /* index = status code sent to the client */
    uint64_t duration_buckets[GW_NDURATION_BUCKETS + 1]; /* non-cumulative; last = +Inf */
    uint64_t duration_sum_us;
    uint64_t conns_accepted;
    uint64_t conns_active;            /* gauge */
    uint64_t accept_errors;
    uint64_t upstream_connects;
    uint64_t upstream_reused;
    uint64_t upstream_errors;
    uint64_t upstream_tls_handshakes;
    uint64_t upstream_tls_resumed;    /* handshakes that resumed a session */
    uint64_t bytes_in;                /* request body bytes forwarded */
    uint64_t bytes_out;               /* response body bytes forwarded */
} gw_counters_t;

/* Relaxed atomic increment of a gw_counters_t field (cnt is a pointer). */
#define GW_COUNT(cnt, field, n) __atomic_fetch_add(&(cnt)->field, (n), __ATOMIC_RELAXED)

#endif
