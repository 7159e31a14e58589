/* egress.h: which forward proxy carries a connection to an external system, by Go's
 * ProxyFromEnvironment rules (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, upper case first). The
 * environment is parsed once at start; the result is immutable and shared by every thread. A
 * decision is made once per target (snapshot build, control-plane request), never per
 * request on a worker. */
#ifndef GW_HTTP_EGRESS_H
#define GW_HTTP_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One forward proxy (http:// only). */
typedef struct gw_proxy_s {
    char *host;          /* host name or IP literal, without brackets */
    uint16_t port;       /* 80 when the URL names none (as Go) */
    char *url;           /* "http://host:port" without credentials: for logs and libcurl */
    char *username;      /* percent-decoded userinfo, NULL when the URL has none */
    char *password;      /* NULL when the URL has no ':' in its userinfo */
    char *authorization; /* "Basic base64(user:password)" for Proxy-Authorization, or NULL */
} gw_proxy_t;

typedef struct gw_egress_s gw_egress_t;

/* Parses the three values (NULL or "" = unset). A proxy value is "http://[user[:pass]@]host[:port][/]"
 * or, as in Go, "[user[:pass]@]host[:port]" (http assumed). Any other scheme (https, socks5,
 * ...) or a malformed value is an error: 0 with *out set, or GW_EINVAL with err naming which
 * variable and why (never the value: it may hold a password). NO_PROXY entries that cannot be
 * understood are ignored, as Go does. */
int gw_egress_parse(const char *http_proxy, const char *https_proxy, const char *no_proxy, gw_egress_t **out,
                    char *err, size_t errlen);
/* Reads HTTP_PROXY/http_proxy, HTTPS_PROXY/https_proxy, NO_PROXY/no_proxy (the upper-case
 * name wins when it is set and not empty) and parses them like gw_egress_parse; err names
 * the variable actually read. */
int gw_egress_from_env(gw_egress_t **out, char *err, size_t errlen);
void gw_egress_free(gw_egress_t *e);

/* The proxy for a connection to (https ? https : http)://host:port, or NULL for a direct one:
 * no proxy for that scheme, host is "localhost" or a loopback IP literal, or NO_PROXY matches.
 * host is the URL's host without brackets. e may be NULL (direct). */
const gw_proxy_t *gw_egress_proxy_for(const gw_egress_t *e, bool https, const char *host, uint16_t port);
/* Same for an absolute http(s) URL; NULL for anything else. */
const gw_proxy_t *gw_egress_proxy_for_url(const gw_egress_t *e, const char *url);

/* The configured proxies (NULL when unset), for logging and tests. */
const gw_proxy_t *gw_egress_http(const gw_egress_t *e);
const gw_proxy_t *gw_egress_https(const gw_egress_t *e);

/* Process-wide configuration: gw_egress_init reads the environment, logs the proxies in use
 * (without credentials) and installs the result; call once at start before any thread.
 * gw_egress_global is NULL until then (every connection direct). */
int gw_egress_init(char *err, size_t errlen);
const gw_egress_t *gw_egress_global(void);

#endif
