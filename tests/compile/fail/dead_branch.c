/* A broken rule in a branch that a constant flag disables is rejected like any type error (use #if for shape-changing configuration). */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_mul: operands have different shapes
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C) s = tyr_zeros(C);
  if (USE_SCALE) x = tyr_mul(x, s);
}
