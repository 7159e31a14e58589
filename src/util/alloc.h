/* alloc.h: the one allocation wrapper; it is the only place that may abort (on out-of-memory). */
#ifndef GW_ALLOC_H
#define GW_ALLOC_H

#include <stddef.h>

/* All return non-NULL or abort the process with a message on stderr. */
void *gw_malloc(size_t n);
void *gw_calloc(size_t n, size_t size);
void *gw_realloc(void *p, size_t n);
char *gw_strdup(const char *s);
char *gw_strndup(const char *s, size_t n);
/* Aborts with the out-of-memory message (for allocators outside this wrapper, e.g. OpenSSL's). */
void gw_oom(size_t n) __attribute__((noreturn));
/* printf into a freshly allocated string; caller frees. */
char *gw_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
