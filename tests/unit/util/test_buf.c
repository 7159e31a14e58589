/* test_buf.c: unit tests for src/util/buf.c (capped buffer: cap, consume, take). */
#include <stdlib.h>

#include "test.h"
#include "util/buf.h"
#include "util/common.h"

static void test_empty(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 10);
    CHECK(b.base == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.max, 10);
    /* zeroed memory plus a max is a valid empty buffer */
    gw_buf_t z = {0};
    z.max = 4;
    CHECK_EQ_INT(gw_buf_puts(&z, "abcd"), 0);
    CHECK_EQ_STR(z.base, "abcd");
    gw_buf_free(&z);
    /* consume, reset and free on an empty buffer are harmless */
    gw_buf_consume(&b, 5);
    gw_buf_reset(&b);
    gw_buf_free(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.max, 10);
    CHECK_EQ_INT(gw_buf_append(&b, "", 0), 0);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.base != NULL && b.base[0] == '\0');
    gw_buf_free(&b);
}

static void test_cap(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 8);
    CHECK_EQ_INT(gw_buf_append(&b, "abcde", 5), 0);
    CHECK_EQ_INT(gw_buf_append(&b, "fgh", 3), 0); /* exactly at the cap */
    CHECK_EQ_INT(b.len, 8);
    CHECK_EQ_STR(b.base, "abcdefgh");
    CHECK_EQ_INT(gw_buf_append(&b, "", 0), 0); /* nothing more still fits */
    CHECK_EQ_INT(gw_buf_append(&b, "i", 1), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 8);
    CHECK_EQ_STR(b.base, "abcdefgh");
    CHECK(gw_buf_reserve(&b, 1) == NULL);
    CHECK(gw_buf_reserve(&b, 0) != NULL);
    CHECK_EQ_INT(gw_buf_appendf(&b, "%d", 1), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "abcdefgh");
    CHECK_EQ_INT(gw_buf_puts(&b, "x"), GW_ENOMEM);
    gw_buf_free(&b);

    /* over the cap in one go leaves the buffer unchanged */
    gw_buf_init(&b, 8);
    CHECK_EQ_INT(gw_buf_puts(&b, "ab"), 0);
    CHECK_EQ_INT(gw_buf_append(&b, "0123456", 7), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 2);
    CHECK_EQ_STR(b.base, "ab");
    CHECK_EQ_INT(gw_buf_appendf(&b, "%s", "0123456"), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab");
    CHECK_EQ_INT(gw_buf_appendf(&b, "%d-%s", 12, "xy"), 0);
    CHECK_EQ_STR(b.base, "ab12-xy");
    /* a huge n must not wrap around */
    CHECK(gw_buf_reserve(&b, (size_t)-1) == NULL);
    CHECK(gw_buf_reserve(&b, (size_t)-1 - 3) == NULL);
    CHECK_EQ_INT(gw_buf_append(&b, "z", (size_t)-1), GW_ENOMEM);
    CHECK_EQ_STR(b.base, "ab12-xy");
    gw_buf_free(&b);

    /* a zero cap takes nothing */
    gw_buf_init(&b, 0);
    CHECK_EQ_INT(gw_buf_append(&b, "a", 1), GW_ENOMEM);
    CHECK_EQ_INT(gw_buf_append(&b, "", 0), 0);
    CHECK_EQ_INT(b.len, 0);
    gw_buf_free(&b);
}

static void test_growth(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 100000);
    char chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(gw_buf_append(&b, chunk, sizeof(chunk)), 0);
    CHECK_EQ_INT(b.len, 100000);
    CHECK(b.cap >= b.len + 1 && b.cap <= b.max + 1);
    CHECK_EQ_INT(b.base[b.len], '\0');
    CHECK_EQ_INT(gw_buf_append(&b, "y", 1), GW_ENOMEM);
    gw_buf_free(&b);
}

static void test_reserve(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 16);
    char *p = gw_buf_reserve(&b, 4);
    CHECK(p != NULL);
    memcpy(p, "wxyz", 4);
    CHECK_EQ_INT(b.len, 0); /* reserve does not commit */
    b.len += 4;
    b.base[b.len] = '\0';
    CHECK_EQ_STR(b.base, "wxyz");
    CHECK(gw_buf_reserve(&b, 12) != NULL);
    CHECK(gw_buf_reserve(&b, 13) == NULL);
    gw_buf_free(&b);
}

static void test_consume(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 8);
    CHECK_EQ_INT(gw_buf_puts(&b, "abcdefgh"), 0);
    gw_buf_consume(&b, 3);
    CHECK_EQ_INT(b.len, 5);
    CHECK_EQ_STR(b.base, "defgh");
    /* space freed by consume is usable again, up to the cap */
    CHECK_EQ_INT(gw_buf_puts(&b, "ijk"), 0);
    CHECK_EQ_STR(b.base, "defghijk");
    CHECK_EQ_INT(gw_buf_puts(&b, "l"), GW_ENOMEM);
    gw_buf_consume(&b, 0);
    CHECK_EQ_STR(b.base, "defghijk");
    gw_buf_consume(&b, 8);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.base, "");
    CHECK_EQ_INT(gw_buf_puts(&b, "12"), 0);
    gw_buf_consume(&b, 100); /* more than held: empties */
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.base, "");
    CHECK_EQ_INT(gw_buf_puts(&b, "xy"), 0);
    gw_buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.base, "");
    gw_buf_free(&b);
}

static void test_take(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 32);
    CHECK_EQ_INT(gw_buf_puts(&b, "hello"), 0);
    size_t len = 0;
    char *s = gw_buf_take(&b, &len);
    CHECK_EQ_STR(s, "hello");
    CHECK_EQ_INT(len, 5);
    CHECK(b.base == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.max, 32);
    free(s);

    /* take from a never-used buffer gives an empty, owned string */
    s = gw_buf_take(&b, &len);
    CHECK(s != NULL);
    CHECK_EQ_STR(s, "");
    CHECK_EQ_INT(len, 0);
    free(s);

    /* the buffer is usable after take, with the same cap */
    CHECK_EQ_INT(gw_buf_puts(&b, "again"), 0);
    s = gw_buf_take(&b, NULL);
    CHECK_EQ_STR(s, "again");
    free(s);
    gw_buf_free(&b);
}

int main(void)
{
    GW_RUN(test_empty);
    GW_RUN(test_cap);
    GW_RUN(test_growth);
    GW_RUN(test_reserve);
    GW_RUN(test_consume);
    GW_RUN(test_take);
    return gw_test_summary();
}
