/* NanoProof: the nanochat GPT with a value head and the combined policy +
 * value loss (tyr/models/nanoproof.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/checkpoint.h"
#include "tyr/models/gpt.h"
#include "tyr/models/nanoproof.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_nanoproof";

/* ---- special tokens ------------------------------------------------------------ */
#define N_BASE 12
#define N_GREEK 34
#define N_MATH 36
#define N_LEAN 24
#define N_TOOL 4
#define N_SPECIALS (N_BASE + TYR_NANOPROOF_BINS + N_GREEK + N_MATH + N_LEAN + N_TOOL)

static const char *const BASE[N_BASE] = {
    "<|pad|>",           "<|bos|>",          "<|eos|>",
    "<|user_start|>",    "<|user_end|>",     "<|assistant_start|>",
    "<|assistant_end|>", "<|python_start|>", "<|python_end|>",
    "<|output_start|>",  "<|output_end|>",   "<|value|>"};
static const char *const GREEK[N_GREEK] = {
    "α", "β", "γ", "δ", "ε", "ζ", "η", "θ", "ι", "κ", "λ", "μ", "ν", "ξ", "π", "ρ", "σ",
    "τ", "υ", "φ", "χ", "ψ", "ω", "Γ", "Δ", "Θ", "Λ", "Ξ", "Π", "Σ", "Υ", "Φ", "Ψ", "Ω"};
static const char *const MATH[N_MATH] = {
    "∀", "∃", "¬", "∧", "∨", "→", "↔", "⊢", "⊤", "⊥", "≤", "≥", "≠", "∈", "∉", "⊆", "⊂", "∪",
    "∩", "×", "∘", "ℕ", "ℤ", "ℚ", "ℝ", "ℂ", "⟨", "⟩", "↑", "∑", "∏", "√", "∞", "≡", "∣", "⁻¹"};
static const char *const LEAN[N_LEAN] = {
    "<|lean:theorem|>",  "<|lean:lemma|>",     "<|lean:by|>",          "<|lean:intro|>",
    "<|lean:apply|>",    "<|lean:exact|>",     "<|lean:rw|>",          "<|lean:simp|>",
    "<|lean:cases|>",    "<|lean:induction|>", "<|lean:have|>",        "<|lean:show|>",
    "<|lean:calc|>",     "<|lean:fun|>",       "<|lean:constructor|>", "<|lean:omega|>",
    "<|lean:linarith|>", "<|lean:ring|>",      "<|lean:norm_num|>",    "<|lean:aesop|>",
    "<|lean:sorry|>",    "<|lean:refine|>",    "<|lean:use|>",         "<|lean:obtain|>"};
static const char *const TOOL[N_TOOL] = {"<|tool_start|>", "<|tool_end|>", "<|tool_result|>",
                                         "<|tool_error|>"};

const char *const *tyr_nanoproof_special_tokens(int *n) {
  static const char *all[N_SPECIALS];
  static char bins[TYR_NANOPROOF_BINS][16];
  if (!all[0]) { /* filled on the first call; the same every time */
    int k = 0;
    for (int i = 0; i < N_BASE; i++) all[k++] = BASE[i];
    for (int i = 0; i < TYR_NANOPROOF_BINS; i++) {
      snprintf(bins[i], sizeof bins[i], "<|bin_%02d|>", i);
      all[k++] = bins[i];
    }
    for (int i = 0; i < N_GREEK; i++) all[k++] = GREEK[i];
    for (int i = 0; i < N_MATH; i++) all[k++] = MATH[i];
    for (int i = 0; i < N_LEAN; i++) all[k++] = LEAN[i];
    for (int i = 0; i < N_TOOL; i++) all[k++] = TOOL[i];
  }
  if (n) *n = N_SPECIALS;
  return all;
}

/* ---- configs ------------------------------------------------------------------- */
bool tyr_nanoproof_config_preset(const char *name, int64_t vocab, tyr_nanoproof_config *out) {
  struct {
    const char *name;
    int64_t layers, embd, heads, kv, block, vocab;
  } presets[] = {
      {"tiny", 2, 64, 4, 2, 128, 512},
      {"small", 4, 128, 4, 2, 256, 1024},
      {"default", 12, 768, 6, 6, 2048, 50304},
      {"full", 26, 1664, 13, 13, 2048, 50304},
  };
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
    if (strcmp(name, presets[i].name)) continue;
    int64_t v = vocab > 0 ? (vocab + 63) / 64 * 64 : presets[i].vocab;
    tyr_gpt_config c = tyr_gpt_config_gpt2(v, presets[i].block, presets[i].layers, presets[i].heads,
                                           presets[i].embd);
    c.n_kv_head = presets[i].kv;
    c.bias = false;
    c.tied_head = false;
    c.learned_pos = false;
    c.rope = true;
    c.qk_norm = true;
    c.norm = TYR_NORM_RMS;
    c.act = TYR_ACT_RELU2;
    c.logit_softcap = 15;
    c.layer_lambdas = true;
    c.zero_init_proj = true;
    c.norm_no_weight = true;
    c.embed_norm = true;
    memset(out, 0, sizeof *out);
    out->gpt = c;
    out->value_weight = 1.0;
    return true;
  }
  return false;
}

int tyr_nanoproof_init_at(tyr_site s, tyr_nanoproof *m, const tyr_nanoproof_config *cfg,
                          tyr_device dev) {
  memset(m, 0, sizeof *m);
  if (!(cfg->value_weight >= 0))
    return tyr_raise(TYR_ERR_ARG, s, OP, "value_weight must be >= 0, got %g", cfg->value_weight);
  int st = tyr_gpt_init_at(s, &m->gpt, &cfg->gpt, dev);
  if (st) return st;
  m->cfg = *cfg;
  m->cfg.gpt = m->gpt.cfg;
  int64_t E = m->gpt.cfg.n_embd;
  tyr_device prev = tyr_default_device();
  tyr_set_default_device(dev);
  st = tyr_nn_linear_init_at(s, &m->value_fc, &m->gpt.params, "value.fc", E, 4 * E, false,
                             m->gpt.cfg.init_std);
  if (!st)
    st = tyr_nn_linear_init_at(s, &m->value_proj, &m->gpt.params, "value.proj", 4 * E,
                               TYR_NANOPROOF_BINS, false, m->gpt.cfg.init_std);
  if (!st) { /* zero-initialised output, as the projections */
    TYR_SCOPE;
    tyr_tensor *w = m->value_proj.weight;
    st = tyr_copy_at(s, w, tyr_zeros_at(s, w->dtype, dev, 2, w->shape));
  }
  tyr_set_default_device(prev);
  if (st) tyr_nanoproof_free(m);
  return st;
}

void tyr_nanoproof_free(tyr_nanoproof *m) {
  tyr_gpt_free(&m->gpt);
  memset(m, 0, sizeof *m);
}

tyr_tensor *tyr_nanoproof_value_logits_at(tyr_site s, tyr_nanoproof *m, tyr_tensor *h) {
  if (!h) return NULL;
  tyr_nn_linear fc = m->value_fc, proj = m->value_proj;
  if (fc.weight->dtype != h->dtype) {
    fc.weight = tyr_to_dtype_at(s, fc.weight, h->dtype);
    proj.weight = tyr_to_dtype_at(s, proj.weight, h->dtype);
  }
  tyr_tensor *x = tyr_nn_linear_forward_at(s, &fc, h);
  x = x ? tyr_relu2_at(s, x) : NULL;
  return x ? tyr_nn_linear_forward_at(s, &proj, x) : NULL;
}

static tyr_tensor *as_f32(tyr_site s, tyr_tensor *t) {
  return t && (t->dtype == TYR_BF16 || t->dtype == TYR_F16) ? tyr_to_dtype_at(s, t, TYR_F32) : t;
}

tyr_tensor *tyr_nanoproof_loss_at(tyr_site s, tyr_nanoproof *m, tyr_tensor *idx,
                                  tyr_tensor *targets, tyr_tensor *value_pos, tyr_tensor *value_bin,
                                  bool training, tyr_tensor **policy, tyr_tensor **value) {
  if (!idx || !targets || !value_pos || !value_bin) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_nanoproof_loss", "%s is NULL",
              !idx         ? "idx"
              : !targets   ? "targets"
              : !value_pos ? "value_pos"
                           : "value_bin");
    return NULL;
  }
  char b1[96], b2[96];
  if (idx->rank != 2 || value_pos->rank != 1 || value_bin->rank != 1 ||
      value_pos->shape[0] != idx->shape[0] || value_bin->shape[0] != idx->shape[0]) {
    tyr_raise(TYR_ERR_SHAPE, s, "tyr_nanoproof_loss",
              "idx must be [B, T] and value_pos, value_bin [B]; got idx %s, value_pos %s",
              tyr_shape_str(idx->shape, idx->rank, b1, sizeof b1),
              tyr_shape_str(value_pos->shape, value_pos->rank, b2, sizeof b2));
    return NULL;
  }
  int64_t B = idx->shape[0], E = m->gpt.cfg.n_embd;
  tyr_tensor *h = tyr_gpt_hidden_at(s, &m->gpt, idx, training);
  if (!h) return NULL;
  tyr_tensor *logits =
      tyr_linear_at(s, h, tyr_to_dtype_at(s, m->gpt.lm_head.weight, h->dtype), NULL);
  if (logits && m->gpt.cfg.logit_softcap > 0)
    logits = tyr_softcap_at(s, logits, m->gpt.cfg.logit_softcap);
  tyr_tensor *pl = logits ? tyr_cross_entropy_at(s, as_f32(s, logits), targets, -1) : NULL;
  /* the hidden state at each row's value token: gather along T */
  tyr_tensor *at =
      tyr_reshape_at(s, tyr_to_dtype_at(s, value_pos, TYR_I64), 3, (int64_t[]){B, 1, 1});
  at = at ? tyr_contiguous_at(s, tyr_expand_at(s, at, 3, (int64_t[]){B, 1, E})) : NULL;
  tyr_tensor *hv = at ? tyr_reshape_at(s, tyr_gather_at(s, h, 1, at), 2, (int64_t[]){B, E}) : NULL;
  tyr_tensor *vl = as_f32(s, tyr_nanoproof_value_logits_at(s, m, hv));
  tyr_tensor *vloss =
      vl ? tyr_cross_entropy_at(s, vl, tyr_to_dtype_at(s, value_bin, TYR_I64), -1) : NULL;
  if (!pl || !vloss) return NULL;
  if (policy) *policy = pl;
  if (value) *value = vloss;
  return tyr_add_at(s, pl, tyr_mul_scalar_at(s, vloss, m->cfg.value_weight));
}

int tyr_nanoproof_value_bin(double v) {
  if (!(v > 0)) return 0;
  int b = (int)floor(v * TYR_NANOPROOF_BINS);
  return b >= TYR_NANOPROOF_BINS ? TYR_NANOPROOF_BINS - 1 : b;
}

double tyr_nanoproof_value_expect(const float *logits, double *probs) {
  double mx = -INFINITY, z = 0, e = 0, p[TYR_NANOPROOF_BINS];
  for (int b = 0; b < TYR_NANOPROOF_BINS; b++) mx = fmax(mx, logits[b]);
  for (int b = 0; b < TYR_NANOPROOF_BINS; b++) z += p[b] = exp(logits[b] - mx);
  for (int b = 0; b < TYR_NANOPROOF_BINS; b++) {
    p[b] /= z;
    e += p[b] * (b + 0.5) / TYR_NANOPROOF_BINS;
    if (probs) probs[b] = p[b];
  }
  return e;
}

/* ---- checkpoints ------------------------------------------------------------------ */
int tyr_nanoproof_save_at(tyr_site s, tyr_nanoproof *m, const char *path) {
  char gj[2048], nj[128];
  if (tyr_gpt_config_to_json_at(s, &m->gpt.cfg, gj, sizeof gj) < 0) return TYR_ERR_ARG;
  snprintf(nj, sizeof nj, "{\"value_weight\":%.17g}", m->cfg.value_weight);
  tyr_checkpoint_info info = {.step = 0, .rng = tyr_rng_get_state(), .nmeta = 2};
  info.keys[0] = TYR_GPT_CONFIG_KEY, info.values[0] = gj;
  info.keys[1] = TYR_NANOPROOF_CONFIG_KEY, info.values[1] = nj;
  return tyr_checkpoint_save_at(s, path, &m->gpt.params, NULL, &info);
}

int tyr_nanoproof_load_at(tyr_site s, tyr_nanoproof *m, const char *path, tyr_device dev,
                          const tyr_nanoproof_config *want) {
  memset(m, 0, sizeof *m);
  tyr_checkpoint *ck = tyr_checkpoint_open_at(s, path);
  if (!ck) return TYR_ERR_IO;
  int st = 0;
  tyr_nanoproof_config c;
  memset(&c, 0, sizeof c);
  const char *gj = tyr_checkpoint_meta(ck, TYR_GPT_CONFIG_KEY);
  const char *nj = tyr_checkpoint_meta(ck, TYR_NANOPROOF_CONFIG_KEY);
  if (!gj || !nj) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path, "not a NanoProof checkpoint: no \"%s\" metadata",
                   gj ? TYR_NANOPROOF_CONFIG_KEY : TYR_GPT_CONFIG_KEY);
    goto done;
  }
  if ((st = tyr_gpt_config_from_json_at(s, gj, path, &c.gpt))) goto done;
  const char *w = strstr(nj, "\"value_weight\":");
  c.value_weight = w ? strtod(w + 15, NULL) : 1.0;
  if (want) {
    struct {
      const char *name;
      int64_t have, asked;
    } f[] = {{"n_layer", c.gpt.n_layer, want->gpt.n_layer},
             {"n_embd", c.gpt.n_embd, want->gpt.n_embd},
             {"n_head", c.gpt.n_head, want->gpt.n_head},
             {"n_kv_head", c.gpt.n_kv_head,
              want->gpt.n_kv_head ? want->gpt.n_kv_head : want->gpt.n_head},
             {"vocab_size", c.gpt.vocab_size, want->gpt.vocab_size},
             {"block_size", c.gpt.block_size, want->gpt.block_size}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
      if (f[i].have != f[i].asked) {
        st = tyr_raise(TYR_ERR_ARG, s, path,
                       "the checkpoint holds another config: its %s is %lld, the run asks %lld",
                       f[i].name, (long long)f[i].have, (long long)f[i].asked);
        goto done;
      }
  }
  tyr_rng_state rng = tyr_rng_get_state(); /* the initial weights are overwritten */
  st = tyr_nanoproof_init_at(s, m, &c, dev);
  tyr_rng_set_state(rng);
  if (st) goto done;
  if ((st = tyr_checkpoint_load_weights_at(s, ck, &m->gpt.params))) tyr_nanoproof_free(m);
done:
  tyr_checkpoint_close(ck);
  return st;
}
