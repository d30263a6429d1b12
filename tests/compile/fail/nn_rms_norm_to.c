/* A mixed-precision RMS norm with a weight of rank 2. */
#include <tyr/tyr.h>
// expect: tyr_rms_norm_to: w must be [C] for x [..., C]
tyr_tensor *f(int n) {
  tyr_T(n, 32) x = tyr_zeros(n, 32);
  tyr_T(1, 32) w = tyr_ones(1, 32);
  return tyr_erase(tyr_rms_norm_to(x, w, 1e-6, TYR_BF16));
}
