/* url.h: splitting absolute http(s) URLs and URI references into parts (RFC 3986 subset); no I/O. */
#ifndef GW_URL_H
#define GW_URL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/str.h"

typedef struct {
    gw_str_t scheme;    /* e.g. "https"; empty for a relative reference */
    gw_str_t authority; /* userinfo@host:port, empty if none */
    gw_str_t host;      /* without brackets for IPv6 literals */
    gw_str_t port;      /* digits, may be empty */
    gw_str_t path;      /* raw (escaped), may be empty */
    gw_str_t query;     /* without '?' */
    gw_str_t fragment;  /* without '#' */
    bool has_authority, has_query, has_fragment;
} gw_url_t;

/* Splits any URI reference. Returns 0, or GW_EINVAL for an unbalanced IPv6 bracket, a
 * non-numeric port or a port above 65535. Parts point into s. */
int gw_url_split(gw_str_t s, gw_url_t *u);

/* Port of a split absolute http/https URL (explicit, or 80/443 by scheme); 0 if the scheme
 * is neither http nor https (case-insensitive). */
uint16_t gw_url_port(const gw_url_t *u);

#endif
