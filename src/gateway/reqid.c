/* reqid.c: request ID validation and generation (reqid.h). */
#include "gateway/reqid.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int gw_reqid_valid(const char *v, size_t n)
{
    if (n == 0 || n > GW_REQID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
        switch (c) {
        case '-': case '_': case '.': case ':': case '+': case '/': case '=': case '@': continue;
        default: return 0;
        }
    }
    return 1;
}

static void hex(char *out, uint64_t v, int digits)
{
    static const char d[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = d[v & 15];
        v >>= 4;
    }
}

void gw_reqid_generate(char out[GW_REQID_GEN_LEN], uint64_t prefix, unsigned worker, uint64_t seq)
{
    hex(out, prefix & 0x00ffffffffffffffull, 14);
    hex(out + 14, worker & 0xffu, 2);
    hex(out + 16, seq, 16);
}

uint64_t gw_reqid_prefix(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v)) return v;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
}
