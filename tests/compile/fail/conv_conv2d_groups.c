/* Channels not divisible by groups. */
#include <tyr/tyr.h>
// expect: tyr_conv2d: channels (C of x, K of w) must be divisible by groups
enum { N = 2, C = 6, H = 8, W = 8, K = 4 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(K, C / 4, 3, 3) w = tyr_zeros(K, C / 4, 3, 3);
  return tyr_erase(tyr_conv2d(x, w, NULL, 1, 1, 1, 4));
}
