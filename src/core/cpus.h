/* cpus.h: how many CPUs this process may really use (the default worker count): the CPUs it may
 * run on (affinity) and, inside a container, its cgroup CPU limit, so that a pod limited to 500m
 * on a 32-core node does not start 32 event loops. */
#ifndef GW_CORE_CPUS_H
#define GW_CORE_CPUS_H

/* At least 1, at most 256. Reads /proc and /sys; never fails. */
int gw_cpus_available(void);

/* The CPU count a cgroup v2 "cpu.max" line allows ("max 100000" → 0 = no limit;
 * "150000 100000" → 2, rounded up); -1 when unreadable. */
int gw_cpus_from_cgroup2(const char *cpu_max);
/* Same for cgroup v1 cfs_quota_us / cfs_period_us values (quota -1 → 0 = no limit). */
int gw_cpus_from_cgroup1(long long quota_us, long long period_us);

#endif
