/* tyr_dim counting from the end past the rank. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_dim: the dim index is outside the rank of the handle
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  int64_t d = tyr_dim(x, -3);
  (void)d;
}
