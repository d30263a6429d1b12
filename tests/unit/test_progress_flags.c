/* The pieces training programs share, beyond tests/unit/test_flags.c and
 * test_progress.c: the bar itself, durations, mkdir -p, finding and
 * setting one flag (tyr/flags.h) and the loss plot read from
 * metrics.jsonl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tyr/fileio.h"
#include "tyr/flags.h"
#include "tyr/plot.h"
#include "tyr/progress.h"
#include "tyr/tyr.h"

static void test_progress_bar_mkdirs(void **state) {
  (void)state;
  char bar[16], d[32];
  tyr_progress_bar(bar, 10, 0, 100);
  assert_string_equal(bar, ">         ");
  tyr_progress_bar(bar, 10, 55, 100);
  assert_string_equal(bar, "=====>    ");
  tyr_progress_bar(bar, 10, 100, 100);
  assert_string_equal(bar, "==========");
  tyr_progress_bar(bar, 10, 150, 100); /* past the end: full */
  assert_string_equal(bar, "==========");
  tyr_format_duration(65.9, d, sizeof d);
  assert_string_equal(d, "1m05s");
  tyr_format_duration(-3, d, sizeof d);
  assert_string_equal(d, "0m00s");
  char dir[600];
  snprintf(dir, sizeof dir, "%s/a/b/c", tyr_test_tmpdir());
  assert_int_equal(tyr_mkdirs(dir), 0);
  assert_int_equal(tyr_mkdirs(dir), 0);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  snprintf(dir, sizeof dir, "%s/a/b/c/file", tyr_test_tmpdir());
  FILE *f = fopen(dir, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(dir, sizeof dir, "%s/a/b/c/file/sub", tyr_test_tmpdir());
  assert_int_equal(tyr_mkdirs(dir), -1); /* a file in the way */
}

/* tyr_flags_find and tyr_flag_set: the pieces behind tyr_flags_parse, for
 * programs with arguments of their own (train_diffusion's --generate DIR). */
static void test_flag_find_set(void **state) {
  (void)state;
  int64_t n = 1;
  double x = 0.5;
  char s[8] = "";
  bool on = true;
  const tyr_flag FL[] = {
      TYR_FLAG_INT("n", &n, 0, 100, "a count"),
      TYR_FLAG_DOUBLE("x", &x, -1, 1, "a number"),
      TYR_FLAG_STRING("s", s, "a word"),
      TYR_FLAG_BOOL("on", &on, "a switch"),
  };
  bool neg;
  char err[160];
  assert_null(tyr_flags_find(FL, 4, "--m", &neg));
  assert_null(tyr_flags_find(FL, 4, "n", &neg));
  assert_null(tyr_flags_find(FL, 4, "--no-n", &neg)); /* not a boolean */
  const tyr_flag *f = tyr_flags_find(FL, 4, "--n", &neg);
  assert_non_null(f);
  assert_false(neg);
  assert_int_equal(tyr_flag_set(f, "42", neg, err, sizeof err), 0);
  assert_int_equal(n, 42);
  assert_int_equal(tyr_flag_set(f, "4x", neg, err, sizeof err), -1);
  assert_string_equal(err, "not an integer");
  assert_int_equal(tyr_flag_set(f, "", neg, err, sizeof err), -1);
  assert_int_equal(tyr_flag_set(f, "101", neg, err, sizeof err), -1);
  assert_string_equal(err, "must be in [0, 100]");
  assert_int_equal(n, 42);
  f = tyr_flags_find(FL, 4, "--x", &neg);
  assert_int_equal(tyr_flag_set(f, "-2.5e-3", neg, err, sizeof err), 0);
  assert_true(x == -2.5e-3);
  assert_int_equal(tyr_flag_set(f, "inf", neg, err, sizeof err), -1);
  assert_string_equal(err, "not a number");
  f = tyr_flags_find(FL, 4, "--s", &neg);
  assert_int_equal(tyr_flag_set(f, "1234567", neg, err, sizeof err), 0);
  assert_string_equal(s, "1234567");
  assert_int_equal(tyr_flag_set(f, "12345678", neg, err, sizeof err), -1);
  assert_non_null(strstr(err, "too long"));
  assert_string_equal(s, "1234567");
  f = tyr_flags_find(FL, 4, "--no-on", &neg);
  assert_true(neg);
  assert_int_equal(tyr_flag_set(f, NULL, neg, err, sizeof err), 0);
  assert_false(on);
  f = tyr_flags_find(FL, 4, "--on", &neg);
  assert_int_equal(tyr_flag_set(f, NULL, neg, err, sizeof err), 0);
  assert_true(on);
}

static void test_plot_metrics(void **state) {
  (void)state;
  char js[600], png[600];
  snprintf(js, sizeof js, "%s/metrics.jsonl", tyr_test_tmpdir());
  snprintf(png, sizeof png, "%s/loss.png", tyr_test_tmpdir());
  remove(png);
  FILE *f = fopen(js, "w");
  fprintf(f, "{\"step\":1,\"train_loss\":3,\"val_loss\":2.5}\n");
  fclose(f);
  assert_int_equal(tyr_plot_metrics_png(png, js, "T", "LOSS"), -1); /* no loss line yet */
  struct stat st;
  assert_int_not_equal(stat(png, &st), 0);
  f = fopen(js, "a");
  for (int i = 1; i <= 3000; i++)
    fprintf(f, "{\"step\":%d,\"loss\":%.3f,\"lr\":0.1}\n", i, 4.0 / i);
  fprintf(f, "not json\n{\"step\":3000,\"train_loss\":1,\"val_loss\":1.5}\n");
  fclose(f);
  assert_int_equal(tyr_plot_metrics_png(png, js, "T", "LOSS"), 0);
  assert_int_equal(stat(png, &st), 0);
  assert_true(st.st_size > 1000);
  snprintf(js, sizeof js, "%s/missing.jsonl", tyr_test_tmpdir());
  EXPECT_TYR_ERROR(tyr_plot_metrics_png(png, js, "T", "LOSS"), "missing.jsonl");
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_progress_bar_mkdirs),
      TYR_TEST(test_flag_find_set),
      TYR_TEST(test_plot_metrics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
