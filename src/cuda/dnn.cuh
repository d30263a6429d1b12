/* cuDNN for the CUDA backend (conv.cu, attention_cudnn.cu): one handle per
 * device, bound to the device's stream, and status checks that raise
 * TYR_ERR_DEVICE naming the call site and cuDNN's message. */
#ifndef TYR_CUDA_DNN_CUH
#define TYR_CUDA_DNN_CUH
#include <cudnn.h>

#include "cuda/cuda_internal.cuh"

bool tcu_dnn_check(cudnnStatus_t st, const char *file, int line, const char *fn, const char *what);
#define DNN_CHECK(call) tcu_dnn_check((call), __FILE__, __LINE__, __func__, #call)

/* The device's cuDNN handle on stream st; NULL after raising.  Handles are
 * made on first use and kept for the process; like the rest of the
 * backend's per-device state they are used from one thread at a time. */
cudnnHandle_t tcu_dnn_handle(int dev, cudaStream_t st);

/* cuDNN's data type for a tensor dtype (f32 for those it has no type for). */
cudnnDataType_t tcu_dnn_dtype(tyr_dtype dt);
#endif
