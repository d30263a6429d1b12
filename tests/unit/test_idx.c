/* IDX files: every element type, plain and gzipped, round trips through
 * tyr_idx_save, every validation error with its message, and the installed
 * Fashion-MNIST files when present. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "tyr/idx.h"

static const char *tmp_path(const char *name) {
  static char buf[8][512];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 512, "%s/%s", tyr_test_tmpdir(), name);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (n) assert_int_equal(fwrite(data, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t n) {
  gzFile g = gzopen(path, "wb");
  assert_non_null(g);
  assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
  assert_int_equal(gzclose(g), Z_OK);
}

/* A 2x3 unsigned-byte file. */
static const unsigned char U8_2x3[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 5, 6};

static void test_u8_plain_and_gz(void **state) {
  (void)state;
  const char *p = tmp_path("a.idx"), *g = tmp_path("a.idx.gz");
  write_bytes(p, U8_2x3, sizeof U8_2x3);
  write_gz(g, U8_2x3, sizeof U8_2x3);
  const char *paths[2] = {p, g};
  for (int k = 0; k < 2; k++) {
    tyr_tensor *t = tyr_idx_load(paths[k]);
    assert_non_null(t);
    assert_int_equal(t->dtype, TYR_U8);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_memory_equal(tyr_data_ptr(t), U8_2x3 + 12, 6);
    assert_true(tyr_get_e(t, 1, 0) == 250);
    tyr_tensor_free(t);
  }
}

static void test_wide_types(void **state) {
  (void)state;
  /* int8 [-1, 2], int16 [-2, 300], int32 [-70000], float32 [1.5], float64 [-0.25] */
  const unsigned char i8[] = {0, 0, 9, 1, 0, 0, 0, 2, 0xff, 2};
  const unsigned char i16[] = {0, 0, 0x0b, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x2c};
  const unsigned char i32[] = {0, 0, 0x0c, 1, 0, 0, 0, 1, 0xff, 0xfe, 0xee, 0x90};
  const unsigned char f32[] = {0, 0, 0x0d, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0};
  const unsigned char f64[] = {0, 0, 0x0e, 1, 0, 0, 0, 1, 0xbf, 0xd0, 0, 0, 0, 0, 0, 0};
  tyr_tensor *t = tyr_idx_parse("i8", i8, sizeof i8);
  assert_int_equal(t->dtype, TYR_I32);
  assert_true(tyr_get_e(t, 0) == -1 && tyr_get_e(t, 1) == 2);
  tyr_tensor_free(t);
  t = tyr_idx_parse("i16", i16, sizeof i16);
  assert_int_equal(t->dtype, TYR_I32);
  assert_true(tyr_get_e(t, 0) == -2 && tyr_get_e(t, 1) == 300);
  tyr_tensor_free(t);
  t = tyr_idx_parse("i32", i32, sizeof i32);
  assert_true(tyr_get_e(t, 0) == -70000);
  tyr_tensor_free(t);
  t = tyr_idx_parse("f32", f32, sizeof f32);
  assert_int_equal(t->dtype, TYR_F32);
  assert_true(tyr_get_e(t, 0) == 1.5);
  tyr_tensor_free(t);
  t = tyr_idx_parse("f64", f64, sizeof f64);
  assert_int_equal(t->dtype, TYR_F64);
  assert_true(tyr_get_e(t, 0) == -0.25);
  tyr_tensor_free(t);
}

static void test_save_roundtrip(void **state) {
  (void)state;
  tyr_dtype dts[4] = {TYR_U8, TYR_I32, TYR_F32, TYR_F64};
  for (int k = 0; k < 4; k++) {
    tyr_tensor *t = tyr_empty_at(TYR_SITE, dts[k], TYR_DEVICE_CPU, 3, (const int64_t[]){2, 3, 4});
    for (int64_t i = 0; i < 24; i++)
      tyr_set_e(t, dts[k] == TYR_U8 ? (double)(i * 10) : (double)i * -1.25 + 3, i / 12, (i / 4) % 3,
                i % 4);
    const char *p = tmp_path("rt.idx");
    assert_int_equal(tyr_idx_save(p, t), 0);
    tyr_tensor *u = tyr_idx_load(p);
    assert_non_null(u);
    assert_int_equal(u->dtype, dts[k]);
    assert_int_equal(u->rank, 3);
    assert_memory_equal(u->shape, t->shape, 3 * sizeof(int64_t));
    assert_memory_equal(tyr_data_ptr(u), tyr_data_ptr(t), (size_t)tyr_nbytes(t));
    tyr_tensor_free(u);
    tyr_tensor_free(t);
  }
  tyr_test_record_errors();
  tyr_tensor *b = tyr_empty_at(TYR_SITE, TYR_BF16, TYR_DEVICE_CPU, 1, (const int64_t[]){2});
  EXPECT_TYR_ERROR(tyr_idx_save(tmp_path("bf.idx"), b), "bf16 has no IDX type");
  tyr_tensor_free(b);
}

static void expect_parse_error(const void *data, size_t n, const char *msg) {
  tyr_test_error_reset();
  tyr_tensor *t = tyr_idx_parse("bad.idx", data, n);
  assert_null(t);
  assert_int_equal(tyr_test_error_count(), 1);
  if (!strstr(tyr_test_error_message(), msg) || !strstr(tyr_test_error_message(), "bad.idx"))
    fail_msg("error '%s' does not contain '%s' and the name", tyr_test_error_message(), msg);
  tyr_test_error_reset();
}

static void test_errors(void **state) {
  (void)state;
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_idx_load(tmp_path("missing.idx")), "missing.idx: cannot open");
  EXPECT_TYR_ERROR(tyr_idx_load(tyr_test_tmpdir()), "not a regular file");
  expect_parse_error(U8_2x3, 0, "empty file");
  expect_parse_error(U8_2x3, 3, "truncated header");
  expect_parse_error("\x00\x01\x08\x01", 4, "bad magic");
  expect_parse_error("\x00\x00\x07\x01", 4, "bad magic 00 00 07 01");
  expect_parse_error("PK\x03\x04", 4, "not an IDX file");
  expect_parse_error("\x00\x00\x08\x00", 4, "rank 0 is outside 1..6");
  expect_parse_error("\x00\x00\x08\x07", 4, "rank 7 is outside");
  expect_parse_error(U8_2x3, 10, "truncated header: the rank is 2");
  expect_parse_error(U8_2x3, sizeof U8_2x3 - 1, "truncated: the dims [2, 3] need 6 bytes");
  unsigned char extra[sizeof U8_2x3 + 1];
  memcpy(extra, U8_2x3, sizeof U8_2x3);
  extra[sizeof U8_2x3] = 9;
  expect_parse_error(extra, sizeof extra, "trailing data after the 6 bytes");
  /* absurd dims: 2^32-1 cubed, and a large claim in a small gzip file */
  const unsigned char huge[] = {0,    0,    8,    3,    0xff, 0xff, 0xff, 0xff, 0xff,
                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
  expect_parse_error(huge, sizeof huge, "absurd dims [4294967295, 4294967295, 4294967295]");
  const char *g = tmp_path("big.gz");
  const unsigned char big[] = {0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0, 7};
  write_gz(g, big, sizeof big);
  EXPECT_TYR_ERROR(tyr_idx_load(g), "big.gz: absurd dims [65536, 65536]");
  /* gzip: truncated stream, truncated data, corrupt bytes */
  const char *gp = tmp_path("t.gz");
  write_gz(gp, U8_2x3, sizeof U8_2x3 - 2);
  EXPECT_TYR_ERROR(tyr_idx_load(gp), "truncated: the dims [2, 3] need 6 bytes of data");
  write_gz(gp, U8_2x3, sizeof U8_2x3);
  FILE *f = fopen(gp, "rb");
  unsigned char buf[256];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  expect_parse_error(buf, n - 6, "truncated");
  buf[12] ^= 0xff;
  buf[13] ^= 0x55;
  tyr_test_error_reset();
  assert_null(tyr_idx_parse("bad.idx", buf, n));
  assert_int_equal(tyr_test_error_count(), 1);
  tyr_test_error_reset();
}

/* The Debian package dataset-fashion-mnist, when installed. */
static void test_fashion_mnist(void **state) {
  (void)state;
  const char *dir = "/usr/share/datasets/fashion-mnist";
  char path[256];
  snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
  FILE *f = fopen(path, "rb");
  if (!f) {
    print_message("skipped: %s is not installed\n", path);
    skip();
  }
  fclose(f);
  tyr_tensor *y = tyr_idx_load(path);
  assert_non_null(y);
  assert_int_equal(y->rank, 1);
  assert_int_equal(y->shape[0], 10000);
  int64_t count[10] = {0};
  const uint8_t *l = tyr_data_ptr(y);
  for (int i = 0; i < 10000; i++) {
    assert_true(l[i] < 10);
    count[l[i]]++;
  }
  for (int c = 0; c < 10; c++) assert_int_equal(count[c], 1000);
  tyr_tensor_free(y);
  snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
  tyr_tensor *x = tyr_idx_load(path);
  assert_non_null(x);
  assert_int_equal(x->dtype, TYR_U8);
  assert_int_equal(x->rank, 3);
  assert_int_equal(x->shape[0], 10000);
  assert_int_equal(x->shape[1], 28);
  assert_int_equal(x->shape[2], 28);
  tyr_tensor_free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_u8_plain_and_gz), TYR_TEST(test_wide_types),    TYR_TEST(test_save_roundtrip),
      TYR_TEST(test_errors),          TYR_TEST(test_fashion_mnist),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
