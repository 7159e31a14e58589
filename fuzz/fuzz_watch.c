/* fuzz_watch.c: libFuzzer driver for src/registry/watch_decode.c: a watch response body fed
 * whole, in pseudo-random chunks and byte by byte must give the same events and the same end
 * state; every event has an object; a stopping callback sees a prefix; errors are sticky. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/watch_decode.h"
#include "util/common.h"
#include "require.h"

#define MAX_EVENTS 4096

/* What one run saw. */
typedef struct {
    size_t n;
    gw_watch_type_t type[MAX_EVENTS];
    char *dump[MAX_EVENTS];
    size_t stop_at; /* 1-based event on which the callback stops; 0: never */
    int rc;         /* last gw_watch_feed result */
    const char *why;
    bool pending;
} run_t;

static int record(void *ud, const gw_watch_event_t *ev)
{
    run_t *r = ud;
    REQUIRE(ev->object != NULL && json_is_object(ev->object));
    REQUIRE(ev->type >= GW_WATCH_ADDED && ev->type <= GW_WATCH_ERROR);
    REQUIRE(strcmp(gw_watch_type_name(ev->type), "?") != 0);
    if (r->n < MAX_EVENTS) {
        r->type[r->n] = ev->type;
        r->dump[r->n] = json_dumps(ev->object, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        REQUIRE(r->dump[r->n] != NULL);
    }
    r->n++;
    return r->stop_at && r->n == r->stop_at;
}

static void run_free(run_t *r)
{
    for (size_t i = 0; i < r->n && i < MAX_EVENTS; i++) free(r->dump[i]);
}

/* Feeds d[0..n) in chunks of sizes drawn from seed (0: one chunk; 1: single bytes), each an
 * exact-size heap copy, until a feed does not return 0. */
static void run(run_t *r, const char *d, size_t n, size_t max_event, uint32_t seed, int mode)
{
    gw_watch_decoder_t dec;
    gw_watch_decoder_init(&dec, max_event);
    r->rc = 0;
    r->why = NULL;
    size_t i = 0;
    do {
        size_t len = n - i;
        if (mode == 1) len = GW_MIN(len, 1);
        if (mode == 2) {
            seed = seed * 1103515245u + 12345u;
            len = GW_MIN(len, (size_t)(seed >> 16) % 97);
        }
        char *c = malloc(len ? len : 1);
        if (len) memcpy(c, d + i, len);
        const char *why = "unset";
        r->rc = gw_watch_feed(&dec, len ? c : NULL, len, record, r, &why);
        free(c);
        REQUIRE(r->rc == 0 || r->rc == GW_DECLINED || r->rc == GW_EBADMSG);
        if (r->rc == GW_EBADMSG) REQUIRE(why != NULL && why[0] != '\0' && strcmp(why, "unset") != 0);
        else REQUIRE(why == NULL);
        r->why = r->rc == GW_EBADMSG ? why : NULL;
        i += len;
    } while (r->rc == 0 && i < n);
    r->pending = gw_watch_pending(&dec);
    if (r->rc == GW_EBADMSG) {
        /* sticky: no callback, same reason, nothing pending; usable again after a reset */
        size_t before = r->n;
        const char *why = NULL;
        REQUIRE(!r->pending);
        REQUIRE(gw_watch_feed(&dec, "{\"type\":\"ADDED\",\"object\":{}}", 28, record, r, &why) == GW_EBADMSG);
        REQUIRE(why == r->why && r->n == before);
        gw_watch_decoder_reset(&dec);
        REQUIRE(!gw_watch_pending(&dec));
    }
    if (r->rc == GW_DECLINED) REQUIRE(!r->pending);
    gw_watch_decoder_free(&dec);
}

static bool same_events(const run_t *a, const run_t *b, size_t count)
{
    for (size_t i = 0; i < count && i < MAX_EVENTS; i++)
        if (a->type[i] != b->type[i] || strcmp(a->dump[i], b->dump[i]) != 0) return false;
    return true;
}

/* Input: 4 control bytes (max_event choice, chunking seed x2, stop position), then the body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    static const size_t limits[] = {1, 2, 16, 64, 256, 4096, 1 << 20, 0};
    size_t max_event = limits[data[0] & 7];
    uint32_t seed = (uint32_t)data[1] << 8 | data[2];
    size_t stop_at = data[3] & 15;
    const char *body = (const char *)data + 4;
    size_t n = size - 4;

    static run_t whole, chunks, bytes, stop;
    memset(&whole, 0, sizeof(whole));
    run(&whole, body, n, max_event, seed, 0);
    REQUIRE(whole.rc != GW_DECLINED);
    if (whole.rc == 0 && n == 0) REQUIRE(!whole.pending && whole.n == 0);

    memset(&chunks, 0, sizeof(chunks));
    run(&chunks, body, n, max_event, seed, 2);
    REQUIRE(chunks.rc == whole.rc && chunks.n == whole.n && chunks.pending == whole.pending);
    REQUIRE(chunks.why == whole.why || (chunks.why && whole.why && strcmp(chunks.why, whole.why) == 0));
    REQUIRE(same_events(&chunks, &whole, whole.n));
    run_free(&chunks);

    if (n <= 4096) {
        memset(&bytes, 0, sizeof(bytes));
        run(&bytes, body, n, max_event, seed, 1);
        REQUIRE(bytes.rc == whole.rc && bytes.n == whole.n && bytes.pending == whole.pending);
        REQUIRE(bytes.why == whole.why || (bytes.why && whole.why && strcmp(bytes.why, whole.why) == 0));
        REQUIRE(same_events(&bytes, &whole, whole.n));
        run_free(&bytes);
    }

    if (stop_at) {
        memset(&stop, 0, sizeof(stop));
        stop.stop_at = stop_at;
        run(&stop, body, n, max_event, seed, 2);
        if (whole.n >= stop_at) {
            REQUIRE(stop.rc == GW_DECLINED && stop.n == stop_at);
        } else {
            REQUIRE(stop.rc == whole.rc && stop.n == whole.n);
        }
        REQUIRE(same_events(&stop, &whole, stop.n));
        run_free(&stop);
    }
    run_free(&whole);
    return 0;
}
