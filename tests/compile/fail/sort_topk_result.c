/* topk's results have dim d of size k: a handle of the input's shape is wrong. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
int f(void) {
  tyr_T(4, 10) x = tyr_zeros(4, 10);
  tyr_T(4, 10) v, i;
  return tyr_topk(x, 3, 1, true, &v, &i);
}
