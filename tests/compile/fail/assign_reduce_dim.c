/* A reduction drops its dim (tyr_sum_keepdim keeps it). */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_sum_dim(
// expect-tyr-cc: tyr_sum_dim: the result is tyr_T(4, 16) but y is declared tyr_T(4, 16, 1)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(B, T, 1) y = tyr_sum_dim(x, -1);
  (void)y;
}
