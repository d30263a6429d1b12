/* branching_flows: train a Branching Flow (tyr/branching_flows.h) on sets
 * of varying size and generate new ones, on one of three tasks:
 *
 *   continuous  2-D point sets: n points (data-min..data-max) evenly spaced
 *               on the unit circle from a random angle, in order
 *   discrete    token strings: n letters of an 8-letter alphabet counting
 *               up (a b c ..., wrapping after h) from a random letter
 *   mixed       the circle's points, each with a label: its quadrant (0..3)
 *
 *   branching_flows --task continuous|discrete|mixed [--preset cpu|gpu] [flags]
 *
 * Per step: B fresh targets (from Philox, by step: a resumed run sees the
 * same ones), each padded with to-be-deleted copies, forested, bridged to
 * a time t and packed (tyr_bf_batch_sample); the losses of the transformer
 * of tyr/models/branching_flows.h (base process, Bregman-Poisson splits,
 * deletion BCE), AdamW with warm-up and cosine decay, clipping.  Every
 * --eval-interval steps: the validation loss on fixed batches, best and
 * last checkpoints (model, optimizer, step, RNG, configs).  At the end:
 * --samples sequences generated from --start-len elements in
 * --sample-steps Euler steps, their length statistics against the data's
 * and a task score (points on the circle, strings that count up, labels
 * that match their quadrant), metrics.jsonl, loss.png, flow.png (targets,
 * x_t at several t, a generation at several t), samples.png and
 * lengths.png.  A resumed run with --iters already reached only samples.
 * --help lists every flag. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tyr/branching_flows.h>
#include <tyr/fileio.h>
#include <tyr/flags.h>
#include <tyr/models/branching_flows.h>
#include <tyr/plot.h>
#include <tyr/progress.h>
#include <tyr/tyr.h>

#define PROG "branching_flows"

/* ---- flags ------------------------------------------------------------------ */
typedef struct config {
  char preset[16], task[16], out_dir[1024], resume[1024], device[32];
  char policy[16], bridge[16], branch_time[64], deletion_time[64];
  int64_t iters, batch_size, warmup, eval_interval, eval_iters, log_interval, seed, threads,
      max_steps;
  int64_t n_layer, n_head, n_embd, max_len, data_min, data_max, group_min;
  int64_t samples, sample_steps, start_len;
  double lr, min_lr, weight_decay, clip, coalescence, deletion_pad, alpha, sigma, x0_std, snap_prob,
      split_scale, w_base, w_split, w_del;
  bool plot;
} config;

static void preset(config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", name);
  snprintf(c->task, sizeof c->task, "continuous");
  snprintf(c->device, sizeof c->device, "cpu");
  snprintf(c->policy, sizeof c->policy, "uniform");
  snprintf(c->bridge, sizeof c->bridge, "linear");
  snprintf(c->branch_time, sizeof c->branch_time, "uniform");
  snprintf(c->deletion_time, sizeof c->deletion_time, "uniform");
  c->iters = 3000;
  c->batch_size = 32;
  c->warmup = 100;
  c->eval_interval = 500;
  c->eval_iters = 4;
  c->log_interval = 50;
  c->seed = 1337;
  c->n_layer = 2;
  c->n_head = 4;
  c->n_embd = 64;
  c->max_len = 32;
  c->data_min = 3;
  c->data_max = 12;
  c->group_min = 1;
  c->samples = 200;
  c->sample_steps = 100;
  c->start_len = 1;
  c->lr = 2e-3;
  c->min_lr = 2e-4;
  c->weight_decay = 0.01;
  c->clip = 1.0;
  c->coalescence = 1.0;
  c->deletion_pad = 1.2;
  c->alpha = 1.0;
  c->sigma = 0.05;
  c->x0_std = 1.0;
  c->snap_prob = 0.1;
  c->split_scale = 1.0;
  c->w_base = 1.0;
  c->w_split = 1.0;
  c->w_del = 1.0;
  c->plot = true;
  if (!strcmp(name, "gpu")) {
    snprintf(c->device, sizeof c->device, "cuda");
    c->iters = 20000;
    c->batch_size = 256;
    c->warmup = 500;
    c->eval_interval = 1000;
    c->eval_iters = 8;
    c->n_layer = 6;
    c->n_head = 8;
    c->n_embd = 256;
    c->max_len = 64;
    c->data_max = 24;
    c->samples = 1000;
    c->lr = 1e-3;
    c->min_lr = 1e-4;
  }
}

#define BIG 1000000000
static int make_flags(config *c, tyr_flag *f) {
  int n = 0;
#define FI(name, field, lo, hi, h) f[n++] = (tyr_flag)TYR_FLAG_INT(name, &c->field, lo, hi, h)
#define FD(name, field, lo, hi, h) f[n++] = (tyr_flag)TYR_FLAG_DOUBLE(name, &c->field, lo, hi, h)
#define FS(name, field, h) f[n++] = (tyr_flag)TYR_FLAG_STRING(name, c->field, h)
#define FB(name, field, h) f[n++] = (tyr_flag)TYR_FLAG_BOOL(name, &c->field, h)
  FS("preset", preset, "cpu (minutes on 2 cores) or gpu (a larger model on CUDA)");
  FS("task", task, "continuous (2-D points), discrete (tokens) or mixed (points with labels)");
  FS("out-dir", out_dir, "checkpoints, metrics and plots (empty: out/branching_flows/<task>)");
  FS("resume", resume, "checkpoint to resume from (e.g. <out-dir>/last.safetensors)");
  FS("device", device, "cpu, cuda or cuda:N");
  FI("iters", iters, 0, BIG, "training steps");
  FI("batch-size", batch_size, 1, 1 << 16, "targets per step");
  FD("lr", lr, 0, 10, "peak learning rate");
  FD("min-lr", min_lr, 0, 10, "learning rate at the end of the cosine decay");
  FI("warmup", warmup, 0, BIG, "linear warm-up steps");
  FD("weight-decay", weight_decay, 0, 10, "AdamW weight decay (matrices only)");
  FD("clip", clip, 0, 1e9, "clip the global gradient norm to this (0: off)");
  FI("n-layer", n_layer, 1, 64, "transformer blocks");
  FI("n-head", n_head, 1, 64, "attention heads");
  FI("n-embd", n_embd, 1, 4096, "embedding width");
  FI("max-len", max_len, 2, 4096, "longest sequence (packed batches and samples)");
  FI("data-min", data_min, 1, 4096, "shortest target");
  FI("data-max", data_max, 1, 4096, "longest target");
  FD("coalescence", coalescence, 0, 1, "coalescence factor: merges ~ Binomial(max, this)");
  FS("policy", policy, "coalescence policy: uniform, block-min or balanced");
  FD("alpha", alpha, 0, 100, "balanced policy's exponent");
  FI("group-min", group_min, 1, 4096, "minimum length a group keeps");
  FD("deletion-pad", deletion_pad, 0, 100, "to-be-deleted copies: Poisson(pad * n - n) per target");
  FS("branch-time", branch_time,
     "split-time distribution: uniform or beta:A,B, then @LO,HI to truncate");
  FS("deletion-time", deletion_time, "deletion-time distribution (as --branch-time)");
  FS("bridge", bridge, "continuous bridge: linear or brownian");
  FD("sigma", sigma, 0, 100, "the Brownian bridge's noise");
  FD("x0-std", x0_std, 0, 100, "continuous start states ~ N(0, x0-std^2)");
  FD("snap-prob", snap_prob, 0, 1, "probability to train at one of the forest's split times");
  FD("w-base", w_base, 0, 1e6, "weight of the base-process loss (MSE + CE)");
  FD("w-split", w_split, 0, 1e6, "weight of the split (Bregman-Poisson) loss");
  FD("w-del", w_del, 0, 1e6, "weight of the deletion BCE");
  FI("eval-interval", eval_interval, 1, BIG, "steps between validations and checkpoints");
  FI("eval-iters", eval_iters, 1, BIG, "batches per validation");
  FI("log-interval", log_interval, 1, BIG, "steps between log lines when stderr is not a terminal");
  FI("samples", samples, 0, 1 << 20, "sequences generated at the end");
  FI("sample-steps", sample_steps, 1, 1 << 20, "Euler steps of a generation");
  FI("start-len", start_len, 1, 4096, "elements a generation starts from");
  FD("split-scale", split_scale, 0, 1e6, "multiplies the split intensity when sampling");
  FI("seed", seed, 0, INT64_MAX, "random seed (data, bridges, initialisation, sampling)");
  FI("threads", threads, 0, 4096, "CPU threads (0: all)");
  FB("plot", plot, "write the PNG plots (--no-plot: don't)");
  FI("max-steps", max_steps, 0, BIG, "stop after this many steps of this run (0: none)");
#undef FI
#undef FD
#undef FS
#undef FB
  return n;
}
#define MAX_FLAGS 64

static void die_flag(const char *msg, const char *arg) {
  fprintf(stderr, PROG ": %s%s%s (see --help)\n", msg, arg[0] ? ": " : "", arg);
  exit(2);
}

static void parse_args(config *c, int argc, char **argv) {
  const char *pre = "cpu";
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--preset")) pre = argv[i + 1];
  if (strcmp(pre, "cpu") && strcmp(pre, "gpu")) die_flag("--preset must be cpu or gpu", pre);
  preset(c, pre);
  tyr_flag flags[MAX_FLAGS];
  int n = make_flags(c, flags);
  tyr_flags_parse(PROG,
                  "usage: " PROG " --task continuous|discrete|mixed [--preset cpu|gpu] [--flag "
                  "value ...]\n\nTrains a Branching Flow on sets of varying size and generates "
                  "new ones.",
                  flags, n, argc, argv, 1);
  if (strcmp(c->task, "continuous") && strcmp(c->task, "discrete") && strcmp(c->task, "mixed"))
    die_flag("--task must be continuous, discrete or mixed", c->task);
  if (c->min_lr > c->lr) die_flag("--min-lr must not be above --lr", "");
  if (c->data_min > c->data_max) die_flag("--data-min must not be above --data-max", "");
  if (c->data_max > c->max_len)
    die_flag("--data-max must not be above --max-len (max_len must be at least the target's "
             "length)",
             "");
  if (c->start_len > c->max_len) die_flag("--start-len must not be above --max-len", "");
  if (c->n_embd % c->n_head) die_flag("--n-head must divide --n-embd", "");
  if (!c->out_dir[0]) snprintf(c->out_dir, sizeof c->out_dir, "out/branching_flows/%s", c->task);
}

/* The flow's config from the flags (dim and vocab from the task). */
static tyr_bf_config flow_config(const config *c) {
  bool cont = strcmp(c->task, "discrete") != 0;
  int vocab = !strcmp(c->task, "discrete") ? 8 : !strcmp(c->task, "mixed") ? 4 : 0;
  tyr_bf_config f = tyr_bf_config_default(cont ? 2 : 0, vocab);
  if (!tyr_bf_dist_parse(c->branch_time, &f.branch_time))
    die_flag("--branch-time must be uniform or beta:A,B (A, B in [0.001, 1e6]), optionally @LO,HI",
             c->branch_time);
  if (!tyr_bf_dist_parse(c->deletion_time, &f.deletion_time))
    die_flag(
        "--deletion-time must be uniform or beta:A,B (A, B in [0.001, 1e6]), optionally @LO,HI",
        c->deletion_time);
  if (!tyr_bf_policy_parse(c->policy, &f.policy))
    die_flag("--policy must be uniform, block-min or balanced", c->policy);
  if (!tyr_bf_bridge_kind_parse(c->bridge, &f.bridge))
    die_flag("--bridge must be linear or brownian", c->bridge);
  f.alpha = c->alpha;
  f.group_min = c->group_min;
  f.coalescence_factor = c->coalescence;
  f.deletion_pad = c->deletion_pad;
  f.sigma = c->sigma;
  f.x0_std = c->x0_std;
  f.max_len = c->max_len;
  f.snap_prob = c->snap_prob;
  f.split_scale = c->split_scale;
  if (c->group_min > c->data_min)
    die_flag("--group-min must not be above --data-min (a group minimum larger than the group)",
             "");
  if (tyr_bf_config_check(&f)) exit(2);
  return f;
}

/* ---- data -------------------------------------------------------------------- */
/* Target b of a step: from Philox stream (step * B + b) of the data seed. */
static void make_target(const config *c, const tyr_bf_config *fc, uint64_t seed, uint64_t stream,
                        tyr_bf_elem *e, int64_t *n) {
  tyr_bf_rng r;
  tyr_bf_rng_init(&r, seed, stream);
  *n = c->data_min + tyr_bf_rng_below(&r, c->data_max - c->data_min + 1);
  double phase = tyr_bf_rng_uniform(&r) * 2 * M_PI;
  int32_t tok0 = (int32_t)tyr_bf_rng_below(&r, 8);
  memset(e, 0, (size_t)*n * sizeof *e);
  for (int64_t i = 0; i < *n; i++) {
    double a = phase + 2 * M_PI * (double)i / (double)*n;
    if (fc->dim > 0) {
      e[i].x[0] = (float)cos(a);
      e[i].x[1] = (float)sin(a);
    }
    if (fc->vocab == 8) e[i].tok = (int32_t)((tok0 + i) % 8);
    if (fc->vocab == 4) {
      double w = fmod(a, 2 * M_PI);
      e[i].tok = (int32_t)(w / (M_PI / 2)) % 4;
    }
  }
}

typedef struct targets {
  tyr_bf_elem *e;
  tyr_bf_target *x1;
  int64_t B, L;
} targets;

static void targets_make(targets *t, const config *c, const tyr_bf_config *fc, uint64_t seed,
                         uint64_t step) {
  for (int64_t b = 0; b < t->B; b++) {
    int64_t n;
    make_target(c, fc, seed, step * (uint64_t)t->B + (uint64_t)b, t->e + b * t->L, &n);
    t->x1[b] = (tyr_bf_target){.n = n, .elems = t->e + b * t->L};
  }
}

/* ---- scores -------------------------------------------------------------------- */
/* continuous: mean |radius - 1|; discrete: the fraction of strings counting up; mixed: the
   fraction of points labelled with their quadrant (and the radius error) */
static double score(const tyr_bf_config *fc, const tyr_bf_state *s, int64_t n, double *radius) {
  double good = 0, all = 0, rad = 0;
  int64_t pts = 0;
  for (int64_t k = 0; k < n; k++) {
    const tyr_bf_state *q = &s[k];
    bool ok = q->n > 0;
    for (int64_t i = 0; i < q->n; i++) {
      const tyr_bf_elem *e = &q->e[i];
      if (fc->dim > 0) {
        rad += fabs(hypot(e->x[0], e->x[1]) - 1.0);
        pts++;
      }
      if (fc->vocab == 8 && i > 0 && e->tok != (q->e[i - 1].tok + 1) % 8) ok = false;
      if (fc->vocab == 4) {
        double a = atan2(e->x[1], e->x[0]);
        if (a < 0) a += 2 * M_PI;
        good += e->tok == (int32_t)(a / (M_PI / 2)) % 4;
        all++;
      }
    }
    if (fc->vocab == 8) {
      good += ok;
      all++;
    }
  }
  *radius = pts ? rad / (double)pts : NAN;
  return all > 0 ? good / all : NAN;
}

typedef struct lstats {
  double mean, sd;
  int64_t min, max;
} lstats;

static lstats length_stats(const int64_t *len, int64_t n, int64_t *hist, int64_t hmax) {
  lstats s = {0, 0, INT64_MAX, 0};
  double q = 0;
  for (int64_t i = 0; i < n; i++) {
    s.mean += (double)len[i];
    q += (double)len[i] * (double)len[i];
    if (len[i] < s.min) s.min = len[i];
    if (len[i] > s.max) s.max = len[i];
    if (hist && len[i] <= hmax) hist[len[i]]++;
  }
  s.mean /= (double)n;
  s.sd = sqrt(fmax(q / (double)n - s.mean * s.mean, 0));
  return s;
}

/* ---- plots -------------------------------------------------------------------- */
static const uint32_t PALETTE[8] = {0xd62728, 0x1f77b4, 0x2ca02c, 0xff7f0e,
                                    0x9467bd, 0x8c564b, 0xe377c2, 0x17becf};

/* a sequence as a panel: its points (continuous), or (position, token) for tokens alone;
   colours by token, grey for the mask */
typedef struct panel_buf {
  double xy[2 * 4096];
  uint32_t rgb[4096];
  char caption[64];
} panel_buf;

static tyr_plot_points to_panel(const tyr_bf_config *fc, const tyr_bf_elem *e, int64_t n,
                                panel_buf *pb, const char *caption) {
  if (n > 4096) n = 4096;
  for (int64_t i = 0; i < n; i++) {
    if (fc->dim > 0) {
      pb->xy[2 * i] = e[i].x[0];
      pb->xy[2 * i + 1] = e[i].x[1];
    } else { /* position and token, in [-1.5, 1.5] */
      pb->xy[2 * i] = -1.4 + 2.8 * (double)i / (double)(fc->max_len - 1);
      pb->xy[2 * i + 1] =
          e[i].tok >= fc->vocab ? -1.4 : -1.0 + 2.0 * (double)e[i].tok / (double)(fc->vocab - 1);
    }
    pb->rgb[i] = fc->vocab == 0          ? 0x1f4e9a
                 : e[i].tok >= fc->vocab ? 0xaaaaaa
                                         : PALETTE[e[i].tok % 8];
  }
  snprintf(pb->caption, sizeof pb->caption, "%s", caption);
  return (tyr_plot_points){pb->caption, pb->xy, n, pb->rgb};
}

/* generation snapshots of the first 4 samples at t = 0.25, 0.5, 0.75, 1 */
typedef struct snaps {
  const tyr_bf_config *fc;
  int64_t steps;
  tyr_bf_elem *e[4][4];
  int64_t n[4][4];
} snaps;

static void on_step(double t, const tyr_bf_state *st, int64_t n, void *ctx) {
  snaps *s = ctx;
  for (int j = 0; j < 4; j++) {
    double want = 0.25 * (j + 1);
    if (fabs(t - want) > 0.5 / (double)s->steps) continue;
    for (int k = 0; k < 4 && k < n; k++) {
      free(s->e[j][k]);
      s->n[j][k] = st[k].n;
      s->e[j][k] = malloc((size_t)(st[k].n > 0 ? st[k].n : 1) * sizeof(tyr_bf_elem));
      if (s->e[j][k] && st[k].n) memcpy(s->e[j][k], st[k].e, (size_t)st[k].n * sizeof(tyr_bf_elem));
    }
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mean validation losses over eval_iters fixed batches */
static void evaluate(tyr_bfm *m, const config *c, const tyr_bf_config *fc, targets *tg,
                     uint64_t seed, tyr_bfm_loss_weights w, double out[4]) {
  TYR_NO_GRAD;
  memset(out, 0, 4 * sizeof *out);
  for (int64_t i = 0; i < c->eval_iters; i++) {
    TYR_SCOPE;
    targets_make(tg, c, fc, seed ^ 0x5bd1e995u, (uint64_t)i);
    tyr_bf_batch b;
    if (tyr_bf_batch_sample(fc, tg->x1, tg->B, NULL, seed ^ 0x2545F4914F6CDD1DULL,
                            (uint64_t)(1000000000 + i), &b))
      exit(1);
    tyr_bfm_losses l;
    if (tyr_bfm_loss(m, &b, w, &l)) exit(1);
    out[0] += tyr_item_e(l.total);
    out[1] += tyr_item_e(l.base);
    out[2] += tyr_item_e(l.split);
    out[3] += tyr_item_e(l.del);
    tyr_bf_batch_free(&b);
  }
  for (int k = 0; k < 4; k++) out[k] /= (double)c->eval_iters;
}

static void save_checkpoint(const char *path, tyr_bfm *m, tyr_optim *opt, int64_t step,
                            double best_val, const char *task, const char *model_json,
                            const char *flow_key) {
  char bv[32];
  snprintf(bv, sizeof bv, "%.17g", best_val);
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 4,
                              .keys = {"branching_flows.task", "branching_flows.model",
                                       "branching_flows.flow", "branching_flows.best_val"},
                              .values = {task, model_json, flow_key, bv}};
  if (tyr_checkpoint_save(path, &m->params, opt, &info)) exit(1);
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  config c;
  parse_args(&c, argc, argv);
  if (c.threads > 0) tyr_set_num_threads((int)c.threads);
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die_flag("--device must be cpu, cuda or cuda:N", c.device);
  tyr_set_default_device(dev);
  tyr_manual_seed((uint64_t)c.seed);
  tyr_bf_config fc = flow_config(&c);
  /* what a checkpoint must match to resume: the task, the model and the flow */
  char flow_key[512], model_json[256];
  snprintf(flow_key, sizeof flow_key,
           "data %" PRId64 "..%" PRId64 " coalescence %g policy %s alpha %g group-min %" PRId64
           " deletion-pad %g branch-time %s deletion-time %s bridge %s sigma %g x0-std %g "
           "snap-prob %g w %g/%g/%g batch %" PRId64 " seed %" PRId64,
           c.data_min, c.data_max, c.coalescence, c.policy, c.alpha, c.group_min, c.deletion_pad,
           c.branch_time, c.deletion_time, c.bridge, c.sigma, c.x0_std, c.snap_prob, c.w_base,
           c.w_split, c.w_del, c.batch_size, c.seed);
  tyr_bfm_config mc = {fc.dim, fc.vocab, c.max_len, c.n_layer, c.n_head, c.n_embd};
  tyr_bfm_config_json(&mc, model_json, sizeof model_json);
  tyr_bfm m;
  if (tyr_bfm_init(&m, &mc)) return 1;
  tyr_params_group_by_rank(&m.params);
  tyr_optim_config oc = tyr_adamw_config(c.lr);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, c.weight_decay};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &m.params, oc)) return 1;
  tyr_lr_schedule sch = {.kind = TYR_LR_WARMUP_COSINE,
                         .max_lr = c.lr,
                         .min_lr = c.min_lr,
                         .warmup = c.warmup,
                         .decay_steps = c.iters};
  const tyr_bfm_loss_weights w = {c.w_base, c.w_split, c.w_del};
  const uint64_t data_seed = (uint64_t)c.seed * 0x9E3779B97F4A7C15ULL + 1,
                 bridge_seed = (uint64_t)c.seed * 0xBF58476D1CE4E5B9ULL + 2;

  int64_t step = 0;
  double best_val = INFINITY;
  if (c.resume[0]) { /* everything is checked before anything is written */
    tyr_checkpoint *ck = tyr_checkpoint_open(c.resume);
    if (!ck) return 1;
    const char *keys[3] = {"branching_flows.task", "branching_flows.model", "branching_flows.flow"};
    const char *mine[3] = {c.task, model_json, flow_key};
    for (int k = 0; k < 3; k++) {
      const char *v = tyr_checkpoint_meta(ck, keys[k]);
      if (!v || strcmp(v, mine[k])) {
        fprintf(stderr,
                PROG ": --resume %s: the checkpoint was made with a different %s\n  file:  %s\n  "
                     "flags: %s\n",
                c.resume, keys[k] + 16, v ? v : "(none)", mine[k]);
        return 1;
      }
    }
    tyr_checkpoint_info info;
    if (tyr_checkpoint_load(ck, &m.params, &opt, &info)) return 1;
    step = info.step;
    const char *bv = tyr_checkpoint_meta(ck, "branching_flows.best_val");
    best_val = bv ? strtod(bv, NULL) : INFINITY;
    tyr_checkpoint_close(ck);
    fprintf(stderr, PROG ": resumed from %s at step %" PRId64 "\n", c.resume, step);
  }
  if (tyr_mkdirs(c.out_dir)) {
    fprintf(stderr, PROG ": --out-dir %s: cannot create (%s)\n", c.out_dir, strerror(errno));
    return 1;
  }
  char p_last[1200], p_best[1200], p_metrics[1200], p_loss[1200], p_flow[1200], p_samples[1200],
      p_lengths[1200];
  snprintf(p_last, sizeof p_last, "%s/last.safetensors", c.out_dir);
  snprintf(p_best, sizeof p_best, "%s/best.safetensors", c.out_dir);
  snprintf(p_metrics, sizeof p_metrics, "%s/metrics.jsonl", c.out_dir);
  snprintf(p_loss, sizeof p_loss, "%s/loss.png", c.out_dir);
  snprintf(p_flow, sizeof p_flow, "%s/flow.png", c.out_dir);
  snprintf(p_samples, sizeof p_samples, "%s/samples.png", c.out_dir);
  snprintf(p_lengths, sizeof p_lengths, "%s/lengths.png", c.out_dir);
  if (c.resume[0] && tyr_jsonl_truncate(p_metrics, step) < 0) return 1;
  FILE *metrics = fopen(p_metrics, c.resume[0] ? "a" : "w");
  if (!metrics) {
    fprintf(stderr, PROG ": %s: cannot open (%s)\n", p_metrics, strerror(errno));
    return 1;
  }
  fprintf(stderr,
          PROG ": task %s (dim %d, vocab %d), preset %s, %" PRId64 " layers, %" PRId64
               " heads, %" PRId64 " wide, max_len %" PRId64 ", %" PRId64
               " parameters, device %s, %d threads\n",
          c.task, fc.dim, fc.vocab, c.preset, c.n_layer, c.n_head, c.n_embd, c.max_len,
          tyr_params_numel(&m.params), tyr_device_name(dev), tyr_get_num_threads());

  targets tg = {malloc((size_t)(c.batch_size * c.max_len) * sizeof(tyr_bf_elem)),
                malloc((size_t)c.batch_size * sizeof(tyr_bf_target)), c.batch_size, c.max_len};
  if (!tg.e || !tg.x1) return 1;
  tyr_progress pb;
  tyr_progress_init(&pb, c.iters, "seq", c.log_interval);
  double t_start = now(), val[4] = {NAN, NAN, NAN, NAN}, last_loss = NAN;
  int64_t steps_this_run = 0;
  while (step < c.iters) {
    double lr = tyr_lr_at(&sch, step), lv[4];
    int64_t segs = 0;
    {
      TYR_SCOPE;
      targets_make(&tg, &c, &fc, data_seed, (uint64_t)step);
      tyr_bf_batch b;
      if (tyr_bf_batch_sample(&fc, tg.x1, tg.B, NULL, bridge_seed, (uint64_t)step, &b)) return 1;
      for (int64_t i = 0; i < b.B; i++) segs += b.len[i];
      tyr_bfm_losses l;
      if (tyr_bfm_loss(&m, &b, w, &l)) return 1;
      tyr_backward_e(l.total);
      lv[0] = tyr_item_e(l.total);
      lv[1] = tyr_item_e(l.base);
      lv[2] = tyr_item_e(l.split);
      lv[3] = tyr_item_e(l.del);
      if (c.clip > 0) tyr_params_clip_grad_norm(&m.params, c.clip);
      tyr_optim_step(&opt, lr);
      tyr_optim_zero_grad(&opt);
      tyr_bf_batch_free(&b);
    }
    if (!isfinite(lv[0])) {
      tyr_progress_finish(&pb);
      fprintf(stderr, PROG ": loss is %f at step %" PRId64 "; stopping\n", lv[0], step);
      return 1;
    }
    step++;
    steps_this_run++;
    last_loss = lv[0];
    if (tyr_jsonl_write(metrics, p_metrics,
                        "{\"step\":%" PRId64
                        ",\"loss\":%.6f,\"base\":%.6f,\"split\":%.6f,\"del\":%.6f,\"lr\":%.6g,"
                        "\"segments\":%.3f}",
                        step, lv[0], lv[1], lv[2], lv[3], lr, (double)segs / (double)c.batch_size))
      return 1;
    tyr_progress_update(&pb, step, (double)c.batch_size,
                        "loss %.4f (base %.3f split %.3f del %.3f)", lv[0], lv[1], lv[2], lv[3]);
    bool last = step == c.iters || (c.max_steps && steps_this_run >= c.max_steps);
    if (step % c.eval_interval == 0 || step == c.iters) {
      evaluate(&m, &c, &fc, &tg, data_seed, w, val);
      tyr_progress_finish(&pb);
      fprintf(stderr, "step %" PRId64 ": val loss %.4f (base %.4f, split %.4f, del %.4f)%s\n", step,
              val[0], val[1], val[2], val[3], val[0] < best_val ? " (best)" : "");
      if (tyr_jsonl_write(metrics, p_metrics,
                          "{\"step\":%" PRId64
                          ",\"train_loss\":%.6f,\"val_loss\":%.6f,\"val_base\":%.6f,"
                          "\"val_split\":%.6f,\"val_del\":%.6f}",
                          step, lv[0], val[0], val[1], val[2], val[3]))
        return 1;
      if (val[0] < best_val) {
        best_val = val[0];
        save_checkpoint(p_best, &m, &opt, step, best_val, c.task, model_json, flow_key);
      }
      save_checkpoint(p_last, &m, &opt, step, best_val, c.task, model_json, flow_key);
    } else if (last) {
      save_checkpoint(p_last, &m, &opt, step, best_val, c.task, model_json, flow_key);
    }
    if (last) break;
  }
  tyr_progress_finish(&pb);
  fclose(metrics);
  double elapsed = now() - t_start;
  if (steps_this_run)
    fprintf(stderr, PROG ": %" PRId64 " steps in %.1f s, last loss %.4f\n", steps_this_run, elapsed,
            last_loss);
  printf("final: step %" PRId64 " loss %.4f val_loss %.4f best_val %.4f\n", step, last_loss, val[0],
         best_val);
  if (c.plot && tyr_plot_metrics_png(p_loss, p_metrics, "BRANCHING FLOWS LOSS", "LOSS") == 0)
    fprintf(stderr, PROG ": wrote %s\n", p_loss);

  /* ---- generation and its statistics ---- */
  if (c.samples > 0 && (step >= c.iters)) {
    snaps sn = {.fc = &fc, .steps = c.sample_steps};
    tyr_bf_state *st = calloc((size_t)c.samples, sizeof *st);
    if (!st) return 1;
    double t0 = now();
    if (tyr_bfm_generate(&m, &fc, c.samples, c.start_len, c.sample_steps, (uint64_t)c.seed * 31 + 7,
                         st, on_step, &sn))
      return 1;
    double gen_s = now() - t0;
    /* the data's lengths: as many targets as samples (at least 1000) */
    int64_t nd = c.samples > 1000 ? c.samples : 1000;
    int64_t *dlen = malloc((size_t)nd * sizeof *dlen),
            *slen = malloc((size_t)c.samples * sizeof *slen);
    int64_t *dh = calloc((size_t)c.max_len + 1, sizeof *dh),
            *sh = calloc((size_t)c.max_len + 1, sizeof *sh);
    tyr_bf_elem *tmp = malloc((size_t)c.max_len * sizeof *tmp);
    if (!dlen || !slen || !dh || !sh || !tmp) return 1;
    for (int64_t i = 0; i < nd; i++)
      make_target(&c, &fc, data_seed ^ 0xabcdefu, (uint64_t)i, tmp, &dlen[i]);
    for (int64_t i = 0; i < c.samples; i++) slen[i] = st[i].n;
    lstats ds = length_stats(dlen, nd, dh, c.max_len),
           ss = length_stats(slen, c.samples, sh, c.max_len);
    double rad, sc = score(&fc, st, c.samples, &rad);
    printf("lengths: data mean %.2f sd %.2f min %" PRId64 " max %" PRId64 " | samples mean %.2f sd "
           "%.2f min %" PRId64 " max %" PRId64 " (%" PRId64 " samples in %.1f s)\n",
           ds.mean, ds.sd, ds.min, ds.max, ss.mean, ss.sd, ss.min, ss.max, c.samples, gen_s);
    if (fc.dim > 0) printf("points: mean |radius - 1| %.4f (the data: 0)\n", rad);
    if (fc.vocab == 8) printf("strings that count up: %.1f%% (the data: 100%%)\n", 100 * sc);
    if (fc.vocab == 4)
      printf("labels matching their quadrant: %.1f%% (the data: 100%%)\n", 100 * sc);
    if (fc.vocab > 0 && fc.dim == 0)
      for (int64_t i = 0; i < c.samples && i < 8; i++) {
        printf("sample %" PRId64 ": ", i);
        for (int64_t j = 0; j < st[i].n; j++)
          putchar(st[i].e[j].tok < 8 ? 'a' + st[i].e[j].tok : '?');
        putchar('\n');
      }
    if (c.plot) {
      /* flow.png: 4 targets; one target's x_t at t = 0.25, 0.5, 0.75, 0.95; a generation */
      static panel_buf bufs[16];
      tyr_plot_points pp[16];
      int np = 0;
      char cap[64];
      tg.B = 4;
      targets_make(&tg, &c, &fc, data_seed ^ 0x77u, 0);
      for (int k = 0; k < 4; k++) {
        snprintf(cap, sizeof cap, "TARGET N=%" PRId64, tg.x1[k].n);
        pp[np] = to_panel(&fc, tg.x1[k].elems, tg.x1[k].n, &bufs[np], cap);
        np++;
      }
      const double ts[4] = {0.25, 0.5, 0.75, 0.95};
      tyr_bf_target same[4] = {tg.x1[0], tg.x1[0], tg.x1[0], tg.x1[0]};
      tyr_bf_batch b;
      if (tyr_bf_batch_sample(&fc, same, 4, ts, bridge_seed ^ 0x99u, 0, &b)) return 1;
      for (int k = 0; k < 4; k++) {
        tyr_bf_elem e[4096];
        for (int64_t i = 0; i < b.len[k] && i < 4096; i++) {
          for (int d = 0; d < fc.dim; d++) e[i].x[d] = b.xt[(k * b.L + i) * fc.dim + d];
          e[i].tok = (int32_t)b.tok[k * b.L + i];
        }
        snprintf(cap, sizeof cap, "X_T T=%.2f N=%" PRId64, ts[k], b.len[k]);
        pp[np] = to_panel(&fc, e, b.len[k], &bufs[np], cap);
        np++;
      }
      tyr_bf_batch_free(&b);
      for (int j = 0; j < 4; j++) {
        snprintf(cap, sizeof cap, "SAMPLE T=%.2f N=%" PRId64, 0.25 * (j + 1), sn.n[j][0]);
        pp[np] = to_panel(&fc, sn.e[j][0], sn.n[j][0], &bufs[np], cap);
        np++;
      }
      char title[96];
      snprintf(title, sizeof title, "BRANCHING FLOWS %s", c.task);
      if (tyr_plot_scatter_png(p_flow, pp, np, 4, 160, -1.5, 1.5, title)) return 1;
      np = 0;
      for (int64_t k = 0; k < c.samples && k < 16; k++) {
        snprintf(cap, sizeof cap, "N=%" PRId64, st[k].n);
        pp[np] = to_panel(&fc, st[k].e, st[k].n, &bufs[np], cap);
        np++;
      }
      snprintf(title, sizeof title, "SAMPLES %s", c.task);
      if (tyr_plot_scatter_png(p_samples, pp, np, 4, 160, -1.5, 1.5, title)) return 1;
      double *x = malloc((size_t)(c.max_len + 1) * sizeof *x),
             *yd = malloc((size_t)(c.max_len + 1) * sizeof *yd),
             *ys = malloc((size_t)(c.max_len + 1) * sizeof *ys);
      if (!x || !yd || !ys) return 1;
      for (int64_t i = 0; i <= c.max_len; i++) {
        x[i] = (double)i;
        yd[i] = (double)dh[i] / (double)nd;
        ys[i] = (double)sh[i] / (double)c.samples;
      }
      tyr_plot_series ser[2] = {{"DATA", x, yd, c.max_len + 1, 0x1f77b4},
                                {"SAMPLES", x, ys, c.max_len + 1, 0xd62728}};
      if (tyr_plot_png(p_lengths, 640, 400, "SEQUENCE LENGTHS", "LENGTH", "FRACTION", ser, 2))
        return 1;
      free(x);
      free(yd);
      free(ys);
      fprintf(stderr, PROG ": wrote %s, %s, %s\n", p_flow, p_samples, p_lengths);
    }
    for (int j = 0; j < 4; j++)
      for (int k = 0; k < 4; k++) free(sn.e[j][k]);
    for (int64_t i = 0; i < c.samples; i++) tyr_bf_state_free(&st[i]);
    free(st);
    free(dlen);
    free(slen);
    free(dh);
    free(sh);
    free(tmp);
  }
  fprintf(stderr, PROG ": checkpoints in %s\n", c.out_dir);
  free(tg.e);
  free(tg.x1);
  tyr_optim_free(&opt);
  tyr_bfm_free(&m);
  return 0;
}
