/* contiguous keeps the type: it cannot become another shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
void f(void) {
  tyr_T(2, 3) x = tyr_zeros(2, 3);
  tyr_T(3, 2) c = tyr_contiguous(tyr_transpose(x, 0, 1));
  tyr_T(2, 3) d = tyr_contiguous(tyr_transpose(x, 0, 1));
  (void)c, (void)d;
}
