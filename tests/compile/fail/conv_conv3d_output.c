/* The output of a strided 3-d convolution stored in a handle of the wrong depth. */
#include <tyr/tyr.h>
// expect: incompatible
enum { N = 1, C = 2, D = 9, H = 8, W = 8, K = 4 };
tyr_tensor *f(void) {
  tyr_T(N, C, D, H, W) x = tyr_zeros(N, C, D, H, W);
  tyr_T(K, C, 3, 3, 3) w = tyr_zeros(K, C, 3, 3, 3);
  tyr_T(N, K, 9, 4, 4) y = tyr_conv3d(x, w, NULL, 2, 1, 1, 1); /* depth is 5, not 9 */
  return tyr_erase(y);
}
