/* tyr_set with more indices than the rank. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_set: the number of indices differs from the rank of the handle
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_set(x, 1.0, 0, 1, 2);
}
