/* fuzz_kubeconfig.c: libFuzzer driver for src/registry/kubeconfig.c: kubeconfig text (YAML or
 * JSON) resolved against a small fixed directory of files. Invariants: success means a usable
 * http(s) server and consistent credentials; failure means a zeroed result and a one-line
 * message without control characters that never shows a user secret carrying the marker
 * FUZZSECRET (the seeds use it) unless a non-secret string of the input shows it too; the same
 * input always gives the same answer; LeakSanitizer sees every path. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/decode.h"
#include "registry/kubeconfig.h"
#include "util/common.h"
#include "require.h"

#define MARKER "FUZZSECRET"

static char base[64];

static const struct {
    const char *name, *content;
} files[] = {
    {"ca.crt", "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n"},
    {"tls.crt", "-----BEGIN CERTIFICATE-----\nQ1JU\n-----END CERTIFICATE-----\n"},
    {"tls.key", "-----BEGIN PRIVATE KEY-----\nFUZZSECRET\n-----END PRIVATE KEY-----\n"},
    {"token", "FUZZSECRET-token\n"},
    {"empty", ""},
};

static void remove_base(void)
{
    char path[128];
    for (size_t i = 0; i < GW_ARRAY_SIZE(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", base, files[i].name);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/sub", base);
    rmdir(path);
    rmdir(base);
}

/* A directory with the files seeds name: ca.crt, tls.crt, tls.key, token, empty, sub/. */
static void make_base(void)
{
    snprintf(base, sizeof(base), "/tmp/fuzz-kubeconfig-XXXXXX");
    if (!mkdtemp(base)) abort();
    for (size_t i = 0; i < GW_ARRAY_SIZE(files); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", base, files[i].name);
        FILE *f = fopen(path, "w");
        if (!f) abort();
        fputs(files[i].content, f);
        fclose(f);
    }
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", base);
    mkdir(sub, 0700);
    atexit(remove_base);
}

static bool no_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static bool is_secret_key(const char *k)
{
    return strcmp(k, "token") == 0 || strcmp(k, "password") == 0 || strcmp(k, "client-key-data") == 0 ||
           strcmp(k, "client-certificate-data") == 0;
}

/* True when some string (key or value) of v, other than the values of secret keys of
 * users[*].user mappings, contains MARKER. */
static bool public_marker(const json_t *v, bool in_user)
{
    if (json_is_string(v)) return strstr(json_string_value(v), MARKER) != NULL;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (public_marker(json_array_get(v, i), false)) return true;
        return false;
    }
    const char *k;
    const json_t *m;
    json_object_foreach((json_t *)v, k, m) {
        if (strstr(k, MARKER)) return true;
        if (in_user && is_secret_key(k) && json_is_string(m)) continue;
        if (public_marker(m, false)) return true;
    }
    return false;
}

/* Whether the context name or the decoded text (the way kubeconfig.c decodes it) shows MARKER
 * in public strings; true also when it cannot be decoded (then no claim is made). */
static bool marker_may_show(const char *context, const char *p, size_t n)
{
    if (context && strstr(context, MARKER)) return true;
    gw_manifest_list_t l = {0};
    gw_manifest_error_t e;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    int rc = i < n && p[i] == '{' ? gw_manifest_decode(p, n, GW_MANIFEST_JSON, &l, &e) : -1;
    if (rc) rc = gw_manifest_decode(p, n, GW_MANIFEST_YAML, &l, &e);
    if (rc) {
        gw_manifest_list_free(&l);
        return true;
    }
    bool shown = false;
    for (size_t d = 0; d < l.n && !shown; d++) {
        json_t *root = l.v[d].obj, *users = json_object_get(root, "users");
        const char *k;
        json_t *m;
        json_object_foreach(root, k, m) {
            if (strstr(k, MARKER)) shown = true;
            if (m == users && json_is_array(users)) {
                for (size_t u = 0; u < json_array_size(users); u++) {
                    json_t *e2 = json_array_get(users, u);
                    const char *k2;
                    json_t *m2;
                    json_object_foreach(e2, k2, m2) {
                        if (strstr(k2, MARKER)) shown = true;
                        shown = shown || public_marker(m2, strcmp(k2, "user") == 0 && json_is_object(m2));
                    }
                    if (!json_is_object(e2)) shown = shown || public_marker(e2, false);
                }
            } else {
                shown = shown || public_marker(m, false);
            }
        }
    }
    gw_manifest_list_free(&l);
    return shown;
}

static void check_ok(const gw_kube_conn_t *c)
{
    REQUIRE(c->server && c->server[0]);
    REQUIRE(strncmp(c->server, "https://", 8) == 0 || strncmp(c->server, "http://", 7) == 0);
    size_t n = strlen(c->server);
    REQUIRE(c->server[n - 1] != '/' && no_ctl(c->server) && !strchr(c->server, ' '));
    REQUIRE(!strchr(c->server, '?') && !strchr(c->server, '#'));
    REQUIRE(!c->crt_pem == !c->key_pem);
    const char *s[] = {c->ca_pem, c->crt_pem, c->key_pem, c->token, c->token_file, c->namespace_};
    for (size_t i = 0; i < GW_ARRAY_SIZE(s); i++) REQUIRE(!s[i] || s[i][0]);
    if (c->token) REQUIRE(no_ctl(c->token));
}

static bool same_conn(const gw_kube_conn_t *a, const gw_kube_conn_t *b)
{
    const char *x[] = {a->server, a->ca_pem, a->crt_pem, a->key_pem, a->token, a->token_file, a->namespace_};
    const char *y[] = {b->server, b->ca_pem, b->crt_pem, b->key_pem, b->token, b->token_file, b->namespace_};
    for (size_t i = 0; i < GW_ARRAY_SIZE(x); i++)
        if (!x[i] != !y[i] || (x[i] && strcmp(x[i], y[i]) != 0)) return false;
    return a->insecure == b->insecure;
}

/* Input: one control byte (bit 0: the first line is the context name; bit 1: no base_dir;
 * bits 2-7: error buffer size), then the kubeconfig text. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base[0]) make_base();
    if (size == 0) return 0;
    uint8_t ctl = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char *context = NULL;
    if (ctl & 1) {
        const char *nl = memchr(p, '\n', n);
        size_t cl = nl ? (size_t)(nl - p) : n;
        context = strndup(p, cl);
        p += nl ? cl + 1 : cl;
        n -= nl ? cl + 1 : cl;
    }
    char *text = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
    memcpy(text, p, n);
    const char *dir = (ctl & 2) ? NULL : base;
    size_t errlen = (ctl >> 2) ? (size_t)(ctl >> 2) * 4 : 256;

    gw_kube_conn_t a, b;
    char err[256], err2[256];
    memset(err, 'Z', sizeof(err));
    int rc = gw_kubeconfig_parse(text, n, dir, context, &a, err, errlen);
    REQUIRE(rc == 0 || rc == GW_EINVAL);
    REQUIRE(memchr(err, '\0', errlen) != NULL);
    for (size_t i = errlen; i < sizeof(err); i++) REQUIRE(err[i] == 'Z'); /* no overrun */
    int rc2 = gw_kubeconfig_parse(text, n, dir, context, &b, err2, sizeof(err2));
    REQUIRE(rc2 == rc);
    if (rc == 0) {
        REQUIRE(err[0] == '\0');
        check_ok(&a);
        REQUIRE(same_conn(&a, &b));
    } else {
        static const gw_kube_conn_t zero;
        REQUIRE(memcmp(&a, &zero, sizeof(a)) == 0);
        REQUIRE(strncmp(err2, "kubeconfig: ", 12) == 0 && strlen(err2) > 12 && no_ctl(err2));
        REQUIRE(strncmp(err, err2, strlen(err)) == 0); /* the short buffer holds a prefix */
        if (strstr(err2, MARKER)) REQUIRE(marker_may_show(context, text, n));
    }
    gw_kube_conn_free(&a);
    gw_kube_conn_free(&b);
    gw_kube_conn_free(&a);
    free(text);
    free(context);
    return 0;
}
