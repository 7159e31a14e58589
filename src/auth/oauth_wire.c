/* oauth_wire.c: form/query encoding for token requests and parsing of token and error
 * responses (RFC 6749 §5.1/§5.2) with jansson; pure functions, no I/O, no logging. */
#include "auth/oauth_wire.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/alloc.h"
#include "util/common.h"

static const char hex_digits[] = "0123456789ABCDEF";

static bool is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* WHATWG application/x-www-form-urlencoded byte classes. */
static bool form_literal(unsigned char c) { return is_alnum(c) || c == '*' || c == '-' || c == '.' || c == '_'; }

/* RFC 3986 unreserved. */
static bool query_literal(unsigned char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

/* Encoded size of s: literal bytes and (form only) space take 1 byte, the rest 3. */
static size_t encoded_len(const char *s, bool form)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (form ? form_literal(*p) || *p == ' ' : query_literal(*p)) ? 1 : 3;
    return n;
}

/* Writes the encoding of s at dst (room checked by the caller); returns the end. */
static char *encode_into(char *dst, const char *s, bool form)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (form ? form_literal(*p) : query_literal(*p)) {
            *dst++ = (char)*p;
        } else if (form && *p == ' ') {
            *dst++ = '+';
        } else {
            *dst++ = '%';
            *dst++ = hex_digits[*p >> 4];
            *dst++ = hex_digits[*p & 15];
        }
    }
    return dst;
}

int gw_form_append(gw_buf_t *out, const char *name, const char *value)
{
    size_t nn = encoded_len(name, true), nv = encoded_len(value, true);
    size_t amp = out->len ? 1 : 0, total = amp + nn + 1 + nv;
    if (nn > out->max || nv > out->max) return GW_ENOMEM; /* keeps total from wrapping */
    char *dst = gw_buf_reserve(out, total);
    if (!dst) return GW_ENOMEM;
    if (amp) *dst++ = '&';
    dst = encode_into(dst, name, true);
    *dst++ = '=';
    encode_into(dst, value, true);
    out->len += total;
    out->base[out->len] = '\0';
    return GW_OK;
}

int gw_url_query_escape(gw_buf_t *out, const char *s)
{
    size_t n = encoded_len(s, false);
    char *dst = gw_buf_reserve(out, n);
    if (!dst) return GW_ENOMEM;
    encode_into(dst, s, false);
    out->len += n;
    out->base[out->len] = '\0';
    return GW_OK;
}

/* jansson options for untrusted bodies: integers as doubles so that a huge expires_in
 * does not make the whole body invalid (exact up to 2^53, far above the clamp). */
#define GW_JSON_FLAGS JSON_DECODE_INT_AS_REAL

static json_t *load_object(const char *body, size_t len, bool *valid_json)
{
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", body ? len : 0, GW_JSON_FLAGS, &je);
    *valid_json = j != NULL;
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* expires_in per the header comment: number (truncated) or decimal-digit string; -1 if absent. */
static long long parse_expires_in(const json_t *v)
{
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!(d >= 0)) return -1; /* negative (NaN cannot come from JSON, but is excluded too) */
        if (d > (double)GW_TOKEN_EXPIRES_MAX) return GW_TOKEN_EXPIRES_MAX;
        return (long long)d;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0) return -1;
        long long x = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return -1;
            if (x <= GW_TOKEN_EXPIRES_MAX) x = x * 10 + (s[i] - '0'); /* saturates above the max */
        }
        return x > GW_TOKEN_EXPIRES_MAX ? GW_TOKEN_EXPIRES_MAX : x;
    }
    return -1;
}

/* Returns NULL when the token is acceptable, else the reason. */
static const char *check_access_token(const json_t *v)
{
    if (!v || json_is_null(v)) return "access_token missing or empty";
    if (!json_is_string(v)) return "access_token is not a string";
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0) return "access_token missing or empty";
    if (n > GW_TOKEN_MAX_LEN) return "access_token is too long";
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f) return "access_token has control characters";
    return NULL;
}

int gw_token_response_parse(const char *body, size_t len, gw_token_response_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    bool valid;
    json_t *j = load_object(body, len, &valid);
    const char *bad = !j ? (valid ? "response is not a JSON object" : "response is not valid JSON")
                         : check_access_token(json_object_get(j, "access_token"));
    if (bad) {
        json_decref(j);
        if (why) *why = bad;
        return GW_EBADMSG;
    }
    const json_t *at = json_object_get(j, "access_token"), *tt = json_object_get(j, "token_type");
    out->access_token = gw_strndup(json_string_value(at), json_string_length(at));
    out->token_type = json_is_string(tt) ? gw_strndup(json_string_value(tt), json_string_length(tt)) : NULL;
    out->expires_in = parse_expires_in(json_object_get(j, "expires_in"));
    json_decref(j);
    if (why) *why = NULL;
    return GW_OK;
}

void gw_token_response_clear(gw_token_response_t *t)
{
    free(t->access_token);
    free(t->token_type);
    t->access_token = t->token_type = NULL;
    t->expires_in = -1;
}

bool gw_oauth_error_response(const char *body, size_t len, char *code, size_t codecap)
{
    bool valid;
    json_t *j = load_object(body, len, &valid);
    const json_t *e = j ? json_object_get(j, "error") : NULL;
    bool is_err = json_is_string(e);
    if (code && codecap) {
        size_t n = is_err ? GW_MIN(json_string_length(e), codecap - 1) : 0;
        const unsigned char *s = is_err ? (const unsigned char *)json_string_value(e) : NULL;
        for (size_t i = 0; i < n; i++)
            code[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
        code[n] = '\0';
    }
    json_decref(j);
    return is_err;
}
