/* Two handles whose batch sizes differ. */
// expect: tyr_batch_next: the first dims of the handles (the batch size) differ
#include <tyr/tyr.h>
int64_t f(tyr_batch_iter *it) {
  tyr_T(64, 784) x;
  tyr_T(32) y;
  return tyr_batch_next(it, &x, &y);
}
