/* parser.h: pure HTTP/1.x message-head and chunked-body parsing; no I/O, no allocation, fuzzed.
 * Everything returned points into the caller's buffer and is valid as long as it is. */
#ifndef GW_HTTP_PARSER_H
#define GW_HTTP_PARSER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/common.h"
#include "util/str.h"

#define GW_HTTP_MAX_HEAD    (64 * 1024) /* request/response head limit (431 / 502 beyond) */
#define GW_HTTP_MAX_HEADERS 128

typedef struct {
    gw_str_t name;
    gw_str_t value; /* leading/trailing OWS removed */
} gw_header_t;

typedef struct {
    gw_str_t method;
    gw_str_t target;      /* request-target exactly as sent */
    int minor_version;    /* HTTP/1.<minor>; 0 or 1 */
    size_t nheaders;
    gw_header_t headers[GW_HTTP_MAX_HEADERS];
} gw_req_head_t;

typedef struct {
    int minor_version;
    int status;           /* 100..999 */
    gw_str_t reason;
    size_t nheaders;
    gw_header_t headers[GW_HTTP_MAX_HEADERS];
} gw_resp_head_t;

/* Parse a request head from buf[0..len).
 * Returns the head length (> 0, including the final CRLFCRLF) when complete;
 * 0 when more bytes are needed (and len < GW_HTTP_MAX_HEAD);
 * GW_E2BIG when no complete head fits in GW_HTTP_MAX_HEAD bytes or there are more than
 * GW_HTTP_MAX_HEADERS headers (answer 431);
 * GW_EBADMSG when malformed (bad method token, bad target characters, version other than
 * HTTP/1.0 or 1.1, bare LF inside the request line, header name with illegal characters
 * or whitespace before the colon, obs-fold continuation lines, NUL/CR/LF inside values).
 * Bare LF line endings between headers are accepted as CRLF (RFC 9112 §2.2). */
int gw_http_parse_request(const char *buf, size_t len, gw_req_head_t *out);

/* Where a request head arriving in pieces was checked up to. Zeroed memory is the start. */
typedef struct {
    uint32_t pos;      /* bytes of the head checked so far */
    uint16_t nheaders; /* header lines complete so far */
    uint8_t state;
    uint8_t vpos;      /* position inside "HTTP/1.x\r\n" */
} gw_head_scan_t;

/* The verdict of gw_http_parse_request on buf[0..len) (the head length, 0, GW_E2BIG or
 * GW_EBADMSG), reached without looking again at the st->pos bytes an earlier call checked:
 * a head that arrives in many pieces costs time linear in its length (as picohttpparser's
 * last_len). buf must start with the bytes earlier calls saw. It yields no slices: once it
 * reports a complete head, parse that with gw_http_parse_request (same length). */
int gw_http_scan_request(const char *buf, size_t len, gw_head_scan_t *st);

/* Same contract for a response head (status line "HTTP/1.x NNN reason"). 1xx heads are
 * returned like any other; the caller skips them. */
int gw_http_parse_response(const char *buf, size_t len, gw_resp_head_t *out);

/* Finds a header (case-insensitive); NULL if absent. With several, returns the first. */
const gw_header_t *gw_http_find_header(const gw_header_t *h, size_t n, const char *name);

typedef enum {
    GW_BODY_NONE = 0,  /* no body */
    GW_BODY_LENGTH,    /* exactly *content_length bytes */
    GW_BODY_CHUNKED,   /* chunked transfer coding */
    GW_BODY_EOF,       /* responses only: read until the connection closes */
} gw_body_kind_t;

/* Decides how a request body is framed (RFC 9112 §6). Returns 0 or GW_EBADMSG when:
 * both Content-Length and Transfer-Encoding are present; several Content-Length values
 * disagree (identical repeated values, also in one comma list, are accepted); Content-Length
 * is not a plain decimal number or overflows; Transfer-Encoding is anything other than a
 * final "chunked" (only "chunked", case-insensitive, is accepted; "identity", "gzip, chunked",
 * "chunked, chunked" and unknown codings are rejected); Transfer-Encoding on HTTP/1.0. */
int gw_http_request_framing(const gw_req_head_t *h, gw_body_kind_t *kind, uint64_t *content_length);

/* Decides how a response body is framed, given the request method was HEAD or not.
 * HEAD responses, 1xx, 204 and 304 have no body. Transfer-Encoding ending in chunked wins
 * over Content-Length; Transfer-Encoding not ending in chunked means GW_BODY_EOF; otherwise
 * Content-Length (conflicting or invalid values → GW_EBADMSG); otherwise GW_BODY_EOF. */
int gw_http_response_framing(const gw_resp_head_t *h, bool request_was_head, gw_body_kind_t *kind,
                             uint64_t *content_length);
/* Both framing functions always set *kind and *content_length (0 unless GW_BODY_LENGTH;
 * "Content-Length: 0" gives GW_BODY_LENGTH with 0). */

/* Incremental chunked-body decoder. Zeroed memory is the initial state. */
typedef struct {
    int state;
    uint64_t remaining;  /* bytes left in the current chunk's data */
    uint32_t line_len;   /* length of the current size/trailer line, capped */
    uint32_t trailer_bytes;
} gw_chunked_t;

/* Feeds in[0..len). On return *consumed input bytes were processed. If out is not NULL,
 * the decoded body bytes are stored at out (out may equal in: output never overtakes input)
 * and *out_len says how many; with out NULL only framing is tracked (pass-through mode).
 * Returns 1 when the last chunk and its trailers have been consumed (bytes past *consumed
 * belong to the next message), 0 when more input is needed (*consumed == len), GW_EBADMSG on
 * malformed framing (bad hex, more than 16 digits, size over 2^60, missing CRLF after data, a
 * chunk extension outside RFC 9112 §7.1.1 ("5;", unterminated quoted string, CTLs), bare LF,
 * chunk-size line or trailer section over 8 KiB). consumed and out_len may be NULL; in pass-through mode
 * *out_len counts the body bytes passed over. On GW_EBADMSG *consumed is the offending byte's
 * offset. Both end states are sticky: later calls return the same code and consume nothing. */
int gw_chunked_feed(gw_chunked_t *st, const char *in, size_t len, size_t *consumed, char *out,
                    size_t *out_len);

/* Canonical pass-through, for chunked request bodies sent on upstream: decodes like
 * gw_chunked_feed (same verdicts and *consumed) and rewrites buf in place so that
 * buf[0..*out_len) is what to forward for buf[0..*consumed): chunk-size digits (at most 16),
 * chunk data and every CRLF as received; BWS, chunk extensions and trailer fields removed
 * (the last chunk becomes "0\r\n\r\n"). Canonical input is left untouched (*out_len ==
 * *consumed); bytes move only after something was removed. Stricter than RFC 9112 nowhere
 * except the 16-digit limit. */
int gw_chunked_canon(gw_chunked_t *st, char *buf, size_t len, size_t *consumed, size_t *out_len);

/* Parses a decimal Content-Length value; GW_EBADMSG unless 1-19 digits only and at most
 * 2^63-1 (as Go's net/http). */
int gw_http_parse_content_length(gw_str_t v, uint64_t *out);

#endif
