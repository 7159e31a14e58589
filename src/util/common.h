/* common.h: result codes and tiny macros shared by every module; no functions. */
#ifndef GW_COMMON_H
#define GW_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Functions return 0 on success, a negative GW_E* on failure, or one of the
 * positive flow codes below where a caller must come back later. */
#define GW_OK        0
#define GW_AGAIN     1    /* need more input / try later */
#define GW_DECLINED  2    /* not handled here, let the next stage decide */

#define GW_EINVAL   (-22) /* bad argument or malformed input */
#define GW_ENOMEM   (-12) /* a capped buffer would exceed its cap */
#define GW_EBADMSG  (-74) /* malformed protocol message */
#define GW_E2BIG    (-7)  /* message head larger than allowed */
#define GW_ERANGE   (-34) /* numeric value out of range */
#define GW_ENOENT   (-2)  /* not found */

#define GW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define GW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GW_MAX(a, b) ((a) > (b) ? (a) : (b))
#define GW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
