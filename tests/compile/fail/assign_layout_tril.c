/* tril keeps the shape. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_tril(
// expect-tyr-cc: tyr_tril: the result is tyr_T(16, 16) but y is declared tyr_T(16)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(T, T) x = tyr_zeros(T, T);
  tyr_T(T) y = tyr_tril(x, 0);
  (void)y;
}
