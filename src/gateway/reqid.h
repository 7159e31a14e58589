/* reqid.h: the request ID (X-Request-Id): the caller's when it is short and plain, else one
 * generated, unique per process start and worker without any shared counter. */
#ifndef GW_GATEWAY_REQID_H
#define GW_GATEWAY_REQID_H

#include <stddef.h>
#include <stdint.h>

#define GW_REQID_MAX 128  /* longest caller ID kept */
#define GW_REQID_GEN_LEN 32

/* 1 when v[0..n) is a usable request ID: 1..GW_REQID_MAX bytes of letters, digits and
 * "-_.:+/=@" (what UUIDs, W3C trace ids, base64 and most tracers produce; never a byte that
 * could split a header or a log line). */
int gw_reqid_valid(const char *v, size_t n);

/* Writes GW_REQID_GEN_LEN lower-case hex digits: 56 bits of prefix (random per process),
 * 8 bits of worker, 64 bits of the worker's sequence number. */
void gw_reqid_generate(char out[GW_REQID_GEN_LEN], uint64_t prefix, unsigned worker, uint64_t seq);

/* A random per-process prefix (getrandom; falls back to time and pid). */
uint64_t gw_reqid_prefix(void);

#endif
