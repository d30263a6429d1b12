/* TrainGPT: a character-level GPT on a text file.
 *
 *   train_gpt [--preset shakespeare_cpu|shakespeare_gpu|gpt2_124m] [flags]
 *
 * Vocabulary from the text's distinct bytes; 90/10 train/val split; AdamW
 * with warmup and cosine decay; progress bar; validation every
 * --eval-interval steps; best and last checkpoints; metrics as JSONL; a PNG
 * plot of the losses; samples at the end.  --help lists every flag. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tyr/checkpoint.h>
#include <tyr/cuda.h>
#include <tyr/optim.h>
#include <tyr/flags.h>
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
  double temperature;
  int64_t seed;
  char act[16], norm[16], pos[16], matmul[8], compute_dtype[8];
  int tied, bias, plot, use_static, cuda_graph;
  int64_t max_steps; /* stop after this many steps of this run (for tests); 0 = none */
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
  c->seed = 1337;
  c->tied = 1;
  c->bias = 1;
  c->plot = 1;
  c->use_static = 1;
  c->cuda_graph = 1;
  c->log_interval = 100;
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

#define FI(n, f, h) TYR_FLAG_INT(config, n, f, h)
#define FD(n, f, h) TYR_FLAG_DOUBLE(config, n, f, h)
#define FS(n, f, h) TYR_FLAG_STR(config, n, f, h)
#define FB(n, f, h) TYR_FLAG_BOOL(config, n, f, h)
static const tyr_flag FLAGS[] = {
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
    FD("temperature", temperature, "sampling temperature"),
    FI("top-k", top_k, "sample from the k most likely characters (0: all)"),
    FI("seed", seed, "random seed"),
    FI("threads", threads, "CPU threads (0: all)"),
    FB("plot", plot, "write loss.png"),
    FB("static", use_static,
       "use the statically shaped forward when the config matches shakespeare_cpu"),
    FI("max-steps", max_steps, "stop after this many steps of this run (0: none)"),
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
  tyr_flags_usage(f, FLAGS, NFLAGS, &d);
  fprintf(f, "  --%-15s %s\n", "help", "this text");
}

static void die_flag(const char *msg, const char *arg) {
  fprintf(stderr, "train_gpt: %s: %s (see --help)\n", msg, arg);
  exit(2);
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
    bool neg;
    const tyr_flag *fl = tyr_flags_find(FLAGS, NFLAGS, a, &neg);
    if (!fl) die_flag("unknown flag", a);
    if (fl->type != TYR_FLAG_BOOLEAN && i + 1 >= argc) die_flag("missing value for flag", a);
    const char *v = fl->type == TYR_FLAG_BOOLEAN ? NULL : argv[++i];
    const char *err = tyr_flag_set(fl, c, v, neg);
    if (err) die_flag(err, v);
  }
  if (c->batch_size <= 0) die_flag("--batch-size must be positive", "");
  if (c->iters < 0) die_flag("--iters must not be negative", "");
  if (c->eval_interval <= 0) die_flag("--eval-interval must be positive", "");
  if (c->eval_iters <= 0) die_flag("--eval-iters must be positive", "");
  if (c->lr < 0 || c->min_lr < 0) die_flag("learning rates must not be negative", "");
  if (c->temperature <= 0) die_flag("--temperature must be positive", "");
  if (strcmp(c->pos, "learned") && strcmp(c->pos, "rope"))
    die_flag("--pos must be learned or rope", c->pos);
  if (strcmp(c->norm, "layer") && strcmp(c->norm, "rms"))
    die_flag("--norm must be layer or rms", c->norm);
  tyr_act_kind ak;
  if (!tyr_act_kind_parse(c->act, &ak)) die_flag("unknown activation", c->act);
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

static void get_batch(const dataset *d, bool val, int64_t B, int64_t T, uint64_t seed,
                      uint64_t *counter, tyr_device dev, tyr_tensor **x, tyr_tensor **y) {
  int64_t *bx = malloc(sizeof(int64_t) * (size_t)(B * T)),
          *by = malloc(sizeof(int64_t) * (size_t)(B * T));
  batch_host(d, val, B, T, seed, counter, bx, by);
  *x = tyr_from_host_at(TYR_SITE, bx, TYR_I64, dev, 2, (int64_t[]){B, T});
  *y = tyr_from_host_at(TYR_SITE, by, TYR_I64, dev, 2, (int64_t[]){B, T});
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
  return sum / (double)c->eval_iters;
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

static void save_checkpoint(const char *path, tyr_gpt *g, tyr_optim *opt, int64_t step,
                            uint64_t data_counter, double best_val, const char *cfg_json,
                            const dataset *d) {
  char dc[32], bv[32], vocab[600];
  snprintf(dc, sizeof dc, "%" PRIu64, data_counter);
  snprintf(bv, sizeof bv, "%.17g", best_val);
  int k = 0;
  for (int i = 0; i < d->vocab_size && k < 590; i++)
    k += snprintf(vocab + k, sizeof vocab - (size_t)k, "%02x", (uint8_t)d->vocab[i]);
  vocab[k] = 0;
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 4,
                              .keys = {"train_gpt.config", "train_gpt.data_counter",
                                       "train_gpt.best_val", "train_gpt.vocab"},
                              .values = {cfg_json, dc, bv, vocab}};
  tyr_checkpoint_save(path, &g->params, opt, &info);
}

/* Samples n characters after the prompt. */
static void sample(tyr_gpt *g, const config *c, const dataset *d, uint64_t seed) {
  TYR_NO_GRAD;
  int64_t cap = (int64_t)strlen(c->prompt) + c->sample_chars;
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)(cap + 1));
  int64_t n = 0;
  for (const char *p = c->prompt; *p; p++) {
    uint8_t b = (uint8_t)*p;
    bool ok = false;
    for (int i = 0; i < d->vocab_size; i++) ok |= (uint8_t)d->vocab[i] == b;
    if (!ok) {
      fprintf(stderr, "train_gpt: --prompt: character '%c' is not in the vocabulary\n", *p);
      exit(2);
    }
    ids[n++] = d->id_of[b];
  }
  printf("%s", c->prompt);
  float *probs = malloc(sizeof(float) * (size_t)d->vocab_size);
  for (int64_t k = 0; k < c->sample_chars; k++) {
    TYR_SCOPE;
    int64_t T = n < c->block_size ? n : c->block_size;
    tyr_tensor *x =
        tyr_from_host_at(TYR_SITE, ids + n - T, TYR_I64, g->device, 2, (int64_t[]){1, T});
    tyr_tensor *logits = tyr_gpt_forward_at(TYR_SITE, g, x, NULL, NULL, false);
    tyr_tensor *last = tyr_narrow_at(TYR_SITE, logits, 1, T - 1, 1);
    tyr_tensor *lf = tyr_to_dtype_e(tyr_to_device_e(last, TYR_DEVICE_CPU), TYR_F32);
    tyr_to_host_e(lf, probs, sizeof(float) * (size_t)d->vocab_size);
    int V = d->vocab_size;
    float kth = -INFINITY;
    if (c->top_k > 0 && c->top_k < V) { /* the k-th largest logit */
      float *tmp = malloc(sizeof(float) * (size_t)V);
      memcpy(tmp, probs, sizeof(float) * (size_t)V);
      for (int64_t i = 0; i < c->top_k; i++) {
        int best = 0;
        for (int j = 1; j < V; j++)
          if (tmp[j] > tmp[best]) best = j;
        kth = tmp[best];
        tmp[best] = -INFINITY;
      }
      free(tmp);
    }
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, probs[j]);
    for (int j = 0; j < V; j++) {
      double p = probs[j] < kth ? 0 : exp((probs[j] - mx) / c->temperature);
      probs[j] = (float)p;
      sum += p;
    }
    double u = tyr_philox_uniform(seed + 99, (uint64_t)k) * sum, acc = 0;
    int pick = V - 1;
    for (int j = 0; j < V; j++) {
      acc += probs[j];
      if (u <= acc && probs[j] > 0) {
        pick = j;
        break;
      }
    }
    ids[n++] = pick;
    putchar(d->vocab[pick]);
  }
  printf("\n");
  free(probs);
  free(ids);
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  config c;
  parse_args(&c, argc, argv);
  if (c.threads > 0) tyr_set_num_threads((int)c.threads);
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die_flag("--device must be cpu, cuda or cuda:N", c.device);
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
  tyr_optim opt;
  if (tyr_optim_init(&opt, &g.params, oc)) return 1;
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
    tyr_checkpoint_info info;
    if (tyr_checkpoint_load(ck, &g.params, &opt, &info)) return 1;
    step = info.step;
    data_counter = strtoull(tyr_checkpoint_meta(ck, "train_gpt.data_counter")
                                ? tyr_checkpoint_meta(ck, "train_gpt.data_counter")
                                : "0",
                            NULL, 10);
    const char *bv = tyr_checkpoint_meta(ck, "train_gpt.best_val");
    best_val = bv ? strtod(bv, NULL) : INFINITY;
    tyr_checkpoint_close(ck);
    fprintf(stderr, "train_gpt: resumed from %s at step %" PRId64 "\n", c.resume, step);
  }

  /* CUDA graph: x and y stay put (the batch is copied into them), two
     eager steps, then one captured step replayed; dropout draws random
     numbers, which a graph cannot (it would repeat one mask) */
  bool use_graph = c.cuda_graph && dev.type == TYR_CUDA && c.dropout == 0;
  if (c.cuda_graph && dev.type == TYR_CUDA && c.dropout != 0)
    fprintf(stderr,
            "train_gpt: --dropout %g: eager steps (a CUDA graph cannot draw random "
            "numbers; --dropout 0 to replay a graph)\n",
            c.dropout);
  tyr_cuda_graph *graph = NULL;
  tyr_tensor *gx = NULL, *gy = NULL, *gloss = NULL;
  int64_t *hbx = NULL, *hby = NULL;
  int eager_left = 2;
  if (use_graph) {
    if (tyr_optim_set_capturable(&opt, true)) return 1;
    gx = tyr_keep_e(
        tyr_zeros_at(TYR_SITE, TYR_I64, dev, 2, (int64_t[]){c.batch_size, c.block_size}));
    gy = tyr_keep_e(
        tyr_zeros_at(TYR_SITE, TYR_I64, dev, 2, (int64_t[]){c.batch_size, c.block_size}));
    hbx = malloc(sizeof(int64_t) * (size_t)(c.batch_size * c.block_size));
    hby = malloc(sizeof(int64_t) * (size_t)(c.batch_size * c.block_size));
    if (!gx || !gy || !hbx || !hby) return 1;
  }

  FILE *metrics = fopen(path_metrics, c.resume[0] ? "a" : "w");
  if (!metrics) {
    fprintf(stderr, "train_gpt: %s: cannot open (%s)\n", path_metrics, strerror(errno));
    return 1;
  }
  bool tty = isatty(2);
  fprintf(stderr,
          "train_gpt: preset %s, %" PRId64 " parameters, vocab %d, %" PRId64 " train / %" PRId64
          " val chars, %s forward, device %s%s, %d threads\n",
          c.preset, tyr_params_numel(&g.params), d.vocab_size, d.n_train, d.n - d.n_train,
          c.use_static && static_model_matches(&g, c.batch_size, c.block_size) ? "static-shape"
                                                                               : "dynamic-shape",
          tyr_device_name(dev), use_graph ? " (CUDA graph)" : "", tyr_get_num_threads());
  int64_t live0 = tyr_live_tensors();
  double t_start = now(), t_last = t_start, ema_tok = 0, last_loss = 0;
  int64_t steps_this_run = 0, window_n = 0;
  double val = NAN, window_sum = 0;
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
        tyr_tensor *loss = graph_step(&g, &c, &opt, gx, gy, lr);
        if (!loss) return 1;
        loss_v = tyr_item_e(loss);
        tyr_tensor_free(loss);
        eager_left--;
      } else {
        if (!graph) {
          graph = tyr_cuda_graph_begin(dev.index);
          if (!graph) return 1;
          gloss = graph_step(&g, &c, &opt, gx, gy, lr);
          if (tyr_cuda_graph_end(graph) || !gloss) return 1;
        }
        if (tyr_optim_prepare_step(&opt, lr) || tyr_cuda_graph_launch(graph)) return 1;
        loss_v = tyr_item_e(gloss);
      }
    } else {
      TYR_SCOPE;
      tyr_tensor *x, *y;
      get_batch(&d, false, c.batch_size, c.block_size, data_seed, &data_counter, dev, &x, &y);
      tyr_tensor *loss = model_loss(&g, &c, x, y, true);
      if (!loss) return 1;
      tyr_backward_e(loss);
      loss_v = tyr_item_e(loss);
      if (c.clip > 0) tyr_params_clip_grad_norm(&g.params, c.clip);
      tyr_optim_step(&opt, lr);
      tyr_optim_zero_grad(&opt);
    }
    if (!isfinite(loss_v)) {
      fprintf(stderr, "\ntrain_gpt: loss is %f at step %" PRId64 "; stopping\n", loss_v, step);
      return 1;
    }
    step++;
    steps_this_run++;
    last_loss = loss_v;
    window_sum += loss_v;
    window_n++;
    double t = now(), dt = t - t_last;
    t_last = t;
    double tok_s = (double)(c.batch_size * c.block_size) / (dt > 0 ? dt : 1e-9);
    ema_tok = steps_this_run <= 2 ? tok_s : 0.9 * ema_tok + 0.1 * tok_s;
    fprintf(metrics,
            "{\"step\":%" PRId64
            ",\"loss\":%.6f,\"lr\":%.6g,\"tok_s\":%.1f,\"live_tensors\":%" PRId64 "}\n",
            step, loss_v, lr, tok_s, tyr_live_tensors());
    double eta = (double)(c.iters - step) * (double)(c.batch_size * c.block_size) /
                 (ema_tok > 0 ? ema_tok : 1);
    if (tty ? (step % 10 == 0 || step == c.iters)
            : (step % c.log_interval == 0 || step == c.iters)) {
      char live[48];
      snprintf(live, sizeof live, " | live tensors %" PRId64, tyr_live_tensors());
      tyr_progress_print(stderr, step, c.iters, loss_v, ema_tok, eta, live, tty);
    }
    if (step % c.eval_interval == 0 || step == c.iters) {
      /* the train figure is the mean training loss since the last
         evaluation (free); only validation runs extra forward passes */
      double tr = window_n ? window_sum / (double)window_n : loss_v;
      window_sum = 0;
      window_n = 0;
      val = estimate_loss(&g, &c, &d, true, data_seed);
      fprintf(stderr, "%sstep %" PRId64 ": train loss %.4f, val loss %.4f%s\n", tty ? "\n" : "",
              step, tr, val, val < best_val ? " (best)" : "");
      fprintf(metrics, "{\"step\":%" PRId64 ",\"train_loss\":%.6f,\"val_loss\":%.6f}\n", step, tr,
              val);
      fflush(metrics);
      if (val < best_val) {
        best_val = val;
        save_checkpoint(path_best, &g, &opt, step, data_counter, best_val, cfg_json, &d);
      }
      save_checkpoint(path_last, &g, &opt, step, data_counter, best_val, cfg_json, &d);
    }
    if (c.max_steps && steps_this_run >= c.max_steps) {
      save_checkpoint(path_last, &g, &opt, step, data_counter, best_val, cfg_json, &d);
      break;
    }
  }
  fclose(metrics);
  tyr_tensor_free(gloss);
  tyr_cuda_graph_free(graph);
  tyr_tensor_free(gx);
  tyr_tensor_free(gy);
  free(hbx);
  free(hby);
  double elapsed = now() - t_start;
  fprintf(stderr,
          "train_gpt: %" PRId64
          " steps in %.1f s (%.0f tok/s), last loss %.4f, val loss %.4f, live tensors %" PRId64
          " (%+" PRId64 " since start)\n",
          steps_this_run, elapsed, (double)(steps_this_run * c.batch_size * c.block_size) / elapsed,
          last_loss, val, tyr_live_tensors(), tyr_live_tensors() - live0);
  printf("final: step %" PRId64 " val_loss %.4f best_val %.4f\n", step, val, best_val);
  /* the whole history, resumed runs included, from metrics.jsonl */
  if (c.plot && tyr_plot_metrics_png(path_plot, path_metrics, "TRAINGPT LOSS", "LOSS") == 0)
    fprintf(stderr, "train_gpt: wrote %s\n", path_plot);
  if (c.sample_chars > 0 && step >= c.iters) {
    printf("---- sample ----\n");
    sample(&g, &c, &d, (uint64_t)c.seed);
  }
  free(d.tokens);
  tyr_optim_free(&opt);
  tyr_gpt_free(&g);
  return 0;
}
