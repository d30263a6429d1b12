/* Every typed macro evaluates each handle argument exactly once, with
 * constant dims and with run-time dims (where __typeof__ and sizeof of a
 * variably modified operand would evaluate it again).  Built with gcc and
 * with clang by tests/typed/run.sh; prints the failures and exits 1. */
#include <stdio.h>
#include <tyr/tyr.h>

static int calls;
static int failures;
/* The argument, counted: each evaluation adds one. */
#define C(x) (calls++, (x))
/* expr must have evaluated exactly n counted arguments. */
#define ONCE(n, expr)                                                                              \
  do {                                                                                             \
    calls = 0;                                                                                     \
    (void)(expr);                                                                                  \
    if (calls != (n)) {                                                                            \
      fprintf(stderr, "%s:%d: %s: %d evaluations of the counted arguments, expected %d\n",         \
              __FILE__, __LINE__, #expr, calls, (n));                                              \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* The same body, instantiated with constant dims (enum) and run-time dims
 * (function parameters). */
#define BODY(B, T, D, V)                                                                           \
  TYR_SCOPE;                                                                                       \
  tyr_T(B, T, D) x = tyr_randn(B, T, D);                                                           \
  tyr_T(B, T, D) y = tyr_randn(B, T, D);                                                           \
  tyr_T(D) row = tyr_randn(D);                                                                     \
  tyr_T(B, T) col = tyr_randn(B, T);                                                               \
  tyr_T(V, D) w = tyr_randn(V, D);                                                                 \
  tyr_T(B, T) idx = tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, B, T);                                   \
  tyr_T(B, T, D) mask = tyr_lt(x, y);                                                              \
  /* lifetimes and autograd */                                                                     \
  ONCE(1, tyr_free(tyr_keep(C(tyr_randn(B, T, D)))));                                              \
  ONCE(1, tyr_retain(C(x)));                                                                       \
  tyr_tensor_release(tyr_erase(x));                                                                \
  tyr_T(V, D) wg = tyr_requires_grad(C(tyr_randn(V, D)));                                          \
  ONCE(1, tyr_requires_grad(C(wg)));                                                               \
  ONCE(1, tyr_detach(C(wg)));                                                                      \
  ONCE(1, tyr_backward(C(tyr_sum(tyr_linear(x, wg)))));                                            \
  ONCE(1, tyr_grad(C(wg)));                                                                        \
  ONCE(1, tyr_zero_grad(C(wg)));                                                                   \
  ONCE(1, tyr_erase(C(x)));                                                                        \
  ONCE(1, tyr_item(C(tyr_sum(x))));                                                                \
  ONCE(1, tyr_get(C(x), 0, 1, 2));                                                                 \
  ONCE(1, tyr_set(C(tyr_clone(x)), 1.0, 0, 1, 2));                                                 \
  ONCE(1, tyr_as(C(x), B, T, D));                                                                  \
  ONCE(1, tyr_cast(C(tyr_erase(x)), B, T, D));                                                     \
  ONCE(1, tyr_free(C(tyr_clone(x))));                                                              \
  /* creation and conversion */                                                                    \
  ONCE(1, tyr_clone(C(x)));                                                                        \
  ONCE(1, tyr_to_dtype(C(x), TYR_F64));                                                            \
  ONCE(1, tyr_to_device(C(x), TYR_DEVICE_CPU));                                                    \
  ONCE(2, tyr_copy(C(tyr_clone(x)), C(y)));                                                        \
  ONCE(1, tyr_fill(C(tyr_clone(x)), 2.0));                                                         \
  /* elementwise */                                                                                \
  ONCE(1, tyr_relu(C(x)));                                                                         \
  ONCE(1, tyr_exp(C(x)));                                                                          \
  ONCE(1, tyr_clamp(C(x), -1, 1));                                                                 \
  ONCE(1, tyr_mul_scalar(C(x), 2));                                                                \
  ONCE(2, tyr_add(C(x), C(y)));                                                                    \
  ONCE(2, tyr_mul(C(x), C(y)));                                                                    \
  ONCE(2, tyr_lt(C(x), C(y)));                                                                     \
  ONCE(2, tyr_eq(C(x), C(y)));                                                                     \
  ONCE(3, tyr_where(C(mask), C(x), C(y)));                                                         \
  ONCE(2, tyr_masked_fill(C(x), C(mask), 0.0));                                                    \
  ONCE(2, tyr_add_row(C(x), C(row)));                                                              \
  ONCE(2, tyr_sub_row(C(x), C(row)));                                                              \
  ONCE(2, tyr_mul_col(C(x), C(col)));                                                              \
  ONCE(2, tyr_div_col(C(x), C(col)));                                                              \
  ONCE(1, tyr_expand(C(row), B, T, D));                                                            \
  /* reductions */                                                                                 \
  ONCE(1, tyr_sum(C(x)));                                                                          \
  ONCE(1, tyr_mean(C(x)));                                                                         \
  ONCE(1, tyr_sum_dim(C(x), -1));                                                                  \
  ONCE(1, tyr_mean_keepdim(C(x), 1));                                                              \
  ONCE(1, tyr_max_dim(C(x), 0));                                                                   \
  ONCE(1, tyr_argmax(C(x), -1));                                                                   \
  ONCE(1, tyr_var(C(x), -1, true));                                                                \
  /* layout */                                                                                     \
  ONCE(1, tyr_reshape(C(x), B *T, D));                                                             \
  ONCE(1, tyr_transpose(C(x), 0, 1));                                                              \
  ONCE(1, tyr_permute(C(x), 2, 0, 1));                                                             \
  ONCE(1, tyr_contiguous(C(x)));                                                                   \
  ONCE(1, tyr_unsqueeze(C(x), 0));                                                                 \
  ONCE(1, tyr_squeeze(C(tyr_unsqueeze(x, 0)), 0));                                                 \
  ONCE(1, tyr_flatten(C(x), 0, 1));                                                                \
  ONCE(1, tyr_narrow(C(x), -1, 0, 1));                                                             \
  ONCE(2, tyr_cat2(C(x), C(y), 1));                                                                \
  ONCE(3, tyr_cat3(C(x), C(y), C(x), 0));                                                          \
  ONCE(2, tyr_stack2(C(x), C(y), 0));                                                              \
  ONCE(3, tyr_stack3(C(x), C(y), C(x), 0));                                                        \
  ONCE(1, tyr_tril(C(x), 0));                                                                      \
  ONCE(1, tyr_triu(C(x), 0));                                                                      \
  {                                                                                                \
    tyr_T(B, T, D) lo, hi;                                                                         \
    tyr_T(B, T, 2 * D) xx = tyr_cat2(x, x, -1);                                                    \
    ONCE(1, tyr_chunk2(C(xx), -1, &lo, &hi));                                                      \
  }                                                                                                \
  /* linalg and index */                                                                           \
  ONCE(2, tyr_matmul(C(x), C(tyr_transpose(w, 0, 1))));                                            \
  ONCE(2, tyr_linear(C(x), C(w)));                                                                 \
  ONCE(3, tyr_linear_bias(C(x), C(w), C(tyr_zeros(V))));                                           \
  ONCE(2, tyr_embedding(C(w), C(idx)));                                                            \
  ONCE(2, tyr_index_select(C(w), 0, C(tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, 3))));                 \
  ONCE(2, tyr_gather(C(x), -1, C(tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, B, T, 1))));                \
  ONCE(3, tyr_scatter_add(C(x), -1, C(tyr_zeros_to(TYR_I64, TYR_DEVICE_CPU, B, T, 1)),             \
                          C(tyr_ones(B, T, 1))));                                                  \
  /* nn */                                                                                         \
  ONCE(1, tyr_softmax(C(x), -1));                                                                  \
  ONCE(1, tyr_log_softmax(C(x), -1));                                                              \
  ONCE(2, tyr_cross_entropy(C(tyr_linear(x, w)), C(idx), -1));                                     \
  ONCE(3, tyr_linear_cross_entropy(C(x), C(w), C(idx), -1));                                       \
  ONCE(2, tyr_mse_loss(C(x), C(y)));                                                               \
  ONCE(3, tyr_layer_norm(C(x), C(row), C(row), 1e-5));                                             \
  ONCE(1, tyr_layer_norm(C(x), NULL, NULL, 1e-5));                                                 \
  ONCE(2, tyr_rms_norm(C(x), C(row), 1e-5));                                                       \
  ONCE(3, tyr_layer_norm_to(C(x), C(row), C(row), 1e-5, TYR_BF16));                                \
  ONCE(2, tyr_rms_norm_to(C(x), C(row), 1e-5, TYR_BF16));                                          \
  ONCE(2, tyr_residual_add(C(x), C(y)));                                                           \
  ONCE(1, tyr_dropout(C(x), 0.5, true));                                                           \
  /* elementwise, reductions, sorting and losses added with the conveniences */                    \
  ONCE(1, tyr_sin(C(x)));                                                                          \
  ONCE(1, tyr_cos(C(x)));                                                                          \
  ONCE(1, tyr_softplus(C(x)));                                                                     \
  ONCE(1, tyr_leaky_relu(C(x), 0.01));                                                             \
  ONCE(1, tyr_cumsum(C(x), 1));                                                                    \
  ONCE(1, tyr_logsumexp(C(x), -1));                                                                \
  ONCE(1, tyr_logsumexp_keepdim(C(x), -1));                                                        \
  ONCE(1, tyr_any(C(mask)));                                                                       \
  ONCE(1, tyr_all(C(mask)));                                                                       \
  ONCE(1, tyr_any_dim(C(mask), 0));                                                                \
  ONCE(1, tyr_all_dim(C(mask), -1));                                                               \
  {                                                                                                \
    tyr_T(B, T, D) sv, si;                                                                         \
    ONCE(1, tyr_sort(C(x), -1, true, &sv, &si));                                                   \
    tyr_T(B, T, 2) kv, ki;                                                                         \
    ONCE(1, tyr_topk(C(x), 2, -1, true, &kv, &ki));                                                \
    ONCE(1, tyr_multinomial(C(tyr_softmax(col, -1)), 2, true));                                    \
  }                                                                                                \
  ONCE(2, tyr_bce_with_logits(C(x), C(tyr_sigmoid(y)), TYR_REDUCTION_MEAN));                       \
  ONCE(2, tyr_l1_loss(C(x), C(y), TYR_REDUCTION_SUM));                                             \
  ONCE(2, tyr_smooth_l1_loss(C(x), C(y), 1.0, TYR_REDUCTION_MEAN));                                \
  ONCE(2, tyr_kl_div(C(tyr_log_softmax(x, -1)), C(tyr_softmax(y, -1)), TYR_REDUCTION_BATCHMEAN,    \
                     false));                                                                      \
  ONCE(2,                                                                                          \
       tyr_nll_loss(C(tyr_log_softmax(tyr_linear(x, w), -1)), C(idx), -100, TYR_REDUCTION_MEAN));  \
  /* convolutions and image ops: x4 [N, C, H, W] = [B, T, D, D] */                                 \
  {                                                                                                \
    tyr_T(B, T, D, D) x4 = tyr_randn(B, T, D, D);                                                  \
    tyr_T(V, T, 3, 3) cw = tyr_randn(V, T, 3, 3);                                                  \
    tyr_T(T, V, 3, 3) tw = tyr_randn(T, V, 3, 3);                                                  \
    tyr_T(V, T, 3) cw1 = tyr_randn(V, T, 3);                                                       \
    tyr_T(V, T, 1, 3, 3) w3 = tyr_randn(V, T, 1, 3, 3);                                            \
    tyr_T(V) cb = tyr_zeros(V);                                                                    \
    tyr_T(T) ch = tyr_ones(T);                                                                     \
    tyr_T(T) rm = tyr_zeros(T);                                                                    \
    tyr_T(T) rv = tyr_ones(T);                                                                     \
    ONCE(3, tyr_conv2d(C(x4), C(cw), C(cb), 1, 1, 1, 1));                                          \
    ONCE(3, tyr_conv1d(C(x), C(cw1), C(cb), 1, 1, 1, 1));                                          \
    ONCE(3, tyr_conv3d(C(tyr_unsqueeze(x4, 2)), C(w3), C(cb), 1, 1, 1, 1));                        \
    ONCE(3, tyr_conv_transpose2d(C(x4), C(tw), C(cb), 1, 1, 1, 1));                                \
    ONCE(1, tyr_max_pool2d(C(x4), 2, 2, 0));                                                       \
    ONCE(1, tyr_avg_pool2d(C(x4), 2, 2, 0));                                                       \
    ONCE(1, tyr_adaptive_avg_pool2d(C(x4), 1, 1));                                                 \
    ONCE(5, tyr_batch_norm(C(x4), C(ch), C(ch), C(rm), C(rv), true, 0.1, 1e-5));                   \
    ONCE(3, tyr_group_norm(C(x4), 1, C(ch), C(ch), 1e-5));                                         \
    ONCE(1, tyr_pixel_shuffle(C(tyr_pixel_unshuffle(x4, 2)), 2));                                  \
    ONCE(1, tyr_pixel_unshuffle(C(x4), 2));                                                        \
    ONCE(1, tyr_unpatchify(C(tyr_patchify(x4, 2)), D, D, 2));                                      \
    ONCE(1, tyr_patchify(C(x4), 2));                                                               \
    ONCE(1, tyr_pad2d(C(x4), 1, 1, 1, 1, TYR_PAD_CONSTANT, 0.0));                                  \
    ONCE(1, tyr_interpolate(C(x4), 8, 8, TYR_INTERP_BILINEAR, false));                             \
  }                                                                                                \
  {                                                                                                \
    tyr_T(B, 2, T, D) q = tyr_randn(B, 2, T, D);                                                   \
    tyr_T(T, D / 2) cs, sn;                                                                        \
    tyr_rotary_tables(T, D, 10000.0, &cs, &sn);                                                    \
    ONCE(3, tyr_rotary(C(q), C(cs), C(sn)));                                                       \
    ONCE(3, tyr_sdpa(C(q), C(q), C(q), &(tyr_sdpa_opts){.causal = true}));                         \
    tyr_T(T, T) am = tyr_ones_to(TYR_BOOL, TYR_DEVICE_CPU, T, T);                                  \
    ONCE(4, tyr_sdpa_masked(C(q), C(q), C(q), C(am), NULL));                                       \
  }

static void constant_dims(void) {
  enum { B = 2, T = 3, D = 4, V = 5 };
  BODY(B, T, D, V)
}

static void runtime_dims(int B, int T, int D, int V) {
  BODY(B, T, D, V)
}

int main(int argc, char **argv) {
  (void)argv;
  constant_dims();
  runtime_dims(2 + (argc > 99), 3, 4, 5);
  if (failures) {
    fprintf(stderr, "%d typed macros evaluated an argument more or less than once\n", failures);
    return 1;
  }
  printf("every typed macro evaluated each argument once (constant and run-time dims)\n");
  return 0;
}
