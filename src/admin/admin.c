/* admin.c: handler for the admin port: /v1/health, /v1/ready, /v1/loglevel (GET/PUT), /metrics. */
#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth/creds.h"
#include "core/config.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define ADMIN_BODY_MAX 4096

static gw_worker_t *workers;
static int nworkers;

void gw_admin_set_workers(gw_worker_t *w, int n)
{
    workers = w;
    nworkers = n;
}

#define LOAD(f) __atomic_load_n(&f, __ATOMIC_RELAXED)

void gw_admin_render_metrics(gw_buf_t *o)
{
    static uint64_t by_status[600];
    memset(by_status, 0, sizeof(by_status));
    static const double bounds[] = GW_DURATION_BUCKETS;
    uint64_t buckets[GW_NDURATION_BUCKETS + 1] = {0}, sum_us = 0;
    uint64_t accepted = 0, active = 0, accept_err = 0, connects = 0, reused = 0, up_err = 0, in = 0, out = 0;
    uint64_t tls_hs = 0, tls_resumed = 0;
    for (int i = 0; i < nworkers; i++) {
        gw_counters_t *c = &workers[i].counters;
        for (int s = 0; s < 600; s++) by_status[s] += LOAD(c->requests_by_status[s]);
        for (int b = 0; b <= GW_NDURATION_BUCKETS; b++) buckets[b] += LOAD(c->duration_buckets[b]);
        sum_us += LOAD(c->duration_sum_us);
        accepted += LOAD(c->conns_accepted);
        active += LOAD(c->conns_active);
        accept_err += LOAD(c->accept_errors);
        connects += LOAD(c->upstream_connects);
        reused += LOAD(c->upstream_reused);
        up_err += LOAD(c->upstream_errors);
        tls_hs += LOAD(c->upstream_tls_handshakes);
        tls_resumed += LOAD(c->upstream_tls_resumed);
        in += LOAD(c->bytes_in);
        out += LOAD(c->bytes_out);
    }
    gw_buf_puts(o, "# HELP appgw_requests_total Requests answered on the proxy ports, by status sent.\n"
                   "# TYPE appgw_requests_total counter\n");
    for (int s = 0; s < 600; s++)
        if (by_status[s]) gw_buf_appendf(o, "appgw_requests_total{code=\"%d\"} %llu\n", s, (unsigned long long)by_status[s]);
    gw_buf_puts(o, "# HELP appgw_request_duration_seconds Time from a complete request head to the last "
                   "response byte queued.\n# TYPE appgw_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < GW_NDURATION_BUCKETS; b++) {
        cum += buckets[b];
        gw_buf_appendf(o, "appgw_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cum);
    }
    cum += buckets[GW_NDURATION_BUCKETS];
    gw_buf_appendf(o, "appgw_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    gw_buf_appendf(o, "appgw_request_duration_seconds_sum %.6f\n", (double)sum_us / 1e6);
    gw_buf_appendf(o, "appgw_request_duration_seconds_count %llu\n", (unsigned long long)cum);
#define METRIC(name, type, help, v)                                                                           \
    gw_buf_appendf(o, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " %llu\n", (unsigned long long)(v))
    METRIC("appgw_connections_accepted_total", "counter", "Client connections accepted.", accepted);
    METRIC("appgw_connections_active", "gauge", "Client connections open.", active);
    METRIC("appgw_accept_errors_total", "counter", "Connections refused (e.g. out of file descriptors).", accept_err);
    METRIC("appgw_upstream_connects_total", "counter", "New upstream connections started.", connects);
    METRIC("appgw_upstream_reused_total", "counter", "Requests sent on a pooled upstream connection.", reused);
    METRIC("appgw_upstream_errors_total", "counter", "Upstream failures (connect, TLS, timeout, malformed).", up_err);
    METRIC("appgw_upstream_tls_handshakes_total", "counter", "TLS handshakes with upstreams.", tls_hs);
    METRIC("appgw_upstream_tls_resumed_total", "counter", "Upstream TLS handshakes that resumed a session.",
           tls_resumed);
    METRIC("appgw_request_body_bytes_total", "counter", "Request body bytes received from clients.", in);
    METRIC("appgw_response_body_bytes_total", "counter", "Response body bytes forwarded to clients.", out);
    gw_snapshot_t *snap = gw_config_acquire();
    METRIC("appgw_config_generation", "gauge", "Build number of the route table in use.", gw_snapshot_generation(snap));
    METRIC("appgw_config_apis", "gauge", "APIs in the route table in use.", gw_snapshot_api_count(snap));
    gw_snapshot_unref(snap);
    gw_cred_stats_t cs;
    gw_cred_stats(&cs);
    gw_buf_puts(o, "# HELP appgw_credential_fetches_total Token (OAuth) and CSRF token requests made, by outcome.\n"
                   "# TYPE appgw_credential_fetches_total counter\n");
    static const char *const kinds[] = {"oauth", "csrf"};
    for (int k = 0; k < 2; k++) {
        gw_buf_appendf(o, "appgw_credential_fetches_total{kind=\"%s\",outcome=\"ok\"} %llu\n", kinds[k],
                       (unsigned long long)cs.fetch_ok[k]);
        gw_buf_appendf(o, "appgw_credential_fetches_total{kind=\"%s\",outcome=\"error\"} %llu\n", kinds[k],
                       (unsigned long long)cs.fetch_err[k]);
    }
    METRIC("appgw_credential_refreshes_total", "counter", "Tokens renewed ahead of their expiry.", cs.refreshes);
    METRIC("appgw_credential_waits_total", "counter", "Requests that waited for a token or CSRF fetch.", cs.waits);
    METRIC("appgw_credential_cache_entries", "gauge", "Tokens and CSRF tokens held in the shared cache.", cs.cached);
#undef METRIC
}

typedef struct {
    gw_buf_t body;
    bool too_large;
} admin_req_t;

static bool path_is(gw_str_t target, const char *p)
{
    size_t n = strlen(p);
    if (target.n < n || memcmp(target.p, p, n) != 0) return false;
    return target.n == n || target.p[n] == '?';
}

static void respond_level(gw_request_t *req)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"level\":\"%s\"}", gw_log_level_name(gw_log_get_level()));
    gw_request_respond(req, 200, "application/json", body, (size_t)n);
}

static void put_level(gw_request_t *req, admin_req_t *a)
{
    json_error_t err;
    json_t *j = a->too_large ? NULL : json_loadb(a->body.base ? a->body.base : "", a->body.len, 0, &err);
    const char *lv = j ? json_string_value(json_object_get(j, "level")) : NULL;
    int level = lv ? gw_log_level_parse(lv) : -1;
    if (level < 0) {
        json_decref(j);
        gw_request_respond_error(req, 400, lv ? "invalid log level" : "invalid request body: expected {\"level\":\"...\"}");
        return;
    }
    gw_log_set_level(level);
    gw_log(GW_LOG_INFO, "log level changed", "level", gw_log_level_name(level), NULL);
    json_decref(j);
    respond_level(req);
}

/* Answers the request (which frees it); a is the caller's to free. */
static void dispatch(gw_request_t *req, admin_req_t *a)
{
    gw_str_t t = req->head.target, m = req->head.method;
    bool get = gw_str_eq(m, "GET", 3) || gw_str_eq(m, "HEAD", 4);
    if (path_is(t, "/v1/health")) {
        if (get) gw_request_respond(req, 200, NULL, NULL, 0);
        else gw_request_respond_error(req, 405, "Method not allowed.");
    } else if (path_is(t, "/v1/ready")) {
        const char *why = gw_config_not_ready();
        if (!get) gw_request_respond_error(req, 405, "Method not allowed.");
        else if (why) gw_request_respond_error(req, 503, why);
        else gw_request_respond(req, 200, "application/json", "{\"status\":\"ready\"}", 18);
    } else if (path_is(t, "/v1/loglevel")) {
        if (get) respond_level(req);
        else if (gw_str_eq(m, "PUT", 3)) put_level(req, a);
        else gw_request_respond_error(req, 405, "Method not allowed.");
    } else if (path_is(t, "/metrics")) {
        if (!get) {
            gw_request_respond_error(req, 405, "Method not allowed.");
            return;
        }
        gw_buf_t o;
        gw_buf_init(&o, 1 << 20);
        gw_admin_render_metrics(&o);
        gw_request_respond(req, 200, "text/plain; version=0.0.4", o.base, o.len);
        gw_buf_free(&o);
    } else {
        gw_request_respond_error(req, 404, "Requested resource could not be found.");
    }
}

static void admin_req_free(admin_req_t *a)
{
    if (!a) return;
    gw_buf_free(&a->body);
    free(a);
}

static void on_request(gw_request_t *req)
{
    admin_req_t *a = gw_calloc(1, sizeof(*a));
    gw_buf_init(&a->body, ADMIN_BODY_MAX);
    if (req->body_done) {
        dispatch(req, a);
        admin_req_free(a);
        return;
    }
    req->data = a;
}

static void on_body(gw_request_t *req, gw_block_t *b, size_t off, size_t len, bool last)
{
    admin_req_t *a = req->data;
    if (!a) return;
    if (gw_buf_append(&a->body, b->data + off, len) != GW_OK) a->too_large = true;
    if (last) {
        req->data = NULL;
        dispatch(req, a);
        admin_req_free(a);
    }
}

static void on_abort(gw_request_t *req)
{
    admin_req_free(req->data);
    req->data = NULL;
}

const gw_handler_t gw_admin_handler = {on_request, on_body, on_abort, NULL};
