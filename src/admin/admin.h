/* admin.h: the admin API on externalAPIPort (SPEC §8): health, run-time log level, and
 * Prometheus metrics aggregated from the workers' counters. Runs on the control loop. */
#ifndef GW_ADMIN_ADMIN_H
#define GW_ADMIN_ADMIN_H

#include "core/worker.h"
#include "http/server.h"
#include "util/buf.h"

extern const gw_handler_t gw_admin_handler;

/* Tells the metrics endpoint which workers to sum. Call before serving. */
void gw_admin_set_workers(gw_worker_t *workers, int n);

/* Renders the metrics text into out (for tests and the endpoint). */
void gw_admin_render_metrics(gw_buf_t *out);

#endif
