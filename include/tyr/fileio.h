/* tyr/fileio.h - files that are never half-written.
 *
 * Atomic replacement: a temporary file beside the target
 * ("<path>.tmp.<pid>.<n>"), written, fsync'd, renamed over the target, and
 * the directory fsync'd, so that after a crash or power loss the target is
 * either the old file or the whole new one.  On an error the temporary file
 * is removed, also when the program exits before it commits or aborts (an
 * error whose handler exits: the temporary files still open are removed
 * at exit); one left by a process that was killed is removed by the next
 * tyr_atomic_open of the same target (or tyr_atomic_cleanup_stale), once
 * its process no longer runs.
 *
 *   tyr_atomic_file af;
 *   if (tyr_atomic_open(&af, path)) return -1;
 *   ... write(af.fd, ...) ...
 *   return tyr_atomic_commit(&af);   // or tyr_atomic_abort(&af)
 *
 * JSON-lines logs (metrics.jsonl): appended a whole line at a time and
 * flushed per line; on resume, cut back to the lines of the checkpoint's
 * step (torn last lines and lines past the step removed). */
#ifndef TYR_FILEIO_H
#define TYR_FILEIO_H
#include <stdint.h>
#include <stdio.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_atomic_file {
  int fd;              /* write here; -1 when closed */
  char path[4096];     /* the target */
  char tmp_path[4096]; /* the temporary file */
} tyr_atomic_file;

/* Creates the temporary file for path (removing stale ones first). */
int tyr_atomic_open_at(tyr_site s, tyr_atomic_file *af, const char *path);
#define tyr_atomic_open(af, path) tyr_atomic_open_at(TYR_SITE, (af), (path))
/* fsync, close, rename over the target, fsync the directory.  On failure
 * the temporary file is removed and the target is unchanged. */
int tyr_atomic_commit_at(tyr_site s, tyr_atomic_file *af);
#define tyr_atomic_commit(af) tyr_atomic_commit_at(TYR_SITE, (af))
/* Whether tyr_atomic_open(path) can be expected to succeed, checked
 * before long work whose result goes there: the path names a file (not a
 * directory) in an existing, writable directory, with room in its name for
 * the temporary suffix.  0, or -1 with the reason in why[n]. */
int tyr_atomic_check(const char *path, char *why, size_t n);
/* Closes and removes the temporary file (the target is unchanged). */
void tyr_atomic_abort(tyr_atomic_file *af);
/* Writes n bytes at once (retrying short writes); 0 or -1 with errno. */
int tyr_write_full(int fd, const void *data, size_t n);
/* Writes a whole file atomically. */
int tyr_file_write_atomic_at(tyr_site s, const char *path, const void *data, size_t n);
#define tyr_file_write_atomic(path, data, n) tyr_file_write_atomic_at(TYR_SITE, (path), (data), (n))
/* Removes "<path>.tmp.<pid>.*" files whose process is gone; returns how
 * many were removed. */
int tyr_atomic_cleanup_stale(const char *path);
/* fsync of the directory holding path (0 or -1 with errno). */
int tyr_fsync_parent_dir(const char *path);

/* ---- JSON-lines logs --------------------------------------------------------- */
/* Keeps the complete lines of path whose "step" is at most max_step (lines
 * without a step are kept; a last line without its newline is dropped),
 * rewriting the file atomically.  A missing file is not an error.  Returns
 * the number of lines removed, or a negative value having raised. */
int64_t tyr_jsonl_truncate_at(tyr_site s, const char *path, int64_t max_step);
#define tyr_jsonl_truncate(path, max_step) tyr_jsonl_truncate_at(TYR_SITE, (path), (max_step))
/* Appends one line (printf format, without the newline) and flushes it;
 * 0, or a non-zero status having raised (naming what). */
int tyr_jsonl_write_at(tyr_site s, FILE *f, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define tyr_jsonl_write(f, what, ...) tyr_jsonl_write_at(TYR_SITE, (f), (what), __VA_ARGS__)

/* mkdir -p: creates path and its missing parents (mode 0755); 0, or -1
 * with errno set. */
int tyr_mkdirs(const char *path);

#ifdef __cplusplus
}
#endif
#endif
