/* A broken rule whose result also lands in a wrongly declared variable: the op's message must not be hidden by the type mismatch (clang). */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_add: operands have different shapes
// expect: incompatible-pointer-types
enum { B = 4, T = 16, C = 8, H = 2, USE_SCALE = 0 };
void f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) z = tyr_zeros(C, B);
  tyr_T(C, B) y = tyr_add(x, z);
  (void)y;
}
