/* softmax keeps the shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_softmax(
// expect-tyr-cc: tyr_softmax: the result is tyr_T(4, 16, 16) but y is declared tyr_T(4, 16)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, T) x = tyr_zeros(B, T, T);
  tyr_T(B, T) y = tyr_softmax(x, -1);
  (void)y;
}
