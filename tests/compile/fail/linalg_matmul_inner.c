/* matmul of [M, K] by [N, K]: the inner dims differ. */
#include <tyr/tyr.h>
// expect: tyr_matmul: inner dimensions differ
enum { M = 4, K = 8, N = 3 };
tyr_tensor *f(void) {
  tyr_T(M, K) a = tyr_randn(M, K);
  tyr_T(N, K) b = tyr_randn(N, K);
  tyr_T(M, K) c = tyr_matmul(a, b);
  return tyr_erase(c);
}
