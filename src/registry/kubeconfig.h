/* kubeconfig.h: how to reach and authenticate to a Kubernetes API server: a kubeconfig file's
 * current (or named) context resolved to one server, CA and credential, or the in-cluster
 * service-account configuration. Pure reading and checking (files are read, nothing is
 * connected, nothing is logged); not for: TLS setup, token rotation or HTTP (the caller). */
#ifndef GW_REGISTRY_KUBECONFIG_H
#define GW_REGISTRY_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Largest file read for a kubeconfig, a CA bundle, a client certificate or key, a token. */
#define GW_KUBECONFIG_MAX_FILE (4u << 20)

/* Default directory of the in-cluster service-account files. */
#define GW_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* How to reach and authenticate to a Kubernetes API server. All strings malloc'd
 * (NUL-terminated, never empty) or NULL; the struct owns them. Zeroed memory is a valid
 * empty value, which gw_kube_conn_free accepts. */
typedef struct {
    char *server;            /* "https://host:port[/prefix]" (trailing '/' removed); http only when said */
    char *ca_pem;            /* CA bundle (certificate-authority-data decoded, or the file's content) */
    bool insecure;           /* insecure-skip-tls-verify (ca_pem may still be set) */
    char *crt_pem, *key_pem; /* client certificate and key (...-data decoded, or files read); both or none */
    char *token;             /* static bearer token (user.token) */
    char *token_file;        /* user.tokenFile or the service-account token path: re-read by the caller */
    char *namespace_;        /* context namespace or in-cluster namespace file content, or NULL */
} gw_kube_conn_t;

/* Parses kubeconfig text (YAML or JSON; text need not be NUL-terminated, it is only read) and
 * resolves `context` (NULL or "": current-context) to its cluster and user, as client-go does:
 * ...-data fields win over their file fields; relative file paths (certificate-authority,
 * client-certificate, client-key, tokenFile) are resolved against base_dir (NULL: the current
 * directory) and read now (regular files of at most GW_KUBECONFIG_MAX_FILE bytes), except
 * tokenFile, which is only recorded (its path, made absolute when base_dir is). When both token
 * and tokenFile are set both are returned; client-go then prefers the file's last good content.
 * A context without user means no credentials. A server without scheme gets "https://".
 * Refused with GW_EINVAL and a clear message: unsupported user kinds (exec, auth-provider,
 * username/password, impersonation "as..."), cluster proxy-url and tls-server-name, a server
 * that is not an http(s) URL or carries user information, a query or a fragment, a certificate
 * without key (or the reverse), bad base64, tokens with control characters, missing or
 * duplicate context/cluster/user, fields of the wrong type.
 * Returns 0 with *out filled (caller frees with gw_kube_conn_free). On failure *out is zeroed
 * and err (when errlen > 0) holds one line like "kubeconfig: context \"x\" not found": names
 * are quoted with control characters replaced, secret values (tokens, keys) never appear. */
int gw_kubeconfig_parse(const char *text, size_t len, const char *base_dir, const char *context,
                        gw_kube_conn_t *out, char *err, size_t errlen);

/* Reads the file at path and parses it (base_dir = the file's directory). Same results and
 * ownership as gw_kubeconfig_parse; an unreadable file is GW_EINVAL ("kubeconfig: cannot read
 * \"path\": reason"). The text buffer is wiped before it is freed. */
int gw_kubeconfig_load(const char *path, const char *context, gw_kube_conn_t *out, char *err, size_t errlen);

/* In-cluster configuration, as client-go's InClusterConfig: server
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (IPv6 hosts bracketed), ca_pem from
 * sa_dir/ca.crt, token_file = sa_dir/token (must exist and be readable; its content is not
 * kept), namespace_ from sa_dir/namespace (trimmed) if present and not empty.
 * sa_dir NULL = GW_KUBE_SA_DIR.
 * Returns 0 with *out filled (caller frees with gw_kube_conn_free); GW_ENOENT when the two
 * environment variables are not both set and non-empty; GW_EINVAL when the host or port is
 * malformed or token or ca.crt is missing/unreadable/empty. On failure *out is zeroed and err
 * (when errlen > 0) holds one line starting "in-cluster config: ". */
int gw_kube_incluster(const char *sa_dir, gw_kube_conn_t *out, char *err, size_t errlen);

/* Frees every string of c, wiping token and key memory first, and zeroes c. Safe on a zeroed
 * or already freed struct; c itself stays the caller's. */
void gw_kube_conn_free(gw_kube_conn_t *c);

#endif
