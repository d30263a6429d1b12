/* Assigning a handle of one shape to a variable of another. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
enum { B = 4, C = 8 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) y = tyr_relu(x);
  (void)y;
}
