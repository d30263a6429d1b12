/* A head split declared with the heads and head dim swapped. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_reshape(
// expect-tyr-cc: tyr_reshape: the result is tyr_T(4, 16, 2, 4) but y is declared tyr_T(4, 16, 4, 2)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, T, C / H, H) y = tyr_reshape(x, B, T, H, C / H);
  (void)y;
}
