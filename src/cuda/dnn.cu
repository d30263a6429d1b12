/* cuDNN handles and status checks shared by the CUDA backend (dnn.cuh). */
#include "cuda/dnn.cuh"

bool tcu_dnn_check(cudnnStatus_t st, const char *file, int line, const char *fn, const char *what) {
  if (st == CUDNN_STATUS_SUCCESS) return true;
  tcu_fail(file, line, fn, "%s: %s", what, cudnnGetErrorString(st));
  return false;
}

#define MAX_DEVICES 64
static cudnnHandle_t g_handle[MAX_DEVICES];

cudnnHandle_t tcu_dnn_handle(int dev, cudaStream_t st) {
  if (dev < 0 || dev >= MAX_DEVICES) return NULL;
  if (!g_handle[dev] && !DNN_CHECK(cudnnCreate(&g_handle[dev]))) return NULL;
  if (!DNN_CHECK(cudnnSetStream(g_handle[dev], st))) return NULL;
  return g_handle[dev];
}

cudnnDataType_t tcu_dnn_dtype(tyr_dtype dt) {
  switch (dt) {
  case TYR_F64:
    return CUDNN_DATA_DOUBLE;
  case TYR_BF16:
    return CUDNN_DATA_BFLOAT16;
  case TYR_F16:
    return CUDNN_DATA_HALF;
  default:
    return CUDNN_DATA_FLOAT;
  }
}
