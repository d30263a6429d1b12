/* The nanochat GPT (tyr/models/nanochat_gpt.h) against its PyTorch twin
 * (bench/torch_nanochat.py), in one run.
 *
 *   bench_nanochat --dump DIR [--feature F] [--compare]
 *       a tiny config in f64 (every feature on; --feature F: only F, or
 *       "none"): writes DIR/init.safetensors (the initial weights and the
 *       config), DIR/batch.safetensors (ids, targets, document ids, the
 *       windows) and DIR/tyr.safetensors (logits, loss and every gradient);
 *       with --compare runs `torch_nanochat.py check DIR`, which computes
 *       the same with PyTorch from those weights and prints the largest
 *       differences (exit 1 past tolerance).
 *   bench_nanochat --speed [--preset d12|debug] [--device cuda] [--steps N]
 *                  [--micro-batch B] [--accum A] [--seq-len T]
 *                  [--data SHARD] [--work-dir DIR [--tol X]]
 *       Tyr's training step (forward, backward, Muon with Polar Express +
 *       Adam) on random BOS-packed batches, or on the windows of a token
 *       shard: tok/s, ms/step, MFU, peak memory, the first step's loss and
 *       the mean of the last steps; then the twin's (`torch_nanochat.py
 *       speed`: torch.compile unless --no-compile, FlexAttention with block
 *       masks on CUDA unless --attention dense) with the same sizes, so
 *       that both figures come from one run.  With --work-dir the twin
 *       starts from Tyr's initial weights on the same batches and compares
 *       the losses step by step (DIR/tyr_losses.txt, DIR/torch_losses.txt).
 * The interpreter with PyTorch: $TYR_PYTHON, default /usr/bin/python3. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/checkpoint.h>
#include <tyr/cuda.h>
#include <tyr/data.h>
#include <tyr/fileio.h>
#include <tyr/flags.h>
#include <tyr/models/nanochat_gpt.h>
#include <tyr/muon.h>
#include <tyr/safetensors.h>
#include <tyr/tyr.h>

enum { B = 2, T = 24, V = 64 };

static tyr_nanochat_config tiny(const char *feature) {
  tyr_nanochat_config c = tyr_nanochat_config_d12();
  c.vocab_size = V;
  c.n_layer = 6;
  c.n_head = 2;
  c.head_dim = 8;
  c.n_embd = 16;
  c.mlp_hidden = 64;
  c.max_seq_len = T;
  c.no_attn_layer = 3;
  c.zero_init_proj = false; /* every gradient non-zero */
  if (feature[0] && strcmp(feature, "all")) {
    const char *names[] = {"qk_norm",       "rope_half",  "value_embeds", "unet_skips",
                           "block_lambdas", "smear_gate", "attn_gate",    "no_attn",
                           "softcap",       "windows",    "docs",         "none"};
    bool *flags[] = {&c.qk_norm,       &c.rope_half,  &c.value_embeds, &c.unet_skips,
                     &c.block_lambdas, &c.smear_gate, &c.attn_gate};
    bool known = false;
    for (int i = 0; i < 12; i++) known |= !strcmp(feature, names[i]);
    if (!known) {
      fprintf(stderr, "bench_nanochat: --feature %s: unknown\n", feature);
      exit(2);
    }
    for (int i = 0; i < 7; i++) *flags[i] = !strcmp(feature, names[i]);
    if (strcmp(feature, "no_attn")) c.no_attn_layer = -1;
    if (strcmp(feature, "softcap")) c.logit_softcap = 0;
  }
  return c;
}

static int dump(const char *dir, const char *feature) {
  tyr_set_default_dtype(TYR_F64);
  tyr_manual_seed(7);
  tyr_nanochat_config c = tiny(feature);
  tyr_nanochat_gpt m;
  if (tyr_nanochat_init(&m, &c, TYR_DEVICE_CPU)) return 1;
  /* lambdas and gates away from their initial values */
  for (int i = 0; i < m.params.n; i++) {
    tyr_tensor *t = m.params.items[i].t;
    if (t->rank == 1 || strstr(m.params.items[i].name, "gate")) {
      double *d = tyr_data_ptr(t);
      for (int64_t k = 0; k < tyr_numel(t); k++) d[k] += 0.3 + 0.1 * (double)k;
    }
  }
  char path[1200];
  snprintf(path, sizeof path, "%s/init.safetensors", dir);
  if (tyr_nanochat_save(&m, path)) return 1;
  TYR_SCOPE;
  int32_t idx[B * T], tgt[B * T], doc[B * T];
  bool docs = !feature[0] || !strcmp(feature, "all") || !strcmp(feature, "docs");
  for (int i = 0; i < B * T; i++) {
    idx[i] = (int32_t)((i * 37 + 11) % V);
    tgt[i] = (int32_t)((i * 53 + 5) % V);
    doc[i] = docs ? (int32_t)((i % T) / 7 + (i / T)) : 0; /* documents of 7 tokens */
  }
  bool win = !feature[0] || !strcmp(feature, "all") || !strcmp(feature, "windows");
  tyr_nanochat_windows w = {win ? 9 : 0, win ? 4 : 0};
  tyr_tensor *ti = tyr_from_host_at(TYR_SITE, idx, TYR_I32, TYR_DEVICE_CPU, 2, (int64_t[]){B, T});
  tyr_tensor *tt = tyr_from_host_at(TYR_SITE, tgt, TYR_I32, TYR_DEVICE_CPU, 2, (int64_t[]){B, T});
  tyr_tensor *td = tyr_from_host_at(TYR_SITE, doc, TYR_I32, TYR_DEVICE_CPU, 2, (int64_t[]){B, T});
  char lw[32], sw[32];
  snprintf(lw, sizeof lw, "%" PRId64, w.long_window);
  snprintf(sw, sizeof sw, "%" PRId64, w.short_window);
  snprintf(path, sizeof path, "%s/batch.safetensors", dir);
  if (tyr_safetensors_save(
          path, 3, (const char *[]){"idx", "targets", "doc_ids"}, (tyr_tensor *[]){ti, tt, td}, 2,
          (const char *[]){"long_window", "short_window"}, (const char *[]){lw, sw}))
    return 1;
  tyr_tensor *loss = NULL;
  tyr_tensor *logits = tyr_nanochat_forward(&m, ti, td, &w, tt, &loss);
  if (!logits || tyr_backward_e(loss)) return 1;
  int n = m.params.n + 2;
  tyr_tensor **out = calloc((size_t)n, sizeof *out);
  char(*on)[160] = calloc((size_t)n, 160);
  const char **onp = calloc((size_t)n, sizeof *onp);
  out[0] = logits;
  snprintf(on[0], 160, "logits");
  out[1] = loss;
  snprintf(on[1], 160, "loss");
  for (int i = 0; i < m.params.n; i++) {
    out[2 + i] = m.params.items[i].t->grad;
    snprintf(on[2 + i], 160, "grad.%s", m.params.items[i].name);
  }
  for (int i = 0; i < n; i++) onp[i] = on[i];
  snprintf(path, sizeof path, "%s/tyr.safetensors", dir);
  int st = tyr_safetensors_save(path, n, onp, out, 0, NULL, NULL);
  free(out);
  free(on);
  free(onp);
  if (st) return 1;
  printf("bench_nanochat: wrote %s/{init,batch,tyr}.safetensors (features: %s, loss %.6f)\n", dir,
         feature[0] ? feature : "all", tyr_item_e(loss));
  tyr_nanochat_free(&m);
  tyr_set_default_dtype(TYR_F32);
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Tyr's training step on random BOS-packed batches (documents of 300 to
 * 1500 tokens), Muon + Adam as train_nanochat sets them up */
/* Fills ids [mb, T+1] and doc [mb, T] for micro-batch k: random
 * BOS-packed documents of 300 to 1500 tokens (rs), or, with a shard, the
 * windows of T+1 tokens at (k * mb + b) * T (wrapping), document ids
 * counting the BOS tokens so far, as torch_nanochat.py reads them. */
static void fill_batch(const uint16_t *tok, int64_t ntok, int64_t k, int64_t mb, int64_t T_,
                       int64_t *ids, int32_t *doc, uint64_t *rs) {
  for (int64_t b = 0; b < mb; b++) {
    int64_t left = 0, start = tok ? ((k * mb + b) * T_) % (ntok - T_ - 1) : 0;
    int32_t d = 0;
    for (int64_t t = 0; t <= T_; t++) {
      int64_t id;
      if (tok) {
        id = tok[start + t];
      } else {
        uint64_t r = *rs;
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        *rs = r;
        if (left-- <= 0) {
          id = 50256;
          left = 300 + (int64_t)(r % 1200);
        } else {
          id = (int64_t)(r % 50257);
        }
      }
      ids[b * (T_ + 1) + t] = id;
      if (id == 50256) d++;
      if (t < T_) doc[b * T_ + t] = d;
    }
  }
}

static int speed(const char *preset, const char *device, int64_t steps, int64_t mb, int64_t accum,
                 int64_t T_, double peak, const char *data, const char *dir) {
  tyr_device dev;
  if (!tyr_device_parse(device, &dev)) {
    fprintf(stderr, "bench_nanochat: --device %s: cpu, cuda or cuda:N\n", device);
    return 2;
  }
  tyr_nanochat_config c =
      !strcmp(preset, "debug") ? tyr_nanochat_config_debug() : tyr_nanochat_config_d12();
  c.max_seq_len = T_;
  if (dev.type == TYR_CUDA) {
    c.compute_dtype = TYR_BF16;
    tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_BF16);
  }
  tyr_manual_seed(1);
  tyr_nanochat_gpt m;
  if (tyr_nanochat_init(&m, &c, dev)) return 1;
  for (int i = 0; i < m.params.n; i++) {
    tyr_param *p = &m.params.items[i];
    p->group = strstr(p->name, "embed") ? 0 : !strcmp(p->name, "lm_head") ? 1 : 2;
  }
  tyr_muon_config mc = tyr_muon_default_config(0.05, 1.0);
  mc.ortho = TYR_MUON_POLAR_EXPRESS;
  mc.adamw_names = "embed,lm_head,gate";
  mc.adamw.beta1 = 0.8, mc.adamw.beta2 = 0.95, mc.adamw.eps = 1e-10;
  mc.adamw.ngroups = 3;
  mc.adamw.groups[0] = (tyr_param_group){0.6, 0};
  mc.adamw.groups[1] = (tyr_param_group){0.008, 0};
  mc.adamw.groups[2] = (tyr_param_group){0.04, 0};
  tyr_muon mu;
  if (tyr_muon_init(&mu, &m.params, &mc, NULL)) return 1;
  tyr_shards *sh = NULL;
  const uint16_t *tok = NULL;
  int64_t ntok = 0;
  if (data[0]) {
    if (!(sh = tyr_shards_open(data, TYR_SHARD_LLMC))) return 1;
    tok = tyr_shards_tokens(sh, 0), ntok = tyr_shards_ntokens(sh, 0);
    if (ntok < T_ + 2 || tyr_shards_count(sh) > 1) {
      fprintf(stderr, "bench_nanochat: --data %s: needs one shard of at least %" PRId64 " tokens\n",
              data, T_ + 2);
      return 2;
    }
  }
  FILE *lf = NULL;
  char path[1200];
  if (dir[0]) { /* the initial weights for the twin, and the losses */
    snprintf(path, sizeof path, "%s/init.safetensors", dir);
    if (tyr_mkdirs(dir) || tyr_nanochat_save(&m, path)) return 1;
    snprintf(path, sizeof path, "%s/tyr_losses.txt", dir);
    if (!(lf = fopen(path, "w"))) {
      fprintf(stderr, "bench_nanochat: %s: cannot write\n", path);
      return 1;
    }
  }
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)(mb * (T_ + 1)));
  int32_t *doc = malloc(sizeof(int32_t) * (size_t)(mb * T_));
  uint64_t r = 88172645463325252ull;
  double t_run = 0, first = NAN, tail = 0;
  int64_t ntail = steps < 50 ? (steps + 1) / 2 : steps / 5;
  tyr_nanochat_windows w = {T_, T_ / 2};
  for (int64_t s = 0; s < steps + 2; s++) { /* two warm-up steps, not timed */
    double t0 = now();
    double lsum = 0;
    for (int64_t a = 0; a < accum; a++) {
      TYR_SCOPE;
      fill_batch(tok, ntok, s * accum + a, mb, T_, ids, doc, &r);
      tyr_tensor *all =
          tyr_from_host_at(TYR_SITE, ids, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){mb, T_ + 1});
      tyr_tensor *x = tyr_to_device_e(tyr_narrow_e(all, 1, 0, T_), dev);
      tyr_tensor *y = tyr_to_device_e(tyr_contiguous_e(tyr_narrow_e(all, 1, 1, T_)), dev);
      tyr_tensor *td = tyr_from_host_at(TYR_SITE, doc, TYR_I32, dev, 2, (int64_t[]){mb, T_});
      tyr_tensor *loss = tyr_nanochat_loss(&m, tyr_contiguous_e(x), y, td, &w);
      if (!loss || tyr_backward_e(accum > 1 ? tyr_mul_scalar_e(loss, 1.0 / (double)accum) : loss))
        return 1;
      lsum += tyr_item_e(loss);
    }
    if (tyr_muon_step(&mu, 1.0)) return 1;
    tyr_params_zero_grad(&m.params);
    if (dev.type == TYR_CUDA) tyr_cuda_synchronize();
    double dt = now() - t0;
    double l = lsum / (double)accum;
    if (lf) fprintf(lf, "%.6f\n", l);
    if (s == 0) first = l;
    if (s >= steps + 2 - ntail) tail += l / (double)ntail;
    if (s >= 2) t_run += dt;
  }
  if (lf && fclose(lf)) return 1;
  tyr_shards_close(sh);
  double tok_s = (double)(steps * accum * mb * T_) / t_run;
  double mfu = tyr_nanochat_flops_per_token(&m, T_, &w) * tok_s / (peak * 1e12);
  printf("tyr %s %s: %" PRId64 " steps of %" PRId64 " x %" PRId64 " x %" PRId64
         " tokens: tok/s %.0f ms/step %.1f MFU %.2f%% loss %.4f, mean of the last %" PRId64
         " steps %.4f",
         preset, device, steps, accum, mb, T_, tok_s, 1e3 * t_run / (double)steps, 100 * mfu, first,
         ntail, tail);
  tyr_cuda_mem_stats ms;
  if (dev.type == TYR_CUDA && tyr_cuda_memory_stats(dev.index, &ms) == 0)
    printf(" peak memory %.2f GiB", (double)ms.peak_allocated / 1073741824.0);
  printf("\n");
  fflush(stdout);
  free(ids);
  free(doc);
  tyr_muon_free(&mu);
  tyr_nanochat_free(&m);
  if (dev.type == TYR_CUDA) tyr_cuda_empty_cache(); /* the device's memory to the twin */
  return 0;
}

int main(int argc, char **argv) {
  char dir[1024] = "", feature[32] = "all", preset[16] = "d12", device[32] = "cuda";
  char data[1024] = "", work[1024] = "", attention[16] = "flex";
  double tol = 0;
  bool compare = false, do_speed = false, compile = true;
  int64_t steps = 30, mb = 64, accum = 8, T_ = 1024, threads = 0;
  double peak = 989;
  const tyr_flag flags[] = {
      TYR_FLAG_STRING("dump", dir, "write the parity files of a tiny config to DIR"),
      TYR_FLAG_STRING("feature", feature, "the feature of --dump: all, none or one name"),
      TYR_FLAG_BOOL("compare", &compare, "after --dump, run the twin's check"),
      TYR_FLAG_BOOL("speed", &do_speed, "time training steps of Tyr, then of the twin"),
      TYR_FLAG_STRING("preset", preset, "--speed: d12 or debug"),
      TYR_FLAG_STRING("device", device, "--speed: cpu, cuda or cuda:N"),
      TYR_FLAG_INT("steps", &steps, 1, 1e6, "--speed: timed steps (after 2 warm-up steps)"),
      TYR_FLAG_INT("micro-batch", &mb, 1, 1e6, "--speed: sequences per forward pass"),
      TYR_FLAG_INT("accum", &accum, 1, 1e6, "--speed: forward passes per step"),
      TYR_FLAG_INT("seq-len", &T_, 8, 65536, "--speed: tokens per sequence"),
      TYR_FLAG_DOUBLE("peak-tflops", &peak, 1e-3, 1e6, "--speed: the device's peak, for MFU"),
      TYR_FLAG_BOOL("compile", &compile, "--speed: torch.compile the twin"),
      TYR_FLAG_STRING("data", data,
                      "--speed: train both on this token shard (.bin) instead of random tokens"),
      TYR_FLAG_STRING("work-dir", work,
                      "--speed: write the initial weights there for the twin to start from, and "
                      "Tyr's losses for it to compare with"),
      TYR_FLAG_STRING("attention", attention, "--speed: the twin's attention: flex or dense"),
      TYR_FLAG_DOUBLE("tol", &tol, 0, 1e9,
                      "--speed with --work-dir: fail when a step's losses differ by more (0: no "
                      "check)"),
      TYR_FLAG_INT("threads", &threads, 0, 1024, "CPU threads (0: all)"),
  };
  tyr_flags_parse("bench_nanochat",
                  "usage: bench_nanochat --dump DIR [--feature F] [--compare] | --speed [flags]",
                  flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, 1);
  if (threads > 0) tyr_set_num_threads((int)threads);
  const char *py = getenv("TYR_PYTHON") ? getenv("TYR_PYTHON") : "/usr/bin/python3";
  char cmd[4096];
  if (dir[0]) {
    if (dump(dir, feature)) return 1;
    if (!compare) return 0;
    snprintf(cmd, sizeof cmd, "%s bench/torch_nanochat.py check '%s'", py, dir);
    return system(cmd) == 0 ? 0 : 1;
  }
  if (!do_speed) {
    fprintf(stderr, "bench_nanochat: give --dump DIR or --speed (see --help)\n");
    return 2;
  }
  if (speed(preset, device, steps, mb, accum, T_, peak, data, work)) return 1;
  int n = snprintf(cmd, sizeof cmd,
                   "%s bench/torch_nanochat.py speed --preset %s --device %s --steps %" PRId64
                   " --micro-batch %" PRId64 " --accum %" PRId64 " --seq-len %" PRId64
                   " --peak-tflops %g --attention %s%s",
                   py, preset, !strncmp(device, "cuda", 4) ? "cuda" : "cpu", steps, mb, accum, T_,
                   peak, attention, compile ? " --compile" : "");
  if (data[0]) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " --data '%s'", data);
  if (work[0])
    n += snprintf(cmd + n, sizeof cmd - (size_t)n,
                  " --init '%s/init.safetensors' --tyr-losses '%s/tyr_losses.txt' --tol %g", work,
                  work, tol);
  if (n >= (int)sizeof cmd) {
    fprintf(stderr, "bench_nanochat: paths too long\n");
    return 2;
  }
  fflush(stdout);
  return system(cmd) == 0 ? 0 : 1;
}
