/* flags.h: the command line of SPEC §2 plus our additions; parsing only, no side effects. */
#ifndef GW_CORE_FLAGS_H
#define GW_CORE_FLAGS_H

#include <stdio.h>

typedef struct {
    char *api_server_url;       /* apiServerURL, "" */
    char *kube_config;          /* kubeConfig, "" */
    char *secrets_namespace;    /* applicationSecretsNamespace, "kyma-system" */
    int proxy_port;             /* proxyPort, 8080 */
    int proxy_port_compass;     /* proxyPortCompass, 8082 */
    int external_api_port;      /* externalAPIPort, 8081 */
    int log_level;              /* logLevel, GW_LOG_INFO */
    int proxy_timeout;          /* proxyTimeout, 10 (seconds) */
    int request_timeout;        /* requestTimeout, 10 (seconds) */
    int proxy_cache_ttl;        /* proxyCacheTTL, 120 (seconds; accepted for compatibility) */
    char *config_dir;           /* configDir, "" = built-in default chosen by main */
    int workers;                /* workers, default: online CPUs */
    int shutdown_grace;         /* shutdownGrace, 30 (seconds in-flight requests get on SIGTERM) */
    char *listen_address;       /* listenAddress, "" = all addresses: "::" dual-stack, else 0.0.0.0 */
    int retry_body_limit;       /* retryBodyLimit, 1 MiB: request body bytes kept for a resend */
    int access_log;             /* accessLog, true: one JSON line per request at info */
    int tunnel_idle_timeout;    /* tunnelIdleTimeout, 3600 (seconds of silence before a tunnel closes) */
    int min_body_rate;          /* minBodyRate, 1024 bytes/s per requestTimeout window; 0 = off */
    int upstream_http2;         /* upstreamHTTP2, true: offer HTTP/2 (ALPN h2) to HTTPS upstreams */
} gw_flags_t;

/* Fills f with defaults, then applies argv. Accepts -name=value, --name=value, -name value,
 * --name value (a boolean flag alone means true, as Go's flag package: -accessLog). Returns 0; 1 when -h/-help/--help
 * was given (caller prints usage, exits 0); GW_EINVAL with a one-line message in err for an
 * unknown flag, a missing value, or a bad value (non-numeric or out-of-range port/timeout/
 * workers, unknown log level). Strings in f are allocated; free with gw_flags_free. */
int gw_flags_parse(int argc, char **argv, gw_flags_t *f, char *err, size_t errlen);
void gw_flags_usage(FILE *out);
void gw_flags_free(gw_flags_t *f);

#endif
