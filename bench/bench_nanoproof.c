/* NanoProof's decode speed with the KV cache (tyr/models/gpt_engine.h)
 * against its PyTorch twin, bench/torch_nanoproof.py, in one run.
 *
 *   bench_nanoproof [--config tiny|small|default|full] [--batches 1,64] [--prompt P]
 *                   [--new N] [--threads N] [--device cpu|cuda] [--dir DIR] [--no-torch]
 *
 * Builds the model with random weights (projections and value head too, so
 * that nothing is zero), writes them to DIR/weights.safetensors with Tyr's
 * logits and value logits for a fixed input (DIR/tyr.safetensors), runs
 * `torch_nanoproof.py check DIR` (parity, and the twin's own cache against
 * its full forward), then for each batch size: a prompt of P tokens shared
 * by every row, and N greedy tokens per row; the decode rate is B * (N - 1)
 * tokens over the time of N tokens less the time of 1 (the prefill), best
 * of 3, for Tyr and then for the twin (Debian's /usr/bin/python3, or
 * $TYR_PYTHON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <tyr/checkpoint.h>
#include <tyr/fileio.h>
#include <tyr/models/gpt.h>
#include <tyr/models/gpt_engine.h>
#include <tyr/models/nanoproof.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* random weights everywhere (the zero-initialised ones too) */
static void randomize(tyr_nanoproof *m) {
  TYR_NO_GRAD;
  for (int i = 0; i < m->gpt.params.n; i++) {
    TYR_SCOPE;
    tyr_tensor *w = m->gpt.params.items[i].t;
    if (w->rank != 2) continue;
    double std = 1.0 / sqrt((double)w->shape[1]);
    tyr_copy_e(w, tyr_randn_at(TYR_SITE, w->dtype, w->device, 2, w->shape, 0.0, std));
  }
  TYR_SCOPE;
  int64_t L = m->gpt.cfg.n_layer;
  tyr_copy_e(m->gpt.x0_lambdas, tyr_full_at(TYR_SITE, TYR_F32, m->gpt.device, 1, &L, 0.3));
}

static int dump(tyr_nanoproof *m, const char *dir) {
  char path[1200];
  snprintf(path, sizeof path, "%s/weights.safetensors", dir);
  if (tyr_nanoproof_save(m, path)) return 1;
  TYR_SCOPE;
  TYR_NO_GRAD;
  enum { B = 2, T = 24 };
  int64_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 37 + 11) % m->gpt.cfg.vocab_size;
  tyr_tensor *x = tyr_from_host_at(TYR_SITE, ids, TYR_I64, m->gpt.device, 2, (int64_t[]){B, T});
  tyr_tensor *h = tyr_gpt_hidden_at(TYR_SITE, &m->gpt, x, false);
  tyr_tensor *logits = tyr_gpt_head(&m->gpt, h);
  tyr_tensor *last =
      tyr_reshape_at(TYR_SITE, tyr_narrow_e(h, 1, T - 1, 1), 2, (int64_t[]){B, h->shape[2]});
  tyr_tensor *vl = tyr_nanoproof_value_logits(m, last);
  tyr_params out;
  tyr_params_init(&out);
  tyr_params_add_at(TYR_SITE, &out, "ids", tyr_to_device_e(x, TYR_DEVICE_CPU));
  tyr_params_add_at(TYR_SITE, &out, "logits",
                    tyr_to_device_e(tyr_contiguous_e(logits), TYR_DEVICE_CPU));
  tyr_params_add_at(TYR_SITE, &out, "value_logits",
                    tyr_to_device_e(tyr_contiguous_e(vl), TYR_DEVICE_CPU));
  snprintf(path, sizeof path, "%s/tyr.safetensors", dir);
  int rc = tyr_checkpoint_save(path, &out, NULL, NULL);
  tyr_params_free(&out);
  return rc ? 1 : 0;
}

/* seconds for n greedy tokens per row after the prompt, best of 3 */
static double decode_time(tyr_gpt_engine *e, const int64_t *prompt, int64_t P, int64_t n,
                          int64_t *out, int64_t *len) {
  tyr_gpt_engine_sample sc = tyr_gpt_engine_sample_defaults();
  sc.temperature = 0;
  double best = INFINITY;
  for (int r = 0; r < 3; r++) {
    double t0 = now();
    if (tyr_gpt_engine_generate(e, prompt, P, n, &sc, out, len, NULL, NULL)) exit(1);
    best = fmin(best, now() - t0);
  }
  return best;
}

static double torch_rate(const char *py, const char *dir, int64_t B, int64_t P, int64_t N,
                         const char *device, int threads) {
  char cmd[2048], line[256];
  snprintf(cmd, sizeof cmd,
           "%s bench/torch_nanoproof.py bench %s --batch %lld --prompt %lld --new %lld --device %s "
           "--threads %d",
           py, dir, (long long)B, (long long)P, (long long)N, device, threads);
  FILE *f = popen(cmd, "r");
  if (!f) return NAN;
  double tok = NAN, ms;
  long long b;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "torch decode batch %lld tok/s %lf ms/step %lf", &b, &tok, &ms) == 3) break;
  pclose(f);
  return tok;
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  const char *config = "tiny", *device = "cpu", *batches = "1,64", *dir = "out/bench_nanoproof";
  int64_t P = 32, N = 64;
  int threads = 2, torch = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--config") && v)
      config = argv[++i];
    else if (!strcmp(a, "--batches") && v)
      batches = argv[++i];
    else if (!strcmp(a, "--prompt") && v)
      P = atoll(argv[++i]);
    else if (!strcmp(a, "--new") && v)
      N = atoll(argv[++i]);
    else if (!strcmp(a, "--threads") && v)
      threads = atoi(argv[++i]);
    else if (!strcmp(a, "--device") && v)
      device = argv[++i];
    else if (!strcmp(a, "--dir") && v)
      dir = argv[++i];
    else if (!strcmp(a, "--no-torch"))
      torch = 0;
    else {
      fprintf(stderr, "usage: bench_nanoproof [--config tiny|small|default|full] [--batches 1,64] "
                      "[--prompt P] [--new N] [--threads N] [--device cpu|cuda] [--dir DIR] "
                      "[--no-torch]\n");
      return 2;
    }
  }
  tyr_nanoproof_config c;
  if (!tyr_nanoproof_config_preset(config, 0, &c)) {
    fprintf(stderr, "bench_nanoproof: --config must be tiny, small, default or full: %s\n", config);
    return 2;
  }
  if (P < 1 || N < 2 || P + N > c.gpt.block_size) {
    fprintf(stderr, "bench_nanoproof: need --prompt >= 1, --new >= 2, prompt + new <= %lld\n",
            (long long)c.gpt.block_size);
    return 2;
  }
  if (threads > 0) tyr_set_num_threads(threads);
  tyr_device dev;
  if (!tyr_device_parse(device, &dev)) {
    fprintf(stderr, "bench_nanoproof: --device must be cpu, cuda or cuda:N: %s\n", device);
    return 2;
  }
  if (tyr_mkdirs(dir)) {
    fprintf(stderr, "bench_nanoproof: --dir %s: cannot create\n", dir);
    return 1;
  }
  tyr_manual_seed(1);
  tyr_nanoproof m;
  if (tyr_nanoproof_init(&m, &c, dev)) return 1;
  randomize(&m);
  if (dump(&m, dir)) return 1;
  const char *py = getenv("TYR_PYTHON") ? getenv("TYR_PYTHON") : "/usr/bin/python3";
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", py);
  if (torch && system(cmd) != 0) {
    printf("PyTorch is not importable with %s: Tyr figures only\n", py);
    torch = 0;
  }
  printf("bench_nanoproof: config %s (%lld layers, %lld wide, %lld heads / %lld KV, vocab %lld, "
         "%lld parameters), prompt %lld, %lld new tokens, device %s, %d threads\n",
         config, (long long)c.gpt.n_layer, (long long)c.gpt.n_embd, (long long)c.gpt.n_head,
         (long long)c.gpt.n_kv_head, (long long)c.gpt.vocab_size,
         (long long)tyr_params_numel(&m.gpt.params), (long long)P, (long long)N, device,
         tyr_get_num_threads());
  fflush(stdout);
  int rc = 0;
  if (torch) {
    snprintf(cmd, sizeof cmd, "%s bench/torch_nanoproof.py check %s", py, dir);
    rc = system(cmd) != 0;
  }
  int64_t prompt[4096];
  for (int64_t i = 0; i < P; i++) prompt[i] = (i * 7 + 3) % c.gpt.vocab_size;
  printf("%-6s %14s %14s %8s\n", "batch", "tyr tok/s", "torch tok/s", "ratio");
  for (const char *p = batches; *p;) {
    char *end;
    long long B = strtoll(p, &end, 10);
    if (B < 1 || end == p) {
      fprintf(stderr, "bench_nanoproof: --batches must be positive integers: %s\n", batches);
      return 2;
    }
    p = *end ? end + 1 : end;
    tyr_gpt_engine e;
    if (tyr_gpt_engine_init(&e, &m.gpt, B, P + N)) return 1;
    int64_t *out = malloc(sizeof(int64_t) * (size_t)(B * N)),
            *len = malloc(sizeof(int64_t) * (size_t)B);
    decode_time(&e, prompt, P, 4, out, len); /* warm-up */
    double dt = decode_time(&e, prompt, P, N, out, len) - decode_time(&e, prompt, P, 1, out, len);
    double tyr = (double)(B * (N - 1)) / fmax(dt, 1e-9);
    double tr = torch ? torch_rate(py, dir, B, P, N, device, threads) : NAN;
    printf("%-6lld %14.1f %14.1f %8.2f\n", B, tyr, tr, tyr / tr);
    fflush(stdout);
    free(out), free(len);
    tyr_gpt_engine_free(&e);
  }
  tyr_nanoproof_free(&m);
  return rc;
}
