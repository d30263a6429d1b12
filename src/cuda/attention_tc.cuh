/* The tensor-core attention kernels (attention_tc.cu) seen from the
 * general ones (attention.cu): each entry runs the tensor-core kernel when
 * it applies to the call and returns true (also after raising a launch
 * error), or returns false without doing anything, and the caller runs the
 * CUDA-core kernel. */
#ifndef TYR_CUDA_ATTENTION_TC_CUH
#define TYR_CUDA_ATTENTION_TC_CUH
#include "cuda/cuda_internal.cuh"

bool tcu_sdpa_tc(cudaStream_t st, tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q,
                 const tyr_tensor *k, const tyr_tensor *v, const tyr_tensor *mask,
                 const tyr_tensor *doc, bool causal, int64_t window, double scale);
bool tcu_sdpa_tc_backward(cudaStream_t st, tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                          const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                          const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                          const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                          int64_t window, double scale);
#endif
