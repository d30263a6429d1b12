/* A bias whose length is not K. */
#include <tyr/tyr.h>
// expect: tyr_conv2d: b must be [K]
enum { N = 2, C = 3, H = 8, W = 8, K = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(K, C, 3, 3) w = tyr_zeros(K, C, 3, 3);
  tyr_T(C) b = tyr_zeros(C);
  return tyr_erase(tyr_conv2d(x, w, b, 1, 1, 1, 1));
}
