/* linear with a bias of the input width instead of the output width. */
#include <tyr/tyr.h>
// expect: tyr_linear_bias: the bias must be [out], out being the first dim of w
enum { B = 4, In = 32, Out = 16 };
tyr_tensor *f(void) {
  tyr_T(B, In) x = tyr_randn(B, In);
  tyr_T(Out, In) w = tyr_randn(Out, In);
  tyr_T(In) b = tyr_zeros(In);
  tyr_T(B, Out) y = tyr_linear_bias(x, w, b);
  return tyr_erase(y);
}
