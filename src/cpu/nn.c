/* CPU kernels of the functional ops: softmax, layer/RMS norm, cross
 * entropy, and the index gathers/scatters.  Inputs are contiguous. */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/fastmath.h"

#define ROWS(t) (tyr_numel(t) / ((t)->rank ? (t)->shape[(t)->rank - 1] : 1))
#define COLS(t) ((t)->rank ? (t)->shape[(t)->rank - 1] : 1)

#define DEFINE_SOFTMAX(T, SFX, EXP, LOGF)                                                          \
  static void softmax_##SFX(T *y, const T *x, int64_t rows, int64_t n, bool use_log) {             \
    _Pragma("omp parallel for if (rows * n > 32768)") for (int64_t r = 0; r < rows; r++) {         \
      const T *xr = x + r * n;                                                                     \
      T *yr = y + r * n;                                                                           \
      T mx = tyr_cpu_max_##SFX(xr, n);                                                             \
      if (use_log) {                                                                               \
        T lse = mx + (T)LOGF(tyr_cpu_sum_exp_##SFX(xr, mx, n));                                    \
        for (int64_t i = 0; i < n; i++) yr[i] = xr[i] - lse;                                       \
      } else {                                                                                     \
        for (int64_t i = 0; i < n; i++) yr[i] = EXP(xr[i] - mx);                                   \
        T sum = 0;                                                                                 \
        _Pragma("omp simd reduction(+ : sum)") for (int64_t i = 0; i < n; i++) sum += yr[i];       \
        T inv = (T)(1.0 / (double)sum);                                                            \
        for (int64_t i = 0; i < n; i++) yr[i] *= inv;                                              \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  static void softmax_bw_##SFX(T *gx, const T *y, const T *gy, int64_t rows, int64_t n,            \
                               bool use_log) {                                                     \
    _Pragma("omp parallel for if (rows * n > 32768)") for (int64_t r = 0; r < rows; r++) {         \
      const T *yr = y + r * n, *gr = gy + r * n;                                                   \
      T *o = gx + r * n;                                                                           \
      double dot = 0;                                                                              \
      if (use_log) {                                                                               \
        _Pragma("omp simd reduction(+ : dot)") for (int64_t i = 0; i < n; i++) dot += gr[i];       \
        for (int64_t i = 0; i < n; i++) o[i] = gr[i] - EXP(yr[i]) * (T)dot;                        \
      } else {                                                                                     \
        _Pragma("omp simd reduction(+ : dot)") for (int64_t i = 0; i < n; i++) dot +=              \
            (double)gr[i] * yr[i];                                                                 \
        for (int64_t i = 0; i < n; i++) o[i] = yr[i] * (gr[i] - (T)dot);                           \
      }                                                                                            \
    }                                                                                              \
  }
DEFINE_SOFTMAX(float, f32, tyr_cpu_expf, log)
DEFINE_SOFTMAX(double, f64, exp, log)

void tyr_cpu_softmax(tyr_tensor *out, const tyr_tensor *x, bool log) {
  if (out->dtype == TYR_F32)
    softmax_f32(tyr_data_ptr(out), tyr_data_ptr(x), ROWS(x), COLS(x), log);
  else
    softmax_f64(tyr_data_ptr(out), tyr_data_ptr(x), ROWS(x), COLS(x), log);
}

void tyr_cpu_softmax_backward(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log) {
  if (gx->dtype == TYR_F32)
    softmax_bw_f32(tyr_data_ptr(gx), tyr_data_ptr(y), tyr_data_ptr(gy), ROWS(y), COLS(y), log);
  else
    softmax_bw_f64(tyr_data_ptr(gx), tyr_data_ptr(y), tyr_data_ptr(gy), ROWS(y), COLS(y), log);
}

/* mean == NULL: RMS norm.  w, b optional.  res: the rows normalised are
   x + res, stored to sum first. */
#define DEFINE_LN(T, SFX, SQRT)                                                                    \
  static void ln_##SFX(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t rows,   \
                       int64_t n, double eps, T *sum, const T *res) {                              \
    _Pragma("omp parallel for if (rows * n > 16384)") for (int64_t r = 0; r < rows; r++) {         \
      const T *xr = x + r * n;                                                                     \
      T *yr = y + r * n;                                                                           \
      if (res) {                                                                                   \
        T *sr = sum + r * n;                                                                       \
        const T *rr = res + r * n;                                                                 \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) sr[i] = xr[i] + rr[i];                 \
        xr = sr;                                                                                   \
      }                                                                                            \
      double mu = 0, var = 0;                                                                      \
      if (mean) {                                                                                  \
        _Pragma("omp simd reduction(+ : mu)") for (int64_t i = 0; i < n; i++) mu += xr[i];         \
        mu /= (double)n;                                                                           \
      }                                                                                            \
      _Pragma("omp simd reduction(+ : var)") for (int64_t i = 0; i < n; i++) {                     \
        double d = xr[i] - mu;                                                                     \
        var += d * d;                                                                              \
      }                                                                                            \
      var /= (double)n;                                                                            \
      T rs = (T)(1.0 / SQRT(var + eps));                                                           \
      T m = (T)mu;                                                                                 \
      for (int64_t i = 0; i < n; i++) {                                                            \
        T v = (xr[i] - m) * rs;                                                                    \
        if (w) v *= w[i];                                                                          \
        if (b) v += b[i];                                                                          \
        yr[i] = v;                                                                                 \
      }                                                                                            \
      if (mean) mean[r] = m;                                                                       \
      rstd[r] = rs;                                                                                \
    }                                                                                              \
  }                                                                                                \
  static void ln_bw_##SFX(T *gx, T *gw, T *gb, const T *gy, const T *x, const T *w, const T *mean, \
                          const T *rstd, int64_t rows, int64_t n, bool add) {                      \
    if (gx) {                                                                                      \
      _Pragma("omp parallel for if (rows * n > 16384)") for (int64_t r = 0; r < rows; r++) {       \
        const T *xr = x + r * n, *gr = gy + r * n;                                                 \
        T m = mean ? mean[r] : 0, rs = rstd[r];                                                    \
        double s1 = 0, s2 = 0;                                                                     \
        _Pragma("omp simd reduction(+ : s1, s2)") for (int64_t i = 0; i < n; i++) {                \
          double xh = (xr[i] - m) * rs, g = gr[i] * (w ? w[i] : (T)1);                             \
          s1 += g;                                                                                 \
          s2 += g * xh;                                                                            \
        }                                                                                          \
        s1 /= (double)n;                                                                           \
        s2 /= (double)n;                                                                           \
        if (!mean) s1 = 0;                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                          \
          T xh = (xr[i] - m) * rs, g = gr[i] * (w ? w[i] : (T)1);                                  \
          T v = rs * (g - (T)s1 - xh * (T)s2);                                                     \
          gx[r * n + i] = add ? gx[r * n + i] + v : v;                                             \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    if (gw || gb) { /* each thread a run of columns, swept row by row (in cache, vectorised),      \
                       each column summed over the rows in order */                                \
      int64_t chunks = rows * n > 16384 ? (n + 63) / 64 : 1;                                       \
      _Pragma("omp parallel for if (chunks > 1)") for (int64_t ch = 0; ch < chunks; ch++) {        \
        int64_t i0 = n * ch / chunks, i1 = n * (ch + 1) / chunks;                                  \
        double sw[64], sb[64];                                                                     \
        for (int64_t i = 0; i < 64; i++) sw[i] = sb[i] = 0;                                        \
        for (int64_t c0 = i0; c0 < i1; c0 += 64) {                                                 \
          int64_t c1 = c0 + 64 < i1 ? c0 + 64 : i1;                                                \
          for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * n, *gr = gy + r * n;                                             \
            T m = mean ? mean[r] : 0, rs = rstd[r];                                                \
            _Pragma("omp simd") for (int64_t i = c0; i < c1; i++) {                                \
              T xh = (xr[i] - m) * rs;                                                             \
              sw[i - c0] += (double)gr[i] * xh;                                                    \
              sb[i - c0] += gr[i];                                                                 \
            }                                                                                      \
          }                                                                                        \
          for (int64_t i = c0; i < c1; i++) {                                                      \
            if (gw) gw[i] = (T)sw[i - c0];                                                         \
            if (gb) gb[i] = (T)sb[i - c0];                                                         \
            sw[i - c0] = sb[i - c0] = 0;                                                           \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }
DEFINE_LN(float, f32, sqrt)
DEFINE_LN(double, f64, sqrt)

#define PTR(t) ((t) ? tyr_data_ptr(t) : NULL)

void tyr_cpu_layer_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                        const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                        const tyr_tensor *r) {
  if (x->dtype == TYR_F32)
    ln_f32(PTR(y), PTR(mean), PTR(rstd), PTR(x), PTR(w), PTR(b), ROWS(x), COLS(x), eps,
           r ? PTR(sum) : NULL, PTR(r));
  else
    ln_f64(PTR(y), PTR(mean), PTR(rstd), PTR(x), PTR(w), PTR(b), ROWS(x), COLS(x), eps,
           r ? PTR(sum) : NULL, PTR(r));
}

void tyr_cpu_layer_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                 const tyr_tensor *gy, const tyr_tensor *x, const tyr_tensor *w,
                                 const tyr_tensor *mean, const tyr_tensor *rstd, bool add_gx,
                                 tyr_tensor *gx_cast) {
  if (x->dtype == TYR_F32)
    ln_bw_f32(PTR(gx), PTR(gw), PTR(gb), PTR(gy), PTR(x), PTR(w), PTR(mean), PTR(rstd), ROWS(x),
              COLS(x), add_gx);
  else
    ln_bw_f64(PTR(gx), PTR(gw), PTR(gb), PTR(gy), PTR(x), PTR(w), PTR(mean), PTR(rstd), ROWS(x),
              COLS(x), add_gx);
  /* the conversion the residual add's backward would make: the same pass
     over memory here as there (the CPU's cost is the arithmetic) */
  if (gx && gx_cast) tyr_cpu_copy(gx_cast, gx);
}

/* ---- cross entropy over rows of [N, V] logits --------------------------- */
#define DEFINE_CE(T, SFX, EXP, LOGF)                                                               \
  static void ce_##SFX(T *loss, const T *lg, const tyr_tensor *tg, int64_t ign, int64_t N,         \
                       int64_t V) {                                                                \
    _Pragma("omp parallel for if (N * V > 32768)") for (int64_t r = 0; r < N; r++) {               \
      int64_t t = tyr_index_load(tg, tg->offset + r);                                              \
      if (t == ign) {                                                                              \
        loss[r] = 0;                                                                               \
        continue;                                                                                  \
      }                                                                                            \
      if (t < 0 || t >= V) { /* the op checks first; never read out of bounds */                   \
        loss[r] = (T)NAN;                                                                          \
        continue;                                                                                  \
      }                                                                                            \
      const T *x = lg + r * V;                                                                     \
      T mx = tyr_cpu_max_##SFX(x, V);                                                              \
      double s = tyr_cpu_sum_exp_##SFX(x, mx, V);                                                  \
      loss[r] = (T)(mx + LOGF(s)) - x[t];                                                          \
    }                                                                                              \
  }                                                                                                \
  static void ce_bw_##SFX(T *g, const T *lg, const tyr_tensor *tg, int64_t ign, const T *gl,       \
                          int64_t N, int64_t V) {                                                  \
    _Pragma("omp parallel for if (N * V > 32768)") for (int64_t r = 0; r < N; r++) {               \
      int64_t t = tyr_index_load(tg, tg->offset + r);                                              \
      T *o = g + r * V;                                                                            \
      if (t == ign || t < 0 || t >= V) {                                                           \
        for (int64_t i = 0; i < V; i++) o[i] = 0;                                                  \
        continue;                                                                                  \
      }                                                                                            \
      const T *x = lg + r * V;                                                                     \
      T mx = tyr_cpu_max_##SFX(x, V);                                                              \
      double s = tyr_cpu_sum_exp_##SFX(x, mx, V);                                                  \
      T scale = gl[r], f = (T)((double)gl[r] / s);                                                 \
      for (int64_t i = 0; i < V; i++) o[i] = EXP(x[i] - mx) * f;                                   \
      o[t] -= scale;                                                                               \
    }                                                                                              \
  }
DEFINE_CE(float, f32, tyr_cpu_expf, log)
DEFINE_CE(double, f64, exp, log)

/* losses and dlogits in place (tyr_linear_cross_entropy) */
#define DEFINE_CE_FUSED(T, SFX, EXP, LOGF)                                                         \
  static void ce_fused_##SFX(T *loss, T *lg, const tyr_tensor *tg, int64_t ign, T scale,           \
                             int64_t N, int64_t V) {                                               \
    _Pragma("omp parallel for if (N * V > 32768)") for (int64_t r = 0; r < N; r++) {               \
      int64_t t = tyr_index_load(tg, tg->offset + r);                                              \
      T *x = lg + r * V;                                                                           \
      if (t == ign || t < 0 || t >= V) { /* the op checks targets first */                         \
        loss[r] = t == ign ? (T)0 : (T)NAN;                                                        \
        for (int64_t i = 0; i < V; i++) x[i] = 0;                                                  \
        continue;                                                                                  \
      }                                                                                            \
      T mx = tyr_cpu_max_##SFX(x, V);                                                              \
      double s = tyr_cpu_sum_exp_##SFX(x, mx, V);                                                  \
      loss[r] = (T)(mx + LOGF(s)) - x[t];                                                          \
      T f = (T)((double)scale / s);                                                                \
      for (int64_t i = 0; i < V; i++) x[i] = EXP(x[i] - mx) * f;                                   \
      x[t] -= scale;                                                                               \
    }                                                                                              \
  }
DEFINE_CE_FUSED(float, f32, tyr_cpu_expf, log)
DEFINE_CE_FUSED(double, f64, exp, log)

void tyr_cpu_cross_entropy_fused(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *targets,
                                 int64_t ignore_index, const tyr_tensor *scale) {
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (logits->dtype == TYR_F32)
    ce_fused_f32(tyr_data_ptr(losses), tyr_data_ptr(logits), targets, ignore_index,
                 *(const float *)tyr_data_ptr(scale), N, V);
  else
    ce_fused_f64(tyr_data_ptr(losses), tyr_data_ptr(logits), targets, ignore_index,
                 *(const double *)tyr_data_ptr(scale), N, V);
}

void tyr_cpu_cross_entropy(tyr_tensor *losses, const tyr_tensor *logits, const tyr_tensor *targets,
                           int64_t ignore_index) {
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (logits->dtype == TYR_F32)
    ce_f32(tyr_data_ptr(losses), tyr_data_ptr(logits), targets, ignore_index, N, V);
  else
    ce_f64(tyr_data_ptr(losses), tyr_data_ptr(logits), targets, ignore_index, N, V);
}

void tyr_cpu_cross_entropy_backward(tyr_tensor *glogits, const tyr_tensor *logits,
                                    const tyr_tensor *targets, int64_t ignore_index,
                                    const tyr_tensor *gloss) {
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (logits->dtype == TYR_F32)
    ce_bw_f32(tyr_data_ptr(glogits), tyr_data_ptr(logits), targets, ignore_index,
              tyr_data_ptr(gloss), N, V);
  else
    ce_bw_f64(tyr_data_ptr(glogits), tyr_data_ptr(logits), targets, ignore_index,
              tyr_data_ptr(gloss), N, V);
}

/* ---- gathers and scatters ----------------------------------------------
 * Tensors are viewed as [outer, n, inner] around dim. */
static void split3(const tyr_tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < dim; i++) *outer *= t->shape[i];
  *n = t->shape[dim];
  for (int i = dim + 1; i < t->rank; i++) *inner *= t->shape[i];
}

void tyr_cpu_index_select(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx) {
  int64_t outer, n, inner, m = tyr_numel(idx);
  split3(src, dim, &outer, &n, &inner);
  size_t es = tyr_dtype_size(src->dtype);
  const char *s = tyr_data_ptr(src);
  char *o = tyr_data_ptr(out);
#pragma omp parallel for collapse(2) if (outer * m * inner > 32768)
  for (int64_t a = 0; a < outer; a++)
    for (int64_t j = 0; j < m; j++) {
      int64_t k = tyr_index_load(idx, idx->offset + j);
      memcpy(o + ((a * m + j) * inner) * (int64_t)es, s + ((a * n + k) * inner) * (int64_t)es,
             (size_t)inner * es);
    }
}

#define ACC(T, dst, src, cnt)                                                                      \
  do {                                                                                             \
    T *d_ = (T *)(dst);                                                                            \
    const T *s_ = (const T *)(src);                                                                \
    for (int64_t q = 0; q < (cnt); q++) d_[q] += s_[q];                                            \
  } while (0)

void tyr_cpu_index_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src) {
  int64_t outer, n, inner, m = tyr_numel(idx);
  split3(out, dim, &outer, &n, &inner);
  size_t es = tyr_dtype_size(out->dtype);
  const char *s = tyr_data_ptr(src);
  char *o = tyr_data_ptr(out);
  /* rows of one outer slice may collide: parallel over outer only */
#pragma omp parallel for if (outer > 1 && outer * m * inner > 32768)
  for (int64_t a = 0; a < outer; a++)
    for (int64_t j = 0; j < m; j++) {
      int64_t k = tyr_index_load(idx, idx->offset + j);
      char *d = o + ((a * n + k) * inner) * (int64_t)es;
      const char *x = s + ((a * m + j) * inner) * (int64_t)es;
      if (out->dtype == TYR_F32)
        ACC(float, d, x, inner);
      else
        ACC(double, d, x, inner);
    }
}

void tyr_cpu_gather(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx) {
  /* out[i..] = src[..., idx[i..], ...] with idx of out's shape */
  int64_t outer, m, inner, n = src->shape[dim];
  split3(idx, dim, &outer, &m, &inner);
  int64_t sinner = 1;
  for (int i = dim + 1; i < src->rank; i++) sinner *= src->shape[i];
  size_t es = tyr_dtype_size(src->dtype);
  const char *s = tyr_data_ptr(src);
  char *o = tyr_data_ptr(out);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t j = 0; j < m; j++)
      for (int64_t c = 0; c < inner; c++) {
        int64_t lin = (a * m + j) * inner + c;
        int64_t k = tyr_index_load(idx, idx->offset + lin);
        memcpy(o + lin * (int64_t)es, s + ((a * n + k) * sinner + c) * (int64_t)es, es);
      }
}

void tyr_cpu_scatter_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src) {
  int64_t outer, m, inner, n = out->shape[dim];
  split3(idx, dim, &outer, &m, &inner);
  int64_t oinner = 1, sinner = 1;
  for (int i = dim + 1; i < out->rank; i++) oinner *= out->shape[i];
  for (int i = dim + 1; i < src->rank; i++) sinner *= src->shape[i];
  int64_t sm = src->shape[dim];
  for (int64_t a = 0; a < outer; a++)
    for (int64_t j = 0; j < m; j++)
      for (int64_t c = 0; c < inner; c++) {
        int64_t lin = (a * m + j) * inner + c;
        int64_t k = tyr_index_load(idx, idx->offset + lin);
        int64_t so = (a * sm + j) * sinner + c, oo = (a * n + k) * oinner + c;
        if (out->dtype == TYR_F32)
          ((float *)tyr_data_ptr(out))[oo] += ((const float *)tyr_data_ptr(src))[so];
        else
          ((double *)tyr_data_ptr(out))[oo] += ((const double *)tyr_data_ptr(src))[so];
      }
}
