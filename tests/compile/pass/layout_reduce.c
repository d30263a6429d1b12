/* Every typed reduction and layout op with static, run-time and mixed
 * dims, nested. */
#include <tyr/tyr.h>
enum { B = 4, H = 2, T = 16, D = 8, C = H * D };
tyr_tensor *f(int n, int t) {
  /* ---- reductions, static dims ---- */
  tyr_T(B, T, C) x = tyr_randn(B, T, C);
  tyr_T0 s0 = tyr_add(tyr_max(x), tyr_min(x));
  s0 = tyr_add(s0, tyr_add(tyr_var_all(x, true), tyr_mean(x)));
  tyr_T0 i0 = tyr_argmax_all(x), i1 = tyr_argmin_all(x);
  tyr_T(B, C) m1 = tyr_max_dim(x, 1);
  tyr_T(B, 1, C) m2 = tyr_max_keepdim(x, -2);
  tyr_T(T, C) m3 = tyr_min_dim(x, 0);
  tyr_T(B, T, 1) m4 = tyr_min_keepdim(x, 2);
  tyr_T(B, T) a1 = tyr_argmax(x, -1);
  tyr_T(1, T, C) a2 = tyr_argmax_keepdim(x, 0);
  tyr_T(B, C) a3 = tyr_argmin(x, 1);
  tyr_T(B, T, 1) a4 = tyr_argmin_keepdim(x, 2);
  tyr_T(B, T) v1 = tyr_var(x, 2, false);
  tyr_T(B, 1, C) v2 = tyr_var_keepdim(x, 1, true);
  tyr_T(B, T) r1 = tyr_sub(tyr_sum_dim(x, 2), tyr_mean_dim(x, -1));
  tyr_T(B, T, 1) r2 = tyr_add(tyr_sum_keepdim(x, 2), tyr_mean_keepdim(x, 2));
  /* nested: the max over time of the per-channel variance */
  tyr_T(B) nest = tyr_max_dim(tyr_var(tyr_transpose(x, 1, 2), -1, true), 1);

  /* ---- layout, static dims ---- */
  tyr_T(B, C, T) xt = tyr_transpose(x, 1, 2);
  tyr_T(T, B, C) xp = tyr_permute(x, 1, 0, 2);
  tyr_T(B, T, C) xc = tyr_contiguous(tyr_transpose(xt, -1, -2));
  tyr_T(B, T, H, D) heads = tyr_reshape(x, B, T, H, D);
  tyr_T(B, H, T, D) bh = tyr_permute(heads, 0, 2, 1, 3);
  tyr_T(B, T, C) merged = tyr_flatten(tyr_contiguous(tyr_transpose(bh, 1, 2)), 2, 3);
  tyr_T(B *T, C) rows = tyr_flatten(merged, 0, 1);
  tyr_T(B, 1, T, C) u = tyr_unsqueeze(x, 1);
  tyr_T(B, T, C) sq = tyr_squeeze(u, -3);
  tyr_T(B, T, 4) nw = tyr_narrow(x, 2, 3, 4);
  tyr_T(B, T, C + 4) c2 = tyr_cat2(x, nw, -1);
  tyr_T(B, T, C + 8) c3 = tyr_cat3(nw, x, nw, 2);
  tyr_T(2, B, T, C) st2 = tyr_stack2(x, xc, 0);
  tyr_T(B, T, C, 3) st3 = tyr_stack3(x, xc, sq, 3);
  tyr_T(B, T, C / 2) h0, h1;
  int rc = tyr_chunk2(x, 2, &h0, &h1);
  tyr_T(B, T, C) qkv_src = tyr_randn(B, T, C);
  tyr_T(3 * B, T, C) tall = tyr_cat3(qkv_src, qkv_src, qkv_src, 0);
  tyr_T(B, T, 3 * C) qkv = tyr_cat3(qkv_src, qkv_src, tyr_narrow(tall, 0, B, B), 2);
  tyr_T(B, T, C) q, k, v;
  rc += tyr_chunk3(qkv, -1, &q, &k, &v);
  tyr_T(T, T) mask = tyr_tril(tyr_ones(T, T), 0);
  tyr_T(B, H, T, T) att = tyr_triu(tyr_randn(B, H, T, T), 1);

  /* ---- run-time dims ---- */
  tyr_T(n, t, C) y = tyr_randn(n, t, C);
  tyr_T(n, C, t) yt = tyr_transpose(y, 1, 2);
  tyr_T(C, n, t) yp = tyr_permute(yt, 1, 0, 2);
  tyr_T(n, t, C) yc = tyr_contiguous(y);
  tyr_T(n, t *C) yf = tyr_flatten(y, 1, 2);
  tyr_T(n, 1, t, C) yu = tyr_unsqueeze(y, 1);
  tyr_T(n, t, C) ys = tyr_squeeze(yu, 1);
  tyr_T(n, t, 2) yn = tyr_narrow(y, 2, 1, 2);
  tyr_T(n, t + t, C) ycat = tyr_cat2(y, yc, 1);
  tyr_T(n, t, C + 2 + C) ycat3 = tyr_cat3(y, yn, y, 2);
  tyr_T(n, 2, t, C) yst = tyr_stack2(y, ys, 1);
  tyr_T(n, t, C / 2) y0, y1;
  rc += tyr_chunk2(y, 2, &y0, &y1);
  tyr_T(n, t, C) ytri = tyr_triu(tyr_tril(y, 2), -2);
  tyr_T(n, C) ym = tyr_max_dim(y, 1);
  tyr_T(n, t, 1) yv = tyr_var_keepdim(y, -1, false);
  tyr_T(t, C) ya = tyr_argmin(y, 0);
  /* run-time start and length */
  tyr_T(n, t, 3) ynr = tyr_narrow(y, -1, n - 1, 3);

  /* ---- mixed: a static tensor joined with a run-time one ---- */
  tyr_T(n, T, C) z = tyr_randn(n, T, C);
  tyr_T(B + n, T, C) mixed = tyr_cat2(x, z, 0);
  tyr_T(B + n, C) mixed_max = tyr_max_dim(tyr_tril(mixed, 0), 1);
  tyr_T(C, B + n) mixed_t = tyr_transpose(tyr_var(tyr_narrow(mixed, 1, 0, 4), 1, true), 0, 1);

  (void)s0, (void)i0, (void)i1, (void)m1, (void)m2, (void)m3, (void)m4, (void)a1, (void)a2;
  (void)a3, (void)a4, (void)v1, (void)v2, (void)r1, (void)r2, (void)nest, (void)xp, (void)rows;
  (void)c2, (void)c3, (void)st2, (void)st3, (void)h0, (void)h1, (void)q, (void)k, (void)v;
  (void)mask, (void)att, (void)yp, (void)yf, (void)ycat, (void)ycat3, (void)yst, (void)y0;
  (void)y1, (void)ytri, (void)ym, (void)yv, (void)ya, (void)ynr, (void)mixed_max, (void)mixed_t;
  return rc ? NULL : tyr_erase(tyr_add(merged, x));
}
