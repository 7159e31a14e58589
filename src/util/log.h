/* log.h: JSON-lines logging to stderr with a level changeable at run time from any thread. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>

enum {
    GW_LOG_DEBUG = 0,
    GW_LOG_INFO,
    GW_LOG_WARN,
    GW_LOG_ERROR,
    GW_LOG_DPANIC,
    GW_LOG_PANIC,
    GW_LOG_FATAL,
};

/* Parses a level name (debug, info, warn, error, dpanic, panic, fatal); -1 if unknown. */
int gw_log_level_parse(const char *name);
const char *gw_log_level_name(int level);
void gw_log_set_level(int level);
int gw_log_get_level(void);
static inline bool gw_log_enabled(int level);

/* Writes one line {"level":..,"ts":..,"msg":..,k1:v1,...}. Arguments after msg are
 * key/value string pairs terminated by NULL; values are JSON-escaped. A value
 * NULL is skipped. Never pass credentials, tokens, cookies or Authorization here. */
void gw_log(int level, const char *msg, ...) __attribute__((sentinel));

/* --- inline --- */
extern int gw__log_level;
static inline bool gw_log_enabled(int level)
{
    return level >= __atomic_load_n(&gw__log_level, __ATOMIC_RELAXED);
}

#endif
