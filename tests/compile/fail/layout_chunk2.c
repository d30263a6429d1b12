/* The pieces of chunk2 have half the dim: a variable of the full shape does not fit. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
int f(void) {
  tyr_T(4, 8) x = tyr_zeros(4, 8);
  tyr_T(4, 8) a, b;
  return tyr_chunk2(x, 1, &a, &b);
}
