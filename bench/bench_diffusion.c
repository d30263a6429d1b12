/* The masked diffusion LM (tyr/models/diffusion_lm.h) against its PyTorch
 * twin, bench/torch_diffusion.py.
 *
 *   bench_diffusion [--config tiny|small|full] [--batch B] [--steps N]
 *                   [--threads N] [--device cpu|cuda] [--no-torch] [--compile]
 *     training tok/s (forward, backward, clipping, AdamW on noised random
 *     ASCII batches) of Tyr, then of the twin in the same run (Debian's
 *     /usr/bin/python3, or $TYR_PYTHON), and their ratio.  The defaults are
 *     train_diffusion's CPU preset (tiny, batch 64).  --compile passes
 *     torch.compile to the twin (PyTorch 2).
 *
 *   bench_diffusion --dump DIR [--steps K] [--batch B] [--config tiny]
 *     writes what `torch_diffusion.py check DIR` compares: Tyr's initial
 *     weights (init.safetensors), K noised batches (batches.safetensors),
 *     the weights after K AdamW steps on them (final.safetensors), and
 *     Tyr's K losses, the logits, loss and gradients at the final weights on
 *     the first batch (tyr.safetensors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/models/diffusion_lm.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  tyr_tensor *ids, *t, *x0, *w;
} batch;

/* B random printable-ASCII sequences, noised, with CE weights */
static batch make_batch(const tyr_dlm_config *c, int64_t B, uint64_t seed, uint64_t *counter,
                        tyr_device dev) {
  const int64_t S = c->seq_len, n = B * S;
  int64_t *x0 = malloc(sizeof(int64_t) * (size_t)n), *xt = malloc(sizeof(int64_t) * (size_t)n),
          *t = malloc(sizeof(int64_t) * (size_t)B);
  uint8_t *mk = malloc((size_t)n);
  float *w = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++)
    x0[i] = 32 +
            (int64_t)(tyr_philox_uniform(seed + 1, *counter * (uint64_t)n + (uint64_t)i) * 95) % 95;
  tyr_dlm_noise(c, B, x0, seed, counter, xt, t, mk);
  tyr_dlm_loss_weights(c, TYR_DLM_LOSS_CE, B, t, mk, w);
  int64_t bs[2] = {B, S};
  batch r = {tyr_from_host_at(TYR_SITE, xt, TYR_I64, dev, 2, bs),
             tyr_from_host_at(TYR_SITE, t, TYR_I64, dev, 1, (int64_t[]){B}),
             tyr_from_host_at(TYR_SITE, x0, TYR_I64, dev, 2, bs),
             tyr_from_host_at(TYR_SITE, w, TYR_F32, dev, 2, bs)};
  free(x0);
  free(xt);
  free(t);
  free(mk);
  free(w);
  return r;
}

static const double LR = 3e-3, WD = 0.1, BETA1 = 0.9, BETA2 = 0.99, CLIP = 1.0;

static void optim(tyr_dlm *m, tyr_optim *opt) {
  tyr_params_group_by_rank(&m->params);
  tyr_optim_config oc = tyr_adamw_config(LR);
  oc.beta1 = BETA1;
  oc.beta2 = BETA2;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, WD};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  if (tyr_optim_init(opt, &m->params, oc)) exit(1);
}

static double train_step(tyr_dlm *m, tyr_optim *opt, const batch *b) {
  tyr_tensor *loss = tyr_dlm_loss(m, b->ids, b->t, b->x0, b->w);
  if (!loss) exit(1);
  tyr_backward_e(loss);
  double v = tyr_item_e(loss);
  tyr_params_clip_grad_norm(&m->params, CLIP);
  tyr_optim_step(opt, LR);
  tyr_optim_zero_grad(opt);
  return v;
}

static int dump(const char *dir, const tyr_dlm_config *c, int64_t B, int K) {
  char path[1200], cfg[512], ks[16], lr[32], wd[32], b1[32], b2[32], cl[32];
  tyr_manual_seed(1);
  tyr_dlm m;
  if (tyr_dlm_init(&m, c, TYR_DEVICE_CPU)) return 1;
  tyr_checkpoint_info info = {.step = 0, .rng = tyr_rng_get_state()};
  snprintf(path, sizeof path, "%s/init.safetensors", dir);
  if (tyr_checkpoint_save(path, &m.params, NULL, &info)) return 1;
  /* the batches */
  batch *bt = calloc((size_t)K, sizeof *bt);
  tyr_tensor **ts = calloc((size_t)K * 4, sizeof *ts);
  char(*names)[32] = calloc((size_t)K * 4, 32);
  const char **np = calloc((size_t)K * 4, sizeof *np);
  uint64_t counter = 0;
  for (int k = 0; k < K; k++) {
    bt[k] = make_batch(c, B, 99, &counter, TYR_DEVICE_CPU);
    tyr_tensor *parts[4] = {bt[k].ids, bt[k].t, bt[k].x0, bt[k].w};
    const char *pn[4] = {"ids", "t", "x0", "w"};
    for (int j = 0; j < 4; j++) {
      snprintf(names[k * 4 + j], 32, "%s.%d", pn[j], k);
      np[k * 4 + j] = names[k * 4 + j];
      ts[k * 4 + j] = tyr_keep_e(parts[j]);
    }
  }
  tyr_dlm_config_json(c, cfg, sizeof cfg);
  snprintf(ks, sizeof ks, "%d", K);
  snprintf(lr, sizeof lr, "%.17g", LR);
  snprintf(wd, sizeof wd, "%.17g", WD);
  snprintf(b1, sizeof b1, "%.17g", BETA1);
  snprintf(b2, sizeof b2, "%.17g", BETA2);
  snprintf(cl, sizeof cl, "%.17g", CLIP);
  const char *mk[] = {"config", "steps", "lr", "weight_decay", "beta1", "beta2", "clip"};
  const char *mv[] = {cfg, ks, lr, wd, b1, b2, cl};
  snprintf(path, sizeof path, "%s/batches.safetensors", dir);
  if (tyr_safetensors_save(path, K * 4, np, ts, 7, mk, mv)) return 1;
  /* K training steps */
  tyr_optim opt;
  optim(&m, &opt);
  float *losses = malloc(sizeof(float) * (size_t)K);
  for (int k = 0; k < K; k++) {
    TYR_SCOPE;
    losses[k] = (float)train_step(&m, &opt, &bt[k]);
  }
  snprintf(path, sizeof path, "%s/final.safetensors", dir);
  if (tyr_checkpoint_save(path, &m.params, NULL, &info)) return 1;
  /* logits, loss and gradients at the final weights on batch 0 */
  {
    TYR_SCOPE;
    tyr_tensor *logits = tyr_dlm_forward(&m, bt[0].ids, bt[0].t);
    tyr_tensor *loss = tyr_dlm_loss(&m, bt[0].ids, bt[0].t, bt[0].x0, bt[0].w);
    tyr_backward_e(loss);
    int n = m.params.n + 3;
    tyr_tensor **out = calloc((size_t)n, sizeof *out);
    char(*on)[160] = calloc((size_t)n, 160);
    const char **onp = calloc((size_t)n, sizeof *onp);
    out[0] = tyr_from_host_at(TYR_SITE, losses, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){K});
    snprintf(on[0], 160, "losses");
    out[1] = logits;
    snprintf(on[1], 160, "logits");
    out[2] = loss;
    snprintf(on[2], 160, "loss");
    for (int i = 0; i < m.params.n; i++) {
      out[3 + i] = m.params.items[i].t->grad;
      snprintf(on[3 + i], 160, "grad.%s", m.params.items[i].name);
    }
    for (int i = 0; i < n; i++) onp[i] = on[i];
    snprintf(path, sizeof path, "%s/tyr.safetensors", dir);
    if (tyr_safetensors_save(path, n, onp, out, 0, NULL, NULL)) return 1;
    free(out);
    free(on);
    free(onp);
  }
  printf("bench_diffusion: wrote %s/{init,batches,final,tyr}.safetensors (%s, batch %lld, %d "
         "steps, losses %.4f -> %.4f)\n",
         dir, c->name, (long long)B, K, losses[0], losses[K - 1]);
  for (int i = 0; i < K * 4; i++) tyr_tensor_free(ts[i]);
  free(losses);
  free(bt);
  free(ts);
  free(names);
  free(np);
  tyr_optim_free(&opt);
  tyr_dlm_free(&m);
  return 0;
}

static double bench_tyr(const tyr_dlm_config *c, int64_t B, int steps, tyr_device dev) {
  tyr_manual_seed(1);
  tyr_dlm m;
  if (tyr_dlm_init(&m, c, dev)) exit(1);
  tyr_optim opt;
  optim(&m, &opt);
  uint64_t counter = 0;
  double t0 = 0;
  for (int i = 0; i < steps + 3; i++) { /* 3 warm-up steps */
    if (i == 3) t0 = now();
    TYR_SCOPE;
    batch b = make_batch(c, B, 5, &counter, dev);
    train_step(&m, &opt, &b);
  }
  double dt = (now() - t0) / steps;
  tyr_optim_free(&opt);
  tyr_dlm_free(&m);
  return dt;
}

static double bench_torch(const char *py, const char *config, int64_t B, int steps, int threads,
                          const char *device, bool compile) {
  char cmd[1024], line[256];
  snprintf(cmd, sizeof cmd,
           "%s bench/torch_diffusion.py bench --config %s --batch %lld --steps %d --threads %d "
           "--device %s%s",
           py, config, (long long)B, steps, threads, device, compile ? " --compile" : "");
  FILE *f = popen(cmd, "r");
  if (!f) return NAN;
  double tok = NAN, ms = NAN;
  char name[64];
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "torch %63s tok/s %lf ms/step %lf", name, &tok, &ms) == 3) break;
  pclose(f);
  return ms * 1e-3;
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  const char *config = "tiny", *dir = NULL, *device = "cpu";
  int64_t B = 64;
  int steps = 20, threads = 2, torch = 1, compile = 0;
  bool batch_given = false, steps_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--config") && v)
      config = argv[++i];
    else if (!strcmp(a, "--batch") && v)
      B = atoll(argv[++i]), batch_given = true;
    else if (!strcmp(a, "--steps") && v)
      steps = atoi(argv[++i]), steps_given = true;
    else if (!strcmp(a, "--threads") && v)
      threads = atoi(argv[++i]);
    else if (!strcmp(a, "--device") && v)
      device = argv[++i];
    else if (!strcmp(a, "--dump") && v)
      dir = argv[++i];
    else if (!strcmp(a, "--no-torch"))
      torch = 0;
    else if (!strcmp(a, "--compile"))
      compile = 1;
    else {
      fprintf(stderr,
              "usage: bench_diffusion [--config tiny|small|full] [--batch B] [--steps N] "
              "[--threads N] [--device cpu|cuda] [--no-torch] [--compile]\n"
              "       bench_diffusion --dump DIR [--config tiny] [--batch B] [--steps K]\n");
      return 2;
    }
  }
  tyr_dlm_config c;
  if (!tyr_dlm_config_named(config, &c)) {
    fprintf(stderr, "bench_diffusion: --config must be tiny, small or full: %s\n", config);
    return 2;
  }
  if (B < 1 || steps < 1) {
    fprintf(stderr, "bench_diffusion: --batch and --steps must be positive\n");
    return 2;
  }
  if (dir) return dump(dir, &c, batch_given ? B : 4, steps_given ? steps : 10);
  if (threads > 0) tyr_set_num_threads(threads);
  tyr_device dev;
  if (!tyr_device_parse(device, &dev)) {
    fprintf(stderr, "bench_diffusion: --device must be cpu, cuda or cuda:N: %s\n", device);
    return 2;
  }
  const char *py = getenv("TYR_PYTHON") ? getenv("TYR_PYTHON") : "/usr/bin/python3";
  char probe[512];
  snprintf(probe, sizeof probe, "%s -c 'import torch' >/dev/null 2>&1", py);
  if (torch && system(probe) != 0) {
    printf("PyTorch is not importable with %s: Tyr figures only\n", py);
    torch = 0;
  }
  printf("bench_diffusion: config %s, batch %lld, seq %lld, %d timed steps, device %s, %d "
         "threads\n",
         config, (long long)B, (long long)c.seq_len, steps, device, tyr_get_num_threads());
  double tt = bench_tyr(&c, B, steps, dev);
  double pt = torch ? bench_torch(py, config, B, steps, threads, device, compile) : NAN;
  double tokens = (double)(B * c.seq_len);
  printf("%-8s %12s %10s %12s %10s %8s\n", "config", "tyr tok/s", "ms/step", "torch tok/s",
         "ms/step", "ratio");
  printf("%-8s %12.0f %10.2f %12.0f %10.2f %8.2f\n", config, tokens / tt, tt * 1e3, tokens / pt,
         pt * 1e3, pt / tt);
  return 0;
}
