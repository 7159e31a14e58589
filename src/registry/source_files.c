/* source_files.c: the directory registry: scans configDir for manifests, keeps the last good
 * objects of every file, watches (inotify per directory, debounced, plus a 1 s stat poll) and
 * publishes a new snapshot when the result changes. Not for: decoding (decode.c), routing
 * (snapshot.c) or the Kubernetes API; runs on one loop and is not thread-safe. */
#include "registry/source_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "registry/decode.h"
#include "registry/readfile.h"
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

/* One manifest file: the stat and content hash of the last version tried, and the objects of
 * the last version that decoded. */
typedef struct {
    char *path;
    gw_sf_stat_t st;
    uint64_t hash;
    bool racy;
    gw_manifest_set_t good;
} gw_sf_file_t;

typedef struct {
    uv_fs_event_t handle;
    gw_source_files_t *owner;
    char *path;
    uint64_t dev, ino;  /* the directory watched; a new inode at the same path gets a new watcher */
    bool seen;
} gw_sf_watch_t;

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
    uv_timer_t poll, debounce;
    size_t open_handles;
    bool stopping;
    bool root_warned;
};

/* A path found by the walk with its stat. */
typedef struct {
    char *path;
    gw_sf_stat_t st;
} gw_sf_entry_t;

/* Result of walking the tree: candidate files and directories. */
typedef struct {
    gw_sf_entry_t *files;
    size_t n, cap;
    gw_sf_entry_t *dirs;
    size_t ndirs, capdirs;
} gw_sf_walk_t;

static void entry_add(gw_sf_entry_t **v, size_t *n, size_t *cap, const char *path, const struct stat *st)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = gw_realloc(*v, *cap * sizeof(**v));
    }
    (*v)[*n].path = gw_strdup(path);
    (*v)[*n].st = (gw_sf_stat_t){(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                                 (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec};
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
    entry_add(&w->dirs, &w->ndirs, &w->capdirs, dir, &dst);
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
                entry_add(&w->files, &w->n, &w->cap, path, &st);
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

/* Re-reads f (whose stat is now st). Returns true when its objects changed. */
static bool file_refresh(gw_source_files_t *src, gw_sf_file_t *f, const gw_sf_stat_t *st, bool is_new)
{
    f->st = *st;
    f->racy = is_racy(st);
    char reason[256];
    char *data = NULL;
    size_t len = 0;
    gw_manifest_error_t err = {0, ""};
    if (gw_read_file(f->path, GW_SF_MAX_FILE, &data, &len, reason, sizeof(reason)) != GW_OK) {
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

static void file_free(gw_sf_file_t *f)
{
    free(f->path);
    gw_manifest_set_free(&f->good);
}

static bool stat_eq(const gw_sf_stat_t *a, const gw_sf_stat_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const gw_sf_entry_t *)a)->path, ((const gw_sf_entry_t *)b)->path);
}

/* Merges the walk (files sorted by path) into src->files. Returns true on any change. */
static bool merge_files(gw_source_files_t *src, gw_sf_walk_t *w)
{
    if (w->n) qsort(w->files, w->n, sizeof(*w->files), entry_cmp);
    gw_sf_file_t *nf = gw_calloc(w->n ? w->n : 1, sizeof(gw_sf_file_t));
    bool changed = false;
    size_t o = 0;
    for (size_t i = 0; i < w->n; i++) {
        const char *path = w->files[i].path;
        const gw_sf_stat_t *st = &w->files[i].st;
        while (o < src->nfiles && strcmp(src->files[o].path, path) < 0) {
            changed = changed || src->files[o].good.napps || src->files[o].good.nsecrets;
            file_free(&src->files[o++]);
        }
        gw_sf_file_t *f = &nf[i];
        if (o < src->nfiles && strcmp(src->files[o].path, path) == 0) {
            *f = src->files[o++];
            if (!stat_eq(&f->st, st) || f->racy) changed = file_refresh(src, f, st, false) || changed;
        } else {
            f->path = gw_strdup(path);
            changed = file_refresh(src, f, st, true) || changed;
        }
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

static void on_handle_closed(uv_handle_t *h);
static void sf_schedule(gw_source_files_t *src);

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    (void)status;
    gw_sf_watch_t *w = h->data;
    sf_schedule(w->owner);
}

static void watch_close(gw_sf_watch_t *w)
{
    uv_close((uv_handle_t *)&w->handle, on_handle_closed);
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
        w->owner = src;
        w->path = gw_strdup(e->path);
        w->dev = e->st.dev;
        w->ino = e->st.ino;
        w->seen = true;
        uv_fs_event_init(src->loop, &w->handle);
        w->handle.data = w;
        src->open_handles++;
        int rc = uv_fs_event_start(&w->handle, on_fs_event, w->path, 0);
        if (rc) gw_log(GW_LOG_WARN, "cannot watch config directory, polling only", "dir", w->path, "reason",
                       uv_strerror(rc), NULL);
        src->watches = gw_realloc(src->watches, (src->nwatches + 1) * sizeof(*src->watches));
        src->watches[src->nwatches++] = w;
    }
    size_t k = 0;
    for (size_t i = 0; i < src->nwatches; i++) {
        if (src->watches[i]->seen) src->watches[k++] = src->watches[i];
        else watch_close(src->watches[i]);
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

/* Walks, refreshes changed files, adjusts watchers; publishes when forced or changed. */
static void sf_scan(gw_source_files_t *src, bool force)
{
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
        if (force) sf_publish(src);
        return;
    }
    src->root_warned = false;
    bool changed = merge_files(src, &w);
    watches_update(src, &w);
    walk_free(&w);
    if (changed || force) sf_publish(src);
}

static void on_debounce(uv_timer_t *t)
{
    gw_source_files_t *src = t->data;
    if (!src->stopping) sf_scan(src, false);
}

static void on_poll(uv_timer_t *t)
{
    gw_source_files_t *src = t->data;
    if (!src->stopping) sf_scan(src, false);
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
    free(src->watches);
    free(src->dir);
    free(src->ns);
    free(src);
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_source_files_t *src;
    if (h->type == UV_FS_EVENT) {
        gw_sf_watch_t *w = h->data;
        src = w->owner;
        free(w->path);
        free(w);
    } else {
        src = h->data;
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
    src->poll.data = src->debounce.data = src;
    src->open_handles = 2;
    sf_scan(src, true);
    uv_timer_start(&src->poll, on_poll, GW_SF_POLL_MS, GW_SF_POLL_MS);
    return src;
}

void gw_source_files_stop(gw_source_files_t *src)
{
    if (!src || src->stopping) return;
    src->stopping = true;
    uv_close((uv_handle_t *)&src->poll, on_handle_closed);
    uv_close((uv_handle_t *)&src->debounce, on_handle_closed);
    for (size_t i = 0; i < src->nwatches; i++) watch_close(src->watches[i]);
    src->nwatches = 0;
}
