/* Rearrangements and resampling with their result shapes in the types. */
#include <tyr/tyr.h>
void f(void) {
  tyr_T(2, 16, 8, 8) x = tyr_zeros(2, 16, 8, 8);
  tyr_T(2, 4, 16, 16) s = tyr_pixel_shuffle(x, 2);
  tyr_T(2, 16, 8, 8) u = tyr_pixel_unshuffle(s, 2);
  tyr_T(2, 64, 16) p = tyr_patchify(s, 2);
  tyr_T(2, 4, 16, 16) q = tyr_unpatchify(p, 16, 16, 2);
  tyr_T(2, 4, 18, 19) r = tyr_pad2d(q, 1, 2, 1, 1, TYR_PAD_CONSTANT, 0.0);
  tyr_T(2, 16, 32, 24) i = tyr_interpolate(u, 32, 24, TYR_INTERP_BILINEAR, true);
  tyr_T(4, 8, 4, 4) wt = tyr_zeros(4, 8, 4, 4);
  tyr_T(2, 8, 32, 32) t = tyr_conv_transpose2d(s, wt, NULL, 2, 1, 1, 1);
  (void)t;
  (void)r;
  (void)i;
}
