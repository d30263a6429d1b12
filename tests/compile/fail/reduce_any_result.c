/* any over dim 1 of [4, 10] is [4], not [10]. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
void f(void) {
  tyr_T(4, 10) x = tyr_zeros(4, 10);
  tyr_T(10) a = tyr_any_dim(x, 1);
  (void)a;
}
