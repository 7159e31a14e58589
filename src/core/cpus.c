/* cpus.c: CPU budget from sched_getaffinity and the cgroup (v2 cpu.max, v1 cfs quota). */
#include "core/cpus.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gw_cpus_from_cgroup2(const char *s)
{
    if (!s) return -1;
    while (*s == ' ') s++;
    if (strncmp(s, "max", 3) == 0) return 0;
    char *end;
    long long quota = strtoll(s, &end, 10);
    if (end == s || quota <= 0) return -1;
    long long period = strtoll(end, &end, 10);
    if (period <= 0) period = 100000;
    return gw_cpus_from_cgroup1(quota, period);
}

int gw_cpus_from_cgroup1(long long quota, long long period)
{
    if (quota < 0) return 0;
    if (quota == 0 || period <= 0) return -1;
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (int)n;
}

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *ok = fgets(buf, (int)len, f);
    fclose(f);
    return ok ? 0 : -1;
}

static int cgroup_limit(void)
{
    char buf[128];
    if (read_line("/sys/fs/cgroup/cpu.max", buf, sizeof(buf)) == 0) return gw_cpus_from_cgroup2(buf);
    char q[64], p[64];
    if (read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", q, sizeof(q)) == 0 &&
        read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us", p, sizeof(p)) == 0)
        return gw_cpus_from_cgroup1(atoll(q), atoll(p));
    return 0;
}

int gw_cpus_available(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) n = CPU_COUNT(&set);
    int lim = cgroup_limit();
    if (lim > 0 && lim < n) n = lim;
    if (n < 1) n = 1;
    return n > 256 ? 256 : (int)n;
}
