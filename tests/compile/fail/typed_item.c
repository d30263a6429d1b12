/* tyr_item on a handle with more than one element. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_item: the type of the handle is not a scalar
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  double v = tyr_item(tyr_sum_dim(x, 0));
  (void)v;
}
