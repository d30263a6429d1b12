/* bench_attention_cpu: TrainGPT's causal attention on the CPU, Tyr and
 * PyTorch in one run.
 *
 * The attention of one TrainGPT layer as the model runs it: tyr_sdpa_qkv
 * on the fused projection qkv [B, T, 3 C] (q, k and v read where they lie,
 * the output [B, T, C] and the gradient of qkv written in one tensor),
 * forward alone and forward + backward, f32, best of --reps.  PyTorch's
 * rows come from bench/torch_sdpa_cpu.py (F.scaled_dot_product_attention on
 * the same views, or on PyTorch 1.13, which has none, the twin's masked
 * softmax; torch.set_num_threads(--threads)), run with --python, unless
 * --no-torch.  Flops are counted as bench_nn counts them: q k^T and
 * p v over the causal half (2 B H T^2 D) for the forward, 3.5 times that for
 * forward + backward.
 *
 * Presets: shakespeare_cpu (B 12, T 64, 4 heads of 32) and
 * shakespeare_6layer_b16 (B 16, T 256, 6 heads of 64), or --batch --seq
 * --heads --head-dim.  Pin the run to the cores to compare (taskset -c 0,1);
 * run from the repository root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tyr/tyr.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
  const char *name;
  int64_t B, T, H, D;
} attn_case;

/* Best of reps of the forward (backward false) or forward + backward, ms. */
static double time_attention(const attn_case *c, bool backward, int64_t reps) {
  int64_t C = c->H * c->D;
  tyr_tensor *qkv = tyr_keep_e(
      tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 3, (int64_t[]){c->B, c->T, 3 * C}, 0, 1));
  if (backward) tyr_requires_grad_e(qkv, true);
  const tyr_sdpa_opts causal = {.causal = true};
  double best = 1e30;
  for (int64_t r = 0; r < reps + 1; r++) { /* the first is a warm-up */
    TYR_SCOPE;
    double t0 = now();
    tyr_tensor *y = tyr_sdpa_qkv_e(qkv, c->H, 0, &causal);
    if (backward) {
      tyr_backward_e(tyr_sum_e(y));
      tyr_zero_grad_e(qkv);
    }
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  tyr_tensor_free(qkv);
  return best * 1e3;
}

int main(int argc, char **argv) {
  char preset[64] = "", python[512] = "";
  int64_t B = 0, T = 0, H = 0, D = 0, threads = 0, reps = 20;
  bool torch = true;
  const tyr_flag flags[] = {
      TYR_FLAG_STRING("preset", preset,
                      "shakespeare_cpu or shakespeare_6layer_b16 (default: both)"),
      TYR_FLAG_INT("batch", &B, 0, 1 << 16, "batch (with --seq --heads --head-dim: that shape)"),
      TYR_FLAG_INT("seq", &T, 0, 1 << 16, "sequence length"),
      TYR_FLAG_INT("heads", &H, 0, 1024, "heads"),
      TYR_FLAG_INT("head-dim", &D, 0, 1024, "head dim"),
      TYR_FLAG_INT("threads", &threads, 0, 4096, "threads of both (0: Tyr's default)"),
      TYR_FLAG_INT("reps", &reps, 1, 100000, "timed repetitions, best kept"),
      TYR_FLAG_STRING("python", python, "PyTorch's interpreter (default: python3)"),
      TYR_FLAG_BOOL("torch", &torch, "time PyTorch too (--no-torch: don't)"),
  };
  tyr_flags_parse("bench_attention_cpu",
                  "usage: bench_attention_cpu [--flag value ...]\n"
                  "TrainGPT's causal attention on the CPU (f32, packed qkv), Tyr and PyTorch "
                  "in one run",
                  flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, 1);
  if (!python[0]) snprintf(python, sizeof python, "python3");
  if (threads > 0) tyr_set_num_threads((int)threads);
  attn_case cases[2] = {{"shakespeare_cpu", 12, 64, 4, 32},
                        {"shakespeare_6layer_b16", 16, 256, 6, 64}};
  int first = 0, last = 1;
  if (B || T || H || D) {
    if (!B || !T || !H || !D) {
      fprintf(stderr, "bench_attention_cpu: --batch, --seq, --heads and --head-dim go together\n");
      return 2;
    }
    cases[0] = (attn_case){"custom", B, T, H, D};
    last = 0;
  } else if (preset[0]) {
    if (!strcmp(preset, "shakespeare_6layer_b16"))
      first = 1;
    else if (!strcmp(preset, "shakespeare_cpu"))
      last = 0;
    else {
      fprintf(stderr,
              "bench_attention_cpu: --preset %s: expected shakespeare_cpu or "
              "shakespeare_6layer_b16\n",
              preset);
      return 2;
    }
  }
  if (torch && (strchr(python, '\'') || access("bench/torch_sdpa_cpu.py", R_OK) != 0)) {
    fprintf(stderr,
            "bench_attention_cpu: --python %s: needs a path without quotes and "
            "bench/torch_sdpa_cpu.py (run from the repository root, or --no-torch)\n",
            python);
    return 1;
  }
  printf("causal attention on packed qkv, f32, %d threads, best of %lld\n", tyr_get_num_threads(),
         (long long)reps);
  printf("%-24s %4s %5s %3s %4s %12s %8s %12s %8s\n", "case", "B", "T", "H", "D", "fwd ms",
         "GFLOP/s", "fwd+bwd ms", "GFLOP/s");
  for (int i = first; i <= last; i++) {
    const attn_case *c = &cases[i];
    double fl = 2.0 * (double)(c->B * c->H) * (double)(c->T * c->T) * (double)c->D;
    double f = time_attention(c, false, reps), fb = time_attention(c, true, reps);
    printf("%-24s %4lld %5lld %3lld %4lld %12.3f %8.1f %12.3f %8.1f\n", c->name, (long long)c->B,
           (long long)c->T, (long long)c->H, (long long)c->D, f, fl / f * 1e-6, fb,
           3.5 * fl / fb * 1e-6);
    fflush(stdout);
    if (!torch) continue;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' bench/torch_sdpa_cpu.py --name %s --batch %lld --seq %lld --heads %lld "
             "--head-dim %lld --threads %d --reps %lld",
             python, c->name, (long long)c->B, (long long)c->T, (long long)c->H, (long long)c->D,
             tyr_get_num_threads(), (long long)reps);
    if (system(cmd) != 0) {
      fprintf(stderr, "bench_attention_cpu: %s failed (PyTorch missing?)\n", cmd);
      return 1;
    }
  }
  return 0;
}
