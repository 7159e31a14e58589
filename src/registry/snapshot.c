/* snapshot.c: builds the immutable route table (one gw_api_t per Application service entry of
 * type API, plus a small open-addressing hash keyed by app/service[/entry]) and manages its
 * lifetime. Not for: reading manifests (decode.c, source_files.c) or proxying; lookups never
 * allocate or lock. */
#include "registry/snapshot.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/series.h"
#include "http/egress.h"
#include "http/tls.h"
#include "registry/decode.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/log.h"
#include "util/url.h"

#define GW_NAME_MAX 57

/* One API plus its normalised names and the chains of APIs sharing a route key. */
typedef struct {
    gw_api_t api;
    char nsvc[GW_NAME_MAX + 1];
    char nent[GW_NAME_MAX + 1];
    size_t nsvc_n, nent_n;
    size_t next[2];  /* per port (0: 8080, 1: 8082): index+1 of the next API with the same key */
} gw_rec_t;

typedef struct {
    uint64_t hash;
    const char *app, *svc, *ent;
    size_t app_n, svc_n, ent_n;
    bool used, has_entry;
    size_t first, last, count;  /* rec indices of the candidates (chained through next[]) */
    gw_route_t route;
    char *error;                /* owned text of an AMBIGUOUS route */
} gw_slot_t;

struct gw_snapshot_s {
    atomic_size_t refs;
    uint64_t generation;
    size_t napps, nsecrets;      /* objects it was built from */
    gw_rec_t *recs;
    size_t nrecs;
    gw_slot_t *slots;
    size_t nslots;  /* 0 or a power of two */
    bool on_demand;
};

static atomic_uint_fast64_t gw__snapshot_generation;

/* ---- names and hashing ---- */

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

size_t gw_normalise_name(const char *in, char *out)
{
    size_t n = 0, total = 0;  /* total: length of the fully replaced string (counted past 57) */
    bool in_run = false;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char c;
        if (is_alnum(*p)) {
            c = (char)(*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);
            in_run = false;
        } else {
            if (in_run) continue;
            in_run = true;
            c = '-';
        }
        if (n < GW_NAME_MAX) out[n++] = c;
        total++;
    }
    /* drop one trailing '-' (only matters when the whole string fits), then cut, then leading */
    if (total <= GW_NAME_MAX && n && out[n - 1] == '-') n--;
    size_t skip = n && out[0] == '-' ? 1 : 0;
    if (skip) memmove(out, out + 1, n - 1);
    n -= skip;
    out[n] = '\0';
    return n;
}

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t key_hash(gw_str_t app, gw_str_t svc, const gw_str_t *ent)
{
    uint64_t h = fnv(FNV_OFFSET, app.p, app.n);
    h = (h ^ 0x100) * FNV_PRIME;  /* separators outside the byte range */
    h = fnv(h, svc.p, svc.n);
    if (ent) {
        h = (h ^ 0x200) * FNV_PRIME;
        h = fnv(h, ent->p, ent->n);
    }
    return h;
}

static bool bytes_eq(const char *a, size_t an, gw_str_t b)
{
    return an == b.n && (an == 0 || memcmp(a, b.p, an) == 0);
}

static bool slot_matches(const gw_slot_t *sl, uint64_t h, gw_str_t app, gw_str_t svc, const gw_str_t *ent)
{
    return sl->hash == h && sl->has_entry == (ent != NULL) && bytes_eq(sl->app, sl->app_n, app) &&
           bytes_eq(sl->svc, sl->svc_n, svc) && (!ent || bytes_eq(sl->ent, sl->ent_n, *ent));
}

void gw_snapshot_lookup(const gw_snapshot_t *s, gw_str_t app, gw_str_t service, const gw_str_t *entry,
                        gw_route_t *out)
{
    out->kind = GW_ROUTE_NOT_FOUND;
    out->api = NULL;
    out->error = NULL;
    if (!s || !s->nslots) return;
    uint64_t h = key_hash(app, service, entry);
    size_t mask = s->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const gw_slot_t *sl = &s->slots[i];
        if (!sl->used) return;
        if (slot_matches(sl, h, app, service, entry)) {
            *out = sl->route;
            return;
        }
    }
}

/* ---- json helpers ---- */

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static char *jdup_opt(const json_t *o, const char *key)
{
    const char *s = jstr(o, key);
    return *s ? gw_strdup(s) : NULL;
}

/* ---- secrets index ---- */

typedef struct {
    const char *name;
    const json_t *obj;
    size_t idx;
} gw_secref_t;

typedef struct {
    gw_secref_t *v;
    size_t n;
    const char *ns;
} gw_secrets_t;

static int secref_cmp(const void *a, const void *b)
{
    const gw_secref_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* The last Secret of that name in input order, or NULL. */
static const json_t *secret_find(const gw_secrets_t *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->v[mid].name, name) <= 0) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && strcmp(s->v[lo - 1].name, name) == 0 ? s->v[lo - 1].obj : NULL;
}

static void secrets_index(gw_secrets_t *s, json_t *const *secrets, size_t n, const char *ns)
{
    s->v = gw_calloc(n ? n : 1, sizeof(*s->v));
    s->n = 0;
    s->ns = ns ? ns : "";
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(json_object_get(secrets[i], "metadata"), "name"));
        if (!name) continue;
        s->v[s->n++] = (gw_secref_t){name, secrets[i], i};
    }
    qsort(s->v, s->n, sizeof(*s->v), secref_cmp);
}

/* ---- one API ---- */

static void api_fail(gw_api_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void api_fail(gw_api_t *a, const char *fmt, ...)
{
    if (a->error) return;
    char tail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);
    a->error = gw_asprintf("failed to read API for %s service, %s", a->service_name, tail);
}

static void fill_target(gw_api_t *a, const char *url)
{
    gw_target_t *t = &a->target;
    t->url = gw_strdup(url);
    const char *why = NULL;
    gw_url_t u;
    for (const unsigned char *c = (const unsigned char *)url; *c && !why; c++)
        if (*c <= 0x20 || *c == 0x7f) why = "it contains whitespace or control characters";
    if (!why && gw_url_split(gw_str(url), &u) != GW_OK) why = "malformed host or port";
    bool https = !why && GW_STR_IEQ_LIT(u.scheme, "https");
    if (!why && !https && !GW_STR_IEQ_LIT(u.scheme, "http")) why = "not an absolute http or https URL";
    if (!why && (!u.has_authority || u.host.n == 0)) why = "no host";
    uint16_t port = why ? 0 : gw_url_port(&u);
    if (!why && port == 0) why = "port 0";
    if (why) {
        api_fail(a, "invalid targetUrl: %s", why);
        t->hostname = gw_strdup("");
        t->host_header = gw_strdup("");
        t->path = gw_strdup("");
        t->query = gw_strdup("");
        return;
    }
    t->https = https;
    t->port = port;
    t->hostname = gw_strndup(u.host.p, u.host.n);
    const char *h = u.authority.p, *end = u.authority.p + u.authority.n;
    for (const char *c = h; c < end; c++)
        if (*c == '@') h = c + 1;
    if (end > h && end[-1] == ':') end--;  /* "host:" with an empty port */
    t->host_header = gw_strndup(h, (size_t)(end - h));
    t->path = gw_strndup(u.path.p, u.path.n);
    t->query = gw_strndup(u.query.p, u.query.n);
    t->proxy = gw_egress_proxy_for(gw_egress_global(), https, t->hostname, port);
}

static bool is_tchar(unsigned char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool header_ok(const char *name, const char *value)
{
    if (!*name) return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!is_tchar(*p)) return false;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    return true;
}

/* {"Name": ["v1","v2"], ...} -> one gw_kv_t per value, in order. Returns 0, -1 for anything
 * that is not such an object, -2 for a header that could not be sent safely. */
static int parse_kv(const char *text, size_t n, bool headers, gw_kv_t **out, size_t *nout)
{
    json_error_t je;
    json_t *o = json_loadb(text, n, 0, &je);
    int rc = json_is_object(o) ? 0 : -1;
    size_t count = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (rc || json_is_null(v)) continue;
        if (!json_is_array(v)) { rc = -1; continue; }
        for (size_t i = 0; i < json_array_size(v) && !rc; i++) {
            const char *s = json_string_value(json_array_get(v, i));
            if (!s) rc = -1;
            else if (headers && !header_ok(k, s)) rc = -2;
            else count++;
        }
    }
    *out = NULL;
    *nout = 0;
    if (!rc && count) {
        *out = gw_calloc(count, sizeof(gw_kv_t));
        json_object_foreach(o, k, v) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                (*out)[*nout].name = gw_strdup(k);
                (*out)[*nout].value = gw_strdup(json_string_value(json_array_get(v, i)));
                (*nout)++;
            }
        }
    }
    json_decref(o);
    return rc;
}

static void free_kv(gw_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

/* Reads key from a Secret; on failure sets the API error and returns non-zero. */
static int secret_get(gw_api_t *a, const gw_secrets_t *sec, const json_t *secret, const char *sname,
                      const char *key, bool required, char **out, size_t *len)
{
    int rc = gw_manifest_secret_value(secret, key, out, len);
    if (rc == GW_ENOENT && !required) return rc;
    if (rc == GW_ENOENT) api_fail(a, "secret %s/%s has no key '%s'", sec->ns, sname, key);
    else if (rc) api_fail(a, "secret %s/%s: key '%s' is not valid base64", sec->ns, sname, key);
    return rc;
}

/* Optional "headers" / "queryParameters" of a Secret into the given arrays. */
static void fill_kv_pair(gw_api_t *a, const gw_secrets_t *sec, const json_t *secret, const char *sname,
                         gw_kv_t **h, size_t *nh, gw_kv_t **q, size_t *nq)
{
    static const char *const keys[] = {"headers", "queryParameters"};
    for (int i = 0; i < 2; i++) {
        char *text = NULL;
        size_t len = 0;
        if (secret_get(a, sec, secret, sname, keys[i], false, &text, &len)) continue;
        int rc = parse_kv(text, len, i == 0, i == 0 ? h : q, i == 0 ? nh : nq);
        free(text);
        if (rc == -1) api_fail(a, "secret %s/%s: invalid JSON in '%s'", sec->ns, sname, keys[i]);
        else if (rc) api_fail(a, "secret %s/%s: invalid header in '%s'", sec->ns, sname, keys[i]);
    }
}

static void fill_params(gw_api_t *a, const gw_secrets_t *sec, const char *sname)
{
    const json_t *secret = secret_find(sec, sname);
    if (!secret) {
        api_fail(a, "secret %s/%s not found", sec->ns, sname);
        return;
    }
    fill_kv_pair(a, sec, secret, sname, &a->headers, &a->nheaders, &a->query, &a->nquery);
}

typedef struct {
    const char *name;
    gw_cred_type_t type;
    const char *required[3];
} gw_cred_def_t;

static const gw_cred_def_t cred_defs[] = {
    {"Basic", GW_CRED_BASIC, {"username", "password", NULL}},
    {"OAuth", GW_CRED_OAUTH, {"clientId", "clientSecret", NULL}},
    {"OAuthWithCert", GW_CRED_OAUTH_CERT, {"clientId", "crt", "key"}},
    {"CertificateGen", GW_CRED_CERTGEN, {"crt", "key", NULL}},
};

static void fill_basic(gw_api_t *a, const char *user, size_t ulen, const char *pass, size_t plen)
{
    size_t n = ulen + 1 + plen;
    char *raw = gw_malloc(n + 1);
    memcpy(raw, user, ulen);
    raw[ulen] = ':';
    memcpy(raw + ulen + 1, pass, plen);
    a->authorization = gw_malloc(6 + 4 * ((n + 2) / 3) + 1);
    memcpy(a->authorization, "Basic ", 6);
    gw_manifest_b64encode(raw, n, a->authorization + 6);
    memset(raw, 0, n);
    free(raw);
}

static void fill_token_auth(gw_api_t *a, const gw_secrets_t *sec, const json_t *secret, const char *sname);

static void fill_credentials(gw_api_t *a, const json_t *creds, const gw_secrets_t *sec)
{
    const char *type = jstr(creds, "type");
    a->secret_name = jdup_opt(creds, "secretName");
    a->auth_url = jdup_opt(creds, "authenticationUrl");
    a->csrf_url = jdup_opt(json_object_get(creds, "csrfInfo"), "tokenEndpointURL");
    if (!*type) return;
    const gw_cred_def_t *def = NULL;
    for (size_t i = 0; i < GW_ARRAY_SIZE(cred_defs); i++)
        if (strcmp(type, cred_defs[i].name) == 0) def = &cred_defs[i];
    if (!def) {
        api_fail(a, "unsupported credentials type '%.64s'", type);
        return;
    }
    a->cred_type = def->type;
    const char *sname = a->secret_name ? a->secret_name : "";
    const json_t *secret = secret_find(sec, sname);
    if (!secret) {
        api_fail(a, "secret %s/%s not found", sec->ns, sname);
        return;
    }
    char *val[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    for (int i = 0; i < 3 && def->required[i]; i++)
        if (secret_get(a, sec, secret, sname, def->required[i], true, &val[i], &len[i])) break;
    if (!a->error && def->type == GW_CRED_BASIC) fill_basic(a, val[0], len[0], val[1], len[1]);
    for (int i = 0; i < 3; i++) {
        if (val[i]) memset(val[i], 0, len[i]);
        free(val[i]);
    }
    if (a->error || def->type == GW_CRED_BASIC) return;
    static const char *const fields[] = {"clientId", "clientSecret", "crt", "key"};
    char **dst[] = {&a->client_id, &a->client_secret, &a->crt_pem, &a->key_pem};
    for (int i = 0; i < 4; i++) {
        size_t n;
        if (secret_get(a, sec, secret, sname, fields[i], false, dst[i], &n) == GW_ENOENT) *dst[i] = NULL;
    }
    if (def->type == GW_CRED_OAUTH || def->type == GW_CRED_OAUTH_CERT) {
        fill_kv_pair(a, sec, secret, sname, &a->token_headers, &a->ntoken_headers, &a->token_query,
                     &a->ntoken_query);
        if (!a->auth_url || !a->auth_url[0]) api_fail(a, "credentials.authenticationUrl is empty");
        fill_token_auth(a, sec, secret, sname);
    }
    if (!a->error && (def->type == GW_CRED_OAUTH_CERT || def->type == GW_CRED_CERTGEN)) {
        /* Parsed now, so a bad certificate is this API's 500 ahead of any request. */
        const char *err = "invalid client certificate or key";
        gw_tls_ctx_t *ctx = gw_tls_ctx_new(!a->skip_verify, a->crt_pem, a->key_pem, &err);
        if (!ctx) api_fail(a, "secret %s/%s: %s", sec->ns, sname, err);
        else if (def->type == GW_CRED_CERTGEN) a->tls_ctx = ctx;
        else gw_tls_ctx_free(ctx);
    }
}

/* Optional "tokenEndpointAuthMethod" of an OAuth Secret. */
static void fill_token_auth(gw_api_t *a, const gw_secrets_t *sec, const json_t *secret, const char *sname)
{
    char *m = NULL;
    size_t n = 0;
    if (secret_get(a, sec, secret, sname, "tokenEndpointAuthMethod", false, &m, &n) != GW_OK) return;
    if (strcmp(m, "client_secret_basic") == 0) a->token_auth = GW_TOKEN_AUTH_BASIC;
    else if (strcmp(m, "client_secret_post") == 0) a->token_auth = GW_TOKEN_AUTH_POST;
    else if (m[0])
        api_fail(a, "secret %s/%s: tokenEndpointAuthMethod must be client_secret_basic or client_secret_post",
                 sec->ns, sname);
    free(m);
}

/* ---- cache keys of fetched credentials ---- */

static void md_field(EVP_MD_CTX *md, const void *p, size_t n)
{
    uint64_t len = n; /* length-prefixed: no two field lists hash alike by shifting bytes */
    EVP_DigestUpdate(md, &len, sizeof(len));
    if (n) EVP_DigestUpdate(md, p, n);
}

static void md_str(EVP_MD_CTX *md, const char *s)
{
    md_field(md, s ? s : "", s ? strlen(s) + 1 : 0);
}

static void md_kv(EVP_MD_CTX *md, const gw_kv_t *kv, size_t n)
{
    md_field(md, &n, sizeof(n));
    for (size_t i = 0; i < n; i++) {
        md_str(md, kv[i].name);
        md_str(md, kv[i].value);
    }
}

static void md_final(EVP_MD_CTX *md, uint8_t out[32])
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != 32) gw_oom(32); /* SHA-256 cannot fail short of memory */
}

/* token_key: everything the token request is made of (§6.2: clientId, clientSecret, URL; §6.3:
 * clientId, URL, crt, key) plus the Secret's token-request parameters, TLS verification and
 * client-auth method. csrf_key: the endpoint plus the identity its request presents. */
static void fill_cred_keys(gw_api_t *a)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) gw_oom(sizeof(void *));
    uint8_t v = a->skip_verify;
    if (gw_api_needs_token(a)) {
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        md_str(md, a->cred_type == GW_CRED_OAUTH ? "oauth" : "oauth-cert");
        md_str(md, a->client_id);
        md_str(md, a->cred_type == GW_CRED_OAUTH ? a->client_secret : NULL);
        md_str(md, a->auth_url);
        md_str(md, a->cred_type == GW_CRED_OAUTH_CERT ? a->crt_pem : NULL);
        md_str(md, a->cred_type == GW_CRED_OAUTH_CERT ? a->key_pem : NULL);
        md_kv(md, a->token_headers, a->ntoken_headers);
        md_kv(md, a->token_query, a->ntoken_query);
        md_field(md, &v, 1);
        md_field(md, &a->token_auth, sizeof(a->token_auth));
        md_final(md, a->token_key);
    }
    if (a->csrf_url && a->csrf_url[0]) {
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        md_str(md, "csrf");
        md_str(md, a->csrf_url);
        md_field(md, &v, 1);
        md_field(md, &a->cred_type, sizeof(a->cred_type));
        if (gw_api_needs_token(a)) md_field(md, a->token_key, sizeof(a->token_key));
        if (a->cred_type == GW_CRED_BASIC) md_str(md, a->authorization);
        if (a->cred_type == GW_CRED_CERTGEN) md_field(md, gw_tls_ctx_id(a->tls_ctx), 32);
        md_final(md, a->csrf_key);
    }
    EVP_MD_CTX_free(md);
}

static void api_free(gw_api_t *a)
{
    gw_series_put(a->series);
    gw_series_put(a->host_series);
    free(a->app);
    free(a->service_name);
    free(a->service_id);
    free(a->entry_name);
    free(a->target.url);
    free(a->target.hostname);
    free(a->target.host_header);
    free(a->target.path);
    free(a->target.query);
    free(a->error);
    free(a->authorization);
    free_kv(a->headers, a->nheaders);
    free_kv(a->query, a->nquery);
    free_kv(a->token_headers, a->ntoken_headers);
    free_kv(a->token_query, a->ntoken_query);
    free(a->secret_name);
    free(a->auth_url);
    free(a->csrf_url);
    free(a->client_id);
    if (a->client_secret) memset(a->client_secret, 0, strlen(a->client_secret));
    free(a->client_secret);
    free(a->crt_pem);
    if (a->key_pem) memset(a->key_pem, 0, strlen(a->key_pem));
    free(a->key_pem);
    gw_tls_ctx_free(a->tls_ctx);
}

static void fill_api(gw_rec_t *r, const char *app, const json_t *spec, const json_t *svc, const json_t *entry,
                     const gw_secrets_t *sec)
{
    gw_api_t *a = &r->api;
    a->app = gw_strdup(app);
    a->service_name = gw_strdup(jstr(svc, "displayName"));
    a->service_id = gw_strdup(jstr(svc, "id"));
    a->entry_name = gw_strdup(jstr(entry, "name"));
    a->skip_verify = json_is_true(json_object_get(spec, "skipVerify"));
    a->encode_url = !json_is_false(json_object_get(spec, "encodeUrl"));
    r->nsvc_n = gw_normalise_name(a->service_name, r->nsvc);
    r->nent_n = gw_normalise_name(a->entry_name, r->nent);
    fill_target(a, jstr(entry, "targetUrl"));
    fill_credentials(a, json_object_get(entry, "credentials"), sec);
    const char *params = jstr(entry, "requestParametersSecretName");
    if (*params) fill_params(a, sec, params);
    if (!a->error) fill_cred_keys(a);
    if (a->error)
        gw_log(GW_LOG_WARN, "API configuration error", "application", a->app, "service", a->service_name,
               "entry", a->entry_name, "error", a->error, NULL);
}

/* ---- building ---- */

typedef struct {
    const char *name;
    size_t idx;
} gw_appref_t;

static int appref_cmp(const void *a, const void *b)
{
    const gw_appref_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static const char *app_name(const json_t *app)
{
    return json_string_value(json_object_get(json_object_get(app, "metadata"), "name"));
}

/* Marks Applications to skip: nameless ones and all but the last of each name. */
static bool *apps_skip(json_t *const *apps, size_t n)
{
    bool *skip = gw_calloc(n ? n : 1, sizeof(bool));
    gw_appref_t *refs = gw_calloc(n ? n : 1, sizeof(*refs));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = app_name(apps[i]);
        if (!name || !*name) {
            skip[i] = true;
            gw_log(GW_LOG_WARN, "Application without metadata.name skipped", NULL);
            continue;
        }
        refs[m++] = (gw_appref_t){name, i};
    }
    qsort(refs, m, sizeof(*refs), appref_cmp);
    for (size_t i = 0; i + 1 < m; i++) {
        if (strcmp(refs[i].name, refs[i + 1].name) != 0) continue;
        skip[refs[i].idx] = true;
        gw_log(GW_LOG_WARN, "duplicate Application, the later definition wins", "application", refs[i].name, NULL);
    }
    free(refs);
    return skip;
}

static bool is_api_entry(const json_t *e)
{
    return strcmp(jstr(e, "type"), "API") == 0;
}

/* Calls fill for every (service, entry) of type API of the non-skipped apps, or just counts. */
static size_t walk_apis(json_t *const *apps, size_t napps, const bool *skip, gw_rec_t *recs,
                        const gw_secrets_t *sec)
{
    size_t n = 0;
    for (size_t i = 0; i < napps; i++) {
        if (skip[i]) continue;
        const json_t *spec = json_object_get(apps[i], "spec");
        const json_t *svcs = json_object_get(spec, "services");
        for (size_t s = 0; s < json_array_size(svcs); s++) {
            const json_t *svc = json_array_get(svcs, s);
            const json_t *ents = json_object_get(svc, "entries");
            for (size_t e = 0; e < json_array_size(ents); e++) {
                const json_t *ent = json_array_get(ents, e);
                if (!is_api_entry(ent)) continue;
                if (recs) fill_api(&recs[n], app_name(apps[i]), spec, svc, ent, sec);
                n++;
            }
        }
    }
    return n;
}

static void table_insert(gw_snapshot_t *s, size_t idx, int port)
{
    gw_rec_t *r = &s->recs[idx];
    gw_str_t app = gw_str(r->api.app), svc = {r->nsvc, r->nsvc_n}, ent = {r->nent, r->nent_n};
    const gw_str_t *entp = port ? &ent : NULL;
    uint64_t h = key_hash(app, svc, entp);
    size_t mask = s->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        gw_slot_t *sl = &s->slots[i];
        if (sl->used && slot_matches(sl, h, app, svc, entp)) {
            s->recs[sl->last].next[port] = idx + 1;
            sl->last = idx;
            sl->count++;
            return;
        }
        if (sl->used) continue;
        *sl = (gw_slot_t){.hash = h, .app = app.p, .app_n = app.n, .svc = svc.p, .svc_n = svc.n,
                          .ent = port ? ent.p : NULL, .ent_n = port ? ent.n : 0, .used = true,
                          .has_entry = port != 0, .first = idx, .last = idx, .count = 1};
        return;
    }
}

static void slot_finish(gw_snapshot_t *s, gw_slot_t *sl, int port)
{
    if (sl->count == 1) {
        sl->route = (gw_route_t){GW_ROUTE_FOUND, &s->recs[sl->first].api, NULL};
        return;
    }
    gw_buf_t b;
    gw_buf_init(&b, 64 * 1024);
    if (port)
        gw_buf_appendf(&b, "failed to get service with name '%.*s' and entry name '%.*s': multiple services found: ",
                       (int)sl->svc_n, sl->svc, (int)sl->ent_n, sl->ent);
    else
        gw_buf_appendf(&b, "failed to get service with name '%.*s': multiple services found: ", (int)sl->svc_n,
                       sl->svc);
    for (size_t i = sl->first + 1, k = 0; i; i = s->recs[i - 1].next[port], k++) {
        const gw_api_t *a = &s->recs[i - 1].api;
        if (k) gw_buf_puts(&b, ", ");
        if (port) gw_buf_appendf(&b, "%s (%s)", a->service_name, a->entry_name);
        else gw_buf_puts(&b, a->service_name);
    }
    sl->error = gw_buf_take(&b, NULL);
    sl->route = (gw_route_t){GW_ROUTE_AMBIGUOUS, NULL, sl->error};
}

static void table_build(gw_snapshot_t *s)
{
    if (!s->nrecs) return;
    s->nslots = 8;
    while (s->nslots < 4 * s->nrecs) s->nslots *= 2;
    s->slots = gw_calloc(s->nslots, sizeof(gw_slot_t));
    for (int port = 0; port < 2; port++)
        for (size_t i = 0; i < s->nrecs; i++) table_insert(s, i, port);
    for (size_t i = 0; i < s->nslots; i++)
        if (s->slots[i].used) slot_finish(s, &s->slots[i], s->slots[i].has_entry);
}

gw_snapshot_t *gw_snapshot_build(json_t *const *apps, size_t napps, json_t *const *secrets, size_t nsecrets,
                                 const char *secrets_namespace)
{
    gw_snapshot_t *s = gw_calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->generation = atomic_fetch_add(&gw__snapshot_generation, 1) + 1;
    s->napps = napps;
    s->nsecrets = nsecrets;
    gw_secrets_t sec;
    secrets_index(&sec, secrets, nsecrets, secrets_namespace);
    bool *skip = apps_skip(apps, napps);
    s->nrecs = walk_apis(apps, napps, skip, NULL, &sec);
    s->recs = gw_calloc(s->nrecs ? s->nrecs : 1, sizeof(gw_rec_t));
    walk_apis(apps, napps, skip, s->recs, &sec);
    for (size_t i = 0; i < s->nrecs; i++) {
        gw_api_t *api = &s->recs[i].api;
        api->series = gw_series_get(GW_SERIES_API, api->app, api->service_name);
        if (api->target.host_header)
            api->host_series = gw_series_get(GW_SERIES_HOST, api->target.host_header, api->target.https ? "https" : "http");
    }
    free(skip);
    free(sec.v);
    table_build(s);
    return s;
}

gw_snapshot_t *gw_snapshot_empty(void)
{
    gw_snapshot_t *s = gw_calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    return s;
}

gw_snapshot_t *gw_snapshot_ref(gw_snapshot_t *s)
{
    if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_snapshot_unref(gw_snapshot_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < s->nrecs; i++) api_free(&s->recs[i].api);
    for (size_t i = 0; i < s->nslots; i++) free(s->slots[i].error);
    free(s->recs);
    free(s->slots);
    free(s);
}

void gw_snapshot_set_on_demand(gw_snapshot_t *s) { s->on_demand = true; }

bool gw_snapshot_on_demand(const gw_snapshot_t *s) { return s && s->on_demand; }

const gw_api_t *gw_snapshot_api(const gw_snapshot_t *s, size_t i)
{
    return &s->recs[i].api;
}

size_t gw_snapshot_app_count(const gw_snapshot_t *s) { return s->napps; }
size_t gw_snapshot_secret_count(const gw_snapshot_t *s) { return s->nsecrets; }

uint64_t gw_snapshot_generation(const gw_snapshot_t *s)
{
    return s ? s->generation : 0;
}

size_t gw_snapshot_api_count(const gw_snapshot_t *s)
{
    return s ? s->nrecs : 0;
}
