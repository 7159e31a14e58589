/* fuzz_chunked.c: libFuzzer driver for gw_chunked_feed alone; checks that separate-buffer,
 * in-place and pass-through decoding agree, however the input is split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define REQUIRE(c) \
    do {           \
        if (!(c))  \
            abort(); \
    } while (0)

/* Feeds d[0..n) in pieces of at most step bytes (0 = all at once). */
static int feed_split(const uint8_t *d, size_t n, size_t step, int mode, char *out, size_t *consumed,
                      size_t *out_len)
{
    gw_chunked_t st;
    memset(&st, 0, sizeof(st));
    char *copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    size_t pos = 0, o = 0;
    int rc = 0;
    do {
        size_t piece = step && n - pos > step ? step : n - pos, used = (size_t)-1, ol = (size_t)-1;
        char *in = copy + pos;
        char *dst = mode == 0 ? out + o : mode == 1 ? in : NULL;
        rc = gw_chunked_feed(&st, in, piece, &used, dst, &ol);
        REQUIRE(rc == 0 || rc == 1 || rc == GW_EBADMSG);
        REQUIRE(used <= piece);
        REQUIRE(ol <= used);
        if (rc == 0)
            REQUIRE(used == piece);
        if (mode == 1)
            memcpy(out + o, in, ol);
        o += ol;
        pos += used;
    } while (rc == 0 && pos < n);
    /* finished and failed decoders stay that way and consume nothing more */
    if (rc != 0) {
        size_t used = 7, ol = 7;
        int again = gw_chunked_feed(&st, "0\r\n\r\n", 5, &used, NULL, &ol);
        REQUIRE(again == rc);
        REQUIRE(used == 0 && ol == 0);
    }
    free(copy);
    *consumed = pos;
    *out_len = o;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *ref = malloc(size ? size : 1), *got = malloc(size ? size : 1);
    size_t rc_used, rc_out, used, olen;
    int rc = feed_split(data, size, 0, 0, ref, &rc_used, &rc_out);

    static const size_t steps[] = {1, 2, 3, 7, 64};
    for (int mode = 0; mode < 3; mode++) {
        for (size_t s = 0; s <= GW_ARRAY_SIZE(steps); s++) {
            size_t step = s ? steps[s - 1] : 0;
            if (step == 1 && size > 4096)
                continue;
            int r = feed_split(data, size, step, mode, got, &used, &olen);
            REQUIRE(r == rc && used == rc_used && olen == rc_out);
            if (mode != 2)
                REQUIRE(memcmp(got, ref, olen) == 0);
        }
    }
    free(ref);
    free(got);
    return 0;
}
