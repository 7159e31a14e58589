/* mailbox.h: a FIFO of messages from any thread to one libuv loop, woken through uv_async: the
 * only way worker loops and the control loop talk besides the published snapshot. Messages
 * embed gw_mail_t as their first member; their meaning is the users'. */
#ifndef GW_CORE_MAILBOX_H
#define GW_CORE_MAILBOX_H

#include <uv.h>

typedef struct gw_mail_s {
    struct gw_mail_s *next;
} gw_mail_t;

typedef struct {
    uv_mutex_t lock;
    gw_mail_t *head, *tail;
    uv_async_t wake;  /* wake.data is the owner's */
} gw_mailbox_t;

/* Sets up b on loop; cb runs on that loop after posts (take the messages there). */
void gw_mailbox_init(gw_mailbox_t *b, uv_loop_t *loop, uv_async_cb cb, void *data);
/* Appends m (ownership passes to the receiver) and wakes the loop. Thread-safe. */
void gw_mailbox_post(gw_mailbox_t *b, gw_mail_t *m);
/* Takes every queued message, oldest first, as a list. Thread-safe. */
gw_mail_t *gw_mailbox_take(gw_mailbox_t *b);
/* Closes the wake handle; close_cb runs when done (then take what is left and free it). The
 * lock is destroyed by gw_mailbox_destroy, after that. */
void gw_mailbox_close(gw_mailbox_t *b, uv_close_cb close_cb);
void gw_mailbox_destroy(gw_mailbox_t *b);

#endif
