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
 * times, and gives an f32 loss for bf16/f16 operands.
 *
 * When the logits would pass TYR_LCE_CHUNK_BYTES, the rows go through in
 * chunks of that size: each chunk's logits become its gradient and are
 * used at once for the chunk's rows of dx and its share of dw (summed in
 * f32), so that only a chunk of logits is ever held; the backward then
 * only scales dx and dw.
 *
 * tyr_linear_cross_entropy_softcap caps the logits first (cap * tanh(l /
 * cap), in the loss's dtype, as Gemma 2 and modded-nanogpt do): per chunk
 * the capped logits go through the same kernel and its gradient is scaled
 * by the cap's derivative before it replaces the logits. */
#include <math.h>

#include "ops/nn_util.h"
#include "tyr/autograd.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_linalg.h"
#include "tyr/ops_nn.h"

#define TYR_LCE_CHUNK_BYTES ((int64_t)512 << 20)
static int64_t g_chunk_bytes = TYR_LCE_CHUNK_BYTES;
void tyr__lce_set_chunk_bytes(int64_t bytes) {
  g_chunk_bytes = bytes > 0 ? bytes : TYR_LCE_CHUNK_BYTES;
}

static void linear_cross_entropy_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *w = n->in[1];
  if (n->i[0]) { /* chunked: dx (x's dtype) and dw (the loss's dtype) are ready */
    tyr_tensor *gx = n->saved[0], *gw = n->saved[1];
    tyr_tensor *gs = tyr_to_dtype_at(s, g, x->dtype);
    if (gx && gs && tyr__node_needs(n, 0)) {
      tyr_tensor *t = tyr_mul_at(s, gx, tyr_expand_at(s, gs, 2, gx->shape));
      if (t) gin[0] = tyr_reshape_at(s, t, x->rank, x->shape);
    }
    if (gw && tyr__node_needs(n, 1)) {
      tyr_tensor *t = tyr_mul_at(s, gw, tyr_expand_at(s, g, 2, gw->shape));
      if (t) gin[1] = tyr_to_dtype_at(s, t, w->dtype);
    }
    return;
  }
  tyr_tensor *dl = n->saved[0]; /* dl: [N, V] of x's dtype */
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

/* The softcapped loss of raw logits lk [n, V] (the kernel's dtype): z =
 * cap * tanh(lk / cap) in the loss's dtype goes through the fused kernel
 * (losses into lc), which turns it into d(loss)/dz; times dz/dlk = 1 -
 * (z / cap)^2 that is d(loss)/d(logits), written to lg (x's dtype). */
static bool ce_softcap(tyr_site s, const tyr_backend *be, tyr_tensor *lc, tyr_tensor *lk,
                       tyr_tensor *lg, tyr_tensor *tc, int64_t ign, tyr_tensor *scale, double cap) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  tyr_tensor *lf = lk->dtype == scale->dtype ? lk : tyr_to_dtype_at(s, lk, scale->dtype);
  tyr_tensor *z = lf ? tyr_softcap_at(s, lf, cap) : NULL;
  tyr_tensor *t = z ? tyr_div_scalar_at(s, z, cap) : NULL;
  tyr_tensor *d = t ? tyr_rsub_scalar_at(s, tyr_mul_at(s, t, t), 1.0) : NULL;
  if (!d) return false;
  be->cross_entropy_fused(lc, z, tc, ign, scale);
  be->binary(TYR_BIN_MUL, z, z, d);
  be->copy(lg, z);
  return true;
}

/* The forward in chunks of rows: sums the rows' losses into total and,
 * when x or w needs a gradient, returns dx [N, C] (x's dtype) and dw
 * [V, C] (the loss's dtype, summed over the chunks) of the mean loss. */
static bool lce_chunked(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w, tyr_tensor *t1,
                        int64_t ign, double cap, tyr_tensor *scale, tyr_tensor *total,
                        int64_t chunk, tyr_tensor **gx_out, tyr_tensor **gw_out) {
  const tyr_backend *be = tyr__be(x);
  int64_t N = t1->shape[0], V = w->shape[0], C = w->shape[1], one = 1;
  bool grads = tyr__needs_grad(2, (tyr_tensor *[]){x, w});
  TYR_NO_GRAD;
  tyr_tensor *x2 = tyr_reshape_at(s, x, 2, (int64_t[]){N, C});
  tyr_tensor *losses = tyr__new(s, op, scale->dtype, x->device, 1, &N);
  tyr_tensor *gx = grads ? tyr__new(s, op, x->dtype, x->device, 2, (int64_t[]){N, C}) : NULL;
  tyr_tensor *gw = grads ? tyr__new(s, op, scale->dtype, x->device, 2, (int64_t[]){V, C}) : NULL;
  bool ok = x2 && losses && (!grads || (gx && gw));
  for (int64_t r0 = 0; ok && r0 < N; r0 += chunk) {
    TYR_SCOPE;
    int64_t n = N - r0 < chunk ? N - r0 : chunk;
    tyr_tensor *xc = tyr_narrow_at(s, x2, 0, r0, n);
    tyr_tensor *lg = xc ? tyr_linear_at(s, xc, w, NULL) : NULL; /* [n, V] */
    tyr_tensor *lk = lg ? tyr__nn_prep(s, op, lg, tyr__nn_kdt(lg)) : NULL;
    tyr_tensor *lc = tyr_view_raw(losses, 1, &n, &one, losses->offset + r0);
    tyr_tensor *tc = tyr_view_raw(t1, 1, &n, &one, t1->offset + r0);
    if (!(ok = lk && lc && tc)) break;
    if (cap > 0) {
      if (!(ok = ce_softcap(s, be, lc, lk, lg, tc, ign, scale, cap))) break;
    } else {
      be->cross_entropy_fused(lc, lk, tc, ign, scale);
      if (lk != lg) be->copy(lg, lk);
    }
    if (!grads) continue;
    tyr_tensor *dx = tyr_matmul_at(s, lg, w);
    tyr_tensor *dw = tyr_matmul_at(s, tyr_transpose_at(s, lg, 0, 1), xc);
    tyr_tensor *dwl = dw && dw->dtype != gw->dtype ? tyr_to_dtype_at(s, dw, gw->dtype) : dw;
    tyr_tensor *gxr = tyr_narrow_at(s, gx, 0, r0, n);
    if (!(ok = dx && dwl && gxr)) break;
    be->copy(gxr, dx);
    if (r0 == 0)
      be->copy(gw, dwl);
    else
      be->binary(TYR_BIN_ADD, gw, gw, dwl);
  }
  if (ok) be->reduce(TYR_RED_SUM, total, losses, -1);
  tyr__nn_drop(x2);
  tyr__nn_drop(losses);
  if (!ok) {
    tyr__nn_drop(gx);
    tyr__nn_drop(gw);
    return false;
  }
  *gx_out = gx;
  *gw_out = gw;
  return true;
}

tyr_tensor *tyr_linear_cross_entropy_at(tyr_site s, tyr_tensor *x, tyr_tensor *w,
                                        tyr_tensor *targets, int64_t ignore_index) {
  return tyr_linear_cross_entropy_softcap_at(s, x, w, targets, ignore_index, 0);
}

tyr_tensor *tyr_linear_cross_entropy_softcap_at(tyr_site s, tyr_tensor *x, tyr_tensor *w,
                                                tyr_tensor *targets, int64_t ignore_index,
                                                double cap) {
  const char *op = cap != 0 ? "tyr_linear_cross_entropy_softcap" : "tyr_linear_cross_entropy";
  if (!(cap >= 0 && cap < INFINITY)) {
    tyr_raise(TYR_ERR_ARG, s, op, "the softcap must be finite and >= 0 (0: none), got %g", cap);
    return NULL;
  }
  if (!check_operands(s, op, x, w, targets)) return NULL;
  const tyr_backend *be = tyr__be(x);
  int64_t N = tyr_numel(targets), V = w->shape[0], C = w->shape[1];
  tyr_dtype ldt = x->dtype == TYR_F64 ? TYR_F64 : TYR_F32; /* the loss's dtype */
  tyr_tensor *tk = NULL, *t1 = NULL, *logits = NULL, *lk = NULL, *scale = NULL, *losses = NULL;
  tyr_tensor *total = NULL, *out = NULL, *gx = NULL, *gw = NULL;
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
  int64_t chunk = g_chunk_bytes / (V > 0 ? V * (int64_t)tyr_dtype_size(x->dtype) : 1);
  if (chunk < 1) chunk = 1;
  if (N > 0 && chunk < N) {
    if (!lce_chunked(s, op, x, w, t1, ignore_index, cap, scale, total, chunk, &gx, &gw)) goto done;
  } else if (N > 0) {
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
    if (cap > 0) {
      if (!ce_softcap(s, be, losses, lk, logits, t1, ignore_index, scale, cap)) goto done;
    } else {
      be->cross_entropy_fused(losses, lk, t1, ignore_index, scale);
      if (lk != logits) be->copy(logits, lk);
    }
    be->reduce(TYR_RED_SUM, total, losses, -1);
  } else {
    be->fill(total, 0.0);
  }
  out = tyr__new(s, op, ldt, x->device, 0, NULL);
  if (!out) goto done;
  be->binary(TYR_BIN_MUL, out, total, scale);
  ok = true;
  tyr_node *n = TYR_RECORD(s, op, out, linear_cross_entropy_backward, x, w);
  if (n && gx) { /* chunked */
    n->i[0] = 1;
    tyr__node_save(n, 0, gx);
    tyr__node_save(n, 1, gw);
  } else if (n && logits) {
    tyr__node_save(n, 0, logits);
  }
done:
  tyr__nn_drop(gx);
  tyr__nn_drop(gw);
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
