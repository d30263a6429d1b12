/* A dropout probability outside [0, 1). */
#include <tyr/tyr.h>
// expect: tyr_dropout: p must be in [0, 1)
tyr_tensor *f(void) {
  tyr_T(4, 8) x = tyr_zeros(4, 8);
  return tyr_erase(tyr_dropout(x, 1.5, true));
}
