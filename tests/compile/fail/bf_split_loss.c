/* The Branching Flows split loss with split targets of another shape. */
#include <tyr/branching_flows.h>
#include <tyr/tyr.h>
// expect: tyr_bf_split_loss: logits, split targets and mask must have one shape
tyr_tensor *f(void) {
  tyr_T(4, 16) logits = tyr_zeros(4, 16);
  tyr_T(4, 15) c = tyr_zeros(4, 15);
  tyr_T(4, 16) mask = tyr_ones(4, 16);
  return tyr_erase(tyr_bf_split_loss(logits, c, mask));
}
