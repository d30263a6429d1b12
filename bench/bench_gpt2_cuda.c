/* Training step of GPT models on a CUDA GPU: forward, backward, gradient
 * clipping at 1.0 and AdamW on random tokens, with f32 parameters (master
 * weights), f32 gradients and an f32 optimizer.  Each config runs in four
 * precision modes:
 *   f32          everything f32, matmuls in full f32 (TF32 off): what the
 *                tests check against the CPU
 *   tf32         f32 activations, matmuls on tensor cores with TF32 inputs
 *   bf16-matmul  f32 activations, matmuls and attention on tensor cores with
 *                inputs rounded to bf16 (tyr_cuda_set_matmul_mode)
 *   bf16         mixed precision (tyr_gpt_config.compute_dtype = TYR_BF16):
 *                bf16 activations, matmuls, attention and activation
 *                gradients, f32 weights, weight gradients, optimizer and loss
 * Configs:
 *   gpt2_124m        12 layers, 12 heads, 768 wide, block 1024, vocab 50304,
 *                    tanh GELU, tied head, batch 16 (--batch N)
 *   shakespeare_cpu  4 layers, 4 heads, 128 wide, block 64, vocab 65, batch 12
 *   shakespeare_gpu  6 layers, 6 heads, 384 wide, block 256, vocab 65, batch 64
 * The loss is tyr_gpt_loss (head and cross entropy fused).  Each mode runs
 * eagerly and then (the "graph" lines; --no-graph skips them) as a CUDA
 * graph: two eager warm-up steps, one step captured with
 * tyr_cuda_graph_begin/end (device-side clipping, AdamW in capturable
 * mode), then timed replays, each after tyr_optim_prepare_step.
 * Prints tok/s, ms/step, MFU against 989 TFLOP/s (H100 SXM dense bf16;
 * tyr_gpt_flops_per_token), and the allocator's peak device memory.  When
 * `python3 -c 'import torch'` works and a CUDA device is visible to it,
 * bench/torch_gpt2.py runs the same model and batch (fp32 eager with TF32
 * off, bf16 autocast eager, bf16 autocast + torch.compile) and its lines are
 * printed next to Tyr's.  Run it from the repository root.
 *
 * --attention picks the CUDA attention kernel of Tyr's rows: auto (the
 * default setting, or TYR_CUDA_ATTN's: cuDNN's fused attention where it
 * applies, docs/cuda.md), tc (Tyr's tensor-core kernel), simt, or both
 * (each row twice: auto, then tc marked "+tc"); each row names the kernel
 * that ran its last step's attention.
 *
 *   bench_gpt2_cuda [--batch N] [--steps N] [--only NAME]
 *                   [--mode f32|tf32|bf16-matmul|bf16] [--f32-only] [--no-torch]
 *                   [--no-compile] [--no-graph] [--attention auto|tc|simt|both] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/cuda.h>
#include <tyr/flags.h>
#include <tyr/tyr.h>

#define PEAK_TFLOPS 989.0

typedef struct {
  const char *name;
  int64_t L, H, C, T, B, V;
  tyr_act_kind act;
} preset;

typedef struct {
  const char *flag, *label;
  tyr_cuda_matmul_mode matmul;
  tyr_dtype compute;
} mode;
static const mode MODES[] = {
    {"f32", "tyr f32", TYR_CUDA_MATMUL_F32, TYR_F32},
    {"tf32", "tyr tf32-matmul", TYR_CUDA_MATMUL_TF32, TYR_F32},
    {"bf16-matmul", "tyr bf16-matmul", TYR_CUDA_MATMUL_BF16, TYR_F32},
    {"bf16", "tyr bf16 mixed", TYR_CUDA_MATMUL_F32, TYR_BF16},
};
#define NMODES ((int)(sizeof MODES / sizeof MODES[0]))

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  double s_per_step, flops_per_token, loss;
  size_t peak;
  int ok;
} result;

/* One training step; with graph set, the pieces a CUDA graph can capture
 * (device-side clipping, the optimizer in capturable mode).  The loss is
 * kept for the caller. */
static tyr_tensor *train_step(tyr_gpt *g, tyr_optim *opt, tyr_tensor *x, tyr_tensor *y,
                              bool graph) {
  TYR_SCOPE;
  tyr_tensor *loss = tyr_gpt_loss(g, x, y, true);
  if (!loss) return NULL;
  tyr_keep_e(loss);
  tyr_backward_e(loss);
  if (graph)
    tyr_params_clip_grad_norm_dev(&g->params, 1.0);
  else
    tyr_params_clip_grad_norm(&g->params, 1.0); /* reads the norm back: one sync per step */
  tyr_optim_step(opt, -1);
  tyr_optim_zero_grad(opt);
  return loss;
}

/* graph: two eager warm-up steps, one captured step, then replays are
 * timed (each after tyr_optim_prepare_step, as a training loop does). */
static result bench_tyr(const preset *p, const mode *md, int steps, bool graph) {
  result r = {NAN, NAN, NAN, 0, 0};
  tyr_device dev = TYR_DEVICE_CUDA(0);
  tyr_gpt_config cfg = tyr_gpt_config_gpt2(p->V, p->T, p->L, p->H, p->C);
  cfg.act = p->act;
  cfg.compute_dtype = md->compute;
  tyr_gpt g;
  tyr_manual_seed(0);
  if (tyr_gpt_init(&g, &cfg, dev) != 0) return r;
  tyr_params_group_by_rank(&g.params);
  tyr_optim_config oc = tyr_adamw_config(6e-4);
  oc.beta2 = 0.95;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.1};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  tyr_optim_init(&opt, &g.params, oc);
  tyr_cuda_graph *cg = NULL;
  tyr_tensor *gloss = NULL;
  int64_t shape[2] = {p->B, p->T};
  tyr_tensor *x = tyr_keep_e(tyr_randint_at(TYR_SITE, TYR_I64, dev, 2, shape, 0, p->V));
  tyr_tensor *y = tyr_keep_e(tyr_randint_at(TYR_SITE, TYR_I64, dev, 2, shape, 0, p->V));
  if (!x || !y) goto out;
  if (graph && tyr_optim_set_capturable(&opt, true) != 0) goto out;
  r.flops_per_token = tyr_gpt_flops_per_token(&g, p->T);
  double best = INFINITY;
  for (int rep = 0; rep < 4; rep++) {
    int n = rep == 0 ? 2 : steps; /* the first round warms up (allocator cache, cuBLASLt plans) */
    if (rep == 1) {
      if (graph) { /* capture one step after the warm-up */
        tyr_cuda_synchronize();
        cg = tyr_cuda_graph_begin(0);
        if (!cg) goto out;
        gloss = train_step(&g, &opt, x, y, true);
        if (tyr_cuda_graph_end(cg) != 0 || !gloss) goto out;
      }
      tyr_cuda_reset_peak(0);
    }
    tyr_cuda_synchronize();
    double t0 = now();
    for (int i = 0; i < n; i++) {
      if (cg) {
        if (tyr_optim_prepare_step(&opt, -1) != 0 || tyr_cuda_graph_launch(cg) != 0) goto out;
        if (i == n - 1) r.loss = tyr_item_e(gloss);
        continue;
      }
      tyr_tensor *loss = train_step(&g, &opt, x, y, graph);
      if (!loss) goto out;
      if (i == n - 1) r.loss = tyr_item_e(loss);
      tyr_tensor_free(loss);
    }
    if (tyr_cuda_synchronize() != 0) goto out;
    if (rep > 0) best = fmin(best, (now() - t0) / n);
  }
  tyr_cuda_mem_stats ms;
  /* a graph's working memory is not "allocated" while it replays: add it */
  if (tyr_cuda_memory_stats(0, &ms) == 0) r.peak = ms.peak_allocated + ms.graph_idle;
  r.s_per_step = best;
  r.ok = 1;
out:
  tyr_tensor_free(gloss);
  tyr_cuda_graph_free(cg);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
  tyr_optim_free(&opt);
  tyr_gpt_free(&g);
  tyr_cuda_empty_cache();
  return r;
}

/* Runs bench/torch_gpt2.py for p and prints its lines as table rows. */
static void bench_torch(const preset *p, int steps, int compile, double flops_per_token) {
  char cmd[768];
  snprintf(cmd, sizeof cmd,
           "python3 bench/torch_gpt2.py --preset %s --layers %lld --heads %lld --embd %lld "
           "--block %lld --batch %lld --vocab %lld --act %s --steps %d%s 2>&1",
           p->name, (long long)p->L, (long long)p->H, (long long)p->C, (long long)p->T,
           (long long)p->B, (long long)p->V, p->act == TYR_ACT_GELU_TANH ? "gelu_tanh" : "gelu",
           steps, compile ? "" : " --no-compile");
  FILE *f = popen(cmd, "r");
  if (!f) return;
  char line[512];
  int got = 0;
  while (fgets(line, sizeof line, f)) {
    char name[64], mode[64];
    double tok, ms, peak_gb;
    if (sscanf(line, "torch_gpt2 %63s %63s tok/s %lf ms/step %lf peak_gb %lf", name, mode, &tok,
               &ms, &peak_gb) == 5) {
      char label[96];
      snprintf(label, sizeof label, "torch %s", mode);
      printf("  %-26s %12.0f %10.2f %7.1f%% %10.2f\n", label, tok, ms,
             100.0 * tok * flops_per_token / (PEAK_TFLOPS * 1e12), peak_gb);
      got++;
    } else if (strstr(line, "torch_gpt2: ")) {
      printf("  %s", line);
    }
  }
  int rc = pclose(f);
  if (!got) printf("  torch: no result (exit status %d)\n", rc);
  fflush(stdout);
}

int main(int argc, char **argv) {
  int64_t steps = 10, batch = 16;
  bool torch = true, compile = true, graphs = true, f32_only = false;
  char only[64] = "", mode_name[32] = "", attention[16] = "auto";
  const tyr_flag flags[] = {
      TYR_FLAG_INT("batch", &batch, 1, 4096, "GPT-2 124M's batch (the small presets keep theirs)"),
      TYR_FLAG_INT("steps", &steps, 1, 1000000, "timed steps per round"),
      TYR_FLAG_STRING("only", only, "one preset: gpt2_124m, shakespeare_cpu or shakespeare_gpu"),
      TYR_FLAG_STRING("mode", mode_name, "one mode: f32, tf32, bf16-matmul or bf16 (default: all)"),
      TYR_FLAG_BOOL("f32-only", &f32_only, "the f32 mode only (as --mode f32)"),
      TYR_FLAG_BOOL("torch", &torch, "run the PyTorch twin (--no-torch: Tyr only)"),
      TYR_FLAG_BOOL("compile", &compile, "PyTorch's torch.compile rows (--no-compile: eager only)"),
      TYR_FLAG_BOOL("graph", &graphs, "Tyr's CUDA-graph rows (--no-graph: eager only)"),
      TYR_FLAG_STRING("attention", attention,
                      "Tyr's attention kernel: auto, tc, simt, or both (auto and tc)"),
  };
  tyr_flags_parse("bench_gpt2_cuda",
                  "usage: bench_gpt2_cuda [--flag value ...]\n"
                  "GPT training steps on cuda:0, Tyr and PyTorch in one run",
                  flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, 1);
  int mode_only = f32_only ? 0 : -1; /* -1: every mode */
  if (mode_name[0]) {
    mode_only = -2;
    for (int k = 0; k < NMODES; k++)
      if (!strcmp(mode_name, MODES[k].flag)) mode_only = k;
    if (mode_only == -2) {
      fprintf(stderr,
              "bench_gpt2_cuda: --mode %s: must be f32, tf32, bf16-matmul or bf16 (see --help)\n",
              mode_name);
      return 2;
    }
  }
  /* the attention settings of Tyr's rows */
  tyr_cuda_attention_kernel attn[2] = {tyr_cuda_get_attention_kernel(), TYR_CUDA_ATTENTION_TC};
  int nattn = 1;
  if (!strcmp(attention, "tc"))
    attn[0] = TYR_CUDA_ATTENTION_TC;
  else if (!strcmp(attention, "simt"))
    attn[0] = TYR_CUDA_ATTENTION_SIMT;
  else if (!strcmp(attention, "both"))
    nattn = 2;
  else if (strcmp(attention, "auto")) {
    fprintf(stderr,
            "bench_gpt2_cuda: --attention %s: must be auto, tc, simt or both (see --help)\n",
            attention);
    return 2;
  }
  if (nattn == 2) attn[0] = TYR_CUDA_ATTENTION_AUTO;
  if (only[0] && strcmp(only, "gpt2_124m") && strcmp(only, "shakespeare_cpu") &&
      strcmp(only, "shakespeare_gpu")) {
    fprintf(stderr,
            "bench_gpt2_cuda: --only %s: must be gpt2_124m, shakespeare_cpu or shakespeare_gpu "
            "(see --help)\n",
            only);
    return 2;
  }
  if (!tyr_cuda_available()) {
    printf("bench_gpt2_cuda: no CUDA GPU: nothing measured\n");
    return 0;
  }
  if (torch &&
      system("python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1") != 0) {
    printf("PyTorch with CUDA is not importable: Tyr figures only\n");
    torch = 0;
  }
  preset presets[] = {
      {"gpt2_124m", 12, 12, 768, 1024, batch, 50304, TYR_ACT_GELU_TANH},
      {"shakespeare_cpu", 4, 4, 128, 64, 12, 65, TYR_ACT_GELU},
      {"shakespeare_gpu", 6, 6, 384, 256, 64, 65, TYR_ACT_GELU},
  };
  printf(
      "GPT training step on cuda:0 (forward + backward + clip + AdamW); MFU against %.0f TFLOP/s\n",
      PEAK_TFLOPS);
  printf("Tyr: f32 parameters, weight gradients and AdamW; f32 activations with matmuls in f32\n"
         "(TF32 off), tf32 or bf16 (tensor cores, f32 accumulation), or bf16 activations\n"
         "(bf16 mixed); loss in f32\n");
  printf("%-28s %12s %10s %8s %10s\n", "config", "tok/s", "ms/step", "MFU", "peak GB");
  for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
    const preset *p = &presets[k];
    if (only[0] && strcmp(only, p->name)) continue;
    printf("%s: %lld layers, %lld heads, %lld wide, block %lld, vocab %lld, batch %lld\n", p->name,
           (long long)p->L, (long long)p->H, (long long)p->C, (long long)p->T, (long long)p->V,
           (long long)p->B);
    fflush(stdout);
    double fpt = NAN;
    for (int m = 0; m < NMODES; m++) {
      if (mode_only >= 0 && m != mode_only) continue;
      tyr_cuda_set_matmul_mode(MODES[m].matmul);
      for (int gr = 0; gr < (graphs ? 2 : 1); gr++)
        for (int a = 0; a < nattn; a++) {
          static const char *const KNAMES[4] = {"none", "simt", "tc", "cudnn"};
          char label[64];
          snprintf(label, sizeof label, "%s%s%s", MODES[m].label, gr ? " graph" : "",
                   a ? " +tc" : "");
          tyr_cuda_set_attention_kernel(attn[a]);
          result r = bench_tyr(p, &MODES[m], (int)steps, gr == 1);
          if (!r.ok) {
            const tyr_error *e = tyr_error_last();
            printf("  %s: failed: %s\n", label, e && e->message[0] ? e->message : "(no message)");
            continue;
          }
          fpt = r.flops_per_token;
          double tok = (double)(p->B * p->T) / r.s_per_step;
          printf("  %-26s %12.0f %10.2f %7.1f%% %10.2f   (loss %.4f, attention %s)\n", label, tok,
                 r.s_per_step * 1e3, 100.0 * tok * r.flops_per_token / (PEAK_TFLOPS * 1e12),
                 (double)r.peak / 1e9, r.loss, KNAMES[tyr_cuda_attention_last() & 3]);
          fflush(stdout);
        }
    }
    tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
    tyr_cuda_set_attention_kernel(attn[0]);
    if (torch && !isnan(fpt)) bench_torch(p, (int)steps, compile, fpt);
  }
  return 0;
}
