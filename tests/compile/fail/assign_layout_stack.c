/* stack adds a dim. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_stack2(
// expect-tyr-cc: tyr_stack2: the result is tyr_T(2, 4, 8) but y is declared tyr_T(8, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(2 * B, C) y = tyr_stack2(x, x, 0);
  (void)y;
}
