/* accesslog.h: one JSON line per request (at info level), formatted into a per-loop buffer
 * and written at most every GW_ACCESSLOG_FLUSH_MS (or at 64 KiB pending, or at shutdown), so
 * logging every request costs no syscall per request, at any load. */
#ifndef GW_HTTP_ACCESSLOG_H
#define GW_HTTP_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "util/buf.h"
#include "util/str.h"

#define GW_ACCESSLOG_FLUSH_MS 200

typedef struct {
    gw_buf_t buf;            /* lines not yet written */
    uv_timer_t flush;        /* armed while buf holds lines: writes them when it fires */
    bool enabled;            /* --accessLog */
    time_t stamp_sec;        /* second the cached stamp is for */
    char stamp[24];          /* "YYYY-MM-DDTHH:MM:SS" */
    int64_t wall_minus_loop; /* wall clock ms - loop time ms, re-read every second of loop time */
    uint64_t synced_at;      /* loop time of that reading */
} gw_accesslog_t;

/* What one line says. Strings may be empty/NULL (then omitted); no credential, cookie, query
 * value or header value other than the request id ever goes in. */
typedef struct {
    gw_str_t method;
    gw_str_t path;           /* request path without the query */
    const char *app, *service;
    int status;              /* sent to the client (499: nothing sent, the client left) */
    int upstream_status;     /* 0: no upstream answer */
    uint64_t bytes_in, bytes_out;
    uint64_t total_ns, upstream_ns;
    gw_str_t request_id;
    const char *client;      /* peer address */
} gw_access_t;

void gw_accesslog_init(gw_accesslog_t *a, uv_loop_t *loop, bool enabled);
/* Writes what is pending and closes the handle (loop teardown). */
void gw_accesslog_close(gw_accesslog_t *a);
/* True when a line would be written (flag on and level info or lower). */
bool gw_accesslog_on(const gw_accesslog_t *a);
void gw_accesslog_write(gw_accesslog_t *a, const gw_access_t *e);
/* Formats e as one line (with '\n') into b; for the writer and its tests. */
void gw_accesslog_format(gw_buf_t *b, const char *stamp, unsigned ms, const gw_access_t *e);

#endif
