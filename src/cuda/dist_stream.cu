/* The device's stream, for the NCCL backend of src/dist (C code): NCCL's own
 * stream waits on it before a collective, and it waits on NCCL's after. */
#include "cuda/cuda_internal.cuh"

extern "C" void *tcu_dist_stream(int dev) {
  return (void *)tcu_enter(TYR_DEVICE_CUDA(dev));
}
