/* worker.h: one worker thread = one libuv loop with its own SO_REUSEPORT listeners (an
 * http/server.h server), pinned snapshot, upstream pool, credential view and counters. Nothing here is shared between workers except the
 * counters, which the admin thread reads with relaxed atomics. */
#ifndef GW_CORE_WORKER_H
#define GW_CORE_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/flags.h"
#include "http/accesslog.h"
#include "http/counters.h"
#include "http/server.h"
#include "http/client.h"
#include "http/writeq.h"
#include "registry/snapshot.h"
#include "util/freelist.h"

struct gw_upstream_pool_s;
struct gw_creds_s;
struct gw_ondemand_s;

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
    struct gw_ondemand_s *ondemand;  /* requests waiting for on-demand Applications */
    gw_server_t server;              /* client connections of both proxy ports; data = worker */
    int stop_requested;              /* set by another thread, read with atomics */
    int exited;                      /* set (atomically) when the worker's loop has ended */
    gw_accesslog_t access;           /* this loop's access log lines */
    gw_wbatch_t wbatch;              /* this loop's writes, sent at the end of each round */
    gw_freelist_t request_states;    /* the proxy's per-request state, kept for reuse */
    uint64_t reqid_prefix;           /* random, for the request IDs this worker generates (set by
                                        the proxy at its first generated ID; 0 until then) */
    uint64_t reqid_seq;
    gw_counters_t counters;
} gw_worker_t;

/* Creates a bound TCP socket with SO_REUSEADDR and SO_REUSEPORT on addr:port.
 * Returns the fd, or a negative errno (logged by the caller). */
int gw_listener_socket(const char *addr, int port);
/* 1 when something (another process) already listens on addr:port, else 0. Call before our
 * own listeners exist: SO_REUSEPORT would let a second gateway share the ports unnoticed. */
int gw_port_in_use(const char *addr, int port);

/* The worker that owns a server (a request's req->server). */
static inline gw_worker_t *gw_worker_of(gw_server_t *s) { return (gw_worker_t *)s->data; }

/* Initialises w (loop, wake handle) and starts its thread; listeners must be filled in
 * (fd, handler, mode) before. Returns 0 or a negative uv error. */
int gw_worker_start(gw_worker_t *w, int id, const gw_flags_t *flags);
/* Asks the worker to stop accepting and to exit once its connections are done (or the grace
 * period has passed). Thread-safe. */
void gw_worker_request_stop(gw_worker_t *w);
void gw_worker_join(gw_worker_t *w);

#endif
