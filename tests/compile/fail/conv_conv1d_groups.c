/* conv1d: w's dim 1 is not C / groups. */
#include <tyr/tyr.h>
// expect: tyr_conv1d: channels (C of x, K of w) must be divisible by groups
enum { N = 2, C = 4, L = 16, K = 4 };
tyr_tensor *f(void) {
  tyr_T(N, C, L) x = tyr_zeros(N, C, L);
  tyr_T(K, C, 3) w = tyr_zeros(K, C, 3);
  return tyr_erase(tyr_conv1d(x, w, NULL, 1, 1, 1, 2));
}
