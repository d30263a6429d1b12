/* bench_core: the core costs of the CPU backend.
 *
 *   1. matmul GFLOP/s for square f32 sizes through tyr_matmul, next to
 *      cblas_sgemm called directly in the same run with the same threads
 *      (tyr's time includes allocating the result); then one thread at
 *      TrainGPT's product shapes; then all threads at its whole products
 *      (the rows of both threads' blocks), once with the operands in cache
 *      (the product repeated) and once with 64 MiB touched before each
 *      call, as in a training step, where the operands were written long
 *      before the product reads them (64 MiB is more than cpu-dev's caches
 *      hold, not more than a large server's L3); median and best of each;
 *   2. elementwise GB/s on 16M-element f32 tensors (tyr_add, tyr_relu,
 *      tyr_exp; fresh result each call), next to a plain C loop;
 *   3. host cost of one op on one-element tensors in ns per call: tyr_add
 *      in a loop, in a scope ended every 1000 calls (so the time includes
 *      allocating and freeing), without and with grad recording.
 *
 * Every figure is the best of several timed runs after a warm-up (the whole
 * products: their median as well).
 * Usage: bench_core [--quick]   (--quick: fewer repetitions, smaller sizes) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tyr/tyr.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int g_quick;

/* ---- matmul -------------------------------------------------------------------- */
/* Times one call of each of the two ways into tb[r] and tt[r], in an order
 * that alternates between repetitions: the second of two back-to-back
 * calls is often the slower one on a busy machine. */
static void time_pair(int r, tyr_tensor *a, tyr_tensor *b, const float *pa, const float *pb,
                      float *pc, bool bt, double *tb, double *tt) {
  int n = (int)a->shape[0];
  for (int k = 0; k < 2; k++) {
    bool blas = (k == 0) == (r % 2 == 0);
    double t0 = now();
    if (blas) {
      /* Tyr keeps OpenBLAS single-threaded (it splits GEMMs itself): the
         reference gets the same threads as Tyr for its own call */
      openblas_set_num_threads(tyr_get_num_threads());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, bt ? CblasTrans : CblasNoTrans, n, n, n, 1.0f, pa, n,
                  pb, n, 0.0f, pc, n);
      openblas_set_num_threads(1);
    } else {
      tyr_tensor_free(tyr_keep_e(tyr_matmul_e(a, b)));
    }
    (blas ? tb : tt)[r] = now() - t0;
  }
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

#define MAX_REPS 64
static void bench_matmul(int64_t n, int reps) {
  tyr_scope_begin();
  tyr_tensor *a = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){n, n}, 0, 1);
  tyr_tensor *b = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){n, n}, 0, 1);
  tyr_tensor *c = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){n, n});
  /* b^T as a view (no copy): the form a linear layer uses */
  tyr_tensor *bt = tyr_view_raw(b, 2, (int64_t[]){n, n}, (int64_t[]){1, n}, b->offset);
  const float *pa = tyr_data_ptr(a), *pb = tyr_data_ptr(b);
  float *pc = tyr_data_ptr(c);
  double flop = 2.0 * (double)n * (double)n * (double)n;
  if (reps > MAX_REPS) reps = MAX_REPS;
  for (int form = 0; form < 2; form++) {
    double tb[MAX_REPS], tt[MAX_REPS], ratio[MAX_REPS];
    time_pair(0, a, form ? bt : b, pa, pb, pc, form, tb, tt); /* warm-up */
    for (int r = 0; r < reps; r++) time_pair(r, a, form ? bt : b, pa, pb, pc, form, tb, tt);
    for (int r = 0; r < reps; r++) ratio[r] = tb[r] / tt[r];
    qsort(tb, (size_t)reps, sizeof tb[0], cmp_double);
    qsort(tt, (size_t)reps, sizeof tt[0], cmp_double);
    qsort(ratio, (size_t)reps, sizeof ratio[0], cmp_double);
    printf("  %5lld x %-5lld %s  cblas_sgemm %7.2f GFLOP/s  tyr_matmul %7.2f GFLOP/s  "
           "tyr/blas: best %.3f, median of pairs %.3f\n",
           (long long)n, (long long)n, form ? "a @ bT" : "a @ b ", flop / tb[0] * 1e-9,
           flop / tt[0] * 1e-9, tb[0] / tt[0], ratio[reps / 2]);
  }
  tyr_scope_end();
}

/* TrainGPT's products as one thread computes them (the row block one of two
   threads gets): shakespeare_cpu (768 tokens, 128 wide) and the 6-layer
   preset (4096 tokens, 384 wide); forward a @ wT, input gradient g @ w,
   weight gradient gT @ x.  The whole product has twice the rows where a is
   not transposed; `whole`: bench_matmul_whole times it. */
static const struct {
  int64_t M, N, K;
  bool ta, tb, whole;
} gemm_shapes[] = {
    {384, 384, 128, false, true, true},   {384, 512, 128, false, true, true},
    {384, 128, 512, false, true, true},   {384, 512, 128, false, false, true},
    {384, 128, 384, false, false, true},  {128, 128, 768, true, false, false},
    {512, 128, 768, true, false, true},   {2048, 1152, 384, false, true, true},
    {2048, 384, 1536, false, true, true}, {2048, 1536, 384, false, false, true},
    {1536, 384, 4096, true, false, true}, {384, 1536, 4096, true, false, false},
};
#define NSHAPES (sizeof gemm_shapes / sizeof gemm_shapes[0])

/* A random f32 [rows, cols] operand: contiguous, or (transposed) the
   transpose of a contiguous [cols, rows]. */
static tyr_tensor *gemm_operand(int64_t rows, int64_t cols, bool transposed) {
  if (!transposed)
    return tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){rows, cols}, 0, 1);
  return tyr_transpose_e(
      tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){cols, rows}, 0, 1), 0, 1);
}

static void bench_matmul_shapes(int reps) {
  int threads = tyr_get_num_threads();
  tyr_set_num_threads(1);
  openblas_set_num_threads(1);
  for (size_t i = 0; i < NSHAPES; i++) {
    tyr_scope_begin();
    int64_t M = gemm_shapes[i].M, N = gemm_shapes[i].N, K = gemm_shapes[i].K;
    tyr_tensor *a = gemm_operand(M, K, gemm_shapes[i].ta),
               *b = gemm_operand(K, N, gemm_shapes[i].tb);
    float *pc = tyr_data_ptr(tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){M, N}));
    const float *pa = tyr_data_ptr(a), *pb = tyr_data_ptr(b);
    double best_t = 1e30, best_b = 1e30, flop = 2.0 * (double)M * (double)N * (double)K;
    for (int r = 0; r < reps + 1; r++) {
      double t0 = now();
      tyr_tensor_free(tyr_keep_e(tyr_matmul_e(a, b)));
      double t1 = now();
      cblas_sgemm(CblasRowMajor, gemm_shapes[i].ta ? CblasTrans : CblasNoTrans,
                  gemm_shapes[i].tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, pa,
                  gemm_shapes[i].ta ? (int)M : (int)K, pb, gemm_shapes[i].tb ? (int)K : (int)N,
                  0.0f, pc, (int)N);
      double t2 = now();
      if (r == 0) continue; /* warm-up */
      if (t1 - t0 < best_t) best_t = t1 - t0;
      if (t2 - t1 < best_b) best_b = t2 - t1;
    }
    printf("  M %4lld N %4lld K %4lld %s @ %s  tyr_matmul %7.2f GFLOP/s  cblas_sgemm %7.2f\n",
           (long long)M, (long long)N, (long long)K, gemm_shapes[i].ta ? "aT" : "a ",
           gemm_shapes[i].tb ? "bT" : "b ", flop / best_t * 1e-9, flop / best_b * 1e-9);
    tyr_scope_end();
  }
  tyr_set_num_threads(threads);
}

/* TrainGPT's products whole (gemm_shapes' rows marked whole) on all
   threads: the median and best time of `reps` calls, each after
   touching `flush` bytes (0: operands in cache). */
static void bench_matmul_whole(int reps, size_t flush) {
  char *junk = flush ? malloc(flush) : NULL;
  if (flush && !junk) {
    printf("  skipped: no memory for %zu bytes to touch\n", flush);
    return;
  }
  if (junk) memset(junk, 1, flush);
  double *t = malloc(sizeof(double) * (size_t)reps);
  if (!t) {
    printf("  skipped: out of memory\n");
    free(junk);
    return;
  }
  for (size_t i = 0; i < NSHAPES; i++) {
    if (!gemm_shapes[i].whole) continue;
    tyr_scope_begin();
    int64_t M = gemm_shapes[i].ta ? gemm_shapes[i].M : 2 * gemm_shapes[i].M;
    int64_t N = gemm_shapes[i].N, K = gemm_shapes[i].K;
    tyr_tensor *a = gemm_operand(M, K, gemm_shapes[i].ta),
               *b = gemm_operand(K, N, gemm_shapes[i].tb);
    double flop = 2.0 * (double)M * (double)N * (double)K;
    tyr_tensor_free(tyr_keep_e(tyr_matmul_e(a, b))); /* warm-up */
    for (int r = 0; r < reps; r++) {
      for (size_t j = 0; j < flush; j += 64) junk[j]++;
      __asm__ volatile("" : : "r"(junk) : "memory"); /* the touches happen */
      double t0 = now();
      tyr_tensor_free(tyr_keep_e(tyr_matmul_e(a, b)));
      t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    printf("  M %4lld N %4lld K %4lld %s @ %s  median %7.2f GFLOP/s  best %7.2f\n", (long long)M,
           (long long)N, (long long)K, gemm_shapes[i].ta ? "aT" : "a ",
           gemm_shapes[i].tb ? "bT" : "b ", flop / t[reps / 2] * 1e-9, flop / t[0] * 1e-9);
    tyr_scope_end();
  }
  free(t);
  free(junk);
}

/* ---- elementwise ---------------------------------------------------------------- */
typedef tyr_tensor *(*unary_fn)(tyr_site, tyr_tensor *);

static void bench_elementwise(int64_t n, int reps) {
  tyr_scope_begin();
  tyr_tensor *a = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){n}, 0, 1);
  tyr_tensor *b = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){n}, 0, 1);
  tyr_tensor *c = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){n});
  const float *pa = tyr_data_ptr(a), *pb = tyr_data_ptr(b);
  float *pc = tyr_data_ptr(c);
  double bytes3 = 3.0 * (double)n * 4, bytes2 = 2.0 * (double)n * 4;
  double best_loop = 1e30, best_add = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    double t0 = now();
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; i++) pc[i] = pa[i] + pb[i];
    double t1 = now();
    tyr_tensor *y = tyr_keep_e(tyr_add_e(a, b));
    double t2 = now();
    tyr_tensor_free(y);
    if (r == 0) continue; /* warm-up */
    if (t1 - t0 < best_loop) best_loop = t1 - t0;
    if (t2 - t1 < best_add) best_add = t2 - t1;
  }
  printf("  add of two [%lld] f32: C loop into a kept buffer %6.2f GB/s  tyr_add %6.2f GB/s "
         "(%.2f ms)\n",
         (long long)n, bytes3 / best_loop * 1e-9, bytes3 / best_add * 1e-9, best_add * 1e3);
  struct {
    const char *name;
    unary_fn fn;
  } un[] = {{"tyr_relu", tyr_relu_at}, {"tyr_exp", tyr_exp_at}};
  for (size_t k = 0; k < sizeof un / sizeof un[0]; k++) {
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
      double t0 = now();
      tyr_tensor *y = tyr_keep_e(un[k].fn(TYR_SITE, a));
      double t1 = now();
      tyr_tensor_free(y);
      if (r > 0 && t1 - t0 < best) best = t1 - t0;
    }
    printf("  %-8s of [%lld] f32: %6.2f GB/s (%.2f ms)\n", un[k].name, (long long)n,
           bytes2 / best * 1e-9, best * 1e3);
  }
  /* a [T, C] table expanded over the batch, as GPT adds its position
     embeddings: shakespeare_cpu's [12, 64, 128] */
  tyr_tensor *x =
      tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 3, (int64_t[]){12, 64, 128}, 0, 1);
  tyr_tensor *pos = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){64, 128}, 0, 1);
  tyr_tensor *pe = tyr_expand_e(pos, 12, 64, 128);
  double best = 1e30;
  for (int r = 0; r < 20 * reps + 1; r++) {
    double t0 = now();
    tyr_tensor *y = tyr_keep_e(tyr_add_e(x, pe));
    double t1 = now();
    tyr_tensor_free(y);
    if (r > 0 && t1 - t0 < best) best = t1 - t0;
  }
  printf("  add of [12, 64, 128] and [64, 128] expanded to it: %.1f us\n", best * 1e6);
  tyr_scope_end();
}

/* ---- host overhead ------------------------------------------------------------ */
static double op_ns(bool grad, int64_t calls) {
  tyr_tensor *a = tyr_keep_e(tyr_ones_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){1}));
  tyr_tensor *b = tyr_keep_e(tyr_ones_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){1}));
  if (grad) tyr_requires_grad_e(a, true);
  double t0 = now();
  for (int64_t i = 0; i < calls; i += 1000) {
    tyr_scope_begin();
    for (int j = 0; j < 1000; j++) (void)tyr_add_e(a, b);
    tyr_scope_end();
  }
  double t = now() - t0;
  tyr_tensor_free(a);
  tyr_tensor_free(b);
  return t / (double)calls * 1e9;
}

static void bench_overhead(int reps) {
  int64_t calls = g_quick ? 100000 : 1000000;
  op_ns(false, calls / 10); /* warm-up */
  double best0 = 1e30, best1 = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = op_ns(false, calls), t1 = op_ns(true, calls);
    if (t0 < best0) best0 = t0;
    if (t1 < best1) best1 = t1;
  }
  printf("  tyr_add on [1] f32 tensors, scope ended every 1000 calls:\n");
  printf("    no grad recording   %7.1f ns per call\n", best0);
  printf("    recording the graph %7.1f ns per call (one input requires grad)\n", best1);
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      g_quick = 1;
    } else {
      fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  tyr_manual_seed(1);
  printf(
      "bench_core: %d OpenMP threads; cblas_sgemm gets %d OpenBLAS threads (%s, kernels for %s)\n",
      tyr_get_num_threads(), tyr_get_num_threads(), openblas_get_config(), openblas_get_corename());
  printf("matmul, f32, square (best of several runs, and the median of the per-pair time ratios;\n"
         "tyr_matmul allocates its result):\n");
  int64_t sizes[] = {512, 1024, 2048};
  for (int i = 0; i < (g_quick ? 2 : 3); i++) {
    int reps = sizes[i] >= 2048 ? 8 : sizes[i] >= 1024 ? 20 : 60;
    bench_matmul(sizes[i], g_quick ? 3 : reps);
  }
  printf("matmul, f32, one thread, TrainGPT's shapes (best of several runs; tyr_matmul allocates "
         "its result):\n");
  bench_matmul_shapes(g_quick ? 3 : 20);
  printf("matmul, f32, %d threads, TrainGPT's whole products, operands in cache:\n",
         tyr_get_num_threads());
  bench_matmul_whole(g_quick ? 5 : 41, 0);
  printf("matmul, f32, %d threads, the same with 64 MiB touched before each call:\n",
         tyr_get_num_threads());
  bench_matmul_whole(g_quick ? 5 : 41, (size_t)64 << 20);
  printf("elementwise, f32 (bytes read + written per second; fresh result each call):\n");
  bench_elementwise(g_quick ? (int64_t)1 << 20 : (int64_t)1 << 24, g_quick ? 3 : 10);
  printf("host cost of one op:\n");
  bench_overhead(g_quick ? 2 : 5);
  return 0;
}
