/* A bias row whose length is not the last dim. */
#include <tyr/tyr.h>
// expect: tyr_add_row: the length of the row differs from the last dim of x
enum { B = 4, T = 16, C = 8 };
tyr_tensor *f(void) {
  tyr_T(B, T, C) x = tyr_zeros(B, T, C);
  tyr_T(T) bias = tyr_zeros(T);
  return tyr_erase(tyr_add_row(x, bias));
}
