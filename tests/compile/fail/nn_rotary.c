/* Rotary tables built for another head dim. */
#include <tyr/tyr.h>
// expect: tyr_rotary: cos and sin must be [T, D/2] for x [B, H, T, D]
enum { B = 2, H = 4, T = 16, D = 32 };
tyr_tensor *f(void) {
  tyr_T(B, H, T, D) x = tyr_zeros(B, H, T, D);
  tyr_T(T, D) c = tyr_zeros(T, D);
  tyr_T(T, D) s = tyr_zeros(T, D);
  return tyr_erase(tyr_rotary(x, c, s));
}
