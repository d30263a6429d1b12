/* The interpolated size is in the type. */
#include <tyr/tyr.h>
// expect: incompatible
void f(void) {
  tyr_T(2, 4, 8, 8) x = tyr_zeros(2, 4, 8, 8);
  tyr_T(2, 4, 8, 8) y = tyr_interpolate(x, 16, 16, TYR_INTERP_NEAREST, false);
  (void)y;
}
