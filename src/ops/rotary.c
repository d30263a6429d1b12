/* Rotary position embedding (rotate-half convention) and its tables. */
#include <math.h>
#include <stdlib.h>

#include "ops/nn_util.h"
#include "tyr/ops_create.h"
#include "tyr/ops_nn.h"

static void rotary_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *ck = n->saved[0], *sk = n->saved[1];
  tyr_tensor *gk = tyr__nn_prep(s, n->op, g, ck->dtype);
  tyr_tensor *gx = tyr__new(s, n->op, ck->dtype, x->device, x->rank, x->shape);
  if (!gk || !gx) return;
  if (tyr_numel(x) > 0) tyr__be(x)->rotary(gx, gk, ck, sk, true); /* rotate back: -sin */
  gin[0] = tyr__nn_finish(s, n->op, gx, x->dtype);
}

tyr_tensor *tyr_rotary_at(tyr_site s, tyr_tensor *x, tyr_tensor *cos_table, tyr_tensor *sin_table) {
  const char *op = "tyr_rotary";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "cos", cos_table) ||
      !tyr__arg_ok(s, op, "sin", sin_table))
    return NULL;
  if (!tyr__is_float(s, op, "x", x) || !tyr__same_dtype(s, op, x, cos_table) ||
      !tyr__same_dtype(s, op, x, sin_table) || !tyr__same_device(s, op, x, cos_table) ||
      !tyr__same_device(s, op, x, sin_table))
    return NULL;
  char a[160], b[160];
  if (x->rank != 4 || x->shape[3] % 2 != 0) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "x must be [B, H, T, D] with D even, but it is %s",
              TYR__NN_SHAPE(x, a));
    return NULL;
  }
  int64_t T = x->shape[2], half = x->shape[3] / 2;
  for (int k = 0; k < 2; k++) {
    tyr_tensor *t = k ? sin_table : cos_table;
    if (t->rank != 2 || t->shape[0] != T || t->shape[1] != half) {
      tyr_raise(TYR_ERR_SHAPE, s, op, "x is %s, so cos and sin must be [%lld, %lld], but %s is %s",
                TYR__NN_SHAPE(x, a), (long long)T, (long long)half, k ? "sin" : "cos",
                TYR__NN_SHAPE(t, b));
      return NULL;
    }
  }
  if (tyr_grad_enabled() && (cos_table->requires_grad || sin_table->requires_grad)) {
    tyr_raise(TYR_ERR_AUTOGRAD, s, op,
              "the cos and sin tables take no gradient, but %s requires grad (detach it)",
              cos_table->requires_grad ? "cos" : "sin");
    return NULL;
  }
  const tyr_backend *be = tyr_backend_get(s, op, x->device);
  if (!be || !tyr__nn_has(s, op, x, (const void *)be->rotary, "rotary")) return NULL;
  tyr_dtype kdt = tyr__nn_kdt(x);
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt);
  tyr_tensor *ck = tyr__nn_prep(s, op, cos_table, kdt), *sk = tyr__nn_prep(s, op, sin_table, kdt);
  tyr_tensor *yk = tyr__new(s, op, kdt, x->device, 4, x->shape);
  tyr_tensor *out = NULL;
  if (xk && ck && sk && yk) {
    if (tyr_numel(x) > 0) be->rotary(yk, xk, ck, sk, false);
    out = tyr__nn_finish(s, op, yk, x->dtype);
    yk = NULL;
  }
  tyr__nn_drop(yk);
  tyr__nn_release(xk, x);
  if (out) {
    tyr_node *n = TYR_RECORD(s, op, out, rotary_backward, x);
    tyr__node_save(n, 0, ck);
    tyr__node_save(n, 1, sk);
  }
  tyr__nn_release(ck, cos_table);
  tyr__nn_release(sk, sin_table);
  return out;
}

int tyr_rotary_tables_at(tyr_site s, int64_t T, int64_t D, double base, tyr_dtype dt,
                         tyr_device dev, tyr_tensor **cos_out, tyr_tensor **sin_out) {
  const char *op = "tyr_rotary_tables";
  if (!cos_out || !sin_out) return tyr_raise(TYR_ERR_ARG, s, op, "an output pointer is NULL");
  *cos_out = *sin_out = NULL;
  if (T < 0 || D <= 0 || D % 2 != 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "need T >= 0 and an even D > 0, got T %lld, D %lld",
                     (long long)T, (long long)D);
  if ((unsigned)dt >= TYR_DTYPE_COUNT || !tyr_dtype_is_float(dt))
    return tyr_raise(TYR_ERR_DTYPE, s, op, "dtype must be floating, not %s", tyr_dtype_name(dt));
  if (!isfinite(base)) return tyr_raise(TYR_ERR_ARG, s, op, "base must be finite, got %g", base);
  if (base <= 0) base = 10000.0;
  if (!tyr_backend_get(s, op, dev)) return TYR_ERR_DEVICE;
  int64_t half = D / 2, n = T * half, sh[2] = {T, half};
  if (T > 0 && half > INT64_MAX / 16 / T)
    return tyr_raise(TYR_ERR_ARG, s, op, "T %lld x D %lld is too large", (long long)T,
                     (long long)D);
  double *buf = malloc((size_t)(2 * n + 1) * sizeof(double));
  if (!buf) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  for (int64_t i = 0; i < half; i++) {
    double inv_freq = pow(base, -2.0 * (double)i / (double)D);
    for (int64_t t = 0; t < T; t++) {
      double ang = (double)t * inv_freq;
      buf[t * half + i] = cos(ang);
      buf[n + t * half + i] = sin(ang);
    }
  }
  tyr_tensor *out[2] = {NULL, NULL};
  int status = 0;
  for (int k = 0; k < 2 && !status; k++) {
    tyr_tensor *h = tyr_from_host_at(s, buf + k * n, TYR_F64, TYR_DEVICE_CPU, 2, sh);
    tyr_tensor *c = h ? tyr_to_dtype_at(s, h, dt) : NULL;
    out[k] = c ? tyr_to_device_at(s, c, dev) : NULL;
    if (c) tyr__nn_drop(c);
    if (h) tyr__nn_drop(h);
    if (!out[k]) status = tyr_error_last() ? (int)tyr_error_last()->status : TYR_ERR_MEMORY;
  }
  free(buf);
  if (status) {
    tyr__nn_drop(out[0]);
    tyr__nn_drop(out[1]);
    return status;
  }
  *cos_out = out[0];
  *sin_out = out[1];
  return 0;
}
