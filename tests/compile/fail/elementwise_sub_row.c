/* A row of the wrong length names tyr_sub_row. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_sub_row: the length of the row differs from the last dim of x
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(T) r = tyr_zeros(T);
  (void)tyr_sub_row(x, r);
}
