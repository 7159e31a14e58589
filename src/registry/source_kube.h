/* source_kube.h: the Kubernetes registry: keeps a live copy of the Applications and of the
 * Secrets of one namespace with list + watch (the informer pattern: paginated lists,
 * resourceVersion bookkeeping, bookmarks, relist on 410, reconnect with backoff) and hands a
 * fresh snapshot to a callback on every change, batched. When list/watch are forbidden (the
 * original's get-only role) it fetches objects on demand instead (registry/ondemand.h).
 * Runs on the control loop through core/ctlclient; not thread-safe. */
#ifndef GW_REGISTRY_SOURCE_KUBE_H
#define GW_REGISTRY_SOURCE_KUBE_H

#include <uv.h>

#include "registry/kubeconfig.h"
#include "registry/snapshot.h"
#include "registry/source_files.h"

typedef struct gw_source_kube_s gw_source_kube_t;

typedef struct {
    const char *secrets_namespace;
    uint64_t app_retention_ms;     /* on-demand mode: cache life of an Application */
    uint64_t secret_retention_ms;  /* on-demand mode: cache life of a Secret */
} gw_source_kube_opts_t;

/* Starts syncing (asynchronously: the first snapshot comes after the first complete list of
 * both kinds, or when on-demand mode is established). conn is taken over (freed by stop).
 * Never NULL. */
gw_source_kube_t *gw_source_kube_start(uv_loop_t *loop, gw_kube_conn_t *conn, const gw_source_kube_opts_t *opts,
                                       gw_snapshot_cb cb, void *ud);
/* Cancels requests and timers; frees everything once the loop has closed the handles. */
void gw_source_kube_stop(gw_source_kube_t *src);

/* Parses a Go duration ("300ms", "1.5h", "2m30s", "5m"); -1 when invalid or negative. */
int64_t gw_go_duration_ms(const char *s);

#endif
