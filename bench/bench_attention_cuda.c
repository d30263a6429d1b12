/* Attention (tyr_sdpa) on a CUDA GPU: forward and forward + backward time
 * and TFLOP/s at GPT shapes, causal, for each kernel that can run a
 * configuration: f32 tensors (the f32 CUDA-core kernel), f32 tensors in
 * the bf16 matmul mode and bf16 tensors (the tensor-core kernel, and the
 * CUDA-core kernel for comparison, as with TYR_CUDA_ATTN=simt), and bf16
 * tensors on cuDNN's fused attention (the default where it applies).  The "ran"
 * column names the kernel that ran the last call.  FLOPs
 * count the visible half of the score matrix under the causal mask:
 * forward 4 B H T^2 D / 2, backward 2.5 times that (the FlashAttention
 * convention; the kernels' own backward recomputes more).
 *
 *   bench_attention_cuda [--iters N] [--only gpt2]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/cuda.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  const char *name;
  int64_t B, H, T, D;
} shape;

/* One line of the table: tensors' dtype, matmul mode and attention kernel. */
typedef struct {
  const char *name;
  tyr_dtype dt;
  tyr_cuda_matmul_mode mode;
  tyr_cuda_attention_kernel kernel;
} config;

/* seconds per call of fwd (backward when bwd); *ran: the kernel of the last call */
static double run(const shape *sh, const config *cf, bool bwd, int iters,
                  tyr_cuda_attention_kernel *ran) {
  tyr_device dev = TYR_DEVICE_CUDA(0);
  tyr_dtype dt = cf->dt;
  tyr_cuda_set_matmul_mode(cf->mode);
  tyr_cuda_set_attention_kernel(cf->kernel);
  int64_t s4[4] = {sh->B, sh->H, sh->T, sh->D};
  tyr_tensor *q = tyr_keep_e(tyr_to_dtype_e(tyr_rand_at(TYR_SITE, TYR_F32, dev, 4, s4, -1, 1), dt));
  tyr_tensor *k = tyr_keep_e(tyr_to_dtype_e(tyr_rand_at(TYR_SITE, TYR_F32, dev, 4, s4, -1, 1), dt));
  tyr_tensor *v = tyr_keep_e(tyr_to_dtype_e(tyr_rand_at(TYR_SITE, TYR_F32, dev, 4, s4, -1, 1), dt));
  tyr_requires_grad_e(q, bwd);
  tyr_requires_grad_e(k, bwd);
  tyr_requires_grad_e(v, bwd);
  tyr_sdpa_opts o = {.causal = true};
  double best = INFINITY;
  for (int rep = 0; rep < 4; rep++) {
    int n = rep == 0 ? 1 : iters;
    tyr_cuda_synchronize();
    double t0 = now();
    for (int i = 0; i < n; i++) {
      TYR_SCOPE;
      tyr_tensor *y = tyr_sdpa_e(q, k, v, &o);
      if (bwd) {
        tyr_backward_e(tyr_sum_e(y));
        tyr_zero_grad_e(q);
        tyr_zero_grad_e(k);
        tyr_zero_grad_e(v);
      }
    }
    tyr_cuda_synchronize();
    if (rep > 0) best = fmin(best, (now() - t0) / n);
  }
  *ran = tyr_cuda_attention_last();
  tyr_tensor_free(q);
  tyr_tensor_free(k);
  tyr_tensor_free(v);
  return best;
}

int main(int argc, char **argv) {
  int iters = 10;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf(stderr, "usage: bench_attention_cuda [--iters N] [--only SHAPE-PREFIX]\n");
      return 2;
    }
  }
  if (iters < 1) iters = 1;
  if (!tyr_cuda_available()) {
    printf("bench_attention_cuda: no CUDA GPU: nothing measured\n");
    return 0;
  }
  const shape shapes[] = {
      {"gpt2_124m (B16 H12 T1024 D64)", 16, 12, 1024, 64},
      {"shakespeare_gpu (B64 H6 T256 D64)", 64, 6, 256, 64},
      {"char_d32 (B64 H4 T256 D32)", 64, 4, 256, 32},
      {"D128 (B8 H8 T1024 D128)", 8, 8, 1024, 128},
  };
  const config configs[] = {
      {"f32 simt", TYR_F32, TYR_CUDA_MATMUL_F32, TYR_CUDA_ATTENTION_AUTO},
      {"f32/bf16mode tc", TYR_F32, TYR_CUDA_MATMUL_BF16, TYR_CUDA_ATTENTION_TC},
      {"f32/bf16mode simt", TYR_F32, TYR_CUDA_MATMUL_BF16, TYR_CUDA_ATTENTION_SIMT},
      {"bf16 cudnn", TYR_BF16, TYR_CUDA_MATMUL_F32, TYR_CUDA_ATTENTION_CUDNN},
      {"bf16 tc", TYR_BF16, TYR_CUDA_MATMUL_F32, TYR_CUDA_ATTENTION_TC},
      {"bf16 simt", TYR_BF16, TYR_CUDA_MATMUL_F32, TYR_CUDA_ATTENTION_SIMT},
  };
  tyr_cuda_matmul_mode mode0 = tyr_cuda_get_matmul_mode();
  tyr_cuda_attention_kernel kernel0 = tyr_cuda_get_attention_kernel();
  printf("tyr_sdpa on cuda:0, causal (the sum backward includes a fill and a sum); tc: the "
         "tensor-core kernel, simt: the CUDA-core kernel, cudnn: cuDNN's fused attention\n");
  printf("%-36s %-18s %-12s %10s %9s %12s %9s\n", "shape", "tensors / kernel", "ran", "fwd ms",
         "TFLOP/s", "fwd+bwd ms", "TFLOP/s");
  static const char *const KNAMES[4] = {"-", "simt", "tc", "cudnn"};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const shape *sh = &shapes[s];
    if (only && strncmp(sh->name, only, strlen(only))) continue;
    for (size_t c = 0; c < sizeof configs / sizeof *configs; c++) {
      double f = 4.0 * sh->B * sh->H * (double)sh->T * sh->T * sh->D / 2;
      tyr_cuda_attention_kernel kf, kb;
      double tf = run(sh, &configs[c], false, iters, &kf);
      double tb = run(sh, &configs[c], true, iters, &kb);
      char ran[16];
      snprintf(ran, sizeof ran, "%s/%s", KNAMES[kf & 3], KNAMES[kb & 3]);
      printf("%-36s %-18s %-12s %10.3f %9.2f %12.3f %9.2f\n", sh->name, configs[c].name, ran,
             tf * 1e3, f / tf / 1e12, tb * 1e3, 3.5 * f / tb / 1e12);
      fflush(stdout);
    }
  }
  tyr_cuda_set_matmul_mode(mode0);
  tyr_cuda_set_attention_kernel(kernel0);
  return 0;
}
