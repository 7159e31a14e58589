/* test_kubeconfig.c: unit tests of src/registry/kubeconfig.c: contexts, clusters and users of
 * kubeconfig files (YAML and JSON, inline data and files, relative paths), refusals and their
 * messages (never with secrets), and the in-cluster configuration from a temporary directory.
 * Texts are parsed from exact-size heap copies (no NUL) so ASan sees over-reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/decode.h"
#include "registry/kubeconfig.h"
#include "test.h"
#include "util/alloc.h"
#include "util/common.h"

#define TOKEN "s3cr3t-T0KEN-value-0123456789"
#define CA_PEM "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n"
#define CRT_PEM "-----BEGIN CERTIFICATE-----\nQ1JU\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nS0VZLXNlY3JldC1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"

static char tmpdir[64];
static char *ca_b64, *crt_b64, *key_b64;

static char *b64(const char *s)
{
    char *o = malloc(strlen(s) * 4 / 3 + 8);
    gw_manifest_b64encode(s, strlen(s), o);
    return o;
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        abort();
    }
    fputs(content, f);
    fclose(f);
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* Parses text from an exact-size heap copy. */
static int parse(const char *text, const char *base, const char *ctx, gw_kube_conn_t *c, char *err, size_t en)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    memset(c, 0x5a, sizeof(*c)); /* garbage in: the function must set every field */
    int rc = gw_kubeconfig_parse(copy, n, base, ctx, c, err, en);
    free(copy);
    return rc;
}

static bool zeroed(const gw_kube_conn_t *c)
{
    return !c->server && !c->ca_pem && !c->insecure && !c->crt_pem && !c->key_pem && !c->token && !c->token_file &&
           !c->namespace_;
}

/* Parse must fail with exactly msg, a zeroed result and no secret in the message. */
static void expect_fail(const char *text, const char *ctx, const char *msg)
{
    gw_kube_conn_t c;
    char err[256];
    int rc = parse(text, tmpdir, ctx, &c, err, sizeof(err));
    CHECK_EQ_INT(rc, GW_EINVAL);
    CHECK(zeroed(&c));
    CHECK_EQ_STR(err, msg);
    CHECK(!strstr(err, TOKEN) && !strstr(err, "S0VZ") && !strstr(err, "hunter2"));
    gw_kube_conn_free(&c);
}

/* A kubeconfig whose current context "ctx" (namespace "team") uses cluster "c" with the lines
 * of cluster_body (indented 4) and user "u" with the lines of user_body (indented 4); context
 * "other" uses cluster "c2" (https://other:443/, insecure) and no user. Caller frees. */
static char *config(const char *cluster_body, const char *user_body)
{
    return gw_asprintf("apiVersion: v1\n"
                       "kind: Config\n"
                       "current-context: ctx\n"
                       "preferences: {}\n"
                       "clusters:\n"
                       "- name: c\n"
                       "  cluster:\n%s"
                       "- name: c2\n"
                       "  cluster: {server: 'https://other:443/', insecure-skip-tls-verify: true}\n"
                       "contexts:\n"
                       "- name: ctx\n"
                       "  context:\n"
                       "    cluster: c\n"
                       "    user: u\n"
                       "    namespace: team\n"
                       "- name: other\n"
                       "  context: {cluster: c2}\n"
                       "users:\n"
                       "- name: u\n"
                       "  user:\n%s",
                       cluster_body, user_body);
}

#define SERVER "    server: https://k8s.example:6443\n"

static void test_token_and_ca_data(void)
{
    char *cl = gw_asprintf(SERVER "    certificate-authority-data: %s\n", ca_b64);
    char *t = config(cl, "    token: " TOKEN "\n");
    gw_kube_conn_t c;
    char err[256] = "x";
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_STR(c.server, "https://k8s.example:6443");
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    CHECK(!c.insecure);
    CHECK(!c.crt_pem && !c.key_pem && !c.token_file);
    CHECK_EQ_STR(c.token, TOKEN);
    CHECK_EQ_STR(c.namespace_, "team");
    gw_kube_conn_free(&c);
    CHECK(zeroed(&c));
    gw_kube_conn_free(&c); /* twice is fine */
    free(t);
    free(cl);
}

static void test_token_file(void)
{
    /* relative: against base_dir, only recorded (the file need not exist yet) */
    char *t = config(SERVER, "    tokenFile: sub/token\n");
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    char *want = path_in(tmpdir, "sub/token");
    CHECK_EQ_STR(c.token_file, want);
    CHECK(!c.token && !c.ca_pem);
    gw_kube_conn_free(&c);
    free(want);
    /* base_dir with a trailing slash, and NULL (current directory: path kept as is) */
    char *base = gw_asprintf("%s/", tmpdir);
    CHECK_EQ_INT(parse(t, base, NULL, &c, err, sizeof(err)), 0);
    want = path_in(tmpdir, "sub/token");
    CHECK_EQ_STR(c.token_file, want);
    gw_kube_conn_free(&c);
    CHECK_EQ_INT(parse(t, NULL, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.token_file, "sub/token");
    gw_kube_conn_free(&c);
    free(want);
    free(base);
    free(t);
    /* absolute: unchanged; token and tokenFile together: both kept */
    t = config(SERVER, "    tokenFile: /run/tok\n    token: " TOKEN "\n");
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.token_file, "/run/tok");
    CHECK_EQ_STR(c.token, TOKEN);
    gw_kube_conn_free(&c);
    free(t);
}

static void test_client_cert_data(void)
{
    char *u = gw_asprintf("    client-certificate-data: %s\n    client-key-data: %s\n", crt_b64, key_b64);
    char *t = config(SERVER, u);
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.crt_pem, CRT_PEM);
    CHECK_EQ_STR(c.key_pem, KEY_PEM);
    CHECK(!c.token && !c.token_file);
    gw_kube_conn_free(&c);
    free(t);
    free(u);
}

static void test_files(void)
{
    /* relative files against base_dir; absolute CA path */
    char *ca = path_in(tmpdir, "ca.crt");
    char *cl = gw_asprintf(SERVER "    certificate-authority: %s\n", ca);
    char *t = config(cl, "    client-certificate: client.crt\n    client-key: ./keys/client.key\n");
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    CHECK_EQ_STR(c.crt_pem, CRT_PEM);
    CHECK_EQ_STR(c.key_pem, KEY_PEM);
    gw_kube_conn_free(&c);
    free(t);
    free(cl);

    /* relative CA; data wins over a file (which is then not read: it does not exist) */
    char *u = gw_asprintf("    client-certificate: nope.crt\n    client-certificate-data: %s\n"
                          "    client-key: keys/client.key\n", crt_b64);
    t = config(SERVER "    certificate-authority: ca.crt\n", u);
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    CHECK_EQ_STR(c.crt_pem, CRT_PEM);
    CHECK_EQ_STR(c.key_pem, KEY_PEM);
    gw_kube_conn_free(&c);
    free(t);
    free(u);
    cl = gw_asprintf(SERVER "    certificate-authority: missing.crt\n    certificate-authority-data: %s\n", ca_b64);
    t = config(cl, "");
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    gw_kube_conn_free(&c);
    free(t);
    free(cl);

    /* missing, not regular, empty */
    char *msg = gw_asprintf("kubeconfig: cluster \"c\": cannot read certificate-authority \"%s/missing.crt\": "
                            "No such file or directory", tmpdir);
    t = config(SERVER "    certificate-authority: missing.crt\n", "");
    expect_fail(t, NULL, msg);
    free(t);
    free(msg);
    msg = gw_asprintf("kubeconfig: user \"u\": cannot read client-key \"%s/keys\": not a regular file", tmpdir);
    t = config(SERVER, "    client-certificate: client.crt\n    client-key: keys\n");
    expect_fail(t, NULL, msg);
    free(t);
    free(msg);
    msg = gw_asprintf("kubeconfig: cluster \"c\": certificate-authority \"%s/empty\" is empty", tmpdir);
    t = config(SERVER "    certificate-authority: empty\n", "");
    expect_fail(t, NULL, msg);
    free(t);
    free(msg);
    free(ca);
}

static void test_insecure_and_contexts(void)
{
    char *t = config(SERVER "    insecure-skip-tls-verify: true\n", "    token: " TOKEN "\n");
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK(c.insecure);
    gw_kube_conn_free(&c);
    /* explicit context: other cluster, no user, no namespace */
    CHECK_EQ_INT(parse(t, tmpdir, "other", &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.server, "https://other:443");
    CHECK(c.insecure);
    CHECK(!c.token && !c.namespace_ && !c.ca_pem);
    gw_kube_conn_free(&c);
    /* "" means current-context */
    CHECK_EQ_INT(parse(t, tmpdir, "", &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.token, TOKEN);
    gw_kube_conn_free(&c);
    expect_fail(t, "nope", "kubeconfig: context \"nope\" not found");
    free(t);

    t = config(SERVER "    insecure-skip-tls-verify: \"yes\"\n", "");
    expect_fail(t, NULL, "kubeconfig: cluster \"c\": insecure-skip-tls-verify is not a boolean");
    free(t);
}

static void test_missing_and_duplicate(void)
{
    expect_fail("apiVersion: v1\nkind: Config\nclusters: []\n", NULL,
                "kubeconfig: no current-context and no context given");
    expect_fail("current-context: x\n", NULL, "kubeconfig: context \"x\" not found");
    expect_fail("current-context: x\ncontexts:\n- name: x\n  context: {user: u}\n", NULL,
                "kubeconfig: context \"x\" has no cluster");
    expect_fail("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n", NULL,
                "kubeconfig: cluster \"c\" not found");
    expect_fail("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n",
                NULL, "kubeconfig: user \"u\" not found");
    expect_fail("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n- name: x\n  context: {}\n", NULL,
                "kubeconfig: context \"x\" is defined twice");
    expect_fail("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                "clusters:\n- name: c\n  cluster: {}\n",
                NULL, "kubeconfig: cluster \"c\" has no server");
    expect_fail("current-context: x\ncontexts:\n- name: x\n", NULL, "kubeconfig: context \"x\" has no cluster");
    expect_fail("current-context: x\ncontexts: {x: 1}\n", NULL, "kubeconfig: contexts is not a sequence");
    expect_fail("current-context: x\ncontexts: [1]\n", NULL, "kubeconfig: contexts[0] is not a mapping");
    expect_fail("current-context: x\ncontexts: [{name: 7}]\n", NULL, "kubeconfig: contexts[0].name is not a string");
    expect_fail("current-context: x\ncontexts: [{name: x, context: [c]}]\n", NULL,
                "kubeconfig: context \"x\": context is not a mapping");
    expect_fail("current-context: [x]\n", NULL, "kubeconfig: the configuration: current-context is not a string");
    expect_fail("kind: Secret\ncurrent-context: x\n", NULL, "kubeconfig: kind is \"Secret\", expected Config");
    expect_fail("", NULL, "kubeconfig: empty file");
    expect_fail("# nothing\n", NULL, "kubeconfig: empty file");
    expect_fail("a: 1\n---\nb: 2\n", NULL, "kubeconfig: more than one YAML document");
    expect_fail("a: [1\n", NULL, "kubeconfig: line 2: did not find expected ',' or ']'");
    expect_fail("- 1\n", NULL, "kubeconfig: line 1: a manifest must be a mapping of a Kubernetes object");
    /* names are quoted safely */
    expect_fail("current-context: \"a\\\"b\\nc\"\n", NULL, "kubeconfig: context \"a?b?c\" not found");
    /* a user named in no context is irrelevant, even if unsupported */
    char *t = config(SERVER, "    token: " TOKEN "\n");
    char *t2 = gw_asprintf("%s- name: other-user\n  user: {exec: {command: x}}\n", t);
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t2, tmpdir, NULL, &c, err, sizeof(err)), 0);
    gw_kube_conn_free(&c);
    free(t);
    free(t2);
}

static void test_unsupported_users(void)
{
    static const struct {
        const char *user, *msg;
    } cases[] = {
        {"    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n",
         "kubeconfig: user \"u\": exec credential plugins are not supported"},
        {"    auth-provider: {name: gcp}\n", "kubeconfig: user \"u\": auth-provider plugins are not supported"},
        {"    username: admin\n    password: hunter2\n",
         "kubeconfig: user \"u\": username/password authentication is not supported"},
        {"    password: hunter2\n", "kubeconfig: user \"u\": username/password authentication is not supported"},
        {"    token: " TOKEN "\n    as: someone\n", "kubeconfig: user \"u\": impersonation (as) is not supported"},
        {"    as-groups: [a]\n", "kubeconfig: user \"u\": impersonation (as-groups) is not supported"},
        {"    token: 12345\n", "kubeconfig: user \"u\": token is not a string"},
        {"    token: \"" TOKEN "\\r\\nX-Evil: 1\"\n", "kubeconfig: user \"u\": token has control characters"},
        {"    client-certificate-data: Q1JU\n", "kubeconfig: user \"u\": client-certificate without client-key"},
        {"    client-key: keys/client.key\n", "kubeconfig: user \"u\": client-key without client-certificate"},
        {"    client-key-data: S0VZ*\n    client-certificate-data: Q1JU\n",
         "kubeconfig: user \"u\": client-key-data is not valid base64"},
        {"    client-key-data: S0VZ\n    client-certificate-data: QQB=\n",
         "kubeconfig: user \"u\": client-certificate-data is not PEM text (NUL byte)"},
    };
    for (size_t i = 0; i < GW_ARRAY_SIZE(cases); i++) {
        char *t = config(SERVER, cases[i].user);
        expect_fail(t, NULL, cases[i].msg);
        free(t);
    }
    /* empty and null settings are not in use */
    char *t = config(SERVER, "    exec: null\n    username: ''\n    as-groups: []\n    auth-provider: {}\n"
                             "    token: " TOKEN "\n");
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.token, TOKEN);
    gw_kube_conn_free(&c);
    free(t);
}

static void test_bad_base64(void)
{
    char *t = config(SERVER "    certificate-authority-data: \"not base64!\"\n", "");
    expect_fail(t, NULL, "kubeconfig: cluster \"c\": certificate-authority-data is not valid base64");
    free(t);
    t = config(SERVER "    certificate-authority-data: Q0E\n", ""); /* no padding */
    expect_fail(t, NULL, "kubeconfig: cluster \"c\": certificate-authority-data is not valid base64");
    free(t);
    t = config(SERVER "    certificate-authority-data: 42\n", "");
    expect_fail(t, NULL, "kubeconfig: cluster \"c\": certificate-authority-data is not a string");
    free(t);
}

static void test_servers(void)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"https://k8s.example:6443///", "https://k8s.example:6443"},
        {"HTTPS://k8s.example", "https://k8s.example"},
        {"http://127.0.0.1:8001", "http://127.0.0.1:8001"},
        {"k8s.example:6443", "https://k8s.example:6443"},
        {"'https://[fd00::1]:6443'", "https://[fd00::1]:6443"},
        {"https://rancher.example/k8s/clusters/c-1/", "https://rancher.example/k8s/clusters/c-1"},
    };
    for (size_t i = 0; i < GW_ARRAY_SIZE(ok); i++) {
        char *cl = gw_asprintf("    server: %s\n", ok[i].in);
        char *t = config(cl, "");
        gw_kube_conn_t c;
        char err[256];
        CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
        CHECK_EQ_STR(c.server, ok[i].out);
        gw_kube_conn_free(&c);
        free(t);
        free(cl);
    }
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"ftp://h", "kubeconfig: cluster \"c\": server is not an http(s) URL"},
        {"https://admin:hunter2@h", "kubeconfig: cluster \"c\": server must not carry user information"},
        {"https://h/?x=1", "kubeconfig: cluster \"c\": server must not have a query or fragment"},
        {"https://h#f", "kubeconfig: cluster \"c\": server must not have a query or fragment"},
        {"'https:///'", "kubeconfig: cluster \"c\": server has no host"},
        {"'https://h:99999'", "kubeconfig: cluster \"c\": server is not a valid URL"},
        {"'https://h:/'", "kubeconfig: cluster \"c\": server has an empty port"},
        {"'https://h /'", "kubeconfig: cluster \"c\": server has spaces or control characters"},
        {"'/'", "kubeconfig: cluster \"c\" has no server"},
        {"''", "kubeconfig: cluster \"c\" has no server"},
        {"{a: 1}", "kubeconfig: cluster \"c\": server is not a string"},
    };
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad); i++) {
        char *cl = gw_asprintf("    server: %s\n", bad[i].in);
        char *t = config(cl, "");
        expect_fail(t, NULL, bad[i].msg);
        free(t);
        free(cl);
    }
    char *t = config(SERVER "    proxy-url: http://proxy:3128\n", "");
    expect_fail(t, NULL, "kubeconfig: cluster \"c\": proxy-url is not supported");
    free(t);
    t = config(SERVER "    tls-server-name: kubernetes\n", "");
    expect_fail(t, NULL, "kubeconfig: cluster \"c\": tls-server-name is not supported");
    free(t);
}

static void test_json_form(void)
{
    char *t = gw_asprintf("{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"current-context\":\"j\","
                          "\"clusters\":[{\"name\":\"jc\",\"cluster\":{\"server\":\"https://j:443\","
                          "\"certificate-authority-data\":\"%s\",\"insecure-skip-tls-verify\":false}}],"
                          "\"contexts\":[{\"name\":\"j\",\"context\":{\"cluster\":\"jc\",\"user\":\"ju\"}}],"
                          "\"users\":[{\"name\":\"ju\",\"user\":{\"client-certificate-data\":\"%s\","
                          "\"client-key-data\":\"%s\"}}]}",
                          ca_b64, crt_b64, key_b64);
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(parse(t, tmpdir, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.server, "https://j:443");
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    CHECK_EQ_STR(c.crt_pem, CRT_PEM);
    CHECK_EQ_STR(c.key_pem, KEY_PEM);
    CHECK(!c.insecure && !c.namespace_);
    gw_kube_conn_free(&c);
    free(t);
    /* a YAML flow mapping also starts with '{' */
    CHECK_EQ_INT(parse("{current-context: x, contexts: [{name: x, context: {cluster: c}}], "
                       "clusters: [{name: c, cluster: {server: 'https://f'}}]}",
                       NULL, NULL, &c, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(c.server, "https://f");
    gw_kube_conn_free(&c);
    /* broken JSON (and broken YAML) reports JSON's error; a trailing comma is fine YAML */
    expect_fail("{\"current-context\": \"x\" \"y\"}", NULL, "kubeconfig: line 1: '}' expected");
    expect_fail("{\"current-context\": \"x\",}", NULL, "kubeconfig: context \"x\" not found");
}

static void test_err_buffers(void)
{
    gw_kube_conn_t c;
    CHECK_EQ_INT(gw_kubeconfig_parse("current-context: x\n", 19, NULL, NULL, &c, NULL, 0), GW_EINVAL);
    CHECK(zeroed(&c));
    char small[12];
    CHECK_EQ_INT(gw_kubeconfig_parse("current-context: x\n", 19, NULL, NULL, &c, small, sizeof(small)), GW_EINVAL);
    CHECK_EQ_STR(small, "kubeconfig:");
    /* a long name is cut */
    char name[200];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    char *t = gw_asprintf("current-context: %s\n", name);
    char err[256];
    CHECK_EQ_INT(parse(t, NULL, NULL, &c, err, sizeof(err)), GW_EINVAL);
    CHECK(strstr(err, "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...\" not found") != NULL);
    free(t);
}

static void test_load(void)
{
    char *dir = path_in(tmpdir, "kc");
    mkdir(dir, 0700);
    char *ca = path_in(tmpdir, "ca.crt");
    char *text = gw_asprintf("apiVersion: v1\nkind: Config\ncurrent-context: l\n"
                             "clusters: [{name: c, cluster: {server: 'https://l:6443', certificate-authority: ../ca.crt}}]\n"
                             "contexts: [{name: l, context: {cluster: c, user: u, namespace: ns1}}]\n"
                             "users: [{name: u, user: {tokenFile: token}}]\n");
    write_file(dir, "config", text);
    char *path = path_in(dir, "config"), *tok = path_in(dir, "token");
    gw_kube_conn_t c;
    char err[256];
    CHECK_EQ_INT(gw_kubeconfig_load(path, NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.server, "https://l:6443");
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    CHECK_EQ_STR(c.token_file, tok);
    CHECK_EQ_STR(c.namespace_, "ns1");
    gw_kube_conn_free(&c);
    CHECK_EQ_INT(gw_kubeconfig_load(path, "l2", &c, err, sizeof(err)), GW_EINVAL);
    CHECK_EQ_STR(err, "kubeconfig: context \"l2\" not found");
    CHECK(zeroed(&c));

    /* a bare file name: relative to the current directory */
    char *cwd = getcwd(NULL, 0);
    CHECK_EQ_INT(chdir(dir), 0);
    CHECK_EQ_INT(gw_kubeconfig_load("config", NULL, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.token_file, "./token");
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    gw_kube_conn_free(&c);
    CHECK_EQ_INT(chdir(cwd), 0);
    free(cwd);

    char *missing = path_in(dir, "nope");
    char *msg = gw_asprintf("kubeconfig: cannot read \"%s\": No such file or directory", missing);
    CHECK_EQ_INT(gw_kubeconfig_load(missing, NULL, &c, err, sizeof(err)), GW_EINVAL);
    CHECK_EQ_STR(err, msg);
    CHECK(zeroed(&c));
    msg[0] = '\0';
    free(msg);
    msg = gw_asprintf("kubeconfig: cannot read \"%s\": not a regular file", dir);
    CHECK_EQ_INT(gw_kubeconfig_load(dir, NULL, &c, err, sizeof(err)), GW_EINVAL);
    CHECK_EQ_STR(err, msg);
    free(msg);
    free(missing);
    free(path);
    free(tok);
    free(text);
    free(ca);
    free(dir);
}

/* ---- in-cluster ---- */

static void set_env(const char *host, const char *port)
{
    if (host) setenv("KUBERNETES_SERVICE_HOST", host, 1);
    else unsetenv("KUBERNETES_SERVICE_HOST");
    if (port) setenv("KUBERNETES_SERVICE_PORT", port, 1);
    else unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_incluster(void)
{
    char *sa = path_in(tmpdir, "sa");
    mkdir(sa, 0700);
    write_file(sa, "token", TOKEN);
    write_file(sa, "ca.crt", CA_PEM);
    write_file(sa, "namespace", " kyma-system\n");
    gw_kube_conn_t c;
    char err[256];

    set_env(NULL, NULL);
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_ENOENT);
    CHECK(zeroed(&c));
    set_env("10.0.0.1", NULL);
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_ENOENT);
    set_env("", "443");
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, NULL, 0), GW_ENOENT);

    set_env("10.0.0.1", "443");
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.server, "https://10.0.0.1:443");
    CHECK_EQ_STR(c.ca_pem, CA_PEM);
    char *tok = path_in(sa, "token");
    CHECK_EQ_STR(c.token_file, tok);
    CHECK(!c.token && !c.crt_pem && !c.key_pem && !c.insecure);
    CHECK_EQ_STR(c.namespace_, "kyma-system");
    gw_kube_conn_free(&c);

    set_env("fd00:10:96::1", "6443");
    write_file(sa, "namespace", "\n");
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.server, "https://[fd00:10:96::1]:6443");
    CHECK(!c.namespace_);
    gw_kube_conn_free(&c);

    char *ns = path_in(sa, "namespace");
    unlink(ns);
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), 0);
    CHECK(!c.namespace_);
    gw_kube_conn_free(&c);

    static const char *const bad_ports[] = {"abc", "0", "65536", "443 ", "123456"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(bad_ports); i++) {
        set_env("10.0.0.1", bad_ports[i]);
        CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_EINVAL);
        CHECK_EQ_STR(err, "in-cluster config: KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is malformed");
    }
    set_env("evil/host", "443");
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_EINVAL);

    set_env("10.0.0.1", "443");
    char *ca = path_in(sa, "ca.crt");
    unlink(ca);
    char *msg = gw_asprintf("in-cluster config: cannot read \"%s\": No such file or directory", ca);
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_EINVAL);
    CHECK_EQ_STR(err, msg);
    CHECK(zeroed(&c));
    free(msg);
    write_file(sa, "ca.crt", "");
    msg = gw_asprintf("in-cluster config: cannot read \"%s\": empty file", ca);
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_EINVAL);
    CHECK_EQ_STR(err, msg);
    free(msg);
    write_file(sa, "ca.crt", CA_PEM);
    unlink(tok);
    msg = gw_asprintf("in-cluster config: cannot read \"%s\": No such file or directory", tok);
    CHECK_EQ_INT(gw_kube_incluster(sa, &c, err, sizeof(err)), GW_EINVAL);
    CHECK_EQ_STR(err, msg);
    CHECK(zeroed(&c));
    free(msg);

    /* sa_dir NULL: the standard directory (absent on a test machine) */
    struct stat st;
    if (stat(GW_KUBE_SA_DIR "/token", &st) != 0) {
        CHECK_EQ_INT(gw_kube_incluster(NULL, &c, err, sizeof(err)), GW_EINVAL);
        CHECK_EQ_STR(err, "in-cluster config: cannot read \"" GW_KUBE_SA_DIR "/token\": No such file or directory");
    }
    set_env(NULL, NULL);
    free(ca);
    free(ns);
    free(tok);
    free(sa);
}

static void rm_rf(const char *dir)
{
    char *cmd = gw_asprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
    free(cmd);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/gw-kubeconfig-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char *keys = path_in(tmpdir, "keys");
    mkdir(keys, 0700);
    write_file(tmpdir, "ca.crt", CA_PEM);
    write_file(tmpdir, "client.crt", CRT_PEM);
    write_file(keys, "client.key", KEY_PEM);
    write_file(tmpdir, "empty", "");
    free(keys);
    ca_b64 = b64(CA_PEM);
    crt_b64 = b64(CRT_PEM);
    key_b64 = b64(KEY_PEM);

    GW_RUN(test_token_and_ca_data);
    GW_RUN(test_token_file);
    GW_RUN(test_client_cert_data);
    GW_RUN(test_files);
    GW_RUN(test_insecure_and_contexts);
    GW_RUN(test_missing_and_duplicate);
    GW_RUN(test_unsupported_users);
    GW_RUN(test_bad_base64);
    GW_RUN(test_servers);
    GW_RUN(test_json_form);
    GW_RUN(test_err_buffers);
    GW_RUN(test_load);
    GW_RUN(test_incluster);

    free(ca_b64);
    free(crt_b64);
    free(key_b64);
    rm_rf(tmpdir);
    return gw_test_summary();
}
