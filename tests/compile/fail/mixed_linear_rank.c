/* Run-time dims: a linear layer's result declared without its batch dim
 * (the compilers print the run-time result type as a very long expression;
 * tyr-cc shortens it). */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_linear(
// expect-tyr-cc: tyr_linear: the result is tyr_T(
// expect-tyr-cc: but y is declared tyr_T(B, T)
void f(int B, int T, int C) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(4 * C, C) w = tyr_zeros(4 * C, C);
  tyr_T(B, T) y = tyr_linear(x, w);
  (void)y;
}
