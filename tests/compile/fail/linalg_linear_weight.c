/* A weight stored [in, out] inside a nested expression, with a run-time
 * batch dim: the mistake is still found when compiling. */
#include <tyr/tyr.h>
// expect: tyr_linear: the weight must be [out, in] with in equal to the last dim of x
enum { C = 64, Hidden = 256 };
tyr_tensor *f(int batch) {
  tyr_T(batch, C) x = tyr_randn(batch, C);
  tyr_T(Hidden, C) up = tyr_randn(Hidden, C);
  tyr_T(Hidden, C) down = tyr_randn(Hidden, C); /* should be [C, Hidden] */
  return tyr_erase(tyr_linear(tyr_gelu(tyr_linear(x, up)), down));
}
