#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/safetensors.h"

/* ---- helpers -------------------------------------------------------------- */
static const char *tmp_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", tyr_test_tmpdir(), name);
  return buf;
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  if (n) assert_int_equal(fwrite(p, 1, n, fp), n);
  assert_int_equal(fclose(fp), 0);
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *p = malloc(len ? (size_t)len : 1);
  assert_non_null(p);
  if (len) assert_int_equal(fread(p, 1, (size_t)len, fp), (size_t)len);
  fclose(fp);
  *n = (size_t)len;
  return p;
}

/* Writes a file with header size field nfield, the header text, and ndata
 * bytes of data (0, 1, 2, ...). */
static const char *make_file(char *path, size_t pn, const char *tag, uint64_t nfield,
                             const char *hdr, size_t hlen, size_t ndata) {
  tmp_path(path, pn, tag);
  size_t total = 8 + hlen + ndata;
  unsigned char *b = malloc(total);
  assert_non_null(b);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(nfield >> (8 * i));
  memcpy(b + 8, hdr, hlen);
  for (size_t i = 0; i < ndata; i++) b[8 + hlen + i] = (unsigned char)i;
  write_bytes(path, b, total);
  free(b);
  return path;
}

/* A file whose header size field is the header's length. */
static const char *make_st(char *path, size_t pn, const char *tag, const char *hdr, size_t ndata) {
  return make_file(path, pn, tag, strlen(hdr), hdr, strlen(hdr), ndata);
}

/* expr must raise exactly one error whose message contains every one of the
 * given substrings (NULL ends the list). */
static void expect_error_impl(int ok_result, const char *expr, const char *file, int line, ...) {
  (void)ok_result;
  if (tyr_test_error_count() != 1) {
    print_error("%s: expected one error, got %d (last: '%s')\n", expr, tyr_test_error_count(),
                tyr_test_error_message());
    _fail(file, line);
  }
  const char *msg = tyr_test_error_message();
  va_list ap;
  va_start(ap, line);
  const char *sub;
  while ((sub = va_arg(ap, const char *))) {
    if (!strstr(msg, sub)) {
      print_error("%s: error '%s' does not contain '%s'\n", expr, msg, sub);
      va_end(ap);
      _fail(file, line);
    }
  }
  va_end(ap);
  tyr_test_error_reset();
}
#define EXPECT_ERR(expr, ...)                                                                      \
  do {                                                                                             \
    tyr_test_error_reset();                                                                        \
    int ok__ = (expr) != 0;                                                                        \
    expect_error_impl(ok__, #expr, __FILE__, __LINE__, __VA_ARGS__, (const char *)NULL);           \
  } while (0)

/* Opening path must fail with a message naming the file and containing the
 * other substrings. */
#define EXPECT_OPEN_FAILS(path, ...)                                                               \
  do {                                                                                             \
    tyr_test_error_reset();                                                                        \
    tyr_safetensors *f__ = tyr_safetensors_open(path);                                             \
    assert_null(f__);                                                                              \
    expect_error_impl(1, "open " #path, __FILE__, __LINE__, path, __VA_ARGS__,                     \
                      (const char *)NULL);                                                         \
  } while (0)

static uint64_t g_lcg = 88172645463325252ull;
static unsigned char next_byte(void) {
  g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
  return (unsigned char)(g_lcg >> 56);
}

static tyr_tensor *random_tensor(tyr_dtype dt, int rank, const int64_t *shape) {
  tyr_tensor *t = tyr_empty_at(TYR_SITE, dt, TYR_DEVICE_CPU, rank, shape);
  assert_non_null(t);
  unsigned char *p = tyr_data_ptr(t);
  for (int64_t i = 0; i < tyr_nbytes(t); i++)
    p[i] = dt == TYR_BOOL ? (unsigned char)(next_byte() & 1) : next_byte();
  return t;
}

static void assert_same_tensor(const tyr_tensor *a, const tyr_tensor *b) {
  assert_int_equal(a->dtype, b->dtype);
  assert_int_equal(a->rank, b->rank);
  for (int i = 0; i < a->rank; i++) assert_int_equal(a->shape[i], b->shape[i]);
  assert_true(tyr_is_contiguous(a) && tyr_is_contiguous(b));
  assert_memory_equal(tyr_data_ptr(a), tyr_data_ptr(b), (size_t)tyr_nbytes(a));
}

/* Number of entries in the temp dir whose name contains ".tmp.". */
static int count_temp_files(void) {
  DIR *d = opendir(tyr_test_tmpdir());
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

/* ---- round trips ---------------------------------------------------------- */
static void test_roundtrip_all_dtypes_and_ranks(void **state) {
  (void)state;
  static const tyr_dtype dts[] = {TYR_F64, TYR_F32, TYR_BF16, TYR_F16,
                                  TYR_I64, TYR_I32, TYR_U8,   TYR_BOOL};
  static const int64_t dims[TYR_MAX_RANK] = {3, 1, 2, 4, 1, 2};
  enum { NT = 8 * (TYR_MAX_RANK + 1) + 1 };
  tyr_tensor *ts[NT];
  char namebuf[NT][32];
  const char *names[NT];
  int k = 0;
  for (int d = 0; d < 8; d++)
    for (int r = 0; r <= TYR_MAX_RANK; r++) {
      snprintf(namebuf[k], sizeof namebuf[k], "t.%s.rank%d", tyr_dtype_name(dts[d]), r);
      names[k] = namebuf[k];
      ts[k] = random_tensor(dts[d], r, dims);
      k++;
    }
  /* and an empty one */
  int64_t zero_shape[3] = {2, 0, 3};
  snprintf(namebuf[k], sizeof namebuf[k], "empty");
  names[k] = namebuf[k];
  ts[k] = random_tensor(TYR_F32, 3, zero_shape);
  k++;
  assert_int_equal(k, NT);

  char path[512];
  tmp_path(path, sizeof path, "roundtrip.safetensors");
  assert_int_equal(tyr_safetensors_save(path, NT, names, ts, 0, NULL, NULL), 0);
  assert_int_equal(count_temp_files(), 0);

  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  assert_string_equal(tyr_safetensors_path(f), path);
  assert_int_equal(tyr_safetensors_count(f), NT);
  assert_int_equal(tyr_safetensors_metadata_count(f), 0);
  assert_null(tyr_safetensors_metadata(f, "format"));
  uint64_t prev_end = 0;
  for (int i = 0; i < NT; i++) {
    const tyr_safetensors_entry *e = tyr_safetensors_entry_at(f, i);
    assert_non_null(e);
    /* file order is offset order, and every tensor is aligned */
    assert_int_equal(e->begin, prev_end);
    assert_int_equal(e->begin % tyr_dtype_size(e->dtype), 0);
    prev_end = e->end;
    assert_ptr_equal(tyr_safetensors_find(f, e->name), e);
  }
  assert_null(tyr_safetensors_entry_at(f, NT));
  assert_null(tyr_safetensors_entry_at(f, -1));
  assert_null(tyr_safetensors_find(f, "t.f32"));

  for (int i = 0; i < NT; i++) {
    const tyr_safetensors_entry *e = tyr_safetensors_find(f, names[i]);
    assert_non_null(e);
    assert_int_equal(e->dtype, ts[i]->dtype);
    assert_int_equal(e->rank, ts[i]->rank);
    for (int d = 0; d < e->rank; d++) assert_int_equal(e->shape[d], ts[i]->shape[d]);
    tyr_tensor *t = tyr_safetensors_load(f, names[i]);
    assert_non_null(t);
    assert_true(t->device.type == TYR_CPU);
    assert_same_tensor(t, ts[i]);
    tyr_tensor_free(t);
  }
  tyr_safetensors_close(f);

  /* the data start is 8-aligned */
  size_t n;
  unsigned char *bytes = read_bytes(path, &n);
  uint64_t hn = 0;
  for (int i = 7; i >= 0; i--) hn = hn << 8 | bytes[i];
  assert_int_equal(hn % 8, 0);
  assert_int_equal(bytes[8], '{');
  assert_int_equal(8 + hn + prev_end, n);
  free(bytes);

  for (int i = 0; i < NT; i++) tyr_tensor_free(ts[i]);
}

static void test_load_owned_by_scope(void **state) {
  (void)state;
  int64_t shape[2] = {2, 3};
  tyr_tensor *t = random_tensor(TYR_F32, 2, shape);
  const char *name = "w";
  char path[512];
  tmp_path(path, sizeof path, "scope.safetensors");
  assert_int_equal(tyr_safetensors_save(path, 1, &name, &t, 0, NULL, NULL), 0);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  int64_t live = tyr_live_tensors();
  {
    TYR_SCOPE;
    tyr_tensor *a = tyr_safetensors_load(f, "w");
    tyr_tensor *b = tyr_safetensors_load(f, "w");
    assert_non_null(a);
    assert_non_null(b);
    assert_same_tensor(a, t);
    assert_int_equal(tyr_live_tensors(), live + 2);
  }
  assert_int_equal(tyr_live_tensors(), live);
  tyr_safetensors_close(f);
  tyr_tensor_free(t);
}

static void test_metadata_roundtrip(void **state) {
  (void)state;
  const char *keys[] = {"format", "a \"quoted\" key", "ünïcødé", "ctl\x01\t\n\\/", "empty"};
  const char *vals[] = {"pt", "line1\nline2", "日本語 ✓", "\x1f\x7f\b\f\r", ""};
  int nm = 5;
  int64_t shape[1] = {4};
  tyr_tensor *t = random_tensor(TYR_I32, 1, shape);
  const char *name = "x";
  char path[512];
  tmp_path(path, sizeof path, "meta.safetensors");
  assert_int_equal(tyr_safetensors_save(path, 1, &name, &t, nm, keys, vals), 0);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  assert_int_equal(tyr_safetensors_metadata_count(f), nm);
  for (int i = 0; i < nm; i++) {
    const char *v = tyr_safetensors_metadata(f, keys[i]);
    assert_non_null(v);
    assert_string_equal(v, vals[i]);
  }
  for (int i = 1; i < nm; i++)
    assert_true(strcmp(tyr_safetensors_metadata_key(f, i - 1), tyr_safetensors_metadata_key(f, i)) <
                0);
  assert_null(tyr_safetensors_metadata_key(f, nm));
  assert_null(tyr_safetensors_metadata(f, "missing"));
  tyr_tensor *u = tyr_safetensors_load(f, "x");
  assert_same_tensor(u, t);
  tyr_tensor_free(u);
  tyr_safetensors_close(f);

  /* the header escapes exactly as serde_json does */
  size_t n;
  unsigned char *b = read_bytes(path, &n);
  const char *want = "{\"__metadata__\":{\"a \\\"quoted\\\" key\":\"line1\\nline2\","
                     "\"ctl\\u0001\\t\\n\\\\/\":\"\\u001f\x7f\\b\\f\\r\",\"empty\":\"\","
                     "\"format\":\"pt\",\"ünïcødé\":\"日本語 ✓\"},";
  assert_true(n > 8 + strlen(want));
  assert_memory_equal(b + 8, want, strlen(want));
  free(b);
  tyr_tensor_free(t);
}

static void test_save_noncontiguous(void **state) {
  (void)state;
  int64_t shape[2] = {3, 4};
  tyr_tensor *a = random_tensor(TYR_F64, 2, shape);
  int64_t tshape[2] = {4, 3}, tstride[2] = {1, 4};
  tyr_tensor *at = tyr_view_raw(a, 2, tshape, tstride, 0);
  assert_non_null(at);
  assert_false(tyr_is_contiguous(at));
  /* a strided slice with an offset: column 1 of a */
  int64_t cshape[1] = {3}, cstride[1] = {4};
  tyr_tensor *col = tyr_view_raw(a, 1, cshape, cstride, 1);
  const char *names[] = {"at", "col"};
  tyr_tensor *ts[] = {at, col};
  char path[512];
  tmp_path(path, sizeof path, "strided.safetensors");
  assert_int_equal(tyr_safetensors_save(path, 2, names, ts, 0, NULL, NULL), 0);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  tyr_tensor *l = tyr_safetensors_load(f, "at");
  tyr_tensor *c = tyr_safetensors_load(f, "col");
  assert_non_null(l);
  assert_non_null(c);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) assert_true(tyr_get_e(l, i, j) == tyr_get_e(a, j, i));
  for (int j = 0; j < 3; j++) assert_true(tyr_get_e(c, j) == tyr_get_e(a, j, 1));
  tyr_tensor_free(l);
  tyr_tensor_free(c);
  tyr_safetensors_close(f);
  tyr_tensor_free(col);
  tyr_tensor_free(at);
  tyr_tensor_free(a);
}

static void test_load_into(void **state) {
  (void)state;
  int64_t shape[2] = {2, 3};
  tyr_tensor *src = random_tensor(TYR_BF16, 2, shape);
  const char *name = "p";
  char path[512];
  tmp_path(path, sizeof path, "into.safetensors");
  assert_int_equal(tyr_safetensors_save(path, 1, &name, &src, 0, NULL, NULL), 0);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);

  tyr_tensor *dst = tyr_empty_at(TYR_SITE, TYR_BF16, TYR_DEVICE_CPU, 2, shape);
  assert_int_equal(tyr_safetensors_load_into(f, "p", dst), 0);
  assert_same_tensor(dst, src);

  /* a strided destination: the transpose of a [3, 2] buffer */
  int64_t bshape[2] = {3, 2};
  tyr_tensor *buf = tyr_empty_at(TYR_SITE, TYR_BF16, TYR_DEVICE_CPU, 2, bshape);
  int64_t vstride[2] = {1, 2};
  tyr_tensor *view = tyr_view_raw(buf, 2, shape, vstride, 0);
  assert_int_equal(tyr_safetensors_load_into(f, "p", view), 0);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) assert_true(tyr_get_e(view, i, j) == tyr_get_e(src, i, j));

  tyr_tensor *wrong_dt = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, shape);
  EXPECT_ERR(tyr_safetensors_load_into(f, "p", wrong_dt), path, "'p'", "bf16", "f32");
  tyr_tensor *wrong_shape = tyr_empty_at(TYR_SITE, TYR_BF16, TYR_DEVICE_CPU, 2, bshape);
  EXPECT_ERR(tyr_safetensors_load_into(f, "p", wrong_shape), path, "'p'", "[2, 3]", "[3, 2]");
  EXPECT_ERR(tyr_safetensors_load_into(f, "q", dst), path, "no tensor named 'q'");
  EXPECT_ERR(tyr_safetensors_load_into(f, "p", NULL), path, "'p'", "NULL");

  tyr_tensor_free(wrong_shape);
  tyr_tensor_free(wrong_dt);
  tyr_tensor_free(view);
  tyr_tensor_free(buf);
  tyr_tensor_free(dst);
  tyr_safetensors_close(f);
  tyr_tensor_free(src);
}

/* ---- golden bytes ----------------------------------------------------------
 * The first four cases are the byte strings the reference implementation's
 * own tests expect from its writer; the last is built by hand from its
 * ordering rule (dtype alignment, largest first, then name). */
static void check_written_bytes(const char *tag, int n, const char *const *names,
                                tyr_tensor *const *ts, int nm, const char *const *keys,
                                const char *const *vals, const unsigned char *want, size_t wn) {
  char path[512];
  tmp_path(path, sizeof path, tag);
  assert_int_equal(tyr_safetensors_save(path, n, names, ts, nm, keys, vals), 0);
  size_t got_n;
  unsigned char *got = read_bytes(path, &got_n);
  if (got_n != wn || memcmp(got, want, wn) != 0) {
    print_error("%s: %zu bytes written, %zu expected\n", tag, got_n, wn);
    for (size_t i = 0; i < got_n && i < wn; i++)
      if (got[i] != want[i]) {
        print_error("first difference at byte %zu: %02x vs %02x\n", i, got[i], want[i]);
        break;
      }
    free(got);
    fail();
  }
  free(got);
  /* and the reader takes it back */
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  assert_int_equal(tyr_safetensors_count(f), n);
  for (int i = 0; i < n; i++) {
    tyr_tensor *t = tyr_safetensors_load(f, names[i]);
    assert_non_null(t);
    assert_same_tensor(t, ts[i]);
    tyr_tensor_free(t);
  }
  for (int i = 0; i < nm; i++) assert_string_equal(tyr_safetensors_metadata(f, keys[i]), vals[i]);
  tyr_safetensors_close(f);
}

static void test_golden_reference_vectors(void **state) {
  (void)state;
  float v[6] = {0, 1, 2, 3, 4, 5};
  static const unsigned char data[24] = {0, 0, 0,  0,  0, 0, 128, 63, 0, 0, 0,   64,
                                         0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
  {
    int64_t shape[3] = {1, 2, 3};
    tyr_tensor *t = tyr_from_buffer_at(TYR_SITE, v, TYR_F32, 3, shape);
    const char *name = "attn.0";
    const char hdr[] = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    unsigned char want[8 + 64 + 24] = {64};
    assert_int_equal(strlen(hdr), 64);
    memcpy(want + 8, hdr, 64);
    memcpy(want + 72, data, 24);
    check_written_bytes("golden1.safetensors", 1, &name, &t, 0, NULL, NULL, want, sizeof want);
    tyr_tensor_free(t);
  }
  {
    int64_t shape[4] = {1, 1, 2, 3};
    tyr_tensor *t = tyr_from_buffer_at(TYR_SITE, v, TYR_F32, 4, shape);
    const char *name = "attn0";
    const char hdr[] =
        "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ";
    unsigned char want[8 + 72 + 24] = {72};
    assert_int_equal(strlen(hdr), 72);
    memcpy(want + 8, hdr, 72);
    memcpy(want + 80, data, 24);
    check_written_bytes("golden2.safetensors", 1, &name, &t, 0, NULL, NULL, want, sizeof want);
    tyr_tensor_free(t);
  }
  {
    static const unsigned char want[] = {8,   0,   0,   0,   0,   0,   0,   0,
                                         '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    check_written_bytes("golden3.safetensors", 0, NULL, NULL, 0, NULL, NULL, want, sizeof want);
  }
  {
    const char *k = "framework", *val = "pt";
    const char hdr[] = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    unsigned char want[8 + 40] = {40};
    assert_int_equal(strlen(hdr), 40);
    memcpy(want + 8, hdr, 40);
    check_written_bytes("golden4.safetensors", 0, NULL, NULL, 1, &k, &val, want, sizeof want);
  }
  {
    /* every dtype, names given out of order, a name that needs escaping */
    uint8_t b_u8[3] = {1, 2, 3};
    float a_f32 = 1.0f;
    int64_t c_i64 = -1;
    uint16_t d_bf16[2] = {0x3f80, 0xc000};
    uint8_t e_bool[2] = {1, 0};
    uint16_t f_f16 = 0x3c00;
    double g_f64 = 0.5;
    int32_t h_i32 = 7;
    int64_t s1[1] = {1}, s2[1] = {2}, s3[1] = {3};
    tyr_tensor *ts[8] = {
        tyr_from_buffer_at(TYR_SITE, b_u8, TYR_U8, 1, s3),
        tyr_from_buffer_at(TYR_SITE, &a_f32, TYR_F32, 0, s1),
        tyr_from_buffer_at(TYR_SITE, &c_i64, TYR_I64, 1, s1),
        tyr_from_buffer_at(TYR_SITE, d_bf16, TYR_BF16, 1, s2),
        tyr_from_buffer_at(TYR_SITE, e_bool, TYR_BOOL, 1, s2),
        tyr_from_buffer_at(TYR_SITE, &f_f16, TYR_F16, 1, s1),
        tyr_from_buffer_at(TYR_SITE, &g_f64, TYR_F64, 1, s1),
        tyr_from_buffer_at(TYR_SITE, &h_i32, TYR_I32, 1, s1),
    };
    const char *names[8] = {"b", "a", "c\"q", "d", "e", "f", "g", "h"};
    const char *keys[2] = {"z", "a"}, *vals[2] = {"1", "x\ny"};
    const char hdr[] = "{\"__metadata__\":{\"a\":\"x\\ny\",\"z\":\"1\"},"
                       "\"c\\\"q\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                       "\"g\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
                       "\"h\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[20,24]},"
                       "\"d\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                       "\"f\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[28,30]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[30,33]},"
                       "\"e\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[33,35]}}   ";
    static const unsigned char body[35] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* c: -1 */
        0,    0,    0,    0,    0,    0,    0xe0, 0x3f, /* g: 0.5 */
        0,    0,    0x80, 0x3f,                         /* a: 1.0f */
        7,    0,    0,    0,                            /* h: 7 */
        0x80, 0x3f, 0x00, 0xc0,                         /* d: bf16 1, -2 */
        0x00, 0x3c,                                     /* f: f16 1 */
        1,    2,    3,                                  /* b */
        1,    0,                                        /* e */
    };
    unsigned char want[8 + 480 + 35] = {0xe0, 0x01};
    assert_int_equal(strlen(hdr), 480);
    memcpy(want + 8, hdr, 480);
    memcpy(want + 488, body, 35);
    check_written_bytes("golden5.safetensors", 8, names, ts, 2, keys, vals, want, sizeof want);
    /* file order is the writer's order */
    char path[512];
    tyr_safetensors *f = tyr_safetensors_open(tmp_path(path, sizeof path, "golden5.safetensors"));
    assert_non_null(f);
    static const char *order[8] = {"c\"q", "g", "a", "h", "d", "f", "b", "e"};
    for (int i = 0; i < 8; i++) assert_string_equal(tyr_safetensors_name(f, i), order[i]);
    tyr_safetensors_close(f);
    for (int i = 0; i < 8; i++) tyr_tensor_free(ts[i]);
  }
}

/* Files from the reference implementation's reader tests. */
static void test_reference_reader_cases(void **state) {
  (void)state;
  char path[512];
  /* I32 [2, 2] at [0, 16] */
  make_st(path, sizeof path, "ref1.safetensors",
          "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  const tyr_safetensors_entry *e = tyr_safetensors_find(f, "test");
  assert_non_null(e);
  assert_int_equal(e->dtype, TYR_I32);
  assert_int_equal(e->rank, 2);
  tyr_tensor *t = tyr_safetensors_load(f, "test");
  assert_int_equal(tyr_get_e(t, 0, 1), 0x07060504);
  tyr_tensor_free(t);
  tyr_safetensors_close(f);

  /* a scalar */
  make_st(path, sizeof path, "ref2.safetensors",
          "{\"test\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4);
  f = tyr_safetensors_open(path);
  assert_non_null(f);
  t = tyr_safetensors_load(f, "test");
  assert_int_equal(t->rank, 0);
  assert_int_equal(tyr_item_e(t), 0x03020100);
  tyr_tensor_free(t);
  tyr_safetensors_close(f);

  /* a zero-sized tensor, and space inside the JSON */
  make_st(path, sizeof path, "ref3.safetensors",
          "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[0, 0]}}", 0);
  f = tyr_safetensors_open(path);
  assert_non_null(f);
  t = tyr_safetensors_load(f, "test");
  assert_int_equal(tyr_numel(t), 0);
  tyr_tensor_free(t);
  tyr_safetensors_close(f);

  /* trailing JSON whitespace of every kind */
  make_st(path, sizeof path, "ref4.safetensors", "{}\r \t\n", 0);
  f = tyr_safetensors_open(path);
  assert_non_null(f);
  assert_int_equal(tyr_safetensors_count(f), 0);
  tyr_safetensors_close(f);

  /* several zero-sized tensors sharing an offset; null metadata; any key order */
  make_st(path, sizeof path, "ref5.safetensors",
          "{\"z\":{\"shape\":[4],\"dtype\":\"U8\",\"data_offsets\":[0,4]},"
          "\"__metadata__\":null,"
          "\"y\":{\"data_offsets\":[0,0],\"dtype\":\"F32\",\"shape\":[0]},"
          "\"x\":{\"dtype\":\"F64\",\"shape\":[0,5],\"data_offsets\":[0,0]}}",
          4);
  f = tyr_safetensors_open(path);
  assert_non_null(f);
  assert_int_equal(tyr_safetensors_count(f), 3);
  assert_int_equal(tyr_safetensors_metadata_count(f), 0);
  assert_string_equal(tyr_safetensors_name(f, 0), "x");
  assert_string_equal(tyr_safetensors_name(f, 1), "y");
  assert_string_equal(tyr_safetensors_name(f, 2), "z");
  tyr_safetensors_close(f);
}

/* ---- malformed files ------------------------------------------------------ */
static void test_malformed_files(void **state) {
  (void)state;
  char p[512];
  const char *ok_entry = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

  /* missing file, directory */
  tmp_path(p, sizeof p, "does-not-exist.safetensors");
  EXPECT_OPEN_FAILS(p, "cannot open", "No such file");
  EXPECT_OPEN_FAILS(tyr_test_tmpdir(), "not a regular file");
  tmp_path(p, sizeof p, "fifo.safetensors");
  unlink(p);
  assert_int_equal(mkfifo(p, 0600), 0);
  EXPECT_OPEN_FAILS(p, "not a regular file");
  unlink(p);

  /* shorter than the size field */
  tmp_path(p, sizeof p, "short.safetensors");
  write_bytes(p, "\x02\x00\x00", 3);
  EXPECT_OPEN_FAILS(p, "too short");
  tmp_path(p, sizeof p, "empty.safetensors");
  write_bytes(p, "", 0);
  EXPECT_OPEN_FAILS(p, "too short");

  /* header size over the limit, and one that does not fit in the file */
  make_file(p, sizeof p, "toolarge.safetensors", 100000001ull, ok_entry, strlen(ok_entry), 8);
  EXPECT_OPEN_FAILS(p, "header size 100000001", "limit");
  make_file(p, sizeof p, "huge.safetensors", 0xffffffffffffff3cull, ok_entry, strlen(ok_entry), 8);
  EXPECT_OPEN_FAILS(p, "limit");
  make_file(p, sizeof p, "beyond.safetensors", 1000, ok_entry, strlen(ok_entry), 8);
  EXPECT_OPEN_FAILS(p, "header size 1000 runs past the end of the file");
  make_file(p, sizeof p, "zeroheader.safetensors", 0, "", 0, 0);
  EXPECT_OPEN_FAILS(p, "does not start with '{'");

  /* not UTF-8, not starting with '{', not JSON */
  make_st(p, sizeof p, "utf8.safetensors", "{\"w\xff\":1}", 0);
  EXPECT_OPEN_FAILS(p, "not valid UTF-8", "byte 3");
  make_st(p, sizeof p, "surrogate.safetensors", "{\"\xed\xa0\x80\":1}", 0);
  EXPECT_OPEN_FAILS(p, "not valid UTF-8");
  make_st(p, sizeof p, "overlong.safetensors", "{\"\xc0\xaf\":1}", 0);
  EXPECT_OPEN_FAILS(p, "not valid UTF-8");
  make_st(p, sizeof p, "leadingspace.safetensors", " {}", 0);
  EXPECT_OPEN_FAILS(p, "does not start with '{'");
  make_st(p, sizeof p, "array.safetensors", "[1,2]", 0);
  EXPECT_OPEN_FAILS(p, "does not start with '{'");
  make_st(p, sizeof p, "badjson.safetensors", "{\"w\":", 0);
  EXPECT_OPEN_FAILS(p, "not valid JSON");
  make_st(p, sizeof p, "trailing.safetensors", "{} {}", 0);
  EXPECT_OPEN_FAILS(p, "not valid JSON");
  make_file(p, sizeof p, "nul.safetensors", 4, "{}\0 ", 4, 0);
  EXPECT_OPEN_FAILS(p, "not valid JSON");
  make_st(p, sizeof p, "dupkey.safetensors",
          "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
          "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
          2);
  EXPECT_OPEN_FAILS(p, "not valid JSON", "duplicate");

  /* entries */
  make_st(p, sizeof p, "notobj.safetensors", "{\"w\":5}", 0);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "not an object");
  make_st(p, sizeof p, "nodtype.safetensors", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "missing field \"dtype\"");
  make_st(p, sizeof p, "noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}",
          8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "missing field \"shape\"");
  make_st(p, sizeof p, "nooffsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "missing field \"data_offsets\"");
  make_st(p, sizeof p, "extrafield.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"foo\":1}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "unexpected field 'foo'");
  make_st(p, sizeof p, "nulname.safetensors",
          "{\"w\\u0000x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "not valid JSON", "NUL byte in object key");

  /* dtypes */
  make_st(p, sizeof p, "dtype-unknown.safetensors",
          "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "unknown dtype 'F33'");
  make_st(p, sizeof p, "dtype-lower.safetensors",
          "{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "unknown dtype 'f32'");
  static const char *const unsupported[] = {"I8",      "I16",     "U16",     "U32", "U64",
                                            "F8_E5M2", "F8_E4M3", "F8_E8M0", "C64", "F4"};
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
    char hdr[200], msg[64];
    snprintf(hdr, sizeof hdr, "{\"q\":{\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             unsupported[i]);
    snprintf(msg, sizeof msg, "unsupported dtype %s", unsupported[i]);
    make_st(p, sizeof p, "dtype-unsupported.safetensors", hdr, 8);
    EXPECT_OPEN_FAILS(p, "tensor 'q'", msg);
  }
  make_st(p, sizeof p, "dtype-num.safetensors",
          "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "dtype is not a string");

  /* shapes */
  make_st(p, sizeof p, "shape-neg.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "shape[0] is negative");
  make_st(p, sizeof p, "shape-float.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "shape[0] is not an integer");
  make_st(p, sizeof p, "shape-str.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "shape is not an array");
  make_st(p, sizeof p, "rank7.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "rank 7");
  make_st(p, sizeof p, "overflow1.safetensors",
          "{\"w\":{\"dtype\":\"I32\",\"shape\":[2,9223372036854775807],\"data_offsets\":[0,16]}}",
          16);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "overflows");
  make_st(p, sizeof p, "overflow2.safetensors",
          "{\"w\":{\"dtype\":\"I32\",\"shape\":[4611686018427387904,4,0],\"data_offsets\":[0,0]}}",
          0);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "overflows");
  /* sizes the reference reader accepts but Tyr's int64 indexing cannot hold */
  make_st(p, sizeof p, "overflow3.safetensors",
          "{\"w\":{\"dtype\":\"I32\",\"shape\":[4211686018427387904,4,0],\"data_offsets\":[0,0]}}",
          0);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "too large");
  make_st(p, sizeof p, "overflow4.safetensors",
          "{\"w\":{\"dtype\":\"U8\",\"shape\":[0,4611686018427387904,4611686018427387904],"
          "\"data_offsets\":[0,0]}}",
          0);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "too large");
  make_st(p, sizeof p, "bigint.safetensors",
          "{\"w\":{\"dtype\":\"I32\",\"shape\":[2,18446744073709551614],\"data_offsets\":[0,16]}}",
          16);
  EXPECT_OPEN_FAILS(p, "not valid JSON");

  /* offsets */
  make_st(p, sizeof p, "offsets-arity.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "data_offsets is not an array of two integers");
  make_st(p, sizeof p, "offsets-neg.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "data_offsets[0] is negative");
  make_st(p, sizeof p, "offsets-str.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "data_offsets[1] is not an integer");
  make_st(p, sizeof p, "offsets-range.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "[0, 400] run past the end of the data buffer (8 bytes");
  make_st(p, sizeof p, "offsets-reversed.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "end before they begin");
  make_st(p, sizeof p, "overlap.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
          12);
  EXPECT_OPEN_FAILS(p, "tensor 'b'", "overlap tensor 'a'");
  make_st(p, sizeof p, "overlap-same.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
          8);
  EXPECT_OPEN_FAILS(p, "tensor 'b'", "overlap tensor 'a'");
  make_st(p, sizeof p, "gap.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
          12);
  EXPECT_OPEN_FAILS(p, "tensor 'b'", "gap of 4 bytes");
  make_st(p, sizeof p, "gap-start.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
  EXPECT_OPEN_FAILS(p, "tensor 'a'", "gap of 4 bytes");
  make_st(p, sizeof p, "bytecount.safetensors",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "hold 4 bytes but dtype F32 and shape [2] need 8");
  make_st(p, sizeof p, "truncated.safetensors", ok_entry, 6);
  EXPECT_OPEN_FAILS(p, "tensor 'w'", "data buffer (6 bytes; is the file truncated?)");
  make_st(p, sizeof p, "extra.safetensors", ok_entry, 11);
  EXPECT_OPEN_FAILS(p, "3 bytes follow the last tensor 'w'");
  make_st(p, sizeof p, "notensors.safetensors", "{}", 5);
  EXPECT_OPEN_FAILS(p, "lists no tensors", "5 bytes");

  /* metadata */
  make_st(p, sizeof p, "meta-int.safetensors", "{\"__metadata__\":{\"k\":\"v\",\"n\":1}}", 0);
  EXPECT_OPEN_FAILS(p, "metadata value for key 'n' is not a string");
  make_st(p, sizeof p, "meta-nested.safetensors", "{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}", 0);
  EXPECT_OPEN_FAILS(p, "metadata value for key 'k' is not a string");
  make_st(p, sizeof p, "meta-array.safetensors", "{\"__metadata__\":[\"a\"]}", 0);
  EXPECT_OPEN_FAILS(p, "\"__metadata__\" is not an object");
  make_st(p, sizeof p, "meta-nul.safetensors", "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0);
  EXPECT_OPEN_FAILS(p, "metadata value for key 'k' contains a NUL");
}

static void test_file_changed_after_open(void **state) {
  (void)state;
  int64_t shape[1] = {16};
  tyr_tensor *t = random_tensor(TYR_F64, 1, shape);
  const char *name = "big";
  char path[512];
  tmp_path(path, sizeof path, "shrinks.safetensors");
  assert_int_equal(tyr_safetensors_save(path, 1, &name, &t, 0, NULL, NULL), 0);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  assert_int_equal(truncate(path, 100), 0);
  int64_t live = tyr_live_tensors();
  EXPECT_ERR(tyr_safetensors_load(f, "big") == NULL, path, "tensor 'big'",
             "unexpected end of file");
  assert_int_equal(tyr_live_tensors(), live);
  EXPECT_ERR(tyr_safetensors_load(f, "small") == NULL, path, "no tensor named 'small'");
  EXPECT_ERR(tyr_safetensors_load(f, NULL) == NULL, path, "name is NULL");
  EXPECT_ERR(tyr_safetensors_load(NULL, "big") == NULL, "file is NULL");
  tyr_safetensors_close(f);
  tyr_safetensors_close(NULL);
  tyr_tensor_free(t);
}

/* ---- failed saves --------------------------------------------------------- */
static void test_save_argument_errors(void **state) {
  (void)state;
  char path[512];
  tmp_path(path, sizeof path, "args.safetensors");
  int64_t shape[1] = {2};
  tyr_tensor *a = random_tensor(TYR_F32, 1, shape), *b = random_tensor(TYR_U8, 1, shape);
  /* an existing file that must survive every failed save */
  const char *good_names[] = {"a"};
  assert_int_equal(tyr_safetensors_save(path, 1, good_names, &a, 0, NULL, NULL), 0);
  size_t n0;
  unsigned char *before = read_bytes(path, &n0);

  const char *dup[] = {"x", "x"};
  tyr_tensor *ab[] = {a, b};
  EXPECT_ERR(tyr_safetensors_save(path, 2, dup, ab, 0, NULL, NULL), path,
             "'x' appears more than once");
  const char *mixed[] = {"x", NULL};
  EXPECT_ERR(tyr_safetensors_save(path, 2, mixed, ab, 0, NULL, NULL), path, "names[1] is NULL");
  const char *two[] = {"x", "y"};
  tyr_tensor *anull[] = {a, NULL};
  EXPECT_ERR(tyr_safetensors_save(path, 2, two, anull, 0, NULL, NULL), path, "tensor 'y'", "NULL");
  const char *meta_name[] = {"__metadata__"};
  EXPECT_ERR(tyr_safetensors_save(path, 1, meta_name, &a, 0, NULL, NULL), path, "__metadata__");
  const char *bad_utf8[] = {"w\xc3"};
  EXPECT_ERR(tyr_safetensors_save(path, 1, bad_utf8, &a, 0, NULL, NULL), path, "not valid UTF-8");
  const char *keys[] = {"k", "k"}, *vals[] = {"1", "2"};
  EXPECT_ERR(tyr_safetensors_save(path, 1, two, &a, 2, keys, vals), path, "metadata key 'k'",
             "more than once");
  const char *nullval[] = {"1", NULL};
  const char *keys2[] = {"k", "l"};
  EXPECT_ERR(tyr_safetensors_save(path, 1, two, &a, 2, keys2, nullval), path, "meta_values[1]");
  const char *badval[] = {"1", "\xff"};
  EXPECT_ERR(tyr_safetensors_save(path, 1, two, &a, 2, keys2, badval), path, "value for key 'l'",
             "UTF-8");
  EXPECT_ERR(tyr_safetensors_save(path, -1, two, &a, 0, NULL, NULL), path, "negative");
  EXPECT_ERR(tyr_safetensors_save(path, 1, NULL, &a, 0, NULL, NULL), path, "names is NULL");
  EXPECT_ERR(tyr_safetensors_save(NULL, 1, two, &a, 0, NULL, NULL), "path is NULL");
  EXPECT_ERR(tyr_safetensors_save("", 1, two, &a, 0, NULL, NULL), "path is empty");
  tyr_tensor fake = *a; /* a tensor on a device no backend knows */
  fake.device.type = (tyr_device_type)5;
  fake.scope = NULL;
  tyr_tensor *fp = &fake;
  EXPECT_ERR(tyr_safetensors_save(path, 1, two, &fp, 0, NULL, NULL), path, "unknown device type 5");

  size_t n1;
  unsigned char *after = read_bytes(path, &n1);
  assert_int_equal(n0, n1);
  assert_memory_equal(before, after, n0);
  assert_int_equal(count_temp_files(), 0);
  free(before);
  free(after);
  tyr_tensor_free(a);
  tyr_tensor_free(b);
}

static void test_save_io_failures_leave_file_intact(void **state) {
  (void)state;
  char path[512];
  tmp_path(path, sizeof path, "intact.safetensors");
  int64_t small[1] = {4}, large[1] = {65536};
  tyr_tensor *a = random_tensor(TYR_F32, 1, small);
  tyr_tensor *big = random_tensor(TYR_F32, 1, large);
  const char *name = "a";
  assert_int_equal(tyr_safetensors_save(path, 1, &name, &a, 0, NULL, NULL), 0);
  size_t n0;
  unsigned char *before = read_bytes(path, &n0);

  /* a directory that does not exist, and a "directory" that is a file */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/no-such-dir/x.safetensors", tyr_test_tmpdir());
  EXPECT_ERR(tyr_safetensors_save(bad, 1, &name, &a, 0, NULL, NULL), bad, "temporary file",
             "No such file");
  snprintf(bad, sizeof bad, "%s/x.safetensors", path);
  EXPECT_ERR(tyr_safetensors_save(bad, 1, &name, &a, 0, NULL, NULL), bad, "Not a directory");

  /* the disk fills up half way: writes past RLIMIT_FSIZE fail with EFBIG */
  struct rlimit old;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 4096;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  const char *bname = "big";
  int rc = tyr_safetensors_save(path, 1, &bname, &big, 0, NULL, NULL);
  const int errs = tyr_test_error_count();
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", tyr_test_error_message());
  tyr_test_error_reset();
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, old_handler);
  assert_int_not_equal(rc, 0);
  assert_int_equal(errs, 1);
  assert_non_null(strstr(msg, path));
  assert_non_null(strstr(msg, "tensor 'big': cannot write"));

  size_t n1;
  unsigned char *after = read_bytes(path, &n1);
  assert_int_equal(n0, n1);
  assert_memory_equal(before, after, n0);
  assert_int_equal(count_temp_files(), 0);

  /* and the same save succeeds once there is room, replacing the file */
  assert_int_equal(tyr_safetensors_save(path, 1, &bname, &big, 0, NULL, NULL), 0);
  tyr_safetensors *f = tyr_safetensors_open(path);
  assert_non_null(f);
  tyr_tensor *t = tyr_safetensors_load(f, "big");
  assert_same_tensor(t, big);
  tyr_tensor_free(t);
  assert_null(tyr_safetensors_find(f, "a"));
  tyr_safetensors_close(f);
  free(before);
  free(after);
  tyr_tensor_free(big);
  tyr_tensor_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_roundtrip_all_dtypes_and_ranks),
      TYR_TEST(test_load_owned_by_scope),
      TYR_TEST(test_metadata_roundtrip),
      TYR_TEST(test_save_noncontiguous),
      TYR_TEST(test_load_into),
      TYR_TEST(test_golden_reference_vectors),
      TYR_TEST(test_reference_reader_cases),
      TYR_TEST(test_malformed_files),
      TYR_TEST(test_file_changed_after_open),
      TYR_TEST(test_save_argument_errors),
      TYR_TEST(test_save_io_failures_leave_file_intact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
