/* An odd height cannot be cut into 2x2 patches. */
#include <tyr/tyr.h>
// expect: tyr_patchify: x must be [N, C, H, W] with H and W divisible by p
tyr_tensor *f(void) {
  tyr_T(2, 4, 7, 8) x = tyr_zeros(2, 4, 7, 8);
  return tyr_erase(tyr_patchify(x, 2));
}
