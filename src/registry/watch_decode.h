/* watch_decode.h: the body of a Kubernetes watch response (`?watch=1`) -> events. The body is a
 * stream of JSON objects ({"type":"ADDED","object":{...}}), in practice one per line, arriving
 * in arbitrary chunks. Like client-go, events are framed by JSON structure rather than by
 * newlines, so pretty-printed or back-to-back objects decode too. Pure: no I/O, no logging;
 * not for: what an event means to the registry (source_kube.c). */
#ifndef GW_REGISTRY_WATCH_DECODE_H
#define GW_REGISTRY_WATCH_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util/buf.h"

typedef enum {
    GW_WATCH_ADDED,
    GW_WATCH_MODIFIED,
    GW_WATCH_DELETED,
    GW_WATCH_BOOKMARK,
    GW_WATCH_ERROR,
} gw_watch_type_t;

typedef struct {
    gw_watch_type_t type;
    json_t *object; /* borrowed: a JSON object (for ERROR a metav1.Status), valid during the
                       callback only (json_incref to keep) */
} gw_watch_event_t;

/* Return 0 to go on, anything else to stop feeding (gw_watch_feed then returns GW_DECLINED). */
typedef int (*gw_watch_cb)(void *ud, const gw_watch_event_t *ev);

/* Private fields: callers embed the struct and touch it only through the functions below.
 * Between events _depth is 0 and _buf is empty. */
typedef struct {
    gw_buf_t _buf;        /* bytes of the unfinished event (capped at max_event) */
    size_t _max;          /* max_event */
    size_t _depth;        /* open '{' / '[' of the unfinished event; 0 between events */
    bool _in_string;      /* inside a JSON string of the unfinished event */
    bool _escape;         /* after a '\\' inside that string */
    const char *_failed;  /* the static reason of the error that stopped the decoder, or NULL */
} gw_watch_decoder_t;

/* Largest event gw_watch_decoder_init accepts as max_event (jansson and gw_buf_t are happy far
 * beyond; this bounds what one stream can make us allocate). */
#define GW_WATCH_MAX_EVENT_LIMIT ((size_t)1 << 30)

/* max_event: the largest event accepted (bytes of one JSON object, from '{' to '}'); 0 or
 * values above GW_WATCH_MAX_EVENT_LIMIT are clamped to 1 and the limit. Cannot fail; nothing
 * is allocated until bytes of an unfinished event must be kept. */
void gw_watch_decoder_init(gw_watch_decoder_t *d, size_t max_event);

/* Feeds the next n bytes of the body (p is only read; it need not be NUL-terminated and may be
 * NULL when n is 0). Calls cb once per complete event, in order, with an object the decoder
 * owns and drops after cb returns. Whitespace between events (blank lines, "\r\n" line ends)
 * is ignored. Returns:
 *  - 0: everything consumed (a partial event is kept for the next call);
 *  - GW_DECLINED: cb returned non-zero; the bytes of p after that event are not consumed and
 *    the decoder is left between events (as after a reset);
 *  - GW_EBADMSG with *why (when why is not NULL) set to a static text: "event is not valid
 *    JSON", "event is not a JSON object", "event without type", "unknown event type", "event
 *    without object", "event larger than the limit". Events before the bad one were delivered.
 *    The decoder is then unusable (further feeds return the same error without calling cb)
 *    until gw_watch_decoder_reset; its buffer is already freed.
 * *why (when why is not NULL) is NULL unless the result is GW_EBADMSG. cb must not feed, reset
 * or free d (it may do so once gw_watch_feed has returned).
 * Objects are parsed by jansson as they are (duplicate keys: the last wins; integers beyond
 * int64 or "\u0000" in strings make the event invalid JSON).
 * An event's "type" must be one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR (exact case) and
 * its "object" a JSON object; other members are ignored. */
int gw_watch_feed(gw_watch_decoder_t *d, const char *p, size_t n, gw_watch_cb cb, void *ud, const char **why);

/* True when bytes of an unfinished event are buffered (a stream that ends here was cut).
 * False between events and after an error. */
bool gw_watch_pending(const gw_watch_decoder_t *d);

/* Drops any partial event and the error state; keeps max_event. The decoder is then as after
 * init (the buffer's memory is freed). */
void gw_watch_decoder_reset(gw_watch_decoder_t *d);

/* Frees the buffer. The decoder may be re-initialised or reset and used again afterwards. */
void gw_watch_decoder_free(gw_watch_decoder_t *d);

/* "ADDED", "MODIFIED", ... for logs; "?" for values outside the enum. */
const char *gw_watch_type_name(gw_watch_type_t t);

#endif
