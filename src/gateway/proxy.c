/* proxy.c: one request's trip through the gateway: route, credentials, build the upstream
 * head, run the exchange through http/client.c (body streamed up with backpressure), rewrite
 * the response and stream it back; resend after a stale pooled connection or a 401/403.
 * Every exit path ends the upstream exchange exactly once and unpins the snapshot. */
#include "gateway/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/cookie.h"
#include "auth/creds.h"
#include "core/series.h"
#include "core/worker.h"
#include "gateway/reqid.h"
#include "gateway/rewrite.h"
#include "registry/ondemand.h"
#include "http/client.h"
#include "http/egress.h"
#include "http/splice.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define UP_HEAD_MAX (GW_HTTP_MAX_HEAD + 16 * 1024)
#define RESP_HEAD_OUT_MAX (GW_HTTP_MAX_HEAD + 8 * 1024)
#define MAX_STALE_RETRIES 2
/* Response body bytes still to come from which splice(2) moves the rest (below, the copies
 * through user space cost less than setting up the pump). */
#define SPLICE_MIN_LEFT (64 * 1024)

typedef struct body_piece_s {
    struct body_piece_s *next;
    gw_block_t *b;
    size_t off, len;
} body_piece_t;

/* A FIFO of body pieces, each holding a block reference. Zeroed memory is an empty list. */
typedef struct {
    body_piece_t *head, *tail;
    size_t bytes;
} piece_list_t;

/* Where a request is, and what holds in each phase:
 * PX_ROUTE     its Application is being fetched on demand (get-only Kubernetes role): app_wait
 *              is parked, api is NULL; the timer bounds the wait by proxyTimeout (500).
 * PX_CREDS     waiting for a fetched credential (OAuth or CSRF token): cred_wait is parked in
 *              the worker's credential view, cl is NULL, up_head is empty; the timer bounds the
 *              wait by proxyTimeout. Body bytes that arrive are queued.
 * PX_UPSTREAM  up_head is built with the credentials; cl is the exchange: connecting, sending
 *              (connected: it takes body bytes), waiting for the response head; the timer runs
 *              as documented in docs/architecture.md. Body bytes sent are kept in `sent` while a
 *              resend is still possible (replayable).
 * PX_STREAM    the response head went to the client (held_head may wait for the first body
 *              bytes); the body streams; no resend of any kind is possible any more.
 * PX_TUNNEL    the upstream switched protocols (101) for the caller's Upgrade: the client
 *              connection is a raw tunnel (gw_request_tunnel), bytes are relayed both ways with
 *              the same backpressure, the timer bounds idleness by --tunnelIdleTimeout; the
 *              client's half-close is passed on (gw_client_shutdown), the upstream's close ends
 *              both. The upstream connection is never pooled.
 * A 401/403 in PX_UPSTREAM may send the request back to PX_CREDS once (§6.8). */
typedef enum { PX_ROUTE, PX_CREDS, PX_UPSTREAM, PX_STREAM, PX_TUNNEL } px_phase_t;

typedef struct {
    gw_request_t *req;           /* NULL once the client side is finished or gone */
    px_phase_t phase;
    gw_worker_t *worker;
    gw_pin_t *pin;               /* the snapshot, pinned for the life of the request */
    const gw_api_t *api;
    gw_client_t *cl;             /* the upstream exchange under way, or NULL */
    uv_timer_t timer;            /* proxyTimeout until the response head */
    gw_buf_t up_head;            /* upstream request head */
    size_t path_off, path_len;   /* upstream path+query inside up_head (Location rewriting) */
    gw_str_t prefix;             /* "/{APP}/{SERVICE}[/{ENTRY}]", inside the request's head */
    piece_list_t queue;          /* body bytes waiting for the upstream connection */
    bool connected;              /* cl takes body bytes (connected, no write failed) */
    bool body_all_received;      /* client body fully received from the client */
    bool body_started;           /* body bytes were handed to an upstream connection */
    bool up_reused;              /* the current upstream connection came from the pool */
    bool up_count_pending;       /* this attempt waits for a connection: counted once known */
    bool replayable;             /* every body byte sent so far is kept in `sent` */
    piece_list_t sent;           /* body bytes sent, kept for a resend (at most retryBodyLimit) */
    bool resp_head_seen;         /* a final response head arrived on this attempt */
    gw_cred_wait_t cred_wait;    /* PX_CREDS: parked until a credential arrives */
    gw_ondemand_wait_t app_wait; /* PX_ROUTE: parked until the Application was fetched */
    gw_cred_values_t creds;      /* serials of the fetched credentials in up_head (slices unset) */
    bool need_token;             /* an OAuth token is needed (the caller sent no Access-Token) */
    bool auth_retried;           /* the one resend after 401/403 (§6.8) happened */
    const gw_header_t *access_token; /* the caller's Access-Token header, or NULL */
    gw_str_t target_path, query; /* TARGET_PATH and the caller's query, inside the request head */
    bool client_close;           /* close the client connection after this response */
    bool dechunk;                /* HTTP/1.0 client, chunked upstream: strip framing */
    bool is_head;
    bool up_paused;
    uint64_t last_up_ms;         /* PX_STREAM: loop time of the last response bytes */
    uint64_t last_client_ms;     /* PX_TUNNEL: loop time of the last bytes from the client */
    gw_str_t upgrade;            /* the caller's Upgrade value (it asked for a protocol switch) */
    int retries;
    int status;                  /* status sent to the client */
    bool accounted;              /* counted for /metrics and access-logged (once, at the end) */
    uint64_t up_start_ns;        /* first upstream connect began (uv_hrtime) */
    uint64_t up_ns;              /* connect + wait for the response head */
    uint64_t bytes_out;          /* response body bytes sent to the client */
    int up_status;               /* the upstream's status (before 5xx became 502), 0: none */
    gw_splice_t *splice;         /* PX_STREAM: the rest of the body moves by splice(2) */
    bool splice_wait;            /* upstream paused until the client's queue is empty, then splice */
    uint64_t splice_base;        /* bytes_out when the splice began */
    gw_buf_t held_head;          /* response head not yet queued to the client (base NULL: none) */
    gw_body_kind_t resp_kind;
} proxy_t;

static void proxy_connect(proxy_t *px);
static void count_upstream(proxy_t *px, bool reused);
static void proxy_start(proxy_t *px);
static void start_proxy_timer(proxy_t *px);
static void on_creds(gw_cred_wait_t *w, int status, const char *error);
static void on_app_fetched(gw_ondemand_wait_t *w, int status, const char *error);
static void tunnel_inactivity(proxy_t *px);
static int switch_protocols(proxy_t *px, const gw_resp_head_t *h);

/* ---------- lifetime ---------- */

static void px_destroy(void *obj)
{
    proxy_t *px = obj;
    gw_buf_free(&px->up_head);
    free(px);
}

static void on_timer_closed(uv_handle_t *h)
{
    proxy_t *px = h->data;
    gw_buf_free(&px->held_head);
    if (px->pin) gw_pin_put(px->pin);
    /* Kept for the next request with its head buffer's memory (no malloc per request). */
    if (px->up_head.cap > 4096) gw_buf_free(&px->up_head); /* a rare big head is not hoarded */
    gw_buf_reset(&px->up_head);
    if (!gw_freelist_push(&px->worker->request_states, px)) px_destroy(px);
}

/* Appends b[off..off+len) to the list, taking a block reference. */
static void pieces_push(piece_list_t *l, gw_block_t *b, size_t off, size_t len)
{
    body_piece_t *p = gw_malloc(sizeof(*p));
    p->b = gw_block_ref(b);
    p->off = off;
    p->len = len;
    p->next = NULL;
    if (l->tail) l->tail->next = p;
    else l->head = p;
    l->tail = p;
    l->bytes += len;
}

/* Detaches the first piece (the caller unrefs its block and frees it); NULL when empty. */
static body_piece_t *pieces_pop(piece_list_t *l)
{
    body_piece_t *p = l->head;
    if (!p) return NULL;
    l->head = p->next;
    if (!l->head) l->tail = NULL;
    l->bytes -= p->len;
    return p;
}

/* Moves all of `front` before the pieces of l; front ends empty. */
static void pieces_prepend(piece_list_t *l, piece_list_t *front)
{
    if (!front->head) return;
    front->tail->next = l->head;
    if (!l->head) l->tail = front->tail;
    l->head = front->head;
    l->bytes += front->bytes;
    *front = (piece_list_t){0};
}

static void pieces_free(piece_list_t *l)
{
    body_piece_t *p;
    while ((p = pieces_pop(l)) != NULL) {
        gw_block_unref(p->b);
        free(p);
    }
}

static void drop_sent(proxy_t *px)
{
    pieces_free(&px->sent);
    px->replayable = false;
}

static void drop_queue(proxy_t *px)
{
    pieces_free(&px->queue);
    drop_sent(px);
}

/* Ends the upstream exchange under way, if any (its connection is closed). */
static void release_up(proxy_t *px)
{
    if (px->up_count_pending) count_upstream(px, false); /* an attempt that never connected */
    if (!px->cl) return;
    gw_client_abort(px->cl);
    px->cl = NULL;
}

/* Ends the proxy's part; the request (if any) has already been finished or aborted. */
static void proxy_free(proxy_t *px)
{
    gw_splice_stop(px->splice);
    px->splice = NULL;
    px->splice_wait = false;
    gw_creds_cancel(&px->cred_wait);
    gw_ondemand_cancel(&px->app_wait);
    release_up(px);
    drop_queue(px);
    if (px->req) px->req->data = NULL;
    px->req = NULL;
    uv_timer_stop(&px->timer);
    uv_close((uv_handle_t *)&px->timer, on_timer_closed);
}

/* Counts a request where it ends (once), before its last bytes are queued to the client: a
 * client that has the whole answer finds it counted. api NULL: it matched no API. */
static void account_req(gw_worker_t *w, gw_request_t *req, const gw_api_t *api, proxy_t *px, int status,
                        gw_outcome_t outcome)
{
    if (px) {
        if (px->accounted) return;
        px->accounted = true;
    }
    gw_reqstats_t *st = api && api->series ? gw_series_req(api->series, w->id) : &w->counters.unmatched;
    uint64_t total = uv_hrtime() - req->start_ns, up = px ? px->up_ns : 0, out = px ? px->bytes_out : 0;
    gw_reqstats_record(st, status, outcome, total, up, req->body_bytes, out);
    if (!gw_accesslog_on(&w->access)) return;
    gw_str_t path = req->head.target;
    const char *q = memchr(path.p, '?', path.n);
    if (q) path.n = (size_t)(q - path.p);
    gw_access_t e = {.method = req->head.method,
                     .path = path,
                     .app = api ? api->app : NULL,
                     .service = api ? api->service_name : NULL,
                     .status = status,
                     .upstream_status = px ? px->up_status : 0,
                     .bytes_in = req->body_bytes,
                     .bytes_out = out,
                     .total_ns = total,
                     .upstream_ns = up,
                     .request_id = {req->request_id, req->request_id_len},
                     .client = req->peer_ip};
    gw_accesslog_write(&w->access, &e);
}

/* The request ID for log lines about px's request (NULL once the client is gone). */
static const char *rid(const proxy_t *px) { return px->req ? px->req->request_id : NULL; }

/* Appends the request's "X-Request-Id: ...\r\n" (upstream head, response heads). */
static int put_request_id(gw_buf_t *o, const gw_request_t *req)
{
    int rc = gw_buf_append(o, "X-Request-Id: ", 14);
    rc |= gw_buf_append(o, req->request_id, req->request_id_len);
    return rc | gw_buf_append(o, "\r\n", 2);
}

/* The request's ID (X-Request-Id): the caller's if it is plain and short, else a new one. */
static void set_request_id(gw_worker_t *w, gw_request_t *req)
{
    const gw_header_t *h = gw_http_find_header(req->head.headers, req->head.nheaders, "x-request-id");
    if (h && gw_reqid_valid(h->value.p, h->value.n)) {
        memcpy(req->request_id, h->value.p, h->value.n);
        req->request_id_len = (uint8_t)h->value.n;
    } else {
        if (!w->reqid_prefix) w->reqid_prefix = gw_reqid_prefix() | 1; /* never 0 again */
        gw_reqid_generate(req->request_id, w->reqid_prefix, (unsigned)w->id, ++w->reqid_seq);
        req->request_id_len = GW_REQID_GEN_LEN;
    }
    req->request_id[req->request_id_len] = '\0';
}

static void account(proxy_t *px, int status, gw_outcome_t outcome)
{
    if (px->req) account_req(px->worker, px->req, px->api, px, status, outcome);
}

/* Counts an upstream failure for the API's host. */
static void count_up_error(proxy_t *px, bool connecting)
{
    GW_COUNT(&px->worker->counters, upstream_errors, 1);
    if (!px->api->host_series) return;
    gw_upstats_t *u = gw_series_up(px->api->host_series, px->worker->id);
    if (connecting) GW_ADD(u->connect_errors, 1);
    else GW_ADD(u->errors, 1);
}

/* Answers with a gateway error before any response byte went out, then cleans up. */
static void fail_request(proxy_t *px, int status, gw_outcome_t outcome, const char *text)
{
    gw_request_t *req = px->req;
    release_up(px);
    if (req) {
        account(px, status, outcome);
        req->data = NULL;
        px->req = NULL;
        if (text) {
            gw_request_respond_error(req, status, text);
        } else {
            gw_request_respond(req, status, NULL, NULL, 0);
        }
    }
    proxy_free(px);
}

/* Response fully forwarded (or the upstream closed an EOF-delimited body). */
static void complete(proxy_t *px)
{
    gw_request_t *req = px->req;
    release_up(px); /* normally gone already: the client pooled or closed its connection */
    if (req) {
        account(px, px->status, GW_OUTCOME_PROXIED);
        req->data = NULL;
        px->req = NULL;
        gw_request_finish(req, !px->client_close);
    }
    proxy_free(px);
}

/* The upstream broke (or went silent: outcome timeout) after the response head went out: the
 * client cannot get a valid message any more, so its connection is closed. */
static void abort_both(proxy_t *px, gw_outcome_t outcome)
{
    gw_request_t *req = px->req;
    release_up(px);
    if (req) {
        account(px, px->status, outcome);
        req->data = NULL;
        px->req = NULL;
        gw_request_abort(req);
    }
    proxy_free(px);
}

/* ---------- building the upstream request ---------- */

/* Hop-by-hop headers of one message (§5.3): the fixed ones plus every name its Connection
 * headers list, however many. Used for the request and the response alike. The values of up
 * to 16 Connection headers are collected once; a message with more is searched in full. */
typedef struct {
    gw_str_t vals[16];
    size_t n;
    const gw_header_t *all; /* more Connection headers than vals holds: search these */
    size_t nall;
} conn_hops_t;

static void conn_hops_init(conn_hops_t *c, const gw_header_t *h, size_t nh)
{
    c->n = 0;
    c->all = NULL;
    c->nall = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!GW_STR_IEQ_LIT(h[i].name, "connection")) continue;
        if (c->n == GW_ARRAY_SIZE(c->vals)) {
            c->all = h;
            c->nall = nh;
            return;
        }
        c->vals[c->n++] = h[i].value;
    }
}

static bool is_hop(const conn_hops_t *c, gw_str_t name)
{
    if (gw_is_hop_by_hop(name)) return true;
    if (!c->all) return gw_connection_lists(c->vals, c->n, name);
    for (size_t i = 0; i < c->nall; i++)
        if (GW_STR_IEQ_LIT(c->all[i].name, "connection") && gw_connection_lists(&c->all[i].value, 1, name))
            return true;
    return false;
}

static bool caller_has_header(const gw_req_head_t *h, const char *name)
{
    return gw_http_find_header(h->headers, h->nheaders, name) != NULL;
}

/* The caller's Upgrade value when it asks for a protocol switch (Connection lists "upgrade",
 * an Upgrade header is there, and there is no request body), else empty. */
static gw_str_t upgrade_asked(const gw_request_t *req)
{
    const gw_req_head_t *h = &req->head;
    if (req->body_kind != GW_BODY_NONE) return (gw_str_t){0};
    const gw_header_t *up = gw_http_find_header(h->headers, h->nheaders, "upgrade");
    if (!up || !up->value.n) return (gw_str_t){0};
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!GW_STR_IEQ_LIT(h->headers[i].name, "connection")) continue;
        gw_str_t rest = h->headers[i].value, e;
        while (gw_str_next_token(&rest, &e))
            if (GW_STR_IEQ_LIT(e, "upgrade")) return up->value;
    }
    return (gw_str_t){0};
}

static bool has_csrf(const gw_api_t *api) { return api->csrf_url && api->csrf_url[0]; }

/* The request head for the upstream (GW_EPATH_ESCAPES when TARGET_PATH would climb above the
 * targetUrl path): the caller's (minus hop-by-hop and replaced headers), the forwarding
 * headers, then the credentials: Access-Token, Basic or the OAuth token as
 * Authorization, the CSRF token with its cookies merged into the caller's (§6.5). */
static int build_upstream_head(proxy_t *px, gw_request_t *req)
{
    const gw_api_t *api = px->api;
    const gw_header_t *access_token = px->access_token;
    gw_str_t target_path = px->target_path, query = px->query;
    const gw_cred_values_t *cv = &px->creds;
    bool csrf = cv->csrf_token.n > 0;
    const gw_req_head_t *h = &req->head;
    gw_buf_t *o = &px->up_head;
    conn_hops_t hops;
    conn_hops_init(&hops, h->headers, h->nheaders);

    int rc = gw_buf_append(o, h->method.p, h->method.n);
    rc |= gw_buf_append(o, " ", 1);
    bool via_proxy = api->target.proxy && !api->target.https; /* egress proxy, plain http */
    if (via_proxy) { /* absolute-form request line for the forward proxy (https tunnels instead) */
        rc |= gw_buf_puts(o, "http://");
        rc |= gw_buf_puts(o, api->target.host_header);
    }
    size_t path_start = o->len;
    int prc = gw_append_upstream_path(o, api->target.path, target_path, api->encode_url);
    if (prc == GW_EPATH_ESCAPES) return prc;
    rc |= prc;
    size_t qmark = o->len;
    rc |= gw_buf_append(o, "?", 1);
    size_t qstart = o->len;
    rc |= gw_append_upstream_query(o, api->target.query, query, api->query, api->nquery);
    if (rc) return GW_ENOMEM;
    if (o->len == qstart) o->len = qmark; /* no query at all */
    px->path_off = path_start;
    px->path_len = o->len - path_start;
    rc |= gw_buf_puts(o, " HTTP/1.1\r\nHost: ");
    rc |= gw_buf_puts(o, api->target.host_header);
    rc |= gw_buf_puts(o, "\r\n");
    if (via_proxy && api->target.proxy->authorization) {
        rc |= gw_buf_puts(o, "Proxy-Authorization: ");
        rc |= gw_buf_puts(o, api->target.proxy->authorization);
        rc |= gw_buf_puts(o, "\r\n");
    }

    bool replace_auth = access_token != NULL || api->cred_type == GW_CRED_BASIC || cv->authorization.n;
    bool has_xff = false;
    gw_str_t *cookies = csrf ? gw_malloc((h->nheaders + 1) * sizeof(*cookies)) : NULL;
    size_t ncookies = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        gw_str_t n = h->headers[i].name, v = h->headers[i].value;
        if (is_hop(&hops, n)) {
            if (GW_STR_IEQ_LIT(n, "te") && GW_STR_IEQ_LIT(v, "trailers")) {
                rc |= gw_buf_puts(o, "TE: trailers\r\n");
            }
            continue;
        }
        if (GW_STR_IEQ_LIT(n, "host") || GW_STR_IEQ_LIT(n, "content-length") || GW_STR_IEQ_LIT(n, "expect") ||
            GW_STR_IEQ_LIT(n, "access-token") || GW_STR_IEQ_LIT(n, "x-request-id"))
            continue;
        if (replace_auth && GW_STR_IEQ_LIT(n, "authorization")) continue;
        if (csrf && GW_STR_IEQ_LIT(n, "x-csrf-token")) continue;
        if (csrf && GW_STR_IEQ_LIT(n, "cookie")) {
            cookies[ncookies++] = v;
            continue;
        }
        if (GW_STR_IEQ_LIT(n, "x-forwarded-for")) {
            has_xff = true; /* joined below */
            continue;
        }
        rc |= gw_buf_append(o, n.p, n.n);
        rc |= gw_buf_append(o, ": ", 2);
        rc |= gw_buf_append(o, v.p, v.n);
        rc |= gw_buf_append(o, "\r\n", 2);
    }
    if (px->upgrade.n) { /* the two hop-by-hop headers an upgrade needs on the next hop */
        rc |= gw_buf_puts(o, "Connection: Upgrade\r\nUpgrade: ");
        rc |= gw_buf_append(o, px->upgrade.p, px->upgrade.n);
        rc |= gw_buf_puts(o, "\r\n");
    }
    /* X-Forwarded-For: the caller's values (all its headers, in order), then the caller. */
    rc |= gw_buf_puts(o, "X-Forwarded-For: ");
    for (size_t i = 0; has_xff && i < h->nheaders; i++)
        if (GW_STR_IEQ_LIT(h->headers[i].name, "x-forwarded-for") && !is_hop(&hops, h->headers[i].name)) {
            rc |= gw_buf_append(o, h->headers[i].value.p, h->headers[i].value.n);
            rc |= gw_buf_append(o, ", ", 2);
        }
    rc |= gw_buf_puts(o, req->peer_ip);
    rc |= gw_buf_append(o, "\r\n", 2);
    rc |= put_request_id(o, req);
    if (access_token) {
        rc |= gw_buf_puts(o, "Authorization: ");
        rc |= gw_buf_append(o, access_token->value.p, access_token->value.n);
        rc |= gw_buf_puts(o, "\r\n");
    } else if (api->cred_type == GW_CRED_BASIC && api->authorization) {
        rc |= gw_buf_puts(o, "Authorization: ");
        rc |= gw_buf_puts(o, api->authorization);
        rc |= gw_buf_puts(o, "\r\n");
    } else if (cv->authorization.n) {
        rc |= gw_buf_puts(o, "Authorization: ");
        rc |= gw_buf_append(o, cv->authorization.p, cv->authorization.n);
        rc |= gw_buf_puts(o, "\r\n");
    }
    if (csrf) {
        rc |= gw_buf_puts(o, "X-csrf-token: ");
        rc |= gw_buf_append(o, cv->csrf_token.p, cv->csrf_token.n);
        rc |= gw_buf_puts(o, "\r\n");
        gw_buf_t ck;
        gw_buf_init(&ck, GW_HTTP_MAX_HEAD);
        rc |= gw_cookie_merge(&ck, cookies, ncookies, cv->cookies);
        if (ck.len) {
            rc |= gw_buf_puts(o, "Cookie: ");
            rc |= gw_buf_append(o, ck.base, ck.len);
            rc |= gw_buf_puts(o, "\r\n");
        }
        gw_buf_free(&ck);
    }
    free(cookies);
    for (size_t i = 0; i < api->nheaders; i++) {
        if (caller_has_header(h, api->headers[i].name)) continue;
        rc |= gw_buf_appendf(o, "%s: %s\r\n", api->headers[i].name, api->headers[i].value);
    }
    if (req->body_kind == GW_BODY_LENGTH)
        rc |= gw_buf_appendf(o, "Content-Length: %llu\r\n", (unsigned long long)req->content_length);
    else if (req->body_kind == GW_BODY_CHUNKED)
        rc |= gw_buf_puts(o, "Transfer-Encoding: chunked\r\n");
    rc |= gw_buf_puts(o, "\r\n");
    return rc ? GW_ENOMEM : GW_OK;
}

/* ---------- routing ---------- */

static proxy_t *proxy_new(gw_request_t *req, gw_worker_t *w)
{
    gw_freelist_t *cache = &w->request_states;
    cache->max = GW_FREELIST_MAX;
    cache->dtor = px_destroy;
    proxy_t *px = gw_freelist_pop(cache);
    if (px) {
        gw_buf_t keep = px->up_head;
        memset(px, 0, sizeof(*px));
        px->up_head = keep;
    } else {
        px = gw_calloc(1, sizeof(*px));
        gw_buf_init(&px->up_head, UP_HEAD_MAX);
    }
    px->req = req;
    px->worker = w;
    px->pin = gw_pin_get(w->pin);
    px->cred_wait.cb = on_creds;
    px->app_wait.cb = on_app_fetched;
    px->is_head = gw_str_eq(req->head.method, "HEAD", 4);
    uv_timer_init(&w->loop, &px->timer);
    px->timer.data = px;
    req->data = px;
    return px;
}

/* A gateway error before routing finished; px (may be NULL) is freed. api: the API it
 * matched, if any. */
static void reject(gw_request_t *req, proxy_t *px, const gw_api_t *api, int status, const char *text)
{
    if (px) {
        if (!px->api) px->api = api;
        fail_request(px, status, GW_OUTCOME_GATEWAY_ERROR, text);
        return;
    }
    account_req(gw_worker_of(req->server), req, api, NULL, status, GW_OUTCOME_GATEWAY_ERROR);
    gw_request_respond_error(req, status, text);
}

/* Routes req on the worker's current snapshot. px is NULL the first time; it is the request's
 * proxy state when it comes back from waiting for an on-demand fetch (then it routes once
 * more, and a miss is a 404). */
static void route(gw_request_t *req, proxy_t *px)
{
    gw_worker_t *w = gw_worker_of(req->server);
    gw_str_t path, query, seg[3], rest;
    bool has_query;
    int nseg = req->listener->mode;
    if (gw_split_target(req->head.target, &path, &query, &has_query) != GW_OK ||
        gw_split_gateway_path(path, nseg, seg, &rest) != GW_OK) {
        reject(req, px, NULL, 400, "failed to extract API Identifier from path");
        return;
    }
    if (px && px->pin != w->pin) { /* route on what the fetch brought */
        gw_pin_put(px->pin);
        px->pin = gw_pin_get(w->pin);
    }
    gw_route_t route;
    gw_snapshot_lookup(w->pin->snap, seg[0], seg[1], nseg == 3 ? &seg[2] : NULL, &route);
    if (route.kind == GW_ROUTE_NOT_FOUND && !px && gw_snapshot_on_demand(w->pin->snap)) {
        px = proxy_new(req, w);
        px->phase = PX_ROUTE;
        if (gw_ondemand_wait(w->ondemand, seg[0], &px->app_wait) == GW_AGAIN) {
            start_proxy_timer(px);
            return;
        }
    }
    if (route.kind != GW_ROUTE_FOUND) {
        char *msg;
        if (route.kind == GW_ROUTE_AMBIGUOUS)
            msg = gw_strdup(route.error);
        else if (nseg == 3)
            msg = gw_asprintf("service with name %.*s and entry name %.*s not found", (int)seg[1].n, seg[1].p,
                              (int)seg[2].n, seg[2].p);
        else
            msg = gw_asprintf("service with name %.*s not found", (int)seg[1].n, seg[1].p);
        reject(req, px, NULL, route.kind == GW_ROUTE_AMBIGUOUS ? 400 : 404, msg);
        free(msg);
        return;
    }
    const gw_api_t *api = route.api;
    if (api->error) {
        reject(req, px, api, 500, api->error);
        return;
    }
    if (!px) px = proxy_new(req, w);
    uv_timer_stop(&px->timer);
    const gw_header_t *access_token = gw_http_find_header(req->head.headers, req->head.nheaders, "access-token");
    px->api = api;
    px->access_token = access_token;
    px->need_token = !access_token && gw_api_needs_token(api);
    px->target_path = rest;
    px->query = query;
    px->upgrade = upgrade_asked(req);
    size_t plen = (size_t)(seg[nseg - 1].p + seg[nseg - 1].n - path.p);
    const char *pstart = path.p;
    while (plen && *pstart == '/') {
        pstart++;
        plen--;
    }
    px->prefix = (gw_str_t){pstart - 1, plen + 1}; /* keeps one leading '/' */
    if (req->body_done) px->body_all_received = true;
    if (req->expect_continue && !req->body_done) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        gw_request_write_copy(req, cont, sizeof(cont) - 1);
        req->responded = false; /* interim response only */
    }
    proxy_start(px);
}

static void on_request(gw_request_t *req)
{
    set_request_id(gw_worker_of(req->server), req);
    route(req, NULL);
}

static void on_app_fetched(gw_ondemand_wait_t *wt, int status, const char *error)
{
    proxy_t *px = GW_CONTAINER_OF(wt, proxy_t, app_wait);
    if (status) {
        fail_request(px, status, GW_OUTCOME_GATEWAY_ERROR, error);
        return;
    }
    route(px->req, px);
}

/* Credentials (fetched ones may make the request wait), then the upstream head, then the
 * connection. Entered from on_request and again for the resend after a 401/403. */
static void proxy_start(proxy_t *px)
{
    if (px->need_token || has_csrf(px->api)) {
        px->phase = PX_CREDS;
        if (!uv_is_active((uv_handle_t *)&px->timer)) start_proxy_timer(px);
        if (gw_creds_get(px->worker->creds, px->pin->snap, px->api, px->need_token, &px->creds, &px->cred_wait) ==
            GW_AGAIN)
            return;
        GW_COUNT(&px->worker->counters, cred_hits, 1);
        uv_timer_stop(&px->timer);
    }
    px->phase = PX_UPSTREAM;
    gw_buf_reset(&px->up_head);
    int rc = build_upstream_head(px, px->req);
    /* The slices are only valid now; the serials stay for a later invalidation. */
    px->creds.authorization = px->creds.csrf_token = px->creds.cookies = (gw_str_t){0};
    if (rc == GW_EPATH_ESCAPES) { /* SPEC §5.1 [better]: never another API's path on the same host */
        fail_request(px, 400, GW_OUTCOME_GATEWAY_ERROR, "path escapes the target API");
        return;
    }
    if (rc != GW_OK) {
        fail_request(px, 431, GW_OUTCOME_GATEWAY_ERROR, "request header fields too large");
        return;
    }
    proxy_connect(px);
}

static void on_creds(gw_cred_wait_t *w, int status, const char *error)
{
    proxy_t *px = GW_CONTAINER_OF(w, proxy_t, cred_wait);
    if (status) {
        gw_log(GW_LOG_WARN, "credentials for the request could not be fetched", "application", px->api->app,
               "service", px->api->service_name, "error", error, "request_id", rid(px), NULL);
        fail_request(px, status, GW_OUTCOME_GATEWAY_ERROR, error);
        return;
    }
    proxy_start(px);
}

/* ---------- upstream side ---------- */

static void cl_on_connect(void *ud);
static int cl_on_head(void *ud, const gw_resp_head_t *h, gw_body_kind_t kind, uint64_t content_length);
static void cl_on_body(void *ud, gw_block_t *b, size_t off, size_t len, bool done);
static void cl_on_error(void *ud, gw_client_err_t err, int status, const char *reason);
static void cl_on_drain(void *ud);

static const gw_client_cb_t cl_cb = {cl_on_connect, cl_on_head, cl_on_body, cl_on_error, cl_on_drain};

static void on_proxy_timeout(uv_timer_t *t);

/* PX_STREAM: the upstream must keep sending the body; proxyTimeout of silence (not counting
 * time we stopped reading because the client is slow) ends both connections. The timer is
 * armed once and re-armed lazily, not on every read. */
static void body_inactivity(proxy_t *px)
{
    uint64_t limit = (uint64_t)px->worker->flags->proxy_timeout * 1000, now = uv_now(&px->worker->loop);
    if (px->up_paused || gw_splice_waiting_dest(px->splice)) px->last_up_ms = now;
    uint64_t idle = now - px->last_up_ms;
    if (idle < limit) {
        uv_timer_start(&px->timer, on_proxy_timeout, limit - idle, 0);
        return;
    }
    gw_log(GW_LOG_WARN, "upstream stopped sending the response body", "upstream", px->api->target.host_header,
           "request_id", rid(px), NULL);
    count_up_error(px, false);
    abort_both(px, GW_OUTCOME_TIMEOUT);
}

static void on_proxy_timeout(uv_timer_t *t)
{
    proxy_t *px = t->data;
    if (px->phase == PX_STREAM) {
        body_inactivity(px);
        return;
    }
    if (px->phase == PX_TUNNEL) {
        tunnel_inactivity(px);
        return;
    }
    if (px->phase == PX_ROUTE) {
        gw_ondemand_cancel(&px->app_wait);
        gw_log(GW_LOG_WARN, "timed out waiting for the Application from the Kubernetes API", "request_id", rid(px), NULL);
        fail_request(px, 500, GW_OUTCOME_TIMEOUT, "failed to read Application: timed out");
        return;
    }
    if (px->phase == PX_CREDS) {
        gw_creds_cancel(&px->cred_wait);
        bool token = px->cred_wait.kind == GW_CRED_KIND_TOKEN;
        gw_log(GW_LOG_WARN, token ? "timed out waiting for the OAuth token" : "timed out waiting for the CSRF token",
               "application", px->api->app, "service", px->api->service_name, "request_id", rid(px), NULL);
        fail_request(px, token && px->api->cred_type == GW_CRED_OAUTH_CERT ? 500 : 502, GW_OUTCOME_TIMEOUT,
                     token ? "failed to get token: timed out" : "failed to get CSRF token: timed out");
        return;
    }
    gw_log(GW_LOG_WARN, "upstream timed out", "upstream", px->api->target.host_header, "request_id", rid(px), NULL);
    count_up_error(px, !px->connected && !px->up_reused);
    fail_request(px, 504, GW_OUTCOME_TIMEOUT, "timeout while waiting for the target API");
}

/* (Re)starts the proxyTimeout clock: no response head within it means 504. */
static void start_proxy_timer(proxy_t *px)
{
    uv_timer_start(&px->timer, on_proxy_timeout, (uint64_t)px->worker->flags->proxy_timeout * 1000, 0);
}

/* The upstream refused a write. It may still answer (servers answer 401/413 before reading an
 * upload, then close), so keep reading: its response or its close decides. Body bytes that
 * arrive meanwhile wait in the queue (for a resend after the close, if there is one). */
static void up_write_failed(proxy_t *px)
{
    px->connected = false;
    if (px->phase != PX_STREAM && !uv_is_active((uv_handle_t *)&px->timer)) start_proxy_timer(px);
}

/* Body bytes kept for a resend: at most --retryBodyLimit (one replay buffer serves the resend
 * after a stale pooled connection and the one after a 401/403). */
static size_t replay_limit(const proxy_t *px) { return (size_t)px->worker->flags->retry_body_limit; }

/* A 401/403 can still be answered by fetching fresh credentials and resending (§6.8 [better]:
 * only when a fetched token is involved). */
static bool auth_retry_possible(const proxy_t *px)
{
    return !px->auth_retried && (px->need_token || has_csrf(px->api));
}

/* RFC 9110 §9.2.2: methods whose repetition has the effect of one request. */
static bool idempotent_method(gw_str_t m)
{
    return gw_str_eq(m, "GET", 3) || gw_str_eq(m, "HEAD", 4) || gw_str_eq(m, "PUT", 3) ||
           gw_str_eq(m, "DELETE", 6) || gw_str_eq(m, "OPTIONS", 7) || gw_str_eq(m, "TRACE", 5);
}

/* A pooled connection closed before any response byte: may the request go again on a fresh
 * one? Only if the upstream cannot have acted on it, or acting twice is harmless: nothing was
 * written yet (a request with a body holds its head back until the first body bytes), or the
 * method is idempotent and every body byte sent is kept. A POST the upstream read and then
 * dropped unanswered (e.g. it refused the request and closed) is not sent again (issue 7). */
static bool stale_resend_safe(const proxy_t *px)
{
    const gw_request_t *req = px->req;
    if (req->body_kind != GW_BODY_NONE && !px->body_started) return true;
    return idempotent_method(req->head.method) && (!px->body_started || px->replayable);
}

static void send_body_piece(proxy_t *px, gw_block_t *b, size_t off, size_t len)
{
    px->body_started = true;
    if (gw_client_send(px->cl, b, off, len) < 0) {
        /* Keep the piece for a resend on another connection, if that is still possible; a
         * piece that does not fit ends that possibility (a resend must never skip bytes). */
        if (px->replayable && px->sent.bytes + len <= replay_limit(px)) pieces_push(&px->sent, b, off, len);
        else drop_sent(px);
        up_write_failed(px);
        return;
    }
    if (px->replayable) {
        if (!px->resp_head_seen && px->sent.bytes + len <= replay_limit(px)) pieces_push(&px->sent, b, off, len);
        else drop_sent(px);
    }
    gw_request_t *req = px->req;
    if (req && !req->body_done && gw_client_write_queue(px->cl) >= GW_UP_HIGH_WATER) gw_request_pause_body(req);
}

/* The whole body was handed over: the exchange may pool its connection afterwards. */
static void send_request_done(proxy_t *px)
{
    if (gw_client_request_done(px->cl) < 0) up_write_failed(px);
}

/* Counts the attempt's upstream connection once: reused (from the pool, or a stream on an
 * HTTP/2 session another request made) or a connect. */
static void count_upstream(proxy_t *px, bool reused)
{
    gw_worker_t *w = px->worker;
    px->up_count_pending = false;
    gw_upstats_t *u = px->api->host_series ? gw_series_up(px->api->host_series, w->id) : NULL;
    if (reused) {
        GW_COUNT(&w->counters, upstream_reused, 1);
        if (u) GW_ADD(u->reused, 1);
    } else {
        GW_COUNT(&w->counters, upstream_connects, 1);
        if (u) GW_ADD(u->connects, 1);
    }
}

/* Whether every body byte sent on this attempt is to be kept for a resend. */
static void set_replayable(proxy_t *px)
{
    gw_request_t *req = px->req;
    bool fits = req->body_kind != GW_BODY_LENGTH || req->content_length <= replay_limit(px);
    px->replayable = !px->body_started && fits && (px->up_reused || auth_retry_possible(px));
}

static void proxy_connect(proxy_t *px)
{
    gw_worker_t *w = px->worker;
    gw_request_t *req = px->req;
    px->connected = false;
    px->resp_head_seen = false;
    if (!px->up_start_ns) px->up_start_ns = uv_hrtime();
    if (!uv_is_active((uv_handle_t *)&px->timer)) start_proxy_timer(px);
    int rc = gw_client_start(w->pool, &px->api->target, px->api->skip_verify, px->api->tls_ctx, px->up_head.base,
                             px->up_head.len, req->body_kind != GW_BODY_NONE, px->is_head, &cl_cb, px, &px->cl);
    px->up_reused = rc == GW_OK;
    if (px->upgrade.n) gw_client_allow_upgrade(px->cl);
    set_replayable(px);
    if (rc == GW_OK) {
        count_upstream(px, true);
        cl_on_connect(px);
    } else {
        px->up_count_pending = true;
    }
}

static void cl_on_connect(void *ud)
{
    proxy_t *px = ud;
    px->connected = true;
    if (px->up_count_pending) {
        /* it waited for a connection another request was making, and got a stream on it */
        px->up_reused = gw_client_joined(px->cl);
        count_upstream(px, px->up_reused);
        if (px->up_reused) set_replayable(px);
    }
    /* While the client is still uploading, its own inactivity timeout (requestTimeout) is the
     * bound; proxyTimeout counts again from the moment the whole request has been sent. */
    if (!px->body_all_received) uv_timer_stop(&px->timer);
    if (gw_client_write_failed(px->cl)) { /* the head alone (no body) was refused */
        up_write_failed(px);
        return;
    }
    /* Queued body bytes: the first piece leaves with the head in one writev. */
    while (px->queue.head && px->connected) {
        body_piece_t *p = pieces_pop(&px->queue);
        send_body_piece(px, p->b, p->off, p->len);
        gw_block_unref(p->b);
        free(p);
    }
    if (px->connected && px->body_all_received) send_request_done(px);
    if (px->req && !px->req->body_done && px->connected && gw_client_write_queue(px->cl) < GW_UP_HIGH_WATER)
        gw_request_resume_body(px->req);
}

static void cl_on_drain(void *ud)
{
    proxy_t *px = ud;
    if (px->req && !px->req->body_done) gw_request_resume_body(px->req);
}

/* Writes the client's response head from the upstream's. Returns 0 or GW_ENOMEM. */
static int send_response_head(proxy_t *px, const gw_resp_head_t *h)
{
    gw_request_t *req = px->req;
    gw_buf_t o;
    gw_buf_init(&o, RESP_HEAD_OUT_MAX);
    gw_buf_reserve(&o, 1024);
    int code = h->status;
    int rc = 0;
    px->status = code >= 500 ? 502 : code;
    const char *reason = gw_http_reason(px->status);
    char line[16] = "HTTP/1.1 000 ";
    line[9] = (char)('0' + px->status / 100 % 10);
    line[10] = (char)('0' + px->status / 10 % 10);
    line[11] = (char)('0' + px->status % 10);
    rc |= gw_buf_append(&o, line, 13);
    if (strcmp(reason, "Unknown") == 0 && px->status == code)
        rc |= gw_buf_append(&o, h->reason.p, h->reason.n);
    else
        rc |= gw_buf_puts(&o, reason);
    rc |= gw_buf_append(&o, "\r\n", 2);
    conn_hops_t hops;
    conn_hops_init(&hops, h->headers, h->nheaders);
    bool rewrite_loc = (code >= 300 && code < 400) || code == 201;
    bool cl_sent = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        gw_str_t n = h->headers[i].name, v = h->headers[i].value;
        if (is_hop(&hops, n) || GW_STR_IEQ_LIT(n, "x-request-id")) continue;
        if (GW_STR_IEQ_LIT(n, "content-length")) {
            /* Framing checked them all equal: one header, one value ("5, 5" or two headers
             * reach the client as "5"). Dropped where the body is chunked or close-delimited. */
            if (cl_sent || (px->resp_kind != GW_BODY_LENGTH && !px->is_head && px->resp_kind != GW_BODY_NONE))
                continue;
            gw_str_t rest = v, first;
            if (gw_str_next_token(&rest, &first)) v = first;
            cl_sent = true;
        }
        if (rewrite_loc && GW_STR_IEQ_LIT(n, "location")) {
            size_t mark = o.len;
            rc |= gw_buf_puts(&o, "Location: ");
            char *url = gw_asprintf("%s://%s%.*s", px->api->target.https ? "https" : "http",
                                    px->api->target.host_header, (int)px->path_len, px->up_head.base + px->path_off);
            int r = gw_rewrite_location(&o, v, gw_str(url), &px->api->target, px->prefix);
            free(url);
            if (r == 1) {
                rc |= gw_buf_puts(&o, "\r\n");
                continue;
            }
            o.len = mark;
            if (r < 0) rc |= r;
        }
        rc |= gw_buf_append(&o, n.p, n.n);
        rc |= gw_buf_append(&o, ": ", 2);
        rc |= gw_buf_append(&o, v.p, v.n);
        rc |= gw_buf_append(&o, "\r\n", 2);
    }
    if (code >= 500) rc |= gw_buf_appendf(&o, "Target-System-Status: %d\r\n", code);
    rc |= put_request_id(&o, req);
    bool http10 = req->head.minor_version == 0;
    if (px->resp_kind == GW_BODY_CHUNKED) {
        if (http10) {
            px->dechunk = true;
            px->client_close = true;
        } else {
            rc |= gw_buf_puts(&o, "Transfer-Encoding: chunked\r\n");
        }
    } else if (px->resp_kind == GW_BODY_EOF) {
        px->client_close = true;
    }
    /* The upstream answers before the upload is over: this connection cannot carry another
     * request (the rest of the body is discarded while it closes), so say so. */
    if (!req->keep_alive || px->worker->server.draining || !px->body_all_received) px->client_close = true;
    if (px->client_close) rc |= gw_buf_puts(&o, "Connection: close\r\n");
    else if (http10) rc |= gw_buf_puts(&o, "Connection: keep-alive\r\n");
    rc |= gw_buf_puts(&o, "\r\n");
    if (rc) {
        gw_buf_free(&o);
        return GW_ENOMEM;
    }
    /* Held back so that it leaves with the first body bytes in one writev. */
    px->held_head = o;
    px->phase = PX_STREAM;
    return GW_OK;
}

/* Sends response bytes to the client, preceded by the held-back head if there is one. */
static void client_write(proxy_t *px, gw_block_t *b, size_t off, size_t len)
{
    if (!px->req) return;
    if (px->held_head.base) {
        gw_buf_t *o = &px->held_head;
        /* A short body joins the head in the room left in its buffer: the block it was read
         * into is not held until the write goes out, so the next read reuses it (and 1,000
         * responses in flight do not pin 1,000 blocks). */
        bool joined = len && len <= o->cap - o->len;
        if (joined) {
            memcpy(o->base + o->len, b->data + off, len);
            o->len += len;
        }
        size_t hlen;
        char *h = gw_buf_take(o, &hlen);
        gw_request_write_head_and_block(px->req, h, hlen, b, off, joined ? 0 : len);
        return;
    }
    if (len) gw_request_write_block(px->req, b, off, len);
}

/* §6.8: the upstream refused the fetched credentials. Forget them, fetch fresh ones and send
 * the request once more, with the body kept so far first. The refused answer is not read:
 * its connection is closed. */
static void auth_retry(proxy_t *px, int status)
{
    px->auth_retried = true;
    gw_log(GW_LOG_INFO, status == 401 ? "upstream answered 401, resending with fresh credentials"
                                      : "upstream answered 403, resending with fresh credentials",
           "application", px->api->app, "service", px->api->service_name, "request_id", rid(px), NULL);
    release_up(px); /* inside the exchange's own callback: it ends when that returns */
    gw_creds_invalidate(px->worker->creds, px->api, px->need_token, &px->creds);
    pieces_prepend(&px->queue, &px->sent);
    px->replayable = false;
    px->body_started = false;
    px->connected = false;
    px->retries = 0;
    uv_timer_stop(&px->timer);
    proxy_start(px);
}

static int cl_on_head(void *ud, const gw_resp_head_t *h, gw_body_kind_t kind, uint64_t content_length)
{
    (void)content_length;
    proxy_t *px = ud;
    px->resp_head_seen = true;
    px->up_ns = uv_hrtime() - px->up_start_ns;
    px->up_status = h->status;
    if (h->status == 101) return switch_protocols(px, h);
    if ((h->status == 401 || h->status == 403) && px->req && auth_retry_possible(px) &&
        (!px->body_started || px->replayable)) {
        auth_retry(px, h->status);
        return GW_DECLINED;
    }
    drop_sent(px);
    px->resp_kind = kind;
    if (!px->req || send_response_head(px, h) != GW_OK) {
        fail_request(px, 502, GW_OUTCOME_GATEWAY_ERROR, NULL);
        return GW_DECLINED;
    }
    if (px->dechunk) gw_client_decode_chunked(px->cl);
    px->last_up_ms = uv_now(&px->worker->loop);
    /* The running proxyTimeout clock now bounds silence in the body (re-armed lazily). */
    if (!uv_is_active((uv_handle_t *)&px->timer)) start_proxy_timer(px);
    return GW_OK;
}

/* ---------- splice(2) for the rest of a large body ---------- */

/* Set once the kernel refused splice on sockets: nobody tries again. */
static int splice_refused;

static void splice_moved(void *ud, size_t in, size_t out)
{
    proxy_t *px = ud;
    if (in) px->last_up_ms = uv_now(&px->worker->loop);
    if (out) {
        px->bytes_out += out;
        GW_COUNT(&px->worker->counters, spliced_bytes, out);
    }
}

/* Counted before the last bytes reach the client, as cl_on_body does. */
static void splice_source_done(void *ud)
{
    proxy_t *px = ud;
    uint64_t moved = px->bytes_out;
    px->bytes_out = px->splice_base + gw_splice_count(px->splice);
    account(px, px->status, GW_OUTCOME_PROXIED);
    px->bytes_out = moved;
}

static void splice_end(void *ud, gw_splice_end_t how, int status)
{
    proxy_t *px = ud;
    px->splice = NULL;
    switch (how) {
    case GW_SPLICE_DONE: {
        gw_client_t *cl = px->cl;
        px->cl = NULL;
        gw_client_splice_done(cl); /* pooled when the upstream allows it */
        complete(px);
        return;
    }
    case GW_SPLICE_UNSUPPORTED:
        if (!__atomic_exchange_n(&splice_refused, 1, __ATOMIC_RELAXED))
            gw_log(GW_LOG_INFO, "splice(2) refused on sockets, bodies are copied", "reason", uv_strerror(status), NULL);
        gw_client_resume(px->cl);
        return;
    case GW_SPLICE_ESOURCE: /* the upstream broke off: as GW_CLIENT_EBODY after the head */
        count_up_error(px, false);
        abort_both(px, GW_OUTCOME_UPSTREAM_ERROR);
        return;
    case GW_SPLICE_EDEST: /* the client went away */
        abort_both(px, GW_OUTCOME_CLIENT_GONE);
        return;
    }
}

static const gw_splice_cb_t splice_cb = {splice_moved, splice_source_done, splice_end};

/* The client has every byte queued before: the rest of the body (left bytes on the upstream
 * socket ufd, from gw_client_splice_begin, or ufd < 0) moves by splice(2), or, when that cannot
 * start, reading resumes as usual. */
static void splice_go(proxy_t *px, int ufd, uint64_t left)
{
    int cfd = gw_request_fd(px->req);
    px->up_paused = false;
    if (ufd >= 0 && cfd >= 0) {
        px->splice_base = px->bytes_out;
        px->splice = gw_splice_start(&px->worker->loop, ufd, cfd, left, &splice_cb, px);
    }
    if (!px->splice) gw_client_resume(px->cl);
}

/* After body bytes went to the client: the rest of a large Content-Length body of a plain
 * HTTP/1.1 upstream (gw_client_splice_begin decides) moves by splice(2) once the client's
 * queue is empty. True when that is under way (the upstream is paused meanwhile). */
static bool splice_try(proxy_t *px)
{
    if (__atomic_load_n(&splice_refused, __ATOMIC_RELAXED) || !px->req || !px->cl || px->splice ||
        px->splice_wait || px->held_head.base || px->dechunk || px->is_head || px->resp_kind != GW_BODY_LENGTH ||
        !px->body_all_received || px->phase != PX_STREAM)
        return false;
    uint64_t left;
    int ufd = gw_client_splice_begin(px->cl, SPLICE_MIN_LEFT, &left);
    if (ufd < 0) return false;
    if (gw_request_flush(px->req) > 0) {
        px->splice_wait = true;
        px->up_paused = true; /* waiting for the client: not the upstream's silence */
        gw_request_notify_empty(px->req);
        return true;
    }
    splice_go(px, ufd, left);
    return true;
}

static void cl_on_body(void *ud, gw_block_t *b, size_t off, size_t len, bool done)
{
    proxy_t *px = ud;
    px->last_up_ms = uv_now(&px->worker->loop);
    px->bytes_out += len;
    if (done) account(px, px->status, GW_OUTCOME_PROXIED);
    if (len) client_write(px, b, off, len);
    if (px->held_head.base) client_write(px, NULL, 0, 0);
    if (done) {
        px->cl = NULL; /* the exchange pooled or closed its connection */
        complete(px);
        return;
    }
    if (splice_try(px)) return;
    if (px->req && gw_request_write_queue(px->req) >= GW_CONN_HIGH_WATER && px->cl) {
        px->up_paused = true;
        gw_client_pause(px->cl);
    }
}

static void cl_on_error(void *ud, gw_client_err_t err, int status, const char *reason)
{
    proxy_t *px = ud;
    px->cl = NULL; /* the exchange is over */
    if (px->up_count_pending) count_upstream(px, false); /* an attempt that never connected */
    gw_request_t *req = px->req;
    const char *what = "upstream connection lost";
    switch (err) {
    case GW_CLIENT_EBODY:
        if (px->held_head.base) { /* nothing reached the client yet: it still gets a clean 502 */
            gw_buf_free(&px->held_head);
            count_up_error(px, false);
            gw_log(GW_LOG_WARN, "malformed upstream response body", "upstream", px->api->target.host_header,
                   "reason", reason, "request_id", rid(px), NULL);
            fail_request(px, 502, GW_OUTCOME_UPSTREAM_ERROR, "invalid response from the target API");
            return;
        }
        /* After the response head went out the client cannot get a valid message any more. */
        count_up_error(px, false);
        abort_both(px, GW_OUTCOME_UPSTREAM_ERROR);
        return;
    case GW_CLIENT_ECLOSED:
        /* A pooled connection the server had closed (it answered nothing): send the request
         * again on another connection when every body byte sent so far can be sent again. */
        if (req && px->up_reused && px->retries < MAX_STALE_RETRIES && stale_resend_safe(px)) {
            px->retries++;
            /* The resend goes on a fresh connection: pooled siblings of a dead one (an upstream
             * that reloaded closes them all) would fail it the same way. */
            gw_upstream_flush_idle(px->worker->pool, &px->api->target, px->api->skip_verify, px->api->tls_ctx);
            /* The kept pieces go first, before anything still queued from the client. */
            pieces_prepend(&px->queue, &px->sent);
            px->body_started = false;
            proxy_connect(px);
            return;
        }
        break;
    case GW_CLIENT_ECONNECT:
        what = "upstream connection failed";
        break;
    case GW_CLIENT_EMALFORMED:
        what = "malformed upstream response";
        break;
    case GW_CLIENT_ELOST:
        break;
    }
    count_up_error(px, err == GW_CLIENT_ECONNECT);
    gw_log(GW_LOG_WARN, what, "upstream", px->api->target.host_header, "reason",
           reason ? reason : status ? uv_strerror(status) : "closed before a response", "request_id", rid(px), NULL);
    fail_request(px, 502, GW_OUTCOME_UPSTREAM_ERROR, NULL);
}

/* ---------- protocol upgrades (WebSocket and the like) ---------- */

/* The tunnel must stay quiet for --tunnelIdleTimeout (both directions) before it is closed;
 * the timer is re-armed lazily, not on every read. */
static void tunnel_inactivity(proxy_t *px)
{
    uint64_t limit = (uint64_t)px->worker->flags->tunnel_idle_timeout * 1000, now = uv_now(&px->worker->loop);
    uint64_t last = GW_MAX(px->last_up_ms, px->last_client_ms);
    if (px->up_paused) last = now; /* we stopped reading: not the peers' fault */
    if (now - last < limit) {
        uv_timer_start(&px->timer, on_proxy_timeout, limit - (now - last), 0);
        return;
    }
    gw_log(GW_LOG_INFO, "tunnel idle, closing it", "upstream", px->api->target.host_header, "request_id", rid(px),
           NULL);
    abort_both(px, GW_OUTCOME_TIMEOUT);
}

static void tunnel_from_client(proxy_t *px, gw_block_t *b, size_t off, size_t len, bool last)
{
    px->last_client_ms = uv_now(&px->worker->loop);
    if (!px->cl) return;
    if (len) send_body_piece(px, b, off, len);
    if (last) gw_client_shutdown(px->cl); /* the client's half-close, passed on */
}

/* The upstream answered the caller's Upgrade with 101: pass the switch on and become a tunnel
 * (Go's ReverseProxy does the same, including its check of the protocol). */
static int switch_protocols(proxy_t *px, const gw_resp_head_t *h)
{
    gw_request_t *req = px->req;
    const gw_header_t *up = gw_http_find_header(h->headers, h->nheaders, "upgrade");
    if (!up || !gw_str_ieq(up->value, px->upgrade.p, px->upgrade.n)) {
        gw_log(GW_LOG_WARN, "upstream switched to another protocol than the one asked for", "upstream",
               px->api->target.host_header, "request_id", rid(px), NULL);
        count_up_error(px, false);
        fail_request(px, 502, GW_OUTCOME_UPSTREAM_ERROR, NULL);
        return GW_DECLINED;
    }
    if (!req) return GW_DECLINED;
    gw_buf_t o;
    gw_buf_init(&o, RESP_HEAD_OUT_MAX);
    int rc = gw_buf_puts(&o, "HTTP/1.1 101 Switching Protocols\r\n");
    conn_hops_t hops;
    conn_hops_init(&hops, h->headers, h->nheaders);
    for (size_t i = 0; i < h->nheaders; i++) {
        gw_str_t n = h->headers[i].name, v = h->headers[i].value;
        if (is_hop(&hops, n) || GW_STR_IEQ_LIT(n, "x-request-id") || GW_STR_IEQ_LIT(n, "content-length")) continue;
        rc |= gw_buf_append(&o, n.p, n.n);
        rc |= gw_buf_append(&o, ": ", 2);
        rc |= gw_buf_append(&o, v.p, v.n);
        rc |= gw_buf_append(&o, "\r\n", 2);
    }
    rc |= gw_buf_puts(&o, "Connection: Upgrade\r\nUpgrade: ");
    rc |= gw_buf_append(&o, up->value.p, up->value.n);
    rc |= gw_buf_append(&o, "\r\n", 2);
    rc |= put_request_id(&o, req);
    rc |= gw_buf_append(&o, "\r\n", 2);
    if (rc) {
        gw_buf_free(&o);
        fail_request(px, 502, GW_OUTCOME_GATEWAY_ERROR, NULL);
        return GW_DECLINED;
    }
    drop_sent(px);
    px->replayable = false;
    px->resp_head_seen = true;
    px->status = 101;
    px->client_close = true; /* the connection ends with the tunnel */
    px->phase = PX_TUNNEL;
    gw_request_write_copy(req, o.base, o.len);
    gw_buf_free(&o);
    gw_request_tunnel(req);
    px->last_up_ms = px->last_client_ms = uv_now(&px->worker->loop);
    uv_timer_stop(&px->timer);
    tunnel_inactivity(px);
    return GW_OK;
}

/* ---------- client side ---------- */

static void on_body(gw_request_t *req, gw_block_t *b, size_t off, size_t len, bool last)
{
    proxy_t *px = req->data;
    if (!px) return;
    if (px->phase == PX_TUNNEL) {
        tunnel_from_client(px, b, off, len, last);
        return;
    }
    if (last) {
        px->body_all_received = true;
        if (px->connected && px->phase != PX_STREAM) start_proxy_timer(px);
    }
    if (len) {
        if (px->connected) {
            send_body_piece(px, b, off, len);
        } else {
            pieces_push(&px->queue, b, off, len);
            if (!last && px->queue.bytes >= GW_UP_HIGH_WATER) gw_request_pause_body(req);
        }
    }
    if (last && px->connected) send_request_done(px);
}

static void on_abort(gw_request_t *req)
{
    proxy_t *px = req->data;
    if (!px) return;
    int st = req->abort_status;
    account(px, st ? st : px->status ? px->status : GW_STATUS_CLIENT_GONE,
            st == 408 ? GW_OUTCOME_TIMEOUT : st ? GW_OUTCOME_GATEWAY_ERROR : GW_OUTCOME_CLIENT_GONE);
    px->req = NULL;
    release_up(px);
    proxy_free(px);
}

static void on_drain(gw_request_t *req)
{
    proxy_t *px = req->data;
    if (px && px->splice_wait && px->cl) {
        if (gw_request_write_queue(req) > 0) {
            gw_request_notify_empty(req);
            return;
        }
        px->splice_wait = false;
        uint64_t left = 0; /* asked again: the exchange may have changed while the client drained */
        int ufd = gw_client_splice_begin(px->cl, SPLICE_MIN_LEFT, &left);
        splice_go(px, ufd, left);
        return;
    }
    if (!px || !px->up_paused || !px->cl) return;
    px->up_paused = false;
    gw_client_resume(px->cl);
}

const gw_handler_t gw_proxy_handler = {on_request, on_body, on_abort, on_drain};
