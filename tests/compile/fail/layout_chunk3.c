/* Splitting a dim of 8 into three equal pieces. */
#include <tyr/tyr.h>
// expect: tyr_chunk3: the dim does not divide into 3 equal pieces
enum { T = 4, C = 8 };
int f(void) {
  tyr_T(T, C) x = tyr_zeros(T, C);
  tyr_T(T, C / 3) q, k, v;
  return tyr_chunk3(x, 1, &q, &k, &v);
}
