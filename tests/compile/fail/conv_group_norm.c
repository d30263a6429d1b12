/* GroupNorm groups that do not divide the channels. */
#include <tyr/tyr.h>
// expect: tyr_group_norm: x must be [N, C, ...] with C divisible by groups
enum { N = 2, C = 6, H = 8, W = 8 };
tyr_tensor *f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  return tyr_erase(tyr_group_norm(x, 4, NULL, NULL, 1e-5));
}
