/* Channels that are not a multiple of r^2. */
#include <tyr/tyr.h>
// expect: tyr_pixel_shuffle: x must be [N, C r^2, H, W]
tyr_tensor *f(void) {
  tyr_T(2, 6, 8, 8) x = tyr_zeros(2, 6, 8, 8);
  return tyr_erase(tyr_pixel_shuffle(x, 2));
}
