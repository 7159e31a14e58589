/* fuzz_request.c: libFuzzer driver for the request-head parser, request framing and the chunked
 * decoder on whatever follows the head; abort()s when an invariant of parser.h is broken. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http_common.h"
#include "http/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_req_head_t h, h2;
    int rc = gw_http_parse_request((const char *)data, size, &h);

    REQUIRE(rc == 0 || rc == GW_EBADMSG || rc == GW_E2BIG || rc > 0);
    if (rc == 0)
        REQUIRE(size < GW_HTTP_MAX_HEAD);

    /* a shorter prefix never contradicts the full input */
    size_t cuts[2] = {size ? size - 1 : 0, size / 2};
    for (int i = 0; i < 2; i++) {
        int r = gw_http_parse_request((const char *)data, cuts[i], &h2);
        if (r != 0)
            REQUIRE(r == rc);
    }

    if (rc <= 0)
        return 0;
    size_t hl = (size_t)rc;
    REQUIRE(hl <= size && hl <= GW_HTTP_MAX_HEAD);
    REQUIRE(data[hl - 1] == '\n');
    REQUIRE(gw_http_parse_request((const char *)data, hl, &h2) == rc);
    REQUIRE(gw_http_parse_request((const char *)data, hl - 1, &h2) == 0);
    REQUIRE(h.minor_version == 0 || h.minor_version == 1);
    check_slice(h.method, data, hl);
    check_slice(h.target, data, hl);
    REQUIRE(h.method.n > 0 && h.target.n > 0);
    for (size_t i = 0; i < h.method.n; i++)
        REQUIRE(is_tchar((unsigned char)h.method.p[i]));
    for (size_t i = 0; i < h.target.n; i++)
        REQUIRE((unsigned char)h.target.p[i] > 0x20 && h.target.p[i] != 0x7f);
    check_headers(h.headers, h.nheaders, data, hl);

    gw_body_kind_t kind = (gw_body_kind_t)-1;
    uint64_t cl = 12345;
    int fr = gw_http_request_framing(&h, &kind, &cl);
    REQUIRE(fr == 0 || fr == GW_EBADMSG);
    if (fr == 0) {
        REQUIRE(kind == GW_BODY_NONE || kind == GW_BODY_LENGTH || kind == GW_BODY_CHUNKED);
        if (kind != GW_BODY_LENGTH)
            REQUIRE(cl == 0);
        int has_te = gw_http_find_header(h.headers, h.nheaders, "transfer-encoding") != NULL;
        int has_cl = gw_http_find_header(h.headers, h.nheaders, "content-length") != NULL;
        REQUIRE(!(has_te && has_cl));
        REQUIRE((kind == GW_BODY_CHUNKED) == has_te);
        REQUIRE((kind == GW_BODY_LENGTH) == has_cl);
        if (has_te)
            REQUIRE(h.minor_version == 1);
    }

    /* whatever follows the head goes through the chunked decoder */
    size_t rest = size - hl;
    check_chunked(data + hl, rest, rest ? data[hl] % (rest + 1) : 0);
    return 0;
}
