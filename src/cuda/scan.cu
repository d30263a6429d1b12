/* CUDA prefix sums along one dim (tyr_cumsum): one thread per line of the
 * [outer, n, inner] view, summing in order (in double for floats, as the
 * CPU does; consecutive threads read consecutive inner elements). */
#include "cuda/cuda_internal.cuh"

template <typename T, typename A>
__global__ void cumsum_lines(T *dst, const T *src, int64_t lines, int64_t n, int64_t inner) {
  GRID_LOOP(l, 0, lines) {
    int64_t o = l / inner, in = l % inner, base = o * n * inner + in;
    A acc = 0;
    for (int64_t i = 0; i < n; i++) {
      acc += (A)src[base + i * inner];
      dst[base + i * inner] = (T)acc;
    }
  }
}

extern "C" void tcu_cumsum(tyr_tensor *out, const tyr_tensor *x, int dim) {
  cudaStream_t st = tcu_enter(x->device);
  if (!st) return;
  int64_t n = x->shape[dim], outer = 1, inner = 1;
  for (int i = 0; i < dim; i++) outer *= x->shape[i];
  for (int i = dim + 1; i < x->rank; i++) inner *= x->shape[i];
  int64_t lines = outer * inner;
  if (lines == 0 || n == 0) return;
  unsigned blocks = tcu_blocks(lines, 256, x->device.index);
  if (x->dtype == TYR_F32)
    cumsum_lines<float, double><<<blocks, 256, 0, st>>>(
        (float *)tyr_data_ptr(out), (const float *)tyr_data_ptr(x), lines, n, inner);
  else if (x->dtype == TYR_F64)
    cumsum_lines<double, double><<<blocks, 256, 0, st>>>(
        (double *)tyr_data_ptr(out), (const double *)tyr_data_ptr(x), lines, n, inner);
  else if (x->dtype == TYR_I64)
    cumsum_lines<long long, long long><<<blocks, 256, 0, st>>>(
        (long long *)tyr_data_ptr(out), (const long long *)tyr_data_ptr(x), lines, n, inner);
  LAUNCH_CHECK();
}
