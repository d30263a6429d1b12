/* tyr_get with fewer indices than the rank (it would read a wrong element). */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_get: the number of indices differs from the rank of the handle
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  (void)tyr_get(x, 1);
}
