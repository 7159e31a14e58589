/* writeq.h: writing to a libuv stream without copying: a malloc'd head and/or a slice of a
 * refcounted block go out in one writev when the kernel takes them, and are queued (with
 * their memory kept alive) only when it does not. Shared by client and upstream connections. */
#ifndef GW_HTTP_WRITEQ_H
#define GW_HTTP_WRITEQ_H

#include <uv.h>

#include "util/block.h"

typedef struct {
    uv_write_t w;
    gw_block_t *block; /* reference held until written, or NULL */
    char *heap;        /* malloc'd bytes, or NULL */
    void *owner;
} gw_write_t;

/* Writes heap[0..hlen) then p[0..len) (p inside block b), in order. Ownership of heap and of
 * the caller's reference on b passes here in every case. Returns 0 when written or queued
 * (cb then runs once for the queued part, with the gw_write_t as its uv_write_t), or a
 * negative uv error (nothing queued, nothing will be called). */
int gw_stream_writev(uv_stream_t *s, char *heap, size_t hlen, gw_block_t *b, const char *p, size_t len,
                     void *owner, uv_write_cb cb);

/* Writes p[0..len) (the caller's memory): tried at once, and only what the kernel did not
 * take is copied and queued. Same return and callback contract as gw_stream_writev. */
int gw_stream_write_copy(uv_stream_t *s, const char *p, size_t len, void *owner, uv_write_cb cb);

/* In a write callback: releases what the write held and returns its owner. */
void *gw_write_done(uv_write_t *w);

#endif
