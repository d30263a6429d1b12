/* The pieces training programs share: the progress bar and its line,
 * durations, mkdir -p, the flag table (tyr/flags.h) and the loss plot read
 * from metrics.jsonl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tyr/flags.h"
#include "tyr/plot.h"
#include "tyr/progress.h"
#include "tyr/tyr.h"

static void test_progress(void **state) {
  (void)state;
  char bar[16], d[32];
  tyr_progress_bar(bar, 10, 0, 100);
  assert_string_equal(bar, ">         ");
  tyr_progress_bar(bar, 10, 55, 100);
  assert_string_equal(bar, "=====>    ");
  tyr_progress_bar(bar, 10, 100, 100);
  assert_string_equal(bar, "==========");
  tyr_format_duration(65.9, d, sizeof d);
  assert_string_equal(d, "1m05s");
  tyr_format_duration(-3, d, sizeof d);
  assert_string_equal(d, "0m00s");
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  tyr_progress_print(f, 5, 10, 1.23456, 1000.4, 61, " | x", false);
  tyr_progress_print(f, 6, 10, 1.0, 10, 0, NULL, true);
  fclose(f);
  assert_string_equal(buf, "[===============>              ] 5/10 loss 1.2346 | 1000 tok/s | ETA "
                           "1m01s | x\n\r[==================>           ] 6/10 loss 1.0000 | 10 "
                           "tok/s | ETA 0m00s   ");
  free(buf);
  char dir[600];
  snprintf(dir, sizeof dir, "%s/a/b/c", tyr_test_tmpdir());
  assert_int_equal(tyr_mkdirs(dir), 0);
  assert_int_equal(tyr_mkdirs(dir), 0);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
}

typedef struct {
  int64_t n;
  double x;
  char s[8];
  int on;
} cfg;
static const tyr_flag FL[] = {
    TYR_FLAG_INT(cfg, "n", n, "a count"),
    TYR_FLAG_DOUBLE(cfg, "x", x, "a number"),
    TYR_FLAG_STR(cfg, "s", s, "a word"),
    TYR_FLAG_BOOL(cfg, "on", on, "a switch"),
};

static void test_flags(void **state) {
  (void)state;
  cfg c = {.n = 1, .x = 0.5, .s = "", .on = 1};
  bool neg;
  assert_null(tyr_flags_find(FL, 4, "--m", &neg));
  assert_null(tyr_flags_find(FL, 4, "n", &neg));
  assert_null(tyr_flags_find(FL, 4, "--no-n", &neg)); /* not a boolean */
  const tyr_flag *f = tyr_flags_find(FL, 4, "--n", &neg);
  assert_non_null(f);
  assert_false(neg);
  assert_null(tyr_flag_set(f, &c, "42", neg));
  assert_int_equal(c.n, 42);
  assert_string_equal(tyr_flag_set(f, &c, "4x", neg), "not an integer");
  assert_string_equal(tyr_flag_set(f, &c, "", neg), "not an integer");
  assert_int_equal(c.n, 42);
  f = tyr_flags_find(FL, 4, "--x", &neg);
  assert_null(tyr_flag_set(f, &c, "-2.5e-3", neg));
  assert_true(c.x == -2.5e-3);
  assert_string_equal(tyr_flag_set(f, &c, "inf", neg), "not a number");
  f = tyr_flags_find(FL, 4, "--s", &neg);
  assert_null(tyr_flag_set(f, &c, "1234567", neg));
  assert_string_equal(c.s, "1234567");
  assert_string_equal(tyr_flag_set(f, &c, "12345678", neg), "value too long");
  assert_string_equal(c.s, "1234567");
  f = tyr_flags_find(FL, 4, "--no-on", &neg);
  assert_true(neg);
  assert_null(tyr_flag_set(f, &c, NULL, neg));
  assert_int_equal(c.on, 0);
  f = tyr_flags_find(FL, 4, "--on", &neg);
  assert_null(tyr_flag_set(f, &c, NULL, neg));
  assert_int_equal(c.on, 1);
  char *buf = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&buf, &len);
  cfg d = {.n = 3, .x = 0.25, .s = "", .on = 0};
  tyr_flags_usage(o, FL, 4, &d);
  fclose(o);
  assert_non_null(strstr(buf, "  --n               a count (default 3)\n"));
  assert_non_null(strstr(buf, "  --x               a number (default 0.25)\n"));
  assert_non_null(strstr(buf, "  --s               a word\n"));
  assert_non_null(strstr(buf, "  --on              a switch (default off)\n"));
  free(buf);
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
      TYR_TEST(test_progress),
      TYR_TEST(test_flags),
      TYR_TEST(test_plot_metrics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
