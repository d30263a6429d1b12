/* The tensor-core attention kernels (attention_tc.cu) seen from the
 * general ones (attention.cu): each entry runs the tensor-core kernel when
 * it applies to the call and returns true (also after raising a launch
 * error), or returns false without doing anything, and the caller tries the
 * next: cuDNN, then the tensor-core kernel, then the CUDA-core kernel. */
#ifndef TYR_CUDA_ATTENTION_TC_CUH
#define TYR_CUDA_ATTENTION_TC_CUH
#include "cuda/cuda_internal.cuh"
#include "tyr/cuda.h"

bool tcu_sdpa_tc(cudaStream_t st, tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q,
                 const tyr_tensor *k, const tyr_tensor *v, const tyr_tensor *mask,
                 const tyr_tensor *doc, bool causal, int64_t window, double scale);
bool tcu_sdpa_tc_backward(cudaStream_t st, tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                          const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                          const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                          const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                          int64_t window, double scale);

/* cuDNN's fused flash attention (attention_cudnn.cu), same contract. */
bool tcu_sdpa_cudnn(cudaStream_t st, tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q,
                    const tyr_tensor *k, const tyr_tensor *v, const tyr_tensor *mask,
                    const tyr_tensor *doc, bool causal, int64_t window, double scale);
bool tcu_sdpa_cudnn_backward(cudaStream_t st, tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                             const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                             const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                             const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                             int64_t window, double scale);

/* For tests (also defined, as stubs, in builds without the backend:
 * cuda_api.c): builds the cuDNN attention graphs' operations without a GPU
 * (0, or -1 with err), whether device dev runs the cuDNN path (cuDNN's
 * version, or 0), the deterministic backward's workspace limit in bytes
 * (0: none; -1: TYR_CUDA_ATTN_WORKSPACE_MB's, read again), and how many
 * cuDNN calls (batch chunks) the calling thread's last cuDNN backward made. */
extern "C" int tcu_sdpa_cudnn_check_graphs(char *err, size_t n);
extern "C" int tcu_sdpa_cudnn_device(int dev);
extern "C" void tcu_sdpa_cudnn_set_workspace_limit(long long bytes);
extern "C" int tcu_sdpa_cudnn_backward_calls(void);

/* Records which kernel ran this thread's last attention call
 * (tyr_cuda_attention_last). */
void tcu_attention_ran(tyr_cuda_attention_kernel kernel);
#endif
