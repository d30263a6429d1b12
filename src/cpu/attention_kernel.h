/* Template of the CPU attention kernels, included by cpu/attention.c once
 * per float type with ELT (the element type), SFX (a name suffix) and EXP,
 * LOG (its exp and log) defined.  Tensors are contiguous: q, out, dq
 * [B, Hq, Tq, D]; k, v, dk, dv [B, Hkv, S, D]; lse [B, Hq, Tq].
 *
 * Work is split into tasks of ATTN_QB query rows of one head (forward and
 * dq) or ATTN_KB keys of one key/value head (dk, dv), run in parallel.  A
 * task computes its block of scores as a small matrix product (tiles of
 * TILE_R x TILE_C kept in registers) against the other operand, which it
 * transposed into per-thread scratch ([D, ld], ld = round_up(len) +
 * TILE_C so that a block starting anywhere may read whole tiles), then
 * works on whole rows.  When the scratch cannot be allocated, the work is
 * done a row at a time instead. */
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

/* o[d] += sum_c p[c] x[c * D + d]: PV_W columns of o stay in registers
 * over the whole sum. */
static void FN(pv, SFX)(ELT *restrict o, const ELT *restrict p, const ELT *restrict x, int64_t n,
                        int64_t D) {
  int64_t d0 = 0;
  for (; d0 + PV_W <= D; d0 += PV_W) {
    ELT acc[PV_W];
    for (int w = 0; w < PV_W; w++) acc[w] = o[d0 + w];
    for (int64_t c = 0; c < n; c++) {
      const ELT pc = p[c], *xr = x + c * D + d0;
#pragma omp simd
      for (int w = 0; w < PV_W; w++) acc[w] += pc * xr[w];
    }
    for (int w = 0; w < PV_W; w++) o[d0 + w] = acc[w];
  }
  for (; d0 < D; d0++) {
    ELT a = o[d0];
    for (int64_t c = 0; c < n; c++) a += p[c] * x[c * D + d0];
    o[d0] = a;
  }
}

/* pv for four rows at once: o + r * ldo (+)= p + r * ldp times x for r < 4.
 * Each load of x feeds four rows' accumulators (4 x PV_W in registers):
 * a row at a time, products against x are bound by the loads of x, not by
 * the multiply-adds.  Every element is summed in pv's order. */
static void FN(pv4, SFX)(ELT *restrict o, int64_t ldo, const ELT *restrict p, int64_t ldp,
                         const ELT *restrict x, int64_t n, int64_t D) {
  int64_t d0 = 0;
  for (; d0 + PV_W <= D; d0 += PV_W) {
    ELT a0[PV_W], a1[PV_W], a2[PV_W], a3[PV_W];
    for (int w = 0; w < PV_W; w++) {
      a0[w] = o[d0 + w];
      a1[w] = o[ldo + d0 + w];
      a2[w] = o[2 * ldo + d0 + w];
      a3[w] = o[3 * ldo + d0 + w];
    }
    for (int64_t c = 0; c < n; c++) {
      const ELT p0 = p[c], p1 = p[ldp + c], p2 = p[2 * ldp + c], p3 = p[3 * ldp + c];
      const ELT *xr = x + c * D + d0;
#pragma omp simd
      for (int w = 0; w < PV_W; w++) {
        a0[w] += p0 * xr[w];
        a1[w] += p1 * xr[w];
        a2[w] += p2 * xr[w];
        a3[w] += p3 * xr[w];
      }
    }
    for (int w = 0; w < PV_W; w++) {
      o[d0 + w] = a0[w];
      o[ldo + d0 + w] = a1[w];
      o[2 * ldo + d0 + w] = a2[w];
      o[3 * ldo + d0 + w] = a3[w];
    }
  }
  if (d0 < D)
    for (int r = 0; r < 4; r++) {
      ELT *orow = o + r * ldo;
      const ELT *prow = p + r * ldp;
      for (int64_t d = d0; d < D; d++) {
        ELT a = orow[d];
        for (int64_t c = 0; c < n; c++) a += prow[c] * x[c * D + d];
        orow[d] = a;
      }
    }
}

/* Rows [0, m) of o (leading dim ldo) += rows of p (leading dim ldp) times
 * x, for the rows with live[r] true (all when live is NULL): by fours where
 * four consecutive rows are live, else one at a time. */
static void FN(pv_rows, SFX)(ELT *o, int64_t ldo, const ELT *p, int64_t ldp, const ELT *x,
                             int64_t n, int64_t D, int64_t m, const bool *live) {
  int64_t r = 0;
  while (r < m) {
    if (r + 4 <= m && (!live || (live[r] && live[r + 1] && live[r + 2] && live[r + 3]))) {
      FN(pv4, SFX)(o + r * ldo, ldo, p + r * ldp, ldp, x, n, D);
      r += 4;
    } else {
      if (!live || live[r]) FN(pv, SFX)(o + r * ldo, p + r * ldp, x, n, D);
      r++;
    }
  }
}

/* bt[d * ld + c] = x[c * D + d] for c < n, and 0 for n <= c < ld; by
 * 16 x 16 blocks so that both sides stay in cache. */
static void FN(transpose, SFX)(ELT *restrict bt, int64_t ld, const ELT *restrict x, int64_t n,
                               int64_t D) {
  for (int64_t c0 = 0; c0 < n; c0 += 16)
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      int64_t c1 = c0 + 16 < n ? c0 + 16 : n, d1 = d0 + 16 < D ? d0 + 16 : D;
      for (int64_t d = d0; d < d1; d++)
        for (int64_t c = c0; c < c1; c++) bt[d * ld + c] = x[c * D + d];
    }
  for (int64_t d = 0; d < D; d++)
    for (int64_t c = n; c < ld; c++) bt[d * ld + c] = 0;
}

/* C[r * ldc + c] = sum_d A[r * D + d] * Bt[d * ldb + c] for r < m and c <
 * round_up(n, TILE_C) (ldb and ldc at least that; Bt zero-padded). */
static void FN(gemm_nt, SFX)(ELT *restrict C, int64_t ldc, const ELT *restrict A, int64_t m,
                             const ELT *restrict Bt, int64_t ldb, int64_t n, int64_t D) {
  int64_t npad = attn_round_up(n);
  int64_t r = 0;
  for (; r + TILE_R <= m; r += TILE_R) {
    for (int64_t c = 0; c < npad; c += TILE_C) {
      ELT acc[TILE_R][TILE_C];
      for (int rr = 0; rr < TILE_R; rr++)
        for (int cc = 0; cc < TILE_C; cc++) acc[rr][cc] = 0;
      for (int64_t d = 0; d < D; d++) {
        const ELT *b = Bt + d * ldb + c;
        for (int rr = 0; rr < TILE_R; rr++) {
          ELT a = A[(r + rr) * D + d];
#pragma omp simd
          for (int cc = 0; cc < TILE_C; cc++) acc[rr][cc] += a * b[cc];
        }
      }
      for (int rr = 0; rr < TILE_R; rr++)
        for (int cc = 0; cc < TILE_C; cc++) C[(r + rr) * ldc + c + cc] = acc[rr][cc];
    }
  }
  for (; r < m; r++) {
    for (int64_t c = 0; c < npad; c += TILE_C) {
      ELT acc[TILE_C];
      for (int cc = 0; cc < TILE_C; cc++) acc[cc] = 0;
      for (int64_t d = 0; d < D; d++) {
        const ELT *b = Bt + d * ldb + c;
        ELT a = A[r * D + d];
#pragma omp simd
        for (int cc = 0; cc < TILE_C; cc++) acc[cc] += a * b[cc];
      }
      for (int cc = 0; cc < TILE_C; cc++) C[r * ldc + c + cc] = acc[cc];
    }
  }
}

/* Pointers of one task's head. */
typedef struct {
  const ELT *K, *V;   /* the key/value head [S, D] */
  int64_t row0;       /* index of the head's first row in q, out, lse */
  const int32_t *doc; /* the batch's document ids [S], or NULL */
} FN(head, SFX);

static inline FN(head, SFX)
    FN(head_of, SFX)(const attn_shape *sh, const ELT *k, const ELT *v, int64_t bh) {
  int64_t b = bh / sh->Hq, h = bh % sh->Hq, kv = b * sh->Hkv + h / (sh->Hq / sh->Hkv);
  FN(head, SFX)
  hd = {k + kv * sh->S * sh->D, v + kv * sh->S * sh->D, bh * sh->T,
        sh->doc ? sh->doc + b * sh->S : NULL};
  return hd;
}

/* The leading dim of a transposed head of n rows. */
static inline int64_t FN(tld, SFX)(int64_t n) {
  return attn_round_up(n) + TILE_C;
}

/* Query rows [i0, i1) see keys within [lo, hi). */
static inline void FN(block_keys, SFX)(const attn_shape *sh, int64_t i0, int64_t i1, int64_t *lo,
                                       int64_t *hi) {
  int64_t a, b;
  attn_key_range(sh, i0, lo, &a);
  attn_key_range(sh, i1 - 1, &b, hi); /* both ends move right with i */
  if (*hi < *lo) *hi = *lo;
}

/* max of p[0..n): 16 running maxima, so that gcc and clang both vectorise
 * it (clang does not vectorise a float max reduction). */
static inline ELT FN(vmax, SFX)(const ELT *restrict p, int64_t n) {
  ELT mm[16];
  for (int w = 0; w < 16; w++) mm[w] = -INFINITY;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int w = 0; w < 16; w++) mm[w] = p[c + w] > mm[w] ? p[c + w] : mm[w];
  for (; c < n; c++) mm[0] = p[c] > mm[0] ? p[c] : mm[0];
  ELT m = mm[0];
  for (int w = 1; w < 16; w++) m = mm[w] > m ? mm[w] : m;
  return m;
}

/* Scores of row i over keys lo + c (c < n), masked (-inf) and scaled, in
 * place; returns their maximum.  doc: the batch's document ids, or NULL. */
static inline ELT FN(mask_row, SFX)(ELT *restrict p, const attn_shape *sh, const uint8_t *mask,
                                    const int32_t *doc, int64_t i, int64_t lo, int64_t n) {
  const ELT scale = (ELT)sh->scale, ninf = -INFINITY;
  int64_t a, b;
  attn_key_range(sh, i, &a, &b);
  a -= lo;
  b -= lo;
  if (doc) {
    const int32_t qd = doc[i + sh->S - sh->T], *dr = doc + lo;
    const uint8_t *mr = mask ? mask + i * sh->S + lo : NULL;
    for (int64_t c = 0; c < n; c++) {
      bool ok = (c >= a) & (c < b) & (dr[c] == qd) & (!mr || mr[c] != 0);
      p[c] = ok ? p[c] * scale : ninf;
    }
  } else if (mask) {
    const uint8_t *mr = mask + i * sh->S + lo;
    for (int64_t c = 0; c < n; c++) {
      bool ok = (c >= a) & (c < b) & (mr[c] != 0);
      p[c] = ok ? p[c] * scale : ninf;
    }
  } else {
    for (int64_t c = 0; c < n; c++) {
      bool ok = (c >= a) & (c < b);
      p[c] = ok ? p[c] * scale : ninf;
    }
  }
  return FN(vmax, SFX)(p, n);
}

/* ---- forward ------------------------------------------------------------------ */
/* ---- forward ------------------------------------------------------------------ */
/* One query row with an online softmax over chunks of keys (the fallback). */
static void FN(fw_row, SFX)(ELT *out, ELT *lse, const ELT *q, const ELT *K, const ELT *V,
                            const uint8_t *mask, const int32_t *doc, const attn_shape *sh,
                            int64_t r, int64_t i) {
  const int64_t S = sh->S, D = sh->D;
  const ELT scale = (ELT)sh->scale;
  const ELT *qi = q + r * D;
  const uint8_t *mrow = mask ? mask + i * S : NULL;
  ELT *oi = out + r * D;
  int64_t lo, hi;
  attn_key_range(sh, i, &lo, &hi);
  for (int64_t d = 0; d < D; d++) oi[d] = 0;
  ELT m = -INFINITY, l = 0;
  ELT sc[ATTN_CHUNK];
  /* o and l are kept relative to the running maximum m, rescaled when it grows */
  for (int64_t j0 = lo; j0 < hi; j0 += ATTN_CHUNK) {
    int64_t n = hi - j0 < ATTN_CHUNK ? hi - j0 : ATTN_CHUNK;
    ELT cm = -INFINITY;
    for (int64_t c = 0; c < n; c++) {
      int64_t j = j0 + c;
      if ((mrow && !mrow[j]) || (doc && doc[j] != doc[i + S - sh->T])) {
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

/* Rows [i0, i1) of one head; Kt holds the head's keys from kbase on,
 * transposed (leading dim ld); P holds ATTN_QB x ld scores. */
static void FN(fw_block, SFX)(ELT *out, ELT *lse, const ELT *q, const ELT *Kt, int64_t kbase,
                              int64_t ld, const ELT *V, const uint8_t *mask, const int32_t *doc,
                              const attn_shape *sh, int64_t row0, int64_t i0, int64_t i1, ELT *P) {
  const int64_t D = sh->D;
  int64_t lo, hi;
  FN(block_keys, SFX)(sh, i0, i1, &lo, &hi);
  int64_t n = hi - lo, npad = attn_round_up(n);
  if (n > 0) FN(gemm_nt, SFX)(P, npad, q + (row0 + i0) * D, i1 - i0, Kt + (lo - kbase), ld, n, D);
  bool live[ATTN_QB];
  for (int64_t i = i0; i < i1; i++) {
    ELT *p = P + (i - i0) * npad, *oi = out + (row0 + i) * D;
    for (int64_t d = 0; d < D; d++) oi[d] = 0;
    ELT m = n > 0 ? FN(mask_row, SFX)(p, sh, mask, doc, i, lo, n) : (ELT)-INFINITY;
    live[i - i0] = m != -INFINITY;
    if (m == -INFINITY) {
      lse[row0 + i] = -INFINITY; /* no key: the output stays 0 */
      continue;
    }
    for (int64_t c = 0; c < n; c++) p[c] = VEXP(p[c] - m); /* exp(-inf) = 0 */
    ELT l = 0;
#pragma omp simd reduction(+ : l)
    for (int64_t c = 0; c < n; c++) l += p[c];
    ELT inv = 1 / l;
#pragma omp simd
    for (int64_t c = 0; c < n; c++) p[c] *= inv;
    lse[row0 + i] = m + LOG(l);
  }
  FN(pv_rows, SFX)(out + (row0 + i0) * D, D, P, npad, V + lo * D, n, D, i1 - i0, live);
}

/* Tasks: each head's blocks of rows (query blocks, or key blocks) are cut
 * into `parts` runs of consecutive blocks, enough for every thread to have
 * work; a task transposes what its run needs once. */
static inline int64_t FN(parts, SFX)(int64_t heads, int64_t blocks) {
  int64_t want = 2 * (int64_t)omp_get_max_threads();
  int64_t p = heads >= want ? 1 : (want + heads - 1) / heads;
  return p < blocks ? p : (blocks > 0 ? blocks : 1);
}

static void FN(sdpa_fw, SFX)(ELT *out, ELT *lse, const ELT *q, const ELT *k, const ELT *v,
                             const uint8_t *mask, const attn_shape *sh) {
  const int64_t Tq = sh->T, S = sh->S, D = sh->D, ld = FN(tld, SFX)(S);
  const int64_t nqb = (Tq + ATTN_QB - 1) / ATTN_QB, heads = sh->B * sh->Hq;
  const int64_t parts = FN(parts, SFX)(heads, nqb), tasks = heads * parts;
  const bool par = heads * Tq * S * D > 32768;
#pragma omp parallel if (par && tasks > 1)
  {
    ELT *scratch = attn_force_rows ? NULL : malloc((size_t)((D + ATTN_QB) * ld) * sizeof(ELT));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t bh = t / parts, part = t % parts;
      int64_t b0 = nqb * part / parts, b1 = nqb * (part + 1) / parts; /* query blocks */
      int64_t ia = b0 * ATTN_QB, ib = b1 * ATTN_QB < Tq ? b1 * ATTN_QB : Tq;
      if (ia >= ib) continue;
      FN(head, SFX) hd = FN(head_of, SFX)(sh, k, v, bh);
      if (!scratch) {
        for (int64_t i = ia; i < ib; i++)
          FN(fw_row, SFX)(out, lse, q, hd.K, hd.V, mask, hd.doc, sh, hd.row0 + i, i);
        continue;
      }
      int64_t klo, khi;
      FN(block_keys, SFX)(sh, ia, ib, &klo, &khi);
      ELT *Kt = scratch, *P = scratch + D * ld;
      FN(transpose, SFX)(Kt, ld, hd.K + klo * D, khi - klo, D);
      for (int64_t i0 = ia; i0 < ib; i0 += ATTN_QB) {
        int64_t i1 = i0 + ATTN_QB < ib ? i0 + ATTN_QB : ib;
        FN(fw_block, SFX)(out, lse, q, Kt, klo, ld, hd.V, mask, hd.doc, sh, hd.row0, i0, i1, P);
      }
    }
    free(scratch);
  }
}

/* ---- backward -------------------------------------------------------------------
 * Two passes that write disjoint outputs (no atomics): dq by blocks of
 * query rows, then dk and dv by blocks of keys, each recomputing
 * P = exp(s - lse).  With dP = dO v^T and Di = dO_i . O_i:
 *   dS = P * (dP - Di),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dO. */

/* dq of one row (the fallback). */
static void FN(dq_row, SFX)(ELT *dq, const ELT *dout, const ELT *q, const ELT *K, const ELT *V,
                            const ELT *out, const ELT *lse, const uint8_t *mask, const int32_t *doc,
                            const attn_shape *sh, int64_t r, int64_t i) {
  const int64_t S = sh->S, D = sh->D;
  const ELT scale = (ELT)sh->scale;
  const ELT *qi = q + r * D, *gi = dout + r * D;
  const uint8_t *mrow = mask ? mask + i * S : NULL;
  ELT *o = dq + r * D;
  for (int64_t d = 0; d < D; d++) o[d] = 0;
  ELT L = lse[r];
  if (L == -INFINITY) return;
  ELT Di = FN(dot, SFX)(gi, out + r * D, D);
  int64_t lo, hi;
  attn_key_range(sh, i, &lo, &hi);
  for (int64_t j = lo; j < hi; j++) {
    if ((mrow && !mrow[j]) || (doc && doc[j] != doc[i + S - sh->T])) continue;
    ELT p = EXP(FN(dot, SFX)(qi, K + j * D, D) * scale - L);
    ELT ds = p * (FN(dot, SFX)(gi, V + j * D, D) - Di);
    FN(axpy, SFX)(o, ds * scale, K + j * D, D);
  }
}

/* dq of rows [i0, i1) of one head, with its keys and values from kbase
 * on transposed (leading dim ld); Sc holds 2 ATTN_QB ld elements. */
static void FN(dq_block, SFX)(ELT *dq, const ELT *dout, const ELT *q, const ELT *K, const ELT *Kt,
                              const ELT *Vt, int64_t kbase, int64_t ld, const ELT *out,
                              const ELT *lse, const uint8_t *mask, const int32_t *doc,
                              const attn_shape *sh, int64_t row0, int64_t i0, int64_t i1, ELT *Sc) {
  const int64_t D = sh->D;
  const ELT scale = (ELT)sh->scale;
  int64_t lo, hi;
  FN(block_keys, SFX)(sh, i0, i1, &lo, &hi);
  int64_t n = hi - lo, npad = attn_round_up(n), m = i1 - i0;
  ELT *dP = Sc + ATTN_QB * npad;
  if (n > 0) {
    FN(gemm_nt, SFX)(Sc, npad, q + (row0 + i0) * D, m, Kt + (lo - kbase), ld, n, D);
    FN(gemm_nt, SFX)(dP, npad, dout + (row0 + i0) * D, m, Vt + (lo - kbase), ld, n, D);
  }
  bool live[ATTN_QB];
  for (int64_t i = i0; i < i1; i++) {
    int64_t r = row0 + i;
    ELT *o = dq + r * D, *s = Sc + (i - i0) * npad, *dp = dP + (i - i0) * npad;
    for (int64_t d = 0; d < D; d++) o[d] = 0;
    ELT L = lse[r];
    live[i - i0] = !(L == -INFINITY || n == 0);
    if (!live[i - i0]) continue;
    ELT Di = FN(dot, SFX)(dout + r * D, out + r * D, D);
    FN(mask_row, SFX)(s, sh, mask, doc, i, lo, n); /* scaled scores, -inf where masked */
    for (int64_t c = 0; c < n; c++) {
      ELT p = VEXP(s[c] - L);
      s[c] = p * (dp[c] - Di) * scale; /* dS, 0 where masked */
    }
  }
  FN(pv_rows, SFX)(dq + (row0 + i0) * D, D, Sc, npad, K + lo * D, n, D, m, live);
}

/* dk, dv of keys [j0, j1) of one key/value head bk (the fallback). */
static void FN(dkv_rows, SFX)(ELT *dk, ELT *dv, const ELT *dout, const ELT *q, const ELT *k,
                              const ELT *v, const ELT *out, const ELT *lse, const uint8_t *mask,
                              const attn_shape *sh, int64_t bk, int64_t j0, int64_t j1) {
  const int64_t Hq = sh->Hq, Hkv = sh->Hkv, Tq = sh->T, S = sh->S, D = sh->D, G = Hq / Hkv;
  const ELT scale = (ELT)sh->scale;
  int64_t b = bk / Hkv, hk = bk % Hkv;
  const ELT *K = k + bk * S * D, *V = v + bk * S * D;
  ELT *gk = dk + bk * S * D, *gv = dv + bk * S * D;
  const int32_t *doc = sh->doc ? sh->doc + b * S : NULL;
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
        if ((mrow && !mrow[j]) || (doc && doc[j] != doc[i + S - Tq])) continue;
        ELT p = EXP(FN(dot, SFX)(qi, K + j * D, D) * scale - L);
        ELT ds = p * (FN(dot, SFX)(gi, V + j * D, D) - Di);
        FN(axpy, SFX)(gv + j * D, p, gi, D);
        FN(axpy, SFX)(gk + j * D, ds * scale, qi, D);
      }
    }
  }
}

/* dk, dv of keys [j0, j1) of key/value head bk, from query head bh: its
 * queries and output gradients from row ibase on transposed (leading dim
 * ld) in qt, gt; accumulates into dk, dv.  scratch holds 2 (ATTN_KB + 1) ld
 * elements. */
static void FN(dkv_block, SFX)(ELT *dk, ELT *dv, const ELT *dout, const ELT *q, const ELT *k,
                               const ELT *v, const ELT *qt, const ELT *gt, int64_t ibase,
                               int64_t ld, const ELT *out, const ELT *lse, const uint8_t *mask,
                               const attn_shape *sh, int64_t bk, int64_t bh, int64_t j0, int64_t j1,
                               ELT *scratch) {
  const int64_t Tq = sh->T, S = sh->S, D = sh->D;
  const ELT scale = (ELT)sh->scale, ninf = -INFINITY;
  int64_t mk = j1 - j0;
  const ELT *K = k + bk * S * D, *V = v + bk * S * D;
  ELT *gk = dk + bk * S * D, *gv = dv + bk * S * D;
  const int32_t *doc = sh->doc ? sh->doc + bk / sh->Hkv * S : NULL;
  int64_t ilo, ihi;
  attn_query_range(sh, j0, j1, &ilo, &ihi);
  int64_t n = ihi - ilo, npad = attn_round_up(n);
  if (n <= 0) return;
  ELT *St = scratch, *Pt = St + ATTN_KB * npad, *Dv = Pt + ATTN_KB * npad, *Lv = Dv + npad;
  const int64_t off = S - Tq, row0 = bh * Tq + ilo;
  const bool upper = sh->causal || sh->window > 0, lower = sh->window > 0;
  FN(gemm_nt, SFX)(St, npad, K + j0 * D, mk, qt + (ilo - ibase), ld, n, D);
  FN(gemm_nt, SFX)(Pt, npad, V + j0 * D, mk, gt + (ilo - ibase), ld, n, D); /* dP^T */
  for (int64_t c = 0; c < n; c++) {
    Lv[c] = lse[row0 + c];
    Dv[c] = Lv[c] == ninf ? 0 : FN(dot, SFX)(dout + (row0 + c) * D, out + (row0 + c) * D, D);
    if (Lv[c] == ninf) Lv[c] = INFINITY; /* a row that sees no key: p = 0 */
  }
  for (int64_t jr = 0; jr < mk; jr++) {
    int64_t j = j0 + jr;
    ELT *s = St + jr * npad, *p = Pt + jr * npad;
    /* row i sees key j when pos - window < j <= pos, pos = i + S - T */
    int64_t cmin = upper ? j - off - ilo : 0;                      /* j <= pos */
    int64_t cmax = lower ? j - off + sh->window - ilo : INT64_MAX; /* j > pos - window */
    const uint8_t *mc = mask ? mask + ilo * S + j : NULL;
    if (doc) { /* query c sits at key position ilo + c + off */
      const int32_t kd = doc[j], *dq = doc + ilo + off;
      for (int64_t c = 0; c < n; c++) {
        bool ok = (c >= cmin) & (c < cmax) & (!mc || mc[c * S]) & (dq[c] == kd);
        s[c] = ok ? s[c] * scale - Lv[c] : ninf;
      }
    } else {
      for (int64_t c = 0; c < n; c++) {
        bool ok = (c >= cmin) & (c < cmax) & (!mc || mc[c * S]);
        s[c] = ok ? s[c] * scale - Lv[c] : ninf;
      }
    }
    for (int64_t c = 0; c < n; c++) {
      ELT pe = VEXP(s[c]);
      s[c] = pe * (p[c] - Dv[c]) * scale; /* dS^T */
      p[c] = pe;                          /* P^T */
    }
  }
  FN(pv_rows, SFX)(gv + j0 * D, D, Pt, npad, dout + row0 * D, n, D, mk, NULL);
  FN(pv_rows, SFX)(gk + j0 * D, D, St, npad, q + row0 * D, n, D, mk, NULL);
}

/* bt[c * ldb + r] = x[r * ldx + c] for r < rows, c < cols: a block of
 * scores turned over, so that the products with its columns are pv_rows. */
static void FN(transpose_ld, SFX)(ELT *restrict bt, int64_t ldb, const ELT *restrict x, int64_t ldx,
                                  int64_t rows, int64_t cols) {
  for (int64_t c0 = 0; c0 < cols; c0 += 16)
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
      int64_t c1 = c0 + 16 < cols ? c0 + 16 : cols, r1 = r0 + 16 < rows ? r0 + 16 : rows;
      for (int64_t c = c0; c < c1; c++)
        for (int64_t r = r0; r < r1; r++) bt[c * ldb + r] = x[r * ldx + c];
    }
}

/* dq, dk and dv of one key/value head bk and its query heads in one pass
 * over blocks of query rows: a block's P and dS give its rows of dq
 * (dS K) and add to dv (P^T dO) and dk (dS^T Q) of the keys it sees, so
 * each score and each exp is computed once (the two-pass backward below
 * computes them in both passes).  Only one task may hold a key/value head:
 * used when there are enough of them for every thread.  scratch holds
 * (2 D + 3 ATTN_QB) ld elements, ld = tld(S); false when not given. */
static bool FN(bw_head, SFX)(ELT *dq, ELT *dk, ELT *dv, const ELT *dout, const ELT *q, const ELT *k,
                             const ELT *v, const ELT *out, const ELT *lse, const uint8_t *mask,
                             const attn_shape *sh, int64_t bk, ELT *scratch) {
  if (!scratch) return false;
  const int64_t Tq = sh->T, S = sh->S, D = sh->D, G = sh->Hq / sh->Hkv, ld = FN(tld, SFX)(S);
  const ELT scale = (ELT)sh->scale;
  const int64_t b = bk / sh->Hkv, hk = bk % sh->Hkv;
  const ELT *K = k + bk * S * D, *V = v + bk * S * D;
  ELT *gk = dk + bk * S * D, *gv = dv + bk * S * D;
  const int32_t *doc = sh->doc ? sh->doc + b * S : NULL;
  ELT *Kt = scratch, *Vt = Kt + D * ld, *Sc = Vt + D * ld, *dP = Sc + ATTN_QB * ld,
      *Tt = dP + ATTN_QB * ld;
  for (int64_t d = 0; d < S * D; d++) gk[d] = gv[d] = 0;
  FN(transpose, SFX)(Kt, ld, K, S, D);
  FN(transpose, SFX)(Vt, ld, V, S, D);
  for (int64_t g = 0; g < G; g++) {
    const int64_t row0 = (b * sh->Hq + hk * G + g) * Tq;
    for (int64_t i0 = 0; i0 < Tq; i0 += ATTN_QB) {
      const int64_t i1 = i0 + ATTN_QB < Tq ? i0 + ATTN_QB : Tq, m = i1 - i0;
      int64_t lo, hi;
      FN(block_keys, SFX)(sh, i0, i1, &lo, &hi);
      const int64_t n = hi - lo, npad = attn_round_up(n);
      ELT *dqb = dq + (row0 + i0) * D;
      for (int64_t d = 0; d < m * D; d++) dqb[d] = 0;
      if (n <= 0) continue;
      FN(gemm_nt, SFX)(Sc, npad, q + (row0 + i0) * D, m, Kt + lo, ld, n, D);
      FN(gemm_nt, SFX)(dP, npad, dout + (row0 + i0) * D, m, Vt + lo, ld, n, D);
      bool live[ATTN_QB], any = false;
      for (int64_t i = i0; i < i1; i++) {
        const int64_t r = row0 + i;
        ELT *s = Sc + (i - i0) * npad, *dp = dP + (i - i0) * npad;
        const ELT L = lse[r];
        live[i - i0] = L != -INFINITY;
        if (!live[i - i0]) { /* sees no key: no gradient from it */
          for (int64_t c = 0; c < n; c++) s[c] = dp[c] = 0;
          continue;
        }
        any = true;
        const ELT Di = FN(dot, SFX)(dout + r * D, out + r * D, D);
        FN(mask_row, SFX)(s, sh, mask, doc, i, lo, n); /* scaled scores, -inf where masked */
        for (int64_t c = 0; c < n; c++) {
          const ELT p = VEXP(s[c] - L);
          s[c] = p * (dp[c] - Di) * scale; /* dS, 0 where masked */
          dp[c] = p;                       /* P */
        }
      }
      if (!any) continue;
      FN(pv_rows, SFX)(dqb, D, Sc, npad, K + lo * D, n, D, m, live);
      FN(transpose_ld, SFX)(Tt, ATTN_QB, dP, npad, m, n);
      FN(pv_rows, SFX)(gv + lo * D, D, Tt, ATTN_QB, dout + (row0 + i0) * D, m, D, n, NULL);
      FN(transpose_ld, SFX)(Tt, ATTN_QB, Sc, npad, m, n);
      FN(pv_rows, SFX)(gk + lo * D, D, Tt, ATTN_QB, q + (row0 + i0) * D, m, D, n, NULL);
    }
  }
  return true;
}

static void FN(sdpa_bw, SFX)(ELT *dq, ELT *dk, ELT *dv, const ELT *dout, const ELT *q, const ELT *k,
                             const ELT *v, const ELT *out, const ELT *lse, const uint8_t *mask,
                             const attn_shape *sh) {
  const int64_t Tq = sh->T, S = sh->S, D = sh->D, ldS = FN(tld, SFX)(S), ldT = FN(tld, SFX)(Tq);
  const int64_t BHkv = sh->B * sh->Hkv, BHq = sh->B * sh->Hq, G = sh->Hq / sh->Hkv;
  const bool par = BHq * Tq * S * D > 32768;
  /* one pass per key/value head when there are enough of them (each task
     writes its head's dk, dv alone) */
  if (!attn_force_rows && attn_bw_passes != 2 &&
      (attn_bw_passes == 1 || BHkv >= 2 * (int64_t)omp_get_max_threads())) {
    bool ok = true;
#pragma omp parallel if (par)
    {
      ELT *scratch = malloc((size_t)((2 * D + 3 * ATTN_QB) * ldS) * sizeof(ELT));
#pragma omp for schedule(dynamic, 1) reduction(&& : ok)
      for (int64_t bk = 0; bk < BHkv; bk++)
        ok = FN(bw_head, SFX)(dq, dk, dv, dout, q, k, v, out, lse, mask, sh, bk, scratch) && ok;
      free(scratch);
    }
    if (ok) return;
  }
  /* dq by runs of query blocks */
  const int64_t nqb = (Tq + ATTN_QB - 1) / ATTN_QB, qparts = FN(parts, SFX)(BHq, nqb);
  const int64_t tq = BHq * qparts;
#pragma omp parallel if (par && tq > 1)
  {
    ELT *scratch = attn_force_rows ? NULL : malloc((size_t)(2 * (D + ATTN_QB) * ldS) * sizeof(ELT));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tq; t++) {
      int64_t bh = t / qparts, part = t % qparts;
      int64_t b0 = nqb * part / qparts, b1 = nqb * (part + 1) / qparts;
      int64_t ia = b0 * ATTN_QB, ib = b1 * ATTN_QB < Tq ? b1 * ATTN_QB : Tq;
      if (ia >= ib) continue;
      FN(head, SFX) hd = FN(head_of, SFX)(sh, k, v, bh);
      if (!scratch) {
        for (int64_t i = ia; i < ib; i++)
          FN(dq_row, SFX)(dq, dout, q, hd.K, hd.V, out, lse, mask, hd.doc, sh, hd.row0 + i, i);
        continue;
      }
      int64_t klo, khi;
      FN(block_keys, SFX)(sh, ia, ib, &klo, &khi);
      ELT *Kt = scratch, *Vt = Kt + D * ldS, *Sc = Vt + D * ldS;
      FN(transpose, SFX)(Kt, ldS, hd.K + klo * D, khi - klo, D);
      FN(transpose, SFX)(Vt, ldS, hd.V + klo * D, khi - klo, D);
      for (int64_t i0 = ia; i0 < ib; i0 += ATTN_QB) {
        int64_t i1 = i0 + ATTN_QB < ib ? i0 + ATTN_QB : ib;
        FN(dq_block, SFX)
        (dq, dout, q, hd.K, Kt, Vt, klo, ldS, out, lse, mask, hd.doc, sh, hd.row0, i0, i1, Sc);
      }
    }
    free(scratch);
  }
  /* dk, dv by runs of key blocks */
  const int64_t nkb = (S + ATTN_KB - 1) / ATTN_KB, kparts = FN(parts, SFX)(BHkv, nkb);
  const int64_t tk = BHkv * kparts;
#pragma omp parallel if (par && tk > 1)
  {
    ELT *scratch =
        attn_force_rows ? NULL : malloc((size_t)(2 * (D + ATTN_KB + 1) * ldT) * sizeof(ELT));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tk; t++) {
      int64_t bk = t / kparts, part = t % kparts;
      int64_t b0 = nkb * part / kparts, b1 = nkb * (part + 1) / kparts;
      int64_t ja = b0 * ATTN_KB, jb = b1 * ATTN_KB < S ? b1 * ATTN_KB : S;
      if (ja >= jb) continue;
      ELT *gk = dk + bk * S * D, *gv = dv + bk * S * D;
      for (int64_t d = ja * D; d < jb * D; d++) gk[d] = gv[d] = 0;
      if (!scratch) {
        for (int64_t j0 = ja; j0 < jb; j0 += ATTN_KB) FN(dkv_rows, SFX)
        (dk, dv, dout, q, k, v, out, lse, mask, sh, bk, j0, j0 + ATTN_KB < jb ? j0 + ATTN_KB : jb);
        continue;
      }
      int64_t ia, ib;
      attn_query_range(sh, ja, jb, &ia, &ib);
      if (ia >= ib) continue;
      ELT *Qt = scratch, *Gt = Qt + D * ldT, *rest = Gt + D * ldT;
      int64_t b = bk / sh->Hkv, hk = bk % sh->Hkv;
      for (int64_t g = 0; g < G; g++) {
        int64_t bh = b * sh->Hq + hk * G + g;
        FN(transpose, SFX)(Qt, ldT, q + (bh * Tq + ia) * D, ib - ia, D);
        FN(transpose, SFX)(Gt, ldT, dout + (bh * Tq + ia) * D, ib - ia, D);
        for (int64_t j0 = ja; j0 < jb; j0 += ATTN_KB) FN(dkv_block, SFX)
        (dk, dv, dout, q, k, v, Qt, Gt, ia, ldT, out, lse, mask, sh, bk, bh, j0,
         j0 + ATTN_KB < jb ? j0 + ATTN_KB : jb, rest);
      }
    }
    free(scratch);
  }
}

#undef FN
#undef FN_
