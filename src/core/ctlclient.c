/* ctlclient.c: libcurl multi handle on a libuv loop (socket and timer callbacks map onto
 * uv_poll and one uv_timer); responses are buffered with a cap and handed over whole. */
#include "core/ctlclient.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http/egress.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/dlist.h"

#define MAX_RESPONSE_HEADERS 100
#define MAX_HEADER_BYTES (64 * 1024)

typedef struct sock_s {
    uv_poll_t poll;
    curl_socket_t fd;
} sock_t;

typedef struct xfer_s {
    struct xfer_s *next, *prev;
    CURL *easy;
    struct curl_slist *headers;
    char *body;                    /* request body copy */
    gw_ctl_cb cb;
    void *ud;
    void (*on_head)(void *ud, int status);
    int (*on_data)(void *ud, const char *p, size_t n);
    size_t max_body;
    bool too_large;
    bool aborted;                  /* on_data asked to stop */
    bool streaming;                /* the final response is 2xx and on_data takes the body */
    int status;                    /* status line of the response being received */
    gw_buf_t resp;
    gw_ctl_header_t hdrs[MAX_RESPONSE_HEADERS];
    size_t nhdrs, hdr_bytes;
    char errbuf[CURL_ERROR_SIZE];
} xfer_t;

static struct {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    xfer_t *xfers;
    char *cainfo, *capath;
    bool up;
} ctl;

static void clear_headers(xfer_t *x)
{
    for (size_t i = 0; i < x->nhdrs; i++) {
        free(x->hdrs[i].name);
        free(x->hdrs[i].value);
    }
    x->nhdrs = 0;
    x->hdr_bytes = 0;
}

static void xfer_free(xfer_t *x)
{
    GW_DLIST_REMOVE(ctl.xfers, x);
    curl_multi_remove_handle(ctl.multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    if (x->body) free(x->body);
    gw_buf_free(&x->resp);
    clear_headers(x);
    free(x);
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = size * n;
    if (x->streaming) {
        if (x->on_data(x->ud, p, len) != 0) {
            x->aborted = true;
            return 0;
        }
        return len;
    }
    if (x->resp.len + len > x->max_body || gw_buf_append(&x->resp, p, len) != GW_OK) {
        x->too_large = true;
        return 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (interim or final) */
        clear_headers(x);
        const char *sp = memchr(p, ' ', len);
        x->status = sp && (size_t)(sp - p) + 4 <= len ? atoi(sp + 1) : 0;
        return len;
    }
    if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) { /* end of a head */
        if (x->status >= 200) {
            x->streaming = x->on_data && x->status < 300;
            if (x->on_head) x->on_head(x->ud, x->status);
        }
        return len;
    }
    x->hdr_bytes += len;
    if (x->hdr_bytes > MAX_HEADER_BYTES) return 0;
    const char *colon = memchr(p, ':', len);
    if (!colon || x->nhdrs == MAX_RESPONSE_HEADERS) return len;
    const char *v = colon + 1, *e = p + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
    x->hdrs[x->nhdrs].name = gw_strndup(p, (size_t)(colon - p));
    x->hdrs[x->nhdrs].value = gw_strndup(v, (size_t)(e - v));
    x->nhdrs++;
    return len;
}

static void finish(xfer_t *x, CURLcode res)
{
    long status = 0;
    gw_ctl_response_t r = {0};
    if (res == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        r.status = (int)status;
    } else if (x->aborted) {
        r.error = "aborted by the caller";
    } else if (x->too_large) {
        r.error = "response too large";
    } else {
        r.error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
    }
    if (gw_buf_append(&x->resp, "", 1) == GW_OK) x->resp.len--;
    r.body = x->resp.base ? x->resp.base : "";
    r.body_len = x->resp.len;
    r.headers = x->hdrs;
    r.nheaders = x->nhdrs;
    x->cb(x->ud, &r);
    xfer_free(x);
}

static void check_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(ctl.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x) finish(x, m->data.result);
    }
}

static void on_poll_closed(uv_handle_t *h) { free(h->data); }

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(ctl.multi, s->fd, flags, &running);
    check_done();
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    (void)userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_poll_closed);
            curl_multi_assign(ctl.multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = gw_calloc(1, sizeof(*s));
        s->fd = fd;
        if (uv_poll_init_socket(ctl.loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(ctl.multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    (void)t;
    int running;
    curl_multi_socket_action(ctl.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done();
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    (void)userp;
    if (timeout_ms < 0) uv_timer_stop(&ctl.timer);
    else uv_timer_start(&ctl.timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

int gw_ctl_init(uv_loop_t *loop)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return GW_EINVAL;
    ctl.loop = loop;
    ctl.multi = curl_multi_init();
    if (!ctl.multi) return GW_EINVAL;
    curl_multi_setopt(ctl.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(ctl.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    uv_timer_init(loop, &ctl.timer);
    const char *f = getenv("SSL_CERT_FILE"), *d = getenv("SSL_CERT_DIR");
    ctl.cainfo = f && *f ? gw_strdup(f) : NULL;
    ctl.capath = d && *d ? gw_strdup(d) : NULL;
    ctl.up = true;
    return GW_OK;
}

void gw_ctl_shutdown(void)
{
    if (!ctl.up) return;
    ctl.up = false;
    while (ctl.xfers) xfer_free(ctl.xfers); /* removing a handle closes its sockets (on_socket) */
    curl_multi_cleanup(ctl.multi);
    ctl.multi = NULL;
    uv_close((uv_handle_t *)&ctl.timer, NULL);
    free(ctl.cainfo);
    free(ctl.capath);
    ctl.cainfo = ctl.capath = NULL;
    curl_global_cleanup();
}

/* The egress proxy by our own (Go's) rules, never curl's environment handling: "" for a direct
 * request; https goes through a CONNECT tunnel, http in absolute-form. */
static void set_proxy(CURL *e, const char *url)
{
    const gw_proxy_t *px = gw_egress_proxy_for_url(gw_egress_global(), url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    curl_easy_setopt(e, CURLOPT_PROXY, px ? px->url : "");
    if (!px) return;
    curl_easy_setopt(e, CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
    curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, strncasecmp(url, "https:", 6) == 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    if (px->username) {
        curl_easy_setopt(e, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_PROXYUSERNAME, px->username);
        curl_easy_setopt(e, CURLOPT_PROXYPASSWORD, px->password ? px->password : "");
    }
}

static int set_blob(CURL *e, CURLoption opt, const char *pem)
{
    const char *b = strstr(pem, "-----BEGIN");
    if (!b) b = pem;
    struct curl_blob blob = {(void *)b, strlen(b), CURL_BLOB_COPY};
    return curl_easy_setopt(e, opt, &blob) == CURLE_OK ? 0 : -1;
}

void gw_ctl_cancel(gw_ctl_xfer_t *x)
{
    if (x) xfer_free(x);
}

int gw_ctl_fetch(const gw_ctl_request_t *rq, gw_ctl_cb cb, void *ud, gw_ctl_xfer_t **out)
{
    if (out) *out = NULL;
    if (!ctl.up) return GW_EINVAL;
    xfer_t *x = gw_calloc(1, sizeof(*x));
    x->cb = cb;
    x->ud = ud;
    x->on_head = rq->on_head;
    x->on_data = rq->on_data;
    x->max_body = rq->max_body ? rq->max_body : 1024 * 1024;
    gw_buf_init(&x->resp, x->max_body + 1);
    CURL *e = x->easy = curl_easy_init();
    if (!e) {
        free(x);
        return GW_ENOMEM;
    }
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, rq->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    set_proxy(e, rq->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    long total = rq->timeout_ms > 0 ? rq->timeout_ms : 10000L;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : total);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, rq->verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, rq->verify ? 2L : 0L);
    if (rq->ca_pem) {
        struct curl_blob ca = {(void *)rq->ca_pem, strlen(rq->ca_pem), CURL_BLOB_COPY};
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca) != CURLE_OK;
    } else {
        if (ctl.cainfo) curl_easy_setopt(e, CURLOPT_CAINFO, ctl.cainfo);
        if (ctl.capath) curl_easy_setopt(e, CURLOPT_CAPATH, ctl.capath);
    }
    if (rq->crt_pem && rq->key_pem) {
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        bad |= set_blob(e, CURLOPT_SSLCERT_BLOB, rq->crt_pem) != 0;
        bad |= set_blob(e, CURLOPT_SSLKEY_BLOB, rq->key_pem) != 0;
    }
    for (size_t i = 0; i < rq->nheaders; i++) {
        struct curl_slist *l = curl_slist_append(x->headers, rq->headers[i]);
        if (!l) bad = 1;
        else x->headers = l;
    }
    /* curl adds "Expect: 100-continue" to larger POSTs; token endpoints do not need the wait. */
    struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
    if (l) x->headers = l;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (strcmp(rq->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        x->body = gw_malloc(rq->body_len + 1);
        if (rq->body_len) memcpy(x->body, rq->body, rq->body_len);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        if (strcmp(rq->method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    if (bad || curl_multi_add_handle(ctl.multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(x->headers);
        free(x->body);
        gw_buf_free(&x->resp);
        free(x);
        return GW_EINVAL;
    }
    GW_DLIST_PUSH(ctl.xfers, x);
    if (out) *out = x;
    return GW_OK;
}

const char *gw_ctl_header(const gw_ctl_response_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}
