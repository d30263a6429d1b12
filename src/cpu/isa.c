/* Run-time choice of the CPU kernels' instruction set.
 *
 * The kernels of src/cpu/isa.h exist as name_base (any x86-64),
 * name_v3 (x86-64-v3: AVX2, FMA, BMI2) and name_v4 (x86-64-v4: AVX-512
 * F/BW/CD/DQ/VL); each plain name below calls the best one the CPU runs,
 * decided once from cpuid.  TYR_CPU_ISA=base, avx2 or avx512 in the
 * environment caps the choice (to compare or test the variants). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"

bool tyr_cpu_attention_force_rows;
int tyr_cpu_attention_bw_passes;

#ifdef TYR_CPU_ISA_BASE_ONLY
int tyr_cpu_isa_level(void) {
  return 0;
}
#define PICK(name) name##_base
#else
static int detect(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  int level = 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
      __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2"))
    level = 1;
  if (level == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    level = 2;
#else
  int level = 0;
#endif
  const char *cap = getenv("TYR_CPU_ISA");
  if (cap && *cap) {
    int max = !strcmp(cap, "base") ? 0 : !strcmp(cap, "avx2") ? 1 : 2;
    if (level > max) level = max;
  }
  return level;
}

int tyr_cpu_isa_level(void) {
  static _Atomic int level = -1; /* a race only computes the same value twice */
  int l = atomic_load_explicit(&level, memory_order_relaxed);
  if (l < 0) {
    l = detect();
    atomic_store_explicit(&level, l, memory_order_relaxed);
  }
  return l;
}
#define PICK(name)                                                                                 \
  (tyr_cpu_isa_level() == 2 ? name##_v4 : tyr_cpu_isa_level() == 1 ? name##_v3 : name##_base)
#endif

/* the variants' declarations: the plain name's type, three names */
#define VARIANTS(name) extern __typeof__(name) name##_base, name##_v3, name##_v4;
VARIANTS(tyr_cpu_sdpa)
VARIANTS(tyr_cpu_sdpa_backward)
VARIANTS(tyr_cpu_copy)
VARIANTS(tyr_cpu_unary)
VARIANTS(tyr_cpu_unary_backward)
VARIANTS(tyr_cpu_binary)
VARIANTS(tyr_cpu_where)
VARIANTS(tyr_cpu_act_row)
VARIANTS(tyr_cpu_dact_row)
VARIANTS(tyr_cpu_softmax)
VARIANTS(tyr_cpu_softmax_backward)
VARIANTS(tyr_cpu_layer_norm)
VARIANTS(tyr_cpu_layer_norm_backward)
VARIANTS(tyr_cpu_cross_entropy_fused)
VARIANTS(tyr_cpu_cross_entropy)
VARIANTS(tyr_cpu_cross_entropy_backward)
VARIANTS(tyr_cpu_index_select)
VARIANTS(tyr_cpu_index_add)
VARIANTS(tyr_cpu_gather)
VARIANTS(tyr_cpu_scatter_add)
VARIANTS(tyr_cpu_adamw_step)
VARIANTS(tyr_cpu_sgd_step)
VARIANTS(tyr_cpu_sum_squares)
VARIANTS(tyr_cpu_sum_squares_many)
VARIANTS(tyr_cpu_scale_)
VARIANTS(tyr_cpu_reduce)
VARIANTS(tyr_cpu_rotary)

/* attention.c */
void tyr_cpu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                  const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                  int64_t window, double scale) {
  PICK(tyr_cpu_sdpa)(out, lse, q, k, v, mask, doc, causal, window, scale);
}
void tyr_cpu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                           const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                           const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                           const tyr_tensor *doc, bool causal, int64_t window, double scale) {
  PICK(tyr_cpu_sdpa_backward)
  (dq, dk, dv, dout, q, k, v, out, lse, mask, doc, causal, window, scale);
}

/* copy.c */
void tyr_cpu_copy(tyr_tensor *out, const tyr_tensor *src) {
  PICK(tyr_cpu_copy)(out, src);
}

/* elementwise.c */
void tyr_cpu_unary(tyr_unary_op op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1) {
  PICK(tyr_cpu_unary)(op, out, a, p0, p1);
}
void tyr_cpu_unary_backward(tyr_unary_op op, tyr_tensor *gin, const tyr_tensor *a,
                            const tyr_tensor *gout, double p0, double p1) {
  PICK(tyr_cpu_unary_backward)(op, gin, a, gout, p0, p1);
}
void tyr_cpu_binary(tyr_binary_op op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  PICK(tyr_cpu_binary)(op, out, a, b);
}
void tyr_cpu_where(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a,
                   const tyr_tensor *b) {
  PICK(tyr_cpu_where)(out, cond, a, b);
}
void tyr_cpu_act_row(tyr_unary_op op, bool f64, void *out, const void *x, int64_t n) {
  PICK(tyr_cpu_act_row)(op, f64, out, x, n);
}
void tyr_cpu_dact_row(tyr_unary_op op, bool f64, void *g, const void *x, int64_t n) {
  PICK(tyr_cpu_dact_row)(op, f64, g, x, n);
}

/* nn.c */
void tyr_cpu_softmax(tyr_tensor *out, const tyr_tensor *x, bool log) {
  PICK(tyr_cpu_softmax)(out, x, log);
}
void tyr_cpu_softmax_backward(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log) {
  PICK(tyr_cpu_softmax_backward)(gx, y, gy, log);
}
void tyr_cpu_layer_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                        const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                        const tyr_tensor *r) {
  PICK(tyr_cpu_layer_norm)(y, mean, rstd, x, w, b, eps, sum, r);
}
void tyr_cpu_layer_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                 const tyr_tensor *gy, const tyr_tensor *x, const tyr_tensor *w,
                                 const tyr_tensor *mean, const tyr_tensor *rstd, bool add_gx,
                                 tyr_tensor *gx_cast) {
  PICK(tyr_cpu_layer_norm_backward)(gx, gw, gb, gy, x, w, mean, rstd, add_gx, gx_cast);
}
void tyr_cpu_cross_entropy_fused(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *targets,
                                 int64_t ignore_index, const tyr_tensor *scale) {
  PICK(tyr_cpu_cross_entropy_fused)(losses, logits, targets, ignore_index, scale);
}
void tyr_cpu_cross_entropy(tyr_tensor *losses, const tyr_tensor *logits, const tyr_tensor *targets,
                           int64_t ignore_index) {
  PICK(tyr_cpu_cross_entropy)(losses, logits, targets, ignore_index);
}
void tyr_cpu_cross_entropy_backward(tyr_tensor *glogits, const tyr_tensor *logits,
                                    const tyr_tensor *targets, int64_t ignore_index,
                                    const tyr_tensor *gloss) {
  PICK(tyr_cpu_cross_entropy_backward)(glogits, logits, targets, ignore_index, gloss);
}
void tyr_cpu_index_select(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx) {
  PICK(tyr_cpu_index_select)(out, src, dim, idx);
}
void tyr_cpu_index_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src) {
  PICK(tyr_cpu_index_add)(out, dim, idx, src);
}
void tyr_cpu_gather(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx) {
  PICK(tyr_cpu_gather)(out, src, dim, idx);
}
void tyr_cpu_scatter_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src) {
  PICK(tyr_cpu_scatter_add)(out, dim, idx, src);
}

/* optim.c */
void tyr_cpu_adamw_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                        double lr, double beta1, double beta2, double eps, double weight_decay,
                        int64_t step) {
  PICK(tyr_cpu_adamw_step)(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step);
}
void tyr_cpu_sgd_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *buf, double lr,
                      double momentum, double dampening, double weight_decay, bool nesterov,
                      bool first) {
  PICK(tyr_cpu_sgd_step)(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first);
}
double tyr_cpu_sum_squares(const tyr_tensor *t) {
  return PICK(tyr_cpu_sum_squares)(t);
}
double tyr_cpu_sum_squares_many(int n, const tyr_tensor *const *ts) {
  return PICK(tyr_cpu_sum_squares_many)(n, ts);
}
void tyr_cpu_scale_(tyr_tensor *t, double c) {
  PICK(tyr_cpu_scale_)(t, c);
}

/* reduce.c */
void tyr_cpu_reduce(tyr_reduce_op op, tyr_tensor *out, const tyr_tensor *a, int dim) {
  PICK(tyr_cpu_reduce)(op, out, a, dim);
}

/* rotary.c */
void tyr_cpu_rotary(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *cos_table,
                    const tyr_tensor *sin_table, bool inverse) {
  PICK(tyr_cpu_rotary)(out, x, cos_table, sin_table, inverse);
}
