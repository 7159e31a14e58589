/* fuzz_response.c: libFuzzer driver for the response-head parser, response framing (HEAD and
 * non-HEAD) and the chunked decoder on the rest; abort()s when an invariant of parser.h is broken. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http_common.h"
#include "http/parser.h"

static void check_framing(const gw_resp_head_t *h, bool head)
{
    gw_body_kind_t kind = (gw_body_kind_t)-1;
    uint64_t cl = 12345;
    int fr = gw_http_response_framing(h, head, &kind, &cl);
    REQUIRE(fr == 0 || fr == GW_EBADMSG);
    if (fr != 0)
        return;
    REQUIRE(kind == GW_BODY_NONE || kind == GW_BODY_LENGTH || kind == GW_BODY_CHUNKED ||
            kind == GW_BODY_EOF);
    if (kind != GW_BODY_LENGTH)
        REQUIRE(cl == 0);
    int nobody = head || h->status / 100 == 1 || h->status == 204 || h->status == 304;
    REQUIRE((kind == GW_BODY_NONE) == nobody);
    int has_te = gw_http_find_header(h->headers, h->nheaders, "transfer-encoding") != NULL;
    if (kind == GW_BODY_LENGTH)
        REQUIRE(!has_te && gw_http_find_header(h->headers, h->nheaders, "content-length"));
    if (kind == GW_BODY_CHUNKED)
        REQUIRE(has_te);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_resp_head_t h, h2;
    int rc = gw_http_parse_response((const char *)data, size, &h);

    REQUIRE(rc == 0 || rc == GW_EBADMSG || rc == GW_E2BIG || rc > 0);
    if (rc == 0)
        REQUIRE(size < GW_HTTP_MAX_HEAD);

    size_t cuts[2] = {size ? size - 1 : 0, size / 2};
    for (int i = 0; i < 2; i++) {
        int r = gw_http_parse_response((const char *)data, cuts[i], &h2);
        if (r != 0)
            REQUIRE(r == rc);
    }

    if (rc <= 0)
        return 0;
    size_t hl = (size_t)rc;
    REQUIRE(hl <= size && hl <= GW_HTTP_MAX_HEAD);
    REQUIRE(data[hl - 1] == '\n');
    REQUIRE(gw_http_parse_response((const char *)data, hl, &h2) == rc);
    REQUIRE(gw_http_parse_response((const char *)data, hl - 1, &h2) == 0);
    REQUIRE(h.minor_version >= 0 && h.minor_version <= 9);
    REQUIRE(h.status >= 100 && h.status <= 999);
    check_slice(h.reason, data, hl);
    for (size_t i = 0; i < h.reason.n; i++) {
        unsigned char c = (unsigned char)h.reason.p[i];
        REQUIRE((c >= 0x20 && c != 0x7f) || c == '\t');
    }
    check_headers(h.headers, h.nheaders, data, hl);
    check_framing(&h, false);
    check_framing(&h, true);

    size_t rest = size - hl;
    check_chunked(data + hl, rest, rest ? data[hl] % (rest + 1) : 0);
    return 0;
}
