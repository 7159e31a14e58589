/* url.c: RFC 3986 reference splitting, enough for targetUrl and Location handling. */
#include "util/url.h"

#include "util/common.h"

static const char *find_any(const char *p, const char *end, const char *set)
{
    for (; p < end; p++)
        if (*p && strchr(set, *p)) return p; /* strchr would match the NUL terminator */
    return end;
}

int gw_url_split(gw_str_t s, gw_url_t *u)
{
    /* absent parts are empty slices of "" (never NULL), so callers may memcmp them freely */
    static const char none[] = "";
    if (!s.p) s = (gw_str_t){none, 0};
    memset(u, 0, sizeof(*u));
    u->scheme = u->authority = u->host = u->port = u->path = u->query = u->fragment = (gw_str_t){none, 0};
    const char *p = s.p, *end = s.p + s.n;
    /* scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" before any / ? # */
    const char *q = p;
    if (q < end && ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')) {
        while (q < end && (((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z') || (*q >= '0' && *q <= '9') ||
                           *q == '+' || *q == '-' || *q == '.'))
            q++;
        if (q < end && *q == ':') {
            u->scheme = (gw_str_t){p, (size_t)(q - p)};
            p = q + 1;
        }
    }
    if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
        p += 2;
        const char *a_end = find_any(p, end, "/?#");
        u->has_authority = true;
        u->authority = (gw_str_t){p, (size_t)(a_end - p)};
        const char *h = p;
        for (const char *at = p; at < a_end; at++)
            if (*at == '@') h = at + 1;
        if (h < a_end && *h == '[') {
            const char *rb = memchr(h, ']', (size_t)(a_end - h));
            if (!rb) return GW_EINVAL;
            u->host = (gw_str_t){h + 1, (size_t)(rb - h - 1)};
            h = rb + 1;
            if (h < a_end && *h != ':') return GW_EINVAL;
        } else {
            const char *c = memchr(h, ':', (size_t)(a_end - h));
            u->host = (gw_str_t){h, (size_t)((c ? c : a_end) - h)};
            h = c ? c : a_end;
        }
        if (h < a_end && *h == ':') {
            h++;
            u->port = (gw_str_t){h, (size_t)(a_end - h)};
            unsigned long v = 0;
            for (size_t i = 0; i < u->port.n; i++) {
                if (h[i] < '0' || h[i] > '9') return GW_EINVAL;
                v = v * 10 + (unsigned long)(h[i] - '0');
                if (v > 65535) return GW_EINVAL;
            }
        }
        p = a_end;
    }
    const char *path_end = find_any(p, end, "?#");
    u->path = (gw_str_t){p, (size_t)(path_end - p)};
    p = path_end;
    if (p < end && *p == '?') {
        const char *qe = find_any(p + 1, end, "#");
        u->has_query = true;
        u->query = (gw_str_t){p + 1, (size_t)(qe - p - 1)};
        p = qe;
    }
    if (p < end && *p == '#') {
        u->has_fragment = true;
        u->fragment = (gw_str_t){p + 1, (size_t)(end - p - 1)};
    }
    return GW_OK;
}

uint16_t gw_url_port(const gw_url_t *u)
{
    bool https = GW_STR_IEQ_LIT(u->scheme, "https");
    if (!https && !GW_STR_IEQ_LIT(u->scheme, "http")) return 0;
    if (u->port.n) {
        unsigned v = 0;
        for (size_t i = 0; i < u->port.n; i++) v = v * 10 + (unsigned)(u->port.p[i] - '0');
        return (uint16_t)v;
    }
    return https ? 443 : 80;
}
