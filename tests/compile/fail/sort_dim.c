/* sort along a dim the tensor does not have. */
#include <tyr/tyr.h>
// expect: tyr_sort: dim is out of range for the rank of the tensor
int f(void) {
  tyr_T(4, 10) x = tyr_zeros(4, 10);
  tyr_T(4, 10) v, i;
  return tyr_sort(x, 2, false, &v, &i);
}
