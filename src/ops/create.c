/* Making tensors: constants, ranges, random numbers, host copies, dtype
 * and device conversion. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/common.h"
#include "tyr/ops_create.h"

static _Thread_local tyr_dtype g_default_dtype = TYR_F32;
static _Thread_local tyr_device g_default_device = {TYR_CPU, 0};

void tyr_set_default_dtype(tyr_dtype dt) {
  g_default_dtype = dt;
}
tyr_dtype tyr_default_dtype(void) {
  return g_default_dtype;
}
void tyr_set_default_device(tyr_device dev) {
  g_default_device = dev;
}
tyr_device tyr_default_device(void) {
  return g_default_device;
}

tyr_tensor *tyr_full_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                        double v) {
  tyr_tensor *t = tyr_empty_at(s, dt, dev, rank, shape);
  if (t) tyr__be(t)->fill(t, v);
  return t;
}
tyr_tensor *tyr_zeros_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape) {
  return tyr_full_at(s, dt, dev, rank, shape, 0.0);
}
tyr_tensor *tyr_ones_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape) {
  return tyr_full_at(s, dt, dev, rank, shape, 1.0);
}

static tyr_tensor *random_tensor(tyr_site s, const char *op, tyr_dtype dt, tyr_device dev, int rank,
                                 const int64_t *shape, tyr_random_kind kind, double p0, double p1) {
  tyr_tensor *t = tyr_empty_at(s, dt, dev, rank, shape);
  if (!t) return NULL;
  (void)op;
  uint64_t seed, counter = tyr_rng_reserve((uint64_t)tyr_numel(t), &seed);
  tyr__be(t)->random(t, kind, p0, p1, seed, counter);
  return t;
}

tyr_tensor *tyr_rand_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                        double lo, double hi) {
  if (!tyr_dtype_is_float(dt)) {
    tyr_raise(TYR_ERR_DTYPE, s, "tyr_rand", "dtype must be floating, not %s", tyr_dtype_name(dt));
    return NULL;
  }
  return random_tensor(s, "tyr_rand", dt, dev, rank, shape, TYR_RAND_UNIFORM, lo, hi);
}
tyr_tensor *tyr_randn_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                         double mean, double std) {
  if (!tyr_dtype_is_float(dt)) {
    tyr_raise(TYR_ERR_DTYPE, s, "tyr_randn", "dtype must be floating, not %s", tyr_dtype_name(dt));
    return NULL;
  }
  return random_tensor(s, "tyr_randn", dt, dev, rank, shape, TYR_RAND_NORMAL, mean, std);
}
tyr_tensor *tyr_randint_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                           int64_t lo, int64_t hi) {
  if (hi <= lo) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_randint", "empty range [%lld, %lld)", (long long)lo,
              (long long)hi);
    return NULL;
  }
  return random_tensor(s, "tyr_randint", dt, dev, rank, shape, TYR_RAND_INT, (double)lo,
                       (double)hi);
}

tyr_tensor *tyr_arange_at(tyr_site s, tyr_dtype dt, tyr_device dev, double start, double end,
                          double step) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_arange", "bad range start %g end %g step %g", start, end, step);
    return NULL;
  }
  double nd = ceil((end - start) / step);
  int64_t n = nd > 0 ? (int64_t)nd : 0;
  tyr_tensor *t = tyr_empty_at(s, dt, dev, 1, &n);
  if (t) tyr__be(t)->arange(t, start, step);
  return t;
}

tyr_tensor *tyr_linspace_at(tyr_site s, tyr_dtype dt, tyr_device dev, double a, double b,
                            int64_t n) {
  if (n < 0) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_linspace", "n is negative (%lld)", (long long)n);
    return NULL;
  }
  tyr_tensor *t = tyr_empty_at(s, dt, dev, 1, &n);
  if (t) tyr__be(t)->arange(t, a, n > 1 ? (b - a) / (double)(n - 1) : 0);
  return t;
}

tyr_tensor *tyr_eye_at(tyr_site s, tyr_dtype dt, tyr_device dev, int64_t n) {
  int64_t sh[2] = {n, n};
  tyr_tensor *t = tyr_zeros_at(s, dt, dev, 2, sh);
  if (!t || n == 0) return t;
  /* the diagonal is a strided view of stride n + 1 */
  int64_t dsh = n, dst = n + 1;
  tyr_tensor *d = tyr_view_raw(t, 1, &dsh, &dst, 0);
  tyr_tensor *one = tyr_full_at(s, dt, dev, 0, NULL, 1.0);
  int64_t z = 0;
  tyr_tensor *ones = one ? tyr_view_raw(one, 1, &dsh, &z, 0) : NULL;
  if (d && ones) tyr__be(t)->copy(d, ones);
  tyr_tensor_free(ones);
  tyr_tensor_free(one);
  tyr_tensor_free(d);
  return t;
}

tyr_tensor *tyr_from_host_at(tyr_site s, const void *data, tyr_dtype dt, tyr_device dev, int rank,
                             const int64_t *shape) {
  if (!data) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_from_host", "data is NULL");
    return NULL;
  }
  tyr_tensor *t = tyr_empty_at(s, dt, dev, rank, shape);
  if (t) tyr__be(t)->from_host(tyr_data_ptr(t), data, (size_t)tyr_nbytes(t), dev);
  return t;
}

int tyr_to_host_at(tyr_site s, const tyr_tensor *t, void *dst, size_t dst_bytes) {
  const char *op = "tyr_to_host";
  if (!tyr__arg_ok(s, op, "tensor", t)) return TYR_ERR_ARG;
  if (!dst) return tyr_raise(TYR_ERR_ARG, s, op, "destination is NULL");
  size_t need = (size_t)tyr_nbytes(t);
  if (dst_bytes < need)
    return tyr_raise(TYR_ERR_ARG, s, op, "destination holds %zu bytes, the tensor needs %zu",
                     dst_bytes, need);
  tyr_tensor *c = tyr__contig(s, op, (tyr_tensor *)t);
  if (!c) return TYR_ERR_MEMORY;
  tyr__be(c)->to_host(dst, tyr_data_ptr(c), need, c->device);
  if (c != t) tyr_tensor_free(c);
  return 0;
}

static void clone_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  (void)n;
  gin[0] = g;
}

tyr_tensor *tyr_clone_at(tyr_site s, tyr_tensor *t) {
  const char *op = "tyr_clone";
  if (!tyr__arg_ok(s, op, "tensor", t)) return NULL;
  tyr_tensor *c = tyr__new_like(s, op, t);
  if (!c) return NULL;
  tyr__be(t)->copy(c, t);
  TYR_RECORD(s, op, c, clone_backward, t);
  return c;
}

/* To a leaf (a parameter cast for a mixed-precision matmul) the gradient
   goes as it is: autograd converts it as it stores or adds it to the leaf's
   .grad, in one pass instead of a cast and then a copy or an add. */
static void to_dtype_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0];
  gin[0] = x->grad_fn ? tyr_to_dtype_at(n->site, g, x->dtype) : g;
}

tyr_dtype tyr__grad_dtype(const tyr_tensor *t) {
  const tyr_node *n = t->grad_fn;
  const tyr_tensor *x = n && n->backward == to_dtype_backward ? n->in[0] : NULL;
  return x && !x->grad_fn && x->requires_grad ? x->dtype : t->dtype;
}

tyr_tensor *tyr_to_dtype_at(tyr_site s, tyr_tensor *t, tyr_dtype dt) {
  const char *op = "tyr_to_dtype";
  if (!tyr__arg_ok(s, op, "tensor", t)) return NULL;
  if ((unsigned)dt >= TYR_DTYPE_COUNT) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "invalid dtype %d", (int)dt);
    return NULL;
  }
  tyr_tensor *c = tyr__new(s, op, dt, t->device, t->rank, t->shape);
  if (!c) return NULL;
  tyr__be(t)->copy(c, t);
  if (tyr_dtype_is_float(dt)) TYR_RECORD(s, op, c, to_dtype_backward, t);
  return c;
}

int tyr_to_dtype_many_at(tyr_site s, int n, tyr_tensor *const *ts, tyr_dtype dt, tyr_tensor **out) {
  const char *op = "tyr_to_dtype_many";
  if (n < 0) return tyr_raise(TYR_ERR_ARG, s, op, "n must be >= 0, got %d", n);
  if (n > 0 && (!ts || !out)) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", ts ? "out" : "ts");
  if ((unsigned)dt >= TYR_DTYPE_COUNT)
    return tyr_raise(TYR_ERR_DTYPE, s, op, "invalid dtype %d", (int)dt);
  for (int i = 0; i < n; i++) out[i] = NULL;
  for (int i = 0; i < n; i++) {
    char what[32];
    snprintf(what, sizeof what, "ts[%d]", i);
    if (!tyr__arg_ok(s, op, what, ts[i])) return tyr_error_last()->status;
  }
  for (int i = 0; i < n; i++) {
    out[i] = tyr__new(s, op, dt, ts[i]->device, ts[i]->rank, ts[i]->shape);
    if (!out[i]) { /* nothing made: the outputs so far are freed */
      for (int k = 0; k < i; k++) {
        tyr_tensor_free(out[k]);
        out[k] = NULL;
      }
      return tyr_error_last()->status;
    }
  }
  /* the contiguous float tensors of ts[0]'s device and dtype in one call of
     the backend's copy_many where it has one; the others one at a time */
  const tyr_backend *be = n > 0 ? tyr__be(ts[0]) : NULL;
  tyr_tensor **bo = NULL;
  const tyr_tensor **bs = NULL;
  if (be && be->copy_many && tyr_dtype_is_float(dt)) {
    bo = malloc((size_t)n * sizeof *bo);
    bs = malloc((size_t)n * sizeof *bs);
  }
  int nb = 0;
  for (int i = 0; i < n; i++) {
    const tyr_tensor *t = ts[i];
    if (bo && bs && tyr_device_eq(t->device, ts[0]->device) && t->dtype == ts[0]->dtype &&
        tyr_dtype_is_float(t->dtype) && tyr_is_contiguous(t)) {
      bo[nb] = out[i];
      bs[nb++] = t;
    } else { /* out of host memory too: one at a time */
      tyr__be(t)->copy(out[i], t);
    }
  }
  if (nb > 0) be->copy_many(nb, bo, bs);
  free(bo);
  free(bs);
  if (tyr_dtype_is_float(dt))
    for (int i = 0; i < n; i++) TYR_RECORD(s, op, out[i], to_dtype_backward, ts[i]);
  return 0;
}

static void to_device_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  gin[0] = tyr_to_device_at(n->site, g, n->in[0]->device);
}

tyr_tensor *tyr_to_device_at(tyr_site s, tyr_tensor *t, tyr_device dev) {
  const char *op = "tyr_to_device";
  if (!tyr__arg_ok(s, op, "tensor", t)) return NULL;
  if (tyr_device_eq(t->device, dev)) return tyr_clone_at(s, t);
  const tyr_backend *dst_be = tyr_backend_get(s, op, dev);
  if (!dst_be) return NULL;
  tyr_tensor *src = tyr__contig(s, op, t);
  if (!src) return NULL;
  tyr_tensor *c = tyr__new(s, op, t->dtype, dev, t->rank, t->shape);
  if (c) {
    size_t nb = (size_t)tyr_nbytes(t);
    if (t->device.type == TYR_CPU) {
      dst_be->from_host(tyr_data_ptr(c), tyr_data_ptr(src), nb, dev);
    } else if (dev.type == TYR_CPU) {
      tyr__be(t)->to_host(tyr_data_ptr(c), tyr_data_ptr(src), nb, t->device);
    } else { /* between two GPUs: through the host */
      void *tmp = malloc(nb ? nb : 1);
      if (!tmp) {
        tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
      } else {
        tyr__be(t)->to_host(tmp, tyr_data_ptr(src), nb, t->device);
        dst_be->from_host(tyr_data_ptr(c), tmp, nb, dev);
        free(tmp);
      }
    }
    if (tyr_dtype_is_float(t->dtype)) TYR_RECORD(s, op, c, to_device_backward, t);
  }
  if (src != t) tyr_tensor_free(src);
  return c;
}

int tyr_copy_at(tyr_site s, tyr_tensor *dst, const tyr_tensor *src) {
  const char *op = "tyr_copy";
  if (!tyr__arg_ok(s, op, "dst", dst) || !tyr__arg_ok(s, op, "src", src)) return TYR_ERR_ARG;
  if (!tyr__same_shape(s, op, dst, src)) return TYR_ERR_SHAPE;
  if (tyr_device_eq(dst->device, src->device)) {
    tyr__be(dst)->copy(dst, src);
    return 0;
  }
  tyr_tensor *moved = tyr_to_device_at(s, (tyr_tensor *)src, dst->device);
  if (!moved) return TYR_ERR_DEVICE;
  tyr__be(dst)->copy(dst, moved);
  tyr_tensor_free(moved);
  return 0;
}

int tyr_fill_at(tyr_site s, tyr_tensor *t, double v) {
  if (!tyr__arg_ok(s, "tyr_fill", "tensor", t)) return TYR_ERR_ARG;
  if (tyr_is_contiguous(t)) {
    tyr__be(t)->fill(t, v);
    return 0;
  }
  tyr_tensor *one = tyr_full_at(s, t->dtype, t->device, 0, NULL, v);
  if (!one) return TYR_ERR_MEMORY;
  int64_t z[TYR_MAX_RANK] = {0};
  tyr_tensor *e = tyr_view_raw(one, t->rank, t->shape, z, 0);
  tyr__be(t)->copy(t, e);
  tyr_tensor_free(e);
  tyr_tensor_free(one);
  return 0;
}
