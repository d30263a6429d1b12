/* layer_norm_to keeps the shape (only the dtype changes). */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_layer_norm_to(
// expect-tyr-cc: tyr_layer_norm_to: the result is tyr_T(4, 16, 8) but y is declared tyr_T(16, 8)
enum { B = 4, T = 16, C = 8 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(T, C) y = tyr_layer_norm_to(x, NULL, NULL, 1e-5, TYR_BF16);
  (void)y;
}
