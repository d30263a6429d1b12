/* index_select along a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_index: dim is out of range for the rank of x
enum { N = 10, C = 4 };
tyr_tensor *f(tyr_tensor *rows) {
  tyr_T(N, C) x = tyr_randn(N, C);
  tyr_T(3) idx = tyr_cast(rows, 3);
  return tyr_erase(tyr_index_select(x, 2, idx));
}
