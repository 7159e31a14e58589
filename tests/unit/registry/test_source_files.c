/* test_source_files.c: unit tests of src/registry/source_files.c on a real temporary directory:
 * initial scan, edits seen within a second, broken edits keeping the last good content,
 * deletions, new subdirectories, hidden and symlinked entries, clean shutdown; a file is read
 * only once its write is complete (a write in progress waits for its close, the poll needs two
 * equal observations). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry/decode.h"
#include "registry/source_files.h"
#include "test.h"
#include "util/alloc.h"
#include "util/log.h"

typedef struct {
    gw_snapshot_t *snap;
    int calls;
} gw_test_state_t;

static void on_snapshot(gw_snapshot_t *snap, void *ud)
{
    gw_test_state_t *st = ud;
    if (st->snap) gw_snapshot_unref(st->snap);
    st->snap = snap;
    st->calls++;
}

static bool timed_out;

/* Stops the loop too: a timer that fires at the start of a UV_RUN_ONCE round does not end the
 * round, which would then block until the next event, such as the source's next 1 s poll. A test
 * that needs each wait to end on time (two polls with a write between them) would then see two
 * polls in one wait. */
static void on_timeout(uv_timer_t *t)
{
    timed_out = true;
    uv_stop(t->loop);
}

/* Upper bound for a change to be published. The watcher normally reacts well within 1 s, but
 * under ASan on a loaded machine that can take longer; run_until returns as soon as the snapshot
 * arrives, so a wide bound only costs time when the change is never seen (a failure). */
#define CHANGE_MS 5000

/* Runs the loop until st->calls reaches want or ms pass; returns whether it was reached. */
static bool run_until(uv_loop_t *loop, gw_test_state_t *st, int want, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    timed_out = false;
    uv_timer_start(&t, on_timeout, (uint64_t)ms, 0);
    while (st->calls < want && !timed_out) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return st->calls >= want;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *path = gw_asprintf("%s/%s", dir, name);
    char *tmp = gw_asprintf("%s/.tmp-write", dir);
    FILE *f = fopen(tmp, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
        CHECK_EQ_INT(rename(tmp, path), 0);
    }
    free(path);
    free(tmp);
}

static char *app_yaml(const char *name, const char *host)
{
    return gw_asprintf("apiVersion: " GW_MANIFEST_API_VERSION "\nkind: Application\nmetadata: {name: %s}\n"
                       "spec:\n  services:\n  - displayName: Hello API\n    entries:\n"
                       "    - {type: API, name: v1, targetUrl: 'http://%s/',"
                       " credentials: {type: Basic, secretName: creds}}\n",
                       name, host);
}

static const gw_api_t *find(const gw_test_state_t *st, const char *app)
{
    gw_route_t r;
    gw_snapshot_lookup(st->snap, gw_str(app), GW_STR_LIT("hello-api"), NULL, &r);
    return r.kind == GW_ROUTE_FOUND ? r.api : NULL;
}

static void rm_rf(const char *dir)
{
    char *cmd = gw_asprintf("rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
    free(cmd);
}

static void test_initial_scan(void)
{
    char dir[] = "/tmp/gw-sf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *y = app_yaml("demo", "one");
    write_file(dir, "apps.yaml", y);
    free(y);
    write_file(dir, "secrets.yml", "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n"
                                   "stringData: {username: u, password: p}\n");
    char *sub = gw_asprintf("%s/sub/deeper", dir);
    char *mk = gw_asprintf("mkdir -p '%s' '%s/.hidden' '%s/..data'", sub, dir, dir);
    CHECK_EQ_INT(system(mk), 0);
    free(mk);
    y = app_yaml("nested", "two");
    write_file(sub, "n.yaml", y);
    free(y);
    /* hidden dirs and files, other extensions: ignored */
    char *hid = gw_asprintf("%s/.hidden", dir);
    y = app_yaml("hidden", "x");
    write_file(hid, "h.yaml", y);
    write_file(dir, "notes.txt", y);
    free(y);
    /* a ConfigMap-style symlink to a file in a hidden dir: followed */
    char *data = gw_asprintf("%s/..data", dir);
    y = app_yaml("linked", "three");
    write_file(data, "l.json", "{\"apiVersion\": \"" GW_MANIFEST_API_VERSION "\", \"kind\": \"Application\","
                               " \"metadata\": {\"name\": \"linked\"}, \"spec\": {\"services\": [{\"displayName\":"
                               " \"Hello API\", \"entries\": [{\"type\": \"API\", \"targetUrl\": \"http://three/\"}]}]}}");
    free(y);
    char *link = gw_asprintf("%s/l.json", dir), *target = gw_asprintf("%s/l.json", data);
    CHECK_EQ_INT(symlink(target, link), 0);
    free(link);
    free(target);
    free(data);
    free(hid);
    free(sub);

    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    gw_source_files_t *src = gw_source_files_start(&loop, dir, "kyma-system", on_snapshot, &st);
    CHECK(src != NULL);
    CHECK_EQ_INT(st.calls, 1);
    const gw_api_t *a = find(&st, "demo");
    CHECK(a && a->error == NULL && strcmp(a->authorization, "Basic dTpw") == 0);
    a = find(&st, "nested");
    CHECK(a && strcmp(a->target.hostname, "two") == 0);
    a = find(&st, "linked");
    CHECK(a && strcmp(a->target.hostname, "three") == 0);
    CHECK(find(&st, "hidden") == NULL);
    CHECK_EQ_INT(gw_snapshot_api_count(st.snap), 3);
    /* nothing changes: no new snapshot from the poll */
    CHECK(!run_until(&loop, &st, 2, 1300));
    gw_source_files_stop(src);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_snapshot_unref(st.snap);
    rm_rf(dir);
}

static void test_changes(void)
{
    char dir[] = "/tmp/gw-sf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *y = app_yaml("demo", "one");
    write_file(dir, "apps.yaml", y);
    free(y);
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    gw_source_files_t *src = gw_source_files_start(&loop, dir, "kyma-system", on_snapshot, &st);
    CHECK(src != NULL);
    CHECK_EQ_INT(st.calls, 1);
    const gw_api_t *a = find(&st, "demo");
    CHECK(a && strcmp(a->error, "failed to read API for Hello API service, secret kyma-system/creds not found") == 0);

    /* edit: a new snapshot (normally well within a second) */
    y = app_yaml("demo", "edited");
    write_file(dir, "apps.yaml", y);
    free(y);
    CHECK(run_until(&loop, &st, 2, CHANGE_MS));
    a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "edited") == 0);

    /* a new file in a new subdirectory (its watcher appears with it) */
    char *sub = gw_asprintf("%s/more", dir);
    CHECK_EQ_INT(mkdir(sub, 0755), 0);
    CHECK(run_until(&loop, &st, 3, 300) == false);  /* an empty directory changes nothing */
    write_file(sub, "s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n"
                              "data: {username: dQ==, password: cA==}\n");
    CHECK(run_until(&loop, &st, 3, CHANGE_MS));
    a = find(&st, "demo");
    CHECK(a && a->error == NULL && a->authorization && strcmp(a->authorization, "Basic dTpw") == 0);

    /* a broken edit keeps the last good content and publishes nothing */
    write_file(dir, "apps.yaml", "apiVersion: v1\nkind: [broken\n");
    write_file(sub, "s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ndata: {password: '***'}\n");
    CHECK(!run_until(&loop, &st, 4, 1500));
    a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "edited") == 0 && a->error == NULL);

    /* fixing it publishes again */
    y = app_yaml("demo", "fixed");
    write_file(dir, "apps.yaml", y);
    free(y);
    CHECK(run_until(&loop, &st, 4, CHANGE_MS));
    a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "fixed") == 0);

    /* deleting removes; removing a whole directory removes its files */
    char *p = gw_asprintf("%s/apps.yaml", dir);
    CHECK_EQ_INT(unlink(p), 0);
    free(p);
    CHECK(run_until(&loop, &st, 5, CHANGE_MS));
    CHECK(find(&st, "demo") == NULL);
    CHECK_EQ_INT(gw_snapshot_api_count(st.snap), 0);
    rm_rf(sub);
    CHECK(run_until(&loop, &st, 6, CHANGE_MS));
    free(sub);

    gw_source_files_stop(src);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_snapshot_unref(st.snap);
    rm_rf(dir);
}

static void test_same_size_quick_edit(void)
{
    /* two edits of equal size in quick succession must both be seen (mtime granularity) */
    char dir[] = "/tmp/gw-sf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *y = app_yaml("demo", "aaa");
    write_file(dir, "apps.yaml", y);
    free(y);
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    gw_source_files_t *src = gw_source_files_start(&loop, dir, "kyma-system", on_snapshot, &st);
    char *path = gw_asprintf("%s/apps.yaml", dir);
    y = app_yaml("demo", "bbb");
    FILE *f = fopen(path, "r+");  /* in place: same inode, same size */
    CHECK(f != NULL);
    if (f) {
        fputs(y, f);
        fclose(f);
    }
    free(y);
    free(path);
    CHECK(run_until(&loop, &st, 2, CHANGE_MS));
    const gw_api_t *a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "bbb") == 0);
    gw_source_files_stop(src);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_snapshot_unref(st.snap);
    rm_rf(dir);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_write_in_progress_waits(void)
{
    /* a file truncated (empty), then half written (a valid manifest, but not the whole one), its
     * close still to come, is not read: not by a scan another file's change starts, not by the
     * poll; its close applies it */
    char dir[] = "/tmp/gw-sf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *y = app_yaml("demo", "one");
    write_file(dir, "apps.yaml", y);
    free(y);
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    gw_source_files_t *src = gw_source_files_start(&loop, dir, "kyma-system", on_snapshot, &st);
    CHECK(src != NULL);
    char *path = gw_asprintf("%s/apps.yaml", dir);
    int fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    char *o = app_yaml("other", "x");
    write_file(dir, "other.yaml", o);
    free(o);
    CHECK(run_until(&loop, &st, 2, CHANGE_MS));
    CHECK(find(&st, "other") != NULL);
    const gw_api_t *a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "one") == 0);
    char *d1 = app_yaml("demo", "two"), *d2 = app_yaml("more", "three");
    CHECK(write(fd, d1, strlen(d1)) == (ssize_t)strlen(d1));
    CHECK(!run_until(&loop, &st, 3, 2300)); /* two polls pass: still nothing */
    a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "one") == 0);
    CHECK(write(fd, "---\n", 4) == 4);
    CHECK(write(fd, d2, strlen(d2)) == (ssize_t)strlen(d2));
    CHECK_EQ_INT(close(fd), 0);
    CHECK(run_until(&loop, &st, 3, CHANGE_MS));
    a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "two") == 0);
    CHECK(find(&st, "more") != NULL);
    free(d1);
    free(d2);
    free(path);
    gw_source_files_stop(src);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_snapshot_unref(st.snap);
    rm_rf(dir);
}

static void test_poll_needs_two_equal_observations(void)
{
    /* a symlink to a file outside the tree: inotify on the tree does not see that file change, so
     * the 1 s poll decides, and it reads a change only once two consecutive observations agree:
     * a file changing faster than that is never read, and a change is read no sooner than ~1 s */
    char dir[] = "/tmp/gw-sf-XXXXXX", ext[] = "/tmp/gw-sf-ext-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(mkdtemp(ext) != NULL);
    char *y = app_yaml("demo", "one");
    write_file(ext, "ext.yaml", y);
    free(y);
    char *link = gw_asprintf("%s/ext.yaml", dir), *target = gw_asprintf("%s/ext.yaml", ext);
    CHECK_EQ_INT(symlink(target, link), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    gw_source_files_t *src = gw_source_files_start(&loop, dir, "kyma-system", on_snapshot, &st);
    CHECK(src != NULL);
    const gw_api_t *a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "one") == 0);
    /* rewritten every 250 ms for 2.75 s: no two polls see the same file */
    for (int i = 0; i < 11; i++) {
        y = app_yaml("demo", i % 2 ? "odd" : "even");
        write_file(ext, "ext.yaml", y);
        free(y);
        CHECK(!run_until(&loop, &st, 2, 250));
    }
    y = app_yaml("demo", "final");
    write_file(ext, "ext.yaml", y);
    free(y);
    int64_t t0 = now_ms();
    CHECK(run_until(&loop, &st, 2, CHANGE_MS));
    CHECK(now_ms() - t0 >= 900);
    a = find(&st, "demo");
    CHECK(a && strcmp(a->target.hostname, "final") == 0);
    gw_source_files_stop(src);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_snapshot_unref(st.snap);
    free(link);
    free(target);
    rm_rf(dir);
    rm_rf(ext);
}

static void test_missing_dir(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    CHECK(gw_source_files_start(&loop, "/nonexistent/gw-config", "kyma-system", on_snapshot, &st) == NULL);
    CHECK_EQ_INT(st.calls, 0);
    gw_source_files_stop(NULL);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void test_examples(void)
{
    /* the repository's examples/ directory is a valid config (the demo API's hello.json in it is
     * decoded and ignored as an unknown kind) */
    const char *me = __FILE__;
    const char *tail = strstr(me, "tests/unit/registry/test_source_files.c");
    CHECK(tail != NULL);
    if (!tail) return;
    char *dir = gw_asprintf("%.*sexamples", (int)(tail - me), me);
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_test_state_t st = {0};
    gw_source_files_t *src = gw_source_files_start(&loop, dir, "kyma-system", on_snapshot, &st);
    CHECK(src != NULL);
    CHECK_EQ_INT(st.calls, 1);
    CHECK_EQ_INT(gw_snapshot_api_count(st.snap), 2);
    const gw_api_t *a = find(&st, "demo");
    CHECK(a && a->error == NULL && a->cred_type == GW_CRED_NONE && a->target.port == 8090);
    gw_route_t r;
    gw_str_t v1 = GW_STR_LIT("v1");
    gw_snapshot_lookup(st.snap, GW_STR_LIT("demo"), GW_STR_LIT("basic-api"), &v1, &r);
    CHECK_EQ_INT(r.kind, GW_ROUTE_FOUND);
    if (r.kind == GW_ROUTE_FOUND) {
        CHECK(r.api->error == NULL);
        CHECK_EQ_STR(r.api->authorization, "Basic ZGVtbzpkZW1vLXBhc3N3b3Jk");
        CHECK_EQ_STR(r.api->target.host_header, "127.0.0.1:8090");
        CHECK_EQ_STR(r.api->target.path, "/");
    }
    if (src) gw_source_files_stop(src);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    gw_snapshot_unref(st.snap);
    free(dir);
}

int main(void)
{
    gw_log_set_level(GW_LOG_ERROR + 1);
    GW_RUN(test_initial_scan);
    GW_RUN(test_changes);
    GW_RUN(test_same_size_quick_edit);
    GW_RUN(test_write_in_progress_waits);
    GW_RUN(test_poll_needs_two_equal_observations);
    GW_RUN(test_missing_dir);
    GW_RUN(test_examples);
    return gw_test_summary();
}
