/* CPU scaled-dot-product attention: forward saving each row's
 * log-sum-exp, and backward in one pass per key/value head when there are
 * enough heads for the threads, else in two (dq by blocks of query rows,
 * dk/dv by blocks of keys).  Parallel with OpenMP; scores are computed as
 * register-tiled products against transposed operands (see
 * cpu/attention_kernel.h).
 *
 * The kernels read and write [B, H, T, D] operands whose last dim is
 * contiguous in place, with any strides of the other three (attn_op):
 * tyr_sdpa_qkv's heads inside the packed qkv projection, its [B, T, H D]
 * output and the gradients in one [B, T, 3C] tensor, and tyr_sdpa's
 * transposed [B, T, H, D] views need no layout ops, copies or fills. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "cpu/cpu.h"
#include "cpu/fastmath.h"

#define ATTN_CHUNK 64 /* keys scored at a time by the row-at-a-time fallback */
#define ATTN_QB 32    /* query rows per task (forward, dq) */
#define ATTN_KB 32    /* keys per task (dk, dv) */
#define TILE_R 8      /* rows of a register tile of scores (8 x 32: 16 AVX-512 accumulators) */
#define TILE_C 32     /* columns of a register tile of scores */

/* tyr_cpu_attention_force_rows is defined in isa.c, compiled once */
#define attn_force_rows tyr_cpu_attention_force_rows
#define attn_bw_passes tyr_cpu_attention_bw_passes

static inline int64_t attn_round_up(int64_t n) {
  return n > 0 ? (n + TILE_C - 1) / TILE_C * TILE_C : 0;
}

typedef struct {
  int64_t B, Hq, Hkv, T, S, D;
  bool causal;
  int64_t window;
  double scale;
  const int32_t *doc; /* [B, S] document ids, or NULL */
} attn_shape;

/* Keys [lo, hi) that query row i may see before the mask. */
static inline void attn_key_range(const attn_shape *sh, int64_t i, int64_t *lo, int64_t *hi) {
  int64_t pos = i + sh->S - sh->T; /* i's position among the keys */
  int64_t l = 0, h = sh->S;
  if (sh->causal || sh->window > 0) h = pos + 1 < h ? pos + 1 : h;
  if (sh->window > 0) l = pos - sh->window + 1 > 0 ? pos - sh->window + 1 : 0;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

/* Query rows [ilo, ihi) that may see some key in [j0, j1). */
static inline void attn_query_range(const attn_shape *sh, int64_t j0, int64_t j1, int64_t *ilo,
                                    int64_t *ihi) {
  int64_t off = sh->S - sh->T, l = 0, h = sh->T;
  if (sh->causal || sh->window > 0) l = j0 - off > 0 ? j0 - off : 0;
  if (sh->window > 0) h = j1 - 1 - off + sh->window < h ? j1 - 1 - off + sh->window : h;
  if (h < l) h = l;
  *ilo = l;
  *ihi = h;
}

/* An operand [B, H, rows, D] with a contiguous last dim: element
 * (b, h, r, d) at p + b sb + h sh + r sr + d, in elements of its dtype
 * (p NULL: not used). */
typedef struct {
  char *p;
  int64_t sb, sh, sr;
} attn_op;

/* The operands of one call; lse [B, Hq, Tq] is contiguous. */
typedef struct {
  attn_op q, k, v, out, dout, dq, dk, dv;
  char *lse;
} attn_ops;

#ifdef __AVX512F__ /* the x86-64-v4 variant: f32 helpers in AVX-512 */
#include "cpu/transpose16.h"

/* max of p[0..n), NaN ignored as the portable vmax ignores it (x > m ? x :
 * m is max_ps(x, m)): a row whose scores are all NaN sees no key in every
 * variant. */
static inline float attn_max_avx512(const float *restrict p, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) m = _mm512_max_ps(_mm512_loadu_ps(p + c), m);
  if (c < n) {
    __mmask16 k = (__mmask16)((1u << (n - c)) - 1);
    m = _mm512_mask_max_ps(m, k, _mm512_maskz_loadu_ps(k, p + c), m);
  }
  return _mm512_reduce_max_ps(m);
}

/* bt[c * ldb + r] = x[r * ldx + c] for r < rows, c < cols, by 16 x 16
 * blocks transposed in registers. */
static void attn_transpose_avx512(float *restrict bt, int64_t ldb, const float *restrict x,
                                  int64_t ldx, int64_t rows, int64_t cols) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    int64_t rn = rows - r0 < 16 ? rows - r0 : 16;
    __mmask16 rm = (__mmask16)(rn >= 16 ? 0xffff : (1u << rn) - 1);
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      int64_t cn = cols - c0 < 16 ? cols - c0 : 16;
      __mmask16 cm = (__mmask16)(cn >= 16 ? 0xffff : (1u << cn) - 1);
      __m512 t[16];
      for (int i = 0; i < 16; i++)
        t[i] = i < rn ? _mm512_maskz_loadu_ps(cm, x + (r0 + i) * ldx + c0) : _mm512_setzero_ps();
      tyr_cpu_transpose16(t);
      for (int i = 0; i < cn; i++) _mm512_mask_storeu_ps(bt + (c0 + i) * ldb + r0, rm, t[i]);
    }
  }
}

/* Columns [d0, d0 + 16 nv) of pv4 below (the last vector masked by `last`):
 * 4 x nv accumulators in registers over the whole sum. */
static inline __attribute__((always_inline)) void
attn_pv4_cols(float *restrict o, int64_t ldo, const float *restrict p, int64_t ldp,
              const float *restrict x, int64_t ldx, int64_t n, int64_t d0, int nv, __mmask16 last) {
  __m512 acc[4][4];
  for (int r = 0; r < 4; r++)
    for (int v = 0; v < nv; v++)
      acc[r][v] = _mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff, o + r * ldo + d0 + 16 * v);
  for (int64_t c = 0; c < n; c++) {
    const float *xr = x + c * ldx + d0;
    __m512 xv[4];
    for (int v = 0; v < nv; v++)
      xv[v] = _mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff, xr + 16 * v);
    for (int r = 0; r < 4; r++) {
      const __m512 pr = _mm512_set1_ps(p[r * ldp + c]);
      for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(pr, xv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int v = 0; v < nv; v++)
      _mm512_mask_storeu_ps(o + r * ldo + d0 + 16 * v, v == nv - 1 ? last : 0xffff, acc[r][v]);
}

/* o + r ldo += (p + r ldp) times the n rows of x, for r < 4: each load of x
 * feeds four rows, every element summed in pv's order (c ascending, one
 * fused multiply-add each, as the compiler contracts pv's a += p x under
 * -march=x86-64-v4). */
static void attn_pv4_avx512(float *restrict o, int64_t ldo, const float *restrict p, int64_t ldp,
                            const float *restrict x, int64_t ldx, int64_t n, int64_t D) {
  int64_t d0 = 0;
  for (; d0 + 64 <= D; d0 += 64) attn_pv4_cols(o, ldo, p, ldp, x, ldx, n, d0, 4, 0xffff);
  for (; d0 + 32 <= D; d0 += 32) attn_pv4_cols(o, ldo, p, ldp, x, ldx, n, d0, 2, 0xffff);
  for (; d0 + 16 <= D; d0 += 16) attn_pv4_cols(o, ldo, p, ldp, x, ldx, n, d0, 1, 0xffff);
  if (d0 < D) attn_pv4_cols(o, ldo, p, ldp, x, ldx, n, d0, 1, (__mmask16)((1u << (D - d0)) - 1));
}
#define ATTN_PV4 attn_pv4_avx512
#define ATTN_VMAX attn_max_avx512
#define ATTN_TRANSPOSE attn_transpose_avx512
#endif

#define ELT float
#define SFX f32
#define EXP expf
#define VEXP tyr_cpu_expf
#define LOG logf
#define PV_W 32
#include "cpu/attention_kernel.h"
#undef ELT
#undef SFX
#undef EXP
#undef VEXP
#undef LOG
#undef PV_W
#undef ATTN_VMAX
#undef ATTN_TRANSPOSE
#undef ATTN_PV4

#define ELT double
#define SFX f64
#define EXP exp
#define VEXP exp
#define LOG log
#define PV_W 16
#include "cpu/attention_kernel.h"
#undef ELT
#undef SFX
#undef EXP
#undef VEXP
#undef LOG
#undef PV_W

static attn_shape shape_of(const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *doc,
                           bool causal, int64_t window, double scale) {
  attn_shape sh = {q->shape[0], q->shape[1], k->shape[1], q->shape[2], k->shape[2],
                   q->shape[3], causal,      window,      scale,       NULL};
  if (doc) sh.doc = (const int32_t *)tyr_data_ptr(doc);
  return sh;
}

#define MASK_PTR(m) ((m) ? (const uint8_t *)tyr_data_ptr(m) : NULL)

/* t [B, H, T, D] (its last dim contiguous: core/backend.h) as an operand */
static attn_op op_of(const tyr_tensor *t) {
  return (attn_op){tyr_data_ptr(t), t->stride[0], t->stride[1], t->stride[2]};
}

void tyr_cpu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                  const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                  int64_t window, double scale) {
  attn_shape sh = shape_of(q, k, doc, causal, window, scale);
  attn_ops a = {.q = op_of(q), .k = op_of(k), .v = op_of(v), .out = op_of(out)};
  a.lse = tyr_data_ptr(lse);
  if (q->dtype == TYR_F32)
    sdpa_fw_f32(&a, MASK_PTR(mask), &sh);
  else
    sdpa_fw_f64(&a, MASK_PTR(mask), &sh);
}

void tyr_cpu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                           const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                           const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                           const tyr_tensor *doc, bool causal, int64_t window, double scale) {
  attn_shape sh = shape_of(q, k, doc, causal, window, scale);
  attn_ops a = {.q = op_of(q),
                .k = op_of(k),
                .v = op_of(v),
                .out = op_of(out),
                .dout = op_of(dout),
                .dq = op_of(dq),
                .dk = op_of(dk),
                .dv = op_of(dv)};
  a.lse = tyr_data_ptr(lse);
  if (q->dtype == TYR_F32)
    sdpa_bw_f32(&a, MASK_PTR(mask), &sh);
  else
    sdpa_bw_f64(&a, MASK_PTR(mask), &sh);
}
