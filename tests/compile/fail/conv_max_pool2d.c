/* A pooling window larger than the padded input. */
#include <tyr/tyr.h>
// expect: tyr_max_pool2d: x must be [N, C, H, W], kernel and stride >= 1
enum { N = 2, C = 3, H = 4, W = 4 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  return tyr_erase(tyr_max_pool2d(x, 7, 1, 1));
}
