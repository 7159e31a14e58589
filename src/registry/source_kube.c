/* source_kube.c: list + watch of Applications and Secrets through core/ctlclient, a live copy
 * of both kept as name -> object maps, and a debounced snapshot rebuild after every change.
 * One reflector per kind: LIST (paginated) -> WATCH from the list's resourceVersion -> on the
 * watch's end WATCH again; 410 -> LIST; transport errors -> backoff, WATCH (or LIST) again. */
#include "registry/source_kube.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/config.h"
#include "core/ctlclient.h"
#include "registry/kube_client.h"
#include "registry/ondemand.h"
#include "registry/watch_decode.h"
#include "registry/regstats.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/log.h"

#define LIST_LIMIT 500
#define MAX_LIST_BYTES (256u * 1024 * 1024)   /* one page of a list */
#define MAX_EVENT_BYTES (16u * 1024 * 1024)   /* one watch event (Kubernetes objects are < 1.5 MiB) */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define DEBOUNCE_MS 50
#define REQUEST_TIMEOUT_MS 30000

typedef enum { R_APPS = 0, R_SECRETS = 1 } rkind_t;

typedef struct reflector_s {
    struct gw_source_kube_s *src;
    rkind_t kind;
    const char *what;         /* "applications" / "secrets" (logs) */
    char *path;               /* collection path on the API server */
    json_t *objs;             /* name -> object: the live copy */
    json_t *listing;          /* name -> object of a paginated list under way */
    char *rv;                 /* resourceVersion to watch from */
    char *cont;               /* continue token of the list under way */
    bool synced;              /* a complete list arrived once */
    bool relist;              /* the next attempt lists instead of watching */
    bool stop_stream;         /* the watch decoder asked to end this stream */
    gw_ctl_xfer_t *xfer;
    gw_watch_decoder_t dec;
    uv_timer_t retry;
    unsigned backoff_ms;
} reflector_t;

struct gw_source_kube_s {
    uv_loop_t *loop;
    gw_kube_conn_t conn;
    gw_source_kube_opts_t opts;
    char *ns;
    gw_snapshot_cb cb;
    void *ud;
    reflector_t r[2];
    uv_timer_t debounce;
    bool unreachable;         /* an outage is under way (logged once) */
    bool forbidden;           /* list/watch refused: on-demand mode */
    gw_ondemand_src_t *od;    /* on-demand mode */
    int handles;              /* open uv handles (freed when 0 after stop) */
    bool stopping;
};

static void reflector_next(reflector_t *r);

/* ---------- requests ---------- */

static void reachable(gw_source_kube_t *s)
{
    gw_registry_stats.apiserver = 1;
    if (!s->unreachable) return;
    s->unreachable = false;
    gw_log(GW_LOG_INFO, "Kubernetes API reachable again", "server", s->conn.server, NULL);
}

static void unreachable(gw_source_kube_t *s, const char *reason)
{
    gw_registry_stats.apiserver = 0;
    if (s->unreachable) return;
    s->unreachable = true;
    gw_log(GW_LOG_WARN, "Kubernetes API unreachable", "server", s->conn.server, "reason", reason,
           "note", "serving the last configuration", NULL);
}

/* ---------- snapshots ---------- */

static void rebuild(gw_source_kube_t *s)
{
    if (s->stopping) return;
    json_t *maps[2] = {s->r[R_APPS].objs, s->r[R_SECRETS].objs};
    json_t **vals[2];
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        n[k] = json_object_size(maps[k]);
        vals[k] = gw_calloc(n[k] ? n[k] : 1, sizeof(json_t *));
        size_t i = 0;
        const char *key;
        json_t *v;
        json_object_foreach(maps[k], key, v) vals[k][i++] = v;
    }
    gw_snapshot_t *snap = gw_snapshot_build(vals[0], n[0], vals[1], n[1], s->ns);
    char a[24], b[24], g[24];
    snprintf(a, sizeof(a), "%zu", n[0]);
    snprintf(b, sizeof(b), "%zu", n[1]);
    snprintf(g, sizeof(g), "%llu", (unsigned long long)gw_snapshot_generation(snap));
    gw_log(GW_LOG_INFO, "config synced from Kubernetes", "applications", a, "secrets", b, "generation", g, NULL);
    free(vals[0]);
    free(vals[1]);
    s->cb(snap, s->ud);
}

static void on_debounce(uv_timer_t *t) { rebuild(t->data); }

/* A change: rebuild soon, once per burst (and only once both kinds are complete). */
static void changed(gw_source_kube_t *s)
{
    if (!s->r[R_APPS].synced || !s->r[R_SECRETS].synced) return;
    if (!uv_is_active((uv_handle_t *)&s->debounce)) uv_timer_start(&s->debounce, on_debounce, DEBOUNCE_MS, 0);
}

/* ---------- reflector ---------- */

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? gw_strdup(v) : NULL;
}

static const char *obj_name(const json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static const char *obj_rv(const json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

static void on_retry(uv_timer_t *t) { reflector_next(t->data); }

/* Tries again after the backoff (doubling, jittered, capped); `list` forces a fresh list. */
static void retry_later(reflector_t *r, bool list)
{
    if (list) r->relist = true;
    unsigned base = r->backoff_ms ? r->backoff_ms : BACKOFF_MIN_MS;
    unsigned jitter = base / 5 ? (unsigned)rand() % (base / 5 + 1) : 0;
    uv_timer_start(&r->retry, on_retry, base - base / 10 + jitter, 0);
    r->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
}

static void go_on_demand(gw_source_kube_t *s);

static void forbidden(reflector_t *r, const gw_ctl_response_t *resp)
{
    gw_source_kube_t *s = r->src;
    char msg[256];
    if (s->forbidden) return;
    s->forbidden = true;
    gw_log(GW_LOG_WARN, "Kubernetes list/watch forbidden, falling back to on-demand GETs", "resource", r->what,
           "message", gw_kube_status_message(resp, msg, sizeof(msg)), NULL);
    go_on_demand(s);
}

/* A response other than success: log it and decide what comes next. */
static void failed(reflector_t *r, const gw_ctl_response_t *resp, const char *doing)
{
    gw_source_kube_t *s = r->src;
    if (resp->status == 0) {
        unreachable(s, resp->error ? resp->error : "no response");
        retry_later(r, false);
        return;
    }
    reachable(s);
    if (resp->status == 403) {
        forbidden(r, resp);
        return;
    }
    if (resp->status == 410) { /* resourceVersion or continue token too old: list afresh */
        gw_log(GW_LOG_INFO, "Kubernetes resource version expired, relisting", "resource", r->what, NULL);
        set_str(&r->cont, NULL);
        r->relist = true;
        r->backoff_ms = 0;
        reflector_next(r);
        return;
    }
    char st[8], msg[256];
    snprintf(st, sizeof(st), "%d", resp->status);
    gw_log(GW_LOG_WARN, "Kubernetes API request failed", "resource", r->what, "request", doing, "status", st,
           "message", gw_kube_status_message(resp, msg, sizeof(msg)), NULL);
    set_str(&r->cont, NULL);
    retry_later(r, true);
}

static void list_start(reflector_t *r);

static void on_list(void *ud, const gw_ctl_response_t *resp)
{
    reflector_t *r = ud;
    r->xfer = NULL;
    if (resp->status != 200) {
        failed(r, resp, "list");
        return;
    }
    reachable(r->src);
    json_error_t jerr;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, &jerr);
    json_t *items = json_object_get(j, "items");
    const char *rv = json_string_value(json_object_get(json_object_get(j, "metadata"), "resourceVersion"));
    if (!json_is_array(items) || !rv) {
        gw_registry_stats.load_errors[GW_SOURCE_KUBE]++;
        gw_log(GW_LOG_WARN, "Kubernetes list response unreadable, relisting", "resource", r->what, NULL);
        json_decref(j);
        set_str(&r->cont, NULL);
        retry_later(r, true);
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *name = obj_name(it);
        if (name) json_object_set(r->listing, name, it);
    }
    const char *cont = json_string_value(json_object_get(json_object_get(j, "metadata"), "continue"));
    if (cont && *cont) {
        set_str(&r->cont, cont);
        json_decref(j);
        list_start(r);
        return;
    }
    json_decref(r->objs);
    r->objs = r->listing;
    r->listing = NULL;
    set_str(&r->rv, rv);
    set_str(&r->cont, NULL);
    json_decref(j);
    r->synced = true;
    r->relist = false;
    r->backoff_ms = 0;
    changed(r->src);
    reflector_next(r);
}

static void list_start(reflector_t *r)
{
    if (!r->cont && r->synced) gw_registry_stats.relists++;
    if (!r->cont) {
        json_decref(r->listing);
        r->listing = json_object();
    }
    gw_buf_t q;
    gw_buf_init(&q, 64 * 1024);
    gw_buf_appendf(&q, "%s?limit=%d", r->path, LIST_LIMIT);
    if (r->cont) {
        gw_buf_puts(&q, "&continue=");
        for (const char *c = r->cont; *c; c++) {
            if (isalnum((unsigned char)*c) || strchr("-._~", *c)) gw_buf_append(&q, c, 1);
            else gw_buf_appendf(&q, "%%%02X", (unsigned char)*c);
        }
    }
    gw_buf_append(&q, "", 1);
    gw_kube_get_t o = {.done = on_list, .timeout_ms = REQUEST_TIMEOUT_MS * 2};
    if (gw_kube_get(&r->src->conn, q.base, &o, r, &r->xfer) != GW_OK) retry_later(r, true);
    gw_buf_free(&q);
}

static int on_event(void *ud, const gw_watch_event_t *ev)
{
    reflector_t *r = ud;
    const char *name = obj_name(ev->object), *rv = obj_rv(ev->object);
    switch (ev->type) {
    case GW_WATCH_ADDED:
    case GW_WATCH_MODIFIED:
        if (name) json_object_set(r->objs, name, ev->object);
        break;
    case GW_WATCH_DELETED:
        if (name) json_object_del(r->objs, name);
        break;
    case GW_WATCH_BOOKMARK:
        break;
    case GW_WATCH_ERROR: {
        json_int_t code = json_integer_value(json_object_get(ev->object, "code"));
        const char *msg = json_string_value(json_object_get(ev->object, "message"));
        if (code == 410) {
            gw_log(GW_LOG_INFO, "Kubernetes watch expired, relisting", "resource", r->what, NULL);
        } else {
            char c[16];
            snprintf(c, sizeof(c), "%lld", (long long)code);
            gw_log(GW_LOG_WARN, "Kubernetes watch error, relisting", "resource", r->what, "code", c, "message",
                   msg ? msg : "", NULL);
        }
        r->relist = true;
        r->stop_stream = true;
        return 1;
    }
    }
    if (rv) set_str(&r->rv, rv);
    if (ev->type != GW_WATCH_BOOKMARK) changed(r->src);
    return 0;
}

static void on_watch_head(void *ud, int status)
{
    reflector_t *r = ud;
    if (status == 200) {
        reachable(r->src);
        r->backoff_ms = 0;
    }
}

static int on_watch_data(void *ud, const char *p, size_t n)
{
    reflector_t *r = ud;
    const char *why = NULL;
    int rc = gw_watch_feed(&r->dec, p, n, on_event, r, &why);
    if (rc == GW_EBADMSG) {
        gw_registry_stats.load_errors[GW_SOURCE_KUBE]++;
        gw_log(GW_LOG_WARN, "Kubernetes watch stream unreadable, relisting", "resource", r->what, "reason",
               why ? why : "malformed event", NULL);
        r->relist = true;
        r->stop_stream = true;
    }
    return rc == GW_OK ? 0 : 1;
}

static void on_watch_done(void *ud, const gw_ctl_response_t *resp)
{
    reflector_t *r = ud;
    r->xfer = NULL;
    if (r->stop_stream) { /* we ended it: relist (410, error event, garbage) */
        r->stop_stream = false;
        if (r->relist && r->backoff_ms == 0) reflector_next(r);
        else retry_later(r, true);
        return;
    }
    if (resp->status == 200) { /* the server closed the watch (timeoutSeconds): watch on */
        reflector_next(r);
        return;
    }
    if (resp->status == 0 && r->backoff_ms == 0 && resp->error && !strstr(resp->error, "connect")) {
        /* a stream cut after it had worked: reconnect at once, then back off if it fails again */
        r->backoff_ms = BACKOFF_MIN_MS;
        reflector_next(r);
        return;
    }
    failed(r, resp, "watch");
}

static void watch_start(reflector_t *r)
{
    r->stop_stream = false;
    gw_watch_decoder_reset(&r->dec);
    unsigned timeout = 240 + (unsigned)rand() % 120;
    char *q = gw_asprintf("%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u", r->path,
                          r->rv ? r->rv : "", timeout);
    gw_kube_get_t o = {.done = on_watch_done,
                    .on_head = on_watch_head,
                    .on_data = on_watch_data,
                    .timeout_ms = (long)(timeout + 30) * 1000};
    if (gw_kube_get(&r->src->conn, q, &o, r, &r->xfer) != GW_OK) retry_later(r, false);
    free(q);
}

static void reflector_next(reflector_t *r)
{
    if (r->src->stopping || r->src->forbidden) return;
    if (r->relist || !r->synced || !r->rv) list_start(r);
    else watch_start(r);
}

static void reflector_init(gw_source_kube_t *s, rkind_t k)
{
    reflector_t *r = &s->r[k];
    r->src = s;
    r->kind = k;
    r->what = k == R_APPS ? "applications" : "secrets";
    r->path = k == R_APPS ? gw_strdup("/apis/applicationconnector.kyma-project.io/v1alpha1/applications")
                          : gw_asprintf("/api/v1/namespaces/%s/secrets", s->ns);
    r->objs = json_object();
    gw_watch_decoder_init(&r->dec, MAX_EVENT_BYTES);
    uv_timer_init(s->loop, &r->retry);
    r->retry.data = r;
    s->handles++;
}

static void reflector_cancel(reflector_t *r)
{
    if (r->xfer) gw_ctl_cancel(r->xfer);
    r->xfer = NULL;
    uv_timer_stop(&r->retry);
}

/* ---------- on-demand mode (get-only RBAC) ---------- */

static void go_on_demand(gw_source_kube_t *s)
{
    for (int k = 0; k < 2; k++) reflector_cancel(&s->r[k]);
    uv_timer_stop(&s->debounce);
    gw_ondemand_src_opts_t o = {.loop = s->loop,
                                .conn = &s->conn,
                                .secrets_namespace = s->ns,
                                .app_retention_ms = s->opts.app_retention_ms,
                                .secret_retention_ms = s->opts.secret_retention_ms,
                                .cb = s->cb,
                                .ud = s->ud};
    s->od = gw_ondemand_src_start(&o);
}

/* ---------- life cycle ---------- */

gw_source_kube_t *gw_source_kube_start(uv_loop_t *loop, gw_kube_conn_t *conn, const gw_source_kube_opts_t *opts,
                                       gw_snapshot_cb cb, void *ud)
{
    gw_source_kube_t *s = gw_calloc(1, sizeof(*s));
    gw_registry_stats.apiserver = 0; /* until the first answer */
    s->loop = loop;
    s->conn = *conn;
    memset(conn, 0, sizeof(*conn));
    s->opts = *opts;
    s->ns = gw_strdup(opts->secrets_namespace);
    s->opts.secrets_namespace = s->ns;
    s->cb = cb;
    s->ud = ud;
    uv_timer_init(loop, &s->debounce);
    s->debounce.data = s;
    s->handles++;
    gw_config_set_waiting("waiting for the first sync with the Kubernetes API");
    for (int k = 0; k < 2; k++) reflector_init(s, (rkind_t)k);
    gw_log(GW_LOG_INFO, "syncing from Kubernetes", "server", s->conn.server, "secretsNamespace", s->ns, NULL);
    for (int k = 0; k < 2; k++) reflector_next(&s->r[k]);
    return s;
}

static void source_free(gw_source_kube_t *s)
{
    for (int k = 0; k < 2; k++) {
        reflector_t *r = &s->r[k];
        json_decref(r->objs);
        json_decref(r->listing);
        free(r->rv);
        free(r->cont);
        free(r->path);
        gw_watch_decoder_free(&r->dec);
    }
    gw_kube_conn_free(&s->conn);
    free(s->ns);
    free(s);
}

static void on_debounce_closed(uv_handle_t *h)
{
    gw_source_kube_t *s = h->data;
    if (--s->handles == 0) source_free(s);
}

static void on_retry_closed(uv_handle_t *h)
{
    gw_source_kube_t *s = ((reflector_t *)h->data)->src;
    if (--s->handles == 0) source_free(s);
}

void gw_source_kube_stop(gw_source_kube_t *s)
{
    if (!s) return;
    s->stopping = true;
    if (s->od) gw_ondemand_src_stop(s->od);
    s->od = NULL;
    for (int k = 0; k < 2; k++) {
        reflector_cancel(&s->r[k]);
        uv_close((uv_handle_t *)&s->r[k].retry, on_retry_closed);
    }
    uv_timer_stop(&s->debounce);
    uv_close((uv_handle_t *)&s->debounce, on_debounce_closed);
}

int64_t gw_go_duration_ms(const char *s)
{
    if (!s || !*s) return -1;
    if (strcmp(s, "0") == 0) return 0;
    double total = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 0) return -1;
        p = end;
        double unit;
        if (strncmp(p, "ns", 2) == 0) unit = 1e-6, p += 2;
        else if (strncmp(p, "us", 2) == 0 || strncmp(p, "\xc2\xb5s", 3) == 0) unit = 1e-3, p += (*p == 'u' ? 2 : 3);
        else if (strncmp(p, "ms", 2) == 0) unit = 1, p += 2;
        else if (*p == 's') unit = 1000, p += 1;
        else if (*p == 'm') unit = 60000, p += 1;
        else if (*p == 'h') unit = 3600000, p += 1;
        else return -1;
        total += v * unit;
        if (total > 9.2e15) return -1;
    }
    return (int64_t)total;
}
