/* The public CUDA functions of a build without the CUDA backend: no GPU is
 * ever available.  With the backend (TYR_HAVE_CUDA) they live in
 * cuda_runtime.cu. */
#include "tyr/cuda.h"

#ifndef TYR_HAVE_CUDA
static int no_backend(tyr_site s, const char *op) {
  return tyr_raise(TYR_ERR_DEVICE, s, op, "this build of tyr has no CUDA backend");
}

bool tyr_cuda_available(void) {
  return false;
}
int tyr_cuda_device_count(void) {
  return 0;
}
int tyr_cuda_memory_stats_at(tyr_site s, int dev, tyr_cuda_mem_stats *out) {
  (void)dev;
  (void)out;
  return no_backend(s, "tyr_cuda_memory_stats");
}
int tyr_cuda_reset_peak_at(tyr_site s, int dev) {
  (void)dev;
  return no_backend(s, "tyr_cuda_reset_peak");
}
void tyr_cuda_empty_cache(void) {}
int tyr_cuda_synchronize_at(tyr_site s) {
  (void)s;
  return 0;
}
tyr_cuda_graph *tyr_cuda_graph_begin_at(tyr_site s, int dev) {
  (void)dev;
  no_backend(s, "tyr_cuda_graph_begin");
  return NULL;
}
int tyr_cuda_graph_end_at(tyr_site s, tyr_cuda_graph *g) {
  (void)g;
  return no_backend(s, "tyr_cuda_graph_end");
}
int tyr_cuda_graph_launch_at(tyr_site s, tyr_cuda_graph *g) {
  (void)g;
  return no_backend(s, "tyr_cuda_graph_launch");
}
void tyr_cuda_graph_free(tyr_cuda_graph *g) {
  (void)g;
}
static tyr_cuda_matmul_mode g_mode;
void tyr_cuda_set_matmul_mode(tyr_cuda_matmul_mode mode) {
  g_mode = mode;
}
tyr_cuda_matmul_mode tyr_cuda_get_matmul_mode(void) {
  return g_mode;
}
static tyr_cuda_attention_kernel g_attn;
void tyr_cuda_set_attention_kernel(tyr_cuda_attention_kernel kernel) {
  /* as the CUDA backend keeps it */
  g_attn = kernel == TYR_CUDA_ATTENTION_SIMT || kernel == TYR_CUDA_ATTENTION_TC ||
                   kernel == TYR_CUDA_ATTENTION_CUDNN
               ? kernel
               : TYR_CUDA_ATTENTION_AUTO;
}
tyr_cuda_attention_kernel tyr_cuda_get_attention_kernel(void) {
  return g_attn;
}
tyr_cuda_attention_kernel tyr_cuda_attention_last(void) {
  return TYR_CUDA_ATTENTION_AUTO;
}
/* src/cuda/attention_cudnn.cu's test hooks: 1, "no backend" */
int tcu_sdpa_cudnn_check_graphs(char *err, size_t n);
int tcu_sdpa_cudnn_check_graphs(char *err, size_t n) {
  if (n) err[0] = 0;
  return 1;
}
int tcu_sdpa_cudnn_device(int dev);
int tcu_sdpa_cudnn_device(int dev) {
  (void)dev;
  return 0;
}
void tcu_sdpa_cudnn_set_workspace_limit(long long bytes);
void tcu_sdpa_cudnn_set_workspace_limit(long long bytes) {
  (void)bytes;
}
int tcu_sdpa_cudnn_backward_calls(void);
int tcu_sdpa_cudnn_backward_calls(void) {
  return 0;
}
/* src/cuda/nn.cu's test hook */
void tcu_cross_entropy_set_two_pass(int on);
void tcu_cross_entropy_set_two_pass(int on) {
  (void)on;
}
int tcu_cross_entropy_last_smem(void);
int tcu_cross_entropy_last_smem(void) {
  return 0;
}
/* src/cuda/cuda_runtime.cu's test hook */
int tcu_copy_many_last_launches(void);
int tcu_copy_many_last_launches(void) {
  return 0;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int tyr__cuda_api_unused;
#endif
