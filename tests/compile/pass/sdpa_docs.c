/* tyr_sdpa_docs with static, dynamic and mixed shapes, nested. */
#include <tyr/tyr.h>
enum { B = 2, H = 4, HKV = 2, T = 16, D = 8 };
tyr_tensor *f(int n, int s) {
  tyr_T(B, H, T, D) q = tyr_randn(B, H, T, D);
  tyr_T(B, HKV, T, D) k = tyr_randn(B, HKV, T, D);
  tyr_T(B, T) doc = tyr_zeros_to(TYR_I32, TYR_DEVICE_CPU, B, T);
  tyr_T(B, H, T, D) a = tyr_sdpa_docs(q, k, k, doc, &(tyr_sdpa_opts){.causal = true, .window = 4});
  a = tyr_sdpa_docs(tyr_sdpa_docs(a, k, k, doc, NULL), k, k, doc, NULL);
  /* dynamic batch and key length */
  tyr_T(n, H, T, D) qd = tyr_randn(n, H, T, D);
  tyr_T(n, HKV, s, D) kd = tyr_randn(n, HKV, s, D);
  tyr_T(n, s) dd = tyr_zeros_to(TYR_I32, TYR_DEVICE_CPU, n, s);
  tyr_T(n, H, T, D) ad = tyr_sdpa_docs(qd, kd, kd, dd, NULL);
  (void)ad;
  return tyr_erase(a);
}
