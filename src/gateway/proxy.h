/* proxy.h: the gateway's request handler for the proxy ports (8080 standalone, 8082 compass):
 * route via the worker's pinned snapshot, apply credentials, stream to the upstream and back
 * with the rewriting rules. Not for: parsing (http/), connection management (http/server.c,
 * http/upstream.c) or the rules themselves (gateway/rewrite.c). */
#ifndef GW_GATEWAY_PROXY_H
#define GW_GATEWAY_PROXY_H

#include "http/server.h"

/* Listener modes: how many path segments identify the API. */
#define GW_PROXY_MODE_STANDALONE 2 /* /{APP}/{SERVICE}/... */
#define GW_PROXY_MODE_COMPASS 3    /* /{APP}/{SERVICE}/{ENTRY}/... */

extern const gw_handler_t gw_proxy_handler;

#endif
