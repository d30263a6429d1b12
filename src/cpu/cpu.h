/* CPU backend internals: kernels by op family, and strided iteration. */
#ifndef TYR_CPU_H
#define TYR_CPU_H
#include "core/backend.h"
#include "core/internal.h"
#include "cpu/isa.h" /* kernels compiled per instruction set */

/* Element offsets of a (possibly strided) tensor in row-major order. */
typedef struct {
  int rank;
  int64_t shape[TYR_MAX_RANK], stride[TYR_MAX_RANK], idx[TYR_MAX_RANK];
  int64_t off;
} tyr_iter;
static inline void tyr_iter_init(tyr_iter *it, const tyr_tensor *t) {
  it->rank = t->rank;
  for (int i = 0; i < t->rank; i++) {
    it->shape[i] = t->shape[i];
    it->stride[i] = t->stride[i];
    it->idx[i] = 0;
  }
  it->off = t->offset;
}
/* Offset of linear element index n (row-major) of t. */
static inline int64_t tyr_offset_of(const tyr_tensor *t, int64_t n) {
  int64_t off = t->offset;
  for (int i = t->rank - 1; i >= 0; i--) {
    int64_t q = n / t->shape[i];
    off += (n - q * t->shape[i]) * t->stride[i];
    n = q;
  }
  return off;
}
static inline void tyr_iter_next(tyr_iter *it) {
  for (int i = it->rank - 1; i >= 0; i--) {
    it->off += it->stride[i];
    if (++it->idx[i] < it->shape[i]) return;
    it->off -= it->stride[i] * it->shape[i];
    it->idx[i] = 0;
  }
}
#define TYR_BASE(t, T) ((T *)(t)->storage->data)

void tyr_cpu_copy(tyr_tensor *out, const tyr_tensor *src);
void tyr_cpu_unary(tyr_unary_op op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1);
void tyr_cpu_unary_backward(tyr_unary_op op, tyr_tensor *gin, const tyr_tensor *a,
                            const tyr_tensor *gout, double p0, double p1);
void tyr_cpu_binary(tyr_binary_op op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b);
void tyr_cpu_where(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a,
                   const tyr_tensor *b);
void tyr_cpu_reduce(tyr_reduce_op op, tyr_tensor *out, const tyr_tensor *a, int dim);
void tyr_cpu_cumsum(tyr_tensor *out, const tyr_tensor *x, int dim);
void tyr_cpu_matmul(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b);
void tyr_cpu_matmul_bias(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                         const tyr_tensor *bias);
/* The backend's matmul_act and matmul_dact (core/backend.h): the
 * activation (GELU, tanh GELU, ReLU, ReLU^2, SiLU) or its derivative
 * applied by the thread that computed each block of the product, while the
 * block is in its cache; f32/f64, rank 2, out and pre contiguous. */
bool tyr_cpu_matmul_act(tyr_tensor *out, tyr_tensor *pre, const tyr_tensor *a, const tyr_tensor *b,
                        const tyr_tensor *bias, tyr_unary_op act);
bool tyr_cpu_matmul_dact(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                         const tyr_tensor *pre, tyr_unary_op act);
/* Their epilogues over n contiguous elements, on the calling thread, with
 * the arithmetic of tyr_cpu_unary (out = act(x)) and of
 * tyr_cpu_unary_backward (g = g * act'(x)); f64 or f32 by f64. */
void tyr_cpu_act_row(tyr_unary_op op, bool f64, void *out, const void *x, int64_t n);
void tyr_cpu_dact_row(tyr_unary_op op, bool f64, void *g, const void *x, int64_t n);
/* C = op(A) op(B) in f32 with AVX-512 (src/cpu/gemm_avx512.c); false when the CPU
 * has no AVX-512F (or TYR_NO_AVX512 is set): the caller uses OpenBLAS. */
bool tyr_cpu_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc);
void tyr_cpu_softmax(tyr_tensor *out, const tyr_tensor *x, bool log);
void tyr_cpu_softmax_backward(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log);
void tyr_cpu_layer_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                        const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                        const tyr_tensor *r);
void tyr_cpu_layer_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                 const tyr_tensor *gy, const tyr_tensor *x, const tyr_tensor *w,
                                 const tyr_tensor *mean, const tyr_tensor *rstd, bool add_gx,
                                 tyr_tensor *gx_cast);
void tyr_cpu_index_select(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx);
void tyr_cpu_index_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src);
void tyr_cpu_gather(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx);
void tyr_cpu_scatter_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src);
void tyr_cpu_cross_entropy(tyr_tensor *losses, const tyr_tensor *logits, const tyr_tensor *targets,
                           int64_t ignore_index);
void tyr_cpu_cross_entropy_fused(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *targets,
                                 int64_t ignore_index, const tyr_tensor *scale);
void tyr_cpu_cross_entropy_backward(tyr_tensor *glogits, const tyr_tensor *logits,
                                    const tyr_tensor *targets, int64_t ignore_index,
                                    const tyr_tensor *gloss);
void tyr_cpu_adamw_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                        double lr, double beta1, double beta2, double eps, double weight_decay,
                        int64_t step);
void tyr_cpu_sgd_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *buf, double lr,
                      double momentum, double dampening, double weight_decay, bool nesterov,
                      bool first);
double tyr_cpu_sum_squares(const tyr_tensor *t);
double tyr_cpu_sum_squares_many(int n, const tyr_tensor *const *ts);
void tyr_cpu_scale_(tyr_tensor *t, double c);
void tyr_cpu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                  const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                  int64_t window, double scale);
void tyr_cpu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                           const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                           const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                           const tyr_tensor *doc, bool causal, int64_t window, double scale);
/* Tests only: run the attention kernels row at a time, as when their
 * scratch cannot be allocated. */
extern bool tyr_cpu_attention_force_rows;
/* The attention backward's passes: 0 lets the kernel choose (one pass per
 * key/value head when there are at least twice as many of them as
 * threads, else two passes split finer), 1 or 2 forces one (tests). */
extern int tyr_cpu_attention_bw_passes;
void tyr_cpu_rotary(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *cos_table,
                    const tyr_tensor *sin_table, bool inverse);
static inline int64_t tyr_index_load(const tyr_tensor *idx, int64_t off) {
  return idx->dtype == TYR_I32 ? TYR_BASE(idx, int32_t)[off] : TYR_BASE(idx, int64_t)[off];
}
/* tyr_cpu_env_setup's choice for a 1-minute load average of `load` on ncpu
 * cores: returns the variable's name and sets *value. */
const char *tyr__cpu_wait_policy(double load, int ncpu, const char **value);
/* convolutions, pooling, batch norm (src/cpu/conv.c) */
void tyr_cpu_conv2d(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *w,
                    const tyr_tensor *bias, const tyr_conv_geom *g);
void tyr_cpu_conv2d_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                             const tyr_tensor *x, const tyr_tensor *w, const tyr_conv_geom *g);
void tyr_cpu_pool2d(tyr_tensor *out, tyr_tensor *idx, const tyr_tensor *x, const tyr_pool_geom *g);
void tyr_cpu_pool2d_backward(tyr_tensor *gx, const tyr_tensor *gy, const tyr_tensor *idx,
                             const tyr_pool_geom *g);
void tyr_cpu_batch_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                        const tyr_tensor *w, const tyr_tensor *b, tyr_tensor *running_mean,
                        tyr_tensor *running_var, bool training, double momentum, double eps);
void tyr_cpu_batch_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                 const tyr_tensor *gy, const tyr_tensor *x, const tyr_tensor *w,
                                 const tyr_tensor *mean, const tyr_tensor *rstd, bool training);
#endif
