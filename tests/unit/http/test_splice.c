/* test_splice.c: the splice(2) pump of http/splice.c on a real libuv loop between TCP
 * connections on 127.0.0.1: exact byte counts (what follows the count stays in the source),
 * early close of the source, a destination that went away, stop without callbacks, and the
 * fallback when the kernel refuses splice. A producer and a consumer thread play the peers. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http/splice.h"
#include "test.h"

static uv_loop_t loop;

/* A connected TCP pair on 127.0.0.1: a[0] the gateway's side (non-blocking), a[1] the peer's. */
static void tcp_pair(int a[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(listen(l, 1) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
    a[1] = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(a[1], (struct sockaddr *)&sa, sizeof(sa)) == 0);
    a[0] = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(a[0] >= 0);
    close(l);
}

static unsigned char pattern(uint64_t i) { return (unsigned char)(i * 131u + (i >> 9)); }

/* ---- peers ---- */

typedef struct {
    int fd;
    uint64_t n;        /* bytes to write (producer) / expected at most (consumer) */
    bool close_after;  /* producer: close its socket after writing */
    uint64_t got;      /* consumer: bytes read */
    bool bad;          /* consumer: a byte differed from the pattern */
} peer_t;

static void *producer(void *arg)
{
    peer_t *p = arg;
    unsigned char buf[65536];
    uint64_t off = 0;
    while (off < p->n) {
        size_t k = p->n - off < sizeof(buf) ? (size_t)(p->n - off) : sizeof(buf);
        for (size_t i = 0; i < k; i++) buf[i] = pattern(off + i);
        ssize_t w = send(p->fd, buf, k, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (uint64_t)w;
    }
    if (p->close_after) close(p->fd);
    return NULL;
}

static void *consumer(void *arg)
{
    peer_t *p = arg;
    unsigned char buf[65536];
    while (p->got < p->n) {
        ssize_t r = recv(p->fd, buf, sizeof(buf), 0);
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pattern(p->got + (uint64_t)i)) p->bad = true;
        p->got += (uint64_t)r;
    }
    return NULL;
}

/* ---- the pump's callbacks ---- */

static uint64_t moved_in, moved_out;
static int source_done_calls, end_calls;
static bool source_done_before_all_out;
static gw_splice_end_t end_how;
static uint64_t count_now;

static void on_moved(void *ud, size_t in, size_t out)
{
    (void)ud;
    moved_in += in;
    moved_out += out;
}

static void on_source_done(void *ud)
{
    (void)ud;
    source_done_calls++;
    source_done_before_all_out = moved_out < count_now;
}

static void on_end(void *ud, gw_splice_end_t how, int status)
{
    (void)ud;
    (void)status;
    end_calls++;
    end_how = how;
}

static const gw_splice_cb_t cb = {on_moved, on_source_done, on_end};

static void reset(uint64_t count)
{
    moved_in = moved_out = 0;
    source_done_calls = end_calls = 0;
    source_done_before_all_out = false;
    count_now = count;
}

static void on_deadline(uv_timer_t *t) { (void)t; }

/* Runs the loop until the pump ended (or 20 s). */
static void run_until_end(void)
{
    uv_timer_t deadline;
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 20000, 0);
    uint64_t t0 = uv_now(&loop);
    while (end_calls == 0 && uv_now(&loop) - t0 < 20000) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* closes */
}

/* count bytes move from src to dst; `extra` bytes written after them stay in the source. */
static void test_moves_exactly_count(void)
{
    int src[2], dst[2];
    tcp_pair(src);
    tcp_pair(dst);
    const uint64_t count = 3u * 1024 * 1024 + 12345, extra = 100;
    peer_t prod = {.fd = src[1], .n = count + extra}, cons = {.fd = dst[1], .n = count};
    pthread_t tp, tc;
    pthread_create(&tp, NULL, producer, &prod);
    pthread_create(&tc, NULL, consumer, &cons);
    reset(count);
    gw_splice_t *s = gw_splice_start(&loop, src[0], dst[0], count, &cb, NULL);
    CHECK(s != NULL);
    CHECK_EQ_INT(gw_splice_count(s), count);
    CHECK_EQ_INT(end_calls, 0); /* never from inside start */
    run_until_end();
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    CHECK_EQ_INT(end_calls, 1);
    CHECK_EQ_INT(end_how, GW_SPLICE_DONE);
    CHECK_EQ_INT(moved_in, count);
    CHECK_EQ_INT(moved_out, count);
    CHECK_EQ_INT(source_done_calls, 1);
    CHECK(source_done_before_all_out);
    CHECK_EQ_INT(cons.got, count);
    CHECK(!cons.bad);
    /* the bytes after the count are still the source's, and the fds are still the caller's */
    unsigned char rest[256];
    ssize_t r = recv(src[0], rest, sizeof(rest), 0);
    CHECK_EQ_INT(r, (long long)extra);
    bool same = r > 0;
    for (ssize_t i = 0; i < r; i++)
        if (rest[i] != pattern(count + (uint64_t)i)) same = false;
    CHECK(same);
    CHECK(send(dst[0], "x", 1, MSG_NOSIGNAL) == 1);
    for (int i = 0; i < 2; i++) {
        close(src[i]);
        close(dst[i]);
    }
}

static void test_source_closes_early(void)
{
    int src[2], dst[2];
    tcp_pair(src);
    tcp_pair(dst);
    const uint64_t count = 4u * 1024 * 1024, sent = 1024 * 1024;
    peer_t prod = {.fd = src[1], .n = sent, .close_after = true}, cons = {.fd = dst[1], .n = sent};
    pthread_t tp, tc;
    pthread_create(&tp, NULL, producer, &prod);
    pthread_create(&tc, NULL, consumer, &cons);
    reset(count);
    CHECK(gw_splice_start(&loop, src[0], dst[0], count, &cb, NULL) != NULL);
    run_until_end();
    pthread_join(tp, NULL);
    shutdown(dst[0], SHUT_RDWR); /* the consumer stops waiting for more */
    pthread_join(tc, NULL);
    CHECK_EQ_INT(end_calls, 1);
    CHECK_EQ_INT(end_how, GW_SPLICE_ESOURCE);
    CHECK_EQ_INT(source_done_calls, 0);
    CHECK(moved_out <= sent);
    CHECK_EQ_INT(cons.got, moved_out);
    CHECK(!cons.bad);
    close(src[0]);
    close(dst[0]);
    close(dst[1]);
}

static void test_destination_gone(void)
{
    int src[2], dst[2];
    tcp_pair(src);
    tcp_pair(dst);
    const uint64_t count = 8u * 1024 * 1024;
    /* the destination's peer resets its end: nothing reads it any more */
    struct linger lg = {1, 0};
    setsockopt(dst[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(dst[1]);
    peer_t prod = {.fd = src[1], .n = count};
    pthread_t tp;
    pthread_create(&tp, NULL, producer, &prod);
    reset(count);
    CHECK(gw_splice_start(&loop, src[0], dst[0], count, &cb, NULL) != NULL);
    run_until_end();
    CHECK_EQ_INT(end_calls, 1);
    CHECK_EQ_INT(end_how, GW_SPLICE_EDEST);
    shutdown(src[1], SHUT_RDWR); /* unblocks the producer */
    close(src[0]);
    pthread_join(tp, NULL);
    close(src[1]);
    close(dst[0]);
}

static void test_stop_calls_nothing_and_leaves_the_fds(void)
{
    int src[2], dst[2];
    tcp_pair(src);
    tcp_pair(dst);
    reset(1000);
    gw_splice_t *s = gw_splice_start(&loop, src[0], dst[0], 1000, &cb, NULL);
    CHECK(s != NULL);
    CHECK(send(src[1], "abc", 3, 0) == 3);
    uv_run(&loop, UV_RUN_NOWAIT);
    gw_splice_stop(s);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(end_calls, 0);
    CHECK_EQ_INT(uv_loop_alive(&loop), 0); /* its handles are closed */
    CHECK(send(dst[0], "x", 1, MSG_NOSIGNAL) == 1);
    char c;
    CHECK(recv(dst[1], &c, 1, 0) == 1);
    for (int i = 0; i < 2; i++) {
        close(src[i]);
        close(dst[i]);
    }
}

static void test_refused_by_the_kernel(void)
{
    /* splice from an eventfd is EINVAL: the pump reports UNSUPPORTED, having taken nothing */
    int ev = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    int dst[2];
    tcp_pair(dst);
    reset(100000);
    CHECK(gw_splice_start(&loop, ev, dst[0], 100000, &cb, NULL) != NULL);
    run_until_end();
    CHECK_EQ_INT(end_calls, 1);
    CHECK_EQ_INT(end_how, GW_SPLICE_UNSUPPORTED);
    CHECK_EQ_INT(moved_out, 0);
    uint64_t v = 0;
    CHECK(read(ev, &v, sizeof(v)) == sizeof(v) && v == 1);
    close(ev);
    close(dst[0]);
    close(dst[1]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    GW_RUN(test_moves_exactly_count);
    GW_RUN(test_source_closes_early);
    GW_RUN(test_destination_gone);
    GW_RUN(test_stop_calls_nothing_and_leaves_the_fds);
    GW_RUN(test_refused_by_the_kernel);
    /* the pipes went back to the cache: draining closes them */
    gw_splice_drain_cache();
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return gw_test_summary();
}
