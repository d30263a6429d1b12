/* batched matmul with different batch dims (no broadcasting). */
#include <tyr/tyr.h>
// expect: tyr_matmul: batch dimensions differ
enum { B = 2, H = 4, T = 8, D = 16 };
tyr_tensor *f(void) {
  tyr_T(B, H, T, D) q = tyr_randn(B, H, T, D);
  tyr_T(B, 1, D, T) k = tyr_randn(B, 1, D, T);
  return tyr_erase(tyr_matmul(q, k));
}
