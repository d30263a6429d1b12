/* A transposed handle has its dims swapped: it is not the input's type. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
void f(void) {
  tyr_T(4, 3) x = tyr_zeros(4, 3);
  tyr_T(4, 3) t = tyr_transpose(x, 0, 1);
  (void)t;
}
