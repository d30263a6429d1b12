/* fastmath_loops: whether this compiler vectorises the CPU kernels' math.
 *
 * Times loops over 2^20 floats that call src/cpu/fastmath.h's functions the
 * way the activation kernels do (tanh, exact GELU, exact GELU's derivative,
 * exp), each as a plain loop and under `omp simd`, and prints nanoseconds per
 * element (best of 20).  A plain loop 10x slower than its `omp simd` twin
 * means the compiler left it scalar: gcc 13 does so for tanh and GELU's
 * derivative, gcc 12 does not (docs/benchmarks.md).  Built and run by
 * bench/compiler_vec.sh with each compiler and the ISA flags of
 * cmake/isa.cmake (the CMake build also makes it, with the build's own
 * flags: x86-64 baseline unless TYR_NATIVE). */
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/cpu/fastmath.h"

#define N (1 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline float gelu(float x) {
  return 0.5f * x * (1 + tyr_cpu_erff(x * 0.70710678f));
}
static inline float dgelu(float x) {
  float cdf = 0.5f * (1 + tyr_cpu_erff(x * 0.70710678f));
  return cdf + x * tyr_cpu_expf(-0.5f * x * x) * 0.39894228f;
}

/* each loop twice: plain, and under omp simd */
#define LOOPS(NAME, BODY)                                                                          \
  __attribute__((noinline)) static void NAME##_plain(float *o, const float *x, int n) {            \
    for (int i = 0; i < n; i++) BODY;                                                              \
  }                                                                                                \
  __attribute__((noinline)) static void NAME##_simd(float *o, const float *x, int n) {             \
    _Pragma("omp simd") for (int i = 0; i < n; i++) BODY;                                          \
  }
LOOPS(tanh, o[i] = tyr_cpu_tanhf(x[i]))
LOOPS(gelu, o[i] = gelu(x[i]))
LOOPS(dgelu, o[i] = o[i] * dgelu(x[i]))
LOOPS(exp, o[i] = tyr_cpu_expf(-0.5f * x[i] * x[i]))

typedef void (*loop_fn)(float *, const float *, int);

int main(int argc, char **argv) {
  if (argc > 1) { /* no flags: --help, and anything else is an error */
    bool help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
    fprintf(help ? stdout : stderr,
            "usage: %s\n  times the activation loops of src/cpu/fastmath.h, plain and under "
            "omp simd (see bench/compiler_vec.sh)\n",
            argv[0]);
    return help ? 0 : 2;
  }
  float *x = aligned_alloc(64, N * sizeof(float)), *o = aligned_alloc(64, N * sizeof(float));
  if (!x || !o) {
    fprintf(stderr, "fastmath_loops: out of memory\n");
    return 1;
  }
  srand(1);
  for (int i = 0; i < N; i++) { /* roughly N(0, 4): pre-activations of both signs */
    float u = 0;
    for (int k = 0; k < 12; k++) u += (float)rand() / (float)RAND_MAX;
    x[i] = (u - 6) * 2;
  }
  const struct {
    const char *name;
    loop_fn plain, simd;
  } t[] = {{"tanh", tanh_plain, tanh_simd},
           {"exact GELU", gelu_plain, gelu_simd},
           {"exact GELU's derivative", dgelu_plain, dgelu_simd},
           {"exp", exp_plain, exp_simd}};
  printf("%-26s %12s %12s  (ns an element, best of 20)\n", "loop", "plain", "omp simd");
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
    double best[2] = {1e9, 1e9};
    for (int v = 0; v < 2; v++)
      for (int r = 0; r < 20; r++) {
        for (int i = 0; i < N; i++) o[i] = 1e-3f;
        double t0 = now();
        (v ? t[k].simd : t[k].plain)(o, x, N);
        double d = now() - t0;
        if (d < best[v]) best[v] = d;
      }
    printf("%-26s %12.3f %12.3f\n", t[k].name, best[0] / N * 1e9, best[1] / N * 1e9);
  }
  free(x);
  free(o);
  return 0;
}
