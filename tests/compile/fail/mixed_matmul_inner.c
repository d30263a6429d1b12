/* Run-time batch, constant inner dims that differ. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_matmul: inner dimensions differ
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  int n = rand();
  tyr_T(n, T, C) x = tyr_zeros(n, T, C);
  tyr_T(T, C) w = tyr_zeros(T, C);
  (void)tyr_matmul(x, w);
}
