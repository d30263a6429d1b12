/* The typed loader call with constant, run-time and mixed batch shapes. */
#include <tyr/data.h>
enum { B = 4, T = 16 };
int f(tyr_loader *l, int64_t b, int64_t t) {
  tyr_T(B, T) x, y;
  int rc = tyr_loader_next(l, B, T, &x, &y);
  tyr_T(b, t) xd, yd;
  rc |= tyr_loader_next(l, b, t, &xd, &yd);
  tyr_T(b, T) xm, ym;
  rc |= tyr_loader_next_typed(l, b, T, &xm, &ym);
  return rc;
}
