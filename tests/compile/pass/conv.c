/* Convolutions and image ops with constant shapes: the output sizes are
 * computed in the types; with a run-time dim the same source compiles. */
#include <tyr/tyr.h>
enum { N = 2, C = 4, H = 28, W = 28, K = 8 };
void f(int64_t h) {
  tyr_T(N, C, H, W) x = tyr_zeros(N, C, H, W);
  tyr_T(K, C / 2, 3, 3) w = tyr_zeros(K, C / 2, 3, 3);
  tyr_T(K) b = tyr_zeros(K);
  tyr_T(N, K, 14, 14) y = tyr_conv2d(x, w, b, 2, 1, 1, 2);
  tyr_T(N, K, 14, 14) yd = tyr_conv2d(x, w, NULL, 2, 1, 1, 2);
  tyr_T(K, 1, 3, 3) dw = tyr_zeros(K, 1, 3, 3);
  tyr_T(N, K, 14, 14) dep = tyr_conv2d(y, dw, NULL, 1, 2, 2, K);
  tyr_T(N, K, 7, 7) p = tyr_max_pool2d(dep, 3, 2, 1);
  tyr_T(N, K, 7, 7) a = tyr_avg_pool2d(yd, 2, 2, 0);
  tyr_T(N, K, 1, 1) g = tyr_adaptive_avg_pool2d(a, 1, 1);
  tyr_T(K) rm = tyr_zeros(K);
  tyr_T(K) rv = tyr_ones(K);
  tyr_T(N, K, 7, 7) bn = tyr_batch_norm(p, b, b, rm, rv, false, 0.1, 1e-5);
  tyr_T(N, K, 7, 7) gn = tyr_group_norm(bn, 4, b, NULL, 1e-5);
  tyr_T(N, C, 16) s = tyr_zeros(N, C, 16);
  tyr_T(K, C, 5) w1 = tyr_zeros(K, C, 5);
  tyr_T(N, K, 8) s1 = tyr_conv1d(s, w1, b, 2, 2, 1, 1);
  tyr_T(N, C, h, W) xh = tyr_zeros(N, C, h, W);
  tyr_T(N, K, TYR_CONV_OUT(h, 3, 2, 1, 1), 14) yh = tyr_conv2d(xh, w, b, 2, 1, 1, 2);
  (void)g;
  (void)gn;
  (void)s1;
  (void)yh;
}
