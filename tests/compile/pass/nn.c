/* Every functional op with static, dynamic and mixed shapes, nested. */
#include <tyr/tyr.h>
enum { B = 2, H = 8, HKV = 2, T = 16, D = 32, C = H * D, V = 50 };
tyr_tensor *f(int n, int t) {
  /* static */
  tyr_T(B, T, C) x = tyr_randn(B, T, C);
  tyr_T(C) w = tyr_ones(C);
  tyr_T(C) b = tyr_zeros(C);
  tyr_T(B, T, C) h = tyr_layer_norm(tyr_dropout(x, 0.1, true), w, b, 1e-5);
  h = tyr_rms_norm(tyr_layer_norm(h, NULL, NULL, 1e-5), w, 1e-6);
  h = tyr_layer_norm(tyr_rms_norm(h, NULL, 1e-6), w, NULL, 1e-5);
  h = tyr_layer_norm(h, NULL, b, 1e-5);
  tyr_T(B, T, C) hb = tyr_layer_norm_to(h, w, b, 1e-5, TYR_BF16);
  h = tyr_residual_add(h, tyr_rms_norm_to(hb, NULL, 1e-6, TYR_BF16));
  tyr_T(B, H, T, D) q = tyr_randn(B, H, T, D);
  tyr_T(B, HKV, T, D) k = tyr_randn(B, HKV, T, D);
  tyr_T(B, HKV, T, D) v = tyr_randn(B, HKV, T, D);
  tyr_T(T, D / 2) cs;
  tyr_T(T, D / 2) sn;
  (void)tyr_rotary_tables(T, D, 10000.0, &cs, &sn);
  tyr_T(B, H, T, D) a = tyr_sdpa(tyr_rotary(q, cs, sn), tyr_rotary(k, cs, sn), v,
                                 &(tyr_sdpa_opts){.causal = true, .window = 4, .scale = 0.125});
  a = tyr_sdpa(a, k, v, NULL);
  tyr_T(B, T, V) logits = tyr_softmax(tyr_log_softmax(tyr_randn(B, T, V), -1), 0);
  tyr_T(B, T) tg = tyr_zeros(B, T);
  tyr_T0 loss = tyr_cross_entropy(logits, tg, -100);
  tyr_T0 lce = tyr_linear_cross_entropy(tyr_randn(B, T, C), tyr_randn(V, C), tg, -100);
  tyr_T0 lcs =
      tyr_linear_cross_entropy_softcap(tyr_randn(B, T, C), tyr_randn(V, C), tg, -100, 15.0);
  tyr_T0 mse = tyr_mse_loss(tyr_dropout(h, 0.0, false), x);
  /* dynamic */
  tyr_T(n, t, C) xd = tyr_randn(n, t, C);
  tyr_T(n, t, C) hd = tyr_rms_norm(tyr_layer_norm(xd, w, b, 1e-5), w, 1e-6);
  hd = tyr_residual_add(hd, tyr_layer_norm_to(hd, w, NULL, 1e-5, TYR_F16));
  tyr_T(n, H, t, D) qd = tyr_randn(n, H, t, D);
  tyr_T(n, HKV, t, D) kd = tyr_randn(n, HKV, t, D);
  tyr_T(t, D / 2) csd;
  tyr_T(t, D / 2) snd;
  (void)tyr_rotary_tables(t, D, 0, &csd, &snd);
  tyr_T(n, H, t, D) ad = tyr_sdpa(tyr_rotary(qd, csd, snd), kd, kd, NULL);
  tyr_T(n, t) tgd = tyr_zeros(n, t);
  tyr_T0 lossd = tyr_cross_entropy(tyr_log_softmax(tyr_randn(n, t, V), 2), tgd, 0);
  tyr_T0 lced = tyr_linear_cross_entropy(xd, tyr_randn(V, C), tgd, 0);
  /* mixed: dynamic head count against static dims, four deep */
  int hk = n;
  tyr_T(B, hk, T, D) km = tyr_randn(B, hk, T, D);
  tyr_T(B, H, T, D) am = tyr_sdpa(tyr_rotary(tyr_dropout(q, 0.2, true), cs, sn), km, km, NULL);
  tyr_T0 total = tyr_mse_loss(tyr_softmax(am, 3), tyr_log_softmax(a, -1));
  (void)loss, (void)mse, (void)hd, (void)ad, (void)lossd, (void)lce, (void)lced, (void)lcs;
  return tyr_erase(total);
}
/* a run-time last dim, with and without the optional norm parameters */
tyr_tensor *g(int n, int c) {
  tyr_T(n, c) x = tyr_randn(n, c);
  tyr_T(c) w = tyr_ones(c);
  tyr_T(n, c) y = tyr_layer_norm(x, NULL, NULL, 1e-5);
  y = tyr_layer_norm(y, w, NULL, 1e-5);
  y = tyr_rms_norm(tyr_rms_norm(y, NULL, 1e-5), w, 1e-5);
  return tyr_erase(tyr_log_softmax(tyr_softmax(y, -1), 0));
}
