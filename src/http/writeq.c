/* writeq.c: try-write-then-queue with at most two pieces, and the per-loop write batch; see
 * writeq.h. */
#include "http/writeq.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/freelist.h"

/* The batch of the loop running on this thread, if any. */
static _Thread_local gw_wbatch_t *tl_batch;
/* Spent gw_write_t, reused: up to two per request go through here. */
static _Thread_local gw_freelist_t tl_writes = {.max = GW_FREELIST_MAX};

static gw_write_t *write_new(void)
{
    gw_write_t *wr = gw_freelist_pop(&tl_writes);
    return wr ? wr : gw_malloc(sizeof(gw_write_t));
}

static void write_recycle(gw_write_t *wr)
{
    if (!gw_freelist_push(&tl_writes, wr)) free(wr);
}

/* Writes now what the kernel takes and queues the rest with libuv. Ownership of heap and of
 * the reference on b passes here. */
static int write_now(uv_stream_t *s, char *heap, size_t hlen, gw_block_t *b, const char *p,
                     size_t len, void *owner, uv_write_cb cb)
{
    int rc = 0;
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (hlen) bufs[n++] = uv_buf_init(heap, (unsigned)hlen);
    if (len) bufs[n++] = uv_buf_init((char *)p, (unsigned)len);
    if (n == 0) goto drop;
    uv_buf_t *cur = bufs;
    if (uv_stream_get_write_queue_size(s) == 0) {
        int w = uv_try_write(s, bufs, n);
        if (w == (int)(hlen + len)) goto drop;
        if (w > 0) {
            size_t left = (size_t)w;
            while (left >= cur->len) {
                left -= cur->len;
                cur++;
                n--;
            }
            cur->base += left;
            cur->len -= left;
        } else if (w != UV_EAGAIN && w != UV_ENOSYS) {
            rc = w;
            goto drop;
        }
    }
    gw_write_t *wr = write_new();
    wr->block = b;
    wr->heap = heap;
    wr->owner = owner;
    rc = uv_write(&wr->w, s, cur, n, cb);
    if (rc < 0) {
        write_recycle(wr);
        goto drop;
    }
    return 0;
drop:
    if (b) gw_block_unref(b);
    free(heap);
    return rc;
}

/* Writes p[0..len) (the caller's, not kept) now as far as the kernel takes it, and queues a
 * copy of the rest. */
static int write_copy_now(uv_stream_t *s, const char *p, size_t len, void *owner, uv_write_cb cb)
{
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t buf = uv_buf_init((char *)p, (unsigned)len);
        int w = uv_try_write(s, &buf, 1);
        if (w == (int)len) return 0;
        if (w > 0) {
            p += w;
            len -= (size_t)w;
        } else if (w != UV_EAGAIN && w != UV_ENOSYS) {
            return w;
        }
    }
    char *heap = gw_malloc(len);
    memcpy(heap, p, len);
    return write_now(s, heap, len, NULL, NULL, 0, owner, cb);
}

/* A waiting write goes out; a failure reaches its owner's callback, as a queued write's would. */
static void send_deferred(gw_write_t *e)
{
    *e->pend -= e->hlen + e->len;
    /* a short copy lives in e, which is reused once this returns */
    int rc = e->p == e->small ? write_copy_now(e->s, e->small, e->len, e->owner, e->cb)
                              : write_now(e->s, e->heap, e->hlen, e->block, e->p, e->len, e->owner, e->cb);
    if (rc == 0) {
        write_recycle(e);
        return;
    }
    e->block = NULL; /* write_now released them */
    e->heap = NULL;
    e->cb(&e->w, rc);
}

static void batch_flush(gw_wbatch_t *bt)
{
    gw_write_t *e;
    while ((e = bt->head)) { /* a callback may add writes: they go out in this same pass */
        bt->head = e->next;
        if (!bt->head) bt->tail = &bt->head;
        send_deferred(e);
    }
}

static void on_check(uv_check_t *h) { batch_flush(h->data); }
static void on_prepare(uv_prepare_t *h) { batch_flush(h->data); }

void gw_wbatch_init(gw_wbatch_t *bt, uv_loop_t *loop)
{
    bt->loop = loop;
    bt->head = NULL;
    bt->tail = &bt->head;
    uv_check_init(loop, &bt->check);
    uv_prepare_init(loop, &bt->prepare);
    bt->check.data = bt->prepare.data = bt;
    uv_check_start(&bt->check, on_check);
    uv_prepare_start(&bt->prepare, on_prepare);
    uv_unref((uv_handle_t *)&bt->check);
    uv_unref((uv_handle_t *)&bt->prepare);
}

void gw_wbatch_attach(gw_wbatch_t *bt) { tl_batch = bt; }

void gw_wbatch_close(gw_wbatch_t *bt)
{
    batch_flush(bt);
    if (tl_batch == bt) tl_batch = NULL;
    uv_close((uv_handle_t *)&bt->check, NULL);
    uv_close((uv_handle_t *)&bt->prepare, NULL);
}

void gw_stream_flush(uv_stream_t *s, size_t *pend)
{
    gw_wbatch_t *bt = tl_batch;
    if (!bt || !*pend) return;
    /* s's entries leave the batch first, so a callback flushing s again finds none */
    gw_write_t *mine = NULL, **mtail = &mine;
    gw_write_t **pp = &bt->head;
    while (*pp) {
        gw_write_t *e = *pp;
        if (e->s == s) {
            *pp = e->next;
            e->next = NULL;
            *mtail = e;
            mtail = &e->next;
        } else {
            pp = &e->next;
        }
    }
    bt->tail = pp;
    while (mine) {
        gw_write_t *e = mine;
        mine = e->next;
        send_deferred(e);
    }
}

/* e (its bytes set) waits at the end of the batch. */
static void enqueue(gw_wbatch_t *bt, gw_write_t *e, uv_stream_t *s, size_t *pend, size_t hlen, size_t len,
                    void *owner, uv_write_cb cb)
{
    e->owner = owner;
    e->next = NULL;
    e->s = s;
    e->hlen = hlen;
    e->len = len;
    e->pend = pend;
    e->cb = cb;
    *bt->tail = e;
    bt->tail = &e->next;
    *pend += hlen + len;
}

int gw_stream_writev(uv_stream_t *s, size_t *pend, char *heap, size_t hlen, gw_block_t *b, const char *p,
                     size_t len, void *owner, uv_write_cb cb)
{
    gw_wbatch_t *bt = tl_batch;
    if (bt && (*pend || uv_stream_get_write_queue_size(s) == 0)) {
        if (*pend + hlen + len <= GW_WBATCH_MAX_BYTES) {
            if (!hlen && !len) {
                free(heap);
                if (b) gw_block_unref(b);
                return 0;
            }
            gw_write_t *e = write_new();
            e->block = b;
            e->heap = heap;
            e->p = p;
            enqueue(bt, e, s, pend, hlen, len, owner, cb);
            return 0;
        }
        gw_stream_flush(s, pend); /* too much for a batch: what waits goes first, then this */
    }
    return write_now(s, heap, hlen, b, p, len, owner, cb);
}

int gw_stream_write_copy(uv_stream_t *s, size_t *pend, const char *p, size_t len, void *owner, uv_write_cb cb)
{
    if (!len) return 0;
    gw_wbatch_t *bt = tl_batch;
    if (bt && len <= GW_WRITE_INLINE && (*pend || uv_stream_get_write_queue_size(s) == 0) &&
        *pend + len <= GW_WBATCH_MAX_BYTES) {
        gw_write_t *e = write_new();
        memcpy(e->small, p, len);
        e->block = NULL;
        e->heap = NULL;
        e->p = e->small;
        enqueue(bt, e, s, pend, 0, len, owner, cb);
        return 0;
    }
    if (!bt) return write_copy_now(s, p, len, owner, cb);
    char *heap = gw_malloc(len);
    memcpy(heap, p, len);
    return gw_stream_writev(s, pend, heap, len, NULL, NULL, 0, owner, cb);
}

void *gw_write_done(uv_write_t *w)
{
    gw_write_t *wr = (gw_write_t *)w;
    void *owner = wr->owner;
    if (wr->block) gw_block_unref(wr->block);
    free(wr->heap);
    write_recycle(wr);
    return owner;
}

void gw_writeq_drain_cache(void) { gw_freelist_drain(&tl_writes); }
