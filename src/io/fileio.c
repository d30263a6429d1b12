/* Files that are never half-written: atomic replacement with fsync, stale
 * temporary files, JSON-lines logs cut back on resume; see tyr/fileio.h. */
#include "tyr/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_uint g_counter;

/* ---- temporary files still open, removed at exit -------------------------------
 * A program that stops on an error (the default error handler calls exit)
 * in the middle of a write must not leave the temporary file behind: every
 * open one is listed here, with the process that created it (a child made
 * by fork must not remove its parent's), and an atexit handler removes
 * those of this process.  This covers the files open when exit is called;
 * a thread that creates or commits one while another thread exits races
 * with the process's end, as any write does. */
typedef struct pending_tmp {
  struct pending_tmp *next;
  pid_t pid;
  char path[];
} pending_tmp;
static pending_tmp *g_pending;
static pthread_mutex_t g_pending_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_pending_once = PTHREAD_ONCE_INIT;

static void pending_remove_all(void) {
  pthread_mutex_lock(&g_pending_mu);
  for (pending_tmp *p = g_pending; p; p = p->next)
    if (p->pid == getpid()) unlink(p->path);
  pthread_mutex_unlock(&g_pending_mu);
}
/* a fork while another thread holds the lock must not leave the child
   with it held */
static void pending_lock(void) {
  pthread_mutex_lock(&g_pending_mu);
}
static void pending_unlock(void) {
  pthread_mutex_unlock(&g_pending_mu);
}
static void pending_init(void) {
  pthread_atfork(pending_lock, pending_unlock, pending_unlock);
  atexit(pending_remove_all);
}
static void pending_add(const char *path) {
  pthread_once(&g_pending_once, pending_init);
  size_t n = strlen(path) + 1;
  pending_tmp *p = malloc(sizeof *p + n);
  if (!p) return; /* then only tyr_atomic_cleanup_stale removes it */
  p->pid = getpid();
  memcpy(p->path, path, n);
  pthread_mutex_lock(&g_pending_mu);
  p->next = g_pending;
  g_pending = p;
  pthread_mutex_unlock(&g_pending_mu);
}
static void pending_drop(const char *path) {
  pthread_mutex_lock(&g_pending_mu);
  for (pending_tmp **pp = &g_pending; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->path, path) == 0) {
      pending_tmp *p = *pp;
      *pp = p->next;
      free(p);
      break;
    }
  pthread_mutex_unlock(&g_pending_mu);
}

int tyr_write_full(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* dir and base of path ("." for a bare name) */
static void split_path(const char *path, char *dir, size_t dn, const char **base) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, dn, ".");
    *base = path;
  } else if (slash == path) {
    snprintf(dir, dn, "/");
    *base = slash + 1;
  } else {
    snprintf(dir, dn, "%.*s", (int)(slash - path), path);
    *base = slash + 1;
  }
}

int tyr_fsync_parent_dir(const char *path) {
  char dir[4096];
  const char *base;
  split_path(path, dir, sizeof dir, &base);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = fsync(fd);
  int err = errno;
  close(fd);
  /* some file systems cannot sync a directory: not an error there */
  if (r != 0 && (err == EINVAL || err == EROFS)) r = 0;
  errno = err;
  return r;
}

int tyr_atomic_cleanup_stale(const char *path) {
  char dir[4096];
  const char *base;
  split_path(path, dir, sizeof dir, &base);
  DIR *d = opendir(dir);
  if (!d) return 0;
  size_t bl = strlen(base);
  int removed = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp.", 5) != 0) continue;
    char *end;
    long pid = strtol(n + bl + 5, &end, 10);
    if (end == n + bl + 5 || *end != '.' || pid <= 0) continue;
    if (pid == (long)getpid()) continue;                      /* ours: in use by another thread */
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM) continue; /* that process still runs */
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", dir, n);
    if (unlink(full) == 0) removed++;
  }
  closedir(d);
  return removed;
}

int tyr_atomic_open_at(tyr_site s, tyr_atomic_file *af, const char *path) {
  const char *op = "tyr_atomic_open";
  if (!af) return tyr_raise(TYR_ERR_ARG, s, op, "af is NULL");
  af->fd = -1;
  af->tmp_path[0] = 0;
  if (!path || !path[0])
    return tyr_raise(TYR_ERR_ARG, s, op, "path is %s", path ? "empty" : "NULL");
  if (strlen(path) + 48 >= sizeof af->tmp_path)
    return tyr_raise(TYR_ERR_ARG, s, path, "path is too long");
  snprintf(af->path, sizeof af->path, "%s", path);
  tyr_atomic_cleanup_stale(path);
  for (int attempt = 0; attempt < 100; attempt++) {
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&g_counter, 1));
    af->fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (af->fd >= 0 || errno != EEXIST) break;
  }
  if (af->fd < 0) {
    int err = errno;
    af->tmp_path[0] = 0;
    return tyr_raise(TYR_ERR_IO, s, path, "cannot create a temporary file: %s", strerror(err));
  }
  pending_add(af->tmp_path);
  return 0;
}

int tyr_atomic_check(const char *path, char *why, size_t n) {
  if (!path || !path[0]) return snprintf(why, n, "the path is empty"), -1;
  if (strlen(path) + 48 >= sizeof(((tyr_atomic_file *)0)->tmp_path))
    return snprintf(why, n, "the path is too long"), -1;
  char dir[4096];
  const char *base;
  split_path(path, dir, sizeof dir, &base);
  if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    return snprintf(why, n, "names a directory, not a file"), -1;
  struct stat st;
  if (stat(dir, &st) != 0)
    return snprintf(why, n, "the directory %s: %s", dir, strerror(errno)), -1;
  if (!S_ISDIR(st.st_mode)) return snprintf(why, n, "%s is not a directory", dir), -1;
  /* the temporary name adds ".tmp.<pid>.<n>" to the file's name */
  long name_max = pathconf(dir, _PC_NAME_MAX);
  if (name_max <= 0) name_max = 255;
  if ((long)strlen(base) + 32 > name_max)
    return snprintf(why, n, "the file name is too long (at most %ld bytes here)", name_max - 32),
           -1;
  if (access(dir, W_OK | X_OK) != 0)
    return snprintf(why, n, "the directory %s is not writable: %s", dir, strerror(errno)), -1;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return snprintf(why, n, "is a directory"), -1;
  return 0;
}

void tyr_atomic_abort(tyr_atomic_file *af) {
  if (!af) return;
  if (af->fd >= 0) close(af->fd);
  af->fd = -1;
  if (af->tmp_path[0]) {
    unlink(af->tmp_path);
    pending_drop(af->tmp_path);
  }
  af->tmp_path[0] = 0;
}

int tyr_atomic_commit_at(tyr_site s, tyr_atomic_file *af) {
  if (!af || af->fd < 0 || !af->tmp_path[0])
    return tyr_raise(TYR_ERR_ARG, s, "tyr_atomic_commit", "the file is not open");
  const char *what = NULL;
  int err = 0;
  if (fsync(af->fd) != 0) {
    what = "cannot write (fsync)";
    err = errno;
  }
  int fd = af->fd;
  af->fd = -1;
  if (close(fd) != 0 && !what) {
    what = "cannot write (close)";
    err = errno;
  }
  if (!what && rename(af->tmp_path, af->path) != 0) {
    what = "cannot rename the temporary file over it";
    err = errno;
  }
  if (what) {
    tyr_atomic_abort(af);
    return tyr_raise(TYR_ERR_IO, s, af->path, "%s: %s", what, strerror(err));
  }
  pending_drop(af->tmp_path);
  af->tmp_path[0] = 0;
  if (tyr_fsync_parent_dir(af->path) != 0)
    return tyr_raise(TYR_ERR_IO, s, af->path, "cannot sync its directory: %s", strerror(errno));
  return 0;
}

int tyr_file_write_atomic_at(tyr_site s, const char *path, const void *data, size_t n) {
  tyr_atomic_file af;
  int st = tyr_atomic_open_at(s, &af, path);
  if (st) return st;
  if (tyr_write_full(af.fd, data, n) != 0) {
    int err = errno;
    tyr_atomic_abort(&af);
    return tyr_raise(TYR_ERR_IO, s, path, "cannot write: %s", strerror(err));
  }
  return tyr_atomic_commit_at(s, &af);
}

/* ---- JSON-lines logs ---------------------------------------------------------- */
/* the value of the line's "step" key; false when there is none */
static bool line_step(const char *line, int64_t *step) {
  const char *p = strstr(line, "\"step\":");
  if (!p) return false;
  char *end;
  long long v = strtoll(p + 7, &end, 10);
  if (end == p + 7) return false;
  *step = v;
  return true;
}

int64_t tyr_jsonl_truncate_at(tyr_site s, const char *path, int64_t max_step) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) return 0;
    return -tyr_raise(TYR_ERR_IO, s, path, "cannot open: %s", strerror(errno));
  }
  char *buf = NULL;
  size_t cap = 0, n = 0;
  char chunk[65536];
  size_t r;
  while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (n + r > cap) {
      size_t nc = cap ? cap * 2 : 1 << 16;
      while (nc < n + r) nc *= 2;
      char *nb = realloc(buf, nc);
      if (!nb) {
        free(buf);
        fclose(f);
        return -tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory");
      }
      buf = nb;
      cap = nc;
    }
    memcpy(buf + n, chunk, r);
    n += r;
  }
  bool rerr = ferror(f);
  fclose(f);
  if (rerr) {
    free(buf);
    return -tyr_raise(TYR_ERR_IO, s, path, "cannot read");
  }
  /* compact in place: complete lines with step <= max_step */
  size_t out = 0, i = 0;
  int64_t removed = 0;
  while (i < n) {
    char *nl = memchr(buf + i, '\n', n - i);
    if (!nl) { /* a torn last line */
      removed++;
      break;
    }
    size_t len = (size_t)(nl - (buf + i)) + 1;
    char save = *nl;
    *nl = 0;
    int64_t st;
    bool keep = !line_step(buf + i, &st) || st <= max_step;
    *nl = save;
    if (keep) {
      memmove(buf + out, buf + i, len);
      out += len;
    } else {
      removed++;
    }
    i += len;
  }
  int st = 0;
  if (removed > 0) st = tyr_file_write_atomic_at(s, path, buf ? buf : "", out);
  free(buf);
  return st ? -st : removed;
}

int tyr_jsonl_write_at(tyr_site s, FILE *f, const char *what, const char *fmt, ...) {
  if (!f) return tyr_raise(TYR_ERR_ARG, s, what ? what : "tyr_jsonl_write", "file is NULL");
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= sizeof line - 1)
    return tyr_raise(TYR_ERR_ARG, s, what, "a log line is longer than %zu bytes", sizeof line - 2);
  line[k++] = '\n';
  /* one write of the whole line, then flushed: a crash leaves whole lines */
  if (fwrite(line, 1, (size_t)k, f) != (size_t)k || fflush(f) != 0)
    return tyr_raise(TYR_ERR_IO, s, what, "cannot write: %s", strerror(errno));
  return 0;
}

int tyr_mkdirs(const char *path) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}
