/* FLUX.2 [klein]'s text encoder (tyr/models/qwen3.h) against its PyTorch
 * twin, bench/torch_qwen3.py (transformers' Qwen3Model).
 *
 *   bench_qwen3 [--config tiny|4b] [--layers N] [--seq T] [--tokens N]
 *               [--iters N] [--device cpu|cuda] [--dir DIR] [--no-torch]
 *               [--compile] [--threads N]
 *     A Qwen3 with random bf16 weights (the 4B's shapes by default) holding
 *     the first --layers layers (27: what FLUX.2 needs), one prompt of
 *     --tokens tokens padded to --seq: milliseconds per prompt for the
 *     hidden states FLUX.2 stacks (9, 18, 27 for the 4B), and the peak
 *     memory.  Then the weights, the ids and Tyr's features are written to
 *     DIR, and the twin loads the same weights, computes the same states
 *     from the same ids (bf16, SDPA; torch.compile with --compile), prints
 *     its largest difference from Tyr's features and its own timing, and
 *     the ratio is printed.  The twin runs under $TYR_PYTHON (default
 *     python3). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <tyr/cuda.h>
#include <tyr/fileio.h>
#include <tyr/flags.h>
#include <tyr/models/qwen3.h>
#include <tyr/safetensors.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_gib(tyr_device dev) {
  if (dev.type == TYR_CUDA) {
    tyr_cuda_mem_stats st;
    if (tyr_cuda_memory_stats(dev.index, &st)) return NAN;
    return st.peak_allocated / 1073741824.0;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1048576.0; /* KiB -> GiB: the process's peak RSS */
}

static void sync(tyr_device dev) {
  if (dev.type == TYR_CUDA) tyr_cuda_synchronize_at(TYR_SITE);
}

int main(int argc, char **argv) {
  char config[16] = "4b", device[16] = "cpu", dir[1024] = "/tmp/tyr-bench-qwen3";
  int64_t layers = 27, seq = 512, tokens = 40, iters = 5, threads = 0;
  bool no_torch = false, compile = false;
  const tyr_flag flags[] = {
      TYR_FLAG_STRING("config", config, "tiny | 4b"),
      TYR_FLAG_INT("layers", &layers, 1, 1 << 20, "decoder layers held and run (27 for FLUX.2)"),
      TYR_FLAG_INT("seq", &seq, 1, 1 << 16, "sequence length (the padded prompt)"),
      TYR_FLAG_INT("tokens", &tokens, 1, 1 << 16, "tokens of the prompt before padding"),
      TYR_FLAG_INT("iters", &iters, 1, 10000, "timed prompts (after 2 warm-up ones)"),
      TYR_FLAG_STRING("device", device, "cpu | cuda"),
      TYR_FLAG_STRING("dir", dir, "where the weights and ids for the twin are written"),
      TYR_FLAG_BOOL("no-torch", &no_torch, "skip the PyTorch twin"),
      TYR_FLAG_BOOL("compile", &compile, "torch.compile the twin"),
      TYR_FLAG_INT("threads", &threads, 0, 1024, "CPU threads (0: the default)"),
  };
  tyr_flags_parse("bench_qwen3",
                  "bench_qwen3: FLUX.2's Qwen3 text encoder, Tyr against transformers\n", flags,
                  (int)(sizeof flags / sizeof flags[0]), argc, argv, 1);
  if (threads) tyr_set_num_threads((int)threads);
  tyr_device dev;
  if (!tyr_device_parse(device, &dev)) {
    fprintf(stderr, "bench_qwen3: --device %s: not cpu or cuda\n", device);
    return 2;
  }
  if (dev.type == TYR_CUDA && !tyr_cuda_available()) {
    fprintf(stderr, "bench_qwen3: --device cuda: no GPU in this build or machine\n");
    return 2;
  }
  tyr_qwen3_config c;
  if (strcmp(config, "4b") == 0)
    c = tyr_qwen3_config_4b();
  else if (strcmp(config, "tiny") == 0)
    c = tyr_qwen3_config_tiny();
  else {
    fprintf(stderr, "bench_qwen3: --config %s: not tiny or 4b\n", config);
    return 2;
  }
  if (tokens > seq) tokens = seq;
  if (layers > c.n_layer) layers = c.n_layer;
  int hs[3];
  tyr_flux2_text_layers(c.n_layer, hs);
  for (int i = 0; i < 3; i++)
    if (hs[i] > layers) hs[i] = (int)layers;

  double t0 = now();
  tyr_qwen3 *m = tyr_qwen3_init_random(&c, layers, 1, TYR_BF16, dev);
  if (!m) return 1;
  printf("bench_qwen3: %s config, %lld of %lld layers, bf16 weights on %s (made in %.1f s)\n",
         config, (long long)layers, (long long)c.n_layer, tyr_device_name(dev), now() - t0);
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)seq * 2), *mask = ids + seq;
  for (int64_t i = 0; i < seq; i++) {
    ids[i] = i < tokens ? (int64_t)(tyr_philox_uniform(3, (uint64_t)i) * (c.vocab_size - 1)) : 0;
    mask[i] = i < tokens;
  }
  tyr_tensor *tid =
      tyr_keep_e(tyr_from_host_at(TYR_SITE, ids, TYR_I64, dev, 2, (int64_t[]){1, seq}));
  tyr_tensor *tmk =
      tyr_keep_e(tyr_from_host_at(TYR_SITE, mask, TYR_I64, dev, 2, (int64_t[]){1, seq}));
  free(ids);
  if (dev.type == TYR_CUDA) tyr_cuda_reset_peak(dev.index);
  double best = 1e30, total = 0;
  tyr_tensor *feat = NULL;
  for (int64_t i = 0; i < iters + 2; i++) {
    TYR_SCOPE;
    double a = now();
    tyr_tensor *f = tyr_qwen3_hidden_states(m, tid, tmk, hs, 3);
    if (!f) return 1;
    sync(dev);
    double dt = now() - a;
    if (i >= 2) {
      total += dt;
      if (dt < best) best = dt;
    }
    if (i == iters + 1) feat = tyr_keep_e(f);
  }
  double tyr_ms = total / (double)iters * 1e3;
  printf("tyr:   %.2f ms per prompt (mean of %lld, best %.2f ms), T=%lld (%lld tokens), states "
         "%d,%d,%d, peak %s %.2f GiB\n",
         tyr_ms, (long long)iters, best * 1e3, (long long)seq, (long long)tokens, hs[0], hs[1],
         hs[2], dev.type == TYR_CUDA ? "device memory" : "RSS", peak_gib(dev));
  fflush(stdout);
  int rc = 0;
  if (!no_torch) {
    t0 = now();
    char path[1200];
    if (tyr_mkdirs(dir) || tyr_qwen3_save_hf(m, dir)) return 1;
    snprintf(path, sizeof path, "%s/tyr_features.safetensors", dir);
    const char *names[3] = {"input_ids", "attention_mask", "features"};
    tyr_tensor *ts[3] = {tid, tmk, feat};
    char l0[16], l1[16], l2[16];
    snprintf(l0, sizeof l0, "%d", hs[0]);
    snprintf(l1, sizeof l1, "%d", hs[1]);
    snprintf(l2, sizeof l2, "%d", hs[2]);
    const char *mk[3] = {"layer0", "layer1", "layer2"}, *mv[3] = {l0, l1, l2};
    if (tyr_safetensors_save(path, 3, names, ts, 3, mk, mv)) return 1;
    printf("bench_qwen3: wrote the weights and features to %s in %.1f s\n", dir, now() - t0);
    fflush(stdout);
    /* the twin, on the same weights and ids */
    const char *py = getenv("TYR_PYTHON");
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "%s bench/torch_qwen3.py --dir %s --iters %lld --device %s%s",
             py && *py ? py : "python3", dir, (long long)iters, device,
             compile ? " --compile" : "");
    FILE *p = popen(cmd, "r");
    double torch_ms = NAN;
    while (p && fgets(line, sizeof line, p)) {
      fputs(line, stdout);
      double v;
      if (sscanf(line, "torch: %lf ms per prompt", &v) == 1) torch_ms = v;
    }
    int st = p ? pclose(p) : -1;
    if (st != 0 || isnan(torch_ms)) {
      fprintf(stderr, "bench_qwen3: the twin failed (%s)\n", cmd);
      rc = 1;
    } else {
      printf("ratio: Tyr is %.2fx the twin's speed (%.2f ms against %.2f ms)\n", torch_ms / tyr_ms,
             tyr_ms, torch_ms);
    }
  }
  tyr_tensor_free(feat);
  tyr_tensor_free(tid);
  tyr_tensor_free(tmk);
  tyr_qwen3_free(m);
  return rc;
}
