/* tyr/models/diffusion_lm.h - a masked (absorbing-state) discrete diffusion
 * language model on ASCII characters ("dlm" below).
 *
 * Vocabulary: the bytes 0..127, with 0 the MASK token.  The model sees a
 * sequence whose masked cells hold 0 and a time step t in [0, T), and
 * predicts every cell's clean character:
 *
 *   x = tok_emb[ids] / sqrt(E) + time_emb[t]            (every position)
 *   per block:  x += attn(rms(x)),  x += proj(relu(fc(rms(x)))^2)
 *   logits = head(rms(x))                               [B, S, 128]
 *
 * rms is RMSNorm without a weight; attention is bidirectional (no causal
 * mask) with rotary embeddings and RMSNorm on q and k; no biases; the
 * attention and MLP output projections and the head start at zero.
 *
 * Training (tyr_dlm_noise, tyr_dlm_loss_weights, tyr_dlm_loss): each
 * sequence draws t ~ U{0..T-1} and masks each position at or after
 * context_len independently with probability (t + 1) / T (that is
 * linspace(1/T, 1, T)[t]).  The loss is a weighted sum of the masked
 * cells' cross entropies; the weights give either the mean over the masked
 * cells (TYR_DLM_LOSS_CE) or the MDLM bound on the negative log-likelihood
 * per character (TYR_DLM_LOSS_ELBO: each masked cell weighted by 1/p_t).
 *
 * Sampling (tyr/models/diffusion_lm_sample.h) starts from masked cells and
 * commits the most confident predictions step by step.
 *
 * Parameter names (as in the safetensors checkpoints and bench/
 * torch_diffusion.py): tok_emb [128, E], time_emb [T, E],
 * blocks.<l>.attn.qkv [3E, E] (q, k, v rows), blocks.<l>.attn.proj [E, E],
 * blocks.<l>.mlp.fc [4E, E], blocks.<l>.mlp.proj [E, 4E], head [128, E]. */
#ifndef TYR_MODELS_DIFFUSION_LM_H
#define TYR_MODELS_DIFFUSION_LM_H
#include "tyr/params.h"
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  TYR_DLM_VOCAB = 128, /* ASCII */
  TYR_DLM_MASK = 0,    /* the absorbing state */
  /* the tiny config, whose forward is compiled with these shapes */
  TYR_DLM_TINY_SEQ = 64,
  TYR_DLM_TINY_LAYERS = 2,
  TYR_DLM_TINY_HEADS = 2,
  TYR_DLM_TINY_EMBD = 64,
  TYR_DLM_TINY_STEPS = 16,
};

typedef struct tyr_dlm_config {
  char name[16];       /* "tiny", "small", "full" or "custom" */
  int64_t seq_len;     /* S */
  int64_t n_layer;     /* L */
  int64_t n_head;      /* H */
  int64_t n_embd;      /* E */
  int64_t steps;       /* T: diffusion time steps */
  int64_t context_len; /* leading positions never masked in training */
  double rope_base;    /* 10000 */
  double norm_eps;     /* 1e-6 */
} tyr_dlm_config;

/* The named configs: tiny (seq 64, 2 layers, 2 heads, 64 wide, T 16),
 * small (128, 4/4/256, T 64) and full (256, 6/6/384, T 128, context 16).
 * Returns false for another name. */
bool tyr_dlm_config_named(const char *name, tyr_dlm_config *out);
/* Raises naming the field (heads not dividing E, odd head dim, context not
 * shorter than the sequence, ...). */
int tyr_dlm_config_check_at(tyr_site s, const tyr_dlm_config *c);
#define tyr_dlm_config_check(c) tyr_dlm_config_check_at(TYR_SITE, (c))
/* The config as one line of JSON (stored in checkpoints and compared on
 * resume and --generate). */
void tyr_dlm_config_json(const tyr_dlm_config *c, char *buf, size_t n);
/* Parses what tyr_dlm_config_json wrote; false if it is not that. */
bool tyr_dlm_config_from_json(const char *json, tyr_dlm_config *out);

typedef struct tyr_dlm_block {
  tyr_tensor *qkv, *attn_proj, *fc, *mlp_proj;
} tyr_dlm_block;

typedef struct tyr_dlm {
  tyr_dlm_config cfg;
  tyr_params params;
  tyr_tensor *tok_emb, *time_emb, *head;
  tyr_dlm_block *blocks;
  tyr_tensor *rope_cos, *rope_sin; /* [S, head_dim/2], constants */
  tyr_device device;
} tyr_dlm;

/* Parameters in the default dtype on dev: embeddings ~ N(0, 1) (token) and
 * N(0, 1/sqrt(E)) (time), qkv and fc ~ N(0, 1/sqrt(in)), the output
 * projections and the head zero.  Draws from the global generator. */
int tyr_dlm_init_at(tyr_site s, tyr_dlm *m, const tyr_dlm_config *cfg, tyr_device dev);
#define tyr_dlm_init(m, cfg, dev) tyr_dlm_init_at(TYR_SITE, (m), (cfg), (dev))
void tyr_dlm_free(tyr_dlm *m);

/* ids [B, S'] (i64, 0..127, S' <= seq_len), t [B] (i64, 0..T-1) -> logits
 * [B, S', 128].  The tiny config runs a forward whose shapes are compile-
 * time constants (only B is a run-time dim). */
tyr_tensor *tyr_dlm_forward_at(tyr_site s, tyr_dlm *m, tyr_tensor *ids, tyr_tensor *t);
#define tyr_dlm_forward(m, ids, t) tyr_dlm_forward_at(TYR_SITE, (m), (ids), (t))

/* log softmax(logits)[b, i, x0[b, i]]: the log-probability of each clean
 * character, [B, S] (x0 [B, S] i64). */
tyr_tensor *tyr_dlm_token_logp_at(tyr_site s, tyr_dlm *m, tyr_tensor *ids, tyr_tensor *t,
                                  tyr_tensor *x0);
#define tyr_dlm_token_logp(m, ids, t, x0) tyr_dlm_token_logp_at(TYR_SITE, (m), (ids), (t), (x0))
/* -sum(w[b, i] * log softmax(logits)[b, i, x0[b, i]]): a scalar.
 * x0 [B, S] i64 (the clean text), w [B, S] of the parameters' dtype (from
 * tyr_dlm_loss_weights; zero where not masked). */
tyr_tensor *tyr_dlm_loss_at(tyr_site s, tyr_dlm *m, tyr_tensor *ids, tyr_tensor *t, tyr_tensor *x0,
                            tyr_tensor *w);
#define tyr_dlm_loss(m, ids, t, x0, w) tyr_dlm_loss_at(TYR_SITE, (m), (ids), (t), (x0), (w))

/* ---- the forward process (host arrays) ---------------------------------- */
/* The masking probability at time step t: (t + 1) / T. */
double tyr_dlm_mask_prob(const tyr_dlm_config *c, int64_t t);
/* Noises B sequences x0 [B, S] (S = seq_len): t[b] ~ U{0..T-1}, then each
 * position i >= context_len is masked (xt = 0, masked = 1) with probability
 * tyr_dlm_mask_prob(t[b]); the others keep x0.  Random numbers come from
 * Philox (seed, *counter), one counter per four draws, so one (seed,
 * counter) gives one batch anywhere; *counter advances by
 * 1 + ceil(S / 4) per sequence. */
void tyr_dlm_noise(const tyr_dlm_config *c, int64_t B, const int64_t *x0, uint64_t seed,
                   uint64_t *counter, int64_t *xt, int64_t *t, uint8_t *masked);

typedef enum tyr_dlm_loss_kind {
  TYR_DLM_LOSS_CE,  /* sum over masked cells / number of masked cells in the batch */
  TYR_DLM_LOSS_ELBO /* sum over masked cells / p_t, / (B (S - context_len)): nats per char */
} tyr_dlm_loss_kind;
bool tyr_dlm_loss_kind_parse(const char *name, tyr_dlm_loss_kind *out);
/* Weights w [B, S] for tyr_dlm_loss: CE gives masked / count (all zero when
 * nothing is masked), ELBO gives masked / (p_t B (S - context_len)). */
void tyr_dlm_loss_weights(const tyr_dlm_config *c, tyr_dlm_loss_kind kind, int64_t B,
                          const int64_t *t, const uint8_t *masked, float *w);

#ifdef __cplusplus
}
#endif
#endif
