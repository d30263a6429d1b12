/* NLL with targets for another batch size. */
#include <tyr/tyr.h>
// expect: tyr_nll_loss: targets must have the shape of log_probs without its last (class) dim
tyr_tensor *f(void) {
  tyr_T(8, 10) lp = tyr_zeros(8, 10);
  tyr_T(4) t = tyr_zeros(4);
  return tyr_erase(tyr_nll_loss(lp, t, -100, TYR_REDUCTION_MEAN));
}
