/* A program outside the Tyr tree, built against an installed Tyr (CMake's
 * find_package, pkg-config) or a source tree (add_subdirectory) by
 * tests/install/install.sh.  It checks one product and one gradient. */
#include <stdio.h>
#include <tyr/tyr.h>

int main(void) {
  TYR_SCOPE;
  tyr_T(2, 3) a = tyr_ones(2, 3);
  tyr_T(3, 4) b = tyr_full(2.0, 3, 4);
  tyr_requires_grad(a);
  tyr_T(2, 4) c = tyr_matmul(a, b); /* every element 1 * 2 * 3 = 6 */
  tyr_T0 loss = tyr_sum(c);         /* 8 * 6 = 48 */
  tyr_backward(loss);
  double s = tyr_item(loss), g = tyr_get(tyr_grad(a), 1, 2); /* d loss / d a = 4 * 2 = 8 */
  printf("sum %g, grad %g\n", s, g);
  return s == 48.0 && g == 8.0 ? 0 : 1;
}
