/* Template of the CPU attention kernels, included by cpu/attention.c once
 * per float type with ELT (the element type), SFX (a name suffix) and EXP,
 * LOG (its exp and log) defined.  Tensors are contiguous: q, out, dq
 * [B, Hq, Tq, D]; k, v, dk, dv [B, Hkv, S, D]; lse [B, Hq, Tq]. */
#define FN_(a, b) a##_##b
#define FN(a, b) FN_(a, b)

static inline ELT FN(dot, SFX)(const ELT *a, const ELT *b, int64_t n) {
  ELT acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < n; d++) acc += a[d] * b[d];
  return acc;
}

/* o += a * x */
static inline void FN(axpy, SFX)(ELT *restrict o, ELT a, const ELT *restrict x, int64_t n) {
#pragma omp simd
  for (int64_t d = 0; d < n; d++) o[d] += a * x[d];
}

static void FN(sdpa_fw, SFX)(ELT *out, ELT *lse, const ELT *q, const ELT *k, const ELT *v,
                             const uint8_t *mask, const attn_shape *sh) {
  const int64_t Hq = sh->Hq, Tq = sh->T, S = sh->S, D = sh->D, G = sh->Hq / sh->Hkv;
  const ELT scale = (ELT)sh->scale;
  const int64_t rows = sh->B * Hq * Tq;
#pragma omp parallel for schedule(dynamic, 16) if (rows * S * D > 32768)
  for (int64_t r = 0; r < rows; r++) {
    int64_t bh = r / Tq, i = r % Tq, b = bh / Hq, h = bh % Hq;
    const ELT *K = k + (b * sh->Hkv + h / G) * S * D, *V = v + (b * sh->Hkv + h / G) * S * D;
    const ELT *qi = q + r * D;
    const uint8_t *mrow = mask ? mask + i * S : NULL;
    ELT *oi = out + r * D;
    int64_t lo, hi;
    attn_key_range(sh, i, &lo, &hi);
    for (int64_t d = 0; d < D; d++) oi[d] = 0;
    ELT m = -INFINITY, l = 0;
    ELT sc[ATTN_CHUNK];
    /* online softmax over chunks of keys: o and l are kept relative to the
       running maximum m and rescaled when it grows */
    for (int64_t j0 = lo; j0 < hi; j0 += ATTN_CHUNK) {
      int64_t n = hi - j0 < ATTN_CHUNK ? hi - j0 : ATTN_CHUNK;
      ELT cm = -INFINITY;
      for (int64_t c = 0; c < n; c++) {
        int64_t j = j0 + c;
        if (mrow && !mrow[j]) {
          sc[c] = -INFINITY;
          continue;
        }
        sc[c] = FN(dot, SFX)(qi, K + j * D, D) * scale;
        if (sc[c] > cm) cm = sc[c];
      }
      if (cm == -INFINITY) continue;
      if (cm > m) {
        ELT f = m == -INFINITY ? 0 : EXP(m - cm);
        l *= f;
        for (int64_t d = 0; d < D; d++) oi[d] *= f;
        m = cm;
      }
      for (int64_t c = 0; c < n; c++) {
        if (sc[c] == -INFINITY) continue;
        ELT p = EXP(sc[c] - m);
        l += p;
        FN(axpy, SFX)(oi, p, V + (j0 + c) * D, D);
      }
    }
    if (l > 0) {
      ELT inv = 1 / l;
      for (int64_t d = 0; d < D; d++) oi[d] *= inv;
      lse[r] = m + LOG(l);
    } else {
      lse[r] = -INFINITY; /* no key: the output stays 0 */
    }
  }
}

/* Backward, in two passes that write disjoint outputs (no atomics, no
 * scratch): dq by query row, then dk and dv by blocks of keys, each pass
 * recomputing P = exp(s - lse).  With dP = dO v^ELT and Di = dO_i . O_i:
 *   dS = P * (dP - Di),  dq = scale dS k,  dk = scale dS^ELT q,  dv = P^ELT dO. */
static void FN(sdpa_bw, SFX)(ELT *dq, ELT *dk, ELT *dv, const ELT *dout, const ELT *q, const ELT *k,
                             const ELT *v, const ELT *out, const ELT *lse, const uint8_t *mask,
                             const attn_shape *sh) {
  const int64_t Hq = sh->Hq, Hkv = sh->Hkv, Tq = sh->T, S = sh->S, D = sh->D, G = Hq / Hkv;
  const ELT scale = (ELT)sh->scale;
  const int64_t rows = sh->B * Hq * Tq;
  const bool par = rows * S * D > 32768;
#pragma omp parallel for schedule(dynamic, 16) if (par)
  for (int64_t r = 0; r < rows; r++) {
    int64_t bh = r / Tq, i = r % Tq, b = bh / Hq, h = bh % Hq;
    const ELT *K = k + (b * Hkv + h / G) * S * D, *V = v + (b * Hkv + h / G) * S * D;
    const ELT *qi = q + r * D, *gi = dout + r * D;
    const uint8_t *mrow = mask ? mask + i * S : NULL;
    ELT *o = dq + r * D;
    for (int64_t d = 0; d < D; d++) o[d] = 0;
    ELT L = lse[r];
    if (L == -INFINITY) continue;
    ELT Di = FN(dot, SFX)(gi, out + r * D, D);
    int64_t lo, hi;
    attn_key_range(sh, i, &lo, &hi);
    for (int64_t j = lo; j < hi; j++) {
      if (mrow && !mrow[j]) continue;
      ELT p = EXP(FN(dot, SFX)(qi, K + j * D, D) * scale - L);
      ELT ds = p * (FN(dot, SFX)(gi, V + j * D, D) - Di);
      FN(axpy, SFX)(o, ds * scale, K + j * D, D);
    }
  }
  const int64_t nblk = (S + ATTN_KEY_BLOCK - 1) / ATTN_KEY_BLOCK;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (par)
  for (int64_t bk = 0; bk < sh->B * Hkv; bk++) {
    for (int64_t blk = 0; blk < nblk; blk++) {
      int64_t b = bk / Hkv, hk = bk % Hkv;
      int64_t j0 = blk * ATTN_KEY_BLOCK, j1 = j0 + ATTN_KEY_BLOCK < S ? j0 + ATTN_KEY_BLOCK : S;
      const ELT *K = k + bk * S * D, *V = v + bk * S * D;
      ELT *gk = dk + bk * S * D, *gv = dv + bk * S * D;
      for (int64_t d = j0 * D; d < j1 * D; d++) gk[d] = gv[d] = 0;
      int64_t ilo, ihi;
      attn_query_range(sh, j0, j1, &ilo, &ihi);
      for (int64_t g = 0; g < G; g++) {
        int64_t bh = b * Hq + hk * G + g;
        for (int64_t i = ilo; i < ihi; i++) {
          int64_t r = bh * Tq + i;
          ELT L = lse[r];
          if (L == -INFINITY) continue;
          int64_t lo, hi;
          attn_key_range(sh, i, &lo, &hi);
          if (lo < j0) lo = j0;
          if (hi > j1) hi = j1;
          if (lo >= hi) continue;
          const ELT *qi = q + r * D, *gi = dout + r * D;
          const uint8_t *mrow = mask ? mask + i * S : NULL;
          ELT Di = FN(dot, SFX)(gi, out + r * D, D);
          for (int64_t j = lo; j < hi; j++) {
            if (mrow && !mrow[j]) continue;
            ELT p = EXP(FN(dot, SFX)(qi, K + j * D, D) * scale - L);
            ELT ds = p * (FN(dot, SFX)(gi, V + j * D, D) - Di);
            FN(axpy, SFX)(gv + j * D, p, gi, D);
            FN(axpy, SFX)(gk + j * D, ds * scale, qi, D);
          }
        }
      }
    }
  }
}

#undef FN
#undef FN_
