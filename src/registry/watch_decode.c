/* watch_decode.c: Kubernetes watch stream framing (JSON structure: depth, strings, escapes) and
 * event decoding with jansson. A complete event inside one chunk is parsed in place; only the
 * bytes of an event split across chunks are copied, into a buffer capped at max_event. */
#include "registry/watch_decode.h"

#include <string.h>

#include "util/common.h"

/* An event buffer larger than this is freed after its event rather than kept for the next. */
#define KEEP_BUF_BYTES (64 * 1024)

static const char *const type_names[] = {
    [GW_WATCH_ADDED] = "ADDED",       [GW_WATCH_MODIFIED] = "MODIFIED", [GW_WATCH_DELETED] = "DELETED",
    [GW_WATCH_BOOKMARK] = "BOOKMARK", [GW_WATCH_ERROR] = "ERROR",
};

const char *gw_watch_type_name(gw_watch_type_t t)
{
    return (unsigned)t < GW_ARRAY_SIZE(type_names) ? type_names[t] : "?";
}

void gw_watch_decoder_init(gw_watch_decoder_t *d, size_t max_event)
{
    memset(d, 0, sizeof(*d));
    d->_max = max_event < 1 ? 1 : GW_MIN(max_event, GW_WATCH_MAX_EVENT_LIMIT);
    gw_buf_init(&d->_buf, d->_max);
}

void gw_watch_decoder_free(gw_watch_decoder_t *d)
{
    gw_buf_free(&d->_buf);
}

void gw_watch_decoder_reset(gw_watch_decoder_t *d)
{
    gw_buf_free(&d->_buf);
    d->_depth = 0;
    d->_in_string = d->_escape = false;
    d->_failed = NULL;
}

bool gw_watch_pending(const gw_watch_decoder_t *d)
{
    return !d->_failed && d->_depth > 0;
}

static int fail(gw_watch_decoder_t *d, const char *reason, const char **why)
{
    gw_watch_decoder_reset(d);
    d->_failed = reason;
    if (why) *why = reason;
    return GW_EBADMSG;
}

/* Scans p[0..n) of the unfinished event (its state in d). Returns true with *end just past the
 * bracket that closes the event (state back to "between events"), or false with all n bytes
 * scanned and the state saved. */
static bool scan(gw_watch_decoder_t *d, const char *p, size_t n, size_t *end)
{
    size_t depth = d->_depth;
    bool in_str = d->_in_string, esc = d->_escape;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            d->_depth = 0;
            d->_in_string = d->_escape = false;
            *end = i + 1;
            return true;
        }
    }
    d->_depth = depth;
    d->_in_string = in_str;
    d->_escape = esc;
    return false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Why a value starting with c is refused: another JSON value, or no JSON at all. */
static const char *bad_start(char c)
{
    return (c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n')
               ? "event is not a JSON object"
               : "event is not valid JSON";
}

static int event_type(const json_t *v, gw_watch_type_t *t)
{
    if (!json_is_string(v)) return GW_EINVAL;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < GW_ARRAY_SIZE(type_names); i++) {
        if (strcmp(s, type_names[i]) == 0 && json_string_length(v) == strlen(type_names[i])) {
            *t = (gw_watch_type_t)i;
            return GW_OK;
        }
    }
    return GW_ENOENT;
}

/* Parses one complete event (ev[0..len)) and hands it to cb. The event's bytes are not used
 * after parsing, so the buffer is emptied before cb runs: the decoder is between events then. */
static int deliver(gw_watch_decoder_t *d, const char *evp, size_t len, gw_watch_cb cb, void *ud, const char **why)
{
    json_error_t je;
    json_t *j = json_loadb(evp, len, 0, &je);
    if (d->_buf.cap > KEEP_BUF_BYTES) gw_buf_free(&d->_buf);
    else gw_buf_reset(&d->_buf);
    if (!j) return fail(d, "event is not valid JSON", why);
    const char *bad = NULL;
    gw_watch_event_t ev = {0};
    int trc = json_is_object(j) ? event_type(json_object_get(j, "type"), &ev.type) : GW_EINVAL;
    if (!json_is_object(j)) bad = "event is not a JSON object";
    else if (trc == GW_EINVAL) bad = "event without type";
    else if (trc != GW_OK) bad = "unknown event type";
    else if (!json_is_object(ev.object = json_object_get(j, "object"))) bad = "event without object";
    if (bad) {
        json_decref(j);
        return fail(d, bad, why);
    }
    int rc = cb(ud, &ev);
    json_decref(j);
    return rc ? GW_DECLINED : GW_OK;
}

int gw_watch_feed(gw_watch_decoder_t *d, const char *p, size_t n, gw_watch_cb cb, void *ud, const char **why)
{
    if (why) *why = NULL;
    if (d->_failed) {
        if (why) *why = d->_failed;
        return GW_EBADMSG;
    }
    size_t i = 0;
    while (i < n) {
        if (d->_depth == 0) { /* between events */
            while (i < n && is_space(p[i])) i++;
            if (i == n) break;
            if (p[i] != '{') return fail(d, bad_start(p[i]), why);
        }
        size_t start = i, room = d->_max - d->_buf.len; /* bytes this event may still take */
        size_t lim = n - start <= room ? n : start + room, end = 0;
        if (!scan(d, p + start, lim - start, &end)) {
            if (lim < n || gw_buf_append(&d->_buf, p + start, n - start) != GW_OK)
                return fail(d, "event larger than the limit", why);
            return GW_OK;
        }
        end += start;
        int rc;
        if (d->_buf.len == 0) {
            rc = deliver(d, p + start, end - start, cb, ud, why);
        } else if (gw_buf_append(&d->_buf, p + start, end - start) != GW_OK) {
            return fail(d, "event larger than the limit", why); /* cannot happen: end <= lim */
        } else {
            rc = deliver(d, d->_buf.base, d->_buf.len, cb, ud, why);
        }
        if (rc != GW_OK) return rc;
        i = end;
    }
    return GW_OK;
}
