/* kube_client.h: one GET to the Kubernetes API server with a connection's credentials (bearer
 * token, re-read from its file each time, or client certificate; its CA or verification
 * setting), through core/ctlclient. Shared by the list/watch source and the on-demand fetcher. */
#ifndef GW_REGISTRY_KUBE_CLIENT_H
#define GW_REGISTRY_KUBE_CLIENT_H

#include "core/ctlclient.h"
#include "registry/kubeconfig.h"

typedef struct {
    gw_ctl_cb done;                                  /* the response (see gw_ctl_fetch) */
    void (*on_head)(void *ud, int status);           /* optional, see gw_ctl_request_t */
    int (*on_data)(void *ud, const char *p, size_t n); /* optional streaming */
    long timeout_ms;
} gw_kube_get_t;

/* GET conn->server + path_and_query. Returns 0 (o->done runs once, later) or an error (it never
 * runs). *out (may be NULL) names the transfer for gw_ctl_cancel. */
int gw_kube_get(const gw_kube_conn_t *conn, const char *path_and_query, const gw_kube_get_t *o, void *ud,
                gw_ctl_xfer_t **out);

/* The "message" of a Kubernetes Status body, for logs, into buf. */
const char *gw_kube_status_message(const gw_ctl_response_t *r, char *buf, size_t len);

#endif
