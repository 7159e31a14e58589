/* writeq.h: writing to a libuv stream without copying: a malloc'd head and/or a slice of a
 * refcounted block go out in one writev when the kernel takes them, and are queued (with
 * their memory kept alive) only when it does not. Shared by client and upstream connections.
 * On a loop with a write batch (gw_wbatch_t: the workers'), writes made while the loop handles
 * a round of events leave together after it, as HAProxy sends after reading: the
 * processes they wake (client, upstream) then find a whole round of work instead of being
 * woken, and preempting us, once per request. */
#ifndef GW_HTTP_WRITEQ_H
#define GW_HTTP_WRITEQ_H

#include <uv.h>

#include "util/block.h"

typedef struct gw_write_s gw_write_t;

/* The writes of one loop held until the end of its current round of events. */
typedef struct {
    uv_loop_t *loop;
    uv_check_t check;     /* after the poll phase: the round's writes go out */
    uv_prepare_t prepare; /* right before polling: writes made since (timers, later check
                           * handles, close callbacks) go out, so the loop never blocks on
                           * them; the workers start no prepare handle of their own */
    gw_write_t *head;
    gw_write_t **tail;
} gw_wbatch_t;

/* Sets up b on loop (its handles do not keep the loop alive). */
void gw_wbatch_init(gw_wbatch_t *b, uv_loop_t *loop);
/* Writes made on this thread from now on go through b (NULL: straight out, the default). */
void gw_wbatch_attach(gw_wbatch_t *b);
/* Sends what waits and closes b's handles (the loop then ends once its other handles did). */
void gw_wbatch_close(gw_wbatch_t *b);

/* At most this many bytes of one stream wait in a batch: more goes out at once, so a batch
 * never holds what backpressure (the write queue's high-water marks) should have seen. */
#define GW_WBATCH_MAX_BYTES (64 * 1024)

/* The writes of s that wait in this thread's batch go out now, in order (before a shutdown or
 * close of s, so nothing is lost or reordered). *pend: the owner's count of s's waiting
 * bytes (see gw_stream_writev). */
void gw_stream_flush(uv_stream_t *s, size_t *pend);

/* A copy this short waits in its write record instead of a buffer of its own. */
#define GW_WRITE_INLINE 512

struct gw_write_s {
    uv_write_t w;
    gw_block_t *block; /* reference held until written, or NULL */
    char *heap;        /* malloc'd bytes, or NULL */
    void *owner;
    /* while waiting in a batch: */
    gw_write_t *next;
    uv_stream_t *s;
    const char *p;
    size_t hlen, len;
    size_t *pend;
    uv_write_cb cb;
    char small[GW_WRITE_INLINE]; /* a short copy waits here (gw_stream_write_copy) */
};

/* Writes heap[0..hlen) then p[0..len) (p inside block b), in order. Ownership of heap and of
 * the caller's reference on b passes here in every case. Returns 0 when written or queued
 * (cb then runs once for the queued part, with the gw_write_t as its uv_write_t), or a
 * negative uv error (nothing queued, nothing will be called). With a batch attached the
 * write waits for the end of the round: 0, and a failure then reaches cb as a status < 0.
 * *pend (the owner's, one per stream, starting at 0) counts the bytes of s waiting there. */
int gw_stream_writev(uv_stream_t *s, size_t *pend, char *heap, size_t hlen, gw_block_t *b, const char *p,
                     size_t len, void *owner, uv_write_cb cb);

/* Writes p[0..len) (the caller's memory): tried at once, and only what the kernel did not
 * take is copied and queued. Same return and callback contract as gw_stream_writev. */
int gw_stream_write_copy(uv_stream_t *s, size_t *pend, const char *p, size_t len, void *owner, uv_write_cb cb);

/* In a write callback: releases what the write held and returns its owner. */
void *gw_write_done(uv_write_t *w);

/* Frees this thread's cache of spent writes (at the end of a worker thread). */
void gw_writeq_drain_cache(void);

#endif
