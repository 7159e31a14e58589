/* log.c: formats JSON log lines and writes each whole under one lock, so threads never interleave. */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "util/buf.h"

int gw__log_level = GW_LOG_INFO;

static FILE *log_sink; /* NULL: fd 2 */

#define LINE_MAX_BYTES (64 * 1024)
/* Room kept for what closes a line: '"' + ,"logTruncated":"true" + "}\n". */
#define LINE_TAIL_RESERVE 32

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

void gw_log_set_sink(FILE *f) { __atomic_store_n(&log_sink, f, __ATOMIC_RELEASE); }

/* Length of the well-formed UTF-8 sequence at p (p[0] >= 0x80), 0 if it is ill-formed.
 * Table 3-7 of the Unicode standard: the second byte's range depends on the lead byte,
 * which excludes overlong forms, surrogates and values above U+10FFFF. avail: bytes readable
 * at p. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;      /* overlong below U+0800 */
        else if (c == 0xed) hi = 0x9f; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;      /* overlong below U+10000 */
        else if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, 0xc0, 0xc1, 0xf5..0xff */
    }
    if (avail < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return n;
}

/* Appends n bytes if the line stays within limit; false (nothing appended) otherwise. */
static bool put(gw_buf_t *b, size_t limit, const void *p, size_t n)
{
    if (b->len + n > limit) return false;
    return gw_buf_append(b, p, n) == 0;
}

/* Appends s JSON-escaped (scheme in log.h) without the quotes. Returns false when the line
 * limit was reached: what fit is there, cut between two escapes / characters. */
static bool json_escape_n(gw_buf_t *b, size_t limit, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* a run of bytes copied as they are */
        const unsigned char *q = p;
        while (q < end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\') q++;
        if (q > p) {
            size_t n = (size_t)(q - p);
            if (b->len + n > limit) {
                if (b->len < limit) put(b, limit, p, limit - b->len); /* ASCII: any cut is a boundary */
                return false;
            }
            if (!put(b, limit, p, n)) return false;
            p = q;
            continue;
        }
        char esc[8];
        const void *out = esc;
        size_t n;
        switch (*p) {
        case '"': memcpy(esc, "\\\"", n = 2); break;
        case '\\': memcpy(esc, "\\\\", n = 2); break;
        case '\n': memcpy(esc, "\\n", n = 2); break;
        case '\r': memcpy(esc, "\\r", n = 2); break;
        case '\t': memcpy(esc, "\\t", n = 2); break;
        default:
            if (*p < 0x20) {
                n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
            } else if ((n = utf8_len(p, (size_t)(end - p))) != 0) {
                out = p; /* well-formed: copied unchanged */
            } else {
                memcpy(esc, "\\ufffd", n = 6);
                if (!put(b, limit, out, n)) return false;
                p++; /* one replacement per ill-formed byte */
                continue;
            }
        }
        if (!put(b, limit, out, n)) return false;
        p += out == esc ? 1 : n;
    }
    return true;
}

static bool json_escape(gw_buf_t *b, size_t limit, const char *s) { return json_escape_n(b, limit, s, strlen(s)); }

void gw_log_escape(gw_buf_t *b, const char *s, size_t len) { json_escape_n(b, (size_t)-1, s, len); }

static uv_mutex_t emit_mu;
static uv_once_t emit_once = UV_ONCE_INIT;
static void emit_mu_init(void)
{
    if (uv_mutex_init(&emit_mu) != 0) abort();
}

/* Writes whole lines; one writer at a time, so lines of different threads never interleave
 * (a pipe write above PIPE_BUF bytes is not atomic). */
static void emit(const char *p, size_t len)
{
    uv_once(&emit_once, emit_mu_init);
    uv_mutex_lock(&emit_mu);
    FILE *f = __atomic_load_n(&log_sink, __ATOMIC_ACQUIRE);
    if (f) {
        fwrite(p, 1, len, f);
        fflush(f);
    } else {
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(2, p + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
    }
    uv_mutex_unlock(&emit_mu);
}

void gw_log_write_lines(const char *p, size_t len) { emit(p, len); }

void gw_log(int level, const char *msg, ...)
{
    if (!gw_log_enabled(level)) return;
    gw_buf_t b;
    gw_buf_init(&b, LINE_MAX_BYTES);
    const size_t limit = LINE_MAX_BYTES - LINE_TAIL_RESERVE;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    gw_buf_appendf(&b, "{\"level\":\"%s\",\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"msg\":\"",
                   gw_log_level_name(level), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    bool whole = json_escape(&b, limit, msg);
    gw_buf_append(&b, "\"", 1); /* within the reserve */
    va_list ap;
    va_start(ap, msg);
    while (whole) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (!v) continue;
        size_t mark = b.len;
        if (!put(&b, limit, ",\"", 2) || !json_escape(&b, limit, k) || !put(&b, limit, "\":\"", 3)) {
            b.len = mark; /* no half key: drop the field */
            b.base[b.len] = '\0';
            whole = false;
            break;
        }
        whole = json_escape(&b, limit, v);
        gw_buf_append(&b, "\"", 1); /* within the reserve */
    }
    va_end(ap);
    if (!whole) gw_buf_append(&b, ",\"logTruncated\":\"true\"", 22);
    gw_buf_append(&b, "}\n", 2);
    emit(b.base, b.len);
    gw_buf_free(&b);
}
