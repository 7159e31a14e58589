/* broker.c: the process-wide OAuth and CSRF token caches on the control loop. Every fetch
 * happens here, at most one per key at a time (single flight), through core/ctlclient; results
 * are broadcast to the workers' views (creds.c). Tokens near the end of their lifetime are
 * renewed ahead on demand, failures are never cached, and a token endpoint's accepted client
 * authentication method is remembered. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/cookie.h"
#include "auth/cred_queue.h"
#include "auth/creds.h"
#include "auth/oauth_wire.h"
#include "core/ctlclient.h"
#include "registry/decode.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/log.h"

#define BUCKETS 256
#define MAX_TOKEN_RESPONSE (64 * 1024)
#define MAX_COOKIES (8 * 1024)
#define MAX_HEADERS 64

typedef struct bentry_s {
    struct bentry_s *next;
    uint8_t key[32];
    gw_cred_kind_t kind;
    char *value, *cookies;
    uint64_t serial, expires_ms, refresh_ms;
    bool valid;
    bool fetching;          /* a fetch (or, for CSRF, the wait for its token) is under way */
    bool used;              /* eviction sweep mark */
    gw_snapshot_t *snap;    /* reference holding api: what the next fetch is made from */
    const gw_api_t *api;
    struct bentry_s *csrf_waiters, *csrf_next; /* CSRF fetches waiting for this token */
    gw_token_auth_t method; /* client authentication of the token request under way */
    uint64_t fetch_start_ns;  /* when the fetch under way began (latency metric) */
} bentry_t;

typedef struct endpoint_s {
    struct endpoint_s *next;
    char *url;
    gw_token_auth_t method;  /* what this token endpoint accepted last */
} endpoint_t;

static struct {
    uv_loop_t *loop;
    const gw_flags_t *flags;
    gw_mailbox_t box;
    bentry_t *buckets[BUCKETS];
    endpoint_t *endpoints;
    uint64_t serial;
    size_t nentries;
    bool running;
} br;

static uint64_t st_ok[2], st_err[2], st_refresh;
static gw_histogram_t st_latency[2]; /* control loop only, as is the admin API that reads it */
uint64_t gw__cred_waits;

static void token_fetch(bentry_t *e);
static void csrf_fetch(bentry_t *e);
static void token_ready(bentry_t *t);

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }
static size_t bucket(const uint8_t key[32]) { return ((size_t)key[0] | (size_t)key[1] << 8) % BUCKETS; }

static void wipe_str(char **s)
{
    if (*s) {
        memset(*s, 0, strlen(*s));
        free(*s);
    }
    *s = NULL;
}

static bentry_t *find(const uint8_t key[32])
{
    for (bentry_t *e = br.buckets[bucket(key)]; e; e = e->next)
        if (memcmp(e->key, key, 32) == 0) return e;
    return NULL;
}

static bentry_t *find_or_add(const uint8_t key[32], gw_cred_kind_t kind)
{
    bentry_t *e = find(key);
    if (e) return e;
    e = gw_calloc(1, sizeof(*e));
    memcpy(e->key, key, 32);
    e->kind = kind;
    size_t b = bucket(key);
    e->next = br.buckets[b];
    br.buckets[b] = e;
    br.nentries++;
    return e;
}

/* e's next fetch is made from api (snap holds it; a new reference is taken). */
static void set_source(bentry_t *e, gw_snapshot_t *snap, const gw_api_t *api)
{
    if (e->snap == snap && e->api == api) return;
    gw_snapshot_t *old = e->snap;
    e->snap = gw_snapshot_ref(snap);
    e->api = api;
    if (old) gw_snapshot_unref(old);
}

static void entry_free(bentry_t *e)
{
    wipe_str(&e->value);
    wipe_str(&e->cookies);
    if (e->snap) gw_snapshot_unref(e->snap);
    free(e);
}

static bool usable(const bentry_t *e) { return e->valid && (!e->expires_ms || now_ms() < e->expires_ms); }

/* ---- answering the workers ---- */

static gw_cq_msg_t value_msg(const bentry_t *e)
{
    return (gw_cq_msg_t){.op = GW_CQ_VALUE, .kind = e->kind, .serial = e->serial, .expires_ms = e->expires_ms,
                         .refresh_ms = e->refresh_ms, .value = e->value, .cookies = e->cookies};
}

static void broadcast(gw_cq_msg_t m, const bentry_t *e)
{
    memcpy(m.key, e->key, 32);
    gw__cq_broadcast(&m);
}

static void succeed(bentry_t *e, char *value, char *cookies, long long expires_in)
{
    wipe_str(&e->value);
    wipe_str(&e->cookies);
    e->value = value;
    e->cookies = cookies;
    e->serial = ++br.serial;
    e->valid = true;
    e->fetching = false;
    e->expires_ms = e->refresh_ms = 0;
    if (expires_in > 2) {
        /* §6.2: usable until expires_in - 2 s; renewed ahead in the last tenth of that (at least
         * its last 2 s), never before half of it, so a short-lived token is not refetched on
         * every use. */
        uint64_t now = now_ms(), life = (uint64_t)(expires_in - 2) * 1000;
        e->expires_ms = now + life;
        uint64_t ahead = GW_MAX(life / 10, 2000);
        e->refresh_ms = GW_MAX(now + life / 2, e->expires_ms > ahead ? e->expires_ms - ahead : 0);
    }
    __atomic_fetch_add(&st_ok[e->kind], 1, __ATOMIC_RELAXED);
    gw_histogram_add(&st_latency[e->kind], uv_hrtime() - e->fetch_start_ns);
    broadcast(value_msg(e), e);
    if (e->kind == GW_CRED_KIND_TOKEN) token_ready(e);
}


static void fail(bentry_t *e, int status, const char *text)
{
    e->fetching = false;
    __atomic_fetch_add(&st_err[e->kind], 1, __ATOMIC_RELAXED);
    gw_histogram_add(&st_latency[e->kind], uv_hrtime() - e->fetch_start_ns);
    gw_cq_msg_t m = {.op = GW_CQ_ERROR, .kind = e->kind, .status = status, .value = (char *)text};
    broadcast(m, e);
    /* CSRF fetches that waited for this token fail with it. */
    bentry_t *w = e->csrf_waiters;
    e->csrf_waiters = NULL;
    while (w) {
        bentry_t *n = w->csrf_next;
        w->csrf_next = NULL;
        fail(w, status, text);
        w = n;
    }
}

static endpoint_t *endpoint(const char *url);

/* Every fetch starts here. A token fetch starts with the Secret's client-auth method, else the
 * one its endpoint accepted last, else the original's combined request (also when a CSRF
 * fetch is what needs the token). */
static void start_fetch(bentry_t *e)
{
    e->fetching = true;
    e->fetch_start_ns = uv_hrtime();
    if (e->kind == GW_CRED_KIND_TOKEN) {
        const gw_api_t *a = e->api;
        const endpoint_t *p = a->token_auth == GW_TOKEN_AUTH_AUTO ? endpoint(a->auth_url) : NULL;
        e->method = a->token_auth != GW_TOKEN_AUTH_AUTO ? a->token_auth : p ? p->method : GW_TOKEN_AUTH_AUTO;
        token_fetch(e);
    } else {
        csrf_fetch(e);
    }
}

/* ---- OAuth tokens (§6.2, §6.3) ---- */

static endpoint_t *endpoint(const char *url)
{
    for (endpoint_t *p = br.endpoints; p; p = p->next)
        if (strcmp(p->url, url) == 0) return p;
    return NULL;
}

static void remember_method(const char *url, gw_token_auth_t m)
{
    endpoint_t *p = endpoint(url);
    if (!p) {
        if (m == GW_TOKEN_AUTH_AUTO) return;
        p = gw_calloc(1, sizeof(*p));
        p->url = gw_strdup(url);
        p->next = br.endpoints;
        br.endpoints = p;
    }
    p->method = m;
}

static const char *method_name(gw_token_auth_t m)
{
    return m == GW_TOKEN_AUTH_BASIC ? "client_secret_basic" : m == GW_TOKEN_AUTH_POST ? "client_secret_post" : "both";
}

static int token_status(const gw_api_t *a) { return a->cred_type == GW_CRED_OAUTH_CERT ? 500 : 502; }

static void token_fail(bentry_t *e, const char *cause)
{
    const gw_api_t *a = e->api;
    gw_log(GW_LOG_WARN, "OAuth token request failed", "endpoint", a->auth_url, "application", a->app, "service",
           a->service_name, "reason", cause, NULL);
    char *text = gw_asprintf("failed to get token from %s: %s", a->auth_url, cause);
    fail(e, token_status(a), text);
    free(text);
}

static void on_token(void *ud, const gw_ctl_response_t *r);

/* Appends the Secret's token-request query parameters to the endpoint URL. */
static int token_url(gw_buf_t *u, const gw_api_t *a)
{
    int rc = gw_buf_puts(u, a->auth_url);
    char sep = strchr(a->auth_url, '?') ? '&' : '?';
    for (size_t i = 0; i < a->ntoken_query; i++) {
        rc |= gw_buf_append(u, &sep, 1);
        rc |= gw_url_query_escape(u, a->token_query[i].name);
        rc |= gw_buf_append(u, "=", 1);
        rc |= gw_url_query_escape(u, a->token_query[i].value);
        sep = '&';
    }
    rc |= gw_buf_append(u, "", 1);
    return rc;
}

static void token_fetch(bentry_t *e)
{
    const gw_api_t *a = e->api;
    bool cert = a->cred_type == GW_CRED_OAUTH_CERT;
    gw_token_auth_t m = e->method;
    bool with_basic = !cert && m != GW_TOKEN_AUTH_POST, with_post = !cert && m != GW_TOKEN_AUTH_BASIC;
    gw_buf_t url, body, basic;
    gw_buf_init(&url, 64 * 1024);
    gw_buf_init(&body, 64 * 1024);
    gw_buf_init(&basic, 16 * 1024);
    int rc = token_url(&url, a);
    rc |= gw_form_append(&body, "client_id", a->client_id ? a->client_id : "");
    if (with_post) rc |= gw_form_append(&body, "client_secret", a->client_secret ? a->client_secret : "");
    rc |= gw_form_append(&body, "grant_type", "client_credentials");
    char *hdrs[MAX_HEADERS + 3];
    size_t nh = 0;
    hdrs[nh++] = gw_strdup("Content-Type: application/x-www-form-urlencoded");
    hdrs[nh++] = gw_strdup("Accept: application/json");
    if (with_basic) {
        /* The original's combined request sends id:secret as they are; RFC 6749 §2.3.1's
         * client_secret_basic form-encodes both first. */
        gw_buf_t raw;
        gw_buf_init(&raw, 16 * 1024);
        if (m == GW_TOKEN_AUTH_BASIC) {
            rc |= gw_url_query_escape(&raw, a->client_id ? a->client_id : "");
            rc |= gw_buf_append(&raw, ":", 1);
            rc |= gw_url_query_escape(&raw, a->client_secret ? a->client_secret : "");
        } else {
            rc |= gw_buf_puts(&raw, a->client_id ? a->client_id : "");
            rc |= gw_buf_append(&raw, ":", 1);
            rc |= gw_buf_puts(&raw, a->client_secret ? a->client_secret : "");
        }
        char *enc = gw_malloc(4 * ((raw.len + 2) / 3) + 1);
        gw_manifest_b64encode(raw.base ? raw.base : "", raw.len, enc);
        rc |= gw_buf_puts(&basic, "Authorization: Basic ");
        rc |= gw_buf_puts(&basic, enc);
        rc |= gw_buf_append(&basic, "", 1);
        memset(enc, 0, strlen(enc));
        free(enc);
        if (raw.base) memset(raw.base, 0, raw.len);
        gw_buf_free(&raw);
        if (!rc) hdrs[nh++] = basic.base;
    }
    for (size_t i = 0; i < a->ntoken_headers && nh < GW_ARRAY_SIZE(hdrs); i++)
        hdrs[nh++] = gw_asprintf("%s: %s", a->token_headers[i].name, a->token_headers[i].value);
    if (rc) {
        token_fail(e, "token request too large");
    } else {
        gw_ctl_request_t rq = {.method = "POST",
                               .url = url.base,
                               .headers = (const char *const *)hdrs,
                               .nheaders = nh,
                               .body = body.base,
                               .body_len = body.len,
                               .crt_pem = cert ? a->crt_pem : NULL,
                               .key_pem = cert ? a->key_pem : NULL,
                               .verify = !a->skip_verify,
                               .timeout_ms = (long)br.flags->proxy_timeout * 1000,
                               .max_body = MAX_TOKEN_RESPONSE};
        if (gw_ctl_fetch(&rq, on_token, e, NULL) != GW_OK) token_fail(e, "cannot start the token request");
    }
    for (size_t i = 0; i < nh; i++) {
        if (hdrs[i] == basic.base) continue;
        free(hdrs[i]);
    }
    if (basic.base) memset(basic.base, 0, basic.len);
    if (body.base) memset(body.base, 0, body.len);
    gw_buf_free(&basic);
    gw_buf_free(&body);
    gw_buf_free(&url);
}

static void on_token(void *ud, const gw_ctl_response_t *r)
{
    bentry_t *e = ud;
    const gw_api_t *a = e->api;
    char cause[256];
    if (r->status == 200) {
        gw_token_response_t t;
        const char *why = NULL;
        if (gw_token_response_parse(r->body, r->body_len, &t, &why) == GW_OK) {
            if (a->cred_type == GW_CRED_OAUTH && a->token_auth == GW_TOKEN_AUTH_AUTO)
                remember_method(a->auth_url, e->method);
            char *v = gw_asprintf("Bearer %s", t.access_token);
            long long exp = t.expires_in;
            gw_token_response_clear(&t);
            succeed(e, v, NULL, exp);
            return;
        }
        snprintf(cause, sizeof(cause), "invalid token response: %s", why ? why : "unreadable");
        token_fail(e, cause);
        return;
    }
    char code[64] = "";
    bool oauth_err = r->status && gw_oauth_error_response(r->body, r->body_len, code, sizeof(code));
    if ((r->status == 400 || r->status == 401) && oauth_err && a->cred_type == GW_CRED_OAUTH &&
        a->token_auth == GW_TOKEN_AUTH_AUTO && e->method != GW_TOKEN_AUTH_POST) {
        /* RFC 6749 §2.3: one client authentication method only; try the next one at once. */
        gw_token_auth_t next = e->method == GW_TOKEN_AUTH_AUTO ? GW_TOKEN_AUTH_BASIC : GW_TOKEN_AUTH_POST;
        gw_log(GW_LOG_INFO, "token endpoint refused the client authentication, trying the next method", "endpoint",
               a->auth_url, "refused", method_name(e->method), "error", code, "next", method_name(next), NULL);
        e->method = next;
        token_fetch(e);
        return;
    }
    if (!r->status) snprintf(cause, sizeof(cause), "%s", r->error ? r->error : "request failed");
    else if (oauth_err) snprintf(cause, sizeof(cause), "token endpoint answered %d (%s)", r->status, code);
    else snprintf(cause, sizeof(cause), "token endpoint answered %d", r->status);
    token_fail(e, cause);
}

/* ---- CSRF tokens (§6.5) ---- */

static void on_csrf(void *ud, const gw_ctl_response_t *r);

static void csrf_fail_cause(bentry_t *c, const char *cause)
{
    const gw_api_t *a = c->api;
    gw_log(GW_LOG_WARN, "CSRF token request failed", "endpoint", a->csrf_url, "application", a->app, "service",
           a->service_name, "reason", cause, NULL);
    char *text = gw_asprintf("failed to get CSRF token from %s: %s", a->csrf_url, cause);
    fail(c, 502, text);
    free(text);
}

static void csrf_request(bentry_t *c, const char *authorization)
{
    const gw_api_t *a = c->api;
    char *hdrs[4];
    size_t nh = 0;
    hdrs[nh++] = gw_strdup("X-csrf-token: fetch");
    hdrs[nh++] = gw_strdup("Accept: */*");
    hdrs[nh++] = gw_strdup("cache-control: no-cache");
    if (authorization) hdrs[nh++] = gw_asprintf("Authorization: %s", authorization);
    bool cert = a->cred_type == GW_CRED_CERTGEN;
    gw_ctl_request_t rq = {.method = "GET",
                           .url = a->csrf_url,
                           .headers = (const char *const *)hdrs,
                           .nheaders = nh,
                           .crt_pem = cert ? a->crt_pem : NULL,
                           .key_pem = cert ? a->key_pem : NULL,
                           .verify = !a->skip_verify,
                           .timeout_ms = (long)br.flags->proxy_timeout * 1000,
                           .max_body = MAX_TOKEN_RESPONSE};
    if (gw_ctl_fetch(&rq, on_csrf, c, NULL) != GW_OK) csrf_fail_cause(c, "cannot start the request");
    for (size_t i = 0; i < nh; i++) wipe_str(&hdrs[i]);
}

/* The API's own authentication goes on the CSRF request: Basic, its OAuth token (fetched first
 * when needed), or its client certificate. */
static void csrf_fetch(bentry_t *c)
{
    const gw_api_t *a = c->api;
    if (!gw_api_needs_token(a)) {
        csrf_request(c, a->cred_type == GW_CRED_BASIC ? a->authorization : NULL);
        return;
    }
    bentry_t *t = find_or_add(a->token_key, GW_CRED_KIND_TOKEN);
    if (!t->api) set_source(t, c->snap, a);
    if (usable(t)) {
        csrf_request(c, t->value);
        return;
    }
    c->csrf_next = t->csrf_waiters;
    t->csrf_waiters = c;
    if (!t->fetching) {
        set_source(t, c->snap, a);
        start_fetch(t);
    }
}

/* A token arrived: the CSRF fetches waiting for it go on. */
static void token_ready(bentry_t *t)
{
    bentry_t *w = t->csrf_waiters;
    t->csrf_waiters = NULL;
    while (w) {
        bentry_t *n = w->csrf_next;
        w->csrf_next = NULL;
        csrf_request(w, t->value);
        w = n;
    }
}

static bool token_chars_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static void on_csrf(void *ud, const gw_ctl_response_t *r)
{
    bentry_t *c = ud;
    char cause[160];
    if (r->status != 200) {
        if (!r->status) snprintf(cause, sizeof(cause), "%s", r->error ? r->error : "request failed");
        else snprintf(cause, sizeof(cause), "endpoint answered %d", r->status);
        csrf_fail_cause(c, cause);
        return;
    }
    const char *tok = gw_ctl_header(r, "x-csrf-token");
    if (!tok || !token_chars_ok(tok)) {
        csrf_fail_cause(c, "response has no X-csrf-token header");
        return;
    }
    gw_buf_t ck;
    gw_buf_init(&ck, MAX_COOKIES);
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, "set-cookie") == 0)
            gw_cookie_add_set_cookie(&ck, gw_str(r->headers[i].value)); /* invalid or too many: skipped */
    gw_buf_append(&ck, "", 1);
    char *cookies = gw_buf_take(&ck, NULL);
    succeed(c, gw_strdup(tok), cookies ? cookies : gw_strdup(""), 0);
}

/* ---- the mailbox ---- */

static void on_fetch(gw_cq_msg_t *m)
{
    bentry_t *e = find_or_add(m->key, m->kind);
    if (m->snap) set_source(e, m->snap, m->api);
    if (!e->api) return;
    if (usable(e)) {
        gw_cq_msg_t v = value_msg(e);
        memcpy(v.key, e->key, 32);
        gw__cq_send_to(m->from, gw__cq_copy(&v));
        return;
    }
    if (!e->fetching) {
        start_fetch(e);
    }
}

static void on_message(gw_cq_msg_t *m)
{
    bentry_t *e;
    switch (m->op) {
    case GW_CQ_FETCH:
        on_fetch(m);
        break;
    case GW_CQ_REFRESH:
        e = find(m->key);
        if (!e || !e->valid || e->serial != m->serial || e->fetching) break;
        if (m->snap) set_source(e, m->snap, m->api);
        __atomic_fetch_add(&st_refresh, 1, __ATOMIC_RELAXED);
        start_fetch(e);
        break;
    case GW_CQ_INVALIDATE:
        e = find(m->key);
        if (e && e->valid && e->serial == m->serial) e->valid = false;
        break;
    default:
        break;
    }
}

static void on_box(uv_async_t *a)
{
    (void)a;
    gw_cq_msg_t *m = gw__cq_take(&br.box);
    while (m) {
        gw_cq_msg_t *n = (gw_cq_msg_t *)m->mail.next;
        if (br.running) on_message(m);
        gw__cq_free(m);
        m = n;
    }
}


/* ---- life cycle ---- */

int gw_broker_start(uv_loop_t *loop, const gw_flags_t *flags)
{
    int rc = gw_ctl_init(loop);
    if (rc) return rc;
    br.loop = loop;
    br.flags = flags;
    gw_mailbox_init(&br.box, loop, on_box, NULL);
    br.running = true;
    gw__cq_set_broker_box(&br.box);
    return GW_OK;
}

static void remove_entry(bentry_t **pp)
{
    bentry_t *e = *pp;
    *pp = e->next;
    br.nentries--;
    gw_cq_msg_t m = {.op = GW_CQ_EVICT, .kind = e->kind};
    broadcast(m, e);
    entry_free(e);
}

void gw_broker_snapshot_changed(gw_snapshot_t *snap)
{
    if (!br.running) return;
    for (size_t i = 0; i < BUCKETS; i++)
        for (bentry_t *e = br.buckets[i]; e; e = e->next) e->used = false;
    size_t n = gw_snapshot_api_count(snap);
    for (size_t i = 0; i < n; i++) {
        const gw_api_t *a = gw_snapshot_api(snap, i);
        if (a->error) continue;
        bentry_t *e;
        if (gw_api_needs_token(a) && (e = find(a->token_key)) != NULL) {
            e->used = true;
            if (!e->fetching) set_source(e, snap, a);
        }
        if (a->csrf_url && a->csrf_url[0] && (e = find(a->csrf_key)) != NULL) {
            e->used = true;
            if (!e->fetching) set_source(e, snap, a);
        }
    }
    /* Keys no API uses any more (rotated Secrets, deleted APIs) are forgotten everywhere. */
    for (size_t i = 0; i < BUCKETS; i++) {
        bentry_t **pp = &br.buckets[i];
        while (*pp) {
            bentry_t *e = *pp;
            if (!e->used && !e->fetching && !e->csrf_waiters) remove_entry(pp);
            else pp = &e->next;
        }
    }
}

static void on_box_closed(uv_handle_t *h)
{
    (void)h;
    gw__cq_free_list(gw__cq_take(&br.box));
    gw_mailbox_destroy(&br.box);
}

void gw_broker_stop(void)
{
    if (!br.running) return;
    br.running = false;
    gw__cq_set_broker_box(NULL);
    gw_ctl_shutdown(); /* fetches under way are dropped: their callbacks never run */
    for (size_t i = 0; i < BUCKETS; i++) {
        while (br.buckets[i]) {
            bentry_t *e = br.buckets[i];
            br.buckets[i] = e->next;
            entry_free(e);
        }
    }
    br.nentries = 0;
    while (br.endpoints) {
        endpoint_t *p = br.endpoints;
        br.endpoints = p->next;
        free(p->url);
        free(p);
    }
    gw_mailbox_close(&br.box, on_box_closed);
}

void gw_cred_stats(gw_cred_stats_t *o)
{
    for (int k = 0; k < 2; k++) {
        o->fetch_ok[k] = __atomic_load_n(&st_ok[k], __ATOMIC_RELAXED);
        o->fetch_err[k] = __atomic_load_n(&st_err[k], __ATOMIC_RELAXED);
    }
    o->refreshes = __atomic_load_n(&st_refresh, __ATOMIC_RELAXED);
    memcpy(o->latency, st_latency, sizeof(st_latency));
    o->waits = __atomic_load_n(&gw__cred_waits, __ATOMIC_RELAXED);
    o->cached = br.nentries;
}
