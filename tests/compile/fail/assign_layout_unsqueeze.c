/* unsqueeze at 0 declared as at the end. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_unsqueeze(
// expect-tyr-cc: tyr_unsqueeze: the result is tyr_T(1, 4, 8) but y is declared tyr_T(4, 8, 1)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B, C, 1) y = tyr_unsqueeze(x, 0);
  (void)y;
}
