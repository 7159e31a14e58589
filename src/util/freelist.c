/* freelist.c: draining a freelist.h cache. */
#include "util/freelist.h"

#include <stdlib.h>

void gw_freelist_drain(gw_freelist_t *f)
{
    void *p;
    while ((p = gw_freelist_pop(f))) {
        if (f->dtor) f->dtor(p);
        else free(p);
    }
}
