/* main.c: argv, limits, signals, start-up and orderly shutdown of appgw; the only exit().
 * The main thread runs the control loop (config source, admin API, signals); the workers
 * run the proxy ports. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin/admin.h"
#include "auth/creds.h"
#include "core/config.h"
#include "core/flags.h"
#include "core/series.h"
#include "core/worker.h"
#include "gateway/proxy.h"
#include "http/egress.h"
#include "http/server.h"
#include "registry/kubeconfig.h"
#include "registry/source_files.h"
#include "registry/source_kube.h"
#include "util/alloc.h"
#include "util/block.h"
#include "util/log.h"


static gw_flags_t flags;
static gw_worker_t *workers;
static gw_worker_t control;          /* the control loop, as a worker without a thread */
static gw_source_files_t *source;
static gw_source_kube_t *kube_source;
static uv_signal_t sig_term, sig_int;
static int stopping;

static void on_snapshot(gw_snapshot_t *snap, void *ud)
{
    (void)ud;
    gw_broker_snapshot_changed(snap);
    gw_config_publish(snap);
}

/* Where the Kubernetes API is (like the original's clientcmd.BuildConfigFromFlags): the
 * kubeconfig (its current context), with --apiServerURL overriding its server; --apiServerURL
 * alone; or, with neither, in-cluster when KUBERNETES_SERVICE_HOST/PORT are set. 1 with *c
 * filled, 0 when there is no Kubernetes API to use, -1 with err set. */
static int kube_connection(gw_kube_conn_t *c, char *err, size_t errlen)
{
    bool url = flags.api_server_url && flags.api_server_url[0];
    if (flags.kube_config && flags.kube_config[0]) {
        if (gw_kubeconfig_load(flags.kube_config, NULL, c, err, errlen) != GW_OK) return -1;
    } else if (url) {
        memset(c, 0, sizeof(*c));
    } else {
        int rc = gw_kube_incluster(getenv("APPGW_SERVICEACCOUNT_DIR"), c, err, errlen);
        if (rc == GW_ENOENT) return 0;
        return rc == GW_OK ? 1 : -1;
    }
    if (url) {
        free(c->server);
        size_t n = strlen(flags.api_server_url);
        while (n && flags.api_server_url[n - 1] == '/') n--;
        c->server = gw_strndup(flags.api_server_url, n);
    }
    if (strncmp(c->server, "https://", 8) != 0 && strncmp(c->server, "http://", 7) != 0) {
        snprintf(err, errlen, "the Kubernetes API server URL must start with https:// or http://");
        gw_kube_conn_free(c);
        return -1;
    }
    return 1;
}

/* The embedded default configuration: the examples directory found from the executable's own
 * place, so a moved checkout or an installed binary still finds it: <bin>/../share/appgw/examples
 * (cmake --install), then <bin>/../examples (a build directory inside the checkout). NULL when
 * neither exists. The caller frees. */
static char *default_config_dir(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    static const char *const rel[] = {"/../share/appgw/examples", "/../examples"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char *d = gw_asprintf("%s%s", exe, rel[i]);
        char *real = realpath(d, NULL);
        free(d);
        if (real) return real;
    }
    return NULL;
}

/* A cache retention from the environment (Go duration syntax), default 5 minutes. */
static uint64_t retention(const char *var)
{
    const char *v = getenv(var);
    if (!v || !*v) return 5 * 60 * 1000;
    int64_t ms = gw_go_duration_ms(v);
    if (ms < 0) {
        gw_log(GW_LOG_WARN, "invalid duration, using 5m", "variable", var, "value", v, NULL);
        return 5 * 60 * 1000;
    }
    return (uint64_t)ms;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_control_closed(uv_handle_t *h) { (void)h; }

static void on_stop_poll(uv_timer_t *t);
static uv_timer_t stop_poll;

static void begin_shutdown(int signum)
{
    if (stopping) return;
    stopping = 1;
    gw_log(GW_LOG_INFO, "shutting down", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    for (int i = 0; i < flags.workers; i++) gw_worker_request_stop(&workers[i]);
    if (source) gw_source_files_stop(source);
    source = NULL;
    if (kube_source) gw_source_kube_stop(kube_source);
    kube_source = NULL;
    /* The admin port stays up while workers drain (health checks keep answering). */
    uv_timer_init(&control.loop, &stop_poll);
    uv_timer_start(&stop_poll, on_stop_poll, 50, 50);
}

static int workers_running(void)
{
    int n = 0;
    for (int i = 0; i < flags.workers; i++)
        if (!__atomic_load_n(&workers[i].exited, __ATOMIC_ACQUIRE)) n++;
    return n;
}

static void on_stop_poll(uv_timer_t *t)
{
    if (workers_running() > 0) return;
    uv_close((uv_handle_t *)t, on_control_closed);
    uv_close((uv_handle_t *)&sig_term, on_control_closed);
    uv_close((uv_handle_t *)&sig_int, on_control_closed);
    for (int i = 0; i < control.nlisteners; i++) gw_server_listener_close(&control.listeners[i]);
    gw_broker_stop();
    control.server.draining = true;
    gw_server_close_all(&control.server);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    begin_shutdown(signum);
}

static int open_listener(gw_listener_t *l, int port, const gw_handler_t *h, int mode, const char *what)
{
    l->fd = gw_listener_socket(flags.listen_address, port);
    l->handler = h;
    l->mode = mode;
    if (l->fd < 0) {
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        gw_log(GW_LOG_FATAL, "cannot listen", "port", p, "listener", what, "reason", strerror(-l->fd), NULL);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    int rc = gw_flags_parse(argc, argv, &flags, err, sizeof(err));
    if (rc == 1) {
        gw_flags_usage(stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "appgw: %s (see --help)\n", err);
        return 2;
    }
    gw_log_set_level(flags.log_level);
    if (gw_egress_init(err, sizeof(err)) != GW_OK) { /* HTTP(S)_PROXY / NO_PROXY, once */
        gw_log(GW_LOG_FATAL, "invalid egress proxy configuration", "reason", err, NULL);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    const int our_ports[3] = {flags.proxy_port, flags.proxy_port_compass, flags.external_api_port};
    for (int i = 0; i < 3; i++) {
        if (gw_port_in_use(flags.listen_address, our_ports[i])) {
            char p[16];
            snprintf(p, sizeof(p), "%d", our_ports[i]);
            gw_log(GW_LOG_FATAL, "port already in use by another process", "port", p, NULL);
            return 1;
        }
    }

    const char *dir = flags.config_dir && flags.config_dir[0] ? flags.config_dir : NULL;
    gw_kube_conn_t kube;
    memset(&kube, 0, sizeof(kube));
    bool use_kube = false;
    if (!dir) {
        int krc = kube_connection(&kube, err, sizeof(err));
        if (krc < 0) {
            fprintf(stderr, "appgw: %s\n", err);
            return 2;
        }
        use_kube = krc == 1;
    }
    char *default_dir = NULL;
    if (!dir && !use_kube) {
        dir = default_dir = default_config_dir();
        if (!dir) {
            fprintf(stderr, "appgw: no configuration: give --configDir, --kubeConfig or --apiServerURL (or run "
                            "in a cluster); the built-in examples directory was not found next to the binary\n");
            return 1;
        }
    }

    gw_series_init(flags.workers);
    gw_config_init();
    uv_loop_init(&control.loop);
    control.id = -1;
    control.flags = &flags;
    if (gw_broker_start(&control.loop, &flags) != 0) {
        fprintf(stderr, "appgw: cannot initialise the HTTP client for token requests\n");
        return 1;
    }
    if (use_kube) {
        gw_source_kube_opts_t ko = {.secrets_namespace = flags.secrets_namespace,
                                    .app_retention_ms = retention("ACM_GATEWAY_APPCACHE_RETENTION"),
                                    .secret_retention_ms = retention("ACM_GATEWAY_SECRETCACHE_RETENTION")};
        kube_source = gw_source_kube_start(&control.loop, &kube, &ko, on_snapshot, NULL);
    } else {
        source = gw_source_files_start(&control.loop, dir, flags.secrets_namespace, on_snapshot, NULL);
        if (!source) {
            fprintf(stderr, "appgw: cannot read configuration directory %s\n", dir);
            return 1;
        }
    }

    /* gw_worker_t holds cache-line-aligned counters */
    if (posix_memalign((void **)&workers, 64, (size_t)flags.workers * sizeof(*workers)) != 0) return 1;
    memset(workers, 0, (size_t)flags.workers * sizeof(*workers));
    for (int i = 0; i < flags.workers; i++) {
        gw_worker_t *w = &workers[i];
        if (open_listener(&w->listeners[0], flags.proxy_port, &gw_proxy_handler, GW_PROXY_MODE_STANDALONE, "proxy") ||
            open_listener(&w->listeners[1], flags.proxy_port_compass, &gw_proxy_handler, GW_PROXY_MODE_COMPASS,
                          "proxy-compass"))
            return 1;
        w->nlisteners = 2;
    }
    if (open_listener(&control.listeners[0], flags.external_api_port, &gw_admin_handler, 0, "admin")) return 1;
    control.nlisteners = 1;
    control.server = (gw_server_t){.loop = &control.loop, .request_timeout = flags.request_timeout,
                                   .min_body_rate = flags.min_body_rate,
                                   .counters = &control.counters, .data = &control};
    control.listeners[0].server = &control.server;
    gw_admin_set_workers(workers, flags.workers);
    if (gw_server_listen(&control.listeners[0]) != 0) {
        gw_log(GW_LOG_FATAL, "cannot listen on the admin port", NULL);
        return 1;
    }
    for (int i = 0; i < flags.workers; i++) {
        if (gw_worker_start(&workers[i], i, &flags) != 0) {
            gw_log(GW_LOG_FATAL, "cannot start worker thread", NULL);
            return 1;
        }
    }
    uv_signal_init(&control.loop, &sig_term);
    uv_signal_init(&control.loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);

    char ports[96], nw[16];
    snprintf(ports, sizeof(ports), "%d,%d,%d", flags.proxy_port, flags.proxy_port_compass, flags.external_api_port);
    snprintf(nw, sizeof(nw), "%d", flags.workers);
    gw_log(GW_LOG_INFO, "appgw started", "ports", ports, "workers", nw, use_kube ? "kubernetes" : "configDir",
           use_kube ? "list+watch" : dir, NULL);

    uv_run(&control.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < flags.workers; i++) gw_worker_join(&workers[i]);
    uv_loop_close(&control.loop);
    gw_config_shutdown();
    free(workers);
    gw_flags_free(&flags);
    free(default_dir);
    gw_block_drain_cache();
    gw_log(GW_LOG_INFO, "appgw stopped", NULL);
    return 0;
}
