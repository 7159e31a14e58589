/* fuzz_h2_head.c: libFuzzer driver for http/h2head.c (HTTP/1 request head -> HTTP/2 fields):
 * on success the four pseudo-headers come first, every other name is lower case, non-empty,
 * not hop-by-hop, and every slice lies inside the input or the names buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2head.h"
#include "require.h"

static int inside(gw_str_t s, const void *base, size_t n)
{
    return s.n == 0 || ((const char *)s.p >= (const char *)base && s.p + s.n <= (const char *)base + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_h2_req_t req;
    char *names = malloc(size ? size : 1);
    int rc = gw_h2_request_from_h1((const char *)data, size, names, &req);
    REQUIRE(rc == GW_OK || rc == GW_EBADMSG);
    if (rc == GW_OK) {
        REQUIRE(req.nfields >= 4 && req.nfields <= GW_H2_MAX_FIELDS);
        static const char *const pseudo[] = {":method", ":scheme", ":authority", ":path"};
        for (size_t i = 0; i < 4; i++) {
            REQUIRE(req.fields[i].name.n == strlen(pseudo[i]));
            REQUIRE(memcmp(req.fields[i].name.p, pseudo[i], req.fields[i].name.n) == 0);
            REQUIRE(req.fields[i].value.n > 0);
        }
        REQUIRE(req.body == GW_BODY_NONE || req.body == GW_BODY_LENGTH || req.body == GW_BODY_CHUNKED);
        for (size_t i = 4; i < req.nfields; i++) {
            gw_str_t n = req.fields[i].name, v = req.fields[i].value;
            REQUIRE(n.n > 0 && inside(n, names, size));
            REQUIRE(inside(v, data, size) || (v.n == 8 && memcmp(v.p, "trailers", 8) == 0));
            for (size_t j = 0; j < n.n; j++) REQUIRE(!(n.p[j] >= 'A' && n.p[j] <= 'Z') && n.p[j] != ':');
            REQUIRE(!GW_STR_IEQ_LIT(n, "connection") && !GW_STR_IEQ_LIT(n, "host") &&
                    !GW_STR_IEQ_LIT(n, "transfer-encoding") && !GW_STR_IEQ_LIT(n, "upgrade") &&
                    !GW_STR_IEQ_LIT(n, "keep-alive") && !GW_STR_IEQ_LIT(n, "proxy-connection"));
            if (GW_STR_IEQ_LIT(n, "te")) REQUIRE(v.n == 8 && memcmp(v.p, "trailers", 8) == 0);
        }
    }
    free(names);
    return 0;
}
