#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int g_errors;
static char g_msg[1024];
static int64_t g_live_at_setup;

static void record_handler(const tyr_error *err, void *ctx) {
  (void)ctx;
  g_errors++;
  snprintf(g_msg, sizeof g_msg, "%s", err->message);
}

void tyr_test_record_errors(void) {
  tyr_error_set_handler(record_handler, NULL);
}
int tyr_test_error_count(void) {
  return g_errors;
}
const char *tyr_test_error_message(void) {
  return g_msg;
}
void tyr_test_error_reset(void) {
  g_errors = 0;
  g_msg[0] = 0;
  tyr_error_clear();
}

int tyr_test_setup(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_test_error_reset();
  tyr_manual_seed(1234);
  g_live_at_setup = tyr_live_tensors();
  return 0;
}

int tyr_test_teardown(void **state) {
  (void)state;
  int depth = tyr_scope_depth();
  while (tyr_scope_depth() > 0) tyr_scope_end(); /* a failed test may leave its scopes open */
  if (depth != 0) fail_msg("a scope was left open (depth %d)", depth);
  if (g_errors) fail_msg("unexpected error: %s", g_msg);
  int64_t live = tyr_live_tensors();
  if (live != g_live_at_setup)
    fail_msg("live tensors: %lld after the test, %lld before", (long long)live,
             (long long)g_live_at_setup);
  return 0;
}

void tyr_test_assert_close(double a, double b, double atol, double rtol, const char *what,
                           const char *file, int line) {
  if (isnan(a) && isnan(b)) return;
  if (!(fabs(a - b) <= atol + rtol * fabs(b))) {
    print_error("%s = %.10g, expected %.10g (atol %g, rtol %g)\n", what, a, b, atol, rtol);
    _fail(file, line);
  }
}

const char *tyr_test_data(const char *name) {
  static char buf[4096];
  const char *dir = getenv("TYR_TEST_DATA");
  snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "tests/data", name);
  return buf;
}

const char *tyr_test_tmpdir(void) {
  static char dir[256];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/tyr-test-XXXXXX");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      abort();
    }
  }
  return dir;
}
