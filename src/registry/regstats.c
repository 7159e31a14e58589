/* regstats.c: the one gw_registry_stats (regstats.h). */
#include "registry/regstats.h"

gw_registry_stats_t gw_registry_stats = {.apiserver = -1};
