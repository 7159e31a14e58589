/* rewrite.h: the pure request/response rewriting rules of SPEC §1, §5 and §7: path splitting,
 * upstream path/query building, encodeUrl, hop-by-hop headers, Location rewriting.
 * No I/O; results go into capped buffers. Not for: routing (registry/snapshot.h). */
#ifndef GW_GATEWAY_REWRITE_H
#define GW_GATEWAY_REWRITE_H

#include <stdbool.h>

#include "registry/snapshot.h"
#include "util/buf.h"
#include "util/str.h"

/* Splits the raw request path (no query) after trimming all leading and trailing '/':
 * the first nseg segments (2 on 8080: app, service; 3 on 8082: + entry) go to seg[], the
 * remainder (may contain '/', may be empty) to *rest. Segments may be empty strings when the
 * path has "//". Returns 0, or GW_EINVAL when fewer than nseg segments exist (→ 400). */
int gw_split_gateway_path(gw_str_t path, int nseg, gw_str_t seg[3], gw_str_t *rest);

/* Splits a request-target into path and query (without '?'); *has_query tells if '?' was
 * present. Origin-form ("/p?q") and absolute-form ("http://host/p?q": the path and query are
 * used) are accepted; anything else, or an absolute-form without a path, is GW_EINVAL. */
int gw_split_target(gw_str_t target, gw_str_t *path, gw_str_t *query, bool *has_query);

/* gw_append_upstream_path: target_path would climb above the targetUrl path (→ 400). */
#define GW_EPATH_ESCAPES (-77)

/* Appends the upstream request path: targetUrl path joined with target_path by exactly one
 * '/' (nothing added when target_path is empty; "/" when both are empty). With encode_url,
 * target_path is percent-decoded then re-encoded (§5.2); otherwise copied byte for byte.
 * [better] §5.1: dot-segments of target_path are then resolved per RFC 3986 §5.2.4 below
 * the targetUrl path (which itself is never changed or resolved):
 * - a segment is "." or ".." also when written with %2e/%2E (".%2E", "%2e%2e", ...); with
 *   encode_url, a decoded %2F/%2f is a '/' (resolution sees what goes upstream); without it
 *   segments are split at literal '/' only and every kept segment stays byte for byte;
 * - a trailing "." or ".." leaves a trailing '/' ("x/.." → base + "/"); empty segments
 *   ("a//b") are kept and count as segments (so "a//.." → base + "/a/");
 * - GW_EPATH_ESCAPES when a ".." would remove the targetUrl path or more ("..", "a/../..").
 *   Without encode_url it is also returned when the path would escape if an upstream
 *   decoded %2F/%2f to '/' ("..%2F..%2Fx"), though such a segment is otherwise one segment.
 * A path without dot-segments comes out exactly as before. Leading '/'s of the result
 * (e.g. from "//evil.example/x" under an empty targetUrl path, or a targetUrl path "//p")
 * are collapsed to one: the request-target never starts with "//".
 * Returns 0, GW_ENOMEM or GW_EPATH_ESCAPES; on any error out is restored to its previous
 * length (callers should still discard the message they were building). GW_ENOMEM means the
 * join before resolution did not fit the cap (the resolved path is never longer). */
int gw_append_upstream_path(gw_buf_t *out, const char *base_path, gw_str_t target_path, bool encode_url);

/* Appends the upstream query (without '?'; nothing when all parts are empty): targetUrl
 * query, '&', the caller's query, then each extra parameter (§6.6) whose name is not already
 * a key of the caller's query, as name=value, URL-encoded like Go's url.QueryEscape.
 * Returns 0 or GW_ENOMEM. */
int gw_append_upstream_query(gw_buf_t *out, const char *base_query, gw_str_t caller_query,
                             const gw_kv_t *extra, size_t nextra);

/* §5.2 encoding of a (decoded) byte string. */
int gw_append_path_encoded(gw_buf_t *out, const char *p, size_t n);

/* Percent-decodes in place semantics into out; invalid escapes are copied literally. */
int gw_append_percent_decoded(gw_buf_t *out, const char *p, size_t n);

/* True for the fixed hop-by-hop headers of §5.3 (Connection, Keep-Alive, Proxy-Connection,
 * Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade),
 * case-insensitive. TE is reported here too; the caller decides about "TE: trailers". */
bool gw_is_hop_by_hop(gw_str_t name);

/* True when name is listed in any of the Connection header values given. */
bool gw_connection_lists(const gw_str_t *connection_values, size_t n, gw_str_t name);

/* §7 Location rewriting. request_url is the absolute upstream URL of the request that got
 * the response; prefix is "/{APP}/{SERVICE}" or "/{APP}/{SERVICE}/{ENTRY}". If the resolved
 * Location is http/https, has the same host name as the target (case-insensitive, port not
 * compared), and its path equals the target path (trailing '/' ignored) or continues it
 * with '/', appends prefix + remaining path + ?query + #fragment to out and returns 1.
 * Returns 0 (out untouched) to leave Location alone, GW_ENOMEM on cap. */
int gw_rewrite_location(gw_buf_t *out, gw_str_t location, gw_str_t request_url, const gw_target_t *target,
                        gw_str_t prefix);

/* Writes the gateway's JSON error body {"code":N,"error":"text"} (text JSON-escaped). */
int gw_append_error_body(gw_buf_t *out, int code, const char *text);

#endif
