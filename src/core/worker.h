/* worker.h: one worker thread = one libuv loop with its own SO_REUSEPORT listeners, pinned
 * snapshot, upstream pool and counters. Nothing here is shared between workers except the
 * counters, which the admin thread reads with relaxed atomics. */
#ifndef GW_CORE_WORKER_H
#define GW_CORE_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/flags.h"
#include "registry/snapshot.h"

struct gw_upstream_pool_s;
struct gw_creds_s;
struct gw_conn_s;
struct gw_handler_s;

#define GW_MAX_LISTENERS 4

/* A worker's hold on one snapshot, counted without atomics: requests pin the worker's current
 * pin; when a newer snapshot arrives the old pin is retired and lets go of its snapshot once
 * its last request ends. Only ever touched by the worker's own thread. */
typedef struct gw_pin_s {
    gw_snapshot_t *snap; /* one reference */
    uint32_t users;
    bool retired;
} gw_pin_t;

static inline gw_pin_t *gw_pin_get(gw_pin_t *p)
{
    p->users++;
    return p;
}
/* Drops a request's hold; frees a retired pin (and its snapshot reference) with the last. */
void gw_pin_put(gw_pin_t *p);

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

/* Relaxed atomic increment: counters are written by one thread and read by the admin thread. */
#define GW_COUNT(w, field, n) __atomic_fetch_add(&(w)->counters.field, (n), __ATOMIC_RELAXED)

typedef struct gw_listener_s {
    uv_poll_t poll;      /* readiness of the listening socket (we accept ourselves) */
    uv_timer_t pause;    /* accepting paused after running out of file descriptors */
    int reserve_fd;      /* spare fd, given up to accept-and-close when out of fds */
    struct gw_worker_s *worker;
    const struct gw_handler_s *handler;
    int mode;   /* handler-specific: e.g. number of path segments to route on */
    int fd;     /* bound, not yet listening, socket made by gw_listener_socket */
} gw_listener_t;

typedef struct gw_worker_s {
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t grace_timer;
    uv_timer_t poll_timer;            /* while draining: checks whether all connections are gone */
    gw_pin_t *pin;                   /* the current snapshot, as requests pin it */
    const gw_flags_t *flags;
    gw_listener_t listeners[GW_MAX_LISTENERS];
    int nlisteners;
    struct gw_upstream_pool_s *pool;
    struct gw_creds_s *creds;        /* this worker's view of the fetched credentials */
    struct gw_conn_s *conns;         /* all open client connections (for draining) */
    bool draining;
    int stop_requested;              /* set by another thread, read with atomics */
    int exited;                      /* set (atomically) when the worker's loop has ended */
    gw_counters_t counters;
} gw_worker_t;

/* Creates a bound TCP socket with SO_REUSEADDR and SO_REUSEPORT on addr:port.
 * Returns the fd, or a negative errno (logged by the caller). */
int gw_listener_socket(const char *addr, int port);

/* Initialises w (loop, wake handle) and starts its thread; listeners must be filled in
 * (fd, handler, mode) before. Returns 0 or a negative uv error. */
int gw_worker_start(gw_worker_t *w, int id, const gw_flags_t *flags);
/* Asks the worker to stop accepting and to exit once its connections are done (or the grace
 * period has passed). Thread-safe. */
void gw_worker_request_stop(gw_worker_t *w);
void gw_worker_join(gw_worker_t *w);

#endif
