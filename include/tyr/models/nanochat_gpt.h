/* tyr/models/nanochat_gpt.h - the GPT of the modded-nanogpt speedrun
 * (FlexAttention-era record; the model train_nanochat trains): RMSNorm
 * without weights, QK-norm, rotary embeddings (optionally half-truncated),
 * ReLU² MLP, value embeddings mixed into v (three tables in a U-net
 * pattern), U-net skip connections with learned weights, per-block lambdas
 * x = l0 x + l1 x0, the smear gate (previous-token mix), a per-head
 * attention gate, a layer without attention, an untied zero-initialised
 * head with a logit softcap, zero-initialised output projections, and
 * attention with long/short sliding windows and document masks.  Each
 * feature is a flag of the config.
 *
 *   tyr_nanochat_config c = tyr_nanochat_config_d12();
 *   tyr_nanochat_gpt m;
 *   if (tyr_nanochat_init(&m, &c, TYR_DEVICE_CUDA(0))) return 1;
 *   tyr_nanochat_windows w = {.long_window = 1792, .short_window = 896};
 *   tyr_tensor *loss = tyr_nanochat_loss(&m, idx, targets, doc_ids, &w);
 *   tyr_backward(loss);
 *   tyr_nanochat_free(&m);
 *
 * The model's sizes come from a run-time config, so it keeps erased
 * handles (tyr/nn.h's modules do the same); its ops check every shape at
 * run time. */
#ifndef TYR_MODELS_NANOCHAT_GPT_H
#define TYR_MODELS_NANOCHAT_GPT_H
#include <stdint.h>

#include "tyr/params.h"
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The sizes of the speedrun's model (GPT-2 small class). */
enum {
  TYR_NANOCHAT_VOCAB = 50304, /* GPT-2's 50257 rounded up to a multiple of 128 */
  TYR_NANOCHAT_LAYERS = 12,
  TYR_NANOCHAT_HEADS = 6,
  TYR_NANOCHAT_HEAD_DIM = 128,
  TYR_NANOCHAT_WIDTH = 768,
  TYR_NANOCHAT_GATE_DIM = 12, /* channels the smear and attention gates read */
  TYR_NANOCHAT_MAX_LAYERS = 64
};

typedef struct tyr_nanochat_config {
  int64_t vocab_size;  /* 50304 */
  int64_t n_layer;     /* 12 (at most TYR_NANOCHAT_MAX_LAYERS) */
  int64_t n_head;      /* 6 */
  int64_t head_dim;    /* 128 (even) */
  int64_t n_embd;      /* 768: the residual width */
  int64_t mlp_hidden;  /* 4 n_embd */
  int64_t max_seq_len; /* positions of the rotary tables */
  /* per-layer attention: 'L' long window, 'S' short window, 'N' no
     attention (the layer is an MLP only); n_layer characters.  Empty:
     "LSSSLSSNSSSL" cut or cycled to n_layer, with 'N' only where
     no_attn_layer says. */
  char window_pattern[TYR_NANOCHAT_MAX_LAYERS + 1];
  int64_t no_attn_layer;   /* the layer without attention (7); -1: none */
  bool qk_norm;            /* RMSNorm of q and k per head */
  bool rope_half;          /* half-truncated rotary: D/4 frequencies (1/1024)^(i/(D/4-1)), the
                              other D/4 pairs not rotated; false: base rope_base */
  double rope_base;        /* 10000 (when !rope_half) */
  bool value_embeds;       /* three value-embedding tables, layers 0,1,2 and the last three */
  bool unet_skips;         /* x += w_i skip_{L-1-i} in the second half */
  bool block_lambdas;      /* x = l0 x + l1 x0 before each block */
  bool smear_gate;         /* x_t += lambda sigmoid(g . x_t[:12]) x_{t-1} after the embedding */
  bool attn_gate;          /* y_h *= sigmoid(G_h . x[:12]) per head */
  bool zero_init_proj;     /* attention and MLP output projections (and the head) start at 0 */
  double logit_softcap;    /* 15: cap tanh(logits / cap); 0: none */
  double attn_scale;       /* 0.12; 0: 1/sqrt(head_dim) */
  double norm_eps;         /* 1e-6 (0: that) */
  tyr_dtype compute_dtype; /* TYR_BF16 / TYR_F16: blocks compute in it; else the params' dtype */
} tyr_nanochat_config;

/* The record's model: 12 layers, 6 heads x 128, width 768, vocab 50304,
 * every feature on, max_seq_len 2048. */
tyr_nanochat_config tyr_nanochat_config_d12(void);
/* The debug preset's model: 4 layers, 2 heads x 128, width 256, vocab
 * 50304, max_seq_len 512, every feature on (the layer without attention
 * off: it would be one of four). */
tyr_nanochat_config tyr_nanochat_config_debug(void);
/* Checks a config (names the field); 0 or the status. */
int tyr_nanochat_config_check_at(tyr_site s, const tyr_nanochat_config *c);
/* The config as one line of JSON, and back (unknown fields are errors
 * naming the field and `what`). */
int tyr_nanochat_config_to_json_at(tyr_site s, const tyr_nanochat_config *c, char *buf, size_t n);
int tyr_nanochat_config_from_json_at(tyr_site s, const char *json, const char *what,
                                     tyr_nanochat_config *out);

typedef struct tyr_nanochat_block {
  tyr_tensor *qkv;       /* [3 H D, C] (NULL in a layer without attention) */
  tyr_tensor *attn_proj; /* [C, H D] */
  tyr_tensor *v_lambdas; /* [2]: v = l0 v + l1 ve */
  tyr_tensor *attn_gate; /* [H, 12] */
  tyr_tensor *fc;        /* [mlp_hidden, C] */
  tyr_tensor *mlp_proj;  /* [C, mlp_hidden] */
  tyr_tensor *lambdas;   /* [2]: x = l0 x + l1 x0 */
} tyr_nanochat_block;

typedef struct tyr_nanochat_gpt {
  tyr_nanochat_config cfg;
  tyr_device device;
  tyr_params params;           /* every parameter, by name ("embed", "blocks.3.qkv", ...) */
  tyr_tensor *embed;           /* [V, C] */
  tyr_tensor *value_embeds[3]; /* [V, H D]; n_layer / 2 of them below 6 layers */
  tyr_tensor *skip_weights;    /* [n_layer / 2] */
  tyr_tensor *smear_gate;      /* [1, 12] */
  tyr_tensor *smear_lambda;    /* [1] */
  tyr_tensor *lm_head;         /* [V, C] */
  tyr_nanochat_block blocks[TYR_NANOCHAT_MAX_LAYERS];
  tyr_tensor *rope_cos, *rope_sin; /* [max_seq_len, D / 2] constants */
} tyr_nanochat_gpt;

/* Builds the model on dev with the speedrun's initialisation (hidden
 * matrices uniform with bound sqrt(3) / (2 sqrt(in)), embeddings N(0, 1),
 * zero output projections and head when zero_init_proj, lambdas (1, 0),
 * value lambdas (0.5, 0.5), skip weights 1, gates 0), drawn from the global
 * RNG in the order the parameters are listed.  0 or the status (m zeroed). */
int tyr_nanochat_init_at(tyr_site s, tyr_nanochat_gpt *m, const tyr_nanochat_config *c,
                         tyr_device dev);
void tyr_nanochat_free(tyr_nanochat_gpt *m);

/* The attention windows of one call: long and short sliding windows in
 * tokens (0: the whole causal context).  They may change at every call
 * (the speedrun grows them during training). */
typedef struct tyr_nanochat_windows {
  int64_t long_window;
  int64_t short_window;
} tyr_nanochat_windows;

/* Logits [B, T, V] (f32 when computing in 16 bits) of idx [B, T] (i32 or
 * i64 token ids < vocab_size, T <= max_seq_len); doc_ids NULL or [B, T]
 * i32 (attention stays inside a document); windows NULL: no windows.  With
 * targets ([B, T], -1 ignored) and loss non-NULL, *loss is the mean
 * cross-entropy.  NULL after raising. */
tyr_tensor *tyr_nanochat_forward_at(tyr_site s, tyr_nanochat_gpt *m, tyr_tensor *idx,
                                    tyr_tensor *doc_ids, const tyr_nanochat_windows *windows,
                                    tyr_tensor *targets, tyr_tensor **loss);
/* The mean cross-entropy alone. */
tyr_tensor *tyr_nanochat_loss_at(tyr_site s, tyr_nanochat_gpt *m, tyr_tensor *idx,
                                 tyr_tensor *targets, tyr_tensor *doc_ids,
                                 const tyr_nanochat_windows *windows);

/* Matmul FLOPs of a training step per token at sequence length T and the
 * given windows (forward and backward: 6 N for the matrices, attention by
 * the keys each query sees), for MFU. */
double tyr_nanochat_flops_per_token(const tyr_nanochat_gpt *m, int64_t T,
                                    const tyr_nanochat_windows *windows);

/* The metadata key of the config in a checkpoint. */
#define TYR_NANOCHAT_CONFIG_KEY "tyr.nanochat.config"
/* Writes the parameters and the config (atomically); 0 or the status. */
int tyr_nanochat_save_at(tyr_site s, tyr_nanochat_gpt *m, const char *path);
/* Builds m on dev from such a file and loads its weights (the global RNG
 * is left as it was); 0 or the status (m zeroed). */
int tyr_nanochat_load_at(tyr_site s, tyr_nanochat_gpt *m, const char *path, tyr_device dev);

#define tyr_nanochat_config_check(c) tyr_nanochat_config_check_at(TYR_SITE, (c))
#define tyr_nanochat_init(m, c, dev) tyr_nanochat_init_at(TYR_SITE, (m), (c), (dev))
#define tyr_nanochat_forward(m, idx, doc, w, targets, loss)                                        \
  tyr_nanochat_forward_at(TYR_SITE, (m), (idx), (doc), (w), (targets), (loss))
#define tyr_nanochat_loss(m, idx, targets, doc, w)                                                 \
  tyr_nanochat_loss_at(TYR_SITE, (m), (idx), (targets), (doc), (w))
#define tyr_nanochat_save(m, path) tyr_nanochat_save_at(TYR_SITE, (m), (path))
#define tyr_nanochat_load(m, path, dev) tyr_nanochat_load_at(TYR_SITE, (m), (path), (dev))

#ifdef __cplusplus
}
#endif
#endif
