/* Attention scores declared [B, T, D] instead of [B, T, T]. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_matmul(
// expect-tyr-cc: tyr_matmul: the result is tyr_T(4, 16, 16) but y is declared tyr_T(4, 16, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(B, T, C) q = tyr_zeros(B, T, C);
  tyr_T(B, C, T) kt = tyr_zeros(B, C, T);
  tyr_T(B, T, C) y = tyr_matmul(q, kt);
  (void)y;
}
