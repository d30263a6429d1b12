/* CPU reductions over one dim or all elements (input contiguous). */
#include <math.h>

#include "cpu/cpu.h"
#include "cpu/parallel.h"

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
