/* A column of the wrong shape names tyr_mul_col. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_mul_col: col must be the shape of x without its last dim
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, C) s = tyr_zeros(B, C);
  (void)tyr_mul_col(x, s);
}
