#include "gradcheck.h"

#include <math.h>
#include <stdio.h>

tyr_tensor *tyr_test_leaf(int rank, const int64_t *shape, double lo, double hi) {
  tyr_tensor *t = tyr_rand_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, rank, shape, lo, hi);
  tyr_keep_e(t);
  tyr_requires_grad_e(t, true);
  return t;
}

static double eval_loss(tyr_test_fn fn, void *ctx, tyr_tensor **inputs, tyr_tensor *w) {
  TYR_NO_GRAD;
  TYR_SCOPE;
  tyr_tensor *y = fn(inputs, ctx);
  tyr_tensor *yd = tyr_to_dtype_e(y, TYR_F64);
  return tyr_item_e(tyr_sum_e(tyr_mul_e(yd, w)));
}

double tyr_gradcheck(const char *name, tyr_test_fn fn, void *ctx, int n, tyr_tensor **inputs,
                     double eps, double tol) {
  double worst = 0;
  tyr_scope_begin();
  for (int i = 0; i < n; i++) tyr_zero_grad_e(inputs[i]);
  tyr_tensor *y0;
  {
    TYR_NO_GRAD;
    y0 = fn(inputs, ctx);
    if (!y0) fail_msg("%s: %s", name, tyr_error_last()->message);
  }
  tyr_tensor *w = tyr_rand_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, y0->rank, y0->shape, 0.5, 1.5);
  tyr_tensor *y = fn(inputs, ctx);
  tyr_tensor *loss = tyr_sum_e(tyr_mul_e(tyr_to_dtype_e(y, TYR_F64), w));
  if (tyr_backward_e(loss) != 0) fail_msg("%s: backward failed", name);
  for (int i = 0; i < n; i++) {
    tyr_tensor *x = inputs[i];
    if (!x->requires_grad || x->dtype != TYR_F64) continue;
    tyr_tensor *g = tyr_grad_e(x);
    if (!g) fail_msg("%s: input %d got no gradient", name, i);
    double *xd = tyr_data_ptr(x);
    const double *gd = tyr_data_ptr(g);
    int64_t m = tyr_numel(x);
    for (int64_t k = 0; k < m; k++) {
      double old = xd[k];
      xd[k] = old + eps;
      double lp = eval_loss(fn, ctx, inputs, w);
      xd[k] = old - eps;
      double lm = eval_loss(fn, ctx, inputs, w);
      xd[k] = old;
      double num = (lp - lm) / (2 * eps);
      double err = fabs(num - gd[k]) / fmax(1.0, fabs(num));
      if (err > worst) worst = err;
      if (err > tol)
        fail_msg("%s: d/d input %d element %lld: backward %.8g, finite difference %.8g", name, i,
                 (long long)k, gd[k], num);
    }
  }
  for (int i = 0; i < n; i++) tyr_zero_grad_e(inputs[i]);
  tyr_scope_end();
  return worst;
}
