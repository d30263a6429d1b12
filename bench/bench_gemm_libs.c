/* bench_gemm_libs: the f32 products of one TrainGPT layer on the CPU, by
 * the GEMMs a CPU framework could use, and PyTorch's in the same run.
 *
 * The nine products of a layer of T rows and width C: the forward of the
 * four linears (qkv, proj, fc, fc2: x @ W^T), the input gradients of the
 * MLP's two (g @ W) and the weight gradients of three (g^T @ x).  Each is
 * timed, best of --reps, with 64 MiB written between repetitions (in a
 * training step the operands were written long before the product reads
 * them), by:
 *   tyr       Tyr's AVX-512 kernel (src/cpu/gemm_avx512.c), the output's
 *             rows (or columns, when wider) split over --threads OpenMP
 *             threads as tyr_matmul splits them; "n/a" where OpenBLAS runs
 *             AVX-512 kernels of its own (Tyr then uses those) or the CPU
 *             has no AVX-512;
 *   openblas  cblas_sgemm, single-threaded, with the same split (what
 *             tyr_matmul runs when its own kernel is off); which kernels
 *             OpenBLAS runs is printed (OPENBLAS_CORETYPE chooses them);
 *   onednn    oneDNN's dnnl_sgemm with its own --threads threads, when the
 *             build found oneDNN (Debian's libdnnl-dev);
 *   torch     torch.mm with torch.set_num_threads(--threads), by
 *             bench/torch_mm.py run with --python (MKL in PyTorch's x86
 *             wheels), unless --no-torch.
 * Defaults: the 6-layer preset's shapes (T 4096 = 16 x 256, C 384);
 * shakespeare_cpu's are --rows 768 --width 128.  Pin the run to the cores
 * to compare (taskset -c 0,1); run from the repository root. */
#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tyr/tyr.h"

#ifdef TYR_HAVE_DNNL
#include <dnnl.h>
#endif

/* src/cpu/gemm_avx512.c: false where Tyr does not use its own kernel */
bool tyr_cpu_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc);
char *openblas_get_corename(void);

typedef struct {
  const char *name;
  bool ta, tb;
  int64_t M, N, K;
} product;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* C = op(A) op(B), row-major, split over nt threads by rows (or columns
   when the output is wider than tall); blas: cblas_sgemm, else Tyr's
   kernel.  False when Tyr's kernel declined. */
static bool split_gemm(bool blas, int nt, const product *p, const float *A, const float *B,
                       float *C) {
  int64_t lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
  bool rows = p->M >= p->N, ok = true;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(&& : ok)
  for (int k = 0; k < nt; k++) {
    int64_t len = rows ? p->M : p->N, i0 = len * k / nt, i1 = len * (k + 1) / nt;
    const float *a = rows ? A + (p->ta ? i0 : i0 * lda) : A;
    const float *b = rows ? B : B + (p->tb ? i0 * ldb : i0);
    float *c = rows ? C + i0 * p->N : C + i0;
    int64_t m = rows ? i1 - i0 : p->M, n = rows ? p->N : i1 - i0;
    if (blas)
      cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                  p->tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)p->K, 1.0f, a, (int)lda,
                  b, (int)ldb, 0.0f, c, (int)p->N);
    else
      ok = tyr_cpu_sgemm_avx512(p->ta, p->tb, m, n, p->K, a, lda, b, ldb, c, p->N) && ok;
  }
  return ok;
}

#ifdef TYR_HAVE_DNNL
static bool onednn_gemm(int nt, const product *p, const float *A, const float *B, float *C) {
  omp_set_num_threads(nt);
  int64_t lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
  return dnnl_sgemm(p->ta ? 'T' : 'N', p->tb ? 'T' : 'N', p->M, p->N, p->K, 1.0f, A, lda, B, ldb,
                    0.0f, C, p->N) == dnnl_success;
}
#endif

int main(int argc, char **argv) {
  int64_t T = 4096, C = 384, threads = 2, reps = 5;
  bool torch = true;
  char python[512] = "", libs_arg[64] = "tyr,openblas,onednn";
  const tyr_flag flags[] = {
      TYR_FLAG_INT("rows", &T, 1, 1 << 20, "rows of the layer's input (batch x block)"),
      TYR_FLAG_INT("width", &C, 1, 1 << 14, "the model's width"),
      TYR_FLAG_INT("threads", &threads, 1, 4096, "threads of every library"),
      TYR_FLAG_INT("reps", &reps, 1, 1000, "timed repetitions, best kept"),
      TYR_FLAG_STRING("python", python, "PyTorch's interpreter (default: python3)"),
      TYR_FLAG_BOOL("torch", &torch, "time torch.mm too (--no-torch: don't)"),
      TYR_FLAG_STRING("libs", libs_arg, "which of tyr, openblas, onednn to time (comma-separated)"),
  };
  tyr_flags_parse("bench_gemm_libs",
                  "usage: bench_gemm_libs [--flag value ...]\n"
                  "One TrainGPT layer's f32 products by Tyr's kernel, OpenBLAS, oneDNN and "
                  "PyTorch, in one run",
                  flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, 1);
  if (!python[0]) snprintf(python, sizeof python, "python3");
  const product ps[] = {
      {"qkv x @ W^T", false, true, T, 3 * C, C},   {"proj x @ W^T", false, true, T, C, C},
      {"fc x @ W^T", false, true, T, 4 * C, C},    {"fc2 x @ W^T", false, true, T, C, 4 * C},
      {"fc2 dx g @ W", false, false, T, 4 * C, C}, {"fc dx g @ W", false, false, T, C, 4 * C},
      {"fc dW g^T @ x", true, false, 4 * C, C, T}, {"fc2 dW g^T @ x", true, false, C, 4 * C, T},
      {"qkv dW g^T @ x", true, false, 3 * C, C, T}};
  const int np = (int)(sizeof ps / sizeof ps[0]);
  size_t most = (size_t)T * 4 * (size_t)C;
  float *A = malloc(most * sizeof(float)), *B = malloc(most * sizeof(float));
  float *Cm = malloc(most * sizeof(float));
  char *junk = malloc(64 << 20);
  if (!A || !B || !Cm || !junk) {
    fprintf(stderr, "bench_gemm_libs: out of memory for --rows %lld --width %lld\n", (long long)T,
            (long long)C);
    return 1;
  }
  srand(1);
  for (size_t i = 0; i < most; i++) {
    A[i] = (float)(rand() % 100) / 100.0f;
    B[i] = (float)(rand() % 100) / 100.0f;
  }
  openblas_set_num_threads(1); /* as Tyr runs it: one OpenBLAS thread a block */
  const char *core = openblas_get_corename();
  printf("%lld rows, width %lld, %lld threads; OpenBLAS runs its %s kernels\n", (long long)T,
         (long long)C, (long long)threads, core ? core : "(unknown)");
  const char *libs[] = {"tyr", "openblas", "onednn"};
  double total[3] = {0, 0, 0}, flops_all = 0;
  bool have[3] = {true, true, false};
#ifdef TYR_HAVE_DNNL
  have[2] = true;
#endif
  for (int l = 0; l < 3; l++)
    if (!strstr(libs_arg, libs[l])) have[l] = false;
  printf("%-16s %6s %6s %6s   GFLOP/s\n", "product", "M", "N", "K");
  for (int i = 0; i < np; i++) {
    const product *p = &ps[i];
    double flops = 2.0 * (double)p->M * (double)p->N * (double)p->K;
    flops_all += flops;
    printf("%-16s %6lld %6lld %6lld", p->name, (long long)p->M, (long long)p->N, (long long)p->K);
    for (int l = 0; l < 3; l++) {
      double best = 1e30;
      for (int r = 0; r < reps && have[l]; r++) {
        memset(junk, r, 64 << 20);
        double t0 = now();
        bool ok = true;
        if (l < 2) ok = split_gemm(l == 1, (int)threads, p, A, B, Cm);
#ifdef TYR_HAVE_DNNL
        else
          ok = onednn_gemm((int)threads, p, A, B, Cm);
#endif
        double t = now() - t0;
        if (!ok) have[l] = false;
        if (t < best) best = t;
      }
      if (have[l]) {
        total[l] += best;
        printf("  %s %7.1f", libs[l], flops / best * 1e-9);
      } else {
        printf("  %s     n/a", libs[l]);
      }
    }
    printf("\n");
  }
  printf("all nine (%.2f GFLOP), ms:", flops_all * 1e-9);
  for (int l = 0; l < 3; l++)
    if (have[l]) printf("  %s %.2f", libs[l], total[l] * 1e3);
  printf("\n");
  fflush(stdout);
  free(A);
  free(B);
  free(Cm);
  free(junk);
  if (!torch) return 0;
  if (strchr(python, '\'') || access("bench/torch_mm.py", R_OK) != 0) {
    fprintf(stderr,
            "bench_gemm_libs: --python %s: needs a path without quotes and "
            "bench/torch_mm.py (run from the repository root)\n",
            python);
    return 1;
  }
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "'%s' bench/torch_mm.py --threads %lld --reps %lld --rows %lld --width %lld", python,
           (long long)threads, (long long)reps, (long long)T, (long long)C);
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "bench_gemm_libs: %s failed (PyTorch missing?)\n", cmd);
  return rc == 0 ? 0 : 1;
}
