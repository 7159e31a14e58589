/* readfile.c: whole-file reads with a cap, wiping what it copies (see readfile.h). */
#include "registry/readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/common.h"

int gw_read_file(const char *path, size_t max, char **data, size_t *len, char *reason, size_t rn)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        snprintf(reason, rn, "%s", strerror(errno));
        return GW_EINVAL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(reason, rn, "not a regular file");
        return GW_EINVAL;
    }
    size_t cap = st.st_size > (off_t)max ? max + 1 : (size_t)st.st_size + 1, n = 0;
    char *buf = gw_malloc(cap + 1);
    int rc = GW_OK;
    for (;;) {
        if (n == cap && cap <= max) { /* grew since fstat: move to a bigger buffer, wipe the old */
            size_t ncap = GW_MIN(cap * 2, max + 1);
            char *nb = gw_malloc(ncap + 1);
            memcpy(nb, buf, n);
            explicit_bzero(buf, n);
            free(buf);
            buf = nb;
            cap = ncap;
        }
        if (n == cap) break;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(reason, rn, "read failed: %s", strerror(errno));
            rc = GW_EINVAL;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (rc == GW_OK && n > max) {
        snprintf(reason, rn, "larger than %zu bytes", max);
        rc = GW_EINVAL;
    }
    if (rc != GW_OK) {
        explicit_bzero(buf, n);
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return GW_OK;
}
