/* A softcapped classifier weight whose input dim is not x's last dim. */
#include <tyr/tyr.h>
// expect: tyr_linear_cross_entropy: w must be [V, C] with C the last dim of x
enum { B = 4, T = 16, C = 32, V = 50 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(V, T) w = tyr_zeros(V, T);
  tyr_T(B, T) targets = tyr_zeros(B, T);
  return tyr_erase(tyr_linear_cross_entropy_softcap(x, w, targets, -100, 15.0));
}
