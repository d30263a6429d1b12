/* topk asking for more entries than the dim has. */
#include <tyr/tyr.h>
// expect: tyr_topk: k must be in 1..the size of the dim
int f(void) {
  tyr_T(4, 10) x = tyr_zeros(4, 10);
  tyr_T(4, 12) v, i;
  return tyr_topk(x, 12, 1, true, &v, &i);
}
