/* test_watch_decode.c: unit tests of src/registry/watch_decode.c: framing across every split,
 * whitespace, limits, malformed events, ERROR events, stopping from the callback. Every chunk
 * is an exact-size heap copy so ASan sees over-reads. */
#include <stdlib.h>
#include <string.h>

#include "registry/watch_decode.h"
#include "test.h"
#include "util/common.h"

#define MAXEV 64

/* What the callback saw: types and compact, key-sorted dumps of the objects. */
typedef struct {
    size_t n;
    gw_watch_type_t type[MAXEV];
    char *obj[MAXEV];
    size_t stop_at; /* return non-zero on this (1-based) event; 0: never */
    json_t *kept;   /* first object, json_incref'd */
} rec_t;

static int record(void *ud, const gw_watch_event_t *ev)
{
    rec_t *r = ud;
    CHECK(json_is_object(ev->object));
    if (r->n < MAXEV) {
        r->type[r->n] = ev->type;
        r->obj[r->n] = json_dumps(ev->object, JSON_COMPACT | JSON_SORT_KEYS);
    }
    if (r->n == 0) r->kept = json_incref(ev->object);
    r->n++;
    return r->stop_at && r->n == r->stop_at;
}

static void rec_free(rec_t *r)
{
    for (size_t i = 0; i < r->n && i < MAXEV; i++) free(r->obj[i]);
    json_decref(r->kept);
    memset(r, 0, sizeof(*r));
}

/* Feeds s[0..n) as an exact-size heap copy. */
static int feed(gw_watch_decoder_t *d, const char *s, size_t n, rec_t *r, const char **why)
{
    char *c = malloc(n ? n : 1);
    if (n) memcpy(c, s, n);
    int rc = gw_watch_feed(d, n ? c : NULL, n, record, r, why);
    free(c);
    return rc;
}

static int feed_str(gw_watch_decoder_t *d, const char *s, rec_t *r, const char **why)
{
    return feed(d, s, strlen(s), r, why);
}

#define EV1 "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Application\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}\n"
#define EV2 "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b{}\\\"[\",\"x\":[1,{\"y\":\"}\"}]}}}\r\n"
#define EV3 "\n  {\"object\":{\"metadata\":{\"name\":\"c\\\\\"}},\"type\":\"DELETED\"}\n\n"
#define EV4 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Application\",\"metadata\":{\"resourceVersion\":\"12\"}}}\n"
#define EV5 "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"too old resource version: 1 (5)\",\"reason\":\"Expired\",\"code\":410}}\n"

static void test_single_and_types(void)
{
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 4096);
    rec_t r = {0};
    const char *why = "unset";
    CHECK_EQ_INT(feed_str(&d, EV1 EV2 EV3 EV4 EV5, &r, &why), 0);
    CHECK(why == NULL);
    CHECK_EQ_INT(r.n, 5);
    CHECK_EQ_INT(r.type[0], GW_WATCH_ADDED);
    CHECK_EQ_INT(r.type[1], GW_WATCH_MODIFIED);
    CHECK_EQ_INT(r.type[2], GW_WATCH_DELETED);
    CHECK_EQ_INT(r.type[3], GW_WATCH_BOOKMARK);
    CHECK_EQ_INT(r.type[4], GW_WATCH_ERROR);
    CHECK_EQ_STR(r.obj[0], "{\"kind\":\"Application\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}");
    CHECK_EQ_STR(r.obj[1], "{\"metadata\":{\"name\":\"b{}\\\"[\",\"x\":[1,{\"y\":\"}\"}]}}");
    CHECK_EQ_STR(r.obj[2], "{\"metadata\":{\"name\":\"c\\\\\"}}");
    CHECK(!gw_watch_pending(&d));
    /* the first object was kept with json_incref and outlives its callback */
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(r.kept, "metadata"), "name")), "a");
    rec_free(&r);
    gw_watch_decoder_free(&d);
    CHECK_EQ_STR(gw_watch_type_name(GW_WATCH_BOOKMARK), "BOOKMARK");
    CHECK_EQ_STR(gw_watch_type_name((gw_watch_type_t)42), "?");
}

static int keep_status(void *ud, const gw_watch_event_t *ev)
{
    json_t **out = ud;
    if (ev->type == GW_WATCH_ERROR) *out = json_incref(ev->object);
    return 0;
}

static void test_error_event_status(void)
{
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 4096);
    json_t *st = NULL;
    const char *why;
    CHECK_EQ_INT(gw_watch_feed(&d, EV5, strlen(EV5), keep_status, &st, &why), 0);
    CHECK(st != NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "code")), 410);
    CHECK_EQ_STR(json_string_value(json_object_get(st, "reason")), "Expired");
    CHECK_EQ_STR(json_string_value(json_object_get(st, "kind")), "Status");
    json_decref(st);
    gw_watch_decoder_free(&d);
}

/* The same stream split once at every position, and byte by byte, gives the same events. */
static void test_every_split(void)
{
    const char *s = EV1 EV2 EV3 EV4 EV5 "  \r\n";
    size_t n = strlen(s);
    rec_t whole = {0};
    gw_watch_decoder_t d;
    const char *why;
    gw_watch_decoder_init(&d, 4096);
    CHECK_EQ_INT(feed(&d, s, n, &whole, &why), 0);
    gw_watch_decoder_free(&d);
    CHECK_EQ_INT(whole.n, 5);

    int bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        rec_t r = {0};
        gw_watch_decoder_init(&d, 4096);
        int rc1 = feed(&d, s, cut, &r, &why);
        bool pend = gw_watch_pending(&d);
        int rc2 = feed(&d, s + cut, n - cut, &r, &why);
        bool same = rc1 == 0 && rc2 == 0 && r.n == whole.n && !gw_watch_pending(&d);
        for (size_t i = 0; same && i < r.n; i++)
            same = r.type[i] == whole.type[i] && strcmp(r.obj[i], whole.obj[i]) == 0;
        /* pending exactly when the cut falls inside an event */
        size_t e1 = strlen(EV1) - 2; /* index of EV1's last '}' */
        if (cut > 0 && cut <= e1) same = same && pend;
        if (cut == e1 + 1 || cut == e1 + 2 || cut == 0) same = same && !pend;
        if (!same) bad++;
        rec_free(&r);
        gw_watch_decoder_free(&d);
    }
    CHECK_EQ_INT(bad, 0);

    rec_t r = {0};
    gw_watch_decoder_init(&d, 4096);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) rc = feed(&d, s + i, 1, &r, &why);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.n, whole.n);
    for (size_t i = 0; i < r.n && i < whole.n; i++) CHECK_EQ_STR(r.obj[i], whole.obj[i]);
    rec_free(&r);
    gw_watch_decoder_free(&d);
    rec_free(&whole);
}

/* Framing is by JSON structure: pretty-printed and back-to-back objects decode too. */
static void test_pretty_and_adjacent(void)
{
    const char *s = "{\n  \"type\": \"ADDED\",\n  \"object\": {\n    \"a\": [\n      1,\n      2\n    ]\n  }\n}"
                    "{\"type\":\"DELETED\",\"object\":{}}{\"type\":\"ADDED\",\"object\":{\"s\":\"\\\\\\\"\"}}";
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 4096);
    rec_t r = {0};
    const char *why;
    CHECK_EQ_INT(feed_str(&d, s, &r, &why), 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_STR(r.obj[0], "{\"a\":[1,2]}");
    CHECK_EQ_INT(r.type[1], GW_WATCH_DELETED);
    CHECK_EQ_STR(r.obj[1], "{}");
    CHECK_EQ_STR(r.obj[2], "{\"s\":\"\\\\\\\"\"}");
    CHECK(!gw_watch_pending(&d));
    rec_free(&r);
    gw_watch_decoder_free(&d);
}

static void test_blank_and_empty(void)
{
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 4096);
    rec_t r = {0};
    const char *why;
    CHECK_EQ_INT(feed(&d, NULL, 0, &r, &why), 0);
    CHECK_EQ_INT(feed_str(&d, "\r\n\n \t\r\n", &r, &why), 0);
    CHECK(!gw_watch_pending(&d));
    CHECK_EQ_INT(feed_str(&d, "\r\n{\"type\":\"ADDED\",", &r, &why), 0);
    CHECK(gw_watch_pending(&d));
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(feed_str(&d, "\"object\":{}}\r\n\r\n", &r, &why), 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK(!gw_watch_pending(&d));
    rec_free(&r);
    gw_watch_decoder_free(&d);
}

static void test_limit(void)
{
    /* an event of exactly the limit passes, one byte more does not */
    const char *ev = "{\"type\":\"ADDED\",\"object\":{\"k\":\"vvvv\"}}"; /* 38 bytes */
    size_t n = strlen(ev);
    CHECK_EQ_INT(n, 38);
    for (size_t cut = 0; cut <= n; cut++) {
        gw_watch_decoder_t d;
        rec_t r = {0};
        const char *why;
        gw_watch_decoder_init(&d, n);
        CHECK_EQ_INT(feed(&d, ev, cut, &r, &why) | feed(&d, ev + cut, n - cut, &r, &why), 0);
        CHECK_EQ_INT(r.n, 1);
        rec_free(&r);
        gw_watch_decoder_free(&d);

        gw_watch_decoder_init(&d, n - 1);
        int rc1 = feed(&d, ev, cut, &r, &why);
        int rc2 = rc1 ? rc1 : feed(&d, ev + cut, n - cut, &r, &why);
        CHECK_EQ_INT(rc2, GW_EBADMSG);
        CHECK_EQ_STR(why, "event larger than the limit");
        CHECK_EQ_INT(r.n, 0);
        rec_free(&r);
        gw_watch_decoder_free(&d);
    }

    /* detected as soon as the limit is passed, before the event ends; then sticky until reset */
    gw_watch_decoder_t d;
    rec_t r = {0};
    const char *why;
    gw_watch_decoder_init(&d, 16);
    CHECK_EQ_INT(feed_str(&d, "{\"type\":\"ADDED\",", &r, &why), 0); /* 16 bytes: at the limit */
    CHECK(gw_watch_pending(&d));
    CHECK_EQ_INT(feed_str(&d, "\"", &r, &why), GW_EBADMSG);
    CHECK_EQ_STR(why, "event larger than the limit");
    CHECK(!gw_watch_pending(&d));
    why = NULL;
    CHECK_EQ_INT(feed_str(&d, "{}", &r, &why), GW_EBADMSG);
    CHECK_EQ_STR(why, "event larger than the limit");
    gw_watch_decoder_reset(&d);
    CHECK_EQ_INT(feed_str(&d, "{\"type\":\"ADDED\"", &r, &why), 0); /* 15 bytes */
    CHECK_EQ_INT(feed_str(&d, ",\"object\":{}}", &r, &why), GW_EBADMSG);
    gw_watch_decoder_reset(&d);
    /* whitespace between events does not count */
    gw_watch_decoder_init(&d, 29);
    CHECK_EQ_INT(feed_str(&d, "\n\n\n\n\n\n\n\n\n\n{\"type\":\"ADDED\",\"object\":{}}\n\n\n\n\n", &r, &why), 0);
    CHECK_EQ_INT(r.n, 1);
    rec_free(&r);
    gw_watch_decoder_free(&d);

    /* a big event in many chunks, then small ones reuse the decoder */
    size_t big = 200000;
    char *b = malloc(big + 64);
    size_t o = (size_t)sprintf(b, "{\"type\":\"MODIFIED\",\"object\":{\"d\":\"");
    memset(b + o, 'x', big);
    o += big;
    o += (size_t)sprintf(b + o, "\"}}\n");
    gw_watch_decoder_init(&d, big + 64);
    int rc = 0;
    for (size_t i = 0; i < o && rc == 0; i += 1000) rc = feed(&d, b + i, GW_MIN(1000, o - i), &r, &why);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK(r.obj[0] && strlen(r.obj[0]) == big + 8);
    CHECK_EQ_INT(feed_str(&d, EV1 EV4, &r, &why), 0);
    CHECK_EQ_INT(r.n, 3);
    rec_free(&r);
    gw_watch_decoder_free(&d);
    free(b);

    /* max_event 0 is clamped to 1: every event is too large */
    gw_watch_decoder_init(&d, 0);
    CHECK_EQ_INT(feed_str(&d, "{}", &r, &why), GW_EBADMSG);
    CHECK_EQ_STR(why, "event larger than the limit");
    gw_watch_decoder_free(&d);
}

/* One bad event: the reason, events before it delivered, nothing after, sticky until reset. */
static void expect_bad(const char *stream, size_t delivered, const char *reason)
{
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 4096);
    rec_t r = {0};
    const char *why = NULL;
    int rc = feed_str(&d, stream, &r, &why);
    if (rc != GW_EBADMSG || r.n != delivered || !why || strcmp(why, reason) != 0)
        fprintf(stderr, "stream %s: rc %d, %zu events, why %s\n", stream, rc, r.n, why ? why : "(null)");
    CHECK_EQ_INT(rc, GW_EBADMSG);
    CHECK_EQ_INT(r.n, delivered);
    CHECK_EQ_STR(why, reason);
    CHECK(!gw_watch_pending(&d));
    why = NULL;
    CHECK_EQ_INT(feed_str(&d, EV1, &r, &why), GW_EBADMSG);
    CHECK_EQ_STR(why, reason);
    CHECK_EQ_INT(r.n, delivered);
    gw_watch_decoder_reset(&d);
    CHECK_EQ_INT(feed_str(&d, EV1, &r, &why), 0);
    CHECK_EQ_INT(r.n, delivered + 1);
    rec_free(&r);
    gw_watch_decoder_free(&d);
}

static void test_malformed(void)
{
    expect_bad("garbage\n", 0, "event is not valid JSON");
    expect_bad(EV1 "<html>502 Bad Gateway</html>\n", 1, "event is not valid JSON");
    expect_bad(EV1 EV1 "{\"type\":\"ADDED\",\"object\":{}]\n", 2, "event is not valid JSON");
    expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":1,}}\n", 0, "event is not valid JSON");
    expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":\"\xff\"}}\n", 0, "event is not valid JSON");
    expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":\"x\ny\"}}\n", 0, "event is not valid JSON");
    expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":\"\\u0000\"}}\n", 0, "event is not valid JSON");
    expect_bad("{]\n", 0, "event is not valid JSON");
    expect_bad("[{\"type\":\"ADDED\",\"object\":{}}]\n", 0, "event is not a JSON object");
    expect_bad("\"ADDED\"\n", 0, "event is not a JSON object");
    expect_bad("42\n", 0, "event is not a JSON object");
    expect_bad("null\n", 0, "event is not a JSON object");
    expect_bad(EV1 "{\"type\":\"SYNC\",\"object\":{}}\n", 1, "unknown event type");
    expect_bad("{\"type\":\"added\",\"object\":{}}\n", 0, "unknown event type");
    expect_bad("{\"type\":\"ADDED \",\"object\":{}}\n", 0, "unknown event type");
    expect_bad("{\"type\":\"\",\"object\":{}}\n", 0, "unknown event type");
    expect_bad("{\"type\":1,\"object\":{}}\n", 0, "event without type");
    expect_bad("{\"object\":{}}\n", 0, "event without type");
    expect_bad("{\"type\":\"ADDED\"}\n", 0, "event without object");
    expect_bad("{\"type\":\"DELETED\",\"object\":null}\n", 0, "event without object");
    expect_bad("{\"type\":\"ERROR\",\"object\":\"too old\"}\n", 0, "event without object");
    expect_bad("{\"type\":\"MODIFIED\",\"object\":[]}\n", 0, "event without object");
}

/* A cut stream leaves bytes pending; deep nesting is refused by jansson, never a crash. */
static void test_cut_and_deep(void)
{
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 1 << 20);
    rec_t r = {0};
    const char *why;
    CHECK_EQ_INT(feed_str(&d, EV1 "{\"type\":\"ADDED\",\"object\":{\"a\":\"}", &r, &why), 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK(gw_watch_pending(&d));
    gw_watch_decoder_reset(&d);
    CHECK(!gw_watch_pending(&d));

    size_t depth = 100000;
    char *s = malloc(2 * depth + 64);
    size_t o = (size_t)sprintf(s, "{\"type\":\"ADDED\",\"object\":{\"a\":");
    memset(s + o, '[', depth);
    o += depth;
    memset(s + o, ']', depth);
    o += depth;
    o += (size_t)sprintf(s + o, "}}\n");
    CHECK_EQ_INT(feed(&d, s, o, &r, &why), GW_EBADMSG);
    CHECK_EQ_STR(why, "event is not valid JSON");
    CHECK_EQ_INT(r.n, 1);
    free(s);
    rec_free(&r);
    gw_watch_decoder_free(&d);
}

static void test_callback_stop(void)
{
    const char *s = EV1 EV4 EV5;
    gw_watch_decoder_t d;
    gw_watch_decoder_init(&d, 4096);
    rec_t r = {.stop_at = 2};
    const char *why = "unset";
    CHECK_EQ_INT(feed_str(&d, s, &r, &why), GW_DECLINED);
    CHECK(why == NULL);
    CHECK_EQ_INT(r.n, 2);
    CHECK(!gw_watch_pending(&d));
    /* the decoder is between events: the rest of the stream (from after EV4's '}') goes on */
    size_t after = strlen(EV1) + strlen(EV4) - 1;
    r.stop_at = 0;
    CHECK_EQ_INT(feed_str(&d, s + after, &r, &why), 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_INT(r.type[2], GW_WATCH_ERROR);
    rec_free(&r);

    /* stop on an event completed from the buffer */
    r = (rec_t){.stop_at = 1};
    CHECK_EQ_INT(feed(&d, EV1, 10, &r, &why), 0);
    CHECK_EQ_INT(feed_str(&d, EV1 + 10, &r, &why), GW_DECLINED);
    CHECK_EQ_INT(r.n, 1);
    CHECK(!gw_watch_pending(&d));
    r.stop_at = 0;
    CHECK_EQ_INT(feed_str(&d, EV4, &r, &why), 0);
    CHECK_EQ_INT(r.n, 2);
    rec_free(&r);
    gw_watch_decoder_free(&d);
}

int main(void)
{
    GW_RUN(test_single_and_types);
    GW_RUN(test_error_event_status);
    GW_RUN(test_every_split);
    GW_RUN(test_pretty_and_adjacent);
    GW_RUN(test_blank_and_empty);
    GW_RUN(test_limit);
    GW_RUN(test_malformed);
    GW_RUN(test_cut_and_deep);
    GW_RUN(test_callback_stop);
    return gw_test_summary();
}
