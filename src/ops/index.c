/* Gathers and scatters by integer indices: shape rules, index bounds
 * checks, dispatch to the backend's index kernels, and backward. */
#include "ops/common.h"
#include "tyr/ops_index.h"

/* A kernel-call descriptor: t's storage seen with another shape (see
 * src/ops/linalg.c); it stays on the stack of the op that made it. */
static tyr_tensor desc(const tyr_tensor *t, int rank, const int64_t *shape, int64_t offset) {
  tyr_tensor d;
  memset(&d, 0, sizeof d);
  d.storage = t->storage;
  d.offset = offset;
  d.rank = rank;
  int64_t st = 1;
  for (int i = rank - 1; i >= 0; i--) {
    d.shape[i] = shape[i];
    d.stride[i] = st;
    st *= shape[i];
  }
  d.dtype = t->dtype;
  d.device = t->device;
  d.refcount = 1;
  return d;
}

/* Checks that every value of idx (contiguous, i32/i64) lies in [0, n),
 * with the backend's arg-max/arg-min kernels; raises naming the op, the
 * value, its position in idx and the dim it indexes. */
static bool idx_in_range(tyr_site s, const char *op, const tyr_tensor *idx, int64_t n,
                         const char *what, const tyr_tensor *x, int dim) {
  if (tyr_numel(idx) == 0) return true;
  const tyr_backend *be = tyr__be(idx);
  /* during a CUDA graph capture nothing can be read back: no check (the
     kernels give zeros for an index out of range instead of reading it) */
  if (be->capturing && be->capturing(idx->device)) return true;
  tyr_tensor *pos = tyr__new(s, op, TYR_I64, idx->device, 1, (int64_t[]){2});
  if (!pos) return false;
  tyr_tensor hi = desc(pos, 0, NULL, pos->offset), lo = desc(pos, 0, NULL, pos->offset + 1);
  be->reduce(TYR_RED_ARGMAX, &hi, idx, -1);
  be->reduce(TYR_RED_ARGMIN, &lo, idx, -1);
  int64_t phi = (int64_t)be->read_scalar(&hi), plo = (int64_t)be->read_scalar(&lo);
  tyr_tensor_free(pos);
  tyr_tensor vhi = desc(idx, 0, NULL, idx->offset + phi),
             vlo = desc(idx, 0, NULL, idx->offset + plo);
  int64_t max = (int64_t)be->read_scalar(&vhi), min = (int64_t)be->read_scalar(&vlo);
  if (min >= 0 && max < n) return true;
  bool low = min < 0;
  char b[160];
  tyr_raise(TYR_ERR_ARG, s, op,
            "index %lld (at position %lld of idx) is out of range for dim %d of size %lld (%s is "
            "%s)",
            (long long)(low ? min : max), (long long)(low ? plo : phi), dim, (long long)n, what,
            tyr_shape_str(x->shape, x->rank, b, sizeof b));
  return false;
}

/* Common argument checks: x and idx present, one device, idx an index
 * dtype, dim normalised. */
static bool index_args(tyr_site s, const char *op, const char *xname, tyr_tensor *x,
                       tyr_tensor *idx, int *dim) {
  if (!tyr__arg_ok(s, op, xname, x) || !tyr__arg_ok(s, op, "idx", idx)) return false;
  if (!tyr__same_device(s, op, x, idx) || !tyr__is_index(s, op, "idx", idx)) return false;
  if (!tyr_backend_get(s, op, x->device)) return false;
  return !dim || tyr__dim_ok(s, op, x, dim);
}

/* A zero tensor of x's shape in the dtype the scatter kernels add in. */
static tyr_tensor *acc_zeros(tyr_site s, const char *op, const tyr_tensor *x) {
  tyr_dtype dt = tyr__needs_f32(x) ? TYR_F32 : x->dtype;
  tyr_tensor *z = tyr__new(s, op, dt, x->device, x->rank, x->shape);
  if (z) tyr__be(x)->fill(z, 0.0);
  return z;
}

/* g as a contiguous tensor of dtype dt (g itself when it already is). */
static tyr_tensor *as_contig(tyr_site s, const char *op, tyr_tensor *g, tyr_dtype dt) {
  if (g->dtype == dt) return tyr__contig(s, op, g);
  return tyr__convert(s, op, g, dt);
}

/* acc (the scatter kernels' dtype) as a gradient of x's dtype. */
static tyr_tensor *grad_of(tyr_site s, const char *op, tyr_tensor *acc, const tyr_tensor *x) {
  if (!acc || acc->dtype == x->dtype) return acc;
  return tyr__convert(s, op, acc, x->dtype);
}

/* ---- index_select ------------------------------------------------------------ */
static void index_select_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0], *idx = n->saved[0];
  tyr_tensor *gx = acc_zeros(n->site, n->op, x);
  tyr_tensor *gc = gx ? as_contig(n->site, n->op, g, gx->dtype) : NULL;
  if (!gc) return;
  tyr__be(x)->index_add(gx, (int)n->i[0], idx, gc);
  gin[0] = grad_of(n->site, n->op, gx, x);
}

tyr_tensor *tyr_index_select_at(tyr_site s, tyr_tensor *x, int dim, tyr_tensor *idx) {
  const char *op = "tyr_index_select";
  if (!index_args(s, op, "x", x, idx, &dim)) return NULL;
  if (idx->rank != 1) {
    char a[160];
    tyr_raise(TYR_ERR_SHAPE, s, op, "idx must be 1-D, but it is %s",
              tyr_shape_str(idx->shape, idx->rank, a, sizeof a));
    return NULL;
  }
  tyr_tensor *ic = tyr__contig(s, op, idx);
  if (!ic) return NULL;
  tyr_tensor *out = NULL, *xc = NULL;
  if (!idx_in_range(s, op, ic, x->shape[dim], "x", x, dim)) goto done;
  if (!(xc = tyr__contig(s, op, x))) goto done;
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0; i < x->rank; i++) sh[i] = i == dim ? idx->shape[0] : x->shape[i];
  if (!(out = tyr__new(s, op, x->dtype, x->device, x->rank, sh))) goto done;
  if (tyr_numel(out)) tyr__be(x)->index_select(out, xc, dim, ic);
  if (tyr_dtype_is_float(x->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, index_select_backward, x);
    if (n) {
      n->i[0] = dim;
      tyr__node_save(n, 0, ic);
    }
  }
done:
  if (xc != x) tyr_tensor_free(xc);
  if (ic != idx) tyr_tensor_free(ic);
  return out;
}

/* ---- gather ---------------------------------------------------------------------- */
/* Checks that idx has x's rank and x's dims except along dim; what names
 * the op's rule for the message. */
static bool along_dim_ok(tyr_site s, const char *op, const char *xn, const tyr_tensor *x,
                         const tyr_tensor *idx, int dim) {
  bool ok = x->rank == idx->rank;
  for (int i = 0; ok && i < x->rank; i++) ok = i == dim || x->shape[i] == idx->shape[i];
  if (ok) return true;
  char a[160], b[160];
  tyr_raise(TYR_ERR_SHAPE, s, op,
            "%s is %s and idx is %s: idx must have the rank of %s and its dims except along dim %d",
            xn, tyr_shape_str(x->shape, x->rank, a, sizeof a),
            tyr_shape_str(idx->shape, idx->rank, b, sizeof b), xn, dim);
  return false;
}

static void gather_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0], *idx = n->saved[0];
  tyr_tensor *gx = acc_zeros(n->site, n->op, x);
  tyr_tensor *gc = gx ? as_contig(n->site, n->op, g, gx->dtype) : NULL;
  if (!gc) return;
  tyr__be(x)->scatter_add(gx, (int)n->i[0], idx, gc);
  gin[0] = grad_of(n->site, n->op, gx, x);
}

tyr_tensor *tyr_gather_at(tyr_site s, tyr_tensor *x, int dim, tyr_tensor *idx) {
  const char *op = "tyr_gather";
  if (!index_args(s, op, "x", x, idx, &dim)) return NULL;
  if (!along_dim_ok(s, op, "x", x, idx, dim)) return NULL;
  tyr_tensor *ic = tyr__contig(s, op, idx);
  if (!ic) return NULL;
  tyr_tensor *out = NULL, *xc = NULL;
  if (!idx_in_range(s, op, ic, x->shape[dim], "x", x, dim)) goto done;
  if (!(xc = tyr__contig(s, op, x))) goto done;
  if (!(out = tyr__new(s, op, x->dtype, x->device, idx->rank, idx->shape))) goto done;
  if (tyr_numel(out)) tyr__be(x)->gather(out, xc, dim, ic);
  if (tyr_dtype_is_float(x->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, gather_backward, x);
    if (n) {
      n->i[0] = dim;
      tyr__node_save(n, 0, ic);
    }
  }
done:
  if (xc != x) tyr_tensor_free(xc);
  if (ic != idx) tyr_tensor_free(ic);
  return out;
}

/* ---- scatter_add -------------------------------------------------------------------- */
static void scatter_add_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  if (tyr__node_needs(n, 0)) gin[0] = g;
  if (!tyr__node_needs(n, 1)) return;
  tyr_tensor *idx = n->saved[0];
  tyr_tensor *gc = tyr__contig(s, n->op, g);
  tyr_tensor *gs = gc ? tyr__new(s, n->op, g->dtype, g->device, idx->rank, idx->shape) : NULL;
  if (!gs) return;
  if (tyr_numel(gs)) tyr__be(g)->gather(gs, gc, (int)n->i[0], idx);
  gin[1] = gs;
}

tyr_tensor *tyr_scatter_add_at(tyr_site s, tyr_tensor *x, int dim, tyr_tensor *idx,
                               tyr_tensor *src) {
  const char *op = "tyr_scatter_add";
  if (!index_args(s, op, "x", x, idx, &dim) || !tyr__arg_ok(s, op, "src", src)) return NULL;
  if (!tyr__same_device(s, op, x, src) || !tyr__same_dtype(s, op, x, src) ||
      !tyr__is_float(s, op, "x", x))
    return NULL;
  if (!along_dim_ok(s, op, "x", x, idx, dim)) return NULL;
  if (!tyr__shape_eq(idx, src)) {
    char a[160], b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op, "src is %s and idx is %s: src must have the shape of idx",
              tyr_shape_str(src->shape, src->rank, a, sizeof a),
              tyr_shape_str(idx->shape, idx->rank, b, sizeof b));
    return NULL;
  }
  tyr_tensor *ic = tyr__contig(s, op, idx);
  if (!ic) return NULL;
  tyr_tensor *out = NULL, *acc = NULL, *sc = NULL;
  if (!idx_in_range(s, op, ic, x->shape[dim], "x", x, dim)) goto done;
  const tyr_backend *be = tyr__be(x);
  tyr_dtype dt = tyr__needs_f32(x) ? TYR_F32 : x->dtype;
  if (!(acc = tyr__convert(s, op, x, dt)) || !(sc = as_contig(s, op, src, dt))) goto done;
  if (tyr_numel(ic)) be->scatter_add(acc, dim, ic, sc);
  if (dt == x->dtype) {
    out = acc;
    acc = NULL;
  } else if (!(out = tyr__convert(s, op, acc, x->dtype))) {
    goto done;
  }
  tyr_node *n = TYR_RECORD(s, op, out, scatter_add_backward, x, src);
  if (n) {
    n->i[0] = dim;
    tyr__node_save(n, 0, ic);
  }
done:
  tyr_tensor_free(acc);
  if (sc != src) tyr_tensor_free(sc);
  if (ic != idx) tyr_tensor_free(ic);
  return out;
}

/* ---- embedding --------------------------------------------------------------------- */
static void embedding_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *w = n->in[0], *idx = n->saved[0];
  tyr_tensor *gw = acc_zeros(n->site, n->op, w);
  tyr_tensor *gc = gw ? as_contig(n->site, n->op, g, gw->dtype) : NULL;
  if (!gc) return;
  int64_t rows = tyr_numel(idx), C = w->shape[1];
  tyr_tensor i1 = desc(idx, 1, (int64_t[]){rows}, idx->offset);
  tyr_tensor g2 = desc(gc, 2, (int64_t[]){rows, C}, gc->offset);
  if (rows > 0 && C > 0) tyr__be(w)->index_add(gw, 0, &i1, &g2);
  gin[0] = grad_of(n->site, n->op, gw, w);
}

tyr_tensor *tyr_embedding_at(tyr_site s, tyr_tensor *weight, tyr_tensor *idx) {
  const char *op = "tyr_embedding";
  if (!index_args(s, op, "weight", weight, idx, NULL)) return NULL;
  char a[160], b[160];
  if (weight->rank != 2) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "the weight must be [V, C], but it is %s (idx is %s)",
              tyr_shape_str(weight->shape, weight->rank, a, sizeof a),
              tyr_shape_str(idx->shape, idx->rank, b, sizeof b));
    return NULL;
  }
  if (idx->rank >= TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "idx is %s: the result [.., C] would have more than %d dims",
              tyr_shape_str(idx->shape, idx->rank, a, sizeof a), TYR_MAX_RANK);
    return NULL;
  }
  tyr_tensor *ic = tyr__contig(s, op, idx);
  if (!ic) return NULL;
  tyr_tensor *out = NULL, *wc = NULL;
  if (!idx_in_range(s, op, ic, weight->shape[0], "weight", weight, 0)) goto done;
  if (!(wc = tyr__contig(s, op, weight))) goto done;
  int64_t sh[TYR_MAX_RANK], rows = tyr_numel(idx), C = weight->shape[1];
  for (int i = 0; i < idx->rank; i++) sh[i] = idx->shape[i];
  sh[idx->rank] = C;
  if (!(out = tyr__new(s, op, weight->dtype, weight->device, idx->rank + 1, sh))) goto done;
  if (rows > 0 && C > 0) {
    tyr_tensor i1 = desc(ic, 1, (int64_t[]){rows}, ic->offset);
    tyr_tensor o2 = desc(out, 2, (int64_t[]){rows, C}, out->offset);
    tyr__be(weight)->index_select(&o2, wc, 0, &i1);
  }
  if (tyr_dtype_is_float(weight->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, embedding_backward, weight);
    if (n) tyr__node_save(n, 0, ic);
  }
done:
  if (wc != weight) tyr_tensor_free(wc);
  if (ic != idx) tyr_tensor_free(ic);
  return out;
}
