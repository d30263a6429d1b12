/* With run-time dims, a shape mistake stops at the faulty line with the op
 * and both shapes: a result in a variable declared with another shape (at
 * its next use the message names the line that made it; with tyr_as at the
 * line itself), tyr_dim past the rank, a typed mask of the wrong shape.
 * Built with gcc and clang by tests/typed/run.sh; exits 1 on a failure. */
#include <stdio.h>
#include <string.h>
#include <tyr/tyr.h>

static char last[1024];
static int failures;

static void keep_message(const tyr_error *e, void *ctx) {
  (void)ctx;
  snprintf(last, sizeof last, "%s", e->message);
}

/* The last error must contain every string given. */
static void expect(int line, const char *what, const char *const *parts) {
  for (; *parts; parts++) {
    if (!strstr(last, *parts)) {
      fprintf(stderr, "%s:%d: %s: the message\n  %s\nlacks '%s'\n", __FILE__, line, what, last,
              *parts);
      failures++;
      return;
    }
  }
  printf("ok: %s: %s\n", what, last);
}
#define EXPECT(what, ...) expect(__LINE__, what, (const char *const[]){__VA_ARGS__, NULL})

static char at[64];
static const char *line_of(int line) {
  snprintf(at, sizeof at, "%s:%d", __FILE__, line);
  return at;
}

static void run(int m, int n) {
  TYR_SCOPE;
  tyr_T(m, n) x = tyr_randn(m, n);

  /* a result declared with its dims swapped: stopped at the next use,
   * whose message names the line and op that made it */
  last[0] = 0;
  int made = __LINE__ + 1;
  tyr_T(n, m) y = tyr_relu(x);
  char made_at[64];
  snprintf(made_at, sizeof made_at, "%s", line_of(made));
  tyr_T(n, m) z = tyr_add(y, y);
  EXPECT("wrongly declared, next use", "tyr_add", "declared [5, 3]", "is [3, 5]", "by tyr_relu at",
         made_at);
  if (z) failures++;

  /* the same with tyr_as: stopped at the line itself */
  last[0] = 0;
  int line = __LINE__ + 1;
  tyr_T(n, m) w = tyr_as(tyr_gelu(x), n, m);
  EXPECT("tyr_as", line_of(line), "tyr_as", "tyr_gelu(x)", "[5, 3]", "[3, 5]");
  if (w) failures++;

  /* tyr_dim with a run-time index past the rank */
  last[0] = 0;
  int i = m;
  line = __LINE__ + 1;
  int64_t d = tyr_dim(x, i);
  EXPECT("tyr_dim", line_of(line), "tyr_dim", "dim 3 is out of range", "rank 2");
  if (d) failures++;

  /* a typed mask whose key length differs from k's */
  last[0] = 0;
  tyr_T(1, 1, m, 4) q = tyr_randn(1, 1, m, 4);
  tyr_T(m, n) mask = tyr_ones_to(TYR_BOOL, TYR_DEVICE_CPU, m, n);
  line = __LINE__ + 1;
  tyr_T(1, 1, m, 4) o = tyr_sdpa_masked(q, q, q, mask, NULL);
  EXPECT("tyr_sdpa_masked", line_of(line), "tyr_sdpa_masked", "the mask is [3, 5]", "[.., 3, ..]");
  if (o) failures++;

  /* an index out of range in tyr_get */
  last[0] = 0;
  line = __LINE__ + 1;
  double v = tyr_get(x, m, 0);
  EXPECT("tyr_get", line_of(line), "tyr_get");
  (void)v;
}

int main(void) {
  tyr_error_set_handler(keep_message, NULL);
  /* dims the optimizer cannot see (else it may reject the build) */
  volatile int m = 3, n = 5;
  run(m, n);
  if (failures) {
    fprintf(stderr, "%d run-time messages lacked the line, the op or a shape\n", failures);
    return 1;
  }
  return 0;
}
