/* Random tensors on the GPU: element i is tyr__random_value(seed, counter
 * + i) from core/philox.h, the very code the CPU runs, then converted to
 * the tensor's dtype as the CPU converts it, so both give the same bits. */
#include "core/philox.h"
#include "cuda/cuda_internal.cuh"

__global__ void random_kernel(void *p, int dt, int kind, double p0, double p1, uint64_t seed,
                              uint64_t counter, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    double v = tyr__random_value(kind, p0, p1, seed, counter + (uint64_t)i);
    if (dt == TYR_F32)
      ((float *)p)[i] = (float)v;
    else if (dt == TYR_F64)
      ((double *)p)[i] = v;
    else
      st_any(p, dt, i, v);
  }
}

void tcu_random(tyr_tensor *out, tyr_random_kind kind, double p0, double p1, uint64_t seed,
                uint64_t counter) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  /* the counter is the host's: a captured kernel would draw the same numbers
     at every replay of the graph */
  if (tcu_refuse_capture(out->device.index, "tcu_random",
                         "drawing random numbers (dropout, tyr_rand, tyr_randint: the Philox "
                         "counter is kept on the host, so every replay would repeat the "
                         "capture's numbers)"))
    return;
  /* out is a fresh contiguous tensor (the table's contract) */
  random_kernel<<<tcu_blocks(n, 256, out->device.index), 256, 0, st>>>(
      tyr_data_ptr(out), (int)out->dtype, (int)kind, p0, p1, seed, counter, n);
  LAUNCH_CHECK();
}
