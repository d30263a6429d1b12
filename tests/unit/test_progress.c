/* The progress bar: lines when not a terminal, the bar, rate, ETA and text,
 * and durations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "tyr/progress.h"

static char *read_all(FILE *f) {
  fflush(f);
  long n = ftell(f);
  rewind(f);
  char *buf = calloc(1, (size_t)n + 1);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  return buf;
}

static void test_lines(void **state) {
  (void)state;
  FILE *f = tmpfile();
  tyr_progress p;
  tyr_progress_init(&p, 10, "img", 4);
  p.out = f;
  p.tty = false;
  for (int64_t s = 1; s <= 10; s++) tyr_progress_update(&p, s, 32, "loss %.2f", 1.0 / (double)s);
  tyr_progress_finish(&p);
  char *txt = read_all(f);
  /* steps 4, 8 and the last one */
  int lines = 0;
  for (char *c = txt; *c; c++) lines += *c == '\n';
  assert_int_equal(lines, 3);
  assert_non_null(strstr(txt, "[============>                 ] 4/10 loss 0.25 | "));
  assert_non_null(strstr(txt, "] 10/10 loss 0.10 | "));
  assert_non_null(strstr(txt, " img/s | ETA 0m00s | live tensors "));
  assert_non_null(strstr(txt, "[==============================] 10/10"));
  free(txt);
  fclose(f);
}

static void test_draw_and_duration(void **state) {
  (void)state;
  FILE *f = tmpfile();
  tyr_progress_draw(f, true, 0, 4, -1, NULL);
  char *txt = read_all(f);
  assert_string_equal(txt, "\r[>                             ] 0/4 | live tensors 0   ");
  free(txt);
  fclose(f);
  char b[32];
  assert_string_equal(tyr_format_duration(125.7, b, sizeof b), "2m05s");
  assert_string_equal(tyr_format_duration(3723, b, sizeof b), "1h02m03s");
  assert_string_equal(tyr_format_duration(-1, b, sizeof b), "0m00s");
  assert_string_equal(tyr_format_duration(NAN, b, sizeof b), "0m00s");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_lines),
      TYR_TEST(test_draw_and_duration),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
