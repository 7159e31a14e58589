/* cookie.h: the cookie handling of SPEC §6.5: collecting the cookie-pairs of a CSRF token
 * response's Set-Cookie headers and merging them into the caller's Cookie header (the token's
 * cookie wins on a name clash). Pure functions over capped buffers; no I/O, no logging. */
#ifndef GW_AUTH_COOKIE_H
#define GW_AUTH_COOKIE_H

#include <stddef.h>

#include "util/buf.h"
#include "util/str.h"

/* From one Set-Cookie header value, appends its cookie-pair "name=value" (everything before
 * the first ';', trimmed of SP/HTAB; name and value are each trimmed too) to out, separated by
 * "; " from what out already holds. A later pair with the same name (case-sensitive) as one
 * already in out replaces it (in place, keeping order). out is expected to hold only what this
 * function wrote; it is rebuilt on success (its base pointer may change; caller keeps owning
 * and frees it). Attributes (Path, Expires, Max-Age, ...) are ignored.
 * Name: one or more RFC 9110 token characters. Value: may be empty; bytes < 0x21, 0x7f, ';',
 * '\\' and '"' are refused, except that a value wholly wrapped in one pair of '"' is kept with
 * its quotes; ',' and bytes >= 0x80 are accepted (servers send them).
 * Returns 0; GW_EBADMSG when the value has no valid pair (empty name, no '=', name with
 * characters outside the token chars, value with CTLs, ';' or whitespace inside...; out is
 * then untouched); GW_ENOMEM when out's cap would be exceeded (out untouched). set_cookie is
 * only read. */
int gw_cookie_add_set_cookie(gw_buf_t *out, gw_str_t set_cookie);

/* Appends to out the value of the single Cookie header to send upstream: every cookie-pair of
 * the caller's Cookie header values caller[0..ncaller) (each value split on ';', pairs
 * trimmed, empty pieces dropped, pairs kept in order and kept as they are, even if odd) whose
 * name (the trimmed text before its first '='; a piece without '=' has no name and is always
 * kept) does not occur in token_cookies, followed by the pairs of token_cookies (a
 * "a=1; b=2" string as built by gw_cookie_add_set_cookie). Separator "; " between pairs, none
 * before the first one even when out is not empty (out may hold e.g. a header-line prefix).
 * Pieces containing CR, LF or NUL are skipped (callers cannot send them; defensive), so the
 * appended text never contains them. With no caller cookies and empty token_cookies it
 * appends nothing. Inputs are only read. Returns 0, or GW_ENOMEM when out's cap would be
 * exceeded (out is then restored to what it held before the call). */
int gw_cookie_merge(gw_buf_t *out, const gw_str_t *caller, size_t ncaller, gw_str_t token_cookies);

#endif
