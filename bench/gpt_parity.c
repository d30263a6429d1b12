/* Training parity of tyr_gpt against PyTorch, from the same initial weights
 * and the same batches.
 *
 * Tyr makes a GPT (GPT-2 124M, or a tiny one for the CPU), writes its
 * initial weights to DIR/init.safetensors, then for each precision mode
 * trains it from those weights: forward, backward, clipping at 1.0, AdamW
 * (betas 0.9/0.95, weight decay 0.1 on matrices, a linear warm-up of the
 * learning rate).  It writes the step-1 gradients (DIR/grads_<mode>.safetensors)
 * and every step's loss (DIR/losses_<mode>.txt).  bench/torch_gpt_parity.py
 * then trains the same model in PyTorch from DIR/init.safetensors on the same
 * batches, compares, prints one table and exits 1 when a bound is broken:
 *   step-1 gradients, per parameter, |g_tyr - g_torch| / |g_torch|:
 *     f32 (TF32 off) at most 1e-4; tf32 and the bf16 modes at most 2e-2
 *   step-1 loss: f32 within 1e-5
 *   loss curves: the mean of loss_tyr - loss_torch over the last 100 steps
 *     (or the last third of a shorter run) within 0.02 (the mean of
 *     |loss_tyr - loss_torch| is printed too)
 * --control also trains PyTorch's fp32 model a second time with its
 * attention in plain ops instead of SDPA: the same arithmetic, rounded
 * otherwise, which measures how far two runs drift apart by rounding alone.
 * Modes, each against the PyTorch mode that does the same arithmetic:
 *   f32          Tyr f32, matmuls in f32       vs fp32 with TF32 off
 *   tf32         matmuls with TF32 inputs      vs fp32 with TF32 on
 *   bf16-matmul  matmuls with bf16 inputs      vs the same in plain PyTorch (bf16in:
 *                                              operands rounded, f32 accumulation)
 *   bf16         bf16 mixed precision          vs bf16 autocast
 * (on the CPU only f32 exists).
 *
 * Batches: text tokens from a shard (llm.c layout, or headerless uint16 with
 * --raw); row b of step i is the window of T + 1 tokens starting at
 * ((i * B + b) * T) mod (N - T - 1).  With --repeat the batch of every step is
 * one batch of uniformly random tokens (Philox, seed 1, written to
 * DIR/repeat_batch.bin so that PyTorch reads the same): the setting of
 * bench_gpt2_cuda, where a model memorises one batch.
 *
 *   gpt_parity --tokens FILE --out DIR [--preset gpt2_124m|tiny] [--device cuda|cpu]
 *              [--batch B] [--steps N] [--modes f32,tf32,bf16-matmul,bf16]
 *              [--lr X] [--warmup N] [--seed S] [--repeat] [--raw] [--control]
 *              [--python PATH] [--no-torch]
 * --seed S draws other initial weights (seed 0 by default): runs from several
 * seeds measure how far the curves of one mode move by chaos alone, and
 * bench/gpt_parity_seeds.py compares the modes' means over the seeds. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tyr/cuda.h>
#include <tyr/tyr.h>

typedef struct {
  const char *name;
  int64_t L, H, C, T, V;
} preset;

static const preset PRESETS[] = {
    {"gpt2_124m", 12, 12, 768, 1024, 50304},
    {"tiny", 2, 2, 64, 64, 50304},
};

typedef struct {
  const char *flag;
  tyr_cuda_matmul_mode matmul;
  tyr_dtype compute;
} mode;

static const mode MODES[] = {
    {"f32", TYR_CUDA_MATMUL_F32, TYR_F32},
    {"tf32", TYR_CUDA_MATMUL_TF32, TYR_F32},
    {"bf16-matmul", TYR_CUDA_MATMUL_BF16, TYR_F32},
    {"bf16", TYR_CUDA_MATMUL_F32, TYR_BF16},
};
#define NMODES ((int)(sizeof MODES / sizeof MODES[0]))

static void die(const char *what) {
  const tyr_error *e = tyr_error_last();
  fprintf(stderr, "gpt_parity: %s: %s\n", what, e && e->message[0] ? e->message : "failed");
  exit(1);
}

/* The tokens of a shard (llm.c header, or raw uint16). */
static uint16_t *read_tokens(const char *path, bool raw, int64_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "gpt_parity: --tokens %s: %s\n", path, strerror(errno));
    exit(1);
  }
  int32_t hdr[256];
  long off = 0;
  if (!raw) {
    if (fread(hdr, sizeof hdr, 1, f) != 1 || hdr[0] != 20240520) {
      fprintf(stderr, "gpt_parity: --tokens %s: not an llm.c shard (use --raw for uint16)\n", path);
      exit(1);
    }
    off = sizeof hdr;
  }
  fseek(f, 0, SEEK_END);
  int64_t bytes = ftell(f) - off;
  fseek(f, off, SEEK_SET);
  *n = raw ? bytes / 2 : hdr[2];
  uint16_t *tok = malloc((size_t)*n * 2);
  if (!tok || fread(tok, 2, (size_t)*n, f) != (size_t)*n) {
    fprintf(stderr, "gpt_parity: --tokens %s: short file\n", path);
    exit(1);
  }
  fclose(f);
  return tok;
}

/* Step i's inputs and targets [B, T] on dev. */
static void make_batch(const uint16_t *tok, int64_t n, const uint16_t *repeat, int64_t i, int64_t B,
                       int64_t T, tyr_device dev, tyr_tensor **x, tyr_tensor **y) {
  int64_t *xs = malloc(sizeof *xs * B * T), *ys = malloc(sizeof *ys * B * T);
  for (int64_t b = 0; b < B; b++) {
    const uint16_t *w = repeat ? repeat + b * (T + 1) : tok + ((i * B + b) * T) % (n - T - 1);
    for (int64_t t = 0; t < T; t++) {
      xs[b * T + t] = w[t];
      ys[b * T + t] = w[t + 1];
    }
  }
  int64_t shape[2] = {B, T};
  *x = tyr_keep_e(tyr_from_host_at(TYR_SITE, xs, TYR_I64, dev, 2, shape));
  *y = tyr_keep_e(tyr_from_host_at(TYR_SITE, ys, TYR_I64, dev, 2, shape));
  free(xs);
  free(ys);
  if (!*x || !*y) die("batch");
}

static int save_params(const tyr_params *ps, bool grads, const char *path) {
  const char **names = malloc(sizeof *names * ps->n);
  tyr_tensor **ts = malloc(sizeof *ts * ps->n);
  for (int i = 0; i < ps->n; i++) {
    names[i] = ps->items[i].name;
    ts[i] = grads ? ps->items[i].t->grad : ps->items[i].t;
    if (!ts[i]) {
      fprintf(stderr, "gpt_parity: %s has no gradient\n", names[i]);
      exit(1);
    }
  }
  int st = tyr_safetensors_save(path, ps->n, names, ts, 0, NULL, NULL);
  free(names);
  free(ts);
  return st;
}

static void load_params(tyr_params *ps, const char *path) {
  tyr_safetensors *f = tyr_safetensors_open(path);
  if (!f) die(path);
  for (int i = 0; i < ps->n; i++)
    if (tyr_safetensors_load_into(f, ps->items[i].name, ps->items[i].t) != 0) die(path);
  tyr_safetensors_close(f);
}

int main(int argc, char **argv) {
  const char *tokens = NULL, *out = NULL, *python = NULL, *modes = NULL, *pname = "gpt2_124m";
  const char *devname = NULL;
  int64_t B = 8;
  int steps = 300, warmup = 20, torch = 1, repeat = 0, raw = 0, control = 0, seed = 0;
  double lr = 6e-4;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool more = i + 1 < argc;
    if (!strcmp(a, "--tokens") && more)
      tokens = argv[++i];
    else if (!strcmp(a, "--out") && more)
      out = argv[++i];
    else if (!strcmp(a, "--preset") && more)
      pname = argv[++i];
    else if (!strcmp(a, "--device") && more)
      devname = argv[++i];
    else if (!strcmp(a, "--batch") && more)
      B = atoll(argv[++i]);
    else if (!strcmp(a, "--steps") && more)
      steps = atoi(argv[++i]);
    else if (!strcmp(a, "--warmup") && more)
      warmup = atoi(argv[++i]);
    else if (!strcmp(a, "--lr") && more)
      lr = atof(argv[++i]);
    else if (!strcmp(a, "--seed") && more)
      seed = atoi(argv[++i]);
    else if (!strcmp(a, "--modes") && more)
      modes = argv[++i];
    else if (!strcmp(a, "--python") && more)
      python = argv[++i];
    else if (!strcmp(a, "--no-torch"))
      torch = 0;
    else if (!strcmp(a, "--repeat"))
      repeat = 1;
    else if (!strcmp(a, "--control"))
      control = 1;
    else if (!strcmp(a, "--raw"))
      raw = 1;
    else {
      fprintf(stderr,
              "usage: gpt_parity --tokens FILE --out DIR [--preset gpt2_124m|tiny] "
              "[--device cuda|cpu] [--batch B] [--steps N] [--modes f32,tf32,bf16-matmul,bf16] "
              "[--lr X] [--warmup N] [--seed S] [--repeat] [--raw] [--control] [--python PATH] "
              "[--no-torch]\n");
      return 2;
    }
  }
  const preset *p = NULL;
  for (size_t k = 0; k < sizeof PRESETS / sizeof PRESETS[0]; k++)
    if (!strcmp(pname, PRESETS[k].name)) p = &PRESETS[k];
  if (!p || !out || (!tokens && !repeat) || B < 1 || steps < 1 || warmup < 0 || !(lr > 0)) {
    fprintf(stderr, "gpt_parity: needs --out, --tokens (or --repeat), a known --preset, "
                    "--batch, --steps >= 1, --lr > 0 (see the usage with --help)\n");
    return 2;
  }
  bool cuda = devname ? !strcmp(devname, "cuda") : tyr_cuda_available();
  if (devname && strcmp(devname, "cuda") && strcmp(devname, "cpu")) {
    fprintf(stderr, "gpt_parity: --device must be cuda or cpu, not '%s'\n", devname);
    return 2;
  }
  if (cuda && !tyr_cuda_available()) {
    fprintf(stderr, "gpt_parity: --device cuda: no CUDA GPU\n");
    return 1;
  }
  tyr_device dev = cuda ? TYR_DEVICE_CUDA(0) : TYR_DEVICE_CPU;
  if (!modes) modes = cuda ? "f32,tf32,bf16-matmul,bf16" : "f32";
  if (mkdir(out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "gpt_parity: --out %s: %s\n", out, strerror(errno));
    return 1;
  }

  int64_t n = 0, T = p->T;
  uint16_t *tok = NULL, *rep = NULL;
  if (tokens) {
    tok = read_tokens(tokens, raw, &n);
    if (n < T + 2) {
      fprintf(stderr, "gpt_parity: --tokens %s: %lld tokens, fewer than one window\n", tokens,
              (long long)n);
      return 1;
    }
    for (int64_t i = 0; i < n; i++)
      if (tok[i] >= p->V) {
        fprintf(stderr, "gpt_parity: --tokens %s: token %u at %lld is outside vocab %lld\n", tokens,
                tok[i], (long long)i, (long long)p->V);
        return 1;
      }
  }
  char path[4096];
  if (repeat) { /* one batch of random tokens, the same for both frameworks */
    rep = malloc(sizeof *rep * B * (T + 1));
    tyr_manual_seed(1);
    int64_t shape[1] = {B * (T + 1)};
    tyr_tensor *r = tyr_randint_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 1, shape, 0, 50257);
    if (!r) die("random batch");
    int64_t *rv = malloc(sizeof *rv * B * (T + 1));
    if (!rv || tyr_to_host_at(TYR_SITE, r, rv, sizeof *rv * B * (T + 1)) != 0) die("random batch");
    for (int64_t i = 0; i < B * (T + 1); i++) rep[i] = (uint16_t)rv[i];
    free(rv);
    tyr_tensor_free(r);
    snprintf(path, sizeof path, "%s/repeat_batch.bin", out);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(rep, 2, B * (T + 1), f) != (size_t)(B * (T + 1)) || fclose(f) != 0) {
      fprintf(stderr, "gpt_parity: cannot write %s\n", path);
      return 1;
    }
  }

  /* the initial weights, once, in f32 */
  tyr_gpt_config cfg = tyr_gpt_config_gpt2(p->V, T, p->L, p->H, p->C);
  cfg.act = TYR_ACT_GELU_TANH;
  {
    tyr_gpt g;
    tyr_manual_seed((uint64_t)seed);
    if (tyr_gpt_init(&g, &cfg, TYR_DEVICE_CPU) != 0) die("init");
    snprintf(path, sizeof path, "%s/init.safetensors", out);
    if (save_params(&g.params, false, path) != 0) die(path);
    tyr_gpt_free(&g);
  }
  printf("gpt_parity: %s (%lld layers, %lld heads, %lld wide, block %lld, vocab %lld), batch %lld, "
         "%d steps, lr %g (warm-up %d), %s, on %s\n",
         p->name, (long long)p->L, (long long)p->H, (long long)p->C, (long long)T, (long long)p->V,
         (long long)B, steps, lr, warmup, repeat ? "one repeated random batch" : "text batches",
         cuda ? "cuda:0" : "the CPU");
  fflush(stdout);

  char list[256];
  snprintf(list, sizeof list, "%s", modes);
  for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
    const mode *md = NULL;
    for (int k = 0; k < NMODES; k++)
      if (!strcmp(m, MODES[k].flag)) md = &MODES[k];
    if (!md || (!cuda && strcmp(m, "f32"))) {
      fprintf(stderr, "gpt_parity: --modes: '%s' is not a mode %s\n", m,
              cuda ? "(f32, tf32, bf16-matmul, bf16)" : "on the CPU (f32)");
      return 2;
    }
    if (cuda) tyr_cuda_set_matmul_mode(md->matmul);
    tyr_gpt_config c = cfg;
    c.compute_dtype = md->compute;
    tyr_gpt g;
    if (tyr_gpt_init(&g, &c, dev) != 0) die("init");
    snprintf(path, sizeof path, "%s/init.safetensors", out);
    load_params(&g.params, path);
    tyr_params_group_by_rank(&g.params);
    tyr_optim_config oc = tyr_adamw_config(lr);
    oc.beta2 = 0.95;
    oc.ngroups = 2;
    oc.groups[0] = (tyr_param_group){1.0, 0.1};
    oc.groups[1] = (tyr_param_group){1.0, 0.0};
    tyr_optim opt;
    if (tyr_optim_init(&opt, &g.params, oc) != 0) die("optimizer");
    snprintf(path, sizeof path, "%s/losses_%s.txt", out, m);
    FILE *lf = fopen(path, "w");
    if (!lf) {
      fprintf(stderr, "gpt_parity: cannot write %s\n", path);
      return 1;
    }
    double first = NAN, last = NAN;
    for (int i = 0; i < steps; i++) {
      TYR_SCOPE;
      tyr_tensor *x, *y;
      make_batch(tok, n, rep, i, B, T, dev, &x, &y);
      tyr_tensor *loss = tyr_gpt_loss(&g, x, y, true);
      if (!loss || tyr_backward_e(loss) != 0) die("step");
      double lv = tyr_item_e(loss);
      if (i == 0) {
        first = lv;
        snprintf(path, sizeof path, "%s/grads_%s.safetensors", out, m);
        if (save_params(&g.params, true, path) != 0) die(path);
      }
      last = lv;
      fprintf(lf, "%.9g\n", lv);
      tyr_params_clip_grad_norm(&g.params, 1.0);
      double lr_i = warmup > 0 && i < warmup ? lr * (i + 1) / warmup : lr;
      if (tyr_optim_step(&opt, lr_i) != 0) die("optimizer step");
      tyr_optim_zero_grad(&opt);
      tyr_tensor_free(x);
      tyr_tensor_free(y);
    }
    fclose(lf);
    printf("  tyr %-12s step-1 loss %.7f  loss after %d steps %.4f\n", m, first, steps, last);
    fflush(stdout);
    tyr_optim_free(&opt);
    tyr_gpt_free(&g);
    if (cuda) {
      tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
      tyr_cuda_empty_cache();
    }
  }
  free(tok);
  free(rep);
  if (!torch) return 0;

  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "%s bench/torch_gpt_parity.py --dir '%s' %s%s%s --layers %lld --heads %lld --embd %lld "
           "--block %lld --vocab %lld --batch %lld --steps %d --lr %g --warmup %d --modes %s "
           "--device %s%s",
           python ? python : "python3", out, repeat ? "--repeat" : "--tokens '",
           repeat ? "" : tokens, repeat ? "" : (raw ? "' --raw" : "'"), (long long)p->L,
           (long long)p->H, (long long)p->C, (long long)T, (long long)p->V, (long long)B, steps, lr,
           warmup, modes, cuda ? "cuda" : "cpu", control ? " --control" : "");
  fflush(stdout);
  int rc = system(cmd);
  if (rc == -1 || !WIFEXITED(rc)) {
    fprintf(stderr, "gpt_parity: could not run %s\n", cmd);
    return 1;
  }
  return WEXITSTATUS(rc);
}
