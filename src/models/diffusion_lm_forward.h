/* The body of the diffusion LM's forward pass in typed code, included by
 * src/models/diffusion_lm.c twice: once with the tiny config's dims as enum
 * constants (every shape below is then checked by the compiler) and once
 * with the dims as run-time values (checked at run time at each op).
 *
 * In scope: m (tyr_dlm *), ids_e, t_e (erased), dims Bn, S, C, H, D, F, V,
 * NT (integer expressions); the body assigns the erased logits to `out`. */
{
  const double eps = m->cfg.norm_eps;
  tyr_T(Bn, S) ids = tyr_cast(ids_e, Bn, S);
  tyr_T(Bn) tt = tyr_cast(t_e, Bn);
  tyr_T(V, C) tok = tyr_cast(m->tok_emb, V, C);
  tyr_T(NT, C) temb = tyr_cast(m->time_emb, NT, C);
  tyr_T(V, C) head = tyr_cast(m->head, V, C);
  tyr_T(S, D / 2) rc = tyr_narrow(tyr_cast(m->rope_cos, m->cfg.seq_len, D / 2), 0, 0, S);
  tyr_T(S, D / 2) rs = tyr_narrow(tyr_cast(m->rope_sin, m->cfg.seq_len, D / 2), 0, 0, S);

  tyr_T(Bn, S, C) x = tyr_add(tyr_mul_scalar(tyr_embedding(tok, ids), 1.0 / sqrt((double)C)),
                              tyr_expand(tyr_unsqueeze(tyr_embedding(temb, tt), 1), Bn, S, C));
  for (int64_t l = 0; l < m->cfg.n_layer; l++) {
    const tyr_dlm_block *blk = &m->blocks[l];
    tyr_T(3 * C, C) w_qkv = tyr_cast(blk->qkv, 3 * C, C);
    tyr_T(C, C) w_o = tyr_cast(blk->attn_proj, C, C);
    tyr_T(F, C) w_fc = tyr_cast(blk->fc, F, C);
    tyr_T(C, F) w_proj = tyr_cast(blk->mlp_proj, C, F);

    /* bidirectional attention: QK-RMSNorm per head, then rotary */
    tyr_T(Bn, S, 3 * C) qkv = tyr_linear(tyr_rms_norm(x, NULL, eps), w_qkv);
    tyr_T(Bn, H, S, D) q = tyr_rotary(
        tyr_transpose(tyr_rms_norm(tyr_reshape(tyr_narrow(qkv, 2, 0, C), Bn, S, H, D), NULL, eps),
                      1, 2),
        rc, rs);
    tyr_T(Bn, H, S, D) k = tyr_rotary(
        tyr_transpose(tyr_rms_norm(tyr_reshape(tyr_narrow(qkv, 2, C, C), Bn, S, H, D), NULL, eps),
                      1, 2),
        rc, rs);
    tyr_T(Bn, H, S, D) v =
        tyr_transpose(tyr_reshape(tyr_narrow(qkv, 2, 2 * C, C), Bn, S, H, D), 1, 2);
    tyr_T(Bn, H, S, D) y = tyr_sdpa(q, k, v, &(tyr_sdpa_opts){.causal = false});
    x = tyr_add(x, tyr_linear(tyr_reshape(tyr_transpose(y, 1, 2), Bn, S, C), w_o));

    /* ReLU² MLP */
    tyr_T(Bn, S, F) h = tyr_relu2(tyr_linear(tyr_rms_norm(x, NULL, eps), w_fc));
    x = tyr_add(x, tyr_linear(h, w_proj));
  }
  tyr_T(Bn, S, V) logits = tyr_linear(tyr_rms_norm(x, NULL, eps), head);
  out = tyr_erase(logits);
}
