/* Views and rearrangements: shape rules, dispatch, backward. */
#include "ops/common.h"
#include "tyr/ops_create.h"
#include "tyr/ops_layout.h"

static void reshape_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0];
  gin[0] = tyr_reshape_at(n->site, g, x->rank, x->shape);
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
    tyr_raise(TYR_ERR_SHAPE, s, op, "cannot reshape %s (%lld elements) to %s",
              tyr_shape_str(x->shape, x->rank, a, sizeof a), (long long)n,
              tyr_shape_str(shape, rank, b, sizeof b));
    return NULL;
  }
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
