/* test_cookie.c: unit tests for src/auth/cookie.c (Set-Cookie pair collection and Cookie
 * header merging); inputs are exact-size heap copies without NUL so ASan sees over-reads. */
#include <stdlib.h>
#include <string.h>

#include "auth/cookie.h"
#include "test.h"
#include "util/common.h"

/* Adds one Set-Cookie value given as a C string, from an exact-size heap copy. */
static int add(gw_buf_t *out, const char *sc)
{
    size_t n = strlen(sc);
    char *b = malloc(n ? n : 1);
    memcpy(b, sc, n);
    int rc = gw_cookie_add_set_cookie(out, (gw_str_t){b, n});
    free(b);
    return rc;
}

static const char *str(const gw_buf_t *b) { return b->base ? b->base : ""; }

static void test_add_basic(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 1024);
    CHECK_EQ_INT(add(&b, "SESSION=abc123; Path=/; HttpOnly; Secure"), 0);
    CHECK_EQ_STR(str(&b), "SESSION=abc123");
    CHECK_EQ_INT(add(&b, "  sap-usercontext = sap-client=100 ;Expires=Wed, 21 Oct 2015 07:28:00 GMT"), 0);
    CHECK_EQ_STR(str(&b), "SESSION=abc123; sap-usercontext=sap-client=100");
    CHECK_EQ_INT(add(&b, "\tempty=\t; Max-Age=0"), 0);
    CHECK_EQ_STR(str(&b), "SESSION=abc123; sap-usercontext=sap-client=100; empty=");
    CHECK_EQ_INT(add(&b, "q=\"quoted value-less\""), GW_EBADMSG); /* space inside quotes */
    CHECK_EQ_INT(add(&b, "q=\"quoted\""), 0);
    CHECK_EQ_INT(add(&b, "tok!#$%&'*+-.^_`|~=a,b\x80/:?@[]{}"), 0);
    CHECK_EQ_STR(str(&b), "SESSION=abc123; sap-usercontext=sap-client=100; empty=; q=\"quoted\"; "
                          "tok!#$%&'*+-.^_`|~=a,b\x80/:?@[]{}");
    gw_buf_free(&b);
}

static void test_add_replace(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 1024);
    CHECK_EQ_INT(add(&b, "a=1"), 0);
    CHECK_EQ_INT(add(&b, "b=2; Path=/"), 0);
    CHECK_EQ_INT(add(&b, "c=3"), 0);
    CHECK_EQ_INT(add(&b, "b=22; Path=/x"), 0); /* replaced in place */
    CHECK_EQ_STR(str(&b), "a=1; b=22; c=3");
    CHECK_EQ_INT(add(&b, "a="), 0);
    CHECK_EQ_STR(str(&b), "a=; b=22; c=3");
    CHECK_EQ_INT(add(&b, "c=333333"), 0);
    CHECK_EQ_STR(str(&b), "a=; b=22; c=333333");
    CHECK_EQ_INT(add(&b, "C=4"), 0); /* names are case-sensitive */
    CHECK_EQ_STR(str(&b), "a=; b=22; c=333333; C=4");
    CHECK_EQ_INT(add(&b, "A = 5"), 0);
    CHECK_EQ_STR(str(&b), "a=; b=22; c=333333; C=4; A=5");
    CHECK_EQ_INT(add(&b, "ab=6"), 0); /* a prefix of a name is another name */
    CHECK_EQ_INT(add(&b, "b=7"), 0);
    CHECK_EQ_STR(str(&b), "a=; b=7; c=333333; C=4; A=5; ab=6");
    gw_buf_free(&b);

    /* an out that already holds duplicates (not built here) ends up with one */
    gw_buf_init(&b, 1024);
    CHECK_EQ_INT(gw_buf_puts(&b, "x=1; y=2;; x=3 ; z"), 0);
    CHECK_EQ_INT(add(&b, "x=9"), 0);
    CHECK_EQ_STR(str(&b), "x=9; y=2; z");
    gw_buf_free(&b);
}

/* Expects GW_EBADMSG and out unchanged. */
static void rejected(gw_buf_t *b, const char *sc)
{
    size_t len = b->len;
    char *before = strdup(str(b));
    int rc = add(b, sc);
    CHECK_EQ_INT(rc, GW_EBADMSG);
    CHECK_EQ_INT(b->len, len);
    CHECK_EQ_STR(str(b), before);
    if (rc != GW_EBADMSG) fprintf(stderr, "  accepted: \"%s\"\n", sc);
    free(before);
}

static void test_add_invalid(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 1024);
    rejected(&b, ""); /* on an empty out too */
    CHECK(b.base == NULL);
    CHECK_EQ_INT(add(&b, "keep=1"), 0);
    rejected(&b, "");
    rejected(&b, "   ");
    rejected(&b, "noequals");
    rejected(&b, "noequals; a=b");
    rejected(&b, "; a=b");
    rejected(&b, "=value");
    rejected(&b, " =value");
    rejected(&b, "na me=v");
    rejected(&b, "na(me=v");
    rejected(&b, "na\"me=v");
    rejected(&b, "n@me=v");
    rejected(&b, "n\xc3\xa9=v");
    rejected(&b, "n=v w");
    rejected(&b, "n=v\tw");
    rejected(&b, "n=v\rw");
    rejected(&b, "n=v\r\nSet-Cookie: x=y");
    rejected(&b, "n=v\x7f");
    rejected(&b, "n=v\\w");
    rejected(&b, "n=v\"w");
    rejected(&b, "n=\"v");
    rejected(&b, "n=\"");
    rejected(&b, "n=\"a\"b\"");
    CHECK_EQ_STR(str(&b), "keep=1");

    /* NUL inside the pair, and a NULL empty slice */
    char nul[] = {'n', '=', 'a', '\0', 'b'};
    char *h = malloc(sizeof(nul));
    memcpy(h, nul, sizeof(nul));
    CHECK_EQ_INT(gw_cookie_add_set_cookie(&b, (gw_str_t){h, sizeof(nul)}), GW_EBADMSG);
    CHECK_EQ_INT(gw_cookie_add_set_cookie(&b, (gw_str_t){h, 3}), 0); /* "n=a" */
    free(h);
    CHECK_EQ_INT(gw_cookie_add_set_cookie(&b, (gw_str_t){NULL, 0}), GW_EBADMSG);
    CHECK_EQ_STR(str(&b), "keep=1; n=a");
    /* junk after the first ';' is not looked at */
    CHECK_EQ_INT(add(&b, "m=1; \r\n\x01 bad attr"), 0);
    CHECK_EQ_STR(str(&b), "keep=1; n=a; m=1");
    gw_buf_free(&b);
}

static void test_add_cap(void)
{
    gw_buf_t b;
    gw_buf_init(&b, 12);
    CHECK_EQ_INT(add(&b, "a=1"), 0);
    CHECK_EQ_INT(add(&b, "b=22"), 0); /* "a=1; b=22" = 9 */
    CHECK_EQ_INT(add(&b, "c=1"), GW_ENOMEM); /* would be 14 */
    CHECK_EQ_STR(str(&b), "a=1; b=22");
    CHECK_EQ_INT(add(&b, "b=2222"), 0); /* a replacement may grow it */
    CHECK_EQ_STR(str(&b), "a=1; b=2222");
    CHECK_EQ_INT(b.len, 11);
    CHECK_EQ_INT(add(&b, "b=22222"), 0);
    CHECK_EQ_INT(b.len, 12);
    CHECK_EQ_INT(add(&b, "b=222222"), GW_ENOMEM);
    CHECK_EQ_STR(str(&b), "a=1; b=22222");
    CHECK_EQ_INT(add(&b, "b=2"), 0); /* shrinking always fits */
    CHECK_EQ_STR(str(&b), "a=1; b=2");
    gw_buf_free(&b);

    gw_buf_init(&b, 2);
    CHECK_EQ_INT(add(&b, "a=1"), GW_ENOMEM);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.base == NULL);
    gw_buf_free(&b);
}

/* ---- merge ---- */

/* Merges C-string caller values (exact-size heap copies) with token into a fresh buffer. */
static int merge(gw_buf_t *out, size_t max, const char *const *caller, size_t n, const char *token)
{
    gw_str_t cs[8];
    size_t tn = strlen(token);
    char *tcopy = malloc(tn ? tn : 1);
    memcpy(tcopy, token, tn);
    for (size_t i = 0; i < n; i++) {
        cs[i].n = strlen(caller[i]);
        char *c = malloc(cs[i].n ? cs[i].n : 1);
        memcpy(c, caller[i], cs[i].n);
        cs[i].p = c;
    }
    gw_buf_init(out, max);
    int rc = gw_cookie_merge(out, cs, n, (gw_str_t){tcopy, tn});
    for (size_t i = 0; i < n; i++) free((void *)cs[i].p);
    free(tcopy);
    return rc;
}

#define MERGE_EQ(caller, token, expect)                                                  \
    do {                                                                                 \
        gw_buf_t _o;                                                                     \
        CHECK_EQ_INT(merge(&_o, 4096, caller, GW_ARRAY_SIZE(caller), token), 0);         \
        CHECK_EQ_STR(str(&_o), expect);                                                  \
        gw_buf_free(&_o);                                                                \
    } while (0)

static void test_merge(void)
{
    const char *one[] = {"a=1; b=2; c=3"};
    MERGE_EQ(one, "b=20; d=4", "a=1; c=3; b=20; d=4");
    MERGE_EQ(one, "", "a=1; b=2; c=3");
    MERGE_EQ(one, "a=x; b=y; c=z", "a=x; b=y; c=z");

    /* several caller Cookie headers, pieces trimmed, empty ones dropped, odd ones kept as is */
    const char *many[] = {" a=1 ;; b =2;", "", "; ;", "odd;  c = 3 ; =e; x=\"q\" ;d=4=5"};
    MERGE_EQ(many, "b=9", "a=1; odd; c = 3; =e; x=\"q\"; d=4=5; b=9");
    MERGE_EQ(many, "c=7; d=8", "a=1; b =2; odd; =e; x=\"q\"; c=7; d=8");
    /* a piece without '=' has no name, so it is not a token cookie's duplicate */
    MERGE_EQ(many, "odd=1", "a=1; b =2; odd; c = 3; =e; x=\"q\"; d=4=5; odd=1");
    /* repeated caller names: all of them go when the token has the name */
    const char *rep[] = {"s=1; t=1", "s=2"};
    MERGE_EQ(rep, "s=3", "t=1; s=3");
    MERGE_EQ(rep, "S=3", "s=1; t=1; s=2; S=3");

    /* empty caller list, empty token cookies */
    const char *none[] = {""};
    MERGE_EQ(none, "k=1; l=2", "k=1; l=2");
    MERGE_EQ(none, "", "");
    gw_buf_t o;
    gw_buf_init(&o, 64);
    CHECK_EQ_INT(gw_cookie_merge(&o, NULL, 0, (gw_str_t){NULL, 0}), 0);
    CHECK_EQ_INT(o.len, 0);
    CHECK(o.base == NULL);
    CHECK_EQ_INT(gw_cookie_merge(&o, NULL, 0, GW_STR_LIT("k=1")), 0);
    CHECK_EQ_STR(str(&o), "k=1");
    gw_buf_free(&o);

    /* appends without a separator before the first pair */
    gw_buf_init(&o, 64);
    CHECK_EQ_INT(gw_buf_puts(&o, "Cookie: "), 0);
    gw_str_t c = GW_STR_LIT("a=1");
    CHECK_EQ_INT(gw_cookie_merge(&o, &c, 1, GW_STR_LIT("b=2")), 0);
    CHECK_EQ_STR(str(&o), "Cookie: a=1; b=2");
    gw_buf_free(&o);
}

static void test_merge_with_added(void)
{
    gw_buf_t tok;
    gw_buf_init(&tok, 256);
    CHECK_EQ_INT(add(&tok, "JSESSIONID=X1; Path=/; HttpOnly"), 0);
    CHECK_EQ_INT(add(&tok, "lb=7; Secure"), 0);
    CHECK_EQ_INT(add(&tok, "JSESSIONID=X2"), 0);
    const char *caller[] = {"JSESSIONID=mine; theme=dark", "lb=0"};
    gw_buf_t o;
    CHECK_EQ_INT(merge(&o, 256, caller, 2, str(&tok)), 0);
    CHECK_EQ_STR(str(&o), "theme=dark; JSESSIONID=X2; lb=7");
    gw_buf_free(&o);
    gw_buf_free(&tok);
}

static void test_merge_defensive(void)
{
    /* CR, LF and NUL never reach the output */
    char raw[] = {'a', '=', '1', ';', 'b', '=', '\r', '\n', ';', 'c', '=', '\0', ';', 'd', '=', '4'};
    gw_str_t c = {raw, sizeof(raw)};
    gw_buf_t o;
    gw_buf_init(&o, 64);
    CHECK_EQ_INT(gw_cookie_merge(&o, &c, 1, GW_STR_LIT("e=5; f=\n; g=6")), 0);
    CHECK_EQ_STR(str(&o), "a=1; d=4; e=5; g=6");
    CHECK_EQ_INT(o.len, strlen("a=1; d=4; e=5; g=6"));
    gw_buf_free(&o);
}

static void test_merge_cap(void)
{
    const char *caller[] = {"a=1; b=2"};
    gw_buf_t o;
    CHECK_EQ_INT(merge(&o, 13, caller, 1, "c=3"), 0); /* "a=1; b=2; c=3" = 13 */
    CHECK_EQ_STR(str(&o), "a=1; b=2; c=3");
    gw_buf_free(&o);
    CHECK_EQ_INT(merge(&o, 12, caller, 1, "c=3"), GW_ENOMEM);
    CHECK_EQ_INT(o.len, 0);
    CHECK_EQ_STR(str(&o), "");
    gw_buf_free(&o);

    /* on failure out is restored to what it held */
    gw_buf_init(&o, 16);
    CHECK_EQ_INT(gw_buf_puts(&o, "Cookie: "), 0);
    gw_str_t c = GW_STR_LIT("a=1; b=2");
    CHECK_EQ_INT(gw_cookie_merge(&o, &c, 1, GW_STR_LIT("c=3")), GW_ENOMEM);
    CHECK_EQ_INT(o.len, 8);
    CHECK_EQ_STR(str(&o), "Cookie: ");
    CHECK_EQ_INT(gw_cookie_merge(&o, &c, 1, GW_STR_LIT("")), 0); /* exactly 16 */
    CHECK_EQ_STR(str(&o), "Cookie: a=1; b=2");
    gw_buf_free(&o);
}

int main(void)
{
    GW_RUN(test_add_basic);
    GW_RUN(test_add_replace);
    GW_RUN(test_add_invalid);
    GW_RUN(test_add_cap);
    GW_RUN(test_merge);
    GW_RUN(test_merge_with_added);
    GW_RUN(test_merge_defensive);
    GW_RUN(test_merge_cap);
    return gw_test_summary();
}
