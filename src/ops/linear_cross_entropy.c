/* tyr_linear_cross_entropy: a classifier (x @ w^T) and the mean cross
 * entropy of its logits in one op.
 *
 * The forward computes the logits [N, V] in x's dtype, then one kernel
 * (backend cross_entropy_fused) writes each row's loss (f32, f64 for f64
 * operands) and turns the logits, in place, into d(mean loss)/d(logits).
 * That buffer is all the backward keeps: dx = g * dlogits @ w and
 * dw = g * dlogits^T @ x (g: the upstream gradient, a scalar).  Against tyr_linear followed by
 * tyr_cross_entropy this holds one [N, V] tensor instead of the logits, a
 * copy of them in the loss's dtype and their gradient, reads them fewer
 * times, and gives an f32 loss for bf16/f16 operands. */
#include "ops/nn_util.h"
#include "tyr/autograd.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_linalg.h"
#include "tyr/ops_nn.h"

static void linear_cross_entropy_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *w = n->in[1], *dl = n->saved[0]; /* dl: [N, V] of x's dtype */
  if (!dl) return;
  int64_t N = dl->shape[0], C = w->shape[1];
  tyr_tensor *gs = tyr_to_dtype_at(s, g, x->dtype); /* the upstream scalar */
  if (!gs) return;
  if (tyr__node_needs(n, 0)) {
    tyr_tensor *gx = tyr_matmul_at(s, dl, w);
    gx = gx ? tyr_mul_at(s, gx, tyr_expand_at(s, gs, 2, gx->shape)) : NULL;
    if (gx) gin[0] = tyr_reshape_at(s, gx, x->rank, x->shape);
  }
  if (tyr__node_needs(n, 1)) {
    tyr_tensor *x2 = tyr_reshape_at(s, x, 2, (int64_t[]){N, C});
    tyr_tensor *dlt = tyr_transpose_at(s, dl, 0, 1);
    tyr_tensor *gw = x2 && dlt ? tyr_matmul_at(s, dlt, x2) : NULL;
    if (gw) gin[1] = tyr_mul_at(s, gw, tyr_expand_at(s, gs, 2, gw->shape));
  }
}

/* x [..., C] and w [V, C] float of one dtype, targets [...] (x's shape
 * without its last dim) i32/i64, all on one device. */
static bool check_operands(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w,
                           tyr_tensor *targets) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "w", w) ||
      !tyr__arg_ok(s, op, "targets", targets))
    return false;
  if (!tyr__is_float(s, op, "x", x) || !tyr__same_dtype(s, op, x, w) ||
      !tyr__is_index(s, op, "targets", targets))
    return false;
  if (!tyr__same_device(s, op, x, w) || !tyr__same_device(s, op, x, targets) ||
      !tyr_backend_get(s, op, x->device))
    return false;
  char a[160], b[160], c[160];
  int r = x->rank;
  if (r < 1 || w->rank != 2 || w->shape[1] != x->shape[r - 1]) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "x is %s and w is %s: the weight must be [V, C] with C equal to the last dim of x",
              TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, b));
    return false;
  }
  bool shape_ok = targets->rank == r - 1;
  for (int i = 0; shape_ok && i < r - 1; i++) shape_ok = targets->shape[i] == x->shape[i];
  if (!shape_ok) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "x is %s, so targets must be %s, but they are %s",
              TYR__NN_SHAPE(x, a), tyr_shape_str(x->shape, r - 1, c, sizeof c),
              TYR__NN_SHAPE(targets, b));
    return false;
  }
  if (w->shape[0] == 0 && tyr_numel(targets) > 0) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "w %s has no classes", TYR__NN_SHAPE(w, b));
    return false;
  }
  return tyr__nn_has(s, op, x, (const void *)tyr__be(x)->cross_entropy_fused,
                     "fused cross entropy");
}

tyr_tensor *tyr_linear_cross_entropy_at(tyr_site s, tyr_tensor *x, tyr_tensor *w,
                                        tyr_tensor *targets, int64_t ignore_index) {
  const char *op = "tyr_linear_cross_entropy";
  if (!check_operands(s, op, x, w, targets)) return NULL;
  const tyr_backend *be = tyr__be(x);
  int64_t N = tyr_numel(targets), V = w->shape[0], C = w->shape[1];
  tyr_dtype ldt = x->dtype == TYR_F64 ? TYR_F64 : TYR_F32; /* the loss's dtype */
  tyr_tensor *tk = NULL, *t1 = NULL, *logits = NULL, *lk = NULL, *scale = NULL, *losses = NULL;
  tyr_tensor *total = NULL, *out = NULL;
  bool ok = false;
  tk = tyr__nn_prep(s, op, targets, TYR_I64);
  t1 = tk ? tyr__nn_view(tk, 1, &N) : NULL;
  scale = tyr__new(s, op, ldt, x->device, 0, NULL);
  total = tyr__new(s, op, ldt, x->device, 0, NULL);
  if (!t1 || !scale || !total) goto done;
  /* 1 / (targets not ignored): counted on the device during a CUDA graph
     capture (no host reads then; the kernels never read out of bounds) */
  if (be->capturing && be->capturing(x->device)) {
    tyr__nn_drop(scale);
    if (!(scale = tyr__ce_inv_count_dev(s, op, t1, ignore_index, ldt))) goto done;
  } else {
    int64_t count = tyr__ce_check_targets(s, op, t1, V, ignore_index);
    if (count < 0) goto done;
    be->fill(scale, count > 0 ? 1.0 / (double)count : 0.0);
  }
  if (N > 0) {
    {
      TYR_NO_GRAD;
      tyr_tensor *x2 = tyr_reshape_at(s, x, 2, (int64_t[]){N, C});
      logits = x2 ? tyr_linear_at(s, x2, w, NULL) : NULL; /* [N, V], x's dtype */
      tyr__nn_drop(x2);
    }
    if (!logits) goto done;
    /* the kernel's dtype: f32 for bf16/f16 on the CPU (copied back after) */
    lk = tyr__nn_prep(s, op, logits, tyr__nn_kdt(logits));
    losses = tyr__new(s, op, ldt, x->device, 1, &N);
    if (!lk || !losses) goto done;
    be->cross_entropy_fused(losses, lk, t1, ignore_index, scale);
    if (lk != logits) be->copy(logits, lk);
    be->reduce(TYR_RED_SUM, total, losses, -1);
  } else {
    be->fill(total, 0.0);
  }
  out = tyr__new(s, op, ldt, x->device, 0, NULL);
  if (!out) goto done;
  be->binary(TYR_BIN_MUL, out, total, scale);
  ok = true;
  tyr_node *n = TYR_RECORD(s, op, out, linear_cross_entropy_backward, x, w);
  if (n && logits) tyr__node_save(n, 0, logits);
done:
  tyr__nn_release(lk, logits);
  tyr__nn_drop(logits);
  tyr__nn_drop(losses);
  tyr__nn_drop(total);
  tyr__nn_drop(scale);
  tyr__nn_drop(t1);
  tyr__nn_release(tk, targets);
  if (!ok) {
    tyr__nn_drop(out);
    return NULL;
  }
  return out;
}
