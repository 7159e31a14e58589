/* creds.h: credentials that must be fetched (OAuth tokens, CSRF tokens, §6.2–6.5, §6.8).
 * Two halves: the broker on the control loop owns the process-wide caches, makes every fetch
 * (single flight per key, refresh ahead, client-auth fallback) through core/ctlclient, and
 * publishes results to every worker; each worker keeps its own copy (gw_creds_t) that requests
 * read without any lock, and parks the requests that must wait for a fetch.
 * Not for: static credentials (Basic, request parameters, client certificates): those are
 * precomputed in the snapshot. */
#ifndef GW_AUTH_CREDS_H
#define GW_AUTH_CREDS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/flags.h"
#include "http/counters.h"
#include "registry/snapshot.h"
#include "util/str.h"

typedef struct gw_creds_s gw_creds_t;
typedef struct gw_cred_wait_s gw_cred_wait_t;

typedef enum { GW_CRED_KIND_TOKEN = 0, GW_CRED_KIND_CSRF = 1 } gw_cred_kind_t;

/* A request parked until a credential arrives. Zeroed memory is "not parked". */
struct gw_cred_wait_s {
    gw_cred_wait_t *next, *prev;
    void *entry;              /* the worker entry it waits on; NULL when not parked */
    gw_cred_kind_t kind;      /* what it waits for */
    /* status 0: the value arrived (call gw_creds_get again); otherwise the HTTP status to
     * answer with and the error text (valid during the call). Runs on the worker loop, never
     * from inside gw_creds_get. The wait is no longer parked when this runs. */
    void (*cb)(gw_cred_wait_t *w, int status, const char *error);
};

/* What a request uses; slices valid until the worker's loop runs again (copy them at once). */
typedef struct {
    gw_str_t authorization;   /* "Bearer <token>", or empty */
    gw_str_t csrf_token;      /* or empty */
    gw_str_t cookies;         /* the CSRF token's cookies "a=1; b=2", possibly empty */
    uint64_t token_serial, csrf_serial; /* which fetch they came from (for invalidation) */
} gw_cred_values_t;

/* ---- worker side (call on the worker's loop only) ---- */

/* A worker's credential view on loop, registered with the broker (which must be started).
 * Never NULL. */
gw_creds_t *gw_creds_new(uv_loop_t *loop);
/* Unregisters and frees (the handle closes asynchronously). No request may be parked. */
void gw_creds_free(gw_creds_t *c);

/* Looks up what api needs: its OAuth token when need_token, its CSRF token when the API has a
 * CSRF endpoint. GW_OK: *out is filled. GW_AGAIN: a fetch is under way (started if needed); w
 * is parked and w->cb runs once later. snap must hold api (a reference is taken for the
 * broker when a fetch is requested). */
int gw_creds_get(gw_creds_t *c, gw_snapshot_t *snap, const gw_api_t *api, bool need_token, gw_cred_values_t *out,
                 gw_cred_wait_t *w);
/* Unparks w (its callback will not run). No-op when not parked. */
void gw_creds_cancel(gw_cred_wait_t *w);
/* The upstream refused the values in used (401/403): forgets them here and asks the broker to
 * drop them unless it already holds newer ones; the next gw_creds_get fetches anew. */
void gw_creds_invalidate(gw_creds_t *c, const gw_api_t *api, bool need_token, const gw_cred_values_t *used);

/* ---- control side (call on the control loop only) ---- */

/* Starts the broker (and core/ctlclient) on loop. Token and CSRF requests time out after
 * flags->proxy_timeout seconds. 0 or a negative error. */
int gw_broker_start(uv_loop_t *loop, const gw_flags_t *flags);
/* A new snapshot is published: cache entries no API of snap uses any more are dropped
 * everywhere (Secrets rotated, APIs deleted). Takes no reference on snap. */
void gw_broker_snapshot_changed(gw_snapshot_t *snap);
/* Cancels fetches, closes the broker's handles, frees the caches (after the workers exited). */
void gw_broker_stop(void);

/* Process-wide counters for /metrics (relaxed reads). */
typedef struct {
    uint64_t fetch_ok[2], fetch_err[2];  /* by gw_cred_kind_t */
    uint64_t refreshes;                  /* refresh-ahead fetches started */
    uint64_t waits;                      /* requests parked for a fetch (all workers) */
    uint64_t cached;                     /* entries in the broker's cache (gauge) */
    gw_histogram_t latency[2];           /* fetch durations, by kind (call on the control loop) */
} gw_cred_stats_t;
void gw_cred_stats(gw_cred_stats_t *out);

#endif
