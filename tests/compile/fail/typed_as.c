/* A checked declaration: the op's result has another shape. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_as: the shape of `tyr_linear(x, w)` differs from the declared tyr_T(B, C)
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(H, C) w = tyr_zeros(H, C);
  tyr_T(B, C) y = tyr_as(tyr_linear(x, w), B, C);
  (void)y;
}
