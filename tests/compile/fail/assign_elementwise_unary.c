/* An activation keeps the shape; the variable is transposed. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_gelu(
// expect-tyr-cc: tyr_gelu: the result is tyr_T(4, 8) but y is declared tyr_T(8, 4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) y = tyr_gelu(x);
  (void)y;
}
