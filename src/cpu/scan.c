/* CPU prefix sums along one dim (tyr_cumsum).  x is seen as [outer, n,
 * inner]; each of the outer * inner lines is summed in order, in double for
 * floats (as the reductions accumulate), in int64 for i64. */
#include "cpu/cpu.h"
#include "cpu/parallel.h"

void tyr_cpu_cumsum(tyr_tensor *out, const tyr_tensor *x, int dim) {
  int64_t n = x->shape[dim], outer = 1, inner = 1;
  for (int i = 0; i < dim; i++) outer *= x->shape[i];
  for (int i = dim + 1; i < x->rank; i++) inner *= x->shape[i];
  int64_t lines = outer * inner;
#define CUMSUM_LOOP(T, ACC)                                                                        \
  do {                                                                                             \
    const T *src = TYR_BASE(x, T) + x->offset;                                                     \
    T *dst = TYR_BASE(out, T) + out->offset;                                                       \
    TYR_PAR_FOR(                                                                                   \
        lines *n > 32768, "omp parallel for", for (int64_t l = 0; l < lines; l++) {                \
          int64_t o = l / inner, in = l % inner, base = o * n * inner + in;                        \
          ACC acc = 0;                                                                             \
          for (int64_t i = 0; i < n; i++) {                                                        \
            acc += (ACC)src[base + i * inner];                                                     \
            dst[base + i * inner] = (T)acc;                                                        \
          }                                                                                        \
        });                                                                                        \
  } while (0)
  if (x->dtype == TYR_F32)
    CUMSUM_LOOP(float, double);
  else if (x->dtype == TYR_F64)
    CUMSUM_LOOP(double, double);
  else if (x->dtype == TYR_I64)
    CUMSUM_LOOP(int64_t, int64_t);
#undef CUMSUM_LOOP
}
