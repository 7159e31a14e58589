/* config.h: publishes route snapshots from the control thread to the workers: the only global
 * mutable state. Publishing swaps a pointer under a mutex and wakes each worker, which pins the
 * new snapshot on its own loop; requests then take a reference with no lock at all. */
#ifndef GW_CORE_CONFIG_H
#define GW_CORE_CONFIG_H

#include <uv.h>

#include "registry/snapshot.h"

void gw_config_init(void);
/* Takes over the caller's reference to snap and wakes every subscriber. */
void gw_config_publish(gw_snapshot_t *snap);
/* A new reference to the current snapshot (never NULL after init). */
gw_snapshot_t *gw_config_acquire(void);
/* Registers an async handle (on a worker loop) to be woken on each publish. */
void gw_config_subscribe(uv_async_t *wake);
void gw_config_unsubscribe(uv_async_t *wake);
/* Readiness (/v1/ready): NULL once a configuration source published its first complete
 * snapshot, else why not (static text). Thread-safe. */
const char *gw_config_not_ready(void);
/* What a source is waiting for before its first snapshot (static text, shown by /v1/ready). */
void gw_config_set_waiting(const char *why);
/* Unix time of the last publish (0: none yet). Thread-safe. */
double gw_config_published_at(void);

/* Drops the published snapshot (at exit). */
void gw_config_shutdown(void);

#endif
