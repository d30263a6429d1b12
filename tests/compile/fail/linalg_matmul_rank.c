/* matmul of a vector: rank 1 is not accepted. */
#include <tyr/tyr.h>
// expect: tyr_matmul: a must be [.., m, k] (rank 2 to 6)
enum { K = 8, N = 3 };
tyr_tensor *f(void) {
  tyr_T(K) v = tyr_randn(K);
  tyr_T(K, N) b = tyr_randn(K, N);
  return tyr_erase(tyr_matmul(v, b));
}
