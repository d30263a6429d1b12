/* embedding with a weight that is not [V, C]. */
#include <tyr/tyr.h>
// expect: tyr_embedding: the weight must be [V, C] (rank 2)
enum { V = 100, C = 8, B = 2, T = 5 };
tyr_tensor *f(tyr_tensor *tokens) {
  tyr_T(V) w = tyr_randn(V);
  tyr_T(B, T) idx = tyr_cast(tokens, B, T);
  return tyr_erase(tyr_embedding(w, idx));
}
