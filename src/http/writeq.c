/* writeq.c: try-write-then-queue with at most two pieces; see writeq.h. */
#include "http/writeq.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

int gw_stream_writev(uv_stream_t *s, char *heap, size_t hlen, gw_block_t *b, const char *p, size_t len,
                     void *owner, uv_write_cb cb)
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
    gw_write_t *wr = gw_malloc(sizeof(*wr));
    wr->block = b;
    wr->heap = heap;
    wr->owner = owner;
    rc = uv_write(&wr->w, s, cur, n, cb);
    if (rc < 0) {
        free(wr);
        goto drop;
    }
    return 0;
drop:
    if (b) gw_block_unref(b);
    free(heap);
    return rc;
}

int gw_stream_write_copy(uv_stream_t *s, const char *p, size_t len, void *owner, uv_write_cb cb)
{
    if (!len) return 0;
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
    return gw_stream_writev(s, heap, len, NULL, NULL, 0, owner, cb);
}

void *gw_write_done(uv_write_t *w)
{
    gw_write_t *wr = (gw_write_t *)w;
    void *owner = wr->owner;
    if (wr->block) gw_block_unref(wr->block);
    free(wr->heap);
    free(wr);
    return owner;
}
