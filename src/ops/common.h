/* Shared pieces of the op layer: argument checks that raise with the op's
 * name and the caller's site, output allocation, and the bf16/f16 path of
 * the CPU (compute in f32). */
#ifndef TYR_OPS_COMMON_H
#define TYR_OPS_COMMON_H
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/internal.h"
#include "tyr/autograd.h"
#include "tyr/tensor.h"

/* Each returns false after raising. */
bool tyr__arg_ok(tyr_site s, const char *op, const char *arg, const tyr_tensor *t);
bool tyr__same_device(tyr_site s, const char *op, const tyr_tensor *a, const tyr_tensor *b);
bool tyr__same_dtype(tyr_site s, const char *op, const tyr_tensor *a, const tyr_tensor *b);
bool tyr__is_float(tyr_site s, const char *op, const char *arg, const tyr_tensor *t);
bool tyr__is_index(tyr_site s, const char *op, const char *arg, const tyr_tensor *t);
bool tyr__same_shape(tyr_site s, const char *op, const tyr_tensor *a, const tyr_tensor *b);
bool tyr__rank_is(tyr_site s, const char *op, const char *arg, const tyr_tensor *t, int r);
/* Normalises a dim (negative counts from the end); false after raising. */
bool tyr__dim_ok(tyr_site s, const char *op, const tyr_tensor *t, int *dim);
static inline bool tyr__shape_eq(const tyr_tensor *a, const tyr_tensor *b) {
  return a->rank == b->rank && !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->rank);
}

/* A new contiguous tensor on t's device. */
tyr_tensor *tyr__new(tyr_site s, const char *op, tyr_dtype dt, tyr_device dev, int rank,
                     const int64_t *shape);
static inline tyr_tensor *tyr__new_like(tyr_site s, const char *op, const tyr_tensor *t) {
  return tyr__new(s, op, t->dtype, t->device, t->rank, t->shape);
}
/* t itself if contiguous, else a contiguous copy (not recorded). */
tyr_tensor *tyr__contig(tyr_site s, const char *op, tyr_tensor *t);
/* A copy of t converted to dt (not recorded). */
tyr_tensor *tyr__convert(tyr_site s, const char *op, tyr_tensor *t, tyr_dtype dt);
/* Records out = x + y as tyr_residual_add (its backward) for a sum computed
 * elsewhere: by the norm kernels of tyr_residual_add_layer_norm_to. */
void tyr__residual_add_record(tyr_site s, tyr_tensor *out, tyr_tensor *x, tyr_tensor *y);
/* True when kernels cannot take t's dtype directly: bf16/f16 on the CPU. */
static inline bool tyr__dtype_needs_f32(tyr_device dev, tyr_dtype dt) {
  return dev.type == TYR_CPU && (dt == TYR_BF16 || dt == TYR_F16);
}
static inline bool tyr__needs_f32(const tyr_tensor *t) {
  return tyr__dtype_needs_f32(t->device, t->dtype);
}
/* A kernel-call descriptor: t's storage seen with another shape, strides
 * and offset.  It lives on the stack of the op that made it, is never
 * tracked by a scope, never freed, and never escapes to the caller: it only
 * lets one kernel call see a reshaped operand without allocating a view. */
static inline tyr_tensor tyr__desc(const tyr_tensor *t, int rank, const int64_t *shape,
                                   const int64_t *stride, int64_t offset) {
  tyr_tensor d;
  memset(&d, 0, sizeof d);
  d.storage = t->storage;
  d.offset = offset;
  d.rank = rank;
  for (int i = 0; i < rank; i++) {
    d.shape[i] = shape[i];
    d.stride[i] = stride[i];
  }
  d.dtype = t->dtype;
  d.device = t->device;
  d.refcount = 1;
  d.magic = TYR__TENSOR_LIVE;
  return d;
}

/* The descriptor of rank-2 t read transposed: [cols, rows], strides swapped. */
static inline tyr_tensor tyr__desc_t(const tyr_tensor *t) {
  return tyr__desc(t, 2, (int64_t[]){t->shape[1], t->shape[0]},
                   (int64_t[]){t->stride[1], t->stride[0]}, t->offset);
}

/* The dtype t's gradient is finally stored in: a cast of a leaf
 * (tyr_to_dtype, tyr_to_dtype_many: a parameter's bf16 copy in mixed
 * precision) hands its gradient to the leaf as it is, so the leaf's dtype;
 * otherwise t's own (src/ops/create.c). */
tyr_dtype tyr__grad_dtype(const tyr_tensor *t);

/* A linear layer's weight and bias gradients from dy [M, N] and its input
 * x [M, K] (src/ops/linalg.c): *gw = dyT @ x when want_w, *gb = dy summed
 * over rows when want_b; both by one GEMM where the backend has
 * matmul_bgrad.  gdt: the dtype both gradients end in (tyr__grad_dtype of
 * the weight and the bias); when it is wider than dy's and the backend's
 * matmul_bgrad writes it, the GEMM writes them in it, so that no cast
 * follows; otherwise they come in dy's dtype.  Results are temporaries of
 * the current scope. */
void tyr__linear_param_grads(tyr_site s, tyr_tensor *g2, tyr_tensor *x2, bool want_w, bool want_b,
                             tyr_dtype gdt, tyr_tensor **gw, tyr_tensor **gb);

static inline const tyr_backend *tyr__be(const tyr_tensor *t) {
  return tyr_backend_lookup(t->device);
}
#endif
