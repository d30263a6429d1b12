/* Stride 0. */
#include <tyr/tyr.h>
// expect: tyr_conv2d: stride and dilation must be >= 1
enum { N = 2, C = 3, H = 8, W = 8, K = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(K, C, 3, 3) w = tyr_zeros(K, C, 3, 3);
  return tyr_erase(tyr_conv2d(x, w, NULL, 0, 1, 1, 1));
}
