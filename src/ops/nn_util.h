/* Helpers shared by the functional ops (src/ops/nn.c, attention.c,
 * rotary.c): kernel dtypes, contiguous copies, and temporaries. */
#ifndef TYR_OPS_NN_UTIL_H
#define TYR_OPS_NN_UTIL_H
#include "ops/common.h"

/* Releases an internal temporary.  It is taken out of its scope first, so
 * that a graph node that retained it keeps the only reference. */
static inline void tyr__nn_drop(tyr_tensor *t) {
  if (t) tyr_tensor_free(tyr_keep_e(t));
}

/* The dtype the kernels compute t in: f32 for bf16/f16 on the CPU. */
static inline tyr_dtype tyr__nn_kdt(const tyr_tensor *t) {
  return tyr__needs_f32(t) ? TYR_F32 : t->dtype;
}

/* t as a contiguous tensor of dtype dt: t itself when it already is one,
 * else a copy (release it with tyr__nn_release). */
static inline tyr_tensor *tyr__nn_prep(tyr_site s, const char *op, tyr_tensor *t, tyr_dtype dt) {
  if (!t) return NULL;
  if (t->dtype == dt) return tyr__contig(s, op, t);
  return tyr__convert(s, op, t, dt);
}
static inline void tyr__nn_release(tyr_tensor *tmp, const tyr_tensor *orig) {
  if (tmp && tmp != orig) tyr__nn_drop(tmp);
}

/* r (a fresh tensor) converted to dt; r is released when converted. */
static inline tyr_tensor *tyr__nn_finish(tyr_site s, const char *op, tyr_tensor *r, tyr_dtype dt) {
  if (!r || r->dtype == dt) return r;
  tyr_tensor *c = tyr__convert(s, op, r, dt);
  tyr__nn_drop(r);
  return c;
}

/* A view of contiguous t with another shape of the same size. */
static inline tyr_tensor *tyr__nn_view(tyr_tensor *t, int rank, const int64_t *shape) {
  int64_t st[TYR_MAX_RANK], acc = 1;
  for (int i = rank - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
  return tyr_view_raw(t, rank, shape, st, t->offset);
}

/* false (after raising) when the device's backend lacks a kernel */
static inline bool tyr__nn_has(tyr_site s, const char *op, const tyr_tensor *t, const void *fn,
                               const char *what) {
  if (fn) return true;
  tyr_raise(TYR_ERR_DEVICE, s, op, "no %s kernel for this op (%s: %s)",
            t->device.type == TYR_CUDA ? "CUDA" : "device", tyr_device_name(t->device), what);
  return false;
}

/* Cross entropy's target checks (src/ops/nn.c), shared with
 * tyr_linear_cross_entropy.  tk is a contiguous [N] i64 tensor.
 * tyr__ce_check_targets: checks that every target that is not ign is in
 * [0, V) and returns how many there are (-1 after raising).
 * tyr__ce_inv_count_dev: 1 / that count as a kdt scalar computed on the
 * device, for a CUDA graph capture (1 when the count is 0). */
int64_t tyr__ce_check_targets(tyr_site s, const char *op, tyr_tensor *tk, int64_t V, int64_t ign);
tyr_tensor *tyr__ce_inv_count_dev(tyr_site s, const char *op, tyr_tensor *tk, int64_t ign,
                                  tyr_dtype kdt);

/* tyr_linear_cross_entropy's chunk of logits in bytes (tests make it
 * small; 0 restores the default, 512 MiB). */
void tyr__lce_set_chunk_bytes(int64_t bytes);

/* "[2, 3]" for t */
#define TYR__NN_SHAPE(t, buf) tyr_shape_str((t)->shape, (t)->rank, (buf), sizeof(buf))
#endif
