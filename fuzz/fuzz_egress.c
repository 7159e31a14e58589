/* fuzz_egress.c: libFuzzer driver for http/egress.c (proxy URLs from HTTP(S)_PROXY and the
 * NO_PROXY list, both untrusted text from the environment), with invariants. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/egress.h"
#include "util/common.h"
#include "require.h"

#define NPARTS 4

static void check_proxy(const gw_proxy_t *p)
{
    if (!p) return;
    REQUIRE(p->host && p->host[0] && p->port != 0);
    REQUIRE(strncmp(p->url, "http://", 7) == 0);
    REQUIRE(strchr(p->url, '@') == NULL); /* never credentials in what is logged */
    REQUIRE((p->username != NULL) == (p->authorization != NULL));
    if (p->password) REQUIRE(p->username != NULL);
    if (p->authorization) REQUIRE(strncmp(p->authorization, "Basic ", 6) == 0);
}

/* Input: one control byte (bit 0: https; the rest and the next byte: port), then parts
 * separated by '\n': HTTP_PROXY, HTTPS_PROXY, NO_PROXY, target host. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 4096) return 0;
    bool https = data[0] & 1;
    uint16_t port = (uint16_t)((data[0] >> 1) | (data[1] << 7));
    if (!port) port = 443;
    char *part[NPARTS];
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    for (int i = 0; i < NPARTS; i++) {
        const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        const char *e = i == NPARTS - 1 || !nl ? end : nl;
        size_t n = (size_t)(e - p);
        part[i] = malloc(n + 1);
        memcpy(part[i], p, n);
        part[i][n] = '\0';
        part[i][strnlen(part[i], n)] = '\0'; /* cut at the first NUL, as getenv would */
        p = e < end ? e + 1 : end;
    }
    char err[256] = "";
    gw_egress_t *e = (gw_egress_t *)&err; /* must be overwritten */
    int rc = gw_egress_parse(part[0], part[1], part[2], &e, err, sizeof(err));
    if (rc != GW_OK) {
        REQUIRE(rc == GW_EINVAL && e == NULL && err[0]);
        /* an error text is one printable line (it quotes at most a scheme, never the value) */
        for (const char *c = err; *c; c++) REQUIRE(*c >= 0x20 && *c < 0x7f);
        if (strchr(part[0], '@') || strchr(part[1], '@')) REQUIRE(strchr(err, '@') == NULL);
    } else {
        check_proxy(gw_egress_http(e));
        check_proxy(gw_egress_https(e));
        const gw_proxy_t *want = https ? gw_egress_https(e) : gw_egress_http(e);
        const gw_proxy_t *got = gw_egress_proxy_for(e, https, part[3], port);
        REQUIRE(got == NULL || got == want);
        REQUIRE(gw_egress_proxy_for(e, https, part[3], port) == got); /* deterministic */
        /* loopback never goes through a proxy */
        REQUIRE(gw_egress_proxy_for(e, https, "localhost", port) == NULL);
        REQUIRE(gw_egress_proxy_for(e, https, "127.0.0.1", port) == NULL);
        REQUIRE(gw_egress_proxy_for(e, https, "::1", port) == NULL);
        /* a NO_PROXY entry naming the host exactly always exempts it */
        if (want && part[3][0] && !strchr(part[3], ',') && !strchr(part[3], '/') && !strchr(part[3], ':') &&
            !strchr(part[3], ' ') && !strchr(part[3], '\t') && !strchr(part[3], '\r') && !strchr(part[3], '\n') &&
            !strchr(part[3], '\v') && !strchr(part[3], '\f') && !strchr(part[3], '[') && !strchr(part[3], ']') &&
            part[3][0] != '.' && part[3][0] != '*') {
            gw_egress_t *e2 = NULL;
            REQUIRE(gw_egress_parse(part[0], part[1], part[3], &e2, err, sizeof(err)) == GW_OK);
            REQUIRE(gw_egress_proxy_for(e2, https, part[3], port) == NULL);
            gw_egress_free(e2);
        }
        /* "*" anywhere in NO_PROXY exempts everything */
        size_t nl = strlen(part[2]);
        char *all = malloc(nl + 3);
        memcpy(all, part[2], nl);
        memcpy(all + nl, ",*", 3);
        gw_egress_t *e3 = NULL;
        REQUIRE(gw_egress_parse(part[0], part[1], all, &e3, err, sizeof(err)) == GW_OK);
        REQUIRE(gw_egress_proxy_for(e3, https, part[3], port) == NULL);
        gw_egress_free(e3);
        free(all);
        gw_egress_free(e);
    }
    for (int i = 0; i < NPARTS; i++) free(part[i]);
    return 0;
}
