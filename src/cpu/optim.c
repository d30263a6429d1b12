/* CPU optimizer kernels: fused AdamW and SGD steps, squared norms. */
#include <math.h>
#include <stdlib.h>

#include "cpu/cpu.h"
#include "cpu/parallel.h"

/* a parameter tensor this large is updated by all threads */
#define PAR_OPTIM 16384

static inline double ld(const tyr_tensor *t, const void *base, int64_t i) {
  switch (t->dtype) {
  case TYR_F32:
    return ((const float *)base)[i];
  case TYR_F64:
    return ((const double *)base)[i];
  default:
    return tyr__load_f64((const char *)base + i * (int64_t)tyr_dtype_size(t->dtype), t->dtype);
  }
}
static inline void st(tyr_tensor *t, void *base, int64_t i, double v) {
  switch (t->dtype) {
  case TYR_F32:
    ((float *)base)[i] = (float)v;
    break;
  case TYR_F64:
    ((double *)base)[i] = v;
    break;
  default:
    tyr__store_f64((char *)base + i * (int64_t)tyr_dtype_size(t->dtype), t->dtype, v);
  }
}

/* One f32 AdamW element in three steps.  Where the build has FMA they are
   written with fmaf, in the roundings of the CUDA kernels
   (src/cuda/optim.cu): the two backends then give the same bits whatever
   the compiler's contraction setting. */
static inline float adamw_m(float b1, float m, float g) {
#ifdef __FMA__
  return fmaf(b1, m, (1 - b1) * g);
#else
  return b1 * m + (1 - b1) * g;
#endif
}
static inline float adamw_v(float b2, float v, float g) {
#ifdef __FMA__
  return fmaf(b2, v, (1 - b2) * g * g);
#else
  return b2 * v + (1 - b2) * g * g;
#endif
}
static inline float adamw_p(float p, float dc, float ss, float m, float v, float bs, float e) {
#ifdef __FMA__
  return fmaf(p, dc, -(ss * m / (sqrtf(v) / bs + e)));
#else
  return p * dc - ss * m / (sqrtf(v) / bs + e);
#endif
}

void tyr_cpu_adamw_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                        double lr, double beta1, double beta2, double eps, double weight_decay,
                        int64_t step) {
  int64_t n = tyr_numel(param);
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  double step_size = lr / bc1, bc2_sqrt = sqrt(bc2), decay = 1.0 - lr * weight_decay;
  float *mm = tyr_data_ptr(m), *vv = tyr_data_ptr(v);
  void *p = tyr_data_ptr(param);
  const void *g = tyr_data_ptr(grad);
  if (param->dtype == TYR_F32 && grad->dtype == TYR_F32) {
    float *pf = p;
    const float *gf = g;
    float b1 = (float)beta1, b2 = (float)beta2, ss = (float)step_size, bs = (float)bc2_sqrt,
          e = (float)eps, dc = (float)decay;
    TYR_PAR_FOR(
        n > PAR_OPTIM, "omp parallel for simd", for (int64_t i = 0; i < n; i++) {
          float gi = gf[i];
          float mi = adamw_m(b1, mm[i], gi), vi = adamw_v(b2, vv[i], gi);
          mm[i] = mi;
          vv[i] = vi;
          pf[i] = adamw_p(pf[i], dc, ss, mi, vi, bs, e);
        });
    return;
  }
  TYR_PAR_FOR(
      n > PAR_OPTIM, "omp parallel for", for (int64_t i = 0; i < n; i++) {
        double gi = ld(grad, g, i);
        double mi = beta1 * mm[i] + (1 - beta1) * gi;
        double vi = beta2 * vv[i] + (1 - beta2) * gi * gi;
        mm[i] = (float)mi;
        vv[i] = (float)vi;
        st(param, p, i, ld(param, p, i) * decay - step_size * mi / (sqrt(vi) / bc2_sqrt + eps));
      });
}

void tyr_cpu_sgd_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *buf, double lr,
                      double momentum, double dampening, double weight_decay, bool nesterov,
                      bool first) {
  int64_t n = tyr_numel(param);
  void *p = tyr_data_ptr(param);
  const void *g = tyr_data_ptr(grad);
  float *b = buf ? tyr_data_ptr(buf) : NULL;
  TYR_PAR_FOR(
      n > PAR_OPTIM, "omp parallel for", for (int64_t i = 0; i < n; i++) {
        double pi = ld(param, p, i);
        double d = ld(grad, g, i) + weight_decay * pi;
        if (momentum != 0 && b) {
          double bi = first ? d : momentum * b[i] + (1 - dampening) * d;
          b[i] = (float)bi;
          d = nesterov ? d + momentum * bi : bi;
        }
        st(param, p, i, pi - lr * d);
      });
}

double tyr_cpu_sum_squares(const tyr_tensor *t) {
  int64_t n = tyr_numel(t);
  const void *p = tyr_data_ptr(t);
  double acc = 0;
  if (t->dtype == TYR_F32) {
    const float *f = p;
    TYR_PAR_FOR(n > PAR_OPTIM, "omp parallel for reduction(+ : acc)",
                for (int64_t i = 0; i < n; i++) acc += (double)f[i] * f[i];);
    return acc;
  }
  TYR_PAR_FOR(
      n > PAR_OPTIM, "omp parallel for reduction(+ : acc)", for (int64_t i = 0; i < n; i++) {
        double x = ld(t, p, i);
        acc += x * x;
      });
  return acc;
}

/* Each tensor's sum on some thread, then the sums added in order: the
   result does not depend on how the tensors were shared out. */
static double sum_squares_serial(const tyr_tensor *t) {
  int64_t n = tyr_numel(t);
  const void *p = tyr_data_ptr(t);
  double acc = 0;
  if (t->dtype == TYR_F32) {
    const float *f = p;
    double a[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; j++) a[j] += (double)f[i + j] * f[i + j];
    for (; i < n; i++) acc += (double)f[i] * f[i];
    return acc + (a[0] + a[1]) + (a[2] + a[3]);
  }
  for (int64_t i = 0; i < n; i++) {
    double x = ld(t, p, i);
    acc += x * x;
  }
  return acc;
}

double tyr_cpu_sum_squares_many(int n, const tyr_tensor *const *ts) {
  double stack[64], *part = n <= 64 ? stack : malloc(sizeof(double) * (size_t)n);
  if (!part) { /* out of memory for the partial sums: one tensor at a time */
    double acc = 0;
    for (int i = 0; i < n; i++) acc += tyr_cpu_sum_squares(ts[i]);
    return acc;
  }
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += tyr_numel(ts[i]);
  TYR_PAR_FOR(total > PAR_OPTIM && n > 1, "omp parallel for schedule(dynamic)",
              for (int i = 0; i < n; i++) part[i] = sum_squares_serial(ts[i]););
  double acc = 0;
  for (int i = 0; i < n; i++) acc += part[i];
  if (part != stack) free(part);
  return acc;
}

void tyr_cpu_scale_(tyr_tensor *t, double c) {
  int64_t n = tyr_numel(t);
  void *p = tyr_data_ptr(t);
  if (t->dtype == TYR_F32) {
    float *f = p, cf = (float)c;
    TYR_PAR_FOR(n > PAR_OPTIM, "omp parallel for simd",
                for (int64_t i = 0; i < n; i++) f[i] *= cf;);
    return;
  }
  for (int64_t i = 0; i < n; i++) st(t, p, i, ld(t, p, i) * c);
}
