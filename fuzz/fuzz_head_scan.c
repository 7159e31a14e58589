/* fuzz_head_scan.c: libFuzzer driver for gw_http_scan_request: fed in pieces of any size it must
 * reach exactly the verdict gw_http_parse_request gives on every prefix, without re-reading
 * bytes an earlier call checked (they are overwritten before the next call). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "require.h"

static gw_req_head_t h;

/* Feeds data in pieces whose sizes come from the step pattern; returns the final verdict. */
static int scan_split(const uint8_t *data, size_t size, const uint8_t *steps, size_t nsteps)
{
    char *work = malloc(size ? size : 1);
    gw_head_scan_t st;
    memset(&st, 0, sizeof(st));
    size_t k = 0, i = 0;
    int rc = 0;
    while (k < size) {
        size_t step = nsteps ? (size_t)steps[i++ % nsteps] % 97 + 1 : size;
        size_t end = k + step < size ? k + step : size;
        memcpy(work + k, data + k, end - k);
        k = end;
        uint32_t before = st.pos;
        rc = gw_http_scan_request(work, k, &st);
        /* the verdict on this prefix is the parser's */
        REQUIRE(rc == gw_http_parse_request((const char *)data, k, &h));
        REQUIRE(st.pos >= before && st.pos <= k);
        memset(work, 0, st.pos); /* checked bytes are never looked at again */
        if (rc != 0)
            break;
    }
    free(work);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > GW_HTTP_MAX_HEAD + 64)
        return 0;
    int whole = gw_http_parse_request((const char *)data, size, &h);
    /* all at once, byte by byte (small inputs), and in pieces sized by the input's own bytes */
    REQUIRE(scan_split(data, size, NULL, 0) == whole);
    if (size <= 2048) {
        static const uint8_t one = 0;
        REQUIRE(scan_split(data, size, &one, 1) == whole);
    }
    REQUIRE(scan_split(data, size, data, size < 16 ? size : 16) == whole);
    return 0;
}
