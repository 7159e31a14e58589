/* ondemand.h: routes for a role that may only `get` (the original's RBAC: no list, no watch).
 * Control side: Applications and Secrets fetched one by one from the API server when a request
 * needs them (one GET per object at a time), kept for their retention time and refetched in the
 * background after it, and turned into snapshots marked on-demand. Worker side: a request whose
 * Application is not in an on-demand snapshot parks until that Application was fetched (or
 * found missing), then routes again on the newer snapshot. */
#ifndef GW_REGISTRY_ONDEMAND_H
#define GW_REGISTRY_ONDEMAND_H

#include <stdint.h>

#include <uv.h>

#include "registry/kubeconfig.h"
#include "registry/snapshot.h"
#include "registry/source_files.h"
#include "util/str.h"

/* ---- control side (control loop only) ---- */

typedef struct gw_ondemand_src_s gw_ondemand_src_t;

typedef struct {
    uv_loop_t *loop;
    const gw_kube_conn_t *conn;       /* borrowed: must outlive the source */
    const char *secrets_namespace;
    uint64_t app_retention_ms, secret_retention_ms;
    gw_snapshot_cb cb;                /* receives each snapshot (marked on-demand) */
    void *ud;
} gw_ondemand_src_opts_t;

/* Starts serving the workers' requests and publishes a first (empty) on-demand snapshot at
 * once. Never NULL. */
gw_ondemand_src_t *gw_ondemand_src_start(const gw_ondemand_src_opts_t *o);
/* Cancels fetches and frees everything (asynchronously). */
void gw_ondemand_src_stop(gw_ondemand_src_t *s);

/* ---- worker side (one worker loop only) ---- */

typedef struct gw_ondemand_s gw_ondemand_t;
typedef struct gw_ondemand_wait_s gw_ondemand_wait_t;

struct gw_ondemand_wait_s {
    gw_ondemand_wait_t *next, *prev;
    void *entry;   /* NULL when not parked */
    /* The Application was fetched (status 0: route again) or could not be read (status and
     * error text: answer that). The wait is no longer parked when this runs. */
    void (*cb)(gw_ondemand_wait_t *w, int status, const char *error);
};

/* A worker's view; refresh(ud) is called before parked requests are woken, so that they see
 * the snapshot that holds what was fetched. Never NULL. */
gw_ondemand_t *gw_ondemand_new(uv_loop_t *loop, void (*refresh)(void *ud), void *ud);
/* No request may be parked. */
void gw_ondemand_free(gw_ondemand_t *od);
/* Parks w until Application `app` has been fetched: GW_AGAIN (w->cb follows, never from
 * inside), or GW_DECLINED when no on-demand source runs (answer 404 now). */
int gw_ondemand_wait(gw_ondemand_t *od, gw_str_t app, gw_ondemand_wait_t *w);
void gw_ondemand_cancel(gw_ondemand_wait_t *w);

#endif
