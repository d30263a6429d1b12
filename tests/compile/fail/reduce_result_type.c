/* The reduced dim is gone from the result type. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
void f(void) {
  tyr_T(4, 3) x = tyr_zeros(4, 3);
  tyr_T(4, 3) m = tyr_max_dim(x, 1);
  (void)m;
}
