/* The Branching Flows transformer (tyr/models/branching_flows.h) against its
 * PyTorch twin, bench/torch_branching_flows.py, in one run.
 *
 *   bench_branching_flows [--task continuous|discrete|mixed] [--batch B] [--steps K]
 *                         [--threads N] [--dir DIR] [--no-torch]
 *
 * Tyr builds the model of examples/branching_flows' CPU preset for the task
 * (2 layers, 4 heads, 64 wide, max_len 32) and writes to DIR (default: a
 * temporary directory): its initial weights (init.safetensors), K packed
 * batches from tyr_bf_batch_sample (batches.safetensors), and its loss and
 * gradients at the initial weights on batch 0 plus its K training losses
 * (AdamW, clipping; tyr.safetensors).  Then the twin loads the same weights
 * and batches, checks the loss and every gradient, trains the same K steps,
 * checks the loss curve and times its steps.  Printed: the largest
 * differences and both ms/step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tyr/branching_flows.h>
#include <tyr/models/branching_flows.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const double LR = 2e-3, WD = 0.01, CLIP = 1.0;

/* targets as in examples/branching_flows: 3..12 points on the unit circle (labels: the
   quadrant) or letters counting up */
static void targets(const tyr_bf_config *fc, int64_t B, uint64_t step, tyr_bf_elem *e,
                    tyr_bf_target *x1) {
  for (int64_t b = 0; b < B; b++) {
    tyr_bf_rng r;
    tyr_bf_rng_init(&r, 17, step * (uint64_t)B + (uint64_t)b);
    int64_t n = 3 + tyr_bf_rng_below(&r, 10);
    double phase = tyr_bf_rng_uniform(&r) * 2 * M_PI;
    int32_t tok0 = (int32_t)tyr_bf_rng_below(&r, 8);
    tyr_bf_elem *q = e + b * 32;
    memset(q, 0, (size_t)n * sizeof *q);
    for (int64_t i = 0; i < n; i++) {
      double a = phase + 2 * M_PI * (double)i / (double)n;
      q[i].x[0] = (float)cos(a);
      q[i].x[1] = (float)sin(a);
      q[i].tok = fc->vocab == 8   ? (int32_t)((tok0 + i) % 8)
                 : fc->vocab == 4 ? (int32_t)(fmod(a, 2 * M_PI) / (M_PI / 2)) % 4
                                  : 0;
    }
    x1[b] = (tyr_bf_target){.n = n, .elems = q};
  }
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  const char *task = "mixed", *dir = NULL;
  int64_t B = 32;
  int K = 20, threads = 2, torch = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--task") && v)
      task = argv[++i];
    else if (!strcmp(a, "--batch") && v)
      B = atoll(argv[++i]);
    else if (!strcmp(a, "--steps") && v)
      K = atoi(argv[++i]);
    else if (!strcmp(a, "--threads") && v)
      threads = atoi(argv[++i]);
    else if (!strcmp(a, "--dir") && v)
      dir = argv[++i];
    else if (!strcmp(a, "--no-torch"))
      torch = 0;
    else {
      fprintf(stderr, "usage: bench_branching_flows [--task continuous|discrete|mixed] [--batch B] "
                      "[--steps K] [--threads N] [--dir DIR] [--no-torch]\n");
      return 2;
    }
  }
  int dim, vocab;
  if (!strcmp(task, "continuous"))
    dim = 2, vocab = 0;
  else if (!strcmp(task, "discrete"))
    dim = 0, vocab = 8;
  else if (!strcmp(task, "mixed"))
    dim = 2, vocab = 4;
  else {
    fprintf(stderr, "bench_branching_flows: --task must be continuous, discrete or mixed: %s\n",
            task);
    return 2;
  }
  if (B < 1 || K < 2) {
    fprintf(stderr, "bench_branching_flows: --batch must be >= 1 and --steps >= 2\n");
    return 2;
  }
  if (threads > 0) tyr_set_num_threads(threads);
  char tmpl[] = "/tmp/bench_branching_flows.XXXXXX";
  if (!dir && !(dir = mkdtemp(tmpl))) return 1;
  tyr_bf_config fc = tyr_bf_config_default(dim, vocab);
  fc.max_len = 32;
  fc.deletion_pad = 1.2;
  fc.snap_prob = 0.1;
  tyr_bfm_config mc = {dim, vocab, 32, 2, 4, 64};
  tyr_manual_seed(1);
  tyr_bfm m;
  if (tyr_bfm_init(&m, &mc)) return 1;
  char path[1200], cfg[256];
  tyr_bfm_config_json(&mc, cfg, sizeof cfg);
  snprintf(path, sizeof path, "%s/init.safetensors", dir);
  tyr_checkpoint_info info = {.step = 0, .rng = tyr_rng_get_state()};
  if (tyr_checkpoint_save(path, &m.params, NULL, &info)) return 1;

  /* K packed batches */
  tyr_bf_batch *bt = calloc((size_t)K, sizeof *bt);
  tyr_bf_elem *e = malloc((size_t)(B * 32) * sizeof *e);
  tyr_bf_target *x1 = malloc((size_t)B * sizeof *x1);
  enum { NP = 10 };
  tyr_tensor **ts = calloc((size_t)K * NP, sizeof *ts);
  char(*names)[32] = calloc((size_t)K * NP, 32);
  const char **np = calloc((size_t)K * NP, sizeof *np);
  if (!bt || !e || !x1 || !ts || !names || !np) return 1;
  int nt = 0;
  for (int k = 0; k < K; k++) {
    targets(&fc, B, (uint64_t)k, e, x1);
    if (tyr_bf_batch_sample(&fc, x1, B, NULL, 23, (uint64_t)k, &bt[k])) return 1;
    const tyr_bf_batch *b = &bt[k];
    int64_t BL[2] = {B, 32}, BLD[3] = {B, 32, dim > 0 ? dim : 1};
    const void *data[NP] = {b->xt,         b->tok,          b->t,   b->padmask,  b->anchor,
                            b->anchor_tok, b->split_target, b->del, b->flowmask, b->branchmask};
    const char *pn[NP] = {"xt",         "tok",          "t",   "pad",      "anchor",
                          "anchor_tok", "split_target", "del", "flowmask", "branchmask"};
    for (int j = 0; j < NP; j++) {
      if (dim == 0 && (j == 0 || j == 4)) continue;
      bool i64 = j == 1 || j == 5;
      snprintf(names[nt], 32, "%s.%d", pn[j], k);
      np[nt] = names[nt];
      ts[nt] = tyr_from_host_at(TYR_SITE, data[j], i64 ? TYR_I64 : TYR_F32, TYR_DEVICE_CPU,
                                j == 2               ? 1
                                : (j == 0 || j == 4) ? 3
                                                     : 2,
                                j == 2               ? &B
                                : (j == 0 || j == 4) ? BLD
                                                     : BL);
      nt++;
    }
  }
  char ks[16], lr[32], wd[32], cl[32];
  snprintf(ks, sizeof ks, "%d", K);
  snprintf(lr, sizeof lr, "%.17g", LR);
  snprintf(wd, sizeof wd, "%.17g", WD);
  snprintf(cl, sizeof cl, "%.17g", CLIP);
  const char *mk[] = {"config", "steps", "lr", "weight_decay", "clip"};
  const char *mv[] = {cfg, ks, lr, wd, cl};
  snprintf(path, sizeof path, "%s/batches.safetensors", dir);
  if (tyr_safetensors_save(path, nt, np, ts, 5, mk, mv)) return 1;

  /* the loss and gradients at the initial weights on batch 0, then K AdamW steps */
  const tyr_bfm_loss_weights w = {1.0, 1.0, 1.0};
  tyr_params_group_by_rank(&m.params);
  tyr_optim_config oc = tyr_adamw_config(LR);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, WD};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &m.params, oc)) return 1;
  float *losses = malloc(sizeof(float) * (size_t)K);
  int n_out = m.params.n + 2;
  tyr_tensor **out = calloc((size_t)n_out, sizeof *out);
  char(*on)[160] = calloc((size_t)n_out, 160);
  const char **onp = calloc((size_t)n_out, sizeof *onp);
  double t_steps = 0;
  for (int k = 0; k < K; k++) {
    TYR_SCOPE;
    double t0 = now();
    tyr_bfm_losses l;
    if (tyr_bfm_loss(&m, &bt[k], w, &l)) return 1;
    tyr_backward_e(l.total);
    losses[k] = (float)tyr_item_e(l.total);
    if (k == 0) { /* the gradients before clipping */
      TYR_NO_GRAD;
      out[1] = tyr_keep_e(tyr_clone_e(l.total));
      snprintf(on[1], 160, "loss0");
      for (int i = 0; i < m.params.n; i++) {
        out[2 + i] = tyr_keep_e(tyr_clone_e(m.params.items[i].t->grad));
        snprintf(on[2 + i], 160, "grad.%s", m.params.items[i].name);
      }
    }
    tyr_params_clip_grad_norm(&m.params, CLIP);
    tyr_optim_step(&opt, LR);
    tyr_optim_zero_grad(&opt);
    if (k >= 2) t_steps += now() - t0; /* two warm-up steps */
  }
  double tyr_ms = t_steps / (K - 2) * 1e3;
  out[0] = tyr_from_host_at(TYR_SITE, losses, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){K});
  snprintf(on[0], 160, "losses");
  for (int i = 0; i < n_out; i++) onp[i] = on[i];
  snprintf(path, sizeof path, "%s/tyr.safetensors", dir);
  if (tyr_safetensors_save(path, n_out, onp, out, 0, NULL, NULL)) return 1;
  printf("bench_branching_flows: task %s, batch %lld, max_len 32, %d steps, %lld parameters, %d "
         "threads; files in %s\n",
         task, (long long)B, K, (long long)tyr_params_numel(&m.params), tyr_get_num_threads(), dir);
  printf("tyr   losses %.5f -> %.5f, %.2f ms/step\n", losses[0], losses[K - 1], tyr_ms);
  int rc = 0;
  if (torch) {
    const char *py = getenv("TYR_PYTHON") ? getenv("TYR_PYTHON") : "/usr/bin/python3";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s bench/torch_branching_flows.py %s --threads %d", py, dir,
             threads);
    fflush(stdout);
    rc = system(cmd);
    if (rc != 0) printf("bench_branching_flows: the twin failed (%s)\n", cmd);
  }
  for (int i = 0; i < n_out; i++) tyr_tensor_free(out[i]);
  for (int i = 0; i < nt; i++) tyr_tensor_free(ts[i]);
  for (int k = 0; k < K; k++) tyr_bf_batch_free(&bt[k]);
  free(out);
  free(on);
  free(onp);
  free(ts);
  free(names);
  free(np);
  free(bt);
  free(e);
  free(x1);
  free(losses);
  tyr_optim_free(&opt);
  tyr_bfm_free(&m);
  return rc ? 1 : 0;
}
