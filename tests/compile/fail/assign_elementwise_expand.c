/* The expanded shape is the one asked for. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_expand(
// expect-tyr-cc: tyr_expand: the result is tyr_T(4, 8) but y is declared tyr_T(1, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(1, C) x = tyr_zeros(1, C);
  tyr_T(1, C) y = tyr_expand(x, B, C);
  (void)y;
}
