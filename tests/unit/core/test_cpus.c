/* test_cpus.c: the CPU budget from cgroup limits (core/cpus.c). */
#include "core/cpus.h"
#include "test.h"

static void test_cgroup2(void)
{
    CHECK_EQ_INT(gw_cpus_from_cgroup2("max 100000\n"), 0);
    CHECK_EQ_INT(gw_cpus_from_cgroup2("50000 100000\n"), 1);    /* 500m */
    CHECK_EQ_INT(gw_cpus_from_cgroup2("100000 100000\n"), 1);
    CHECK_EQ_INT(gw_cpus_from_cgroup2("150000 100000\n"), 2);   /* rounded up */
    CHECK_EQ_INT(gw_cpus_from_cgroup2("400000 100000"), 4);
    CHECK_EQ_INT(gw_cpus_from_cgroup2("200000"), 2);            /* period defaults to 100 ms */
    CHECK_EQ_INT(gw_cpus_from_cgroup2(""), -1);
    CHECK_EQ_INT(gw_cpus_from_cgroup2("garbage"), -1);
    CHECK_EQ_INT(gw_cpus_from_cgroup2(NULL), -1);
}

static void test_cgroup1(void)
{
    CHECK_EQ_INT(gw_cpus_from_cgroup1(-1, 100000), 0);
    CHECK_EQ_INT(gw_cpus_from_cgroup1(50000, 100000), 1);
    CHECK_EQ_INT(gw_cpus_from_cgroup1(250000, 100000), 3);
    CHECK_EQ_INT(gw_cpus_from_cgroup1(0, 100000), -1);
    CHECK_EQ_INT(gw_cpus_from_cgroup1(100000, 0), -1);
}

static void test_available(void)
{
    int n = gw_cpus_available();
    CHECK(n >= 1 && n <= 256);
}

int main(void)
{
    GW_RUN(test_cgroup2);
    GW_RUN(test_cgroup1);
    GW_RUN(test_available);
    return gw_test_summary();
}
