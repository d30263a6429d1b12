/* Command-line flags: every type, --no-, ranges, and the messages that
 * name the flag and the value; the usage text. */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "tyr/flags.h"

static int64_t g_n;
static double g_lr;
static char g_dev[8];
static bool g_plot;

static int parse(char err[256], int argc, char **argv) {
  const tyr_flag flags[] = {
      TYR_FLAG_INT("n", &g_n, 1, 100, "count"),
      TYR_FLAG_DOUBLE("lr", &g_lr, 0, 1, "rate"),
      TYR_FLAG_STRING("device", g_dev, "where"),
      TYR_FLAG_BOOL("plot", &g_plot, "plots"),
  };
  err[0] = 0;
  return tyr_flags_try_parse("prog", flags, 4, argc, argv, 1, err, 256);
}

static void test_parse(void **state) {
  (void)state;
  char err[256];
  g_n = 5, g_lr = 0.5, g_plot = true;
  snprintf(g_dev, sizeof g_dev, "cpu");
  char *ok[] = {"prog", "--n", "7", "--lr", "1e-3", "--no-plot", "--device", "cuda:1", "--n", "9"};
  assert_int_equal(parse(err, 10, ok), 0);
  assert_int_equal(g_n, 9);
  assert_true(g_lr == 1e-3 && !g_plot);
  assert_string_equal(g_dev, "cuda:1");
  char *help[] = {"prog", "--n", "x", "-h"};
  assert_int_equal(parse(err, 4, help), 1);
  struct {
    char *args[3];
    int n;
    const char *msg;
  } bad[] = {
      {{"prog", "--m", "1"}, 3, "prog: unknown flag --m (see --help)"},
      {{"prog", "--n", "x"}, 3, "prog: --n x: not an integer"},
      {{"prog", "--n", "101"}, 3, "prog: --n 101: must be in [1, 100]"},
      {{"prog", "--n", "0"}, 3, "prog: --n 0: must be in [1, 100]"},
      {{"prog", "--lr", "nan"}, 3, "prog: --lr nan: not a number"},
      {{"prog", "--lr", "2"}, 3, "prog: --lr 2: must be in [0, 1]"},
      {{"prog", "--device", "much-too-long"}, 3, "prog: --device: the value is too long"},
      {{"prog", "--n"}, 2, "prog: --n: missing value"},
      {{"prog", "stray"}, 2, "prog: unexpected argument 'stray'"},
      {{"prog", "--no-n", "1"}, 3, "prog: unknown flag --no-n"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    g_n = 5;
    assert_int_equal(parse(err, bad[i].n, bad[i].args), 2);
    if (!strstr(err, bad[i].msg)) fail_msg("'%s' does not contain '%s'", err, bad[i].msg);
  }
  assert_int_equal(g_n, 5); /* a failed parse of one flag leaves it alone */
}

static void test_usage(void **state) {
  (void)state;
  g_n = 5, g_lr = 0.25, g_plot = false;
  g_dev[0] = 0;
  const tyr_flag flags[] = {
      TYR_FLAG_INT("n", &g_n, 1, 100, "count"),
      TYR_FLAG_DOUBLE("lr", &g_lr, 0, 1, "rate"),
      TYR_FLAG_STRING("device", g_dev, "where"),
      TYR_FLAG_BOOL("plot", &g_plot, "plots"),
  };
  FILE *f = tmpfile();
  tyr_flags_usage(f, "usage: prog", flags, 4);
  rewind(f);
  char buf[1024] = {0};
  assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
  fclose(f);
  assert_string_equal(buf, "usage: prog\n\n"
                           "  --n              count (default 5)\n"
                           "  --lr             rate (default 0.25)\n"
                           "  --device         where (default none)\n"
                           "  --plot           plots (default off)\n"
                           "  --help           this text\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_parse),
      TYR_TEST(test_usage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
