/* logsumexp, any/all and cumsum (tyr/ops_reduce.h).  logsumexp and any/all
 * are compositions of existing ops (run in a scope of their own, only the
 * result reaching the caller's scope); cumsum has its own kernel
 * (src/cpu/scan.c, src/cuda/scan.cu) and a backward made of ops. */
#include <math.h>

#include "ops/common.h"
#include "ops/nn_util.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_reduce.h"

static tyr_tensor *leave(tyr_tensor *r) {
  if (r) tyr_keep_e(r);
  tyr_scope_end();
  if (r) tyr__scope_track(r);
  return r;
}

/* ---- logsumexp ------------------------------------------------------------ */
tyr_tensor *tyr_logsumexp_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  const char *op = "tyr_logsumexp";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x) ||
      !tyr__dim_ok(s, op, x, &dim) || !tyr_backend_get(s, op, x->device))
    return NULL;
  if (x->shape[dim] == 0) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "dim %d is empty", dim);
    return NULL;
  }
  tyr_scope_begin();
  /* m = max over dim (a constant for the gradient), replaced by 0 where it
   * is not finite (all -inf rows give -inf, as in PyTorch); then
   * log(sum(exp(x - m))) + m, whose gradient is softmax(x) */
  tyr_tensor *m;
  {
    bool prev = tyr_set_grad_enabled(false);
    tyr_tensor *mx = tyr_max_dim_at(s, x, dim, true);
    tyr_tensor *inf = tyr_full_at(s, x->dtype, x->device, mx->rank, mx->shape, INFINITY);
    m = tyr_where_at(s, tyr_lt_at(s, tyr_abs_at(s, mx), inf), mx,
                     tyr_zeros_at(s, x->dtype, x->device, mx->rank, mx->shape));
    tyr_set_grad_enabled(prev);
  }
  tyr_tensor *me = tyr_expand_at(s, m, x->rank, x->shape);
  tyr_tensor *lse = tyr_add_at(
      s, tyr_log_at(s, tyr_sum_dim_at(s, tyr_exp_at(s, tyr_sub_at(s, x, me)), dim, true)), m);
  return leave(keepdim ? lse : tyr_squeeze_at(s, lse, dim));
}

/* ---- any / all ------------------------------------------------------------ */
/* x != 0 as f32 ones and zeros */
static tyr_tensor *nonzero_f32(tyr_site s, tyr_tensor *x) {
  tyr_tensor *z = tyr_zeros_at(s, x->dtype, x->device, x->rank, x->shape);
  return tyr_to_dtype_at(s, tyr_ne_at(s, x, z), TYR_F32);
}

static tyr_tensor *any_all(tyr_site s, const char *op, tyr_tensor *x, int dim, bool keepdim,
                           bool all, bool over_dim) {
  if (!tyr__arg_ok(s, op, "x", x) || (over_dim && !tyr__dim_ok(s, op, x, &dim)) ||
      !tyr_backend_get(s, op, x->device))
    return NULL;
  int64_t shape[TYR_MAX_RANK];
  int rank = 0;
  if (over_dim)
    for (int i = 0; i < x->rank; i++)
      if (i != dim || keepdim) shape[rank++] = i == dim ? 1 : x->shape[i];
  bool prev = tyr_set_grad_enabled(false);
  tyr_scope_begin();
  tyr_tensor *r;
  if (over_dim ? x->shape[dim] == 0 : tyr_numel(x) == 0) {
    /* an empty reduction: any is false, all is true */
    r = tyr_full_at(s, TYR_BOOL, x->device, rank, shape, all ? 1 : 0);
  } else {
    tyr_tensor *nz = nonzero_f32(s, x);
    tyr_tensor *red =
        over_dim ? (all ? tyr_min_dim_at(s, nz, dim, keepdim) : tyr_max_dim_at(s, nz, dim, keepdim))
                 : (all ? tyr_min_at(s, nz) : tyr_max_at(s, nz));
    r = tyr_to_dtype_at(s, red, TYR_BOOL);
  }
  r = leave(r);
  tyr_set_grad_enabled(prev);
  return r;
}

tyr_tensor *tyr_any_at(tyr_site s, tyr_tensor *x) {
  return any_all(s, "tyr_any", x, 0, false, false, false);
}
tyr_tensor *tyr_all_at(tyr_site s, tyr_tensor *x) {
  return any_all(s, "tyr_all", x, 0, false, true, false);
}
tyr_tensor *tyr_any_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return any_all(s, "tyr_any_dim", x, dim, keepdim, false, true);
}
tyr_tensor *tyr_all_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim) {
  return any_all(s, "tyr_all_dim", x, dim, keepdim, true, true);
}

/* ---- cumsum --------------------------------------------------------------- */
/* The gradient of an inclusive prefix sum is the suffix sum of g:
 * total - cumsum(g) + g. */
static void cumsum_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  int dim = (int)n->i[0];
  tyr_tensor *c = tyr_cumsum_at(n->site, g, dim);
  tyr_tensor *tot =
      tyr_expand_at(n->site, tyr_sum_dim_at(n->site, g, dim, true), g->rank, g->shape);
  gin[0] = tyr_add_at(n->site, tyr_sub_at(n->site, tot, c), g);
}

tyr_tensor *tyr_cumsum_at(tyr_site s, tyr_tensor *x, int dim) {
  const char *op = "tyr_cumsum";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__dim_ok(s, op, x, &dim)) return NULL;
  const tyr_backend *be = tyr_backend_get(s, op, x->device);
  if (!be || !tyr__nn_has(s, op, x, (const void *)be->cumsum, "cumsum")) return NULL;
  bool is_f = tyr_dtype_is_float(x->dtype);
  /* kernels take f32, f64 and i64: bf16/f16 are summed in f32, the other
   * integer dtypes (and bool) in i64, which is also the result's dtype, as
   * in PyTorch */
  tyr_dtype kdt = x->dtype == TYR_F64 ? TYR_F64 : is_f ? TYR_F32 : TYR_I64;
  tyr_dtype odt = is_f ? x->dtype : TYR_I64;
  tyr_tensor *xk = x->dtype == kdt ? tyr__contig(s, op, x) : tyr__convert(s, op, x, kdt);
  if (!xk) return NULL;
  tyr_tensor *ok = tyr__new(s, op, kdt, x->device, x->rank, x->shape);
  if (!ok) {
    tyr__nn_release(xk, x);
    return NULL;
  }
  if (tyr_numel(x) > 0) be->cumsum(ok, xk, dim);
  tyr__nn_release(xk, x);
  tyr_tensor *out = tyr__nn_finish(s, op, ok, odt);
  if (!out) return NULL;
  if (is_f) {
    tyr_node *n = TYR_RECORD(s, op, out, cumsum_backward, x);
    if (n) n->i[0] = dim;
  }
  return out;
}
