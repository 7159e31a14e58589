/* require.h: the fuzz drivers' invariant check: a violated property aborts with its place,
 * which libFuzzer reports as a crash with a reproducer (assert() would vanish under NDEBUG). */
#ifndef GW_FUZZ_REQUIRE_H
#define GW_FUZZ_REQUIRE_H

#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(c)                                                                       \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
