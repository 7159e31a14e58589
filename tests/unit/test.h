/* test.h: a minimal unit-test harness: each test_*.c has a main() that runs its cases via
 * GW_RUN and returns gw_test_summary(); failures print file:line and the expression. */
#ifndef GW_TEST_H
#define GW_TEST_H

#include <stdio.h>
#include <string.h>

static int gw_test_failures, gw_test_checks, gw_test_cases;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        gw_test_checks++;                                                            \
        if (!(cond)) {                                                               \
            gw_test_failures++;                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                        \
    do {                                                                                          \
        long long _a = (long long)(a), _b = (long long)(b);                                       \
        gw_test_checks++;                                                                         \
        if (_a != _b) {                                                                           \
            gw_test_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
        }                                                                                         \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                             \
    do {                                                                                               \
        const char *_a = (a), *_b = (b);                                                               \
        gw_test_checks++;                                                                              \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                                       \
            gw_test_failures++;                                                                        \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,         \
                    _a ? _a : "(null)", _b ? _b : "(null)");                                           \
        }                                                                                              \
    } while (0)

/* Compares a gw_str_t-like {p,n} slice with a C string. */
#define CHECK_EQ_SLICE(s, lit)                                                                          \
    do {                                                                                                \
        const char *_l = (lit);                                                                         \
        gw_test_checks++;                                                                               \
        if ((s).n != strlen(_l) || memcmp((s).p, _l, (s).n) != 0) {                                     \
            gw_test_failures++;                                                                         \
            fprintf(stderr, "%s:%d: %s == \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, #s,        \
                    (int)(s).n, (s).p ? (s).p : "", _l);                                                \
        }                                                                                               \
    } while (0)

#define GW_RUN(fn)                     \
    do {                               \
        gw_test_cases++;               \
        int _before = gw_test_failures; \
        fn();                          \
        fprintf(stderr, "%s %s\n", gw_test_failures == _before ? "ok  " : "FAIL", #fn); \
    } while (0)

static inline int gw_test_summary(void)
{
    fprintf(stderr, "%d cases, %d checks, %d failures\n", gw_test_cases, gw_test_checks, gw_test_failures);
    return gw_test_failures ? 1 : 0;
}

#endif
