/* h2head.h: an HTTP/1.1 request head (as gateway/proxy.c builds it) turned into HTTP/2 header
 * fields: pseudo-headers first, names lower-cased, hop-by-hop fields dropped. Pure, no I/O,
 * fuzzed (fuzz/fuzz_h2_head.c). */
#ifndef GW_HTTP_H2HEAD_H
#define GW_HTTP_H2HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parser.h"

#define GW_H2_MAX_FIELDS (GW_HTTP_MAX_HEADERS + 4)

typedef struct {
    gw_header_t fields[GW_H2_MAX_FIELDS]; /* :method, :scheme, :authority, :path, then the rest */
    size_t nfields;
    gw_body_kind_t body;                  /* how the HTTP/1 body bytes that follow are framed */
    uint64_t content_length;
    bool upgrade;                         /* the head asks for a protocol upgrade (HTTP/1.1 only) */
} gw_h2_req_t;

/* Converts head[0..hlen) (a complete HTTP/1.x request head). names must have room for hlen
 * bytes: the lower-cased field names are written there; every value points into head. :scheme
 * is "https", :authority the Host value, :path the request target (origin-form, or "*" for
 * OPTIONS); dropped: Host, Connection and the fields it names, Keep-Alive, Proxy-Connection,
 * Transfer-Encoding, Upgrade, TE unless its value is "trailers". Returns GW_OK, or GW_EBADMSG
 * (not a complete valid head, no Host, CONNECT, a target that is not origin-form, invalid
 * framing). */
int gw_h2_request_from_h1(const char *head, size_t hlen, char *names, gw_h2_req_t *out);

/* True when the head has an Upgrade field (the request can go over HTTP/1.1 only): a scan of
 * the line starts, without converting, for requests that may never need the conversion. */
bool gw_h2_head_upgrade(const char *head, size_t hlen);

#endif
