/* Every elementwise op with matching static, dynamic and mixed shapes. */
#include <tyr/tyr.h>
enum { B = 4, T = 16, C = 8 };
tyr_tensor *f(int n) {
  tyr_T(B, T, C) x = tyr_randn(B, T, C);
  tyr_T(C) bias = tyr_zeros(C);
  tyr_T(B, T) col = tyr_ones(B, T);
  tyr_T(B, T, C) y = tyr_add(tyr_mul(x, x), tyr_sub(x, tyr_div(x, x)));
  y = tyr_add_row(tyr_gelu(tyr_relu2(tyr_silu(y))), bias);
  y = tyr_mul_col(tyr_sub_row(tyr_div_row(tyr_mul_row(y, bias), bias), bias), col);
  y = tyr_add_col(tyr_div_col(tyr_sub_col(y, col), col), col);
  y = tyr_neg(tyr_exp(tyr_log(tyr_sqrt(tyr_rsqrt(tyr_abs(tyr_tanh(tyr_sigmoid(y))))))));
  y = tyr_gelu_tanh(tyr_relu(tyr_square(tyr_reciprocal(tyr_sign(y)))));
  y = tyr_softcap(tyr_clamp(tyr_pow_scalar(y, 2.0), -1, 1), 15.0);
  y = tyr_add_scalar(tyr_sub_scalar(tyr_mul_scalar(tyr_div_scalar(y, 2), 3), 1), 2);
  y = tyr_rsub_scalar(tyr_rdiv_scalar(y, 1), 1);
  y = tyr_pow(tyr_maximum(y, x), tyr_minimum(y, x));
  y = tyr_where(tyr_lt(y, x), y, tyr_masked_fill(x, tyr_ge(x, y), 0.0));
  (void)tyr_eq(x, y), (void)tyr_ne(x, y), (void)tyr_le(x, y), (void)tyr_gt(x, y);
  tyr_T(B, T, C) e = tyr_expand(tyr_zeros(1, C), B, T, C);
  /* dynamic and static dims in one expression, four deep */
  tyr_T(n, T, C) d = tyr_randn(n, T, C);
  tyr_T(n, T, C) z = tyr_add(tyr_mul(tyr_relu(tyr_add_row(d, bias)), d), d);
  /* the residual add of mixed precision: shapes as tyr_add, the result x's type */
  tyr_T(B, T, C) r = tyr_residual_add(x, tyr_to_dtype(y, TYR_BF16));
  tyr_T(n, T, C) rd = tyr_residual_add(d, tyr_to_dtype(z, TYR_BF16));
  (void)e, (void)r, (void)rd;
  return tyr_erase(tyr_add(y, tyr_add(x, e))) ? tyr_erase(z) : NULL;
}
