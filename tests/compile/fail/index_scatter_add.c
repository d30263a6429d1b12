/* scatter_add with a source that does not have the index's shape. */
#include <tyr/tyr.h>
// expect: tyr_scatter_add: src must have the shape of idx
enum { N = 10, C = 4 };
tyr_tensor *f(tyr_tensor *cols) {
  tyr_T(N, C) x = tyr_zeros(N, C);
  tyr_T(N, 2) idx = tyr_cast(cols, N, 2);
  tyr_T(N, 3) src = tyr_ones(N, 3);
  return tyr_erase(tyr_scatter_add(x, 1, idx, src));
}
