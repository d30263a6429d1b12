/* The Parquet reader: every fixture of tests/data/parquet/manifest.txt read
 * back and compared value by value with the expected values DuckDB (or the
 * fixture script's own writer) gave; the refused files; truncated,
 * corrupted and missing files; the Thrift and RLE decoders. */
#define _GNU_SOURCE /* memfd_create */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/parquet_internal.h"
#include "data/thrift_compact.h"
#include "tyr/parquet.h"

/* ---- files ---------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (!fp) fail_msg("cannot open %s", path);
  fseek(fp, 0, SEEK_END);
  long sz = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
  assert_non_null(buf);
  if (sz > 0 && fread(buf, 1, (size_t)sz, fp) != (size_t)sz) fail_msg("cannot read %s", path);
  fclose(fp);
  *n = (size_t)sz;
  return buf;
}

static const char *tmp_write(const char *name, const void *data, size_t n) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tyr_test_tmpdir(), name);
  FILE *fp = fopen(path, "wb");
  if (!fp) fail_msg("cannot write %s", path);
  if (n && fwrite(data, 1, n, fp) != n) fail_msg("short write %s", path);
  fclose(fp);
  return path;
}

/* The same bytes in memory (a memfd reached through /proc/self/fd), for
 * the loops over thousands of damaged files: no disk traffic. */
static const char *mem_write(const void *data, size_t n) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("tyr-parquet-test", MFD_CLOEXEC);
    if (fd < 0) fail_msg("memfd_create failed");
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, data, n, 0) != (ssize_t)n))
    fail_msg("memfd write failed");
  return path;
}

static const char *fixture(const char *name) {
  static char path[4096];
  char rel[256];
  snprintf(rel, sizeof rel, "parquet/%s", name);
  snprintf(path, sizeof path, "%s", tyr_test_data(rel));
  return path;
}

/* ---- expected values -------------------------------------------------------- */

typedef struct expected {
  int ncols;
  char names[16][64];
  char types[16][16];
  int64_t nrows;
  char **cells; /* nrows * ncols tokens */
  char *text;
} expected;

static void expected_load(expected *e, const char *name) {
  memset(e, 0, sizeof *e);
  size_t n;
  uint8_t *raw = slurp(fixture(name), &n);
  e->text = realloc(raw, n + 1);
  e->text[n] = 0;
  char *save = NULL;
  char *line = strtok_r(e->text, "\n", &save);
  assert_non_null(line);
  assert_int_equal(sscanf(line, "columns\t%d", &e->ncols), 1);
  assert_true(e->ncols > 0 && e->ncols <= 16);
  for (int c = 0; c < e->ncols; c++) {
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    assert_int_equal(sscanf(line, "%63[^\t]\t%15s", e->names[c], e->types[c]), 2);
  }
  line = strtok_r(NULL, "\n", &save);
  long long rows;
  assert_int_equal(sscanf(line, "rows\t%lld", &rows), 1);
  e->nrows = rows;
  e->cells = calloc((size_t)(rows * e->ncols) + 1, sizeof(char *));
  for (int64_t r = 0; r < rows; r++) {
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    char *tsave = NULL;
    for (int c = 0; c < e->ncols; c++) {
      char *tok = strtok_r(c ? NULL : line, "\t", &tsave);
      if (!tok) fail_msg("%s: row %lld has too few cells", name, (long long)r);
      e->cells[r * e->ncols + c] = tok;
    }
  }
}

static void expected_free(expected *e) {
  free(e->cells);
  free(e->text);
}

static int hexval(char c) {
  return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Checks row i of d against one expected token. */
static void check_cell(const char *tok, const tyr_parquet_column_data *d, int64_t i,
                       const char *what) {
  if (strcmp(tok, "N") == 0) {
    if (d->valid[i]) fail_msg("%s row %lld: expected null", what, (long long)i);
    return;
  }
  if (!d->valid[i]) fail_msg("%s row %lld: unexpected null (expected %s)", what, (long long)i, tok);
  char buf[64];
  switch (d->type) {
  case TYR_PARQUET_BOOLEAN:
    snprintf(buf, sizeof buf, "%d", d->bools[i]);
    break;
  case TYR_PARQUET_INT32:
    snprintf(buf, sizeof buf, "%d", d->i32[i]);
    break;
  case TYR_PARQUET_INT64:
    snprintf(buf, sizeof buf, "%lld", (long long)d->i64[i]);
    break;
  case TYR_PARQUET_FLOAT: {
    uint32_t u;
    memcpy(&u, &d->f32[i], 4);
    if (isnan(d->f32[i]))
      snprintf(buf, sizeof buf, "nan");
    else
      snprintf(buf, sizeof buf, "%08x", u);
    break;
  }
  case TYR_PARQUET_DOUBLE: {
    uint64_t u;
    memcpy(&u, &d->f64[i], 8);
    if (isnan(d->f64[i]))
      snprintf(buf, sizeof buf, "nan");
    else
      snprintf(buf, sizeof buf, "%016llx", (unsigned long long)u);
    break;
  }
  case TYR_PARQUET_BYTE_ARRAY: {
    int64_t len = d->offsets[i + 1] - d->offsets[i];
    if (tok[0] != 'x' || (int64_t)strlen(tok + 1) != 2 * len)
      fail_msg("%s row %lld: string of %lld bytes, expected %s", what, (long long)i, (long long)len,
               tok);
    const uint8_t *s = (const uint8_t *)d->bytes + d->offsets[i];
    for (int64_t k = 0; k < len; k++)
      if (hexval(tok[1 + 2 * k]) * 16 + hexval(tok[2 + 2 * k]) != s[k])
        fail_msg("%s row %lld: string byte %lld differs (expected %s)", what, (long long)i,
                 (long long)k, tok);
    return;
  }
  default:
    fail_msg("%s: unexpected type %d", what, d->type);
  }
  if (strcmp(buf, tok) != 0)
    fail_msg("%s row %lld: got %s, expected %s", what, (long long)i, buf, tok);
}

/* Reads every column of the expected file from every row group of the
 * Parquet file and compares every value. */
static void compare_file(const char *file, const char *exp_name, int row_groups) {
  expected e;
  expected_load(&e, exp_name);
  tyr_parquet_file *f = tyr_parquet_open(fixture(file));
  if (!f) fail_msg("%s: %s", file, tyr_test_error_message());
  assert_int_equal(tyr_parquet_num_row_groups(f), row_groups);
  assert_int_equal(tyr_parquet_num_rows(f), e.nrows);
  for (int c = 0; c < e.ncols; c++) {
    char what[256];
    snprintf(what, sizeof what, "%s column %s", file, e.names[c]);
    int col = tyr_parquet_column_index(f, e.names[c]);
    if (col < 0) fail_msg("%s: missing", what);
    assert_string_equal(tyr_parquet_type_name(tyr_parquet_column_type(f, col)), e.types[c]);
    assert_true(tyr_parquet_column(f, col)->readable);
    int64_t row = 0;
    for (int g = 0; g < row_groups; g++) {
      tyr_parquet_column_data d;
      if (tyr_parquet_read_column(f, g, col, &d))
        fail_msg("%s row group %d: %s", what, g, tyr_test_error_message());
      assert_int_equal(d.num_rows, tyr_parquet_row_group_num_rows(f, g));
      assert_int_equal(d.type, tyr_parquet_column_type(f, col));
      int64_t nulls = 0;
      for (int64_t i = 0; i < d.num_rows; i++) {
        nulls += !d.valid[i];
        check_cell(e.cells[(row + i) * e.ncols + c], &d, i, what);
        if (!d.valid[i]) { /* null rows hold zero / the empty string */
          if (d.type == TYR_PARQUET_BYTE_ARRAY)
            assert_true(d.offsets[i + 1] == d.offsets[i]);
          else if (d.type == TYR_PARQUET_BOOLEAN)
            assert_int_equal(d.bools[i], 0);
          else if (d.type == TYR_PARQUET_INT32 || d.type == TYR_PARQUET_FLOAT)
            assert_int_equal(d.i32[i], 0);
          else
            assert_int_equal(d.i64[i], 0);
        }
      }
      assert_int_equal(nulls, d.num_nulls);
      if (d.type == TYR_PARQUET_BYTE_ARRAY) {
        assert_int_equal(d.offsets[0], 0);
        assert_int_equal(d.offsets[d.num_rows], d.nbytes);
        assert_non_null(d.bytes);
      } else {
        assert_null(d.offsets);
      }
      row += d.num_rows;
      tyr_parquet_column_data_free(&d);
      assert_null(d.valid);
    }
    assert_int_equal(row, e.nrows);
  }
  tyr_parquet_close(f);
  expected_free(&e);
}

/* Opens a file the reader must refuse to read: every readable column of
 * row group 0 fails with msg and the file name, leaving *out zeroed. */
static void expect_refused(const char *file, const char *msg) {
  tyr_parquet_file *f = tyr_parquet_open(fixture(file));
  if (!f) fail_msg("%s: %s", file, tyr_test_error_message());
  assert_true(tyr_parquet_num_row_groups(f) > 0);
  for (int c = 0; c < tyr_parquet_num_columns(f); c++) {
    tyr_parquet_column_data d;
    memset(&d, 0x5a, sizeof d);
    tyr_test_error_reset();
    int rc = tyr_parquet_read_column(f, 0, c, &d);
    if (rc == 0 || tyr_test_error_count() != 1)
      fail_msg("%s column %d: expected one error", file, c);
    if (!strstr(tyr_test_error_message(), msg) || !strstr(tyr_test_error_message(), file))
      fail_msg("%s: error '%s' lacks '%s' or the file name", file, tyr_test_error_message(), msg);
    assert_null(d.valid);
    assert_null(d.values);
    assert_null(d.bytes);
    tyr_test_error_reset();
  }
  tyr_parquet_close(f);
}

static void test_manifest_fixtures(void **state) {
  (void)state;
  size_t n;
  uint8_t *raw = slurp(fixture("manifest.txt"), &n);
  char *text = realloc(raw, n + 1);
  text[n] = 0;
  int files = 0, refused = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    char file[128], exp[128], third[256];
    if (sscanf(line, "%127[^\t]\t%127[^\t]\t%255[^\n]", file, exp, third) != 3)
      fail_msg("bad manifest line: %s", line);
    if (strcmp(exp, "!error") == 0) {
      expect_refused(file, third);
      refused++;
    } else {
      compare_file(file, exp, atoi(third));
      files++;
    }
  }
  free(text);
  assert_true(files >= 14);
  assert_true(refused >= 10);
}

/* The same with every column chunk memory-mapped instead of read. */
static void test_manifest_fixtures_mapped(void **state) {
  int64_t saved = tyr__parquet_mmap_min;
  tyr__parquet_mmap_min = 0;
  test_manifest_fixtures(state);
  tyr__parquet_mmap_min = saved;
}

/* ---- metadata ----------------------------------------------------------------- */

static void test_metadata(void **state) {
  (void)state;
  tyr_parquet_file *f = tyr_parquet_open(fixture("mixed_zstd.parquet"));
  assert_non_null(f);
  assert_int_equal(tyr_parquet_num_rows(f), 200);
  assert_int_equal(tyr_parquet_num_row_groups(f), 4);
  assert_int_equal(tyr_parquet_row_group_num_rows(f, 3), 50);
  assert_int_equal(tyr_parquet_row_group_num_rows(f, 4), -1);
  assert_int_equal(tyr_parquet_num_columns(f), 10);
  assert_non_null(strstr(tyr_parquet_created_by(f), "DuckDB"));
  assert_non_null(strstr(tyr_parquet_path(f), "mixed_zstd.parquet"));
  assert_int_equal(tyr_parquet_column_index(f, "cat"), 7);
  assert_int_equal(tyr_parquet_column_index(f, "nope"), -1);
  assert_string_equal(tyr_parquet_column_name(f, 6), "s");
  assert_null(tyr_parquet_column_name(f, 10));
  assert_null(tyr_parquet_column(f, -1));
  assert_int_equal(tyr_parquet_column_type(f, 6), TYR_PARQUET_BYTE_ARRAY);
  assert_int_equal(tyr_parquet_column_logical(f, 6), TYR_PARQUET_LOGICAL_STRING);
  assert_int_equal(tyr_parquet_column_logical(f, 8), TYR_PARQUET_LOGICAL_NONE); /* blob */
  const tyr_parquet_column_info *ci = tyr_parquet_column(f, 2);
  assert_string_equal(ci->name, "i64");
  assert_int_equal(ci->type, TYR_PARQUET_INT64);
  assert_int_equal(ci->logical, TYR_PARQUET_LOGICAL_INTEGER);
  assert_int_equal(ci->int_bits, 64);
  assert_true(ci->int_signed);
  assert_true(ci->optional);
  assert_true(ci->readable);
  assert_string_equal(tyr_parquet_logical_name(ci->logical), "INTEGER");
  assert_string_equal(tyr_parquet_type_name(TYR_PARQUET_DOUBLE), "DOUBLE");
  tyr_parquet_close(f);

  f = tyr_parquet_open(fixture("hand_v2_gzip.parquet"));
  assert_non_null(f);
  ci = tyr_parquet_column(f, 0);
  assert_false(ci->optional);                                                     /* REQUIRED */
  assert_int_equal(tyr_parquet_column_logical(f, 5), TYR_PARQUET_LOGICAL_STRING); /* UTF8 */
  tyr_parquet_column_data d;
  assert_int_equal(tyr_parquet_read_column(f, 1, 0, &d), 0);
  assert_int_equal(d.num_nulls, 0);
  for (int64_t i = 0; i < d.num_rows; i++) assert_int_equal(d.valid[i], 1);
  assert_int_equal(d.i32[0], 60);
  tyr_parquet_column_data_free(&d);
  tyr_parquet_column_data_free(NULL);
  tyr_parquet_close(f);
  tyr_parquet_close(NULL);
}

static void test_nested_and_unsupported_types(void **state) {
  (void)state;
  tyr_parquet_file *f = tyr_parquet_open(fixture("nested.parquet"));
  assert_non_null(f);
  assert_int_equal(tyr_parquet_num_columns(f), 6);
  struct {
    const char *name;
    tyr_parquet_type type;
    tyr_parquet_logical logical;
    const char *err;
  } cases[] = {
      {"l", TYR_PARQUET_GROUP, TYR_PARQUET_LOGICAL_LIST,
       "column 'l' (GROUP): nested columns are not supported"},
      {"st", TYR_PARQUET_GROUP, TYR_PARQUET_LOGICAL_NONE, "nested columns are not supported"},
      {"u", TYR_PARQUET_FIXED_LEN_BYTE_ARRAY, TYR_PARQUET_LOGICAL_UUID,
       "physical type is not supported"},
      {"dec", TYR_PARQUET_FIXED_LEN_BYTE_ARRAY, TYR_PARQUET_LOGICAL_DECIMAL,
       "FIXED_LEN_BYTE_ARRAY"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int c = tyr_parquet_column_index(f, cases[i].name);
    assert_true(c >= 0);
    const tyr_parquet_column_info *ci = tyr_parquet_column(f, c);
    assert_int_equal(ci->type, cases[i].type);
    assert_int_equal(ci->logical, cases[i].logical);
    assert_false(ci->readable);
    tyr_parquet_column_data d;
    EXPECT_TYR_ERROR(tyr_parquet_read_column(f, 0, c, &d), cases[i].err);
    assert_null(d.valid);
  }
  const tyr_parquet_column_info *dec = tyr_parquet_column(f, tyr_parquet_column_index(f, "dec"));
  assert_int_equal(dec->scale, 2);
  assert_int_equal(dec->precision, 30);
  /* the flat columns after the nested ones map to the right chunks */
  tyr_parquet_column_data d;
  assert_int_equal(tyr_parquet_read_column(f, 0, tyr_parquet_column_index(f, "s"), &d), 0);
  assert_int_equal(d.num_rows, 20);
  tyr_parquet_column_data_free(&d);
  tyr_parquet_close(f);
}

static void test_bad_arguments(void **state) {
  (void)state;
  tyr_parquet_file *f = tyr_parquet_open(fixture("lowcard_v2_zstd.parquet"));
  assert_non_null(f);
  tyr_parquet_column_data d;
  EXPECT_TYR_ERROR(tyr_parquet_read_column(f, 3, 0, &d),
                   "row group 3 out of range (the file has 3)");
  EXPECT_TYR_ERROR(tyr_parquet_read_column(f, -1, 0, &d), "row group -1 out of range");
  EXPECT_TYR_ERROR(tyr_parquet_read_column(f, 0, 6, &d), "column 6 out of range (the file has 6)");
  EXPECT_TYR_ERROR(tyr_parquet_read_column(f, 0, 0, NULL), "output is NULL");
  EXPECT_TYR_ERROR(tyr_parquet_read_column(NULL, 0, 0, &d), "file is NULL");
  EXPECT_TYR_ERROR(tyr_parquet_open(NULL), "path is NULL");
  /* a tiny allocation limit turns big buffers into errors */
  tyr_parquet_set_max_alloc(f, 64);
  EXPECT_TYR_ERROR(tyr_parquet_read_column(f, 0, 0, &d), "limit");
  tyr_parquet_set_max_alloc(f, 0); /* back to the default */
  assert_int_equal(tyr_parquet_read_column(f, 0, 0, &d), 0);
  tyr_parquet_column_data_free(&d);
  tyr_parquet_close(f);
}

/* ---- several threads on one file ----------------------------------------------- */

typedef struct thread_job {
  tyr_parquet_file *f;
  int64_t sum; /* of null counts, string bytes and integer values */
  int failures;
} thread_job;

static void *read_all_columns(void *p) {
  thread_job *j = p;
  for (int rep = 0; rep < 5; rep++)
    for (int g = 0; g < tyr_parquet_num_row_groups(j->f); g++)
      for (int c = 0; c < tyr_parquet_num_columns(j->f); c++) {
        tyr_parquet_column_data d;
        if (tyr_parquet_read_column(j->f, g, c, &d)) {
          j->failures++;
          continue;
        }
        j->sum += d.num_nulls + d.nbytes;
        if (d.type == TYR_PARQUET_INT32)
          for (int64_t i = 0; i < d.num_rows; i++) j->sum += d.i32[i];
        tyr_parquet_column_data_free(&d);
      }
  return NULL;
}

static void test_threads_share_a_file(void **state) {
  (void)state;
  int64_t saved = tyr__parquet_mmap_min;
  for (int mapped = 0; mapped < 2; mapped++) {
    tyr__parquet_mmap_min = mapped ? 0 : saved;
    tyr_parquet_file *f = tyr_parquet_open(fixture("mixed_gzip.parquet"));
    assert_non_null(f);
    thread_job one = {.f = f};
    read_all_columns(&one);
    pthread_t th[4];
    thread_job jobs[4];
    for (int t = 0; t < 4; t++) {
      jobs[t] = (thread_job){.f = f};
      assert_int_equal(pthread_create(&th[t], NULL, read_all_columns, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
      pthread_join(th[t], NULL);
      assert_int_equal(jobs[t].failures, 0);
      assert_true(jobs[t].sum == one.sum);
    }
    tyr_parquet_close(f);
  }
  tyr__parquet_mmap_min = saved;
}

/* ---- foreach_string --------------------------------------------------------- */

typedef struct sctx {
  int64_t count, bytes, stop_after;
  uint64_t hash;
} sctx;

static int count_strings(const char *s, size_t len, void *p) {
  sctx *c = p;
  c->count++;
  c->bytes += (int64_t)len;
  for (size_t i = 0; i < len; i++) c->hash = (c->hash ^ (uint8_t)s[i]) * 1099511628211ull;
  c->hash = (c->hash ^ 0xff) * 1099511628211ull;
  return c->stop_after && c->count >= c->stop_after;
}

static void test_foreach_string(void **state) {
  (void)state;
  /* what the expected file says about column s */
  expected e;
  expected_load(&e, "mixed.expected");
  int sc = -1;
  for (int c = 0; c < e.ncols; c++)
    if (strcmp(e.names[c], "s") == 0) sc = c;
  sctx want = {0};
  for (int64_t r = 0; r < e.nrows; r++) {
    const char *tok = e.cells[r * e.ncols + sc];
    if (strcmp(tok, "N") == 0) continue;
    size_t len = strlen(tok + 1) / 2;
    char buf[512];
    for (size_t k = 0; k < len; k++)
      buf[k] = (char)(hexval(tok[1 + 2 * k]) * 16 + hexval(tok[2 + 2 * k]));
    count_strings(buf, len, &want);
  }
  expected_free(&e);
  const char *files[] = {"mixed_uncompressed.parquet", "mixed_snappy.parquet", "mixed_gzip.parquet",
                         "mixed_zstd.parquet"};
  for (int i = 0; i < 4; i++) {
    sctx got = {0};
    assert_int_equal(tyr_parquet_foreach_string(fixture(files[i]), "s", count_strings, &got), 0);
    assert_int_equal(got.count, want.count);
    assert_int_equal(got.bytes, want.bytes);
    assert_true(got.hash == want.hash);
  }
  /* early stop */
  sctx stop = {.stop_after = 7};
  assert_int_equal(
      tyr_parquet_foreach_string(fixture("mixed_zstd.parquet"), "s", count_strings, &stop), 0);
  assert_int_equal(stop.count, 7);
  /* dictionary-encoded strings, v2 pages, a dictionary falling back to PLAIN */
  sctx hand = {0};
  assert_int_equal(
      tyr_parquet_foreach_string(fixture("hand_v2_snappy.parquet"), "s", count_strings, &hand), 0);
  assert_true(hand.count > 60);
  /* errors */
  sctx x = {0};
  EXPECT_TYR_ERROR(
      tyr_parquet_foreach_string(fixture("mixed_zstd.parquet"), "text", count_strings, &x),
      "no column 'text' (the columns are: id, i32, i64, f, d, b, s, cat, bl, sparse)");
  EXPECT_TYR_ERROR(
      tyr_parquet_foreach_string(fixture("mixed_zstd.parquet"), "i32", count_strings, &x),
      "column 'i32' is INT32, not a string (BYTE_ARRAY) column");
  EXPECT_TYR_ERROR(tyr_parquet_foreach_string(fixture("missing.parquet"), "s", count_strings, &x),
                   "missing.parquet: cannot open: No such file or directory");
  EXPECT_TYR_ERROR(
      tyr_parquet_foreach_string(fixture("bad_string.parquet"), "s", count_strings, &x),
      "bad_string.parquet: column 's', row group 0");
  EXPECT_TYR_ERROR(
      tyr_parquet_foreach_string(fixture("mixed_zstd.parquet"), NULL, count_strings, &x),
      "column is NULL");
  int rc = tyr_parquet_foreach_string(fixture("missing.parquet"), "s", count_strings, &x);
  assert_int_equal(rc, TYR_ERR_IO);
  tyr_test_error_reset();
  assert_int_equal(x.count, 0);
}

/* ---- broken files --------------------------------------------------------------- */

static void test_open_errors(void **state) {
  (void)state;
  EXPECT_TYR_ERROR(tyr_parquet_open(fixture("no_such.parquet")),
                   "no_such.parquet: cannot open: No such file");
  assert_int_equal(tyr_error_last() ? 1 : 0, 0);
  EXPECT_TYR_ERROR(tyr_parquet_open(tyr_test_tmpdir()), "is a directory");
  EXPECT_TYR_ERROR(tyr_parquet_open("/dev/null"), "/dev/null: is not a regular file");
  char fifo[600];
  snprintf(fifo, sizeof fifo, "%s/fifo.parquet", tyr_test_tmpdir());
  if (mkfifo(fifo, 0600) == 0) { /* must not block waiting for a writer */
    EXPECT_TYR_ERROR(tyr_parquet_open(fifo), "is not a regular file");
    unlink(fifo);
  }
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("empty.bin", "", 0)),
                   "not a Parquet file: only 0 bytes");
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("text.bin", "hello, this is not parquet\n", 27)),
                   "no PAR1 magic at the start");
  size_t n;
  uint8_t *good = slurp(fixture("mixed_snappy.parquet"), &n);
  uint8_t *b = malloc(n);
  memcpy(b, good, n);
  memcpy(b + n - 4, "PARE", 4);
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("enc.parquet", b, n)),
                   "encrypted Parquet files (PARE footer) are not supported");
  memcpy(b + n - 4, "PAR2", 4);
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("tail.parquet", b, n)), "no PAR1 magic at the end");
  memcpy(b, good, n);
  b[0] = 'X';
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("head.parquet", b, n)), "no PAR1 magic at the start");
  memcpy(b, good, n);
  b[n - 8] = 0xff, b[n - 7] = 0xff, b[n - 6] = 0xff; /* footer length beyond the file */
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("flen.parquet", b, n)), "does not fit the file");
  memcpy(b, good, n);
  memset(b + n - 8, 0, 4);
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("flen0.parquet", b, n)),
                   "empty footer (footer length 0)");
  /* a footer that is not thrift */
  memcpy(b, good, n);
  uint32_t flen = (uint32_t)b[n - 8] | (uint32_t)b[n - 7] << 8 | (uint32_t)b[n - 6] << 16;
  memset(b + n - 8 - flen, 0xff, flen);
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("thrift.parquet", b, n)), "corrupt footer");
  free(b);
  free(good);
}

/* A footer whose root claims two children while its first child, a group,
 * takes the last element: the second child would lie past the schema. */
static void test_schema_children_past_the_end(void **state) {
  (void)state;
  static const uint8_t footer[] = {0x15, 0x02,                         /* 1: version 1 */
                                   0x19, 0x3c,                         /* 2: schema, 3 structs */
                                   0x48, 0x01, 'r',  0x15, 0x04, 0x00, /* root "r", 2 children */
                                   0x48, 0x01, 'a',  0x15, 0x02, 0x00, /* group "a", 1 child */
                                   0x15, 0x02, 0x38, 0x01, 'b',  0x00, /* INT32 "b" */
                                   0x16, 0x00,                         /* 3: num_rows 0 */
                                   0x19, 0x0c,                         /* 4: no row groups */
                                   0x00};
  uint8_t b[4 + sizeof footer + 8];
  memcpy(b, "PAR1", 4);
  memcpy(b + 4, footer, sizeof footer);
  uint32_t flen = sizeof footer;
  for (int i = 0; i < 4; i++) b[4 + sizeof footer + i] = (uint8_t)(flen >> (8 * i));
  memcpy(b + 8 + sizeof footer, "PAR1", 4);
  EXPECT_TYR_ERROR(tyr_parquet_open(tmp_write("schema_end.parquet", b, sizeof b)),
                   "the schema root has 2 children but its elements end after 1");
}

/* Opens path and reads every column of every row group; each call raises
 * at most one error.  Returns the number of errors. */
static int read_everything(const char *path) {
  tyr_test_error_reset();
  tyr_parquet_file *f = tyr_parquet_open(path);
  int errors = tyr_test_error_count();
  if (!f) {
    assert_int_equal(errors, 1);
    tyr_test_error_reset();
    return 1;
  }
  assert_int_equal(errors, 0);
  for (int g = 0; g < tyr_parquet_num_row_groups(f); g++)
    for (int c = 0; c < tyr_parquet_num_columns(f); c++) {
      tyr_parquet_column_data d;
      tyr_test_error_reset();
      int rc = tyr_parquet_read_column(f, g, c, &d);
      assert_int_equal(tyr_test_error_count(), rc ? 1 : 0);
      if (rc) {
        errors++;
        assert_null(d.valid);
        assert_non_null(strstr(tyr_test_error_message(), path));
      }
      tyr_parquet_column_data_free(&d);
    }
  tyr_test_error_reset();
  tyr_parquet_close(f);
  return errors;
}

static const char *damage_files[] = {"mixed_snappy.parquet", "hand_v2_gzip.parquet",
                                     "hand_v1_none.parquet", "lowcard_v2_zstd.parquet",
                                     "nested.parquet"};

static void test_truncated_everywhere(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof damage_files / sizeof damage_files[0]; k++) {
    size_t n;
    uint8_t *good = slurp(fixture(damage_files[k]), &n);
    /* a plain truncation loses the trailing magic */
    for (size_t len = 0; len < n; len += 1 + len / 64)
      EXPECT_TYR_ERROR(tyr_parquet_open(mem_write(good, len)), "/proc/self/fd/");
    /* a footer cut short, re-sealed with its new length */
    uint32_t flen =
        (uint32_t)good[n - 8] | (uint32_t)good[n - 7] << 8 | (uint32_t)good[n - 6] << 16;
    size_t data = n - 8 - flen;
    uint8_t *b = malloc(n);
    for (uint32_t cut = 1; cut < flen; cut++) {
      memcpy(b, good, data + cut);
      b[data + cut] = (uint8_t)cut, b[data + cut + 1] = (uint8_t)(cut >> 8);
      b[data + cut + 2] = (uint8_t)(cut >> 16), b[data + cut + 3] = 0;
      memcpy(b + data + cut + 4, "PAR1", 4);
      EXPECT_TYR_ERROR(tyr_parquet_open(mem_write(b, data + cut + 8)), "corrupt footer");
    }
    /* the column data cut short under an intact footer */
    int64_t saved = tyr__parquet_mmap_min;
    int failures = 0;
    for (size_t keep = 4; keep < data; keep += 1 + keep / 32) {
      memcpy(b, good, keep);
      memcpy(b + keep, good + data, n - data);
      tyr__parquet_mmap_min = keep & 1 ? 0 : saved;
      failures += read_everything(mem_write(b, keep + n - data)) > 0;
    }
    tyr__parquet_mmap_min = saved;
    assert_true(failures > 0);
    free(b);
    free(good);
  }
}

static void test_corrupted_bytes(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof damage_files / sizeof damage_files[0]; k++) {
    size_t n;
    uint8_t *good = slurp(fixture(damage_files[k]), &n);
    uint8_t *b = malloc(n);
    int errors = 0;
    static const uint8_t patterns[] = {0xff, 0x01, 0x80};
    int64_t saved = tyr__parquet_mmap_min;
    for (size_t pos = 0; pos < n; pos += 1 + (k == 0 ? 2 : 0)) {
      memcpy(b, good, n);
      b[pos] ^= patterns[pos % 3];
      tyr__parquet_mmap_min = pos & 1 ? 0 : saved; /* mapped or read */
      errors += read_everything(mem_write(b, n));
    }
    tyr__parquet_mmap_min = saved;
    assert_true(errors > 0);
    free(b);
    free(good);
  }
}

/* ---- decoders ---------------------------------------------------------------------- */

static void test_thrift_decoder(void **state) {
  (void)state;
  /* struct { 1: i32 -3, 2: binary "ab", 4: list<i32> [1, 2], 5: true,
   *          20: struct { 1: i64 300 }, 21: double 1.5 } */
  const uint8_t good[] = {0x15, 0x05, 0x18, 0x02, 'a',  'b',  0x29, 0x25, 0x02,
                          0x04, 0x11, 0xfc, 0x16, 0xd8, 0x04, 0x00, 0x17, 0,
                          0,    0,    0,    0,    0,    0xf8, 0x3f, 0x00};
  tyr_thrift t;
  tyr_thrift_init(&t, good, sizeof good);
  tyr_thrift_field f;
  assert_true(tyr_thrift_struct_begin(&t));
  assert_true(tyr_thrift_next_field(&t, &f) && f.id == 1 && f.type == TYR_THRIFT_I32);
  assert_int_equal(tyr_thrift_read_int(&t, f.type, INT32_MIN, INT32_MAX), -3);
  assert_true(tyr_thrift_next_field(&t, &f) && f.id == 2);
  const uint8_t *s;
  size_t len;
  assert_true(tyr_thrift_read_binary(&t, f.type, &s, &len) && len == 2 && s[1] == 'b');
  assert_true(tyr_thrift_next_field(&t, &f) && f.id == 4);
  uint8_t et;
  int64_t cnt;
  assert_true(tyr_thrift_read_list(&t, f.type, &et, &cnt) && et == TYR_THRIFT_I32 && cnt == 2);
  assert_int_equal(tyr_thrift_read_int(&t, et, 0, 10), 1);
  assert_int_equal(tyr_thrift_read_int(&t, et, 0, 10), 2);
  assert_true(tyr_thrift_next_field(&t, &f) && f.id == 5);
  assert_true(tyr_thrift_read_bool(&t, f.type, false));
  assert_true(tyr_thrift_next_field(&t, &f) && f.id == 20 && f.type == TYR_THRIFT_STRUCT);
  assert_true(tyr_thrift_skip(&t, f.type));
  assert_true(tyr_thrift_next_field(&t, &f) && f.id == 21);
  assert_true(tyr_thrift_read_double(&t, f.type) == 1.5);
  assert_false(tyr_thrift_next_field(&t, &f));
  assert_false(tyr_thrift_failed(&t));
  assert_int_equal(tyr_thrift_offset(&t), sizeof good);
  /* skipping the whole struct works too; every prefix fails cleanly */
  tyr_thrift_init(&t, good, sizeof good);
  assert_true(tyr_thrift_skip(&t, TYR_THRIFT_STRUCT));
  for (size_t cut = 0; cut < sizeof good; cut++) {
    tyr_thrift_init(&t, good, cut);
    assert_false(tyr_thrift_skip(&t, TYR_THRIFT_STRUCT));
    assert_true(tyr_thrift_failed(&t));
  }
  /* a varint of 11 bytes, a list longer than the data, nesting too deep,
   * an integer of the wrong range, a type mismatch */
  const uint8_t longvar[] = {0x16, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  tyr_thrift_init(&t, longvar, sizeof longvar);
  assert_false(tyr_thrift_skip(&t, TYR_THRIFT_STRUCT));
  const uint8_t biglist[] = {0x19, 0xf5, 0xff, 0xff, 0x03, 0x00};
  tyr_thrift_init(&t, biglist, sizeof biglist);
  assert_false(tyr_thrift_skip(&t, TYR_THRIFT_STRUCT));
  assert_string_equal(t.err, "list longer than the data");
  uint8_t deep[80];
  memset(deep, 0x1c, sizeof deep); /* field 1: struct, nested forever */
  tyr_thrift_init(&t, deep, sizeof deep);
  assert_false(tyr_thrift_skip(&t, TYR_THRIFT_STRUCT));
  assert_string_equal(t.err, "nesting too deep");
  const uint8_t wide[] = {0x15, 0x80, 0x80, 0x80, 0x80, 0x20, 0x00}; /* i32 beyond 32 bits */
  tyr_thrift_init(&t, wide, sizeof wide);
  tyr_thrift_struct_begin(&t);
  assert_true(tyr_thrift_next_field(&t, &f));
  tyr_thrift_read_int(&t, f.type, INT32_MIN, INT32_MAX);
  assert_string_equal(t.err, "i32 out of range");
  tyr_thrift_init(&t, good, sizeof good);
  tyr_thrift_struct_begin(&t);
  assert_true(tyr_thrift_next_field(&t, &f));
  assert_false(tyr_thrift_read_binary(&t, f.type, &s, &len));
  assert_string_equal(t.err, "expected a binary field");
  /* page headers: negative sizes are refused */
  const uint8_t neg[] = {0x15, 0x00, 0x15, 0x01, 0x15, 0x04, 0x00}; /* compressed size -1 */
  pq_page_header h;
  size_t used;
  char err[256];
  assert_int_equal(tyr_pq_parse_page_header(neg, sizeof neg, &h, &used, err, sizeof err), -1);
  assert_non_null(strstr(err, "negative page size"));
}

static void test_rle_decoder(void **state) {
  (void)state;
  /* RLE run of 5 x 3, bit-packed group of 8 (0..7) at width 3, RLE of 2 x 6 */
  const uint8_t data[] = {0x0a, 0x03, 0x03, 0x88, 0xc6, 0xfa, 0x04, 0x06};
  pq_rle r;
  uint32_t out[15];
  tyr_pq_rle_init(&r, data, sizeof data, 3);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 15), 0);
  const uint32_t want[15] = {3, 3, 3, 3, 3, 0, 1, 2, 3, 4, 5, 6, 7, 6, 6};
  for (int i = 0; i < 15; i++) assert_int_equal(out[i], want[i]);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 1), -1); /* nothing left */
  /* split reads give the same values */
  tyr_pq_rle_init(&r, data, sizeof data, 3);
  for (int i = 0; i < 15; i++) {
    assert_int_equal(tyr_pq_rle_u32(&r, out + i, 1), 0);
    assert_int_equal(out[i], want[i]);
  }
  /* u8 with a maximum: 7 > 5 fails */
  uint8_t o8[15];
  tyr_pq_rle_init(&r, data, sizeof data, 3);
  assert_int_equal(tyr_pq_rle_u8(&r, o8, 15, 5), -1);
  tyr_pq_rle_init(&r, data, sizeof data, 3);
  assert_int_equal(tyr_pq_rle_u8(&r, o8, 15, 7), 0);
  assert_int_equal(o8[10], 5);
  /* width 0: all zeros; width 32 */
  const uint8_t zero[] = {0x03};
  tyr_pq_rle_init(&r, zero, 1, 0);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 8), 0);
  assert_int_equal(out[7], 0);
  const uint8_t w32[] = {0x02, 0x78, 0x56, 0x34, 0x12};
  tyr_pq_rle_init(&r, w32, sizeof w32, 32);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 1), 0);
  assert_int_equal(out[0], 0x12345678);
  /* an RLE value wider than the bit width; a run of length 0; cut data */
  const uint8_t wide[] = {0x02, 0x09};
  tyr_pq_rle_init(&r, wide, sizeof wide, 3);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 1), -1);
  const uint8_t empty_run[] = {0x00, 0x01};
  tyr_pq_rle_init(&r, empty_run, sizeof empty_run, 3);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 1), -1);
  tyr_pq_rle_init(&r, data, 3, 3); /* bit-packed run cut to nothing */
  assert_int_equal(tyr_pq_rle_u32(&r, out, 6), -1);
  /* a bit-packed run cut short still gives the values that are there */
  tyr_pq_rle_init(&r, data, 5, 3);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 10), 0);
  assert_int_equal(out[9], 4);
  tyr_pq_rle_init(&r, data, 5, 3);
  assert_int_equal(tyr_pq_rle_u32(&r, out, 11), -1);
}

static void test_decompress_errors(void **state) {
  (void)state;
  char err[256];
  uint8_t dst[16];
  const uint8_t junk[] = {1, 2, 3, 4, 5, 6, 7, 8};
  assert_int_equal(tyr_pq_decompress(PQ_CODEC_SNAPPY, junk, sizeof junk, dst, 16, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "SNAPPY"));
  assert_int_equal(tyr_pq_decompress(PQ_CODEC_GZIP, junk, sizeof junk, dst, 16, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "GZIP"));
  assert_int_equal(tyr_pq_decompress(PQ_CODEC_ZSTD, junk, sizeof junk, dst, 16, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "ZSTD"));
  assert_int_equal(
      tyr_pq_decompress(PQ_CODEC_UNCOMPRESSED, junk, sizeof junk, dst, 16, err, sizeof err), -1);
  assert_int_equal(tyr_pq_decompress(PQ_CODEC_BROTLI, junk, sizeof junk, dst, 16, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "BROTLI is not supported"));
  /* snappy: literal "abcd" declared as 4 bytes, asked for 5 */
  const uint8_t lit[] = {0x04, 0x0c, 'a', 'b', 'c', 'd'};
  assert_int_equal(tyr_pq_decompress(PQ_CODEC_SNAPPY, lit, sizeof lit, dst, 4, err, sizeof err), 0);
  assert_int_equal(memcmp(dst, "abcd", 4), 0);
  assert_int_equal(tyr_pq_decompress(PQ_CODEC_SNAPPY, lit, sizeof lit, dst, 5, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "decompresses to 4 bytes, the page header says 5"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_manifest_fixtures),
      TYR_TEST(test_manifest_fixtures_mapped),
      TYR_TEST(test_metadata),
      TYR_TEST(test_nested_and_unsupported_types),
      TYR_TEST(test_bad_arguments),
      TYR_TEST(test_threads_share_a_file),
      TYR_TEST(test_foreach_string),
      TYR_TEST(test_open_errors),
      TYR_TEST(test_schema_children_past_the_end),
      TYR_TEST(test_truncated_everywhere),
      TYR_TEST(test_corrupted_bytes),
      TYR_TEST(test_thrift_decoder),
      TYR_TEST(test_rle_decoder),
      TYR_TEST(test_decompress_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
