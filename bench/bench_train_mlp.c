/* bench_train_mlp: train_mlp's model against its PyTorch twin
 * (bench/torch_mlp.py) in one run: the same initial weights (written here
 * to a safetensors file that the twin reads), the same batches (the first
 * steps * batch Fashion-MNIST training images in order), the same AdamW.
 * Prints the first loss and each parameter's gradient norm from both, the
 * largest difference of the per-step losses, and each side's ms/step and
 * images/s (timed over the steps after the first).
 *
 *   bench_train_mlp [--steps N] [--batch N] [--hidden N] [--threads N] [--data DIR]
 *
 * Needs Debian's dataset-fashion-mnist and python3-torch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tyr/tyr.h>

enum { PIXELS = 784, CLASSES = 10, MAX_STEPS = 2000 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double norm2(const tyr_tensor *t) {
  const float *p = tyr_data_ptr(t);
  double s = 0;
  for (int64_t i = 0; i < tyr_numel(t); i++) s += (double)p[i] * p[i];
  return sqrt(s);
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  int64_t steps = 50, batch = 128, hidden = 256, threads = 0;
  char dir[400] = "/usr/share/datasets/fashion-mnist";
  const tyr_flag flags[] = {
      TYR_FLAG_STRING("data", dir, "directory with the Fashion-MNIST .gz files"),
      TYR_FLAG_INT("steps", &steps, 2, MAX_STEPS, "training steps"),
      TYR_FLAG_INT("batch", &batch, 1, 1000, "images per step"),
      TYR_FLAG_INT("hidden", &hidden, 1, 8192, "width of the hidden layer"),
      TYR_FLAG_INT("threads", &threads, 0, 1024, "CPU threads for both (0: all cores)"),
  };
  tyr_flags_parse("bench_train_mlp", "usage: bench_train_mlp [--flag value ...]", flags, 5, argc,
                  argv, 1);
  if (threads) tyr_set_num_threads((int)threads);
  threads = tyr_get_num_threads();
  char path[512];
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
  if (access(path, R_OK)) {
    fprintf(stderr, "bench_train_mlp: %s is missing (apt-get install dataset-fashion-mnist)\n",
            path);
    return 1;
  }
  int64_t n = steps * batch;
  if (n > 60000) {
    fprintf(stderr, "bench_train_mlp: --steps * --batch is over the 60000 training images\n");
    return 2;
  }
  tyr_tensor *img = tyr_idx_load(path);
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
  tyr_tensor *lab = tyr_idx_load(path);
  tyr_tensor *x = tyr_keep_e(tyr_div_scalar_e(
      tyr_sub_scalar_e(
          tyr_div_scalar_e(
              tyr_to_dtype_e(tyr_reshape_e(tyr_narrow_e(img, 0, 0, n), n, PIXELS), TYR_F32), 255.0),
          0.2860),
      0.3530));
  tyr_tensor *y = tyr_keep_e(tyr_to_dtype_e(tyr_contiguous_e(tyr_narrow_e(lab, 0, 0, n)), TYR_I64));

  /* the model, as train_mlp builds it; its initial weights for the twin */
  tyr_manual_seed(1);
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_nn_linear fc1, fc2;
  tyr_nn_linear_init(&fc1, &ps, "fc1", PIXELS, hidden, true, TYR_INIT_PYTORCH);
  tyr_nn_linear_init(&fc2, &ps, "fc2", hidden, CLASSES, true, TYR_INIT_PYTORCH);
  char init[] = "/tmp/tyr-bench-mlp-XXXXXX";
  int fd = mkstemp(init);
  if (fd < 0) return 1;
  close(fd);
  if (tyr_checkpoint_save(init, &ps, NULL, &(tyr_checkpoint_info){0})) return 1;
  tyr_params_group_by_rank(&ps);
  tyr_optim_config oc = tyr_adamw_config(2e-3);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.01};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  tyr_optim_init(&opt, &ps, oc);

  static double tl[MAX_STEPS + 1], pl[MAX_STEPS + 1];
  double tg[4] = {0}, pg[4] = {0}, t0 = 0, pt_ms = NAN, p_init = NAN;
  for (int64_t s = 0; s < steps; s++) {
    if (s == 1) t0 = now();
    TYR_SCOPE;
    tyr_tensor *xb = tyr_narrow_e(x, 0, s * batch, batch),
               *yb = tyr_narrow_e(y, 0, s * batch, batch);
    tyr_tensor *h = tyr_relu_e(tyr_linear_at(TYR_SITE, xb, fc1.weight, fc1.bias));
    tyr_tensor *l = tyr_cross_entropy_e(tyr_linear_at(TYR_SITE, h, fc2.weight, fc2.bias), yb, -1);
    tyr_backward_e(l);
    if (s == 0) /* sorted by name, as the twin prints them */
      for (int k = 0; k < 4; k++) tg[k] = norm2(tyr_grad_e(ps.items[k].t));
    tyr_optim_step(&opt, TYR_LR_CONFIGURED);
    tyr_optim_zero_grad(&opt);
    tl[s + 1] = tyr_item_e(l);
  }
  double tyr_ms = (now() - t0) / (double)(steps - 1) * 1e3;

  /* the twin: the environment the user gave (not Tyr's spin setting) */
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "%s/usr/bin/python3 bench/torch_mlp.py --init %s --data '%s' --steps %lld --batch %lld "
           "--threads %lld 2>&1",
           getenv("TYR_ENV_SETUP_DONE") ? "env -u GOMP_SPINCOUNT " : "", init, dir,
           (long long)steps, (long long)batch, (long long)threads);
  FILE *f = popen(cmd, "r");
  char line[512];
  int got = 0;
  while (f && fgets(line, sizeof line, f)) {
    char name[64];
    long long st;
    double v, ips;
    if (sscanf(line, "init_loss %lf", &v) == 1) p_init = v, got++;
    if (sscanf(line, "grad %63s %lf", name, &v) == 2) {
      int k = !strcmp(name, "fc1.bias")     ? 0
              : !strcmp(name, "fc1.weight") ? 1
              : !strcmp(name, "fc2.bias")   ? 2
                                            : 3;
      pg[k] = v;
    }
    if (sscanf(line, "loss %lld %lf", &st, &v) == 2 && st >= 1 && st <= steps) pl[st] = v, got++;
    if (sscanf(line, "torch ms/step %lf img/s %lf", &v, &ips) == 2) pt_ms = v;
  }
  if (f) pclose(f);
  unlink(init);
  if (got < steps + 1) {
    fprintf(stderr, "bench_train_mlp: the PyTorch twin did not run (needs python3-torch):\n  %s\n",
            cmd);
    return 1;
  }
  /* params in the collection: fc1.weight, fc1.bias, fc2.weight, fc2.bias */
  double tgn[4] = {tg[1], tg[0], tg[3], tg[2]};
  const char *names[4] = {"fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"};
  printf("train_mlp's MLP 784-%lld-10, batch %lld, %lld steps of AdamW (lr 2e-3), f32, %lld "
         "threads\n",
         (long long)hidden, (long long)batch, (long long)steps, (long long)threads);
  printf("first loss: tyr %.7f, torch %.7f\n", tl[1], p_init);
  for (int k = 0; k < 4; k++)
    printf("grad norm %-10s tyr %.7g, torch %.7g (rel. diff %.1e)\n", names[k], tgn[k], pg[k],
           fabs(tgn[k] - pg[k]) / pg[k]);
  double worst = 0;
  int64_t at = 0;
  for (int64_t s = 1; s <= steps; s++)
    if (fabs(tl[s] - pl[s]) > worst) worst = fabs(tl[s] - pl[s]), at = s;
  printf("losses: step %lld tyr %.6f torch %.6f; largest |difference| %.2e (step %lld)\n",
         (long long)steps, tl[steps], pl[steps], worst, (long long)at);
  printf("speed: tyr %.3f ms/step (%.0f img/s), torch %.3f ms/step (%.0f img/s), ratio %.2f\n",
         tyr_ms, (double)batch / tyr_ms * 1e3, pt_ms, (double)batch / pt_ms * 1e3, pt_ms / tyr_ms);
  tyr_optim_free(&opt);
  tyr_params_free(&ps);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
  return 0;
}
