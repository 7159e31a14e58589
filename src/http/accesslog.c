/* accesslog.c: the access log writer (accesslog.h): hand-rolled formatting (no printf on the
 * request path), one write per flush period through the logger's lock. */
#include "http/accesslog.h"

#include <string.h>

#include "util/log.h"

/* Longest path logged (bytes before escaping); a longer one is cut (on a character boundary
 * or as U+FFFD) and "path_truncated":true is added. */
#define PATH_MAX_LOGGED 2048
/* Pending bytes that make the writer flush at once instead of when its timer fires. */
#define FLUSH_AT (64 * 1024)

static void flush(gw_accesslog_t *a)
{
    if (a->buf.len) gw_log_write_lines(a->buf.base, a->buf.len);
    a->buf.len = 0;
}

static void on_flush_timer(uv_timer_t *t) { flush(t->data); }

void gw_accesslog_init(gw_accesslog_t *a, uv_loop_t *loop, bool enabled)
{
    memset(a, 0, sizeof(*a));
    gw_buf_init(&a->buf, 1024 * 1024);
    a->enabled = enabled;
    uv_timer_init(loop, &a->flush);
    a->flush.data = a;
    uv_unref((uv_handle_t *)&a->flush);
}

void gw_accesslog_close(gw_accesslog_t *a)
{
    flush(a);
    gw_buf_free(&a->buf);
    uv_close((uv_handle_t *)&a->flush, NULL);
}

bool gw_accesslog_on(const gw_accesslog_t *a) { return a->enabled && gw_log_enabled(GW_LOG_INFO); }

static void lit(gw_buf_t *b, const char *s) { gw_buf_append(b, s, strlen(s)); }

static void u64(gw_buf_t *b, uint64_t v)
{
    char t[24];
    int i = (int)sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    gw_buf_append(b, t + i, sizeof(t) - (size_t)i);
}

/* ns as milliseconds with three decimals */
static void ms3(gw_buf_t *b, uint64_t ns)
{
    uint64_t us = ns / 1000;
    u64(b, us / 1000);
    char f[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10)};
    gw_buf_append(b, f, 4);
}

static void str_field(gw_buf_t *b, const char *key, const char *p, size_t n)
{
    lit(b, key);
    gw_log_escape(b, p, n);
    gw_buf_append(b, "\"", 1);
}

void gw_accesslog_format(gw_buf_t *b, const char *stamp, unsigned ms, const gw_access_t *e)
{
    lit(b, "{\"level\":\"info\",\"ts\":\"");
    lit(b, stamp);
    char m[6] = {'.', (char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
    gw_buf_append(b, m, 6);
    lit(b, ",\"msg\":\"request\"");
    str_field(b, ",\"method\":\"", e->method.p, e->method.n);
    if (e->app) str_field(b, ",\"app\":\"", e->app, strlen(e->app));
    if (e->service) str_field(b, ",\"service\":\"", e->service, strlen(e->service));
    bool cut = e->path.n > PATH_MAX_LOGGED;
    str_field(b, ",\"path\":\"", e->path.p, cut ? PATH_MAX_LOGGED : e->path.n);
    if (cut) lit(b, ",\"path_truncated\":true");
    lit(b, ",\"status\":");
    u64(b, (uint64_t)(e->status > 0 ? e->status : 0));
    if (e->upstream_status) {
        lit(b, ",\"upstream_status\":");
        u64(b, (uint64_t)e->upstream_status);
    }
    lit(b, ",\"bytes_in\":");
    u64(b, e->bytes_in);
    lit(b, ",\"bytes_out\":");
    u64(b, e->bytes_out);
    lit(b, ",\"duration_ms\":");
    ms3(b, e->total_ns);
    if (e->upstream_ns) {
        lit(b, ",\"upstream_ms\":");
        ms3(b, e->upstream_ns);
    }
    if (e->request_id.n) str_field(b, ",\"request_id\":\"", e->request_id.p, e->request_id.n);
    if (e->client) str_field(b, ",\"client\":\"", e->client, strlen(e->client));
    lit(b, "}\n");
}

void gw_accesslog_write(gw_accesslog_t *a, const gw_access_t *e)
{
    /* The time is the loop's (updated once per iteration, ms), mapped to the wall clock with
     * an offset read at most once a second: no clock call per request. */
    uint64_t now = uv_now(a->flush.loop);
    if (!a->synced_at || now - a->synced_at >= 1000) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        a->wall_minus_loop = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (int64_t)now;
        a->synced_at = now;
    }
    int64_t wall = (int64_t)now + a->wall_minus_loop;
    time_t sec = (time_t)(wall / 1000);
    if (sec != a->stamp_sec || !a->stamp[0]) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(a->stamp, sizeof(a->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        a->stamp_sec = sec;
    }
    if (!a->buf.len) uv_timer_start(&a->flush, on_flush_timer, GW_ACCESSLOG_FLUSH_MS, 0);
    gw_accesslog_format(&a->buf, a->stamp, (unsigned)(wall % 1000), e);
    if (a->buf.len >= FLUSH_AT) {
        flush(a);
        uv_timer_stop(&a->flush);
    }
}
