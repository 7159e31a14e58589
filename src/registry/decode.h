/* decode.h: manifest decoding: YAML (multi-document) or JSON bytes -> Kubernetes objects with
 * their source lines, and the checks that keep Applications and Secrets and drop the rest.
 * Not for: reading files (source_files.h) or building routes (snapshot.h). */
#ifndef GW_REGISTRY_DECODE_H
#define GW_REGISTRY_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define GW_MANIFEST_MAX_DEPTH 64        /* nested mappings/sequences, aliases expanded */
#define GW_MANIFEST_MAX_NODES 1000000   /* nodes per input, aliases counted expanded */

#define GW_MANIFEST_API_VERSION "applicationconnector.kyma-project.io/v1alpha1"

typedef enum {
    GW_MANIFEST_YAML = 0,
    GW_MANIFEST_JSON,
} gw_manifest_format_t;

/* Why an input was refused. line is 1-based within the input; 0 when there is no position. */
typedef struct {
    int line;
    char reason[256];
} gw_manifest_error_t;

/* One decoded Kubernetes object. */
typedef struct {
    json_t *obj;  /* one reference owned by the list */
    int line;     /* first line of the object (YAML: its first key; JSON: its '{') */
} gw_manifest_obj_t;

/* Zeroed memory is a valid empty list. */
typedef struct {
    gw_manifest_obj_t *v;
    size_t n, cap;
} gw_manifest_list_t;

typedef enum {
    GW_MANIFEST_IGNORED = 0,  /* another kind, or a Secret of another namespace */
    GW_MANIFEST_APPLICATION,
    GW_MANIFEST_SECRET,
} gw_manifest_kind_t;

/* The Applications and Secrets of one input, in input order; references owned here.
 * Zeroed memory is a valid empty set. */
typedef struct {
    json_t **apps;
    size_t napps;
    json_t **secrets;
    size_t nsecrets;
} gw_manifest_set_t;

/* Decodes data (len bytes, need not be NUL-terminated). YAML: every non-empty document must be
 * a mapping; JSON: exactly one object. A kind "List" object is replaced by its items, each
 * with its own line. Objects are appended to out (which may already hold objects).
 * Returns 0, or GW_EINVAL with err filled; on failure out is left as it was. */
int gw_manifest_decode(const char *data, size_t len, gw_manifest_format_t fmt, gw_manifest_list_t *out,
                       gw_manifest_error_t *err);
void gw_manifest_list_free(gw_manifest_list_t *l);

/* Tells what obj is and checks the fields the gateway reads: Applications need
 * apiVersion GW_MANIFEST_API_VERSION, kind Application, metadata.name and well-typed spec
 * fields; Secrets need apiVersion v1, kind Secret, metadata.name, string values in data and
 * stringData, valid base64 in data. A Secret whose metadata.namespace is set and differs from
 * secrets_namespace is GW_MANIFEST_IGNORED (unchecked). line is reported in err.
 * Returns 0 with *kind set, or GW_EINVAL with err filled (never with secret values). */
int gw_manifest_classify(const json_t *obj, int line, const char *secrets_namespace, gw_manifest_kind_t *kind,
                         gw_manifest_error_t *err);

/* Decode + classify in one step: all-or-nothing for the input. Fills out (must be empty) with
 * new references. Returns 0, or GW_EINVAL with err filled and out left empty. */
int gw_manifest_load(const char *data, size_t len, gw_manifest_format_t fmt, const char *secrets_namespace,
                     gw_manifest_set_t *out, gw_manifest_error_t *err);
void gw_manifest_set_free(gw_manifest_set_t *s);

/* Format from a file name: ".json" -> JSON, ".yaml"/".yml" -> YAML. Returns 0, or GW_EINVAL
 * for any other name. */
int gw_manifest_format_for_path(const char *path, gw_manifest_format_t *fmt);

/* "line N: reason" (or just reason when line is 0) into buf; returns buf. */
const char *gw_manifest_error_text(const gw_manifest_error_t *err, char *buf, size_t n);

/* Value of key in a Secret object: stringData wins over (base64) data. On success *out is a
 * new NUL-terminated allocation (caller frees) of *outlen bytes (may contain NUL bytes).
 * Returns 0, GW_ENOENT when neither has the key, GW_EINVAL for bad base64. */
int gw_manifest_secret_value(const json_t *secret, const char *key, char **out, size_t *outlen);

/* Standard base64 with padding. encode writes 4*((n+2)/3) chars plus NUL into out and returns
 * the length. decode ignores CR/LF, needs padding, writes at most 3*(n/4)+3 bytes to out;
 * returns 0 with *outn set, or GW_EINVAL. */
size_t gw_manifest_b64encode(const void *in, size_t n, char *out);
int gw_manifest_b64decode(const char *in, size_t n, unsigned char *out, size_t *outn);

#endif
