/* A checked declaration of the wrong rank. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_as: the shape of `tyr_sum_dim(x, 1)` differs from the declared tyr_T(B, 1)
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B, 1) y = tyr_as(tyr_sum_dim(x, 1), B, 1);
  (void)y;
}
