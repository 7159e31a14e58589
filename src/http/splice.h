/* splice.h: moves a known number of bytes from one socket to another through a kernel pipe
 * (splice(2)), so a large plain-HTTP response body never enters user space. The sockets stay
 * libuv's (uv_tcp_t): the caller stops reading from the source and has nothing queued towards
 * the destination; the pump watches dup()s of both with uv_poll_t (a dup is its own epoll
 * registration) and gives the fds back untouched when it ends. Pipes are cached per thread.
 * Not thread-safe: one loop. */
#ifndef GW_HTTP_SPLICE_H
#define GW_HTTP_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct gw_splice_s gw_splice_t;

/* How a pump ended. */
typedef enum {
    GW_SPLICE_DONE = 0,        /* every byte reached the destination */
    GW_SPLICE_UNSUPPORTED,     /* the kernel refused splice on these fds before a byte moved:
                                  the sockets are as they were, carry on without it */
    GW_SPLICE_ESOURCE,         /* the source closed or failed before the end */
    GW_SPLICE_EDEST,           /* the destination failed (peer gone) */
} gw_splice_end_t;

typedef struct {
    /* One round of the pump moved bytes: in from the source, out to the destination. */
    void (*on_moved)(void *ud, size_t in, size_t out);
    /* Every byte has been read from the source; called before the last ones are written (a
     * caller counting the response does it here, before the peer can hold all of it). May be
     * NULL. The pump goes on after it returns. */
    void (*on_source_done)(void *ud);
    /* The pump is over (its fds and handles are already let go); never called from inside
     * gw_splice_start or gw_splice_stop. status: the errno-style uv error, or 0. */
    void (*on_end)(void *ud, gw_splice_end_t how, int status);
} gw_splice_cb_t;

/* Starts moving `count` bytes from src_fd to dst_fd (both non-blocking sockets owned by the
 * caller). NULL when it cannot start (no pipe, no dup): carry on without it. */
gw_splice_t *gw_splice_start(uv_loop_t *loop, int src_fd, int dst_fd, uint64_t count, const gw_splice_cb_t *cb,
                             void *ud);
/* Ends the pump now; no callback follows. Bytes still in its pipe are lost. */
void gw_splice_stop(gw_splice_t *s);
/* Bytes the pump was started to move. */
uint64_t gw_splice_count(const gw_splice_t *s);
/* True while the pump waits for the destination to take bytes (not the source's fault). */
bool gw_splice_waiting_dest(const gw_splice_t *s);

/* Frees this thread's cached pipes (at the end of a worker thread). */
void gw_splice_drain_cache(void);

#endif
