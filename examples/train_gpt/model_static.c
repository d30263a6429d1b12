/* The shakespeare_cpu model's forward pass with every shape in the C types.
 *
 * The parameters live in the library's tyr_gpt (erased handles, so that
 * the same program also runs other configs); here each one is re-typed with
 * tyr_cast to its static shape, and every op below is checked by the
 * compiler: give tyr_linear a [C, 3C] weight or forget a transpose and the
 * program does not build.  The vocabulary size comes from the data, so V is
 * a run-time dim: those checks happen at run time, in the same source. */
#include "train_gpt.h"

enum {
  B = SC_BATCH,
  T = SC_BLOCK,
  C = SC_EMBD,
  H = SC_HEADS,
  D = SC_EMBD / SC_HEADS,
  L = SC_LAYERS,
  F = 4 * SC_EMBD,
};

bool static_model_matches(const tyr_gpt *g, int64_t b, int64_t t) {
  const tyr_gpt_config *c = &g->cfg;
  return b == B && t == T && c->block_size == T && c->n_embd == C && c->n_head == H &&
         c->n_kv_head == H && c->n_layer == L && c->mlp_hidden == F && c->learned_pos && !c->rope &&
         !c->qk_norm && c->bias && c->tied_head && c->norm == TYR_NORM_LAYER &&
         c->act == TYR_ACT_GELU && c->dropout == 0 && c->logit_softcap == 0 &&
         c->compute_dtype != TYR_BF16 && c->compute_dtype != TYR_F16;
}

tyr_tensor *static_model_loss(tyr_gpt *g, tyr_tensor *idx_e, tyr_tensor *targets_e) {
  const int64_t V = g->cfg.vocab_size;
  const double eps = 1e-5;
  tyr_T(B, T) idx = tyr_cast(idx_e, B, T);
  tyr_T(B, T) targets = tyr_cast(targets_e, B, T);
  tyr_T(V, C) wte = tyr_cast(g->wte.weight, V, C);
  tyr_T(T, C) wpe = tyr_cast(g->wpe.weight, T, C);
  tyr_T(T) pos = tyr_cast(tyr_arange_at(TYR_SITE, TYR_I64, g->device, 0, T, 1), T);

  tyr_T(B, T, C) x = tyr_add(tyr_embedding(wte, idx), tyr_expand(tyr_embedding(wpe, pos), B, T, C));
  for (int l = 0; l < L; l++) {
    const tyr_gpt_block *blk = &g->blocks[l];
    tyr_T(C) ln1_w = tyr_cast(blk->ln1.weight, C), ln1_b = tyr_cast(blk->ln1.bias, C);
    tyr_T(3 * C, C) qkv_w = tyr_cast(blk->attn.qkv.weight, 3 * C, C);
    tyr_T(3 * C) qkv_b = tyr_cast(blk->attn.qkv.bias, 3 * C);
    tyr_T(C, C) proj_w = tyr_cast(blk->attn.proj.weight, C, C);
    tyr_T(C) proj_b = tyr_cast(blk->attn.proj.bias, C);
    tyr_T(C) ln2_w = tyr_cast(blk->ln2.weight, C), ln2_b = tyr_cast(blk->ln2.bias, C);
    tyr_T(F, C) fc_w = tyr_cast(blk->mlp.fc.weight, F, C);
    tyr_T(F) fc_b = tyr_cast(blk->mlp.fc.bias, F);
    tyr_T(C, F) out_w = tyr_cast(blk->mlp.proj.weight, C, F);
    tyr_T(C) out_b = tyr_cast(blk->mlp.proj.bias, C);

    /* attention */
    tyr_T(B, T, 3 * C) qkv = tyr_linear_bias(tyr_layer_norm(x, ln1_w, ln1_b, eps), qkv_w, qkv_b);
    tyr_T(B, H, T, D) q = tyr_transpose(tyr_reshape(tyr_narrow(qkv, 2, 0, C), B, T, H, D), 1, 2);
    tyr_T(B, H, T, D) k = tyr_transpose(tyr_reshape(tyr_narrow(qkv, 2, C, C), B, T, H, D), 1, 2);
    tyr_T(B, H, T, D) v =
        tyr_transpose(tyr_reshape(tyr_narrow(qkv, 2, 2 * C, C), B, T, H, D), 1, 2);
    tyr_T(B, H, T, D) y = tyr_sdpa(q, k, v, &(tyr_sdpa_opts){.causal = true});
    tyr_T(B, T, C) att =
        tyr_linear_bias(tyr_reshape(tyr_transpose(y, 1, 2), B, T, C), proj_w, proj_b);
    x = tyr_add(x, att);

    /* MLP */
    tyr_T(B, T, F) h = tyr_gelu(tyr_linear_bias(tyr_layer_norm(x, ln2_w, ln2_b, eps), fc_w, fc_b));
    x = tyr_add(x, tyr_linear_bias(h, out_w, out_b));
  }
  tyr_T(C) lnf_w = tyr_cast(g->ln_f.weight, C), lnf_b = tyr_cast(g->ln_f.bias, C);
  /* the head and the loss in one op: the [B, T, V] logits are never kept */
  tyr_T0 loss = tyr_linear_cross_entropy(tyr_layer_norm(x, lnf_w, lnf_b, eps), wte, targets, -1);
  return tyr_erase(loss);
}
