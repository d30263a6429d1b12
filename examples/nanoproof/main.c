/* NanoProof: a policy/value transformer for proof search on propositional
 * sequents (tyr/models/sequent.h), trained on the proofs of a complete
 * prover, then searching with both heads.
 *
 *   nanoproof [--preset cpu|gpu] [flags]                  train (then evaluate)
 *   nanoproof --eval [DIR] [--budgets 8,32] ...           solve rates by difficulty
 *   nanoproof --prove "a & b |- b & a" [DIR] [--budget N] prove one sequent, print the tree
 *
 * Training data (made in memory from --seed): random sequents over three
 * atoms, labelled by the complete prover; each step of each proof is one
 * example (the goal, the step, and the value target 0.97^(steps left - 1)),
 * each unprovable sequent one example with value 0.  A BPE tokenizer with
 * NanoProof's special tokens is trained on the examples' text.  Held-out
 * test sets of each difficulty level (1..4 by proof length) never overlap
 * the training sequents.  The loss is the policy's CE over the step tokens
 * plus --value-weight times the value CE (tyr/models/nanoproof.h); AdamW
 * with warm-up and cosine decay; checkpoints (model, optimizer, step, RNG,
 * data counter) that resume exactly; metrics.jsonl and loss.png.
 * Then --value-rounds rounds: search fresh sequents with the model and
 * train the value head on the search's outcomes (docs/nanoproof.md).
 *
 * Evaluation compares, at equal budgets in model calls, sampling alone
 * (one sampled step per goal, restarting after a failure) with PUCT search
 * (tyr/models/proof_search.h) whose expansions sample --samples steps in one
 * batched KV-cache call (tyr/models/gpt_engine.h) and read the value head.
 * --help lists every flag. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tyr/checkpoint.h>
#include <tyr/fileio.h>
#include <tyr/flags.h>
#include <tyr/models/gpt.h>
#include <tyr/models/gpt_engine.h>
#include <tyr/models/nanoproof.h>
#include <tyr/models/proof_search.h>
#include <tyr/models/sequent.h>
#include <tyr/plot.h>
#include <tyr/progress.h>
#include <tyr/tokenizer.h>
#include <tyr/tyr.h>

#define PROG "nanoproof"
#define VALUE_DISCOUNT 0.97
#define MAX_BUDGETS 8

/* ---- flags ------------------------------------------------------------------- */
typedef struct config {
  char preset[16], model[16], out_dir[1024], resume[1024], device[32], budgets[128];
  int64_t n_train, n_test, vocab, seq_len, batch_size, iters, warmup, decay_steps;
  int64_t eval_interval, eval_iters, log_interval, threads, seed, max_steps, samples, budget;
  int64_t max_new, value_rounds, value_sequents, value_budget, value_steps;
  double value_lr;
  double lr, min_lr, beta1, beta2, weight_decay, clip, value_weight, temperature, c_puct;
  double discount;
  bool plot, final_eval, model_given;
  int mode; /* 0 train, 1 eval, 2 prove */
  char dir[1024], sequent[4096];
} config;

static void preset(config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", name);
  snprintf(c->model, sizeof c->model, "tiny");
  snprintf(c->device, sizeof c->device, "cpu");
  snprintf(c->budgets, sizeof c->budgets, "8,32");
  c->n_train = 3000;
  c->n_test = 25;
  c->vocab = 384;
  c->seq_len = 96;
  c->batch_size = 32;
  c->iters = 1500;
  c->lr = 3e-3;
  c->min_lr = 3e-4;
  c->warmup = 50;
  c->decay_steps = 1500;
  c->beta1 = 0.9;
  c->beta2 = 0.95;
  c->weight_decay = 0.0;
  c->clip = 1.0;
  c->value_weight = 0.5;
  c->eval_interval = 250;
  c->eval_iters = 4;
  c->log_interval = 50;
  c->seed = 1337;
  c->samples = 4;
  c->budget = 32;
  c->max_new = 12;
  c->temperature = 1.0;
  c->c_puct = 1.0;
  c->discount = 0.99;
  c->value_rounds = 1; /* a round of the presets takes seconds */
  c->value_sequents = 64;
  c->value_budget = 16;
  c->value_steps = 20;
  c->value_lr = 3e-5;
  c->plot = true;
  c->final_eval = true;
  if (!strcmp(name, "gpu")) {
    snprintf(c->model, sizeof c->model, "small");
    snprintf(c->device, sizeof c->device, "cuda");
    snprintf(c->budgets, sizeof c->budgets, "8,32,128");
    c->n_train = 20000;
    c->n_test = 100;
    c->vocab = 512;
    c->batch_size = 128;
    c->iters = 4000;
    c->lr = 2e-3;
    c->decay_steps = 4000;
    c->warmup = 200;
    c->eval_interval = 500;
    c->samples = 8;
  }
}

#define BIG 1000000000
static int make_flags(config *c, tyr_flag *f) {
  int n = 0;
#define FI(name, field, lo, hi, h) f[n++] = (tyr_flag)TYR_FLAG_INT(name, &c->field, lo, hi, h)
#define FD(name, field, lo, hi, h) f[n++] = (tyr_flag)TYR_FLAG_DOUBLE(name, &c->field, lo, hi, h)
#define FS(name, field, h) f[n++] = (tyr_flag)TYR_FLAG_STRING(name, c->field, h)
#define FB(name, field, h) f[n++] = (tyr_flag)TYR_FLAG_BOOL(name, &c->field, h)
  FS("config", model, "model: tiny, small, default or full (tyr/models/nanoproof.h)");
  FS("out-dir", out_dir,
     "directory for checkpoints, tokenizer, metrics.jsonl, loss.png and eval.json (default "
     "out/nanoproof/<config>)");
  FS("resume", resume, "checkpoint to resume training from (e.g. <out-dir>/last.safetensors)");
  FS("device", device, "cpu, cuda or cuda:N");
  FI("train-sequents", n_train, 10, BIG, "random sequents the training examples come from");
  FI("test-sequents", n_test, 1, BIG, "held-out sequents per difficulty level");
  FI("vocab", vocab, 256, 1 << 20, "BPE vocabulary before the special tokens");
  FI("seq-len", seq_len, 16, 1 << 16, "longest training sequence (longer examples are skipped)");
  FI("batch-size", batch_size, 1, 1 << 20, "sequences per step");
  FI("iters", iters, 0, BIG, "training steps");
  FD("lr", lr, 0, 10, "peak learning rate");
  FD("min-lr", min_lr, 0, 10, "learning rate at the end of the cosine decay");
  FI("warmup", warmup, 0, BIG, "linear warm-up steps");
  FI("decay-steps", decay_steps, 0, BIG, "step at which the cosine decay reaches min-lr");
  FD("beta1", beta1, 0, 1, "AdamW beta1");
  FD("beta2", beta2, 0, 1, "AdamW beta2");
  FD("weight-decay", weight_decay, 0, 10, "AdamW weight decay (matrices only)");
  FD("clip", clip, 0, 1e9, "clip the global gradient norm to this (0: off)");
  FD("value-weight", value_weight, 0, 1e6, "w in loss = policy CE + w * value CE");
  FI("eval-interval", eval_interval, 1, BIG, "steps between validation losses");
  FI("eval-iters", eval_iters, 1, BIG, "batches per validation loss");
  FI("log-interval", log_interval, 1, BIG, "steps between log lines when stderr is not a terminal");
  FI("seed", seed, 0, INT64_MAX, "random seed (data, initialisation, sampling)");
  FI("threads", threads, 0, 4096, "CPU threads (0: all)");
  FB("plot", plot, "write loss.png (--no-plot: don't)");
  FB("final-eval", final_eval, "evaluate after training (--no-final-eval: don't)");
  FI("max-steps", max_steps, 0, BIG, "stop after this many steps of this run (0: none)");
  FS("budgets", budgets, "--eval: budgets in model calls, comma-separated (at most 8)");
  FI("budget", budget, 1, BIG, "--prove: model calls the search may make");
  FI("samples", samples, 1, 4096, "steps sampled per search expansion (one batched call)");
  FI("max-new", max_new, 1, 1024, "most tokens of one proposed step");
  FD("temperature", temperature, 0, 100, "sampling temperature of proposed steps (0: greedy)");
  FD("c-puct", c_puct, 0, 1e6, "search exploration constant");
  FD("discount", discount, 0, 1, "search value discount per step");
  FI("value-rounds", value_rounds, 0, 1000,
     "after --iters: rounds of search on fresh sequents, then value training on its outcomes");
  FI("value-sequents", value_sequents, 1, BIG, "fresh sequents searched per value round");
  FI("value-budget", value_budget, 1, BIG, "model calls per search in a value round");
  FI("value-steps", value_steps, 1, BIG, "value-head training steps per value round");
  FD("value-lr", value_lr, 0, 10, "learning rate of the value rounds");
#undef FI
#undef FD
#undef FS
#undef FB
  return n;
}
#define MAX_FLAGS 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [--preset cpu|gpu] [--flag value ...]           train, then evaluate\n"
          "       " PROG " --eval [DIR] [--budgets 8,32] ...               solve rates\n"
          "       " PROG " --prove SEQUENT [DIR] [--budget N] ...          prove one sequent\n\n"
          "A sequent is 'A, B |- C, D' over atoms a-z with ~, &, |, -> (e.g. 'a & b |- b & "
          "a').\nDIR is a training --out-dir (default: --out-dir, else out/nanoproof/<config>).\n"
          "--prove exits 0 when proved, 1 when not proved within the budget.\n\n");
  config d;
  preset(&d, "cpu");
  fprintf(f, "  --%-14s %s\n", "preset",
          "cpu (tiny config, minutes on 2 cores) or gpu (small config)");
  tyr_flag fl[MAX_FLAGS];
  tyr_flags_usage(f, NULL, fl, make_flags(&d, fl));
}

static void die_flag(const char *msg, const char *arg) {
  fprintf(stderr, PROG ": %s%s%s (see --help)\n", msg, arg[0] ? ": " : "", arg);
  exit(2);
}

static int parse_budgets(const char *s, int64_t *b);

static void parse_args(config *c, int argc, char **argv) {
  const char *pre = "cpu";
  config probe;
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
    } else if (strcmp(argv[i], "--prove") == 0) {
      i++;
    } else if (fl && fl->type != TYR_FLAG_T_BOOL) {
      i++;
    }
  }
  preset(c, pre);
  tyr_flag flags[MAX_FLAGS];
  int nflags = make_flags(c, flags);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--preset") == 0) {
      i++;
      continue;
    }
    if (strcmp(a, "--eval") == 0 || strcmp(a, "--prove") == 0) {
      c->mode = a[2] == 'e' ? 1 : 2;
      if (c->mode == 2) {
        if (i + 1 >= argc) die_flag("missing value for flag", "--prove");
        if (strlen(argv[i + 1]) >= sizeof c->sequent) die_flag("--prove: sequent too long", "");
        snprintf(c->sequent, sizeof c->sequent, "%s", argv[++i]);
      }
      if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) { /* an optional directory */
        if (strlen(argv[i + 1]) >= sizeof c->dir) die_flag("value too long", argv[i + 1]);
        snprintf(c->dir, sizeof c->dir, "%s", argv[++i]);
      }
      continue;
    }
    if (strncmp(a, "--", 2) != 0) die_flag("unexpected argument", a);
    bool neg;
    const tyr_flag *fl = tyr_flags_find(flags, nflags, a, &neg);
    if (!fl) die_flag("unknown flag", a);
    if (fl->ptr == (void *)c->model) c->model_given = true;
    if (fl->type != TYR_FLAG_T_BOOL && i + 1 >= argc) die_flag("missing value for flag", a);
    const char *v = fl->type == TYR_FLAG_T_BOOL ? NULL : argv[++i];
    char why[160], msg[256];
    if (tyr_flag_set(fl, v, neg, why, sizeof why)) {
      snprintf(msg, sizeof msg, "%s: %s", a, why);
      die_flag(msg, v);
    }
  }
  tyr_nanoproof_config probe_cfg;
  if (!tyr_nanoproof_config_preset(c->model, 0, &probe_cfg))
    die_flag("--config must be tiny, small, default or full", c->model);
  if (!c->out_dir[0]) snprintf(c->out_dir, sizeof c->out_dir, "out/nanoproof/%s", c->model);
  if (!c->dir[0]) snprintf(c->dir, sizeof c->dir, "%s", c->out_dir);
  if (c->min_lr > c->lr) die_flag("--min-lr must not be above --lr", "");
  int64_t budgets[MAX_BUDGETS];
  parse_budgets(c->budgets, budgets); /* exits on a bad list before anything runs */
}

/* --budgets "8,32" -> b[], their number */
static int parse_budgets(const char *s, int64_t *b) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 1 || v > BIG || errno || n == MAX_BUDGETS || (*end && *end != ','))
      die_flag("--budgets must be up to 8 positive integers separated by commas", s);
    b[n++] = v;
    p = *end ? end + 1 : end;
  }
  if (!n) die_flag("--budgets is empty", s);
  return n;
}

/* ---- data -------------------------------------------------------------------- */
typedef struct example {
  char state[TYR_SEQUENT_TEXT_MAX / 4], step[24];
  int bin; /* value target */
  bool has_step;
} example;

typedef struct problem {
  tyr_sequent q;
  int level;
} problem;

typedef struct data {
  example *ex;
  int64_t n_ex, n_val; /* the last n_val examples validate */
  problem *test;       /* n_test per level, level-major */
  int64_t n_test;
} data;

/* FNV-1a over the text, for the set that keeps test sequents out of training */
static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h ? h : 1;
}

typedef struct hset {
  uint64_t *slot;
  int64_t cap;
} hset;

static bool hset_has(const hset *h, uint64_t k) {
  for (int64_t i = (int64_t)(k % (uint64_t)h->cap);; i = (i + 1) % h->cap) {
    if (!h->slot[i]) return false;
    if (h->slot[i] == k) return true;
  }
}

static void hset_add(hset *h, uint64_t k) {
  int64_t i = (int64_t)(k % (uint64_t)h->cap);
  while (h->slot[i] && h->slot[i] != k) i = (i + 1) % h->cap;
  h->slot[i] = k;
}

static void *xmalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) {
    fprintf(stderr, PROG ": out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

static void add_example(data *d, int64_t *cap, const tyr_sequent *g, const char *step, int bin) {
  if (d->n_ex == *cap) {
    *cap = *cap ? 2 * *cap : 1024;
    d->ex = realloc(d->ex, sizeof *d->ex * (size_t)*cap);
    if (!d->ex) {
      fprintf(stderr, PROG ": out of memory\n");
      exit(1);
    }
  }
  example *e = &d->ex[d->n_ex++];
  memset(e, 0, sizeof *e);
  tyr_sequent_print(g, e->state, sizeof e->state);
  e->has_step = step != NULL;
  if (step) snprintf(e->step, sizeof e->step, "%.*s", (int)sizeof e->step - 1, step);
  e->bin = bin;
}

/* Training examples from n_train random sequents (levels balanced, a fifth
 * unprovable) and n_test held-out sequents per level, all from seed. */
static void make_data(data *d, int64_t n_train, int64_t n_test, uint64_t seed) {
  memset(d, 0, sizeof *d);
  hset seen = {xmalloc(sizeof(uint64_t) * (size_t)(4 * n_train + 64)), 4 * n_train + 64};
  uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 17;
  int64_t quota[TYR_SEQUENT_LEVELS + 1], cap = 0, tries = 0;
  quota[0] = n_train / 5;
  for (int l = 1; l <= TYR_SEQUENT_LEVELS; l++)
    quota[l] = (n_train - quota[0]) / TYR_SEQUENT_LEVELS;
  tyr_sequent_proof pf = {0};
  int64_t left = 0;
  for (int l = 0; l <= TYR_SEQUENT_LEVELS; l++) left += quota[l];
  char text[TYR_SEQUENT_TEXT_MAX], step[32];
  while (left > 0 && tries++ < 200 * n_train) {
    tyr_sequent q;
    tyr_sequent_random(&rng, 3, 1 + (int)(rng % 12), &q);
    int r = tyr_sequent_prove(&q, 200, &pf);
    int level = r == 1 ? tyr_sequent_level(pf.n) : 0;
    if (r < 0 || (r == 1 && level == 0) || quota[level] == 0) continue;
    tyr_sequent_print(&q, text, sizeof text);
    uint64_t h = hash_text(text);
    if (hset_has(&seen, h)) continue;
    hset_add(&seen, h);
    quota[level]--;
    left--;
    if (r == 0) {
      add_example(d, &cap, &q, NULL, 0);
      continue;
    }
    for (int i = 0; i < pf.n; i++) {
      tyr_sequent_step_print(pf.steps[i], step, sizeof step);
      add_example(d, &cap, &pf.goals[i], step,
                  tyr_nanoproof_value_bin(pow(VALUE_DISCOUNT, pf.remaining[i] - 1)));
    }
  }
  /* shuffle (Fisher-Yates from the seed), then a tenth validates */
  for (int64_t i = d->n_ex - 1; i > 0; i--) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    int64_t j = (int64_t)((rng >> 33) % (uint64_t)(i + 1));
    example t = d->ex[i];
    d->ex[i] = d->ex[j];
    d->ex[j] = t;
  }
  d->n_val = d->n_ex / 10;
  /* held-out test sequents: another stream, none seen in training */
  d->test = xmalloc(sizeof *d->test * (size_t)(n_test * TYR_SEQUENT_LEVELS));
  int64_t have[TYR_SEQUENT_LEVELS + 1] = {0};
  uint64_t trng = seed * 0xD1B54A32D192ED03ull + 99;
  tries = 0;
  while (d->n_test < n_test * TYR_SEQUENT_LEVELS && tries++ < 1000 * n_test) {
    tyr_sequent q;
    tyr_sequent_random(&trng, 3, 1 + (int)(trng % 12), &q);
    if (tyr_sequent_prove(&q, 200, &pf) != 1) continue;
    int level = tyr_sequent_level(pf.n);
    if (!level || have[level] == n_test) continue;
    tyr_sequent_print(&q, text, sizeof text);
    uint64_t h = hash_text(text);
    if (hset_has(&seen, h)) continue;
    hset_add(&seen, h);
    d->test[(level - 1) * n_test + have[level]++] = (problem){q, level};
    d->n_test++;
  }
  tyr_sequent_proof_free(&pf);
  free(seen.slot);
  if (d->n_test < n_test * TYR_SEQUENT_LEVELS) {
    fprintf(stderr, PROG ": could not generate %" PRId64 " test sequents per level\n", n_test);
    exit(1);
  }
}

/* ---- tokenization -------------------------------------------------------------- */
typedef struct toks {
  tyr_tokenizer *tok;
  int64_t bos, user_start, user_end, value, stop, pad;
} toks;

static void toks_init(toks *t, tyr_tokenizer *tok) {
  t->tok = tok;
  t->bos = tyr_tokenizer_special_id(tok, "<|bos|>");
  t->user_start = tyr_tokenizer_special_id(tok, "<|user_start|>");
  t->user_end = tyr_tokenizer_special_id(tok, "<|user_end|>");
  t->value = tyr_tokenizer_special_id(tok, TYR_NANOPROOF_VALUE_TOKEN);
  t->stop = tyr_tokenizer_special_id(tok, TYR_NANOPROOF_STOP_TOKEN);
  t->pad = tyr_tokenizer_special_id(tok, "<|pad|>");
}

static tyr_tokenizer *train_tokenizer(const data *d, int64_t vocab) {
  tyr_bpe_trainer *tr = tyr_bpe_trainer_init(NULL);
  if (!tr) exit(1);
  for (int64_t i = 0; i < d->n_ex; i++) {
    tyr_bpe_trainer_add(tr, d->ex[i].state, strlen(d->ex[i].state));
    if (d->ex[i].has_step) tyr_bpe_trainer_add(tr, d->ex[i].step, strlen(d->ex[i].step));
  }
  int n_sp;
  const char *const *sp = tyr_nanoproof_special_tokens(&n_sp);
  tyr_tokenizer *tok = tyr_bpe_trainer_finish(tr, (int)vocab + n_sp, sp, n_sp);
  tyr_bpe_trainer_free(tr);
  if (!tok) exit(1);
  return tok;
}

/* the prompt of a state: <|bos|><|user_start|>STATE<|user_end|><|assistant_start|>; its
   length, or -1 when longer than cap */
static int64_t encode_prompt(const toks *t, const char *state, int64_t *out, int64_t cap) {
  uint32_t *ids = NULL;
  size_t idcap = 0, n = tyr_tokenizer_encode(t->tok, state, strlen(state), false, &ids, &idcap);
  if (n == TYR_TOKENIZER_FAIL || (int64_t)n + 4 > cap) {
    free(ids);
    return -1;
  }
  int64_t k = 0;
  out[k++] = t->bos;
  out[k++] = t->user_start;
  for (size_t i = 0; i < n; i++) out[k++] = ids[i];
  out[k++] = t->user_end;
  out[k++] = t->value;
  free(ids);
  return k;
}

/* one example as a row of T tokens, its targets, value position and bin; false when too long */
static bool encode_example(const toks *t, const example *e, int64_t T, int64_t *row, int64_t *tg,
                           int64_t *vpos, int64_t *vbin) {
  int64_t k = encode_prompt(t, e->state, row, T);
  if (k < 0) return false;
  *vpos = k - 1;
  *vbin = e->bin;
  for (int64_t i = 0; i < T; i++) tg[i] = -1;
  if (e->has_step) {
    uint32_t *ids = NULL;
    size_t cap = 0, n = tyr_tokenizer_encode(t->tok, e->step, strlen(e->step), false, &ids, &cap);
    if (n == TYR_TOKENIZER_FAIL || k + (int64_t)n + 1 > T) {
      free(ids);
      return false;
    }
    for (size_t i = 0; i < n; i++) row[k++] = ids[i];
    row[k++] = t->stop;
    free(ids);
    for (int64_t i = *vpos; i < k - 1; i++) tg[i] = row[i + 1];
  }
  for (int64_t i = k; i < T; i++) row[i] = t->pad;
  return true;
}

/* the examples that fit in T tokens, encoded once */
typedef struct encoded {
  int64_t *rows, *tgs, *vpos, *vbin;
  int64_t n, n_val, T;
} encoded;

static void encode_all(const toks *t, const data *d, int64_t T, encoded *e) {
  e->T = T;
  e->rows = xmalloc(sizeof(int64_t) * (size_t)(d->n_ex * T));
  e->tgs = xmalloc(sizeof(int64_t) * (size_t)(d->n_ex * T));
  e->vpos = xmalloc(sizeof(int64_t) * (size_t)d->n_ex);
  e->vbin = xmalloc(sizeof(int64_t) * (size_t)d->n_ex);
  e->n = e->n_val = 0;
  for (int64_t i = 0; i < d->n_ex; i++) {
    bool val = i >= d->n_ex - d->n_val;
    if (encode_example(t, &d->ex[i], T, e->rows + e->n * T, e->tgs + e->n * T, &e->vpos[e->n],
                       &e->vbin[e->n])) {
      e->n++;
      e->n_val += val;
    }
  }
  if (e->n - e->n_val < 1 || e->n_val < 1) {
    fprintf(stderr, PROG ": no training examples fit --seq-len %" PRId64 "\n", T);
    exit(1);
  }
}

typedef struct batch {
  tyr_tensor *idx, *tg, *vpos, *vbin;
} batch;

/* B examples of the train (or val) part: Philox (seed, counter) picks them, so a
   resumed run sees the same batches */
static batch make_batch(const encoded *e, bool val, int64_t B, uint64_t seed, uint64_t *counter,
                        tyr_device dev) {
  int64_t T = e->T, lo = val ? e->n - e->n_val : 0, len = val ? e->n_val : e->n - e->n_val;
  int64_t *x = xmalloc(sizeof(int64_t) * (size_t)(B * T)),
          *y = xmalloc(sizeof(int64_t) * (size_t)(B * T));
  int64_t vp[B], vb[B];
  for (int64_t b = 0; b < B; b++) {
    uint32_t r[4];
    tyr_philox4x32(seed ^ (val ? 0x5bd1e995u : 0), (*counter)++, r);
    int64_t i = lo + (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)len);
    memcpy(x + b * T, e->rows + i * T, sizeof(int64_t) * (size_t)T);
    memcpy(y + b * T, e->tgs + i * T, sizeof(int64_t) * (size_t)T);
    vp[b] = e->vpos[i], vb[b] = e->vbin[i];
  }
  batch r = {tyr_from_host_at(TYR_SITE, x, TYR_I64, dev, 2, (int64_t[]){B, T}),
             tyr_from_host_at(TYR_SITE, y, TYR_I64, dev, 2, (int64_t[]){B, T}),
             tyr_from_host_at(TYR_SITE, vp, TYR_I64, dev, 1, (int64_t[]){B}),
             tyr_from_host_at(TYR_SITE, vb, TYR_I64, dev, 1, (int64_t[]){B})};
  free(x);
  free(y);
  return r;
}

/* ---- the policy and value for the search ------------------------------------------ */
typedef struct policy_ctx {
  tyr_nanoproof *m;
  toks *t;
  tyr_gpt_engine one, many; /* batch 1 (sampling) and --samples (search) */
  tyr_gpt_engine_sample sc;
  int64_t max_new;
  uint64_t calls;
  int64_t *prompt, *out, *len;
  double *logp;
  bool verbose;
} policy_ctx;

static int policy(void *vctx, const tyr_sequent *goal, int k, tyr_proof_candidate *out,
                  double *value) {
  policy_ctx *p = vctx;
  char text[TYR_SEQUENT_TEXT_MAX];
  tyr_sequent_print(goal, text, sizeof text);
  tyr_gpt_engine *e = k == 1 ? &p->one : &p->many;
  int64_t n = encode_prompt(p->t, text, p->prompt, e->max_len - p->max_new);
  *value = 0;
  if (n < 0) return 0; /* the state does not fit the model's context */
  tyr_gpt_engine_sample sc = p->sc;
  sc.seed = p->sc.seed + 0x9E3779B97F4A7C15ull * ++p->calls;
  tyr_tensor *h = NULL;
  if (tyr_gpt_engine_generate(e, p->prompt, n, p->max_new, &sc, p->out, p->len, p->logp, &h))
    return -1;
  {
    TYR_SCOPE;
    TYR_NO_GRAD;
    float vl[TYR_NANOPROOF_BINS];
    tyr_tensor *v = tyr_nanoproof_value_logits(p->m, h);
    v = v ? tyr_to_device_e(tyr_to_dtype_e(v, TYR_F32), TYR_DEVICE_CPU) : NULL;
    if (!v || tyr_to_host_e(v, vl, sizeof vl)) {
      tyr_tensor_free(h);
      return -1;
    }
    *value = tyr_nanoproof_value_expect(vl, NULL);
  }
  tyr_tensor_free(h);
  int rows = (int)e->batch < k ? (int)e->batch : k;
  for (int r = 0; r < rows; r++) {
    int64_t len = p->len[r];
    const int64_t *ids = p->out + r * p->max_new;
    if (len > 0 && ids[len - 1] == p->t->stop) len--;
    uint32_t u[64];
    bool ok = true; /* ids of the padded vocabulary, or special tokens, make no step */
    for (int64_t i = 0; i < len && i < 64; i++) {
      u[i] = (uint32_t)ids[i];
      ok = ok && ids[i] < tyr_tokenizer_vocab_size(p->t->tok) &&
           !tyr_tokenizer_is_special(p->t->tok, u[i]);
    }
    if (!ok) {
      snprintf(out[r].text, sizeof out[r].text, "<special or padding token>");
      out[r].logp = p->logp[r];
      continue;
    }
    char *s = NULL;
    size_t cap = 0,
           nb = tyr_tokenizer_decode(p->t->tok, u, (size_t)(len < 64 ? len : 64), &s, &cap);
    snprintf(out[r].text, sizeof out[r].text, "%s", nb == TYR_TOKENIZER_FAIL || !s ? "" : s);
    free(s);
    out[r].logp = p->logp[r];
  }
  return rows;
}

static void policy_init(policy_ctx *p, tyr_nanoproof *m, toks *t, const config *c) {
  memset(p, 0, sizeof *p);
  p->m = m;
  p->t = t;
  int64_t L = m->gpt.cfg.block_size;
  if (tyr_gpt_engine_init(&p->one, &m->gpt, 1, L) ||
      tyr_gpt_engine_init(&p->many, &m->gpt, c->samples, L))
    exit(1);
  p->sc = tyr_gpt_engine_sample_defaults();
  p->sc.temperature = c->temperature;
  p->sc.seed = (uint64_t)c->seed;
  p->sc.stop = &t->stop;
  p->sc.n_stop = 1;
  p->max_new = c->max_new;
  p->prompt = xmalloc(sizeof(int64_t) * (size_t)L);
  p->out = xmalloc(sizeof(int64_t) * (size_t)(c->samples * c->max_new));
  p->len = xmalloc(sizeof(int64_t) * (size_t)c->samples);
  p->logp = xmalloc(sizeof(double) * (size_t)c->samples);
}

static void policy_free(policy_ctx *p) {
  tyr_gpt_engine_free(&p->one);
  tyr_gpt_engine_free(&p->many);
  free(p->prompt), free(p->out), free(p->len), free(p->logp);
}

static void on_reject(void *ctx, const tyr_sequent *g, const char *step, const char *why) {
  policy_ctx *p = ctx;
  if (!p->verbose) return;
  char text[TYR_SEQUENT_TEXT_MAX];
  tyr_sequent_print(g, text, sizeof text);
  fprintf(stderr, PROG ": rejected step '%s' on '%s': %s\n", step, text, why);
}

/* ---- value rounds ------------------------------------------------------------------ */
/* Round r searches --value-sequents fresh sequents (a stream of their own
 * from (seed, r), none of the test set) with the current model and turns
 * every goal each search expanded into a value-only example whose target is
 * its outcome (tyr_proof_result_label): the examples of the round, encoded.
 * stats: labels, roots proved, labels > 0. */
static void value_round_data(const config *c, tyr_nanoproof *m, toks *t, const data *d,
                             int64_t round, int64_t T, encoded *out, int64_t stats[3]) {
  policy_ctx p;
  policy_init(&p, m, t, c);
  p.sc.seed = (uint64_t)c->seed * 0xA24BAED4963EE407ull + 0x51ED27ull * (uint64_t)(round + 1);
  uint64_t rng = (uint64_t)c->seed * 0x9FB21C651E98DF25ull + 7919ull * (uint64_t)(round + 1);
  hset test = {xmalloc(sizeof(uint64_t) * (size_t)(4 * d->n_test + 64)), 4 * d->n_test + 64};
  char text[TYR_SEQUENT_TEXT_MAX];
  for (int64_t i = 0; i < d->n_test; i++) {
    tyr_sequent_print(&d->test[i].q, text, sizeof text);
    hset_add(&test, hash_text(text));
  }
  data rd = {0};
  int64_t cap = 0, searched = 0;
  stats[0] = stats[1] = stats[2] = 0;
  while (searched < c->value_sequents) {
    tyr_sequent q;
    tyr_sequent_random(&rng, 3, 1 + (int)(rng % 12), &q);
    tyr_sequent_print(&q, text, sizeof text);
    if (hset_has(&test, hash_text(text))) continue;
    searched++;
    tyr_proof_search_config sc = tyr_proof_search_defaults();
    sc.budget = c->value_budget;
    sc.samples = (int)c->samples;
    sc.c_puct = c->c_puct;
    sc.discount = c->discount;
    tyr_proof_result r;
    if (tyr_proof_search(&q, &sc, policy, &p, &r)) exit(1);
    stats[1] += r.proved;
    for (int i = 0; i < r.n_labels; i++) {
      double v = tyr_proof_result_label(&r, i, VALUE_DISCOUNT);
      add_example(&rd, &cap, &r.label_goals[i], NULL, tyr_nanoproof_value_bin(v));
      stats[0]++;
      stats[2] += v > 0;
    }
    tyr_proof_result_free(&r);
  }
  policy_free(&p);
  free(test.slot);
  out->T = T;
  out->rows = xmalloc(sizeof(int64_t) * (size_t)((rd.n_ex ? rd.n_ex : 1) * T));
  out->tgs = xmalloc(sizeof(int64_t) * (size_t)((rd.n_ex ? rd.n_ex : 1) * T));
  out->vpos = xmalloc(sizeof(int64_t) * (size_t)(rd.n_ex ? rd.n_ex : 1));
  out->vbin = xmalloc(sizeof(int64_t) * (size_t)(rd.n_ex ? rd.n_ex : 1));
  out->n = out->n_val = 0;
  for (int64_t i = 0; i < rd.n_ex; i++)
    out->n += encode_example(t, &rd.ex[i], T, out->rows + out->n * T, out->tgs + out->n * T,
                             &out->vpos[out->n], &out->vbin[out->n]);
  free(rd.ex);
}

/* ---- helpers ------------------------------------------------------------------- */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void save_checkpoint(const char *path, tyr_nanoproof *m, tyr_optim *opt, int64_t step,
                            uint64_t data_counter, double best_val, const char *data_json) {
  char gj[2048], nj[64], dc[32], bv[32];
  tyr_gpt_config_to_json(&m->gpt.cfg, gj, sizeof gj);
  snprintf(nj, sizeof nj, "{\"value_weight\":%.17g}", m->cfg.value_weight);
  snprintf(dc, sizeof dc, "%" PRIu64, data_counter);
  snprintf(bv, sizeof bv, "%.17g", best_val);
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 5,
                              .keys = {TYR_GPT_CONFIG_KEY, TYR_NANOPROOF_CONFIG_KEY,
                                       "nanoproof.data", "nanoproof.data_counter",
                                       "nanoproof.best_val"},
                              .values = {gj, nj, data_json, dc, bv}};
  if (tyr_checkpoint_save(path, &m->gpt.params, opt, &info)) exit(1);
}

/* validation loss over eval_iters fixed batches */
static void evaluate_loss(tyr_nanoproof *m, const config *c, const encoded *e, uint64_t seed,
                          double *loss, double *pl, double *vl) {
  TYR_NO_GRAD;
  uint64_t counter = 0;
  double s = 0, sp = 0, sv = 0;
  for (int64_t i = 0; i < c->eval_iters; i++) {
    TYR_SCOPE;
    batch b = make_batch(e, true, c->batch_size, seed + 7, &counter, m->gpt.device);
    tyr_tensor *p = NULL, *v = NULL;
    tyr_tensor *l = tyr_nanoproof_loss(m, b.idx, b.tg, b.vpos, b.vbin, false, &p, &v);
    if (!l) exit(1);
    s += tyr_item_e(l), sp += tyr_item_e(p), sv += tyr_item_e(v);
  }
  *loss = s / (double)c->eval_iters;
  *pl = sp / (double)c->eval_iters;
  *vl = sv / (double)c->eval_iters;
}

/* a training run's directory: its checkpoint (best, else last) and tokenizer */
static bool find_run(const char *dir, char *ck, size_t n, char *tok, size_t m) {
  struct stat st;
  snprintf(tok, m, "%s/tokenizer.bin", dir);
  if (stat(tok, &st) != 0) return false;
  const char *names[] = {"best.safetensors", "last.safetensors"};
  for (int i = 0; i < 2; i++) {
    snprintf(ck, n, "%s/%s", dir, names[i]);
    if (stat(ck, &st) == 0 && S_ISREG(st.st_mode)) return true;
  }
  return false;
}

/* loads the model and tokenizer a training run wrote in dir */
static void load_run(const config *c, const char *dir, tyr_device dev, tyr_nanoproof *m,
                     tyr_tokenizer **tok, uint64_t *data_seed, int64_t *n_train, int64_t *n_test) {
  char ck[1200], tk[1200];
  if (!find_run(dir, ck, sizeof ck, tk, sizeof tk)) {
    fprintf(stderr,
            PROG ": no trained model in %s (looked for tokenizer.bin and best.safetensors or "
                 "last.safetensors); train one first: " PROG " --config %s --out-dir %s\n",
            dir, c->model, dir);
    exit(1);
  }
  *tok = tyr_tokenizer_load(tk);
  if (!*tok) exit(1);
  tyr_nanoproof_config want; /* --config given: the file must hold that model */
  tyr_nanoproof_config_preset(c->model, tyr_tokenizer_vocab_size(*tok), &want);
  if (tyr_nanoproof_load(m, ck, dev, c->model_given ? &want : NULL)) exit(1);
  if (m->gpt.cfg.vocab_size < tyr_tokenizer_vocab_size(*tok)) {
    fprintf(stderr, PROG ": %s: the model's vocabulary (%" PRId64 ") is smaller than %s's (%d)\n",
            ck, m->gpt.cfg.vocab_size, tk, tyr_tokenizer_vocab_size(*tok));
    exit(1);
  }
  tyr_checkpoint *h = tyr_checkpoint_open(ck);
  const char *dj = h ? tyr_checkpoint_meta(h, "nanoproof.data") : NULL;
  unsigned long long s = 0;
  long long a = 0, b = 0;
  if (!dj || sscanf(dj, "{\"seed\":%llu,\"train\":%lld,\"test\":%lld}", &s, &a, &b) != 3) {
    fprintf(stderr, PROG ": %s: no \"nanoproof.data\" metadata (not a " PROG " checkpoint)\n", ck);
    exit(1);
  }
  tyr_checkpoint_close(h);
  *data_seed = s, *n_train = a, *n_test = b;
  fprintf(stderr, PROG ": loaded %s (%" PRId64 " parameters)\n", ck,
          tyr_params_numel(&m->gpt.params));
}

/* ---- evaluation: solve rates by level, sampling vs search at equal budgets --------- */
static int evaluate(const config *c, tyr_nanoproof *m, toks *t, const data *d,
                    const char *json_path) {
  int64_t budgets[MAX_BUDGETS];
  int nb = parse_budgets(c->budgets, budgets);
  policy_ctx p;
  policy_init(&p, m, t, c);
  int64_t n = d->n_test / TYR_SEQUENT_LEVELS;
  /* solved[method][budget][level]: method 0 sampling, 1 search */
  int64_t solved[2][MAX_BUDGETS][TYR_SEQUENT_LEVELS] = {{{0}}}, calls[2][MAX_BUDGETS] = {{0}};
  int64_t rejected[2][MAX_BUDGETS] = {{0}};
  bool tty = isatty(2);
  int64_t total = 2 * nb * d->n_test, done = 0;
  double t0 = now();
  for (int bi = 0; bi < nb; bi++)
    for (int meth = 0; meth < 2; meth++)
      for (int64_t i = 0; i < d->n_test; i++) {
        tyr_proof_search_config sc = tyr_proof_search_defaults();
        sc.budget = budgets[bi];
        sc.samples = (int)c->samples;
        sc.c_puct = c->c_puct;
        sc.discount = c->discount;
        tyr_proof_result r;
        int rc = meth ? tyr_proof_search(&d->test[i].q, &sc, policy, &p, &r)
                      : tyr_proof_sample(&d->test[i].q, &sc, policy, &p, &r);
        if (rc) return 1;
        char err[256];
        if (r.proved && tyr_sequent_check_proof(&d->test[i].q, r.steps, r.n, err, sizeof err)) {
          fprintf(stderr, PROG ": internal error: a proof found does not check: %s\n", err);
          return 1;
        }
        solved[meth][bi][d->test[i].level - 1] += r.proved;
        calls[meth][bi] += r.calls;
        rejected[meth][bi] += r.rejected;
        tyr_proof_result_free(&r);
        done++;
        if (tty || done % 50 == 0 || done == total) {
          char text[96];
          snprintf(text, sizeof text, "eval budget %" PRId64 " %s", budgets[bi],
                   meth ? "search" : "sampling");
          double el = now() - t0;
          tyr_progress_draw(stderr, tty, done, total, el / (double)done * (double)(total - done),
                            text);
        }
      }
  if (tty) fprintf(stderr, "\n");
  printf("solve rates on %" PRId64 " held-out sequents per level (budget = model calls; search "
         "samples %" PRId64 " steps per call)\n",
         n, c->samples);
  printf("%-8s %-9s", "budget", "method");
  for (int l = 1; l <= TYR_SEQUENT_LEVELS; l++) printf("  level %d", l);
  printf("   all    calls/problem rejected\n");
  char *jbuf = NULL;
  size_t jn = 0;
  FILE *jf = open_memstream(&jbuf, &jn);
  if (!jf) return 1;
  fprintf(jf, "{\"n_per_level\":%" PRId64 ",\"samples\":%" PRId64 ",\"results\":[", n, c->samples);
  for (int bi = 0; bi < nb; bi++)
    for (int meth = 0; meth < 2; meth++) {
      int64_t all = 0;
      printf("%-8" PRId64 " %-9s", budgets[bi], meth ? "search" : "sampling");
      fprintf(jf, "%s{\"budget\":%" PRId64 ",\"method\":\"%s\",\"solved\":[", bi || meth ? "," : "",
              budgets[bi], meth ? "search" : "sampling");
      for (int l = 0; l < TYR_SEQUENT_LEVELS; l++) {
        printf("  %6.1f%%", 100.0 * (double)solved[meth][bi][l] / (double)n);
        fprintf(jf, "%s%.4f", l ? "," : "", (double)solved[meth][bi][l] / (double)n);
        all += solved[meth][bi][l];
      }
      double rate = (double)all / (double)d->n_test;
      printf("  %6.1f%%  %8.1f  %8" PRId64 "\n", 100.0 * rate,
             (double)calls[meth][bi] / (double)d->n_test, rejected[meth][bi]);
      fprintf(jf, "],\"all\":%.4f,\"calls_per_problem\":%.2f,\"rejected\":%" PRId64 "}", rate,
              (double)calls[meth][bi] / (double)d->n_test, rejected[meth][bi]);
    }
  fprintf(jf, "]}\n");
  fclose(jf);
  int wrc = tyr_file_write_atomic(json_path, jbuf, jn);
  free(jbuf);
  if (wrc) return 1;
  fprintf(stderr, PROG ": %" PRIu64 " model calls in %.1f s; wrote %s\n", p.calls, now() - t0,
          json_path);
  policy_free(&p);
  return 0;
}

static int run_eval(const config *c, tyr_device dev) {
  tyr_nanoproof m;
  tyr_tokenizer *tok;
  uint64_t seed;
  int64_t n_train, n_test;
  load_run(c, c->dir, dev, &m, &tok, &seed, &n_train, &n_test);
  data d;
  make_data(&d, n_train, c->n_test, seed);
  toks t;
  toks_init(&t, tok);
  char path[1200];
  snprintf(path, sizeof path, "%s/eval.json", c->dir);
  int rc = evaluate(c, &m, &t, &d, path);
  free(d.ex), free(d.test);
  tyr_tokenizer_free(tok);
  tyr_nanoproof_free(&m);
  return rc;
}

static int run_prove(const config *c, tyr_device dev) {
  tyr_sequent q;
  char err[256];
  if (tyr_sequent_parse_quiet(c->sequent, &q, err, sizeof err)) {
    fprintf(stderr, PROG ": --prove '%s': %s\n", c->sequent, err);
    return 2;
  }
  tyr_nanoproof m;
  tyr_tokenizer *tok;
  uint64_t seed;
  int64_t n_train, n_test;
  load_run(c, c->dir, dev, &m, &tok, &seed, &n_train, &n_test);
  toks t;
  toks_init(&t, tok);
  policy_ctx p;
  policy_init(&p, &m, &t, c);
  p.verbose = true;
  tyr_proof_search_config sc = tyr_proof_search_defaults();
  sc.budget = c->budget;
  sc.samples = (int)c->samples;
  sc.c_puct = c->c_puct;
  sc.discount = c->discount;
  sc.on_reject = on_reject;
  sc.reject_ctx = &p;
  tyr_proof_result r;
  double t0 = now();
  if (tyr_proof_search(&q, &sc, policy, &p, &r)) return 1;
  char text[TYR_SEQUENT_TEXT_MAX];
  tyr_sequent_print(&q, text, sizeof text);
  int rc;
  if (r.proved) {
    printf("proved %s in %" PRId64 " model calls (%.2f s, %" PRId64 " goals in the tree, %" PRId64
           " steps rejected):\n",
           text, r.calls, now() - t0, r.nodes, r.rejected);
    tyr_proof_result_print(stdout, &r);
    rc = tyr_sequent_check_proof(&q, r.steps, r.n, err, sizeof err) ? 1 : 0;
    if (rc) fprintf(stderr, PROG ": the proof does not check: %s\n", err);
  } else {
    int truth = tyr_sequent_prove(&q, 100000, NULL);
    printf("not proved: %s (%" PRId64 " model calls, %" PRId64 " goals, %" PRId64
           " steps rejected)%s\n",
           text, r.calls, r.nodes, r.rejected,
           truth == 0 ? "; the complete prover refutes it: it is not provable" : "");
    rc = 1;
  }
  tyr_proof_result_free(&r);
  policy_free(&p);
  tyr_tokenizer_free(tok);
  tyr_nanoproof_free(&m);
  return rc;
}

/* ---- training ---------------------------------------------------------------- */
int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  config c;
  parse_args(&c, argc, argv);
  if (c.threads > 0) tyr_set_num_threads((int)c.threads);
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die_flag("--device must be cpu, cuda or cuda:N", c.device);
  tyr_manual_seed((uint64_t)c.seed);
  if (c.mode == 2) return run_prove(&c, dev);
  if (c.mode == 1) return run_eval(&c, dev);
  /* data and tokenizer */
  double t0 = now();
  data d;
  make_data(&d, c.n_train, c.n_test, (uint64_t)c.seed);
  char data_json[128];
  snprintf(data_json, sizeof data_json,
           "{\"seed\":%" PRIu64 ",\"train\":%" PRId64 ",\"test\":%" PRId64 "}", (uint64_t)c.seed,
           c.n_train, c.n_test);
  tyr_tokenizer *tok = train_tokenizer(&d, c.vocab);
  toks t;
  toks_init(&t, tok);

  /* model */
  tyr_nanoproof_config mc;
  tyr_nanoproof_config_preset(c.model, tyr_tokenizer_vocab_size(tok), &mc);
  mc.value_weight = c.value_weight;
  int64_t T = c.seq_len < mc.gpt.block_size ? c.seq_len : mc.gpt.block_size;
  encoded e;
  encode_all(&t, &d, T, &e);
  tyr_nanoproof m;
  if (tyr_nanoproof_init(&m, &mc, dev)) return 1;
  tyr_params_group_by_rank(&m.gpt.params);
  tyr_optim_config oc = tyr_adamw_config(c.lr);
  oc.beta1 = c.beta1;
  oc.beta2 = c.beta2;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, c.weight_decay};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &m.gpt.params, oc)) return 1;
  tyr_lr_schedule sch = {.kind = TYR_LR_WARMUP_COSINE,
                         .max_lr = c.lr,
                         .min_lr = c.min_lr,
                         .warmup = c.warmup,
                         .decay_steps = c.decay_steps};
  int64_t step = 0;
  uint64_t data_counter = 0, data_seed = (uint64_t)c.seed * 0x9E3779B97F4A7C15ULL + 1;
  double best_val = INFINITY;
  if (c.resume[0]) { /* checked before anything is written */
    tyr_checkpoint *ck = tyr_checkpoint_open(c.resume);
    if (!ck) return 1;
    const char *gj = tyr_checkpoint_meta(ck, TYR_GPT_CONFIG_KEY);
    const char *dj = tyr_checkpoint_meta(ck, "nanoproof.data");
    char want[2048];
    tyr_gpt_config_to_json(&m.gpt.cfg, want, sizeof want);
    if (!gj || strcmp(gj, want) || !dj || strcmp(dj, data_json)) {
      fprintf(stderr,
              PROG ": --resume %s: the checkpoint was made with a different config\n  file:  %s "
                   "%s\n  flags: %s %s\n",
              c.resume, gj ? gj : "(none)", dj ? dj : "(none)", want, data_json);
      return 1;
    }
    tyr_checkpoint_info info;
    if (tyr_checkpoint_load(ck, &m.gpt.params, &opt, &info)) return 1;
    step = info.step;
    const char *dc = tyr_checkpoint_meta(ck, "nanoproof.data_counter");
    const char *bv = tyr_checkpoint_meta(ck, "nanoproof.best_val");
    data_counter = dc ? strtoull(dc, NULL, 10) : 0;
    best_val = bv ? strtod(bv, NULL) : INFINITY;
    tyr_checkpoint_close(ck);
    fprintf(stderr, PROG ": resumed from %s at step %" PRId64 "\n", c.resume, step);
  }
  if (tyr_mkdirs(c.out_dir)) {
    fprintf(stderr, PROG ": --out-dir %s: cannot create (%s)\n", c.out_dir, strerror(errno));
    return 1;
  }
  char path_last[1200], path_best[1200], path_metrics[1200], path_plot[1200], path_tok[1200],
      path_eval[1200];
  snprintf(path_last, sizeof path_last, "%s/last.safetensors", c.out_dir);
  snprintf(path_best, sizeof path_best, "%s/best.safetensors", c.out_dir);
  snprintf(path_metrics, sizeof path_metrics, "%s/metrics.jsonl", c.out_dir);
  snprintf(path_plot, sizeof path_plot, "%s/loss.png", c.out_dir);
  snprintf(path_tok, sizeof path_tok, "%s/tokenizer.bin", c.out_dir);
  snprintf(path_eval, sizeof path_eval, "%s/eval.json", c.out_dir);
  if (tyr_tokenizer_save(tok, path_tok)) return 1;
  if (c.resume[0] && tyr_jsonl_truncate(path_metrics, step) < 0) return 1;
  FILE *metrics = fopen(path_metrics, c.resume[0] ? "a" : "w");
  if (!metrics) {
    fprintf(stderr, PROG ": %s: cannot open (%s)\n", path_metrics, strerror(errno));
    return 1;
  }
  bool tty = isatty(2);
  fprintf(stderr,
          PROG ": preset %s, config %s (%" PRId64 " layers, %" PRId64 " wide, %" PRId64
               " heads / %" PRId64 " KV, vocab %" PRId64 "), %" PRId64 " parameters; %" PRId64
               " train / %" PRId64 " val examples of <= %" PRId64 " tokens, %" PRId64
               " test sequents; data and tokenizer in %.1f s; device %s, %d "
               "threads\n",
          c.preset, c.model, m.gpt.cfg.n_layer, m.gpt.cfg.n_embd, m.gpt.cfg.n_head,
          m.gpt.cfg.n_kv_head, m.gpt.cfg.vocab_size, tyr_params_numel(&m.gpt.params), e.n - e.n_val,
          e.n_val, T, d.n_test, now() - t0, tyr_device_name(dev), tyr_get_num_threads());

  /* loop */
  double t_start = now(), t_last = t_start, ema = 0, last_loss = NAN, vloss = NAN, vpl = NAN,
         vvl = NAN;
  int64_t steps_this_run = 0;
  /* value rounds follow --iters: round r covers steps iters + r * value_steps + [1, value_steps];
     its examples are rebuilt from the model at the round's start, so a run stops and checkpoints
     only at round ends there (the round is (step - iters) / value_steps; its search and batch
     streams come from (seed, round)) */
  int64_t total = c.iters + c.value_rounds * c.value_steps, built_round = -1;
  encoded ve = {0};
  if (step > c.iters && (step - c.iters) % c.value_steps)
    fprintf(stderr, PROG ": warning: resuming inside value round %" PRId64 " (not exact)\n",
            (step - c.iters) / c.value_steps);
  while (step < total) {
    bool value_phase = step >= c.iters;
    int64_t round = value_phase ? (step - c.iters) / c.value_steps : -1;
    if (value_phase && round != built_round) {
      free(ve.rows), free(ve.tgs), free(ve.vpos), free(ve.vbin);
      int64_t st[3];
      double tr = now();
      value_round_data(&c, &m, &t, &d, round, T, &ve, st);
      built_round = round;
      fprintf(stderr,
              "%svalue round %" PRId64 ": %" PRId64 " sequents searched at budget %" PRId64
              ", %" PRId64 " proved; %" PRId64 " labels (%" PRId64 " > 0) in %.1f s\n",
              tty ? "\n" : "", round + 1, c.value_sequents, c.value_budget, st[1], st[0], st[2],
              now() - tr);
      if (tyr_jsonl_write(metrics, path_metrics,
                          "{\"step\":%" PRId64 ",\"value_round\":%" PRId64
                          ",\"round_sequents\":%" PRId64 ",\"round_proved\":%" PRId64
                          ",\"round_labels\":%" PRId64 ",\"round_positive\":%" PRId64 "}",
                          step, round + 1, c.value_sequents, st[1], st[0], st[2]))
        return 1;
    }
    double lr = value_phase ? c.value_lr : tyr_lr_at(&sch, step), loss_v, pl_v, vl_v;
    if (value_phase && ve.n == 0) { /* nothing encoded: the round trains nothing */
      loss_v = pl_v = vl_v = 0;
    } else {
      TYR_SCOPE;
      uint64_t vcounter =
          (uint64_t)(step - c.iters - round * c.value_steps) * (uint64_t)c.batch_size;
      batch b = value_phase
                    ? make_batch(&ve, false, c.batch_size,
                                 data_seed ^ (0x2545F4914F6CDD1Dull * (uint64_t)(round + 1)),
                                 &vcounter, dev)
                    : make_batch(&e, false, c.batch_size, data_seed, &data_counter, dev);
      tyr_tensor *pl = NULL, *vl = NULL;
      tyr_tensor *loss = tyr_nanoproof_loss(&m, b.idx, b.tg, b.vpos, b.vbin, true, &pl, &vl);
      if (!loss) return 1;
      /* a value round trains on the value loss only: its examples have no step */
      tyr_backward_e(value_phase ? vl : loss);
      loss_v = tyr_item_e(loss), pl_v = tyr_item_e(pl), vl_v = tyr_item_e(vl);
      if (value_phase) loss_v = c.value_weight * vl_v, pl_v = 0;
      if (c.clip > 0) tyr_params_clip_grad_norm(&m.gpt.params, c.clip);
      tyr_optim_step(&opt, lr);
      tyr_optim_zero_grad(&opt);
    }
    if (!isfinite(loss_v)) {
      /* (checked on the combined loss; a value round reports w * value loss) */
      fprintf(stderr, "\n" PROG ": loss is %f at step %" PRId64 "; stopping\n", loss_v, step);
      return 1;
    }
    step++;
    steps_this_run++;
    last_loss = loss_v;
    double tn = now(), dt = tn - t_last;
    t_last = tn;
    double ex_s = (double)c.batch_size / (dt > 0 ? dt : 1e-9);
    ema = steps_this_run <= 2 ? ex_s : 0.9 * ema + 0.1 * ex_s;
    if (value_phase ? tyr_jsonl_write(metrics, path_metrics,
                                      "{\"step\":%" PRId64 ",\"value_round\":%" PRId64
                                      ",\"round_value_loss\":%.6f,\"lr\":%.6g}",
                                      step, round + 1, vl_v, lr)
                    : tyr_jsonl_write(metrics, path_metrics,
                                      "{\"step\":%" PRId64 ",\"loss\":%.6f,\"policy_loss\":%.6f,"
                                      "\"value_loss\":%.6f,\"lr\":%.6g}",
                                      step, loss_v, pl_v, vl_v, lr))
      return 1;
    if (tty ? (step % 5 == 0 || step == total) : (step % c.log_interval == 0 || step == total)) {
      char text[128];
      snprintf(text, sizeof text, "loss %.4f (policy %.4f, value %.4f) | %.0f seq/s", loss_v, pl_v,
               vl_v, ema);
      tyr_progress_draw(stderr, tty, step, total,
                        (double)(total - step) * (double)c.batch_size / (ema > 0 ? ema : 1), text);
    }
    bool at_end = step <= c.iters || (step - c.iters) % c.value_steps == 0;
    bool last = step == total || (c.max_steps && steps_this_run >= c.max_steps && at_end);
    if (step % c.eval_interval == 0 || step == c.iters || step == total) {
      evaluate_loss(&m, &c, &e, data_seed, &vloss, &vpl, &vvl);
      fprintf(stderr, "%sstep %" PRId64 ": val loss %.4f (policy %.4f, value %.4f)%s\n",
              tty ? "\n" : "", step, vloss, vpl, vvl, vloss < best_val ? " (best)" : "");
      if (tyr_jsonl_write(metrics, path_metrics,
                          "{\"step\":%" PRId64
                          ",\"val_loss\":%.6f,\"val_policy_loss\":%.6f,\"val_value_loss\":%.6f}",
                          step, vloss, vpl, vvl))
        return 1;
      if (vloss < best_val) {
        best_val = vloss;
        save_checkpoint(path_best, &m, &opt, step, data_counter, best_val, data_json);
      }
      if (at_end) save_checkpoint(path_last, &m, &opt, step, data_counter, best_val, data_json);
    } else if (last) {
      save_checkpoint(path_last, &m, &opt, step, data_counter, best_val, data_json);
    }
    if (last) break;
  }
  fclose(metrics);
  free(ve.rows), free(ve.tgs), free(ve.vpos), free(ve.vbin);
  double elapsed = now() - t_start;
  fprintf(stderr, PROG ": %" PRId64 " steps in %.1f s, last loss %.4f\n", steps_this_run, elapsed,
          last_loss);
  printf("final: step %" PRId64 " loss %.4f val_loss %.4f val_policy %.4f val_value %.4f\n", step,
         last_loss, vloss, vpl, vvl);
  if (c.plot &&
      tyr_plot_metrics_png(path_plot, path_metrics, "NANOPROOF LOSS", "POLICY + W * VALUE CE") == 0)
    fprintf(stderr, PROG ": wrote %s\n", path_plot);
  int rc = 0;
  if (c.final_eval && step == total) rc = evaluate(&c, &m, &t, &d, path_eval);
  fprintf(stderr, PROG ": model in %s; prove with: " PROG " --prove 'a & b |- b & a' %s\n",
          c.out_dir, c.out_dir);
  free(e.rows), free(e.tgs), free(e.vpos), free(e.vbin);
  free(d.ex), free(d.test);
  tyr_tokenizer_free(tok);
  tyr_optim_free(&opt);
  tyr_nanoproof_free(&m);
  return rc;
}
