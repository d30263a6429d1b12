/* Parquet footer (FileMetaData) and page header decoding from the Thrift
 * compact protocol.  Only the fields the reader uses are kept; the rest are
 * skipped.  Field numbers follow parquet.thrift. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/parquet_internal.h"
#include "data/thrift_compact.h"

typedef struct mp {
  tyr_thrift t;
  char *err;
  size_t errn;
  const char *what; /* "footer" or "page header" */
} mp;

/* A semantic error: formats into err and stops the decoder. */
__attribute__((format(printf, 2, 3))) static void mp_fail(mp *c, const char *fmt, ...) {
  if (tyr_thrift_failed(&c->t)) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->errn, fmt, ap);
  va_end(ap);
  tyr_thrift_fail(&c->t, "semantic");
}

static int mp_finish(mp *c) {
  if (!tyr_thrift_failed(&c->t)) return 0;
  if (strcmp(c->t.err, "semantic") != 0)
    snprintf(c->err, c->errn, "corrupt %s (thrift) at byte %zu: %s", c->what, c->t.err_offset,
             c->t.err);
  return -1;
}

static int32_t rd_i32(mp *c, uint8_t type) {
  return (int32_t)tyr_thrift_read_int(&c->t, type, INT32_MIN, INT32_MAX);
}
static int64_t rd_i64(mp *c, uint8_t type) {
  return tyr_thrift_read_int(&c->t, type, INT64_MIN, INT64_MAX);
}
static int rd_enum(mp *c, uint8_t type) {
  return (int)tyr_thrift_read_int(&c->t, type, 0, INT32_MAX);
}

static char *rd_string(mp *c, uint8_t type) {
  const uint8_t *d;
  size_t n;
  if (!tyr_thrift_read_binary(&c->t, type, &d, &n)) return NULL;
  if (memchr(d, 0, n)) {
    mp_fail(c, "corrupt %s: a name contains a NUL byte", c->what);
    return NULL;
  }
  char *s = malloc(n + 1);
  if (!s) {
    mp_fail(c, "out of memory");
    return NULL;
  }
  memcpy(s, d, n);
  s[n] = 0;
  return s;
}

/* ---- schema ------------------------------------------------------------ */

static void parse_time_unit(mp *c, pq_schema_el *e) {
  tyr_thrift_field f;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (f.id >= 1 && f.id <= 3 && f.type == TYR_THRIFT_STRUCT)
      e->unit = f.id == 1 ? TYR_PARQUET_MILLIS : f.id == 2 ? TYR_PARQUET_MICROS : TYR_PARQUET_NANOS;
    tyr_thrift_skip(&c->t, f.type);
  }
  tyr_thrift_struct_end(&c->t);
}

/* The members of LogicalType that carry parameters. */
static void parse_logical_params(mp *c, pq_schema_el *e, int which) {
  tyr_thrift_field f;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (which == 5 && f.id == 1)
      e->scale = rd_i32(c, f.type);
    else if (which == 5 && f.id == 2)
      e->precision = rd_i32(c, f.type);
    else if ((which == 7 || which == 8) && f.id == 1)
      e->utc = tyr_thrift_read_bool(&c->t, f.type, false);
    else if ((which == 7 || which == 8) && f.id == 2 && f.type == TYR_THRIFT_STRUCT)
      parse_time_unit(c, e);
    else if (which == 10 && f.id == 1)
      e->int_bits = (int)tyr_thrift_read_int(&c->t, f.type, 0, 64);
    else if (which == 10 && f.id == 2)
      e->int_signed = tyr_thrift_read_bool(&c->t, f.type, false);
    else
      tyr_thrift_skip(&c->t, f.type);
  }
  tyr_thrift_struct_end(&c->t);
}

static void parse_logical(mp *c, pq_schema_el *e) {
  tyr_thrift_field f;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (f.type != TYR_THRIFT_STRUCT) {
      tyr_thrift_skip(&c->t, f.type);
      continue;
    }
    e->logical = f.id;
    if (f.id == 5 || f.id == 7 || f.id == 8 || f.id == 10)
      parse_logical_params(c, e, f.id);
    else
      tyr_thrift_skip(&c->t, f.type);
  }
  tyr_thrift_struct_end(&c->t);
}

static void parse_schema_el(mp *c, pq_schema_el *e) {
  tyr_thrift_field f;
  e->type = -1;
  e->repetition = -1;
  e->converted = -1;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    switch (f.id) {
    case 1:
      e->type = (int)tyr_thrift_read_int(&c->t, f.type, 0, 7);
      break;
    case 2:
      e->type_length = rd_i32(c, f.type);
      break;
    case 3:
      e->repetition = (int)tyr_thrift_read_int(&c->t, f.type, 0, 2);
      break;
    case 4:
      if (e->name) {
        mp_fail(c, "corrupt footer: a schema element has two names");
        break;
      }
      e->name = rd_string(c, f.type);
      break;
    case 5:
      e->num_children = (int)tyr_thrift_read_int(&c->t, f.type, 0, INT32_MAX);
      break;
    case 6:
      e->converted = rd_enum(c, f.type);
      break;
    case 7:
      e->scale = rd_i32(c, f.type);
      break;
    case 8:
      e->precision = rd_i32(c, f.type);
      break;
    case 10:
      if (f.type == TYR_THRIFT_STRUCT)
        parse_logical(c, e);
      else
        tyr_thrift_skip(&c->t, f.type);
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
  if (!tyr_thrift_failed(&c->t) && !e->name)
    mp_fail(c, "corrupt footer: a schema element has no name");
}

/* ---- row groups -------------------------------------------------------- */

static void parse_column_meta(mp *c, pq_chunk *k) {
  tyr_thrift_field f;
  bool seen[10] = {0};
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (f.id >= 1 && f.id <= 9) seen[f.id] = true;
    switch (f.id) {
    case 1:
      k->type = (int)tyr_thrift_read_int(&c->t, f.type, 0, 7);
      break;
    case 4:
      k->codec = rd_enum(c, f.type);
      break;
    case 5:
      k->num_values = rd_i64(c, f.type);
      break;
    case 6:
      k->total_uncompressed = rd_i64(c, f.type);
      break;
    case 7:
      k->total_compressed = rd_i64(c, f.type);
      break;
    case 9:
      k->data_page_offset = rd_i64(c, f.type);
      break;
    case 11:
      k->dictionary_page_offset = rd_i64(c, f.type);
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
  if (tyr_thrift_failed(&c->t)) return;
  static const int required[] = {1, 4, 5, 7, 9};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    if (!seen[required[i]]) {
      mp_fail(c, "corrupt footer: column metadata lacks required field %d", required[i]);
      return;
    }
  if (k->num_values < 0 || k->total_compressed < 0 || k->total_uncompressed < 0 ||
      k->data_page_offset < 0 || k->dictionary_page_offset < 0)
    mp_fail(c, "corrupt footer: negative size or offset in column metadata");
  k->has_meta = true;
}

static void parse_column_chunk(mp *c, pq_chunk *k) {
  tyr_thrift_field f;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    switch (f.id) {
    case 1:
      k->external = true;
      tyr_thrift_skip(&c->t, f.type);
      break;
    case 3:
      if (f.type != TYR_THRIFT_STRUCT || k->has_meta) {
        mp_fail(c, "corrupt footer: bad column metadata field");
        break;
      }
      parse_column_meta(c, k);
      break;
    case 8:
    case 9:
      k->encrypted = true;
      tyr_thrift_skip(&c->t, f.type);
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
}

static void parse_row_group(mp *c, pq_row_group *g) {
  tyr_thrift_field f;
  bool have_rows = false, have_cols = false;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    switch (f.id) {
    case 1: {
      uint8_t et;
      int64_t n;
      if (have_cols) {
        mp_fail(c, "corrupt footer: a row group lists its columns twice");
        break;
      }
      have_cols = true;
      if (!tyr_thrift_read_list(&c->t, f.type, &et, &n)) break;
      if (et != TYR_THRIFT_STRUCT || n > INT32_MAX) {
        mp_fail(c, "corrupt footer: bad row group column list");
        break;
      }
      g->chunks = calloc(n ? (size_t)n : 1, sizeof *g->chunks);
      if (!g->chunks) {
        mp_fail(c, "out of memory");
        break;
      }
      g->num_chunks = (int)n;
      for (int64_t i = 0; i < n && !tyr_thrift_failed(&c->t); i++)
        parse_column_chunk(c, &g->chunks[i]);
      break;
    }
    case 3:
      g->num_rows = rd_i64(c, f.type);
      have_rows = true;
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
  if (tyr_thrift_failed(&c->t)) return;
  if (!have_rows || !have_cols)
    mp_fail(c, "corrupt footer: a row group lacks its %s", have_rows ? "columns" : "row count");
  else if (g->num_rows < 0)
    mp_fail(c, "corrupt footer: negative row count in a row group");
}

/* ---- FileMetaData ------------------------------------------------------ */

int tyr_pq_parse_meta(const uint8_t *data, size_t n, pq_meta *m, char *err, size_t errn) {
  mp c = {.err = err, .errn = errn, .what = "footer"};
  tyr_thrift_init(&c.t, data, n);
  memset(m, 0, sizeof *m);
  bool have_schema = false, have_rg = false, have_rows = false;
  tyr_thrift_field f;
  tyr_thrift_struct_begin(&c.t);
  while (tyr_thrift_next_field(&c.t, &f)) {
    switch (f.id) {
    case 2: {
      uint8_t et;
      int64_t cnt;
      if (have_schema) {
        mp_fail(&c, "corrupt footer: two schemas");
        break;
      }
      have_schema = true;
      if (!tyr_thrift_read_list(&c.t, f.type, &et, &cnt)) break;
      if (et != TYR_THRIFT_STRUCT || cnt > INT32_MAX) {
        mp_fail(&c, "corrupt footer: bad schema list");
        break;
      }
      m->schema = calloc(cnt ? (size_t)cnt : 1, sizeof *m->schema);
      if (!m->schema) {
        mp_fail(&c, "out of memory");
        break;
      }
      m->num_schema = (int)cnt;
      for (int64_t i = 0; i < cnt && !tyr_thrift_failed(&c.t); i++)
        parse_schema_el(&c, &m->schema[i]);
      break;
    }
    case 3:
      m->num_rows = rd_i64(&c, f.type);
      have_rows = true;
      break;
    case 4: {
      uint8_t et;
      int64_t cnt;
      if (have_rg) {
        mp_fail(&c, "corrupt footer: two row group lists");
        break;
      }
      have_rg = true;
      if (!tyr_thrift_read_list(&c.t, f.type, &et, &cnt)) break;
      if (et != TYR_THRIFT_STRUCT || cnt > INT32_MAX) {
        mp_fail(&c, "corrupt footer: bad row group list");
        break;
      }
      m->row_groups = calloc(cnt ? (size_t)cnt : 1, sizeof *m->row_groups);
      if (!m->row_groups) {
        mp_fail(&c, "out of memory");
        break;
      }
      m->num_row_groups = (int)cnt;
      for (int64_t i = 0; i < cnt && !tyr_thrift_failed(&c.t); i++)
        parse_row_group(&c, &m->row_groups[i]);
      break;
    }
    case 6:
      if (m->created_by) {
        mp_fail(&c, "corrupt footer: two created_by fields");
        break;
      }
      m->created_by = rd_string(&c, f.type);
      break;
    case 8:
      m->encrypted = true;
      tyr_thrift_skip(&c.t, f.type);
      break;
    default:
      tyr_thrift_skip(&c.t, f.type);
    }
  }
  tyr_thrift_struct_end(&c.t);
  if (!tyr_thrift_failed(&c.t)) {
    if (!have_schema || !have_rg || !have_rows)
      mp_fail(&c, "corrupt footer: the file metadata lacks its %s",
              !have_schema ? "schema"
              : !have_rg   ? "row groups"
                           : "row count");
    else if (m->num_schema < 1)
      mp_fail(&c, "corrupt footer: empty schema");
    else if (m->num_rows < 0)
      mp_fail(&c, "corrupt footer: negative row count");
  }
  if (mp_finish(&c)) {
    tyr_pq_meta_free(m);
    return -1;
  }
  return 0;
}

void tyr_pq_meta_free(pq_meta *m) {
  if (!m) return;
  for (int i = 0; i < m->num_schema; i++) free(m->schema[i].name);
  free(m->schema);
  for (int i = 0; i < m->num_row_groups; i++) free(m->row_groups[i].chunks);
  free(m->row_groups);
  free(m->created_by);
  memset(m, 0, sizeof *m);
}

/* ---- page headers ------------------------------------------------------ */

static void parse_data_page(mp *c, pq_page_header *h) {
  tyr_thrift_field f;
  bool seen[5] = {0};
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (f.id >= 1 && f.id <= 4) seen[f.id] = true;
    switch (f.id) {
    case 1:
      h->num_values = rd_i32(c, f.type);
      break;
    case 2:
      h->encoding = rd_enum(c, f.type);
      break;
    case 3:
      h->def_encoding = rd_enum(c, f.type);
      break;
    case 4:
      h->rep_encoding = rd_enum(c, f.type);
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
  if (!tyr_thrift_failed(&c->t) && !(seen[1] && seen[2] && seen[3] && seen[4]))
    mp_fail(c, "corrupt page header: a data page header lacks required fields");
}

static void parse_dict_page(mp *c, pq_page_header *h) {
  tyr_thrift_field f;
  bool seen[3] = {0};
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (f.id >= 1 && f.id <= 2) seen[f.id] = true;
    switch (f.id) {
    case 1:
      h->num_values = rd_i32(c, f.type);
      break;
    case 2:
      h->encoding = rd_enum(c, f.type);
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
  if (!tyr_thrift_failed(&c->t) && !(seen[1] && seen[2]))
    mp_fail(c, "corrupt page header: a dictionary page header lacks required fields");
}

static void parse_data_page_v2(mp *c, pq_page_header *h) {
  tyr_thrift_field f;
  bool seen[7] = {0};
  h->is_compressed = true;
  if (!tyr_thrift_struct_begin(&c->t)) return;
  while (tyr_thrift_next_field(&c->t, &f)) {
    if (f.id >= 1 && f.id <= 6) seen[f.id] = true;
    switch (f.id) {
    case 1:
      h->num_values = rd_i32(c, f.type);
      break;
    case 2:
      h->num_nulls = rd_i32(c, f.type);
      break;
    case 3:
      h->num_rows = rd_i32(c, f.type);
      break;
    case 4:
      h->encoding = rd_enum(c, f.type);
      break;
    case 5:
      h->def_length = rd_i32(c, f.type);
      break;
    case 6:
      h->rep_length = rd_i32(c, f.type);
      break;
    case 7:
      h->is_compressed = tyr_thrift_read_bool(&c->t, f.type, false);
      break;
    default:
      tyr_thrift_skip(&c->t, f.type);
    }
  }
  tyr_thrift_struct_end(&c->t);
  if (!tyr_thrift_failed(&c->t) &&
      !(seen[1] && seen[2] && seen[3] && seen[4] && seen[5] && seen[6]))
    mp_fail(c, "corrupt page header: a v2 data page header lacks required fields");
}

int tyr_pq_parse_page_header(const uint8_t *data, size_t n, pq_page_header *h, size_t *used,
                             char *err, size_t errn) {
  mp c = {.err = err, .errn = errn, .what = "page header"};
  tyr_thrift_init(&c.t, data, n);
  memset(h, 0, sizeof *h);
  h->type = -1;
  bool seen[4] = {0};
  tyr_thrift_field f;
  tyr_thrift_struct_begin(&c.t);
  while (tyr_thrift_next_field(&c.t, &f)) {
    if (f.id >= 1 && f.id <= 3) seen[f.id] = true;
    switch (f.id) {
    case 1:
      h->type = rd_enum(&c, f.type);
      break;
    case 2:
      h->uncompressed_size = rd_i32(&c, f.type);
      break;
    case 3:
      h->compressed_size = rd_i32(&c, f.type);
      break;
    case 5:
    case 7:
    case 8: {
      int want = f.id == 5 ? PQ_PAGE_DATA : f.id == 7 ? PQ_PAGE_DICTIONARY : PQ_PAGE_DATA_V2;
      /* the sub-header must match the page type, which comes first */
      if (f.type != TYR_THRIFT_STRUCT || h->type != want || h->has_body) {
        tyr_thrift_skip(&c.t, f.type);
        break;
      }
      h->has_body = true;
      if (f.id == 5)
        parse_data_page(&c, h);
      else if (f.id == 7)
        parse_dict_page(&c, h);
      else
        parse_data_page_v2(&c, h);
      break;
    }
    default:
      tyr_thrift_skip(&c.t, f.type);
    }
  }
  tyr_thrift_struct_end(&c.t);
  if (!tyr_thrift_failed(&c.t)) {
    if (!(seen[1] && seen[2] && seen[3]))
      mp_fail(&c, "corrupt page header: lacks its type or sizes");
    else if (h->uncompressed_size < 0 || h->compressed_size < 0)
      mp_fail(&c, "corrupt page header: negative page size (%d compressed, %d uncompressed)",
              (int)h->compressed_size, (int)h->uncompressed_size);
    else if (h->num_values < 0 || h->num_nulls < 0 || h->num_rows < 0 || h->def_length < 0 ||
             h->rep_length < 0)
      mp_fail(&c, "corrupt page header: negative count or length");
  }
  if (mp_finish(&c)) return -1;
  *used = tyr_thrift_offset(&c.t);
  return 0;
}

const char *tyr_pq_codec_name(int codec) {
  static const char *names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW"};
  if (codec >= 0 && codec < (int)(sizeof names / sizeof names[0])) return names[codec];
  return "unknown";
}

const char *tyr_pq_encoding_name(int enc) {
  static const char *names[] = {
      "PLAIN",          "GROUP_VAR_INT",       "PLAIN_DICTIONARY",        "RLE",
      "BIT_PACKED",     "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY",
      "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"};
  if (enc >= 0 && enc < (int)(sizeof names / sizeof names[0])) return names[enc];
  return "unknown";
}
