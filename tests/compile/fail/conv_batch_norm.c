/* Batch-norm running statistics of the wrong length. */
#include <tyr/tyr.h>
// expect: tyr_batch_norm: x must be [N, C, ...] and w, b, running_mean, running_var [C]
enum { N = 2, C = 3, H = 8, W = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(H) rm = tyr_zeros(H);
  tyr_T(C) rv = tyr_ones(C);
  return tyr_erase(tyr_batch_norm(x, NULL, NULL, rm, rv, true, 0.1, 1e-5));
}
