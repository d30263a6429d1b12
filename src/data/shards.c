/* Token shards: validation of the llm.c layout and of headerless uint16
 * files, memory-mapped sets of shards from a file, directory or glob
 * pattern, and atomic writing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/data.h"
#include "tyr/fileio.h"

typedef struct shard {
  char *path;
  void *map;
  size_t maplen;
  const uint16_t *tokens;
  int64_t ntokens;
} shard;

struct tyr_shards {
  int n;
  shard *s;
  int64_t total;
};

static int32_t load_le32(const unsigned char *p) {
  return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24);
}

static void store_le32(unsigned char *p, int32_t v) {
  uint32_t u = (uint32_t)v;
  p[0] = (unsigned char)u;
  p[1] = (unsigned char)(u >> 8);
  p[2] = (unsigned char)(u >> 16);
  p[3] = (unsigned char)(u >> 24);
}

int tyr_shard_parse_at(tyr_site s, const char *name, const void *data, size_t len,
                       tyr_shard_format fmt, const uint16_t **tokens, int64_t *n) {
  const unsigned char *p = data;
  if (!name) name = "shard";
  if (fmt != TYR_SHARD_LLMC && fmt != TYR_SHARD_U16)
    return tyr_raise(TYR_ERR_ARG, s, name, "unknown shard format %d", (int)fmt);
  if (len == 0) return tyr_raise(TYR_ERR_FORMAT, s, name, "empty file");
  if (!data) return tyr_raise(TYR_ERR_ARG, s, name, "data is NULL");
  if (fmt == TYR_SHARD_U16) {
    if (len % 2)
      return tyr_raise(TYR_ERR_FORMAT, s, name,
                       "headerless uint16 file has an odd size (%zu bytes)", len);
    *tokens = (const uint16_t *)data;
    *n = (int64_t)(len / 2);
    return 0;
  }
  if (len < TYR_SHARD_HEADER_BYTES)
    return tyr_raise(TYR_ERR_FORMAT, s, name,
                     "truncated header: the file has %zu bytes, the header needs %d", len,
                     TYR_SHARD_HEADER_BYTES);
  int32_t magic = load_le32(p), version = load_le32(p + 4), count = load_le32(p + 8);
  if (magic != TYR_SHARD_MAGIC)
    return tyr_raise(TYR_ERR_FORMAT, s, name, "bad magic %d (expected %d)", magic, TYR_SHARD_MAGIC);
  if (version != TYR_SHARD_VERSION)
    return tyr_raise(TYR_ERR_FORMAT, s, name, "unsupported version %d (expected %d)", version,
                     TYR_SHARD_VERSION);
  if (count < 0) return tyr_raise(TYR_ERR_FORMAT, s, name, "negative token count %d", count);
  if (count == 0) return tyr_raise(TYR_ERR_FORMAT, s, name, "token count is 0 (no tokens)");
  size_t body = len - TYR_SHARD_HEADER_BYTES;
  if ((uint64_t)count * 2 != (uint64_t)body)
    return tyr_raise(TYR_ERR_FORMAT, s, name,
                     "token count %d needs %lld bytes after the header, the file has %zu", count,
                     (long long)count * 2, body);
  *tokens = (const uint16_t *)(p + TYR_SHARD_HEADER_BYTES);
  *n = count;
  return 0;
}

/* ---- opening --------------------------------------------------------------- */
static void shard_unmap(shard *sh) {
  if (sh->map) munmap(sh->map, sh->maplen);
  free(sh->path);
  memset(sh, 0, sizeof *sh);
}

static int shard_map(tyr_site s, shard *out, const char *path, tyr_shard_format fmt) {
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return tyr_raise(TYR_ERR_IO, s, path, "cannot open: %s", strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return tyr_raise(TYR_ERR_IO, s, path, "cannot stat: %s", strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return tyr_raise(TYR_ERR_IO, s, path, "is a directory, not a shard file");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return tyr_raise(TYR_ERR_IO, s, path, "not a regular file");
  }
  size_t len = (size_t)st.st_size;
  void *map = NULL;
  if (len > 0) {
    map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int e = errno;
      close(fd);
      return tyr_raise(TYR_ERR_IO, s, path, "cannot map %zu bytes: %s", len, strerror(e));
    }
  }
  close(fd);
  const uint16_t *tok = NULL;
  int64_t n = 0;
  int rc = tyr_shard_parse_at(s, path, map, len, fmt, &tok, &n);
  if (rc) {
    if (map) munmap(map, len);
    return rc;
  }
  out->path = strdup(path);
  if (!out->path) {
    munmap(map, len);
    return tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory");
  }
  out->map = map;
  out->maplen = len;
  out->tokens = tok;
  out->ntokens = n;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **v, int n) {
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

static bool has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The *.bin regular files of dir, sorted; *out NULL with *n 0 when none. */
static int list_dir(tyr_site s, const char *dir, char ***out, int *n) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return tyr_raise(TYR_ERR_IO, s, dir, "cannot open directory: %s", strerror(errno));
  char **v = NULL;
  int cnt = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".bin")) continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(len);
    if (!p) goto oom;
    snprintf(p, len, "%s%s%s", dir, has_suffix(dir, "/") ? "" : "/", e->d_name);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(p);
      continue;
    }
    if (cnt == cap) {
      int nc = cap ? cap * 2 : 16;
      char **nv = realloc(v, (size_t)nc * sizeof *nv);
      if (!nv) {
        free(p);
        goto oom;
      }
      v = nv;
      cap = nc;
    }
    v[cnt++] = p;
  }
  closedir(d);
  if (cnt > 1) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
  *out = v;
  *n = cnt;
  return 0;
oom:
  closedir(d);
  free_list(v, cnt);
  return tyr_raise(TYR_ERR_MEMORY, s, dir, "out of host memory");
}

static int list_glob(tyr_site s, const char *pattern, char ***out, int *n) {
  *out = NULL;
  *n = 0;
  glob_t g;
  memset(&g, 0, sizeof g);
  int rc = glob(pattern, GLOB_MARK, NULL, &g);
  if (rc == GLOB_NOMATCH) {
    globfree(&g);
    return tyr_raise(TYR_ERR_IO, s, pattern, "no files match the pattern");
  }
  if (rc != 0) {
    globfree(&g);
    return tyr_raise(rc == GLOB_NOSPACE ? TYR_ERR_MEMORY : TYR_ERR_IO, s, pattern,
                     "cannot expand the pattern (%s)",
                     rc == GLOB_NOSPACE ? "out of memory" : "read error");
  }
  char **v = calloc(g.gl_pathc ? g.gl_pathc : 1, sizeof *v);
  int cnt = 0;
  if (!v) {
    globfree(&g);
    return tyr_raise(TYR_ERR_MEMORY, s, pattern, "out of host memory");
  }
  for (size_t i = 0; i < g.gl_pathc; i++) {
    if (has_suffix(g.gl_pathv[i], "/")) continue; /* a directory */
    if (!(v[cnt] = strdup(g.gl_pathv[i]))) {
      free_list(v, cnt);
      globfree(&g);
      return tyr_raise(TYR_ERR_MEMORY, s, pattern, "out of host memory");
    }
    cnt++;
  }
  globfree(&g);
  if (cnt == 0) {
    free(v);
    return tyr_raise(TYR_ERR_IO, s, pattern, "no files match the pattern (only directories)");
  }
  qsort(v, (size_t)cnt, sizeof *v, cmp_str);
  *out = v;
  *n = cnt;
  return 0;
}

tyr_shards *tyr_shards_open_at(tyr_site s, const char *source, tyr_shard_format fmt) {
  const char *op = "tyr_shards_open";
  if (!source || !source[0]) {
    tyr_raise(TYR_ERR_ARG, s, op, "source is %s", source ? "empty" : "NULL");
    return NULL;
  }
  if (fmt != TYR_SHARD_LLMC && fmt != TYR_SHARD_U16) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s: unknown shard format %d", source, (int)fmt);
    return NULL;
  }
  char **paths = NULL;
  int np = 0;
  struct stat st;
  if (stat(source, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      if (list_dir(s, source, &paths, &np)) return NULL;
      if (np == 0) {
        free(paths);
        tyr_raise(TYR_ERR_IO, s, source, "no *.bin files in the directory");
        return NULL;
      }
    } else {
      paths = malloc(sizeof *paths);
      if (!paths || !(paths[0] = strdup(source))) {
        free(paths);
        tyr_raise(TYR_ERR_MEMORY, s, source, "out of host memory");
        return NULL;
      }
      np = 1;
    }
  } else if (strpbrk(source, "*?[")) {
    if (list_glob(s, source, &paths, &np)) return NULL;
  } else {
    tyr_raise(TYR_ERR_IO, s, source, "cannot open: %s", strerror(errno));
    return NULL;
  }

  tyr_shards *sh = calloc(1, sizeof *sh);
  if (sh) sh->s = calloc((size_t)np, sizeof *sh->s);
  if (!sh || !sh->s) {
    free(sh);
    free_list(paths, np);
    tyr_raise(TYR_ERR_MEMORY, s, source, "out of host memory");
    return NULL;
  }
  for (int i = 0; i < np; i++) {
    if (shard_map(s, &sh->s[i], paths[i], fmt)) {
      free_list(paths, np);
      tyr_shards_close(sh);
      return NULL;
    }
    sh->n++;
    sh->total += sh->s[i].ntokens;
  }
  free_list(paths, np);
  return sh;
}

void tyr_shards_close(tyr_shards *sh) {
  if (!sh) return;
  for (int i = 0; i < sh->n; i++) shard_unmap(&sh->s[i]);
  free(sh->s);
  free(sh);
}

int tyr_shards_count(const tyr_shards *sh) {
  return sh ? sh->n : 0;
}
int64_t tyr_shards_total_tokens(const tyr_shards *sh) {
  return sh ? sh->total : 0;
}
const char *tyr_shards_path(const tyr_shards *sh, int i) {
  return sh && i >= 0 && i < sh->n ? sh->s[i].path : NULL;
}
int64_t tyr_shards_ntokens(const tyr_shards *sh, int i) {
  return sh && i >= 0 && i < sh->n ? sh->s[i].ntokens : 0;
}
const uint16_t *tyr_shards_tokens(const tyr_shards *sh, int i) {
  return sh && i >= 0 && i < sh->n ? sh->s[i].tokens : NULL;
}

/* ---- writing ----------------------------------------------------------------- */
static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static bool host_is_little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

int tyr_shard_write_at(tyr_site s, const char *path, const uint16_t *tokens, int64_t n,
                       tyr_shard_format fmt) {
  const char *op = "tyr_shard_write";
  if (!path || !path[0])
    return tyr_raise(TYR_ERR_ARG, s, op, "path is %s", path ? "empty" : "NULL");
  if (fmt != TYR_SHARD_LLMC && fmt != TYR_SHARD_U16)
    return tyr_raise(TYR_ERR_ARG, s, path, "unknown shard format %d", (int)fmt);
  if (n < 1)
    return tyr_raise(TYR_ERR_ARG, s, path, "token count %lld: a shard needs at least one token",
                     (long long)n);
  if (fmt == TYR_SHARD_LLMC && n > TYR_SHARD_MAX_TOKENS)
    return tyr_raise(TYR_ERR_ARG, s, path, "token count %lld is over the format's limit %d",
                     (long long)n, TYR_SHARD_MAX_TOKENS);
  if (!tokens) return tyr_raise(TYR_ERR_ARG, s, path, "tokens is NULL");

  /* temporary file, fsync, rename, directory fsync (tyr/fileio.h) */
  tyr_atomic_file af;
  int st = tyr_atomic_open_at(s, &af, path);
  if (st) return st;
  int fd = af.fd;
  int err = 0;
  if (fmt == TYR_SHARD_LLMC) {
    unsigned char hdr[TYR_SHARD_HEADER_BYTES];
    memset(hdr, 0, sizeof hdr);
    store_le32(hdr, TYR_SHARD_MAGIC);
    store_le32(hdr + 4, TYR_SHARD_VERSION);
    store_le32(hdr + 8, (int32_t)n);
    if (write_all(fd, hdr, sizeof hdr)) err = errno;
  }
  if (!err) {
    if (host_is_little_endian()) {
      if (write_all(fd, tokens, (size_t)n * 2)) err = errno;
    } else {
      unsigned char buf[8192];
      for (int64_t i = 0; i < n && !err;) {
        size_t k = 0;
        for (; k < sizeof buf && i < n; k += 2, i++) {
          buf[k] = (unsigned char)tokens[i];
          buf[k + 1] = (unsigned char)(tokens[i] >> 8);
        }
        if (write_all(fd, buf, k)) err = errno;
      }
    }
  }
  if (!err && fchmod(fd, 0644) != 0) err = errno;
  if (err) {
    tyr_atomic_abort(&af);
    return tyr_raise(TYR_ERR_IO, s, path, "cannot write: %s", strerror(err));
  }
  return tyr_atomic_commit_at(s, &af);
}
