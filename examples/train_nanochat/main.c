/* TrainNanoChat: the modded-nanogpt speedrun's GPT (tyr/models/nanochat_gpt.h)
 * on GPT-2 token shards in the FineWeb / llm.c layout, with the speedrun's
 * recipe, on one process or many (mpirun, srun, torchrun).
 *
 *   train_nanochat [--preset debug|d12] [--data SHARDS] [--val SHARDS]
 *                  [--checkpoint-dir DIR] [--iterations N] [flags]
 *
 * Batches of --micro-batch windows of --seq-len tokens start at BOS tokens
 * (tyr/data.h's align_bos); document ids (BOS counts) keep attention inside
 * documents.  Muon (Polar Express) updates the hidden matrices; Adam the
 * embeddings, value embeddings, head, gates and scalars, each group at its
 * own learning rate, its moments sharded over the ranks (DistAdam).  The learning rate is constant,
 * then falls linearly over the last --cooldown-frac of the run to --final-lr-frac; Muon's momentum
 * warms up from --muon-momentum-start; the long attention window grows from --window-start to
 * --window-end (the short one is half of it); the batch grows from --batch-start to --batch-size
 * sequences over
 * --batch-warmup steps.  Validation every --val-every steps on --val-tokens
 * tokens; checkpoints to DIR/latest (resumed automatically), metrics to
 * DIR/metrics.jsonl and DIR/loss.png; rank 0 alone writes.  --help lists
 * every flag. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tyr/checkpoint.h>
#include <tyr/cuda.h>
#include <tyr/data.h>
#include <tyr/dist.h>
#include <tyr/fileio.h>
#include <tyr/flags.h>
#include <tyr/models/nanochat_gpt.h>
#include <tyr/muon.h>
#include <tyr/optim.h>
#include <tyr/plot.h>
#include <tyr/progress.h>
#include <tyr/tokenizer.h>
#include <tyr/tyr.h>

#define PROG "train_nanochat"

typedef struct config {
  char preset[16], data[1024], val[1024], ckpt_dir[1024], resume[1024], device[32];
  char window_pattern[TYR_NANOCHAT_MAX_LAYERS + 1], compute_dtype[8];
  bool debug, auto_resume, plot;
  bool qk_norm, rope_half, value_embeds, unet_skips, block_lambdas, smear_gate, attn_gate;
  bool zero_init_proj;
  int64_t local_rank, iterations, seq_len, micro_batch, batch_size, batch_start, batch_warmup;
  int64_t val_every, val_tokens, save_every, log_every, seed, threads, bos, max_steps;
  int64_t n_layer, n_head, head_dim, n_embd, vocab, no_attn_layer;
  int64_t window_start, window_end, window_block, momentum_warmup;
  double muon_lr, muon_momentum, muon_momentum_start, embed_lr, head_lr, scalar_lr;
  double adam_beta1, adam_beta2, adam_eps, weight_decay, cooldown_frac, final_lr_frac;
  double logit_softcap, attn_scale, peak_tflops;
} config;

/* ---- presets ------------------------------------------------------------------------------ */
static void preset(config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", name);
  tyr_nanochat_config m = tyr_nanochat_config_d12();
  c->qk_norm = m.qk_norm, c->rope_half = m.rope_half, c->value_embeds = m.value_embeds;
  c->unet_skips = m.unet_skips, c->block_lambdas = m.block_lambdas;
  c->smear_gate = m.smear_gate, c->attn_gate = m.attn_gate, c->zero_init_proj = m.zero_init_proj;
  c->logit_softcap = m.logit_softcap, c->attn_scale = m.attn_scale;
  c->auto_resume = c->plot = true;
  c->local_rank = -1;
  c->vocab = TYR_NANOCHAT_VOCAB;
  c->bos = 50256; /* GPT-2's <|endoftext|> */
  c->seed = 1337;
  c->log_every = 10;
  /* the speedrun's recipe */
  c->muon_lr = 0.05, c->muon_momentum = 0.95, c->muon_momentum_start = 0.85;
  c->momentum_warmup = 300;
  c->embed_lr = 0.6, c->head_lr = 0.008, c->scalar_lr = 0.04;
  c->adam_beta1 = 0.8, c->adam_beta2 = 0.95, c->adam_eps = 1e-10;
  c->cooldown_frac = 0.4, c->final_lr_frac = 0.1;
  c->window_block = 128;
  if (!strcmp(name, "debug")) { /* the CPU: seconds per step */
    snprintf(c->data, sizeof c->data, "out/nanochat_shk/*_train_*.bin");
    snprintf(c->val, sizeof c->val, "out/nanochat_shk/*_val_*.bin");
    snprintf(c->ckpt_dir, sizeof c->ckpt_dir, "out/nanochat_debug");
    snprintf(c->device, sizeof c->device, "cpu");
    snprintf(c->compute_dtype, sizeof c->compute_dtype, "f32");
    c->n_layer = 4, c->n_head = 2, c->head_dim = 128, c->n_embd = 256, c->no_attn_layer = -1;
    c->seq_len = 512, c->micro_batch = 2, c->batch_size = 4, c->batch_start = 2;
    c->batch_warmup = 10;
    c->iterations = 40, c->val_every = 20, c->val_tokens = 4096, c->save_every = 20;
    c->window_start = 128, c->window_end = 512, c->window_block = 64;
    c->momentum_warmup = 20;
    c->peak_tflops = 1;
  } else { /* d12: the full model on GPUs */
    snprintf(c->data, sizeof c->data, "data/fineweb10B/fineweb_train_*.bin");
    snprintf(c->val, sizeof c->val, "data/fineweb10B/fineweb_val_*.bin");
    snprintf(c->ckpt_dir, sizeof c->ckpt_dir, "out/nanochat_d12");
    snprintf(c->device, sizeof c->device, "cuda");
    snprintf(c->compute_dtype, sizeof c->compute_dtype, "bf16");
    c->n_layer = 12, c->n_head = 6, c->head_dim = 128, c->n_embd = 768, c->no_attn_layer = 7;
    c->seq_len = 1024, c->micro_batch = 64, c->batch_size = 512, c->batch_start = 512;
    c->batch_warmup = 0;
    c->iterations = 1400, c->val_every = 125, c->val_tokens = 10485760, c->save_every = 250;
    c->window_start = 128, c->window_end = 1024;
    c->peak_tflops = 989; /* H100 / H200 bf16 dense */
  }
}

#define FI(n, p, lo, hi, h) TYR_FLAG_INT(n, &c->p, lo, hi, h)
#define FD(n, p, lo, hi, h) TYR_FLAG_DOUBLE(n, &c->p, lo, hi, h)
#define FS(n, p, h) TYR_FLAG_STRING(n, c->p, h)
#define FB(n, p, h) TYR_FLAG_BOOL(n, &c->p, h)
#define NFLAGS 64
static int flag_table(config *c, tyr_flag *f) {
  const tyr_flag t[] = {
      FS("preset", preset, "debug (4 layers, 256 wide, seq 512, CPU) or d12 (the full model)"),
      FB("debug", debug, "the same as --preset debug"),
      FS("data", data, "training shards (a .bin file, a directory or a glob)"),
      FS("val", val, "validation shards"),
      FS("checkpoint-dir", ckpt_dir, "checkpoints (DIR/latest), metrics.jsonl and loss.png"),
      FS("resume", resume, "a checkpoint to resume from (default: DIR/latest when it exists)"),
      FB("auto-resume", auto_resume, "resume from DIR/latest when it exists"),
      FI("iterations", iterations, 1, 1e9, "optimizer steps"),
      FI("local-rank", local_rank, -1, 1024, "the GPU of this process (-1: LOCAL_RANK or 0)"),
      FS("device", device, "cpu, cuda or cuda:N"),
      FS("compute-dtype", compute_dtype, "f32 or bf16 (the blocks' matmuls and attention)"),
      FI("threads", threads, 0, 1024, "CPU threads (0: all, shared between local ranks)"),
      FI("seed", seed, 0, 1e15, "initialisation seed"),
      FI("seq-len", seq_len, 8, 65536, "tokens per sequence"),
      FI("micro-batch", micro_batch, 1, 1e6, "sequences per rank per forward pass"),
      FI("batch-size", batch_size, 1, 1e9, "sequences per step, all ranks (after the warm-up)"),
      FI("batch-start", batch_start, 1, 1e9, "sequences per step at step 0"),
      FI("batch-warmup", batch_warmup, 0, 1e9, "steps from --batch-start to --batch-size"),
      FI("val-every", val_every, 0, 1e9, "validation every N steps (0: at the end only)"),
      FI("val-tokens", val_tokens, 1, 1e12, "validation tokens (all ranks)"),
      FI("save-every", save_every, 0, 1e9, "checkpoint every N steps (0: at the end only)"),
      FI("log-every", log_every, 1, 1e9, "a log line every N steps"),
      FI("max-steps", max_steps, 0, 1e9, "stop after N steps of this run, with a checkpoint"),
      FB("plot", plot, "write DIR/loss.png"),
      FI("bos", bos, 0, 65535, "the BOS token that starts each document"),
      FI("vocab", vocab, 2, 1 << 20, "vocabulary of the model (>= the shards' largest id + 1)"),
      FI("n-layer", n_layer, 1, TYR_NANOCHAT_MAX_LAYERS, "layers"),
      FI("n-head", n_head, 1, 1024, "attention heads"),
      FI("head-dim", head_dim, 4, 1024, "head size"),
      FI("n-embd", n_embd, 12, 65536, "residual width (the MLP is 4x)"),
      FI("no-attn-layer", no_attn_layer, -1, TYR_NANOCHAT_MAX_LAYERS, "layer without attention"),
      FS("window-pattern", window_pattern, "per layer L (long), S (short), N (none)"),
      FI("window-start", window_start, 1, 1e9, "long window at step 0 (tokens)"),
      FI("window-end", window_end, 1, 1e9, "long window at the last step"),
      FI("window-block", window_block, 1, 1e9, "windows grow in multiples of this"),
      FB("qk-norm", qk_norm, "RMSNorm of q and k"),
      FB("rope-half", rope_half, "half-truncated rotary embeddings"),
      FB("value-embeds", value_embeds, "value embeddings (U-net pattern)"),
      FB("unet-skips", unet_skips, "U-net skip connections"),
      FB("block-lambdas", block_lambdas, "x = l0 x + l1 x0 per block"),
      FB("smear-gate", smear_gate, "previous-token mix after the embedding"),
      FB("attn-gate", attn_gate, "per-head attention output gate"),
      FB("zero-init-proj", zero_init_proj, "output projections and head start at zero"),
      FD("logit-softcap", logit_softcap, 0, 1e6, "cap of the logits (0: none)"),
      FD("attn-scale", attn_scale, 0, 100, "attention scale (0: 1/sqrt(head dim))"),
      FD("muon-lr", muon_lr, 0, 10, "Muon's learning rate (hidden matrices)"),
      FD("muon-momentum", muon_momentum, 0, 0.9999, "Muon's momentum after the warm-up"),
      FD("muon-momentum-start", muon_momentum_start, 0, 0.9999, "Muon's momentum at step 0"),
      FI("momentum-warmup", momentum_warmup, 0, 1e9, "steps of the momentum warm-up"),
      FD("embed-lr", embed_lr, 0, 100, "Adam's rate for the embeddings and value embeddings"),
      FD("head-lr", head_lr, 0, 100, "Adam's rate for the head"),
      FD("scalar-lr", scalar_lr, 0, 100, "Adam's rate for gates, lambdas and skip weights"),
      FD("adam-beta1", adam_beta1, 0, 0.9999, "Adam's beta1"),
      FD("adam-beta2", adam_beta2, 0, 0.99999, "Adam's beta2"),
      FD("adam-eps", adam_eps, 0, 1, "Adam's epsilon"),
      FD("weight-decay", weight_decay, 0, 10, "Muon's decoupled weight decay"),
      FD("cooldown-frac", cooldown_frac, 0, 1, "fraction of the run with a falling rate"),
      FD("final-lr-frac", final_lr_frac, 0, 1, "rate at the last step, as a fraction"),
      FD("peak-tflops", peak_tflops, 0, 1e6, "the device's peak TFLOP/s, for MFU"),
  };
  int n = (int)(sizeof t / sizeof t[0]);
  memcpy(f, t, sizeof t);
  return n;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void parse_args(config *c, int argc, char **argv) {
  const char *pre = "debug";
  for (int i = 1; i < argc; i++) { /* the preset first, then every flag over it */
    if (!strcmp(argv[i], "--preset") && i + 1 < argc) pre = argv[i + 1];
    if (!strcmp(argv[i], "--debug")) pre = "debug";
  }
  if (strcmp(pre, "debug") && strcmp(pre, "d12"))
    die("--preset %s: unknown preset (debug or d12; see --help)", pre);
  preset(c, pre);
  tyr_flag flags[NFLAGS];
  int n = flag_table(c, flags);
  tyr_flags_parse(PROG,
                  "usage: train_nanochat [--preset debug|d12] [--data SHARDS] [--val SHARDS] "
                  "[--checkpoint-dir DIR] [--flag value ...]\n"
                  "Trains the modded-nanogpt speedrun's GPT on GPT-2 token shards.\n"
                  "Defaults shown are those of --preset debug.",
                  flags, n, argc, argv, 1);
  if (strcmp(c->preset, pre)) die("--preset %s: give --preset once", c->preset);
  if (c->batch_start > c->batch_size)
    die("--batch-start %" PRId64 " is larger than --batch-size %" PRId64, c->batch_start,
        c->batch_size);
  if (c->window_start > c->window_end)
    die("--window-start %" PRId64 " is larger than --window-end %" PRId64, c->window_start,
        c->window_end);
  if (strcmp(c->compute_dtype, "f32") && strcmp(c->compute_dtype, "bf16"))
    die("--compute-dtype %s: f32 or bf16", c->compute_dtype);
}

/* ---- schedules ------------------------------------------------------------------------------ */
/* the learning-rate factor at step (0-based) of n: 1, then linear to final */
static double lr_factor(const config *c, int64_t step) {
  double x = (double)step / (double)c->iterations;
  if (x < 1 - c->cooldown_frac) return 1.0;
  double w = (1 - x) / c->cooldown_frac;
  return w + (1 - w) * c->final_lr_frac;
}
static double muon_momentum(const config *c, int64_t step) {
  double f = c->momentum_warmup > 0 ? fmin((double)step / (double)c->momentum_warmup, 1) : 1;
  return (1 - f) * c->muon_momentum_start + f * c->muon_momentum;
}
/* the long window at step: from window_start to window_end, in blocks */
static int64_t long_window(const config *c, int64_t step) {
  double x = c->iterations > 1 ? (double)step / (double)(c->iterations - 1) : 1;
  double w = (double)c->window_start + x * (double)(c->window_end - c->window_start);
  int64_t b = c->window_block, r = (int64_t)(w / (double)b + 0.5) * b;
  return r < b ? b : r;
}
/* micro-steps of the step: the batch grows from batch_start to batch_size
 * (both multiples of world * micro_batch, checked) */
static int64_t accum_steps(const config *c, int64_t step, int world) {
  int64_t unit = (int64_t)world * c->micro_batch, a0 = c->batch_start / unit,
          a1 = c->batch_size / unit;
  if (c->batch_warmup <= 0 || step >= c->batch_warmup) return a1;
  return a0 + (a1 - a0) * step / c->batch_warmup;
}

/* ---- data -------------------------------------------------------------------------------- */
/* doc[b, t] = number of BOS tokens in x[b, 0..t]: the document of token t */
static tyr_tensor *doc_ids(tyr_tensor *x, int64_t bos, tyr_device dev) {
  int64_t B = x->shape[0], T = x->shape[1];
  const int64_t *px = tyr_data_ptr(x);
  int32_t *d = malloc(sizeof(int32_t) * (size_t)(B * T));
  if (!d) return NULL;
  for (int64_t b = 0; b < B; b++) {
    int32_t k = 0;
    for (int64_t t = 0; t < T; t++) d[b * T + t] = k += px[b * T + t] == bos;
  }
  tyr_tensor *r = tyr_from_host_at(TYR_SITE, d, TYR_I32, dev, 2, (int64_t[]){B, T});
  free(d);
  return r;
}

/* the largest token id in the shards; exits naming the flag if it is
 * beyond the model's vocabulary */
static void check_vocab(const char *flag, const char *src, const tyr_loader *l, int64_t vocab) {
  const tyr_shards *sh = tyr_loader_shards(l);
  for (int i = 0; i < tyr_shards_count(sh); i++) {
    const uint16_t *t = tyr_shards_tokens(sh, i);
    int64_t n = tyr_shards_ntokens(sh, i), mx = 0;
    for (int64_t k = 0; k < n; k++) mx = t[k] > mx ? t[k] : mx;
    if (mx >= vocab) {
      fprintf(stderr,
              PROG ": %s %s: %s holds token %" PRId64 ", beyond the model's vocabulary (--vocab "
                   "%" PRId64 ")\n",
              flag, src, tyr_shards_path(sh, i), mx, vocab);
      exit(1);
    }
  }
}

/* The debug preset's data, made on first use: data/tinyshakespeare.txt in
 * GPT-2 tokens (the rank file of tests/data/tokenizer), one document per
 * paragraph, each led by <|endoftext|>; the last 10% of the documents for
 * validation.  What `tyr_prepare --tiktoken ... --pattern gpt2 --bos --docs
 * paragraph --split docs` writes, so that `--preset debug` runs from a clean
 * checkout.  Exits naming the file on any error. */
#define DEBUG_DIR "out/nanochat_shk"
static void prepare_debug_data(void) {
  const char *text_path = "data/tinyshakespeare.txt";
  const char *ranks = "tests/data/tokenizer/gpt2.tiktoken.zst";
  FILE *f = fopen(text_path, "rb");
  if (!f) {
    fprintf(stderr,
            PROG ": --preset debug makes its data from %s: %s (run from the repository root, "
                 "or give --data and --val)\n",
            text_path, strerror(errno));
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, PROG ": %s: cannot read\n", text_path);
    exit(1);
  }
  fclose(f);
  text[n] = 0;
  static const char *const eot[1] = {"<|endoftext|>"};
  tyr_tokenizer *tok = tyr_tokenizer_load_tiktoken(ranks, TYR_TOKENIZER_PATTERN_GPT2, eot, NULL, 1);
  if (!tok) exit(1);
  uint32_t bos = (uint32_t)tyr_tokenizer_special_id(tok, "<|endoftext|>"), *ids = NULL;
  size_t cap = 0, nids = 0, ndocs = 0, *starts = NULL, scap = 0;
  for (char *p = text; *p;) { /* paragraphs: runs of lines up to a blank line */
    char *e = strstr(p, "\n\n");
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0) {
      if (ndocs == scap && !(starts = realloc(starts, (scap = 2 * scap + 64) * sizeof *starts)))
        exit(1);
      starts[ndocs++] = nids;
      if (tyr_tokenizer_encode_append(tok, "<|endoftext|>", 13, true, &ids, &cap, &nids) ||
          tyr_tokenizer_encode_append(tok, p, len, false, &ids, &cap, &nids))
        exit(1);
    }
    p += len;
    while (*p == '\n') p++;
  }
  uint16_t *t16 = malloc(sizeof(uint16_t) * (nids ? nids : 1));
  if (!t16) exit(1);
  for (size_t i = 0; i < nids; i++) t16[i] = (uint16_t)ids[i];
  size_t split = ndocs ? starts[ndocs - ndocs / 10] : 0; /* the last 10% of the documents */
  if (tyr_mkdirs(DEBUG_DIR) ||
      tyr_shard_write(DEBUG_DIR "/tinyshakespeare_val_000000.bin", t16 + split,
                      (int64_t)(nids - split), TYR_SHARD_LLMC) ||
      tyr_shard_write(DEBUG_DIR "/tinyshakespeare_train_000000.bin", t16, (int64_t)split,
                      TYR_SHARD_LLMC)) {
    fprintf(stderr, PROG ": could not write the debug data to %s\n", DEBUG_DIR);
    exit(1);
  }
  fprintf(stderr, PROG ": wrote %s: %zu documents of %s, %zu GPT-2 tokens (BOS %u)\n", DEBUG_DIR,
          ndocs, text_path, nids, bos);
  free(t16);
  free(starts);
  free(ids);
  free(text);
  tyr_tokenizer_free(tok);
}

/* ---- the model's config ------------------------------------------------------------------- */
static tyr_nanochat_config model_config(const config *c) {
  tyr_nanochat_config m = tyr_nanochat_config_d12();
  m.vocab_size = c->vocab;
  m.n_layer = c->n_layer;
  m.n_head = c->n_head;
  m.head_dim = c->head_dim;
  m.n_embd = c->n_embd;
  m.mlp_hidden = 4 * c->n_embd;
  m.max_seq_len = c->seq_len;
  snprintf(m.window_pattern, sizeof m.window_pattern, "%s", c->window_pattern);
  m.no_attn_layer = c->no_attn_layer < c->n_layer ? c->no_attn_layer : -1;
  m.qk_norm = c->qk_norm, m.rope_half = c->rope_half, m.value_embeds = c->value_embeds;
  m.unet_skips = c->unet_skips, m.block_lambdas = c->block_lambdas;
  m.smear_gate = c->smear_gate, m.attn_gate = c->attn_gate, m.zero_init_proj = c->zero_init_proj;
  m.logit_softcap = c->logit_softcap, m.attn_scale = c->attn_scale;
  m.compute_dtype = strcmp(c->compute_dtype, "bf16") ? TYR_F32 : TYR_BF16;
  return m;
}

/* ---- checkpoints --------------------------------------------------------------------------- */
typedef struct trainer {
  tyr_nanochat_gpt model;
  tyr_muon muon;
  tyr_params ckpt; /* the model's parameters and Muon's state */
  char model_json[2048];
} trainer;

static int g_rank, g_world = 1;

static void save(trainer *t, const char *path, int64_t step, tyr_loader_state ls) {
  /* Adam's whole state: every rank takes part in gathering the shards */
  tyr_optim *adam = tyr_muon_gather_adamw(&t->muon);
  if (!adam) {
    fprintf(stderr, PROG ": could not gather Adam's state for %s; stopping\n", path);
    exit(1);
  }
  if (g_rank != 0) {
    tyr_muon_release_adamw(&t->muon, adam);
    return;
  }
  char ep[32], win[32], T[32];
  snprintf(ep, sizeof ep, "%" PRId64, ls.epoch);
  snprintf(win, sizeof win, "%" PRId64, ls.window);
  snprintf(T, sizeof T, "%" PRId64, ls.T);
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 4,
                              .keys = {TYR_NANOCHAT_CONFIG_KEY, "train_nanochat.loader_epoch",
                                       "train_nanochat.loader_window", "train_nanochat.loader_T"},
                              .values = {t->model_json, ep, win, T}};
  if (tyr_checkpoint_save(path, &t->ckpt, adam, &info)) {
    fprintf(stderr, PROG ": could not save %s; stopping\n", path);
    exit(1);
  }
  tyr_muon_release_adamw(&t->muon, adam);
}

static int64_t meta_int(tyr_checkpoint *ck, const char *key) {
  const char *v = tyr_checkpoint_meta(ck, key);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- validation --------------------------------------------------------------------------- */
static double evaluate(trainer *t, const config *c, tyr_loader *val, int64_t nbatches,
                       const tyr_nanochat_windows *w, tyr_device dev, tyr_dist *pg) {
  TYR_NO_GRAD;
  tyr_loader_reset(val);
  double sum = 0;
  for (int64_t k = 0; k < nbatches; k++) {
    TYR_SCOPE;
    tyr_tensor *x, *y;
    if (tyr_loader_next_e(val, c->micro_batch, c->seq_len, &x, &y)) exit(1);
    tyr_tensor *loss = tyr_nanochat_loss(&t->model, tyr_to_device_e(x, dev),
                                         tyr_to_device_e(y, dev), doc_ids(x, c->bos, dev), w);
    if (!loss) exit(1);
    sum += tyr_item_e(loss);
  }
  return tyr_dist_reduce_scalar(pg, sum / (double)nbatches, TYR_DIST_AVG);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  config c;
  parse_args(&c, argc, argv);
  tyr_dist *pg = tyr_dist_init(NULL);
  if (!pg) return 1;
  g_rank = tyr_dist_rank(pg);
  g_world = tyr_dist_world_size(pg);
  const bool lead = g_rank == 0;
  /* every rank must run with the same flags */
  if (g_world > 1) {
    uint64_t h = 0xcbf29ce484222325ull;
    config hc = c;
    hc.local_rank = 0;
    const unsigned char *p = (const unsigned char *)&hc;
    for (size_t i = 0; i < sizeof hc; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    double hv = (double)(h >> 12);
    if (tyr_dist_reduce_scalar(pg, hv, TYR_DIST_MAX) !=
        tyr_dist_reduce_scalar(pg, hv, TYR_DIST_MIN))
      die("rank %d: the ranks were started with different flags", g_rank);
  }
  int64_t unit = (int64_t)g_world * c.micro_batch;
  if (c.batch_size % unit || c.batch_start % unit)
    die("--batch-size %" PRId64 " and --batch-start %" PRId64
        " must be multiples of ranks (%d) x --micro-batch (%" PRId64 ")",
        c.batch_size, c.batch_start, g_world, c.micro_batch);
  if (c.threads > 0) {
    tyr_set_num_threads((int)c.threads);
  } else if (g_world > 1) {
    const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!ls) ls = getenv("LOCAL_WORLD_SIZE");
    if (!ls) ls = getenv("SLURM_NTASKS_PER_NODE");
    int local = ls ? atoi(ls) : g_world, n = tyr_get_num_threads() / (local > 0 ? local : 1);
    tyr_set_num_threads(n > 0 ? n : 1);
  }
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die("--device %s: cpu, cuda or cuda:N", c.device);
  if (dev.type == TYR_CUDA && !strcmp(c.device, "cuda"))
    dev.index = c.local_rank >= 0 ? (int)c.local_rank : tyr_dist_local_rank(pg);
  if (dev.type == TYR_CUDA && !strcmp(c.compute_dtype, "bf16"))
    tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_BF16);

  /* the debug preset's own data, made once by rank 0 (the train shard is
     written last: its presence means both are there) */
  config dflt;
  preset(&dflt, "debug");
  if (!strcmp(c.preset, "debug") && !strcmp(c.data, dflt.data) && !strcmp(c.val, dflt.val)) {
    struct stat sd;
    if (lead && stat(DEBUG_DIR "/tinyshakespeare_train_000000.bin", &sd) != 0) prepare_debug_data();
    tyr_dist_reduce_scalar(pg, 0, TYR_DIST_MAX); /* the others wait for it */
  }
  /* data: BOS-aligned windows, split between the ranks */
  tyr_loader_opts lo = {.format = TYR_SHARD_LLMC,
                        .order = TYR_LOADER_SEQUENTIAL,
                        .rank = g_rank,
                        .world_size = g_world,
                        .align_bos = true,
                        .bos_token = (int)c.bos};
  tyr_loader *train = tyr_loader_open(c.data, &lo);
  if (!train) {
    fprintf(stderr, PROG ": --data %s: see the error above\n", c.data);
    return 1;
  }
  tyr_loader *val = tyr_loader_open(c.val, &lo);
  if (!val) {
    fprintf(stderr, PROG ": --val %s: see the error above\n", c.val);
    return 1;
  }
  check_vocab("--data", c.data, train, c.vocab);
  check_vocab("--val", c.val, val, c.vocab);
  int64_t val_windows = tyr_loader_windows_at(TYR_SITE, val, c.seq_len);
  int64_t val_batches = c.val_tokens / (unit * c.seq_len);
  if (val_batches < 1) val_batches = 1;
  if (val_windows < val_batches * unit) {
    fprintf(stderr,
            PROG ": --val %s: %" PRId64 " windows of %" PRId64
                 " tokens starting at BOS, fewer than the %" PRId64 " that --val-tokens %" PRId64
                 " needs (batches of %" PRId64 " windows)\n",
            c.val, val_windows, c.seq_len + 1, val_batches * unit, c.val_tokens, unit);
    return 1;
  }
  if (tyr_loader_windows_at(TYR_SITE, train, c.seq_len) < unit) {
    fprintf(stderr, PROG ": --data %s: fewer windows of %" PRId64 " tokens than one batch\n",
            c.data, c.seq_len + 1);
    return 1;
  }

  /* model and optimizer */
  tyr_manual_seed((uint64_t)c.seed);
  trainer t;
  memset(&t, 0, sizeof t);
  tyr_nanochat_config mc = model_config(&c);
  if (tyr_nanochat_init(&t.model, &mc, dev)) return 1;
  if (tyr_nanochat_config_to_json_at(TYR_SITE, &t.model.cfg, t.model_json, sizeof t.model_json) < 0)
    return 1;
  /* Adam's groups: 0 embeddings and value embeddings, 1 head, 2 scalars and gates */
  for (int i = 0; i < t.model.params.n; i++) {
    tyr_param *p = &t.model.params.items[i];
    p->group = strstr(p->name, "embed") ? 0 : !strcmp(p->name, "lm_head") ? 1 : 2;
  }
  tyr_muon_config muc = tyr_muon_default_config(c.muon_lr, 1.0);
  muc.ortho = TYR_MUON_POLAR_EXPRESS;
  muc.momentum = c.muon_momentum_start;
  muc.weight_decay = c.weight_decay;
  muc.adamw_names = "embed,lm_head,gate";
  muc.adamw.beta1 = c.adam_beta1;
  muc.adamw.beta2 = c.adam_beta2;
  muc.adamw.eps = c.adam_eps;
  muc.adamw.ngroups = 3;
  muc.adamw.groups[0] = (tyr_param_group){c.embed_lr, 0};
  muc.adamw.groups[1] = (tyr_param_group){c.head_lr, 0};
  muc.adamw.groups[2] = (tyr_param_group){c.scalar_lr, 0};
  /* several ranks: Adam's moments sharded (DistAdam), its gradients averaged
     by a reduce-scatter in the step; tyr_ddp averages the Muon matrices' */
  muc.reduce_adamw_grads = true;
  if (tyr_muon_init(&t.muon, &t.model.params, &muc, g_world > 1 ? pg : NULL) ||
      tyr_muon_checkpoint_params(&t.muon, &t.ckpt))
    return 1;
  tyr_ddp *ddp = NULL;
  if (strcmp(tyr_dist_backend_name(pg, dev), "local") && t.muon.matrices.n > 0 &&
      !(ddp = tyr_ddp_init(pg, &t.muon.matrices, NULL)))
    return 1;

  /* resume: --resume, or DIR/latest */
  char path_latest[1100], path_metrics[1100], path_plot[1100];
  snprintf(path_latest, sizeof path_latest, "%s/latest", c.ckpt_dir);
  snprintf(path_metrics, sizeof path_metrics, "%s/metrics.jsonl", c.ckpt_dir);
  snprintf(path_plot, sizeof path_plot, "%s/loss.png", c.ckpt_dir);
  const char *from = c.resume[0] ? c.resume : NULL;
  struct stat stt;
  if (!from && c.auto_resume && stat(path_latest, &stt) == 0) from = path_latest;
  int64_t step = 0;
  if (from) {
    tyr_checkpoint *ck = tyr_checkpoint_open(from);
    if (!ck) return 1;
    const char *saved = tyr_checkpoint_meta(ck, TYR_NANOCHAT_CONFIG_KEY);
    if (!saved || strcmp(saved, t.model_json)) {
      fprintf(stderr,
              PROG ": %s: the checkpoint holds another model (another preset or model flags)\n"
                   "  file:  %s\n  flags: %s\n",
              from, saved ? saved : "(no nanochat config)", t.model_json);
      return 1;
    }
    tyr_checkpoint_info info;
    /* Adam's whole state from the file, then this rank's shard of it */
    tyr_optim *adam = tyr_muon_gather_adamw(&t.muon);
    int bad = !adam || tyr_checkpoint_load(ck, &t.ckpt, adam, &info) ||
              tyr_muon_scatter_adamw(&t.muon, adam);
    tyr_muon_release_adamw(&t.muon, adam);
    if (bad) return 1;
    step = info.step;
    tyr_loader_state ls = {meta_int(ck, "train_nanochat.loader_epoch"),
                           meta_int(ck, "train_nanochat.loader_window"),
                           meta_int(ck, "train_nanochat.loader_T")};
    tyr_checkpoint_close(ck);
    if (tyr_loader_set_state(train, ls)) return 1;
    if (lead) fprintf(stderr, PROG ": resumed from %s at step %" PRId64 "\n", from, step);
  }
  if (lead && tyr_mkdirs(c.ckpt_dir)) {
    fprintf(stderr, PROG ": --checkpoint-dir %s: cannot create (%s)\n", c.ckpt_dir,
            strerror(errno));
    return 1;
  }
  if (lead && step > 0 && tyr_jsonl_truncate(path_metrics, step) < 0) return 1;
  FILE *metrics = lead ? fopen(path_metrics, step > 0 ? "a" : "w") : NULL;
  if (lead && !metrics) {
    fprintf(stderr, PROG ": %s: %s\n", path_metrics, strerror(errno));
    return 1;
  }
  if (lead)
    fprintf(stderr,
            PROG ": preset %s, %" PRId64 " parameters, %d rank%s (%s), seq %" PRId64
                 ", batch %" PRId64 " -> %" PRId64 " sequences, %" PRId64 " steps\n",
            c.preset, tyr_params_numel(&t.model.params), g_world, g_world == 1 ? "" : "s",
            tyr_dist_backend_name(pg, dev), c.seq_len, c.batch_start, c.batch_size, c.iterations);
  if (lead)
    fprintf(stderr,
            PROG ": optimizer state per rank %.2f MiB: Muon's momentum %.2f MiB, Adam's "
                 "moments %.2f MiB (%s)\n",
            (double)tyr_muon_state_bytes(&t.muon) / 1048576.0,
            (double)(tyr_muon_state_bytes(&t.muon) - tyr_muon_adamw_state_bytes(&t.muon)) /
                1048576.0,
            (double)tyr_muon_adamw_state_bytes(&t.muon) / 1048576.0,
            t.muon.adamw_zero ? "sharded over the ranks" : "whole");

  tyr_progress pb;
  tyr_progress_init(&pb, c.iterations, "tok", c.log_every);
  double t_start = now(), last_loss = NAN, val_loss = NAN;
  int64_t steps_run = 0;
  while (step < c.iterations) {
    const int64_t accum = accum_steps(&c, step, g_world), lw = long_window(&c, step);
    const tyr_nanochat_windows w = {lw, lw / 2 > 0 ? lw / 2 : 1};
    const double f = lr_factor(&c, step);
    t.muon.cfg.momentum = muon_momentum(&c, step);
    double t0 = now(), lsum = 0;
    for (int64_t k = 0; k < accum; k++) {
      TYR_SCOPE;
      tyr_tensor *x, *y;
      if (tyr_loader_next_e(train, c.micro_batch, c.seq_len, &x, &y)) return 1;
      tyr_tensor *loss = tyr_nanochat_loss(&t.model, tyr_to_device_e(x, dev),
                                           tyr_to_device_e(y, dev), doc_ids(x, c.bos, dev), &w);
      if (!loss) return 1;
      if (ddp) tyr_ddp_set_sync(ddp, k == accum - 1);
      lsum += tyr_item_e(loss);
      if (tyr_backward_e(accum > 1 ? tyr_mul_scalar_e(loss, 1.0 / (double)accum) : loss)) return 1;
    }
    if (ddp && tyr_ddp_finish(ddp)) return 1;
    if (tyr_muon_step(&t.muon, f)) return 1;
    tyr_params_zero_grad(&t.model.params);
    double loss = tyr_dist_reduce_scalar(pg, lsum / (double)accum, TYR_DIST_AVG);
    step++;
    steps_run++;
    if (!isfinite(loss)) {
      if (lead)
        fprintf(stderr, "\n" PROG ": loss is %f at step %" PRId64 "; stopping\n", loss, step);
      return 1;
    }
    last_loss = loss;
    double dt = now() - t0, ntok = (double)(accum * unit * c.seq_len), tok_s = ntok / dt;
    double mfu = tyr_nanochat_flops_per_token(&t.model, c.seq_len, &w) * tok_s /
                 ((double)g_world * c.peak_tflops * 1e12);
    if (lead) {
      if (tyr_jsonl_write(metrics, path_metrics,
                          "{\"step\":%" PRId64 ",\"loss\":%.6f,\"lr\":%.6g,\"batch\":%" PRId64
                          ",\"seq\":%" PRId64 ",\"window\":%" PRId64 ",\"tok_s\":%.1f,\"ms\":%.2f,"
                          "\"mfu\":%.4f}",
                          step, loss, f * c.muon_lr, accum * unit, c.seq_len, lw, tok_s, 1e3 * dt,
                          mfu))
        return 1;
      if (step % c.log_every == 0 || step == c.iterations) {
        tyr_progress_finish(&pb);
        printf("step %" PRId64 "/%" PRId64 " | loss %.4f | lr %.4g | batch %" PRId64
               " | seq %" PRId64 " | tok/s %.0f | ms %.1f | MFU %.2f%%\n",
               step, c.iterations, loss, f * c.muon_lr, accum * unit, c.seq_len, tok_s, 1e3 * dt,
               100 * mfu);
        fflush(stdout);
      }
      tyr_progress_update(&pb, step, ntok, "loss %.4f", loss);
    }
    bool last = step == c.iterations || (c.max_steps && steps_run >= c.max_steps);
    if ((c.val_every && step % c.val_every == 0) || step == c.iterations) {
      val_loss = evaluate(&t, &c, val, val_batches, &w, dev, pg);
      if (lead) {
        tyr_progress_finish(&pb);
        printf("step %" PRId64 "/%" PRId64 " | val loss %.4f\n", step, c.iterations, val_loss);
        fflush(stdout);
        if (tyr_jsonl_write(metrics, path_metrics,
                            "{\"step\":%" PRId64 ",\"train_loss\":%.6f,\"val_loss\":%.6f}", step,
                            loss, val_loss))
          return 1;
      }
    }
    if (last || (c.save_every && step % c.save_every == 0))
      save(&t, path_latest, step, tyr_loader_get_state(train));
    if (last) break;
  }
  if (lead) {
    tyr_progress_finish(&pb);
    double el = now() - t_start;
    fprintf(stderr, PROG ": %" PRId64 " steps in %.1f s, live tensors %" PRId64 "\n", steps_run, el,
            tyr_live_tensors());
    printf("final: step %" PRId64 " loss %.4f val_loss %.4f\n", step, last_loss, val_loss);
    fclose(metrics);
    if (c.plot && tyr_plot_metrics_png(path_plot, path_metrics, "TRAINNANOCHAT LOSS", "LOSS") == 0)
      fprintf(stderr, PROG ": wrote %s\n", path_plot);
  }
  tyr_ddp_free(ddp);
  tyr_muon_checkpoint_params_release(&t.ckpt);
  tyr_muon_free(&t.muon);
  tyr_nanochat_free(&t.model);
  tyr_loader_close(train);
  tyr_loader_close(val);
  tyr_dist_free(pg);
  return 0;
}
