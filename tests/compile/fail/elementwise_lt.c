/* A comparison of different shapes names tyr_lt. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_lt: operands of the comparison have different shapes
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(B) z = tyr_zeros(B);
  (void)tyr_lt(x, z);
}
