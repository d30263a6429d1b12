/* Stride 0 in average pooling. */
#include <tyr/tyr.h>
// expect: tyr_avg_pool2d: x must be [N, C, H, W], kernel and stride >= 1
enum { N = 2, C = 3, H = 8, W = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  return tyr_erase(tyr_avg_pool2d(x, 2, 0, 0));
}
