/* source_files.c: the directory registry: scans configDir for manifests, keeps the last good
 * objects of every file, watches (inotify per directory, debounced, plus a 1 s stat poll) and
 * publishes a new snapshot when the result changes. A file is read only when its write is
 * complete: inotify reports a close after writing, a rename or a symlink swap (a file with a
 * write in progress, IN_MODIFY without IN_CLOSE_WRITE yet or still open for writing, waits),
 * and the poll reads a change only once two consecutive observations agree. Not for: decoding (decode.c), routing
 * (snapshot.c) or the Kubernetes API; runs on one loop and is not thread-safe. */
#include "registry/source_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry/decode.h"
#include "registry/readfile.h"
#include "registry/regstats.h"
#include "util/alloc.h"
#include "util/common.h"
#include "util/log.h"

#define GW_SF_MAX_FILE (16u * 1024 * 1024)
#define GW_SF_MAX_DEPTH 16
#define GW_SF_DEBOUNCE_MS 50
#define GW_SF_POLL_MS 1000
#define GW_SF_RACY_NS 2000000000LL /* files modified this recently are re-read on the next scan */

typedef struct {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
} gw_sf_stat_t;

/* One manifest file: the stat and content hash of the last version read, the objects of the
 * last version that decoded, and what the last poll saw (the poll reads a change only when two
 * consecutive observations agree). */
typedef struct {
    char *path;
    gw_sf_stat_t st;
    uint64_t hash;
    bool loaded; /* read at least once (st and hash are meaningful) */
    bool racy;
    gw_sf_stat_t seen;
    bool seen_valid;
    gw_manifest_set_t good;
} gw_sf_file_t;

/* One watched directory. Two paths of one directory (a symlinked directory) share a wd. */
typedef struct {
    char *path;
    uint64_t dev, ino;  /* the directory watched; a new inode at the same path gets a new watch */
    int wd;             /* -1: not watched (inotify refused, or the kernel dropped the watch) */
    bool seen;
    bool swapped;       /* entries were created, renamed or removed since the last scan began */
    bool swapped_now;   /* swapped, as of the scan running */
} gw_sf_watch_t;

/* What inotify said about one manifest path: a write is in progress (IN_MODIFY seen, no
 * IN_CLOSE_WRITE since), or any event named it while it was being read. */
typedef struct {
    char *path;
    bool writing;
    bool touched;
} gw_sf_mark_t;

typedef enum { GW_SF_FORCE, GW_SF_EVENT, GW_SF_POLL } gw_sf_mode_t;

struct gw_source_files_s {
    uv_loop_t *loop;
    char *dir;
    char *ns;
    gw_snapshot_cb cb;
    void *ud;
    gw_sf_file_t *files;  /* sorted by path */
    size_t nfiles;
    gw_sf_watch_t **watches;
    size_t nwatches;
    gw_sf_mark_t *marks;
    size_t nmarks, capmarks;
    int ifd;              /* inotify descriptor, -1 when unavailable (polling only) */
    uint64_t lost;        /* inotify queue overflows so far */
    uv_poll_t ipoll;
    uv_timer_t poll, debounce;
    size_t open_handles;
    bool stopping;
    bool root_warned;
};

/* A path found by the walk with its stat (of what it resolves to). */
typedef struct {
    char *path;
    gw_sf_stat_t st;
    bool is_link;
} gw_sf_entry_t;

/* Result of walking the tree: candidate files and directories. */
typedef struct {
    gw_sf_entry_t *files;
    size_t n, cap;
    gw_sf_entry_t *dirs;
    size_t ndirs, capdirs;
} gw_sf_walk_t;

static void entry_add(gw_sf_entry_t **v, size_t *n, size_t *cap, const char *path, const struct stat *st,
                      bool is_link)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = gw_realloc(*v, *cap * sizeof(**v));
    }
    (*v)[*n].path = gw_strdup(path);
    (*v)[*n].st = (gw_sf_stat_t){(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                                 (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec};
    (*v)[*n].is_link = is_link;
    (*n)++;
}

static void walk_free(gw_sf_walk_t *w)
{
    for (size_t i = 0; i < w->n; i++) free(w->files[i].path);
    for (size_t i = 0; i < w->ndirs; i++) free(w->dirs[i].path);
    free(w->files);
    free(w->dirs);
    memset(w, 0, sizeof(*w));
}

/* Recursive scan; ancestors[] (dev, ino pairs) guards against symlinked directory loops.
 * Returns 0, or -1 when dir itself cannot be opened. */
static int walk(gw_sf_walk_t *w, const char *dir, int depth, uint64_t (*ancestors)[2])
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct stat dst;
    if (fstat(dirfd(d), &dst) != 0) memset(&dst, 0, sizeof(dst));
    ancestors[depth][0] = (uint64_t)dst.st_dev;
    ancestors[depth][1] = (uint64_t)dst.st_ino;
    entry_add(&w->dirs, &w->ndirs, &w->capdirs, dir, &dst, false);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *path = gw_asprintf("%s/%s", dir, de->d_name);
        struct stat st;
        gw_manifest_format_t fmt;
        if (stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth + 1 < GW_SF_MAX_DEPTH) {
                bool loop = false;
                for (int i = 0; i <= depth; i++)
                    loop = loop || (ancestors[i][0] == (uint64_t)st.st_dev && ancestors[i][1] == (uint64_t)st.st_ino);
                if (!loop) walk(w, path, depth + 1, ancestors);
            } else if (S_ISREG(st.st_mode) && gw_manifest_format_for_path(de->d_name, &fmt) == GW_OK) {
                struct stat lst;
                bool link = de->d_type == DT_LNK || (de->d_type == DT_UNKNOWN && lstat(path, &lst) == 0 &&
                                                     S_ISLNK(lst.st_mode));
                entry_add(&w->files, &w->n, &w->cap, path, &st, link);
            }
        }
        free(path);
    }
    closedir(d);
    return 0;
}

/* ---- reading one file ---- */

static uint64_t content_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ n;
}


static bool sets_equal(const gw_manifest_set_t *a, const gw_manifest_set_t *b)
{
    if (a->napps != b->napps || a->nsecrets != b->nsecrets) return false;
    for (size_t i = 0; i < a->napps; i++)
        if (!json_equal(a->apps[i], b->apps[i])) return false;
    for (size_t i = 0; i < a->nsecrets; i++)
        if (!json_equal(a->secrets[i], b->secrets[i])) return false;
    return true;
}

static bool is_racy(const gw_sf_stat_t *st)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    return t - st->mtime_ns < GW_SF_RACY_NS;
}

static bool stat_eq(const gw_sf_stat_t *a, const gw_sf_stat_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

static void file_free(gw_sf_file_t *f)
{
    free(f->path);
    gw_manifest_set_free(&f->good);
}

/* ---- what inotify said ---- */

#define GW_SF_INOTIFY_MASK                                                                                    \
    (IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF |     \
     IN_MOVE_SELF | IN_ONLYDIR)
#define GW_SF_DRAIN_ROUNDS 128 /* reads of the inotify queue per drain; more waits for the next */

static void sf_schedule(gw_source_files_t *src);

static gw_sf_mark_t *mark_find(gw_source_files_t *src, const char *path)
{
    for (size_t i = 0; i < src->nmarks; i++)
        if (strcmp(src->marks[i].path, path) == 0) return &src->marks[i];
    return NULL;
}

static gw_sf_mark_t *mark_get(gw_source_files_t *src, const char *path)
{
    gw_sf_mark_t *m = mark_find(src, path);
    if (m) return m;
    if (src->nmarks == src->capmarks) {
        src->capmarks = src->capmarks ? src->capmarks * 2 : 8;
        src->marks = gw_realloc(src->marks, src->capmarks * sizeof(*src->marks));
    }
    m = &src->marks[src->nmarks++];
    *m = (gw_sf_mark_t){gw_strdup(path), false, false};
    return m;
}

/* Keeps only the marks of writes in progress (between scans nothing else matters). */
static void marks_prune(gw_source_files_t *src)
{
    size_t k = 0;
    for (size_t i = 0; i < src->nmarks; i++) {
        if (src->marks[i].writing) {
            src->marks[i].touched = false;
            src->marks[k++] = src->marks[i];
        } else {
            free(src->marks[i].path);
        }
    }
    src->nmarks = k;
}

/* One inotify event; returns whether it calls for a scan. A write in progress (IN_MODIFY) only
 * marks its file; its close (IN_CLOSE_WRITE), a rename, a removal, a new directory or a new
 * symlink (a ConfigMap's ..data swap) call for a scan. */
static bool sf_event(gw_source_files_t *src, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        /* events were lost, a close among them maybe: forget the marks, trust nothing read now */
        src->lost++;
        for (size_t i = 0; i < src->nmarks; i++) src->marks[i].writing = false;
        for (size_t i = 0; i < src->nwatches; i++) src->watches[i]->swapped = true;
        return true;
    }
    bool scan = false;
    for (size_t i = 0; i < src->nwatches; i++) {
        gw_sf_watch_t *w = src->watches[i];
        if (w->wd < 0 || w->wd != ev->wd) continue;
        if (ev->mask & IN_IGNORED) { /* the directory went away: the kernel dropped its watch */
            w->wd = -1;
            scan = true;
            continue;
        }
        if (ev->len == 0 || !ev->name[0]) {
            scan = scan || (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF));
            continue;
        }
        if (ev->mask & IN_ISDIR) {
            if (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) w->swapped = scan = true;
            continue;
        }
        char *path = gw_asprintf("%s/%s", w->path, ev->name);
        gw_manifest_format_t fmt;
        bool manifest = ev->name[0] != '.' && gw_manifest_format_for_path(ev->name, &fmt) == GW_OK;
        if (ev->mask & (IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) {
            w->swapped = scan = true;
        } else if (ev->mask & IN_CREATE) {
            struct stat lst; /* a new regular file is being written: its close is the signal */
            if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) w->swapped = scan = true;
        } else if (manifest && (ev->mask & IN_CLOSE_WRITE)) {
            scan = true;
        }
        if (manifest) {
            gw_sf_mark_t *m = (ev->mask & IN_MODIFY) ? mark_get(src, path) : mark_find(src, path);
            if (m) {
                m->touched = true;
                if (ev->mask & IN_MODIFY) m->writing = true;
                if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) m->writing = false;
            }
        }
        free(path);
    }
    return scan;
}

/* Handles every queued inotify event (bounded); returns false when some may remain queued. */
static bool sf_drain(gw_source_files_t *src)
{
    if (src->ifd < 0) return true;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool scan = false, all = false;
    for (int round = 0; round < GW_SF_DRAIN_ROUNDS && !all; round++) {
        ssize_t n = read(src->ifd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            all = true;
            break;
        }
        for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(const void *)(buf + off);
            scan = sf_event(src, ev) || scan;
            off += sizeof(*ev) + ev->len;
        }
    }
    if (scan) sf_schedule(src);
    return all;
}

static void on_inotify(uv_poll_t *h, int status, int events)
{
    (void)events;
    gw_source_files_t *src = h->data;
    if (src->stopping) return;
    if (status < 0) {
        gw_log(GW_LOG_WARN, "config directory watch failed, polling only", "dir", src->dir, "reason",
               uv_strerror(status), NULL);
        uv_poll_stop(h);
        for (size_t i = 0; i < src->nwatches; i++) src->watches[i]->wd = -1;
        return;
    }
    sf_drain(src);
}

/* The watch of the directory path lies in, or NULL. */
static gw_sf_watch_t *watch_of(gw_source_files_t *src, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    for (size_t i = 0; i < src->nwatches; i++)
        if (strlen(src->watches[i]->path) == n && strncmp(src->watches[i]->path, path, n) == 0)
            return src->watches[i];
    return NULL;
}

/* ---- reading one file ---- */

/* Whether a changed file may be read now, i.e. its write is complete. */
static bool file_ready(gw_source_files_t *src, const gw_sf_file_t *f, const gw_sf_entry_t *e, gw_sf_mode_t mode,
                       bool settled)
{
    if (mode == GW_SF_FORCE) return true;
    const gw_sf_mark_t *m = mark_find(src, f->path);
    if (m && m->writing) return false; /* its close will call for a scan */
    if (mode == GW_SF_POLL) return settled;
    const gw_sf_watch_t *w = watch_of(src, f->path);
    if (!w || w->wd < 0) return false; /* inotify does not see this directory: the poll decides */
    /* a symlink changes with its directory's entries (..data swap); a write to what it points
     * at elsewhere is not seen, so that waits for the poll */
    return !e->is_link || w->swapped_now;
}

/* Whether some process has path open for writing. The kernel refuses a read lease then, and
 * sets a file's new size (a truncating open, a write) before it queues the IN_MODIFY that says
 * so (ext4 can take tens of ms in between), so only this sees a write that has just begun.
 * Needs the file's owner or CAP_LEASE; false when it cannot tell. The lease is dropped at once;
 * were it broken in between, the kernel would signal SIGURG, which is ignored by default. */
static bool writer_present(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return false;
    bool busy = false;
    if (fcntl(fd, F_SETSIG, SIGURG) == 0) {
        if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) fcntl(fd, F_SETLEASE, F_UNLCK);
        else busy = errno == EAGAIN;
    }
    close(fd);
    return busy;
}

/* Reads f again (it resolves to e->st now). Returns true when its objects changed; a read that
 * overlapped a write (an event named the file, or its stat moved meanwhile) is dropped and f
 * stays as it was, to be read after that write (its close calls for a scan). */
static bool file_refresh(gw_source_files_t *src, gw_sf_file_t *f, const gw_sf_entry_t *e, gw_sf_mode_t mode)
{
    char reason[256];
    char *data = NULL;
    size_t len = 0;
    gw_manifest_error_t err = {0, ""};
    gw_sf_mark_t *m = mark_find(src, f->path);
    if (m) m->touched = false;
    uint64_t lost = src->lost;
    int rrc = gw_read_file(f->path, GW_SF_MAX_FILE, &data, &len, reason, sizeof(reason));
    /* in this order: a writer gone by the probe has queued its close before the drain. The poll
     * does not ask (a file held open forever would never apply); it has its two observations. */
    bool overlapped = mode != GW_SF_POLL && writer_present(f->path);
    overlapped = !sf_drain(src) || src->lost != lost || overlapped;
    m = mark_find(src, f->path);
    overlapped = overlapped || (m && (m->touched || m->writing));
    struct stat now;
    if (!overlapped) {
        if (stat(f->path, &now) != 0) {
            overlapped = true;
        } else {
            gw_sf_stat_t ns = {(uint64_t)now.st_dev, (uint64_t)now.st_ino, (uint64_t)now.st_size,
                               (int64_t)now.st_mtim.tv_sec * 1000000000LL + now.st_mtim.tv_nsec};
            overlapped = !stat_eq(&ns, &e->st);
        }
    }
    if (overlapped) {
        if (rrc == GW_OK) {
            explicit_bzero(data, len);
            free(data);
        }
        return false;
    }
    f->st = e->st;
    f->seen = e->st;
    f->seen_valid = true;
    f->racy = is_racy(&e->st);
    bool is_new = !f->loaded;
    f->loaded = true;
    if (rrc != GW_OK) {
        gw_log(GW_LOG_WARN, "config file rejected", "file", f->path, "reason", reason, NULL);
        gw_registry_stats.load_errors[GW_SOURCE_FILES]++;
        f->hash = 0;
        f->racy = false;
        return false;
    }
    uint64_t h = content_hash(data, len);
    if (!is_new && h == f->hash) {
        free(data);
        return false;
    }
    f->hash = h;
    gw_manifest_format_t fmt = GW_MANIFEST_YAML;
    gw_manifest_format_for_path(f->path, &fmt);
    gw_manifest_set_t set = {0};
    int rc = gw_manifest_load(data, len, fmt, src->ns, &set, &err);
    free(data);
    if (rc != GW_OK) {
        char line[16];
        snprintf(line, sizeof(line), "%d", err.line);
        gw_log(GW_LOG_WARN, "config file rejected", "file", f->path, "line", err.line > 0 ? line : NULL, "reason",
               err.reason, NULL);
        gw_registry_stats.load_errors[GW_SOURCE_FILES]++;
        return false;
    }
    bool changed = !sets_equal(&set, &f->good);
    gw_manifest_set_free(&f->good);
    f->good = set;
    return changed;
}

/* Looks at one walked file: reads it when it changed and its write is complete. Returns true
 * when its objects changed. */
static bool file_update(gw_source_files_t *src, gw_sf_file_t *f, const gw_sf_entry_t *e, gw_sf_mode_t mode)
{
    bool need = !f->loaded || !stat_eq(&f->st, &e->st) || f->racy;
    bool settled = f->seen_valid && stat_eq(&f->seen, &e->st);
    if (mode == GW_SF_POLL) {
        f->seen = e->st;
        f->seen_valid = true;
    }
    if (!need || !file_ready(src, f, e, mode, settled)) return false;
    return file_refresh(src, f, e, mode);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const gw_sf_entry_t *)a)->path, ((const gw_sf_entry_t *)b)->path);
}

/* Merges the walk (files sorted by path) into src->files. Returns true on any change. */
static bool merge_files(gw_source_files_t *src, gw_sf_walk_t *w, gw_sf_mode_t mode)
{
    if (w->n) qsort(w->files, w->n, sizeof(*w->files), entry_cmp);
    gw_sf_file_t *nf = gw_calloc(w->n ? w->n : 1, sizeof(gw_sf_file_t));
    bool changed = false;
    size_t o = 0;
    for (size_t i = 0; i < w->n; i++) {
        const char *path = w->files[i].path;
        while (o < src->nfiles && strcmp(src->files[o].path, path) < 0) {
            changed = changed || src->files[o].good.napps || src->files[o].good.nsecrets;
            file_free(&src->files[o++]);
        }
        gw_sf_file_t *f = &nf[i];
        if (o < src->nfiles && strcmp(src->files[o].path, path) == 0) *f = src->files[o++];
        else f->path = gw_strdup(path);
        changed = file_update(src, f, &w->files[i], mode) || changed;
    }
    while (o < src->nfiles) {
        changed = changed || src->files[o].good.napps || src->files[o].good.nsecrets;
        file_free(&src->files[o++]);
    }
    free(src->files);
    src->files = nf;
    src->nfiles = w->n;
    return changed;
}

/* ---- watching ---- */

static void watch_free(gw_sf_watch_t *w)
{
    free(w->path);
    free(w);
}

static void watches_update(gw_source_files_t *src, const gw_sf_walk_t *wk)
{
    for (size_t i = 0; i < src->nwatches; i++) src->watches[i]->seen = false;
    for (size_t d = 0; d < wk->ndirs; d++) {
        const gw_sf_entry_t *e = &wk->dirs[d];
        bool found = false;
        for (size_t i = 0; i < src->nwatches && !found; i++) {
            gw_sf_watch_t *o = src->watches[i];
            if (!o->seen && o->dev == e->st.dev && o->ino == e->st.ino && strcmp(o->path, e->path) == 0)
                found = o->seen = true;
        }
        if (found) continue;
        gw_sf_watch_t *w = gw_calloc(1, sizeof(*w));
        w->path = gw_strdup(e->path);
        w->dev = e->st.dev;
        w->ino = e->st.ino;
        w->seen = true;
        w->swapped_now = true; /* nothing was seen happening in it before: what is there is complete */
        w->wd = -1;
        if (src->ifd >= 0) {
            w->wd = inotify_add_watch(src->ifd, w->path, GW_SF_INOTIFY_MASK);
            if (w->wd < 0)
                gw_log(GW_LOG_WARN, "cannot watch config directory, polling only", "dir", w->path, "reason",
                       strerror(errno), NULL);
        }
        src->watches = gw_realloc(src->watches, (src->nwatches + 1) * sizeof(*src->watches));
        src->watches[src->nwatches++] = w;
    }
    size_t k = 0;
    for (size_t i = 0; i < src->nwatches; i++) {
        gw_sf_watch_t *w = src->watches[i];
        if (w->seen) {
            src->watches[k++] = w;
            continue;
        }
        bool shared = false; /* another path of the same directory keeps the kernel's watch */
        for (size_t j = 0; j < src->nwatches && !shared; j++)
            shared = src->watches[j]->seen && src->watches[j]->wd == w->wd;
        if (w->wd >= 0 && !shared) inotify_rm_watch(src->ifd, w->wd);
        watch_free(w);
    }
    src->nwatches = k;
}

/* ---- publishing ---- */

static void sf_publish(gw_source_files_t *src)
{
    size_t napps = 0, nsecrets = 0;
    for (size_t i = 0; i < src->nfiles; i++) {
        napps += src->files[i].good.napps;
        nsecrets += src->files[i].good.nsecrets;
    }
    json_t **apps = gw_malloc((napps ? napps : 1) * sizeof(json_t *));
    json_t **secrets = gw_malloc((nsecrets ? nsecrets : 1) * sizeof(json_t *));
    size_t a = 0, s = 0;
    for (size_t i = 0; i < src->nfiles; i++) {
        const gw_manifest_set_t *g = &src->files[i].good;
        for (size_t j = 0; j < g->napps; j++) apps[a++] = g->apps[j];
        for (size_t j = 0; j < g->nsecrets; j++) secrets[s++] = g->secrets[j];
    }
    gw_snapshot_t *snap = gw_snapshot_build(apps, napps, secrets, nsecrets, src->ns);
    free(apps);
    free(secrets);
    char c_apps[24], c_apis[24], c_sec[24], c_gen[24];
    snprintf(c_apps, sizeof(c_apps), "%zu", napps);
    snprintf(c_apis, sizeof(c_apis), "%zu", gw_snapshot_api_count(snap));
    snprintf(c_sec, sizeof(c_sec), "%zu", nsecrets);
    snprintf(c_gen, sizeof(c_gen), "%llu", (unsigned long long)gw_snapshot_generation(snap));
    gw_log(GW_LOG_INFO, "config loaded", "dir", src->dir, "applications", c_apps, "apis", c_apis, "secrets", c_sec,
           "generation", c_gen, NULL);
    src->cb(snap, src->ud);
}

/* Walks, adjusts watches, reads the files that changed and are complete; publishes when forced
 * or changed. */
static void sf_scan(gw_source_files_t *src, gw_sf_mode_t mode)
{
    sf_drain(src);
    for (size_t i = 0; i < src->nwatches; i++) {
        src->watches[i]->swapped_now = src->watches[i]->swapped;
        src->watches[i]->swapped = false;
    }
    gw_sf_walk_t w = {0};
    uint64_t ancestors[GW_SF_MAX_DEPTH][2];
    memset(ancestors, 0, sizeof(ancestors));
    if (walk(&w, src->dir, 0, ancestors) != 0) {
        /* keep the current configuration: a vanished root is more likely a remount than intent */
        if (!src->root_warned)
            gw_log(GW_LOG_WARN, "config directory unreadable, keeping the current configuration", "dir", src->dir,
                   "reason", strerror(errno), NULL);
        src->root_warned = true;
        walk_free(&w);
        if (mode == GW_SF_FORCE) sf_publish(src);
        return;
    }
    src->root_warned = false;
    watches_update(src, &w); /* first, so a new directory is watched before its files are read */
    bool changed = merge_files(src, &w, mode);
    walk_free(&w);
    marks_prune(src);
    if (changed || mode == GW_SF_FORCE) sf_publish(src);
}

static void on_debounce(uv_timer_t *t)
{
    gw_source_files_t *src = t->data;
    if (!src->stopping) sf_scan(src, GW_SF_EVENT);
}

static void on_poll(uv_timer_t *t)
{
    gw_source_files_t *src = t->data;
    if (!src->stopping) sf_scan(src, GW_SF_POLL);
}

static void sf_schedule(gw_source_files_t *src)
{
    if (src->stopping || uv_is_active((uv_handle_t *)&src->debounce)) return;
    uv_timer_start(&src->debounce, on_debounce, GW_SF_DEBOUNCE_MS, 0);
}

/* ---- lifetime ---- */

static void sf_free(gw_source_files_t *src)
{
    for (size_t i = 0; i < src->nfiles; i++) file_free(&src->files[i]);
    free(src->files);
    for (size_t i = 0; i < src->nwatches; i++) watch_free(src->watches[i]);
    free(src->watches);
    for (size_t i = 0; i < src->nmarks; i++) free(src->marks[i].path);
    free(src->marks);
    free(src->dir);
    free(src->ns);
    free(src);
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_source_files_t *src = h->data;
    if (h == (uv_handle_t *)&src->ipoll) {
        close(src->ifd); /* drops every watch with it */
        src->ifd = -1;
    }
    if (--src->open_handles == 0 && src->stopping) sf_free(src);
}

gw_source_files_t *gw_source_files_start(uv_loop_t *loop, const char *dir, const char *secrets_namespace,
                                         gw_snapshot_cb cb, void *ud)
{
    DIR *d = opendir(dir);
    if (!d) {
        gw_log(GW_LOG_ERROR, "cannot open config directory", "dir", dir, "reason", strerror(errno), NULL);
        return NULL;
    }
    closedir(d);
    gw_source_files_t *src = gw_calloc(1, sizeof(*src));
    src->loop = loop;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    src->dir = gw_strndup(dir, dl);
    src->ns = gw_strdup(secrets_namespace ? secrets_namespace : "");
    src->cb = cb;
    src->ud = ud;
    uv_timer_init(loop, &src->poll);
    uv_timer_init(loop, &src->debounce);
    src->poll.data = src->debounce.data = src->ipoll.data = src;
    src->open_handles = 2;
    src->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int rc = src->ifd < 0 ? -errno : uv_poll_init(loop, &src->ipoll, src->ifd);
    if (rc == 0) {
        src->ipoll.data = src;
        src->open_handles++;
        uv_poll_start(&src->ipoll, UV_READABLE, on_inotify);
    } else {
        gw_log(GW_LOG_WARN, "cannot watch config directory, polling only", "dir", src->dir, "reason",
               uv_strerror(rc), NULL);
        if (src->ifd >= 0) close(src->ifd);
        src->ifd = -1;
    }
    sf_scan(src, GW_SF_FORCE);
    uv_timer_start(&src->poll, on_poll, GW_SF_POLL_MS, GW_SF_POLL_MS);
    return src;
}

void gw_source_files_stop(gw_source_files_t *src)
{
    if (!src || src->stopping) return;
    src->stopping = true;
    uv_close((uv_handle_t *)&src->poll, on_handle_closed);
    uv_close((uv_handle_t *)&src->debounce, on_handle_closed);
    if (src->ifd >= 0) uv_close((uv_handle_t *)&src->ipoll, on_handle_closed);
}
