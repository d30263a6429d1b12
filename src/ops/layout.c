/* Views and rearrangements: shape rules, dispatch, backward. */
#include <stdio.h>
#include <stdlib.h>

#include "ops/common.h"
#include "ops/scratch.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"

/* ---- views without checks or recording (for forward and backward) --------- */
/* Elements start .. start+len-1 of dim. */
static tyr_tensor *narrow_view(tyr_tensor *t, int dim, int64_t start, int64_t len) {
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0; i < t->rank; i++) sh[i] = i == dim ? len : t->shape[i];
  return tyr_view_raw(t, t->rank, sh, t->stride, t->offset + start * t->stride[dim]);
}

/* Index i of dim, the dim removed. */
static tyr_tensor *select_view(tyr_tensor *t, int dim, int64_t i) {
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  int r = 0;
  for (int k = 0; k < t->rank; k++) {
    if (k == dim) continue;
    sh[r] = t->shape[k];
    st[r++] = t->stride[k];
  }
  return tyr_view_raw(t, r, sh, st, t->offset + i * t->stride[dim]);
}

static const char *shape_of(const tyr_tensor *t, char *buf) {
  return tyr_shape_str(t->shape, t->rank, buf, 160);
}

/* An insertion point 0..rank (negative counts from rank + 1); false after
 * raising. */
static bool insert_dim_ok(tyr_site s, const char *op, const tyr_tensor *x, int *dim) {
  char b[160];
  if (x->rank >= TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "x %s already has the largest rank, %d", shape_of(x, b),
              TYR_MAX_RANK);
    return false;
  }
  int d = *dim < 0 ? *dim + x->rank + 1 : *dim;
  if (d < 0 || d > x->rank) {
    tyr_raise(TYR_ERR_ARG, s, op, "dim %d is out of range for inserting a dim into %s (-%d..%d)",
              *dim, shape_of(x, b), x->rank + 1, x->rank);
    return false;
  }
  *dim = d;
  return true;
}

/* ---- reshape, flatten --------------------------------------------------------- */
static void reshape_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0];
  gin[0] = tyr_reshape_at(n->site, g, x->rank, x->shape);
}

/* x as shape sh (same numel): a view of x, or of a contiguous copy of x
 * when x is not contiguous; recorded under op. */
static tyr_tensor *reshaped(tyr_site s, const char *op, tyr_tensor *x, int rank,
                            const int64_t *sh) {
  tyr_tensor *src = tyr__contig(s, op, x);
  if (!src) return NULL;
  int64_t st[TYR_MAX_RANK], acc = 1;
  for (int i = rank - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= sh[i];
  }
  tyr_tensor *out = tyr_view_raw(src, rank, sh, st, src->offset);
  if (src != x) tyr_tensor_free(src);
  if (out) TYR_RECORD(s, op, out, reshape_backward, x);
  return out;
}

tyr_tensor *tyr_reshape_at(tyr_site s, tyr_tensor *x, int rank, const int64_t *shape) {
  const char *op = "tyr_reshape";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (rank < 0 || rank > TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_ARG, s, op, "rank %d is outside 0..%d", rank, TYR_MAX_RANK);
    return NULL;
  }
  int64_t sh[TYR_MAX_RANK], known = 1;
  int infer = -1;
  for (int i = 0; i < rank; i++) {
    sh[i] = shape[i];
    if (shape[i] == -1 && infer < 0) {
      infer = i;
    } else if (shape[i] < 0) {
      tyr_raise(TYR_ERR_ARG, s, op, "dim %d is negative (%lld)", i, (long long)shape[i]);
      return NULL;
    } else {
      known *= shape[i];
    }
  }
  int64_t n = tyr_numel(x);
  if (infer >= 0) sh[infer] = known ? n / known : 0;
  int64_t total = 1;
  for (int i = 0; i < rank; i++) total *= sh[i];
  if (total != n) {
    char a[160], b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op, "cannot reshape %s (%lld elements) to %s", shape_of(x, a),
              (long long)n, tyr_shape_str(shape, rank, b, sizeof b));
    return NULL;
  }
  return reshaped(s, op, x, rank, sh);
}

tyr_tensor *tyr_flatten_at(tyr_site s, tyr_tensor *x, int start, int end) {
  const char *op = "tyr_flatten";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  char b[160];
  if (x->rank == 0) {
    if ((start != 0 && start != -1) || (end != 0 && end != -1)) {
      tyr_raise(TYR_ERR_ARG, s, op, "start %d and end %d must be 0 or -1 for a rank-0 x", start,
                end);
      return NULL;
    }
    int64_t one = 1;
    return reshaped(s, op, x, 1, &one);
  }
  if (!tyr__dim_ok(s, op, x, &start) || !tyr__dim_ok(s, op, x, &end)) return NULL;
  if (start > end) {
    tyr_raise(TYR_ERR_ARG, s, op, "start dim %d comes after end dim %d in x %s", start, end,
              shape_of(x, b));
    return NULL;
  }
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  int r = 0;
  for (int i = 0; i < start; i++, r++) {
    sh[r] = x->shape[i];
    st[r] = x->stride[i];
  }
  /* dims start..end are laid out as one when each dim of size > 1 steps
   * over the next such dim exactly; the merged stride is the innermost's */
  int64_t merged = 1, mstride = 1, prev = 0;
  bool view = true, have_prev = false;
  for (int i = start; i <= end; i++) {
    merged *= x->shape[i];
    if (x->shape[i] == 1) continue;
    if (have_prev && prev != x->stride[i] * x->shape[i]) view = false;
    prev = mstride = x->stride[i];
    have_prev = true;
  }
  sh[r] = merged;
  st[r++] = mstride;
  for (int i = end + 1; i < x->rank; i++, r++) {
    sh[r] = x->shape[i];
    st[r] = x->stride[i];
  }
  if (!view) return reshaped(s, op, x, r, sh);
  tyr_tensor *out = tyr_view_raw(x, r, sh, st, x->offset);
  if (out) TYR_RECORD(s, op, out, reshape_backward, x);
  return out;
}

/* ---- transpose, permute, contiguous --------------------------------------------- */
static void transpose_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  gin[0] = tyr_transpose_at(n->site, g, (int)n->i[0], (int)n->i[1]);
}

tyr_tensor *tyr_transpose_at(tyr_site s, tyr_tensor *x, int d0, int d1) {
  const char *op = "tyr_transpose";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!tyr__dim_ok(s, op, x, &d0) || !tyr__dim_ok(s, op, x, &d1)) return NULL;
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  for (int i = 0; i < x->rank; i++) {
    int j = i == d0 ? d1 : i == d1 ? d0 : i;
    sh[i] = x->shape[j];
    st[i] = x->stride[j];
  }
  tyr_tensor *out = tyr_view_raw(x, x->rank, sh, st, x->offset);
  tyr_node *n = TYR_RECORD(s, op, out, transpose_backward, x);
  if (n) {
    n->i[0] = d0;
    n->i[1] = d1;
  }
  return out;
}

static void permute_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  int inv[TYR_MAX_RANK];
  for (int i = 0; i < g->rank; i++) inv[n->i[i]] = i;
  gin[0] = tyr_permute_n_at(n->site, g, g->rank, inv);
}

tyr_tensor *tyr_permute_n_at(tyr_site s, tyr_tensor *x, int n, const int *perm) {
  const char *op = "tyr_permute";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  char b[160];
  if (n != x->rank) {
    tyr_raise(TYR_ERR_ARG, s, op, "the permutation has %d entries, but x %s has rank %d", n,
              shape_of(x, b), x->rank);
    return NULL;
  }
  if (x->rank > 0 && !perm) {
    tyr_raise(TYR_ERR_ARG, s, op, "perm is NULL");
    return NULL;
  }
  int p[TYR_MAX_RANK];
  unsigned seen = 0;
  bool ok = true;
  for (int i = 0; i < x->rank; i++) {
    p[i] = perm[i] < 0 ? perm[i] + x->rank : perm[i];
    if (p[i] < 0 || p[i] >= x->rank || (seen & (1u << p[i])))
      ok = false;
    else
      seen |= 1u << p[i];
  }
  if (!ok) {
    char list[96];
    int used = 0;
    for (int i = 0; i < x->rank; i++)
      used += snprintf(list + used, sizeof list - (size_t)used, i ? ", %d" : "%d", perm[i]);
    tyr_raise(TYR_ERR_ARG, s, op, "(%s) is not a permutation of the dims of x %s", list,
              shape_of(x, b));
    return NULL;
  }
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  for (int i = 0; i < x->rank; i++) {
    sh[i] = x->shape[p[i]];
    st[i] = x->stride[p[i]];
  }
  tyr_tensor *out = tyr_view_raw(x, x->rank, sh, st, x->offset);
  tyr_node *nd = TYR_RECORD(s, op, out, permute_backward, x);
  if (nd)
    for (int i = 0; i < x->rank; i++) nd->i[i] = p[i];
  return out;
}

tyr_tensor *tyr_permute_at(tyr_site s, tyr_tensor *x, const int *perm) {
  if (!tyr__arg_ok(s, "tyr_permute", "x", x)) return NULL;
  return tyr_permute_n_at(s, x, x->rank, perm);
}

static void identity_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  (void)n;
  gin[0] = g;
}

tyr_tensor *tyr_contiguous_at(tyr_site s, tyr_tensor *x) {
  const char *op = "tyr_contiguous";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  tyr_tensor *out;
  if (tyr_is_contiguous(x)) {
    out = tyr_view_raw(x, x->rank, x->shape, x->stride, x->offset);
  } else {
    out = tyr__new_like(s, op, x);
    if (out) tyr__be(x)->copy(out, x);
  }
  TYR_RECORD(s, op, out, identity_backward, x);
  return out;
}

/* ---- squeeze, unsqueeze --------------------------------------------------------- */
static void squeeze_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  gin[0] = tyr_unsqueeze_at(n->site, g, (int)n->i[0]);
}
static void unsqueeze_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  gin[0] = tyr_squeeze_at(n->site, g, (int)n->i[0]);
}

tyr_tensor *tyr_squeeze_at(tyr_site s, tyr_tensor *x, int dim) {
  const char *op = "tyr_squeeze";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!tyr__dim_ok(s, op, x, &dim)) return NULL;
  if (x->shape[dim] != 1) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op, "dim %d of x %s has size %lld, not 1", dim, shape_of(x, b),
              (long long)x->shape[dim]);
    return NULL;
  }
  tyr_tensor *out = select_view(x, dim, 0);
  tyr_node *n = TYR_RECORD(s, op, out, squeeze_backward, x);
  if (n) n->i[0] = dim;
  return out;
}

tyr_tensor *tyr_unsqueeze_at(tyr_site s, tyr_tensor *x, int dim) {
  const char *op = "tyr_unsqueeze";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!insert_dim_ok(s, op, x, &dim)) return NULL;
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  for (int i = 0, k = 0; i <= x->rank; i++) {
    if (i == dim) {
      sh[i] = 1;
      st[i] = dim < x->rank ? x->shape[dim] * x->stride[dim] : 1;
    } else {
      sh[i] = x->shape[k];
      st[i] = x->stride[k++];
    }
  }
  tyr_tensor *out = tyr_view_raw(x, x->rank + 1, sh, st, x->offset);
  tyr_node *n = TYR_RECORD(s, op, out, unsqueeze_backward, x);
  if (n) n->i[0] = dim;
  return out;
}

/* ---- narrow ------------------------------------------------------------------------ */
/* g padded with zeros to x's shape */
static void narrow_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0];
  int dim = (int)n->i[0];
  tyr_tensor *gx = tyr_zeros_at(n->site, g->dtype, g->device, x->rank, x->shape);
  if (!gx) return;
  tyr_tensor *part = narrow_view(gx, dim, n->i[1], g->shape[dim]);
  if (!part) return;
  tyr__be(gx)->copy(part, g);
  gin[0] = gx;
}

tyr_tensor *tyr_narrow_at(tyr_site s, tyr_tensor *x, int dim, int64_t start, int64_t len) {
  const char *op = "tyr_narrow";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!tyr__dim_ok(s, op, x, &dim)) return NULL;
  if (start < 0 || len < 0 || start > x->shape[dim] - len) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "start %lld and length %lld do not fit in dim %d of x %s (size %lld)",
              (long long)start, (long long)len, dim, shape_of(x, b), (long long)x->shape[dim]);
    return NULL;
  }
  tyr_tensor *out = narrow_view(x, dim, start, len);
  tyr_node *n = TYR_RECORD(s, op, out, narrow_backward, x);
  if (n) {
    n->i[0] = dim;
    n->i[1] = start;
  }
  return out;
}

/* ---- split, chunk ------------------------------------------------------------------ */
/* count pieces: piece i starts at i * size and has min(size, rest) */
static int pieces_of(tyr_site s, const char *op, tyr_tensor *x, int dim, int64_t size, int count,
                     tyr_tensor **out) {
  int64_t n = x->shape[dim];
  tyr_tensor *tmp[64];
  tyr_tensor **p = count <= 64 ? tmp : calloc((size_t)count, sizeof *p);
  if (!p) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return -1;
  }
  int made = 0;
  for (; made < count; made++) {
    int64_t start = (int64_t)made * size;
    int64_t len = n - start < size ? n - start : size;
    p[made] = tyr_narrow_at(s, x, dim, start, len);
    if (!p[made]) break;
  }
  if (made < count) { /* nothing half-written: release what was made */
    for (int i = 0; i < made; i++) tyr__drop(p[i]);
    if (p != tmp) free(p);
    return -1;
  }
  for (int i = 0; i < count; i++) out[i] = p[i];
  if (p != tmp) free(p);
  return count;
}

static bool split_args(tyr_site s, const char *op, tyr_tensor *x, int *dim, tyr_tensor **out) {
  if (!tyr__arg_ok(s, op, "x", x)) return false;
  if (!out) {
    tyr_raise(TYR_ERR_ARG, s, op, "out is NULL");
    return false;
  }
  return tyr__dim_ok(s, op, x, dim);
}

int tyr_split_at(tyr_site s, tyr_tensor *x, int64_t size, int dim, tyr_tensor **out, int max_out) {
  const char *op = "tyr_split";
  if (!split_args(s, op, x, &dim, out)) return -1;
  if (size <= 0) {
    tyr_raise(TYR_ERR_ARG, s, op, "size must be positive, got %lld", (long long)size);
    return -1;
  }
  int64_t n = x->shape[dim];
  int64_t count = n == 0 ? 1 : (n + size - 1) / size;
  if (count > max_out) {
    char b[160];
    tyr_raise(TYR_ERR_ARG, s, op,
              "dim %d of x %s splits into %lld pieces of %lld, but out holds %d", dim,
              shape_of(x, b), (long long)count, (long long)size, max_out);
    return -1;
  }
  return pieces_of(s, op, x, dim, size, (int)count, out);
}

int tyr_chunk_at(tyr_site s, tyr_tensor *x, int chunks, int dim, tyr_tensor **out) {
  const char *op = "tyr_chunk";
  if (!split_args(s, op, x, &dim, out)) return -1;
  if (chunks <= 0) {
    tyr_raise(TYR_ERR_ARG, s, op, "chunks must be positive, got %d", chunks);
    return -1;
  }
  int64_t n = x->shape[dim];
  int64_t size = (n + chunks - 1) / chunks;
  if (size == 0) return pieces_of(s, op, x, dim, 0, 1, out);
  return pieces_of(s, op, x, dim, size, (int)((n + size - 1) / size), out);
}

int tyr__chunk_even_at(tyr_site s, const char *op, tyr_tensor *x, int chunks, int dim,
                       tyr_tensor **out) {
  if (!split_args(s, op, x, &dim, out)) return -1;
  if (chunks <= 0) {
    tyr_raise(TYR_ERR_ARG, s, op, "chunks must be positive, got %d", chunks);
    return -1;
  }
  int64_t n = x->shape[dim];
  if (n % chunks) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "dim %d of x %s has size %lld, which does not divide into %d "
              "equal pieces",
              dim, shape_of(x, b), (long long)n, chunks);
    return -1;
  }
  return pieces_of(s, op, x, dim, n / chunks, chunks, out);
}

/* ---- cat, stack ------------------------------------------------------------------- */
/* The inputs of a cat/stack node are pieces of its output along dim: a cat
 * input covers its own extent, a stack input one index (dim removed).  A
 * node holds at most TYR_NODE_MAX_IN inputs, so for more the last input is
 * `rest`, a view of the remaining part of the output with a node of its own
 * (i[2] is its input slot, else -1). */
static void pieces_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  int dim = (int)n->i[0];
  bool stack = n->i[1];
  int64_t off = 0;
  for (int k = 0; k < n->nin; k++) {
    tyr_tensor *x = n->in[k];
    bool whole = !stack || k == n->i[2]; /* keeps dim */
    int64_t ext = whole ? x->shape[dim] : 1;
    if (tyr__node_needs(n, k))
      gin[k] = whole ? narrow_view(g, dim, off, ext) : select_view(g, dim, off);
    off += ext;
  }
}

static void record_pieces(tyr_site s, const char *op, tyr_tensor *out, int n, tyr_tensor *const *xs,
                          int dim, bool stack) {
  if (!tyr__needs_grad(n, xs)) return;
  if (n <= TYR_NODE_MAX_IN) {
    tyr_node *nd = tyr__record(s, op, out, pieces_backward, n, xs);
    if (nd) {
      nd->i[0] = dim;
      nd->i[1] = stack;
      nd->i[2] = -1;
    }
    return;
  }
  enum { K = TYR_NODE_MAX_IN - 1 };
  int64_t off = 0;
  for (int k = 0; k < K; k++) off += stack ? 1 : xs[k]->shape[dim];
  tyr_tensor *rest = narrow_view(out, dim, off, out->shape[dim] - off);
  if (!rest) return;
  record_pieces(s, op, rest, n - K, xs + K, dim, stack);
  tyr_tensor *in[TYR_NODE_MAX_IN];
  for (int k = 0; k < K; k++) in[k] = xs[k];
  in[K] = rest;
  tyr_node *nd = tyr__record(s, op, out, pieces_backward, TYR_NODE_MAX_IN, in);
  if (nd) {
    nd->i[0] = dim;
    nd->i[1] = stack;
    nd->i[2] = K;
  }
  tyr__drop(rest); /* the node holds it now */
}

/* Common checks: n >= 1, no NULLs, one dtype, one device, one rank. */
static bool list_ok(tyr_site s, const char *op, int n, tyr_tensor *const *xs) {
  if (n < 1 || !xs) {
    tyr_raise(TYR_ERR_ARG, s, op, "no tensors to join (n = %d)", n);
    return false;
  }
  for (int i = 0; i < n; i++) {
    if (!xs[i]) {
      tyr_raise(TYR_ERR_ARG, s, op, "xs[%d] is NULL", i);
      return false;
    }
    if (i == 0) continue;
    if (xs[i]->dtype != xs[0]->dtype) {
      tyr_raise(TYR_ERR_DTYPE, s, op, "xs[%d] is %s but xs[0] is %s", i,
                tyr_dtype_name(xs[i]->dtype), tyr_dtype_name(xs[0]->dtype));
      return false;
    }
    if (!tyr_device_eq(xs[i]->device, xs[0]->device)) {
      tyr_raise(TYR_ERR_DEVICE, s, op, "xs[%d] is on %s but xs[0] is on %s", i,
                tyr_device_name(xs[i]->device), tyr_device_name(xs[0]->device));
      return false;
    }
  }
  return tyr_backend_get(s, op, xs[0]->device) != NULL;
}

tyr_tensor *tyr_cat_at(tyr_site s, int n, tyr_tensor *const *xs, int dim) {
  const char *op = "tyr_cat";
  if (!list_ok(s, op, n, xs)) return NULL;
  const tyr_tensor *x0 = xs[0];
  if (!tyr__dim_ok(s, op, x0, &dim)) return NULL;
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0; i < x0->rank; i++) sh[i] = x0->shape[i];
  sh[dim] = 0;
  for (int k = 0; k < n; k++) {
    bool ok = xs[k]->rank == x0->rank;
    for (int i = 0; ok && i < x0->rank; i++) ok = i == dim || xs[k]->shape[i] == x0->shape[i];
    if (!ok) {
      char a[160], b[160];
      tyr_raise(TYR_ERR_SHAPE, s, op,
                "xs[%d] is %s and xs[0] is %s: they must agree in every dim but dim %d", k,
                shape_of(xs[k], a), shape_of(x0, b), dim);
      return NULL;
    }
    sh[dim] += xs[k]->shape[dim];
  }
  tyr_tensor *out = tyr__new(s, op, x0->dtype, x0->device, x0->rank, sh);
  if (!out) return NULL;
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    tyr_tensor *part = narrow_view(out, dim, off, xs[k]->shape[dim]);
    if (!part) {
      tyr_tensor_free(out);
      return NULL;
    }
    tyr__be(out)->copy(part, xs[k]);
    tyr_tensor_free(part);
    off += xs[k]->shape[dim];
  }
  record_pieces(s, op, out, n, xs, dim, false);
  return out;
}

tyr_tensor *tyr_stack_at(tyr_site s, int n, tyr_tensor *const *xs, int dim) {
  const char *op = "tyr_stack";
  if (!list_ok(s, op, n, xs)) return NULL;
  const tyr_tensor *x0 = xs[0];
  for (int k = 1; k < n; k++) {
    if (!tyr__shape_eq(xs[k], x0)) {
      char a[160], b[160];
      tyr_raise(TYR_ERR_SHAPE, s, op,
                "xs[%d] is %s and xs[0] is %s: stacked tensors must have "
                "one shape",
                k, shape_of(xs[k], a), shape_of(x0, b));
      return NULL;
    }
  }
  if (!insert_dim_ok(s, op, x0, &dim)) return NULL;
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0, k = 0; i <= x0->rank; i++) sh[i] = i == dim ? n : x0->shape[k++];
  tyr_tensor *out = tyr__new(s, op, x0->dtype, x0->device, x0->rank + 1, sh);
  if (!out) return NULL;
  for (int k = 0; k < n; k++) {
    tyr_tensor *part = select_view(out, dim, k);
    if (!part) {
      tyr_tensor_free(out);
      return NULL;
    }
    tyr__be(out)->copy(part, xs[k]);
    tyr_tensor_free(part);
  }
  record_pieces(s, op, out, n, xs, dim, true);
  return out;
}

/* ---- tril, triu -------------------------------------------------------------------- */
static void tri_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  gin[0] = n->i[1] ? tyr_triu_at(n->site, g, n->i[0]) : tyr_tril_at(n->site, g, n->i[0]);
}

static tyr_tensor *tri(tyr_site s, const char *op, tyr_tensor *x, int64_t k, bool upper) {
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (x->rank < 2) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op, "x must have rank 2 or more, but is %s", shape_of(x, b));
    return NULL;
  }
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  tyr__scratch sc;
  if (!tyr__scratch_begin(&sc)) return NULL;
  /* keep where col - row <= k (tril) or >= k (triu): a [R, C] mask of
   * index arithmetic, broadcast over the leading dims */
  int64_t R = x->shape[x->rank - 2], C = x->shape[x->rank - 1], rc[2] = {R, C};
  tyr_tensor *rows = tyr_arange_at(s, TYR_I64, x->device, 0, (double)R, 1);
  tyr_tensor *cols = tyr_arange_at(s, TYR_I64, x->device, 0, (double)C, 1);
  tyr_tensor *kk = tyr_full_at(s, TYR_I64, x->device, 0, NULL, (double)k);
  tyr_tensor *zero = tyr_zeros_at(s, x->dtype, x->device, 0, NULL);
  tyr_tensor *out = NULL;
  if (rows && cols && kk && zero) {
    tyr_tensor *re = tyr_expand_at(s, tyr_reshape_at(s, rows, 2, (int64_t[]){R, 1}), 2, rc);
    tyr_tensor *ce = tyr_expand_at(s, tyr_reshape_at(s, cols, 2, (int64_t[]){1, C}), 2, rc);
    tyr_tensor *diff = tyr_sub_at(s, ce, re);
    tyr_tensor *ke = tyr_expand_at(s, kk, 2, rc);
    tyr_tensor *mask = !diff ? NULL : upper ? tyr_ge_at(s, diff, ke) : tyr_le_at(s, diff, ke);
    tyr_tensor *me = mask ? tyr_expand_at(s, mask, x->rank, x->shape) : NULL;
    tyr_tensor *ze = tyr_expand_at(s, zero, x->rank, x->shape);
    if (me && ze) out = tyr_where_at(s, me, x, ze);
  }
  out = tyr__scratch_end(&sc, out);
  if (out && tyr_dtype_is_float(x->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, tri_backward, x);
    if (n) {
      n->i[0] = k;
      n->i[1] = upper;
    }
  }
  return out;
}

tyr_tensor *tyr_tril_at(tyr_site s, tyr_tensor *x, int64_t diagonal) {
  return tri(s, "tyr_tril", x, diagonal, false);
}
tyr_tensor *tyr_triu_at(tyr_site s, tyr_tensor *x, int64_t diagonal) {
  return tri(s, "tyr_triu", x, diagonal, true);
}
