/* Document ids of another batch size than q's. */
#include <stdlib.h>
#include <tyr/tyr.h>
// expect: tyr_sdpa_docs: the document ids must be [B, S] for q [B, H, T, D] and k [B, H, S, D]
enum { B = 4, T = 16, C = 8, H = 2 };
void f(void) {
  tyr_T(B, H, T, C) q = tyr_zeros(B, H, T, C);
  tyr_T(B + 1, T) d = tyr_zeros_to(TYR_I32, TYR_DEVICE_CPU, B + 1, T);
  (void)tyr_sdpa_docs(q, q, q, d, &(tyr_sdpa_opts){.causal = true});
}
