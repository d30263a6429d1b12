/* The typed layer's own calls with constant, run-time and mixed dims:
 * element access, dims, scalars, checked declarations, lifetimes, masks. */
#include <tyr/tyr.h>
enum { B = 2, H = 4, T = 8, D = 16, C = H * D };

/* A helper over run-time dims: the dims come first, as parameters, and the
 * handle's type is spelled with them. */
static tyr_tensor *attend(int64_t b, int64_t t, tyr_T(b, H, t, D) q, tyr_T(t, t) mask) {
  tyr_T(b, H, t, D) o = tyr_sdpa_masked(q, q, q, mask, NULL);
  return tyr_erase(o);
}

double f(int n, int t, int i) {
  TYR_SCOPE;
  tyr_T(B, T, C) x = tyr_randn(B, T, C);
  tyr_T(n, t, C) xd = tyr_randn(n, t, C);
  tyr_T(n, T, D) xm = tyr_randn(n, T, D);
  /* element access: one index per dim */
  double s = tyr_get(x, 0, 1, 2) + tyr_get(xd, 0, 0, 0) + tyr_get(xm, 1, 2, 3);
  tyr_set(x, s, 1, 1, 1);
  tyr_set(xd, 2.0, n - 1, t - 1, C - 1);
  /* dims: constants where the dims are, run-time index allowed */
  _Static_assert(tyr_dim(x, 0) == B && tyr_dim(x, -1) == C && tyr_rank(x) == 3, "dims");
  _Static_assert(tyr_dim(xm, 2) == D, "a constant dim of a mixed handle");
  int64_t dn = tyr_dim(xd, 0) + tyr_dim(xd, -2) + tyr_dim(xm, i) + tyr_dim(x, i - 1);
  /* scalars */
  tyr_T0 l = tyr_mean(x);
  tyr_T(1) one = tyr_ones(1);
  tyr_T(1, 1) one2 = tyr_ones(1, 1);
  s += tyr_item(l) + tyr_item(one) + tyr_item(one2) + tyr_item(tyr_sum(xd));
  /* checked declarations */
  tyr_T(C, C) w = tyr_randn(C, C);
  tyr_T(B, T, C) y = tyr_as(tyr_linear(x, w), B, T, C);
  tyr_T(n, t, C) yd = tyr_as(tyr_linear(xd, w), n, t, C);
  tyr_T(n, t) sd = tyr_as(tyr_sum_dim(yd, -1), n, t);
  /* lifetimes and autograd keep the type, also with run-time dims */
  tyr_T(n, C) wd = tyr_requires_grad(tyr_randn(n, C));
  tyr_T(n, C) kd = tyr_keep(tyr_detach(tyr_retain(wd)));
  tyr_T(C, C) wg = tyr_requires_grad(tyr_keep(tyr_randn(C, C)));
  (void)tyr_backward(tyr_sum(tyr_linear(x, wg)));
  tyr_T(C, C) g = tyr_grad(wg);
  /* attention with a typed mask, constant and run-time */
  tyr_T(B, H, T, D) q = tyr_randn(B, H, T, D);
  tyr_T(T, T) m = tyr_tril(tyr_ones_to(TYR_BOOL, TYR_DEVICE_CPU, T, T), 0);
  tyr_T(B, H, T, D) o = tyr_sdpa_masked(q, q, q, m, &(tyr_sdpa_opts){.scale = 0.25});
  tyr_T(n, H, t, D) qd = tyr_randn(n, H, t, D);
  tyr_T(t, t) md = tyr_ones_to(TYR_BOOL, TYR_DEVICE_CPU, t, t);
  tyr_tensor *od = attend(n, t, qd, md);
  s += (double)dn + (sd && y && g && o && od && kd ? 1 : 0);
  tyr_free(kd);
  tyr_free(wg);
  return s;
}
