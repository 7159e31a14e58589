/* log.h: JSON-lines logging to stderr with a level changeable at run time from any thread. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum {
    GW_LOG_DEBUG = 0,
    GW_LOG_INFO,
    GW_LOG_WARN,
    GW_LOG_ERROR,
    GW_LOG_DPANIC,
    GW_LOG_PANIC,
    GW_LOG_FATAL,
};

/* Parses a level name (debug, info, warn, error, dpanic, panic, fatal); -1 if unknown. */
int gw_log_level_parse(const char *name);
const char *gw_log_level_name(int level);
void gw_log_set_level(int level);
int gw_log_get_level(void);
static inline bool gw_log_enabled(int level);

/* Writes one line {"level":..,"ts":..,"msg":..,k1:v1,...}. Arguments after msg are
 * key/value string pairs terminated by NULL; a value NULL is skipped. Never pass
 * credentials, tokens, cookies or Authorization here.
 *
 * Every line is valid JSON (RFC 8259) whatever bytes msg, keys and values hold. Each string
 * is escaped byte by byte, left to right:
 *   - '"' and '\\' as \" and \\; '\n', '\r', '\t' as \n, \r, \t; every other byte below
 *     0x20 as \u00XX (lower-case hex). Other ASCII bytes (0x20..0x7f, DEL included) are
 *     copied as they are, so ASCII input gives the same bytes as before this scheme existed.
 *   - A well-formed UTF-8 sequence (RFC 3629: shortest form, U+0080..U+D7FF or
 *     U+E000..U+10FFFF) is copied unchanged: valid UTF-8 input round-trips exactly.
 *   - Any other byte, i.e. every byte of an ill-formed sequence (a stray continuation byte,
 *     0xC0, 0xC1, 0xF5..0xFF, a lead byte not followed by enough continuation bytes,
 *     an overlong form, an encoded surrogate U+D800..U+DFFF, a value above U+10FFFF), is
 *     written as \ufffd, one per byte: the escaper replaces the lead byte, then resumes at
 *     the next byte (which, being a continuation byte or a new lead, is judged on its own).
 * A line is at most 64 KiB. A string that does not fit is cut at a character (escape)
 * boundary and closed, the fields after it are dropped, and "logTruncated":"true" is added,
 * so an over-long line is still one valid JSON object. */
void gw_log(int level, const char *msg, ...) __attribute__((sentinel));

/* Appends s[0..len) JSON-escaped (scheme above, no length limit, no quotes) to b: for writers
 * that format their own lines (the access log). */
struct gw_buf_s;
void gw_log_escape(struct gw_buf_s *b, const char *s, size_t len);
/* Writes complete, already formatted lines (each ending in '\n') as one unit, never
 * interleaved with other threads' lines. */
void gw_log_write_lines(const char *p, size_t len);

/* For tests and fuzzers only: lines go to f (fwrite + fflush, one fwrite per line) instead
 * of stderr; NULL restores stderr (one write(2) per line on fd 2, so threads never interleave).
 * Not meant to be switched while other threads log. */
void gw_log_set_sink(FILE *f);

/* --- inline --- */
extern int gw__log_level;
static inline bool gw_log_enabled(int level)
{
    return level >= __atomic_load_n(&gw__log_level, __ATOMIC_RELAXED);
}

#endif
