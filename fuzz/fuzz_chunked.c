/* fuzz_chunked.c: libFuzzer driver for gw_chunked_feed and gw_chunked_canon; checks that
 * separate-buffer, in-place, pass-through and canonical decoding agree, however the input is
 * split, and that canonical output is plain chunked framing of the same body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "require.h"

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

/* Canonical pass-through fed in pieces of at most step bytes: same verdict and consumption as
 * decoding; the forwarded bytes are themselves canonical chunked framing (no extensions, no
 * trailers, only size digits and CRLFs around the data) and decode to the same body. */
static void check_canon(const uint8_t *d, size_t n, size_t step, int want_rc, size_t want_used, const char *body,
                        size_t body_len)
{
    gw_chunked_t st;
    memset(&st, 0, sizeof(st));
    char *copy = malloc(n ? n : 1), *fwd = malloc(n ? n : 1);
    memcpy(copy, d, n);
    size_t pos = 0, f = 0;
    int rc = 0;
    do {
        size_t piece = step && n - pos > step ? step : n - pos, used = (size_t)-1, ol = (size_t)-1;
        rc = gw_chunked_canon(&st, copy + pos, piece, &used, &ol);
        REQUIRE(used <= piece && ol <= used);
        memcpy(fwd + f, copy + pos, ol);
        f += ol;
        pos += used;
    } while (rc == 0 && pos < n);
    REQUIRE(rc == want_rc && pos == want_used);
    if (rc == 1) {
        /* re-decode what would be forwarded: complete, same body, nothing left over */
        gw_chunked_t again;
        memset(&again, 0, sizeof(again));
        char *out = malloc(f ? f : 1);
        size_t used, ol;
        REQUIRE(gw_chunked_feed(&again, fwd, f, &used, out, &ol) == 1);
        REQUIRE(used == f && ol == body_len && memcmp(out, body, ol) == 0);
        free(out);
        /* and every size line is digits + CRLF: no ';', no BWS, no trailer field */
        for (size_t i = 0; i + 1 < f;) {
            size_t j = i;
            while (j < f && fwd[j] != '\r') {
                REQUIRE(fwd[j] != 0 && strchr("0123456789abcdefABCDEF", fwd[j]));
                j++;
            }
            REQUIRE(j + 1 < f && fwd[j + 1] == '\n' && j > i);
            uint64_t sz = strtoull(fwd + i, NULL, 16);
            i = j + 2;
            if (sz == 0) {
                REQUIRE(i + 2 == f && fwd[i] == '\r' && fwd[i + 1] == '\n');
                break;
            }
            i += (size_t)sz + 2;
        }
    }
    free(copy);
    free(fwd);
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
    for (size_t s = 0; s <= GW_ARRAY_SIZE(steps); s++) {
        size_t step = s ? steps[s - 1] : 0;
        if (step == 1 && size > 4096)
            continue;
        check_canon(data, size, step, rc, rc_used, ref, rc_out);
    }
    free(ref);
    free(got);
    return 0;
}
