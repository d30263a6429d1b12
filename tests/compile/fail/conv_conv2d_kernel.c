/* A kernel larger than the padded input. */
#include <tyr/tyr.h>
// expect: tyr_conv2d: the kernel (dilated) is larger than the padded input
enum { N = 2, C = 3, H = 4, W = 4, K = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(K, C, 7, 7) w = tyr_zeros(K, C, 7, 7);
  return tyr_erase(tyr_conv2d(x, w, NULL, 1, 1, 1, 1));
}
