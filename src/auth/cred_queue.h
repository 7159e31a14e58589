/* cred_queue.h: the messages between the credential broker (control loop) and the workers'
 * credential views (carried by core/mailbox), and the list of views the broker broadcasts to.
 * Internal to src/auth. */
#ifndef GW_AUTH_CRED_QUEUE_H
#define GW_AUTH_CRED_QUEUE_H

#include <stdint.h>

#include <uv.h>

#include "auth/creds.h"
#include "core/mailbox.h"

typedef enum {
    /* worker -> broker */
    GW_CQ_FETCH,       /* a request waits: send the value (fetch it unless cached and valid) */
    GW_CQ_REFRESH,     /* the value `serial` entered its refresh-ahead window */
    GW_CQ_INVALIDATE,  /* the upstream refused the value `serial` */
    /* broker -> workers */
    GW_CQ_VALUE,       /* a value (value, cookies, serial, expires_ms, refresh_ms) */
    GW_CQ_ERROR,       /* a fetch failed (status, value = error text) */
    GW_CQ_EVICT,       /* no API uses the key any more */
} gw_cq_op_t;

typedef struct gw_cq_msg_s {
    gw_mail_t mail;   /* first: messages travel in a gw_mailbox_t */
    gw_cq_op_t op;
    gw_cred_kind_t kind;
    uint8_t key[32];
    uint64_t serial;
    uint64_t expires_ms, refresh_ms;  /* uv_hrtime()-based milliseconds; 0: none */
    int status;
    char *value;      /* VALUE: "Bearer x" or the CSRF token; ERROR: error text */
    char *cookies;    /* VALUE of a CSRF token: "a=1; b=2" or NULL */
    gw_snapshot_t *snap;     /* FETCH/REFRESH: a reference holding api */
    const gw_api_t *api;
    gw_creds_t *from;        /* FETCH: the worker to answer */
} gw_cq_msg_t;


/* Takes every queued message (a list in order, linked through mail.next). Thread-safe. */
gw_cq_msg_t *gw__cq_take(gw_mailbox_t *b);
/* Frees a message: its strings (secret bytes wiped) and its snapshot reference. */
void gw__cq_free(gw_cq_msg_t *m);
/* Frees a whole list. */
void gw__cq_free_list(gw_cq_msg_t *m);

/* Worker views the broker broadcasts to (creds.c registers/unregisters; broker.c iterates
 * under the same lock). */
void gw__cq_broadcast(const gw_cq_msg_t *tmpl);
void gw__cq_register(gw_creds_t *c, gw_mailbox_t *box);
void gw__cq_unregister(gw_creds_t *c);
/* The broker's own mailbox (NULL before gw_broker_start / after gw_broker_stop). */
gw_mailbox_t *gw__cq_broker_box(void);
void gw__cq_set_broker_box(gw_mailbox_t *b);
/* Posts m to the worker view c if it is still registered; frees m otherwise. */
void gw__cq_send_to(gw_creds_t *c, gw_cq_msg_t *m);
/* Posts to the broker; frees m when the broker is not running. */
void gw__cq_to_broker(gw_cq_msg_t *m);
/* Copies a message (strings duplicated, snapshot reference taken). */
gw_cq_msg_t *gw__cq_copy(const gw_cq_msg_t *m);

#endif
