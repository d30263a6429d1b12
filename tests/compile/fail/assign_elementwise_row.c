/* A bias added row by row keeps the shape of x. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_add_row(
// expect-tyr-cc: tyr_add_row: the result is tyr_T(4, 8) but y is declared tyr_T(8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C) b = tyr_zeros(C);
  tyr_T(C) y = tyr_add_row(x, b);
  (void)y;
}
