/* flags.c: parses the SPEC §2 command line (Go flag-package syntax) into gw_flags_t; it only
 * validates and records values (the worker default asks core/cpus.c what this process may use),
 * it never reads configuration, binds ports or sets the log level. */
#include "core/flags.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cpus.h"
#include "util/alloc.h"
#include "util/common.h"
#include "util/log.h"

typedef enum { FLAG_STR, FLAG_INT, FLAG_LEVEL, FLAG_BOOL } flag_kind_t;

typedef struct {
    const char *name;
    flag_kind_t kind;
    size_t off;    /* offset of the field in gw_flags_t */
    long min, max; /* FLAG_INT range */
    const char *def;
    const char *help;
} flag_def_t;

#define F_OFF(m) offsetof(gw_flags_t, m)

static const flag_def_t flag_defs[] = {
    {"apiServerURL", FLAG_STR, F_OFF(api_server_url), 0, 0, "\"\"",
     "Kubernetes API server address (only needed out of cluster)"},
    {"kubeConfig", FLAG_STR, F_OFF(kube_config), 0, 0, "\"\"", "path to a kubeconfig (only needed out of cluster)"},
    {"applicationSecretsNamespace", FLAG_STR, F_OFF(secrets_namespace), 0, 0, "kyma-system",
     "namespace of the credential and request-parameter Secrets"},
    {"proxyPort", FLAG_INT, F_OFF(proxy_port), 1, 65535, "8080", "proxy port, standalone mode (/APP/SERVICE/path)"},
    {"proxyPortCompass", FLAG_INT, F_OFF(proxy_port_compass), 1, 65535, "8082",
     "proxy port, compass mode (/APP/SERVICE/ENTRY/path)"},
    {"externalAPIPort", FLAG_INT, F_OFF(external_api_port), 1, 65535, "8081",
     "admin API port (/v1/health, /v1/loglevel, /metrics)"},
    {"logLevel", FLAG_LEVEL, F_OFF(log_level), 0, 0, "info", "debug, info, warn, error, dpanic, panic or fatal"},
    {"proxyTimeout", FLAG_INT, F_OFF(proxy_timeout), 1, 86400, "10",
     "seconds allowed for the upstream call to answer with headers"},
    {"requestTimeout", FLAG_INT, F_OFF(request_timeout), 1, 86400, "10",
     "seconds allowed to read the incoming request"},
    {"proxyCacheTTL", FLAG_INT, F_OFF(proxy_cache_ttl), 0, 86400, "120",
     "seconds a resolved route may be reused (accepted for compatibility)"},
    {"configDir", FLAG_STR, F_OFF(config_dir), 0, 0, "\"\"",
     "directory of Application and Secret manifests to watch (\"\" = built-in choice)"},
    {"workers", FLAG_INT, F_OFF(workers), 1, 256, "usable CPUs", "number of worker threads (event loops); default: the CPUs this process may use (affinity, cgroup limit)"},
    {"shutdownGrace", FLAG_INT, F_OFF(shutdown_grace), 0, 3600, "30",
     "seconds in-flight requests get to finish after SIGTERM"},
    {"listenAddress", FLAG_STR, F_OFF(listen_address), 0, 0, "", "address all three ports listen on; empty: every IPv6 and IPv4 address"},
    {"tunnelIdleTimeout", FLAG_INT, F_OFF(tunnel_idle_timeout), 1, 604800, "3600",
     "seconds a protocol-upgrade tunnel (e.g. WebSocket) may carry no byte either way before it is closed"},
    {"accessLog", FLAG_BOOL, F_OFF(access_log), 0, 0, "true",
     "one JSON line per request at info level (-accessLog=false turns it off)"},
    {"upstreamHTTP2", FLAG_BOOL, F_OFF(upstream_http2), 0, 0, "true",
     "offer HTTP/2 (ALPN h2) to HTTPS upstreams, HTTP/1.1 when they do not take it (-upstreamHTTP2=false: HTTP/1.1 only)"},
    {"retryBodyLimit", FLAG_INT, F_OFF(retry_body_limit), 0, 1024 * 1024 * 1024, "1048576",
     "request body bytes kept to resend a request (after a 401/403 with fetched tokens, or a stale connection)"},
    {"minBodyRate", FLAG_INT, F_OFF(min_body_rate), 0, 1024 * 1024 * 1024, "1024",
     "bytes per second a request body must average over each requestTimeout window after the first (408 below; 0: no minimum)"},
};

static char **str_field(gw_flags_t *f, const flag_def_t *d) { return (char **)(void *)((char *)f + d->off); }
static int *int_field(gw_flags_t *f, const flag_def_t *d) { return (int *)(void *)((char *)f + d->off); }

static void set_defaults(gw_flags_t *f)
{
    memset(f, 0, sizeof(*f));
    f->api_server_url = gw_strdup("");
    f->kube_config = gw_strdup("");
    f->secrets_namespace = gw_strdup("kyma-system");
    f->proxy_port = 8080;
    f->proxy_port_compass = 8082;
    f->external_api_port = 8081;
    f->log_level = GW_LOG_INFO;
    f->proxy_timeout = 10;
    f->request_timeout = 10;
    f->proxy_cache_ttl = 120;
    f->config_dir = gw_strdup("");
    f->workers = gw_cpus_available();
    f->retry_body_limit = 1024 * 1024;
    f->min_body_rate = 1024;
    f->shutdown_grace = 30;
    f->listen_address = gw_strdup("");
    f->access_log = 1;
    f->upstream_http2 = 1;
    f->tunnel_idle_timeout = 3600;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return GW_EINVAL;
}

/* Decimal integer, optional sign, no spaces or trailing bytes. */
static bool parse_long(const char *s, long *v)
{
    if (!*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9'))) return false;
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static int parse_level(const char *v)
{
    int lv = gw_log_level_parse(v);
    if (lv >= 0) return lv;
    char low[16];
    size_t n = strlen(v);
    if (n >= sizeof(low)) return -1;
    for (size_t i = 0; i <= n; i++) low[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
    return gw_log_level_parse(low);
}

static int apply(gw_flags_t *f, const flag_def_t *d, const char *v, char *err, size_t errlen)
{
    switch (d->kind) {
    case FLAG_STR: {
        char **dst = str_field(f, d);
        free(*dst);
        *dst = gw_strdup(v);
        return GW_OK;
    }
    case FLAG_LEVEL: {
        int lv = parse_level(v);
        if (lv < 0)
            return fail(err, errlen,
                        "invalid value \"%s\" for flag -%s: must be one of debug, info, warn, error, dpanic, "
                        "panic, fatal",
                        v, d->name);
        *int_field(f, d) = lv;
        return GW_OK;
    }
    case FLAG_BOOL: {
        /* Go's strconv.ParseBool */
        static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
        static const char *const fl[] = {"0", "f", "F", "false", "FALSE", "False"};
        for (size_t i = 0; i < GW_ARRAY_SIZE(t); i++)
            if (strcmp(v, t[i]) == 0) return *int_field(f, d) = 1, GW_OK;
        for (size_t i = 0; i < GW_ARRAY_SIZE(fl); i++)
            if (strcmp(v, fl[i]) == 0) return *int_field(f, d) = 0, GW_OK;
        return fail(err, errlen, "invalid boolean value \"%s\" for -%s: parse error", v, d->name);
    }
    case FLAG_INT: {
        long n;
        if (!parse_long(v, &n) || n < d->min || n > d->max)
            return fail(err, errlen, "invalid value \"%s\" for flag -%s: must be an integer between %ld and %ld", v,
                        d->name, d->min, d->max);
        *int_field(f, d) = (int)n;
        return GW_OK;
    }
    }
    return GW_EINVAL;
}

static const flag_def_t *lookup(const char *name, size_t n)
{
    for (size_t i = 0; i < GW_ARRAY_SIZE(flag_defs); i++)
        if (strlen(flag_defs[i].name) == n && memcmp(flag_defs[i].name, name, n) == 0) return &flag_defs[i];
    return NULL;
}

/* Handles argv[*i]; may consume argv[*i + 1] as the value. 0, 1 for help, or GW_EINVAL. */
static int parse_one(int argc, char **argv, int *i, gw_flags_t *f, char *err, size_t errlen)
{
    const char *a = argv[*i];
    if (a[0] != '-' || a[1] == '\0') return fail(err, errlen, "unexpected argument: %s", a);
    const char *name = a + (a[1] == '-' ? 2 : 1);
    if (*name == '\0' || *name == '-' || *name == '=') return fail(err, errlen, "bad flag syntax: %s", a);
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    if ((nlen == 1 && name[0] == 'h') || (nlen == 4 && memcmp(name, "help", 4) == 0)) return 1;
    const flag_def_t *d = lookup(name, nlen);
    if (!d) return fail(err, errlen, "unknown flag: -%.*s", (int)nlen, name);
    const char *v;
    if (eq) {
        v = eq + 1;
    } else if (d->kind == FLAG_BOOL) {
        v = "true"; /* as Go: a boolean flag alone means true and never takes the next argument */
    } else {
        if (*i + 1 >= argc) return fail(err, errlen, "flag needs a value: -%s", d->name);
        v = argv[++*i];
    }
    return apply(f, d, v, err, errlen);
}

int gw_flags_parse(int argc, char **argv, gw_flags_t *f, char *err, size_t errlen)
{
    set_defaults(f);
    if (err && errlen) err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        int rc;
        if (strcmp(argv[i], "--") == 0) {
            rc = i + 1 < argc ? fail(err, errlen, "unexpected argument: %s", argv[i + 1]) : GW_OK;
            i = argc;
        } else {
            rc = parse_one(argc, argv, &i, f, err, errlen);
        }
        if (rc) {
            gw_flags_free(f);
            return rc;
        }
    }
    return GW_OK;
}

void gw_flags_usage(FILE *out)
{
    fprintf(out, "Usage: appgw [flags]   (-name=value, --name=value or -name value)\n");
    for (size_t i = 0; i < GW_ARRAY_SIZE(flag_defs); i++) {
        const flag_def_t *d = &flag_defs[i];
        const char *type = d->kind == FLAG_INT ? "int" : "string";
        if (d->def[0])
            fprintf(out, "  -%-28s %-6s %s (default %s)\n", d->name, type, d->help, d->def);
        else
            fprintf(out, "  -%-28s %-6s %s (default \"\")\n", d->name, type, d->help);
    }
    fprintf(out, "  -%-28s %-6s %s\n", "h, -help", "", "print this help and exit");
}

void gw_flags_free(gw_flags_t *f)
{
    if (!f) return;
    for (size_t i = 0; i < GW_ARRAY_SIZE(flag_defs); i++) {
        if (flag_defs[i].kind != FLAG_STR) continue;
        char **s = str_field(f, &flag_defs[i]);
        free(*s);
        *s = NULL;
    }
}
