/* block.h: refcounted fixed-size I/O blocks with a per-thread free list, so body bytes move
 * from a read to a write without copying and idle connections hold no buffers.
 * Single-threaded use per block (each block lives and dies on one worker thread). */
#ifndef GW_BLOCK_H
#define GW_BLOCK_H

#include <stddef.h>

#define GW_BLOCK_SIZE (128 * 1024)

typedef struct gw_block_s {
    struct gw_block_s *next; /* free list link */
    unsigned refs;
    size_t cap;
    char data[];
} gw_block_t;

/* A block with one reference (never NULL). */
gw_block_t *gw_block_get(void);
static inline gw_block_t *gw_block_ref(gw_block_t *b) { b->refs++; return b; }
/* A one-off block of exactly size bytes (not cached), one reference. */
gw_block_t *gw_block_alloc(size_t size);
/* Drops a reference; the last one returns the block to this thread's free list. */
void gw_block_unref(gw_block_t *b);
/* Frees this thread's free list (call before a worker thread exits). */
void gw_block_drain_cache(void);

#endif
