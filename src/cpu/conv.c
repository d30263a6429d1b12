/* CPU kernels of the convolution family (src/ops/conv.c has the shape
 * rules and the tape).
 *
 * conv2d: im2col + GEMM.  The work items are (sample, group) pairs split
 * over Tyr's OpenMP team; each thread unfolds its item's input into a
 * private column buffer [C/g R S, P Q] and multiplies it by the group's
 * weights with a single-threaded GEMM (the AVX-512 kernel of gemm_avx512.c,
 * else OpenBLAS), as matmul.c does.  A 1x1 convolution of stride 1 without
 * padding needs no unfolding: the input is the column matrix.  Backward:
 * the input gradient is W^T dY folded back (col2im), the weight gradient
 * dY col^T summed over the samples in per-thread buffers, the bias
 * gradient a sum over samples and positions.
 *
 * Pooling, batch norm: direct loops over (sample, channel) planes or
 * channels, statistics in double. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/memory.h"

/* below this many multiply-adds a call runs on the calling thread */
#define CONV_PAR_WORK (1 << 16)

static void blas_single_thread(void) {
  static _Atomic bool done;
  if (!done) {
    openblas_set_num_threads(1);
    done = true;
  }
}

/* C [M, N] (=|+=) op(A) op(B), single-threaded */
static void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float *C, int64_t ldc, bool acc) {
  if (!acc && tyr_cpu_sgemm_avx512(ta, tb, M, N, K, A, lda, B, ldb, C, ldc)) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, acc ? 1.0f : 0.0f, C, (int)ldc);
}
static void gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double *A,
                     int64_t lda, const double *B, int64_t ldb, double *C, int64_t ldc, bool acc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb, acc ? 1.0 : 0.0, C, (int)ldc);
}

/* Per-thread scratch that lives as long as the thread (OpenMP keeps its
 * threads): the column buffers and weight-gradient sums of every call
 * reuse it, instead of fresh memory whose pages the kernel would zero and
 * map again on every call.  slot 0: columns, slot 1: gradient sums. */
static _Thread_local void *scratch_ptr[2];
static _Thread_local size_t scratch_size[2];
static void *scratch(int slot, size_t bytes) {
  if (bytes > scratch_size[slot]) {
    free(scratch_ptr[slot]);
    size_t n = (bytes + 4095) & ~(size_t)4095;
    scratch_ptr[slot] = aligned_alloc(64, n);
    scratch_size[slot] = scratch_ptr[slot] ? n : 0;
  }
  return scratch_ptr[slot];
}

static bool conv_is_pointwise(const tyr_conv_geom *g) {
  return g->R == 1 && g->S == 1 && g->stride[0] == 1 && g->stride[1] == 1 && g->pad[0] == 0 &&
         g->pad[1] == 0;
}

/* The output columns [*q0, *q1) whose input column q * st + off lies in [0, W). */
static inline void valid_cols(int64_t off, int64_t st, int64_t W, int64_t Q, int64_t *q0,
                              int64_t *q1) {
  int64_t a = off >= 0 ? 0 : (-off + st - 1) / st;
  int64_t b = W - off <= 0 ? 0 : (W - off + st - 1) / st;
  if (b > Q) b = Q;
  if (a > b) a = b;
  *q0 = a;
  *q1 = b;
}

#define DEFINE_CONV(T, SUF)                                                                        \
  /* col [Cg R S, P Q] from the Cg channels of one sample at x */                                  \
  static void im2col_##SUF(const T *x, T *col, const tyr_conv_geom *g, int64_t Cg) {               \
    int64_t PQ = g->P * g->Q, HW = g->H * g->W, st = g->stride[1];                                 \
    for (int64_t c = 0; c < Cg; c++)                                                               \
      for (int64_t r = 0; r < g->R; r++)                                                           \
        for (int64_t s = 0; s < g->S; s++) {                                                       \
          T *row = col + ((c * g->R + r) * g->S + s) * PQ;                                         \
          const T *xc = x + c * HW;                                                                \
          int64_t off = s * g->dil[1] - g->pad[1], q0, q1;                                         \
          valid_cols(off, st, g->W, g->Q, &q0, &q1);                                               \
          for (int64_t p = 0; p < g->P; p++) {                                                     \
            int64_t ih = p * g->stride[0] - g->pad[0] + r * g->dil[0];                             \
            T *o = row + p * g->Q;                                                                 \
            if (ih < 0 || ih >= g->H) {                                                            \
              memset(o, 0, sizeof(T) * (size_t)g->Q);                                              \
              continue;                                                                            \
            }                                                                                      \
            const T *xr = xc + ih * g->W;                                                          \
            for (int64_t q = 0; q < q0; q++) o[q] = 0;                                             \
            if (st == 1)                                                                           \
              memcpy(o + q0, xr + q0 + off, sizeof(T) * (size_t)(q1 - q0));                        \
            else                                                                                   \
              for (int64_t q = q0; q < q1; q++) o[q] = xr[q * st + off];                           \
            for (int64_t q = q1; q < g->Q; q++) o[q] = 0;                                          \
          }                                                                                        \
        }                                                                                          \
  }                                                                                                \
  /* x (Cg channels of one sample) += fold(col) */                                                 \
  static void col2im_##SUF(const T *col, T *x, const tyr_conv_geom *g, int64_t Cg) {               \
    int64_t PQ = g->P * g->Q, HW = g->H * g->W, st = g->stride[1];                                 \
    for (int64_t c = 0; c < Cg; c++)                                                               \
      for (int64_t r = 0; r < g->R; r++)                                                           \
        for (int64_t s = 0; s < g->S; s++) {                                                       \
          const T *row = col + ((c * g->R + r) * g->S + s) * PQ;                                   \
          T *xc = x + c * HW;                                                                      \
          int64_t off = s * g->dil[1] - g->pad[1], q0, q1;                                         \
          valid_cols(off, st, g->W, g->Q, &q0, &q1);                                               \
          for (int64_t p = 0; p < g->P; p++) {                                                     \
            int64_t ih = p * g->stride[0] - g->pad[0] + r * g->dil[0];                             \
            if (ih < 0 || ih >= g->H) continue;                                                    \
            const T *o = row + p * g->Q;                                                           \
            T *xr = xc + ih * g->W;                                                                \
            if (st == 1) {                                                                         \
              _Pragma("omp simd") for (int64_t q = q0; q < q1; q++) xr[q + off] += o[q];           \
            } else {                                                                               \
              for (int64_t q = q0; q < q1; q++) xr[q * st + off] += o[q];                          \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
  }                                                                                                \
  /* depthwise (one input and one output channel per group): direct loops                          \
     over (sample, channel) planes instead of one tiny GEMM per plane */                           \
  static void dw_forward_##SUF(T *out, const T *x, const T *w, const T *bias,                      \
                               const tyr_conv_geom *g) {                                           \
    int64_t planes = g->N * g->C, HW = g->H * g->W, PQ = g->P * g->Q;                              \
    _Pragma("omp parallel for if (planes * PQ * g->R * g->S > CONV_PAR_WORK)") for (int64_t pl =   \
                                                                                        0;         \
                                                                                    pl < planes;   \
                                                                                    pl++) {        \
      int64_t c = pl % g->C;                                                                       \
      const T *xp = x + pl * HW, *wc = w + c * g->R * g->S;                                        \
      T *op = out + pl * PQ, b0 = bias ? bias[c] : (T)0;                                           \
      for (int64_t i = 0; i < PQ; i++) op[i] = b0;                                                 \
      for (int64_t r = 0; r < g->R; r++)                                                           \
        for (int64_t s = 0; s < g->S; s++) {                                                       \
          T wv = wc[r * g->S + s];                                                                 \
          int64_t off = s * g->dil[1] - g->pad[1], q0, q1;                                         \
          valid_cols(off, g->stride[1], g->W, g->Q, &q0, &q1);                                     \
          for (int64_t p = 0; p < g->P; p++) {                                                     \
            int64_t ih = p * g->stride[0] - g->pad[0] + r * g->dil[0];                             \
            if (ih < 0 || ih >= g->H) continue;                                                    \
            const T *xr = xp + ih * g->W;                                                          \
            T *o = op + p * g->Q;                                                                  \
            if (g->stride[1] == 1) {                                                               \
              _Pragma("omp simd") for (int64_t q = q0; q < q1; q++) o[q] += wv * xr[q + off];      \
            } else {                                                                               \
              for (int64_t q = q0; q < q1; q++) o[q] += wv * xr[q * g->stride[1] + off];           \
            }                                                                                      \
          }                                                                                        \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  static void dw_backward_##SUF(T *gx, T *gw, const T *gy, const T *x, const T *w,                 \
                                const tyr_conv_geom *g) {                                          \
    int64_t HW = g->H * g->W, PQ = g->P * g->Q, RS = g->R * g->S;                                  \
    /* per channel: every sample, so that gw needs no reduction across threads */                  \
    _Pragma("omp parallel for if (g->N * g->C * PQ * RS > CONV_PAR_WORK)") for (int64_t c = 0;     \
                                                                                c < g->C; c++) {   \
      const T *wc = w + c * RS;                                                                    \
      double acc[64];                                                                              \
      bool small = RS <= 64;                                                                       \
      if (gw && small)                                                                             \
        for (int64_t k = 0; k < RS; k++) acc[k] = 0;                                               \
      if (gw && !small)                                                                            \
        for (int64_t k = 0; k < RS; k++) gw[c * RS + k] = 0;                                       \
      for (int64_t n = 0; n < g->N; n++) {                                                         \
        int64_t pl = n * g->C + c;                                                                 \
        const T *gp = gy + pl * PQ, *xp = x ? x + pl * HW : NULL;                                  \
        T *gxp = gx ? gx + pl * HW : NULL;                                                         \
        if (gxp) memset(gxp, 0, sizeof(T) * (size_t)HW);                                           \
        for (int64_t r = 0; r < g->R; r++)                                                         \
          for (int64_t s = 0; s < g->S; s++) {                                                     \
            T wv = wc[r * g->S + s];                                                               \
            double a = 0;                                                                          \
            int64_t off = s * g->dil[1] - g->pad[1], q0, q1, st = g->stride[1];                    \
            valid_cols(off, st, g->W, g->Q, &q0, &q1);                                             \
            for (int64_t p = 0; p < g->P; p++) {                                                   \
              int64_t ih = p * g->stride[0] - g->pad[0] + r * g->dil[0];                           \
              if (ih < 0 || ih >= g->H) continue;                                                  \
              const T *gr = gp + p * g->Q;                                                         \
              if (gxp) {                                                                           \
                T *xr = gxp + ih * g->W;                                                           \
                if (st == 1) {                                                                     \
                  _Pragma("omp simd") for (int64_t q = q0; q < q1; q++) xr[q + off] += wv * gr[q]; \
                } else {                                                                           \
                  for (int64_t q = q0; q < q1; q++) xr[q * st + off] += wv * gr[q];                \
                }                                                                                  \
              }                                                                                    \
              if (gw) {                                                                            \
                const T *xr = xp + ih * g->W;                                                      \
                T part = 0;                                                                        \
                if (st == 1) {                                                                     \
                  _Pragma("omp simd reduction(+ : part)") for (int64_t q = q0; q < q1; q++)        \
                      part += gr[q] * xr[q + off];                                                 \
                } else {                                                                           \
                  for (int64_t q = q0; q < q1; q++) part += gr[q] * xr[q * st + off];              \
                }                                                                                  \
                a += (double)part;                                                                 \
              }                                                                                    \
            }                                                                                      \
            if (gw && small) acc[r * g->S + s] += a;                                               \
            if (gw && !small) gw[c * RS + r * g->S + s] += (T)a;                                   \
          }                                                                                        \
      }                                                                                            \
      if (gw && small)                                                                             \
        for (int64_t k = 0; k < RS; k++) gw[c * RS + k] = (T)acc[k];                               \
    }                                                                                              \
  }                                                                                                \
  static void conv2d_##SUF(T *out, const T *x, const T *w, const T *bias,                          \
                           const tyr_conv_geom *g) {                                               \
    int64_t G = g->groups, Cg = g->C / G, Kg = g->K / G, CRS = Cg * g->R * g->S;                   \
    int64_t PQ = g->P * g->Q, HW = g->H * g->W, items = g->N * G;                                  \
    bool pw = conv_is_pointwise(g);                                                                \
    if (Cg == 1 && Kg == 1) {                                                                      \
      dw_forward_##SUF(out, x, w, bias, g);                                                        \
      return;                                                                                      \
    }                                                                                              \
    double work = (double)items * (double)Kg * (double)CRS * (double)PQ;                           \
    bool par = work > CONV_PAR_WORK && items > 1;                                                  \
    _Pragma("omp parallel if (par)") {                                                             \
      T *col = pw ? NULL : scratch(0, sizeof(T) * (size_t)(CRS * PQ));                             \
      _Pragma("omp for schedule(static)") for (int64_t it = 0; it < items; it++) {                 \
        int64_t n = it / G, gr = it % G;                                                           \
        const T *xg = x + (n * g->C + gr * Cg) * HW;                                               \
        const T *cm = xg;                                                                          \
        if (!pw) {                                                                                 \
          im2col_##SUF(xg, col, g, Cg);                                                            \
          cm = col;                                                                                \
        }                                                                                          \
        T *og = out + (n * g->K + gr * Kg) * PQ;                                                   \
        gemm_##SUF(false, false, Kg, PQ, CRS, w + gr * Kg * CRS, CRS, cm, PQ, og, PQ, false);      \
        if (bias)                                                                                  \
          for (int64_t k = 0; k < Kg; k++) {                                                       \
            T bk = bias[gr * Kg + k];                                                              \
            T *ok = og + k * PQ;                                                                   \
            for (int64_t i = 0; i < PQ; i++) ok[i] += bk;                                          \
          }                                                                                        \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  static void conv2d_backward_##SUF(T *gx, T *gw, T *gb, const T *gy, const T *x, const T *w,      \
                                    const tyr_conv_geom *g) {                                      \
    int64_t G = g->groups, Cg = g->C / G, Kg = g->K / G, CRS = Cg * g->R * g->S;                   \
    int64_t PQ = g->P * g->Q, HW = g->H * g->W, items = g->N * G;                                  \
    bool pw = conv_is_pointwise(g);                                                                \
    double work = (double)items * (double)Kg * (double)CRS * (double)PQ;                           \
    bool par = work > CONV_PAR_WORK && items > 1;                                                  \
    if (gb) {                                                                                      \
      _Pragma("omp parallel for if (par && g->K > 1)") for (int64_t k = 0; k < g->K; k++) {        \
        double acc = 0;                                                                            \
        for (int64_t n = 0; n < g->N; n++) {                                                       \
          const T *r = gy + (n * g->K + k) * PQ;                                                   \
          for (int64_t i = 0; i < PQ; i++) acc += r[i];                                            \
        }                                                                                          \
        gb[k] = (T)acc;                                                                            \
      }                                                                                            \
    }                                                                                              \
    if (!gx && !gw) return;                                                                        \
    if (Cg == 1 && Kg == 1) {                                                                      \
      dw_backward_##SUF(gx, gw, gy, x, w, g);                                                      \
      return;                                                                                      \
    }                                                                                              \
    int nt = par ? omp_get_max_threads() : 1;                                                      \
    int64_t wsz = g->K * CRS;                                                                      \
    /* per-thread weight-gradient sums (thread 0 writes gw itself) */                              \
    T **sums = gw && nt > 1 ? calloc((size_t)nt, sizeof(T *)) : NULL;                              \
    if (gw) memset(gw, 0, sizeof(T) * (size_t)wsz);                                                \
    _Pragma("omp parallel num_threads(nt) if (nt > 1)") {                                          \
      int tid = omp_get_thread_num();                                                              \
      T *mygw = gw;                                                                                \
      if (gw && tid > 0) {                                                                         \
        mygw = scratch(1, sizeof(T) * (size_t)wsz);                                                \
        memset(mygw, 0, sizeof(T) * (size_t)wsz);                                                  \
        sums[tid] = mygw;                                                                          \
      }                                                                                            \
      T *col = pw ? NULL : scratch(0, sizeof(T) * (size_t)(CRS * PQ));                             \
      _Pragma("omp for schedule(static)") for (int64_t it = 0; it < items; it++) {                 \
        int64_t n = it / G, gr = it % G;                                                           \
        const T *gyg = gy + (n * g->K + gr * Kg) * PQ;                                             \
        const T *wg = w + gr * Kg * CRS;                                                           \
        if (gx) {                                                                                  \
          T *gxg = gx + (n * g->C + gr * Cg) * HW;                                                 \
          if (pw) {                                                                                \
            gemm_##SUF(true, false, CRS, PQ, Kg, wg, CRS, gyg, PQ, gxg, PQ, false);                \
          } else {                                                                                 \
            gemm_##SUF(true, false, CRS, PQ, Kg, wg, CRS, gyg, PQ, col, PQ, false);                \
            memset(gxg, 0, sizeof(T) * (size_t)(Cg * HW));                                         \
            col2im_##SUF(col, gxg, g, Cg);                                                         \
          }                                                                                        \
        }                                                                                          \
        if (mygw) {                                                                                \
          const T *xg = x + (n * g->C + gr * Cg) * HW;                                             \
          const T *cm = xg;                                                                        \
          if (!pw) {                                                                               \
            im2col_##SUF(xg, col, g, Cg);                                                          \
            cm = col;                                                                              \
          }                                                                                        \
          gemm_##SUF(false, true, Kg, CRS, PQ, gyg, PQ, cm, PQ, mygw + gr * Kg * CRS, CRS, true);  \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
    if (sums) {                                                                                    \
      for (int t = 1; t < nt; t++)                                                                 \
        if (sums[t])                                                                               \
          for (int64_t i = 0; i < wsz; i++) gw[i] += sums[t][i];                                   \
      free(sums);                                                                                  \
    }                                                                                              \
  }

DEFINE_CONV(float, f32)
DEFINE_CONV(double, f64)

void tyr_cpu_conv2d(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *w,
                    const tyr_tensor *bias, const tyr_conv_geom *g) {
  blas_single_thread();
  if (out->dtype == TYR_F64)
    conv2d_f64(tyr_data_ptr(out), tyr_data_ptr(x), tyr_data_ptr(w),
               bias ? tyr_data_ptr(bias) : NULL, g);
  else
    conv2d_f32(tyr_data_ptr(out), tyr_data_ptr(x), tyr_data_ptr(w),
               bias ? tyr_data_ptr(bias) : NULL, g);
}

void tyr_cpu_conv2d_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                             const tyr_tensor *x, const tyr_tensor *w, const tyr_conv_geom *g) {
  blas_single_thread();
#define P(t) ((t) ? tyr_data_ptr(t) : NULL)
  if (gy->dtype == TYR_F64)
    conv2d_backward_f64(P(gx), P(gw), P(gb), tyr_data_ptr(gy), P(x), tyr_data_ptr(w), g);
  else
    conv2d_backward_f32(P(gx), P(gw), P(gb), tyr_data_ptr(gy), P(x), tyr_data_ptr(w), g);
#undef P
}

/* ---- pooling ------------------------------------------------------------------ */
/* The input rows [*h0, *h1) and columns [*w0, *w1) of output (p, q), and the
 * divisor of an average. */
static void pool_window(const tyr_pool_geom *g, int64_t p, int64_t q, int64_t *h0, int64_t *h1,
                        int64_t *w0, int64_t *w1, int64_t *div) {
  if (g->kind == TYR_POOL_ADAPTIVE_AVG) {
    *h0 = p * g->H / g->P;
    *h1 = ((p + 1) * g->H + g->P - 1) / g->P;
    *w0 = q * g->W / g->Q;
    *w1 = ((q + 1) * g->W + g->Q - 1) / g->Q;
    *div = (*h1 - *h0) * (*w1 - *w0);
    return;
  }
  int64_t hs = p * g->stride[0] - g->pad[0], ws = q * g->stride[1] - g->pad[1];
  *h0 = hs < 0 ? 0 : hs;
  *w0 = ws < 0 ? 0 : ws;
  *h1 = hs + g->kernel[0] > g->H ? g->H : hs + g->kernel[0];
  *w1 = ws + g->kernel[1] > g->W ? g->W : ws + g->kernel[1];
  *div = g->kernel[0] * g->kernel[1];
}

#define DEFINE_POOL(T, SUF)                                                                        \
  static void pool2d_##SUF(T *out, int32_t *idx, const T *x, const tyr_pool_geom *g) {             \
    int64_t planes = g->N * g->C, HW = g->H * g->W, PQ = g->P * g->Q;                              \
    _Pragma("omp parallel for if (planes * PQ > 32768)") for (int64_t pl = 0; pl < planes; pl++) { \
      const T *xp = x + pl * HW;                                                                   \
      for (int64_t p = 0; p < g->P; p++)                                                           \
        for (int64_t q = 0; q < g->Q; q++) {                                                       \
          int64_t h0, h1, w0, w1, div;                                                             \
          pool_window(g, p, q, &h0, &h1, &w0, &w1, &div);                                          \
          int64_t o = pl * PQ + p * g->Q + q;                                                      \
          if (g->kind == TYR_POOL_MAX) {                                                           \
            T best = xp[h0 * g->W + w0];                                                           \
            int64_t at = h0 * g->W + w0;                                                           \
            for (int64_t h = h0; h < h1; h++)                                                      \
              for (int64_t w = w0; w < w1; w++) {                                                  \
                T v = xp[h * g->W + w];                                                            \
                if (v > best || (isnan(v) && !isnan(best))) {                                      \
                  best = v;                                                                        \
                  at = h * g->W + w;                                                               \
                }                                                                                  \
              }                                                                                    \
            out[o] = best;                                                                         \
            idx[o] = (int32_t)at;                                                                  \
          } else {                                                                                 \
            double acc = 0;                                                                        \
            for (int64_t h = h0; h < h1; h++)                                                      \
              for (int64_t w = w0; w < w1; w++) acc += xp[h * g->W + w];                           \
            out[o] = (T)(acc / (double)div);                                                       \
          }                                                                                        \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  static void pool2d_backward_##SUF(T *gx, const T *gy, const int32_t *idx,                        \
                                    const tyr_pool_geom *g) {                                      \
    int64_t planes = g->N * g->C, HW = g->H * g->W, PQ = g->P * g->Q;                              \
    _Pragma("omp parallel for if (planes * PQ > 32768)") for (int64_t pl = 0; pl < planes; pl++) { \
      T *gp = gx + pl * HW;                                                                        \
      memset(gp, 0, sizeof(T) * (size_t)HW);                                                       \
      for (int64_t p = 0; p < g->P; p++)                                                           \
        for (int64_t q = 0; q < g->Q; q++) {                                                       \
          int64_t o = pl * PQ + p * g->Q + q;                                                      \
          if (g->kind == TYR_POOL_MAX) {                                                           \
            gp[idx[o]] += gy[o];                                                                   \
            continue;                                                                              \
          }                                                                                        \
          int64_t h0, h1, w0, w1, div;                                                             \
          pool_window(g, p, q, &h0, &h1, &w0, &w1, &div);                                          \
          T v = (T)(gy[o] / (double)div);                                                          \
          for (int64_t h = h0; h < h1; h++)                                                        \
            for (int64_t w = w0; w < w1; w++) gp[h * g->W + w] += v;                               \
        }                                                                                          \
    }                                                                                              \
  }

DEFINE_POOL(float, f32)
DEFINE_POOL(double, f64)

void tyr_cpu_pool2d(tyr_tensor *out, tyr_tensor *idx, const tyr_tensor *x, const tyr_pool_geom *g) {
  int32_t *ip = idx ? tyr_data_ptr(idx) : NULL;
  if (out->dtype == TYR_F64)
    pool2d_f64(tyr_data_ptr(out), ip, tyr_data_ptr(x), g);
  else
    pool2d_f32(tyr_data_ptr(out), ip, tyr_data_ptr(x), g);
}

void tyr_cpu_pool2d_backward(tyr_tensor *gx, const tyr_tensor *gy, const tyr_tensor *idx,
                             const tyr_pool_geom *g) {
  const int32_t *ip = idx ? tyr_data_ptr(idx) : NULL;
  if (gx->dtype == TYR_F64)
    pool2d_backward_f64(tyr_data_ptr(gx), tyr_data_ptr(gy), ip, g);
  else
    pool2d_backward_f32(tyr_data_ptr(gx), tyr_data_ptr(gy), ip, g);
}

/* ---- batch norm ------------------------------------------------------------------ */
#define DEFINE_BN(T, SUF)                                                                          \
  static void batch_norm_##SUF(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, T *rm,  \
                               T *rv, int64_t N, int64_t C, int64_t M, bool training,              \
                               double momentum, double eps) {                                      \
    int64_t cnt = N * M;                                                                           \
    _Pragma("omp parallel for if (N * C * M > 32768)") for (int64_t c = 0; c < C; c++) {           \
      double mu, rs;                                                                               \
      if (training) {                                                                              \
        double s = 0;                                                                              \
        for (int64_t n = 0; n < N; n++) {                                                          \
          const T *xr = x + (n * C + c) * M;                                                       \
          for (int64_t i = 0; i < M; i++) s += xr[i];                                              \
        }                                                                                          \
        mu = s / (double)cnt;                                                                      \
        double v = 0;                                                                              \
        for (int64_t n = 0; n < N; n++) {                                                          \
          const T *xr = x + (n * C + c) * M;                                                       \
          for (int64_t i = 0; i < M; i++) {                                                        \
            double d = xr[i] - mu;                                                                 \
            v += d * d;                                                                            \
          }                                                                                        \
        }                                                                                          \
        double var = v / (double)cnt;                                                              \
        rs = 1.0 / sqrt(var + eps);                                                                \
        if (rm) rm[c] = (T)((1 - momentum) * rm[c] + momentum * mu);                               \
        if (rv)                                                                                    \
          rv[c] =                                                                                  \
              (T)((1 - momentum) * rv[c] + momentum * (cnt > 1 ? v / (double)(cnt - 1) : var));    \
      } else {                                                                                     \
        mu = rm[c];                                                                                \
        rs = 1.0 / sqrt((double)rv[c] + eps);                                                      \
      }                                                                                            \
      mean[c] = (T)mu;                                                                             \
      rstd[c] = (T)rs;                                                                             \
      T sc = (T)(rs * (w ? w[c] : 1.0));                                                           \
      T sh = (T)((b ? b[c] : 0.0) - mu * rs * (w ? w[c] : 1.0));                                   \
      for (int64_t n = 0; n < N; n++) {                                                            \
        const T *xr = x + (n * C + c) * M;                                                         \
        T *yr = y + (n * C + c) * M;                                                               \
        for (int64_t i = 0; i < M; i++) yr[i] = xr[i] * sc + sh;                                   \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  static void batch_norm_backward_##SUF(T *gx, T *gw, T *gb, const T *gy, const T *x, const T *w,  \
                                        const T *mean, const T *rstd, int64_t N, int64_t C,        \
                                        int64_t M, bool training) {                                \
    double cnt = (double)(N * M);                                                                  \
    _Pragma("omp parallel for if (N * C * M > 32768)") for (int64_t c = 0; c < C; c++) {           \
      double mu = mean[c], rs = rstd[c], sdy = 0, sdyx = 0;                                        \
      for (int64_t n = 0; n < N; n++) {                                                            \
        const T *xr = x + (n * C + c) * M, *gr = gy + (n * C + c) * M;                             \
        for (int64_t i = 0; i < M; i++) {                                                          \
          sdy += gr[i];                                                                            \
          sdyx += gr[i] * ((xr[i] - mu) * rs);                                                     \
        }                                                                                          \
      }                                                                                            \
      if (gw) gw[c] = (T)sdyx;                                                                     \
      if (gb) gb[c] = (T)sdy;                                                                      \
      if (!gx) continue;                                                                           \
      double wc = w ? w[c] : 1.0;                                                                  \
      double a = wc * rs, mdy = training ? sdy / cnt : 0, mdyx = training ? sdyx / cnt : 0;        \
      for (int64_t n = 0; n < N; n++) {                                                            \
        const T *xr = x + (n * C + c) * M, *gr = gy + (n * C + c) * M;                             \
        T *o = gx + (n * C + c) * M;                                                               \
        for (int64_t i = 0; i < M; i++) o[i] = (T)(a * (gr[i] - mdy - (xr[i] - mu) * rs * mdyx));  \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_BN(float, f32)
DEFINE_BN(double, f64)

#define PTR(t) ((t) ? tyr_data_ptr(t) : NULL)
void tyr_cpu_batch_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                        const tyr_tensor *w, const tyr_tensor *b, tyr_tensor *running_mean,
                        tyr_tensor *running_var, bool training, double momentum, double eps) {
  int64_t N = x->shape[0], C = x->shape[1], M = x->shape[2];
  if (x->dtype == TYR_F64)
    batch_norm_f64(PTR(y), PTR(mean), PTR(rstd), PTR(x), PTR(w), PTR(b), PTR(running_mean),
                   PTR(running_var), N, C, M, training, momentum, eps);
  else
    batch_norm_f32(PTR(y), PTR(mean), PTR(rstd), PTR(x), PTR(w), PTR(b), PTR(running_mean),
                   PTR(running_var), N, C, M, training, momentum, eps);
}

void tyr_cpu_batch_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                 const tyr_tensor *gy, const tyr_tensor *x, const tyr_tensor *w,
                                 const tyr_tensor *mean, const tyr_tensor *rstd, bool training) {
  int64_t N = x->shape[0], C = x->shape[1], M = x->shape[2];
  if (x->dtype == TYR_F64)
    batch_norm_backward_f64(PTR(gx), PTR(gw), PTR(gb), PTR(gy), PTR(x), PTR(w), PTR(mean),
                            PTR(rstd), N, C, M, training);
  else
    batch_norm_backward_f32(PTR(gx), PTR(gw), PTR(gb), PTR(gy), PTR(x), PTR(w), PTR(mean),
                            PTR(rstd), N, C, M, training);
}
#undef PTR
