/* Run-time dims: a result of another rank in a declared variable is still a build error naming the op. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_sum_dim(
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  int n = rand();
  tyr_T(n, T, C) x = tyr_zeros(n, T, C);
  tyr_T(n, T, C) y = tyr_sum_dim(x, -1);
  (void)y;
}
