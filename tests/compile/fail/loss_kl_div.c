/* KL divergence between distributions over different vocabularies. */
#include <tyr/tyr.h>
// expect: tyr_kl_div: operands have different shapes
tyr_tensor *f(void) {
  tyr_T(8, 100) student = tyr_zeros(8, 100);
  tyr_T(8, 128) teacher = tyr_zeros(8, 128);
  return tyr_erase(tyr_kl_div(student, teacher, TYR_REDUCTION_BATCHMEAN, false));
}
