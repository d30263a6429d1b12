/* Functional ops: softmax and log_softmax over any dim, cross entropy,
 * mean squared error, layer and RMS norm, dropout.  Shape rules and
 * dispatch to the backend kernels; backward through the same kernels. */
#include <math.h>

#include "ops/nn_util.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_nn.h"
#include "tyr/ops_reduce.h"

/* ---- softmax over any dim ----------------------------------------------------
 * The kernels work on the last dim of contiguous tensors; another dim is
 * swapped with the last one by a strided copy, and back. */

/* A view of t with dims d and rank-1 swapped (not recorded). */
static tyr_tensor *swap_last_view(tyr_tensor *t, int d) {
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  int r = t->rank;
  for (int i = 0; i < r; i++) {
    sh[i] = t->shape[i];
    st[i] = t->stride[i];
  }
  sh[d] = t->shape[r - 1];
  st[d] = t->stride[r - 1];
  sh[r - 1] = t->shape[d];
  st[r - 1] = t->stride[d];
  return tyr_view_raw(t, r, sh, st, t->offset);
}

/* A contiguous tensor of dtype dt holding t with dim d swapped with the
 * last (t itself when nothing needs to change). */
static tyr_tensor *to_last(tyr_site s, const char *op, tyr_tensor *t, int d, tyr_dtype dt) {
  if (d == t->rank - 1) return tyr__nn_prep(s, op, t, dt);
  tyr_tensor *v = swap_last_view(t, d);
  if (!v) return NULL;
  tyr_tensor *c = tyr__new(s, op, dt, t->device, v->rank, v->shape);
  if (c) tyr__be(t)->copy(c, v);
  tyr__nn_drop(v);
  return c;
}

/* out = src with dims d and last swapped back (converting dtype). */
static bool from_last(tyr_tensor *out, tyr_tensor *src, int d) {
  if (d == out->rank - 1) {
    tyr__be(out)->copy(out, src);
    return true;
  }
  tyr_tensor *v = swap_last_view(out, d);
  if (!v) return false;
  tyr__be(out)->copy(v, src);
  tyr__nn_drop(v);
  return true;
}

static void softmax_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *y = n->out;
  int dim = (int)n->i[0];
  bool log = n->i[1] != 0;
  tyr_dtype kdt = tyr__nn_kdt(x);
  tyr_tensor *gx = tyr__new_like(s, n->op, x);
  if (!gx) return;
  if (tyr_numel(x) > 0) {
    tyr_tensor *yk = to_last(s, n->op, y, dim, kdt), *gk = to_last(s, n->op, g, dim, kdt);
    tyr_tensor *gxk = yk ? tyr__new(s, n->op, kdt, x->device, yk->rank, yk->shape) : NULL;
    if (!gk || !gxk) return;
    tyr__be(x)->softmax_backward(gxk, yk, gk, log);
    if (!from_last(gx, gxk, dim)) return;
  }
  gin[0] = gx;
}

static tyr_tensor *softmax_op(tyr_site s, const char *op, tyr_tensor *x, int dim, bool log) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device) || !tyr__dim_ok(s, op, x, &dim)) return NULL;
  tyr_dtype kdt = tyr__nn_kdt(x);
  tyr_tensor *out = tyr__new_like(s, op, x);
  if (!out) return NULL;
  if (tyr_numel(x) > 0) {
    tyr_tensor *xk = to_last(s, op, x, dim, kdt);
    bool direct = dim == x->rank - 1 && kdt == x->dtype;
    tyr_tensor *yk = !xk      ? NULL
                     : direct ? out
                              : tyr__new(s, op, kdt, x->device, xk->rank, xk->shape);
    bool ok = yk != NULL;
    if (ok) tyr__be(x)->softmax(yk, xk, log);
    if (ok && yk != out) ok = from_last(out, yk, dim);
    if (yk != out) tyr__nn_drop(yk);
    tyr__nn_release(xk, x);
    if (!ok) {
      tyr__nn_drop(out);
      return NULL;
    }
  }
  tyr_node *n = TYR_RECORD(s, op, out, softmax_backward, x);
  if (n) {
    n->i[0] = dim;
    n->i[1] = log;
  }
  return out;
}

tyr_tensor *tyr_softmax_at(tyr_site s, tyr_tensor *x, int dim) {
  return softmax_op(s, "tyr_softmax", x, dim, false);
}
tyr_tensor *tyr_log_softmax_at(tyr_site s, tyr_tensor *x, int dim) {
  return softmax_op(s, "tyr_log_softmax", x, dim, true);
}

/* ---- cross entropy ------------------------------------------------------------ */
/* A rank-0 tensor of dtype dt holding v, and a [n] view of it (stride 0). */
static tyr_tensor *scalar_row(tyr_site s, const char *op, tyr_dtype dt, tyr_device dev, double v,
                              int64_t n, tyr_tensor **holder) {
  *holder = tyr__new(s, op, dt, dev, 0, NULL);
  if (!*holder) return NULL;
  tyr__be(*holder)->fill(*holder, v);
  int64_t z = 0;
  return tyr_view_raw(*holder, 1, &n, &z, (*holder)->offset);
}

/* Reads a reduction of t (all elements) as a double. */
static double reduce_read(tyr_site s, const char *op, tyr_reduce_op rop, tyr_tensor *t, bool *ok) {
  tyr_dtype dt = (rop == TYR_RED_ARGMAX || rop == TYR_RED_ARGMIN) ? TYR_I64
                 : tyr_dtype_is_float(t->dtype)                   ? TYR_F64
                                                                  : TYR_I64;
  tyr_tensor *r = tyr__new(s, op, dt, t->device, 0, NULL);
  if (!r) {
    *ok = false;
    return 0;
  }
  tyr__be(t)->reduce(rop, r, t, -1);
  double v = tyr__be(t)->read_scalar(r);
  tyr__nn_drop(r);
  return v;
}

/* Checks that every target (i64, [N], contiguous) that is not ign is in
 * [0, V), and counts those targets.  Returns -1 after raising. */
int64_t tyr__ce_check_targets(tyr_site s, const char *op, tyr_tensor *tk, int64_t V, int64_t ign) {
  int64_t N = tk->shape[0];
  if (N == 0) return 0;
  const tyr_backend *be = tyr__be(tk);
  tyr_tensor *ih = NULL, *zh = NULL;
  tyr_tensor *ig = scalar_row(s, op, TYR_I64, tk->device, (double)ign, N, &ih);
  tyr_tensor *zero = scalar_row(s, op, TYR_I64, tk->device, 0, N, &zh);
  tyr_tensor *eq = tyr__new(s, op, TYR_BOOL, tk->device, 1, &N);
  tyr_tensor *kept = tyr__new(s, op, TYR_I64, tk->device, 1, &N);
  int64_t count = -1;
  bool ok = ig && zero && eq && kept;
  if (ok) {
    be->binary(TYR_BIN_EQ, eq, tk, ig);
    be->where(kept, eq, zero, tk); /* ignored targets read as 0 */
    double lo = reduce_read(s, op, TYR_RED_MIN, kept, &ok);
    double hi = reduce_read(s, op, TYR_RED_MAX, kept, &ok);
    double nign = reduce_read(s, op, TYR_RED_SUM, eq, &ok);
    if (ok && (lo < 0 || hi >= (double)V)) {
      double at = reduce_read(s, op, lo < 0 ? TYR_RED_ARGMIN : TYR_RED_ARGMAX, kept, &ok);
      tyr_raise(TYR_ERR_ARG, s, op,
                "target %lld at (flat) position %lld is out of range for %lld classes "
                "(valid: 0..%lld, or ignore_index %lld)",
                (long long)(lo < 0 ? lo : hi), (long long)at, (long long)V, (long long)V - 1,
                (long long)ign);
    } else if (ok) {
      count = N - (int64_t)nign;
    }
  }
  tyr__nn_drop(kept);
  tyr__nn_drop(eq);
  tyr__nn_drop(zero);
  tyr__nn_drop(zh);
  tyr__nn_drop(ig);
  tyr__nn_drop(ih);
  return count;
}

/* logits as a contiguous [N, V] tensor of dtype dt and targets as a
 * contiguous [N] i64 tensor; both are views or copies to drop. */
static bool ce_operands(tyr_site s, const char *op, tyr_tensor *logits, tyr_tensor *targets,
                        tyr_dtype dt, tyr_tensor **l2, tyr_tensor **t1) {
  int64_t V = logits->shape[logits->rank - 1], N = tyr_numel(targets);
  int64_t sh[2] = {N, V};
  tyr_tensor *lk = tyr__nn_prep(s, op, logits, dt);
  tyr_tensor *tk = tyr__nn_prep(s, op, targets, TYR_I64);
  *l2 = lk ? tyr__nn_view(lk, 2, sh) : NULL;
  *t1 = tk ? tyr__nn_view(tk, 1, &N) : NULL;
  tyr__nn_release(lk, logits);
  tyr__nn_release(tk, targets);
  if (*l2 && *t1) return true;
  tyr__nn_drop(*l2);
  tyr__nn_drop(*t1);
  return false;
}

/* 1 / (number of targets that are not ign) as a kdt scalar computed on the
 * device, for a CUDA graph capture (where the count cannot be read back and
 * differs between replays): the same value as the host's 1.0 / count
 * rounded to kdt (a count of 0 gives 1: the sum it scales is 0 then). */
tyr_tensor *tyr__ce_inv_count_dev(tyr_site s, const char *op, tyr_tensor *tk, int64_t ign,
                                  tyr_dtype kdt) {
  int64_t N = tk->shape[0];
  const tyr_backend *be = tyr__be(tk);
  tyr_tensor *ih = NULL;
  tyr_tensor *ig = scalar_row(s, op, TYR_I64, tk->device, (double)ign, N, &ih);
  tyr_tensor *eq = tyr__new(s, op, TYR_BOOL, tk->device, 1, &N);
  tyr_tensor *nign = tyr__new(s, op, TYR_I64, tk->device, 0, NULL);
  tyr_tensor *a = tyr__new(s, op, TYR_F64, tk->device, 0, NULL);
  tyr_tensor *b = tyr__new(s, op, TYR_F64, tk->device, 0, NULL);
  tyr_tensor *out = tyr__new(s, op, kdt, tk->device, 0, NULL);
  if (ig && eq && nign && a && b && out) {
    be->binary(TYR_BIN_EQ, eq, tk, ig);
    be->reduce(TYR_RED_SUM, nign, eq, -1);
    be->copy(a, nign);                                           /* ignored, as f64 */
    be->unary(TYR_UN_RSUB_SCALAR, b, a, (double)N, 0);           /* count = N - ignored */
    be->unary(TYR_UN_CLAMP, a, b, 1.0, (double)(N > 1 ? N : 1)); /* at least 1 */
    be->unary(TYR_UN_RDIV_SCALAR, b, a, 1.0, 0);                 /* 1 / count */
    be->copy(out, b);
  } else {
    tyr__nn_drop(out);
    out = NULL;
  }
  tyr__nn_drop(b);
  tyr__nn_drop(a);
  tyr__nn_drop(nign);
  tyr__nn_drop(eq);
  tyr__nn_drop(ig);
  tyr__nn_drop(ih);
  return out;
}

static void cross_entropy_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *logits = n->in[0], *targets = n->in[1];
  tyr_dtype kdt = tyr__nn_kdt(logits);
  int64_t N = tyr_numel(targets);
  tyr_tensor *glog = tyr__new(s, n->op, kdt, logits->device, logits->rank, logits->shape);
  if (!glog) return;
  if (tyr_numel(logits) > 0) {
    tyr_tensor *l2, *t1;
    if (!ce_operands(s, n->op, logits, targets, kdt, &l2, &t1)) return;
    /* d loss / d loss_n = g / count for every row (0 where ignored) */
    tyr_tensor *gk = tyr__nn_prep(s, n->op, g, kdt);
    tyr_tensor *gs = tyr__new(s, n->op, kdt, logits->device, 0, NULL);
    tyr_tensor *grow = tyr__new(s, n->op, kdt, logits->device, 1, &N);
    if (!gk || !gs || !grow) return;
    const tyr_backend *be = tyr__be(logits);
    if (n->saved[0]) /* 1 / count computed on the device (CUDA graph capture) */
      be->binary(TYR_BIN_MUL, gs, gk, n->saved[0]);
    else
      be->unary(TYR_UN_MUL_SCALAR, gs, gk, n->f[0], 0);
    int64_t z = 0;
    tyr_tensor *ge = tyr_view_raw(gs, 1, &N, &z, gs->offset);
    tyr_tensor *g2 = tyr__nn_view(glog, 2, l2->shape);
    if (!ge || !g2) return;
    be->copy(grow, ge);
    be->cross_entropy_backward(g2, l2, t1, n->i[0], grow);
  }
  gin[0] = tyr__nn_finish(s, n->op, glog, logits->dtype);
}

tyr_tensor *tyr_cross_entropy_at(tyr_site s, tyr_tensor *logits, tyr_tensor *targets,
                                 int64_t ignore_index) {
  const char *op = "tyr_cross_entropy";
  if (!tyr__arg_ok(s, op, "logits", logits) || !tyr__arg_ok(s, op, "targets", targets)) return NULL;
  if (!tyr__is_float(s, op, "logits", logits) || !tyr__is_index(s, op, "targets", targets))
    return NULL;
  if (!tyr__same_device(s, op, logits, targets) || !tyr_backend_get(s, op, logits->device))
    return NULL;
  char a[160], b[160], c[160];
  bool shape_ok = logits->rank >= 1 && targets->rank == logits->rank - 1;
  for (int i = 0; shape_ok && i < targets->rank; i++)
    shape_ok = targets->shape[i] == logits->shape[i];
  if (!shape_ok) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "logits are %s, so targets must be %s, but they are %s",
              TYR__NN_SHAPE(logits, a),
              logits->rank >= 1 ? tyr_shape_str(logits->shape, logits->rank - 1, c, sizeof c)
                                : "[...] (logits need rank >= 1)",
              TYR__NN_SHAPE(targets, b));
    return NULL;
  }
  int64_t V = logits->shape[logits->rank - 1], N = tyr_numel(targets);
  if (V == 0 && N > 0) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "logits %s have no classes", TYR__NN_SHAPE(logits, a));
    return NULL;
  }
  tyr_dtype kdt = tyr__nn_kdt(logits);
  const tyr_backend *be = tyr__be(logits);
  tyr_tensor *l2 = NULL, *t1 = NULL, *losses = NULL, *total = NULL, *outk = NULL, *inv_t = NULL;
  int64_t count = 0;
  /* during a CUDA graph capture the targets cannot be read back: no range
     check (the kernels read nothing out of bounds) and the count is kept on
     the device */
  bool capturing = be->capturing && be->capturing(logits->device);
  if (N > 0) {
    if (!ce_operands(s, op, logits, targets, kdt, &l2, &t1)) return NULL;
    if (capturing) {
      inv_t = tyr__ce_inv_count_dev(s, op, t1, ignore_index, kdt);
      count = inv_t ? N : -1;
    } else {
      count = tyr__ce_check_targets(s, op, t1, V, ignore_index);
    }
    if (count < 0) goto fail;
    losses = tyr__new(s, op, kdt, logits->device, 1, &N);
    if (!losses) goto fail;
    be->cross_entropy(losses, l2, t1, ignore_index);
  }
  total = tyr__new(s, op, kdt, logits->device, 0, NULL);
  outk = tyr__new(s, op, kdt, logits->device, 0, NULL);
  if (!total || !outk) goto fail;
  if (losses)
    be->reduce(TYR_RED_SUM, total, losses, -1);
  else
    be->fill(total, 0.0);
  double inv = count > 0 ? 1.0 / (double)count : 0.0;
  if (inv_t)
    be->binary(TYR_BIN_MUL, outk, total, inv_t);
  else
    be->unary(TYR_UN_MUL_SCALAR, outk, total, inv, 0);
  tyr_tensor *out = tyr__nn_finish(s, op, outk, logits->dtype);
  outk = NULL;
  tyr__nn_drop(total);
  tyr__nn_drop(losses);
  tyr__nn_drop(l2);
  tyr__nn_drop(t1);
  tyr_node *n = TYR_RECORD(s, op, out, cross_entropy_backward, logits, targets);
  if (n) {
    n->i[0] = ignore_index;
    n->f[0] = inv;
    if (inv_t) tyr__node_save(n, 0, inv_t);
  }
  tyr__nn_drop(inv_t);
  return out;
fail:
  tyr__nn_drop(inv_t);
  tyr__nn_drop(outk);
  tyr__nn_drop(total);
  tyr__nn_drop(losses);
  tyr__nn_drop(l2);
  tyr__nn_drop(t1);
  return NULL;
}

/* ---- mean squared error --------------------------------------------------------- */
tyr_tensor *tyr_mse_loss_at(tyr_site s, tyr_tensor *a, tyr_tensor *b) {
  const char *op = "tyr_mse_loss";
  if (!tyr__arg_ok(s, op, "a", a) || !tyr__arg_ok(s, op, "b", b)) return NULL;
  if (!tyr__is_float(s, op, "a", a) || !tyr__same_device(s, op, a, b) ||
      !tyr__same_dtype(s, op, a, b) || !tyr__same_shape(s, op, a, b))
    return NULL;
  tyr_tensor *d = tyr_sub_at(s, a, b);
  tyr_tensor *sq = d ? tyr_square_at(s, d) : NULL;
  tyr_tensor *out = sq ? tyr_mean_at(s, sq) : NULL;
  tyr__nn_drop(sq);
  tyr__nn_drop(d);
  return out;
}

/* ---- layer norm and RMS norm ------------------------------------------------------ */
static bool norm_param_ok(tyr_site s, const char *op, const char *arg, const tyr_tensor *x,
                          const tyr_tensor *p) {
  if (!p) return true;
  if (!tyr__same_device(s, op, x, p) || !tyr__same_dtype(s, op, x, p)) return false;
  int64_t C = x->shape[x->rank - 1];
  if (p->rank == 1 && p->shape[0] == C) return true;
  char a[160], b[160];
  tyr_raise(TYR_ERR_SHAPE, s, op, "x is %s, so %s must be [%lld], but it is %s",
            TYR__NN_SHAPE(x, a), arg, (long long)C, TYR__NN_SHAPE(p, b));
  return false;
}

/* True when the backend's kernels take x in f32 with the output (and its
   gradient) in dt, a 16-bit float the device computes natively (CUDA): the
   result is rounded once as it is stored, and no f32 copy of it exists. */
static bool norm_mixed(const tyr_tensor *x, tyr_dtype dt) {
  return x->dtype == TYR_F32 && (dt == TYR_BF16 || dt == TYR_F16) &&
         !tyr__dtype_needs_f32(x->device, dt);
}

/* The dtype the kernels compute in: x's (f32 for 16-bit x on the CPU), and
   f32 for a 16-bit x whose result has another dtype, so that the result is
   rounded once, to its own dtype, on every device. */
static tyr_dtype norm_kdt(const tyr_tensor *x, tyr_dtype odt) {
  bool half = x->dtype == TYR_BF16 || x->dtype == TYR_F16;
  return half && odt != x->dtype ? TYR_F32 : tyr__nn_kdt(x);
}

/* The gradient arrives in the output's dtype.  When that differs from x's
   (tyr_layer_norm_to), a backend that computes the output's dtype natively
   reads it as it is (the kernels widen each element to f32 as they load
   it); elsewhere it is converted to the kernels' dtype first. */
static void norm_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  const char *op = n->op;
  tyr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  tyr_tensor *mean = n->saved[0], *rstd = n->saved[1];
  tyr_dtype kdt = norm_kdt(x, (tyr_dtype)n->i[0]);
  int64_t C = x->shape[x->rank - 1];
  bool nx = tyr__node_needs(n, 0), nw = w && tyr__node_needs(n, 1), nb = b && tyr__node_needs(n, 2);
  /* x's gradient from its other consumers so far (the residual stream's),
     when the kernel can add to it as it writes: no separate addition */
  tyr_tensor *acc = nx && kdt == x->dtype && tyr_numel(x) > 0 ? tyr__grad_accumulator(n, 0) : NULL;
  tyr_tensor *gx = acc ? acc : nx ? tyr__new(s, op, kdt, x->device, x->rank, x->shape) : NULL;
  /* when this finishes the stream's gradient and the residual add that
     made x converts it for its 16-bit branch, the kernel writes that copy
     too: the addition's backward then reads no f32 gradient */
  int cdt = acc ? tyr__grad_cast_wanted(n, 0) : -1;
  tyr_tensor *gxc = cdt == TYR_BF16 || cdt == TYR_F16
                        ? tyr__new(s, op, (tyr_dtype)cdt, x->device, x->rank, x->shape)
                        : NULL;
  tyr_tensor *gw = nw ? tyr__new(s, op, kdt, x->device, 1, &C) : NULL;
  tyr_tensor *gb = nb ? tyr__new(s, op, kdt, x->device, 1, &C) : NULL;
  if ((nx && !gx) || (nw && !gw) || (nb && !gb)) return;
  if (tyr_numel(x) > 0) {
    tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt);
    tyr_tensor *gk =
        tyr__nn_prep(s, op, g, kdt == x->dtype && norm_mixed(x, g->dtype) ? g->dtype : kdt);
    tyr_tensor *wk = w ? tyr__nn_prep(s, op, w, kdt) : NULL;
    if (!xk || !gk || (w && !wk)) return;
    tyr__be(x)->layer_norm_backward(gx, gw, gb, gk, xk, wk, mean, rstd, acc != NULL, gxc);
  } else {
    if (gw) tyr__be(x)->fill(gw, 0.0);
    if (gb) tyr__be(x)->fill(gb, 0.0);
  }
  if (gxc) tyr__grad_cast_set(n, 0, gxc);
  if (acc)
    tyr__grad_added(n, 0);
  else if (nx)
    gin[0] = tyr__nn_finish(s, op, gx, x->dtype);
  if (nw) gin[1] = tyr__nn_finish(s, op, gw, w->dtype);
  if (nb) gin[2] = tyr__nn_finish(s, op, gb, b->dtype);
}

/* norm_op's odt for "the result in x's dtype" */
#define NORM_X_DTYPE ((tyr_dtype)-1)

/* The norm of x, or with res (a residual: tyr_residual_add_*_norm_to) the
   norm of x + res, the sum returned in *sum.  The sum is made by the norm's
   kernel as it reads the rows when the kernels compute in x's dtype (the
   only case where the sum's rounding and the norm's input are the same as
   an addition's followed by the norm), else by tyr_residual_add first.
   Either way autograd records tyr_residual_add and then the norm, so the
   backward and every gradient are those of the two ops. */
static tyr_tensor *norm_op_res(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *res,
                               tyr_tensor *w, tyr_tensor *b, double eps, bool rms, tyr_dtype odt,
                               tyr_tensor **sum);

static tyr_tensor *norm_op(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                           double eps, bool rms, tyr_dtype odt) {
  return norm_op_res(s, op, x, NULL, w, b, eps, rms, odt, NULL);
}

static tyr_tensor *norm_op_res(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *res,
                               tyr_tensor *w, tyr_tensor *b, double eps, bool rms, tyr_dtype odt,
                               tyr_tensor **sum) {
  if (sum) *sum = NULL;
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  if (res && (!tyr__arg_ok(s, op, "y", res) || !tyr__is_float(s, op, "y", res) ||
              !tyr__same_device(s, op, x, res) || !tyr__same_shape(s, op, x, res)))
    return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  if (x->rank < 1) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "x must have rank >= 1 ([..., C]), but it is []");
    return NULL;
  }
  if (!norm_param_ok(s, op, "w", x, w) || !norm_param_ok(s, op, "b", x, b)) return NULL;
  if (!(eps >= 0) || !isfinite(eps)) {
    tyr_raise(TYR_ERR_ARG, s, op, "eps must be finite and >= 0, got %g", eps);
    return NULL;
  }
  if (odt == NORM_X_DTYPE) odt = x->dtype;
  if (!tyr_dtype_is_float(odt)) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "the result's dtype must be a float dtype, got %s",
              tyr_dtype_name(odt));
    return NULL;
  }
  tyr_dtype kdt = norm_kdt(x, odt);
  if (res && kdt != x->dtype) { /* an addition, then the norm */
    tyr_tensor *xs = tyr_residual_add_at(s, x, res);
    tyr_tensor *y = xs ? norm_op_res(s, op, xs, NULL, w, b, eps, rms, odt, NULL) : NULL;
    if (!y) {
      tyr__nn_drop(xs);
      return NULL;
    }
    *sum = xs;
    return y;
  }
  /* the kernel writes the result directly when it is in the kernels' dtype
     or a 16-bit float they store natively; else into kdt, then converted */
  tyr_dtype ydt = odt == kdt || norm_mixed(x, odt) ? odt : kdt;
  int64_t rows = 1;
  for (int i = 0; i < x->rank - 1; i++) rows *= x->shape[i];
  tyr_tensor *out = tyr__new(s, op, odt, x->device, x->rank, x->shape);
  tyr_tensor *mean = rms ? NULL : tyr__new(s, op, kdt, x->device, 1, &rows);
  tyr_tensor *rstd = tyr__new(s, op, kdt, x->device, 1, &rows);
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt);
  tyr_tensor *wk = tyr__nn_prep(s, op, w, kdt), *bk = tyr__nn_prep(s, op, b, kdt);
  tyr_tensor *yk = ydt == odt ? out : tyr__new(s, op, ydt, x->device, x->rank, x->shape);
  /* the residual as the addition would read it: in x's dtype, or a 16-bit
     float beside an f32 x where the device widens it as it reads */
  tyr_tensor *xs = res ? tyr__new_like(s, op, x) : NULL;
  tyr_tensor *rk = NULL;
  if (res)
    rk = tyr__nn_prep(s, op, res,
                      x->dtype == TYR_F32 && norm_mixed(x, res->dtype) ? res->dtype : x->dtype);
  bool ok =
      out && (rms || mean) && rstd && xk && (!w || wk) && (!b || bk) && yk && (!res || (xs && rk));
  if (ok && tyr_numel(x) > 0) {
    tyr__be(x)->layer_norm(yk, mean, rstd, xk, wk, bk, eps, xs, rk);
    if (yk != out) tyr__be(x)->copy(out, yk);
  }
  if (yk != out) tyr__nn_drop(yk);
  tyr__nn_release(xk, x);
  tyr__nn_release(wk, w);
  tyr__nn_release(bk, b);
  tyr__nn_release(rk, res);
  if (ok && res) {
    tyr__residual_add_record(s, xs, x, res);
    *sum = xs;
    x = xs;
  } else if (res) {
    tyr__nn_drop(xs);
  }
  if (ok) {
    tyr_node *n = TYR_RECORD(s, op, out, norm_backward, x, w, b);
    tyr__node_save(n, 0, mean);
    tyr__node_save(n, 1, rstd);
    if (n) {
      n->f[0] = eps;
      n->i[0] = odt;
    }
  } else {
    tyr__nn_drop(out);
    out = NULL;
  }
  tyr__nn_drop(mean);
  tyr__nn_drop(rstd);
  return out;
}

tyr_tensor *tyr_layer_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b, double eps) {
  return norm_op(s, "tyr_layer_norm", x, w, b, eps, false, NORM_X_DTYPE);
}
tyr_tensor *tyr_rms_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, double eps) {
  return norm_op(s, "tyr_rms_norm", x, w, NULL, eps, true, NORM_X_DTYPE);
}
tyr_tensor *tyr_layer_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                 double eps, tyr_dtype dtype) {
  return norm_op(s, "tyr_layer_norm_to", x, w, b, eps, false, dtype);
}
tyr_tensor *tyr_rms_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, double eps,
                               tyr_dtype dtype) {
  return norm_op(s, "tyr_rms_norm_to", x, w, NULL, eps, true, dtype);
}
tyr_tensor *tyr_residual_add_layer_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *y,
                                              tyr_tensor *w, tyr_tensor *b, double eps,
                                              tyr_dtype dtype, tyr_tensor **sum) {
  const char *op = "tyr_residual_add_layer_norm_to";
  if (!sum) {
    tyr_raise(TYR_ERR_ARG, s, op, "sum (where x + y is returned) is NULL");
    return NULL;
  }
  *sum = NULL;
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "y", y)) return NULL;
  return norm_op_res(s, op, x, y, w, b, eps, false, dtype, sum);
}
tyr_tensor *tyr_residual_add_rms_norm_to_at(tyr_site s, tyr_tensor *x, tyr_tensor *y, tyr_tensor *w,
                                            double eps, tyr_dtype dtype, tyr_tensor **sum) {
  const char *op = "tyr_residual_add_rms_norm_to";
  if (!sum) {
    tyr_raise(TYR_ERR_ARG, s, op, "sum (where x + y is returned) is NULL");
    return NULL;
  }
  *sum = NULL;
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "y", y)) return NULL;
  return norm_op_res(s, op, x, y, w, NULL, eps, true, dtype, sum);
}

/* ---- dropout --------------------------------------------------------------------- */
static void identity_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  (void)n;
  gin[0] = g;
}

static void dropout_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *mask = n->saved[0];
  tyr_tensor *gk = tyr__nn_prep(s, n->op, g, mask->dtype);
  tyr_tensor *gx = tyr__new(s, n->op, mask->dtype, x->device, x->rank, x->shape);
  if (!gk || !gx) return;
  tyr__be(x)->binary(TYR_BIN_MUL, gx, gk, mask);
  gin[0] = tyr__nn_finish(s, n->op, gx, x->dtype);
}

tyr_tensor *tyr_dropout_at(tyr_site s, tyr_tensor *x, double p, bool training) {
  const char *op = "tyr_dropout";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  if (!(p >= 0 && p < 1)) {
    tyr_raise(TYR_ERR_ARG, s, op, "p must be in [0, 1), got %g", p);
    return NULL;
  }
  if (!training || p == 0) {
    tyr_tensor *v = tyr_view_raw(x, x->rank, x->shape, x->stride, x->offset);
    if (v) TYR_RECORD(s, op, v, identity_backward, x);
    return v;
  }
  tyr_dtype kdt = tyr__nn_kdt(x);
  int64_t numel = tyr_numel(x);
  tyr_tensor *mask = tyr__new(s, op, kdt, x->device, x->rank, x->shape);
  tyr_tensor *xk = kdt == x->dtype ? x : tyr__convert(s, op, x, kdt);
  tyr_tensor *yk = tyr__new(s, op, kdt, x->device, x->rank, x->shape);
  if (!mask || !xk || !yk) {
    tyr__nn_drop(mask);
    tyr__nn_release(xk, x);
    tyr__nn_drop(yk);
    return NULL;
  }
  uint64_t seed, counter = tyr_rng_reserve((uint64_t)numel, &seed);
  const tyr_backend *be = tyr__be(x);
  if (numel > 0) {
    be->random(mask, TYR_RAND_BERNOULLI_KEEP, p, 0, seed, counter);
    be->binary(TYR_BIN_MUL, yk, xk, mask);
  }
  tyr__nn_release(xk, x);
  tyr_tensor *out = tyr__nn_finish(s, op, yk, x->dtype);
  tyr_node *n = out ? TYR_RECORD(s, op, out, dropout_backward, x) : NULL;
  tyr__node_save(n, 0, mask);
  tyr__nn_drop(mask);
  return out;
}
