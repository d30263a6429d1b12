/* TrainDiffusion: a masked (absorbing-state) diffusion language model on a
 * text file, character by character, and generation that shows the text
 * appearing as masked cells resolve.
 *
 *   train_diffusion [--preset cpu|gpu] [--config tiny|small|full] [flags]
 *   train_diffusion --generate [DIR] [--prompt TEXT] [--blocks N] ...
 *
 * Training: 90/10 train/val split of the text (ASCII 1..127); per sequence
 * a time step and a random mask (tyr_dlm_noise); the masked cross entropy
 * (--loss ce) or the ELBO (--loss elbo); AdamW with warm-up and cosine
 * decay, clipping; validation every --eval-interval steps reporting the
 * masked CE and the ELBO in bits per character; best and last checkpoints
 * (model, optimizer, step, RNG, data counters, config); metrics.jsonl and
 * loss.png.  --generate finds the checkpoint that training wrote and
 * animates a sample (tyr/models/diffusion_lm_sample.h).  --help lists every
 * flag. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tyr/fileio.h>
#include <tyr/flags.h>
#include <tyr/models/diffusion_lm.h>
#include <tyr/models/diffusion_lm_sample.h>
#include <tyr/progress.h>
#include <tyr/tyr.h>

#define PROG "train_diffusion"

/* ---- flags ------------------------------------------------------------------ */
typedef struct config {
  char preset[16], model[16], data[1024], out_dir[1024], resume[1024], device[32], loss[8];
  int64_t seq_len, n_layer, n_head, n_embd, steps, context_len; /* 0: the config's */
  int64_t batch_size, iters, warmup, decay_steps, eval_interval, eval_iters, log_interval;
  int64_t threads, seed, max_steps;
  double lr, min_lr, beta1, beta2, weight_decay, clip;
  bool plot;
  /* generation */
  int generate;
  char gen_dir[1024], checkpoint[1024], prompt[1024], commit[16];
  int64_t blocks, k, frame_ms;
  double temperature, tau;
  bool color;
  bool model_given; /* --config or a model dim was on the command line */
} config;

static void preset(config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", name);
  snprintf(c->model, sizeof c->model, "tiny");
  snprintf(c->data, sizeof c->data, "data/tinyshakespeare.txt");
  snprintf(c->device, sizeof c->device, "cpu");
  snprintf(c->loss, sizeof c->loss, "ce");
  snprintf(c->commit, sizeof c->commit, "topk");
  c->batch_size = 64;
  c->iters = 5000;
  c->lr = 3e-3;
  c->min_lr = 3e-4;
  c->warmup = 100;
  c->decay_steps = 5000;
  c->beta1 = 0.9;
  c->beta2 = 0.99;
  c->weight_decay = 0.1;
  c->clip = 1.0;
  c->eval_interval = 500;
  c->eval_iters = 20;
  c->log_interval = 50;
  c->seed = 1337;
  c->plot = true;
  c->blocks = 1;
  c->k = 4;
  c->tau = 0.9;
  c->temperature = 0.8;
  c->frame_ms = 60;
  c->color = true;
  if (!strcmp(name, "gpu")) {
    snprintf(c->model, sizeof c->model, "full");
    snprintf(c->device, sizeof c->device, "cuda");
    c->batch_size = 64;
    c->iters = 10000;
    c->lr = 1e-3;
    c->min_lr = 1e-4;
    c->warmup = 500;
    c->decay_steps = 10000;
    c->eval_interval = 500;
    c->eval_iters = 50;
  }
}

/* The flags, as pointers into c (its values are the defaults --help shows). */
#define BIG 1000000000
static int make_flags(config *c, tyr_flag *f) {
  int n = 0;
#define FI(name, field, lo, hi, h) f[n++] = (tyr_flag)TYR_FLAG_INT(name, &c->field, lo, hi, h)
#define FD(name, field, lo, hi, h) f[n++] = (tyr_flag)TYR_FLAG_DOUBLE(name, &c->field, lo, hi, h)
#define FS(name, field, h) f[n++] = (tyr_flag)TYR_FLAG_STRING(name, c->field, h)
#define FB(name, field, h) f[n++] = (tyr_flag)TYR_FLAG_BOOL(name, &c->field, h)
  FS("config", model, "model: tiny, small or full");
  FS("data", data, "text file to train on (ASCII)");
  FS("out-dir", out_dir,
     "directory for checkpoints, metrics.jsonl and loss.png (default "
     "out/train_diffusion/<config>)");
  FS("resume", resume, "checkpoint to resume from (e.g. <out-dir>/last.safetensors)");
  FS("device", device, "cpu, cuda or cuda:N");
  FS("loss", loss, "ce (masked cross entropy over the masked count) or elbo (1/t-weighted bound)");
  FI("seq-len", seq_len, 0, 1 << 20, "sequence length (0: the config's)");
  FI("n-layer", n_layer, 0, 1024, "transformer blocks (0: the config's)");
  FI("n-head", n_head, 0, 1024, "attention heads (0: the config's)");
  FI("n-embd", n_embd, 0, 1 << 16, "embedding width (0: the config's)");
  FI("diffusion-steps", steps, 0, BIG, "diffusion time steps T (0: the config's)");
  FI("context-len", context_len, -1, 1 << 20, "leading positions never masked (-1: the config's)");
  FI("batch-size", batch_size, 1, 1 << 20, "sequences per step");
  FI("iters", iters, 1, BIG, "training steps");
  FD("lr", lr, 0, 10, "peak learning rate");
  FD("min-lr", min_lr, 0, 10, "learning rate at the end of the cosine decay");
  FI("warmup", warmup, 0, BIG, "linear warm-up steps");
  FI("decay-steps", decay_steps, 0, BIG, "step at which the cosine decay reaches min-lr");
  FD("beta1", beta1, 0, 1, "AdamW beta1");
  FD("beta2", beta2, 0, 1, "AdamW beta2");
  FD("weight-decay", weight_decay, 0, 10, "AdamW weight decay (matrices only)");
  FD("clip", clip, 0, 1e9, "clip the global gradient norm to this (0: off)");
  FI("eval-interval", eval_interval, 1, BIG, "steps between validations");
  FI("eval-iters", eval_iters, 1, BIG, "batches per validation estimate");
  FI("log-interval", log_interval, 1, BIG, "steps between log lines when stderr is not a terminal");
  FI("seed", seed, 0, INT64_MAX, "random seed (training and sampling)");
  FI("threads", threads, 0, 4096, "CPU threads (0: all)");
  FB("plot", plot, "write loss.png (--no-plot: don't)");
  FI("max-steps", max_steps, 0, BIG, "stop after this many steps of this run (0: none)");
  FS("checkpoint", checkpoint,
     "checkpoint file or directory --generate reads (a directory is also where training writes "
     "when --out-dir is not given)");
  FS("prompt", prompt, "text the first block starts from");
  FI("blocks", blocks, 1, 100000,
     "blocks to generate (each starts from the last 32 characters before it)");
  FS("commit", commit, "topk (the k most confident cells a step) or threshold (those >= tau)");
  FI("k", k, 1, 1 << 20, "cells committed per step with --commit topk");
  FD("tau", tau, 1e-9, 1, "confidence threshold in (0, 1] with --commit threshold");
  FD("temperature", temperature, 0, 1e6, "sampling temperature (0: the most likely character)");
  FI("frame-ms", frame_ms, 0, 60000, "least milliseconds between frames of the live view");
  FB("color", color, "the coloured live view on a terminal (--no-color: plain text)");
#undef FI
#undef FD
#undef FS
#undef FB
  return n;
}
#define MAX_FLAGS 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [--preset cpu|gpu] [--flag value ...]\n"
          "       " PROG " --generate [DIR] [--prompt TEXT] [--blocks N] [--commit topk|threshold]"
          " ...\n\n");
  config d;
  preset(&d, "cpu");
  d.context_len = -1;
  fprintf(f, "  --%-14s %s\n", "preset",
          "cpu (tiny config, minutes on 2 cores) or gpu (full config)");
  fprintf(f, "  --%-14s %s\n", "generate [DIR]",
          "generate from the checkpoint in DIR (default: --checkpoint, else the config's out-dir)");
  tyr_flag fl[MAX_FLAGS];
  tyr_flags_usage(f, NULL, fl, make_flags(&d, fl));
}

static void die_flag(const char *msg, const char *arg) {
  fprintf(stderr, PROG ": %s%s%s (see --help)\n", msg, arg[0] ? ": " : "", arg);
  exit(2);
}

static void parse_args(config *c, int argc, char **argv) {
  const char *pre = "cpu";
  config probe; /* which flags take a value, so that a value is never read as a flag */
  preset(&probe, "cpu");
  tyr_flag pf[MAX_FLAGS];
  int npf = make_flags(&probe, pf);
  for (int i = 1; i < argc; i++) {
    bool neg;
    const tyr_flag *fl = tyr_flags_find(pf, npf, argv[i], &neg);
    if (strcmp(argv[i], "--preset") == 0) {
      if (i + 1 >= argc) die_flag("missing value for flag", "--preset");
      pre = argv[++i];
      if (strcmp(pre, "cpu") && strcmp(pre, "gpu")) die_flag("unknown preset (cpu or gpu)", pre);
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (fl && fl->type != TYR_FLAG_T_BOOL) {
      i++;
    }
  }
  preset(c, pre);
  c->context_len = -1;
  tyr_flag flags[MAX_FLAGS];
  int nflags = make_flags(c, flags);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--preset") == 0) {
      i++;
      continue;
    }
    if (strcmp(a, "--generate") == 0) { /* an optional directory follows */
      c->generate = 1;
      if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
        if (strlen(argv[i + 1]) >= sizeof c->gen_dir) die_flag("value too long", argv[i + 1]);
        snprintf(c->gen_dir, sizeof c->gen_dir, "%s", argv[++i]);
      }
      continue;
    }
    if (strncmp(a, "--", 2) != 0) die_flag("unexpected argument", a);
    bool neg;
    const tyr_flag *fl = tyr_flags_find(flags, nflags, a, &neg);
    if (!fl) die_flag("unknown flag", a);
    if (fl->ptr == (void *)c->model || fl->ptr == (void *)&c->seq_len ||
        fl->ptr == (void *)&c->n_layer || fl->ptr == (void *)&c->n_head ||
        fl->ptr == (void *)&c->n_embd || fl->ptr == (void *)&c->steps ||
        fl->ptr == (void *)&c->context_len)
      c->model_given = true;
    if (fl->type != TYR_FLAG_T_BOOL && i + 1 >= argc) die_flag("missing value for flag", a);
    const char *v = fl->type == TYR_FLAG_T_BOOL ? NULL : argv[++i];
    char why[160], msg[256];
    if (tyr_flag_set(fl, v, neg, why, sizeof why)) {
      snprintf(msg, sizeof msg, "%s: %s", a, why);
      die_flag(msg, v);
    }
  }
  /* where training writes and --generate looks: --out-dir, else a --checkpoint directory,
     else out/train_diffusion/<config> */
  struct stat st;
  if (!c->out_dir[0] && c->checkpoint[0] && !(stat(c->checkpoint, &st) == 0 && S_ISREG(st.st_mode)))
    snprintf(c->out_dir, sizeof c->out_dir, "%s", c->checkpoint);
  if (!c->out_dir[0]) snprintf(c->out_dir, sizeof c->out_dir, "out/train_diffusion/%s", c->model);
  if (c->min_lr > c->lr) die_flag("--min-lr must not be above --lr", "");
  tyr_dlm_loss_kind lk;
  if (!tyr_dlm_loss_kind_parse(c->loss, &lk)) die_flag("--loss must be ce or elbo", c->loss);
  tyr_dlm_commit_kind ck;
  if (!tyr_dlm_commit_kind_parse(c->commit, &ck))
    die_flag("--commit must be topk or threshold", c->commit);
}

/* The model config: the named one with the dims given on the command line. */
static tyr_dlm_config model_config(const config *c) {
  tyr_dlm_config m;
  if (!tyr_dlm_config_named(c->model, &m))
    die_flag("--config must be tiny, small or full", c->model);
  bool custom = false;
#define OVERRIDE(field, v)                                                                         \
  if ((v) > 0 && (v) != m.field) {                                                                 \
    m.field = (v);                                                                                 \
    custom = true;                                                                                 \
  }
  OVERRIDE(seq_len, c->seq_len)
  OVERRIDE(n_layer, c->n_layer)
  OVERRIDE(n_head, c->n_head)
  OVERRIDE(n_embd, c->n_embd)
  OVERRIDE(steps, c->steps)
  if (c->context_len >= 0 && c->context_len != m.context_len) {
    m.context_len = c->context_len;
    custom = true;
  }
  if (custom) snprintf(m.name, sizeof m.name, "custom");
  if (tyr_dlm_config_check(&m)) exit(2);
  return m;
}

/* ---- data -------------------------------------------------------------------- */
typedef struct dataset {
  uint8_t *text;
  int64_t n, n_train;
} dataset;

static void load_data(dataset *d, const char *path, int64_t S) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, PROG ": --data %s: cannot open (%s)\n", path, strerror(errno));
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (size <= 0) {
    fprintf(stderr, PROG ": --data %s: the file is empty\n", path);
    exit(1);
  }
  d->text = malloc((size_t)size);
  if (!d->text || fread(d->text, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, PROG ": --data %s: cannot read\n", path);
    exit(1);
  }
  fclose(f);
  /* the vocabulary is ASCII with 0 as the mask: other bytes are refused */
  for (long i = 0; i < size; i++)
    if (d->text[i] == 0 || d->text[i] >= 128) {
      fprintf(stderr,
              PROG ": --data %s: byte %ld is 0x%02x, not ASCII 1..127 (the model's vocabulary; "
                   "convert the text to ASCII first, e.g. iconv -t ASCII//TRANSLIT)\n",
              path, i, d->text[i]);
      exit(1);
    }
  d->n = size;
  d->n_train = (int64_t)(size * 0.9);
  if (d->n_train <= S || d->n - d->n_train <= S) {
    fprintf(stderr, PROG ": --data %s: %ld bytes is too short for sequences of %" PRId64 "\n", path,
            size, S);
    exit(1);
  }
}

/* B windows of S characters from the train or val part; starts from Philox
 * (seed, counter) so that a resumed run sees the same batches. */
static void windows(const dataset *d, bool val, int64_t B, int64_t S, uint64_t seed,
                    uint64_t *counter, int64_t *x0) {
  int64_t lo = val ? d->n_train : 0, len = (val ? d->n : d->n_train) - lo;
  for (int64_t b = 0; b < B; b++) {
    uint32_t r[4];
    tyr_philox4x32(seed ^ (val ? 0x5bd1e995u : 0), (*counter)++, r);
    int64_t start = lo + (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(len - S));
    for (int64_t i = 0; i < S; i++) x0[b * S + i] = d->text[start + i];
  }
}

/* A noised batch as device tensors: ids (noised), t, x0 and the weights of
 * the CE and ELBO losses. */
typedef struct batch {
  tyr_tensor *ids, *t, *x0, *w_ce, *w_elbo;
} batch;

static batch make_batch(const dataset *d, const tyr_dlm_config *mc, bool val, int64_t B,
                        uint64_t seed, uint64_t *counter, tyr_device dev) {
  const int64_t S = mc->seq_len;
  int64_t *x0 = malloc(sizeof(int64_t) * (size_t)(B * S)),
          *xt = malloc(sizeof(int64_t) * (size_t)(B * S)), *t = malloc(sizeof(int64_t) * (size_t)B);
  uint8_t *masked = malloc((size_t)(B * S));
  float *wc = malloc(sizeof(float) * (size_t)(B * S)),
        *we = malloc(sizeof(float) * (size_t)(B * S));
  windows(d, val, B, S, seed, counter, x0);
  /* the noise uses the same counter, after the windows */
  tyr_dlm_noise(mc, B, x0, seed ^ 0x2545F4914F6CDD1DULL, counter, xt, t, masked);
  tyr_dlm_loss_weights(mc, TYR_DLM_LOSS_CE, B, t, masked, wc);
  tyr_dlm_loss_weights(mc, TYR_DLM_LOSS_ELBO, B, t, masked, we);
  int64_t bs[2] = {B, S};
  batch r = {
      .ids = tyr_from_host_at(TYR_SITE, xt, TYR_I64, dev, 2, bs),
      .t = tyr_from_host_at(TYR_SITE, t, TYR_I64, dev, 1, (int64_t[]){B}),
      .x0 = tyr_from_host_at(TYR_SITE, x0, TYR_I64, dev, 2, bs),
      .w_ce =
          tyr_to_dtype_e(tyr_from_host_at(TYR_SITE, wc, TYR_F32, dev, 2, bs), tyr_default_dtype()),
      .w_elbo =
          tyr_to_dtype_e(tyr_from_host_at(TYR_SITE, we, TYR_F32, dev, 2, bs), tyr_default_dtype()),
  };
  free(x0);
  free(xt);
  free(t);
  free(masked);
  free(wc);
  free(we);
  return r;
}

/* ---- helpers ----------------------------------------------------------------- */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mean validation masked CE (nats) and ELBO (bits per character) over
 * eval_iters fixed batches */
static void evaluate(tyr_dlm *m, const config *c, const dataset *d, uint64_t seed, double *ce,
                     double *bpc) {
  TYR_NO_GRAD;
  uint64_t counter = 0; /* the same batches at every evaluation */
  double sc = 0, se = 0;
  for (int64_t i = 0; i < c->eval_iters; i++) {
    TYR_SCOPE;
    batch b = make_batch(d, &m->cfg, true, c->batch_size, seed + 7, &counter, m->device);
    tyr_tensor *lp = tyr_dlm_token_logp(m, b.ids, b.t, b.x0);
    if (!lp) exit(1);
    sc += -tyr_item_e(tyr_sum_e(tyr_mul_e(lp, b.w_ce)));
    se += -tyr_item_e(tyr_sum_e(tyr_mul_e(lp, b.w_elbo)));
  }
  *ce = sc / (double)c->eval_iters;
  *bpc = se / (double)c->eval_iters / log(2.0);
}

/* window_sum / window_n: the step losses since the last evaluation, kept
 * so that the first train_loss after a resume is an uninterrupted run's */
static void save_checkpoint(const char *path, tyr_dlm *m, tyr_optim *opt, int64_t step,
                            uint64_t data_counter, double best_val, const char *cfg_json,
                            const char *loss, double window_sum, int64_t window_n) {
  char dc[32], bv[32], lw[64];
  snprintf(dc, sizeof dc, "%" PRIu64, data_counter);
  snprintf(bv, sizeof bv, "%.17g", best_val);
  snprintf(lw, sizeof lw, "%.17g %" PRId64, window_sum, window_n);
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 5,
                              .keys = {"train_diffusion.config", "train_diffusion.loss",
                                       "train_diffusion.data_counter", "train_diffusion.best_val",
                                       "train_diffusion.loss_window"},
                              .values = {cfg_json, loss, dc, bv, lw}};
  if (tyr_checkpoint_save(path, &m->params, opt, &info)) exit(1);
}

/* The checkpoint --generate reads: a file, or best.safetensors (else
 * last.safetensors) in a directory. */
static bool find_checkpoint(const char *where, char *out, size_t n) {
  struct stat st;
  if (stat(where, &st) == 0 && S_ISREG(st.st_mode)) {
    snprintf(out, n, "%s", where);
    return true;
  }
  const char *names[] = {"best.safetensors", "last.safetensors"};
  for (int i = 0; i < 2; i++) {
    snprintf(out, n, "%s/%s", where, names[i]);
    if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return true;
  }
  return false;
}

/* ---- generation -------------------------------------------------------------- */
static int generate(const config *c, tyr_device dev) {
  const char *where = c->gen_dir[0] ? c->gen_dir : c->checkpoint[0] ? c->checkpoint : c->out_dir;
  char path[1200];
  if (!find_checkpoint(where, path, sizeof path)) {
    fprintf(stderr,
            PROG ": --generate: no checkpoint at %s (looked for the file, %s/best.safetensors and "
                 "%s/last.safetensors); train one first: " PROG " --config %s --out-dir %s\n",
            where, where, where, c->model, where);
    return 1;
  }
  tyr_checkpoint *ck = tyr_checkpoint_open(path);
  if (!ck) return 1;
  tyr_dlm_config mc;
  if (!tyr_dlm_config_from_json(tyr_checkpoint_meta(ck, "train_diffusion.config"), &mc)) {
    fprintf(stderr, PROG ": --generate: %s is not a " PROG " checkpoint (no model config in it)\n",
            path);
    tyr_checkpoint_close(ck);
    return 1;
  }
  if (c->model_given) { /* the config asked for must be the one in the file */
    tyr_dlm_config want = model_config(c);
    char a[512], b[512];
    tyr_dlm_config_json(&want, a, sizeof a);
    tyr_dlm_config_json(&mc, b, sizeof b);
    if (strcmp(a, b)) {
      fprintf(stderr,
              PROG ": --generate: %s was trained with another config\n  file:  %s\n  flags: %s\n",
              path, b, a);
      tyr_checkpoint_close(ck);
      return 1;
    }
  }
  if ((int64_t)strlen(c->prompt) > mc.seq_len) {
    fprintf(stderr, PROG ": --prompt: %zu characters, longer than the sequence (%" PRId64 ")\n",
            strlen(c->prompt), mc.seq_len);
    tyr_checkpoint_close(ck);
    return 2;
  }
  for (const char *p = c->prompt; *p; p++)
    if ((unsigned char)*p >= 128) {
      fprintf(stderr, PROG ": --prompt: byte 0x%02x is not ASCII (the vocabulary is 1..127)\n",
              (unsigned char)*p);
      tyr_checkpoint_close(ck);
      return 2;
    }
  tyr_dlm m;
  if (tyr_dlm_init(&m, &mc, dev)) return 1;
  if (tyr_checkpoint_load(ck, &m.params, NULL, NULL)) return 1;
  tyr_checkpoint_close(ck);

  tyr_dlm_sample_opts o = tyr_dlm_sample_defaults();
  tyr_dlm_commit_kind_parse(c->commit, &o.commit);
  o.k = c->k;
  o.tau = c->tau;
  o.temperature = c->temperature;
  o.seed = (uint64_t)c->seed;
  o.blocks = c->blocks;
  /* the live view on a terminal; plain progress lines on stderr otherwise */
  const char *term = getenv("TERM");
  bool color = c->color && isatty(1) && !(term && !strcmp(term, "dumb"));
  tyr_dlm_view view;
  tyr_dlm_view_init(&view, color ? stdout : stderr, color, 80, (int)c->frame_ms);
  fprintf(stderr, PROG ": generating from %s (config %s, %" PRId64 " parameters)\n", path, mc.name,
          tyr_params_numel(&m.params));
  double t0 = now();
  char *text = tyr_dlm_generate(&m, &o, c->prompt, &view);
  if (!text) return 1;
  double dt = now() - t0;
  if (color) printf("\n");
  printf("%s\n", text);
  fprintf(stderr, PROG ": %zu characters in %.2f s\n", strlen(text), dt);
  free(text);
  tyr_dlm_free(&m);
  return 0;
}

/* ---- training ---------------------------------------------------------------- */
int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  config c;
  parse_args(&c, argc, argv);
  if (c.threads > 0) tyr_set_num_threads((int)c.threads);
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die_flag("--device must be cpu, cuda or cuda:N", c.device);
  tyr_manual_seed((uint64_t)c.seed);
  if (c.generate) return generate(&c, dev);

  /* model */
  tyr_dlm_config mc = model_config(&c);
  tyr_dlm_loss_kind loss_kind;
  tyr_dlm_loss_kind_parse(c.loss, &loss_kind);
  dataset d;
  load_data(&d, c.data, mc.seq_len);
  tyr_dlm m;
  if (tyr_dlm_init(&m, &mc, dev)) return 1;
  char cfg_json[512];
  tyr_dlm_config_json(&mc, cfg_json, sizeof cfg_json);

  tyr_params_group_by_rank(&m.params);
  tyr_optim_config oc = tyr_adamw_config(c.lr);
  oc.beta1 = c.beta1;
  oc.beta2 = c.beta2;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, c.weight_decay};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &m.params, oc)) return 1;
  tyr_lr_schedule sch = {.kind = TYR_LR_WARMUP_COSINE,
                         .max_lr = c.lr,
                         .min_lr = c.min_lr,
                         .warmup = c.warmup,
                         .decay_steps = c.decay_steps};

  int64_t step = 0;
  uint64_t data_counter = 0, data_seed = (uint64_t)c.seed * 0x9E3779B97F4A7C15ULL + 1;
  double best_val = INFINITY, window_sum = 0;
  int64_t window_n = 0;
  if (c.resume[0]) { /* everything is checked before anything is written */
    tyr_checkpoint *ck = tyr_checkpoint_open(c.resume);
    if (!ck) return 1;
    const char *saved = tyr_checkpoint_meta(ck, "train_diffusion.config");
    const char *saved_loss = tyr_checkpoint_meta(ck, "train_diffusion.loss");
    if (!saved || strcmp(saved, cfg_json) || !saved_loss || strcmp(saved_loss, c.loss)) {
      fprintf(stderr,
              PROG ": --resume %s: the checkpoint was made with a different config\n  file:  %s "
                   "loss %s\n  flags: %s loss %s\n",
              c.resume, saved ? saved : "(none)", saved_loss ? saved_loss : "(none)", cfg_json,
              c.loss);
      return 1;
    }
    tyr_checkpoint_info info;
    if (tyr_checkpoint_load(ck, &m.params, &opt, &info)) return 1;
    step = info.step;
    const char *dc = tyr_checkpoint_meta(ck, "train_diffusion.data_counter");
    const char *bv = tyr_checkpoint_meta(ck, "train_diffusion.best_val");
    data_counter = dc ? strtoull(dc, NULL, 10) : 0;
    best_val = bv ? strtod(bv, NULL) : INFINITY;
    const char *lw = tyr_checkpoint_meta(ck, "train_diffusion.loss_window");
    long long lw_n = 0;
    if (lw && sscanf(lw, "%lf %lld", &window_sum, &lw_n) == 2 && lw_n >= 0)
      window_n = lw_n;
    else
      window_sum = 0; /* older checkpoints: a fresh window */
    tyr_checkpoint_close(ck);
    fprintf(stderr, PROG ": resumed from %s at step %" PRId64 "\n", c.resume, step);
  }

  if (tyr_mkdirs(c.out_dir)) {
    fprintf(stderr, PROG ": --out-dir %s: cannot create (%s)\n", c.out_dir, strerror(errno));
    return 1;
  }
  char path_last[1200], path_best[1200], path_metrics[1200], path_plot[1200];
  snprintf(path_last, sizeof path_last, "%s/last.safetensors", c.out_dir);
  snprintf(path_best, sizeof path_best, "%s/best.safetensors", c.out_dir);
  snprintf(path_metrics, sizeof path_metrics, "%s/metrics.jsonl", c.out_dir);
  snprintf(path_plot, sizeof path_plot, "%s/loss.png", c.out_dir);
  /* on resume, the log goes back to the checkpoint's step (tyr/fileio.h) */
  if (c.resume[0] && tyr_jsonl_truncate(path_metrics, step) < 0) return 1;
  FILE *metrics = fopen(path_metrics, c.resume[0] ? "a" : "w");
  if (!metrics) {
    fprintf(stderr, PROG ": %s: cannot open (%s)\n", path_metrics, strerror(errno));
    return 1;
  }
  bool tty = isatty(2);
  fprintf(stderr,
          PROG ": preset %s, config %s (seq %" PRId64 ", %" PRId64 " layers, %" PRId64
               " heads, %" PRId64 " wide, T %" PRId64 ", context %" PRId64 "), %" PRId64
               " parameters, loss %s, %" PRId64 " train / %" PRId64 " val chars, device %s, %d "
               "threads\n",
          c.preset, mc.name, mc.seq_len, mc.n_layer, mc.n_head, mc.n_embd, mc.steps, mc.context_len,
          tyr_params_numel(&m.params), c.loss, d.n_train, d.n - d.n_train, tyr_device_name(dev),
          tyr_get_num_threads());

  /* loop */
  const double tokens = (double)(c.batch_size * mc.seq_len);
  double t_start = now(), t_last = t_start, ema_tok = 0, last_loss = NAN, val_ce = NAN,
         val_bpc = NAN;
  int64_t steps_this_run = 0;
  while (step < c.iters) {
    double lr = tyr_lr_at(&sch, step), loss_v;
    {
      TYR_SCOPE;
      batch b = make_batch(&d, &mc, false, c.batch_size, data_seed, &data_counter, dev);
      tyr_tensor *loss =
          tyr_dlm_loss(&m, b.ids, b.t, b.x0, loss_kind == TYR_DLM_LOSS_CE ? b.w_ce : b.w_elbo);
      if (!loss) return 1;
      tyr_backward_e(loss);
      loss_v = tyr_item_e(loss);
      if (c.clip > 0) tyr_params_clip_grad_norm(&m.params, c.clip);
      tyr_optim_step(&opt, lr);
      tyr_optim_zero_grad(&opt);
    }
    if (!isfinite(loss_v)) {
      fprintf(stderr, "\n" PROG ": loss is %f at step %" PRId64 "; stopping\n", loss_v, step);
      return 1;
    }
    step++;
    steps_this_run++;
    last_loss = loss_v;
    window_sum += loss_v;
    window_n++;
    double t = now(), dt = t - t_last;
    t_last = t;
    double tok_s = tokens / (dt > 0 ? dt : 1e-9);
    ema_tok = steps_this_run <= 2 ? tok_s : 0.9 * ema_tok + 0.1 * tok_s;
    if (tyr_jsonl_write(metrics, path_metrics,
                        "{\"step\":%" PRId64 ",\"loss\":%.6f,\"lr\":%.6g,\"tok_s\":%.1f}", step,
                        loss_v, lr, tok_s))
      return 1;
    if (tty ? (step % 5 == 0 || step == c.iters)
            : (step % c.log_interval == 0 || step == c.iters)) {
      char text[96];
      snprintf(text, sizeof text, "loss %.4f | %.0f tok/s", loss_v, ema_tok);
      tyr_progress_draw(stderr, tty, step, c.iters,
                        (double)(c.iters - step) * tokens / (ema_tok > 0 ? ema_tok : 1), text);
    }
    bool last = step == c.iters || (c.max_steps && steps_this_run >= c.max_steps);
    if (step % c.eval_interval == 0 || step == c.iters) {
      double tr = window_n ? window_sum / (double)window_n : loss_v;
      window_sum = 0;
      window_n = 0;
      evaluate(&m, &c, &d, data_seed, &val_ce, &val_bpc);
      /* val_loss is in the training loss's unit (nats); the ELBO is also reported in bits */
      double val = loss_kind == TYR_DLM_LOSS_CE ? val_ce : val_bpc * log(2.0);
      fprintf(stderr,
              "%sstep %" PRId64
              ": train loss %.4f, val masked CE %.4f, val ELBO %.4f bits/char%s\n",
              tty ? "\n" : "", step, tr, val_ce, val_bpc, val < best_val ? " (best)" : "");
      if (tyr_jsonl_write(
              metrics, path_metrics,
              "{\"step\":%" PRId64
              ",\"train_loss\":%.6f,\"val_loss\":%.6f,\"val_ce\":%.6f,\"val_bpc\":%.6f}",
              step, tr, val, val_ce, val_bpc))
        return 1;
      if (val < best_val) {
        best_val = val;
        save_checkpoint(path_best, &m, &opt, step, data_counter, best_val, cfg_json, c.loss,
                        window_sum, window_n);
      }
      save_checkpoint(path_last, &m, &opt, step, data_counter, best_val, cfg_json, c.loss,
                      window_sum, window_n);
    } else if (last) {
      save_checkpoint(path_last, &m, &opt, step, data_counter, best_val, cfg_json, c.loss,
                      window_sum, window_n);
    }
    if (last) break;
  }
  fclose(metrics);

  /* report */
  double elapsed = now() - t_start;
  fprintf(stderr, PROG ": %" PRId64 " steps in %.1f s (%.0f tok/s), last loss %.4f\n",
          steps_this_run, elapsed, (double)steps_this_run * tokens / (elapsed > 0 ? elapsed : 1),
          last_loss);
  printf("final: step %" PRId64 " loss %s val_ce %.4f val_bpc %.4f best_val %.4f\n", step, c.loss,
         val_ce, val_bpc, best_val);
  /* the whole history, resumed runs included, from metrics.jsonl */
  if (c.plot &&
      tyr_plot_metrics_png(path_plot, path_metrics, "TRAINDIFFUSION LOSS",
                           loss_kind == TYR_DLM_LOSS_CE ? "MASKED CE" : "ELBO (NATS)") == 0)
    fprintf(stderr, PROG ": wrote %s\n", path_plot);
  fprintf(stderr, PROG ": checkpoints in %s; generate with: " PROG " --generate %s\n", c.out_dir,
          c.out_dir);
  free(d.text);
  tyr_optim_free(&opt);
  tyr_dlm_free(&m);
  return 0;
}
