/* A 3-d kernel deeper than the unpadded input. */
#include <tyr/tyr.h>
// expect: tyr_conv3d: the kernel (dilated) is larger than the padded input
enum { N = 1, C = 2, D = 2, H = 8, W = 8, K = 4 };
tyr_tensor *f(void) {
  tyr_T(N, C, D, H, W) x = tyr_zeros(N, C, D, H, W);
  tyr_T(K, C, 3, 3, 3) w = tyr_zeros(K, C, 3, 3, 3);
  return tyr_erase(tyr_conv3d(x, w, NULL, 1, 0, 1, 1));
}
