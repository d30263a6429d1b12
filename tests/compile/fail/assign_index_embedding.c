/* Embeddings add the model width. */
#include <tyr/tyr.h>
// expect: incompatible-pointer-types
// expect: tyr_embedding(
// expect-tyr-cc: tyr_embedding: the result is tyr_T(4, 16, 8) but y is declared tyr_T(4, 16)
enum { B = 4, T = 16, C = 8, H = 2, V = 50 };
void f(void) {
  tyr_T(V, C) w = tyr_zeros(V, C);
  tyr_T(B, T) idx = tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, B, T);
  tyr_T(B, T) y = tyr_embedding(w, idx);
  (void)y;
}
