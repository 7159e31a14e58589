/* decode.c: YAML/JSON manifest bytes -> jansson Kubernetes objects with lines, and the type
 * checks for Applications and Secrets. Not for: file handling or route building; it never
 * logs (callers decide), and never puts Secret values into error texts. */
#include "registry/decode.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util/alloc.h"
#include "util/common.h"

static int set_err(gw_manifest_error_t *err, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int set_err(gw_manifest_error_t *err, int line, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->line = line;
        vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
        va_end(ap);
    }
    return GW_EINVAL;
}

const char *gw_manifest_error_text(const gw_manifest_error_t *err, char *buf, size_t n)
{
    if (err->line > 0) snprintf(buf, n, "line %d: %s", err->line, err->reason);
    else snprintf(buf, n, "%s", err->reason);
    return buf;
}

int gw_manifest_format_for_path(const char *path, gw_manifest_format_t *fmt)
{
    size_t n = strlen(path);
    if (n >= 5 && strcmp(path + n - 5, ".json") == 0) { *fmt = GW_MANIFEST_JSON; return GW_OK; }
    if (n >= 5 && strcmp(path + n - 5, ".yaml") == 0) { *fmt = GW_MANIFEST_YAML; return GW_OK; }
    if (n >= 4 && strcmp(path + n - 4, ".yml") == 0) { *fmt = GW_MANIFEST_YAML; return GW_OK; }
    return GW_EINVAL;
}

/* ---- lists ---- */

static void list_push(gw_manifest_list_t *l, json_t *obj, int line)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = gw_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n].obj = obj;
    l->v[l->n].line = line;
    l->n++;
}

static void list_truncate(gw_manifest_list_t *l, size_t n)
{
    while (l->n > n) json_decref(l->v[--l->n].obj);
}

void gw_manifest_list_free(gw_manifest_list_t *l)
{
    list_truncate(l, 0);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Appends a top-level document value (reference stolen): objects as they are, kind List
 * expanded into its items. item_lines (n_lines of them) are the items' lines when known. */
static int emit_document(json_t *doc, int line, const int *item_lines, size_t n_lines, gw_manifest_list_t *out,
                         gw_manifest_error_t *err)
{
    if (json_is_null(doc)) { json_decref(doc); return GW_OK; }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return set_err(err, line, "a manifest must be a mapping of a Kubernetes object");
    }
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    if (!kind || strcmp(kind, "List") != 0) { list_push(out, doc, line); return GW_OK; }
    json_t *items = json_object_get(doc, "items");
    if (items && !json_is_null(items) && !json_is_array(items)) {
        json_decref(doc);
        return set_err(err, line, "List items must be a sequence");
    }
    size_t n = json_array_size(items);
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        int il = n_lines == n ? item_lines[i] : line;
        if (!json_is_object(it)) {
            json_decref(doc);
            return set_err(err, il, "List item %zu is not a mapping", i);
        }
        list_push(out, json_incref(it), il);
    }
    json_decref(doc);
    return GW_OK;
}

/* ---- YAML ---- */

typedef struct {
    char *name;
    json_t *value;   /* owned reference */
    size_t weight;   /* nodes, expanded */
    int height;      /* container levels below and including this node */
} yanchor_t;

typedef struct {
    json_t *node;    /* owned reference: object or array */
    bool is_map;
    bool have_key;
    bool key_merge;  /* pending key is the merge key "<<" */
    bool is_items;   /* the "items" sequence of the document's root mapping */
    char *key;
    size_t keylen;
    char *anchor;
    size_t weight;
    int height;
    int line;
    json_t *merges;  /* "<<" values waiting for the end of the mapping */
} yframe_t;

typedef struct {
    yframe_t stack[GW_MANIFEST_MAX_DEPTH];
    int depth;
    yanchor_t *anchors;
    size_t nanchors, capanchors;
    size_t nodes;
    json_t *root;
    int root_line;
    int *item_lines;
    size_t nitem_lines, capitem_lines;
    gw_manifest_error_t *err;
} ydec_t;

static void anchors_clear(ydec_t *y)
{
    for (size_t i = 0; i < y->nanchors; i++) {
        free(y->anchors[i].name);
        json_decref(y->anchors[i].value);
    }
    y->nanchors = 0;
}

static void anchor_add(ydec_t *y, const char *name, json_t *value, size_t weight, int height)
{
    if (!name) return;
    if (y->nanchors == y->capanchors) {
        y->capanchors = y->capanchors ? y->capanchors * 2 : 8;
        y->anchors = gw_realloc(y->anchors, y->capanchors * sizeof(*y->anchors));
    }
    yanchor_t *a = &y->anchors[y->nanchors++];
    a->name = gw_strdup(name);
    a->value = json_incref(value);
    a->weight = weight;
    a->height = height;
}

static const yanchor_t *anchor_find(const ydec_t *y, const char *name)
{
    for (size_t i = y->nanchors; i > 0; i--)
        if (strcmp(y->anchors[i - 1].name, name) == 0) return &y->anchors[i - 1];
    return NULL;
}

static void frame_clear(yframe_t *f)
{
    json_decref(f->node);
    json_decref(f->merges);
    free(f->key);
    free(f->anchor);
    memset(f, 0, sizeof(*f));
}

static int count_nodes(ydec_t *y, size_t n, int line)
{
    if (n > GW_MANIFEST_MAX_NODES || y->nodes + n > GW_MANIFEST_MAX_NODES)
        return set_err(y->err, line, "too many nodes (more than %d, aliases expanded)", GW_MANIFEST_MAX_NODES);
    y->nodes += n;
    return GW_OK;
}

/* Places a finished value (reference stolen) into the open container or as the root. */
static int ydec_value(ydec_t *y, json_t *v, size_t weight, int height, int line)
{
    if (y->depth == 0) {
        json_decref(y->root);
        y->root = v;
        y->root_line = line;
        return GW_OK;
    }
    yframe_t *f = &y->stack[y->depth - 1];
    if (y->depth + height > GW_MANIFEST_MAX_DEPTH) {
        json_decref(v);
        return set_err(y->err, line, "nesting deeper than %d levels", GW_MANIFEST_MAX_DEPTH);
    }
    f->weight += weight;
    if (height + 1 > f->height) f->height = height + 1;
    if (!f->is_map) {
        if (f->is_items) {
            if (y->nitem_lines == y->capitem_lines) {
                y->capitem_lines = y->capitem_lines ? y->capitem_lines * 2 : 16;
                y->item_lines = gw_realloc(y->item_lines, y->capitem_lines * sizeof(int));
            }
            y->item_lines[y->nitem_lines++] = line;
        }
        json_array_append_new(f->node, v);
        return GW_OK;
    }
    int rc = GW_OK;
    if (f->key_merge) {
        bool ok = json_is_object(v);
        if (json_is_array(v)) {
            ok = true;
            for (size_t i = 0; i < json_array_size(v); i++) ok = ok && json_is_object(json_array_get(v, i));
        }
        if (!ok) {
            json_decref(v);
            rc = set_err(y->err, line, "merge key '<<' needs a mapping or a sequence of mappings");
        } else {
            if (!f->merges) f->merges = json_array();
            json_array_append_new(f->merges, v);
        }
    } else if (json_object_setn_new(f->node, f->key, f->keylen, v) != 0) {
        rc = set_err(y->err, line, "invalid mapping key");
    }
    free(f->key);
    f->key = NULL;
    f->have_key = false;
    f->key_merge = false;
    return rc;
}

static bool all_digits(const char *s, size_t n, int base)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = base == 16 ? ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))
                             : (c >= '0' && c <= (base == 8 ? '7' : '9'));
        if (!ok) return false;
    }
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    }
    if (!digits) return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+')) i++;
        if (!all_digits(s + i, n - i, 10)) return false;
        i = n;
    }
    return i == n;
}

static bool str_in(const char *s, size_t n, const char *const *set)
{
    for (; *set; set++)
        if (strlen(*set) == n && memcmp(*set, s, n) == 0) return true;
    return false;
}

/* YAML 1.2 core schema resolution of a plain scalar (s is NUL-terminated). */
static json_t *resolve_plain(const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    if (str_in(s, n, nulls)) return json_null();
    if (str_in(s, n, trues)) return json_true();
    if (str_in(s, n, falses)) return json_false();
    size_t sign = (n && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    int base = 0;
    size_t skip = 0;
    if (all_digits(s + sign, n - sign, 10)) base = 10;
    else if (!sign && n > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16)) base = 16, skip = 2;
    else if (!sign && n > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8)) base = 8, skip = 2;
    if (base) {
        errno = 0;
        char *end = NULL;
        long long v = strtoll(s + skip, &end, base);
        if (errno == 0 && end == s + n) return json_integer((json_int_t)v);
        return json_stringn(s, n);
    }
    if (is_float(s, n)) {
        double d = strtod(s, NULL);
        if (isfinite(d)) return json_real(d);
    }
    return json_stringn(s, n);
}

static json_t *resolve_scalar(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0)) plain = false;
    return plain ? resolve_plain(s, n) : json_stringn(s, n);
}

static int ydec_scalar(ydec_t *y, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (memchr(s, '\0', n)) return set_err(y->err, line, "NUL character in scalar");
    if (count_nodes(y, 1, line)) return GW_EINVAL;
    const char *anchor = (const char *)ev->data.scalar.anchor;
    yframe_t *f = y->depth ? &y->stack[y->depth - 1] : NULL;
    if (f && f->is_map && !f->have_key) {
        if (json_object_getn(f->node, s, n)) return set_err(y->err, line, "duplicate mapping key '%.64s'", s);
        f->key_merge = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n == 2 && memcmp(s, "<<", 2) == 0;
        if (!f->key_merge) {
            f->key = gw_strndup(s, n);
            f->keylen = n;
        }
        f->have_key = true;
        if (anchor) {
            json_t *k = json_stringn(s, n);
            if (!k) return set_err(y->err, line, "invalid scalar");
            anchor_add(y, anchor, k, 1, 0);
            json_decref(k);
        }
        return GW_OK;
    }
    json_t *v = resolve_scalar(ev);
    if (!v) return set_err(y->err, line, "invalid scalar");
    anchor_add(y, anchor, v, 1, 0);
    return ydec_value(y, v, 1, 0, line);
}

static int ydec_alias(ydec_t *y, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    const yanchor_t *a = anchor_find(y, (const char *)ev->data.alias.anchor);
    if (!a) return set_err(y->err, line, "unknown alias '%.64s'", (const char *)ev->data.alias.anchor);
    yframe_t *f = y->depth ? &y->stack[y->depth - 1] : NULL;
    if (f && f->is_map && !f->have_key) return set_err(y->err, line, "aliases as mapping keys are not supported");
    if (count_nodes(y, a->weight, line)) return GW_EINVAL;
    return ydec_value(y, json_incref(a->value), a->weight, a->height, line);
}

static int ydec_start(ydec_t *y, const yaml_event_t *ev, bool is_map)
{
    int line = (int)ev->start_mark.line + 1;
    yframe_t *parent = y->depth ? &y->stack[y->depth - 1] : NULL;
    if (parent && parent->is_map && !parent->have_key)
        return set_err(y->err, line, "complex mapping keys are not supported");
    if (y->depth == GW_MANIFEST_MAX_DEPTH)
        return set_err(y->err, line, "nesting deeper than %d levels", GW_MANIFEST_MAX_DEPTH);
    if (count_nodes(y, 1, line)) return GW_EINVAL;
    const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    yframe_t *f = &y->stack[y->depth++];
    memset(f, 0, sizeof(*f));
    f->node = is_map ? json_object() : json_array();
    f->is_map = is_map;
    f->weight = 1;
    f->height = 1;
    f->line = line;
    f->anchor = anchor ? gw_strdup((const char *)anchor) : NULL;
    if (!is_map && y->depth == 2 && parent->key && strcmp(parent->key, "items") == 0) {
        f->is_items = true;
        y->nitem_lines = 0;
    }
    return GW_OK;
}

static void apply_merge(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v) {
        if (!json_object_get(dst, k)) json_object_set(dst, k, v);
    }
}

static int ydec_end(ydec_t *y)
{
    yframe_t f = y->stack[--y->depth];
    memset(&y->stack[y->depth], 0, sizeof(yframe_t));
    if (f.merges) {
        for (size_t i = 0; i < json_array_size(f.merges); i++) {
            json_t *m = json_array_get(f.merges, i);
            if (json_is_object(m)) apply_merge(f.node, m);
            for (size_t j = 0; json_is_array(m) && j < json_array_size(m); j++)
                apply_merge(f.node, json_array_get(m, j));
        }
    }
    json_t *v = f.node;
    f.node = NULL;
    if (f.anchor) anchor_add(y, f.anchor, v, f.weight, f.height);
    int rc = ydec_value(y, v, f.weight, f.height, f.line);
    frame_clear(&f);
    return rc;
}

static int yaml_error_line(const yaml_parser_t *p, const char *data, size_t len)
{
    if (p->error == YAML_READER_ERROR) {
        int line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++)
            if (data[i] == '\n') line++;
        return line;
    }
    return (int)p->problem_mark.line + 1;
}

static int ydec_event(ydec_t *y, const yaml_event_t *ev, gw_manifest_list_t *out)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        anchors_clear(y);
        y->nitem_lines = 0;
        return GW_OK;
    case YAML_DOCUMENT_END_EVENT: {
        json_t *doc = y->root;
        y->root = NULL;
        anchors_clear(y);
        if (!doc) return GW_OK;
        return emit_document(doc, y->root_line, y->item_lines, y->nitem_lines, out, y->err);
    }
    case YAML_MAPPING_START_EVENT: return ydec_start(y, ev, true);
    case YAML_SEQUENCE_START_EVENT: return ydec_start(y, ev, false);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT: return ydec_end(y);
    case YAML_SCALAR_EVENT: return ydec_scalar(y, ev);
    case YAML_ALIAS_EVENT: return ydec_alias(y, ev);
    default: return GW_OK;
    }
}

static int decode_yaml(const char *data, size_t len, gw_manifest_list_t *out, gw_manifest_error_t *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return set_err(err, 0, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    ydec_t *y = gw_calloc(1, sizeof(*y));
    y->err = err;
    int rc = GW_OK;
    for (bool done = false; !done && rc == GW_OK;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = set_err(err, yaml_error_line(&p, data, len), "%s",
                         p.problem ? p.problem : "invalid YAML");
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = ydec_event(y, &ev, out);
        yaml_event_delete(&ev);
    }
    while (y->depth) frame_clear(&y->stack[--y->depth]);
    anchors_clear(y);
    free(y->anchors);
    free(y->item_lines);
    json_decref(y->root);
    free(y);
    yaml_parser_delete(&p);
    return rc;
}

/* ---- JSON ---- */

static int json_limits(const json_t *v, int depth, size_t *nodes)
{
    if (++*nodes > GW_MANIFEST_MAX_NODES) return GW_E2BIG;
    if (!json_is_object(v) && !json_is_array(v)) return GW_OK;
    if (depth > GW_MANIFEST_MAX_DEPTH) return GW_ERANGE;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int rc = json_limits(json_array_get(v, i), depth + 1, nodes);
            if (rc) return rc;
        }
        return GW_OK;
    }
    const char *k;
    json_t *c;
    json_object_foreach((json_t *)v, k, c) {
        int rc = json_limits(c, depth + 1, nodes);
        if (rc) return rc;
    }
    return GW_OK;
}

/* Skips a JSON string starting at p[i] == '"'; returns the index after the closing quote. */
static size_t json_skip_string(const char *p, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\') i++;
        else if (p[i] == '"') return i + 1;
    }
    return n;
}

/* Lines of the elements of the root object's "items" array, found by a light scan of text
 * jansson already accepted (so duplicates are impossible). Returns the number found. */
static size_t json_item_lines(const char *p, size_t n, int **lines)
{
    size_t cnt = 0, cap = 0;
    int line = 1, depth = 0;
    bool want_items = false, in_items = false, expect = false;
    *lines = NULL;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\n') line++;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ':') { i++; continue; }
        bool starts_value = c != ',' && c != '}' && c != ']';
        if (in_items && depth == 2 && expect && starts_value) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                *lines = gw_realloc(*lines, cap * sizeof(int));
            }
            (*lines)[cnt++] = line;
            expect = false;
        }
        if (c == '"') {
            size_t j = json_skip_string(p, n, i);
            if (depth == 1 && j - i == 7 && memcmp(p + i, "\"items\"", 7) == 0) {
                size_t k = j;
                while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n')) k++;
                want_items = k < n && p[k] == ':';
            } else if (depth == 1) {
                want_items = false;
            }
            for (size_t k = i; k < j; k++)
                if (p[k] == '\n') line++;
            i = j;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
            if (c == '[' && depth == 2 && want_items) in_items = expect = true;
            want_items = false;
        } else if (c == '}' || c == ']') {
            if (in_items && depth == 2) return cnt;
            depth--;
        } else if (c == ',') {
            if (in_items && depth == 2) expect = true;
        } else if (depth == 1) {
            want_items = false;
        }
        i++;
    }
    return cnt;
}

static int decode_json(const char *data, size_t len, gw_manifest_list_t *out, gw_manifest_error_t *err)
{
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) { data += 3; len -= 3; }
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        /* jansson quotes the offending token ("... near 'x'"): it may be part of a secret */
        char *near = strstr(je.text, " near ");
        if (near) *near = '\0';
        return set_err(err, je.line > 0 ? je.line : 0, "%s", je.text);
    }
    size_t nodes = 0;
    int lrc = json_limits(root, 1, &nodes);
    if (lrc) {
        json_decref(root);
        if (lrc == GW_E2BIG) return set_err(err, 0, "too many nodes (more than %d)", GW_MANIFEST_MAX_NODES);
        return set_err(err, 0, "nesting deeper than %d levels", GW_MANIFEST_MAX_DEPTH);
    }
    int line = 1;
    for (size_t i = 0; i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'); i++)
        if (data[i] == '\n') line++;
    int *lines = NULL;
    size_t nlines = 0;
    const char *kind = json_string_value(json_object_get(root, "kind"));
    if (kind && strcmp(kind, "List") == 0) nlines = json_item_lines(data, len, &lines);
    int rc = emit_document(root, line, lines, nlines, out, err);
    free(lines);
    return rc;
}

int gw_manifest_decode(const char *data, size_t len, gw_manifest_format_t fmt, gw_manifest_list_t *out,
                       gw_manifest_error_t *err)
{
    size_t before = out->n;
    int rc = fmt == GW_MANIFEST_JSON ? decode_json(data, len, out, err) : decode_yaml(data, len, out, err);
    if (rc) list_truncate(out, before);
    return rc;
}

/* ---- base64 ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t gw_manifest_b64encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = b64chars[(v >> 6) & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int gw_manifest_b64decode(const char *in, size_t n, unsigned char *out, size_t *outn)
{
    unsigned char q[4];
    int qn = 0;
    bool done = false;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r' || c == '\n') continue;
        if (done) return GW_EINVAL;
        q[qn++] = c;
        if (qn < 4) continue;
        qn = 0;
        int a = b64val(q[0]), b = b64val(q[1]);
        if (a < 0 || b < 0) return GW_EINVAL;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        if (q[2] == '=') {
            if (q[3] != '=') return GW_EINVAL;
            done = true;
            continue;
        }
        int c2 = b64val(q[2]);
        if (c2 < 0) return GW_EINVAL;
        out[o++] = (unsigned char)((b & 15) << 4 | c2 >> 2);
        if (q[3] == '=') { done = true; continue; }
        int d = b64val(q[3]);
        if (d < 0) return GW_EINVAL;
        out[o++] = (unsigned char)((c2 & 3) << 6 | d);
    }
    if (qn) return GW_EINVAL;
    *outn = o;
    return GW_OK;
}

int gw_manifest_secret_value(const json_t *secret, const char *key, char **out, size_t *outlen)
{
    const json_t *v = json_object_get(json_object_get(secret, "stringData"), key);
    if (json_is_string(v)) {
        *outlen = json_string_length(v);
        *out = gw_strndup(json_string_value(v), *outlen);
        return GW_OK;
    }
    v = json_object_get(json_object_get(secret, "data"), key);
    if (!json_is_string(v)) return GW_ENOENT;
    size_t n = json_string_length(v);
    unsigned char *buf = gw_malloc(n / 4 * 3 + 4);
    size_t bn = 0;
    if (gw_manifest_b64decode(json_string_value(v), n, buf, &bn) != GW_OK) {
        free(buf);
        return GW_EINVAL;
    }
    buf[bn] = '\0';
    *out = (char *)buf;
    *outlen = bn;
    return GW_OK;
}

/* ---- classification ---- */

/* Field check: absent or null is fine; otherwise the type must match. */
static bool opt_type(const json_t *o, const char *key, json_type t)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (t == JSON_TRUE) return json_is_boolean(v);
    return json_typeof(v) == t;
}

static int check_fields(const json_t *o, const char *const *keys, json_type t, const char *what, int line,
                        gw_manifest_error_t *err, const char *where)
{
    for (; *keys; keys++) {
        if (!opt_type(o, *keys, t)) return set_err(err, line, "%s: %s%s must be %s", what, where, *keys,
                                                  t == JSON_STRING ? "a string" : t == JSON_TRUE ? "a boolean"
                                                  : t == JSON_ARRAY ? "a sequence" : "a mapping");
    }
    return GW_OK;
}

static int check_entry(const json_t *e, const char *what, int line, gw_manifest_error_t *err, const char *where)
{
    static const char *const strs[] = {"type", "name", "targetUrl", "requestParametersSecretName", "id", NULL};
    static const char *const objs[] = {"credentials", NULL};
    static const char *const cstrs[] = {"type", "secretName", "authenticationUrl", NULL};
    static const char *const cobjs[] = {"csrfInfo", NULL};
    static const char *const csrf[] = {"tokenEndpointURL", NULL};
    char w[128];
    if (check_fields(e, strs, JSON_STRING, what, line, err, where)) return GW_EINVAL;
    if (check_fields(e, objs, JSON_OBJECT, what, line, err, where)) return GW_EINVAL;
    const json_t *c = json_object_get(e, "credentials");
    snprintf(w, sizeof(w), "%scredentials.", where);
    if (check_fields(c, cstrs, JSON_STRING, what, line, err, w)) return GW_EINVAL;
    if (check_fields(c, cobjs, JSON_OBJECT, what, line, err, w)) return GW_EINVAL;
    snprintf(w, sizeof(w), "%scredentials.csrfInfo.", where);
    return check_fields(json_object_get(c, "csrfInfo"), csrf, JSON_STRING, what, line, err, w);
}

static int check_application(const json_t *obj, const char *name, int line, gw_manifest_error_t *err)
{
    static const char *const specbools[] = {"skipVerify", "encodeUrl", NULL};
    static const char *const specarrs[] = {"services", NULL};
    static const char *const svcstrs[] = {"id", "name", "displayName", "description", NULL};
    static const char *const svcarrs[] = {"entries", NULL};
    char what[128], where[96];
    snprintf(what, sizeof(what), "Application %.80s", name);
    const json_t *spec = json_object_get(obj, "spec");
    if (spec && !json_is_null(spec) && !json_is_object(spec)) return set_err(err, line, "%s: spec must be a mapping", what);
    if (check_fields(spec, specbools, JSON_TRUE, what, line, err, "spec.")) return GW_EINVAL;
    if (check_fields(spec, specarrs, JSON_ARRAY, what, line, err, "spec.")) return GW_EINVAL;
    const json_t *svcs = json_object_get(spec, "services");
    for (size_t i = 0; i < json_array_size(svcs); i++) {
        const json_t *s = json_array_get(svcs, i);
        snprintf(where, sizeof(where), "spec.services[%zu]", i);
        if (!json_is_object(s)) return set_err(err, line, "%s: %s must be a mapping", what, where);
        snprintf(where, sizeof(where), "spec.services[%zu].", i);
        if (check_fields(s, svcstrs, JSON_STRING, what, line, err, where)) return GW_EINVAL;
        if (check_fields(s, svcarrs, JSON_ARRAY, what, line, err, where)) return GW_EINVAL;
        const json_t *ents = json_object_get(s, "entries");
        for (size_t j = 0; j < json_array_size(ents); j++) {
            const json_t *e = json_array_get(ents, j);
            snprintf(where, sizeof(where), "spec.services[%zu].entries[%zu]", i, j);
            if (!json_is_object(e)) return set_err(err, line, "%s: %s must be a mapping", what, where);
            snprintf(where, sizeof(where), "spec.services[%zu].entries[%zu].", i, j);
            if (check_entry(e, what, line, err, where)) return GW_EINVAL;
        }
    }
    return GW_OK;
}

static int check_secret(const json_t *obj, const char *ns, const char *name, int line, gw_manifest_error_t *err)
{
    char what[192];
    snprintf(what, sizeof(what), "Secret %.64s/%.80s", ns, name);
    static const char *const maps[] = {"data", "stringData", NULL};
    for (const char *const *m = maps; *m; m++) {
        const json_t *d = json_object_get(obj, *m);
        if (!d || json_is_null(d)) continue;
        if (!json_is_object(d)) return set_err(err, line, "%s: %s must be a mapping", what, *m);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)d, k, v) {
            if (json_is_null(v)) continue;
            if (!json_is_string(v)) return set_err(err, line, "%s: %s.%.64s must be a string", what, *m, k);
            if (strcmp(*m, "data") != 0) continue;
            size_t n = json_string_length(v), bn;
            unsigned char *buf = gw_malloc(n / 4 * 3 + 4);
            int rc = gw_manifest_b64decode(json_string_value(v), n, buf, &bn);
            free(buf);
            if (rc) return set_err(err, line, "%s: data.%.64s is not valid base64", what, k);
        }
    }
    return GW_OK;
}

int gw_manifest_classify(const json_t *obj, int line, const char *secrets_namespace, gw_manifest_kind_t *kind,
                         gw_manifest_error_t *err)
{
    *kind = GW_MANIFEST_IGNORED;
    const char *api = json_string_value(json_object_get(obj, "apiVersion"));
    const char *k = json_string_value(json_object_get(obj, "kind"));
    if (!api || !k) return GW_OK;
    bool is_app = strcmp(k, "Application") == 0 && strcmp(api, GW_MANIFEST_API_VERSION) == 0;
    bool is_secret = strcmp(k, "Secret") == 0 && strcmp(api, "v1") == 0;
    if (!is_app && !is_secret) return GW_OK;
    const json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) return set_err(err, line, "%s has no metadata", k);
    const json_t *nsv = json_object_get(md, "namespace");
    if (is_secret && json_is_string(nsv) && json_string_length(nsv) &&
        strcmp(json_string_value(nsv), secrets_namespace) != 0)
        return GW_OK;
    const json_t *namev = json_object_get(md, "name");
    if (!json_is_string(namev) || json_string_length(namev) == 0)
        return set_err(err, line, "%s has no metadata.name", k);
    const char *name = json_string_value(namev);
    if (is_app) {
        if (check_application(obj, name, line, err)) return GW_EINVAL;
        *kind = GW_MANIFEST_APPLICATION;
    } else {
        if (check_secret(obj, secrets_namespace, name, line, err)) return GW_EINVAL;
        *kind = GW_MANIFEST_SECRET;
    }
    return GW_OK;
}

static void set_push(json_t ***v, size_t *n, json_t *obj)
{
    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) *v = gw_realloc(*v, (*n ? *n * 2 : 4) * sizeof(**v));
    (*v)[(*n)++] = json_incref(obj);
}

void gw_manifest_set_free(gw_manifest_set_t *s)
{
    for (size_t i = 0; i < s->napps; i++) json_decref(s->apps[i]);
    for (size_t i = 0; i < s->nsecrets; i++) json_decref(s->secrets[i]);
    free(s->apps);
    free(s->secrets);
    memset(s, 0, sizeof(*s));
}

int gw_manifest_load(const char *data, size_t len, gw_manifest_format_t fmt, const char *secrets_namespace,
                     gw_manifest_set_t *out, gw_manifest_error_t *err)
{
    gw_manifest_list_t l = {0};
    int rc = gw_manifest_decode(data, len, fmt, &l, err);
    for (size_t i = 0; rc == GW_OK && i < l.n; i++) {
        gw_manifest_kind_t kind;
        rc = gw_manifest_classify(l.v[i].obj, l.v[i].line, secrets_namespace, &kind, err);
        if (rc == GW_OK && kind == GW_MANIFEST_APPLICATION) set_push(&out->apps, &out->napps, l.v[i].obj);
        if (rc == GW_OK && kind == GW_MANIFEST_SECRET) set_push(&out->secrets, &out->nsecrets, l.v[i].obj);
    }
    gw_manifest_list_free(&l);
    if (rc) gw_manifest_set_free(out);
    return rc;
}
