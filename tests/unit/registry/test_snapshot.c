/* test_snapshot.c: unit tests of src/registry/snapshot.c: §4 normalisation and lookup outcomes,
 * targetUrl parsing, credentials, request parameters, error texts, refcounting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/decode.h"
#include "registry/snapshot.h"
#include "test.h"
#include "util/alloc.h"
#include "util/log.h"

#define APP_HEAD "apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\n"

/* Decodes a YAML stream and builds a snapshot from it (secrets namespace kyma-system). */
static gw_snapshot_t *build(const char *yaml)
{
    gw_manifest_set_t set = {0};
    gw_manifest_error_t err = {0, ""};
    int rc = gw_manifest_load(yaml, strlen(yaml), GW_MANIFEST_YAML, "kyma-system", &set, &err);
    if (rc) fprintf(stderr, "manifest error: line %d: %s\n", err.line, err.reason);
    CHECK_EQ_INT(rc, 0);
    gw_snapshot_t *s = gw_snapshot_build(set.apps, set.napps, set.secrets, set.nsecrets, "kyma-system");
    gw_manifest_set_free(&set);
    return s;
}

static gw_route_t look(const gw_snapshot_t *s, const char *app, const char *svc, const char *entry)
{
    gw_route_t r;
    gw_str_t e = gw_str(entry);
    gw_snapshot_lookup(s, gw_str(app), gw_str(svc), entry ? &e : NULL, &r);
    return r;
}

static const gw_api_t *found(const gw_snapshot_t *s, const char *app, const char *svc, const char *entry)
{
    gw_route_t r = look(s, app, svc, entry);
    CHECK_EQ_INT(r.kind, GW_ROUTE_FOUND);
    return r.kind == GW_ROUTE_FOUND ? r.api : NULL;
}

static void norm_is(const char *in, const char *want)
{
    char out[58];
    size_t n = gw_normalise_name(in, out);
    CHECK_EQ_STR(out, want);
    CHECK_EQ_INT(n, strlen(want));
}

static void test_normalise(void)
{
    norm_is("code 500", "code-500");
    norm_is("My API!", "my-api");
    norm_is("Hello API", "hello-api");
    norm_is("", "");
    norm_is("!!!", "");
    norm_is("--a--b--", "a-b");
    norm_is("  Leading and trailing  ", "leading-and-trailing");
    norm_is("Ünïcode Name", "n-code-name");
    norm_is("ABC_def.ghi", "abc-def-ghi");
    /* cut to 57 after dropping one trailing '-', then drop a leading '-' */
    char in[200], want[64];
    memset(in, 'a', 100);
    in[100] = '\0';
    memset(want, 'a', 57);
    want[57] = '\0';
    norm_is(in, want);
    memset(in, 'b', 56);
    strcpy(in + 56, " x");  /* "bbb...b-x" is 58 long: the cut keeps the '-' */
    memset(want, 'b', 56);
    strcpy(want + 56, "-");
    norm_is(in, want);
    in[0] = ' ';
    memset(in + 1, 'c', 57);
    in[58] = '\0';  /* "-ccc...c" (58): cut to 57, then the leading '-' goes: 56 c */
    memset(want, 'c', 56);
    want[56] = '\0';
    norm_is(in, want);
    memset(in, 'd', 57);
    strcpy(in + 57, "!");  /* 57 + trailing '-' = 58: the '-' is dropped first */
    memset(want, 'd', 57);
    want[57] = '\0';
    norm_is(in, want);
}

static const char *two_services =
    APP_HEAD "metadata: {name: app}\n"
    "spec:\n"
    "  services:\n"
    "  - displayName: My API!\n"
    "    id: id-1\n"
    "    entries:\n"
    "    - {type: API, name: V1, targetUrl: 'http://one.example:8080/base?a=1'}\n"
    "    - {type: Events, name: ev}\n"
    "  - displayName: my api\n"
    "    entries:\n"
    "    - {type: API, name: v2, targetUrl: 'https://two.example/'}\n"
    "  - displayName: Events Only\n"
    "    entries:\n"
    "    - {type: Events, name: e1, targetUrl: 'http://x/'}\n"
    "  - displayName: code 500\n"
    "    entries:\n"
    "    - {type: API, targetUrl: 'http://c/'}\n";

static void test_lookup_outcomes(void)
{
    gw_snapshot_t *s = build(two_services);
    CHECK_EQ_INT(gw_snapshot_api_count(s), 3);
    /* 404: app missing, service missing, Events-only service, wrong case (byte compare) */
    CHECK_EQ_INT(look(s, "nope", "my-api", NULL).kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(s, "app", "missing", NULL).kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(s, "app", "events-only", NULL).kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(s, "app", "events-only", "e1").kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(s, "app", "My-API", NULL).kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(s, "App", "code-500", NULL).kind, GW_ROUTE_NOT_FOUND);
    /* 400 on 8080: two services normalise to my-api */
    gw_route_t r = look(s, "app", "my-api", NULL);
    CHECK_EQ_INT(r.kind, GW_ROUTE_AMBIGUOUS);
    CHECK_EQ_STR(r.error, "failed to get service with name 'my-api': multiple services found: My API!, my api");
    CHECK(r.api == NULL);
    /* unique on 8082 with the entry names */
    const gw_api_t *a = found(s, "app", "my-api", "v1");
    if (a) {
        CHECK_EQ_STR(a->service_name, "My API!");
        CHECK_EQ_STR(a->entry_name, "V1");
        CHECK_EQ_STR(a->service_id, "id-1");
        CHECK_EQ_STR(a->app, "app");
    }
    a = found(s, "app", "my-api", "v2");
    if (a) CHECK_EQ_STR(a->target.hostname, "two.example");
    CHECK_EQ_INT(look(s, "app", "my-api", "v3").kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(s, "app", "my-api", "").kind, GW_ROUTE_NOT_FOUND);
    /* an entry without a name matches the empty entry segment on 8082 */
    a = found(s, "app", "code-500", NULL);
    if (a) CHECK_EQ_STR(a->entry_name, "");
    CHECK(found(s, "app", "code-500", "") == a);
    /* direct gw_snapshot_lookup call: the outcome is filled in, not just "some kind" */
    gw_route_t direct;
    memset(&direct, 0xA5, sizeof direct);
    gw_str_t v1 = gw_str("v1");
    gw_snapshot_lookup(s, gw_str("app"), gw_str("my-api"), &v1, &direct);
    CHECK_EQ_INT(direct.kind, GW_ROUTE_FOUND);
    CHECK(direct.api != NULL);
    if (direct.kind == GW_ROUTE_FOUND && direct.api) CHECK_EQ_STR(direct.api->target.hostname, "one.example");
    gw_snapshot_unref(s);
}

static void test_ambiguous_8082(void)
{
    gw_snapshot_t *s = build(APP_HEAD "metadata: {name: a}\n"
                             "spec:\n  services:\n"
                             "  - displayName: Svc\n    entries:\n"
                             "    - {type: API, name: Main, targetUrl: 'http://x/'}\n"
                             "    - {type: API, name: main, targetUrl: 'http://y/'}\n"
                             "    - {type: API, name: other, targetUrl: 'http://z/'}\n");
    gw_route_t r = look(s, "a", "svc", "main");
    CHECK_EQ_INT(r.kind, GW_ROUTE_AMBIGUOUS);
    CHECK_EQ_STR(r.error, "failed to get service with name 'svc' and entry name 'main': multiple services found: "
                 "Svc (Main), Svc (main)");
    r = look(s, "a", "svc", NULL);
    CHECK_EQ_INT(r.kind, GW_ROUTE_AMBIGUOUS);
    CHECK_EQ_STR(r.error, "failed to get service with name 'svc': multiple services found: Svc, Svc, Svc");
    const gw_api_t *a = found(s, "a", "svc", "other");
    if (a) CHECK_EQ_STR(a->target.hostname, "z");
    gw_snapshot_unref(s);
}

static void test_target_parsing(void)
{
    gw_snapshot_t *s = build(APP_HEAD "metadata: {name: t}\n"
                             "spec:\n  skipVerify: true\n  encodeUrl: false\n  services:\n"
                             "  - {displayName: a, entries: [{type: API, targetUrl: 'http://one.example:8080/base?a=1&b'}]}\n"
                             "  - {displayName: b, entries: [{type: API, targetUrl: 'HTTPS://Two.Example'}]}\n"
                             "  - {displayName: c, entries: [{type: API, targetUrl: 'http://[::1]:9000/x/'}]}\n"
                             "  - {displayName: d, entries: [{type: API, targetUrl: 'http://u:p@h:80/'}]}\n"
                             "  - {displayName: e, entries: [{type: API, targetUrl: 'https://[fe80::1]/'}]}\n");
    const gw_api_t *a = found(s, "t", "a", NULL);
    if (a) {
        CHECK(!a->target.https);
        CHECK_EQ_STR(a->target.hostname, "one.example");
        CHECK_EQ_INT(a->target.port, 8080);
        CHECK_EQ_STR(a->target.host_header, "one.example:8080");
        CHECK_EQ_STR(a->target.path, "/base");
        CHECK_EQ_STR(a->target.query, "a=1&b");
        CHECK_EQ_STR(a->target.url, "http://one.example:8080/base?a=1&b");
        CHECK(a->skip_verify);
        CHECK(!a->encode_url);
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_NONE);
    }
    a = found(s, "t", "b", NULL);
    if (a) {
        CHECK(a->target.https);
        CHECK_EQ_INT(a->target.port, 443);
        CHECK_EQ_STR(a->target.host_header, "Two.Example");
        CHECK_EQ_STR(a->target.path, "");
        CHECK_EQ_STR(a->target.query, "");
    }
    a = found(s, "t", "c", NULL);
    if (a) {
        CHECK_EQ_STR(a->target.hostname, "::1");
        CHECK_EQ_STR(a->target.host_header, "[::1]:9000");
        CHECK_EQ_INT(a->target.port, 9000);
        CHECK_EQ_STR(a->target.path, "/x/");
    }
    a = found(s, "t", "d", NULL);
    if (a) {
        CHECK_EQ_STR(a->target.host_header, "h:80");
        CHECK_EQ_STR(a->target.hostname, "h");
        CHECK_EQ_INT(a->target.port, 80);
    }
    a = found(s, "t", "e", NULL);
    if (a) {
        CHECK_EQ_STR(a->target.host_header, "[fe80::1]");
        CHECK_EQ_INT(a->target.port, 443);
    }
    gw_snapshot_unref(s);

    /* defaults: encodeUrl true, skipVerify false */
    s = build(APP_HEAD "metadata: {name: d}\nspec:\n  services:\n"
              "  - {displayName: x, entries: [{type: API, targetUrl: 'http://h/'}]}\n");
    a = found(s, "d", "x", NULL);
    if (a) {
        CHECK(a->encode_url);
        CHECK(!a->skip_verify);
    }
    gw_snapshot_unref(s);
}

static void test_invalid_target(void)
{
    static const char *const bad[] = {"ftp://h/", "/relative", "", "http://", "http://h:99999/", "http://h x/",
                                      "http://[::1/", "http:/h", "http://h:0/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *y = gw_asprintf(APP_HEAD "metadata: {name: a}\nspec:\n  services:\n"
                              "  - {displayName: My Svc, entries: [{type: API, targetUrl: '%s'}]}\n", bad[i]);
        gw_snapshot_t *s = build(y);
        free(y);
        const gw_api_t *a = found(s, "a", "my-svc", NULL);
        CHECK(a && a->error && strncmp(a->error, "failed to read API for My Svc service, invalid targetUrl", 56) == 0);
        if (a) {
            CHECK(a->target.path && a->target.query && a->target.hostname && a->target.host_header);
            CHECK_EQ_STR(a->target.url, bad[i]);
        }
        gw_snapshot_unref(s);
    }
}

static const char *secrets_yaml =
    "apiVersion: v1\nkind: Secret\nmetadata: {name: basic, namespace: kyma-system}\n"
    "data: {username: dXNlcg==}\nstringData: {password: pass}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: nopass}\nstringData: {username: u}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: elsewhere, namespace: default}\nstringData: {username: u, password: p}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: params}\n"
    "stringData:\n"
    "  headers: '{\"X-Custom\": [\"a\", \"b\"], \"X-Other\": [\"c\"]}'\n"
    "  queryParameters: '{\"q\": [\"1\"], \"r\": [\"x y\", \"z\"]}'\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: badjson}\nstringData: {headers: '{\"X\": \"notalist\"}'}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: badquery}\nstringData: {queryParameters: 'nope'}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: badheader}\nstringData: {headers: '{\"Bad Name\": [\"v\"]}'}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: crlf}\nstringData: {headers: '{\"X\": [\"a\\r\\nInjected: 1\"]}'}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: oauth}\n"
    "stringData:\n  clientId: cid\n  clientSecret: csecret\n  headers: '{\"H\": [\"1\"]}'\n"
    "  queryParameters: '{\"audience\": [\"x\"]}'\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: cert}\n"
    "stringData:\n  clientId: cid\n"
"  crt: |\n"
"    notBefore=1\n"
"    -----BEGIN CERTIFICATE-----\n"
"    MIIBgTCCASegAwIBAgIUXbC55DvehY4iRCfHNWF09aSVC8IwCgYIKoZIzj0EAwIw\n"
"    FTETMBEGA1UEAwwKYXBwZ3ctdW5pdDAgFw0yNjExMzAwMjM2MTZaGA8yMTI2MTEw\n"
"    NjAyMzYxNlowFTETMBEGA1UEAwwKYXBwZ3ctdW5pdDBZMBMGByqGSM49AgEGCCqG\n"
"    SM49AwEHA0IABBierFhbnwKFDcRJpvRlokPOnOTuombMKujb8D0lJ5YKrSe+tG8U\n"
"    VveI5NRuRmqf3kO2vtLUrfuwaKgRTQch4G2jUzBRMB0GA1UdDgQWBBTKPFHTBkiF\n"
"    9R0uZcrrdxCHHFnc7TAfBgNVHSMEGDAWgBTKPFHTBkiF9R0uZcrrdxCHHFnc7TAP\n"
"    BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIG0vB6+0+6zHo+JQe6IP\n"
"    K4HjGoW4jm53PdwzwXmzH4kLAiEA98S1elBcP075OAYO84qJaGyqQ/0MEeEry++I\n"
"    TOMa7mc=\n"
"    -----END CERTIFICATE-----\n"
"  key: |\n"
"    -----BEGIN PRIVATE KEY-----\n"
"    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzMoltlVyBOi4pP8w\n"
"    lfiRiR8CKueluFm+4rBVnY1FlKGhRANCAAQYnqxYW58ChQ3ESab0ZaJDzpzk7qJm\n"
"    zCro2/A9JSeWCq0nvrRvFFb3iOTUbkZqn95Dtr7S1K37sGioEU0HIeBt\n"
"    -----END PRIVATE KEY-----\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: badcert}\n"
    "stringData:\n  clientId: cid\n  crt: \"notBefore=1\\n-----BEGIN CERTIFICATE-----\"\n  key: KEY\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: oauth-basic}\n"
    "stringData: {clientId: cid, clientSecret: csecret, tokenEndpointAuthMethod: client_secret_basic}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: oauth-badmethod}\n"
    "stringData: {clientId: cid, clientSecret: csecret, tokenEndpointAuthMethod: private_key_jwt}\n"
    "---\n"
    "apiVersion: v1\nkind: Secret\nmetadata: {name: oauth-other}\n"
    "stringData: {clientId: cid, clientSecret: other}\n";

static gw_snapshot_t *build_entries(const char *entries)
{
    char *y = gw_asprintf("%s---\n" APP_HEAD "metadata: {name: app}\nspec:\n  services:\n%s", secrets_yaml, entries);
    gw_snapshot_t *s = build(y);
    free(y);
    return s;
}

static void test_basic_and_errors(void)
{
    gw_snapshot_t *s = build_entries(
        "  - {displayName: ok, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: Basic, secretName: basic}}]}\n"
        "  - {displayName: Missing, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: Basic, secretName: gone}}]}\n"
        "  - {displayName: nokey, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: Basic, secretName: nopass}}]}\n"
        "  - {displayName: other ns, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: Basic, secretName: elsewhere}}]}\n"
        "  - {displayName: weird, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: Digest, secretName: basic}}]}\n"
        "  - {displayName: none, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: '', secretName: x}}]}\n"
        "  - {displayName: oauth missing, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: OAuth, secretName: gone, authenticationUrl: 'http://t/'}}]}\n");
    const gw_api_t *a = found(s, "app", "ok", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_BASIC);
        CHECK_EQ_STR(a->authorization, "Basic dXNlcjpwYXNz");
        CHECK_EQ_STR(a->secret_name, "basic");
    }
    a = found(s, "app", "missing", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for Missing service, secret kyma-system/gone not found");
    a = found(s, "app", "nokey", NULL);
    if (a) {
        CHECK_EQ_STR(a->error, "failed to read API for nokey service, secret kyma-system/nopass has no key 'password'");
        CHECK(a->authorization == NULL);
    }
    a = found(s, "app", "other-ns", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for other ns service, secret kyma-system/elsewhere not found");
    a = found(s, "app", "weird", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for weird service, unsupported credentials type 'Digest'");
    a = found(s, "app", "none", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_NONE);
    }
    a = found(s, "app", "oauth-missing", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for oauth missing service, secret kyma-system/gone not found");
    gw_snapshot_unref(s);
}

static void test_request_params(void)
{
    gw_snapshot_t *s = build_entries(
        "  - {displayName: p, entries: [{type: API, targetUrl: 'http://h/', requestParametersSecretName: params}]}\n"
        "  - {displayName: gone, entries: [{type: API, targetUrl: 'http://h/', requestParametersSecretName: nothere}]}\n"
        "  - {displayName: bad, entries: [{type: API, targetUrl: 'http://h/', requestParametersSecretName: badjson}]}\n"
        "  - {displayName: badq, entries: [{type: API, targetUrl: 'http://h/', requestParametersSecretName: badquery}]}\n"
        "  - {displayName: badh, entries: [{type: API, targetUrl: 'http://h/', requestParametersSecretName: badheader}]}\n"
        "  - {displayName: crlf, entries: [{type: API, targetUrl: 'http://h/', requestParametersSecretName: crlf}]}\n");
    const gw_api_t *a = found(s, "app", "p", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->nheaders, 3);
        if (a->nheaders == 3) {
            CHECK_EQ_STR(a->headers[0].name, "X-Custom");
            CHECK_EQ_STR(a->headers[0].value, "a");
            CHECK_EQ_STR(a->headers[1].name, "X-Custom");
            CHECK_EQ_STR(a->headers[1].value, "b");
            CHECK_EQ_STR(a->headers[2].name, "X-Other");
            CHECK_EQ_STR(a->headers[2].value, "c");
        }
        CHECK_EQ_INT(a->nquery, 3);
        if (a->nquery == 3) {
            CHECK_EQ_STR(a->query[0].name, "q");
            CHECK_EQ_STR(a->query[1].name, "r");
            CHECK_EQ_STR(a->query[1].value, "x y");
            CHECK_EQ_STR(a->query[2].value, "z");
        }
    }
    a = found(s, "app", "gone", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for gone service, secret kyma-system/nothere not found");
    a = found(s, "app", "bad", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for bad service, secret kyma-system/badjson: invalid JSON in 'headers'");
    a = found(s, "app", "badq", NULL);
    if (a)
        CHECK_EQ_STR(a->error,
                     "failed to read API for badq service, secret kyma-system/badquery: invalid JSON in 'queryParameters'");
    a = found(s, "app", "badh", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for badh service, secret kyma-system/badheader: invalid header in 'headers'");
    a = found(s, "app", "crlf", NULL);
    if (a) {
        CHECK_EQ_STR(a->error, "failed to read API for crlf service, secret kyma-system/crlf: invalid header in 'headers'");
        CHECK(strstr(a->error, "Injected") == NULL);
    }
    gw_snapshot_unref(s);
}

static void test_oauth_and_certs(void)
{
    gw_snapshot_t *s = build_entries(
        "  - displayName: o\n    entries:\n    - type: API\n      targetUrl: 'http://h/'\n"
        "      credentials: {type: OAuth, secretName: oauth, authenticationUrl: 'https://auth/token',"
        " csrfInfo: {tokenEndpointURL: 'https://h/csrf'}}\n"
        "  - {displayName: oc, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: OAuthWithCert, secretName: cert, authenticationUrl: 'https://a/'}}]}\n"
        "  - {displayName: cg, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: CertificateGen, secretName: cert}}]}\n"
        "  - {displayName: cgbad, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: CertificateGen, secretName: oauth}}]}\n"
        "  - {displayName: nourl, entries: [{type: API, targetUrl: 'http://h/', credentials: {type: OAuth, secretName: oauth}}]}\n"
        "  - {displayName: csrf only, entries: [{type: API, targetUrl: 'http://h/', credentials: {csrfInfo: {tokenEndpointURL: 'http://c/'}}}]}\n");
    const gw_api_t *a = found(s, "app", "o", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_OAUTH);
        CHECK_EQ_STR(a->client_id, "cid");
        CHECK_EQ_STR(a->client_secret, "csecret");
        CHECK_EQ_STR(a->auth_url, "https://auth/token");
        CHECK_EQ_STR(a->csrf_url, "https://h/csrf");
        CHECK(a->crt_pem == NULL && a->key_pem == NULL && a->authorization == NULL);
        CHECK_EQ_INT(a->ntoken_headers, 1);
        CHECK_EQ_INT(a->ntoken_query, 1);
        if (a->ntoken_query == 1) CHECK_EQ_STR(a->token_query[0].name, "audience");
        CHECK_EQ_INT(a->nheaders, 0);
    }
    a = found(s, "app", "oc", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_OAUTH_CERT);
        CHECK(strncmp(a->crt_pem, "notBefore=1\n-----BEGIN CERTIFICATE-----\n", 40) == 0);
        CHECK(strncmp(a->key_pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
        CHECK(a->client_secret == NULL);
        CHECK(a->tls_ctx == NULL); /* the certificate goes to the token endpoint only */
    }
    a = found(s, "app", "cg", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_CERTGEN);
        CHECK(a->tls_ctx != NULL);
    }
    a = found(s, "app", "cgbad", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for cgbad service, secret kyma-system/oauth has no key 'crt'");
    a = found(s, "app", "nourl", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for nourl service, credentials.authenticationUrl is empty");
    a = found(s, "app", "csrf-only", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->cred_type, GW_CRED_NONE);
        CHECK_EQ_STR(a->csrf_url, "http://c/");
    }
    gw_snapshot_unref(s);
}

static bool zero32(const uint8_t *k)
{
    static const uint8_t z[32];
    return memcmp(k, z, 32) == 0;
}

/* Certificates are parsed at build time; a bad one is the API's error ahead of any request. */
static void test_bad_certificate_and_auth_method(void)
{
    gw_snapshot_t *s = build_entries(
        "  - {displayName: badcg, entries: [{type: API, targetUrl: 'https://h/', credentials: {type: CertificateGen, secretName: badcert}}]}\n"
        "  - {displayName: badoc, entries: [{type: API, targetUrl: 'https://h/', credentials: {type: OAuthWithCert, secretName: badcert, authenticationUrl: 'https://a/'}}]}\n"
        "  - {displayName: basic m, entries: [{type: API, targetUrl: 'https://h/', credentials: {type: OAuth, secretName: oauth-basic, authenticationUrl: 'https://a/'}}]}\n"
        "  - {displayName: bad m, entries: [{type: API, targetUrl: 'https://h/', credentials: {type: OAuth, secretName: oauth-badmethod, authenticationUrl: 'https://a/'}}]}\n");
    const gw_api_t *a = found(s, "app", "badcg", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for badcg service, secret kyma-system/badcert: invalid client certificate");
    a = found(s, "app", "badoc", NULL);
    if (a) CHECK_EQ_STR(a->error, "failed to read API for badoc service, secret kyma-system/badcert: invalid client certificate");
    a = found(s, "app", "basic-m", NULL);
    if (a) {
        CHECK(a->error == NULL);
        CHECK_EQ_INT(a->token_auth, GW_TOKEN_AUTH_BASIC);
    }
    a = found(s, "app", "bad-m", NULL);
    if (a)
        CHECK_EQ_STR(a->error, "failed to read API for bad m service, secret kyma-system/oauth-badmethod: "
                               "tokenEndpointAuthMethod must be client_secret_basic or client_secret_post");
    gw_snapshot_unref(s);
}

/* Token and CSRF cache keys: same credentials and endpoint share a key; anything else differs. */
static void test_credential_keys(void)
{
    gw_snapshot_t *s = build_entries(
        "  - {displayName: o1, entries: [{type: API, targetUrl: 'http://h/1', credentials: {type: OAuth, secretName: oauth-other, authenticationUrl: 'https://a/t', csrfInfo: {tokenEndpointURL: 'https://h/csrf'}}}]}\n"
        "  - {displayName: o2, entries: [{type: API, targetUrl: 'http://h/2', credentials: {type: OAuth, secretName: oauth-other, authenticationUrl: 'https://a/t', csrfInfo: {tokenEndpointURL: 'https://h/csrf'}}}]}\n"
        "  - {displayName: o3, entries: [{type: API, targetUrl: 'http://h/3', credentials: {type: OAuth, secretName: oauth-other, authenticationUrl: 'https://b/t', csrfInfo: {tokenEndpointURL: 'https://h/csrf'}}}]}\n"
        "  - {displayName: o4, entries: [{type: API, targetUrl: 'http://h/4', credentials: {type: OAuth, secretName: oauth-basic, authenticationUrl: 'https://a/t'}}]}\n"
        "  - {displayName: b1, entries: [{type: API, targetUrl: 'http://h/5', credentials: {type: Basic, secretName: basic, csrfInfo: {tokenEndpointURL: 'https://h/csrf'}}}]}\n"
        "  - {displayName: n1, entries: [{type: API, targetUrl: 'http://h/6', credentials: {csrfInfo: {tokenEndpointURL: 'https://h/csrf'}}}]}\n");
    const gw_api_t *o1 = found(s, "app", "o1", NULL), *o2 = found(s, "app", "o2", NULL);
    const gw_api_t *o3 = found(s, "app", "o3", NULL), *o4 = found(s, "app", "o4", NULL);
    const gw_api_t *b1 = found(s, "app", "b1", NULL), *n1 = found(s, "app", "n1", NULL);
    if (o1 && o2 && o3 && o4 && b1 && n1) {
        CHECK(!zero32(o1->token_key) && !zero32(o1->csrf_key));
        CHECK(memcmp(o1->token_key, o2->token_key, 32) == 0);
        CHECK(memcmp(o1->csrf_key, o2->csrf_key, 32) == 0);
        CHECK(memcmp(o1->token_key, o3->token_key, 32) != 0); /* other token endpoint */
        CHECK(memcmp(o1->csrf_key, o3->csrf_key, 32) != 0);   /* same CSRF endpoint, other identity */
        CHECK(memcmp(o1->token_key, o4->token_key, 32) != 0); /* other secret */
        CHECK(zero32(o4->csrf_key));
        CHECK(zero32(b1->token_key) && !zero32(b1->csrf_key));
        CHECK(memcmp(b1->csrf_key, n1->csrf_key, 32) != 0);
        CHECK(memcmp(b1->csrf_key, o1->csrf_key, 32) != 0);
    }
    gw_snapshot_unref(s);
}

static void test_duplicates_and_many(void)
{
    gw_snapshot_t *s = build(APP_HEAD "metadata: {name: dup}\nspec: {services: [{displayName: a, entries: "
                             "[{type: API, targetUrl: 'http://first/'}]}]}\n---\n" APP_HEAD
                             "metadata: {name: dup}\nspec: {services: [{displayName: a, entries: "
                             "[{type: API, targetUrl: 'http://second/'}]}]}\n");
    CHECK_EQ_INT(gw_snapshot_api_count(s), 1);
    const gw_api_t *a = found(s, "dup", "a", NULL);
    if (a) CHECK_EQ_STR(a->target.hostname, "second");
    gw_snapshot_unref(s);

    /* many apps and services: every route resolves to its own API */
    enum { NAPPS = 50, NSVC = 20 };
    json_t *apps[NAPPS];
    for (int i = 0; i < NAPPS; i++) {
        json_t *svcs = json_array();
        for (int j = 0; j < NSVC; j++) {
            char dn[32], url[64];
            snprintf(dn, sizeof(dn), "Service %d", j);
            snprintf(url, sizeof(url), "http://h%d-%d/", i, j);
            json_array_append_new(svcs, json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "displayName", dn, "entries", "type",
                                                  "API", "name", "e", "targetUrl", url));
        }
        char name[32];
        snprintf(name, sizeof(name), "app%d", i);
        apps[i] = json_pack("{s:s, s:s, s:{s:s}, s:{s:o}}", "apiVersion", GW_MANIFEST_API_VERSION, "kind",
                            "Application", "metadata", "name", name, "spec", "services", svcs);
    }
    s = gw_snapshot_build(apps, NAPPS, NULL, 0, "kyma-system");
    CHECK_EQ_INT(gw_snapshot_api_count(s), NAPPS * NSVC);
    int ok = 0;
    for (int i = 0; i < NAPPS; i++) {
        for (int j = 0; j < NSVC; j++) {
            char app[32], svc[32], host[32];
            snprintf(app, sizeof(app), "app%d", i);
            snprintf(svc, sizeof(svc), "service-%d", j);
            snprintf(host, sizeof(host), "h%d-%d", i, j);
            gw_route_t r = look(s, app, svc, NULL), r2 = look(s, app, svc, "e");
            ok += r.kind == GW_ROUTE_FOUND && r2.api == r.api && strcmp(r.api->target.hostname, host) == 0;
        }
    }
    CHECK_EQ_INT(ok, NAPPS * NSVC);
    CHECK_EQ_INT(look(s, "app0", "service-20", NULL).kind, GW_ROUTE_NOT_FOUND);
    for (int i = 0; i < NAPPS; i++) json_decref(apps[i]);
    gw_snapshot_unref(s);
}

static void test_refcount_generation(void)
{
    gw_snapshot_t *e = gw_snapshot_empty();
    CHECK_EQ_INT(gw_snapshot_generation(e), 0);
    CHECK_EQ_INT(gw_snapshot_api_count(e), 0);
    CHECK_EQ_INT(look(e, "a", "b", NULL).kind, GW_ROUTE_NOT_FOUND);
    CHECK_EQ_INT(look(e, "a", "b", "c").kind, GW_ROUTE_NOT_FOUND);
    gw_snapshot_unref(e);
    gw_snapshot_t *s1 = gw_snapshot_build(NULL, 0, NULL, 0, "kyma-system");
    gw_snapshot_t *s2 = build(two_services);
    CHECK(gw_snapshot_generation(s1) > 0);
    CHECK_EQ_INT(gw_snapshot_generation(s2), gw_snapshot_generation(s1) + 1);
    CHECK(gw_snapshot_ref(s2) == s2);
    gw_snapshot_unref(s2);
    const gw_api_t *a = found(s2, "app", "my-api", "v1");  /* still referenced once */
    CHECK(a != NULL);
    gw_snapshot_unref(s2);
    gw_snapshot_unref(s1);
    gw_snapshot_unref(NULL);
    CHECK(gw_snapshot_ref(NULL) == NULL);
    gw_route_t r;
    gw_snapshot_lookup(NULL, GW_STR_LIT("a"), GW_STR_LIT("b"), NULL, &r);
    CHECK_EQ_INT(r.kind, GW_ROUTE_NOT_FOUND);
}

int main(void)
{
    gw_log_set_level(GW_LOG_ERROR);
    GW_RUN(test_normalise);
    GW_RUN(test_lookup_outcomes);
    GW_RUN(test_ambiguous_8082);
    GW_RUN(test_target_parsing);
    GW_RUN(test_invalid_target);
    GW_RUN(test_basic_and_errors);
    GW_RUN(test_request_params);
    GW_RUN(test_oauth_and_certs);
    GW_RUN(test_bad_certificate_and_auth_method);
    GW_RUN(test_credential_keys);
    GW_RUN(test_duplicates_and_many);
    GW_RUN(test_refcount_generation);
    return gw_test_summary();
}
