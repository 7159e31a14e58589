/* cred_queue.c: mailboxes between the credential broker and the workers, and the list of
 * worker mailboxes the broker broadcasts to. The only locks of the credential path; none is
 * taken while a request reads a cached value. */
#include "auth/cred_queue.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define MAX_VIEWS 512

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t reg_lock;
static struct {
    gw_creds_t *c;
    gw_mailbox_t *box;
} views[MAX_VIEWS];
static size_t nviews;
static gw_mailbox_t *broker_box;

static void init_once(void) { uv_mutex_init(&reg_lock); }

gw_cq_msg_t *gw__cq_take(gw_mailbox_t *b) { return (gw_cq_msg_t *)gw_mailbox_take(b); }

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    free(s);
}

void gw__cq_free(gw_cq_msg_t *m)
{
    wipe_free(m->value);
    wipe_free(m->cookies);
    if (m->snap) gw_snapshot_unref(m->snap);
    free(m);
}

void gw__cq_free_list(gw_cq_msg_t *m)
{
    while (m) {
        gw_cq_msg_t *n = (gw_cq_msg_t *)m->mail.next;
        gw__cq_free(m);
        m = n;
    }
}

gw_cq_msg_t *gw__cq_copy(const gw_cq_msg_t *m)
{
    gw_cq_msg_t *c = gw_malloc(sizeof(*c));
    *c = *m;
    c->mail.next = NULL;
    c->value = m->value ? gw_strdup(m->value) : NULL;
    c->cookies = m->cookies ? gw_strdup(m->cookies) : NULL;
    if (c->snap) gw_snapshot_ref(c->snap);
    return c;
}

void gw__cq_broadcast(const gw_cq_msg_t *tmpl)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nviews; i++) gw_mailbox_post(views[i].box, &gw__cq_copy(tmpl)->mail);
    uv_mutex_unlock(&reg_lock);
}

void gw__cq_register(gw_creds_t *c, gw_mailbox_t *box)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&reg_lock);
    if (nviews < MAX_VIEWS) {
        views[nviews].c = c;
        views[nviews].box = box;
        nviews++;
    }
    uv_mutex_unlock(&reg_lock);
}

void gw__cq_unregister(gw_creds_t *c)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nviews; i++) {
        if (views[i].c == c) {
            views[i] = views[--nviews];
            break;
        }
    }
    uv_mutex_unlock(&reg_lock);
}

void gw__cq_set_broker_box(gw_mailbox_t *b)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&reg_lock);
    broker_box = b;
    uv_mutex_unlock(&reg_lock);
}

gw_mailbox_t *gw__cq_broker_box(void)
{
    return broker_box;
}

void gw__cq_to_broker(gw_cq_msg_t *m)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&reg_lock);
    if (broker_box) {
        gw_mailbox_post(broker_box, &m->mail);
        m = NULL;
    }
    uv_mutex_unlock(&reg_lock);
    if (m) gw__cq_free(m);
}

void gw__cq_send_to(gw_creds_t *c, gw_cq_msg_t *m)
{
    uv_once(&once, init_once);
    uv_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nviews && m; i++) {
        if (views[i].c == c) {
            gw_mailbox_post(views[i].box, &m->mail);
            m = NULL;
        }
    }
    uv_mutex_unlock(&reg_lock);
    if (m) gw__cq_free(m);
}
