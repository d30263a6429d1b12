/* gather with an index whose other dims differ from x's. */
#include <tyr/tyr.h>
// expect: tyr_gather: idx must have the rank of x and the dims of x except along dim
enum { N = 10, C = 4 };
tyr_tensor *f(tyr_tensor *cols) {
  tyr_T(N, C) x = tyr_randn(N, C);
  tyr_T(N + 1, 2) idx = tyr_cast(cols, N + 1, 2);
  return tyr_erase(tyr_gather(x, 1, idx));
}
