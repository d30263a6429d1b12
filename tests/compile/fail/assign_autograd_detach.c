/* detach keeps the shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_detach(
// expect-tyr-cc: tyr_detach: the result is tyr_T(8, 4) but y is declared tyr_T(4, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(C, B) w = tyr_zeros(C, B);
  tyr_T(B, C) y = tyr_detach(w);
  (void)y;
}
