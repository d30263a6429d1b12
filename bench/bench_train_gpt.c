/* TrainGPT's training step on the CPU: forward, backward, clipping and
 * AdamW on random tokens, for the shakespeare_cpu preset (4 layers, 128
 * wide, block 64, batch 12) and the 6-layer preset (384 wide, block 256) at
 * batch 16.  When PyTorch is importable, bench/torch_gpt.py runs the same
 * model and batch in the same run and the ratio is printed.  PyTorch comes
 * from --python PATH (default /usr/bin/python3, Debian's python3-torch, when
 * it exists, else python3 on PATH): on a machine with a newer PyTorch,
 * `taskset -c 0,1 bench_train_gpt --python python3` pins both to the same
 * two cores.  --profile N then runs N more steps of each preset with the
 * kernel profiler (tyr/profile.h) on and prints where the time went.
 *
 *   bench_train_gpt [--steps N] [--threads N] [--python PATH] [--no-torch]
 *                   [--preset NAME] [--profile N]
 * (--help lists them; a bad value stops it with exit status 2, and a
 * --python that cannot import torch with exit status 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tyr/flags.h>
#include <tyr/tyr.h>

/* OpenBLAS's own report of its build and the kernels it picked (Tyr's f32
   GEMMs run its own AVX-512 kernel only where these are older: see
   src/cpu/gemm_avx512.c) */
char *openblas_get_config(void);
char *openblas_get_corename(void);

typedef struct {
  const char *name;
  int64_t L, H, C, T, B;
} preset;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* one training step: forward, backward, clipping at 1.0, AdamW */
static void train_step(tyr_gpt *g, tyr_optim *opt, tyr_tensor *x, tyr_tensor *y) {
  TYR_SCOPE;
  tyr_tensor *loss = NULL;
  tyr_gpt_forward(g, x, y, &loss, true);
  tyr_backward_e(loss);
  tyr_params_clip_grad_norm(&g->params, 1.0);
  tyr_optim_step(opt, -1);
  tyr_optim_zero_grad(opt);
}

static double bench_tyr(const preset *p, int steps, int profile_steps) {
  const int64_t V = 65;
  tyr_gpt_config cfg = tyr_gpt_config_gpt2(V, p->T, p->L, p->H, p->C);
  cfg.act = TYR_ACT_GELU;
  tyr_gpt g;
  tyr_manual_seed(0);
  tyr_gpt_init(&g, &cfg, TYR_DEVICE_CPU);
  tyr_params_group_by_rank(&g.params);
  tyr_optim_config oc = tyr_adamw_config(1e-3);
  oc.beta2 = 0.99;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.1};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  tyr_optim_init(&opt, &g.params, oc);
  tyr_tensor *x = tyr_keep_e(
      tyr_randint_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){p->B, p->T}, 0, V));
  tyr_tensor *y = tyr_keep_e(
      tyr_randint_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){p->B, p->T}, 0, V));
  double best = INFINITY;
  for (int rep = 0; rep < 4; rep++) {
    double t0 = now();
    int n = rep == 0 ? 3 : steps; /* the first round warms up */
    for (int i = 0; i < n; i++) train_step(&g, &opt, x, y);
    if (rep > 0) best = fmin(best, (now() - t0) / n);
  }
  if (profile_steps > 0) { /* after the timed rounds, which it would slow */
    tyr_profile_enable(true);
    tyr_profile_reset();
    for (int i = 0; i < profile_steps; i++) train_step(&g, &opt, x, y);
    printf("%s, %d threads:\n", p->name, tyr_get_num_threads());
    tyr_profile_print(stdout, profile_steps);
    tyr_profile_enable(false);
  }
  tyr_tensor_free(x);
  tyr_tensor_free(y);
  tyr_optim_free(&opt);
  tyr_gpt_free(&g);
  return best;
}

static double bench_torch(const char *python, const preset *p, int steps, int threads) {
  /* PyTorch runs with the environment the user started us with: the waiting
     policy that tyr_cpu_env_setup added is Tyr's setting, not PyTorch's */
  const char *env = getenv("TYR_ENV_SETUP_DONE") ? "env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY " : "";
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "%s'%s' bench/torch_gpt.py --preset %s --layers %lld --heads %lld --embd %lld "
           "--block %lld "
           "--batch %lld --steps %d --threads %d 2>/dev/null",
           env, python, p->name, (long long)p->L, (long long)p->H, (long long)p->C, (long long)p->T,
           (long long)p->B, steps, threads);
  FILE *f = popen(cmd, "r");
  if (!f) return NAN;
  char line[256];
  double tok = NAN, ms;
  while (fgets(line, sizeof line, f)) {
    char name[64];
    if (sscanf(line, "torch %63s tok/s %lf ms/step %lf", name, &tok, &ms) == 3) break;
  }
  pclose(f);
  return tok;
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  int64_t steps = 20, threads = 0, profile = 0;
  bool torch = true;
  char only[64] = "", python[512] = "";
  const tyr_flag flags[] = {
      TYR_FLAG_INT("steps", &steps, 1, 1000000,
                   "timed steps per round (the 6-layer preset runs a quarter of them)"),
      TYR_FLAG_INT("threads", &threads, 0, 4096, "threads (0: Tyr's default)"),
      TYR_FLAG_STRING("python", python,
                      "PyTorch's interpreter (default /usr/bin/python3, else python3 on PATH); "
                      "one given here must import torch"),
      TYR_FLAG_BOOL("torch", &torch, "run the PyTorch twin (--no-torch: Tyr only)"),
      TYR_FLAG_STRING("preset", only, "shakespeare_cpu or shakespeare_6layer_b16 (default: both)"),
      TYR_FLAG_INT("profile", &profile, 0, 1000000,
                   "then N more steps with the kernel profiler on (0: none)"),
  };
  tyr_flags_parse("bench_train_gpt",
                  "usage: bench_train_gpt [--flag value ...]\n"
                  "TrainGPT's CPU training step, Tyr and PyTorch in one run",
                  flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, 1);
  preset presets[] = {{"shakespeare_cpu", 4, 4, 128, 64, 12},
                      {"shakespeare_6layer_b16", 6, 6, 384, 256, 16}};
  if (only[0] && strcmp(only, presets[0].name) && strcmp(only, presets[1].name)) {
    fprintf(stderr,
            "bench_train_gpt: --preset %s: unknown preset (shakespeare_cpu, "
            "shakespeare_6layer_b16)\n",
            only);
    return 2;
  }
  bool python_given = python[0] != 0;
  if (!python_given)
    snprintf(python, sizeof python, "%s",
             access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
  if (threads > 0) tyr_set_num_threads((int)threads);
  threads = tyr_get_num_threads();
  if (torch && access("bench/torch_gpt.py", R_OK) != 0) {
    /* the twin is found from the repository root */
    fprintf(python_given ? stderr : stdout,
            "%sbench/torch_gpt.py is not in this directory (run from the repository root)%s\n",
            python_given ? "bench_train_gpt: --python: " : "",
            python_given ? "" : ": Tyr figures only");
    if (python_given) return 1;
    torch = false;
  }
  if (torch) {
    if (strchr(python, '\'')) {
      fprintf(stderr, "bench_train_gpt: --python %s: a path without quotes, please\n", python);
      return 2;
    }
    char cmd[1024], ver[64] = "";
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch; print(torch.__version__)' 2>/dev/null",
             python);
    FILE *f = popen(cmd, "r");
    if (f && fgets(ver, sizeof ver, f)) ver[strcspn(ver, "\n")] = 0;
    if (!f || pclose(f) != 0 || !ver[0]) {
      if (python_given) { /* asked for a comparison: no silent Tyr-only run */
        fprintf(stderr, "bench_train_gpt: --python %s: cannot run it or import torch with it\n",
                python);
        return 1;
      }
      printf("PyTorch is not importable from %s (Debian package python3-torch, or --python): "
             "Tyr figures only\n",
             python);
      torch = false;
    } else {
      printf("PyTorch %s from %s\n", ver, python);
    }
  }
  printf("TrainGPT training step on the CPU, %d threads (forward + backward + clip + AdamW, f32)\n",
         (int)threads);
  printf("OpenBLAS: %s, kernels for %s\n", openblas_get_config(), openblas_get_corename());
  /* tyr_cpu_env_setup's choice from the load average (machine-wide) and the cores this process
     may use; PyTorch runs without it */
  const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
  printf("Tyr's OpenMP waiting: %s%s%s%s%s%s\n", wp ? "OMP_WAIT_POLICY=" : "", wp ? wp : "",
         wp && sc ? ", " : "", sc ? "GOMP_SPINCOUNT=" : "", sc ? sc : "",
         wp || sc ? "" : "libgomp's default");
  printf("%-24s %12s %10s %12s %8s\n", "preset", "tyr tok/s", "ms/step", "torch tok/s", "ratio");
  for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
    const preset *p = &presets[k];
    if (only[0] && strcmp(only, p->name)) continue;
    int n = (int)(p->C > 128 ? (steps + 3) / 4 : steps);
    int np = (int)(profile > 0 ? (p->C > 128 ? (profile + 3) / 4 : profile) : 0);
    double s = bench_tyr(p, n, np);
    double tok = (double)(p->B * p->T) / s;
    double tt = torch ? bench_torch(python, p, n, (int)threads) : NAN;
    printf("%-24s %12.0f %10.2f %12.0f %8.2f\n", p->name, tok, s * 1e3, tt, tok / tt);
    fflush(stdout);
  }
  return 0;
}
