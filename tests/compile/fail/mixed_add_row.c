/* Run-time leading dims, constant feature dims that differ: still a build error. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_add_row: the length of the row differs from the last dim of x
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  int n = rand();
  tyr_T(n, T, C) x = tyr_zeros(n, T, C);
  tyr_T(H) b = tyr_zeros(H);
  (void)tyr_add_row(x, b);
}
