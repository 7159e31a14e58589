/* splice.c: the socket -> pipe -> socket pump of splice.h. One watcher is active at a time:
 * the destination's (writable) while the pipe holds bytes it did not take, else the source's
 * (readable); both are level-triggered, so a round that stops early is picked up again. */
#include "http/splice.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/alloc.h"

/* Bytes a pipe is asked to hold (F_SETPIPE_SZ, at most /proc/sys/fs/pipe-max-size, 1 MiB by
 * default; the kernel's default is 64 KiB). Measured on 16 MiB downloads through one worker
 * (64 connections): 256 KiB or 512 KiB pipes cost about 6.5 ms of CPU per download, 1 MiB
 * pipes about 2.6 ms (fewer, larger splice calls and watcher switches). An unprivileged user
 * past pipe-user-pages-soft gets smaller pipes: slower, still correct. */
#define PIPE_WANT_SIZE (1024 * 1024)
/* Pipes kept per thread for the next pump. */
#define PIPE_CACHE_MAX 16
/* Rounds (a splice in, a splice out) in one wake-up before the loop's other events get a
 * turn; the watchers are level-triggered, so the pump goes on in the next iteration. */
#define ROUND_MAX 8

typedef struct {
    int r, w;
    size_t cap;
} pipe_t;

struct gw_splice_s {
    uv_poll_t src_poll, dst_poll;
    int src, dst;              /* our dups of the caller's fds (closed by release) */
    pipe_t pipe;
    size_t inpipe;             /* bytes read into the pipe and not yet written out */
    uint64_t left;             /* bytes still to read from the source */
    uint64_t moved;            /* bytes written to the destination */
    uint64_t count;            /* bytes to move in all */
    int watching;              /* 0, 1: source readable, 2: destination writable */
    int handles;               /* poll handles not yet closed */
    bool over;
    const gw_splice_cb_t *cb;
    void *ud;
};

static _Thread_local pipe_t tl_pipes[PIPE_CACHE_MAX];
static _Thread_local int tl_npipes;

static bool pipe_get(pipe_t *p)
{
    if (tl_npipes > 0) {
        *p = tl_pipes[--tl_npipes];
        return true;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    p->r = fds[0];
    p->w = fds[1];
    (void)fcntl(p->w, F_SETPIPE_SZ, PIPE_WANT_SIZE); /* a smaller pipe works too */
    int sz = fcntl(p->w, F_GETPIPE_SZ);
    p->cap = sz > 0 ? (size_t)sz : 65536;
    return true;
}

static void pipe_put(pipe_t *p, bool empty)
{
    if (empty && tl_npipes < PIPE_CACHE_MAX) {
        tl_pipes[tl_npipes++] = *p;
        return;
    }
    close(p->r);
    close(p->w);
}

void gw_splice_drain_cache(void)
{
    while (tl_npipes > 0) {
        tl_npipes--;
        close(tl_pipes[tl_npipes].r);
        close(tl_pipes[tl_npipes].w);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    gw_splice_t *s = h->data;
    if (--s->handles == 0) free(s);
}

/* Lets go of fds, pipe and handles (freed once closed). The poll handles are taken off epoll
 * by uv_close at once, so the dups can be closed right after. */
static void release(gw_splice_t *s)
{
    s->over = true;
    uv_close((uv_handle_t *)&s->src_poll, on_poll_closed);
    uv_close((uv_handle_t *)&s->dst_poll, on_poll_closed);
    close(s->src);
    close(s->dst);
    pipe_put(&s->pipe, s->inpipe == 0);
}

static void end(gw_splice_t *s, gw_splice_end_t how, int status)
{
    release(s);
    s->cb->on_end(s->ud, how, status);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void watch(gw_splice_t *s, int which)
{
    if (s->watching == which) return;
    if (s->watching == 1) uv_poll_stop(&s->src_poll);
    if (s->watching == 2) uv_poll_stop(&s->dst_poll);
    s->watching = which;
    if (which == 1) uv_poll_start(&s->src_poll, UV_READABLE, on_poll);
    if (which == 2) uv_poll_start(&s->dst_poll, UV_WRITABLE, on_poll);
}

/* Moves what can be moved now, then waits on the side that blocked (or ends). */
static void pump(gw_splice_t *s)
{
    size_t in = 0, out = 0;
    gw_splice_end_t how = GW_SPLICE_DONE;
    int err = 0;
    bool ended = false;
    for (int round = 0; round < ROUND_MAX && !ended; round++) {
        bool progress = false;
        if (s->left && s->inpipe < s->pipe.cap) {
            size_t want = s->pipe.cap - s->inpipe;
            if (want > s->left) want = (size_t)s->left;
            ssize_t n = splice(s->src, NULL, s->pipe.w, NULL, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                s->inpipe += (size_t)n;
                s->left -= (uint64_t)n;
                in += (size_t)n;
                progress = true;
                if (s->left == 0 && s->cb->on_source_done) s->cb->on_source_done(s->ud);
            } else if (n == 0) {
                how = GW_SPLICE_ESOURCE; /* closed early; what the pipe holds is offered once */
                ended = true;
            } else if (errno == EINTR) {
                progress = true;
            } else if (errno != EAGAIN) {
                err = -errno;
                ended = true;
                how = (errno == EINVAL || errno == ENOSYS) && s->moved == 0 && s->inpipe == 0 && !in
                          ? GW_SPLICE_UNSUPPORTED
                          : GW_SPLICE_ESOURCE;
            }
        }
        if (s->inpipe) {
            unsigned fl = SPLICE_F_NONBLOCK | SPLICE_F_MOVE | (s->left ? SPLICE_F_MORE : 0);
            ssize_t n = splice(s->pipe.r, NULL, s->dst, NULL, s->inpipe, fl);
            if (n > 0) {
                s->inpipe -= (size_t)n;
                s->moved += (uint64_t)n;
                out += (size_t)n;
                progress = true;
            } else if (n < 0 && errno == EINTR) {
                progress = true;
            } else if (n == 0 || errno != EAGAIN) {
                /* bytes already left the source: no way back, whatever the error */
                err = n == 0 ? UV_EPIPE : -errno;
                how = GW_SPLICE_EDEST;
                ended = true;
            }
        }
        if (!ended && s->left == 0 && s->inpipe == 0) {
            ended = true;
            how = GW_SPLICE_DONE;
        }
        if (!progress) break;
    }
    if ((in || out) && s->cb->on_moved) s->cb->on_moved(s->ud, in, out);
    if (ended) {
        end(s, how, err);
        return;
    }
    watch(s, s->inpipe ? 2 : 1);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    gw_splice_t *s = h->data;
    if (s->over) return;
    if (status < 0) {
        /* POLLERR: libuv stopped the watcher; the next splice names the failure. */
        int was = s->watching;
        s->watching = 0;
        pump(s);
        if (!s->over && s->watching == was)
            end(s, was == 1 ? GW_SPLICE_ESOURCE : GW_SPLICE_EDEST, status);
        return;
    }
    pump(s);
}

gw_splice_t *gw_splice_start(uv_loop_t *loop, int src_fd, int dst_fd, uint64_t count, const gw_splice_cb_t *cb,
                             void *ud)
{
    gw_splice_t *s = gw_calloc(1, sizeof(*s));
    s->src = fcntl(src_fd, F_DUPFD_CLOEXEC, 0);
    s->dst = fcntl(dst_fd, F_DUPFD_CLOEXEC, 0);
    if (s->src < 0 || s->dst < 0 || !pipe_get(&s->pipe)) goto fail;
    if (uv_poll_init_socket(loop, &s->src_poll, s->src) != 0) {
        pipe_put(&s->pipe, true);
        goto fail;
    }
    if (uv_poll_init_socket(loop, &s->dst_poll, s->dst) != 0) {
        pipe_put(&s->pipe, true);
        s->src_poll.data = s;
        s->handles = 1;
        s->over = true;
        uv_close((uv_handle_t *)&s->src_poll, on_poll_closed);
        close(s->src);
        close(s->dst);
        return NULL;
    }
    s->src_poll.data = s->dst_poll.data = s;
    s->handles = 2;
    s->left = s->count = count;
    s->cb = cb;
    s->ud = ud;
    /* The source usually has bytes already: its readiness starts the first round. */
    watch(s, 1);
    return s;
fail:
    if (s->src >= 0) close(s->src);
    if (s->dst >= 0) close(s->dst);
    free(s);
    return NULL;
}

void gw_splice_stop(gw_splice_t *s)
{
    if (!s || s->over) return;
    release(s);
}

bool gw_splice_waiting_dest(const gw_splice_t *s) { return s && !s->over && s->watching == 2; }

uint64_t gw_splice_count(const gw_splice_t *s) { return s->count; }
