/* Reductions: shape rules, dispatch, backward. */
#include "ops/common.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_reduce.h"

/* Runs a reduction kernel on a contiguous (and, on the CPU, f32/f64 for
 * half inputs) copy of x; out has the keepdim shape. */
static tyr_tensor *reduce_keep(tyr_site s, const char *op, tyr_reduce_op rop, tyr_tensor *x,
                               int dim, tyr_dtype out_dt) {
  int64_t sh[TYR_MAX_RANK];
  int rank = dim < 0 ? 0 : x->rank;
  for (int i = 0; i < rank; i++) sh[i] = i == dim ? 1 : x->shape[i];
  tyr_tensor *xc = tyr__contig(s, op, x);
  if (!xc) return NULL;
  tyr_tensor *xk = xc;
  if (tyr__needs_f32(x)) xk = tyr__convert(s, op, xc, TYR_F32);
  tyr_tensor *out = tyr__new(s, op, out_dt, x->device, rank, sh);
  if (out && xk) {
    if (tyr__needs_f32(out)) {
      tyr_tensor *of = tyr__new(s, op, TYR_F32, x->device, rank, sh);
      tyr__be(x)->reduce(rop, of, xk, dim);
      tyr__be(x)->copy(out, of);
      tyr_tensor_free(of);
    } else {
      tyr__be(x)->reduce(rop, out, xk, dim);
    }
  }
  if (xk != xc) tyr_tensor_free(xk);
  if (xc != x) tyr_tensor_free(xc);
  return out;
}

/* gradient of sum/mean: g broadcast back to x's shape (times 1/n for mean) */
static void sum_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0];
  int dim = (int)n->i[0];
  double scale = n->f[0];
  tyr_tensor *gk = g;
  if (dim >= 0 && !n->i[1]) { /* re-insert the reduced dim */
    int64_t sh[TYR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) sh[i] = i == dim ? 1 : x->shape[i];
    gk = tyr_reshape_at(s, g, x->rank, sh);
  }
  tyr_tensor *e = tyr_expand_at(s, gk, x->rank, x->shape);
  tyr_tensor *c = scale == 1.0 ? tyr_clone_at(s, e) : tyr_mul_scalar_at(s, e, scale);
  gin[0] = c;
}

static tyr_tensor *sum_like(tyr_site s, const char *op, tyr_reduce_op rop, tyr_tensor *x, int dim,
                            bool keepdim) {
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  if (dim != -100 && !tyr__dim_ok(s, op, x, &dim)) return NULL;
  if (dim == -100) dim = -1;
  if (rop == TYR_RED_MEAN && !tyr__is_float(s, op, "x", x)) return NULL;
  tyr_dtype odt = tyr_dtype_is_float(x->dtype) ? x->dtype : TYR_I64;
  tyr_tensor *out = reduce_keep(s, op, rop, x, dim, odt);
  if (!out) return NULL;
  if (dim >= 0 && !keepdim) { /* drop the kept dim: a reshape of a contiguous tensor */
    int64_t sh[TYR_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
      if (i != dim) sh[r++] = x->shape[i];
    out->rank = r;
    for (int i = 0; i < r; i++) out->shape[i] = sh[i];
    int64_t st = 1;
    for (int i = r - 1; i >= 0; i--) {
      out->stride[i] = st;
      st *= sh[i];
    }
  }
  if (tyr_dtype_is_float(x->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, sum_backward, x);
    if (n) {
      n->i[0] = dim;
      n->i[1] = keepdim;
      int64_t cnt = dim < 0 ? tyr_numel(x) : x->shape[dim];
      n->f[0] = rop == TYR_RED_MEAN ? 1.0 / (double)(cnt ? cnt : 1) : 1.0;
    }
  }
  return out;
}

tyr_tensor *tyr_sum_at(tyr_site s, tyr_tensor *x) {
  return sum_like(s, "tyr_sum", TYR_RED_SUM, x, -100, false);
}
tyr_tensor *tyr_mean_at(tyr_site s, tyr_tensor *x) {
  return sum_like(s, "tyr_mean", TYR_RED_MEAN, x, -100, false);
}
tyr_tensor *tyr_sum_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return sum_like(s, "tyr_sum_dim", TYR_RED_SUM, x, dim, keepdim);
}
tyr_tensor *tyr_mean_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return sum_like(s, "tyr_mean_dim", TYR_RED_MEAN, x, dim, keepdim);
}
