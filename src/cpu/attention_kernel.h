/* Template of the CPU attention kernels, included by cpu/attention.c once
 * per float type with ELT (the element type), SFX (a name suffix) and EXP,
 * LOG (its exp and log) defined.  Operands are attn_op views (attention.c):
 * q, out, dout, dq [B, Hq, Tq, D]; k, v, dk, dv [B, Hkv, S, D], each head
 * a run of rows with its own row stride (contiguous heads, or heads inside
 * a packed [B, T, (H + 2 Hkv) D] projection, read and written in place);
 * lse [B, Hq, Tq] contiguous.
 *
 * Work is split into tasks of ATTN_QB query rows of one head (forward and
 * dq) or ATTN_KB keys of one key/value head (dk, dv), run in parallel.  A
 * task computes its block of scores as a small matrix product (tiles of
 * TILE_R x TILE_C kept in registers) against the other operand, which it
 * transposed into per-thread scratch ([D, ld], ld = round_up(len) +
 * TILE_C so that a block starting anywhere may read whole tiles), then
 * works on whole rows.  When the scratch cannot be allocated, the work is
 * done a row at a time instead.
 *
 * Hooks the including file may define for ELT = float (attention.c does in
 * its AVX-512 build): ATTN_VMAX (a row's maximum), ATTN_TRANSPOSE
 * (transpose_ld) and ATTN_PV4 (pv4), each computing what the portable code
 * below computes. */
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

/* o[d] += sum_c p[c] x[c * ldx + d]: PV_W columns of o stay in registers
 * over the whole sum. */
static void FN(pv, SFX)(ELT *restrict o, const ELT *restrict p, const ELT *restrict x, int64_t ldx,
                        int64_t n, int64_t D) {
  int64_t d0 = 0;
  for (; d0 + PV_W <= D; d0 += PV_W) {
    ELT acc[PV_W];
    for (int w = 0; w < PV_W; w++) acc[w] = o[d0 + w];
    for (int64_t c = 0; c < n; c++) {
      const ELT pc = p[c], *xr = x + c * ldx + d0;
#pragma omp simd
      for (int w = 0; w < PV_W; w++) acc[w] += pc * xr[w];
    }
    for (int w = 0; w < PV_W; w++) o[d0 + w] = acc[w];
  }
  for (; d0 < D; d0++) {
    ELT a = o[d0];
    for (int64_t c = 0; c < n; c++) a += p[c] * x[c * ldx + d0];
    o[d0] = a;
  }
}

/* Columns [d0, d0 + W) of pv4: 4 x W accumulators. */
#define PV4_COLS(W)                                                                                \
  {                                                                                                \
    ELT a0[W], a1[W], a2[W], a3[W];                                                                \
    for (int w = 0; w < W; w++) {                                                                  \
      a0[w] = o[d0 + w];                                                                           \
      a1[w] = o[ldo + d0 + w];                                                                     \
      a2[w] = o[2 * ldo + d0 + w];                                                                 \
      a3[w] = o[3 * ldo + d0 + w];                                                                 \
    }                                                                                              \
    for (int64_t c = 0; c < n; c++) {                                                              \
      const ELT p0 = p[c], p1 = p[ldp + c], p2 = p[2 * ldp + c], p3 = p[3 * ldp + c];              \
      const ELT *xr = x + c * ldx + d0;                                                            \
      _Pragma("omp simd") for (int w = 0; w < W; w++) {                                            \
        a0[w] += p0 * xr[w];                                                                       \
        a1[w] += p1 * xr[w];                                                                       \
        a2[w] += p2 * xr[w];                                                                       \
        a3[w] += p3 * xr[w];                                                                       \
      }                                                                                            \
    }                                                                                              \
    for (int w = 0; w < W; w++) {                                                                  \
      o[d0 + w] = a0[w];                                                                           \
      o[ldo + d0 + w] = a1[w];                                                                     \
      o[2 * ldo + d0 + w] = a2[w];                                                                 \
      o[3 * ldo + d0 + w] = a3[w];                                                                 \
    }                                                                                              \
  }

/* pv for four rows at once: o + r * ldo (+)= p + r * ldp times x for r < 4.
 * Each load of x feeds four rows' accumulators (4 x 2 PV_W in registers,
 * then 4 x PV_W): a row at a time, products against x are bound by the
 * loads of x, not by the multiply-adds.  Every element is summed in pv's
 * order. */
static void FN(pv4, SFX)(ELT *restrict o, int64_t ldo, const ELT *restrict p, int64_t ldp,
                         const ELT *restrict x, int64_t ldx, int64_t n, int64_t D) {
#ifdef ATTN_PV4 /* the same sums, in the same order, with the accumulators in registers */
  ATTN_PV4(o, ldo, p, ldp, x, ldx, n, D);
#else
  int64_t d0 = 0;
  for (; d0 + 2 * PV_W <= D; d0 += 2 * PV_W) PV4_COLS(2 * PV_W)
  for (; d0 + PV_W <= D; d0 += PV_W) PV4_COLS(PV_W)
  if (d0 < D)
    for (int r = 0; r < 4; r++) {
      ELT *orow = o + r * ldo;
      const ELT *prow = p + r * ldp;
      for (int64_t d = d0; d < D; d++) {
        ELT a = orow[d];
        for (int64_t c = 0; c < n; c++) a += prow[c] * x[c * ldx + d];
        orow[d] = a;
      }
    }
#endif
}
#undef PV4_COLS

/* Rows [0, m) of o (leading dim ldo) += rows of p (leading dim ldp) times
 * the n rows of x (leading dim ldx), for the rows with live[r] true (all
 * when live is NULL): by fours where four consecutive rows are live, else
 * one at a time. */
static void FN(pv_rows, SFX)(ELT *o, int64_t ldo, const ELT *p, int64_t ldp, const ELT *x,
                             int64_t ldx, int64_t n, int64_t D, int64_t m, const bool *live) {
  int64_t r = 0;
  while (r < m) {
    if (r + 4 <= m && (!live || (live[r] && live[r + 1] && live[r + 2] && live[r + 3]))) {
      FN(pv4, SFX)(o + r * ldo, ldo, p + r * ldp, ldp, x, ldx, n, D);
      r += 4;
    } else {
      if (!live || live[r]) FN(pv, SFX)(o + r * ldo, p + r * ldp, x, ldx, n, D);
      r++;
    }
  }
}

/* bt[c * ldb + r] = x[r * ldx + c] for r < rows, c < cols, by 16 x 16
 * blocks so that both sides stay in cache (a block of scores turned over
 * makes the products with its columns pv_rows). */
static void FN(transpose_ld, SFX)(ELT *restrict bt, int64_t ldb, const ELT *restrict x, int64_t ldx,
                                  int64_t rows, int64_t cols) {
#ifdef ATTN_TRANSPOSE
  ATTN_TRANSPOSE(bt, ldb, x, ldx, rows, cols);
#else
  for (int64_t c0 = 0; c0 < cols; c0 += 16)
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
      int64_t c1 = c0 + 16 < cols ? c0 + 16 : cols, r1 = r0 + 16 < rows ? r0 + 16 : rows;
      for (int64_t c = c0; c < c1; c++)
        for (int64_t r = r0; r < r1; r++) bt[c * ldb + r] = x[r * ldx + c];
    }
#endif
}

/* bt[d * ld + c] = x[c * ldx + d] for c < n, and 0 for n <= c < ld: a
 * head's n rows of D values transposed, padded for whole tiles. */
static void FN(transpose, SFX)(ELT *restrict bt, int64_t ld, const ELT *restrict x, int64_t ldx,
                               int64_t n, int64_t D) {
  FN(transpose_ld, SFX)(bt, ld, x, ldx, n, D);
  for (int64_t d = 0; d < D; d++)
    for (int64_t c = n; c < ld; c++) bt[d * ld + c] = 0;
}

/* C[r * ldc + c] = sum_d A[r * lda + d] * Bt[d * ldb + c] for r < m and c <
 * round_up(n, TILE_C) (ldb and ldc at least that; Bt zero-padded). */
static void FN(gemm_nt, SFX)(ELT *restrict C, int64_t ldc, const ELT *restrict A, int64_t lda,
                             int64_t m, const ELT *restrict Bt, int64_t ldb, int64_t n, int64_t D) {
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
          ELT a = A[(r + rr) * lda + d];
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
        ELT a = A[r * lda + d];
#pragma omp simd
        for (int cc = 0; cc < TILE_C; cc++) acc[cc] += a * b[cc];
      }
      for (int cc = 0; cc < TILE_C; cc++) C[r * ldc + c + cc] = acc[cc];
    }
  }
}

/* One query head's operands: its rows in q, out, dout and dq, its key/value
 * head's rows in k and v (each with its row stride), its lse and the
 * batch's document ids. */
typedef struct {
  const ELT *Q, *K, *V, *O, *G; /* G: dout */
  ELT *Ow, *DQ, *L;             /* out (forward), dq (backward), lse */
  int64_t lq, lk, lv, lo, lg, ldq;
  const int32_t *doc; /* [S], or NULL */
} FN(head, SFX);

static inline ELT *FN(head_ptr, SFX)(const attn_op *o, int64_t b, int64_t h) {
  return o->p ? (ELT *)o->p + b * o->sb + h * o->sh : NULL;
}

static inline FN(head, SFX) FN(head_of, SFX)(const attn_shape *sh, const attn_ops *a, int64_t bh) {
  int64_t b = bh / sh->Hq, h = bh % sh->Hq, kv = h / (sh->Hq / sh->Hkv);
  FN(head, SFX) hd;
  hd.Q = FN(head_ptr, SFX)(&a->q, b, h);
  hd.K = FN(head_ptr, SFX)(&a->k, b, kv);
  hd.V = FN(head_ptr, SFX)(&a->v, b, kv);
  hd.Ow = FN(head_ptr, SFX)(&a->out, b, h);
  hd.O = hd.Ow;
  hd.G = FN(head_ptr, SFX)(&a->dout, b, h);
  hd.DQ = FN(head_ptr, SFX)(&a->dq, b, h);
  hd.L = (ELT *)a->lse + bh * sh->T;
  hd.lq = a->q.sr, hd.lk = a->k.sr, hd.lv = a->v.sr, hd.lo = a->out.sr, hd.lg = a->dout.sr;
  hd.ldq = a->dq.sr;
  hd.doc = sh->doc ? sh->doc + b * sh->S : NULL;
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
#ifdef ATTN_VMAX
  return ATTN_VMAX(p, n);
#else
  ELT mm[16];
  for (int w = 0; w < 16; w++) mm[w] = -INFINITY;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int w = 0; w < 16; w++) mm[w] = p[c + w] > mm[w] ? p[c + w] : mm[w];
  for (; c < n; c++) mm[0] = p[c] > mm[0] ? p[c] : mm[0];
  ELT m = mm[0];
  for (int w = 1; w < 16; w++) m = mm[w] > m ? mm[w] : m;
  return m;
#endif
}

/* Scores of row i over keys lo + c (c < n), masked (-inf) and scaled, in
 * place.  doc: the batch's document ids, or NULL. */
static inline void FN(mask_row, SFX)(ELT *restrict p, const attn_shape *sh, const uint8_t *mask,
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
}

/* ---- forward ------------------------------------------------------------------ */
/* One query row with an online softmax over chunks of keys (the fallback). */
static void FN(fw_row, SFX)(const FN(head, SFX) * hd, const uint8_t *mask, const attn_shape *sh,
                            int64_t i) {
  const int64_t S = sh->S, D = sh->D;
  const ELT scale = (ELT)sh->scale;
  const ELT *qi = hd->Q + i * hd->lq;
  const uint8_t *mrow = mask ? mask + i * S : NULL;
  const int32_t *doc = hd->doc;
  ELT *oi = hd->Ow + i * hd->lo;
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
      sc[c] = FN(dot, SFX)(qi, hd->K + j * hd->lk, D) * scale;
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
      FN(axpy, SFX)(oi, p, hd->V + (j0 + c) * hd->lv, D);
    }
  }
  if (l > 0) {
    ELT inv = 1 / l;
    for (int64_t d = 0; d < D; d++) oi[d] *= inv;
    hd->L[i] = m + LOG(l);
  } else {
    hd->L[i] = -INFINITY; /* no key: the output stays 0 */
  }
}

/* Rows [i0, i1) of one head; Kt holds the head's keys from kbase on,
 * transposed (leading dim ld); P holds ATTN_QB x ld scores. */
static void FN(fw_block, SFX)(const FN(head, SFX) * hd, const ELT *Kt, int64_t kbase, int64_t ld,
                              const uint8_t *mask, const attn_shape *sh, int64_t i0, int64_t i1,
                              ELT *P) {
  const int64_t D = sh->D;
  int64_t lo, hi;
  FN(block_keys, SFX)(sh, i0, i1, &lo, &hi);
  int64_t n = hi - lo, npad = attn_round_up(n);
  if (n > 0)
    FN(gemm_nt, SFX)(P, npad, hd->Q + i0 * hd->lq, hd->lq, i1 - i0, Kt + (lo - kbase), ld, n, D);
  bool live[ATTN_QB];
  ELT inv[ATTN_QB];
  for (int64_t i = i0; i < i1; i++) {
    ELT *p = P + (i - i0) * npad, *oi = hd->Ow + i * hd->lo;
    for (int64_t d = 0; d < D; d++) oi[d] = 0;
    ELT m = -INFINITY;
    if (n > 0) {
      FN(mask_row, SFX)(p, sh, mask, hd->doc, i, lo, n);
      m = FN(vmax, SFX)(p, n);
    }
    live[i - i0] = m != -INFINITY;
    if (m == -INFINITY) {
      hd->L[i] = -INFINITY; /* no key: the output stays 0 */
      continue;
    }
    ELT l = 0;
#pragma omp simd reduction(+ : l)
    for (int64_t c = 0; c < n; c++) {
      const ELT e = VEXP(p[c] - m); /* exp(-inf) = 0 */
      p[c] = e;
      l += e;
    }
    inv[i - i0] = 1 / l;
    hd->L[i] = m + LOG(l);
  }
  /* o = (P V) / l: the rows' sums divided out once the products are made,
     D multiplies a row rather than n */
  FN(pv_rows, SFX)
  (hd->Ow + i0 * hd->lo, hd->lo, P, npad, hd->V + lo * hd->lv, hd->lv, n, D, i1 - i0, live);
  for (int64_t i = i0; i < i1; i++) {
    if (!live[i - i0]) continue;
    ELT *oi = hd->Ow + i * hd->lo;
    const ELT f = inv[i - i0];
#pragma omp simd
    for (int64_t d = 0; d < D; d++) oi[d] *= f;
  }
}

/* Tasks: each head's blocks of rows (query blocks, or key blocks) are cut
 * into `parts` runs of consecutive blocks, enough for every thread to have
 * work; a task transposes what its run needs once. */
static inline int64_t FN(parts, SFX)(int64_t heads, int64_t blocks) {
  int64_t want = 2 * (int64_t)omp_get_max_threads();
  int64_t p = heads >= want ? 1 : (want + heads - 1) / heads;
  return p < blocks ? p : (blocks > 0 ? blocks : 1);
}

static void FN(sdpa_fw, SFX)(const attn_ops *a, const uint8_t *mask, const attn_shape *sh) {
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
      FN(head, SFX) hd = FN(head_of, SFX)(sh, a, bh);
      if (!scratch) {
        for (int64_t i = ia; i < ib; i++) FN(fw_row, SFX)(&hd, mask, sh, i);
        continue;
      }
      int64_t klo, khi;
      FN(block_keys, SFX)(sh, ia, ib, &klo, &khi);
      ELT *Kt = scratch, *P = scratch + D * ld;
      FN(transpose, SFX)(Kt, ld, hd.K + klo * hd.lk, hd.lk, khi - klo, D);
      for (int64_t i0 = ia; i0 < ib; i0 += ATTN_QB) {
        int64_t i1 = i0 + ATTN_QB < ib ? i0 + ATTN_QB : ib;
        FN(fw_block, SFX)(&hd, Kt, klo, ld, mask, sh, i0, i1, P);
      }
    }
    free(scratch);
  }
}

/* ---- backward -------------------------------------------------------------------
 * Two passes that write disjoint outputs (no atomics): dq by blocks of
 * query rows, then dk and dv by blocks of keys, each recomputing
 * P = exp(s - lse).  With dP = dO v^T and Di = dO_i . O_i:
 *   dS = P * (dP - Di),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dO.
 * Or one pass per key/value head (bw_head) when there are enough of them. */

/* dq of one row (the fallback). */
static void FN(dq_row, SFX)(const FN(head, SFX) * hd, const uint8_t *mask, const attn_shape *sh,
                            int64_t i) {
  const int64_t S = sh->S, D = sh->D;
  const ELT scale = (ELT)sh->scale;
  const ELT *qi = hd->Q + i * hd->lq, *gi = hd->G + i * hd->lg;
  const uint8_t *mrow = mask ? mask + i * S : NULL;
  const int32_t *doc = hd->doc;
  ELT *o = hd->DQ + i * hd->ldq;
  for (int64_t d = 0; d < D; d++) o[d] = 0;
  ELT L = hd->L[i];
  if (L == -INFINITY) return;
  ELT Di = FN(dot, SFX)(gi, hd->O + i * hd->lo, D);
  int64_t lo, hi;
  attn_key_range(sh, i, &lo, &hi);
  for (int64_t j = lo; j < hi; j++) {
    if ((mrow && !mrow[j]) || (doc && doc[j] != doc[i + S - sh->T])) continue;
    const ELT *kj = hd->K + j * hd->lk;
    ELT p = EXP(FN(dot, SFX)(qi, kj, D) * scale - L);
    ELT ds = p * (FN(dot, SFX)(gi, hd->V + j * hd->lv, D) - Di);
    FN(axpy, SFX)(o, ds * scale, kj, D);
  }
}

/* The scores of query rows [i0, i1) over keys [lo, lo + n) turned into
 * scale dS (in Sc) and, with keep_p, P (in dP, whose rows that see no key
 * are then zeroed with theirs in Sc: the products over all rows add
 * nothing for them).  On entry Sc holds the scores and dP the products
 * dO v^T (leading dim npad).  live[r]: row i0 + r sees a key; returns
 * whether any does. */
static bool FN(ds_block, SFX)(const FN(head, SFX) * hd, const uint8_t *mask, const attn_shape *sh,
                              int64_t i0, int64_t i1, int64_t lo, int64_t n, ELT *Sc, ELT *dP,
                              bool keep_p, bool *live) {
  const int64_t D = sh->D, npad = attn_round_up(n);
  const ELT scale = (ELT)sh->scale;
  bool any = false;
  for (int64_t i = i0; i < i1; i++) {
    ELT *s = Sc + (i - i0) * npad, *dp = dP + (i - i0) * npad;
    const ELT L = hd->L[i];
    live[i - i0] = L != -INFINITY && n > 0;
    if (!live[i - i0]) {
      if (keep_p) /* no key: no gradient from this row */
        for (int64_t c = 0; c < n; c++) s[c] = dp[c] = 0;
      continue;
    }
    any = true;
    const ELT Di = FN(dot, SFX)(hd->G + i * hd->lg, hd->O + i * hd->lo, D);
    FN(mask_row, SFX)(s, sh, mask, hd->doc, i, lo, n); /* scaled scores, -inf where masked */
    if (keep_p) {
      for (int64_t c = 0; c < n; c++) {
        const ELT p = VEXP(s[c] - L);
        s[c] = p * (dp[c] - Di) * scale; /* dS, 0 where masked */
        dp[c] = p;                       /* P */
      }
    } else {
      for (int64_t c = 0; c < n; c++) {
        const ELT p = VEXP(s[c] - L);
        s[c] = p * (dp[c] - Di) * scale;
      }
    }
  }
  return any;
}

/* dq of rows [i0, i1) of one head, with its keys and values from kbase
 * on transposed (leading dim ld); Sc holds 2 ATTN_QB ld elements. */
static void FN(dq_block, SFX)(const FN(head, SFX) * hd, const ELT *Kt, const ELT *Vt, int64_t kbase,
                              int64_t ld, const uint8_t *mask, const attn_shape *sh, int64_t i0,
                              int64_t i1, ELT *Sc) {
  const int64_t D = sh->D;
  int64_t lo, hi;
  FN(block_keys, SFX)(sh, i0, i1, &lo, &hi);
  int64_t n = hi - lo, npad = attn_round_up(n), m = i1 - i0;
  ELT *dP = Sc + ATTN_QB * npad;
  for (int64_t i = i0; i < i1; i++)
    for (int64_t d = 0; d < D; d++) hd->DQ[i * hd->ldq + d] = 0;
  if (n <= 0) return;
  FN(gemm_nt, SFX)(Sc, npad, hd->Q + i0 * hd->lq, hd->lq, m, Kt + (lo - kbase), ld, n, D);
  FN(gemm_nt, SFX)(dP, npad, hd->G + i0 * hd->lg, hd->lg, m, Vt + (lo - kbase), ld, n, D);
  bool live[ATTN_QB];
  if (FN(ds_block, SFX)(hd, mask, sh, i0, i1, lo, n, Sc, dP, false, live)) FN(pv_rows, SFX)
  (hd->DQ + i0 * hd->ldq, hd->ldq, Sc, npad, hd->K + lo * hd->lk, hd->lk, n, D, m, live);
}

/* The rows of dk and dv of key/value head bk (batch b, head hk of Hkv). */
static inline ELT *FN(kv_grad, SFX)(const attn_op *o, const attn_shape *sh, int64_t bk) {
  return FN(head_ptr, SFX)(o, bk / sh->Hkv, bk % sh->Hkv);
}

/* dk, dv of keys [j0, j1) of one key/value head bk (the fallback). */
static void FN(dkv_rows, SFX)(const attn_ops *a, const uint8_t *mask, const attn_shape *sh,
                              int64_t bk, int64_t j0, int64_t j1) {
  const int64_t Hq = sh->Hq, Hkv = sh->Hkv, Tq = sh->T, S = sh->S, D = sh->D, G = Hq / Hkv;
  const ELT scale = (ELT)sh->scale;
  int64_t b = bk / Hkv, hk = bk % Hkv;
  ELT *gk = FN(kv_grad, SFX)(&a->dk, sh, bk), *gv = FN(kv_grad, SFX)(&a->dv, sh, bk);
  const int64_t lgk = a->dk.sr, lgv = a->dv.sr;
  int64_t ilo, ihi;
  attn_query_range(sh, j0, j1, &ilo, &ihi);
  for (int64_t g = 0; g < G; g++) {
    FN(head, SFX) hd = FN(head_of, SFX)(sh, a, b * Hq + hk * G + g);
    const int32_t *doc = hd.doc;
    for (int64_t i = ilo; i < ihi; i++) {
      ELT L = hd.L[i];
      if (L == -INFINITY) continue;
      int64_t lo, hi;
      attn_key_range(sh, i, &lo, &hi);
      if (lo < j0) lo = j0;
      if (hi > j1) hi = j1;
      if (lo >= hi) continue;
      const ELT *qi = hd.Q + i * hd.lq, *gi = hd.G + i * hd.lg;
      const uint8_t *mrow = mask ? mask + i * S : NULL;
      ELT Di = FN(dot, SFX)(gi, hd.O + i * hd.lo, D);
      for (int64_t j = lo; j < hi; j++) {
        if ((mrow && !mrow[j]) || (doc && doc[j] != doc[i + S - Tq])) continue;
        ELT p = EXP(FN(dot, SFX)(qi, hd.K + j * hd.lk, D) * scale - L);
        ELT ds = p * (FN(dot, SFX)(gi, hd.V + j * hd.lv, D) - Di);
        FN(axpy, SFX)(gv + j * lgv, p, gi, D);
        FN(axpy, SFX)(gk + j * lgk, ds * scale, qi, D);
      }
    }
  }
}

/* dk, dv of keys [j0, j1) of key/value head bk from query head hd: its
 * queries and output gradients from row ibase on transposed (leading dim
 * ld) in qt, gt; accumulates into dk, dv.  scratch holds 2 (ATTN_KB + 1) ld
 * elements. */
static void FN(dkv_block, SFX)(const FN(head, SFX) * hd, ELT *gk, int64_t lgk, ELT *gv, int64_t lgv,
                               const ELT *qt, const ELT *gt, int64_t ibase, int64_t ld,
                               const uint8_t *mask, const attn_shape *sh, int64_t j0, int64_t j1,
                               ELT *scratch) {
  const int64_t Tq = sh->T, S = sh->S, D = sh->D;
  const ELT scale = (ELT)sh->scale, ninf = -INFINITY;
  int64_t mk = j1 - j0;
  const int32_t *doc = hd->doc;
  int64_t ilo, ihi;
  attn_query_range(sh, j0, j1, &ilo, &ihi);
  int64_t n = ihi - ilo, npad = attn_round_up(n);
  if (n <= 0) return;
  ELT *St = scratch, *Pt = St + ATTN_KB * npad, *Dv = Pt + ATTN_KB * npad, *Lv = Dv + npad;
  const int64_t off = S - Tq;
  const bool upper = sh->causal || sh->window > 0, lower = sh->window > 0;
  FN(gemm_nt, SFX)(St, npad, hd->K + j0 * hd->lk, hd->lk, mk, qt + (ilo - ibase), ld, n, D);
  FN(gemm_nt, SFX)
  (Pt, npad, hd->V + j0 * hd->lv, hd->lv, mk, gt + (ilo - ibase), ld, n, D); /* dP^T */
  for (int64_t c = 0; c < n; c++) {
    int64_t i = ilo + c;
    Lv[c] = hd->L[i];
    Dv[c] = Lv[c] == ninf ? 0 : FN(dot, SFX)(hd->G + i * hd->lg, hd->O + i * hd->lo, D);
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
  FN(pv_rows, SFX)(gv + j0 * lgv, lgv, Pt, npad, hd->G + ilo * hd->lg, hd->lg, n, D, mk, NULL);
  FN(pv_rows, SFX)(gk + j0 * lgk, lgk, St, npad, hd->Q + ilo * hd->lq, hd->lq, n, D, mk, NULL);
}

/* dq, dk and dv of one key/value head bk and its query heads in one pass
 * over blocks of query rows: a block's P and dS give its rows of dq
 * (dS K) and add to dv (P^T dO) and dk (dS^T Q) of the keys it sees, so
 * each score and each exp is computed once (the two-pass backward below
 * computes them in both passes).  Only one task may hold a key/value head:
 * used when there are enough of them for every thread.  scratch holds
 * (2 D + 3 ATTN_QB) ld elements, ld = tld(S); false when not given. */
static bool FN(bw_head, SFX)(const attn_ops *a, const uint8_t *mask, const attn_shape *sh,
                             int64_t bk, ELT *scratch) {
  if (!scratch) return false;
  const int64_t Tq = sh->T, S = sh->S, D = sh->D, G = sh->Hq / sh->Hkv, ld = FN(tld, SFX)(S);
  const int64_t b = bk / sh->Hkv, hk = bk % sh->Hkv;
  ELT *gk = FN(kv_grad, SFX)(&a->dk, sh, bk), *gv = FN(kv_grad, SFX)(&a->dv, sh, bk);
  const int64_t lgk = a->dk.sr, lgv = a->dv.sr;
  ELT *Kt = scratch, *Vt = Kt + D * ld, *Sc = Vt + D * ld, *dP = Sc + ATTN_QB * ld,
      *Tt = dP + ATTN_QB * ld;
  for (int64_t j = 0; j < S; j++)
    for (int64_t d = 0; d < D; d++) gk[j * lgk + d] = gv[j * lgv + d] = 0;
  for (int64_t g = 0; g < G; g++) {
    FN(head, SFX) hd = FN(head_of, SFX)(sh, a, b * sh->Hq + hk * G + g);
    if (g == 0) {
      FN(transpose, SFX)(Kt, ld, hd.K, hd.lk, S, D);
      FN(transpose, SFX)(Vt, ld, hd.V, hd.lv, S, D);
    }
    for (int64_t i0 = 0; i0 < Tq; i0 += ATTN_QB) {
      const int64_t i1 = i0 + ATTN_QB < Tq ? i0 + ATTN_QB : Tq, m = i1 - i0;
      int64_t lo, hi;
      FN(block_keys, SFX)(sh, i0, i1, &lo, &hi);
      const int64_t n = hi - lo, npad = attn_round_up(n);
      for (int64_t i = i0; i < i1; i++)
        for (int64_t d = 0; d < D; d++) hd.DQ[i * hd.ldq + d] = 0;
      if (n <= 0) continue;
      FN(gemm_nt, SFX)(Sc, npad, hd.Q + i0 * hd.lq, hd.lq, m, Kt + lo, ld, n, D);
      FN(gemm_nt, SFX)(dP, npad, hd.G + i0 * hd.lg, hd.lg, m, Vt + lo, ld, n, D);
      bool live[ATTN_QB];
      if (!FN(ds_block, SFX)(&hd, mask, sh, i0, i1, lo, n, Sc, dP, true, live)) continue;
      FN(pv_rows, SFX)
      (hd.DQ + i0 * hd.ldq, hd.ldq, Sc, npad, hd.K + lo * hd.lk, hd.lk, n, D, m, live);
      FN(transpose_ld, SFX)(Tt, ATTN_QB, dP, npad, m, n);
      FN(pv_rows, SFX)(gv + lo * lgv, lgv, Tt, ATTN_QB, hd.G + i0 * hd.lg, hd.lg, m, D, n, NULL);
      FN(transpose_ld, SFX)(Tt, ATTN_QB, Sc, npad, m, n);
      FN(pv_rows, SFX)(gk + lo * lgk, lgk, Tt, ATTN_QB, hd.Q + i0 * hd.lq, hd.lq, m, D, n, NULL);
    }
  }
  return true;
}

static void FN(sdpa_bw, SFX)(const attn_ops *a, const uint8_t *mask, const attn_shape *sh) {
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
      for (int64_t bk = 0; bk < BHkv; bk++) ok = FN(bw_head, SFX)(a, mask, sh, bk, scratch) && ok;
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
      FN(head, SFX) hd = FN(head_of, SFX)(sh, a, bh);
      if (!scratch) {
        for (int64_t i = ia; i < ib; i++) FN(dq_row, SFX)(&hd, mask, sh, i);
        continue;
      }
      int64_t klo, khi;
      FN(block_keys, SFX)(sh, ia, ib, &klo, &khi);
      ELT *Kt = scratch, *Vt = Kt + D * ldS, *Sc = Vt + D * ldS;
      FN(transpose, SFX)(Kt, ldS, hd.K + klo * hd.lk, hd.lk, khi - klo, D);
      FN(transpose, SFX)(Vt, ldS, hd.V + klo * hd.lv, hd.lv, khi - klo, D);
      for (int64_t i0 = ia; i0 < ib; i0 += ATTN_QB) {
        int64_t i1 = i0 + ATTN_QB < ib ? i0 + ATTN_QB : ib;
        FN(dq_block, SFX)(&hd, Kt, Vt, klo, ldS, mask, sh, i0, i1, Sc);
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
      ELT *gk = FN(kv_grad, SFX)(&a->dk, sh, bk), *gv = FN(kv_grad, SFX)(&a->dv, sh, bk);
      const int64_t lgk = a->dk.sr, lgv = a->dv.sr;
      for (int64_t j = ja; j < jb; j++)
        for (int64_t d = 0; d < D; d++) gk[j * lgk + d] = gv[j * lgv + d] = 0;
      if (!scratch) {
        for (int64_t j0 = ja; j0 < jb; j0 += ATTN_KB)
          FN(dkv_rows, SFX)(a, mask, sh, bk, j0, j0 + ATTN_KB < jb ? j0 + ATTN_KB : jb);
        continue;
      }
      int64_t ia, ib;
      attn_query_range(sh, ja, jb, &ia, &ib);
      if (ia >= ib) continue;
      ELT *Qt = scratch, *Gt = Qt + D * ldT, *rest = Gt + D * ldT;
      int64_t b = bk / sh->Hkv, hk = bk % sh->Hkv;
      for (int64_t g = 0; g < G; g++) {
        FN(head, SFX) hd = FN(head_of, SFX)(sh, a, b * sh->Hq + hk * G + g);
        FN(transpose, SFX)(Qt, ldT, hd.Q + ia * hd.lq, hd.lq, ib - ia, D);
        FN(transpose, SFX)(Gt, ldT, hd.G + ia * hd.lg, hd.lg, ib - ia, D);
        for (int64_t j0 = ja; j0 < jb; j0 += ATTN_KB) FN(dkv_block, SFX)
        (&hd, gk, lgk, gv, lgv, Qt, Gt, ia, ldT, mask, sh, j0,
         j0 + ATTN_KB < jb ? j0 + ATTN_KB : jb, rest);
      }
    }
    free(scratch);
  }
}

#undef FN
#undef FN_
