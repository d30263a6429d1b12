/* The typed batch iterator: constant, run-time and mixed batch sizes, one
 * and two handles. */
#include <tyr/tyr.h>
int64_t f(tyr_batch_iter *it, tyr_batch_iter *it1, int b) {
  tyr_T(64, 784) x;
  tyr_T(64) y;
  int64_t n = tyr_batch_next(it, &x, &y);
  tyr_T(b, 28, 28) xd;
  tyr_T(b) yd;
  n += tyr_batch_next(it, &xd, &yd);
  tyr_T(64, 28, 28) xs;
  tyr_T(b) ym;
  n += tyr_batch_next(it, &xs, &ym);
  tyr_T(b, 10) one;
  n += tyr_batch_next(it1, &one);
  return n;
}
