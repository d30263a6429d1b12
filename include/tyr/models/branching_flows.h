/* tyr/models/branching_flows.h - the small transformer that learns a
 * Branching Flow (tyr/branching_flows.h) and the generation loop that
 * samples from it ("bfm" below).
 *
 * Bidirectional and time-conditioned: each element of x_t becomes
 *   h = in_x(x) + tok_emb[tok] + pos_emb[i] + time(t)
 * (in_x when dim > 0, tok_emb with vocab + 1 rows, the last the mask, when
 * vocab > 0; time(t) = fc2(silu(fc1([sin(f t), cos(f t)]))) with 16
 * frequencies f = 2^k pi / 2, the same for every element of a sequence);
 * pre-norm blocks h += proj(attn(ln1(h))), h += mlp(ln2(h)) (GELU), the
 * attention bidirectional over the sequence's live elements (padding keys
 * masked out); then ln_f and four heads per element: the anchor x1 (dim),
 * the anchor token's logits (vocab), the split intensity's logit and the
 * deletion logit.
 *
 * Parameter names (checkpoints): in_x.*, tok_emb.weight, pos_emb,
 * time.fc1.*, time.fc2.*, blocks.<l>.{ln1,ln2}.*, blocks.<l>.attn.{qkv,
 * proj}.*, blocks.<l>.mlp.{fc,proj}.*, ln_f.*, head_x.*, head_tok.*,
 * head_split.*, head_del.*. */
#ifndef TYR_MODELS_BRANCHING_FLOWS_H
#define TYR_MODELS_BRANCHING_FLOWS_H
#include "tyr/branching_flows.h"
#include "tyr/nn.h"
#include "tyr/params.h"
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TYR_BFM_TIME_FREQS = 16 };

typedef struct tyr_bfm_config {
  int64_t dim, vocab, max_len; /* as the flow's tyr_bf_config */
  int64_t n_layer, n_head, n_embd;
} tyr_bfm_config;
/* Raises naming the field; 0 when valid. */
int tyr_bfm_config_check_at(tyr_site s, const tyr_bfm_config *c);
#define tyr_bfm_config_check(c) tyr_bfm_config_check_at(TYR_SITE, (c))
/* one line of JSON (stored in checkpoints), and back */
void tyr_bfm_config_json(const tyr_bfm_config *c, char *buf, size_t n);
bool tyr_bfm_config_from_json(const char *json, tyr_bfm_config *out);

typedef struct tyr_bfm_block {
  tyr_nn_norm ln1, ln2;
  tyr_nn_linear qkv, proj;
  tyr_nn_mlp mlp;
} tyr_bfm_block;

typedef struct tyr_bfm {
  tyr_bfm_config cfg;
  tyr_params params;
  tyr_nn_linear in_x, time_fc1, time_fc2, head_x, head_tok, head_split, head_del;
  tyr_nn_embedding tok_emb;
  tyr_tensor *pos_emb; /* [max_len, E] */
  tyr_bfm_block *blocks;
  tyr_nn_norm ln_f;
  tyr_tensor *freqs; /* [1, TYR_BFM_TIME_FREQS], a constant */
} tyr_bfm;

/* Parameters in the default dtype on the default device, drawn from the
 * global generator (tyr_manual_seed): linears N(0, 0.02) (the output
 * projections of the blocks 0.02 / sqrt(2 n_layer)), embeddings N(0, 0.02),
 * the heads zero (so that training starts from mu = 1 and p_del = 1/2). */
int tyr_bfm_init_at(tyr_site s, tyr_bfm *m, const tyr_bfm_config *cfg);
#define tyr_bfm_init(m, cfg) tyr_bfm_init_at(TYR_SITE, (m), (cfg))
void tyr_bfm_free(tyr_bfm *m);

typedef struct tyr_bfm_out {
  tyr_tensor *x;      /* [B, L, dim] (dim > 0) */
  tyr_tensor *logits; /* [B, L, vocab] (vocab > 0) */
  tyr_tensor *split;  /* [B, L] */
  tyr_tensor *del;    /* [B, L] */
} tyr_bfm_out;
/* xt [B, L, dim] (dim > 0, else NULL), tok [B, L] i64 in 0..vocab (vocab >
 * 0, else NULL), t [B], pad [B, L] (1: a live element, 0: padding); L <=
 * max_len.  Returns 0 or the error status. */
int tyr_bfm_forward_at(tyr_site s, tyr_bfm *m, tyr_tensor *xt, tyr_tensor *tok, tyr_tensor *t,
                       tyr_tensor *pad, tyr_bfm_out *out);
#define tyr_bfm_forward(m, xt, tok, t, pad, out)                                                   \
  tyr_bfm_forward_at(TYR_SITE, (m), (xt), (tok), (t), (pad), (out))

/* The weights of the three losses (the total is their weighted sum). */
typedef struct tyr_bfm_loss_weights {
  double base, split, del;
} tyr_bfm_loss_weights;
typedef struct tyr_bfm_losses {
  tyr_tensor *total, *base, *split, *del; /* scalars; base = mse + ce */
} tyr_bfm_losses;
/* The batch as tensors, the forward, and the losses: base over live
 * flowable cells (MSE of the continuous anchors plus CE of the anchor
 * tokens), split and deletion over live branchable cells. */
int tyr_bfm_loss_at(tyr_site s, tyr_bfm *m, const tyr_bf_batch *b, tyr_bfm_loss_weights w,
                    tyr_bfm_losses *out);
#define tyr_bfm_loss(m, b, w, out) tyr_bfm_loss_at(TYR_SITE, (m), (b), (w), (out))

/* Called after every step of tyr_bfm_generate with the time reached. */
typedef void (*tyr_bfm_step_fn)(double t, const tyr_bf_state *states, int64_t n, void *ctx);
/* n sequences from n_start start elements each, `steps` Euler steps of
 * 1/steps (tyr_bf_step, sequence i drawing from stream i of seed), the
 * model run on all of them at once without gradients.  states receives n
 * sequences (free each with tyr_bf_state_free).  Returns 0 or the status. */
int tyr_bfm_generate_at(tyr_site s, tyr_bfm *m, const tyr_bf_config *c, int64_t n, int64_t n_start,
                        int64_t steps, uint64_t seed, tyr_bf_state *states, tyr_bfm_step_fn on_step,
                        void *ctx);
#define tyr_bfm_generate(m, c, n, n_start, steps, seed, states, fn, ctx)                           \
  tyr_bfm_generate_at(TYR_SITE, (m), (c), (n), (n_start), (steps), (seed), (states), (fn), (ctx))

#ifdef __cplusplus
}
#endif
#endif
