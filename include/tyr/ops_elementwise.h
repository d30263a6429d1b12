/* tyr/ops_elementwise.h - elementwise ops: arithmetic, activations,
 * comparisons, where/masked_fill, and the explicitly broadcasting _row and
 * _col forms.  Shape rule: operands have equal shapes (no implicit
 * broadcasting); the result has that shape.  Comparisons give bool.
 *
 * Erased forms: tyr_<op>_e(...) (macros adding the call site) over
 * tyr_<op>_at(site, ...).  Typed forms: tyr_<op>(...). */
#ifndef TYR_OPS_ELEMENTWISE_H
#define TYR_OPS_ELEMENTWISE_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- erased layer ------------------------------------------------------ */
/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
/* Unary ops: the result has x's shape and dtype. */
#define TYR__DECL_UNARY(name) tyr_tensor *tyr_##name##_at(tyr_site s, tyr_tensor *x);
TYR__DECL_UNARY(neg)
TYR__DECL_UNARY(exp)
TYR__DECL_UNARY(log)
TYR__DECL_UNARY(sqrt)
TYR__DECL_UNARY(rsqrt)
TYR__DECL_UNARY(abs)
TYR__DECL_UNARY(tanh)
TYR__DECL_UNARY(sigmoid)
TYR__DECL_UNARY(relu)
TYR__DECL_UNARY(relu2) /* relu(x)^2 */
TYR__DECL_UNARY(gelu)  /* exact, with erf */
TYR__DECL_UNARY(gelu_tanh)
TYR__DECL_UNARY(silu)
TYR__DECL_UNARY(square)
TYR__DECL_UNARY(reciprocal)
TYR__DECL_UNARY(sign) /* not differentiable */
TYR__DECL_UNARY(sin)
TYR__DECL_UNARY(cos)
TYR__DECL_UNARY(softplus) /* log(1 + exp(x)), x itself above 20 (PyTorch's beta 1, threshold 20) */
#undef TYR__DECL_UNARY
/* x > 0 ? x : negative_slope * x (PyTorch's default slope is 0.01) */
tyr_tensor *tyr_leaky_relu_at(tyr_site s, tyr_tensor *x, double negative_slope);
/* Ops of x and C numbers: the result has x's shape and dtype.  clamp: each
 * element limited to [lo, hi]. */
tyr_tensor *tyr_softcap_at(tyr_site s, tyr_tensor *x, double cap); /* cap * tanh(x / cap) */
tyr_tensor *tyr_clamp_at(tyr_site s, tyr_tensor *x, double lo, double hi);
tyr_tensor *tyr_pow_scalar_at(tyr_site s, tyr_tensor *x, double p); /* x ^ p */
tyr_tensor *tyr_add_scalar_at(tyr_site s, tyr_tensor *x, double c);
tyr_tensor *tyr_sub_scalar_at(tyr_site s, tyr_tensor *x, double c);  /* x - c */
tyr_tensor *tyr_rsub_scalar_at(tyr_site s, tyr_tensor *x, double c); /* c - x */
tyr_tensor *tyr_mul_scalar_at(tyr_site s, tyr_tensor *x, double c);
tyr_tensor *tyr_div_scalar_at(tyr_site s, tyr_tensor *x, double c);  /* x / c */
tyr_tensor *tyr_rdiv_scalar_at(tyr_site s, tyr_tensor *x, double c); /* c / x */

/* Binary ops of two tensors of one shape, dtype and device: the result has
 * that shape (comparisons: bool). */
#define TYR__DECL_BINARY(name)                                                                     \
  tyr_tensor *tyr_##name##_at(tyr_site s, tyr_tensor *a, tyr_tensor *b);
TYR__DECL_BINARY(add)
TYR__DECL_BINARY(sub)
TYR__DECL_BINARY(mul)
TYR__DECL_BINARY(div)
TYR__DECL_BINARY(pow)
TYR__DECL_BINARY(maximum)
TYR__DECL_BINARY(minimum)
TYR__DECL_BINARY(eq)
TYR__DECL_BINARY(ne)
TYR__DECL_BINARY(lt)
TYR__DECL_BINARY(le)
TYR__DECL_BINARY(gt)
TYR__DECL_BINARY(ge)
#undef TYR__DECL_BINARY
/* out = cond ? a : b; cond bool or u8, all of one shape */
tyr_tensor *tyr_where_at(tyr_site s, tyr_tensor *cond, tyr_tensor *a, tyr_tensor *b);
/* out = mask ? value : x */
tyr_tensor *tyr_masked_fill_at(tyr_site s, tyr_tensor *x, tyr_tensor *mask, double value);
/* x + y in x's dtype, y converted to it: the residual add of mixed
 * precision (x the f32 residual stream, y a block's bf16 or f16 output).
 * x and y are float tensors of one shape and device.  The value is that of
 * tyr_add(x, tyr_to_dtype(y, x's dtype)); for an f32 x and a 16-bit y on a
 * device that computes y's dtype natively (CUDA) the kernel widens y as it
 * reads it, so no converted copy of y is made or kept.  The gradient of x is the incoming one; y's
 * is that converted to y's dtype. */
tyr_tensor *tyr_residual_add_at(tyr_site s, tyr_tensor *x, tyr_tensor *y);

/* Explicit broadcasting.  _row: x is [..., C], row is [C], row is repeated
 * over every leading index.  _col: x is [N, ..., C] (rank >= 2), col is
 * x's shape without its last dim, repeated along the last dim. */
tyr_tensor *tyr_add_row_at(tyr_site s, tyr_tensor *x, tyr_tensor *row);
tyr_tensor *tyr_sub_row_at(tyr_site s, tyr_tensor *x, tyr_tensor *row);
tyr_tensor *tyr_mul_row_at(tyr_site s, tyr_tensor *x, tyr_tensor *row);
tyr_tensor *tyr_div_row_at(tyr_site s, tyr_tensor *x, tyr_tensor *row);
tyr_tensor *tyr_add_col_at(tyr_site s, tyr_tensor *x, tyr_tensor *col);
tyr_tensor *tyr_sub_col_at(tyr_site s, tyr_tensor *x, tyr_tensor *col);
tyr_tensor *tyr_mul_col_at(tyr_site s, tyr_tensor *x, tyr_tensor *col);
tyr_tensor *tyr_div_col_at(tyr_site s, tyr_tensor *x, tyr_tensor *col);
/* Broadcast x to shape: each dim of x equals the target's or is 1, and x
 * may have fewer dims (aligned at the end).  A view (stride 0); its
 * backward sums over the broadcast dims. */
tyr_tensor *tyr_expand_at(tyr_site s, tyr_tensor *x, int rank, const int64_t *shape);

#define tyr_neg_e(x) tyr_neg_at(TYR_SITE, (x))
#define tyr_exp_e(x) tyr_exp_at(TYR_SITE, (x))
#define tyr_log_e(x) tyr_log_at(TYR_SITE, (x))
#define tyr_sqrt_e(x) tyr_sqrt_at(TYR_SITE, (x))
#define tyr_rsqrt_e(x) tyr_rsqrt_at(TYR_SITE, (x))
#define tyr_abs_e(x) tyr_abs_at(TYR_SITE, (x))
#define tyr_tanh_e(x) tyr_tanh_at(TYR_SITE, (x))
#define tyr_sigmoid_e(x) tyr_sigmoid_at(TYR_SITE, (x))
#define tyr_relu_e(x) tyr_relu_at(TYR_SITE, (x))
#define tyr_relu2_e(x) tyr_relu2_at(TYR_SITE, (x))
#define tyr_gelu_e(x) tyr_gelu_at(TYR_SITE, (x))
#define tyr_gelu_tanh_e(x) tyr_gelu_tanh_at(TYR_SITE, (x))
#define tyr_silu_e(x) tyr_silu_at(TYR_SITE, (x))
#define tyr_square_e(x) tyr_square_at(TYR_SITE, (x))
#define tyr_reciprocal_e(x) tyr_reciprocal_at(TYR_SITE, (x))
#define tyr_sign_e(x) tyr_sign_at(TYR_SITE, (x))
#define tyr_sin_e(x) tyr_sin_at(TYR_SITE, (x))
#define tyr_cos_e(x) tyr_cos_at(TYR_SITE, (x))
#define tyr_softplus_e(x) tyr_softplus_at(TYR_SITE, (x))
#define tyr_leaky_relu_e(x, slope) tyr_leaky_relu_at(TYR_SITE, (x), (slope))
#define tyr_softcap_e(x, c) tyr_softcap_at(TYR_SITE, (x), (c))
#define tyr_clamp_e(x, lo, hi) tyr_clamp_at(TYR_SITE, (x), (lo), (hi))
#define tyr_pow_scalar_e(x, p) tyr_pow_scalar_at(TYR_SITE, (x), (p))
#define tyr_add_scalar_e(x, c) tyr_add_scalar_at(TYR_SITE, (x), (c))
#define tyr_sub_scalar_e(x, c) tyr_sub_scalar_at(TYR_SITE, (x), (c))
#define tyr_rsub_scalar_e(x, c) tyr_rsub_scalar_at(TYR_SITE, (x), (c))
#define tyr_mul_scalar_e(x, c) tyr_mul_scalar_at(TYR_SITE, (x), (c))
#define tyr_div_scalar_e(x, c) tyr_div_scalar_at(TYR_SITE, (x), (c))
#define tyr_rdiv_scalar_e(x, c) tyr_rdiv_scalar_at(TYR_SITE, (x), (c))
#define tyr_add_e(a, b) tyr_add_at(TYR_SITE, (a), (b))
#define tyr_residual_add_e(x, y) tyr_residual_add_at(TYR_SITE, (x), (y))
#define tyr_sub_e(a, b) tyr_sub_at(TYR_SITE, (a), (b))
#define tyr_mul_e(a, b) tyr_mul_at(TYR_SITE, (a), (b))
#define tyr_div_e(a, b) tyr_div_at(TYR_SITE, (a), (b))
#define tyr_pow_e(a, b) tyr_pow_at(TYR_SITE, (a), (b))
#define tyr_maximum_e(a, b) tyr_maximum_at(TYR_SITE, (a), (b))
#define tyr_minimum_e(a, b) tyr_minimum_at(TYR_SITE, (a), (b))
#define tyr_eq_e(a, b) tyr_eq_at(TYR_SITE, (a), (b))
#define tyr_ne_e(a, b) tyr_ne_at(TYR_SITE, (a), (b))
#define tyr_lt_e(a, b) tyr_lt_at(TYR_SITE, (a), (b))
#define tyr_le_e(a, b) tyr_le_at(TYR_SITE, (a), (b))
#define tyr_gt_e(a, b) tyr_gt_at(TYR_SITE, (a), (b))
#define tyr_ge_e(a, b) tyr_ge_at(TYR_SITE, (a), (b))
#define tyr_where_e(c, a, b) tyr_where_at(TYR_SITE, (c), (a), (b))
#define tyr_masked_fill_e(x, m, v) tyr_masked_fill_at(TYR_SITE, (x), (m), (v))
#define tyr_add_row_e(x, r) tyr_add_row_at(TYR_SITE, (x), (r))
#define tyr_sub_row_e(x, r) tyr_sub_row_at(TYR_SITE, (x), (r))
#define tyr_mul_row_e(x, r) tyr_mul_row_at(TYR_SITE, (x), (r))
#define tyr_div_row_e(x, r) tyr_div_row_at(TYR_SITE, (x), (r))
#define tyr_add_col_e(x, c) tyr_add_col_at(TYR_SITE, (x), (c))
#define tyr_sub_col_e(x, c) tyr_sub_col_at(TYR_SITE, (x), (c))
#define tyr_mul_col_e(x, c) tyr_mul_col_at(TYR_SITE, (x), (c))
#define tyr_div_col_e(x, c) tyr_div_col_at(TYR_SITE, (x), (c))
#define tyr_expand_e(x, ...)                                                                       \
  tyr_expand_at(TYR_SITE, (x), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

/* ---- typed layer -------------------------------------------------------- */
#define TYR__TU(name, x) TYR_TYPED_UNARY("tyr_" #name, tyr_##name##_at(tyr__s, tyr__ea), x)
#define tyr_neg(x) TYR__TU(neg, x)
#define tyr_exp(x) TYR__TU(exp, x)
#define tyr_log(x) TYR__TU(log, x)
#define tyr_sqrt(x) TYR__TU(sqrt, x)
#define tyr_rsqrt(x) TYR__TU(rsqrt, x)
#define tyr_abs(x) TYR__TU(abs, x)
#define tyr_tanh(x) TYR__TU(tanh, x)
#define tyr_sigmoid(x) TYR__TU(sigmoid, x)
#define tyr_relu(x) TYR__TU(relu, x)
#define tyr_relu2(x) TYR__TU(relu2, x)
#define tyr_gelu(x) TYR__TU(gelu, x)
#define tyr_gelu_tanh(x) TYR__TU(gelu_tanh, x)
#define tyr_silu(x) TYR__TU(silu, x)
#define tyr_square(x) TYR__TU(square, x)
#define tyr_reciprocal(x) TYR__TU(reciprocal, x)
#define tyr_sign(x) TYR__TU(sign, x)
#define tyr_sin(x) TYR__TU(sin, x)
#define tyr_cos(x) TYR__TU(cos, x)
#define tyr_softplus(x) TYR__TU(softplus, x)
#define TYR__TU1(name, x, c) TYR_TYPED_UNARY("tyr_" #name, tyr_##name##_at(tyr__s, tyr__ea, (c)), x)
#define tyr_softcap(x, c) TYR__TU1(softcap, x, c)
#define tyr_leaky_relu(x, slope) TYR__TU1(leaky_relu, x, slope)
#define tyr_pow_scalar(x, c) TYR__TU1(pow_scalar, x, c)
#define tyr_add_scalar(x, c) TYR__TU1(add_scalar, x, c)
#define tyr_sub_scalar(x, c) TYR__TU1(sub_scalar, x, c)
#define tyr_rsub_scalar(x, c) TYR__TU1(rsub_scalar, x, c)
#define tyr_mul_scalar(x, c) TYR__TU1(mul_scalar, x, c)
#define tyr_div_scalar(x, c) TYR__TU1(div_scalar, x, c)
#define tyr_rdiv_scalar(x, c) TYR__TU1(rdiv_scalar, x, c)
#define tyr_clamp(x, lo, hi)                                                                       \
  TYR_TYPED_UNARY("tyr_clamp", tyr_clamp_at(tyr__s, tyr__ea, (lo), (hi)), x)

#define tyr__ct_add_msg                                                                            \
  "tyr_add: operands have different shapes (no implicit broadcasting: use "                        \
  "tyr_expand or tyr_add_row/tyr_add_col)"
TYR_CT_ERROR(tyr__ct_add, tyr__ct_add_msg);
#define tyr__ct_sub_msg                                                                            \
  "tyr_sub: operands have different shapes (no implicit broadcasting: use "                        \
  "tyr_expand or tyr_sub_row/tyr_sub_col)"
TYR_CT_ERROR(tyr__ct_sub, tyr__ct_sub_msg);
#define tyr__ct_mul_msg                                                                            \
  "tyr_mul: operands have different shapes (no implicit broadcasting: use "                        \
  "tyr_expand or tyr_mul_row/tyr_mul_col)"
TYR_CT_ERROR(tyr__ct_mul, tyr__ct_mul_msg);
#define tyr__ct_div_msg                                                                            \
  "tyr_div: operands have different shapes (no implicit broadcasting: use "                        \
  "tyr_expand or tyr_div_row/tyr_div_col)"
TYR_CT_ERROR(tyr__ct_div, tyr__ct_div_msg);
#define tyr__ct_residual_add_msg "tyr_residual_add: x and y have different shapes"
TYR_CT_ERROR(tyr__ct_residual_add, tyr__ct_residual_add_msg);
#define tyr__ct_pow_msg "tyr_pow: operands have different shapes"
TYR_CT_ERROR(tyr__ct_pow, tyr__ct_pow_msg);
#define tyr__ct_maximum_msg "tyr_maximum: operands have different shapes"
TYR_CT_ERROR(tyr__ct_maximum, tyr__ct_maximum_msg);
#define tyr__ct_minimum_msg "tyr_minimum: operands have different shapes"
TYR_CT_ERROR(tyr__ct_minimum, tyr__ct_minimum_msg);
#define tyr__ct_eq_msg "tyr_eq: operands of the comparison have different shapes"
TYR_CT_ERROR(tyr__ct_eq, tyr__ct_eq_msg);
#define tyr__ct_ne_msg "tyr_ne: operands of the comparison have different shapes"
TYR_CT_ERROR(tyr__ct_ne, tyr__ct_ne_msg);
#define tyr__ct_lt_msg "tyr_lt: operands of the comparison have different shapes"
TYR_CT_ERROR(tyr__ct_lt, tyr__ct_lt_msg);
#define tyr__ct_le_msg "tyr_le: operands of the comparison have different shapes"
TYR_CT_ERROR(tyr__ct_le, tyr__ct_le_msg);
#define tyr__ct_gt_msg "tyr_gt: operands of the comparison have different shapes"
TYR_CT_ERROR(tyr__ct_gt, tyr__ct_gt_msg);
#define tyr__ct_ge_msg "tyr_ge: operands of the comparison have different shapes"
TYR_CT_ERROR(tyr__ct_ge, tyr__ct_ge_msg);
#define tyr__ct_where_msg "tyr_where: condition and operands have different shapes"
TYR_CT_ERROR(tyr__ct_where, tyr__ct_where_msg);
#define tyr__ct_masked_fill_msg "tyr_masked_fill: mask and tensor have different shapes"
TYR_CT_ERROR(tyr__ct_masked_fill, tyr__ct_masked_fill_msg);
#define tyr__ct_add_row_msg                                                                        \
  "tyr_add_row: the length of the row differs from the last dim of x (x is [..., C], row must be " \
  "[C])"
TYR_CT_ERROR(tyr__ct_add_row, tyr__ct_add_row_msg);
#define tyr__ct_sub_row_msg                                                                        \
  "tyr_sub_row: the length of the row differs from the last dim of x (x is [..., C], row must be " \
  "[C])"
TYR_CT_ERROR(tyr__ct_sub_row, tyr__ct_sub_row_msg);
#define tyr__ct_mul_row_msg                                                                        \
  "tyr_mul_row: the length of the row differs from the last dim of x (x is [..., C], row must be " \
  "[C])"
TYR_CT_ERROR(tyr__ct_mul_row, tyr__ct_mul_row_msg);
#define tyr__ct_div_row_msg                                                                        \
  "tyr_div_row: the length of the row differs from the last dim of x (x is [..., C], row must be " \
  "[C])"
TYR_CT_ERROR(tyr__ct_div_row, tyr__ct_div_row_msg);
#define tyr__ct_add_col_msg                                                                        \
  "tyr_add_col: col must be the shape of x without its last dim (x is [..., C])"
TYR_CT_ERROR(tyr__ct_add_col, tyr__ct_add_col_msg);
#define tyr__ct_sub_col_msg                                                                        \
  "tyr_sub_col: col must be the shape of x without its last dim (x is [..., C])"
TYR_CT_ERROR(tyr__ct_sub_col, tyr__ct_sub_col_msg);
#define tyr__ct_mul_col_msg                                                                        \
  "tyr_mul_col: col must be the shape of x without its last dim (x is [..., C])"
TYR_CT_ERROR(tyr__ct_mul_col, tyr__ct_mul_col_msg);
#define tyr__ct_div_col_msg                                                                        \
  "tyr_div_col: col must be the shape of x without its last dim (x is [..., C])"
TYR_CT_ERROR(tyr__ct_div_col, tyr__ct_div_col_msg);
#define tyr__ct_expand_msg "tyr_expand: a dim of x is neither 1 nor the dim of the target"
TYR_CT_ERROR(tyr__ct_expand, tyr__ct_expand_msg);

#define TYR__TB(name, x, y)                                                                        \
  TYR_TYPED_SAME2("tyr_" #name, tyr__ct_##name, tyr_##name##_at(tyr__s, tyr__ea, tyr__eb), x, y)
#define tyr_add(a, b) TYR__TB(add, a, b)
#define tyr_sub(a, b) TYR__TB(sub, a, b)
#define tyr_mul(a, b) TYR__TB(mul, a, b)
#define tyr_div(a, b) TYR__TB(div, a, b)
#define tyr_pow(a, b) TYR__TB(pow, a, b)
#define tyr_maximum(a, b) TYR__TB(maximum, a, b)
#define tyr_minimum(a, b) TYR__TB(minimum, a, b)
/* comparisons: same type as the operands, but the tensor is bool */
#define TYR__TC(name, x, y)                                                                        \
  TYR_TYPED_SAME2("tyr_" #name, tyr__ct_##name, tyr_##name##_at(tyr__s, tyr__ea, tyr__eb), x, y)
#define tyr_eq(a, b) TYR__TC(eq, a, b)
#define tyr_ne(a, b) TYR__TC(ne, a, b)
#define tyr_lt(a, b) TYR__TC(lt, a, b)
#define tyr_le(a, b) TYR__TC(le, a, b)
#define tyr_gt(a, b) TYR__TC(gt, a, b)
#define tyr_ge(a, b) TYR__TC(ge, a, b)
/* x and y of one shape; the result has x's type */
#define tyr_residual_add(x, y)                                                                     \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__b = (y);                                                                      \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, tyr__ct_residual_add);                                     \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_residual_add", "x", tyr__a);                     \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_residual_add", "y", tyr__b) : NULL;    \
    TYR_RESULT(__typeof__(tyr__a), tyr__s, "tyr_residual_add",                                     \
               tyr__eb ? tyr_residual_add_at(tyr__s, tyr__ea, tyr__eb) : NULL);                    \
  })
#define tyr_masked_fill(x, mask, v)                                                                \
  TYR_TYPED_SAME2("tyr_masked_fill", tyr__ct_masked_fill,                                          \
                  tyr_masked_fill_at(tyr__s, tyr__ea, tyr__eb, (v)), x, mask)
#define tyr_where(cond, a, b)                                                                      \
  ({                                                                                               \
    __auto_type tyr__c = (cond);                                                                   \
    __auto_type tyr__x = (a);                                                                      \
    __auto_type tyr__y = (b);                                                                      \
    TYR_RULE_SAME_SHAPE(tyr__c, tyr__x, tyr__ct_where);                                            \
    TYR_RULE_SAME_SHAPE(tyr__x, tyr__y, tyr__ct_where);                                            \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ec = TYR__CLAIM(tyr__s, "tyr_where", "cond", tyr__c);                         \
    tyr_tensor *tyr__ex = tyr__ec ? TYR__CLAIM(tyr__s, "tyr_where", "a", tyr__x) : NULL;           \
    tyr_tensor *tyr__ey = tyr__ex ? TYR__CLAIM(tyr__s, "tyr_where", "b", tyr__y) : NULL;           \
    (__typeof__(tyr__x))(tyr__ey ? tyr_result_at(tyr__s, "tyr_where",                              \
                                                 tyr_where_at(tyr__s, tyr__ec, tyr__ex, tyr__ey))  \
                                 : NULL);                                                          \
  })

/* x: [..., C], row: [C] */
#define TYR__TROW(name, x, r)                                                                      \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__b = (r);                                                                      \
    TYR_RULE(tyr_rank(tyr__b) == 1, tyr__ct_##name);                                               \
    TYR_RULE(TYR__D0(tyr__b) == TYR__DIMN(tyr__a, -1), tyr__ct_##name);                            \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__a);                           \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_" #name, "row", tyr__b) : NULL;        \
    (__typeof__(tyr__a))(tyr__eb ? tyr_result_at(tyr__s, "tyr_" #name,                             \
                                                 tyr_##name##_at(tyr__s, tyr__ea, tyr__eb))        \
                                 : NULL);                                                          \
  })
#define tyr_add_row(x, r) TYR__TROW(add_row, x, r)
#define tyr_sub_row(x, r) TYR__TROW(sub_row, x, r)
#define tyr_mul_row(x, r) TYR__TROW(mul_row, x, r)
#define tyr_div_row(x, r) TYR__TROW(div_row, x, r)
/* x: [d0, ..., dk, C], col: [d0, ..., dk] */
#define TYR__TCOL(name, x, c)                                                                      \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__b = (c);                                                                      \
    TYR_RULE(tyr_rank(tyr__b) == tyr_rank(tyr__a) - 1, tyr__ct_##name);                            \
    TYR_RULE(tyr_rank(tyr__a) < 2 || TYR__D0(tyr__b) == TYR__D0(tyr__a), tyr__ct_##name);          \
    TYR_RULE(tyr_rank(tyr__a) < 3 || TYR__D1(tyr__b) == TYR__D1(tyr__a), tyr__ct_##name);          \
    TYR_RULE(tyr_rank(tyr__a) < 4 || TYR__D2(tyr__b) == TYR__D2(tyr__a), tyr__ct_##name);          \
    TYR_RULE(tyr_rank(tyr__a) < 5 || TYR__D3(tyr__b) == TYR__D3(tyr__a), tyr__ct_##name);          \
    TYR_RULE(tyr_rank(tyr__a) < 6 || TYR__D4(tyr__b) == TYR__D4(tyr__a), tyr__ct_##name);          \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__a);                           \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_" #name, "col", tyr__b) : NULL;        \
    (__typeof__(tyr__a))(tyr__eb ? tyr_result_at(tyr__s, "tyr_" #name,                             \
                                                 tyr_##name##_at(tyr__s, tyr__ea, tyr__eb))        \
                                 : NULL);                                                          \
  })
#define tyr_add_col(x, c) TYR__TCOL(add_col, x, c)
#define tyr_sub_col(x, c) TYR__TCOL(sub_col, x, c)
#define tyr_mul_col(x, c) TYR__TCOL(mul_col, x, c)
#define tyr_div_col(x, c) TYR__TCOL(div_col, x, c)

/* tyr_expand(x, dims...): x's dims (aligned at the end) must be 1 or equal */
#define TYR__EXPOK(x, n, j, d)                                                                     \
  TYR_RULE((j) < (n)-tyr_rank(x) || TYR__DIMN(x, (j) - ((n)-tyr_rank(x))) == 1 ||                  \
               TYR__DIMN(x, (j) - ((n)-tyr_rank(x))) == (d),                                       \
           tyr__ct_expand)
#define tyr_expand(x, ...)                                                                         \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(tyr_rank(tyr__a) <= TYR__NARGS(__VA_ARGS__), tyr__ct_expand);                         \
    TYR__EXPCHK_(tyr__a, TYR__NARGS(__VA_ARGS__), TYR__PAD6(__VA_ARGS__));                         \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_expand", "x", tyr__a);                           \
    (tyr_T(__VA_ARGS__))(                                                                          \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_expand",                                              \
                                tyr_expand_at(tyr__s, tyr__ea, TYR__NARGS(__VA_ARGS__),            \
                                              (const int64_t[]){__VA_ARGS__}))                     \
                : NULL);                                                                           \
  })
#define TYR__EXPCHK_(...) TYR__EXPCHK(__VA_ARGS__)
#define TYR__EXPCHK(x, n, d0, d1, d2, d3, d4, d5)                                                  \
  do {                                                                                             \
    if (0 < (n)) TYR__EXPOK(x, n, 0, d0);                                                          \
    if (1 < (n)) TYR__EXPOK(x, n, 1, d1);                                                          \
    if (2 < (n)) TYR__EXPOK(x, n, 2, d2);                                                          \
    if (3 < (n)) TYR__EXPOK(x, n, 3, d3);                                                          \
    if (4 < (n)) TYR__EXPOK(x, n, 4, d4);                                                          \
    if (5 < (n)) TYR__EXPOK(x, n, 5, d5);                                                          \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif
