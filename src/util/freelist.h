/* freelist.h: a bounded per-thread cache of freed objects of one kind (LIFO), so objects made
 * and dropped once per request are reused instead of going through malloc each time. Not
 * thread-safe: one owner (a worker loop). */
#ifndef GW_UTIL_FREELIST_H
#define GW_UTIL_FREELIST_H

#include <stdbool.h>
#include <stddef.h>

/* Under AddressSanitizer nothing is cached: a use after free must stay visible to it. */
#if defined(__SANITIZE_ADDRESS__)
#define GW_FREELIST_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GW_FREELIST_ON 0
#endif
#endif
#ifndef GW_FREELIST_ON
#define GW_FREELIST_ON 1
#endif

/* How many objects of one kind a worker keeps: at 1,000 connections one loop round frees
 * hundreds before the next round makes as many, and a smaller cache sends those to malloc. */
#define GW_FREELIST_MAX 1024

typedef struct {
    void *head;               /* the link is stored in each object's first pointer-sized bytes */
    unsigned n, max;
    void (*dtor)(void *obj);  /* frees an object for good (NULL: free()) */
} gw_freelist_t;

static inline void *gw_freelist_pop(gw_freelist_t *f)
{
    void *p = f->head;
    if (p) {
        f->head = *(void **)p;
        f->n--;
    }
    return p;
}

/* Keeps p for reuse; false when the cache is full (the caller frees p). */
static inline bool gw_freelist_push(gw_freelist_t *f, void *p)
{
    if (!GW_FREELIST_ON || f->n >= f->max) return false;
    *(void **)p = f->head;
    f->head = p;
    f->n++;
    return true;
}

/* Frees every cached object. */
void gw_freelist_drain(gw_freelist_t *f);

#endif
