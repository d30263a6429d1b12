/* TrainGPT: a character-level GPT on a text file.
 *
 *   train_gpt [--preset shakespeare_cpu|shakespeare_gpu|gpt2_124m] [flags]
 *
 * Vocabulary from the text's distinct bytes; 90/10 train/val split; AdamW
 * with warmup and cosine decay; progress bar; validation every
 * --eval-interval steps; best and last checkpoints; metrics as JSONL; a PNG
 * plot of the losses; samples at the end.  --help lists every flag. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tyr/checkpoint.h>
#include <tyr/cuda.h>
#include <tyr/fileio.h>
#include <tyr/models/gpt.h>
#include <tyr/dist.h>
#include <tyr/muon.h>
#include <tyr/optim.h>
#include <tyr/plot.h>
#include <tyr/progress.h>

#include "train_gpt.h"

typedef struct config {
  char preset[32];
  char data[1024], out_dir[1024], resume[1024], device[32], prompt[256];
  int64_t n_layer, n_head, n_kv_head, n_embd, block_size, batch_size, iters;
  double lr, min_lr, beta1, beta2, weight_decay, clip, dropout;
  int64_t warmup, decay_steps;
  int64_t eval_interval, eval_iters, sample_chars, top_k, threads, log_interval;
  double temperature, top_p;
  int64_t seed;
  char act[16], norm[16], pos[16], matmul[8], compute_dtype[8];
  int tied, bias, plot, use_static, cuda_graph;
  int64_t max_steps; /* stop after this many steps of this run (for tests); 0 = none */
  char optim[8];     /* adamw or muon */
  int64_t zero;      /* 1: ZeRO-1 (AdamW moments sharded over ranks) */
  double muon_lr;
  int64_t grad_accum; /* micro-batches per step */
} config;

static void preset(config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", name);
  snprintf(c->data, sizeof c->data, "data/tinyshakespeare.txt");
  snprintf(c->out_dir, sizeof c->out_dir, "out/%s", name);
  snprintf(c->device, sizeof c->device, "cpu");
  snprintf(c->prompt, sizeof c->prompt, "ROMEO:");
  snprintf(c->act, sizeof c->act, "gelu");
  snprintf(c->norm, sizeof c->norm, "layer");
  snprintf(c->pos, sizeof c->pos, "learned");
  c->n_layer = SC_LAYERS;
  c->n_head = SC_HEADS;
  c->n_embd = SC_EMBD;
  c->block_size = SC_BLOCK;
  c->batch_size = SC_BATCH;
  c->iters = 5000;
  c->lr = 1e-3;
  c->min_lr = 1e-4;
  c->warmup = 100;
  c->decay_steps = 2000;
  c->beta1 = 0.9;
  c->beta2 = 0.99;
  c->weight_decay = 0.1;
  c->clip = 1.0;
  c->eval_interval = 500;
  c->eval_iters = 50;
  c->sample_chars = 500;
  c->temperature = 0.8;
  c->top_k = 40;
  c->top_p = 1.0;
  c->seed = 1337;
  c->tied = 1;
  c->bias = 1;
  c->plot = 1;
  c->use_static = 1;
  c->cuda_graph = 1;
  c->log_interval = 100;
  snprintf(c->optim, sizeof c->optim, "adamw");
  c->muon_lr = 0.02;
  c->grad_accum = 1;
  if (strcmp(name, "shakespeare_gpu") == 0) {
    c->n_layer = 6;
    c->n_head = 6;
    c->n_embd = 384;
    c->block_size = 256;
    c->batch_size = 64;
    c->dropout = 0.2;
    snprintf(c->device, sizeof c->device, "cuda");
  } else if (strcmp(name, "gpt2_124m") == 0) {
    c->n_layer = 12;
    c->n_head = 12;
    c->n_embd = 768;
    c->block_size = 1024;
    c->batch_size = 16;
    c->lr = 6e-4;
    c->min_lr = 6e-5;
    c->warmup = 700;
    c->decay_steps = 19073;
    c->iters = 19073;
    c->beta2 = 0.95;
    snprintf(c->act, sizeof c->act, "gelu_tanh");
    snprintf(c->device, sizeof c->device, "cuda");
  }
}

typedef enum { F_INT, F_DBL, F_STR, F_BOOL } ftype;
typedef struct {
  const char *name, *help;
  ftype type;
  size_t off, size;
} flag;
#define FI(n, f, h)                                                                                \
  { n, h, F_INT, offsetof(config, f), 0 }
#define FD(n, f, h)                                                                                \
  { n, h, F_DBL, offsetof(config, f), 0 }
#define FS(n, f, h)                                                                                \
  { n, h, F_STR, offsetof(config, f), sizeof(((config *)0)->f) }
#define FB(n, f, h)                                                                                \
  { n, h, F_BOOL, offsetof(config, f), 0 }
static const flag FLAGS[] = {
    FS("data", data, "text file to train on"),
    FS("out-dir", out_dir, "directory for checkpoints, metrics.jsonl and loss.png"),
    FS("resume", resume, "checkpoint to resume from (e.g. out/<preset>/last.safetensors)"),
    FS("device", device, "cpu, cuda or cuda:N"),
    FS("matmul", matmul,
       "CUDA f32 matmuls: f32, tf32 or bf16 (tensor cores; empty: $TYR_CUDA_MATMUL or f32)"),
    FS("compute-dtype", compute_dtype,
       "dtype of activations and products: f32 (empty: the parameters'), bf16 or f16 (mixed "
       "precision: f32 weights, gradients, optimizer and loss)"),
    FI("n-layer", n_layer, "transformer blocks"),
    FI("n-head", n_head, "attention heads"),
    FI("n-kv-head", n_kv_head, "key/value heads (0: as many as heads)"),
    FI("n-embd", n_embd, "embedding width"),
    FI("block-size", block_size, "context length"),
    FI("batch-size", batch_size, "sequences per step"),
    FI("iters", iters, "training steps"),
    FD("lr", lr, "peak learning rate"),
    FD("min-lr", min_lr, "learning rate at the end of the cosine decay"),
    FI("warmup", warmup, "linear warmup steps"),
    FI("decay-steps", decay_steps, "step at which the cosine decay reaches min-lr"),
    FD("beta1", beta1, "AdamW beta1"),
    FD("beta2", beta2, "AdamW beta2"),
    FD("weight-decay", weight_decay, "AdamW weight decay (matrices only)"),
    FD("clip", clip, "clip the global gradient norm to this (0: off)"),
    FD("dropout", dropout, "dropout rate"),
    FS("act", act, "MLP activation: gelu, gelu_tanh, relu2, relu, silu"),
    FS("norm", norm, "layer or rms"),
    FS("pos", pos, "learned or rope"),
    FB("tied", tied, "tie the output head to the token embedding (--no-tied to untie)"),
    FB("bias", bias, "biases in linear layers and norms"),
    FI("eval-interval", eval_interval, "steps between validations"),
    FI("eval-iters", eval_iters, "batches per validation estimate"),
    FI("log-interval", log_interval, "steps between log lines when stderr is not a terminal"),
    FI("sample-chars", sample_chars, "characters to sample at the end"),
    FS("prompt", prompt, "text the sample starts from"),
    FD("temperature", temperature, "sampling temperature (0: always the most likely)"),
    FI("top-k", top_k, "sample from the k most likely characters (0: all)"),
    FD("top-p", top_p,
       "sample from the fewest most likely characters whose mass reaches p (1: all)"),
    FI("seed", seed, "random seed"),
    FI("threads", threads, "CPU threads (0: all)"),
    FB("plot", plot, "write loss.png"),
    FB("static", use_static,
       "use the statically shaped forward when the config matches shakespeare_cpu"),
    FI("max-steps", max_steps, "stop after this many steps of this run (0: none)"),
    FS("optim", optim, "adamw, or muon (Muon for the hidden matrices, AdamW at --lr for the rest)"),
    FI("grad-accum", grad_accum,
       "micro-batches of --batch-size rows per step (gradients accumulated; data parallel "
       "communicates on the last one)"),
    FD("muon-lr", muon_lr, "Muon's peak learning rate (follows the --lr schedule's shape)"),
    FI("zero", zero,
       "1: ZeRO-1, AdamW moments sharded over the ranks (under mpirun/srun/torchrun)"),
    FB("cuda-graph", cuda_graph,
       "on a CUDA device, capture one training step in a CUDA graph after 2 eager steps and "
       "replay it (needs --dropout 0; --no-cuda-graph: eager steps)"),
};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

static void usage(FILE *f) {
  fprintf(f, "usage: train_gpt [--preset shakespeare_cpu|shakespeare_gpu|gpt2_124m] [--flag value "
             "...]\n\n");
  config d;
  preset(&d, "shakespeare_cpu");
  for (size_t i = 0; i < NFLAGS; i++) {
    const flag *fl = &FLAGS[i];
    char def[64];
    void *p = (char *)&d + fl->off;
    switch (fl->type) {
    case F_INT:
      snprintf(def, sizeof def, "%" PRId64, *(int64_t *)p);
      break;
    case F_DBL:
      snprintf(def, sizeof def, "%g", *(double *)p);
      break;
    case F_STR:
      snprintf(def, sizeof def, "%s", (char *)p);
      break;
    case F_BOOL:
      snprintf(def, sizeof def, "%s", *(int *)p ? "on" : "off");
      break;
    }
    fprintf(f, "  --%-15s %s (default %s)\n", fl->name, fl->help, def);
  }
  fprintf(f, "  --%-15s %s\n", "help", "this text");
}

static void die_flag(const char *msg, const char *arg) {
  fprintf(stderr, "train_gpt: %s: %s (see --help)\n", msg, arg);
  exit(2);
}

/* "--flag value: what is wrong" */
static void die_value(const char *flag, const char *value, const char *msg) {
  fprintf(stderr, "train_gpt: %s %s: %s (see --help)\n", flag, value, msg);
  exit(2);
}

/* ---- flag ranges: checked before anything is allocated ---------------------- */
typedef struct {
  const char *name;
  double lo, hi; /* inclusive */
} flag_range;
/* Limits that keep every size the program derives from a flag far from
 * overflow and out-of-memory crashes; each message names the flag. */
static const flag_range RANGES[] = {
    {"n-layer", 1, 1024},       {"n-head", 1, 1024},
    {"n-kv-head", 0, 1024},     {"n-embd", 1, 65536},
    {"block-size", 1, 1 << 20}, {"batch-size", 1, 1 << 20},
    {"iters", 0, 1e9},          {"lr", 0, 10},
    {"min-lr", 0, 10},          {"warmup", 0, 1e9},
    {"decay-steps", 0, 1e9},    {"beta1", 0, 0.999999},
    {"beta2", 0, 0.999999},     {"weight-decay", 0, 100},
    {"clip", 0, 1e9},           {"dropout", 0, 0.999},
    {"eval-interval", 1, 1e9},  {"eval-iters", 1, 1e6},
    {"log-interval", 1, 1e9},   {"sample-chars", 0, 1e7},
    {"temperature", 0, 1e3},    {"top-k", 0, 256},
    {"top-p", 1e-9, 1},         {"seed", 0, 9.2e18},
    {"threads", 0, 4096},       {"max-steps", 0, 1e9},
};

static void die_range(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die_range(const char *name, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "train_gpt: --%s %s (see --help)\n", name, msg);
  exit(2);
}

static void check_ranges(const config *c) {
  for (size_t i = 0; i < sizeof RANGES / sizeof RANGES[0]; i++) {
    const flag *fl = NULL;
    for (size_t k = 0; k < NFLAGS; k++)
      if (strcmp(FLAGS[k].name, RANGES[i].name) == 0) fl = &FLAGS[k];
    if (!fl) continue;
    const void *p = (const char *)c + fl->off;
    double v = fl->type == F_INT ? (double)*(const int64_t *)p : *(const double *)p;
    if (v < RANGES[i].lo || v > RANGES[i].hi) {
      if (fl->type == F_INT)
        die_range(fl->name, "%" PRId64 ": must be in [%.0f, %.0f]", *(const int64_t *)p,
                  RANGES[i].lo, RANGES[i].hi);
      else
        die_range(fl->name, "%g: must be in [%g, %g]", v, RANGES[i].lo, RANGES[i].hi);
    }
  }
  /* what the model's config would refuse, said in terms of flags */
  if (c->n_embd % c->n_head)
    die_range("n-head", "%" PRId64 ": must divide --n-embd %" PRId64, c->n_head, c->n_embd);
  if (c->n_kv_head && c->n_head % c->n_kv_head)
    die_range("n-kv-head", "%" PRId64 ": must divide --n-head %" PRId64, c->n_kv_head, c->n_head);
  if (strcmp(c->pos, "rope") == 0 && (c->n_embd / c->n_head) % 2)
    die_range("pos",
              "rope: needs an even head size, but --n-embd %" PRId64 " / --n-head %" PRId64
              " = %" PRId64,
              c->n_embd, c->n_head, c->n_embd / c->n_head);
  if (c->min_lr > c->lr) die_range("min-lr", "%g: must not exceed --lr %g", c->min_lr, c->lr);
  /* one batch of ids and activations: refuse sizes no machine holds */
  if ((double)c->batch_size * (double)c->block_size > (double)(1ll << 31))
    die_range("batch-size",
              "%" PRId64 ": --batch-size x --block-size (%" PRId64
              ") is more than 2^31 tokens per step",
              c->batch_size, c->block_size);
  if ((double)c->batch_size * (double)c->block_size * (double)c->n_embd * 4.0 > 1e12)
    die_range("batch-size",
              "%" PRId64 ": one step's activations (--batch-size x --block-size x "
              "--n-embd floats) would exceed a terabyte",
              c->batch_size);
}

static void parse_args(config *c, int argc, char **argv) {
  const char *pre = "shakespeare_cpu";
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--preset") == 0) {
      if (i + 1 >= argc) die_flag("missing value for flag", "--preset");
      pre = argv[++i];
      if (strcmp(pre, "shakespeare_cpu") && strcmp(pre, "shakespeare_gpu") &&
          strcmp(pre, "gpt2_124m"))
        die_flag("unknown preset", pre);
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    }
  preset(c, pre);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--preset") == 0) {
      i++;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) die_flag("unexpected argument", a);
    const char *name = a + 2;
    bool neg = strncmp(name, "no-", 3) == 0;
    const flag *fl = NULL;
    for (size_t k = 0; k < NFLAGS; k++)
      if (strcmp(FLAGS[k].name, name) == 0 ||
          (neg && FLAGS[k].type == F_BOOL && strcmp(FLAGS[k].name, name + 3) == 0))
        fl = &FLAGS[k];
    if (!fl) die_flag("unknown flag", a);
    void *p = (char *)c + fl->off;
    if (fl->type == F_BOOL) {
      *(int *)p = !neg;
      continue;
    }
    if (i + 1 >= argc) die_flag("missing value for flag", a);
    const char *v = argv[++i];
    char *end;
    errno = 0;
    if (fl->type == F_INT) {
      long long x = strtoll(v, &end, 10);
      if (*end || end == v || errno) die_value(a, v, "not an integer");
      *(int64_t *)p = x;
    } else if (fl->type == F_DBL) {
      double x = strtod(v, &end);
      if (*end || end == v || errno || !isfinite(x)) die_value(a, v, "not a finite number");
      *(double *)p = x;
    } else {
      if (strlen(v) >= fl->size) die_value(a, v, "value too long");
      snprintf((char *)p, fl->size, "%s", v);
    }
  }
  check_ranges(c);
  if (strcmp(c->pos, "learned") && strcmp(c->pos, "rope"))
    die_flag("--pos must be learned or rope", c->pos);
  if (strcmp(c->norm, "layer") && strcmp(c->norm, "rms"))
    die_flag("--norm must be layer or rms", c->norm);
  tyr_act_kind ak;
  if (!tyr_act_kind_parse(c->act, &ak)) die_flag("unknown activation", c->act);
  if (strcmp(c->optim, "adamw") && strcmp(c->optim, "muon"))
    die_flag("--optim must be adamw or muon", c->optim);
  if (c->zero != 0 && c->zero != 1) die_range("zero", "%" PRId64 ": must be 0 or 1", c->zero);
  if (c->grad_accum < 1 || c->grad_accum > 1000000)
    die_range("grad-accum", "%" PRId64 ": must be in [1, 1000000]", c->grad_accum);
  if (c->zero && strcmp(c->optim, "adamw"))
    die_flag("--zero 1 shards AdamW: needs --optim adamw", c->optim);
}

/* ---- data -------------------------------------------------------------- */
typedef struct dataset {
  uint8_t *tokens; /* one id per byte of text */
  int64_t n, n_train;
  char vocab[256];
  int vocab_size;
  uint8_t id_of[256];
} dataset;

static void load_data(dataset *d, const char *path, int64_t block) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "train_gpt: --data %s: cannot open (%s)\n", path, strerror(errno));
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (size <= 0) {
    fprintf(stderr, "train_gpt: --data %s: the file is empty\n", path);
    exit(1);
  }
  uint8_t *text = malloc((size_t)size);
  if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "train_gpt: --data %s: cannot read\n", path);
    exit(1);
  }
  fclose(f);
  bool seen[256] = {0};
  for (long i = 0; i < size; i++) seen[text[i]] = true;
  d->vocab_size = 0;
  for (int b = 0; b < 256; b++)
    if (seen[b]) {
      d->id_of[b] = (uint8_t)d->vocab_size;
      d->vocab[d->vocab_size++] = (char)b;
    }
  for (long i = 0; i < size; i++) text[i] = d->id_of[text[i]];
  d->tokens = text;
  d->n = size;
  d->n_train = (int64_t)(size * 0.9);
  if (d->n_train <= block + 1 || d->n - d->n_train <= block + 1) {
    fprintf(stderr, "train_gpt: --data %s: %ld bytes is too short for --block-size %" PRId64 "\n",
            path, size, block);
    exit(1);
  }
}

/* A random batch from the train or val part: window starts from the
 * counter-based generator (seed, counter) so that a resumed run sees the
 * same batches. */
static void batch_host(const dataset *d, bool val, int64_t B, int64_t T, uint64_t seed,
                       uint64_t *counter, int64_t *bx, int64_t *by) {
  int64_t lo = val ? d->n_train : 0, len = (val ? d->n : d->n_train) - lo;
  for (int64_t b = 0; b < B; b++) {
    uint32_t r[4];
    tyr_philox4x32(seed ^ (val ? 0x5bd1e995u : 0), (*counter)++, r);
    int64_t start = lo + (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(len - T - 1));
    for (int64_t t = 0; t < T; t++) {
      bx[b * T + t] = d->tokens[start + t];
      by[b * T + t] = d->tokens[start + t + 1];
    }
  }
}

/* Data parallel: every rank draws the whole batch of B rows (so the data
 * stream, and a checkpoint's counter, do not depend on the world size) and
 * keeps rows [rank*B/N, (rank+1)*B/N). */
static int g_rank, g_world = 1;

static void get_batch(const dataset *d, bool val, int64_t B, int64_t T, uint64_t seed,
                      uint64_t *counter, tyr_device dev, tyr_tensor **x, tyr_tensor **y) {
  int64_t *bx = malloc(sizeof(int64_t) * (size_t)(B * T)),
          *by = malloc(sizeof(int64_t) * (size_t)(B * T));
  if (!bx || !by) {
    fprintf(stderr, "train_gpt: out of host memory for a batch of %" PRId64 " x %" PRId64 "\n", B,
            T);
    exit(1);
  }
  batch_host(d, val, B, T, seed, counter, bx, by);
  int64_t b = B / g_world, r0 = (int64_t)g_rank * b;
  *x = tyr_from_host_at(TYR_SITE, bx + r0 * T, TYR_I64, dev, 2, (int64_t[]){b, T});
  *y = tyr_from_host_at(TYR_SITE, by + r0 * T, TYR_I64, dev, 2, (int64_t[]){b, T});
  free(bx);
  free(by);
}

/* ---- training ----------------------------------------------------------- */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static tyr_tensor *model_loss(tyr_gpt *g, const config *c, tyr_tensor *x, tyr_tensor *y,
                              bool training) {
  if (c->use_static && static_model_matches(g, x->shape[0], x->shape[1]))
    return static_model_loss(g, x, y);
  return tyr_gpt_loss_at(TYR_SITE, g, x, y, training);
}

/* A training step as a CUDA graph can capture it: clipping on the device,
 * the optimizer in capturable mode (lr is ignored during a capture: the
 * rate comes from tyr_optim_prepare_step).  The loss is kept for the
 * caller. */
static tyr_tensor *graph_step(tyr_gpt *g, const config *c, tyr_optim *opt, tyr_tensor *x,
                              tyr_tensor *y, double lr) {
  TYR_SCOPE;
  tyr_tensor *loss = model_loss(g, c, x, y, true);
  if (!loss) return NULL;
  tyr_keep_e(loss);
  tyr_backward_e(loss);
  if (c->clip > 0) tyr_params_clip_grad_norm_dev(&g->params, c->clip);
  tyr_optim_step(opt, lr);
  tyr_optim_zero_grad(opt);
  return loss;
}

static tyr_dist *g_pg;

static double estimate_loss(tyr_gpt *g, const config *c, const dataset *d, bool val,
                            uint64_t seed) {
  TYR_NO_GRAD;
  uint64_t counter = 0; /* the same batches at every evaluation */
  double sum = 0;
  tyr_device dev = g->device;
  for (int64_t i = 0; i < c->eval_iters; i++) {
    TYR_SCOPE;
    tyr_tensor *x, *y;
    get_batch(d, val, c->batch_size, c->block_size, seed + 7, &counter, dev, &x, &y);
    sum += tyr_item_e(model_loss(g, c, x, y, false));
  }
  return tyr_dist_reduce_scalar(g_pg, sum / (double)c->eval_iters, TYR_DIST_AVG);
}

static void progress(int64_t step, int64_t total, double loss, double tok_s, double eta, bool tty) {
  char text[96];
  snprintf(text, sizeof text, "loss %.4f | %.0f tok/s", loss, tok_s);
  tyr_progress_draw(stderr, tty, step, total, eta, text);
}

static void config_json(const config *c, const tyr_gpt_config *g, char *buf, size_t n) {
  snprintf(buf, n,
           "{\"vocab_size\":%" PRId64 ",\"block_size\":%" PRId64 ",\"n_layer\":%" PRId64
           ",\"n_head\":%" PRId64 ",\"n_kv_head\":%" PRId64 ",\"n_embd\":%" PRId64
           ",\"act\":\"%s\",\"norm\":\"%s\",\"pos\":\"%s\",\"tied\":%d,"
           "\"bias\":%d}",
           g->vocab_size, g->block_size, g->n_layer, g->n_head, g->n_kv_head, g->n_embd, c->act,
           c->norm, c->pos, c->tied, c->bias);
}

static void vocab_hex(const dataset *d, char *buf, size_t n) {
  size_t k = 0;
  for (int i = 0; i < d->vocab_size && k + 3 < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%02x", (uint8_t)d->vocab[i]);
  buf[k] = 0;
}

/* The optimizer in use: AdamW (opt), ZeRO-1 (zero; its moments are
 * gathered into an unsharded AdamW for checkpoints), or Muon (muon; its
 * state travels in ckpt, the model's parameters plus Muon's buffers). */
typedef struct optimizer {
  tyr_optim opt;
  tyr_optim_config oc;
  tyr_zero1 *zero;
  bool use_muon;
  tyr_muon muon;
  tyr_params ckpt;
} optimizer;

/* Writes a checkpoint (atomically, see tyr/fileio.h); exits on failure.
 * The model's config goes in too, so that tyr_gpt_load rebuilds it. */
/* The training-loss window (sum and count of the step losses since the
 * last evaluation) travels in the checkpoint, so that the first train_loss
 * after a resume is the one an uninterrupted run logs. */
typedef struct loss_window {
  double sum;
  int64_t n;
} loss_window;

static void save_checkpoint(const char *path, tyr_gpt *g, optimizer *o, int64_t step,
                            uint64_t data_counter, double best_val, const char *cfg_json,
                            const dataset *d, loss_window win) {
  tyr_optim *opt = &o->opt;
  tyr_params *params = &g->params;
  if (o->zero) { /* every rank takes part in the gather */
    if (tyr_optim_init(opt, &g->params, o->oc) || tyr_zero1_gather_state_at(TYR_SITE, o->zero, opt))
      exit(1);
  } else if (o->use_muon) { /* AdamW's shards gathered on every rank */
    if (!(opt = tyr_muon_gather_adamw(&o->muon))) exit(1);
    params = &o->ckpt;
  }
  if (g_rank != 0) {
    if (o->zero)
      tyr_optim_free(opt);
    else if (o->use_muon)
      tyr_muon_release_adamw(&o->muon, opt);
    return;
  }
  char dc[32], bv[32], lw[64], vocab[600], model[1024];
  snprintf(dc, sizeof dc, "%" PRIu64, data_counter);
  snprintf(bv, sizeof bv, "%.17g", best_val);
  snprintf(lw, sizeof lw, "%.17g %" PRId64, win.sum, win.n);
  vocab_hex(d, vocab, sizeof vocab);
  if (tyr_gpt_config_to_json(&g->cfg, model, sizeof model) < 0) exit(1);
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 6,
                              .keys = {"train_gpt.config", "train_gpt.data_counter",
                                       "train_gpt.best_val", "train_gpt.vocab", TYR_GPT_CONFIG_KEY,
                                       "train_gpt.loss_window"},
                              .values = {cfg_json, dc, bv, vocab, model, lw}};
  if (tyr_checkpoint_save(path, params, opt, &info)) {
    fprintf(stderr, "train_gpt: could not save %s; stopping\n", path);
    exit(1);
  }
  if (o->zero)
    tyr_optim_free(opt);
  else if (o->use_muon)
    tyr_muon_release_adamw(&o->muon, opt);
}

/* The prompt as ids; exits naming the first character outside the
 * vocabulary (checked before training starts). */
static int64_t prompt_ids(const config *c, const dataset *d, int64_t *ids) {
  int64_t n = 0;
  for (const char *p = c->prompt; *p; p++) {
    uint8_t b = (uint8_t)*p;
    bool ok = false;
    for (int i = 0; i < d->vocab_size; i++) ok |= (uint8_t)d->vocab[i] == b;
    if (!ok) {
      fprintf(stderr,
              "train_gpt: --prompt \"%s\": character %s%c%s (byte 0x%02x, position %d) is not in "
              "the vocabulary of --data %s\n",
              c->prompt, b >= 32 && b < 127 ? "'" : "", b >= 32 && b < 127 ? (char)b : '?',
              b >= 32 && b < 127 ? "'" : "", b, (int)(p - c->prompt), c->data);
      exit(2);
    }
    if (ids) ids[n] = d->id_of[b];
    n++;
  }
  return n;
}

/* Samples --sample-chars characters after the prompt with tyr_gpt_generate
 * (on the model's device). */
static void sample(tyr_gpt *g, const config *c, const dataset *d, uint64_t seed) {
  int64_t np = prompt_ids(c, d, NULL);
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)(np + c->sample_chars + 1));
  if (!ids) {
    fprintf(stderr, "train_gpt: out of host memory for the sample\n");
    exit(1);
  }
  prompt_ids(c, d, ids);
  if (np == 0) ids[np++] = d->id_of[(uint8_t)'\n']; /* an empty prompt: a new line */
  tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
  sc.temperature = c->temperature;
  sc.top_k = c->top_k;
  sc.top_p = c->top_p;
  sc.seed = seed + 99;
  if (tyr_gpt_generate(g, ids, np, c->sample_chars, &sc, ids)) exit(1);
  printf("%s", c->prompt);
  for (int64_t k = np; k < np + c->sample_chars; k++) putchar(d->vocab[ids[k]]);
  printf("\n");
  free(ids);
}

/* loss.png from metrics.jsonl: the whole history, resumed runs included */
static void plot_metrics(const char *path_metrics, const char *path_plot) {
  FILE *mf = fopen(path_metrics, "r");
  if (!mf) return;
  int64_t lines = 0;
  char line[512];
  while (fgets(line, sizeof line, mf)) lines++;
  rewind(mf);
  double *h = malloc(sizeof(double) * (size_t)(4 * lines + 4));
  if (!h) {
    fclose(mf);
    fprintf(stderr, "train_gpt: out of host memory for the plot\n");
    return;
  }
  double *hx = h, *hy = h + lines + 1, *vx = h + 2 * (lines + 1), *vy = h + 3 * (lines + 1);
  int64_t nh = 0, nv = 0;
  while (fgets(line, sizeof line, mf) && nh <= lines && nv <= lines) {
    long long st;
    double a, b;
    if (sscanf(line, "{\"step\":%lld,\"train_loss\":%lf,\"val_loss\":%lf", &st, &a, &b) == 3) {
      vx[nv] = (double)st;
      vy[nv++] = b;
    } else if (sscanf(line, "{\"step\":%lld,\"loss\":%lf", &st, &a) == 2) {
      hx[nh] = (double)st;
      hy[nh++] = a;
    }
  }
  fclose(mf);
  tyr_plot_series ser[2] = {{"TRAIN", hx, hy, nh, 0x1f77b4}, {"VAL", vx, vy, nv, 0xd62728}};
  if (nh > 0 && tyr_plot_png(path_plot, 900, 500, "TRAINGPT LOSS", "STEP", "LOSS", ser, 2) == 0)
    fprintf(stderr, "train_gpt: wrote %s\n", path_plot);
  free(h);
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  config c;
  parse_args(&c, argc, argv);
  /* the process group: mpirun, srun or torchrun's environment, or one process */
  g_pg = tyr_dist_init(NULL);
  if (!g_pg) return 1;
  g_rank = tyr_dist_rank(g_pg);
  g_world = tyr_dist_world_size(g_pg);
  bool lead = g_rank == 0; /* rank 0 alone logs and writes files */
  if (c.batch_size % g_world)
    die_range("batch-size", "%" PRId64 ": must be a multiple of the number of ranks (%d)",
              c.batch_size, g_world);
  if (g_world > 1) { /* every rank must run with the same flags (a hash, compared) */
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)&c;
    for (size_t i = 0; i < sizeof c; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    double hv = (double)(h >> 12);
    if (tyr_dist_reduce_scalar(g_pg, hv, TYR_DIST_MAX) !=
        tyr_dist_reduce_scalar(g_pg, hv, TYR_DIST_MIN)) {
      fprintf(stderr, "train_gpt: rank %d: the ranks were started with different flags\n", g_rank);
      return 1;
    }
  }
  if (c.threads > 0) {
    tyr_set_num_threads((int)c.threads);
  } else if (g_world > 1) { /* share the cores between the ranks of this machine */
    const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!ls) ls = getenv("LOCAL_WORLD_SIZE");
    if (!ls) ls = getenv("SLURM_NTASKS_PER_NODE");
    int local = ls ? atoi(ls) : g_world, n = tyr_get_num_threads() / (local > 0 ? local : 1);
    tyr_set_num_threads(n > 0 ? n : 1);
  }
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die_flag("--device must be cpu, cuda or cuda:N", c.device);
  if (dev.type == TYR_CUDA && !strcmp(c.device, "cuda")) /* one GPU per rank */
    dev.index = tyr_dist_local_rank(g_pg);
  if (c.matmul[0]) {
    if (!strcmp(c.matmul, "f32"))
      tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
    else if (!strcmp(c.matmul, "tf32"))
      tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_TF32);
    else if (!strcmp(c.matmul, "bf16"))
      tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_BF16);
    else
      die_flag("--matmul must be f32, tf32 or bf16", c.matmul);
  }
  tyr_manual_seed((uint64_t)c.seed);

  dataset d;
  load_data(&d, c.data, c.block_size);
  if (c.sample_chars > 0) prompt_ids(&c, &d, NULL); /* refused now, not after training */
  tyr_gpt_config gc =
      tyr_gpt_config_gpt2(d.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd);
  gc.n_kv_head = c.n_kv_head ? c.n_kv_head : c.n_head;
  gc.dropout = c.dropout;
  gc.bias = c.bias;
  gc.tied_head = c.tied;
  gc.learned_pos = strcmp(c.pos, "learned") == 0;
  gc.rope = !gc.learned_pos;
  gc.norm = strcmp(c.norm, "rms") == 0 ? TYR_NORM_RMS : TYR_NORM_LAYER;
  tyr_act_kind_parse(c.act, &gc.act);
  gc.compute_dtype = TYR_F32;
  if (!strcmp(c.compute_dtype, "bf16"))
    gc.compute_dtype = TYR_BF16;
  else if (!strcmp(c.compute_dtype, "f16"))
    gc.compute_dtype = TYR_F16;
  else if (c.compute_dtype[0] && strcmp(c.compute_dtype, "f32"))
    die_flag("--compute-dtype must be f32, bf16 or f16", c.compute_dtype);
  tyr_gpt g;
  if (tyr_gpt_init(&g, &gc, dev)) return 1;
  char cfg_json[1024];
  config_json(&c, &g.cfg, cfg_json, sizeof cfg_json);

  tyr_params_group_by_rank(&g.params);
  tyr_optim_config oc = tyr_adamw_config(c.lr);
  oc.beta1 = c.beta1;
  oc.beta2 = c.beta2;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, c.weight_decay};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  optimizer o;
  memset(&o, 0, sizeof o);
  o.oc = oc;
  o.use_muon = !strcmp(c.optim, "muon");
  tyr_ddp *ddp = NULL;
  if (c.zero) {
    if (!(o.zero = tyr_zero1_init(g_pg, &g.params, oc))) return 1;
    if (lead)
      fprintf(stderr,
              "train_gpt: ZeRO-1 over %d ranks: %" PRId64 " bytes of AdamW state per rank (%" PRId64
              " unsharded)\n",
              g_world, tyr_zero1_state_bytes(o.zero), 8 * tyr_params_numel(&g.params));
  } else {
    if (strcmp(tyr_dist_backend_name(g_pg, dev), "local") &&
        !(ddp = tyr_ddp_init(g_pg, &g.params, NULL)))
      return 1;
    if (o.use_muon) {
      tyr_muon_config mc = tyr_muon_default_config(c.muon_lr, c.lr);
      mc.adamw = oc;
      mc.weight_decay = c.weight_decay;
      if (tyr_muon_init(&o.muon, &g.params, &mc, g_world > 1 ? g_pg : NULL) ||
          tyr_muon_checkpoint_params_at(TYR_SITE, &o.muon, &o.ckpt))
        return 1;
    } else if (tyr_optim_init(&o.opt, &g.params, oc)) {
      return 1;
    }
  }
  tyr_lr_schedule sch = {.kind = TYR_LR_WARMUP_COSINE,
                         .max_lr = c.lr,
                         .min_lr = c.min_lr,
                         .warmup = c.warmup,
                         .decay_steps = c.decay_steps};

  if (tyr_mkdirs(c.out_dir)) {
    fprintf(stderr, "train_gpt: --out-dir %s: cannot create (%s)\n", c.out_dir, strerror(errno));
    return 1;
  }
  char path_last[1200], path_best[1200], path_metrics[1200], path_plot[1200];
  snprintf(path_last, sizeof path_last, "%s/last.safetensors", c.out_dir);
  snprintf(path_best, sizeof path_best, "%s/best.safetensors", c.out_dir);
  snprintf(path_metrics, sizeof path_metrics, "%s/metrics.jsonl", c.out_dir);
  snprintf(path_plot, sizeof path_plot, "%s/loss.png", c.out_dir);

  int64_t step = 0;
  uint64_t data_counter = 0, data_seed = (uint64_t)c.seed * 0x9E3779B97F4A7C15ULL + 1;
  double best_val = INFINITY;
  loss_window resumed_window = {0, 0};
  if (c.resume[0]) {
    tyr_checkpoint *ck = tyr_checkpoint_open(c.resume);
    if (!ck) return 1;
    const char *saved = tyr_checkpoint_meta(ck, "train_gpt.config");
    if (!saved || strcmp(saved, cfg_json) != 0) {
      fprintf(stderr,
              "train_gpt: --resume %s: the checkpoint was made with a different config\n  file:  "
              "%s\n  flags: %s\n",
              c.resume, saved ? saved : "(none)", cfg_json);
      return 1;
    }
    /* the same shapes are not enough: the ids must mean the same characters */
    char vocab[600];
    vocab_hex(&d, vocab, sizeof vocab);
    const char *saved_vocab = tyr_checkpoint_meta(ck, "train_gpt.vocab");
    if (!saved_vocab || strcmp(saved_vocab, vocab) != 0) {
      fprintf(stderr,
              "train_gpt: --resume %s: the checkpoint's vocabulary differs from --data %s's\n"
              "  file:  %s\n  data:  %s\n",
              c.resume, c.data, saved_vocab ? saved_vocab : "(none)", vocab);
      return 1;
    }
    tyr_checkpoint_info info;
    if (o.zero) { /* the file holds unsharded AdamW state: take this rank's shard */
      if (tyr_optim_init(&o.opt, &g.params, oc) ||
          tyr_checkpoint_load(ck, &g.params, &o.opt, &info) ||
          tyr_zero1_scatter_state_at(TYR_SITE, o.zero, &o.opt))
        return 1;
      tyr_optim_free(&o.opt);
    } else if (o.use_muon) { /* the whole AdamW state, then this rank's shard */
      tyr_optim *whole = tyr_muon_gather_adamw(&o.muon);
      int bad = !whole || tyr_checkpoint_load(ck, &o.ckpt, whole, &info) ||
                tyr_muon_scatter_adamw(&o.muon, whole);
      tyr_muon_release_adamw(&o.muon, whole);
      if (bad) return 1;
    } else if (tyr_checkpoint_load(ck, &g.params, &o.opt, &info)) {
      return 1;
    }
    step = info.step;
    data_counter = strtoull(tyr_checkpoint_meta(ck, "train_gpt.data_counter")
                                ? tyr_checkpoint_meta(ck, "train_gpt.data_counter")
                                : "0",
                            NULL, 10);
    const char *bv = tyr_checkpoint_meta(ck, "train_gpt.best_val");
    best_val = bv ? strtod(bv, NULL) : INFINITY;
    const char *lw = tyr_checkpoint_meta(ck, "train_gpt.loss_window");
    long long lw_n = 0;
    if (lw && sscanf(lw, "%lf %lld", &resumed_window.sum, &lw_n) == 2 && lw_n >= 0)
      resumed_window.n = lw_n;
    else
      resumed_window = (loss_window){0, 0}; /* older checkpoints: a fresh window */
    tyr_checkpoint_close(ck);
    if (lead) fprintf(stderr, "train_gpt: resumed from %s at step %" PRId64 "\n", c.resume, step);
  }

  /* CUDA graph: x and y stay put (the batch is copied into them), two
     eager steps, then one captured step replayed; dropout draws random
     numbers, which a graph cannot (it would repeat one mask) */
  bool use_graph = c.cuda_graph && dev.type == TYR_CUDA && c.dropout == 0 && !ddp && !o.zero &&
                   !o.use_muon && g_world == 1 && c.grad_accum == 1;
  if (lead && c.cuda_graph && dev.type == TYR_CUDA && c.dropout != 0)
    fprintf(stderr,
            "train_gpt: --dropout %g: eager steps (a CUDA graph cannot draw random "
            "numbers; --dropout 0 to replay a graph)\n",
            c.dropout);
  tyr_cuda_graph *graph = NULL;
  tyr_tensor *gx = NULL, *gy = NULL, *gloss = NULL;
  int64_t *hbx = NULL, *hby = NULL;
  int eager_left = 2;
  if (use_graph) {
    if (tyr_optim_set_capturable(&o.opt, true)) return 1;
    gx = tyr_keep_e(
        tyr_zeros_at(TYR_SITE, TYR_I64, dev, 2, (int64_t[]){c.batch_size, c.block_size}));
    gy = tyr_keep_e(
        tyr_zeros_at(TYR_SITE, TYR_I64, dev, 2, (int64_t[]){c.batch_size, c.block_size}));
    hbx = malloc(sizeof(int64_t) * (size_t)(c.batch_size * c.block_size));
    hby = malloc(sizeof(int64_t) * (size_t)(c.batch_size * c.block_size));
    if (!gx || !gy || !hbx || !hby) return 1;
  }

  /* temporary files of a save that was killed */
  if (lead) {
    tyr_atomic_cleanup_stale(path_last);
    tyr_atomic_cleanup_stale(path_best);
    tyr_atomic_cleanup_stale(path_metrics);
  }
  /* on resume, the log goes back to the checkpoint's step: the lines of
     steps after it (and a torn last line) would be written again */
  if (lead && c.resume[0] && tyr_jsonl_truncate(path_metrics, step) < 0) return 1;
  FILE *metrics = lead ? fopen(path_metrics, c.resume[0] ? "a" : "w") : fopen("/dev/null", "w");
  if (!metrics) {
    fprintf(stderr, "train_gpt: %s: cannot open (%s)\n", path_metrics, strerror(errno));
    return 1;
  }
  bool tty = isatty(2);
  if (lead)
    fprintf(stderr,
            "train_gpt: preset %s, %" PRId64 " parameters, vocab %d, %" PRId64 " train / %" PRId64
            " val chars, %s forward, device %s%s, %d threads (%s%s), %s, %d rank%s (%s)\n",
            c.preset, tyr_params_numel(&g.params), d.vocab_size, d.n_train, d.n - d.n_train,
            c.use_static && static_model_matches(&g, c.batch_size, c.block_size) ? "static-shape"
                                                                                 : "dynamic-shape",
            tyr_device_name(dev), use_graph ? " (CUDA graph)" : "", tyr_get_num_threads(),
            getenv("OMP_WAIT_POLICY") ? "OMP_WAIT_POLICY=" : "GOMP_SPINCOUNT=",
            getenv("OMP_WAIT_POLICY")  ? getenv("OMP_WAIT_POLICY")
            : getenv("GOMP_SPINCOUNT") ? getenv("GOMP_SPINCOUNT")
                                       : "libgomp's default",
            o.zero       ? "ZeRO-1 AdamW"
            : o.use_muon ? "Muon + AdamW"
                         : "AdamW",
            g_world, g_world == 1 ? "" : "s", tyr_dist_backend_name(g_pg, dev));
  int64_t live0 = tyr_live_tensors();
  double t_start = now(), t_last = t_start, ema_tok = 0, last_loss = 0;
  int64_t steps_this_run = 0, window_n = resumed_window.n;
  double val = NAN, window_sum = resumed_window.sum;
  while (step < c.iters) {
    double lr = tyr_lr_at(&sch, step);
    double loss_v;
    if (use_graph) {
      TYR_SCOPE;
      batch_host(&d, false, c.batch_size, c.block_size, data_seed, &data_counter, hbx, hby);
      int64_t bt[2] = {c.batch_size, c.block_size};
      if (tyr_copy_e(gx, tyr_from_buffer_at(TYR_SITE, hbx, TYR_I64, 2, bt)) ||
          tyr_copy_e(gy, tyr_from_buffer_at(TYR_SITE, hby, TYR_I64, 2, bt)))
        return 1;
      if (!graph && eager_left > 0) { /* warm-up: eager, the same code as captured */
        tyr_tensor *loss = graph_step(&g, &c, &o.opt, gx, gy, lr);
        if (!loss) return 1;
        loss_v = tyr_item_e(loss);
        tyr_tensor_free(loss);
        eager_left--;
      } else {
        if (!graph) {
          graph = tyr_cuda_graph_begin(dev.index);
          if (!graph) return 1;
          gloss = graph_step(&g, &c, &o.opt, gx, gy, lr);
          if (tyr_cuda_graph_end(graph) || !gloss) return 1;
        }
        if (tyr_optim_prepare_step(&o.opt, lr) || tyr_cuda_graph_launch(graph)) return 1;
        loss_v = tyr_item_e(gloss);
      }
    } else {
      /* gradient accumulation: --grad-accum micro-batches of --batch-size rows;
         data parallel: only the last one communicates, its buckets starting
         during backward */
      double lsum = 0;
      for (int64_t k = 0; k < c.grad_accum; k++) {
        TYR_SCOPE;
        tyr_tensor *x, *y;
        get_batch(&d, false, c.batch_size, c.block_size, data_seed, &data_counter, dev, &x, &y);
        tyr_tensor *loss = model_loss(&g, &c, x, y, true);
        if (!loss) return 1;
        if (ddp) tyr_ddp_set_sync(ddp, k == c.grad_accum - 1);
        lsum += tyr_item_e(loss);
        if (tyr_backward_e(c.grad_accum > 1 ? tyr_mul_scalar_e(loss, 1.0 / (double)c.grad_accum)
                                            : loss))
          return 1;
      }
      loss_v = tyr_dist_reduce_scalar(g_pg, lsum / (double)c.grad_accum, TYR_DIST_AVG);
      if (o.zero) {
        if (tyr_zero1_step(o.zero, lr, c.clip, NULL)) return 1;
      } else {
        if (ddp && tyr_ddp_finish(ddp)) return 1;
        if (c.clip > 0) tyr_params_clip_grad_norm(&g.params, c.clip);
        if (o.use_muon ? tyr_muon_step(&o.muon, c.lr > 0 ? lr / c.lr : 0)
                       : tyr_optim_step(&o.opt, lr))
          return 1;
      }
      tyr_params_zero_grad(&g.params);
    }
    if (!isfinite(loss_v)) {
      fprintf(stderr, "\ntrain_gpt: loss is %f at step %" PRId64 "; stopping (%s left as it was)\n",
              loss_v, step + 1, path_last);
      return 1;
    }
    step++;
    steps_this_run++;
    last_loss = loss_v;
    window_sum += loss_v;
    window_n++;
    double t = now(), dt = t - t_last;
    t_last = t;
    double tok_s = (double)(c.batch_size * c.grad_accum * c.block_size) / (dt > 0 ? dt : 1e-9);
    ema_tok = steps_this_run <= 2 ? tok_s : 0.9 * ema_tok + 0.1 * tok_s;
    if (tyr_jsonl_write(metrics, path_metrics,
                        "{\"step\":%" PRId64
                        ",\"loss\":%.6f,\"lr\":%.6g,\"tok_s\":%.1f,\"live_tensors\":%" PRId64 "}",
                        step, loss_v, lr, tok_s, tyr_live_tensors()))
      return 1;
    double eta = (double)(c.iters - step) * (double)(c.batch_size * c.grad_accum * c.block_size) /
                 (ema_tok > 0 ? ema_tok : 1);
    if (lead && (tty ? (step % 10 == 0 || step == c.iters)
                     : (step % c.log_interval == 0 || step == c.iters)))
      progress(step, c.iters, loss_v, ema_tok, eta, tty);
    if (step % c.eval_interval == 0 || step == c.iters) {
      /* the train figure is the mean training loss since the last
         evaluation (free); only validation runs extra forward passes */
      double tr = window_n ? window_sum / (double)window_n : loss_v;
      window_sum = 0;
      window_n = 0;
      val = estimate_loss(&g, &c, &d, true, data_seed);
      if (lead)
        fprintf(stderr, "%sstep %" PRId64 ": train loss %.4f, val loss %.4f%s\n", tty ? "\n" : "",
                step, tr, val, val < best_val ? " (best)" : "");
      if (!isfinite(val)) { /* diverged: stop, and keep the last good checkpoints */
        if (lead)
          fprintf(stderr,
                  "train_gpt: validation loss is %f at step %" PRId64 "; stopping (%s left as it "
                  "was)\n",
                  val, step, path_last);
        return 1;
      }
      if (tyr_jsonl_write(metrics, path_metrics,
                          "{\"step\":%" PRId64 ",\"train_loss\":%.6f,\"val_loss\":%.6f}", step, tr,
                          val))
        return 1;
      if (val < best_val) {
        best_val = val;
        save_checkpoint(path_best, &g, &o, step, data_counter, best_val, cfg_json, &d,
                        (loss_window){window_sum, window_n});
      }
      save_checkpoint(path_last, &g, &o, step, data_counter, best_val, cfg_json, &d,
                      (loss_window){window_sum, window_n});
    }
    if (c.max_steps && steps_this_run >= c.max_steps) {
      save_checkpoint(path_last, &g, &o, step, data_counter, best_val, cfg_json, &d,
                      (loss_window){window_sum, window_n});
      break;
    }
  }
  /* no evaluation in this run (--iters 0, a resume of a finished run, or a
     --max-steps stop before the first): the final line still reports the
     model's validation loss */
  if (isnan(val)) val = estimate_loss(&g, &c, &d, true, data_seed);
  fclose(metrics);
  tyr_tensor_free(gloss);
  tyr_cuda_graph_free(graph);
  tyr_tensor_free(gx);
  tyr_tensor_free(gy);
  free(hbx);
  free(hby);
  double elapsed = now() - t_start;
  /* the most memory any rank held: the CUDA allocator's peak, or the peak RSS on the CPU */
  double peak_mib = 0;
  if (dev.type == TYR_CUDA) {
    tyr_cuda_mem_stats ms;
    if (!tyr_cuda_memory_stats(dev.index, &ms)) peak_mib = (double)ms.peak_allocated / 1048576.0;
  } else {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    peak_mib = (double)ru.ru_maxrss / 1024.0;
  }
  peak_mib = tyr_dist_reduce_scalar(g_pg, peak_mib, TYR_DIST_MAX);
  if (lead)
    fprintf(stderr, "train_gpt: peak memory per rank %.1f MiB (%s, the largest over %d rank%s)\n",
            peak_mib, dev.type == TYR_CUDA ? "device" : "resident", g_world,
            g_world == 1 ? "" : "s");
  if (!lead) c.plot = 0, c.sample_chars = 0;
  if (lead && steps_this_run > 0)
    fprintf(stderr,
            "train_gpt: %" PRId64
            " steps in %.1f s (%.0f tok/s), last loss %.4f, val loss %.4f, live tensors %" PRId64
            " (%+" PRId64 " since start)\n",
            steps_this_run, elapsed,
            (double)(steps_this_run * c.batch_size * c.grad_accum * c.block_size) / elapsed,
            last_loss, val, tyr_live_tensors(), tyr_live_tensors() - live0);
  else if (lead) /* --iters 0, or a finished run resumed: no training loss to report */
    fprintf(stderr, "train_gpt: no steps to run (step %" PRId64 " of %" PRId64 "), val loss %.4f\n",
            step, c.iters, val);
  if (lead) printf("final: step %" PRId64 " val_loss %.4f best_val %.4f\n", step, val, best_val);
  if (c.plot) plot_metrics(path_metrics, path_plot);
  if (c.sample_chars > 0 && step >= c.iters) {
    printf("---- sample ----\n");
    sample(&g, &c, &d, (uint64_t)c.seed);
  }
  free(d.tokens);
  tyr_ddp_free(ddp);
  tyr_zero1_free(o.zero);
  if (o.use_muon) {
    tyr_muon_checkpoint_params_release(&o.ckpt);
    tyr_muon_free(&o.muon);
  }
  tyr_optim_free(&o.opt);
  tyr_gpt_free(&g);
  tyr_dist_free(g_pg);
  return 0;
}
