/* The output size is computed in the type: stride 2 halves 32 to 16. */
#include <tyr/tyr.h>
// expect: incompatible
enum { N = 2, C = 3, H = 32, W = 32, K = 8 };
void f(void) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(K, C, 3, 3) w = tyr_zeros(K, C, 3, 3);
  tyr_T(N, K, 32, 32) y = tyr_conv2d(x, w, NULL, 2, 1, 1, 1);
  (void)y;
}
