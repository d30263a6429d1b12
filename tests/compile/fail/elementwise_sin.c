/* An elementwise op keeps its operand's shape: assigning the result of a
 * [2, 3] operand to a [3, 2] handle does not compile. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
void f(void) {
  tyr_T(2, 3) x = tyr_randn(2, 3);
  tyr_T(3, 2) y = tyr_softplus(tyr_leaky_relu(tyr_cos(tyr_sin(x)), 0.01));
  (void)y;
}
