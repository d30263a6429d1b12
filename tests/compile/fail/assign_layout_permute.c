/* A permutation declared in the wrong order. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_permute(
// expect-tyr-cc: tyr_permute: the result is tyr_T(8, 4, 16) but y is declared tyr_T(16, 4, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(T, B, C) y = tyr_permute(x, 2, 0, 1);
  (void)y;
}
