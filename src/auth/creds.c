/* creds.c: a worker's copy of the fetched credentials. Requests read it without locks; a
 * missing or expired value parks the request and asks the broker, whose broadcast fills the
 * copy and wakes the parked requests. Runs on one worker loop only. */
#include "auth/creds.h"

#include <stdlib.h>
#include <string.h>

#include "auth/cred_queue.h"
#include "util/alloc.h"
#include "util/common.h"
#include "util/dlist.h"

#define BUCKETS 256

typedef struct entry_s {
    struct entry_s *next;
    uint8_t key[32];
    gw_cred_kind_t kind;
    char *value, *cookies;
    size_t value_len, cookies_len;
    uint64_t serial, expires_ms, refresh_ms;
    bool valid;      /* value may be used until expires_ms */
    bool requested;  /* a FETCH is outstanding: the broker will answer with VALUE or ERROR */
    bool hinted;     /* a REFRESH was sent for this value */
    gw_cred_wait_t *waiters;
} entry_t;

struct gw_creds_s {
    uv_loop_t *loop;
    gw_mailbox_t box;
    entry_t *buckets[BUCKETS];
};

extern uint64_t gw__cred_waits; /* broker.c's counter (relaxed atomics) */

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static size_t bucket(const uint8_t key[32]) { return ((size_t)key[0] | (size_t)key[1] << 8) % BUCKETS; }

static entry_t *find(gw_creds_t *c, const uint8_t key[32])
{
    for (entry_t *e = c->buckets[bucket(key)]; e; e = e->next)
        if (memcmp(e->key, key, 32) == 0) return e;
    return NULL;
}

static entry_t *find_or_add(gw_creds_t *c, const uint8_t key[32], gw_cred_kind_t kind)
{
    entry_t *e = find(c, key);
    if (e) return e;
    e = gw_calloc(1, sizeof(*e));
    memcpy(e->key, key, 32);
    e->kind = kind;
    size_t b = bucket(key);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    return e;
}

static void wipe(char **s, size_t *n)
{
    if (*s) {
        memset(*s, 0, *n);
        free(*s);
    }
    *s = NULL;
    *n = 0;
}

static void entry_free(entry_t *e)
{
    wipe(&e->value, &e->value_len);
    wipe(&e->cookies, &e->cookies_len);
    free(e);
}

static void entry_remove(gw_creds_t *c, entry_t *e)
{
    entry_t **pp = &c->buckets[bucket(e->key)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    entry_free(e);
}

static void park(entry_t *e, gw_cred_wait_t *w)
{
    w->entry = e;
    w->kind = e->kind;
    GW_DLIST_PUSH(e->waiters, w);
    __atomic_fetch_add(&gw__cred_waits, 1, __ATOMIC_RELAXED);
}

void gw_creds_cancel(gw_cred_wait_t *w)
{
    entry_t *e = w->entry;
    if (!e) return;
    GW_DLIST_REMOVE(e->waiters, w);
    w->entry = NULL;
}

/* Wakes the requests parked on e at this moment (those that park again wait for the next
 * message). */
static void wake_all(entry_t *e, int status, const char *error)
{
    gw_cred_wait_t *list = e->waiters;
    e->waiters = NULL;
    while (list) {
        gw_cred_wait_t *w = list;
        list = w->next;
        if (list) list->prev = NULL;
        w->next = w->prev = NULL;
        w->entry = NULL;
        w->cb(w, status, error);
    }
}

static gw_cq_msg_t *msg(gw_cq_op_t op, const entry_t *e, gw_snapshot_t *snap, const gw_api_t *api)
{
    gw_cq_msg_t *m = gw_calloc(1, sizeof(*m));
    m->op = op;
    m->kind = e->kind;
    memcpy(m->key, e->key, 32);
    m->serial = e->serial;
    m->snap = snap ? gw_snapshot_ref(snap) : NULL;
    m->api = api;
    return m;
}

static void request(gw_creds_t *c, entry_t *e, gw_snapshot_t *snap, const gw_api_t *api)
{
    if (e->requested) return;
    e->requested = true;
    gw_cq_msg_t *m = msg(GW_CQ_FETCH, e, snap, api);
    m->from = c;
    gw__cq_to_broker(m);
}

/* A usable value fills *s; in its refresh-ahead window the broker is told once. */
static bool use(entry_t *e, gw_snapshot_t *snap, const gw_api_t *api, uint64_t *now)
{
    if (!e->valid) return false;
    if (e->expires_ms || e->refresh_ms) {
        if (!*now) *now = now_ms();
        if (e->expires_ms && *now >= e->expires_ms) {
            e->valid = false;
            return false;
        }
        if (e->refresh_ms && *now >= e->refresh_ms && !e->hinted) {
            e->hinted = true;
            gw__cq_to_broker(msg(GW_CQ_REFRESH, e, snap, api));
        }
    }
    return true;
}

int gw_creds_get(gw_creds_t *c, gw_snapshot_t *snap, const gw_api_t *api, bool need_token, gw_cred_values_t *out,
                 gw_cred_wait_t *w)
{
    memset(out, 0, sizeof(*out));
    entry_t *missing = NULL;
    uint64_t now = 0;
    if (need_token) {
        entry_t *e = find_or_add(c, api->token_key, GW_CRED_KIND_TOKEN);
        if (use(e, snap, api, &now)) {
            out->authorization = (gw_str_t){e->value, e->value_len};
            out->token_serial = e->serial;
        } else {
            request(c, e, snap, api);
            missing = e;
        }
    }
    if (api->csrf_url && api->csrf_url[0]) {
        entry_t *e = find_or_add(c, api->csrf_key, GW_CRED_KIND_CSRF);
        if (use(e, snap, api, &now)) {
            out->csrf_token = (gw_str_t){e->value, e->value_len};
            out->cookies = (gw_str_t){e->cookies ? e->cookies : "", e->cookies_len};
            out->csrf_serial = e->serial;
        } else {
            request(c, e, snap, api);
            if (!missing) missing = e;
        }
    }
    if (!missing) return GW_OK;
    park(missing, w);
    return GW_AGAIN;
}

static void forget(gw_creds_t *c, const uint8_t key[32], uint64_t serial)
{
    entry_t *e = find(c, key);
    if (!e || !serial) return;
    if (e->serial == serial) e->valid = false;
    gw_cq_msg_t *m = msg(GW_CQ_INVALIDATE, e, NULL, NULL);
    m->serial = serial;
    gw__cq_to_broker(m);
}

void gw_creds_invalidate(gw_creds_t *c, const gw_api_t *api, bool need_token, const gw_cred_values_t *used)
{
    if (need_token) forget(c, api->token_key, used->token_serial);
    if (api->csrf_url && api->csrf_url[0]) forget(c, api->csrf_key, used->csrf_serial);
}

static void on_message(gw_creds_t *c, gw_cq_msg_t *m)
{
    entry_t *e = find(c, m->key);
    switch (m->op) {
    case GW_CQ_VALUE:
        if (!e) e = find_or_add(c, m->key, m->kind);
        wipe(&e->value, &e->value_len);
        wipe(&e->cookies, &e->cookies_len);
        e->value = m->value;
        e->value_len = strlen(m->value);
        m->value = NULL;
        if (m->cookies) {
            e->cookies = m->cookies;
            e->cookies_len = strlen(m->cookies);
            m->cookies = NULL;
        }
        e->serial = m->serial;
        e->expires_ms = m->expires_ms;
        e->refresh_ms = m->refresh_ms;
        e->valid = true;
        e->requested = false;
        e->hinted = false;
        wake_all(e, 0, NULL);
        break;
    case GW_CQ_ERROR:
        if (!e) break;
        e->requested = false;
        wake_all(e, m->status, m->value ? m->value : "credential fetch failed");
        break;
    case GW_CQ_EVICT:
        if (e && !e->waiters && !e->requested) entry_remove(c, e);
        break;
    default:
        break;
    }
}

static void on_wake(uv_async_t *a)
{
    gw_creds_t *c = a->data;
    gw_cq_msg_t *m = gw__cq_take(&c->box);
    while (m) {
        gw_cq_msg_t *next = (gw_cq_msg_t *)m->mail.next;
        on_message(c, m);
        gw__cq_free(m);
        m = next;
    }
}

gw_creds_t *gw_creds_new(uv_loop_t *loop)
{
    gw_creds_t *c = gw_calloc(1, sizeof(*c));
    c->loop = loop;
    gw_mailbox_init(&c->box, loop, on_wake, c);
    gw__cq_register(c, &c->box);
    return c;
}

static void on_closed(uv_handle_t *h)
{
    gw_creds_t *c = h->data;
    gw__cq_free_list(gw__cq_take(&c->box));
    gw_mailbox_destroy(&c->box);
    for (size_t i = 0; i < BUCKETS; i++) {
        while (c->buckets[i]) {
            entry_t *e = c->buckets[i];
            c->buckets[i] = e->next;
            entry_free(e);
        }
    }
    free(c);
}

void gw_creds_free(gw_creds_t *c)
{
    if (!c) return;
    gw__cq_unregister(c);
    gw_mailbox_close(&c->box, on_closed);
}
