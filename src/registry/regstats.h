/* regstats.h: how the configuration sources are doing, for /metrics: written by the sources on
 * the control loop and read by the admin API, which runs there too (no atomics needed). */
#ifndef GW_REGISTRY_REGSTATS_H
#define GW_REGISTRY_REGSTATS_H

#include <stdint.h>

enum { GW_SOURCE_FILES = 0, GW_SOURCE_KUBE, GW_NSOURCES };

typedef struct {
    uint64_t load_errors[GW_NSOURCES]; /* manifests / objects rejected, by source */
    uint64_t relists;                  /* Kubernetes: full lists after the first */
    int apiserver;                     /* -1: no API server source; 0: unreachable; 1: reachable */
} gw_registry_stats_t;

extern gw_registry_stats_t gw_registry_stats;

#endif
