/* A handle passed to a helper whose parameter is declared with another
 * shape (tyr-cc prints both types as tyr_T). */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect-tyr-cc: tyr_T(4, 8)
// expect-tyr-cc: tyr_T(8, 4)
enum { B = 4, C = 8 };
static tyr_tensor *head(tyr_T(B, C) x) { return tyr_erase(x); }
tyr_tensor *f(void) {
  tyr_T(C, B) x = tyr_zeros(C, B);
  return head(x);
}
