/* config.c: the current snapshot pointer, guarded by a mutex that only the control plane and a
 * worker's once-per-publish refresh ever take; requests read their worker's pinned copy. */
#include "core/config.h"

#include <stdint.h>
#include <time.h>

#include "util/alloc.h"

#define GW_MAX_SUBSCRIBERS 512

static uv_mutex_t lock;
static gw_snapshot_t *current;
static int published;                         /* a source published (atomic) */
static const char *waiting = "configuration not loaded yet";
static uv_async_t *subs[GW_MAX_SUBSCRIBERS];
static size_t nsubs;

void gw_config_init(void)
{
    uv_mutex_init(&lock);
    current = gw_snapshot_empty();
}

static uint64_t published_at_ms;

double gw_config_published_at(void) { return (double)__atomic_load_n(&published_at_ms, __ATOMIC_RELAXED) / 1e3; }

void gw_config_publish(gw_snapshot_t *snap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    __atomic_store_n(&published_at_ms, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000, __ATOMIC_RELAXED);
    uv_mutex_lock(&lock);
    gw_snapshot_t *old = current;
    current = snap;
    for (size_t i = 0; i < nsubs; i++) uv_async_send(subs[i]);
    uv_mutex_unlock(&lock);
    __atomic_store_n(&published, 1, __ATOMIC_RELEASE);
    if (old) gw_snapshot_unref(old);
}

const char *gw_config_not_ready(void)
{
    if (__atomic_load_n(&published, __ATOMIC_ACQUIRE)) return NULL;
    return __atomic_load_n(&waiting, __ATOMIC_ACQUIRE);
}

void gw_config_set_waiting(const char *why)
{
    __atomic_store_n(&waiting, why, __ATOMIC_RELEASE);
}

gw_snapshot_t *gw_config_acquire(void)
{
    uv_mutex_lock(&lock);
    gw_snapshot_t *s = gw_snapshot_ref(current);
    uv_mutex_unlock(&lock);
    return s;
}

void gw_config_subscribe(uv_async_t *wake)
{
    uv_mutex_lock(&lock);
    if (nsubs < GW_MAX_SUBSCRIBERS) subs[nsubs++] = wake;
    uv_mutex_unlock(&lock);
}

void gw_config_unsubscribe(uv_async_t *wake)
{
    uv_mutex_lock(&lock);
    for (size_t i = 0; i < nsubs; i++) {
        if (subs[i] == wake) {
            subs[i] = subs[--nsubs];
            break;
        }
    }
    uv_mutex_unlock(&lock);
}

void gw_config_shutdown(void)
{
    uv_mutex_lock(&lock);
    gw_snapshot_t *old = current;
    current = NULL;
    uv_mutex_unlock(&lock);
    if (old) gw_snapshot_unref(old);
}
