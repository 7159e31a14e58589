/* log.c: formats JSON log lines and writes each with a single write(2) so threads never interleave. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"

int gw__log_level = GW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "dpanic", "panic", "fatal"};

int gw_log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *gw_log_level_name(int level)
{
    if (level < 0 || level > GW_LOG_FATAL) return "info";
    return level_names[level];
}

void gw_log_set_level(int level) { __atomic_store_n(&gw__log_level, level, __ATOMIC_RELAXED); }
int gw_log_get_level(void) { return __atomic_load_n(&gw__log_level, __ATOMIC_RELAXED); }

static void json_escape(gw_buf_t *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': gw_buf_append(b, "\\\"", 2); break;
        case '\\': gw_buf_append(b, "\\\\", 2); break;
        case '\n': gw_buf_append(b, "\\n", 2); break;
        case '\r': gw_buf_append(b, "\\r", 2); break;
        case '\t': gw_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20) gw_buf_appendf(b, "\\u%04x", *p);
            else gw_buf_append(b, p, 1);
        }
    }
}

void gw_log(int level, const char *msg, ...)
{
    if (!gw_log_enabled(level)) return;
    gw_buf_t b;
    gw_buf_init(&b, 64 * 1024);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    gw_buf_appendf(&b, "{\"level\":\"%s\",\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"msg\":\"",
                   gw_log_level_name(level), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    json_escape(&b, msg);
    gw_buf_append(&b, "\"", 1);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (!v) continue;
        gw_buf_append(&b, ",\"", 2);
        json_escape(&b, k);
        gw_buf_append(&b, "\":\"", 3);
        json_escape(&b, v);
        gw_buf_append(&b, "\"", 1);
    }
    va_end(ap);
    gw_buf_append(&b, "}\n", 2);
    ssize_t off = 0;
    while ((size_t)off < b.len) {
        ssize_t w = write(2, b.base + off, b.len - (size_t)off);
        if (w <= 0) break;
        off += w;
    }
    gw_buf_free(&b);
}
