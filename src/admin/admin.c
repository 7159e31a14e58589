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
