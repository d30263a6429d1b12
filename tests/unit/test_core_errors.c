#include "testutil.h"

#include <stdio.h>

static void test_raise_formats_site_and_op(void **state) {
  (void)state;
  tyr_site s = {"model.c", 42};
  tyr_raise(TYR_ERR_SHAPE, s, "tyr_matmul", "inner dimensions differ: %s vs %s", "[2, 3]",
            "[4, 5]");
  assert_int_equal(tyr_test_error_count(), 1);
  assert_string_equal(tyr_test_error_message(),
                      "model.c:42: tyr_matmul: inner dimensions differ: [2, 3] vs [4, 5]");
  assert_non_null(tyr_error_last());
  assert_int_equal(tyr_error_last()->status, TYR_ERR_SHAPE);
  tyr_test_error_reset();
  assert_null(tyr_error_last());
}

static void test_shape_str(void **state) {
  (void)state;
  char buf[64];
  int64_t sh[3] = {32, 768, 1};
  assert_string_equal(tyr_shape_str(sh, 3, buf, sizeof buf), "[32, 768, 1]");
  assert_string_equal(tyr_shape_str(sh, 0, buf, sizeof buf), "[]");
}

static void test_half_conversions(void **state) {
  (void)state;
  float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 3.140625f};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    assert_true(tyr_f16_to_f32(tyr_f32_to_f16(vals[i])) == vals[i]);
    float b = tyr_bf16_to_f32(tyr_f32_to_bf16(vals[i]));
    ASSERT_CLOSE(b, vals[i], 0, 1.0 / 128);
  }
  assert_int_equal(tyr_f32_to_bf16(1.0f), 0x3f80);
  assert_int_equal(tyr_f32_to_f16(1.0f), 0x3c00);
  assert_int_equal(tyr_f32_to_f16(1e6f), 0x7c00); /* overflow to inf */
  /* round to nearest even: 1 + 2^-8 is a tie in bf16, rounds down to 1 */
  assert_int_equal(tyr_f32_to_bf16(1.00390625f), 0x3f80);
}

static void test_device_parse(void **state) {
  (void)state;
  tyr_device d;
  assert_true(tyr_device_parse("cpu", &d) && d.type == TYR_CPU);
  assert_true(tyr_device_parse("cuda:1", &d) && d.type == TYR_CUDA && d.index == 1);
  assert_false(tyr_device_parse("gpu", &d));
  assert_false(tyr_device_parse("cuda:", &d));
  assert_false(tyr_device_parse("cuda:x", &d));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_raise_formats_site_and_op),
      TYR_TEST(test_shape_str),
      TYR_TEST(test_half_conversions),
      TYR_TEST(test_device_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
