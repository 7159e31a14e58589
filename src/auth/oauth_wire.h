/* oauth_wire.h: the pure wire formats of the OAuth client-credentials flow (SPEC §6.2/§6.3):
 * form and query encoding of the token request, parsing of the token and error responses.
 * No I/O, no logging; not for: token caching or the HTTP exchange itself. */
#ifndef GW_AUTH_OAUTH_WIRE_H
#define GW_AUTH_OAUTH_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Longest access_token accepted (it goes into an Authorization header). */
#define GW_TOKEN_MAX_LEN (16 * 1024)
/* expires_in values above this (10 years, in seconds) are clamped to it. */
#define GW_TOKEN_EXPIRES_MAX (10LL * 365 * 24 * 3600)

/* Appends name=value in application/x-www-form-urlencoded form (WHATWG urlencoded serializer:
 * ALPHA DIGIT * - . _ stay, space -> '+', every other byte -> %XX upper-case), preceded by '&'
 * when out is not empty. name and value are NUL-terminated and owned by the caller.
 * Returns 0 or GW_ENOMEM (out's cap; out is then left exactly as it was). */
int gw_form_append(gw_buf_t *out, const char *name, const char *value);

/* Percent-encodes the NUL-terminated s for use inside a URL query component (RFC 3986
 * unreserved A-Z a-z 0-9 - . _ ~ stay literal, everything else, space included, becomes %XX
 * upper-case) and appends it. Returns 0 or GW_ENOMEM (out left exactly as it was). */
int gw_url_query_escape(gw_buf_t *out, const char *s);

typedef struct {
    char *access_token;   /* malloc'd, NUL-terminated, never empty */
    char *token_type;     /* malloc'd or NULL when absent */
    long long expires_in; /* seconds; -1 when absent, null, or not a number */
} gw_token_response_t;

/* Parses a token endpoint's 200 response body (RFC 6749 §5.1): a JSON object whose
 * "access_token" is a non-empty string without control characters (bytes < 0x20 or 0x7f; it
 * goes into an HTTP header) and at most GW_TOKEN_MAX_LEN bytes long. "expires_in" may be a JSON
 * integer, a real (truncated), or a non-empty string of decimal digits only (some servers send
 * that); anything else or a negative value counts as absent (-1); values above
 * GW_TOKEN_EXPIRES_MAX are clamped to it. "token_type" is copied when it is a string.
 * Numbers beyond the range of a double (e.g. 1e999) anywhere make the body invalid JSON.
 * body (len bytes, need not be NUL-terminated, may be NULL when len is 0) stays the caller's.
 * Returns 0 and fills *out (the caller frees it with gw_token_response_clear; *why, when why
 * is not NULL, is set to NULL), or GW_EBADMSG with *why (when not NULL) set to a static English
 * text ("response is not valid JSON", "response is not a JSON object", "access_token missing
 * or empty", "access_token is not a string", "access_token is too long", "access_token has
 * control characters") and *out zeroed (nothing to free). Never logs. */
int gw_token_response_parse(const char *body, size_t len, gw_token_response_t *out, const char **why);

/* Frees what gw_token_response_parse put into t and zeroes it (expires_in becomes -1).
 * Safe on a zeroed or already cleared struct. */
void gw_token_response_clear(gw_token_response_t *t);

/* True when body (len bytes, need not be NUL-terminated) is a JSON object with a string member
 * "error" (an RFC 6749 §5.2 error response). When code is not NULL and codecap > 0, copies that
 * error code (truncated to codecap-1 bytes, NUL-terminated, printable ASCII only: other bytes
 * replaced by '?') into code[0..codecap), or writes "" when the result is false. Never logs. */
bool gw_oauth_error_response(const char *body, size_t len, char *code, size_t codecap);

#endif
