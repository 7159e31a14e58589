/* close_shim.c: LD_PRELOAD shim for the ThreadSanitizer run (tsan_storm.py). Debian's libuv 1.44
 * closes descriptors with a raw syscall(SYS_close, fd), which TSan does not intercept: it never
 * learns the descriptor was closed, and when the kernel hands the same number to another thread
 * (accept, open), TSan reports a race on the descriptor. Routing that one call through close()
 * lets TSan see it; every other syscall() goes to the real one, with six arguments. */
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*gw_syscall_fn)(long, ...);

long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_close) return close((int)a[0]);
    static gw_syscall_fn real;
    gw_syscall_fn fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (gw_syscall_fn)dlsym(RTLD_NEXT, "syscall");
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    return fn(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
