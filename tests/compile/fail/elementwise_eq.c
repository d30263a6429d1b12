/* A comparison of different shapes names tyr_eq. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_eq: operands of the comparison have different shapes
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) z = tyr_zeros(C, B);
  (void)tyr_eq(x, z);
}
