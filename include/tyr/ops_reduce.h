/* tyr/ops_reduce.h - reductions over all elements or one dim: sum, mean,
 * max, min, argmax, argmin, var.
 *
 * Shape rule: over all elements the result is a scalar (rank 0); over dim
 * d it is the input's shape without d, or with d of size 1 (keepdim).  A
 * negative dim counts from the end.
 *
 * dtypes: sum, max, min and the arg forms take any dtype (sum of integers
 * is i64); mean and var need a floating dtype.  argmax/argmin give i64
 * indices.  bf16/f16 are reduced in f32 on the CPU.
 *
 * Gradients: max and min send the gradient to the selected element only;
 * when several elements tie, to the first (lowest index), which is also
 * the index argmax/argmin return.  NaN counts as the largest and the
 * smallest value (the first NaN is selected).  var's gradient is
 * 2 (x - mean) / (n - unbiased).  argmax/argmin are not differentiable
 * (their result is an integer tensor).
 *
 * Erased forms: tyr_<op>_e(...) over tyr_<op>_at(site, ...).
 * Typed forms (the dim is a constant; out of range fails the build):
 *   tyr_sum(x), tyr_mean(x), tyr_max(x), tyr_min(x)      -> tyr_T0
 *   tyr_var_all(x, unbiased), tyr_argmax_all(x)           -> tyr_T0
 *   tyr_sum_dim(x, d), tyr_mean_dim, tyr_max_dim, tyr_min_dim,
 *   tyr_argmax(x, d), tyr_argmin(x, d), tyr_var(x, d, unbiased)
 *                                                          -> x without d
 *   tyr_sum_keepdim(x, d), tyr_mean_keepdim, tyr_max_keepdim,
 *   tyr_min_keepdim, tyr_argmax_keepdim, tyr_argmin_keepdim,
 *   tyr_var_keepdim(x, d, unbiased)                        -> x with d = 1 */
#ifndef TYR_OPS_REDUCE_H
#define TYR_OPS_REDUCE_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- erased layer ------------------------------------------------------ */
/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
/* sum / mean of all elements (a scalar), or over dim (x without dim, or
 * with dim of size 1 when keepdim). */
tyr_tensor *tyr_sum_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_mean_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_sum_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_mean_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
/* largest / smallest element (x must not be empty) */
tyr_tensor *tyr_max_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_min_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_max_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_min_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
/* index (i64) of the largest / smallest element along dim */
tyr_tensor *tyr_argmax_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_argmin_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
/* flat (row-major) index (i64 scalar) of the largest / smallest element */
tyr_tensor *tyr_argmax_all_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_argmin_all_at(tyr_site s, tyr_tensor *x);
/* variance: sum((x - mean)^2) / (n - 1) when unbiased, else / n; NaN when
 * that divisor is 0 */
tyr_tensor *tyr_var_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim, bool unbiased);
tyr_tensor *tyr_var_all_at(tyr_site s, tyr_tensor *x, bool unbiased);

#define tyr_sum_e(x) tyr_sum_at(TYR_SITE, (x))
#define tyr_mean_e(x) tyr_mean_at(TYR_SITE, (x))
#define tyr_sum_dim_e(x, d, k) tyr_sum_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_mean_dim_e(x, d, k) tyr_mean_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_max_e(x) tyr_max_at(TYR_SITE, (x))
#define tyr_min_e(x) tyr_min_at(TYR_SITE, (x))
#define tyr_max_dim_e(x, d, k) tyr_max_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_min_dim_e(x, d, k) tyr_min_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_argmax_e(x, d, k) tyr_argmax_at(TYR_SITE, (x), (d), (k))
#define tyr_argmin_e(x, d, k) tyr_argmin_at(TYR_SITE, (x), (d), (k))
#define tyr_argmax_all_e(x) tyr_argmax_all_at(TYR_SITE, (x))
#define tyr_argmin_all_e(x) tyr_argmin_all_at(TYR_SITE, (x))
#define tyr_var_e(x, d, k, u) tyr_var_at(TYR_SITE, (x), (d), (k), (u))
#define tyr_var_all_e(x, u) tyr_var_all_at(TYR_SITE, (x), (u))

/* ---- typed layer: dim must be a constant --------------------------------- */
#define tyr__ct_reduce_dim_msg "tyr_reduce: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_reduce_dim, tyr__ct_reduce_dim_msg);
#define tyr__ct_sum_dim_msg "tyr_sum_dim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_sum_dim, tyr__ct_sum_dim_msg);
#define tyr__ct_sum_keepdim_msg "tyr_sum_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_sum_keepdim, tyr__ct_sum_keepdim_msg);
#define tyr__ct_mean_dim_msg "tyr_mean_dim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_mean_dim, tyr__ct_mean_dim_msg);
#define tyr__ct_mean_keepdim_msg "tyr_mean_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_mean_keepdim, tyr__ct_mean_keepdim_msg);
#define tyr__ct_max_dim_msg "tyr_max_dim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_max_dim, tyr__ct_max_dim_msg);
#define tyr__ct_max_keepdim_msg "tyr_max_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_max_keepdim, tyr__ct_max_keepdim_msg);
#define tyr__ct_min_dim_msg "tyr_min_dim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_min_dim, tyr__ct_min_dim_msg);
#define tyr__ct_min_keepdim_msg "tyr_min_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_min_keepdim, tyr__ct_min_keepdim_msg);
#define tyr__ct_argmax_msg "tyr_argmax: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_argmax, tyr__ct_argmax_msg);
#define tyr__ct_argmax_keepdim_msg                                                                 \
  "tyr_argmax_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_argmax_keepdim, tyr__ct_argmax_keepdim_msg);
#define tyr__ct_argmin_msg "tyr_argmin: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_argmin, tyr__ct_argmin_msg);
#define tyr__ct_argmin_keepdim_msg                                                                 \
  "tyr_argmin_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_argmin_keepdim, tyr__ct_argmin_keepdim_msg);
#define tyr__ct_var_msg "tyr_var: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_var, tyr__ct_var_msg);
#define tyr__ct_var_keepdim_msg "tyr_var_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_var_keepdim, tyr__ct_var_keepdim_msg);

/* result type: a scalar */
#define TYR__TRED_ALL(name, x)                                                                     \
  ((tyr_T0)TYR_TYPED_UNARY("tyr_" #name, tyr_##name##_at(tyr__s, tyr__ea), x))
#define tyr_sum(x) TYR__TRED_ALL(sum, x)
#define tyr_mean(x) TYR__TRED_ALL(mean, x)
#define tyr_max(x) TYR__TRED_ALL(max, x)
#define tyr_min(x) TYR__TRED_ALL(min, x)
#define tyr_argmax_all(x) TYR__TRED_ALL(argmax_all, x)
#define tyr_argmin_all(x) TYR__TRED_ALL(argmin_all, x)
#define tyr_var_all(x, unbiased)                                                                   \
  ((tyr_T0)TYR_TYPED_UNARY("tyr_var_all", tyr_var_all_at(tyr__s, tyr__ea, (unbiased)), x))

/* A reduction over constant dim d of x through fn(site, x, d, keepdim, ...).
 * TYR__TRED_D: the result type is x without d; TYR__TRED_K: x with d = 1. */
#define TYR__TRED_(failfn, opname, x, d, T, call)                                                  \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__NORM(tyr__a, d) >= 0 && TYR__NORM(tyr__a, d) < tyr_rank(tyr__a), failfn);        \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, opname, "x", tyr__a);                                 \
    (T)(tyr__ea ? call : NULL);                                                                    \
  })
#define TYR__TRED_D(failfn, opname, fn, x, d, ...)                                                 \
  TYR__TRED_(failfn, opname, x, d, TYR__TYPE_DROP(tyr__a, TYR__NORM(tyr__a, d)),                   \
             fn(tyr__s, tyr__ea, (d), false, ##__VA_ARGS__))
#define TYR__TRED_K(failfn, opname, fn, x, d, ...)                                                 \
  TYR__TRED_(failfn, opname, x, d, TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, d), 1),             \
             fn(tyr__s, tyr__ea, (d), true, ##__VA_ARGS__))
/* kept for other families */
#define TYR__TRED_DIM(name, x, d)                                                                  \
  TYR__TRED_D(tyr__ct_reduce_dim, "tyr_" #name, tyr_##name##_at, x, d)
#define TYR__TRED_KEEP(name, x, d)                                                                 \
  TYR__TRED_K(tyr__ct_reduce_dim, "tyr_" #name, tyr_##name##_at, x, d)

#define tyr_sum_dim(x, d) TYR__TRED_D(tyr__ct_sum_dim, "tyr_sum_dim", tyr_sum_dim_at, x, d)
#define tyr_sum_keepdim(x, d)                                                                      \
  TYR__TRED_K(tyr__ct_sum_keepdim, "tyr_sum_keepdim", tyr_sum_dim_at, x, d)
#define tyr_mean_dim(x, d) TYR__TRED_D(tyr__ct_mean_dim, "tyr_mean_dim", tyr_mean_dim_at, x, d)
#define tyr_mean_keepdim(x, d)                                                                     \
  TYR__TRED_K(tyr__ct_mean_keepdim, "tyr_mean_keepdim", tyr_mean_dim_at, x, d)
#define tyr_max_dim(x, d) TYR__TRED_D(tyr__ct_max_dim, "tyr_max_dim", tyr_max_dim_at, x, d)
#define tyr_max_keepdim(x, d)                                                                      \
  TYR__TRED_K(tyr__ct_max_keepdim, "tyr_max_keepdim", tyr_max_dim_at, x, d)
#define tyr_min_dim(x, d) TYR__TRED_D(tyr__ct_min_dim, "tyr_min_dim", tyr_min_dim_at, x, d)
#define tyr_min_keepdim(x, d)                                                                      \
  TYR__TRED_K(tyr__ct_min_keepdim, "tyr_min_keepdim", tyr_min_dim_at, x, d)
#define tyr_argmax(x, d) TYR__TRED_D(tyr__ct_argmax, "tyr_argmax", tyr_argmax_at, x, d)
#define tyr_argmax_keepdim(x, d)                                                                   \
  TYR__TRED_K(tyr__ct_argmax_keepdim, "tyr_argmax_keepdim", tyr_argmax_at, x, d)
#define tyr_argmin(x, d) TYR__TRED_D(tyr__ct_argmin, "tyr_argmin", tyr_argmin_at, x, d)
#define tyr_argmin_keepdim(x, d)                                                                   \
  TYR__TRED_K(tyr__ct_argmin_keepdim, "tyr_argmin_keepdim", tyr_argmin_at, x, d)
#define tyr_var(x, d, unbiased) TYR__TRED_D(tyr__ct_var, "tyr_var", tyr_var_at, x, d, (unbiased))
#define tyr_var_keepdim(x, d, unbiased)                                                            \
  TYR__TRED_K(tyr__ct_var_keepdim, "tyr_var_keepdim", tyr_var_at, x, d, (unbiased))

/* ---- logsumexp, any / all, cumsum ------------------------------------------
 * tyr_logsumexp(x, d): log(sum(exp(x), d)), computed stably (the row's
 *   maximum taken out first; a row of -inf gives -inf); float dtypes; the
 *   gradient is softmax(x) along d.  Result: x without d (keepdim: d = 1).
 * tyr_any(x) / tyr_all(x): whether any / every element is non-zero (NaN
 *   counts as non-zero), a bool scalar; an empty tensor gives false / true.
 *   tyr_any_dim / tyr_all_dim reduce one dim: x without d, bool.  Any
 *   dtype; not differentiable.
 * tyr_cumsum(x, d): inclusive prefix sums along d, x's shape; float dtypes
 *   keep theirs (bf16/f16 summed in f32), integers and bool give i64, as
 *   in PyTorch; floats accumulate in double.  The gradient is the suffix
 *   sum of the output's gradient. */
tyr_tensor *tyr_logsumexp_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_any_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_all_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_any_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_all_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_cumsum_at(tyr_site s, tyr_tensor *x, int dim);
#define tyr_logsumexp_e(x, d, k) tyr_logsumexp_at(TYR_SITE, (x), (d), (k))
#define tyr_any_e(x) tyr_any_at(TYR_SITE, (x))
#define tyr_all_e(x) tyr_all_at(TYR_SITE, (x))
#define tyr_any_dim_e(x, d, k) tyr_any_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_all_dim_e(x, d, k) tyr_all_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_cumsum_e(x, d) tyr_cumsum_at(TYR_SITE, (x), (d))
#define tyr__ct_logsumexp_msg "tyr_logsumexp: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_logsumexp, tyr__ct_logsumexp_msg);
#define tyr__ct_logsumexp_keepdim_msg                                                              \
  "tyr_logsumexp_keepdim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_logsumexp_keepdim, tyr__ct_logsumexp_keepdim_msg);
#define tyr__ct_any_dim_msg "tyr_any_dim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_any_dim, tyr__ct_any_dim_msg);
#define tyr__ct_all_dim_msg "tyr_all_dim: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_all_dim, tyr__ct_all_dim_msg);
#define tyr__ct_cumsum_msg "tyr_cumsum: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_cumsum, tyr__ct_cumsum_msg);
#define tyr_logsumexp(x, d) TYR__TRED_D(tyr__ct_logsumexp, "tyr_logsumexp", tyr_logsumexp_at, x, d)
#define tyr_logsumexp_keepdim(x, d)                                                                \
  TYR__TRED_K(tyr__ct_logsumexp_keepdim, "tyr_logsumexp_keepdim", tyr_logsumexp_at, x, d)
#define tyr_any(x) TYR__TRED_ALL(any, x)
#define tyr_all(x) TYR__TRED_ALL(all, x)
#define tyr_any_dim(x, d) TYR__TRED_D(tyr__ct_any_dim, "tyr_any_dim", tyr_any_dim_at, x, d)
#define tyr_all_dim(x, d) TYR__TRED_D(tyr__ct_all_dim, "tyr_all_dim", tyr_all_dim_at, x, d)
/* the result has x's type */
#define tyr_cumsum(x, d)                                                                           \
  TYR__TRED_(tyr__ct_cumsum, "tyr_cumsum", x, d, __typeof__(tyr__a),                               \
             tyr_cumsum_at(tyr__s, tyr__ea, (d)))

#ifdef __cplusplus
}
#endif
#endif
