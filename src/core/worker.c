/* worker.c: worker threads: each runs its own loop with its own listeners and refreshes its
 * pinned snapshot when the control thread publishes; draining on stop. */
#include "core/worker.h"

#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/creds.h"
#include "core/config.h"
#include "http/splice.h"
#include "registry/ondemand.h"
#include "http/server.h"
#include "http/upstream.h"
#include "util/alloc.h"
#include "util/block.h"
#include "util/log.h"

static int bound_socket(const struct sockaddr_storage *ss, bool dual_stack, bool reuseport)
{
    int family = ss->ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6 && dual_stack) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int listener_socket(const char *addr, int port, bool reuseport)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (!addr || !addr[0]) {
        /* Every address, like the original's ":port": IPv6 with IPv4-mapped addresses when the
         * host has IPv6, plain IPv4 otherwise. */
        uv_ip6_addr("::", port, (struct sockaddr_in6 *)&ss);
        int fd = bound_socket(&ss, true, reuseport);
        if (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL) return fd;
        memset(&ss, 0, sizeof(ss));
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
        return bound_socket(&ss, false, reuseport);
    }
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss) != 0)
        return -EINVAL;
    return bound_socket(&ss, false, reuseport);
}

int gw_listener_socket(const char *addr, int port) { return listener_socket(addr, port, true); }

int gw_port_in_use(const char *addr, int port)
{
    /* A bind without SO_REUSEPORT fails while any socket listens there, also one of another
     * process that set SO_REUSEPORT (which our own listeners would otherwise silently share). */
    int fd = listener_socket(addr, port, false);
    if (fd == -EADDRINUSE) return 1;
    if (fd >= 0) close(fd);
    return 0;
}

void gw_pin_put(gw_pin_t *p)
{
    if (--p->users > 0 || !p->retired) return;
    gw_snapshot_unref(p->snap);
    free(p);
}

static gw_pin_t *pin_new(gw_snapshot_t *s)
{
    gw_pin_t *p = gw_calloc(1, sizeof(*p));
    p->snap = s;
    return p;
}

/* Retires the worker's pin (freed now, or when its last request ends). */
static void pin_retire(gw_pin_t *p)
{
    p->retired = true;
    p->users++;
    gw_pin_put(p);
}

static void refresh_snapshot(gw_worker_t *w)
{
    gw_snapshot_t *s = gw_config_acquire();
    if (w->pin && s == w->pin->snap) {
        gw_snapshot_unref(s);
        return;
    }
    if (w->pin) pin_retire(w->pin);
    w->pin = pin_new(s);
}

static void finish_if_idle(gw_worker_t *w);

/* Requests woken after an on-demand fetch route on the snapshot that holds it. */
static void on_ondemand_refresh(void *ud)
{
    gw_worker_t *w = ud;
    if (!w->server.draining) refresh_snapshot(w);
}

static void on_grace(uv_timer_t *t)
{
    gw_worker_t *w = t->data;
    if (w->server.conns) {
        gw_log(GW_LOG_WARN, "grace period over, closing remaining connections", NULL);
        gw_server_close_all(&w->server);
    }
}

static void on_wake(uv_async_t *a)
{
    gw_worker_t *w = a->data;
    if (__atomic_load_n(&w->stop_requested, __ATOMIC_ACQUIRE) && !w->server.draining) {
        for (int i = 0; i < w->nlisteners; i++) gw_server_listener_close(&w->listeners[i]);
        gw_server_drain(&w->server);
        uv_timer_start(&w->grace_timer, on_grace, (uint64_t)w->flags->shutdown_grace * 1000, 0);
        finish_if_idle(w);
        return;
    }
    if (!w->server.draining) refresh_snapshot(w);
}

static void on_poll(uv_timer_t *t)
{
    finish_if_idle(t->data);
}

/* Once draining and without connections: close the worker's own handles so its loop ends. */
static void finish_if_idle(gw_worker_t *w)
{
    uv_timer_t *poll = &w->poll_timer;
    if (w->server.conns) {
        if (!uv_is_active((uv_handle_t *)poll)) uv_timer_start(poll, on_poll, 50, 50);
        return;
    }
    gw_config_unsubscribe(&w->wake);
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->grace_timer, NULL);
    uv_close((uv_handle_t *)poll, NULL);
    gw_upstream_pool_free(w->pool);
    w->pool = NULL;
    gw_creds_free(w->creds); /* no request is left to wait for a credential */
    w->creds = NULL;
    gw_ondemand_free(w->ondemand);
    w->ondemand = NULL;
    gw_accesslog_close(&w->access);
    gw_wbatch_close(&w->wbatch);
}

static void worker_main(void *arg)
{
    gw_worker_t *w = arg;
    gw_wbatch_attach(&w->wbatch);
    for (int i = 0; i < w->nlisteners; i++) {
        w->listeners[i].server = &w->server;
        int rc = gw_server_listen(&w->listeners[i]);
        if (rc < 0) gw_log(GW_LOG_ERROR, "listen failed", "reason", uv_strerror(rc), NULL);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    gw_freelist_drain(&w->request_states);
    if (w->pin) pin_retire(w->pin);
    w->pin = NULL;
    gw_block_drain_cache();
    gw_writeq_drain_cache();
    gw_client_drain_cache();
    gw_server_drain_cache();
    gw_splice_drain_cache();
    __atomic_store_n(&w->exited, 1, __ATOMIC_RELEASE);
}

int gw_worker_start(gw_worker_t *w, int id, const gw_flags_t *flags)
{
    w->id = id;
    w->flags = flags;
    int rc = uv_loop_init(&w->loop);
    if (rc) return rc;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->grace_timer);
    w->grace_timer.data = w;
    uv_timer_init(&w->loop, &w->poll_timer);
    w->poll_timer.data = w;
    w->server = (gw_server_t){.loop = &w->loop, .request_timeout = flags->request_timeout,
                              .min_body_rate = flags->min_body_rate,
                              .counters = &w->counters, .data = w};
    w->pool = gw_upstream_pool_new(&w->loop, &w->counters);
    gw_upstream_pool_set_http2(w->pool, flags->upstream_http2 != 0);
    gw_accesslog_init(&w->access, &w->loop, flags->access_log != 0);
    gw_wbatch_init(&w->wbatch, &w->loop);
    w->creds = gw_creds_new(&w->loop);
    w->ondemand = gw_ondemand_new(&w->loop, on_ondemand_refresh, w);
    w->pin = pin_new(gw_config_acquire());
    gw_config_subscribe(&w->wake);
    return uv_thread_create(&w->thread, worker_main, w);
}

void gw_worker_request_stop(gw_worker_t *w)
{
    __atomic_store_n(&w->stop_requested, 1, __ATOMIC_RELEASE);
    uv_async_send(&w->wake);
}

void gw_worker_join(gw_worker_t *w) { uv_thread_join(&w->thread); }
