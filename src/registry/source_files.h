/* source_files.h: the file registry: reads Application and Secret manifests from a directory
 * tree, watches it, and hands a fresh snapshot to a callback on every effective change.
 * Runs on one libuv loop (the control loop); not thread-safe. */
#ifndef GW_REGISTRY_SOURCE_FILES_H
#define GW_REGISTRY_SOURCE_FILES_H

#include <uv.h>

#include "registry/snapshot.h"

typedef struct gw_source_files_s gw_source_files_t;

/* Called on the loop thread with a new snapshot; the callee takes over the reference. */
typedef void (*gw_snapshot_cb)(gw_snapshot_t *snap, void *ud);

/* Scans dir now (synchronously, so the first snapshot exists before listeners open),
 * calls cb once with the initial snapshot, then watches (inotify on every directory, debounced,
 * plus a 1 s stat poll as a safety net) and calls cb again when a change alters the result.
 * A file is read only once its write is complete: inotify reports its close after writing
 * (IN_CLOSE_WRITE), a rename onto it, or a symlink swap in its directory (a ConfigMap's ..data),
 * and a file with a write in progress (IN_MODIFY, not closed yet, or open for writing by some
 * process: a read lease is refused) waits; a read that overlapped a write is dropped. Changes only the poll sees (a symlink to a file outside the tree, a
 * directory inotify refused) apply once two consecutive polls saw the same size, mtime and inode
 * (1-2 s). A file that fails to read/parse/decode is logged with file, line and reason and its
 * last good content stays in force. Returns NULL and logs if dir cannot be opened at all. */
gw_source_files_t *gw_source_files_start(uv_loop_t *loop, const char *dir, const char *secrets_namespace,
                                         gw_snapshot_cb cb, void *ud);

/* Stops watching and frees everything once the loop has closed its handles. */
void gw_source_files_stop(gw_source_files_t *src);

#endif
