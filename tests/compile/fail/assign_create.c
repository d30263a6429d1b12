/* A new tensor of one shape declared with another. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_randn(
// expect-tyr-cc: tyr_randn: the result is tyr_T(4, 8) but y is declared tyr_T(8, 4)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {

  tyr_T(C, B) y = tyr_randn(B, C);
  (void)y;
}
