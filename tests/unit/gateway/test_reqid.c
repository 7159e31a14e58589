/* test_reqid.c: unit tests for src/gateway/reqid.c (which caller IDs are kept, generated form). */
#include <string.h>

#include "gateway/reqid.h"
#include "test.h"

static void test_valid(void)
{
    static const char *const ok[] = {"a", "abc-123", "0af7651916cd43dd8448eb211c80319c",
                                      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                      "req_1.2:3+4/5=6@x", "ABCxyz"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) CHECK(gw_reqid_valid(ok[i], strlen(ok[i])));
    static const char *const bad[] = {"", "a b", "a\"b", "a\\b", "a,b", "a;b", "\xc3\xa9", "a\tb", "{x}", "a\r\nb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) CHECK(!gw_reqid_valid(bad[i], strlen(bad[i])));
    char longest[GW_REQID_MAX + 1];
    memset(longest, 'x', sizeof(longest));
    CHECK(gw_reqid_valid(longest, GW_REQID_MAX));
    CHECK(!gw_reqid_valid(longest, GW_REQID_MAX + 1));
    CHECK(!gw_reqid_valid("ab\0c", 4)); /* NUL inside */
}

static void test_generate(void)
{
    char a[GW_REQID_GEN_LEN + 1] = {0}, b[GW_REQID_GEN_LEN + 1] = {0};
    gw_reqid_generate(a, 0x0123456789abcdefull, 3, 1);
    CHECK_EQ_STR(a, "23456789abcdef030000000000000001");
    gw_reqid_generate(b, 0x0123456789abcdefull, 3, 2);
    CHECK(strcmp(a, b) != 0);
    gw_reqid_generate(b, 0x0123456789abcdefull, 4, 1); /* another worker, same sequence number */
    CHECK(strcmp(a, b) != 0);
    CHECK(gw_reqid_valid(a, GW_REQID_GEN_LEN));
    CHECK(gw_reqid_prefix() != gw_reqid_prefix()); /* random (64 bits: a collision is not a worry) */
}

int main(void)
{
    GW_RUN(test_valid);
    GW_RUN(test_generate);
    return gw_test_summary();
}
