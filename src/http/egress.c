/* egress.c: HTTP_PROXY / HTTPS_PROXY / NO_PROXY with the rules of Go's
 * golang.org/x/net/http/httpproxy (what the original used through ProxyFromEnvironment). */
#include "http/egress.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "util/alloc.h"
#include "util/common.h"
#include "util/log.h"
#include "util/url.h"

typedef enum { NM_CIDR, NM_IP, NM_DOMAIN } nm_kind_t;

/* One NO_PROXY entry. */
typedef struct {
    nm_kind_t kind;
    uint8_t ip[16];  /* NM_CIDR / NM_IP: IPv4 as IPv4-mapped IPv6 */
    bool v4;         /* NM_CIDR: an IPv4 network (matches IPv4 addresses only, as Go's Contains) */
    int bits;        /* NM_CIDR: prefix length over the 16 bytes */
    char *port;      /* NM_IP / NM_DOMAIN: "" for any port, else compared as text (as Go) */
    char *suffix;    /* NM_DOMAIN: ".example.com" (lower case) */
    bool match_host; /* NM_DOMAIN: the entry had no leading dot: the name itself matches too */
} nm_t;

struct gw_egress_s {
    gw_proxy_t *http, *https;
    bool all;        /* NO_PROXY "*" */
    nm_t *nm;
    size_t nnm;
};

static gw_egress_t *g_egress;

/* ---------- proxy URLs ---------- */

static void proxy_free(gw_proxy_t *p)
{
    if (!p) return;
    free(p->host);
    free(p->url);
    free(p->username);
    if (p->password) OPENSSL_cleanse(p->password, strlen(p->password));
    free(p->password);
    if (p->authorization) OPENSSL_cleanse(p->authorization, strlen(p->authorization));
    free(p->authorization);
    free(p);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape or a decoded NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = gw_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int b = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (a < 0 || b < 0 || a * 16 + b == 0) {
            free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = '\0';
    return out;
}

static bool host_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
}

/* Parses one proxy value (see egress.h). name is the variable, for the error text. */
static int parse_proxy(const char *name, const char *v, gw_proxy_t **out, char *err, size_t errlen)
{
    *out = NULL;
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f) {
            snprintf(err, errlen, "%s: the proxy URL contains whitespace, control or non-ASCII characters", name);
            return GW_EINVAL;
        }
    }
    const char *p = v;
    /* scheme "://"? Without one, http:// is assumed (Go: "host[:port]"). */
    const char *q = p;
    while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (q > p && ((*q >= '0' && *q <= '9') || *q == '+' ||
                                                                           *q == '-' || *q == '.')))
        q++;
    if (q > p && strncmp(q, "://", 3) == 0) {
        if (!(q - p == 4 && strncasecmp(p, "http", 4) == 0)) {
            snprintf(err, errlen, "%s: unsupported proxy scheme \"%.*s\" (only http:// proxies are supported)", name,
                     (int)GW_MIN(q - p, 16), p);
            return GW_EINVAL;
        }
        p = q + 3;
    }
    const char *a_end = p + strcspn(p, "/?#");
    const char *host = p;
    const char *at = NULL;
    for (const char *c = p; c < a_end; c++)
        if (*c == '@') at = c;
    gw_proxy_t *px = gw_calloc(1, sizeof(*px));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        px->username = pct_decode(p, (size_t)((colon ? colon : at) - p));
        if (colon) px->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        if (!px->username || (colon && !px->password)) {
            snprintf(err, errlen, "%s: invalid percent-encoding in the proxy user name or password", name);
            proxy_free(px);
            return GW_EINVAL;
        }
        host = at + 1;
    }
    const char *h_end, *port = NULL;
    bool v6 = false;
    if (host < a_end && *host == '[') {
        const char *rb = memchr(host, ']', (size_t)(a_end - host));
        if (!rb || (rb + 1 < a_end && rb[1] != ':')) goto bad_host;
        v6 = true;
        h_end = rb;
        host++;
        if (rb + 1 < a_end) port = rb + 2;
    } else {
        const char *colon = memchr(host, ':', (size_t)(a_end - host));
        h_end = colon ? colon : a_end;
        if (colon) port = colon + 1;
    }
    if (h_end == host || h_end - host > 253) goto bad_host;
    px->host = gw_strndup(host, (size_t)(h_end - host));
    if (v6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, px->host, &a6) != 1) goto bad_host;
    } else {
        for (const char *c = px->host; *c; c++)
            if (!host_char_ok((unsigned char)*c)) goto bad_host;
    }
    unsigned long pn = 80;
    if (port && port < a_end) {
        pn = 0;
        for (const char *c = port; c < a_end; c++) {
            if (*c < '0' || *c > '9' || pn > 65535) {
                snprintf(err, errlen, "%s: invalid proxy port", name);
                proxy_free(px);
                return GW_EINVAL;
            }
            pn = pn * 10 + (unsigned long)(*c - '0');
        }
        if (pn == 0 || pn > 65535) {
            snprintf(err, errlen, "%s: invalid proxy port", name);
            proxy_free(px);
            return GW_EINVAL;
        }
    }
    px->port = (uint16_t)pn;
    px->url = gw_asprintf(v6 ? "http://[%s]:%u" : "http://%s:%u", px->host, (unsigned)px->port);
    if (px->username) {
        /* As Go's transport: userinfo present -> Basic base64(user ":" password). */
        size_t un = strlen(px->username), pw = px->password ? strlen(px->password) : 0;
        char *plain = gw_malloc(un + 1 + pw + 1);
        memcpy(plain, px->username, un);
        plain[un] = ':';
        if (pw) memcpy(plain + un + 1, px->password, pw);
        size_t n = un + 1 + pw;
        char *auth = gw_malloc(6 + 4 * ((n + 2) / 3) + 1);
        memcpy(auth, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)auth + 6, (const unsigned char *)plain, (int)n);
        OPENSSL_cleanse(plain, n);
        free(plain);
        px->authorization = auth;
    }
    *out = px;
    return GW_OK;
bad_host:
    snprintf(err, errlen, "%s: invalid or missing proxy host", name);
    proxy_free(px);
    return GW_EINVAL;
}

/* ---------- NO_PROXY ---------- */

/* An IP literal (Go's net.ParseIP: dotted IPv4 or IPv6, no zone) as 16 bytes. */
static bool parse_ip(const char *s, size_t n, uint8_t out[16], bool *v4)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf)) return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        *v4 = memcmp(out, mapped, 12) == 0;
        return true;
    }
    return false;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)full) != 0) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* Go's net.SplitHostPort: "host:port" or "[v6]:port" (brackets removed). */
static bool split_host_port(const char *s, size_t n, const char **h, size_t *hn, const char **port, size_t *pn)
{
    const char *end = s + n;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb || rb + 1 >= end || rb[1] != ':') return false;
        *h = s + 1;
        *hn = (size_t)(rb - s - 1);
        *port = rb + 2;
        *pn = (size_t)(end - rb - 2);
        if (memchr(*h, '[', *hn) || memchr(*port, '[', *pn) || memchr(*port, ']', *pn)) return false;
        return true;
    }
    const char *colon = NULL;
    for (const char *c = s; c < end; c++)
        if (*c == ':') {
            if (colon) return false; /* too many colons */
            colon = c;
        }
    if (!colon) return false; /* missing port */
    *h = s;
    *hn = (size_t)(colon - s);
    *port = colon + 1;
    *pn = (size_t)(end - colon - 1);
    if (memchr(*h, '[', *hn) || memchr(*h, ']', *hn) || memchr(*port, '[', *pn) || memchr(*port, ']', *pn))
        return false;
    return true;
}

/* Adds the entry s[0..n) (trimmed, lower case) like httpproxy's config.init. */
static void add_entry(gw_egress_t *e, const char *s, size_t n)
{
    if (n == 1 && s[0] == '*') {
        e->all = true;
        return;
    }
    nm_t m = {0};
    const char *slash = memchr(s, '/', n);
    if (slash) {
        /* IP/CIDR (Go's net.ParseCIDR); anything else with a '/' is tried as a name below */
        const char *b = slash + 1, *end = s + n;
        bool written_v4 = memchr(s, ':', (size_t)(slash - s)) == NULL;
        int bits = 0;
        bool ok = b < end && end - b <= 3;
        for (const char *c = b; ok && c < end; c++) {
            if (*c < '0' || *c > '9') ok = false;
            else bits = bits * 10 + (*c - '0');
        }
        ok = ok && bits <= (written_v4 ? 32 : 128) && parse_ip(s, (size_t)(slash - s), m.ip, &m.v4);
        if (ok) {
            m.kind = NM_CIDR;
            m.bits = written_v4 ? bits + 96 : bits;
            e->nm = gw_realloc(e->nm, (e->nnm + 1) * sizeof(*e->nm));
            e->nm[e->nnm++] = m;
            return;
        }
        memset(&m, 0, sizeof(m));
    }
    const char *h = s, *port = "";
    size_t hn = n, pn = 0;
    if (split_host_port(s, n, &h, &hn, &port, &pn)) {
        if (hn == 0) return; /* ":80": no host, ignored */
    } else {
        h = s;
        hn = n;
        port = "";
        pn = 0;
    }
    if (parse_ip(h, hn, m.ip, &m.v4)) {
        m.kind = NM_IP;
        m.port = gw_strndup(port, pn);
        e->nm = gw_realloc(e->nm, (e->nnm + 1) * sizeof(*e->nm));
        e->nm[e->nnm++] = m;
        return;
    }
    if (hn == 0) return;
    if (hn >= 2 && h[0] == '*' && h[1] == '.') {
        h++;
        hn--;
    }
    m.kind = NM_DOMAIN;
    m.match_host = h[0] != '.';
    m.suffix = m.match_host ? gw_asprintf(".%.*s", (int)hn, h) : gw_strndup(h, hn);
    m.port = gw_strndup(port, pn);
    e->nm = gw_realloc(e->nm, (e->nnm + 1) * sizeof(*e->nm));
    e->nm[e->nnm++] = m;
}

static void parse_no_proxy(gw_egress_t *e, const char *v)
{
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *s = p, *end = p + n;
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')) s++;
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r' ||
                           end[-1] == '\v' || end[-1] == '\f'))
            end--;
        if (end > s) {
            char *low = gw_strndup(s, (size_t)(end - s));
            for (char *c = low; *c; c++)
                if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
            add_entry(e, low, strlen(low));
            free(low);
            if (e->all) return;
        }
        p += n;
        if (*p == ',') p++;
    }
}

void gw_egress_free(gw_egress_t *e)
{
    if (!e) return;
    proxy_free(e->http);
    proxy_free(e->https);
    for (size_t i = 0; i < e->nnm; i++) {
        free(e->nm[i].port);
        free(e->nm[i].suffix);
    }
    free(e->nm);
    free(e);
}

/* gw_egress_parse with the names of the variables the values came from, for error texts. */
static int gw_egress_parse_named(const char *http_proxy, const char *http_name, const char *https_proxy,
                                 const char *https_name, const char *no_proxy, gw_egress_t **out, char *err,
                                 size_t errlen)
{
    *out = NULL;
    gw_egress_t *e = gw_calloc(1, sizeof(*e));
    if ((http_proxy && *http_proxy && parse_proxy(http_name, http_proxy, &e->http, err, errlen) != GW_OK) ||
        (https_proxy && *https_proxy && parse_proxy(https_name, https_proxy, &e->https, err, errlen) != GW_OK)) {
        gw_egress_free(e);
        return GW_EINVAL;
    }
    if (no_proxy) parse_no_proxy(e, no_proxy);
    *out = e;
    return GW_OK;
}

int gw_egress_parse(const char *http_proxy, const char *https_proxy, const char *no_proxy, gw_egress_t **out,
                    char *err, size_t errlen)
{
    return gw_egress_parse_named(http_proxy, "HTTP_PROXY", https_proxy, "HTTPS_PROXY", no_proxy, out, err, errlen);
}

int gw_egress_from_env(gw_egress_t **out, char *err, size_t errlen)
{
    static const char *const names[3][2] = {
        {"HTTP_PROXY", "http_proxy"}, {"HTTPS_PROXY", "https_proxy"}, {"NO_PROXY", "no_proxy"}};
    const char *val[3] = {NULL, NULL, NULL}, *used[3] = {names[0][0], names[1][0], names[2][0]};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 2 && !val[i]; j++) {
            const char *v = getenv(names[i][j]);
            if (v && *v) { /* Go's getEnvAny: the first one set and not empty */
                val[i] = v;
                used[i] = names[i][j];
            }
        }
    }
    return gw_egress_parse_named(val[0], used[0], val[1], used[1], val[2], out, err, errlen);
}

/* Go's useProxy: false when a connection to host:port goes direct. */
static bool use_proxy(const gw_egress_t *e, const char *host, uint16_t port)
{
    /* Go compares "localhost" byte for byte; we also take it in any case (DNS names are). */
    if (strcasecmp(host, "localhost") == 0) return false;
    uint8_t ip[16];
    bool v4 = false;
    bool is_ip = parse_ip(host, strlen(host), ip, &v4);
    if (is_ip) {
        static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        if ((v4 && ip[12] == 127) || (!v4 && memcmp(ip, lo6, 16) == 0)) return false;
    }
    if (e->all) return false;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    size_t hn = strlen(host);
    for (size_t i = 0; i < e->nnm; i++) {
        const nm_t *m = &e->nm[i];
        switch (m->kind) {
        case NM_CIDR:
            if (is_ip && m->v4 == v4 && prefix_match(ip, m->ip, m->bits)) return false;
            break;
        case NM_IP:
            if (is_ip && memcmp(ip, m->ip, 16) == 0 && (!m->port[0] || strcmp(m->port, portstr) == 0)) return false;
            break;
        case NM_DOMAIN: {
            size_t sn = strlen(m->suffix);
            bool hit = (hn >= sn && strcasecmp(host + hn - sn, m->suffix) == 0) ||
                       (m->match_host && strcasecmp(host, m->suffix + 1) == 0);
            if (hit && (!m->port[0] || strcmp(m->port, portstr) == 0)) return false;
            break;
        }
        }
    }
    return true;
}

const gw_proxy_t *gw_egress_proxy_for(const gw_egress_t *e, bool https, const char *host, uint16_t port)
{
    if (!e || !host) return NULL;
    const gw_proxy_t *p = https ? e->https : e->http;
    if (!p || !use_proxy(e, host, port)) return NULL;
    return p;
}

const gw_proxy_t *gw_egress_proxy_for_url(const gw_egress_t *e, const char *url)
{
    if (!e || !url) return NULL;
    gw_url_t u;
    if (gw_url_split(gw_str(url), &u) != GW_OK || !u.has_authority || !u.host.n) return NULL;
    uint16_t port = gw_url_port(&u);
    if (!port) return NULL;
    char *host = gw_strndup(u.host.p, u.host.n);
    const gw_proxy_t *p = gw_egress_proxy_for(e, GW_STR_IEQ_LIT(u.scheme, "https"), host, port);
    free(host);
    return p;
}

const gw_proxy_t *gw_egress_http(const gw_egress_t *e) { return e ? e->http : NULL; }
const gw_proxy_t *gw_egress_https(const gw_egress_t *e) { return e ? e->https : NULL; }

int gw_egress_init(char *err, size_t errlen)
{
    gw_egress_t *e;
    if (gw_egress_from_env(&e, err, errlen) != GW_OK) return GW_EINVAL;
    if (e->http || e->https) {
        char *entries = gw_asprintf("%zu", e->nnm);
        gw_log(GW_LOG_INFO, "egress proxy in use", "https", e->https ? e->https->url : "direct", "http",
               e->http ? e->http->url : "direct", "authentication",
               (e->https && e->https->authorization) || (e->http && e->http->authorization) ? "basic" : "none",
               "noProxyEntries", e->all ? "*" : entries, NULL);
        free(entries);
    }
    gw_egress_free(g_egress);
    g_egress = e;
    return GW_OK;
}

const gw_egress_t *gw_egress_global(void) { return g_egress; }
