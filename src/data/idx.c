/* IDX files (MNIST, Fashion-MNIST): parsing plain or gzipped images with
 * zlib, loading from a path, and atomic writing of uncompressed files. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tyr/idx.h"

/* deflate never compresses better than about 1032:1 (RFC 1951 worst case for
 * runs of one byte); a gzip file of n bytes cannot inflate to more. */
#define IDX_MAX_DEFLATE_RATIO 1032

typedef struct idx_type {
  int code;
  int esize;       /* bytes per element in the file */
  tyr_dtype dtype; /* dtype of the tensor */
  const char *name;
} idx_type;

static const idx_type IDX_TYPES[] = {
    {0x08, 1, TYR_U8, "unsigned byte"}, {0x09, 1, TYR_I32, "signed byte"},
    {0x0B, 2, TYR_I32, "int16"},        {0x0C, 4, TYR_I32, "int32"},
    {0x0D, 4, TYR_F32, "float32"},      {0x0E, 8, TYR_F64, "float64"},
};

static const idx_type *idx_type_of(int code) {
  for (size_t i = 0; i < sizeof IDX_TYPES / sizeof IDX_TYPES[0]; i++)
    if (IDX_TYPES[i].code == code) return &IDX_TYPES[i];
  return NULL;
}

static uint32_t load_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A source of the file's bytes: plain memory or a zlib inflate stream. */
typedef struct idx_src {
  const unsigned char *data;
  size_t len, pos; /* plain */
  bool gz;
  z_stream z;
  bool zend; /* the gzip stream ended */
  int zerr;  /* zlib error (not Z_OK / Z_STREAM_END / Z_BUF_ERROR) */
} idx_src;

/* Reads up to n bytes into out; returns the count read (short at the end of
 * the data or on a zlib error, which sets src->zerr). */
static size_t src_read(idx_src *src, void *out, size_t n) {
  if (!src->gz) {
    size_t k = src->len - src->pos < n ? src->len - src->pos : n;
    memcpy(out, src->data + src->pos, k);
    src->pos += k;
    return k;
  }
  size_t got = 0;
  unsigned char *o = out;
  while (got < n && !src->zend && !src->zerr) {
    size_t want = n - got;
    src->z.next_out = o + got;
    src->z.avail_out = want > UINT32_MAX ? UINT32_MAX : (uInt)want;
    uInt before = src->z.avail_out;
    int rc = inflate(&src->z, Z_NO_FLUSH);
    got += before - src->z.avail_out;
    if (rc == Z_STREAM_END) {
      src->zend = true;
    } else if (rc == Z_BUF_ERROR) {
      if (src->z.avail_in == 0) break; /* input exhausted before the end */
    } else if (rc != Z_OK) {
      src->zerr = rc;
    }
  }
  return got;
}

static void widen(const unsigned char *in, int64_t n, int code, void *out) {
  switch (code) {
  case 0x08:
    memcpy(out, in, (size_t)n);
    break;
  case 0x09:
    for (int64_t i = 0; i < n; i++) ((int32_t *)out)[i] = (int8_t)in[i];
    break;
  case 0x0B:
    for (int64_t i = 0; i < n; i++)
      ((int32_t *)out)[i] = (int16_t)(uint16_t)((uint16_t)in[2 * i] << 8 | in[2 * i + 1]);
    break;
  case 0x0C:
  case 0x0D:
    for (int64_t i = 0; i < n; i++) {
      uint32_t u = load_be32(in + 4 * i);
      memcpy((char *)out + 4 * i, &u, 4);
    }
    break;
  case 0x0E:
    for (int64_t i = 0; i < n; i++) {
      uint64_t u = (uint64_t)load_be32(in + 8 * i) << 32 | load_be32(in + 8 * i + 4);
      memcpy((char *)out + 8 * i, &u, 8);
    }
    break;
  }
}

static tyr_tensor *parse(tyr_site s, const char *name, idx_src *src, size_t filelen) {
  unsigned char hdr[4 + 4 * TYR_MAX_RANK];
  size_t k = src_read(src, hdr, 4);
  if (src->zerr) {
    tyr_raise(TYR_ERR_FORMAT, s, name, "corrupt gzip data (zlib error %d)", src->zerr);
    return NULL;
  }
  if (k < 4) {
    tyr_raise(TYR_ERR_FORMAT, s, name, "truncated header: %zu bytes, the magic needs 4", k);
    return NULL;
  }
  const idx_type *ty = idx_type_of(hdr[2]);
  if (hdr[0] != 0 || hdr[1] != 0 || !ty) {
    tyr_raise(TYR_ERR_FORMAT, s, name,
              "bad magic %02x %02x %02x %02x: not an IDX file (expected 00 00, a type in "
              "08 09 0b 0c 0d 0e, and the rank)",
              hdr[0], hdr[1], hdr[2], hdr[3]);
    return NULL;
  }
  int rank = hdr[3];
  if (rank < 1 || rank > TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_FORMAT, s, name, "rank %d is outside 1..%d", rank, TYR_MAX_RANK);
    return NULL;
  }
  k = src_read(src, hdr + 4, 4 * (size_t)rank);
  if (k < 4 * (size_t)rank) {
    tyr_raise(TYR_ERR_FORMAT, s, name, "truncated header: the rank is %d, the dims need %d bytes",
              rank, 4 * rank);
    return NULL;
  }
  int64_t shape[TYR_MAX_RANK];
  uint64_t n = 1;
  bool overflow = false;
  for (int i = 0; i < rank; i++) {
    shape[i] = load_be32(hdr + 4 + 4 * i);
    if (shape[i] && n > (UINT64_MAX >> 4) / (uint64_t)shape[i]) overflow = true;
    n *= (uint64_t)shape[i];
  }
  char sbuf[160];
  tyr_shape_str(shape, rank, sbuf, sizeof sbuf);
  uint64_t need = n * (uint64_t)ty->esize;
  size_t hlen = 4 + 4 * (size_t)rank;
  uint64_t cap = src->gz ? (uint64_t)filelen * IDX_MAX_DEFLATE_RATIO : filelen - hlen;
  if (overflow || need > cap) {
    if (src->gz || overflow)
      tyr_raise(TYR_ERR_FORMAT, s, name,
                "absurd dims %s: %s of %s elements cannot come from a file of %zu bytes", sbuf,
                overflow ? "far more" : "more", ty->name, filelen);
    else
      tyr_raise(TYR_ERR_FORMAT, s, name,
                "truncated: the dims %s need %llu bytes of data, the file has %llu", sbuf,
                (unsigned long long)need, (unsigned long long)cap);
    return NULL;
  }
  tyr_tensor *t = tyr_empty_at(s, ty->dtype, TYR_DEVICE_CPU, rank, shape);
  if (!t) return NULL;
  unsigned char *raw = tyr_data_ptr(t);
  bool convert = ty->code != 0x08; /* big-endian or narrower than the dtype */
  /* bytes go straight into the tensor when the file's element is as wide as
   * the dtype's (then are swapped in place); narrower ones are staged */
  unsigned char *stage = raw;
  if (ty->esize < (int)tyr_dtype_size(ty->dtype)) {
    stage = malloc(need ? (size_t)need : 1);
    if (!stage) {
      tyr_tensor_free(t);
      tyr_raise(TYR_ERR_MEMORY, s, name, "out of host memory (%llu bytes)",
                (unsigned long long)need);
      return NULL;
    }
  }
  size_t got = src_read(src, stage, (size_t)need);
  const char *what = NULL;
  unsigned char extra;
  if (src->zerr)
    what = "corrupt gzip data";
  else if (got < need)
    what = "truncated";
  else if (src_read(src, &extra, 1) == 1)
    what = "trailing data";
  else if (src->zerr)
    what = "corrupt gzip data";
  else if (src->gz && !src->zend)
    what = "truncated gzip stream";
  if (what) {
    if (stage != raw) free(stage);
    tyr_tensor_free(t);
    if (got < need)
      tyr_raise(TYR_ERR_FORMAT, s, name,
                "%s: the dims %s need %llu bytes of data, the file has %zu", what, sbuf,
                (unsigned long long)need, got);
    else
      tyr_raise(TYR_ERR_FORMAT, s, name, "%s after the %llu bytes of data the dims %s need", what,
                (unsigned long long)need, sbuf);
    return NULL;
  }
  if (convert) {
    if (stage == raw) {
      /* in place: same width, the swap reads each element before writing it */
      widen(raw, (int64_t)n, ty->code, raw);
    } else {
      widen(stage, (int64_t)n, ty->code, raw);
      free(stage);
    }
  }
  return t;
}

static bool is_gzip(const unsigned char *p, size_t len) {
  return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

tyr_tensor *tyr_idx_parse_at(tyr_site s, const char *name, const void *data, size_t len) {
  if (!name) name = "idx";
  if (!data && len) {
    tyr_raise(TYR_ERR_ARG, s, name, "data is NULL");
    return NULL;
  }
  if (len == 0) {
    tyr_raise(TYR_ERR_FORMAT, s, name, "empty file");
    return NULL;
  }
  idx_src src = {.data = data, .len = len};
  if (!is_gzip(data, len)) return parse(s, name, &src, len);
  src.gz = true;
  if (inflateInit2(&src.z, 16 + MAX_WBITS) != Z_OK) {
    tyr_raise(TYR_ERR_MEMORY, s, name, "zlib: cannot start inflating");
    return NULL;
  }
  src.z.next_in = (Bytef *)data;
  src.z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
  tyr_tensor *t = parse(s, name, &src, len);
  inflateEnd(&src.z);
  return t;
}

tyr_tensor *tyr_idx_load_at(tyr_site s, const char *path) {
  if (!path || !path[0]) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_idx_load", "path is %s", path ? "empty" : "NULL");
    return NULL;
  }
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    tyr_raise(TYR_ERR_IO, s, path, "cannot open: %s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    tyr_raise(TYR_ERR_IO, s, path, "not a regular file");
    return NULL;
  }
  size_t len = (size_t)st.st_size;
  unsigned char *buf = malloc(len ? len : 1);
  if (!buf) {
    close(fd);
    tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory (%zu bytes)", len);
    return NULL;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  int e = errno;
  close(fd);
  if (got < len) {
    free(buf);
    tyr_raise(TYR_ERR_IO, s, path, "cannot read: %s", got ? "file shrank" : strerror(e));
    return NULL;
  }
  tyr_tensor *t = tyr_idx_parse_at(s, path, buf, len);
  free(buf);
  return t;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int tyr_idx_save_at(tyr_site s, const char *path, const tyr_tensor *t) {
  const char *op = "tyr_idx_save";
  if (!path || !path[0])
    return tyr_raise(TYR_ERR_ARG, s, op, "path is %s", path ? "empty" : "NULL");
  if (!t) return tyr_raise(TYR_ERR_ARG, s, path, "tensor is NULL");
  if (t->device.type != TYR_CPU || !tyr_is_contiguous(t))
    return tyr_raise(TYR_ERR_ARG, s, path, "the tensor must be a contiguous CPU tensor");
  int code = t->dtype == TYR_U8    ? 0x08
             : t->dtype == TYR_I32 ? 0x0C
             : t->dtype == TYR_F32 ? 0x0D
             : t->dtype == TYR_F64 ? 0x0E
                                   : 0;
  if (!code)
    return tyr_raise(TYR_ERR_DTYPE, s, path, "dtype %s has no IDX type (u8, i32, f32, f64 do)",
                     tyr_dtype_name(t->dtype));
  if (t->rank < 1) return tyr_raise(TYR_ERR_ARG, s, path, "IDX needs rank >= 1");
  for (int i = 0; i < t->rank; i++)
    if (t->shape[i] > UINT32_MAX)
      return tyr_raise(TYR_ERR_ARG, s, path, "dim %d (%lld) does not fit IDX's uint32", i,
                       (long long)t->shape[i]);
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) return tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory");
  snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return tyr_raise(TYR_ERR_IO, s, path, "cannot create a temporary file: %s", strerror(e));
  }
  unsigned char hdr[4 + 4 * TYR_MAX_RANK] = {0, 0, (unsigned char)code, (unsigned char)t->rank};
  for (int i = 0; i < t->rank; i++) {
    uint32_t d = (uint32_t)t->shape[i];
    hdr[4 + 4 * i] = (unsigned char)(d >> 24);
    hdr[5 + 4 * i] = (unsigned char)(d >> 16);
    hdr[6 + 4 * i] = (unsigned char)(d >> 8);
    hdr[7 + 4 * i] = (unsigned char)d;
  }
  int err = 0;
  if (write_all(fd, hdr, 4 + 4 * (size_t)t->rank)) err = errno;
  const unsigned char *p = tyr_data_ptr(t);
  size_t es = tyr_dtype_size(t->dtype), nb = (size_t)tyr_numel(t) * es;
  unsigned char buf[8192];
  for (size_t off = 0; off < nb && !err;) {
    size_t k = nb - off < sizeof buf ? nb - off : sizeof buf;
    for (size_t i = 0; i < k; i += es) /* big-endian: reverse each element's bytes */
      for (size_t b = 0; b < es; b++) buf[i + b] = p[off + i + es - 1 - b];
    if (write_all(fd, buf, k)) err = errno;
    off += k;
  }
  if (!err && fchmod(fd, 0644) != 0) err = errno;
  if (!err && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && !err) err = errno;
  if (!err && rename(tmp, path) != 0) err = errno;
  if (err) {
    unlink(tmp);
    free(tmp);
    return tyr_raise(TYR_ERR_IO, s, path, "cannot write: %s", strerror(err));
  }
  /* the directory entry too */
  char *dcopy = strdup(path);
  if (dcopy) {
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dcopy);
  }
  free(tmp);
  return 0;
}
