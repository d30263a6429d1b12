/* index_select with a 2-D index. */
#include <tyr/tyr.h>
// expect: tyr_index_select: idx must be 1-D
enum { N = 10, C = 4 };
tyr_tensor *f(tyr_tensor *rows) {
  tyr_T(N, C) x = tyr_randn(N, C);
  tyr_T(2, 3) idx = tyr_cast(rows, 2, 3);
  return tyr_erase(tyr_index_select(x, 0, idx));
}
