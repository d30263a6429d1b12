/* Data-parallel equivalence: every rank trains a small GPT on its share of
 * each global batch (data parallel: tyr_ddp + AdamW, or ZeRO-1), and also,
 * alone, a reference copy on the whole batch (one process at batch B);
 * after the steps the two must agree (losses and parameters, relative
 * 1e-6 by default).
 *   dist_ddp [--mode ddp|zero] [--bucket-mb X] [--no-overlap] [--accum K]
 *            [--steps S] [--batch B] [--save PATH --save-step K]
 *            [--resume PATH] [--tol T]
 * --save writes a checkpoint (rank 0; parameters and the unsharded AdamW
 * state) after step K; --resume starts the data-parallel model from one
 * (the reference runs from the start and must still agree at the end). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tyr/autograd.h>
#include <tyr/checkpoint.h>
#include <tyr/dist.h>
#include <tyr/nn.h>
#include <tyr/ops_create.h>
#include <tyr/ops_elementwise.h>

static int g_rank;

static void die(const char *msg) {
  fprintf(stderr, "dist_ddp: rank %d: %s\n", g_rank, msg);
  exit(1);
}

enum { V = 29, T = 8 };

static tyr_gpt_config tiny(void) {
  tyr_gpt_config c = tyr_gpt_config_gpt2(V, T, 2, 2, 16);
  c.dropout = 0;
  return c;
}

/* rows [r0, r0+n) of global batch `step` (B rows): tokens and targets */
static void batch(int64_t step, int64_t r0, int64_t n, tyr_tensor **x, tyr_tensor **y) {
  *x = tyr_empty_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){n, T});
  *y = tyr_empty_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){n, T});
  int64_t *px = tyr_data_ptr(*x), *py = tyr_data_ptr(*y);
  for (int64_t r = 0; r < n; r++)
    for (int t = 0; t < T; t++) {
      uint32_t o[4];
      tyr_philox4x32(1234, (uint64_t)((step * 1000 + r0 + r) * T + t), o);
      px[r * T + t] = o[0] % V;
      py[r * T + t] = o[1] % V;
    }
}

/* Forward+backward on rows [r0, r0+n) split in `accum` micro-batches; the
 * loss (mean over the rows) is returned. */
static double fwd_bwd(tyr_gpt *g, tyr_ddp *ddp, int64_t step, int64_t r0, int64_t n, int accum) {
  double total = 0;
  int64_t mb = n / accum;
  for (int k = 0; k < accum; k++) {
    TYR_SCOPE;
    if (ddp) tyr_ddp_set_sync(ddp, k == accum - 1);
    tyr_tensor *x, *y;
    batch(step, r0 + k * mb, mb, &x, &y);
    tyr_tensor *loss = tyr_gpt_loss_at(TYR_SITE, g, x, y, true);
    total += tyr_item_e(loss) / accum;
    if (tyr_backward_e(accum > 1 ? tyr_mul_scalar_e(loss, 1.0 / accum) : loss)) die("backward");
  }
  return total;
}

static double rel(double a, double b) {
  double d = fabs(a - b), m = fmax(fabs(a), fabs(b));
  return m > 0 ? d / m : 0;
}

int main(int argc, char **argv) {
  const char *mode = "ddp", *save = NULL, *resume = NULL;
  double bucket_mb = 25, tol = 1e-6;
  int accum = 1, steps = 20, save_step = -1;
  int64_t B = 12;
  bool overlap = true;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--no-overlap")) {
      overlap = false;
      continue;
    }
    if (!v) die("missing value");
    i++;
    if (!strcmp(a, "--mode"))
      mode = v;
    else if (!strcmp(a, "--bucket-mb"))
      bucket_mb = atof(v);
    else if (!strcmp(a, "--accum"))
      accum = atoi(v);
    else if (!strcmp(a, "--steps"))
      steps = atoi(v);
    else if (!strcmp(a, "--batch"))
      B = atoi(v);
    else if (!strcmp(a, "--save"))
      save = v;
    else if (!strcmp(a, "--save-step"))
      save_step = atoi(v);
    else if (!strcmp(a, "--resume"))
      resume = v;
    else if (!strcmp(a, "--tol"))
      tol = atof(v);
    else
      die("unknown flag");
  }
  tyr_dist *pg = tyr_dist_init(NULL);
  if (!pg) return 1;
  g_rank = tyr_dist_rank(pg);
  int N = tyr_dist_world_size(pg), R = g_rank;
  if (B % ((int64_t)N * accum)) die("batch must divide by world size x accum");
  bool zero = !strcmp(mode, "zero");
  tyr_gpt_config gc = tiny();
  tyr_gpt ref, dp;
  tyr_manual_seed(7);
  if (tyr_gpt_init(&ref, &gc, TYR_DEVICE_CPU)) return 1;
  tyr_manual_seed(R == 0 ? 7 : 100 + R); /* other ranks differ: the broadcast fixes it */
  if (tyr_gpt_init(&dp, &gc, TYR_DEVICE_CPU)) return 1;
  tyr_params_group_by_rank(&ref.params);
  tyr_params_group_by_rank(&dp.params);
  tyr_optim_config oc = tyr_adamw_config(1e-3);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.1};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim oref, odp;
  if (tyr_optim_init(&oref, &ref.params, oc) || tyr_optim_init(&odp, &dp.params, oc)) return 1;
  tyr_ddp *ddp = NULL;
  tyr_zero1 *z = NULL;
  tyr_ddp_config dc = {.bucket_mb = bucket_mb, .overlap = overlap};
  if (zero) {
    if (!(z = tyr_zero1_init(pg, &dp.params, oc))) return 1;
  } else if (!(ddp = tyr_ddp_init(pg, &dp.params, &dc))) {
    return 1;
  }
  int start = 0;
  if (resume) {
    tyr_checkpoint *ck = tyr_checkpoint_open(resume);
    tyr_checkpoint_info info;
    if (!ck || tyr_checkpoint_load(ck, &dp.params, &odp, &info)) return 1;
    tyr_checkpoint_close(ck);
    start = (int)info.step;
    if (z && tyr_zero1_scatter_state_at(TYR_SITE, z, &odp)) return 1;
  }
  double maxl = 0, maxp = 0;
  const double clip = 1.0;
  for (int step = 0; step < steps; step++) {
    double lref = fwd_bwd(&ref, NULL, step, 0, B, accum);
    tyr_params_clip_grad_norm(&ref.params, clip);
    tyr_optim_step(&oref, -1);
    tyr_optim_zero_grad(&oref);
    if (step < start) continue;
    double ldp = fwd_bwd(&dp, ddp, step, R * (B / N), B / N, accum);
    ldp = tyr_dist_reduce_scalar(pg, ldp, TYR_DIST_AVG);
    if (z) {
      if (tyr_zero1_step(z, -1, clip, NULL)) return 1;
    } else {
      if (tyr_ddp_finish(ddp)) return 1;
      tyr_params_clip_grad_norm(&dp.params, clip);
      tyr_optim_step(&odp, -1);
    }
    tyr_params_zero_grad(&dp.params);
    maxl = fmax(maxl, rel(lref, ldp));
    if (R == 0 && (step % 5 == 0 || step == steps - 1))
      printf("step %2d  loss ref %.9f  data-parallel %.9f\n", step, lref, ldp);
    if (save && step + 1 == save_step) {
      if (z && tyr_zero1_gather_state_at(TYR_SITE, z, &odp)) return 1;
      if (z) odp.step = tyr_zero1_step_count(z);
      tyr_checkpoint_info info = {.step = step + 1, .rng = tyr_rng_get_state()};
      if (R == 0 && tyr_checkpoint_save(save, &dp.params, &odp, &info)) return 1;
      tyr_dist_barrier(pg);
    }
  }
  /* the whole model's relative L2 difference (elementwise ratios blow up
   * where AdamW divides a gradient that is rounding noise by its own square
   * root); the largest absolute difference is printed too */
  double maxabs = 0, dd = 0, nn = 0;
  for (int i = 0; i < ref.params.n; i++) {
    tyr_tensor *a = ref.params.items[i].t, *b = dp.params.items[i].t;
    const float *pa = tyr_data_ptr(a), *pb = tyr_data_ptr(b);
    for (int64_t k = 0; k < tyr_numel(a); k++) {
      double d = (double)pa[k] - pb[k];
      maxabs = fmax(maxabs, fabs(d));
      dd += d * d;
      nn += (double)pa[k] * pa[k];
    }
  }
  maxp = sqrt(dd / nn);
  /* the ranks hold the same parameters */
  double sum = 0;
  for (int i = 0; i < dp.params.n; i++) {
    const float *p = tyr_data_ptr(dp.params.items[i].t);
    for (int64_t k = 0; k < tyr_numel(dp.params.items[i].t); k++)
      sum += p[k] * (double)(k % 13 + 1);
  }
  double smax = tyr_dist_reduce_scalar(pg, sum, TYR_DIST_MAX),
         smin = tyr_dist_reduce_scalar(pg, sum, TYR_DIST_MIN);
  bool ok = maxl <= tol && maxp <= tol && smax == smin;
  if (R == 0)
    printf("dist_ddp: mode %s, %d ranks, batch %lld, accum %d, %d buckets (%d overlapped): max "
           "relative difference loss %.3g, parameters %.3g (largest absolute %.3g); ranks %s: %s\n",
           mode, N, (long long)B, accum, ddp ? tyr_ddp_num_buckets(ddp) : 0,
           ddp ? tyr_ddp_overlapped_buckets(ddp) : 0, maxl, maxp, maxabs,
           smax == smin ? "identical" : "DIFFER", ok ? "PASS" : "FAIL");
  if (z)
    printf("dist_ddp: rank %d holds %lld bytes of AdamW state (unsharded: %lld)\n", R,
           (long long)tyr_zero1_state_bytes(z), (long long)(8 * tyr_params_numel(&dp.params)));
  tyr_ddp_free(ddp);
  tyr_zero1_free(z);
  tyr_optim_free(&oref);
  tyr_optim_free(&odp);
  tyr_gpt_free(&ref);
  tyr_gpt_free(&dp);
  tyr_dist_free(pg);
  return ok ? 0 : 1;
}
