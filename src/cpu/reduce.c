/* CPU reductions over one dim or all elements (input contiguous). */
#include <math.h>
#include <omp.h>

#include "cpu/cpu.h"
#include "cpu/parallel.h"

/* Sums (or means) over the middle dim of [outer, n, inner] with inner > 1:
 * each task adds the n rows of a block of columns into double accumulators,
 * reading every row contiguously (a column at a time, every element would
 * be a cache line of its own).  Each output is the same double sum, in the
 * same order, stored the same way, as the per-element loop below. */
#define SUM_COLS 512 /* columns a task accumulates at most: 4 KB of doubles */
static void sum_rows(bool mean, tyr_dtype da, tyr_dtype dout, char *po, const char *pa,
                     int64_t outer, int64_t n, int64_t inner) {
  const size_t ea = tyr_dtype_size(da), eo = tyr_dtype_size(dout);
  /* blocks of a multiple of 16 columns, enough of them for every thread */
  int64_t nt = outer >= omp_get_max_threads() ? 1 : omp_get_max_threads();
  int64_t cols = ((inner + nt - 1) / nt + 15) / 16 * 16;
  cols = cols < SUM_COLS ? cols : SUM_COLS;
  int64_t blocks = (inner + cols - 1) / cols;
  TYR_PAR_FOR(
      outer * blocks > 1 && outer * inner * n > 32768, "omp parallel for collapse(2)",
      for (int64_t o = 0; o < outer; o++) {
        for (int64_t cb = 0; cb < blocks; cb++) {
          int64_t j0 = cb * cols, w = inner - j0 < cols ? inner - j0 : cols;
          double acc[SUM_COLS];
          for (int64_t j = 0; j < w; j++) acc[j] = 0;
          for (int64_t k = 0; k < n; k++) {
            int64_t off = (o * n + k) * inner + j0;
            if (da == TYR_F64) {
              const double *x = (const double *)pa + off;
              _Pragma("omp simd") for (int64_t j = 0; j < w; j++) acc[j] += x[j];
            } else if (da == TYR_F32) {
              const float *x = (const float *)pa + off;
              _Pragma("omp simd") for (int64_t j = 0; j < w; j++) acc[j] += (double)x[j];
            } else {
              for (int64_t j = 0; j < w; j++)
                acc[j] += tyr__load_f64(pa + (off + j) * (int64_t)ea, da);
            }
          }
          int64_t oo = o * inner + j0;
          for (int64_t j = 0; j < w; j++) {
            double v = mean ? acc[j] / (double)n : acc[j];
            if (dout == TYR_F32)
              ((float *)po)[oo + j] = (float)v;
            else if (dout == TYR_F64)
              ((double *)po)[oo + j] = v;
            else
              tyr__store_f64(po + (oo + j) * (int64_t)eo, dout, v);
          }
        }
      });
}

void tyr_cpu_reduce(tyr_reduce_op op, tyr_tensor *out, const tyr_tensor *a, int dim) {
  int64_t outer = 1, n = 1, inner = 1;
  if (dim < 0) {
    n = tyr_numel(a);
  } else {
    for (int i = 0; i < dim; i++) outer *= a->shape[i];
    n = a->shape[dim];
    for (int i = dim + 1; i < a->rank; i++) inner *= a->shape[i];
  }
  size_t ea = tyr_dtype_size(a->dtype), eo = tyr_dtype_size(out->dtype);
  const char *pa = (const char *)a->storage->data + a->offset * (int64_t)ea;
  char *po = (char *)out->storage->data + out->offset * (int64_t)eo;
  bool f32 = a->dtype == TYR_F32, f64 = a->dtype == TYR_F64;
  if ((op == TYR_RED_SUM || op == TYR_RED_MEAN) && inner > 1) {
    sum_rows(op == TYR_RED_MEAN, a->dtype, out->dtype, po, pa, outer, n, inner);
    return;
  }
  TYR_PAR_FOR(
      outer * inner > 64 && outer * inner * n > 32768, "omp parallel for collapse(2)",
      for (int64_t o = 0; o < outer; o++) {
        for (int64_t in = 0; in < inner; in++) {
          int64_t base = o * n * inner + in;
          double acc = 0, best = 0;
          int64_t besti = 0;
          if (op == TYR_RED_SUM || op == TYR_RED_MEAN) {
            if (f32 && inner == 1) {
              const float *x = (const float *)pa + base;
              double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
              int64_t k = 0;
              for (; k + 4 <= n; k += 4) {
                s0 += x[k];
                s1 += x[k + 1];
                s2 += x[k + 2];
                s3 += x[k + 3];
              }
              for (; k < n; k++) s0 += x[k];
              acc = (s0 + s1) + (s2 + s3);
            } else {
              for (int64_t k = 0; k < n; k++) {
                int64_t off = base + k * inner;
                acc += f32   ? ((const float *)pa)[off]
                       : f64 ? ((const double *)pa)[off]
                             : tyr__load_f64(pa + off * (int64_t)ea, a->dtype);
              }
            }
            if (op == TYR_RED_MEAN) acc /= (double)n;
          } else {
            bool want_max = op == TYR_RED_MAX || op == TYR_RED_ARGMAX;
            for (int64_t k = 0; k < n; k++) {
              int64_t off = base + k * inner;
              double v = f32   ? ((const float *)pa)[off]
                         : f64 ? ((const double *)pa)[off]
                               : tyr__load_f64(pa + off * (int64_t)ea, a->dtype);
              if (k == 0 || (want_max ? (v > best || isnan(v)) : (v < best || isnan(v)))) {
                if (k > 0 && isnan(best)) continue; /* first NaN wins */
                best = v;
                besti = k;
              }
            }
            acc = (op == TYR_RED_ARGMAX || op == TYR_RED_ARGMIN) ? (double)besti : best;
          }
          int64_t oi = o * inner + in;
          if (out->dtype == TYR_F32)
            ((float *)po)[oi] = (float)acc;
          else if (out->dtype == TYR_F64)
            ((double *)po)[oi] = acc;
          else if (out->dtype == TYR_I64 && (op == TYR_RED_ARGMAX || op == TYR_RED_ARGMIN))
            ((int64_t *)po)[oi] = besti;
          else
            tyr__store_f64(po + oi * (int64_t)eo, out->dtype, acc);
        }
      });
}
