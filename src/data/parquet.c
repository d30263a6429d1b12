/* Parquet files: the footer and schema at open, then one column chunk of
 * one row group at a time: pread the chunk, walk its pages, decompress,
 * decode definition levels and values into dense arrays. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/parquet_internal.h"
#include "tyr/parquet.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Parquet reader assumes a little-endian host"
#endif

struct tyr_parquet_file {
  char *path;
  int fd;
  int64_t file_size;
  int64_t data_end; /* where the footer starts: column data lies before it */
  pq_meta meta;
  int num_columns;
  tyr_parquet_column_info *cols;
  int *leaf; /* per column: index of its first leaf (column chunk) */
  int num_leaves;
  size_t max_alloc;
};

#define PQ_DEFAULT_MAX_ALLOC ((size_t)4 << 30)

/* ---- small helpers ----------------------------------------------------- */

static uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads exactly n bytes at off.  0, or an errno value (EIO for a short
 * read: the file ends early). */
static int pread_full(int fd, void *buf, size_t n, int64_t off) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno ? errno : EIO;
    }
    if (r == 0) return -1;
    p += r;
    n -= (size_t)r;
    off += r;
  }
  return 0;
}

const char *tyr_parquet_type_name(tyr_parquet_type t) {
  switch (t) {
  case TYR_PARQUET_BOOLEAN:
    return "BOOLEAN";
  case TYR_PARQUET_INT32:
    return "INT32";
  case TYR_PARQUET_INT64:
    return "INT64";
  case TYR_PARQUET_INT96:
    return "INT96";
  case TYR_PARQUET_FLOAT:
    return "FLOAT";
  case TYR_PARQUET_DOUBLE:
    return "DOUBLE";
  case TYR_PARQUET_BYTE_ARRAY:
    return "BYTE_ARRAY";
  case TYR_PARQUET_FIXED_LEN_BYTE_ARRAY:
    return "FIXED_LEN_BYTE_ARRAY";
  case TYR_PARQUET_GROUP:
    return "GROUP";
  }
  return "unknown";
}

const char *tyr_parquet_logical_name(tyr_parquet_logical l) {
  switch (l) {
  case TYR_PARQUET_LOGICAL_NONE:
    return "NONE";
  case TYR_PARQUET_LOGICAL_STRING:
    return "STRING";
  case TYR_PARQUET_LOGICAL_ENUM:
    return "ENUM";
  case TYR_PARQUET_LOGICAL_JSON:
    return "JSON";
  case TYR_PARQUET_LOGICAL_BSON:
    return "BSON";
  case TYR_PARQUET_LOGICAL_UUID:
    return "UUID";
  case TYR_PARQUET_LOGICAL_DECIMAL:
    return "DECIMAL";
  case TYR_PARQUET_LOGICAL_DATE:
    return "DATE";
  case TYR_PARQUET_LOGICAL_TIME:
    return "TIME";
  case TYR_PARQUET_LOGICAL_TIMESTAMP:
    return "TIMESTAMP";
  case TYR_PARQUET_LOGICAL_INTEGER:
    return "INTEGER";
  case TYR_PARQUET_LOGICAL_FLOAT16:
    return "FLOAT16";
  case TYR_PARQUET_LOGICAL_LIST:
    return "LIST";
  case TYR_PARQUET_LOGICAL_MAP:
    return "MAP";
  case TYR_PARQUET_LOGICAL_OTHER:
    return "OTHER";
  }
  return "unknown";
}

static size_t type_width(int type) {
  switch (type) {
  case TYR_PARQUET_BOOLEAN:
    return 1;
  case TYR_PARQUET_INT32:
  case TYR_PARQUET_FLOAT:
    return 4;
  case TYR_PARQUET_INT64:
  case TYR_PARQUET_DOUBLE:
    return 8;
  default:
    return 0;
  }
}

static bool type_supported(int type) {
  return type == TYR_PARQUET_BOOLEAN || type == TYR_PARQUET_INT32 || type == TYR_PARQUET_INT64 ||
         type == TYR_PARQUET_FLOAT || type == TYR_PARQUET_DOUBLE || type == TYR_PARQUET_BYTE_ARRAY;
}

/* ---- schema -> columns -------------------------------------------------- */

static void set_logical(tyr_parquet_column_info *ci, const pq_schema_el *e) {
  ci->logical = TYR_PARQUET_LOGICAL_NONE;
  if (e->logical) {
    switch (e->logical) {
    case 1:
      ci->logical = TYR_PARQUET_LOGICAL_STRING;
      break;
    case 2:
      ci->logical = TYR_PARQUET_LOGICAL_MAP;
      break;
    case 3:
      ci->logical = TYR_PARQUET_LOGICAL_LIST;
      break;
    case 4:
      ci->logical = TYR_PARQUET_LOGICAL_ENUM;
      break;
    case 5:
      ci->logical = TYR_PARQUET_LOGICAL_DECIMAL;
      ci->scale = e->scale;
      ci->precision = e->precision;
      break;
    case 6:
      ci->logical = TYR_PARQUET_LOGICAL_DATE;
      break;
    case 7:
    case 8:
      ci->logical = e->logical == 7 ? TYR_PARQUET_LOGICAL_TIME : TYR_PARQUET_LOGICAL_TIMESTAMP;
      ci->unit = (tyr_parquet_time_unit)e->unit;
      ci->utc = e->utc;
      break;
    case 10:
      ci->logical = TYR_PARQUET_LOGICAL_INTEGER;
      ci->int_bits = e->int_bits;
      ci->int_signed = e->int_signed;
      break;
    case 12:
      ci->logical = TYR_PARQUET_LOGICAL_JSON;
      break;
    case 13:
      ci->logical = TYR_PARQUET_LOGICAL_BSON;
      break;
    case 14:
      ci->logical = TYR_PARQUET_LOGICAL_UUID;
      break;
    case 15:
      ci->logical = TYR_PARQUET_LOGICAL_FLOAT16;
      break;
    default:
      ci->logical = TYR_PARQUET_LOGICAL_OTHER;
      break;
    }
    return;
  }
  int c = e->converted;
  if (c < 0) return;
  if (c == 0)
    ci->logical = TYR_PARQUET_LOGICAL_STRING;
  else if (c == 1 || c == 2)
    ci->logical = TYR_PARQUET_LOGICAL_MAP;
  else if (c == 3)
    ci->logical = TYR_PARQUET_LOGICAL_LIST;
  else if (c == 4)
    ci->logical = TYR_PARQUET_LOGICAL_ENUM;
  else if (c == 5) {
    ci->logical = TYR_PARQUET_LOGICAL_DECIMAL;
    ci->scale = e->scale;
    ci->precision = e->precision;
  } else if (c == 6)
    ci->logical = TYR_PARQUET_LOGICAL_DATE;
  else if (c == 7 || c == 8) {
    ci->logical = TYR_PARQUET_LOGICAL_TIME;
    ci->unit = c == 7 ? TYR_PARQUET_MILLIS : TYR_PARQUET_MICROS;
    ci->utc = true;
  } else if (c == 9 || c == 10) {
    ci->logical = TYR_PARQUET_LOGICAL_TIMESTAMP;
    ci->unit = c == 9 ? TYR_PARQUET_MILLIS : TYR_PARQUET_MICROS;
    ci->utc = true;
  } else if (c >= 11 && c <= 18) {
    static const int bits[] = {8, 16, 32, 64};
    ci->logical = TYR_PARQUET_LOGICAL_INTEGER;
    ci->int_bits = bits[(c - 11) % 4];
    ci->int_signed = c >= 15;
  } else if (c == 19)
    ci->logical = TYR_PARQUET_LOGICAL_JSON;
  else if (c == 20)
    ci->logical = TYR_PARQUET_LOGICAL_BSON;
  else
    ci->logical = TYR_PARQUET_LOGICAL_OTHER;
}

/* Builds the top-level column list from the flattened schema.  0, or -1
 * with a message in err. */
static int build_columns(tyr_parquet_file *f, char *err, size_t errn) {
  const pq_meta *m = &f->meta;
  const pq_schema_el *root = &m->schema[0];
  if (root->type != -1) {
    snprintf(err, errn, "corrupt footer: the schema root is not a group");
    return -1;
  }
  int n = root->num_children;
  if (n > m->num_schema - 1) {
    snprintf(err, errn,
             "corrupt footer: the schema root has %d children but only %d elements follow", n,
             m->num_schema - 1);
    return -1;
  }
  f->cols = calloc(n ? (size_t)n : 1, sizeof *f->cols);
  f->leaf = calloc(n ? (size_t)n : 1, sizeof *f->leaf);
  if (!f->cols || !f->leaf) {
    snprintf(err, errn, "out of memory");
    return -1;
  }
  f->num_columns = n;
  int pos = 1, leaves = 0;
  for (int c = 0; c < n; c++) {
    if (pos >= m->num_schema) { /* the subtrees before used up the elements */
      snprintf(err, errn,
               "corrupt footer: the schema root has %d children but its elements end after %d", n,
               c);
      return -1;
    }
    const pq_schema_el *e = &m->schema[pos];
    tyr_parquet_column_info *ci = &f->cols[c];
    f->leaf[c] = leaves;
    ci->name = e->name;
    ci->optional = e->repetition == PQ_OPTIONAL;
    ci->repeated = e->repetition == PQ_REPEATED;
    set_logical(ci, e);
    bool is_leaf = e->type != -1;
    ci->type = is_leaf ? (tyr_parquet_type)e->type : TYR_PARQUET_GROUP;
    ci->readable = is_leaf && !ci->repeated && type_supported(e->type);
    /* walk the subtree without recursion */
    int64_t pending = 1;
    while (pending > 0) {
      if (pos >= m->num_schema) {
        snprintf(err, errn, "corrupt footer: the schema tree has more nodes than its %d elements",
                 m->num_schema);
        return -1;
      }
      const pq_schema_el *x = &m->schema[pos++];
      pending--;
      if (x->type == -1) {
        pending += x->num_children;
        if (pending > m->num_schema) {
          snprintf(err, errn, "corrupt footer: bad child count %d in the schema", x->num_children);
          return -1;
        }
      } else {
        if (x->num_children > 0) {
          snprintf(err, errn, "corrupt footer: schema leaf '%s' has children", x->name);
          return -1;
        }
        leaves++;
      }
    }
  }
  if (pos != m->num_schema) {
    snprintf(err, errn, "corrupt footer: %d schema elements lie outside the schema tree",
             m->num_schema - pos);
    return -1;
  }
  f->num_leaves = leaves;
  return 0;
}

/* Checks the row groups against the schema.  0, or -1 with err. */
static int check_row_groups(tyr_parquet_file *f, char *err, size_t errn) {
  const pq_meta *m = &f->meta;
  int64_t total = 0;
  for (int g = 0; g < m->num_row_groups; g++) {
    const pq_row_group *rg = &m->row_groups[g];
    if (rg->num_chunks != f->num_leaves) {
      snprintf(err, errn,
               "corrupt footer: row group %d has %d column chunks, the schema has %d columns", g,
               rg->num_chunks, f->num_leaves);
      return -1;
    }
    for (int k = 0; k < rg->num_chunks; k++)
      if (!rg->chunks[k].has_meta && !rg->chunks[k].encrypted) {
        snprintf(err, errn, "corrupt footer: row group %d, column chunk %d has no metadata", g, k);
        return -1;
      }
    if (rg->num_rows > INT64_MAX - total) {
      snprintf(err, errn, "corrupt footer: row counts overflow");
      return -1;
    }
    total += rg->num_rows;
  }
  if (total != m->num_rows) {
    snprintf(err, errn, "corrupt footer: the row groups hold %lld rows, the footer says %lld",
             (long long)total, (long long)m->num_rows);
    return -1;
  }
  return 0;
}

/* ---- open / close -------------------------------------------------------- */

void tyr_parquet_close(tyr_parquet_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  tyr_pq_meta_free(&f->meta);
  free(f->cols);
  free(f->leaf);
  free(f->path);
  free(f);
}

tyr_parquet_file *tyr_parquet_open_at(tyr_site s, const char *path) {
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_parquet_open", "path is NULL");
    return NULL;
  }
  tyr_parquet_file *f = calloc(1, sizeof *f);
  uint8_t *footer = NULL;
  char err[512];
  tyr_status st = TYR_ERR_FORMAT;
  if (!f || !(f->path = strdup(path))) {
    free(f);
    tyr_raise(TYR_ERR_MEMORY, s, path, "out of memory");
    return NULL;
  }
  f->max_alloc = PQ_DEFAULT_MAX_ALLOC;
  f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
  if (f->fd < 0) {
    st = TYR_ERR_IO;
    snprintf(err, sizeof err, "cannot open: %s", strerror(errno));
    goto fail;
  }
  struct stat sb;
  if (fstat(f->fd, &sb) != 0) {
    st = TYR_ERR_IO;
    snprintf(err, sizeof err, "cannot stat: %s", strerror(errno));
    goto fail;
  }
  if (!S_ISREG(sb.st_mode)) {
    st = TYR_ERR_IO;
    snprintf(err, sizeof err, "is %s, not a Parquet file",
             S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file");
    goto fail;
  }
  f->file_size = (int64_t)sb.st_size;
  if (f->file_size < 12) {
    snprintf(err, sizeof err, "not a Parquet file: only %lld bytes", (long long)f->file_size);
    goto fail;
  }
  uint8_t head[4], tail[8];
  int e1 = pread_full(f->fd, head, 4, 0),
      e2 = e1 ? e1 : pread_full(f->fd, tail, 8, f->file_size - 8);
  if (e1 || e2) {
    st = TYR_ERR_IO;
    snprintf(err, sizeof err, "cannot read: %s",
             (e1 ? e1 : e2) > 0 ? strerror(e1 ? e1 : e2) : "file ends early");
    goto fail;
  }
  if (memcmp(tail + 4, "PARE", 4) == 0) {
    snprintf(err, sizeof err, "encrypted Parquet files (PARE footer) are not supported");
    goto fail;
  }
  if (memcmp(head, "PAR1", 4) != 0 || memcmp(tail + 4, "PAR1", 4) != 0) {
    snprintf(err, sizeof err, "not a Parquet file: no PAR1 magic at the %s",
             memcmp(head, "PAR1", 4) != 0 ? "start" : "end (truncated?)");
    goto fail;
  }
  uint32_t flen = load_u32(tail);
  if (flen == 0) {
    snprintf(err, sizeof err, "empty footer (footer length 0)");
    goto fail;
  }
  if ((int64_t)flen > f->file_size - 12) {
    snprintf(err, sizeof err, "footer length %u does not fit the file (%lld bytes; truncated?)",
             (unsigned)flen, (long long)f->file_size);
    goto fail;
  }
  f->data_end = f->file_size - 8 - (int64_t)flen;
  footer = malloc(flen);
  if (!footer) {
    st = TYR_ERR_MEMORY;
    snprintf(err, sizeof err, "out of memory for a %u-byte footer", (unsigned)flen);
    goto fail;
  }
  int e3 = pread_full(f->fd, footer, flen, f->data_end);
  if (e3) {
    st = TYR_ERR_IO;
    snprintf(err, sizeof err, "cannot read the footer: %s",
             e3 > 0 ? strerror(e3) : "file ends early");
    goto fail;
  }
  if (tyr_pq_parse_meta(footer, flen, &f->meta, err, sizeof err)) goto fail;
  free(footer);
  footer = NULL;
  if (f->meta.encrypted) {
    snprintf(err, sizeof err, "encrypted Parquet files are not supported");
    goto fail;
  }
  if (build_columns(f, err, sizeof err) || check_row_groups(f, err, sizeof err)) goto fail;
  return f;
fail:
  free(footer);
  tyr_parquet_close(f);
  tyr_raise(st, s, path, "%s", err);
  return NULL;
}

/* ---- accessors ----------------------------------------------------------- */

const char *tyr_parquet_path(const tyr_parquet_file *f) {
  return f ? f->path : NULL;
}
const char *tyr_parquet_created_by(const tyr_parquet_file *f) {
  return f && f->meta.created_by ? f->meta.created_by : "";
}
int64_t tyr_parquet_num_rows(const tyr_parquet_file *f) {
  return f ? f->meta.num_rows : 0;
}
int tyr_parquet_num_row_groups(const tyr_parquet_file *f) {
  return f ? f->meta.num_row_groups : 0;
}
int64_t tyr_parquet_row_group_num_rows(const tyr_parquet_file *f, int rg) {
  if (!f || rg < 0 || rg >= f->meta.num_row_groups) return -1;
  return f->meta.row_groups[rg].num_rows;
}
int tyr_parquet_num_columns(const tyr_parquet_file *f) {
  return f ? f->num_columns : 0;
}
int tyr_parquet_column_index(const tyr_parquet_file *f, const char *name) {
  if (!f || !name) return -1;
  for (int c = 0; c < f->num_columns; c++)
    if (strcmp(f->cols[c].name, name) == 0) return c;
  return -1;
}
const tyr_parquet_column_info *tyr_parquet_column(const tyr_parquet_file *f, int col) {
  if (!f || col < 0 || col >= f->num_columns) return NULL;
  return &f->cols[col];
}
const char *tyr_parquet_column_name(const tyr_parquet_file *f, int col) {
  const tyr_parquet_column_info *ci = tyr_parquet_column(f, col);
  return ci ? ci->name : NULL;
}
tyr_parquet_type tyr_parquet_column_type(const tyr_parquet_file *f, int col) {
  const tyr_parquet_column_info *ci = tyr_parquet_column(f, col);
  return ci ? ci->type : TYR_PARQUET_GROUP;
}
tyr_parquet_logical tyr_parquet_column_logical(const tyr_parquet_file *f, int col) {
  const tyr_parquet_column_info *ci = tyr_parquet_column(f, col);
  return ci ? ci->logical : TYR_PARQUET_LOGICAL_NONE;
}
void tyr_parquet_set_max_alloc(tyr_parquet_file *f, size_t bytes) {
  if (f) f->max_alloc = bytes ? bytes : PQ_DEFAULT_MAX_ALLOC;
}

void tyr_parquet_column_data_free(tyr_parquet_column_data *d) {
  if (!d) return;
  free(d->valid);
  free(d->values);
  free(d->offsets);
  free(d->bytes);
  memset(d, 0, sizeof *d);
}

/* ---- reading a column chunk ---------------------------------------------- */

/* Buffers that live across the column chunks of one call (foreach_string
 * keeps them for the whole file): fresh multi-megabyte buffers per row
 * group cost more in page faults than the decoding itself. */
typedef struct pq_scratch {
  void *chunk; /* the column chunk as read from the file */
  size_t chunk_cap;
  void *page; /* one decompressed page */
  size_t page_cap;
  void *idx;      /* dictionary indices (uint32_t) of one page */
  size_t idx_cap; /* in indices */
  void *valid;    /* the null mask when strings are visited */
  size_t valid_cap;
} pq_scratch;

static void scratch_free(pq_scratch *sc) {
  free(sc->chunk);
  free(sc->page);
  free(sc->idx);
  free(sc->valid);
  memset(sc, 0, sizeof *sc);
}

/* Called for each non-null string instead of copying it out; non-zero
 * stops the read. */
typedef int (*pq_visit_fn)(const char *str, size_t len, void *ctx);

typedef struct rd {
  const tyr_parquet_file *f;
  const pq_chunk *k;
  int type;
  size_t width; /* bytes per value in the output (0 for BYTE_ARRAY) */
  bool optional;
  tyr_parquet_column_data *out;
  int64_t row; /* rows decoded so far */
  int64_t num_rows;
  int64_t bytes_cap;
  int64_t page_off; /* file offset of the current page */
  /* dictionary */
  bool have_dict;
  int64_t dict_n;
  const uint8_t *dict_data; /* PLAIN values (fixed width) */
  uint8_t *dict_bools;
  uint64_t *dict_start; /* BYTE_ARRAY: offset of each value in dict_data */
  uint32_t *dict_len;
  uint8_t *dict_buf; /* owned decompressed dictionary page */
  pq_scratch *sc;
  /* visiting strings (foreach_string) instead of filling out->bytes */
  pq_visit_fn visit;
  void *visit_ctx;
  bool stopped;
  tyr_status status;
  char err[640];
} rd;

__attribute__((format(printf, 3, 4))) static int rd_fail(rd *r, tyr_status st, const char *fmt,
                                                         ...) {
  r->status = st;
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(r->err, sizeof r->err, "page at byte %lld: ", (long long)r->page_off);
  if (n < 0 || r->page_off < 0) n = 0;
  vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* malloc with the file's limit; NULL after setting the error. */
static void *rd_alloc(rd *r, size_t n, const char *what) {
  if (n > r->f->max_alloc) {
    rd_fail(r, TYR_ERR_FORMAT, "%s needs %zu bytes, more than the %zu-byte limit (corrupt file?)",
            what, n, r->f->max_alloc);
    return NULL;
  }
  void *p = malloc(n ? n : 1);
  if (!p) rd_fail(r, TYR_ERR_MEMORY, "out of memory for %s (%zu bytes)", what, n);
  return p;
}

/* Makes *buf hold at least n bytes (contents not kept). */
static void *rd_grow(rd *r, void **buf, size_t *cap, size_t n, const char *what) {
  if (*buf && n <= *cap) return *buf;
  void *p = rd_alloc(r, n, what);
  if (!p) return NULL;
  free(*buf);
  *buf = p;
  *cap = n ? n : 1;
  return p;
}

static int ensure_idx(rd *r, int64_t n) {
  if ((uint64_t)n > r->f->max_alloc / sizeof(uint32_t))
    return rd_fail(r, TYR_ERR_FORMAT, "%lld dictionary indices exceed the allocation limit",
                   (long long)n);
  size_t bytes = r->sc->idx_cap * sizeof(uint32_t);
  if (!rd_grow(r, &r->sc->idx, &bytes, (size_t)n * sizeof(uint32_t), "dictionary indices"))
    return -1;
  r->sc->idx_cap = bytes / sizeof(uint32_t);
  return 0;
}

static int ensure_bytes(rd *r, int64_t need) {
  if (need <= r->bytes_cap) return 0;
  int64_t cap = r->bytes_cap * 2;
  if (cap < need) cap = need;
  if ((uint64_t)cap > r->f->max_alloc) cap = need;
  if ((uint64_t)need > r->f->max_alloc)
    return rd_fail(r, TYR_ERR_FORMAT, "string data of %lld bytes exceeds the %zu-byte limit",
                   (long long)need, r->f->max_alloc);
  char *p = realloc(r->out->bytes, (size_t)cap);
  if (!p)
    return rd_fail(r, TYR_ERR_MEMORY, "out of memory for %lld bytes of strings", (long long)cap);
  r->out->bytes = p;
  r->bytes_cap = cap;
  return 0;
}

/* Decompresses a page body (or points at it when it is not compressed).
 * With owned, into a fresh buffer the caller keeps (*owned); otherwise
 * into the scratch page buffer. */
static int page_data(rd *r, const uint8_t *src, size_t src_n, size_t dst_n, bool compressed,
                     const uint8_t **data, uint8_t **owned) {
  if (!compressed || r->k->codec == PQ_CODEC_UNCOMPRESSED) {
    if (src_n != dst_n)
      return rd_fail(r, TYR_ERR_FORMAT, "uncompressed page of %zu bytes declares %zu bytes", src_n,
                     dst_n);
    *data = src;
    return 0;
  }
  uint8_t *dst;
  if (owned) {
    dst = rd_alloc(r, dst_n, "a decompressed page");
    if (!dst) return -1;
    *owned = dst;
  } else {
    dst = rd_grow(r, &r->sc->page, &r->sc->page_cap, dst_n, "a decompressed page");
    if (!dst) return -1;
  }
  char msg[256];
  if (tyr_pq_decompress(r->k->codec, src, src_n, dst, dst_n, msg, sizeof msg))
    return rd_fail(r, TYR_ERR_FORMAT, "%s", msg);
  *data = dst;
  return 0;
}

static int read_dictionary(rd *r, const pq_page_header *h, const uint8_t *body) {
  if (r->have_dict) return rd_fail(r, TYR_ERR_FORMAT, "a second dictionary page");
  if (r->row > 0) return rd_fail(r, TYR_ERR_FORMAT, "a dictionary page after data pages");
  if (!h->has_body) return rd_fail(r, TYR_ERR_FORMAT, "dictionary page without its header");
  if (h->encoding != PQ_ENC_PLAIN && h->encoding != PQ_ENC_PLAIN_DICTIONARY)
    return rd_fail(r, TYR_ERR_FORMAT, "dictionary page encoding %s is not supported",
                   tyr_pq_encoding_name(h->encoding));
  const uint8_t *d;
  size_t n = (size_t)h->uncompressed_size;
  if (page_data(r, body, (size_t)h->compressed_size, n, true, &d, &r->dict_buf)) return -1;
  int64_t cnt = h->num_values;
  r->dict_data = d;
  if (r->type == TYR_PARQUET_BYTE_ARRAY) {
    if ((uint64_t)cnt > n / 4)
      return rd_fail(r, TYR_ERR_FORMAT, "dictionary of %lld strings does not fit its %zu bytes",
                     (long long)cnt, n);
    r->dict_start = rd_alloc(r, (size_t)cnt * sizeof(uint64_t), "a dictionary");
    r->dict_len =
        r->dict_start ? rd_alloc(r, (size_t)cnt * sizeof(uint32_t), "a dictionary") : NULL;
    if (!r->dict_len) return -1;
    size_t pos = 0;
    for (int64_t i = 0; i < cnt; i++) {
      if (n - pos < 4)
        return rd_fail(r, TYR_ERR_FORMAT, "dictionary string %lld runs past the page",
                       (long long)i);
      uint32_t len = load_u32(d + pos);
      pos += 4;
      if (len > n - pos)
        return rd_fail(r, TYR_ERR_FORMAT, "dictionary string %lld of %u bytes runs past the page",
                       (long long)i, (unsigned)len);
      r->dict_start[i] = pos;
      r->dict_len[i] = len;
      pos += len;
    }
  } else if (r->type == TYR_PARQUET_BOOLEAN) {
    if ((uint64_t)cnt > (uint64_t)n * 8)
      return rd_fail(r, TYR_ERR_FORMAT, "dictionary of %lld booleans does not fit its %zu bytes",
                     (long long)cnt, n);
    r->dict_bools = rd_alloc(r, (size_t)cnt, "a dictionary");
    if (!r->dict_bools) return -1;
    for (int64_t i = 0; i < cnt; i++) r->dict_bools[i] = (d[i >> 3] >> (i & 7)) & 1;
  } else {
    if ((uint64_t)cnt > n / r->width)
      return rd_fail(r, TYR_ERR_FORMAT, "dictionary of %lld %s values does not fit its %zu bytes",
                     (long long)cnt, tyr_parquet_type_name(r->type), n);
  }
  r->dict_n = cnt;
  r->have_dict = true;
  return 0;
}

/* PLAIN values: n present values for rows [row0, row0 + nrows), placed
 * where valid[] is set. */
static int decode_plain(rd *r, const uint8_t *d, size_t n, int64_t row0, int64_t nrows,
                        int64_t present) {
  tyr_parquet_column_data *o = r->out;
  const uint8_t *valid = o->valid + row0;
  bool dense = present == nrows;
  if (r->type == TYR_PARQUET_BYTE_ARRAY) {
    /* pass 1: check every length and total the bytes */
    size_t pos = 0;
    uint64_t total = 0;
    for (int64_t i = 0; i < present; i++) {
      if (n - pos < 4)
        return rd_fail(r, TYR_ERR_FORMAT, "string %lld of %lld runs past the page", (long long)i,
                       (long long)present);
      uint32_t len = load_u32(d + pos);
      pos += 4;
      if (len > n - pos)
        return rd_fail(r, TYR_ERR_FORMAT, "string %lld of %u bytes runs past the page",
                       (long long)i, (unsigned)len);
      pos += len;
      total += len;
    }
    if (r->visit) { /* pass 2: hand each string out from the page itself */
      pos = 0;
      for (int64_t i = 0; i < present; i++) {
        uint32_t len = load_u32(d + pos);
        if (r->visit((const char *)d + pos + 4, len, r->visit_ctx)) {
          r->stopped = true;
          return 0;
        }
        pos += 4 + (size_t)len;
      }
      return 0;
    }
    int64_t base = o->offsets[row0];
    if (ensure_bytes(r, base + (int64_t)total)) return -1;
    /* pass 2: copy */
    char *dst = o->bytes + base;
    int64_t off = base;
    pos = 0;
    for (int64_t i = 0; i < nrows; i++) {
      if (dense || valid[i]) {
        uint32_t len = load_u32(d + pos);
        memcpy(dst, d + pos + 4, len);
        pos += 4 + (size_t)len;
        dst += len;
        off += len;
      }
      o->offsets[row0 + i + 1] = off;
    }
    return 0;
  }
  if (r->type == TYR_PARQUET_BOOLEAN) {
    if ((uint64_t)present > (uint64_t)n * 8)
      return rd_fail(r, TYR_ERR_FORMAT, "%lld booleans do not fit %zu bytes", (long long)present,
                     n);
    uint8_t *out = o->bools + row0;
    int64_t j = 0;
    for (int64_t i = 0; i < nrows; i++)
      if (dense || valid[i]) {
        out[i] = (d[j >> 3] >> (j & 7)) & 1;
        j++;
      }
    return 0;
  }
  size_t w = r->width;
  if ((uint64_t)present > n / w)
    return rd_fail(r, TYR_ERR_FORMAT, "%lld %s values do not fit %zu bytes", (long long)present,
                   tyr_parquet_type_name(r->type), n);
  uint8_t *out = (uint8_t *)o->values + (size_t)row0 * w;
  if (dense) {
    memcpy(out, d, (size_t)present * w);
    return 0;
  }
  const uint8_t *src = d;
  for (int64_t i = 0; i < nrows; i++)
    if (valid[i]) {
      memcpy(out + (size_t)i * w, src, w);
      src += w;
    }
  return 0;
}

/* RLE-encoded booleans: a 4-byte length, then the hybrid at width 1. */
static int decode_rle_bools(rd *r, const uint8_t *d, size_t n, int64_t row0, int64_t nrows,
                            int64_t present) {
  if (n < 4) return rd_fail(r, TYR_ERR_FORMAT, "RLE booleans lack their length");
  uint32_t len = load_u32(d);
  if (len > n - 4)
    return rd_fail(r, TYR_ERR_FORMAT, "RLE boolean length %u runs past the page", (unsigned)len);
  if (ensure_idx(r, present)) return -1;
  pq_rle dec;
  tyr_pq_rle_init(&dec, d + 4, len, 1);
  if (tyr_pq_rle_u32(&dec, ((uint32_t *)r->sc->idx), present))
    return rd_fail(r, TYR_ERR_FORMAT, "corrupt RLE booleans");
  uint8_t *out = r->out->bools + row0;
  const uint8_t *valid = r->out->valid + row0;
  int64_t j = 0;
  for (int64_t i = 0; i < nrows; i++)
    if (valid[i]) out[i] = (uint8_t)((uint32_t *)r->sc->idx)[j++];
  return 0;
}

static int decode_dict(rd *r, const uint8_t *d, size_t n, int64_t row0, int64_t nrows,
                       int64_t present) {
  if (!r->have_dict)
    return rd_fail(r, TYR_ERR_FORMAT, "dictionary-encoded page without a dictionary page");
  if (present == 0) {
    if (r->type == TYR_PARQUET_BYTE_ARRAY && !r->visit)
      for (int64_t i = 0; i < nrows; i++) r->out->offsets[row0 + i + 1] = r->out->offsets[row0];
    return 0;
  }
  if (n < 1) return rd_fail(r, TYR_ERR_FORMAT, "dictionary indices lack their bit width");
  int bw = d[0];
  if (bw > 32)
    return rd_fail(r, TYR_ERR_FORMAT, "dictionary index bit width %d (more than 32)", bw);
  if (ensure_idx(r, present)) return -1;
  pq_rle dec;
  tyr_pq_rle_init(&dec, d + 1, n - 1, bw);
  uint32_t *idx = ((uint32_t *)r->sc->idx);
  if (tyr_pq_rle_u32(&dec, idx, present))
    return rd_fail(r, TYR_ERR_FORMAT,
                   "corrupt dictionary indices (RLE/bit-packed data ends early or is malformed)");
  uint32_t mx = 0;
  for (int64_t i = 0; i < present; i++) mx = idx[i] > mx ? idx[i] : mx;
  if ((int64_t)mx >= r->dict_n)
    return rd_fail(r, TYR_ERR_FORMAT,
                   "dictionary index %u out of range (the dictionary has %lld entries)",
                   (unsigned)mx, (long long)r->dict_n);
  tyr_parquet_column_data *o = r->out;
  const uint8_t *valid = o->valid + row0;
  bool dense = present == nrows;
  if (r->type == TYR_PARQUET_BYTE_ARRAY && r->visit) {
    for (int64_t i = 0; i < present; i++) {
      uint32_t v = idx[i];
      if (r->visit((const char *)r->dict_data + r->dict_start[v], r->dict_len[v], r->visit_ctx)) {
        r->stopped = true;
        return 0;
      }
    }
    return 0;
  }
  if (r->type == TYR_PARQUET_BYTE_ARRAY) {
    uint64_t total = 0;
    for (int64_t i = 0; i < present; i++) total += r->dict_len[idx[i]];
    int64_t base = o->offsets[row0];
    if (total > (uint64_t)INT64_MAX - (uint64_t)base)
      return rd_fail(r, TYR_ERR_FORMAT, "string data overflows");
    if (ensure_bytes(r, base + (int64_t)total)) return -1;
    char *dst = o->bytes + base;
    int64_t off = base, j = 0;
    for (int64_t i = 0; i < nrows; i++) {
      if (dense || valid[i]) {
        uint32_t v = idx[j++];
        uint32_t len = r->dict_len[v];
        memcpy(dst, r->dict_data + r->dict_start[v], len);
        dst += len;
        off += len;
      }
      o->offsets[row0 + i + 1] = off;
    }
    return 0;
  }
  if (r->type == TYR_PARQUET_BOOLEAN) {
    uint8_t *out = o->bools + row0;
    int64_t j = 0;
    for (int64_t i = 0; i < nrows; i++)
      if (dense || valid[i]) out[i] = r->dict_bools[idx[j++]];
    return 0;
  }
  size_t w = r->width;
  uint8_t *out = (uint8_t *)o->values + (size_t)row0 * w;
  const uint8_t *src = r->dict_data;
  int64_t j = 0;
  if (w == 4) {
    for (int64_t i = 0; i < nrows; i++)
      if (dense || valid[i]) memcpy(out + 4 * i, src + 4 * (size_t)idx[j++], 4);
  } else {
    for (int64_t i = 0; i < nrows; i++)
      if (dense || valid[i]) memcpy(out + 8 * i, src + 8 * (size_t)idx[j++], 8);
  }
  return 0;
}

static int decode_values(rd *r, int encoding, const uint8_t *d, size_t n, int64_t row0,
                         int64_t nrows, int64_t present) {
  switch (encoding) {
  case PQ_ENC_PLAIN:
    return decode_plain(r, d, n, row0, nrows, present);
  case PQ_ENC_PLAIN_DICTIONARY:
  case PQ_ENC_RLE_DICTIONARY:
    return decode_dict(r, d, n, row0, nrows, present);
  case PQ_ENC_RLE:
    if (r->type == TYR_PARQUET_BOOLEAN) return decode_rle_bools(r, d, n, row0, nrows, present);
    break;
  default:
    break;
  }
  return rd_fail(r, TYR_ERR_FORMAT, "value encoding %s is not supported for %s columns",
                 tyr_pq_encoding_name(encoding), tyr_parquet_type_name(r->type));
}

/* Definition levels (max level 1) straight into valid[]; returns the
 * number of present values, or -1. */
static int64_t decode_levels(rd *r, const uint8_t *d, size_t n, int64_t row0, int64_t nrows) {
  uint8_t *valid = r->out->valid + row0;
  if (!r->optional) {
    memset(valid, 1, (size_t)nrows);
    return nrows;
  }
  pq_rle dec;
  tyr_pq_rle_init(&dec, d, n, 1);
  if (tyr_pq_rle_u8(&dec, valid, nrows, 1))
    return rd_fail(r, TYR_ERR_FORMAT, "corrupt definition levels");
  int64_t present = 0;
  for (int64_t i = 0; i < nrows; i++) present += valid[i];
  return present;
}

static int check_page_values(rd *r, const pq_page_header *h) {
  if (!h->has_body) return rd_fail(r, TYR_ERR_FORMAT, "data page without its data page header");
  if (h->num_values > r->num_rows - r->row)
    return rd_fail(r, TYR_ERR_FORMAT,
                   "page holds %d values but only %lld of the row group's rows are left",
                   (int)h->num_values, (long long)(r->num_rows - r->row));
  return 0;
}

static int read_data_page_v1(rd *r, const pq_page_header *h, const uint8_t *body) {
  if (check_page_values(r, h)) return -1;
  const uint8_t *d;
  size_t n = (size_t)h->uncompressed_size;
  if (page_data(r, body, (size_t)h->compressed_size, n, true, &d, NULL)) return -1;
  int64_t nv = h->num_values, row0 = r->row;
  size_t pos = 0;
  const uint8_t *lv = NULL;
  size_t lv_n = 0;
  if (r->optional) {
    if (h->def_encoding != PQ_ENC_RLE)
      return rd_fail(r, TYR_ERR_FORMAT, "definition level encoding %s is not supported",
                     tyr_pq_encoding_name(h->def_encoding));
    if (n < 4) return rd_fail(r, TYR_ERR_FORMAT, "definition levels lack their length");
    uint32_t len = load_u32(d);
    if (len > n - 4)
      return rd_fail(r, TYR_ERR_FORMAT, "definition levels of %u bytes run past the page",
                     (unsigned)len);
    lv = d + 4;
    lv_n = len;
    pos = 4 + (size_t)len;
  }
  int64_t present = decode_levels(r, lv, lv_n, row0, nv);
  if (present < 0) return -1;
  if (decode_values(r, h->encoding, d + pos, n - pos, row0, nv, present)) return -1;
  r->row += nv;
  return 0;
}

static int read_data_page_v2(rd *r, const pq_page_header *h, const uint8_t *body) {
  if (check_page_values(r, h)) return -1;
  size_t cn = (size_t)h->compressed_size, un = (size_t)h->uncompressed_size;
  size_t lv_total = (size_t)h->def_length + (size_t)h->rep_length;
  if (lv_total > cn || lv_total > un)
    return rd_fail(r, TYR_ERR_FORMAT, "v2 page levels (%zu bytes) exceed the page (%zu bytes)",
                   lv_total, cn);
  if (h->num_rows != h->num_values)
    return rd_fail(r, TYR_ERR_FORMAT,
                   "v2 page has %d values in %d rows (a flat column has one per row)",
                   (int)h->num_values, (int)h->num_rows);
  int64_t nv = h->num_values, row0 = r->row;
  const uint8_t *lv = body + h->rep_length;
  int64_t present = decode_levels(r, lv, (size_t)h->def_length, row0, nv);
  if (present < 0) return -1;
  if (r->optional && nv - present != h->num_nulls)
    return rd_fail(r, TYR_ERR_FORMAT, "v2 page header says %d nulls, its levels hold %lld",
                   (int)h->num_nulls, (long long)(nv - present));
  const uint8_t *d;
  size_t vn = un - lv_total;
  if (vn == 0) {
    d = body + lv_total; /* all nulls: no values to decompress */
  } else if (page_data(r, body + lv_total, cn - lv_total, vn, h->is_compressed, &d, NULL)) {
    return -1;
  }
  if (decode_values(r, h->encoding, d, vn, row0, nv, present)) return -1;
  r->row += nv;
  return 0;
}

static void rd_release(rd *r) {
  free(r->dict_buf);
  free(r->dict_bools);
  free(r->dict_start);
  free(r->dict_len);
}

/* Walks the pages of a chunk held in buf (file offset base). */
static int read_pages(rd *r, const uint8_t *buf, size_t len, int64_t base) {
  size_t pos = 0;
  while (r->row < r->num_rows && !r->stopped) {
    r->page_off = base + (int64_t)pos;
    if (pos >= len)
      return rd_fail(r, TYR_ERR_FORMAT, "the column chunk ends after %lld of %lld rows",
                     (long long)r->row, (long long)r->num_rows);
    pq_page_header h;
    size_t used;
    char msg[256];
    if (tyr_pq_parse_page_header(buf + pos, len - pos, &h, &used, msg, sizeof msg))
      return rd_fail(r, TYR_ERR_FORMAT, "%s", msg);
    pos += used;
    if ((size_t)h.compressed_size > len - pos)
      return rd_fail(r, TYR_ERR_FORMAT,
                     "page of %d bytes runs past the end of the column chunk (%zu bytes left)",
                     (int)h.compressed_size, len - pos);
    const uint8_t *body = buf + pos;
    pos += (size_t)h.compressed_size;
    int rc;
    switch (h.type) {
    case PQ_PAGE_DICTIONARY:
      rc = read_dictionary(r, &h, body);
      break;
    case PQ_PAGE_DATA:
      rc = read_data_page_v1(r, &h, body);
      break;
    case PQ_PAGE_DATA_V2:
      rc = read_data_page_v2(r, &h, body);
      break;
    case PQ_PAGE_INDEX:
      rc = 0;
      break;
    default:
      rc = rd_fail(r, TYR_ERR_FORMAT, "unknown page type %d", h.type);
    }
    if (rc) return -1;
  }
  return 0;
}

/* Large column chunks are mapped rather than read: no copy out of the page
 * cache and no fresh buffer to fault in (uncompressed pages are decoded
 * in place).  Sets *chunk to NULL when the caller should pread instead.
 * The file must not shrink while it is read (the size is checked first). */
int64_t tyr__parquet_mmap_min = (int64_t)1 << 20;
static int map_chunk(rd *r, int64_t start, int64_t len, void **map, size_t *map_len,
                     const uint8_t **chunk) {
  *chunk = NULL;
  if (len < tyr__parquet_mmap_min) return 0;
  struct stat sb;
  if (fstat(r->f->fd, &sb) != 0) return 0;
  if ((int64_t)sb.st_size < r->f->file_size)
    return rd_fail(r, TYR_ERR_IO, "the file shrank from %lld to %lld bytes since it was opened",
                   (long long)r->f->file_size, (long long)sb.st_size);
  long pg = sysconf(_SC_PAGESIZE);
  int64_t astart = start - start % (pg > 0 ? pg : 4096);
  size_t n = (size_t)(len + (start - astart));
  void *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, r->f->fd, (off_t)astart);
  if (m == MAP_FAILED) return 0; /* not mappable: read it */
  *map = m;
  *map_len = n;
  *chunk = (const uint8_t *)m + (start - astart);
  return 0;
}

/* Reads column col of row group rg: into *out, or, with visit, handing
 * each non-null string to visit (out then only carries the row count).
 * *stopped is set when visit asked to stop. */
static int read_column(tyr_site s, const tyr_parquet_file *f, int rg, int col,
                       tyr_parquet_column_data *out, const char *op, pq_scratch *sc,
                       pq_visit_fn visit, void *visit_ctx, bool *stopped) {
  if (!out) return tyr_raise(TYR_ERR_ARG, s, op, "output is NULL");
  memset(out, 0, sizeof *out);
  if (rg < 0 || rg >= f->meta.num_row_groups)
    return tyr_raise(TYR_ERR_ARG, s, op, "row group %d out of range (the file has %d)", rg,
                     f->meta.num_row_groups);
  if (col < 0 || col >= f->num_columns)
    return tyr_raise(TYR_ERR_ARG, s, op, "column %d out of range (the file has %d)", col,
                     f->num_columns);
  const tyr_parquet_column_info *ci = &f->cols[col];
  const pq_row_group *g = &f->meta.row_groups[rg];
  if (!ci->readable) {
    const char *why = ci->type == TYR_PARQUET_GROUP ? "nested columns are not supported"
                      : ci->repeated                ? "repeated columns are not supported"
                                                    : "its physical type is not supported";
    return tyr_raise(TYR_ERR_FORMAT, s, op, "column '%s' (%s): %s", ci->name,
                     tyr_parquet_type_name(ci->type), why);
  }
  const pq_chunk *k = &g->chunks[f->leaf[col]];
  rd r = {.f = f,
          .k = k,
          .type = ci->type,
          .width = type_width(ci->type),
          .optional = ci->optional,
          .out = out,
          .num_rows = g->num_rows,
          .page_off = -1,
          .sc = sc,
          .visit = visit,
          .visit_ctx = visit_ctx};
  int64_t start = 0, len = 0;
  void *map = NULL;
  size_t map_len = 0;
  const uint8_t *chunk = NULL;
  if (r.type == TYR_PARQUET_BYTE_ARRAY) r.width = 0;
  if (visit && r.type != TYR_PARQUET_BYTE_ARRAY) {
    rd_fail(&r, TYR_ERR_DTYPE, "not a string column");
    goto fail;
  }
  if (k->encrypted) {
    rd_fail(&r, TYR_ERR_FORMAT, "encrypted columns are not supported");
    goto fail;
  }
  if (k->external) {
    rd_fail(&r, TYR_ERR_FORMAT, "column data in another file (file_path) is not supported");
    goto fail;
  }
  if (k->type != (int)ci->type) {
    rd_fail(&r, TYR_ERR_FORMAT, "column chunk type %s differs from the schema's %s",
            tyr_parquet_type_name(k->type), tyr_parquet_type_name(ci->type));
    goto fail;
  }
  if (k->codec != PQ_CODEC_UNCOMPRESSED && k->codec != PQ_CODEC_SNAPPY &&
      k->codec != PQ_CODEC_GZIP && k->codec != PQ_CODEC_ZSTD) {
    rd_fail(&r, TYR_ERR_FORMAT,
            "compression codec %s is not supported (only UNCOMPRESSED, SNAPPY, GZIP, ZSTD)",
            tyr_pq_codec_name(k->codec));
    goto fail;
  }
  if (k->num_values != g->num_rows) {
    rd_fail(&r, TYR_ERR_FORMAT, "column chunk holds %lld values, the row group %lld rows",
            (long long)k->num_values, (long long)g->num_rows);
    goto fail;
  }
  start = k->data_page_offset;
  if (k->dictionary_page_offset > 0 && k->dictionary_page_offset < start)
    start = k->dictionary_page_offset;
  len = k->total_compressed;
  if (start < 4 || start > f->data_end || len > f->data_end - start) {
    rd_fail(&r, TYR_ERR_FORMAT,
            "column chunk at bytes [%lld, +%lld) lies outside the data area [4, %lld)",
            (long long)start, (long long)len, (long long)f->data_end);
    goto fail;
  }
  /* output arrays */
  int64_t n = g->num_rows;
  size_t vw = r.width ? r.width : sizeof(int64_t);
  if ((uint64_t)n >= f->max_alloc / vw) {
    rd_fail(&r, TYR_ERR_FORMAT, "%lld rows exceed the %zu-byte allocation limit", (long long)n,
            f->max_alloc);
    goto fail;
  }
  out->type = ci->type;
  out->num_rows = n;
  if (visit) {
    out->valid = rd_grow(&r, &sc->valid, &sc->valid_cap, (size_t)n, "the null mask");
    if (!out->valid) goto fail;
  } else {
    out->valid = rd_alloc(&r, (size_t)n, "the null mask");
    if (!out->valid) goto fail;
    if (r.type == TYR_PARQUET_BYTE_ARRAY) {
      out->offsets = calloc((size_t)n + 1, sizeof(int64_t));
      if (!out->offsets) {
        rd_fail(&r, TYR_ERR_MEMORY, "out of memory for %lld rows", (long long)n);
        goto fail;
      }
      if (ensure_bytes(&r, 1)) goto fail;
    } else {
      out->values = calloc(n ? (size_t)n : 1, r.width);
      if (!out->values) {
        rd_fail(&r, TYR_ERR_MEMORY, "out of memory for %lld rows", (long long)n);
        goto fail;
      }
    }
  }
  if (map_chunk(&r, start, len, &map, &map_len, &chunk)) goto fail;
  if (!chunk) {
    if (!rd_grow(&r, &sc->chunk, &sc->chunk_cap, (size_t)len, "the column chunk")) goto fail;
    int e = pread_full(f->fd, sc->chunk, (size_t)len, start);
    if (e) {
      rd_fail(&r, e > 0 ? TYR_ERR_IO : TYR_ERR_FORMAT, "cannot read the column chunk: %s",
              e > 0 ? strerror(e) : "the file ends early (changed since it was opened?)");
      goto fail;
    }
    chunk = (const uint8_t *)sc->chunk;
  }
  if (read_pages(&r, chunk, (size_t)len, start)) goto fail;
  if (map) munmap(map, map_len);
  rd_release(&r);
  if (visit) {
    *stopped = r.stopped;
    out->valid = NULL; /* the scratch buffer's */
    return 0;
  }
  int64_t nulls = 0;
  for (int64_t i = 0; i < n; i++) nulls += !out->valid[i];
  out->num_nulls = nulls;
  if (r.type == TYR_PARQUET_BYTE_ARRAY) out->nbytes = out->offsets[n];
  return 0;
fail:
  if (map) munmap(map, map_len);
  rd_release(&r);
  if (visit) out->valid = NULL;
  tyr_parquet_column_data_free(out);
  return tyr_raise(r.status ? r.status : TYR_ERR_FORMAT, s, op, "column '%s', row group %d: %s",
                   ci->name, rg, r.err);
}

int tyr_parquet_read_column_at(tyr_site s, tyr_parquet_file *f, int rg, int col,
                               tyr_parquet_column_data *out) {
  if (!f) {
    if (out) memset(out, 0, sizeof *out);
    return tyr_raise(TYR_ERR_ARG, s, "tyr_parquet_read_column", "file is NULL");
  }
  pq_scratch sc = {0};
  int rc = read_column(s, f, rg, col, out, f->path, &sc, NULL, NULL, NULL);
  scratch_free(&sc);
  return rc;
}

int tyr_parquet_foreach_string_at(tyr_site s, const char *path, const char *column,
                                  int (*fn)(const char *str, size_t len, void *ctx), void *ctx) {
  if (!fn || !column)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_parquet_foreach_string", "%s is NULL",
                     fn ? "column" : "fn");
  tyr_parquet_file *f = tyr_parquet_open_at(s, path);
  if (!f) {
    const tyr_error *e = tyr_error_last();
    return e ? (int)e->status : TYR_ERR_IO;
  }
  int col = tyr_parquet_column_index(f, column);
  if (col < 0) {
    char names[512] = "";
    size_t used = 0;
    for (int c = 0; c < f->num_columns && used < sizeof names; c++)
      used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", c ? ", " : "",
                               f->cols[c].name);
    tyr_parquet_close(f);
    return tyr_raise(TYR_ERR_ARG, s, path, "no column '%s' (the columns are: %s)", column, names);
  }
  if (f->cols[col].type != TYR_PARQUET_BYTE_ARRAY) {
    tyr_parquet_type t = f->cols[col].type;
    tyr_parquet_close(f);
    return tyr_raise(TYR_ERR_DTYPE, s, path, "column '%s' is %s, not a string (BYTE_ARRAY) column",
                     column, tyr_parquet_type_name(t));
  }
  int rc = 0;
  bool stop = false;
  pq_scratch sc = {0};
  for (int g = 0; g < f->meta.num_row_groups && !stop && rc == 0; g++) {
    tyr_parquet_column_data d;
    rc = read_column(s, f, g, col, &d, path, &sc, fn, ctx, &stop);
  }
  scratch_free(&sc);
  tyr_parquet_close(f);
  return rc;
}
