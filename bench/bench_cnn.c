/* The residual CNN of train_cnn (tyr_cnn) against its PyTorch twin
 * (bench/torch_cnn.py) in one run:
 *
 *  1. correctness, in f64: Tyr's initial weights, a few batches and Tyr's
 *     logits, loss, gradients and the losses of SGD steps go to a
 *     safetensors file; torch_cnn.py --check loads the same weights, runs
 *     the same batches and prints the largest differences;
 *  2. speed, in f32: training steps (forward, backward, SGD with Nesterov
 *     momentum) per second on the CPU for Tyr and for PyTorch with the same
 *     number of threads, and their ratio.
 *
 *   bench_cnn [--steps N] [--threads N] [--batch N] [--width N] [--blocks N]
 *             [--no-torch] [--device cpu|cuda] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tyr/models/cnn.h>
#include <tyr/optim.h>
#include <tyr/safetensors.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static tyr_optim make_sgd(tyr_cnn *m, double lr, double wd) {
  tyr_params_group_by_rank(&m->params);
  tyr_optim_config oc = tyr_sgd_config(lr, 0.9);
  oc.nesterov = true;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, wd};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &m->params, oc)) exit(1);
  return opt;
}

/* f64: Tyr's results into path for torch_cnn.py --check */
static int write_check(const char *path, int64_t width, int64_t blocks, int steps) {
  enum { B = 16, MAXN = 512 };
  const double lr = 0.05, wd = 5e-4;
  tyr_set_default_dtype(TYR_F64);
  tyr_manual_seed(42);
  tyr_cnn m;
  tyr_cnn_config cfg = {1, 10, width, 3, blocks};
  if (tyr_cnn_init(&m, &cfg)) return 1;
  const char *names[MAXN];
  tyr_tensor *ts[MAXN];
  char namebuf[MAXN][TYR_PARAM_NAME_MAX + 16];
  int n = 0;
  TYR_SCOPE;
  /* the initial parameters and buffers (cloned: the steps change them) */
  for (int i = 0; i < m.params.n && n < MAXN; i++) {
    names[n] = m.params.items[i].name;
    ts[n++] = tyr_detach_e(tyr_clone_e(m.params.items[i].t));
  }
  tyr_tensor *xs[16], *ys[16];
  for (int i = 0; i < steps; i++) {
    xs[i] = tyr_randn_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 4, (int64_t[]){B, 1, 28, 28}, 0, 1);
    ys[i] = tyr_randint_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){B}, 0, 10);
    snprintf(namebuf[n], sizeof namebuf[n], "x.%d", i);
    names[n] = namebuf[n];
    ts[n++] = xs[i];
    snprintf(namebuf[n], sizeof namebuf[n], "y.%d", i);
    names[n] = namebuf[n];
    ts[n++] = ys[i];
  }
  /* the first batch: logits, loss, gradients, without a step */
  tyr_tensor *logits = tyr_cnn_forward(&m, xs[0]);
  tyr_tensor *loss = tyr_cross_entropy_e(logits, ys[0], -1);
  if (!loss || tyr_backward_e(loss)) return 1;
  names[n] = "logits";
  ts[n++] = tyr_detach_e(logits);
  names[n] = "loss";
  ts[n++] = tyr_detach_e(loss);
  for (int i = 0; i < m.params.n && n < MAXN; i++) {
    tyr_tensor *g = tyr_grad_e(m.params.items[i].t);
    if (!g) continue;
    snprintf(namebuf[n], sizeof namebuf[n], "grad.%s", m.params.items[i].name);
    names[n] = namebuf[n];
    ts[n++] = tyr_clone_e(g);
  }
  /* SGD steps from the same initial state: the running statistics moved
     during the forward above, so they are put back first */
  for (int i = 0; i < m.params.n; i++) tyr_copy_e(m.params.items[i].t, ts[i]);
  tyr_params_zero_grad(&m.params);
  tyr_optim opt = make_sgd(&m, lr, wd);
  tyr_tensor *losses = tyr_zeros_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){steps});
  for (int i = 0; i < steps; i++) {
    TYR_SCOPE;
    tyr_tensor *l = tyr_cross_entropy_e(tyr_cnn_forward(&m, xs[i]), ys[i], -1);
    tyr_backward_e(l);
    tyr_set_e(losses, tyr_item_e(l), i);
    tyr_optim_step(&opt, -1);
    tyr_optim_zero_grad(&opt);
  }
  names[n] = "losses";
  ts[n++] = losses;
  const char *cfgn[6] = {"cfg.width", "cfg.stages", "cfg.blocks", "cfg.steps", "cfg.lr", "cfg.wd"};
  double cfgv[6] = {(double)width, 3, (double)blocks, steps, lr, wd};
  for (int i = 0; i < 6; i++) {
    names[n] = cfgn[i];
    ts[n++] = tyr_full_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 0, NULL, cfgv[i]);
  }
  int rc = tyr_safetensors_save(path, n, names, ts, 0, NULL, NULL);
  tyr_optim_free(&opt);
  tyr_cnn_free(&m);
  tyr_set_default_dtype(TYR_F32);
  return rc;
}

/* f32 training steps per second */
static double bench_tyr(int64_t width, int64_t blocks, int64_t B, int steps, tyr_device dev) {
  tyr_manual_seed(0);
  tyr_set_default_device(dev);
  tyr_cnn m;
  tyr_cnn_config cfg = {1, 10, width, 3, blocks};
  if (tyr_cnn_init(&m, &cfg)) exit(1);
  tyr_optim opt = make_sgd(&m, 0.05, 5e-4);
  tyr_tensor *x =
      tyr_keep_e(tyr_randn_at(TYR_SITE, TYR_F32, dev, 4, (int64_t[]){B, 1, 28, 28}, 0, 1));
  tyr_tensor *y = tyr_keep_e(tyr_randint_at(TYR_SITE, TYR_I64, dev, 1, &B, 0, 10));
  double best = INFINITY;
  for (int rep = 0; rep < 4; rep++) {
    int n = rep == 0 ? 3 : steps;
    double t0 = now();
    for (int i = 0; i < n; i++) {
      TYR_SCOPE;
      tyr_tensor *l = tyr_cross_entropy_e(tyr_cnn_forward(&m, x), y, -1);
      tyr_backward_e(l);
      tyr_optim_step(&opt, -1);
      tyr_optim_zero_grad(&opt);
    }
    tyr_item_e(tyr_sum_e(tyr_keep_e(tyr_clone_e(m.fc.bias)))); /* wait for the device */
    if (rep > 0) best = fmin(best, (now() - t0) / n);
  }
  printf("tyr cnn: %.1f MFLOP per image forward\n", 2e-6 * tyr_cnn_macs(&m, 28, 28));
  tyr_tensor_free(x);
  tyr_tensor_free(y);
  tyr_optim_free(&opt);
  tyr_cnn_free(&m);
  tyr_set_default_device(TYR_DEVICE_CPU);
  return (double)B / best;
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  int steps = 10, threads = 0, torch = 1;
  int64_t B = 128, width = 16, blocks = 1;
  const char *devs = "cpu";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--steps") && i + 1 < argc)
      steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      B = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--width") && i + 1 < argc)
      width = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
      blocks = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--device") && i + 1 < argc)
      devs = argv[++i];
    else if (!strcmp(argv[i], "--no-torch"))
      torch = 0;
    else {
      fprintf(stderr, "usage: bench_cnn [--steps N] [--threads N] [--batch N] [--width N] "
                      "[--blocks N] [--device cpu|cuda] [--no-torch]\n");
      return 2;
    }
  }
  tyr_device dev;
  if (!tyr_device_parse(devs, &dev) || steps < 1 || B < 2 || width < 1 || blocks < 1) {
    fprintf(stderr, "bench_cnn: bad arguments (see the usage line)\n");
    return 2;
  }
  if (threads > 0) tyr_set_num_threads(threads);
  threads = tyr_get_num_threads();
  if (torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0 &&
      system("python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    printf("PyTorch is not importable: Tyr figures only\n");
    torch = 0;
  }
  const char *py = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0
                       ? "/usr/bin/python3"
                       : "python3";
  const char *env = getenv("TYR_ENV_SETUP_DONE") ? "env -u GOMP_SPINCOUNT " : "";
  char cmd[1024], line[512];
  if (torch) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_cnn_check_%d.safetensors", (int)getpid());
    if (write_check(path, 8, 1, 3)) return 1;
    snprintf(cmd, sizeof cmd, "%s%s bench/torch_cnn.py --check %s", env, py, path);
    printf("correctness (f64, width 8, batch 16, 3 SGD steps) against PyTorch:\n");
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    while (f && fgets(line, sizeof line, f)) printf("  %s", line);
    if (f) pclose(f);
    unlink(path);
  }
  printf("training speed: width %lld, blocks %lld, batch %lld, f32, device %s, %d threads\n",
         (long long)width, (long long)blocks, (long long)B, tyr_device_name(dev), threads);
  double tyr_ips = bench_tyr(width, blocks, B, steps, dev);
  double torch_ips = NAN;
  if (torch) {
    snprintf(cmd, sizeof cmd,
             "%s%s bench/torch_cnn.py --bench --width %lld --blocks %lld --batch %lld --steps %d "
             "--threads %d%s 2>/dev/null",
             env, py, (long long)width, (long long)blocks, (long long)B, steps, threads,
             dev.type == TYR_CUDA ? " --cuda" : "");
    FILE *f = popen(cmd, "r");
    while (f && fgets(line, sizeof line, f)) {
      double ms;
      if (sscanf(line, "torch cnn img/s %lf ms/step %lf", &torch_ips, &ms) == 2) break;
    }
    if (f) pclose(f);
  }
  printf("%-10s %12s %12s %8s\n", "", "tyr img/s", "torch img/s", "ratio");
  printf("%-10s %12.0f %12.0f %8.2f\n", "train", tyr_ips, torch_ips, tyr_ips / torch_ips);
  return 0;
}
