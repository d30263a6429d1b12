/* A gradient has the shape of its parameter. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_grad(
// expect-tyr-cc: tyr_grad: the result is tyr_T(8, 4) but y is declared tyr_T(4, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(C, B) w = tyr_requires_grad(tyr_zeros(C, B));
  tyr_T(B, C) y = tyr_grad(w);
  (void)y;
}
