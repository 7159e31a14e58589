/* test_writeq.c: http/writeq.c on a real libuv loop over a socketpair: writes wait in the
 * batch until the loop's round ends, leave in order, never hold more than the cap, go out on an
 * explicit flush, report failures to the owner's callback, and never let the loop block while
 * they wait. Observed as bytes read from the other end of the pair. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http/writeq.h"
#include "test.h"
#include "util/block.h"

static uv_loop_t loop;
static gw_wbatch_t batch;
static uv_pipe_t pipe_h;
static int peer = -1;
static size_t pend;
static int cb_calls, cb_status;

static void on_write(uv_write_t *w, int status)
{
    (void)gw_write_done(w);
    cb_calls++;
    cb_status = status;
}

static void open_pair(void)
{
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    uv_pipe_init(&loop, &pipe_h, 0);
    CHECK(uv_pipe_open(&pipe_h, fds[0]) == 0);
    peer = fds[1];
    pend = 0;
    cb_calls = 0;
    cb_status = 0;
}

static void close_pair(void)
{
    gw_stream_flush((uv_stream_t *)&pipe_h, &pend);
    uv_close((uv_handle_t *)&pipe_h, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (peer >= 0) close(peer);
    peer = -1;
}

/* What the peer can read right now (without waiting), NUL-terminated in a static buffer. */
static const char *peer_read(size_t *n)
{
    static char buf[256 * 1024];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(peer, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    buf[got] = 0;
    if (n) *n = got;
    return buf;
}

static void on_never(uv_timer_t *t) { (void)t; }

/* One round of the loop, kept alive by a timer that does not fire. */
static void run_round(void)
{
    uv_timer_t keep;
    uv_timer_init(&loop, &keep);
    CHECK_EQ_INT(uv_timer_start(&keep, on_never, 60000, 0), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_close((uv_handle_t *)&keep, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static int write_str(const char *s)
{
    size_t n = strlen(s);
    char *heap = malloc(n);
    memcpy(heap, s, n);
    return gw_stream_writev((uv_stream_t *)&pipe_h, &pend, heap, n, NULL, NULL, 0, NULL, on_write);
}

static void test_writes_wait_for_the_round(void)
{
    open_pair();
    CHECK_EQ_INT(write_str("one "), 0);
    gw_block_t *b = gw_block_get();
    memcpy(b->data, "two three", 9);
    CHECK_EQ_INT(gw_stream_writev((uv_stream_t *)&pipe_h, &pend, NULL, 0, gw_block_ref(b), b->data, 9, NULL, on_write), 0);
    gw_block_unref(b);
    CHECK_EQ_INT(pend, 13);
    size_t n;
    peer_read(&n);
    CHECK_EQ_INT(n, 0); /* nothing left before the loop ran */
    run_round();
    CHECK_EQ_STR(peer_read(NULL), "one two three");
    CHECK_EQ_INT(pend, 0);
    CHECK_EQ_INT(cb_calls, 0); /* written at once: no callback, as without a batch */
    close_pair();
}

static void test_copy_and_order_with_a_big_write(void)
{
    open_pair();
    CHECK_EQ_INT(gw_stream_write_copy((uv_stream_t *)&pipe_h, &pend, "head:", 5, NULL, on_write), 0);
    /* over the cap: what waits goes first, then this, at once */
    size_t big = GW_WBATCH_MAX_BYTES + 100;
    char *heap = malloc(big);
    memset(heap, 'x', big);
    CHECK_EQ_INT(gw_stream_writev((uv_stream_t *)&pipe_h, &pend, heap, big, NULL, NULL, 0, NULL, on_write), 0);
    CHECK_EQ_INT(pend, 0);
    size_t n;
    const char *got = peer_read(&n);
    CHECK_EQ_INT(n, big + 5);
    CHECK(memcmp(got, "head:xxxx", 9) == 0);
    close_pair();
}

/* A short copy waits inside its write record; when the kernel takes only part of it at the end
 * of the round, the rest is copied out before the record is reused, and still arrives whole. */
static void test_short_copy_when_the_socket_is_full(void)
{
    open_pair();
    uv_os_fd_t fd;
    CHECK_EQ_INT(uv_fileno((uv_handle_t *)&pipe_h, &fd), 0);
    static char fill[65536];
    memset(fill, 'f', sizeof(fill));
    size_t filled = 0;
    for (int i = 0; i < 1000; i++) { /* bounded: a socketpair buffer is a few hundred KiB */
        ssize_t w = write(fd, fill, sizeof(fill));
        if (w <= 0) break;
        filled += (size_t)w;
    }
    CHECK(filled > 0);
    CHECK_EQ_INT(gw_stream_write_copy((uv_stream_t *)&pipe_h, &pend, "the tail", 8, NULL, on_write), 0);
    run_round(); /* nothing fits: the copy moves to a buffer of its own and is queued */
    CHECK_EQ_INT(pend, 0);
    CHECK(uv_stream_get_write_queue_size((uv_stream_t *)&pipe_h) == 8);
    /* the next short copy reuses the record: the queued bytes must not change */
    CHECK_EQ_INT(gw_stream_write_copy((uv_stream_t *)&pipe_h, &pend, "reused!!", 8, NULL, on_write), 0);
    /* drain the peer while the loop writes the rest (bounded) */
    static char got[1 << 20];
    size_t n = 0;
    for (int i = 0; i < 2000 && n < filled + 16; i++) {
        ssize_t r = recv(peer, got + n, sizeof(got) - n, 0);
        if (r > 0) n += (size_t)r;
        run_round();
    }
    CHECK_EQ_INT(n, filled + 16);
    CHECK(n >= 16 && memcmp(got + n - 16, "the tailreused!!", 16) == 0);
    CHECK(cb_calls >= 1); /* the queued part completed */
    CHECK_EQ_INT(cb_status, 0);
    close_pair();
}

static void test_flush_sends_now(void)
{
    open_pair();
    write_str("before close");
    gw_stream_flush((uv_stream_t *)&pipe_h, &pend);
    CHECK_EQ_INT(pend, 0);
    CHECK_EQ_STR(peer_read(NULL), "before close");
    close_pair();
}

static void test_failure_reaches_the_callback(void)
{
    open_pair();
    close(peer);
    peer = -1;
    CHECK_EQ_INT(write_str("to nobody"), 0);
    CHECK_EQ_INT(cb_calls, 0);
    run_round();
    CHECK_EQ_INT(cb_calls, 1);
    CHECK(cb_status < 0);
    CHECK_EQ_INT(pend, 0);
    close_pair();
}

/* A write made after the round's flush (here: by a close callback, which runs after the check
 * phase) must leave before the loop blocks again, not when the next event (a timer 300 ms
 * later) ends that wait: a thread blocked on the peer notes when the bytes arrive. */
static uv_timer_t wake, later;
static uint64_t t_start, t_arrived;
static char arrived[16];

static void on_wake_closed(uv_handle_t *h)
{
    (void)h;
    write_str("late");
}
static void on_wake(uv_timer_t *t) { uv_close((uv_handle_t *)t, on_wake_closed); }
static void on_later(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

static void peer_thread(void *arg)
{
    (void)arg;
    struct pollfd pfd = {.fd = peer, .events = POLLIN};
    if (poll(&pfd, 1, 5000) == 1) {
        t_arrived = uv_hrtime();
        ssize_t n = recv(peer, arrived, sizeof(arrived) - 1, 0);
        if (n > 0) arrived[n] = 0;
    }
}

static void test_loop_does_not_block_on_waiting_writes(void)
{
    open_pair();
    uv_thread_t th;
    t_start = uv_hrtime();
    CHECK_EQ_INT(uv_thread_create(&th, peer_thread, NULL), 0);
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 1, 0); /* the round with the late write */
    uv_timer_init(&loop, &later);
    uv_timer_start(&later, on_later, 300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_thread_join(&th);
    CHECK_EQ_STR(arrived, "late");
    CHECK(t_arrived > t_start && (t_arrived - t_start) / 1000000 < 150);
    close_pair();
}

static void test_without_batch_writes_go_at_once(void)
{
    gw_wbatch_attach(NULL);
    open_pair();
    write_str("direct");
    CHECK_EQ_INT(pend, 0);
    CHECK_EQ_STR(peer_read(NULL), "direct");
    close_pair();
    gw_wbatch_attach(&batch);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    gw_wbatch_init(&batch, &loop);
    gw_wbatch_attach(&batch);
    GW_RUN(test_writes_wait_for_the_round);
    GW_RUN(test_copy_and_order_with_a_big_write);
    GW_RUN(test_short_copy_when_the_socket_is_full);
    GW_RUN(test_flush_sends_now);
    GW_RUN(test_failure_reaches_the_callback);
    GW_RUN(test_loop_does_not_block_on_waiting_writes);
    GW_RUN(test_without_batch_writes_go_at_once);
    gw_wbatch_close(&batch);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_writeq_drain_cache();
    gw_block_drain_cache();
    return gw_test_summary();
}
