/* parser.c: strict, allocation-free HTTP/1.x head parser, body-framing rules and chunked decoder;
 * single pass over the caller's bytes, strict enough to refuse request-smuggling ambiguities. */
#include "http/parser.h"

#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Internal "ran out of input" marker; never returned to callers. */
#define GW__INCOMPLETE 1

#define GW__CHUNK_MAX_SIZE    ((uint64_t)1 << 60)
#define GW__CHUNK_MAX_LINE    8192u /* chunk-size line incl. extensions */
#define GW__CHUNK_MAX_TRAILER 8192u /* whole trailer section */

/* RFC 9110 tchar: "!#$%&'*+-.^_`|~" DIGIT ALPHA. */
static const uint8_t gw__tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Hex digit value + 1 (0 = not a hex digit). */
static const uint8_t gw__hex[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,
    ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
    ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
    ['F'] = 16,
};

/* Field-value / reason-phrase byte: HTAB, SP, VCHAR, obs-text (no CTL, no DEL). */
static inline int gw__is_vchar_ws(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

/* ---- 8-bytes-at-a-time scanning (SWAR); false positives only send us to the byte loop ---- */

#define GW__ONES  0x0101010101010101ull
#define GW__HIGHS 0x8080808080808080ull

static inline uint64_t gw__load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Non-zero if some byte of v is < n (n <= 128). */
#define GW__HAS_LESS(v, n) (((v) - GW__ONES * (n)) & ~(v) & GW__HIGHS)
/* Non-zero if some byte of v is zero. */
#define GW__HAS_ZERO(v) (((v) - GW__ONES) & ~(v) & GW__HIGHS)

#ifdef __SSE2__
/* 16 bytes at a time; a set bit in the mask marks a byte <= max or equal to DEL. */
static inline unsigned gw__sse2_stop_mask(const char *p, unsigned char max)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i le = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8((char)max)), v);
    __m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(le, del));
}
#endif

/* Skips bytes >= lo that are not DEL. Always inlined with a constant lo, so each caller gets
 * its own specialised loop: lo 0x20 = no CTL (field values), lo 0x21 = visible only (targets). */
static inline __attribute__((always_inline)) const char *gw__skip_from(const char *p, const char *end,
                                                                       unsigned char lo)
{
#ifdef __SSE2__
    while (end - p >= 16) {
        unsigned m = gw__sse2_stop_mask(p, (unsigned char)(lo - 1));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t v = gw__load8(p);
        if (GW__HAS_LESS(v, lo) | GW__HAS_ZERO(v ^ (GW__ONES * 0x7f)))
            break;
        p += 8;
    }
    while (p < end && (unsigned char)*p >= lo && *p != 0x7f)
        p++;
    return p;
}

/* Skips bytes that are neither CTL nor DEL (i.e. >= 0x20, != 0x7f). */
static inline const char *gw__skip_vchar_sp(const char *p, const char *end) { return gw__skip_from(p, end, 0x20); }

/* Skips bytes that are visible (> 0x20, != 0x7f): request-target characters. */
static inline const char *gw__skip_target(const char *p, const char *end) { return gw__skip_from(p, end, 0x21); }

static inline const char *gw__skip_tchar(const char *p, const char *end)
{
    while (end - p >= 4 && gw__tchar[(unsigned char)p[0]] && gw__tchar[(unsigned char)p[1]] &&
           gw__tchar[(unsigned char)p[2]] && gw__tchar[(unsigned char)p[3]])
        p += 4;
    while (p < end && gw__tchar[(unsigned char)*p])
        p++;
    return p;
}

/* Parses header lines up to and including the empty line. On success stores the position
 * after the head in *endp and returns 0; else GW__INCOMPLETE, GW_EBADMSG or GW_E2BIG. */
static int gw__parse_headers(const char *p, const char *end, gw_header_t *hdrs, size_t *nhdrs,
                             const char **endp)
{
    size_t n = 0;

    for (;;) {
        if (p == end)
            return GW__INCOMPLETE;
        if (*p == '\r') {
            if (p + 1 == end)
                return GW__INCOMPLETE;
            if (p[1] != '\n')
                return GW_EBADMSG;
            p += 2;
            break;
        }
        if (*p == '\n') {
            p++;
            break;
        }
        if (n == GW_HTTP_MAX_HEADERS)
            return GW_E2BIG;

        /* field-name ":" ; any non-tchar (SP before the colon, obs-fold SP/HTAB at line
         * start, CTLs) other than the colon is fatal. */
        const char *name = p;
        p = gw__skip_tchar(p, end);
        if (p == end)
            return GW__INCOMPLETE;
        if (*p != ':' || p == name)
            return GW_EBADMSG;
        hdrs[n].name.p = name;
        hdrs[n].name.n = (size_t)(p - name);
        p++;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        for (;;) {
            p = gw__skip_vchar_sp(p, end);
            if (p == end)
                return GW__INCOMPLETE;
            if (*p != '\t')
                break;
            p++;
        }
        const char *vend = p;
        if (*p == '\r') {
            if (p + 1 == end)
                return GW__INCOMPLETE;
            if (p[1] != '\n')
                return GW_EBADMSG; /* bare CR */
            p += 2;
        } else if (*p == '\n') {
            p++;
        } else {
            return GW_EBADMSG; /* NUL, other CTL or DEL */
        }
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        hdrs[n].value.p = value;
        hdrs[n].value.n = (size_t)(vend - value);
        n++;
    }
    *nhdrs = n;
    *endp = p;
    return 0;
}

/* Maps an internal result to the public contract given the caller's total length. */
static inline int gw__finish(int rc, const char *buf, const char *p, size_t len)
{
    if (rc == 0)
        return (int)(p - buf);
    if (rc == GW__INCOMPLETE)
        return len >= GW_HTTP_MAX_HEAD ? GW_E2BIG : 0;
    return rc;
}

int gw_http_parse_request(const char *buf, size_t len, gw_req_head_t *out)
{
    static const char v11[] = "HTTP/1.1\r\n", v10[] = "HTTP/1.0\r\n";
    const char *p = buf, *end = buf + (len < GW_HTTP_MAX_HEAD ? len : GW_HTTP_MAX_HEAD);
    int rc;

    out->nheaders = 0;

    /* RFC 9112 §2.2: ignore empty lines (CRLF) before the request-line. */
    for (;;) {
        if (p == end)
            return gw__finish(GW__INCOMPLETE, buf, p, len);
        if (*p != '\r')
            break;
        if (p + 1 == end)
            return gw__finish(GW__INCOMPLETE, buf, p, len);
        if (p[1] != '\n')
            return GW_EBADMSG;
        p += 2;
    }

    const char *m = p;
    p = gw__skip_tchar(p, end);
    if (p == end)
        return gw__finish(GW__INCOMPLETE, buf, p, len);
    if (*p != ' ' || p == m)
        return GW_EBADMSG;
    out->method.p = m;
    out->method.n = (size_t)(p - m);
    p++;

    const char *t = p;
    p = gw__skip_target(p, end);
    if (p == end)
        return gw__finish(GW__INCOMPLETE, buf, p, len);
    if (*p != ' ' || p == t)
        return GW_EBADMSG;
    out->target.p = t;
    out->target.n = (size_t)(p - t);
    p++;

    size_t avail = (size_t)(end - p);
    if (avail < sizeof(v11) - 1) {
        if (memcmp(p, v11, avail) != 0 && memcmp(p, v10, avail) != 0)
            return GW_EBADMSG;
        return gw__finish(GW__INCOMPLETE, buf, p, len);
    }
    if (memcmp(p, v11, sizeof(v11) - 1) == 0)
        out->minor_version = 1;
    else if (memcmp(p, v10, sizeof(v10) - 1) == 0)
        out->minor_version = 0;
    else
        return GW_EBADMSG;
    p += sizeof(v11) - 1;

    rc = gw__parse_headers(p, end, out->headers, &out->nheaders, &p);
    return gw__finish(rc, buf, p, len);
}

/* ---- resumable request-head scan (gw_http_scan_request) ---- */

enum {
    GW__HS_LEAD = 0, /* start, or after an empty line before the request-line */
    GW__HS_LEAD_LF,  /* LF of such an empty line */
    GW__HS_METHOD,
    GW__HS_TARGET0,  /* first byte of the request-target */
    GW__HS_TARGET,
    GW__HS_VERSION,  /* inside "HTTP/1.x\r\n" (vpos says where) */
    GW__HS_LINE,     /* start of a header line or of the final empty line */
    GW__HS_NAME,
    GW__HS_VALUE,    /* after the colon: OWS and the value */
    GW__HS_VALUE_LF, /* LF after the CR ending a value */
    GW__HS_END_LF,   /* LF of the final CRLF */
    GW__HS_DONE,
};

/* Same verdicts as gw_http_parse_request, byte by byte: the bulk skips below only pass bytes
 * that keep the state, so resuming at any offset gives the same answer. */
int gw_http_scan_request(const char *buf, size_t len, gw_head_scan_t *st)
{
    static const char ver[] = "HTTP/1.";
    const char *end = buf + (len < GW_HTTP_MAX_HEAD ? len : GW_HTTP_MAX_HEAD);
    const char *p = buf + st->pos;

    while (p < end && st->state != GW__HS_DONE) {
        unsigned char c = (unsigned char)*p;
        switch (st->state) {
        case GW__HS_LEAD:
            if (c == '\r')
                st->state = GW__HS_LEAD_LF;
            else if (gw__tchar[c])
                st->state = GW__HS_METHOD;
            else
                return GW_EBADMSG;
            p++;
            break;
        case GW__HS_LEAD_LF:
            if (c != '\n')
                return GW_EBADMSG;
            st->state = GW__HS_LEAD;
            p++;
            break;
        case GW__HS_METHOD:
            p = gw__skip_tchar(p, end);
            if (p == end)
                break;
            if (*p != ' ')
                return GW_EBADMSG;
            st->state = GW__HS_TARGET0;
            p++;
            break;
        case GW__HS_TARGET0:
        case GW__HS_TARGET: {
            const char *t = p;
            p = gw__skip_target(p, end);
            if (p > t)
                st->state = GW__HS_TARGET;
            if (p == end)
                break;
            if (*p != ' ' || st->state == GW__HS_TARGET0)
                return GW_EBADMSG;
            st->state = GW__HS_VERSION;
            st->vpos = 0;
            p++;
            break;
        }
        case GW__HS_VERSION:
            if (st->vpos < sizeof(ver) - 1 ? c != (unsigned char)ver[st->vpos]
                : st->vpos == 7        ? c != '0' && c != '1'
                : st->vpos == 8        ? c != '\r'
                                       : c != '\n')
                return GW_EBADMSG;
            if (++st->vpos == 10)
                st->state = GW__HS_LINE;
            p++;
            break;
        case GW__HS_LINE:
            if (c == '\r') {
                st->state = GW__HS_END_LF;
            } else if (c == '\n') {
                st->state = GW__HS_DONE;
            } else {
                if (st->nheaders == GW_HTTP_MAX_HEADERS)
                    return GW_E2BIG;
                if (!gw__tchar[c])
                    return GW_EBADMSG;
                st->state = GW__HS_NAME;
            }
            p++;
            break;
        case GW__HS_NAME:
            p = gw__skip_tchar(p, end);
            if (p == end)
                break;
            if (*p != ':')
                return GW_EBADMSG;
            st->state = GW__HS_VALUE;
            p++;
            break;
        case GW__HS_VALUE:
            p = gw__skip_vchar_sp(p, end);
            if (p == end)
                break;
            if (*p == '\t') {
                p++;
                break;
            }
            if (*p == '\r') {
                st->state = GW__HS_VALUE_LF;
            } else if (*p == '\n') {
                st->state = GW__HS_LINE;
                st->nheaders++;
            } else {
                return GW_EBADMSG; /* NUL, other CTL or DEL */
            }
            p++;
            break;
        case GW__HS_VALUE_LF:
            if (c != '\n')
                return GW_EBADMSG; /* bare CR */
            st->state = GW__HS_LINE;
            st->nheaders++;
            p++;
            break;
        case GW__HS_END_LF:
            if (c != '\n')
                return GW_EBADMSG;
            st->state = GW__HS_DONE;
            p++;
            break;
        }
    }
    st->pos = (uint32_t)(p - buf);
    if (st->state == GW__HS_DONE)
        return (int)st->pos;
    return len >= GW_HTTP_MAX_HEAD ? GW_E2BIG : 0;
}

/* Checks "HTTP/1.d ddd" (first status digit 1-9) against the available prefix. */
static int gw__parse_status_prefix(const char *p, size_t avail, int *minor, int *status)
{
    static const char pat[] = "HTTP/1.d sdd";
    size_t n = avail < sizeof(pat) - 1 ? avail : sizeof(pat) - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (pat[i]) {
        case 'd':
            if (c < '0' || c > '9')
                return GW_EBADMSG;
            break;
        case 's':
            if (c < '1' || c > '9')
                return GW_EBADMSG;
            break;
        default:
            if (c != (unsigned char)pat[i])
                return GW_EBADMSG;
        }
    }
    if (n < sizeof(pat) - 1)
        return GW__INCOMPLETE;
    *minor = p[7] - '0';
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    return 0;
}

int gw_http_parse_response(const char *buf, size_t len, gw_resp_head_t *out)
{
    const char *p = buf, *end = buf + (len < GW_HTTP_MAX_HEAD ? len : GW_HTTP_MAX_HEAD);
    int rc;

    out->nheaders = 0;
    rc = gw__parse_status_prefix(p, (size_t)(end - p), &out->minor_version, &out->status);
    if (rc != 0)
        return gw__finish(rc, buf, p, len);
    p += 12;

    if (p == end)
        return gw__finish(GW__INCOMPLETE, buf, p, len);
    const char *r = p;
    if (*p == ' ') {
        r = ++p;
        for (;;) {
            p = gw__skip_vchar_sp(p, end);
            if (p == end)
                return gw__finish(GW__INCOMPLETE, buf, p, len);
            if (*p != '\t')
                break;
            p++;
        }
    }
    /* status-line must end in CRLF (reason may be absent, with or without its SP) */
    if (*p != '\r')
        return GW_EBADMSG;
    out->reason.p = r;
    out->reason.n = (size_t)(p - r);
    if (p + 1 == end)
        return gw__finish(GW__INCOMPLETE, buf, p, len);
    if (p[1] != '\n')
        return GW_EBADMSG;
    p += 2;

    rc = gw__parse_headers(p, end, out->headers, &out->nheaders, &p);
    return gw__finish(rc, buf, p, len);
}

const gw_header_t *gw_http_find_header(const gw_header_t *h, size_t n, const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < n; i++)
        if (h[i].name.n == nl && strncasecmp(h[i].name.p, name, nl) == 0)
            return &h[i];
    return NULL;
}

int gw_http_parse_content_length(gw_str_t v, uint64_t *out)
{
    uint64_t x = 0;

    if (v.n == 0 || v.n > 19)
        return GW_EBADMSG;
    for (size_t i = 0; i < v.n; i++) {
        unsigned d = (unsigned char)v.p[i] - (unsigned)'0';
        if (d > 9)
            return GW_EBADMSG;
        x = x * 10 + d; /* 19 digits cannot overflow 64 bits */
    }
    if (x > (uint64_t)INT64_MAX) /* as Go's net/http (ParseUint(.., 63)): a larger body cannot exist */
        return GW_EBADMSG;
    *out = x;
    return 0;
}

/* Folds every Content-Length header (each possibly a list) into one value.
 * Returns 1 if found (*cl set), 0 if absent, GW_EBADMSG if invalid or conflicting. */
static int gw__content_length(const gw_header_t *h, size_t n, uint64_t *cl)
{
    int found = 0;

    for (size_t i = 0; i < n; i++) {
        if (!GW_STR_IEQ_LIT(h[i].name, "content-length"))
            continue;
        gw_str_t rest = h[i].value, e;
        int any = 0;
        while (gw_str_next_token(&rest, &e)) {
            uint64_t v;
            if (gw_http_parse_content_length(e, &v) != 0)
                return GW_EBADMSG;
            if (found && v != *cl)
                return GW_EBADMSG;
            *cl = v;
            found = any = 1;
        }
        if (!any)
            return GW_EBADMSG; /* empty value */
    }
    return found;
}

/* Summarises all Transfer-Encoding headers: *present, the number of codings and whether the
 * last one is "chunked". */
static void gw__transfer_encoding(const gw_header_t *h, size_t n, int *present, size_t *ncodings,
                                  int *last_chunked)
{
    *present = 0;
    *ncodings = 0;
    *last_chunked = 0;
    for (size_t i = 0; i < n; i++) {
        if (!GW_STR_IEQ_LIT(h[i].name, "transfer-encoding"))
            continue;
        gw_str_t rest = h[i].value, e;
        *present = 1;
        while (gw_str_next_token(&rest, &e)) {
            (*ncodings)++;
            *last_chunked = GW_STR_IEQ_LIT(e, "chunked");
        }
    }
}

int gw_http_request_framing(const gw_req_head_t *h, gw_body_kind_t *kind, uint64_t *content_length)
{
    int te, last_chunked;
    size_t ncodings;
    uint64_t cl = 0;

    *kind = GW_BODY_NONE;
    *content_length = 0;
    gw__transfer_encoding(h->headers, h->nheaders, &te, &ncodings, &last_chunked);
    int rc = gw__content_length(h->headers, h->nheaders, &cl);
    if (rc < 0)
        return rc;
    if (te) {
        if (rc == 1 || h->minor_version == 0 || ncodings != 1 || !last_chunked)
            return GW_EBADMSG;
        *kind = GW_BODY_CHUNKED;
        return 0;
    }
    if (rc == 1) {
        *kind = GW_BODY_LENGTH;
        *content_length = cl;
    }
    return 0;
}

int gw_http_response_framing(const gw_resp_head_t *h, bool request_was_head, gw_body_kind_t *kind,
                             uint64_t *content_length)
{
    int te, last_chunked;
    size_t ncodings;
    uint64_t cl = 0;

    *kind = GW_BODY_NONE;
    *content_length = 0;
    if (request_was_head || (h->status >= 100 && h->status < 200) || h->status == 204 ||
        h->status == 304)
        return 0;
    gw__transfer_encoding(h->headers, h->nheaders, &te, &ncodings, &last_chunked);
    if (te) {
        *kind = last_chunked ? GW_BODY_CHUNKED : GW_BODY_EOF;
        return 0;
    }
    int rc = gw__content_length(h->headers, h->nheaders, &cl);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        *kind = GW_BODY_LENGTH;
        *content_length = cl;
    } else {
        *kind = GW_BODY_EOF;
    }
    return 0;
}

/* ---- chunked decoder ---- */

/* RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF,
 * chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
 * chunk-ext-val = token / quoted-string. BWS after the size without an extension ("5 \r\n") is
 * accepted as many parsers do; nothing else outside this grammar is. */
enum {
    GW__CH_SIZE_FIRST = 0, /* expecting the first hex digit of a chunk-size */
    GW__CH_SIZE,           /* more hex digits, BWS, ';' or CR */
    GW__CH_SIZE_WS,        /* BWS after the size, a value or a closing quote: BWS, ';' or CR */
    GW__CH_EXT_NAME0,      /* after ';': BWS or the first byte of an extension name */
    GW__CH_EXT_NAME,       /* extension name: tchar, BWS, '=', ';' or CR */
    GW__CH_EXT_NAME_WS,    /* BWS after a name: BWS, '=', ';' or CR */
    GW__CH_EXT_VAL0,       /* after '=': BWS, a token or an opening quote */
    GW__CH_EXT_TOKEN,      /* token value */
    GW__CH_EXT_QUOTED,     /* inside a quoted-string value */
    GW__CH_EXT_QPAIR,      /* after a backslash inside a quoted string */
    GW__CH_SIZE_LF,        /* LF ending the size line */
    GW__CH_DATA,           /* chunk data */
    GW__CH_DATA_CR,        /* CR after data */
    GW__CH_DATA_LF,        /* LF after data */
    GW__CH_TRAILER_START,  /* start of a trailer line or the final CRLF */
    GW__CH_TRAILER_NAME,
    GW__CH_TRAILER_VALUE,
    GW__CH_TRAILER_LF,
    GW__CH_END_LF, /* LF of the final CRLF */
    GW__CH_DONE,
    GW__CH_ERROR,
};

#define GW__CHUNK_MAX_DIGITS 16u /* more would overflow 64 bits (Go's limit too) */

static inline int gw__is_bws(unsigned char c) { return c == ' ' || c == '\t'; }

/* quoted-string content: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text. */
static inline int gw__is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c != 0x7f);
}

/* One byte of a chunk-size line (size and extensions) or of the CRLF after chunk data; returns
 * the next state. */
static inline int gw__chunk_line_byte(gw_chunked_t *st, unsigned char c)
{
    int s = st->state;

    if (s == GW__CH_SIZE_FIRST) {
        if (!gw__hex[c])
            return GW__CH_ERROR;
        st->remaining = gw__hex[c] - 1u;
        st->line_len = 1;
        return GW__CH_SIZE;
    }
    if (s == GW__CH_DATA_CR)
        return c == '\r' ? GW__CH_DATA_LF : GW__CH_ERROR;
    if (s == GW__CH_DATA_LF)
        return c == '\n' ? GW__CH_SIZE_FIRST : GW__CH_ERROR;
    if (s == GW__CH_SIZE_LF) {
        if (c != '\n')
            return GW__CH_ERROR;
        st->trailer_bytes = 0;
        return st->remaining ? GW__CH_DATA : GW__CH_TRAILER_START;
    }
    if (c != '\r' && ++st->line_len > GW__CHUNK_MAX_LINE) /* the line's CR is not counted */
        return GW__CH_ERROR;
    switch (s) {
    case GW__CH_SIZE:
        if (gw__hex[c]) {
            uint64_t d = gw__hex[c] - 1u;
            if (st->line_len > GW__CHUNK_MAX_DIGITS || st->remaining > (GW__CHUNK_MAX_SIZE - d) >> 4)
                return GW__CH_ERROR;
            st->remaining = (st->remaining << 4) | d;
            return GW__CH_SIZE;
        }
        __attribute__((fallthrough)); /* BWS, ";" or CR */
    case GW__CH_SIZE_WS:
        if (c == '\r')
            return GW__CH_SIZE_LF;
        if (c == ';')
            return GW__CH_EXT_NAME0;
        return gw__is_bws(c) ? GW__CH_SIZE_WS : GW__CH_ERROR;
    case GW__CH_EXT_NAME0:
        if (gw__is_bws(c))
            return GW__CH_EXT_NAME0;
        return gw__tchar[c] ? GW__CH_EXT_NAME : GW__CH_ERROR; /* "5;" CRLF: empty name */
    case GW__CH_EXT_NAME:
        if (gw__tchar[c])
            return GW__CH_EXT_NAME;
        __attribute__((fallthrough));
    case GW__CH_EXT_NAME_WS:
        if (c == '\r')
            return GW__CH_SIZE_LF;
        if (c == ';')
            return GW__CH_EXT_NAME0;
        if (c == '=')
            return GW__CH_EXT_VAL0;
        return gw__is_bws(c) ? GW__CH_EXT_NAME_WS : GW__CH_ERROR;
    case GW__CH_EXT_VAL0:
        if (gw__is_bws(c))
            return GW__CH_EXT_VAL0;
        if (c == '"')
            return GW__CH_EXT_QUOTED;
        return gw__tchar[c] ? GW__CH_EXT_TOKEN : GW__CH_ERROR;
    case GW__CH_EXT_TOKEN:
        if (gw__tchar[c])
            return GW__CH_EXT_TOKEN;
        if (c == '\r')
            return GW__CH_SIZE_LF;
        if (c == ';')
            return GW__CH_EXT_NAME0;
        return gw__is_bws(c) ? GW__CH_SIZE_WS : GW__CH_ERROR;
    case GW__CH_EXT_QUOTED:
        if (c == '"')
            return GW__CH_SIZE_WS;
        if (c == '\\')
            return GW__CH_EXT_QPAIR;
        return gw__is_qdtext(c) ? GW__CH_EXT_QUOTED : GW__CH_ERROR; /* CR: unterminated */
    case GW__CH_EXT_QPAIR:
        return gw__is_vchar_ws(c) ? GW__CH_EXT_QUOTED : GW__CH_ERROR;
    default:
        return GW__CH_ERROR;
    }
}

/* One byte of the trailer section (field lines "name:value" CRLF, then CRLF). */
static inline int gw__chunk_trailer_byte(gw_chunked_t *st, unsigned char c)
{
    if (++st->trailer_bytes > GW__CHUNK_MAX_TRAILER)
        return GW__CH_ERROR;
    switch (st->state) {
    case GW__CH_TRAILER_START:
        if (c == '\r')
            return GW__CH_END_LF;
        return gw__tchar[c] ? GW__CH_TRAILER_NAME : GW__CH_ERROR; /* obs-fold, bare LF, junk */
    case GW__CH_TRAILER_NAME:
        if (c == ':')
            return GW__CH_TRAILER_VALUE;
        return gw__tchar[c] ? GW__CH_TRAILER_NAME : GW__CH_ERROR;
    case GW__CH_TRAILER_VALUE:
        if (c == '\r')
            return GW__CH_TRAILER_LF;
        return gw__is_vchar_ws(c) ? GW__CH_TRAILER_VALUE : GW__CH_ERROR;
    case GW__CH_TRAILER_LF:
        return c == '\n' ? GW__CH_TRAILER_START : GW__CH_ERROR;
    case GW__CH_END_LF:
        return c == '\n' ? GW__CH_DONE : GW__CH_ERROR;
    default:
        return GW__CH_ERROR;
    }
}

/* Canonical mode: whether the byte that moved the decoder from state `from` to `to` is
 * forwarded. Kept: chunk-size digits, every CRLF of the chunk framing and the final CRLF;
 * dropped: BWS, extensions and trailer field lines. */
static inline int gw__canon_keep(int from, int to)
{
    switch (from) {
    case GW__CH_SIZE_FIRST:
    case GW__CH_SIZE_LF:
    case GW__CH_DATA_CR:
    case GW__CH_DATA_LF:
    case GW__CH_END_LF:
        return 1;
    case GW__CH_SIZE:
        return to == GW__CH_SIZE || to == GW__CH_SIZE_LF;
    case GW__CH_TRAILER_START:
        return to == GW__CH_END_LF;
    case GW__CH_TRAILER_NAME:
    case GW__CH_TRAILER_VALUE:
    case GW__CH_TRAILER_LF:
        return 0;
    default: /* extension states: only the CR ending the line */
        return to == GW__CH_SIZE_LF;
    }
}

/* The decoder behind both entry points. out: decoded body (decode mode) or, with canon, the
 * forwarded bytes (out == in); NULL: pass-through. */
static int gw__chunked_run(gw_chunked_t *st, const char *in, size_t len, size_t *consumed, char *out,
                           size_t *out_len, int canon)
{
    size_t i = 0, o = 0;

    while (i < len && st->state != GW__CH_DONE && st->state != GW__CH_ERROR) {
        if (st->state == GW__CH_DATA) {
            size_t n = len - i < st->remaining ? len - i : (size_t)st->remaining;
            if (out && out + o != in + i)
                memmove(out + o, in + i, n); /* out <= in: output never overtakes input */
            o += n;
            i += n;
            st->remaining -= n;
            if (st->remaining == 0)
                st->state = GW__CH_DATA_CR;
            continue;
        }
        int from = st->state;
        unsigned char c = (unsigned char)in[i];
        int to = from < GW__CH_TRAILER_START ? gw__chunk_line_byte(st, c) : gw__chunk_trailer_byte(st, c);
        st->state = to;
        if (to == GW__CH_ERROR)
            break;
        if (canon && gw__canon_keep(from, to)) {
            out[o] = (char)c; /* o <= i */
            o++;
        }
        i++;
    }
    if (consumed)
        *consumed = i;
    if (out_len)
        *out_len = o;
    return st->state == GW__CH_DONE ? 1 : st->state == GW__CH_ERROR ? GW_EBADMSG : 0;
}

int gw_chunked_feed(gw_chunked_t *st, const char *in, size_t len, size_t *consumed, char *out,
                    size_t *out_len)
{
    return gw__chunked_run(st, in, len, consumed, out, out_len, 0);
}

int gw_chunked_canon(gw_chunked_t *st, char *buf, size_t len, size_t *consumed, size_t *out_len)
{
    size_t o;
    int rc = gw__chunked_run(st, buf, len, consumed, buf, &o, 1);
    if (out_len)
        *out_len = o;
    return rc;
}
