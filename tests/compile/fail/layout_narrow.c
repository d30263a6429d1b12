/* A narrow window that runs past the end of the dim. */
#include <tyr/tyr.h>
// expect: tyr_narrow: start + len exceeds the size of the dim
enum { T = 16, C = 8 };
tyr_tensor *f(void) {
  tyr_T(T, C) x = tyr_zeros(T, C);
  return tyr_erase(tyr_narrow(x, 0, 10, 8));
}
