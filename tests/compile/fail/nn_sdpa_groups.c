/* 6 query heads cannot share 4 key/value heads. */
#include <tyr/tyr.h>
// expect: tyr_sdpa: the number of query heads is not a multiple of the number of key/value heads
enum { B = 2, T = 16, D = 32 };
tyr_tensor *f(void) {
  tyr_T(B, 6, T, D) q = tyr_zeros(B, 6, T, D);
  tyr_T(B, 4, T, D) kv = tyr_zeros(B, 4, T, D);
  return tyr_erase(tyr_sdpa(q, kv, kv, &(tyr_sdpa_opts){.causal = true}));
}
