/* block.c: per-thread free list of 128 KiB I/O blocks, bounded so memory returns to the system. */
#include "util/block.h"

#include <stdlib.h>

#include "util/alloc.h"

#define GW_BLOCK_CACHE_MAX 32

static _Thread_local gw_block_t *free_list;
static _Thread_local unsigned free_count;

gw_block_t *gw_block_get(void)
{
    gw_block_t *b = free_list;
    if (b) {
        free_list = b->next;
        free_count--;
    } else {
        b = gw_malloc(sizeof(*b) + GW_BLOCK_SIZE);
        b->cap = GW_BLOCK_SIZE;
    }
    b->next = NULL;
    b->refs = 1;
    return b;
}

gw_block_t *gw_block_alloc(size_t size)
{
    gw_block_t *b = gw_malloc(sizeof(*b) + size);
    b->next = NULL;
    b->refs = 1;
    b->cap = size;
    return b;
}

void gw_block_unref(gw_block_t *b)
{
    if (--b->refs) return;
    if (b->cap != GW_BLOCK_SIZE || free_count >= GW_BLOCK_CACHE_MAX) {
        free(b);
        return;
    }
    b->next = free_list;
    free_list = b;
    free_count++;
}

void gw_block_drain_cache(void)
{
    while (free_list) {
        gw_block_t *b = free_list;
        free_list = b->next;
        free(b);
    }
    free_count = 0;
}
