/* conv2d forward and forward+backward rates (GFLOP/s) for ResNet-like layer
 * shapes, Tyr next to PyTorch (bench/torch_conv.py) in the same run.
 *
 *   bench_conv [--batch N] [--reps N] [--threads N] [--device cpu|cuda]
 *              [--bf16] [--no-torch]
 *
 * FLOPs: forward 2 N K P Q (C / groups) R S; forward+backward three times
 * that (input and weight gradients).  The backward is that of sum(y), for
 * both frameworks.  On a GPU (--device cuda) the same program compares
 * Tyr's cuDNN path with PyTorch's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/tyr.h>

typedef struct {
  const char *name;
  int64_t C, H, K, R, stride, pad, groups;
} shape;

static const shape SHAPES[] = {
    {"res2 3x3 64", 64, 56, 64, 3, 1, 1, 1},
    {"res3 3x3 64->128 s2", 64, 56, 128, 3, 2, 1, 1},
    {"res3 3x3 128", 128, 28, 128, 3, 1, 1, 1},
    {"res4 3x3 256", 256, 14, 256, 3, 1, 1, 1},
    {"res5 3x3 512", 512, 7, 512, 3, 1, 1, 1},
    {"1x1 256->64", 256, 56, 64, 1, 1, 0, 1},
    {"depthwise 3x3 256", 256, 14, 256, 3, 1, 1, 256},
    {"cnn 3x3 16 (28x28)", 16, 28, 16, 3, 1, 1, 1},
};
#define NSHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sync_dev(tyr_tensor *t) {
  TYR_SCOPE;
  tyr_item_e(tyr_sum_e(tyr_narrow_e(tyr_flatten_e(t, 0, -1), 0, 0, 1)));
}

/* best ms of forward (fwd) and forward + backward */
static void bench_tyr(const shape *sh, int64_t N, int reps, tyr_device dev, tyr_dtype dt,
                      double *fwd_ms, double *fb_ms) {
  TYR_SCOPE;
  tyr_tensor *x = tyr_requires_grad_e(
      tyr_randn_at(TYR_SITE, dt, dev, 4, (int64_t[]){N, sh->C, sh->H, sh->H}, 0, 1), true);
  tyr_tensor *w =
      tyr_requires_grad_e(tyr_randn_at(TYR_SITE, dt, dev, 4,
                                       (int64_t[]){sh->K, sh->C / sh->groups, sh->R, sh->R}, 0, 1),
                          true);
  tyr_conv_opts o = TYR_CONV_OPTS(sh->stride, sh->pad, 1, sh->groups);
  *fwd_ms = *fb_ms = INFINITY;
  for (int round = 0; round < 4; round++) {
    int n = round == 0 ? 1 : reps;
    double t0 = now();
    for (int i = 0; i < n; i++) {
      TYR_SCOPE;
      TYR_NO_GRAD;
      sync_dev(tyr_conv2d_e(x, w, NULL, &o));
    }
    double t1 = now();
    for (int i = 0; i < n; i++) {
      TYR_SCOPE;
      tyr_zero_grad_e(x);
      tyr_zero_grad_e(w);
      tyr_backward_e(tyr_sum_e(tyr_conv2d_e(x, w, NULL, &o)));
      sync_dev(tyr_grad_e(w));
    }
    double t2 = now();
    if (round > 0) {
      *fwd_ms = fmin(*fwd_ms, (t1 - t0) / n * 1e3);
      *fb_ms = fmin(*fb_ms, (t2 - t1) / n * 1e3);
    }
  }
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  int64_t N = 8;
  int reps = 3, threads = 0, torch = 1, bf16 = 0;
  const char *devs = "cpu";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      N = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--device") && i + 1 < argc)
      devs = argv[++i];
    else if (!strcmp(argv[i], "--bf16"))
      bf16 = 1;
    else if (!strcmp(argv[i], "--no-torch"))
      torch = 0;
    else {
      fprintf(stderr, "usage: bench_conv [--batch N] [--reps N] [--threads N] [--device cpu|cuda] "
                      "[--bf16] [--no-torch]\n");
      return 2;
    }
  }
  tyr_device dev;
  if (!tyr_device_parse(devs, &dev) || N < 1 || reps < 1) {
    fprintf(stderr, "bench_conv: bad arguments (see the usage line)\n");
    return 2;
  }
  if (threads > 0) tyr_set_num_threads(threads);
  threads = tyr_get_num_threads();
  tyr_dtype dt = bf16 ? TYR_BF16 : TYR_F32;
  const char *py = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0
                       ? "/usr/bin/python3"
                   : system("python3 -c 'import torch' >/dev/null 2>&1") == 0 ? "python3"
                                                                              : NULL;
  if (torch && !py) {
    printf("PyTorch is not importable: Tyr figures only\n");
    torch = 0;
  }
  double tf[NSHAPES], tfb[NSHAPES];
  for (int i = 0; i < NSHAPES; i++) tf[i] = tfb[i] = NAN;
  if (torch) {
    char cmd[4096];
    int k = snprintf(cmd, sizeof cmd, "%s%s bench/torch_conv.py --threads %d --reps %d%s%s",
                     getenv("TYR_ENV_SETUP_DONE") ? "env -u GOMP_SPINCOUNT " : "", py, threads,
                     reps, dev.type == TYR_CUDA ? " --cuda" : "", bf16 ? " --bf16" : "");
    for (int i = 0; i < NSHAPES; i++) {
      const shape *s = &SHAPES[i];
      k += snprintf(cmd + k, sizeof cmd - (size_t)k,
                    " %lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld", (long long)N,
                    (long long)s->C, (long long)s->H, (long long)s->H, (long long)s->K,
                    (long long)s->R, (long long)s->R, (long long)s->stride, (long long)s->pad,
                    (long long)s->groups);
    }
    snprintf(cmd + k, sizeof cmd - (size_t)k, " 2>/dev/null");
    FILE *f = popen(cmd, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
      int i;
      double a, b;
      if (sscanf(line, "torch conv %d fwd_ms %lf fwdbwd_ms %lf", &i, &a, &b) == 3 && i >= 0 &&
          i < NSHAPES) {
        tf[i] = a;
        tfb[i] = b;
      }
    }
    if (f) pclose(f);
  }
  printf("conv2d on %s, batch %lld, %s, %d threads; GFLOP/s (forward | forward+backward)\n",
         tyr_device_name(dev), (long long)N, tyr_dtype_name(dt), threads);
  printf("%-22s %9s %9s %9s %9s %7s %7s\n", "layer", "tyr fwd", "torch fwd", "tyr f+b", "torch f+b",
         "fwd x", "f+b x");
  for (int i = 0; i < NSHAPES; i++) {
    const shape *s = &SHAPES[i];
    int64_t P = (s->H + 2 * s->pad - s->R) / s->stride + 1;
    double flops = 2.0 * (double)N * (double)s->K * (double)(P * P) * (double)(s->C / s->groups) *
                   (double)(s->R * s->R);
    double a, b;
    bench_tyr(s, N, reps, dev, dt, &a, &b);
    double g1 = flops / a * 1e-6, g2 = 3 * flops / b * 1e-6;
    double t1 = flops / tf[i] * 1e-6, t2 = 3 * flops / tfb[i] * 1e-6;
    printf("%-22s %9.1f %9.1f %9.1f %9.1f %7.2f %7.2f\n", s->name, g1, t1, g2, t2, g1 / t1,
           g2 / t2);
    fflush(stdout);
  }
  return 0;
}
