/* h2head.c: the HTTP/1 -> HTTP/2 request head conversion of http/h2head.h. */
#include "http/h2head.h"

#include <string.h>
#include <strings.h>

#include "util/str.h"

static bool is_hop_name(gw_str_t n)
{
    return GW_STR_IEQ_LIT(n, "connection") || GW_STR_IEQ_LIT(n, "keep-alive") ||
           GW_STR_IEQ_LIT(n, "proxy-connection") || GW_STR_IEQ_LIT(n, "transfer-encoding") ||
           GW_STR_IEQ_LIT(n, "upgrade") || GW_STR_IEQ_LIT(n, "host");
}

/* n is listed in one of the Connection headers' values. */
static bool named_by_connection(const gw_req_head_t *h, gw_str_t n)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!GW_STR_IEQ_LIT(h->headers[i].name, "connection")) continue;
        gw_str_t rest = h->headers[i].value, tok;
        while (gw_str_next_token(&rest, &tok))
            if (gw_str_ieq(tok, n.p, n.n)) return true;
    }
    return false;
}

static void add(gw_h2_req_t *out, const char *n, size_t nl, const char *v, size_t vl)
{
    out->fields[out->nfields].name = (gw_str_t){n, nl};
    out->fields[out->nfields].value = (gw_str_t){v, vl};
    out->nfields++;
}

int gw_h2_request_from_h1(const char *head, size_t hlen, char *names, gw_h2_req_t *out)
{
    gw_req_head_t *h = &(gw_req_head_t){0};
    memset(out, 0, sizeof(*out));
    if (gw_http_parse_request(head, hlen, h) != (int)hlen) return GW_EBADMSG;
    if (gw_http_request_framing(h, &out->body, &out->content_length) != GW_OK) return GW_EBADMSG;
    if (gw_str_eq(h->method, "CONNECT", 7)) return GW_EBADMSG;
    bool star = h->target.n == 1 && h->target.p[0] == '*';
    if (star ? !gw_str_eq(h->method, "OPTIONS", 7) : (h->target.n == 0 || h->target.p[0] != '/'))
        return GW_EBADMSG;
    const gw_header_t *host = gw_http_find_header(h->headers, h->nheaders, "host");
    if (!host || host->value.n == 0) return GW_EBADMSG;
    add(out, ":method", 7, h->method.p, h->method.n);
    add(out, ":scheme", 7, "https", 5);
    add(out, ":authority", 10, host->value.p, host->value.n);
    add(out, ":path", 5, h->target.p, h->target.n);
    size_t used = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        gw_str_t n = h->headers[i].name, v = h->headers[i].value;
        if (GW_STR_IEQ_LIT(n, "upgrade")) out->upgrade = true;
        if (is_hop_name(n) || named_by_connection(h, n)) continue;
        if (GW_STR_IEQ_LIT(n, "te") && !GW_STR_IEQ_LIT(v, "trailers")) continue;
        char *lower = names + used;
        for (size_t j = 0; j < n.n; j++) lower[j] = (char)(n.p[j] >= 'A' && n.p[j] <= 'Z' ? n.p[j] + 32 : n.p[j]);
        used += n.n;
        if (GW_STR_IEQ_LIT(n, "te")) add(out, lower, n.n, "trailers", 8);
        else add(out, lower, n.n, v.p, v.n);
    }
    return GW_OK;
}

bool gw_h2_head_upgrade(const char *head, size_t hlen)
{
    const char *p = head, *end = head + hlen;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        if (end - p >= 8 && strncasecmp(p, "upgrade:", 8) == 0) return true;
    }
    return false;
}
