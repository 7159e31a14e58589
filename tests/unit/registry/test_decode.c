/* test_decode.c: unit tests of src/registry/decode.c: YAML/JSON decoding, lines, limits,
 * classification of Applications and Secrets, base64. Not for: route building. */
#include <stdlib.h>
#include <string.h>

#include "registry/decode.h"
#include "test.h"
#include "util/common.h"

static int decode(const char *text, gw_manifest_format_t fmt, gw_manifest_list_t *l, gw_manifest_error_t *err)
{
    memset(err, 0, sizeof(*err));
    return gw_manifest_decode(text, strlen(text), fmt, l, err);
}

static const char *field(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_yaml_multidoc(void)
{
    const char *y = "# comment\n"
                    "apiVersion: v1\n"
                    "kind: Secret\n"
                    "metadata: {name: s1}\n"
                    "---\n"
                    "---\n"
                    "\n"
                    "apiVersion: " GW_MANIFEST_API_VERSION "\n"
                    "kind: Application\n"
                    "metadata:\n"
                    "  name: demo\n"
                    "...\n"
                    "---\n";
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), 0);
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_STR(field(l.v[0].obj, "kind"), "Secret");
        CHECK_EQ_INT(l.v[0].line, 2);
        CHECK_EQ_STR(field(l.v[1].obj, "kind"), "Application");
        CHECK_EQ_INT(l.v[1].line, 8);
    }
    gw_manifest_list_free(&l);
    CHECK_EQ_INT(l.n, 0);
}

static void test_yaml_scalars(void)
{
    const char *y = "a: true\nb: 'true'\nc: 42\nd: \"42\"\ne: ~\nf: null\ng:\nh: 1.5\ni: 0x1F\n"
                    "j: 99999999999999999999999\nk: False\nl: !!str 7\nm: hello world\nn: -3\no: .inf\n"
                    "p: |\n  line1\n  line2\n";
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), 0);
    CHECK_EQ_INT(l.n, 1);
    if (l.n != 1) return;
    json_t *o = l.v[0].obj;
    CHECK(json_is_true(json_object_get(o, "a")));
    CHECK_EQ_STR(field(o, "b"), "true");
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "c")), 42);
    CHECK(json_is_integer(json_object_get(o, "c")));
    CHECK_EQ_STR(field(o, "d"), "42");
    CHECK(json_is_null(json_object_get(o, "e")));
    CHECK(json_is_null(json_object_get(o, "f")));
    CHECK(json_is_null(json_object_get(o, "g")));
    CHECK(json_is_real(json_object_get(o, "h")));
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "i")), 31);
    CHECK_EQ_STR(field(o, "j"), "99999999999999999999999");
    CHECK(json_is_false(json_object_get(o, "k")));
    CHECK_EQ_STR(field(o, "l"), "7");
    CHECK_EQ_STR(field(o, "m"), "hello world");
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "n")), -3);
    CHECK_EQ_STR(field(o, "o"), ".inf");
    CHECK_EQ_STR(field(o, "p"), "line1\nline2\n");
    gw_manifest_list_free(&l);
}

static void test_yaml_syntax_error_line(void)
{
    const char *y = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  bad: a: b\n";
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 5);
    CHECK_EQ_STR(err.reason, "mapping values are not allowed in this context");
    char buf[300];
    CHECK_EQ_STR(gw_manifest_error_text(&err, buf, sizeof(buf)), "line 5: mapping values are not allowed in this context");
    CHECK_EQ_INT(l.n, 0);

    /* an error in a later document drops the earlier ones too (all-or-nothing) */
    y = "kind: A\n---\nkind: B\n---\nkey: [unclosed\n";
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK(err.line >= 5);
    CHECK_EQ_INT(l.n, 0);
    gw_manifest_list_free(&l);
}

static void test_yaml_structure_errors(void)
{
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode("- a\n- b\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 1);
    CHECK_EQ_INT(decode("a: 1\n---\njust text\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 3);
    CHECK_EQ_INT(decode("a: 1\nb: 2\na: 3\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 3);
    CHECK_EQ_STR(err.reason, "duplicate mapping key 'a'");
    CHECK_EQ_INT(decode("? [a]\n: b\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(decode("a: \"x\\0y\"\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_STR(err.reason, "NUL character in scalar");
    CHECK_EQ_INT(decode("", GW_MANIFEST_YAML, &l, &err), 0);
    CHECK_EQ_INT(decode("# only a comment\n---\n", GW_MANIFEST_YAML, &l, &err), 0);
    CHECK_EQ_INT(l.n, 0);
    gw_manifest_list_free(&l);
}

static void test_yaml_anchors(void)
{
    const char *y = "base: &b {x: 1, y: 2}\n"
                    "copy: *b\n"
                    "merged:\n"
                    "  <<: *b\n"
                    "  y: 3\n"
                    "list: &l [1, 2]\n"
                    "again: *l\n";
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), 0);
    if (l.n == 1) {
        json_t *o = l.v[0].obj;
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "copy"), "x")), 1);
        json_t *m = json_object_get(o, "merged");
        CHECK_EQ_INT(json_integer_value(json_object_get(m, "x")), 1);
        CHECK_EQ_INT(json_integer_value(json_object_get(m, "y")), 3);
        CHECK_EQ_INT(json_array_size(json_object_get(o, "again")), 2);
    }
    gw_manifest_list_free(&l);
    CHECK_EQ_INT(decode("a: *nope\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 1);
    /* a self-referencing anchor is not yet defined inside itself */
    CHECK_EQ_INT(decode("a: &x [*x]\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(decode("a: &k key\n*k : v\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(l.n, 0);
}

static void test_yaml_limits(void)
{
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    /* billion laughs: 10 levels of 10 aliases each would expand to 10^10 nodes */
    char y[4096];
    size_t off = (size_t)snprintf(y, sizeof(y), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++) {
        off += (size_t)snprintf(y + off, sizeof(y) - off, "a%d: &a%d [", i, i);
        for (int j = 0; j < 10; j++) off += (size_t)snprintf(y + off, sizeof(y) - off, "%s*a%d", j ? ", " : "", i - 1);
        off += (size_t)snprintf(y + off, sizeof(y) - off, "]\n");
    }
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK(strstr(err.reason, "too many nodes") != NULL);

    /* nesting: 64 levels are fine, 65 are not (flow sequences) */
    char deep[256];
    memset(deep, 0, sizeof(deep));
    memcpy(deep, "a: ", 3);
    for (int i = 0; i < 63; i++) deep[3 + i] = '[';
    for (int i = 0; i < 63; i++) deep[66 + i] = ']';
    CHECK_EQ_INT(decode(deep, GW_MANIFEST_YAML, &l, &err), 0);
    gw_manifest_list_free(&l);
    memset(deep, 0, sizeof(deep));
    memcpy(deep, "a: ", 3);
    for (int i = 0; i < 64; i++) deep[3 + i] = '[';
    for (int i = 0; i < 64; i++) deep[67 + i] = ']';
    CHECK_EQ_INT(decode(deep, GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK(strstr(err.reason, "nesting deeper than 64") != NULL);

    /* an alias may not push a shallow anchor past the depth limit */
    char ad[512];
    off = (size_t)snprintf(ad, sizeof(ad), "x: &d ");
    for (int i = 0; i < 40; i++) ad[off++] = '[';
    for (int i = 0; i < 40; i++) ad[off++] = ']';
    off += (size_t)snprintf(ad + off, sizeof(ad) - off, "\ny: ");
    for (int i = 0; i < 30; i++) ad[off++] = '[';
    ad[off++] = '*';
    ad[off++] = 'd';
    for (int i = 0; i < 30; i++) ad[off++] = ']';
    ad[off] = '\0';
    CHECK_EQ_INT(decode(ad, GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK(strstr(err.reason, "nesting") != NULL);
    CHECK_EQ_INT(l.n, 0);
}

static void test_yaml_list(void)
{
    const char *y = "apiVersion: v1\n"
                    "kind: List\n"
                    "items:\n"
                    "- apiVersion: v1\n"
                    "  kind: Secret\n"
                    "  metadata: {name: a}\n"
                    "- apiVersion: v1\n"
                    "  kind: ConfigMap\n"
                    "  metadata: {name: b}\n"
                    "---\n"
                    "kind: List\n"
                    "items: []\n";
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode(y, GW_MANIFEST_YAML, &l, &err), 0);
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_INT(l.v[0].line, 4);
        CHECK_EQ_INT(l.v[1].line, 7);
        CHECK_EQ_STR(field(l.v[1].obj, "kind"), "ConfigMap");
    }
    gw_manifest_list_free(&l);
    CHECK_EQ_INT(decode("kind: List\nitems:\n- 1\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 3);
    CHECK_EQ_INT(decode("kind: List\nitems: 5\n", GW_MANIFEST_YAML, &l, &err), GW_EINVAL);
}

static void test_json(void)
{
    gw_manifest_list_t l = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(decode("\n\n  {\"apiVersion\": \"v1\", \"kind\": \"Secret\"}\n", GW_MANIFEST_JSON, &l, &err), 0);
    CHECK_EQ_INT(l.n, 1);
    if (l.n == 1) CHECK_EQ_INT(l.v[0].line, 3);
    gw_manifest_list_free(&l);

    const char *list = "{\n"
                       "  \"apiVersion\": \"v1\",\n"
                       "  \"kind\": \"List\",\n"
                       "  \"metadata\": {\"items\": \"decoy\"},\n"
                       "  \"items\": [\n"
                       "    {\"kind\": \"Secret\", \"x\": \"a,b]{\"},\n"
                       "\n"
                       "    {\n"
                       "      \"kind\": \"Application\"\n"
                       "    }\n"
                       "  ]\n"
                       "}\n";
    CHECK_EQ_INT(decode(list, GW_MANIFEST_JSON, &l, &err), 0);
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_INT(l.v[0].line, 6);
        CHECK_EQ_INT(l.v[1].line, 8);
        CHECK_EQ_STR(field(l.v[1].obj, "kind"), "Application");
    }
    gw_manifest_list_free(&l);

    CHECK_EQ_INT(decode("{\n\"a\": 1,\n\"b\": }\n", GW_MANIFEST_JSON, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 3);
    CHECK_EQ_INT(decode("{\"a\": 1, \"a\": 2}", GW_MANIFEST_JSON, &l, &err), GW_EINVAL);
    /* jansson's "near '<token>'" is cut: the token may be part of a Secret value */
    CHECK_EQ_INT(decode("{\"kind\": \"Secret\", \"data\": {\"password\": \"s3cr3t", GW_MANIFEST_JSON, &l, &err),
                 GW_EINVAL);
    CHECK(strstr(err.reason, "s3cr3t") == NULL);
    CHECK(err.reason[0] != '\0');
    CHECK_EQ_INT(decode("[1, 2]", GW_MANIFEST_JSON, &l, &err), GW_EINVAL);
    CHECK_EQ_INT(decode("{} {}", GW_MANIFEST_JSON, &l, &err), GW_EINVAL);
    char deep[200] = "{\"a\":";
    size_t off = strlen(deep);
    for (int i = 0; i < 70; i++) deep[off++] = '[';
    for (int i = 0; i < 70; i++) deep[off++] = ']';
    deep[off++] = '}';
    deep[off] = '\0';
    CHECK_EQ_INT(decode(deep, GW_MANIFEST_JSON, &l, &err), GW_EINVAL);
    CHECK(strstr(err.reason, "nesting") != NULL);
    CHECK_EQ_INT(l.n, 0);
}

static void test_format_for_path(void)
{
    gw_manifest_format_t f;
    CHECK_EQ_INT(gw_manifest_format_for_path("a/b.yaml", &f), 0);
    CHECK_EQ_INT(f, GW_MANIFEST_YAML);
    CHECK_EQ_INT(gw_manifest_format_for_path("b.yml", &f), 0);
    CHECK_EQ_INT(f, GW_MANIFEST_YAML);
    CHECK_EQ_INT(gw_manifest_format_for_path("b.json", &f), 0);
    CHECK_EQ_INT(f, GW_MANIFEST_JSON);
    CHECK_EQ_INT(gw_manifest_format_for_path("b.yaml.bak", &f), GW_EINVAL);
    CHECK_EQ_INT(gw_manifest_format_for_path("json", &f), GW_EINVAL);
}

static int classify_text(const char *y, gw_manifest_kind_t *kind, gw_manifest_error_t *err)
{
    gw_manifest_list_t l = {0};
    int rc = decode(y, GW_MANIFEST_YAML, &l, err);
    if (rc == 0 && l.n == 1) rc = gw_manifest_classify(l.v[0].obj, l.v[0].line, "kyma-system", kind, err);
    else if (rc == 0) rc = -999;
    gw_manifest_list_free(&l);
    return rc;
}

static void test_classify(void)
{
    gw_manifest_kind_t k;
    gw_manifest_error_t err;
    const char *app = "apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {name: a}\n"
                      "spec:\n  services:\n  - displayName: X\n    entries:\n    - type: API\n      targetUrl: http://x\n";
    CHECK_EQ_INT(classify_text(app, &k, &err), 0);
    CHECK_EQ_INT(k, GW_MANIFEST_APPLICATION);
    CHECK_EQ_INT(classify_text("apiVersion: applicationconnector.kyma-project.io/v1\nkind: Application\n"
                               "metadata: {name: a}\n", &k, &err), 0);
    CHECK_EQ_INT(k, GW_MANIFEST_IGNORED);
    CHECK_EQ_INT(classify_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: '!!'}\n", &k, &err), 0);
    CHECK_EQ_INT(k, GW_MANIFEST_IGNORED);
    CHECK_EQ_INT(classify_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: other}\n"
                               "data: {x: '!!'}\n", &k, &err), 0);
    CHECK_EQ_INT(k, GW_MANIFEST_IGNORED);
    CHECK_EQ_INT(classify_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n", &k, &err), 0);
    CHECK_EQ_INT(k, GW_MANIFEST_SECRET);
    CHECK_EQ_INT(classify_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: kyma-system}\n", &k, &err), 0);
    CHECK_EQ_INT(k, GW_MANIFEST_SECRET);

    /* bad base64 reports the object's line and the key, never the value */
    const char *bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
                      "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  password: 'c2VjcmV0!'\n";
    gw_manifest_set_t set = {0};
    CHECK_EQ_INT(gw_manifest_load(bad, strlen(bad), GW_MANIFEST_YAML, "kyma-system", &set, &err), GW_EINVAL);
    CHECK_EQ_INT(err.line, 5);
    CHECK_EQ_STR(err.reason, "Secret kyma-system/s: data.password is not valid base64");
    CHECK(strstr(err.reason, "c2VjcmV0") == NULL);
    CHECK_EQ_INT(set.nsecrets, 0);

    CHECK_EQ_INT(classify_text("apiVersion: v1\nkind: Secret\nmetadata: {namespace: kyma-system}\n", &k, &err), GW_EINVAL);
    CHECK_EQ_STR(err.reason, "Secret has no metadata.name");
    CHECK_EQ_INT(classify_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: 5}\n", &k, &err),
                 GW_EINVAL);
    CHECK_EQ_INT(classify_text("apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {}\n", &k, &err),
                 GW_EINVAL);
    CHECK_EQ_STR(err.reason, "Application has no metadata.name");
    CHECK_EQ_INT(classify_text("apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {name: a}\n"
                               "spec: {services: [{displayName: 5}]}\n", &k, &err), GW_EINVAL);
    CHECK_EQ_STR(err.reason, "Application a: spec.services[0].displayName must be a string");
    CHECK_EQ_INT(classify_text("apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {name: a}\n"
                               "spec: {encodeUrl: 'yes'}\n", &k, &err), GW_EINVAL);
    CHECK_EQ_STR(err.reason, "Application a: spec.encodeUrl must be a boolean");
    CHECK_EQ_INT(classify_text("apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {name: a}\n"
                               "spec: {services: [{entries: [{credentials: {csrfInfo: {tokenEndpointURL: [1]}}}]}]}\n",
                               &k, &err), GW_EINVAL);
    CHECK_EQ_STR(err.reason,
                 "Application a: spec.services[0].entries[0].credentials.csrfInfo.tokenEndpointURL must be a string");
}

static void test_secret_values(void)
{
    const char *y = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
                    "data:\n  username: dXNlcg==\n  password: b2xk\n  bin: AGE=\n"
                    "stringData:\n  password: new\n";
    gw_manifest_set_t set = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(gw_manifest_load(y, strlen(y), GW_MANIFEST_YAML, "kyma-system", &set, &err), 0);
    CHECK_EQ_INT(set.nsecrets, 1);
    CHECK_EQ_INT(set.napps, 0);
    if (set.nsecrets == 1) {
        char *v = NULL;
        size_t n = 0;
        CHECK_EQ_INT(gw_manifest_secret_value(set.secrets[0], "username", &v, &n), 0);
        CHECK_EQ_STR(v, "user");
        free(v);
        CHECK_EQ_INT(gw_manifest_secret_value(set.secrets[0], "password", &v, &n), 0);
        CHECK_EQ_STR(v, "new");
        CHECK_EQ_INT(n, 3);
        free(v);
        CHECK_EQ_INT(gw_manifest_secret_value(set.secrets[0], "bin", &v, &n), 0);
        CHECK_EQ_INT(n, 2);
        CHECK(v[0] == '\0' && v[1] == 'a');
        free(v);
        CHECK_EQ_INT(gw_manifest_secret_value(set.secrets[0], "none", &v, &n), GW_ENOENT);
    }
    gw_manifest_set_free(&set);
}

static void test_base64(void)
{
    char out[64];
    CHECK_EQ_INT(gw_manifest_b64encode("user:pass", 9, out), 12);
    CHECK_EQ_STR(out, "dXNlcjpwYXNz");
    gw_manifest_b64encode("a", 1, out);
    CHECK_EQ_STR(out, "YQ==");
    gw_manifest_b64encode("ab", 2, out);
    CHECK_EQ_STR(out, "YWI=");
    gw_manifest_b64encode("", 0, out);
    CHECK_EQ_STR(out, "");
    unsigned char d[64];
    size_t n;
    CHECK_EQ_INT(gw_manifest_b64decode("YWI=", 4, d, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(memcmp(d, "ab", 2) == 0);
    CHECK_EQ_INT(gw_manifest_b64decode("dXNl\ncjpw\r\nYXNz\n", 16, d, &n), 0);
    CHECK_EQ_INT(n, 9);
    CHECK_EQ_INT(gw_manifest_b64decode("", 0, d, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(gw_manifest_b64decode("YWI", 3, d, &n), GW_EINVAL);
    CHECK_EQ_INT(gw_manifest_b64decode("YQ==YQ==", 8, d, &n), GW_EINVAL);
    CHECK_EQ_INT(gw_manifest_b64decode("Y===", 4, d, &n), GW_EINVAL);
    CHECK_EQ_INT(gw_manifest_b64decode("YW=I", 4, d, &n), GW_EINVAL);
    CHECK_EQ_INT(gw_manifest_b64decode("YW I", 4, d, &n), GW_EINVAL);
    CHECK_EQ_INT(gw_manifest_b64decode("YW-_", 4, d, &n), GW_EINVAL);
}

static void test_load_filters(void)
{
    const char *y = "apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {name: a}\n---\n"
                    "apiVersion: v1\nkind: Secret\nmetadata: {name: mine}\n---\n"
                    "apiVersion: v1\nkind: Secret\nmetadata: {name: theirs, namespace: default}\n---\n"
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n";
    gw_manifest_set_t set = {0};
    gw_manifest_error_t err;
    CHECK_EQ_INT(gw_manifest_load(y, strlen(y), GW_MANIFEST_YAML, "kyma-system", &set, &err), 0);
    CHECK_EQ_INT(set.napps, 1);
    CHECK_EQ_INT(set.nsecrets, 1);
    gw_manifest_set_free(&set);
    CHECK_EQ_INT(gw_manifest_load(y, strlen(y), GW_MANIFEST_YAML, "default", &set, &err), 0);
    CHECK_EQ_INT(set.nsecrets, 2);
    gw_manifest_set_free(&set);
}

int main(void)
{
    GW_RUN(test_yaml_multidoc);
    GW_RUN(test_yaml_scalars);
    GW_RUN(test_yaml_syntax_error_line);
    GW_RUN(test_yaml_structure_errors);
    GW_RUN(test_yaml_anchors);
    GW_RUN(test_yaml_limits);
    GW_RUN(test_yaml_list);
    GW_RUN(test_json);
    GW_RUN(test_format_for_path);
    GW_RUN(test_classify);
    GW_RUN(test_secret_values);
    GW_RUN(test_base64);
    GW_RUN(test_load_filters);
    return gw_test_summary();
}
