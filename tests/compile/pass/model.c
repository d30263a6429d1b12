/* Realistic model code that must keep compiling: a GPT block with
 * grouped-query attention, with constant dims and with run-time dims
 * (batch and sequence length from the data), nested calls, and a dead
 * branch that is shape-correct. */
#include <tyr/tyr.h>
enum { C = 64, NH = 4, NKV = 2, HD = C / NH, F = 4 * C, V = 100, USE_BIAS = 0 };

typedef struct {
  tyr_T(C) ln1_w, ln2_w;
  tyr_T((NH + 2 * NKV) * HD, C) qkv_w;
  tyr_T(C, C) proj_w;
  tyr_T(F, C) fc_w;
  tyr_T(C, F) fc2_w;
  tyr_T(F) fc_b;
} block;

#define BLOCK_FORWARD(Bd, Td, blk, x)                                                              \
  ({                                                                                               \
    tyr_T(Bd, Td, C) tyr_h = tyr_layer_norm(x, (blk)->ln1_w, NULL, 1e-5);                          \
    tyr_T(Bd, Td, (NH + 2 * NKV) * HD) tyr_qkv = tyr_linear(tyr_h, (blk)->qkv_w);                  \
    tyr_T(Bd, Td, NH * HD) tyr_qf = tyr_narrow(tyr_qkv, -1, 0, NH * HD);                           \
    tyr_T(Bd, Td, NKV * HD) tyr_kf = tyr_narrow(tyr_qkv, -1, NH * HD, NKV * HD);                   \
    tyr_T(Bd, Td, NKV * HD) tyr_vf = tyr_narrow(tyr_qkv, -1, (NH + NKV) * HD, NKV * HD);           \
    tyr_T(Bd, NH, Td, HD) tyr_q = tyr_transpose(tyr_reshape(tyr_qf, Bd, Td, NH, HD), 1, 2);        \
    tyr_T(Bd, NKV, Td, HD) tyr_k = tyr_transpose(tyr_reshape(tyr_kf, Bd, Td, NKV, HD), 1, 2);      \
    tyr_T(Bd, NKV, Td, HD) tyr_v = tyr_transpose(tyr_reshape(tyr_vf, Bd, Td, NKV, HD), 1, 2);      \
    tyr_T(Td, HD / 2) tyr_cs, tyr_sn;                                                              \
    (void)tyr_rotary_tables(Td, HD, 10000.0, &tyr_cs, &tyr_sn);                                    \
    tyr_T(Bd, NH, Td, HD) tyr_a =                                                                  \
        tyr_sdpa(tyr_rotary(tyr_q, tyr_cs, tyr_sn), tyr_rotary(tyr_k, tyr_cs, tyr_sn), tyr_v,      \
                 &(tyr_sdpa_opts){.causal = true});                                                \
    tyr_T(Bd, Td, C) tyr_m =                                                                       \
        tyr_reshape(tyr_contiguous(tyr_transpose(tyr_a, 1, 2)), Bd, Td, C);                        \
    tyr_T(Bd, Td, C) tyr_x1 = tyr_add(x, tyr_linear(tyr_m, (blk)->proj_w));                        \
    tyr_T(Bd, Td, F) tyr_f = tyr_linear(tyr_rms_norm(tyr_x1, (blk)->ln2_w, 1e-6), (blk)->fc_w);    \
    if (USE_BIAS) tyr_f = tyr_add_row(tyr_f, (blk)->fc_b);                                         \
    tyr_add(tyr_x1, tyr_linear(tyr_gelu_tanh(tyr_f), (blk)->fc2_w));                               \
  })

enum { B = 2, T = 16 };
tyr_tensor *forward_static(block *blk, tyr_T(V, C) wte, tyr_T(B, T) idx, tyr_T(B, T) tgt) {
  tyr_T(B, T, C) x = tyr_embedding(wte, idx);
  tyr_T(B, T, C) y = BLOCK_FORWARD(B, T, blk, x);
  tyr_T(B, T, V) logits = tyr_matmul(y, tyr_transpose(wte, 0, 1));
  tyr_T0 loss = tyr_cross_entropy(logits, tgt, -1);
  tyr_T0 loss2 = tyr_linear_cross_entropy(y, wte, tgt, -1);
  return tyr_erase(tyr_add(loss, loss2));
}

tyr_tensor *forward_dynamic(block *blk, tyr_tensor *wte_e, int64_t b, int64_t t, tyr_tensor *idx_e) {
  tyr_T(V, C) wte = tyr_cast(wte_e, V, C);
  tyr_T(b, t) idx = tyr_cast(idx_e, b, t);
  tyr_T(b, t, C) x = tyr_embedding(wte, idx);
  tyr_T(b, t, C) y = BLOCK_FORWARD(b, t, blk, x);
  tyr_T(b, t, C) y2 = BLOCK_FORWARD(b, t, blk, y);
  tyr_T(b, t, V) logits = tyr_linear(y2, wte);
  tyr_T(b, t) pred = tyr_argmax(tyr_softmax(logits, -1), -1);
  tyr_T(b * t, V) flat = tyr_reshape(logits, b * t, V);
  tyr_T(b * t) lse = tyr_max_dim(flat, 1);
  tyr_T(b, t, 2 * C) both = tyr_cat2(y, y2, -1);
  tyr_T(b, t, C) h1, h2;
  (void)tyr_chunk2(both, -1, &h1, &h2);
  tyr_T(2, b, t, C) st = tyr_stack2(h1, h2, 0);
  tyr_T(b, t, C) mean = tyr_mean_dim(st, 0);
  tyr_T(b, 1, C) pooled = tyr_mean_keepdim(mean, 1);
  tyr_T(b, t, C) centered = tyr_sub(mean, tyr_expand(pooled, b, t, C));
  tyr_T(b, C) last = tyr_squeeze(tyr_narrow(centered, 1, t - 1, 1), 1);
  return tyr_erase(pred) && tyr_erase(lse) && tyr_erase(last) ? tyr_erase(centered) : NULL;
}
