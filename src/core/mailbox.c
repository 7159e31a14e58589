/* mailbox.c: mutex-guarded message FIFO plus a uv_async wake-up. */
#include "core/mailbox.h"

void gw_mailbox_init(gw_mailbox_t *b, uv_loop_t *loop, uv_async_cb cb, void *data)
{
    uv_mutex_init(&b->lock);
    b->head = b->tail = NULL;
    uv_async_init(loop, &b->wake, cb);
    b->wake.data = data;
}

void gw_mailbox_post(gw_mailbox_t *b, gw_mail_t *m)
{
    m->next = NULL;
    uv_mutex_lock(&b->lock);
    if (b->tail) b->tail->next = m;
    else b->head = m;
    b->tail = m;
    uv_mutex_unlock(&b->lock);
    uv_async_send(&b->wake);
}

gw_mail_t *gw_mailbox_take(gw_mailbox_t *b)
{
    uv_mutex_lock(&b->lock);
    gw_mail_t *m = b->head;
    b->head = b->tail = NULL;
    uv_mutex_unlock(&b->lock);
    return m;
}

void gw_mailbox_close(gw_mailbox_t *b, uv_close_cb close_cb) { uv_close((uv_handle_t *)&b->wake, close_cb); }

void gw_mailbox_destroy(gw_mailbox_t *b) { uv_mutex_destroy(&b->lock); }
