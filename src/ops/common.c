#include "ops/common.h"

#include "tyr/debug.h"

#include <stdio.h>

bool tyr__arg_ok(tyr_site s, const char *op, const char *arg, const tyr_tensor *t) {
  if (t && t->magic == TYR__TENSOR_LIVE) return true;
  return tyr_tensor_check_at(s, op, arg, t); /* NULL, or used after it was freed */
}

bool tyr__same_device(tyr_site s, const char *op, const tyr_tensor *a, const tyr_tensor *b) {
  if (tyr_device_eq(a->device, b->device)) return true;
  tyr_raise(TYR_ERR_DEVICE, s, op, "operands are on different devices (%s and %s)",
            tyr_device_name(a->device), tyr_device_name(b->device));
  return false;
}

bool tyr__same_dtype(tyr_site s, const char *op, const tyr_tensor *a, const tyr_tensor *b) {
  if (a->dtype == b->dtype) return true;
  tyr_raise(TYR_ERR_DTYPE, s, op,
            "operands have different dtypes (%s and %s); convert one with tyr_to_dtype",
            tyr_dtype_name(a->dtype), tyr_dtype_name(b->dtype));
  return false;
}

bool tyr__is_float(tyr_site s, const char *op, const char *arg, const tyr_tensor *t) {
  if (tyr_dtype_is_float(t->dtype)) return true;
  tyr_raise(TYR_ERR_DTYPE, s, op, "%s must be a floating dtype, not %s", arg,
            tyr_dtype_name(t->dtype));
  return false;
}

bool tyr__is_index(tyr_site s, const char *op, const char *arg, const tyr_tensor *t) {
  if (t->dtype == TYR_I32 || t->dtype == TYR_I64) return true;
  tyr_raise(TYR_ERR_DTYPE, s, op, "%s must be i32 or i64, not %s", arg, tyr_dtype_name(t->dtype));
  return false;
}

bool tyr__same_shape(tyr_site s, const char *op, const tyr_tensor *a, const tyr_tensor *b) {
  if (tyr__shape_eq(a, b)) return true;
  char x[160], y[160];
  tyr_raise(TYR_ERR_SHAPE, s, op,
            "operands have different shapes %s and %s (no implicit broadcasting: use tyr_expand, "
            "or a _row/_col form)",
            tyr_shape_str(a->shape, a->rank, x, sizeof x),
            tyr_shape_str(b->shape, b->rank, y, sizeof y));
  return false;
}

bool tyr__rank_is(tyr_site s, const char *op, const char *arg, const tyr_tensor *t, int r) {
  if (t->rank == r) return true;
  char x[160];
  tyr_raise(TYR_ERR_SHAPE, s, op, "%s must have rank %d, but is %s", arg, r,
            tyr_shape_str(t->shape, t->rank, x, sizeof x));
  return false;
}

bool tyr__dim_ok(tyr_site s, const char *op, const tyr_tensor *t, int *dim) {
  int d = *dim < 0 ? *dim + t->rank : *dim;
  if (d < 0 || d >= t->rank) {
    char x[160];
    tyr_raise(TYR_ERR_ARG, s, op, "dim %d is out of range for a tensor of shape %s", *dim,
              tyr_shape_str(t->shape, t->rank, x, sizeof x));
    return false;
  }
  *dim = d;
  return true;
}

tyr_tensor *tyr__new(tyr_site s, const char *op, tyr_dtype dt, tyr_device dev, int rank,
                     const int64_t *shape) {
  (void)op;
  return tyr_empty_at(s, dt, dev, rank, shape);
}

tyr_tensor *tyr__contig(tyr_site s, const char *op, tyr_tensor *t) {
  if (tyr_is_contiguous(t)) return t;
  tyr_tensor *c = tyr__new_like(s, op, t);
  if (c) tyr__be(t)->copy(c, t);
  return c;
}

tyr_tensor *tyr__convert(tyr_site s, const char *op, tyr_tensor *t, tyr_dtype dt) {
  tyr_tensor *c = tyr__new(s, op, dt, t->device, t->rank, t->shape);
  if (c) tyr__be(t)->copy(c, t);
  return c;
}
