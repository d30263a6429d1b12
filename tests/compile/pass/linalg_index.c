/* Every typed matmul/linear/index op with static, run-time and mixed dims,
 * nested. */
#include <tyr/tyr.h>
enum { B = 2, H = 4, T = 8, D = 16, C = 64, V = 100 };
tyr_tensor *f(int n, int t, tyr_tensor *tokens) {
  /* static dims */
  tyr_T(V, C) wte = tyr_randn(V, C);
  tyr_T(B, T) tok = tyr_cast(tokens, B, T);
  tyr_T(B, T, C) x = tyr_embedding(wte, tok);
  tyr_T(4 * C, C) up = tyr_randn(4 * C, C);
  tyr_T(C, 4 * C) down = tyr_randn(C, 4 * C);
  tyr_T(C) bias = tyr_zeros(C);
  tyr_T(B, T, C) h = tyr_linear_bias(tyr_gelu(tyr_linear(x, up)), down, bias);
  tyr_T(B, T, V) logits = tyr_matmul(h, (tyr_T(C, V))tyr_randn(C, V));
  tyr_T(B, H, T, D) q = tyr_randn(B, H, T, D);
  tyr_T(B, H, D, T) kt = tyr_randn(B, H, D, T);
  tyr_T(B, H, T, T) att = tyr_matmul(q, kt);
  tyr_T(B, H, T, D) o = tyr_matmul(att, q);
  tyr_T(3) rows = tyr_cast(tokens, 3);
  tyr_T(3, C) picked = tyr_index_select(wte, 0, rows);
  tyr_T(V, 3) cols = tyr_index_select(wte, -1, rows);
  tyr_T(B, T) g = tyr_gather(tyr_sum_dim(logits, -1), 1, tok);
  tyr_T(B, T, C) s = tyr_scatter_add(x, 2, tyr_cast(tokens, B, T, C), h);
  /* run-time dims */
  tyr_T(n, t) tokd = tyr_cast(tokens, n, t);
  tyr_T(n, t, C) xd = tyr_embedding(wte, tokd);
  tyr_T(n, t, C) hd = tyr_linear(tyr_relu(tyr_linear(xd, up)), down);
  tyr_T(n, t, t) ad = tyr_matmul(hd, (tyr_T(n, C, t))tyr_randn(n, C, t));
  tyr_T(n, t) gd = tyr_gather(tyr_sum_dim(ad, -1), 1, tokd);
  tyr_T(n, t, C) sd = tyr_scatter_add(xd, 1, tyr_cast(tokens, n, t, C), hd);
  /* mixed: a run-time weight with static batch */
  tyr_T(n, C) wd = tyr_randn(n, C);
  tyr_T(n) bd = tyr_zeros(n);
  tyr_T(B, T, n) yd = tyr_linear_bias(x, wd, bd);
  tyr_T(B, T, C) back = tyr_matmul(yd, wd);
  (void)o, (void)picked, (void)cols, (void)g, (void)s, (void)gd, (void)sd, (void)back;
  return tyr_erase(tyr_index_select(att, 2, rows));
}
