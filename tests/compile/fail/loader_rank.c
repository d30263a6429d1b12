/* Batches are rank 2: a rank-3 handle is refused. */
#include <tyr/data.h>
// expect: tyr_loader_next: x and y must be rank-2 handles
enum { B = 4, T = 16 };
int f(tyr_loader *l) {
  tyr_T(B, T, 1) x, y;
  return tyr_loader_next(l, B, T, &x, &y);
}
