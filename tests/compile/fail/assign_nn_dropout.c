/* dropout keeps the shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_dropout(
// expect-tyr-cc: tyr_dropout: the result is tyr_T(4, 8) but y is declared tyr_T(8, 4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) y = tyr_dropout(x, 0.1, true);
  (void)y;
}
