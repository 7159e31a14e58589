/* rewrite.c: the pure path/query/header/Location rewriting rules of SPEC §1, §5 and §7; no I/O,
 * no routing, every result appended to a capped buffer (restored to its old length on failure). */
#include "gateway/rewrite.h"

#include "util/common.h"
#include "util/url.h"

/* ---------- small helpers ---------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes one byte at p[*i] (a valid "%XX" escape, or the byte itself; with plus, '+' is a
 * space) and advances *i past it. */
static unsigned char decode_next(const char *p, size_t n, size_t *i, bool plus)
{
    unsigned char c = (unsigned char)p[*i];
    if (c == '%' && n - *i >= 3) {
        int h = hexval((unsigned char)p[*i + 1]), l = hexval((unsigned char)p[*i + 2]);
        if (h >= 0 && l >= 0) {
            *i += 3;
            return (unsigned char)(h << 4 | l);
        }
    }
    (*i)++;
    return plus && c == '+' ? ' ' : c;
}

/* Undoes a partial append so a failing function leaves the buffer as it found it. */
static int rollback(gw_buf_t *out, size_t len, int rc)
{
    out->len = len;
    if (out->base) out->base[len] = '\0';
    return rc;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* §5.2: bytes that stay literal in a re-encoded path (Go's encodePath set). */
static bool path_literal(unsigned char c)
{
    return is_unreserved(c) || (c && strchr("$&+,/:;=@", c) != NULL);
}

static const char hexdig[] = "0123456789ABCDEF";

static int append_escaped_byte(gw_buf_t *out, unsigned char c)
{
    char e[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};
    return gw_buf_append(out, e, 3);
}

/* ---------- §1 path splitting ---------- */

int gw_split_gateway_path(gw_str_t path, int nseg, gw_str_t seg[3], gw_str_t *rest)
{
    if (nseg < 1 || nseg > 3) return GW_EINVAL;
    const char *p = path.p, *end = path.p + path.n;
    while (p < end && *p == '/') p++;
    while (end > p && end[-1] == '/') end--;
    /* like Go's strings.Split, "" (and so "/") is one empty segment */
    bool more = true;
    for (int i = 0; i < nseg; i++) {
        if (!more) return GW_EINVAL;
        const char *s = p < end ? memchr(p, '/', (size_t)(end - p)) : NULL;
        seg[i] = (gw_str_t){p, (size_t)((s ? s : end) - p)};
        more = s != NULL;
        p = s ? s + 1 : end;
    }
    *rest = (gw_str_t){p, (size_t)(end - p)};
    return GW_OK;
}

int gw_split_target(gw_str_t target, gw_str_t *path, gw_str_t *query, bool *has_query)
{
    /* absolute-form (RFC 9112 §3.2.2): servers must accept it; only its path and query count. */
    size_t skip = 0;
    if (target.n >= 7 && strncasecmp(target.p, "http://", 7) == 0) skip = 7;
    else if (target.n >= 8 && strncasecmp(target.p, "https://", 8) == 0) skip = 8;
    if (skip) {
        const char *slash = memchr(target.p + skip, '/', target.n - skip);
        const char *qm = memchr(target.p + skip, '?', target.n - skip);
        if (!slash || (qm && qm < slash)) return GW_EINVAL; /* no path: nothing to route on */
        target.n -= (size_t)(slash - target.p);
        target.p = slash;
    }
    if (target.n == 0 || target.p[0] != '/') return GW_EINVAL;
    const char *q = memchr(target.p, '?', target.n);
    *has_query = q != NULL;
    if (q) {
        *path = (gw_str_t){target.p, (size_t)(q - target.p)};
        *query = (gw_str_t){q + 1, target.n - (size_t)(q - target.p) - 1};
    } else {
        *path = target;
        *query = (gw_str_t){target.p + target.n, 0};
    }
    return GW_OK;
}

/* ---------- §5.1 / §5.2 upstream path ---------- */

int gw_append_path_encoded(gw_buf_t *out, const char *p, size_t n)
{
    size_t len0 = out->len, run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (path_literal(c)) {
            run++;
            continue;
        }
        if ((run && gw_buf_append(out, p + i - run, run)) || append_escaped_byte(out, c))
            return rollback(out, len0, GW_ENOMEM);
        run = 0;
    }
    if (run && gw_buf_append(out, p + n - run, run)) return rollback(out, len0, GW_ENOMEM);
    return GW_OK;
}

int gw_append_percent_decoded(gw_buf_t *out, const char *p, size_t n)
{
    size_t len0 = out->len, i = 0;
    char chunk[256];
    while (i < n) {
        size_t o = 0;
        while (i < n && o < sizeof(chunk)) chunk[o++] = (char)decode_next(p, n, &i, false);
        if (gw_buf_append(out, chunk, o)) return rollback(out, len0, GW_ENOMEM);
    }
    return GW_OK;
}

/* Decodes p[from..n) and re-encodes it on the fly (no temporary copy). */
static int append_decoded_encoded(gw_buf_t *out, const char *p, size_t n, size_t from)
{
    size_t i = from;
    while (i < n) {
        unsigned char c = decode_next(p, n, &i, false);
        int rc = path_literal(c) ? gw_buf_append(out, &c, 1) : append_escaped_byte(out, c);
        if (rc) return rc;
    }
    return GW_OK;
}

/* Length of the '/' or %2F/%2f separator at p[i] (with esc_slash), else 0. */
static size_t sep_len(const char *p, size_t n, size_t i, bool esc_slash)
{
    if (p[i] == '/') return 1;
    if (esc_slash && p[i] == '%' && n - i >= 3 && p[i + 1] == '2' && (p[i + 2] == 'F' || p[i + 2] == 'f'))
        return 3;
    return 0;
}

/* 1 when the segment s[0..n) is ".", 2 when "..", each dot also as %2e/%2E; else 0. */
static int dot_segment(const char *s, size_t n)
{
    int dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (dots == 2) return 0;
        if (s[i] == '.') i++;
        else if (s[i] == '%' && n - i >= 3 && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) i += 3;
        else return 0;
    }
    return dots;
}

/* RFC 3986 §5.2.4 in place on out[tail..len): the tail is a sequence of "/segment" units
 * (out[tail] is '/'); kept units are moved down, "." is dropped, ".." drops the last kept
 * unit; a trailing "." or ".." leaves "/". GW_EPATH_ESCAPES when ".." finds nothing to drop.
 * The result is never longer than the input, so nothing is allocated. */
static int resolve_tail(gw_buf_t *out, size_t tail)
{
    char *b = out->base;
    size_t n = out->len, r = tail, w = tail;
    while (r < n) {
        size_t e = r + 1;
        while (e < n && b[e] != '/') e++;
        int dots = dot_segment(b + r + 1, e - r - 1);
        if (dots == 2) {
            if (w == tail) return GW_EPATH_ESCAPES;
            while (b[--w] != '/') {}
        }
        if (dots && e == n) {
            b[w++] = '/';
        } else if (!dots) {
            memmove(b + w, b + r, e - r);
            w += e - r;
        }
        r = e;
    }
    out->len = w;
    b[w] = '\0';
    return GW_OK;
}

/* Would p[0..n) climb above its start if an upstream decoded %2F/%2f to '/' (and merged
 * "//", so empty segments do not count)? For encodeUrl false, whose segments may hold %2F. */
static bool escapes_decoding_slashes(const char *p, size_t n)
{
    size_t depth = 0, i = 0;
    while (i < n) {
        size_t s = sep_len(p, n, i, true);
        i += s;
        size_t j = i;
        while (j < n && !sep_len(p, n, j, true)) j++;
        int dots = dot_segment(p + i, j - i);
        if (dots == 2) {
            if (depth == 0) return true;
            depth--;
        } else if (!dots && j > i) {
            depth++;
        }
        i = j;
    }
    return false;
}

int gw_append_upstream_path(gw_buf_t *out, const char *base_path, gw_str_t target_path, bool encode_url)
{
    size_t len0 = out->len, bn = base_path ? strlen(base_path) : 0;
    size_t skip = 0; /* bytes of target_path consumed by its first character */
    bool tp_slash = false;
    if (target_path.n) {
        size_t i = 0;
        unsigned char c0 = encode_url ? decode_next(target_path.p, target_path.n, &i, false)
                                      : (unsigned char)target_path.p[i++];
        tp_slash = c0 == '/';
        skip = i;
    }
    bool base_slash = bn && base_path[bn - 1] == '/';
    int rc = GW_OK;
    /* the result is always path-absolute */
    if ((bn == 0 || base_path[0] != '/') && !(bn == 0 && tp_slash)) rc = gw_buf_append(out, "/", 1);
    if (!rc && bn) rc = gw_buf_append(out, base_path, bn);
    /* where the "/segment" units coming from target_path start: a trailing '/' of the base
     * belongs to them (it joins), everything before stays as configured */
    size_t tail = bn ? out->len - (base_slash ? 1 : 0) : len0;
    if (!rc && target_path.n) {
        /* join with exactly one '/' (Go's singleJoiningSlash) */
        size_t from = 0;
        if (base_slash && tp_slash) from = skip;
        else if (bn && !base_slash && !tp_slash) rc = gw_buf_append(out, "/", 1);
        if (!rc)
            rc = encode_url ? append_decoded_encoded(out, target_path.p, target_path.n, from)
                            : gw_buf_append(out, target_path.p + from, target_path.n - from);
        /* [better] §5.1: resolve dot-segments below the base. With encode_url the tail is
         * already decoded and re-encoded: '/' from %2F is literal and %2E became '.'. */
        if (!rc) rc = resolve_tail(out, tail);
        if (!rc && !encode_url && escapes_decoding_slashes(out->base + tail, out->len - tail))
            rc = GW_EPATH_ESCAPES;
    }
    if (rc) return rollback(out, len0, rc == GW_EPATH_ESCAPES ? rc : GW_ENOMEM);
    /* never "//..." (a network-path reference to some proxies and frameworks) */
    size_t k = len0 + 1;
    while (k < out->len && out->base[k] == '/') k++;
    if (k > len0 + 1) {
        memmove(out->base + len0 + 1, out->base + k, out->len - k + 1);
        out->len -= k - len0 - 1;
    }
    return GW_OK;
}

/* ---------- §5.1 / §6.6 upstream query ---------- */

/* Go's url.QueryEscape: space as '+', unreserved literal, everything else %XX. */
static int append_query_escaped(gw_buf_t *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int rc = is_unreserved(c) ? gw_buf_append(out, s, 1)
                 : c == ' '       ? gw_buf_append(out, "+", 1)
                                  : append_escaped_byte(out, c);
        if (rc) return rc;
    }
    return GW_OK;
}

/* True when the raw (escaped) query key decodes to name. */
static bool query_key_eq(const char *k, size_t kn, const char *name)
{
    size_t i = 0;
    const unsigned char *nm = (const unsigned char *)name;
    while (i < kn) {
        if (*nm == '\0' || decode_next(k, kn, &i, true) != *nm) return false;
        nm++;
    }
    return *nm == '\0';
}

static bool query_has_key(gw_str_t q, const char *name)
{
    const char *p = q.p, *end = q.p + q.n;
    while (p <= end && q.n) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if (pe > p && query_key_eq(p, (size_t)(ke - p), name)) return true;
        if (!amp) break;
        p = amp + 1;
    }
    return false;
}

int gw_append_upstream_query(gw_buf_t *out, const char *base_query, gw_str_t caller_query,
                             const gw_kv_t *extra, size_t nextra)
{
    size_t len0 = out->len, bn = base_query ? strlen(base_query) : 0;
    bool any = false;
    int rc = GW_OK;
    if (bn) {
        rc = gw_buf_append(out, base_query, bn);
        any = true;
    }
    if (!rc && caller_query.n) {
        if (any) rc = gw_buf_append(out, "&", 1);
        if (!rc) rc = gw_buf_append(out, caller_query.p, caller_query.n);
        any = true;
    }
    for (size_t i = 0; !rc && i < nextra; i++) {
        if (!extra[i].name || query_has_key(caller_query, extra[i].name)) continue;
        if (any) rc = gw_buf_append(out, "&", 1);
        if (!rc) rc = append_query_escaped(out, extra[i].name);
        if (!rc) rc = gw_buf_append(out, "=", 1);
        if (!rc && extra[i].value) rc = append_query_escaped(out, extra[i].value);
        any = true;
    }
    return rc ? rollback(out, len0, GW_ENOMEM) : GW_OK;
}

/* ---------- §5.3 hop-by-hop headers ---------- */

bool gw_is_hop_by_hop(gw_str_t name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Connection",
                                      "Proxy-Authenticate", "Proxy-Authorization", "TE",
                                      "Trailer", "Transfer-Encoding", "Upgrade"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(hop); i++)
        if (gw_str_ieq(name, hop[i], strlen(hop[i]))) return true;
    return false;
}

bool gw_connection_lists(const gw_str_t *connection_values, size_t n, gw_str_t name)
{
    for (size_t i = 0; i < n; i++) {
        gw_str_t rest = connection_values[i], tok;
        while (gw_str_next_token(&rest, &tok))
            if (gw_str_ieq(tok, name.p, name.n)) return true;
    }
    return false;
}

/* ---------- §7 Location rewriting ---------- */

/* RFC 3986 §5.2.4 on p[0..n), appended to out (which holds only this path). */
static int remove_dot_segments(gw_buf_t *out, const char *p, size_t n)
{
    size_t start = out->len, i = 0;
    while (i < n) {
        const char *s = p + i;
        size_t left = n - i;
        if (left >= 3 && memcmp(s, "../", 3) == 0) {
            i += 3;
        } else if (left >= 2 && memcmp(s, "./", 2) == 0) {
            i += 2;
        } else if (left >= 3 && memcmp(s, "/./", 3) == 0) {
            i += 2;
        } else if (left == 2 && memcmp(s, "/.", 2) == 0) {
            return gw_buf_append(out, "/", 1);
        } else if ((left >= 4 && memcmp(s, "/../", 4) == 0) || (left == 3 && memcmp(s, "/..", 3) == 0)) {
            while (out->len > start && out->base[out->len - 1] != '/') out->len--;
            if (out->len > start) out->len--;
            if (out->base) out->base[out->len] = '\0';
            if (left == 3) return gw_buf_append(out, "/", 1);
            i += 3;
        } else if ((left == 1 && s[0] == '.') || (left == 2 && memcmp(s, "..", 2) == 0)) {
            i = n;
        } else {
            size_t j = s[0] == '/' ? 1 : 0;
            while (j < left && s[j] != '/') j++;
            if (gw_buf_append(out, s, j)) return GW_ENOMEM;
            i += j;
        }
    }
    return GW_OK;
}

/* RFC 3986 §5.2.2 / §5.2.3: the target's path into tmp; sets *res to the resolved URL
 * parts other than the path. */
static int resolve_reference(const gw_url_t *base, const gw_url_t *r, gw_buf_t *tmp, gw_url_t *res)
{
    *res = *r;
    if (r->scheme.n) return remove_dot_segments(tmp, r->path.p, r->path.n);
    res->scheme = base->scheme;
    if (r->has_authority) return remove_dot_segments(tmp, r->path.p, r->path.n);
    res->has_authority = base->has_authority;
    res->authority = base->authority;
    res->host = base->host;
    res->port = base->port;
    if (r->path.n == 0) {
        if (!r->has_query) {
            res->has_query = base->has_query;
            res->query = base->query;
        }
        return gw_buf_append(tmp, base->path.p, base->path.n);
    }
    if (r->path.p[0] == '/') return remove_dot_segments(tmp, r->path.p, r->path.n);
    /* merge: base path up to its last '/', or "/" when the base has an authority and no path */
    gw_buf_t merged;
    gw_buf_init(&merged, base->path.n + r->path.n + 1);
    int rc;
    if (base->has_authority && base->path.n == 0) {
        rc = gw_buf_append(&merged, "/", 1);
    } else {
        size_t k = base->path.n;
        while (k && base->path.p[k - 1] != '/') k--;
        rc = gw_buf_append(&merged, base->path.p, k);
    }
    if (!rc) rc = gw_buf_append(&merged, r->path.p, r->path.n);
    if (!rc) rc = remove_dot_segments(tmp, merged.base, merged.len);
    gw_buf_free(&merged);
    return rc;
}

int gw_rewrite_location(gw_buf_t *out, gw_str_t location, gw_str_t request_url, const gw_target_t *target,
                        gw_str_t prefix)
{
    gw_url_t base, ref, res;
    location = gw_str_trim(location);
    if (!target || !target->hostname || !target->hostname[0] || gw_url_split(request_url, &base) || !base.scheme.n ||
        gw_url_split(location, &ref))
        return 0;
    gw_buf_t path;
    gw_buf_init(&path, location.n + request_url.n + 2);
    int rc = resolve_reference(&base, &ref, &path, &res);
    if (rc) { /* cannot happen: the cap covers every resolution */
        gw_buf_free(&path);
        return 0;
    }
    gw_str_t rpath = {path.base ? path.base : "", path.len};
    /* targetUrl path without trailing '/' */
    gw_str_t tp = gw_str(target->path ? target->path : "");
    while (tp.n && tp.p[tp.n - 1] == '/') tp.n--;
    bool match = (GW_STR_IEQ_LIT(res.scheme, "http") || GW_STR_IEQ_LIT(res.scheme, "https")) &&
                 res.has_authority && gw_str_ieq(res.host, target->hostname, strlen(target->hostname)) &&
                 rpath.n >= tp.n && memcmp(rpath.p, tp.p, tp.n) == 0 &&
                 (rpath.n == tp.n || rpath.p[tp.n] == '/');
    if (!match) {
        gw_buf_free(&path);
        return 0;
    }
    size_t len0 = out->len;
    rc = gw_buf_append(out, prefix.p, prefix.n);
    if (!rc) rc = gw_buf_append(out, rpath.p + tp.n, rpath.n - tp.n);
    if (!rc && res.has_query && !(rc = gw_buf_append(out, "?", 1)))
        rc = gw_buf_append(out, res.query.p, res.query.n);
    if (!rc && res.has_fragment && !(rc = gw_buf_append(out, "#", 1)))
        rc = gw_buf_append(out, res.fragment.p, res.fragment.n);
    gw_buf_free(&path);
    return rc ? rollback(out, len0, GW_ENOMEM) : 1;
}

/* ---------- gateway error bodies ---------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xE0) == 0xC0) { len = 2; cp = s[0] & 0x1F; min = 0x80; }
    else if ((s[0] & 0xF0) == 0xE0) { len = 3; cp = s[0] & 0x0F; min = 0x800; }
    else if ((s[0] & 0xF8) == 0xF0) { len = 4; cp = s[0] & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* JSON string contents; invalid UTF-8 bytes become U+FFFD as Go's encoder does. */
static int append_json_escaped(gw_buf_t *out, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), i = 0;
    while (i < n) {
        unsigned char c = s[i];
        int rc;
        size_t ul = utf8_len(s + i, n - i);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = gw_buf_append(out, e, 2);
        } else if (c < 0x20) {
            rc = gw_buf_appendf(out, "\\u%04x", c);
        } else if (ul == 0) {
            rc = gw_buf_append(out, "\\ufffd", 6);
            ul = 1;
        } else {
            rc = gw_buf_append(out, s + i, ul);
        }
        if (rc) return rc;
        i += ul ? ul : 1;
    }
    return GW_OK;
}

int gw_append_error_body(gw_buf_t *out, int code, const char *text)
{
    size_t len0 = out->len;
    int rc = gw_buf_appendf(out, "{\"code\":%d,\"error\":\"", code);
    if (!rc) rc = append_json_escaped(out, text ? text : "");
    if (!rc) rc = gw_buf_append(out, "\"}", 2);
    return rc ? rollback(out, len0, GW_ENOMEM) : GW_OK;
}
