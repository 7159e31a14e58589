/* snapshot.h: the immutable, refcounted route table built from Applications and Secrets.
 * Built whole off the request path, published atomically, read lock-free by workers.
 * Not for: reading files or the Kubernetes API (see source_files.h), or proxying. */
#ifndef GW_REGISTRY_SNAPSHOT_H
#define GW_REGISTRY_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "util/str.h"

typedef enum {
    GW_CRED_NONE = 0,    /* no credentials (caller's Authorization passes through) */
    GW_CRED_BASIC,       /* Authorization: Basic, precomputed */
    GW_CRED_OAUTH,       /* client credentials token (§6.2), fetched by auth/creds */
    GW_CRED_OAUTH_CERT,  /* client credentials over mTLS (§6.3), fetched by auth/creds */
    GW_CRED_CERTGEN,     /* client certificate presented to the upstream (§6.4) */
} gw_cred_type_t;

/* How an OAuth client authenticates at the token endpoint (Secret key
 * "tokenEndpointAuthMethod"): AUTO sends the secret as Basic and in the form like the original,
 * falling back to basic-only, then post-only when the endpoint refuses that. */
typedef enum {
    GW_TOKEN_AUTH_AUTO = 0,
    GW_TOKEN_AUTH_BASIC,  /* client_secret_basic */
    GW_TOKEN_AUTH_POST,   /* client_secret_post */
} gw_token_auth_t;

struct gw_tls_ctx_s;

/* One header or query parameter value (repeated names appear several times). */
typedef struct {
    char *name;
    char *value;
} gw_kv_t;

/* targetUrl, parsed once at build time. */
typedef struct {
    char *url;          /* as written in the Application */
    bool https;
    char *hostname;     /* without brackets or port, for connect, SNI and verification */
    uint16_t port;
    char *host_header;  /* value of the Host header: host[:port] (port only if not default) */
    char *path;         /* raw path of targetUrl, possibly "" */
    char *query;        /* raw query of targetUrl without '?', possibly "" */
    const struct gw_proxy_s *proxy; /* egress proxy (http/egress.h), NULL: direct; decided at build */
} gw_target_t;

/* One API = one (service, entry) of an Application, with everything a request needs. */
typedef struct gw_api_s {
    char *app;               /* Application name */
    char *service_name;      /* service displayName as written */
    char *service_id;        /* service id, may be "" */
    char *entry_name;        /* entry name as written, may be "" */
    gw_target_t target;
    bool skip_verify;        /* spec.skipVerify */
    bool encode_url;         /* spec.encodeUrl, default true */
    gw_cred_type_t cred_type;
    /* When non-NULL every request to this API answers 500 with this error text, e.g.
     * "failed to read API for my-service service, secret kyma-system/x not found". */
    char *error;
    char *authorization;     /* GW_CRED_BASIC: full header value "Basic base64(user:pass)" */
    gw_kv_t *headers;        /* request parameters: headers (§6.6) */
    size_t nheaders;
    gw_kv_t *query;          /* request parameters: query parameters (§6.6) */
    size_t nquery;
    /* Kept for the OAuth / certificate / CSRF strategies (filled when present). */
    char *secret_name;
    char *auth_url;
    char *csrf_url;
    char *client_id;
    char *client_secret;
    char *crt_pem;
    char *key_pem;
    /* OAuth / OAuthWithCert: the credentials Secret's optional "headers" / "queryParameters"
     * (§3), applied to the token request only. */
    gw_kv_t *token_headers;
    size_t ntoken_headers;
    gw_kv_t *token_query;
    size_t ntoken_query;
    gw_token_auth_t token_auth;
    /* Cache keys of fetched credentials (auth/creds.h): SHA-256 over everything that decides
     * the value, so changed Secrets never meet tokens fetched with the old ones. */
    uint8_t token_key[32];   /* OAuth / OAuthWithCert */
    uint8_t csrf_key[32];    /* csrf_url set: endpoint + credential identity (§6.5 [better]) */
    /* CertificateGen: the client identity for the upstream TLS connection, parsed once at
     * build time and shared by the workers; NULL otherwise. */
    struct gw_tls_ctx_s *tls_ctx;
    /* Where /metrics counts this API's requests (app/service) and its upstream connections
     * (host); held by the snapshot (core/series.h). */
    struct gw_series_s *series;
    struct gw_series_s *host_series;
} gw_api_t;

typedef struct gw_snapshot_s gw_snapshot_t;

typedef enum {
    GW_ROUTE_FOUND = 0,
    GW_ROUTE_NOT_FOUND,  /* 404 */
    GW_ROUTE_AMBIGUOUS,  /* 400 */
} gw_route_kind_t;

typedef struct {
    gw_route_kind_t kind;
    const gw_api_t *api;  /* GW_ROUTE_FOUND: valid while the snapshot is referenced */
    const char *error;    /* GW_ROUTE_AMBIGUOUS: full error text, e.g. "failed to get service
                             with name 'x': multiple services found: ..."; valid likewise */
} gw_route_t;

/* Looks up the API for a request. service and entry are the raw path segments; entry is
 * NULL on the standalone port (8080). Compares them byte for byte with the normalised
 * displayName / entry name (§4); entries whose type is not "API" never match. One hash
 * lookup; never allocates. */
void gw_snapshot_lookup(const gw_snapshot_t *s, gw_str_t app, gw_str_t service, const gw_str_t *entry,
                        gw_route_t *out);

/* Builds a snapshot from decoded objects: apps are Application objects, secrets are Secret
 * objects (already filtered to the secrets namespace), each a jansson object as found in a
 * manifest. Problems with a single Application/entry never fail the build: they end up as
 * per-API errors (gw_api_t.error) or are skipped with a log line. Returns a snapshot with
 * one reference held by the caller; never NULL. Does not steal references to the json. */
gw_snapshot_t *gw_snapshot_build(json_t *const *apps, size_t napps, json_t *const *secrets,
                                 size_t nsecrets, const char *secrets_namespace);

/* An empty snapshot (every lookup is 404). One reference for the caller. */
gw_snapshot_t *gw_snapshot_empty(void);

/* Reference counting; thread-safe (atomic). The last unref frees everything. */
gw_snapshot_t *gw_snapshot_ref(gw_snapshot_t *s);
void gw_snapshot_unref(gw_snapshot_t *s);

/* The i-th API (i < gw_snapshot_api_count), in no particular order; valid while s is. */
const gw_api_t *gw_snapshot_api(const gw_snapshot_t *s, size_t i);

/* True when requests to api need a fetched OAuth token (unless the caller sends Access-Token). */
static inline bool gw_api_needs_token(const gw_api_t *api)
{
    return api->cred_type == GW_CRED_OAUTH || api->cred_type == GW_CRED_OAUTH_CERT;
}

/* Marks a snapshot (before it is published) as built from objects fetched on demand
 * (registry/ondemand.h): a request for an Application it lacks waits for a fetch instead of
 * answering 404 at once. */
void gw_snapshot_set_on_demand(gw_snapshot_t *s);
bool gw_snapshot_on_demand(const gw_snapshot_t *s);

/* Monotonic build number, for logs and metrics. */
uint64_t gw_snapshot_generation(const gw_snapshot_t *s);
size_t gw_snapshot_api_count(const gw_snapshot_t *s);
/* Applications and Secrets the snapshot was built from. */
size_t gw_snapshot_app_count(const gw_snapshot_t *s);
size_t gw_snapshot_secret_count(const gw_snapshot_t *s);

/* §4 name normalisation: writes into out (at least 58 bytes), returns its length. */
size_t gw_normalise_name(const char *in, char *out);

#endif
