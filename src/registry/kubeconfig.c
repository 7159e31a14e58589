/* kubeconfig.c: kubeconfig and in-cluster service-account configuration -> gw_kube_conn_t, with
 * client-go's precedence rules. YAML/JSON decoding is decode.c's; this file only walks the tree,
 * reads the files it names and checks them. Never logs; error texts never carry secret values. */
#include "registry/kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "registry/decode.h"
#include "registry/readfile.h"
#include "util/alloc.h"
#include "util/common.h"
#include "util/url.h"

/* ---- errors and names ---- */

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* one line, whatever the input held (the YAML decoder quotes keys as written) */
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    }
    return rc;
}

/* A name or path made safe for a one-line message: at most 64 bytes, control characters,
 * '"' and '\\' replaced by '?', "..." when cut. Returned by value: valid for the full
 * expression that calls qn(). */
typedef struct {
    char s[72];
} qname_t;

static qname_t qn(const char *s)
{
    qname_t q;
    size_t i = 0;
    for (; s && s[i] && i < 64; i++) {
        unsigned char c = (unsigned char)s[i];
        q.s[i] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (s && s[i]) {
        memcpy(q.s + i, "...", 3);
        i += 3;
    }
    q.s[i] = '\0';
    return q;
}

/* Wipes and frees a NUL-terminated secret (NULL is fine). */
static void free_secret(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

void gw_kube_conn_free(gw_kube_conn_t *c)
{
    free(c->server);
    free(c->ca_pem);
    free(c->crt_pem);
    free_secret(c->key_pem);
    free_secret(c->token);
    free(c->token_file);
    free(c->namespace_);
    memset(c, 0, sizeof(*c));
}

/* ---- files ---- */


/* base/p, or p itself when it is absolute or base is NULL or empty. Caller frees. */
static char *join_path(const char *base, const char *p)
{
    if (p[0] == '/' || !base || !base[0]) return gw_strdup(p);
    size_t bn = strlen(base);
    return gw_asprintf("%s%s%s", base, base[bn - 1] == '/' ? "" : "/", p);
}

/* ---- the kubeconfig tree ---- */

typedef struct {
    char *err;
    size_t errlen;
    const char *base_dir;
    char where[96]; /* "cluster \"name\"" etc., for messages */
} kc_t;

/* The string member key of o into *out: NULL when absent, null or "". GW_EINVAL for another type. */
static int opt_str(kc_t *k, const json_t *o, const char *key, const char **out)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return GW_OK;
    if (!json_is_string(v))
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s is not a string", k->where, key);
    if (json_string_length(v)) *out = json_string_value(v);
    return GW_OK;
}

/* True when member key of o is present and neither null, "", {} nor []: a setting in use. */
static bool in_use(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return false;
    if (json_is_string(v)) return json_string_length(v) > 0;
    if (json_is_object(v)) return json_object_size(v) > 0;
    if (json_is_array(v)) return json_array_size(v) > 0;
    return true;
}

/* Finds the entry named name in root[list] (a sequence of {name, member: {...}}) and sets
 * *obj to its member (NULL when the member is absent or null: an empty entry). */
static int find_named(kc_t *k, const json_t *root, const char *list, const char *member, const char *what,
                      const char *name, const json_t **obj)
{
    const json_t *arr = json_object_get(root, list);
    *obj = NULL;
    if (arr && !json_is_null(arr) && !json_is_array(arr))
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s is not a sequence", list);
    const json_t *found = NULL;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        if (!json_is_object(e))
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s[%zu] is not a mapping", list, i);
        const json_t *n = json_object_get(e, "name");
        if (!json_is_string(n))
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s[%zu].name is not a string", list, i);
        if (strcmp(json_string_value(n), name) != 0) continue;
        if (found)
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s \"%s\" is defined twice", what, qn(name).s);
        found = e;
    }
    if (!found) return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s \"%s\" not found", what, qn(name).s);
    const json_t *m = json_object_get(found, member);
    if (m && !json_is_null(m) && !json_is_object(m))
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s \"%s\": %s is not a mapping", what, qn(name).s,
                       member);
    *obj = json_is_object(m) ? m : NULL;
    return GW_OK;
}

/* PEM material from o[data_key] (base64) or else the file o[file_key]; *out NULL when neither
 * is set. *out is malloc'd, NUL-terminated, not empty, without NUL bytes. secret: wipe copies. */
static int pem_field(kc_t *k, const json_t *o, const char *data_key, const char *file_key, char **out)
{
    const char *data, *file;
    *out = NULL;
    if (opt_str(k, o, data_key, &data) || opt_str(k, o, file_key, &file)) return GW_EINVAL;
    size_t n = 0;
    char *buf;
    if (data) {
        size_t in = strlen(data);
        buf = gw_malloc(in / 4 * 3 + 4);
        if (gw_manifest_b64decode(data, in, (unsigned char *)buf, &n) != GW_OK) {
            explicit_bzero(buf, in / 4 * 3 + 4); /* partly decoded key bytes */
            free(buf);
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s is not valid base64", k->where,
                           data_key);
        }
        buf[n] = '\0';
        if (!n) {
            free(buf);
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s is empty", k->where, data_key);
        }
    } else if (file) {
        char *path = join_path(k->base_dir, file), reason[128];
        if (gw_read_file(path, GW_KUBECONFIG_MAX_FILE, &buf, &n, reason, sizeof(reason)) != GW_OK) {
            set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: cannot read %s \"%s\": %s", k->where, file_key,
                    qn(path).s, reason);
            free(path);
            return GW_EINVAL;
        }
        if (!n) {
            set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s \"%s\" is empty", k->where, file_key,
                    qn(path).s);
            free(path);
            free(buf);
            return GW_EINVAL;
        }
        free(path);
    } else {
        return GW_OK;
    }
    if (memchr(buf, '\0', n)) {
        explicit_bzero(buf, n);
        free(buf);
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s is not PEM text (NUL byte)", k->where,
                       data ? data_key : file_key);
    }
    *out = buf;
    return GW_OK;
}

/* Checks a server URL and stores its normalised form ("scheme://rest", no trailing '/'). */
static int set_server(kc_t *k, const char *s, gw_kube_conn_t *out)
{
    size_t n = s ? strlen(s) : 0;
    while (n && s[n - 1] == '/') n--;
    if (!n) return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s has no server", k->where);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: server has spaces or control characters",
                           k->where);
    }
    const char *sep = strstr(s, "://");
    char *url = sep && (size_t)(sep - s) < n ? gw_strndup(s, n) : gw_asprintf("https://%.*s", (int)n, s);
    gw_url_t u;
    const char *why = NULL;
    if (gw_url_split(gw_str(url), &u) != GW_OK) why = "is not a valid URL";
    else if (!GW_STR_IEQ_LIT(u.scheme, "https") && !GW_STR_IEQ_LIT(u.scheme, "http")) why = "is not an http(s) URL";
    else if (!u.has_authority || !u.host.n) why = "has no host";
    else if (u.authority.p[u.authority.n - 1] == ':') why = "has an empty port";
    else if (memchr(u.authority.p, '@', u.authority.n)) why = "must not carry user information";
    else if (u.has_query || u.has_fragment) why = "must not have a query or fragment";
    if (why) {
        free(url);
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: server %s", k->where, why);
    }
    bool tls = GW_STR_IEQ_LIT(u.scheme, "https");
    out->server = gw_asprintf("%s://%s", tls ? "https" : "http", u.authority.p);
    free(url);
    return GW_OK;
}

static int read_cluster(kc_t *k, const json_t *c, gw_kube_conn_t *out)
{
    const char *server;
    if (opt_str(k, c, "server", &server)) return GW_EINVAL;
    if (in_use(c, "proxy-url"))
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: proxy-url is not supported", k->where);
    if (in_use(c, "tls-server-name"))
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: tls-server-name is not supported", k->where);
    const json_t *ins = json_object_get(c, "insecure-skip-tls-verify");
    if (ins && !json_is_null(ins) && !json_is_boolean(ins))
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: insecure-skip-tls-verify is not a boolean",
                       k->where);
    out->insecure = json_is_true(ins);
    if (set_server(k, server, out)) return GW_EINVAL;
    return pem_field(k, c, "certificate-authority-data", "certificate-authority", &out->ca_pem);
}

static int read_user(kc_t *k, const json_t *u, gw_kube_conn_t *out)
{
    static const struct {
        const char *key, *what;
    } unsupported[] = {
        {"exec", "exec credential plugins are not supported"},
        {"auth-provider", "auth-provider plugins are not supported"},
        {"username", "username/password authentication is not supported"},
        {"password", "username/password authentication is not supported"},
        {"as", "impersonation (as) is not supported"},
        {"as-uid", "impersonation (as-uid) is not supported"},
        {"as-groups", "impersonation (as-groups) is not supported"},
        {"as-user-extra", "impersonation (as-user-extra) is not supported"},
    };
    for (size_t i = 0; i < GW_ARRAY_SIZE(unsupported); i++)
        if (in_use(u, unsupported[i].key))
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s", k->where, unsupported[i].what);
    const char *token, *token_file;
    if (opt_str(k, u, "token", &token) || opt_str(k, u, "tokenFile", &token_file)) return GW_EINVAL;
    for (const char *p = token; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: token has control characters", k->where);
    if (pem_field(k, u, "client-certificate-data", "client-certificate", &out->crt_pem)) return GW_EINVAL;
    if (pem_field(k, u, "client-key-data", "client-key", &out->key_pem)) return GW_EINVAL;
    if (!out->crt_pem != !out->key_pem)
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s: %s without %s", k->where,
                       out->crt_pem ? "client-certificate" : "client-key",
                       out->crt_pem ? "client-key" : "client-certificate");
    if (token) out->token = gw_strdup(token);
    if (token_file) out->token_file = join_path(k->base_dir, token_file);
    return GW_OK;
}

static int resolve(kc_t *k, const json_t *root, const char *context, gw_kube_conn_t *out)
{
    snprintf(k->where, sizeof(k->where), "the configuration");
    const char *kind, *cur;
    if (opt_str(k, root, "kind", &kind) || opt_str(k, root, "current-context", &cur)) return GW_EINVAL;
    if (kind && strcmp(kind, "Config") != 0)
        return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: kind is \"%s\", expected Config", qn(kind).s);
    if (context && !context[0]) context = NULL;
    const char *name = context ? context : cur;
    if (!name) return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: no current-context and no context given");

    const json_t *ctx, *cl, *us;
    if (find_named(k, root, "contexts", "context", "context", name, &ctx)) return GW_EINVAL;
    snprintf(k->where, sizeof(k->where), "context \"%s\"", qn(name).s);
    const char *cluster, *user, *ns;
    if (opt_str(k, ctx, "cluster", &cluster) || opt_str(k, ctx, "user", &user) || opt_str(k, ctx, "namespace", &ns))
        return GW_EINVAL;
    if (!cluster) return set_err(k->err, k->errlen, GW_EINVAL, "kubeconfig: %s has no cluster", k->where);

    if (find_named(k, root, "clusters", "cluster", "cluster", cluster, &cl)) return GW_EINVAL;
    snprintf(k->where, sizeof(k->where), "cluster \"%s\"", qn(cluster).s);
    if (read_cluster(k, cl, out)) return GW_EINVAL;
    if (user) {
        if (find_named(k, root, "users", "user", "user", user, &us)) return GW_EINVAL;
        snprintf(k->where, sizeof(k->where), "user \"%s\"", qn(user).s);
        if (read_user(k, us, out)) return GW_EINVAL;
    }
    if (ns) out->namespace_ = gw_strdup(ns);
    return GW_OK;
}

/* Wipes every string under users[*] (tokens, key data, passwords) before the tree is freed.
 * jansson owns those buffers; writing into them in place is the only way to clear them. */
static void scrub_users(json_t *root)
{
    json_t *users = json_object_get(root, "users");
    for (size_t i = 0; i < json_array_size(users); i++) {
        json_t *u = json_object_get(json_array_get(users, i), "user");
        const char *key;
        json_t *v;
        json_object_foreach(u, key, v) {
            if (json_is_string(v)) explicit_bzero((char *)json_string_value(v), json_string_length(v));
        }
    }
}

static gw_manifest_format_t guess_format(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
    return i < len && text[i] == '{' ? GW_MANIFEST_JSON : GW_MANIFEST_YAML;
}

int gw_kubeconfig_parse(const char *text, size_t len, const char *base_dir, const char *context,
                        gw_kube_conn_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen) err[0] = '\0';
    gw_manifest_list_t l = {0};
    gw_manifest_error_t me = {0};
    gw_manifest_format_t fmt = guess_format(text ? text : "", text ? len : 0);
    int rc = gw_manifest_decode(text ? text : "", text ? len : 0, fmt, &l, &me);
    if (rc && fmt == GW_MANIFEST_JSON) { /* "{a: b}" is a YAML flow mapping; keep JSON's error if both fail */
        gw_manifest_error_t ye = {0};
        rc = gw_manifest_decode(text, len, GW_MANIFEST_YAML, &l, &ye);
    }
    if (rc) {
        char buf[300];
        gw_manifest_list_free(&l); /* a failed decode keeps no objects, but may keep the array */
        return set_err(err, errlen, GW_EINVAL, "kubeconfig: %s", gw_manifest_error_text(&me, buf, sizeof(buf)));
    }
    kc_t k = {.err = err, .errlen = errlen, .base_dir = base_dir};
    if (l.n != 1) {
        rc = set_err(err, errlen, GW_EINVAL, "kubeconfig: %s", l.n ? "more than one YAML document" : "empty file");
    } else {
        rc = resolve(&k, l.v[0].obj, context, out);
        scrub_users(l.v[0].obj);
    }
    for (size_t i = 1; i < l.n; i++) scrub_users(l.v[i].obj);
    gw_manifest_list_free(&l);
    if (rc) gw_kube_conn_free(out);
    return rc;
}

int gw_kubeconfig_load(const char *path, const char *context, gw_kube_conn_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *text, reason[128];
    size_t len;
    if (gw_read_file(path, GW_KUBECONFIG_MAX_FILE, &text, &len, reason, sizeof(reason)) != GW_OK)
        return set_err(err, errlen, GW_EINVAL, "kubeconfig: cannot read \"%s\": %s", qn(path).s, reason);
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? gw_strdup(".") : slash == path ? gw_strdup("/") : gw_strndup(path, (size_t)(slash - path));
    int rc = gw_kubeconfig_parse(text, len, dir, context, out, err, errlen);
    explicit_bzero(text, len);
    free(text);
    free(dir);
    return rc;
}

/* ---- in-cluster ---- */

/* Port: 1..65535 in decimal; host: not empty, no whitespace, control characters or URL delimiters. */
static bool valid_host_port(const char *host, const char *port)
{
    size_t n = strlen(port);
    unsigned long v = 0;
    if (n > 5) return false;
    for (size_t i = 0; i < n; i++) {
        if (port[i] < '0' || port[i] > '9') return false;
        v = v * 10 + (unsigned long)(port[i] - '0');
    }
    if (v < 1 || v > 65535) return false;
    for (const char *p = host; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f || strchr("/?#@[]\\", c)) return false;
    }
    return true;
}

/* Reads sa_dir/name into *out (caller frees), or fills err. */
static int read_sa_file(const char *dir, const char *name, char **out, size_t *len, char *err, size_t errlen)
{
    char *path = join_path(dir, name), reason[128];
    int rc = gw_read_file(path, GW_KUBECONFIG_MAX_FILE, out, len, reason, sizeof(reason));
    if (rc == GW_OK && *len == 0) {
        free(*out);
        snprintf(reason, sizeof(reason), "empty file");
        rc = GW_EINVAL;
    }
    if (rc != GW_OK) {
        *out = NULL;
        set_err(err, errlen, GW_EINVAL, "in-cluster config: cannot read \"%s\": %s", qn(path).s, reason);
    }
    free(path);
    return rc;
}

int gw_kube_incluster(const char *sa_dir, gw_kube_conn_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen) err[0] = '\0';
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !host[0] || !port || !port[0])
        return set_err(err, errlen, GW_ENOENT,
                       "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not both set");
    if (!valid_host_port(host, port))
        return set_err(err, errlen, GW_EINVAL,
                       "in-cluster config: KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is malformed");
    const char *dir = sa_dir && sa_dir[0] ? sa_dir : GW_KUBE_SA_DIR;
    char *tok, *ca;
    size_t n;
    if (read_sa_file(dir, "token", &tok, &n, err, errlen)) return GW_EINVAL;
    explicit_bzero(tok, n);
    free(tok);
    if (read_sa_file(dir, "ca.crt", &ca, &n, err, errlen)) return GW_EINVAL;

    bool v6 = strchr(host, ':') != NULL;
    out->server = gw_asprintf("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    out->ca_pem = ca;
    out->token_file = join_path(dir, "token");

    char *ns = join_path(dir, "namespace"), *text, reason[128];
    if (gw_read_file(ns, GW_KUBECONFIG_MAX_FILE, &text, &n, reason, sizeof(reason)) == GW_OK) {
        size_t a = 0;
        while (a < n && strchr(" \t\r\n", text[a]) && text[a]) a++;
        while (n > a && strchr(" \t\r\n", text[n - 1]) && text[n - 1]) n--;
        if (n > a && !memchr(text + a, '\0', n - a)) out->namespace_ = gw_strndup(text + a, n - a);
        free(text);
    }
    free(ns);
    return GW_OK;
}
