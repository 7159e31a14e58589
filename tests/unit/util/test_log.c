/* test_log.c: unit tests for src/util/log.c: line format, ASCII escaping unchanged from the
 * original escaper, UTF-8 pass-through, \ufffd for each ill-formed byte, the 64 KiB line cap,
 * level filtering and the test sink (gw_log_set_sink). Every line is also parsed with jansson. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "util/buf.h"
#include "util/log.h"

/* ---- capture ---- */

static FILE *cap_f;
static char *cap_out;
static size_t cap_len;

static void cap_begin(void)
{
    free(cap_out);
    cap_out = NULL;
    cap_len = 0;
    cap_f = open_memstream(&cap_out, &cap_len);
    gw_log_set_sink(cap_f);
}

static const char *cap_end(void)
{
    gw_log_set_sink(NULL);
    fclose(cap_f);
    cap_f = NULL;
    return cap_out;
}

/* Logs at info (level set to debug) and returns what was written (valid until the next call). */
#define CAPTURE(...) (cap_begin(), gw_log(GW_LOG_INFO, __VA_ARGS__), cap_end())

/* The line with its timestamp value replaced by "T" (static storage). */
static const char *no_ts(const char *line)
{
    static char out[128 * 1024];
    const char *t = strstr(line, "\"ts\":\"");
    if (!t) return line;
    const char *e = strchr(t + 6, '"');
    if (!e) return line;
    snprintf(out, sizeof(out), "%.*s\"ts\":\"T%s", (int)(t - line), line, e);
    return out;
}

/* Parses one captured line (must end in exactly one '\n') strictly; NULL if invalid. */
static json_t *parse_line(const char *line)
{
    size_t n = strlen(line);
    if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1)) return NULL;
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    if (!j) fprintf(stderr, "json_loads: %s at %d: %.200s\n", err.text, err.position, line);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- reference: the escaper before the UTF-8 scheme (ASCII output must not change) ---- */

static void old_escape(gw_buf_t *b, const char *s)
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

/* ---- tests ---- */

static void test_format(void)
{
    const char *line = CAPTURE("hello", "a", "1", "skipped", (const char *)NULL, "b", "two words", NULL);
    CHECK_EQ_STR(no_ts(line), "{\"level\":\"info\",\"ts\":\"T\",\"msg\":\"hello\",\"a\":\"1\",\"b\":\"two words\"}\n");
    /* ts: 2024-01-02T03:04:05.678Z */
    const char *t = strstr(line, "\"ts\":\"");
    CHECK(t != NULL);
    if (t) {
        t += 6;
        CHECK(strlen(t) > 24 && t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' &&
              t[19] == '.' && t[23] == 'Z' && t[24] == '"');
    }
    json_t *j = parse_line(line);
    CHECK(j != NULL);
    CHECK_EQ_STR(jstr(j, "level"), "info");
    CHECK_EQ_STR(jstr(j, "msg"), "hello");
    CHECK(json_object_get(j, "skipped") == NULL);
    json_decref(j);

    line = (cap_begin(), gw_log(GW_LOG_ERROR, "boom", NULL), cap_end());
    CHECK_EQ_STR(no_ts(line), "{\"level\":\"error\",\"ts\":\"T\",\"msg\":\"boom\"}\n");
}

static void test_level_filter(void)
{
    gw_log_set_level(GW_LOG_WARN);
    const char *line = CAPTURE("not shown", NULL);
    CHECK_EQ_INT(cap_len, 0);
    CHECK(line == NULL || line[0] == '\0');
    line = (cap_begin(), gw_log(GW_LOG_WARN, "shown", NULL), cap_end());
    CHECK_EQ_STR(no_ts(line), "{\"level\":\"warn\",\"ts\":\"T\",\"msg\":\"shown\"}\n");
    gw_log_set_level(GW_LOG_DEBUG);
}

/* Every ASCII byte, alone and in context, gives exactly the bytes of the original escaper. */
static void test_ascii_unchanged(void)
{
    char all[128];
    for (int c = 1; c < 128; c++) all[c - 1] = (char)c;
    all[127] = '\0';
    const char *cases[] = {all, "", "plain", "q\"uo\\te", "\n\r\t\b\f\x01\x1f\x7f", "/a b/c?d=e&f", NULL};
    for (int i = 0; cases[i]; i++) {
        gw_buf_t want;
        gw_buf_init(&want, 1 << 20);
        gw_buf_puts(&want, "{\"level\":\"info\",\"ts\":\"T\",\"msg\":\"");
        old_escape(&want, cases[i]);
        gw_buf_puts(&want, "\",\"");
        old_escape(&want, cases[i]);
        gw_buf_puts(&want, "x\":\"");
        old_escape(&want, cases[i]);
        gw_buf_puts(&want, "\"}\n");
        char key[256];
        snprintf(key, sizeof(key), "%sx", cases[i]);
        const char *line = CAPTURE(cases[i], key, cases[i], NULL);
        CHECK_EQ_STR(no_ts(line), want.base);
        json_t *j = parse_line(line);
        CHECK(j != NULL);
        if (j) {
            CHECK_EQ_STR(jstr(j, "msg"), cases[i]);
            CHECK_EQ_STR(jstr(j, key), cases[i]);
        }
        json_decref(j);
        gw_buf_free(&want);
    }
    /* each single byte 0x01..0x7f too */
    for (int c = 1; c < 128; c++) {
        char s[2] = {(char)c, 0};
        gw_buf_t want;
        gw_buf_init(&want, 256);
        gw_buf_puts(&want, "{\"level\":\"info\",\"ts\":\"T\",\"msg\":\"");
        old_escape(&want, s);
        gw_buf_puts(&want, "\",\"v\":\"");
        old_escape(&want, s);
        gw_buf_puts(&want, "\"}\n");
        CHECK_EQ_STR(no_ts(CAPTURE(s, "v", s, NULL)), want.base);
        gw_buf_free(&want);
    }
}

/* The escaped form of one value (what sits between the quotes of "v"), static storage. */
static const char *escaped(const char *v)
{
    static char out[4096];
    const char *line = CAPTURE("m", "v", v, NULL);
    const char *p = strstr(line, ",\"v\":\"");
    size_t n = strlen(line);
    out[0] = '\0';
    if (p && n >= 3 && strcmp(line + n - 3, "\"}\n") == 0) {
        p += 6;
        snprintf(out, sizeof(out), "%.*s", (int)(line + n - 3 - p), p);
    }
    return out;
}

/* Escaped form and decoded (jansson) value of v. */
static void check_value(const char *v, const char *want_escaped, const char *want_decoded, int line_no)
{
    const char *got = escaped(v);
    if (strcmp(got, want_escaped) != 0) {
        gw_test_failures++;
        fprintf(stderr, "%s:%d: escaped \"%s\", expected \"%s\"\n", __FILE__, line_no, got, want_escaped);
    }
    gw_test_checks++;
    const char *line = CAPTURE(v, "v", v, NULL);
    json_t *j = parse_line(line);
    CHECK(j != NULL);
    if (j) {
        const char *d = jstr(j, "v"), *m = jstr(j, "msg");
        if (!d || !m || strcmp(d, want_decoded) != 0 || strcmp(m, want_decoded) != 0) {
            gw_test_failures++;
            fprintf(stderr, "%s:%d: decoded value differs\n", __FILE__, line_no);
        }
        gw_test_checks++;
    }
    json_decref(j);
}
#define VALUE(v, esc, dec) check_value(v, esc, dec, __LINE__)
#define R "\xef\xbf\xbd" /* U+FFFD as UTF-8 */

static void test_utf8_valid(void)
{
    /* boundaries of each length, copied unchanged */
    const char *ok[] = {
        "\xc2\x80", "\xdf\xbf",                           /* U+0080, U+07FF */
        "\xe0\xa0\x80", "\xed\x9f\xbf",                   /* U+0800, U+D7FF */
        "\xee\x80\x80", "\xef\xbf\xbf", "\xef\xbf\xbd",   /* U+E000, U+FFFF, U+FFFD */
        "\xe2\x80\xa8",                                   /* U+2028 (valid raw in JSON) */
        "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",           /* U+10000, U+10FFFF */
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 /\xe6\x97\xa5\xe6\x9c\xac", /* é € 😀 日本 */
        NULL,
    };
    for (int i = 0; ok[i]; i++) VALUE(ok[i], ok[i], ok[i]);
    VALUE("a\"\xc3\xa9\n", "a\\\"\xc3\xa9\\n", "a\"\xc3\xa9\n");
}

static void test_utf8_invalid(void)
{
    VALUE("\xff", "\\ufffd", R);                                          /* the issue: 0xff in a path */
    VALUE("/api/\xff/x", "/api/\\ufffd/x", "/api/" R "/x");
    VALUE("\xfe\xf5\xf8\xfc", "\\ufffd\\ufffd\\ufffd\\ufffd", R R R R);   /* bytes never in UTF-8 */
    VALUE("\x80", "\\ufffd", R);                                          /* stray continuation */
    VALUE("a\x80\xbf" "b", "a\\ufffd\\ufffdb", "a" R R "b");
    VALUE("\xc0\xaf", "\\ufffd\\ufffd", R R);                             /* overlong '/' */
    VALUE("\xc1\xbf", "\\ufffd\\ufffd", R R);
    VALUE("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd", R R R);                /* overlong, 3 bytes */
    VALUE("\xe0\x9f\xbf", "\\ufffd\\ufffd\\ufffd", R R R);                /* U+07FF overlong */
    VALUE("\xf0\x80\x80\xaf", "\\ufffd\\ufffd\\ufffd\\ufffd", R R R R);   /* overlong, 4 bytes */
    VALUE("\xf0\x8f\xbf\xbf", "\\ufffd\\ufffd\\ufffd\\ufffd", R R R R);   /* U+FFFF overlong */
    VALUE("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd", R R R);                /* U+D800 */
    VALUE("\xed\xbf\xbf", "\\ufffd\\ufffd\\ufffd", R R R);                /* U+DFFF */
    VALUE("\xed\xa0\xbd\xed\xb8\x80", "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd", R R R R R R); /* CESU pair */
    VALUE("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd", R R R R);   /* U+110000 */
    VALUE("\xf7\xbf\xbf\xbf", "\\ufffd\\ufffd\\ufffd\\ufffd", R R R R);   /* U+1FFFFF */
    /* truncated sequences: the lead byte is replaced, what follows is judged on its own */
    VALUE("\xc3", "\\ufffd", R);
    VALUE("\xe2\x82", "\\ufffd\\ufffd", R R);
    VALUE("\xe2\x82" "A", "\\ufffd\\ufffdA", R R "A");
    VALUE("\xf0\x9f\x98", "\\ufffd\\ufffd\\ufffd", R R R);
    VALUE("\xf0\x9f\x98\xc3\xa9", "\\ufffd\\ufffd\\ufffd\xc3\xa9", R R R "\xc3\xa9");
    VALUE("\xc3\n", "\\ufffd\\n", R "\n");
    VALUE("\xe2\"", "\\ufffd\\\"", R "\"");
    /* a valid sequence right after an invalid byte survives */
    VALUE("\xff\xc3\xa9\xff", "\\ufffd\xc3\xa9\\ufffd", R "\xc3\xa9" R);
    /* keys are escaped the same way */
    const char *line = CAPTURE("m", "k\xff", "v", NULL);
    CHECK_EQ_STR(no_ts(line), "{\"level\":\"info\",\"ts\":\"T\",\"msg\":\"m\",\"k\\ufffd\":\"v\"}\n");
    json_t *j = parse_line(line);
    CHECK(j != NULL && json_object_get(j, "k" R) != NULL);
    json_decref(j);
}

/* Every 1- and 2-byte string and a sample of 3/4-byte strings give one valid JSON line. */
static void test_all_short_inputs(void)
{
    int bad = 0;
    for (int a = 1; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            char s[3] = {(char)a, (char)b, 0};
            json_t *j = parse_line(CAPTURE(s, "v", s, NULL));
            if (!j) bad++;
            json_decref(j);
        }
    }
    unsigned x = 12345;
    for (int i = 0; i < 20000; i++) {
        char s[5];
        for (int k = 0; k < 4; k++) {
            x = x * 1103515245u + 12345u;
            s[k] = (char)((x >> 16) % 255 + 1);
        }
        s[4] = 0;
        json_t *j = parse_line(CAPTURE(s, "v", s, NULL));
        if (!j) bad++;
        json_decref(j);
    }
    CHECK_EQ_INT(bad, 0);
}

/* Lines stay under 64 KiB and valid: the string is cut between characters. */
static void check_truncated(const char *unit, const char *decoded_unit)
{
    size_t un = strlen(unit), dn = strlen(decoded_unit), reps = 200000 / un;
    char *big = malloc(un * reps + 1);
    for (size_t i = 0; i < reps; i++) memcpy(big + i * un, unit, un);
    big[un * reps] = '\0';
    const char *line = CAPTURE("m", "v", big, "after", "x", NULL);
    size_t n = strlen(line);
    CHECK(n <= 64 * 1024);
    CHECK(n > 60 * 1024);
    json_t *j = parse_line(line);
    CHECK(j != NULL);
    if (j) {
        CHECK_EQ_STR(jstr(j, "logTruncated"), "true");
        CHECK(json_object_get(j, "after") == NULL);
        const char *v = jstr(j, "v");
        CHECK(v != NULL);
        if (v) {
            size_t vn = strlen(v);
            CHECK(vn > 0 && vn % dn == 0); /* whole characters only */
            int same = 1;
            for (size_t i = 0; i + dn <= vn; i += dn) same &= memcmp(v + i, decoded_unit, dn) == 0;
            CHECK(same);
        }
    }
    json_decref(j);
    /* the message too */
    line = CAPTURE(big, "v", "x", NULL);
    j = parse_line(line);
    CHECK(j != NULL && strlen(line) <= 64 * 1024);
    if (j) {
        CHECK_EQ_STR(jstr(j, "logTruncated"), "true");
        CHECK(json_object_get(j, "v") == NULL);
    }
    json_decref(j);
    free(big);
}

static void test_truncation(void)
{
    check_truncated("a", "a");
    check_truncated("\xc3\xa9", "\xc3\xa9");
    check_truncated("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
    check_truncated("\xff", R);
    check_truncated("\x01", "\x01");
    check_truncated("\"", "\"");
    /* a key that does not fit is dropped whole, never cut */
    size_t n = 64 * 1024 - 200;
    char *v = malloc(n + 1);
    memset(v, 'a', n);
    v[n] = '\0';
    char key[512];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    const char *line = CAPTURE("m", "v", v, key, "x", NULL);
    json_t *j = parse_line(line);
    CHECK(j != NULL);
    if (j) {
        CHECK_EQ_STR(jstr(j, "v"), v);
        CHECK_EQ_STR(jstr(j, "logTruncated"), "true");
        CHECK_EQ_INT(json_object_size(j), 5);
    }
    json_decref(j);
    /* just under the cap: nothing cut, no marker */
    v[n - 100] = '\0';
    line = CAPTURE("m", "v", v, NULL);
    j = parse_line(line);
    CHECK(j != NULL && json_object_get(j, "logTruncated") == NULL && jstr(j, "v") && strlen(jstr(j, "v")) == n - 100);
    json_decref(j);
    free(v);
}

/* Without a sink, lines go to fd 2 with write(2). */
static void test_stderr_default(void)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    if (!tmp) return;
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    gw_log_set_sink(NULL);
    gw_log(GW_LOG_INFO, "to stderr", "p", "/\xff", NULL);
    dup2(saved, 2);
    close(saved);
    char got[512] = {0};
    rewind(tmp);
    size_t n = fread(got, 1, sizeof(got) - 1, tmp);
    fclose(tmp);
    CHECK(n > 0);
    CHECK_EQ_STR(no_ts(got), "{\"level\":\"info\",\"ts\":\"T\",\"msg\":\"to stderr\",\"p\":\"/\\ufffd\"}\n");
}

int main(void)
{
    gw_log_set_level(GW_LOG_DEBUG);
    GW_RUN(test_format);
    GW_RUN(test_level_filter);
    GW_RUN(test_ascii_unchanged);
    GW_RUN(test_utf8_valid);
    GW_RUN(test_utf8_invalid);
    GW_RUN(test_all_short_inputs);
    GW_RUN(test_truncation);
    GW_RUN(test_stderr_default);
    free(cap_out);
    return gw_test_summary();
}
