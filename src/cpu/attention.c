/* CPU scaled-dot-product attention: forward saving each row's
 * log-sum-exp, and backward in two passes (dq by blocks of query rows,
 * dk/dv by blocks of keys).  Parallel over blocks with OpenMP; scores are
 * computed as register-tiled products against transposed operands (see
 * cpu/attention_kernel.h).
 *
 * The kernels read and write contiguous [B, H, T, D] heads.  Operands that
 * are views whose last dim is contiguous (tyr_sdpa_qkv's heads inside the
 * packed qkv projection and its [B, T, H D] output) are gathered into
 * contiguous buffers, and results scattered back, here, all in one
 * parallel pass each way: cheaper than the layout ops, copies, zero fills
 * and adds of the narrow/transpose route, which also cost a parallel region
 * and an allocation each. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/fastmath.h"
#include "cpu/memory.h"

#define ATTN_CHUNK 64 /* keys scored at a time by the row-at-a-time fallback */
#define ATTN_QB 32    /* query rows per task (forward, dq) */
#define ATTN_KB 32    /* keys per task (dk, dv) */
#define TILE_R 8      /* rows of a register tile of scores (8 accumulators) */
#define TILE_C 16     /* columns of a register tile of scores */

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

/* Up to 8 [B, H, T, D] operands: each is used in place when contiguous,
 * else through a contiguous buffer (ptr) filled from it (gather) or, for
 * outputs, copied into it afterwards (heads_scatter). */
typedef struct {
  int n;
  const tyr_tensor *t[8];
  bool out[8];
  char *ptr[8];
  size_t bytes[8];
} heads_set;

static void *heads_add(heads_set *hs, const tyr_tensor *t, bool out) {
  int i = hs->n++;
  hs->t[i] = t;
  hs->out[i] = out;
  hs->bytes[i] = 0;
  hs->ptr[i] = tyr_data_ptr(t);
  if (!tyr_is_contiguous(t)) {
    hs->bytes[i] = (size_t)tyr_numel(t) * tyr_dtype_size(t->dtype);
    hs->ptr[i] = tyr_cpu_alloc(hs->bytes[i], t->device);
  }
  return hs->ptr[i];
}

static bool heads_ok(const heads_set *hs) {
  for (int i = 0; i < hs->n; i++)
    if (!hs->ptr[i]) return false;
  return true;
}

/* Copies the rows of the operands that have a buffer, between the view
 * and the buffer (into the buffer: the inputs; out of it: the outputs),
 * in one parallel loop over all their heads (a head's T rows each). */
static void heads_move(heads_set *hs, bool outputs) {
  int64_t heads[8], total = 0, work = 0;
  for (int i = 0; i < hs->n; i++) {
    const tyr_tensor *t = hs->t[i];
    heads[i] = hs->bytes[i] && hs->out[i] == outputs ? t->shape[0] * t->shape[1] : 0;
    total += heads[i];
    if (heads[i]) work += (int64_t)hs->bytes[i];
  }
  if (total == 0) return;
#pragma omp parallel for schedule(static) if (work > (1 << 18))
  for (int64_t u = 0; u < total; u++) {
    int i = 0;
    int64_t k = u;
    while (k >= heads[i]) k -= heads[i++];
    const tyr_tensor *t = hs->t[i];
    int64_t H = t->shape[1], T = t->shape[2], D = t->shape[3], st = t->stride[2];
    int64_t b = k / H, h = k % H;
    size_t es = tyr_dtype_size(t->dtype); /* f32 or f64 */
    char *view =
        (char *)t->storage->data + (t->offset + b * t->stride[0] + h * t->stride[1]) * (int64_t)es;
    char *buf = hs->ptr[i] + (size_t)(k * T * D) * es;
    /* rows are a head wide (a few hundred bytes): inline loops, not a call
       to memcpy per row */
    for (int64_t j = 0; j < T; j++) {
      char *v = view + j * st * (int64_t)es, *bu = buf + (size_t)(j * D) * es;
      char *dst = outputs ? v : bu;
      const char *src = outputs ? bu : v;
      if (es == 4) {
        float *d4 = (float *)dst;
        const float *s4 = (const float *)src;
#pragma omp simd
        for (int64_t e = 0; e < D; e++) d4[e] = s4[e];
      } else {
        double *d8 = (double *)dst;
        const double *s8 = (const double *)src;
#pragma omp simd
        for (int64_t e = 0; e < D; e++) d8[e] = s8[e];
      }
    }
  }
}

static void heads_release(heads_set *hs) {
  for (int i = 0; i < hs->n; i++)
    if (hs->bytes[i] && hs->ptr[i]) tyr_cpu_free(hs->ptr[i], hs->bytes[i], hs->t[i]->device);
}

void tyr_cpu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                  const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                  int64_t window, double scale) {
  attn_shape sh = shape_of(q, k, doc, causal, window, scale);
  heads_set hs = {0};
  void *po = heads_add(&hs, out, true), *pq = heads_add(&hs, q, false);
  void *pk = heads_add(&hs, k, false), *pv = heads_add(&hs, v, false);
  if (heads_ok(&hs)) { /* (out of memory: nothing written, as for the tensors' own) */
    heads_move(&hs, false);
    if (q->dtype == TYR_F32)
      sdpa_fw_f32(po, tyr_data_ptr(lse), pq, pk, pv, MASK_PTR(mask), &sh);
    else
      sdpa_fw_f64(po, tyr_data_ptr(lse), pq, pk, pv, MASK_PTR(mask), &sh);
    heads_move(&hs, true);
  }
  heads_release(&hs);
}

void tyr_cpu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                           const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                           const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                           const tyr_tensor *doc, bool causal, int64_t window, double scale) {
  attn_shape sh = shape_of(q, k, doc, causal, window, scale);
  heads_set hs = {0};
  void *pdq = heads_add(&hs, dq, true), *pdk = heads_add(&hs, dk, true);
  void *pdv = heads_add(&hs, dv, true), *pg = heads_add(&hs, dout, false);
  void *pq = heads_add(&hs, q, false), *pk = heads_add(&hs, k, false);
  void *pv = heads_add(&hs, v, false), *po = heads_add(&hs, out, false);
  if (heads_ok(&hs)) {
    heads_move(&hs, false);
    if (q->dtype == TYR_F32)
      sdpa_bw_f32(pdq, pdk, pdv, pg, pq, pk, pv, po, tyr_data_ptr(lse), MASK_PTR(mask), &sh);
    else
      sdpa_bw_f64(pdq, pdk, pdv, pg, pq, pk, pv, po, tyr_data_ptr(lse), MASK_PTR(mask), &sh);
    heads_move(&hs, true);
  }
  heads_release(&hs);
}
