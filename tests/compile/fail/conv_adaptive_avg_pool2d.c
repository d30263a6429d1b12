/* Adaptive pooling of a rank-3 tensor. */
#include <tyr/tyr.h>
// expect: tyr_adaptive_avg_pool2d: x must be [N, C, H, W]
enum { N = 2, C = 3, H = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H) x = tyr_zeros(N, C, H);
  return tyr_erase(tyr_adaptive_avg_pool2d(x, 1, 1));
}
