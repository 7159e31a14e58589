/* fuzz_log.c: libFuzzer driver for src/util/log.c: arbitrary bytes as the message, a field
 * key and a field value. Every line written must be one strict JSON object (jansson), valid
 * UTF-8 must come back unchanged, and every other string must decode to the documented
 * replacement (one U+FFFD per ill-formed byte, log.h), or a prefix of it, cut between
 * characters, when the line hit its 64 KiB cap and says "logTruncated". */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "require.h"

/* Input: one control byte (bits 0-2: level; bit 3: add the fuzzed key field; bit 4: repeat
 * the value until it exceeds the line cap), then message '\0' value '\0' key. */

/* Reference decoder, written differently from log.c (decode the code point, then check it):
 * appends to out what the log line must decode s to; returns its length. */
static size_t expected(const unsigned char *s, char *out)
{
    size_t o = 0;
    while (*s) {
        unsigned c = s[0], cp, len, min;
        if (c < 0x80) {
            out[o++] = (char)c;
            s++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
        else len = 0, cp = 0, min = 0;
        bool ok = len != 0;
        for (unsigned i = 1; ok && i < len; i++) {
            if ((s[i] & 0xc0) != 0x80) ok = false;
            else cp = cp << 6 | (s[i] & 0x3f);
        }
        if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
        if (ok) {
            memcpy(out + o, s, len);
            o += len;
            s += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            s++;
        }
    }
    out[o] = '\0';
    return o;
}

static bool valid_utf8(const unsigned char *s)
{
    char *tmp = malloc(strlen((const char *)s) * 3 + 1);
    size_t n = expected(s, tmp);
    bool same = n == strlen((const char *)s) && memcmp(tmp, s, n) == 0;
    free(tmp);
    return same;
}

/* got must be want, or (truncated) a prefix of want ending at a character boundary. */
static void check_string(const char *got, const char *want, bool truncated)
{
    REQUIRE(got != NULL);
    size_t g = strlen(got), w = strlen(want);
    if (!truncated) {
        REQUIRE(g == w && memcmp(got, want, w) == 0);
        return;
    }
    REQUIRE(g <= w && memcmp(got, want, g) == 0);
    REQUIRE(g == w || ((unsigned char)want[g] & 0xc0) != 0x80);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    uint8_t ctl = data[0];
    /* message, value, key: NUL-separated parts of the rest */
    char *rest = malloc(size + 2);
    memcpy(rest, data + 1, size - 1);
    rest[size - 1] = rest[size] = rest[size + 1] = '\0';
    const char *msg = rest;
    const char *val = msg + strlen(msg) + 1;
    if (val > rest + size - 1) val = rest + size - 1;
    const char *key = val + strlen(val) + 1;
    if (key > rest + size) key = rest + size;

    char *big = NULL;
    if ((ctl & 0x10) && val[0]) { /* past the 64 KiB cap: exercise truncation */
        size_t vn = strlen(val), reps = 70000 / vn + 1;
        big = malloc(vn * reps + 1);
        for (size_t i = 0; i < reps; i++) memcpy(big + i * vn, val, vn);
        big[vn * reps] = '\0';
        val = big;
    }
    bool with_key = (ctl & 0x08) && key[0];

    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    REQUIRE(f != NULL);
    gw_log_set_level(GW_LOG_DEBUG);
    gw_log_set_sink(f);
    int level = ctl & 7;
    if (with_key) gw_log(level, msg, "v", val, key, "k", NULL);
    else gw_log(level, msg, "v", val, NULL);
    gw_log_set_sink(NULL);
    fclose(f);

    /* exactly one line, at most 64 KiB */
    REQUIRE(outlen > 0 && outlen <= 64 * 1024 && out[outlen - 1] == '\n');
    REQUIRE(memchr(out, '\n', outlen - 1) == NULL);
    REQUIRE(strlen(out) == outlen); /* no NUL byte */
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    if (!j) fprintf(stderr, "json_loads: %s at %d\n", err.text, err.position);
    REQUIRE(j != NULL && json_is_object(j));

    /* The fuzzed key may be one of the writer's own names (callers never do that): in the
     * parsed object the later duplicate wins, so those checks read the raw line instead. */
#define KEY_IS(name) (with_key && strcmp(key, name) == 0)
    static const char tail[] = ",\"logTruncated\":\"true\"}\n";
    bool truncated;
    if (KEY_IS("logTruncated")) {
        truncated = outlen >= sizeof(tail) - 1 && memcmp(out + outlen - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0;
    } else {
        json_t *tr = json_object_get(j, "logTruncated");
        truncated = tr != NULL;
        if (truncated) REQUIRE(json_is_string(tr) && strcmp(json_string_value(tr), "true") == 0);
    }
    if (!big && size < 10000) REQUIRE(!truncated); /* at most 6 bytes per input byte: fits */

    size_t ml = strlen(msg), vl = strlen(val), kl = strlen(key);
    char *want = malloc(3 * (ml > vl ? (ml > kl ? ml : kl) : (vl > kl ? vl : kl)) + 1);

    /* msg: present unless its own key was overwritten by the fuzzed key "msg" */
    expected((const unsigned char *)key, want);
    bool key_clash = with_key && (!strcmp(want, "msg") || !strcmp(want, "v") || !strcmp(want, "level") ||
                                  !strcmp(want, "ts") || !strcmp(want, "logTruncated"));
    char *wkey = strdup(want);
    json_t *lv = json_object_get(j, "level");
    if (!KEY_IS("level"))
        REQUIRE(json_is_string(lv) && strcmp(json_string_value(lv), gw_log_level_name(level)) == 0);
    else
        REQUIRE(strncmp(out, "{\"level\":\"", 10) == 0 &&
                strncmp(out + 10, gw_log_level_name(level), strlen(gw_log_level_name(level))) == 0);
    if (!KEY_IS("ts")) REQUIRE(json_is_string(json_object_get(j, "ts")));
    if (!key_clash) {
        json_t *m = json_object_get(j, "msg");
        REQUIRE(json_is_string(m));
        expected((const unsigned char *)msg, want);
        bool msg_cut = truncated && json_object_get(j, "v") == NULL;
        check_string(json_string_value(m), want, msg_cut);
        if (valid_utf8((const unsigned char *)msg) && !msg_cut) REQUIRE(strcmp(json_string_value(m), msg) == 0);

        json_t *v = json_object_get(j, "v");
        if (v) {
            REQUIRE(json_is_string(v));
            expected((const unsigned char *)val, want);
            bool v_cut = truncated && (!with_key || json_object_get(j, wkey) == NULL);
            check_string(json_string_value(v), want, v_cut);
            if (valid_utf8((const unsigned char *)val) && !v_cut)
                REQUIRE(strcmp(json_string_value(v), val) == 0);
        } else {
            REQUIRE(truncated);
        }
        if (with_key) {
            json_t *k = json_object_get(j, wkey);
            /* its value "k" may have been cut to "" when the key filled the line exactly */
            if (k) REQUIRE(json_is_string(k) && (strcmp(json_string_value(k), "k") == 0 ||
                                                 (truncated && json_string_value(k)[0] == '\0')));
            else REQUIRE(truncated);
        }
        REQUIRE(json_object_size(j) == 3 + (v != NULL) + (with_key && json_object_get(j, wkey)) + truncated);
    }
    free(wkey);
    free(want);
    json_decref(j);
    free(out);
    free(big);
    free(rest);
    return 0;
}
