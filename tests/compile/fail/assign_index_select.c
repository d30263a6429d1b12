/* index_select gives the index length. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_index_select(
// expect-tyr-cc: tyr_index_select: the result is tyr_T(16, 8) but y is declared tyr_T(50, 8)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(V, C) w = tyr_zeros(V, C);
  tyr_T(T) idx = tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, T);
  tyr_T(V, C) y = tyr_index_select(w, 0, idx);
  (void)y;
}
