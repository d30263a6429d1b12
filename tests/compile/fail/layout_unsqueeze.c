/* Inserting a dim past rank + 1. */
#include <tyr/tyr.h>
// expect: tyr_unsqueeze: dim is out of range 0..rank
tyr_tensor *f(void) {
  tyr_T(4, 3) x = tyr_zeros(4, 3);
  return tyr_erase(tyr_unsqueeze(x, 3));
}
