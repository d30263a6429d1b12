/* Reductions: shape rules, dispatch, backward. */
#include <math.h>

#include "ops/common.h"
#include "ops/scratch.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_reduce.h"

#define ALL_DIMS (-100) /* dim argument of the whole-tensor forms */

/* Runs a reduction kernel on a contiguous (and, on the CPU, f32/f64 for
 * half inputs) copy of x; out has the keepdim shape (rank 0 for dim < 0). */
static tyr_tensor *reduce_keep(tyr_site s, const char *op, tyr_reduce_op rop, tyr_tensor *x,
                               int dim, tyr_dtype out_dt) {
  int64_t sh[TYR_MAX_RANK];
  int rank = dim < 0 ? 0 : x->rank;
  for (int i = 0; i < rank; i++) sh[i] = i == dim ? 1 : x->shape[i];
  tyr_tensor *xc = tyr__contig(s, op, x);
  if (!xc) return NULL;
  tyr_tensor *xk = xc;
  if (tyr__needs_f32(x)) xk = tyr__convert(s, op, xc, TYR_F32);
  tyr_tensor *out = xk ? tyr__new(s, op, out_dt, x->device, rank, sh) : NULL;
  if (out) {
    if (tyr__needs_f32(out)) {
      tyr_tensor *of = tyr__new(s, op, TYR_F32, x->device, rank, sh);
      if (of) {
        tyr__be(x)->reduce(rop, of, xk, dim);
        tyr__be(x)->copy(out, of);
        tyr_tensor_free(of);
      } else {
        tyr_tensor_free(out);
        out = NULL;
      }
    } else {
      tyr__be(x)->reduce(rop, out, xk, dim);
    }
  }
  if (xk && xk != xc) tyr_tensor_free(xk);
  if (xc != x) tyr_tensor_free(xc);
  return out;
}

/* Drops dim from a fresh contiguous keepdim result (a size-1 dim: the
 * layout of the remaining dims does not change). */
static void drop_kept_dim(tyr_tensor *out, int dim) {
  for (int i = dim; i < out->rank - 1; i++) {
    out->shape[i] = out->shape[i + 1];
    out->stride[i] = out->stride[i + 1];
  }
  out->rank--;
}

/* Checks x and normalises dim (ALL_DIMS stays); false after raising. */
static bool reduce_args(tyr_site s, const char *op, tyr_tensor *x, int *dim) {
  if (!tyr__arg_ok(s, op, "x", x)) return false;
  if (!tyr_backend_get(s, op, x->device)) return false;
  if (*dim != ALL_DIMS && !tyr__dim_ok(s, op, x, dim)) return false;
  return true;
}

/* The shape of x with dim (if any) of size 1. */
static void keep_shape(const tyr_tensor *x, int dim, int64_t *sh) {
  for (int i = 0; i < x->rank; i++) sh[i] = i == dim ? 1 : x->shape[i];
}

/* g (the gradient of a result reduced over dim, or over everything when
 * dim < 0) broadcast back to x's shape.  A view. */
static tyr_tensor *grad_to_input(tyr_site s, tyr_tensor *g, const tyr_tensor *x, int dim,
                                 bool keepdim) {
  tyr_tensor *gk = g;
  if (dim >= 0 && !keepdim) { /* re-insert the reduced dim */
    int64_t sh[TYR_MAX_RANK];
    keep_shape(x, dim, sh);
    gk = tyr_reshape_at(s, g, x->rank, sh);
  }
  return tyr_expand_at(s, gk, x->rank, x->shape);
}

/* ---- sum, mean -------------------------------------------------------------- */
/* gradient of sum/mean: g broadcast back to x's shape (times 1/n for mean) */
static void sum_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0];
  double scale = n->f[0];
  tyr_tensor *e = grad_to_input(s, g, x, (int)n->i[0], n->i[1]);
  gin[0] = scale == 1.0 ? tyr_clone_at(s, e) : tyr_mul_scalar_at(s, e, scale);
}

static tyr_tensor *sum_like(tyr_site s, const char *op, tyr_reduce_op rop, tyr_tensor *x, int dim,
                            bool keepdim) {
  if (!reduce_args(s, op, x, &dim)) return NULL;
  if (dim == ALL_DIMS) dim = -1;
  if (rop == TYR_RED_MEAN && !tyr__is_float(s, op, "x", x)) return NULL;
  tyr_dtype odt = tyr_dtype_is_float(x->dtype) ? x->dtype : TYR_I64;
  tyr_tensor *out = reduce_keep(s, op, rop, x, dim, odt);
  if (!out) return NULL;
  if (dim >= 0 && !keepdim) drop_kept_dim(out, dim);
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
  return sum_like(s, "tyr_sum", TYR_RED_SUM, x, ALL_DIMS, false);
}
tyr_tensor *tyr_mean_at(tyr_site s, tyr_tensor *x) {
  return sum_like(s, "tyr_mean", TYR_RED_MEAN, x, ALL_DIMS, false);
}
tyr_tensor *tyr_sum_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return sum_like(s, "tyr_sum_dim", TYR_RED_SUM, x, dim, keepdim);
}
tyr_tensor *tyr_mean_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return sum_like(s, "tyr_mean_dim", TYR_RED_MEAN, x, dim, keepdim);
}

/* ---- max, min, argmax, argmin ----------------------------------------------- */
/* An empty selection has no answer. */
static bool not_empty(tyr_site s, const char *op, const tyr_tensor *x, int dim) {
  int64_t n = dim < 0 ? tyr_numel(x) : x->shape[dim];
  if (n > 0) return true;
  char b[160];
  if (dim < 0)
    tyr_raise(TYR_ERR_SHAPE, s, op, "x %s has no elements",
              tyr_shape_str(x->shape, x->rank, b, 160));
  else
    tyr_raise(TYR_ERR_SHAPE, s, op, "dim %d of x %s is empty", dim,
              tyr_shape_str(x->shape, x->rank, b, 160));
  return false;
}

/* The argmax/argmin over dim (or all, dim < 0) as an i64 tensor of the
 * keepdim shape (rank 0 for all). */
static tyr_tensor *arg_keep(tyr_site s, const char *op, bool want_max, tyr_tensor *x, int dim) {
  return reduce_keep(s, op, want_max ? TYR_RED_ARGMAX : TYR_RED_ARGMIN, x, dim, TYR_I64);
}

/* A bool tensor of x's shape, true at the element that max/min over dim
 * (all when dim < 0) selected.  Made of ordinary ops. */
static tyr_tensor *selected_mask(tyr_site s, const char *op, bool want_max, tyr_tensor *x,
                                 int dim) {
  tyr_tensor *idx = arg_keep(s, op, want_max, x, dim);
  if (!idx) return NULL;
  int64_t n = dim < 0 ? tyr_numel(x) : x->shape[dim];
  tyr_tensor *pos = tyr_arange_at(s, TYR_I64, x->device, 0, (double)n, 1);
  if (!pos) return NULL;
  int64_t sh[TYR_MAX_RANK];
  if (dim < 0) {
    pos = tyr_reshape_at(s, pos, x->rank, x->shape); /* flat index of every element */
  } else {
    for (int i = 0; i < x->rank; i++) sh[i] = i == dim ? n : 1;
    pos = tyr_expand_at(s, tyr_reshape_at(s, pos, x->rank, sh), x->rank, x->shape);
  }
  tyr_tensor *ie = tyr_expand_at(s, idx, x->rank, x->shape);
  return pos && ie ? tyr_eq_at(s, pos, ie) : NULL;
}

/* gradient of max/min: g at the selected element, 0 elsewhere */
static void select_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0];
  int dim = (int)n->i[0];
  tyr_tensor *mask = selected_mask(s, n->op, n->i[2], x, dim);
  tyr_tensor *ge = grad_to_input(s, g, x, dim, n->i[1]);
  tyr_tensor *zero = tyr_zeros_at(s, g->dtype, g->device, 0, NULL);
  tyr_tensor *ze = zero ? tyr_expand_at(s, zero, x->rank, x->shape) : NULL;
  if (mask && ge && ze) gin[0] = tyr_where_at(s, mask, ge, ze);
}

static tyr_tensor *select_reduce(tyr_site s, const char *op, bool want_max, tyr_tensor *x, int dim,
                                 bool keepdim) {
  if (!reduce_args(s, op, x, &dim)) return NULL;
  if (dim == ALL_DIMS) dim = -1;
  if (!not_empty(s, op, x, dim)) return NULL;
  tyr_tensor *out = reduce_keep(s, op, want_max ? TYR_RED_MAX : TYR_RED_MIN, x, dim, x->dtype);
  if (!out) return NULL;
  if (dim >= 0 && !keepdim) drop_kept_dim(out, dim);
  if (tyr_dtype_is_float(x->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, select_backward, x);
    if (n) {
      n->i[0] = dim;
      n->i[1] = keepdim;
      n->i[2] = want_max;
    }
  }
  return out;
}

tyr_tensor *tyr_max_at(tyr_site s, tyr_tensor *x) {
  return select_reduce(s, "tyr_max", true, x, ALL_DIMS, false);
}
tyr_tensor *tyr_min_at(tyr_site s, tyr_tensor *x) {
  return select_reduce(s, "tyr_min", false, x, ALL_DIMS, false);
}
tyr_tensor *tyr_max_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return select_reduce(s, "tyr_max_dim", true, x, dim, keepdim);
}
tyr_tensor *tyr_min_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return select_reduce(s, "tyr_min_dim", false, x, dim, keepdim);
}

static tyr_tensor *arg_reduce(tyr_site s, const char *op, bool want_max, tyr_tensor *x, int dim,
                              bool keepdim) {
  if (!reduce_args(s, op, x, &dim)) return NULL;
  if (dim == ALL_DIMS) dim = -1;
  if (!not_empty(s, op, x, dim)) return NULL;
  tyr_tensor *out = arg_keep(s, op, want_max, x, dim);
  if (out && dim >= 0 && !keepdim) drop_kept_dim(out, dim);
  return out; /* integer indices: nothing to record */
}

tyr_tensor *tyr_argmax_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return arg_reduce(s, "tyr_argmax", true, x, dim, keepdim);
}
tyr_tensor *tyr_argmin_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return arg_reduce(s, "tyr_argmin", false, x, dim, keepdim);
}
tyr_tensor *tyr_argmax_all_at(tyr_site s, tyr_tensor *x) {
  return arg_reduce(s, "tyr_argmax_all", true, x, ALL_DIMS, false);
}
tyr_tensor *tyr_argmin_all_at(tyr_site s, tyr_tensor *x) {
  return arg_reduce(s, "tyr_argmin_all", false, x, ALL_DIMS, false);
}

/* ---- var -------------------------------------------------------------------- */
/* x - mean(x) over dim (all when dim < 0), as x's shape. */
static tyr_tensor *centered(tyr_site s, tyr_tensor *x, int dim) {
  tyr_tensor *m = dim < 0 ? tyr_mean_at(s, x) : tyr_mean_dim_at(s, x, dim, true);
  tyr_tensor *me = m ? tyr_expand_at(s, m, x->rank, x->shape) : NULL;
  return me ? tyr_sub_at(s, x, me) : NULL;
}

/* 1 / (n - unbiased), NaN when that is 0 */
static double var_scale(const tyr_tensor *x, int dim, bool unbiased) {
  int64_t n = dim < 0 ? tyr_numel(x) : x->shape[dim];
  int64_t d = n - (unbiased ? 1 : 0);
  return d > 0 ? 1.0 / (double)d : NAN;
}

/* gradient of var: g * 2 (x - mean) / (n - unbiased) */
static void var_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0];
  int dim = (int)n->i[0];
  tyr_tensor *d = centered(s, x, dim);
  tyr_tensor *ge = grad_to_input(s, g, x, dim, n->i[1]);
  if (d && ge) gin[0] = tyr_mul_at(s, ge, tyr_mul_scalar_at(s, d, 2.0 * n->f[0]));
}

static tyr_tensor *var_impl(tyr_site s, const char *op, tyr_tensor *x, int dim, bool keepdim,
                            bool unbiased) {
  if (!reduce_args(s, op, x, &dim)) return NULL;
  if (!tyr__is_float(s, op, "x", x)) return NULL;
  if (dim == ALL_DIMS) dim = -1;
  double scale = var_scale(x, dim, unbiased);
  tyr__scratch sc;
  if (!tyr__scratch_begin(&sc)) return NULL;
  /* two passes (mean, then squared deviations), in f32 for half inputs */
  tyr_tensor *xf = tyr__needs_f32(x) ? tyr_to_dtype_at(s, x, TYR_F32) : x;
  tyr_tensor *d = xf ? centered(s, xf, dim) : NULL;
  tyr_tensor *sq = d ? tyr_mul_at(s, d, d) : NULL;
  tyr_tensor *sum = !sq ? NULL : dim < 0 ? tyr_sum_at(s, sq) : tyr_sum_dim_at(s, sq, dim, keepdim);
  tyr_tensor *v = sum ? tyr_mul_scalar_at(s, sum, scale) : NULL;
  if (v && v->dtype != x->dtype) v = tyr_to_dtype_at(s, v, x->dtype);
  tyr_tensor *out = tyr__scratch_end(&sc, v);
  if (!out) return NULL;
  tyr_node *n = TYR_RECORD(s, op, out, var_backward, x);
  if (n) {
    n->i[0] = dim;
    n->i[1] = keepdim;
    n->f[0] = scale;
  }
  return out;
}

tyr_tensor *tyr_var_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim, bool unbiased) {
  return var_impl(s, "tyr_var", x, dim, keepdim, unbiased);
}
tyr_tensor *tyr_var_all_at(tyr_site s, tyr_tensor *x, bool unbiased) {
  return var_impl(s, "tyr_var_all", x, ALL_DIMS, false, unbiased);
}
