/* ondemand.c: on-demand Applications and Secrets for a get-only role. The control side keeps a
 * small cache of fetched objects (one GET per object at a time, background refetch after the
 * retention time) and publishes snapshots built from it; workers park requests for a missing
 * Application and route them again once it was fetched. Workers and control loop talk through
 * core/mailbox. */
#include "registry/ondemand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/mailbox.h"
#include "registry/kube_client.h"
#include "registry/regstats.h"
#include "util/alloc.h"
#include "util/common.h"
#include "util/dlist.h"
#include "util/log.h"

#define MAX_VIEWS 512
#define MAX_NAME 253
#define REQUEST_TIMEOUT_MS 10000

enum { K_APP = 0, K_SECRET = 1 };

/* worker -> control: "fetch this Application"; control -> workers: "it was settled" */
typedef struct {
    gw_mail_t mail;
    int status;      /* done: 0 or the HTTP status to answer with */
    char *error;     /* done: error text or NULL */
    char name[];
} msg_t;

typedef struct obj_s {
    struct obj_s *next;
    struct gw_ondemand_src_s *src;
    int kind;
    char *name;
    json_t *obj;            /* last fetched object; NULL: none (not found, or never fetched) */
    uint64_t fetched_ms;    /* 0: never */
    gw_ctl_xfer_t *xfer;    /* a GET under way */
    bool notify;            /* (apps) workers wait for it */
    bool tell;              /* (apps) settled: tell the workers now */
    int status;             /* (apps) what to tell them: 0 (route again) or an HTTP status */
    char *error;
} obj_t;

struct gw_ondemand_src_s {
    uv_loop_t *loop;
    const gw_kube_conn_t *conn;
    char *ns;
    uint64_t retention[2];
    gw_snapshot_cb cb;
    void *ud;
    obj_t *objs;
    uv_timer_t tick;
    gw_mailbox_t box;
    int handles;
};

struct gw_ondemand_s {
    gw_mailbox_t box;
    void (*refresh)(void *ud);
    void *ud;
    struct wentry_s *entries;
};

typedef struct wentry_s {
    struct wentry_s *next;
    gw_ondemand_wait_t *waiters;
    char name[];
} wentry_t;

/* The running source's mailbox and the workers' views, under one lock. */
static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t reg;
static gw_mailbox_t *src_box;
static gw_ondemand_t *views[MAX_VIEWS];
static size_t nviews;

static void reg_init(void) { uv_mutex_init(&reg); }

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static msg_t *msg_new(const char *name, size_t n)
{
    msg_t *m = gw_calloc(1, sizeof(*m) + n + 1);
    memcpy(m->name, name, n);
    return m;
}

static void msg_free_list(gw_mail_t *m)
{
    while (m) {
        gw_mail_t *n = m->next;
        free(((msg_t *)m)->error);
        free(m);
        m = n;
    }
}

/* ================= control side ================= */

static void fetch(obj_t *o);

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > MAX_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

static obj_t *find(gw_ondemand_src_t *s, int kind, const char *name)
{
    for (obj_t *o = s->objs; o; o = o->next)
        if (o->kind == kind && strcmp(o->name, name) == 0) return o;
    return NULL;
}

static obj_t *find_or_add(gw_ondemand_src_t *s, int kind, const char *name)
{
    obj_t *o = find(s, kind, name);
    if (o) return o;
    o = gw_calloc(1, sizeof(*o));
    o->src = s;
    o->kind = kind;
    o->name = gw_strdup(name);
    o->next = s->objs;
    s->objs = o;
    return o;
}

static void obj_free(obj_t *o)
{
    if (o->xfer) gw_ctl_cancel(o->xfer);
    json_decref(o->obj);
    free(o->name);
    free(o->error);
    free(o);
}

static bool fresh(const obj_t *o) { return o->fetched_ms && now_ms() - o->fetched_ms < o->src->retention[o->kind]; }

static void publish(gw_ondemand_src_t *s)
{
    size_t n[2] = {0, 0};
    for (obj_t *o = s->objs; o; o = o->next)
        if (o->obj) n[o->kind]++;
    json_t **v[2] = {gw_calloc(n[0] + 1, sizeof(json_t *)), gw_calloc(n[1] + 1, sizeof(json_t *))};
    size_t i[2] = {0, 0};
    for (obj_t *o = s->objs; o; o = o->next)
        if (o->obj) v[o->kind][i[o->kind]++] = o->obj;
    gw_snapshot_t *snap = gw_snapshot_build(v[0], n[0], v[1], n[1], s->ns);
    gw_snapshot_set_on_demand(snap);
    free(v[0]);
    free(v[1]);
    s->cb(snap, s->ud);
}

/* Names of the Secrets an Application refers to, appended to out (a JSON array of strings). */
static void referenced_secrets(const json_t *app, json_t *out)
{
    size_t i, j;
    json_t *svc, *ent;
    json_array_foreach(json_object_get(json_object_get(app, "spec"), "services"), i, svc)
    {
        json_array_foreach(json_object_get(svc, "entries"), j, ent)
        {
            const char *a = json_string_value(json_object_get(json_object_get(ent, "credentials"), "secretName"));
            const char *b = json_string_value(json_object_get(ent, "requestParametersSecretName"));
            if (a && *a) json_array_append_new(out, json_string(a));
            if (b && *b) json_array_append_new(out, json_string(b));
        }
    }
}

/* Tells the workers about every waited-for Application whose fetch and whose Secrets' fetches
 * are over; publishes first, so that they route on a snapshot holding it. */
static void settle(gw_ondemand_src_t *s)
{
    bool any = false;
    json_t *names = json_array();
    for (obj_t *o = s->objs; o; o = o->next) {
        if (o->kind != K_APP || !o->notify || o->xfer) continue;
        bool ready = true;
        json_array_clear(names);
        if (o->obj) referenced_secrets(o->obj, names);
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n)
        {
            obj_t *sec = find(s, K_SECRET, json_string_value(n));
            if (sec && sec->xfer) ready = false;
        }
        if (ready) {
            o->notify = false;
            o->tell = true;
            any = true;
        }
    }
    json_decref(names);
    if (!any) return;
    publish(s);
    uv_mutex_lock(&reg);
    for (obj_t **pp = &s->objs; *pp;) {
        obj_t *o = *pp;
        if (o->kind == K_APP && o->tell) {
            o->tell = false;
            for (size_t v = 0; v < nviews; v++) {
                msg_t *m = msg_new(o->name, strlen(o->name));
                m->status = o->status;
                m->error = o->error ? gw_strdup(o->error) : NULL;
                gw_mailbox_post(&views[v]->box, &m->mail);
            }
            o->status = 0;
            free(o->error);
            o->error = NULL;
            if (!o->obj && !o->xfer) { /* not found: nothing to keep */
                *pp = o->next;
                obj_free(o);
                continue;
            }
        }
        pp = &o->next;
    }
    uv_mutex_unlock(&reg);
}

static void on_fetched(void *ud, const gw_ctl_response_t *r)
{
    obj_t *o = ud;
    gw_ondemand_src_t *s = o->src;
    o->xfer = NULL;
    const char *what = o->kind == K_APP ? "Application" : "Secret";
    const char *old_rv = json_string_value(json_object_get(json_object_get(o->obj, "metadata"), "resourceVersion"));
    char *prev = old_rv ? gw_strdup(old_rv) : NULL;
    bool had = o->obj != NULL, changed = false;
    if (r->status == 200) {
        json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
        if (json_is_object(j)) {
            json_decref(o->obj);
            o->obj = j;
            o->fetched_ms = now_ms();
            const char *rv = json_string_value(json_object_get(json_object_get(j, "metadata"), "resourceVersion"));
            changed = !had || !prev || !rv || strcmp(prev, rv) != 0;
        } else {
            json_decref(j);
            gw_log(GW_LOG_WARN, "Kubernetes object unreadable", "kind", what, "name", o->name, NULL);
            gw_registry_stats.load_errors[GW_SOURCE_KUBE]++;
        }
    } else if (r->status == 404) {
        json_decref(o->obj);
        o->obj = NULL;
        o->fetched_ms = now_ms();
        changed = had;
    } else {
        char st[8], msg[256];
        snprintf(st, sizeof(st), "%d", r->status);
        const char *why = r->status ? gw_kube_status_message(r, msg, sizeof(msg)) : r->error;
        gw_log(GW_LOG_WARN, "Kubernetes GET failed", "kind", what, "name", o->name, "status", st, "reason",
               why ? why : "", NULL);
        if (o->kind == K_APP && o->notify && !o->obj) {
            free(o->error);
            o->error = gw_asprintf("failed to read Application %s: %s", o->name,
                                   r->status ? "the Kubernetes API refused the request" : "Kubernetes API unreachable");
            o->status = 500;
        }
    }
    free(prev);
    if (o->kind == K_APP && o->obj) {
        json_t *names = json_array();
        referenced_secrets(o->obj, names);
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n)
        {
            const char *sn = json_string_value(n);
            if (!valid_name(sn, strlen(sn))) continue;
            obj_t *sec = find_or_add(s, K_SECRET, sn);
            if (!sec->xfer && !fresh(sec)) fetch(sec);
        }
        json_decref(names);
    }
    if (changed && !o->notify) publish(s);
    settle(s);
}

static void fetch(obj_t *o)
{
    gw_ondemand_src_t *s = o->src;
    char *path = o->kind == K_APP
                     ? gw_asprintf("/apis/applicationconnector.kyma-project.io/v1alpha1/applications/%s", o->name)
                     : gw_asprintf("/api/v1/namespaces/%s/secrets/%s", s->ns, o->name);
    gw_kube_get_t g = {.done = on_fetched, .timeout_ms = REQUEST_TIMEOUT_MS};
    if (gw_kube_get(s->conn, path, &g, o, &o->xfer) != GW_OK) {
        o->xfer = NULL;
        if (o->kind == K_APP && o->notify) {
            o->status = 500;
            free(o->error);
            o->error = gw_strdup("failed to read Application: cannot start the request");
        }
    }
    free(path);
}

static void on_requests(uv_async_t *a)
{
    gw_ondemand_src_t *s = a->data;
    gw_mail_t *list = gw_mailbox_take(&s->box);
    for (gw_mail_t *m = list; m; m = m->next) {
        msg_t *q = (msg_t *)m;
        obj_t *o = find_or_add(s, K_APP, q->name);
        o->notify = true;
        if (o->xfer) continue;
        if (fresh(o)) continue; /* settled below: the worker's snapshot was older */
        fetch(o);
    }
    msg_free_list(list);
    settle(s);
}

/* Refetches what outlived its retention time (in the background: requests keep routing on the
 * cached copy). */
static void on_tick(uv_timer_t *t)
{
    gw_ondemand_src_t *s = t->data;
    for (obj_t *o = s->objs; o; o = o->next)
        if (!o->xfer && o->fetched_ms && !fresh(o)) fetch(o);
}

gw_ondemand_src_t *gw_ondemand_src_start(const gw_ondemand_src_opts_t *o)
{
    uv_once(&once, reg_init);
    gw_ondemand_src_t *s = gw_calloc(1, sizeof(*s));
    s->loop = o->loop;
    s->conn = o->conn;
    s->ns = gw_strdup(o->secrets_namespace);
    s->retention[K_APP] = o->app_retention_ms;
    s->retention[K_SECRET] = o->secret_retention_ms;
    s->cb = o->cb;
    s->ud = o->ud;
    gw_mailbox_init(&s->box, s->loop, on_requests, s);
    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    s->handles = 2;
    uint64_t r = GW_MIN(s->retention[0], s->retention[1]) / 4;
    r = GW_MAX(r, 250);
    r = GW_MIN(r, 30000);
    uv_timer_start(&s->tick, on_tick, r, r);
    uv_mutex_lock(&reg);
    src_box = &s->box;
    uv_mutex_unlock(&reg);
    publish(s); /* empty and on-demand: requests now park instead of answering 404 */
    return s;
}

static void on_src_closed(uv_handle_t *h)
{
    gw_ondemand_src_t *s = h->data;
    if (--s->handles) return;
    msg_free_list(gw_mailbox_take(&s->box));
    gw_mailbox_destroy(&s->box);
    while (s->objs) {
        obj_t *o = s->objs;
        s->objs = o->next;
        obj_free(o);
    }
    free(s->ns);
    free(s);
}

void gw_ondemand_src_stop(gw_ondemand_src_t *s)
{
    uv_mutex_lock(&reg);
    src_box = NULL;
    uv_mutex_unlock(&reg);
    for (obj_t *o = s->objs; o; o = o->next) {
        if (o->xfer) gw_ctl_cancel(o->xfer);
        o->xfer = NULL;
    }
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, on_src_closed);
    gw_mailbox_close(&s->box, on_src_closed);
}

/* ================= worker side ================= */

static wentry_t *wfind(gw_ondemand_t *od, const char *name, size_t n)
{
    for (wentry_t *e = od->entries; e; e = e->next)
        if (strlen(e->name) == n && memcmp(e->name, name, n) == 0) return e;
    return NULL;
}

static void wremove(gw_ondemand_t *od, wentry_t *e)
{
    wentry_t **pp = &od->entries;
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    free(e);
}

static void on_done(uv_async_t *a)
{
    gw_ondemand_t *od = a->data;
    gw_mail_t *list = gw_mailbox_take(&od->box);
    if (list && od->refresh) od->refresh(od->ud);
    for (gw_mail_t *m = list; m; m = m->next) {
        msg_t *d = (msg_t *)m;
        wentry_t *e = wfind(od, d->name, strlen(d->name));
        if (!e) continue;
        gw_ondemand_wait_t *w = e->waiters;
        wremove(od, e);
        while (w) {
            gw_ondemand_wait_t *next = w->next;
            w->next = w->prev = NULL;
            w->entry = NULL;
            w->cb(w, d->status, d->error);
            w = next;
        }
    }
    msg_free_list(list);
}

gw_ondemand_t *gw_ondemand_new(uv_loop_t *loop, void (*refresh)(void *ud), void *ud)
{
    uv_once(&once, reg_init);
    gw_ondemand_t *od = gw_calloc(1, sizeof(*od));
    od->refresh = refresh;
    od->ud = ud;
    gw_mailbox_init(&od->box, loop, on_done, od);
    uv_mutex_lock(&reg);
    if (nviews < MAX_VIEWS) views[nviews++] = od;
    uv_mutex_unlock(&reg);
    return od;
}

static void on_view_closed(uv_handle_t *h)
{
    gw_ondemand_t *od = h->data;
    msg_free_list(gw_mailbox_take(&od->box));
    gw_mailbox_destroy(&od->box);
    while (od->entries) {
        wentry_t *e = od->entries;
        od->entries = e->next;
        free(e);
    }
    free(od);
}

void gw_ondemand_free(gw_ondemand_t *od)
{
    if (!od) return;
    uv_mutex_lock(&reg);
    for (size_t i = 0; i < nviews; i++) {
        if (views[i] == od) {
            views[i] = views[--nviews];
            break;
        }
    }
    uv_mutex_unlock(&reg);
    gw_mailbox_close(&od->box, on_view_closed);
}

int gw_ondemand_wait(gw_ondemand_t *od, gw_str_t app, gw_ondemand_wait_t *w)
{
    if (!valid_name(app.p, app.n)) return GW_DECLINED;
    wentry_t *e = wfind(od, app.p, app.n);
    if (!e) {
        uv_mutex_lock(&reg);
        gw_mailbox_t *box = src_box;
        if (box) gw_mailbox_post(box, &msg_new(app.p, app.n)->mail);
        uv_mutex_unlock(&reg);
        if (!box) return GW_DECLINED;
        e = gw_calloc(1, sizeof(*e) + app.n + 1);
        memcpy(e->name, app.p, app.n);
        e->next = od->entries;
        od->entries = e;
    }
    w->entry = e;
    GW_DLIST_PUSH(e->waiters, w);
    return GW_AGAIN;
}

void gw_ondemand_cancel(gw_ondemand_wait_t *w)
{
    wentry_t *e = w->entry;
    if (!e) return;
    GW_DLIST_REMOVE(e->waiters, w);
    w->entry = NULL;
}
