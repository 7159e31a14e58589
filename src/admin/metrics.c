/* metrics.c: renders GET /metrics (Prometheus text format 0.0.4) by summing, at scrape time,
 * what each worker counted on its own cache lines: requests by app/service/code/outcome with
 * latency histograms and bytes, upstream figures by host, credentials, registry and process. */
#include "admin/admin.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth/creds.h"
#include "core/config.h"
#include "core/series.h"
#include "registry/regstats.h"
#include "util/buf.h"

#ifndef GW_VERSION
#define GW_VERSION "unknown"
#endif

/* Label value of requests that matched no API: Kubernetes names never hold parentheses, so no
 * Application can collide with it. */
#define UNMATCHED "(unmatched)"

static gw_worker_t *workers;
static int nworkers;
static double start_time;

void gw_admin_set_workers(gw_worker_t *w, int n)
{
    workers = w;
    nworkers = n;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const outcome_names[GW_NOUTCOMES] = {"proxied", "gateway_error", "upstream_error", "timeout",
                                                         "client_gone"};

/* Appends s as a label value: \\, \" and \n escaped; bytes that are not UTF-8 become U+FFFD. */
static void label(gw_buf_t *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c == '\\' || c == '"') {
            gw_buf_append(o, "\\", 1);
            gw_buf_append(o, p++, 1);
        } else if (c == '\n') {
            gw_buf_append(o, "\\n", 2);
            p++;
        } else if (c < 0x80) {
            gw_buf_append(o, p++, 1);
        } else {
            size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
            size_t i = 1;
            while (n && i < n && (p[i] & 0xc0) == 0x80) i++;
            /* (overlong 3/4-byte forms and surrogates pass here; Prometheus only needs UTF-8
             * structure, which they have) */
            if (n && i == n && !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xf0 && p[1] < 0x90) &&
                !(c == 0xf4 && p[1] > 0x8f) && !(c == 0xed && p[1] > 0x9f)) {
                gw_buf_append(o, p, n);
                p += n;
            } else {
                gw_buf_append(o, "\xef\xbf\xbd", 3);
                p++;
            }
        }
    }
}

static void help(gw_buf_t *o, const char *name, const char *type, const char *text)
{
    gw_buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void scalar(gw_buf_t *o, const char *name, const char *type, const char *text, double v)
{
    help(o, name, type, text);
    gw_buf_appendf(o, "%s %.15g\n", name, v);
}

/* One histogram's samples; labels is "" or `app="x",service="y"` (already escaped). */
static void histogram(gw_buf_t *o, const char *name, const char *labels, const gw_histogram_t *h)
{
    static const double bounds[] = GW_DURATION_BUCKETS;
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int b = 0; b < GW_NDURATION_BUCKETS; b++) {
        cum += h->bucket[b];
        gw_buf_appendf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[b], (unsigned long long)cum);
    }
    cum += h->bucket[GW_NDURATION_BUCKETS];
    gw_buf_appendf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    gw_buf_appendf(o, "%s_sum%s%s%s %.9f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                   (double)h->sum_ns / 1e9);
    gw_buf_appendf(o, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                   (unsigned long long)cum);
}

static uint64_t hist_count(const gw_histogram_t *h)
{
    uint64_t n = 0;
    for (int b = 0; b <= GW_NDURATION_BUCKETS; b++) n += h->bucket[b];
    return n;
}

static void hist_sum_into(gw_histogram_t *to, const gw_histogram_t *from)
{
    for (int b = 0; b <= GW_NDURATION_BUCKETS; b++) to->bucket[b] += GW_LOAD(from->bucket[b]);
    to->sum_ns += GW_LOAD(from->sum_ns);
}

/* ---------- requests by app/service ---------- */

/* One series summed over the workers; pairs[] holds (key, count). */
typedef struct {
    char *labels;
    uint32_t key[GW_REQSTATS_SLOTS * 4];
    uint64_t count[GW_REQSTATS_SLOTS * 4];
    size_t npairs;
    uint64_t other[GW_NOUTCOMES];
    gw_histogram_t total, upstream;
    uint64_t bytes_in, bytes_out;
} agg_t;

typedef struct {
    agg_t *v;
    size_t n, cap;
} aggs_t;

static void agg_add_block(agg_t *a, const gw_reqstats_t *s)
{
    for (int i = 0; i < GW_REQSTATS_SLOTS; i++) {
        uint32_t k = __atomic_load_n(&s->key[i], __ATOMIC_ACQUIRE);
        if (!k) break;
        uint64_t c = GW_LOAD(s->count[i]);
        size_t j = 0;
        while (j < a->npairs && a->key[j] != k) j++;
        if (j == a->npairs) {
            if (a->npairs == GW_REQSTATS_SLOTS * 4) { /* distinct pairs beyond what we show */
                a->other[(k - 1) % 8 < GW_NOUTCOMES ? (k - 1) % 8 : 0] += c;
                continue;
            }
            a->key[j] = k;
            a->count[j] = 0;
            a->npairs++;
        }
        a->count[j] += c;
    }
    for (int i = 0; i < GW_NOUTCOMES; i++) a->other[i] += GW_LOAD(s->other[i]);
    hist_sum_into(&a->total, &s->total);
    hist_sum_into(&a->upstream, &s->upstream);
    a->bytes_in += GW_LOAD(s->bytes_in);
    a->bytes_out += GW_LOAD(s->bytes_out);
}

static agg_t *agg_new(aggs_t *as, const char *app, const char *service)
{
    if (as->n == as->cap) {
        as->cap = as->cap ? as->cap * 2 : 16;
        as->v = realloc(as->v, as->cap * sizeof(agg_t));
        if (!as->v) abort();
    }
    agg_t *a = &as->v[as->n++];
    memset(a, 0, sizeof(*a));
    gw_buf_t l;
    gw_buf_init(&l, 64 * 1024);
    gw_buf_puts(&l, "app=\"");
    label(&l, app);
    gw_buf_puts(&l, "\",service=\"");
    label(&l, service);
    gw_buf_puts(&l, "\"");
    a->labels = gw_buf_take(&l, NULL);
    return a;
}

static void collect_api(const gw_series_t *s, void *ud)
{
    agg_t *a = agg_new(ud, s->a, s->b);
    for (int w = 0; w < gw_series_nworkers(); w++) agg_add_block(a, gw_series_req((gw_series_t *)s, w));
}

static void render_requests(gw_buf_t *o)
{
    aggs_t as = {0};
    agg_t *un = agg_new(&as, UNMATCHED, UNMATCHED);
    for (int w = 0; w < nworkers; w++) agg_add_block(un, &workers[w].counters.unmatched);
    gw_series_foreach(GW_SERIES_API, collect_api, &as);

    help(o, "appgw_requests_total", "counter",
         "Requests answered on the proxy ports, by API, status sent and outcome (code 499: the client left "
         "before any response).");
    for (size_t i = 0; i < as.n; i++) {
        agg_t *a = &as.v[i];
        for (size_t j = 0; j < a->npairs; j++)
            gw_buf_appendf(o, "appgw_requests_total{%s,code=\"%u\",outcome=\"%s\"} %llu\n", a->labels,
                           (a->key[j] - 1) / 8, outcome_names[(a->key[j] - 1) % 8 % GW_NOUTCOMES],
                           (unsigned long long)a->count[j]);
        for (int k = 0; k < GW_NOUTCOMES; k++)
            if (a->other[k])
                gw_buf_appendf(o, "appgw_requests_total{%s,code=\"other\",outcome=\"%s\"} %llu\n", a->labels,
                               outcome_names[k], (unsigned long long)a->other[k]);
    }
    help(o, "appgw_request_duration_seconds", "histogram",
         "Time from a complete request head to the last response byte queued, by API.");
    for (size_t i = 0; i < as.n; i++)
        if (hist_count(&as.v[i].total)) histogram(o, "appgw_request_duration_seconds", as.v[i].labels, &as.v[i].total);
    help(o, "appgw_upstream_duration_seconds", "histogram",
         "Time to connect to the upstream and receive its response head, by API (answered requests only).");
    for (size_t i = 0; i < as.n; i++)
        if (hist_count(&as.v[i].upstream))
            histogram(o, "appgw_upstream_duration_seconds", as.v[i].labels, &as.v[i].upstream);
    help(o, "appgw_request_body_bytes_total", "counter", "Request body bytes received from clients, by API.");
    for (size_t i = 0; i < as.n; i++)
        if (hist_count(&as.v[i].total))
            gw_buf_appendf(o, "appgw_request_body_bytes_total{%s} %llu\n", as.v[i].labels,
                           (unsigned long long)as.v[i].bytes_in);
    help(o, "appgw_response_body_bytes_total", "counter", "Response body bytes sent to clients, by API.");
    for (size_t i = 0; i < as.n; i++)
        if (hist_count(&as.v[i].total))
            gw_buf_appendf(o, "appgw_response_body_bytes_total{%s} %llu\n", as.v[i].labels,
                           (unsigned long long)as.v[i].bytes_out);
    for (size_t i = 0; i < as.n; i++) free(as.v[i].labels);
    free(as.v);
}

/* ---------- upstream hosts ---------- */

/* The per-host counters of gw_upstats_t, one metric each. */
static const struct {
    const char *name, *help;
    size_t off; /* of the uint64_t in gw_upstats_t */
} host_metrics[] = {
    {"appgw_upstream_connections_total", "New upstream connections started, by upstream host.",
     offsetof(gw_upstats_t, connects)},
    {"appgw_upstream_reused_total", "Requests sent on a pooled upstream connection, by upstream host.",
     offsetof(gw_upstats_t, reused)},
    {"appgw_upstream_connect_errors_total",
     "Upstream connections that failed to connect or to complete the TLS handshake, by upstream host.",
     offsetof(gw_upstats_t, connect_errors)},
    {"appgw_upstream_errors_total",
     "Other upstream failures (connection lost, malformed response, timeout), by upstream host.",
     offsetof(gw_upstats_t, errors)},
};

typedef struct {
    gw_buf_t *o;
    size_t metric; /* index in host_metrics */
} host_ctx_t;

static void render_host(const gw_series_t *s, void *ud)
{
    host_ctx_t *h = ud;
    size_t off = host_metrics[h->metric].off;
    uint64_t v = 0;
    for (int w = 0; w < gw_series_nworkers(); w++)
        v += GW_LOAD(*(uint64_t *)((char *)gw_series_up((gw_series_t *)s, w) + off));
    gw_buf_appendf(h->o, "%s{host=\"", host_metrics[h->metric].name);
    label(h->o, s->a);
    gw_buf_appendf(h->o, "\",scheme=\"%s\"} %llu\n", s->b, (unsigned long long)v);
}

static void render_hosts(gw_buf_t *o)
{
    for (size_t m = 0; m < sizeof(host_metrics) / sizeof(host_metrics[0]); m++) {
        help(o, host_metrics[m].name, "counter", host_metrics[m].help);
        host_ctx_t h = {o, m};
        gw_series_foreach(GW_SERIES_HOST, render_host, &h);
    }
}

/* ---------- process ---------- */

static void render_process(gw_buf_t *o)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    scalar(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) != 2) vsz = rss = 0;
        fclose(f);
    }
    scalar(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", (double)rss * (double)page);
    scalar(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", (double)vsz * (double)page);
    size_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        fds--; /* the directory stream's own */
    }
    scalar(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    struct rlimit rl;
    double maxfds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 0;
    scalar(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.", maxfds);
    scalar(o, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
           start_time);
}

/* ---------- everything ---------- */

void gw_admin_render_metrics(gw_buf_t *o)
{
    help(o, "appgw_build_info", "gauge", "Build of the running gateway (always 1).");
    gw_buf_appendf(o, "appgw_build_info{version=\"%s\"} 1\n", GW_VERSION);
    scalar(o, "appgw_workers", "gauge", "Worker threads (event loops) serving the proxy ports.", nworkers);
    render_process(o);

    /* In flight first: a request counted as ended here is counted in the series read after. */
    uint64_t started = 0, ended = 0;
    for (int i = 0; i < nworkers; i++) {
        ended += __atomic_load_n(&workers[i].counters.requests_ended, __ATOMIC_ACQUIRE);
        started += GW_LOAD(workers[i].counters.requests_started);
    }
    scalar(o, "appgw_requests_in_flight", "gauge", "Requests received and not yet answered completely.",
           (double)(started > ended ? started - ended : 0));
    render_requests(o);

    uint64_t accepted = 0, active = 0, accept_err = 0, connects = 0, reused = 0, up_err = 0, up_open = 0,
             up_idle = 0, tls_hs = 0, tls_resumed = 0, cred_hits = 0, spliced = 0;
    for (int i = 0; i < nworkers; i++) {
        gw_counters_t *c = &workers[i].counters;
        accepted += GW_LOAD(c->conns_accepted);
        active += GW_LOAD(c->conns_active);
        accept_err += GW_LOAD(c->accept_errors);
        connects += GW_LOAD(c->upstream_connects);
        reused += GW_LOAD(c->upstream_reused);
        up_err += GW_LOAD(c->upstream_errors);
        up_open += GW_LOAD(c->upstream_open);
        up_idle += GW_LOAD(c->upstream_idle);
        tls_hs += GW_LOAD(c->upstream_tls_handshakes);
        tls_resumed += GW_LOAD(c->upstream_tls_resumed);
        cred_hits += GW_LOAD(c->cred_hits);
        spliced += GW_LOAD(c->spliced_bytes);
    }
    scalar(o, "appgw_connections_accepted_total", "counter", "Client connections accepted.", (double)accepted);
    scalar(o, "appgw_connections_active", "gauge", "Client connections open.", (double)active);
    scalar(o, "appgw_accept_errors_total", "counter", "Connections refused (e.g. out of file descriptors).",
           (double)accept_err);
    scalar(o, "appgw_upstream_connects_total", "counter", "New upstream connections started (all hosts).",
           (double)connects);
    scalar(o, "appgw_upstream_requests_reused_total", "counter",
           "Requests sent on a pooled upstream connection (all hosts).", (double)reused);
    scalar(o, "appgw_upstream_failures_total", "counter",
           "Upstream failures: connect, TLS, timeout, malformed (all hosts).", (double)up_err);
    scalar(o, "appgw_upstream_connections_open", "gauge", "Upstream connections open (all hosts).", (double)up_open);
    scalar(o, "appgw_upstream_connections_idle", "gauge", "Upstream connections idle in the pools (all hosts).",
           (double)up_idle);
    scalar(o, "appgw_upstream_tls_handshakes_total", "counter", "TLS handshakes with upstreams.", (double)tls_hs);
    scalar(o, "appgw_upstream_tls_resumed_total", "counter", "Upstream TLS handshakes that resumed a session.",
           (double)tls_resumed);
    scalar(o, "appgw_spliced_bytes_total", "counter",
           "Response body bytes moved from upstream to client socket by splice(2) (also counted in the response bytes).",
           (double)spliced);
    render_hosts(o);

    gw_cred_stats_t cs;
    gw_cred_stats(&cs);
    static const char *const kinds[] = {"oauth", "csrf"};
    help(o, "appgw_credential_fetches_total", "counter", "Token (OAuth) and CSRF token requests made, by outcome.");
    for (int k = 0; k < 2; k++) {
        gw_buf_appendf(o, "appgw_credential_fetches_total{kind=\"%s\",outcome=\"ok\"} %llu\n", kinds[k],
                       (unsigned long long)cs.fetch_ok[k]);
        gw_buf_appendf(o, "appgw_credential_fetches_total{kind=\"%s\",outcome=\"error\"} %llu\n", kinds[k],
                       (unsigned long long)cs.fetch_err[k]);
    }
    help(o, "appgw_credential_fetch_duration_seconds", "histogram", "Duration of token and CSRF token requests.");
    for (int k = 0; k < 2; k++) {
        char l[32];
        snprintf(l, sizeof(l), "kind=\"%s\"", kinds[k]);
        histogram(o, "appgw_credential_fetch_duration_seconds", l, &cs.latency[k]);
    }
    scalar(o, "appgw_credential_cache_hits_total", "counter",
           "Requests served a fetched credential from the cache, without waiting.", (double)cred_hits);
    scalar(o, "appgw_credential_refreshes_total", "counter", "Tokens renewed ahead of their expiry.",
           (double)cs.refreshes);
    scalar(o, "appgw_credential_waits_total", "counter",
           "Requests that waited for a token or CSRF fetch (single flight: many waiters, one fetch).",
           (double)cs.waits);
    scalar(o, "appgw_credential_cache_entries", "gauge", "Tokens and CSRF tokens held in the shared cache.",
           (double)cs.cached);

    gw_snapshot_t *snap = gw_config_acquire();
    scalar(o, "appgw_config_generation", "gauge", "Build number of the route table in use.",
           (double)gw_snapshot_generation(snap));
    scalar(o, "appgw_config_apis", "gauge", "APIs in the route table in use.", (double)gw_snapshot_api_count(snap));
    help(o, "appgw_config_objects", "gauge", "Objects the route table in use was built from, by kind.");
    gw_buf_appendf(o, "appgw_config_objects{kind=\"application\"} %zu\n", gw_snapshot_app_count(snap));
    gw_buf_appendf(o, "appgw_config_objects{kind=\"secret\"} %zu\n", gw_snapshot_secret_count(snap));
    gw_snapshot_unref(snap);
    scalar(o, "appgw_config_last_load_timestamp_seconds", "gauge",
           "Unix time the route table in use was published (0: none yet).", gw_config_published_at());
    help(o, "appgw_config_load_errors_total", "counter",
         "Manifests or Kubernetes responses rejected (the last good configuration stays), by source.");
    gw_buf_appendf(o, "appgw_config_load_errors_total{source=\"files\"} %llu\n",
                   (unsigned long long)gw_registry_stats.load_errors[GW_SOURCE_FILES]);
    gw_buf_appendf(o, "appgw_config_load_errors_total{source=\"kubernetes\"} %llu\n",
                   (unsigned long long)gw_registry_stats.load_errors[GW_SOURCE_KUBE]);
    if (gw_registry_stats.apiserver >= 0) {
        scalar(o, "appgw_kubernetes_api_up", "gauge", "1 while the Kubernetes API server answers, else 0.",
               gw_registry_stats.apiserver);
        scalar(o, "appgw_kubernetes_relists_total", "counter",
               "Full lists after the first (watch expired, 410 Gone, unreadable stream).",
               (double)gw_registry_stats.relists);
    }
}
