/* Targets whose dims are not x's leading dims. */
#include <tyr/tyr.h>
// expect: tyr_linear_cross_entropy: targets must have the shape of x without its last dim
enum { B = 4, T = 16, C = 32, V = 50 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(V, C) w = tyr_zeros(V, C);
  tyr_T(T, B) targets = tyr_zeros(T, B);
  return tyr_erase(tyr_linear_cross_entropy(x, w, targets, -100));
}
