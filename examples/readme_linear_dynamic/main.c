/* The README's first example with its sizes read from the command line:
 *
 *     readme_linear_dynamic 32 768 512
 *
 * The weight is declared [in, out] by mistake.  With run-time dims the
 * compiler cannot see the mistake, so the call stops the program with
 * "main.c:LINE: tyr_linear: x is [32, 768] and w is [768, 512]: ...". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tyr/tyr.h>

/* a positive integer below 2^20, or 0 */
static int size_arg(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  return end != s && !*end && !errno && v > 0 && v < (1 << 20) ? (int)v : 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: %s BATCH IN OUT (positive integers)\n"
           "Runs the README's linear layer with a weight declared [IN, OUT] by mistake:\n"
           "the call stops with file, line, op and both shapes.\n",
           argv[0]);
    return 0;
  }
  int batch = argc == 4 ? size_arg(argv[1]) : 0, in = argc == 4 ? size_arg(argv[2]) : 0,
      out = argc == 4 ? size_arg(argv[3]) : 0;
  if (batch <= 0 || in <= 0 || out <= 0) {
    fprintf(stderr, "usage: %s BATCH IN OUT (positive integers below 2^20; --help)\n", argv[0]);
    return 2;
  }
  TYR_SCOPE;
  tyr_T(batch, in) x = tyr_randn(batch, in);
  tyr_T(in, out) w = tyr_randn(in, out); /* the mistake: linear needs [out, in] */
  tyr_T(batch, out) y = tyr_linear(x, w);
  char shape[64];
  printf("y = linear(x, w): %s\n",
         tyr_shape_str(tyr_erase(y)->shape, tyr_rank(y), shape, sizeof shape));
  return 0;
}
