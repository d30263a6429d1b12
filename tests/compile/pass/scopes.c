/* TYR_SCOPE and TYR_NO_GRAD: two in one block, on one line, and nested,
 * with shadowing an error (each guard has a name of its own). */
#pragma GCC diagnostic error "-Wshadow"
#include <tyr/tyr.h>
double f(void) {
  double r = 0;
  {
    TYR_SCOPE;
    TYR_SCOPE;
    TYR_NO_GRAD;
    TYR_NO_GRAD;
    tyr_T(2, 3) a = tyr_ones(2, 3);
    {
      TYR_SCOPE;
      TYR_NO_GRAD;
      tyr_T(2, 3) b = tyr_add(a, a);
      r += tyr_get(b, 0, 0);
      {
        TYR_SCOPE; TYR_SCOPE; TYR_NO_GRAD; TYR_NO_GRAD;
        r += tyr_get(tyr_mul(b, a), 1, 2);
      }
    }
  }
  return r;
}
