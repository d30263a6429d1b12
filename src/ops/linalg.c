/* Matrix products: shape rules, dispatch to the backend's GEMM kernel, and
 * backward.  Operands whose last two dims BLAS can read as they are
 * (row-major, or transposed views) are passed without a copy. */
#include <limits.h>

#include "ops/common.h"
#include "tyr/ops_create.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_linalg.h"
#include "tyr/ops_reduce.h"

/* The transposed view of t's last two dims (a real view, tracked by the
 * current scope; used by backward). */
static tyr_tensor *tview(tyr_tensor *t) {
  int r = t->rank;
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  for (int i = 0; i < r; i++) {
    sh[i] = t->shape[i];
    st[i] = t->stride[i];
  }
  sh[r - 2] = t->shape[r - 1];
  sh[r - 1] = t->shape[r - 2];
  st[r - 2] = t->stride[r - 1];
  st[r - 1] = t->stride[r - 2];
  return tyr_view_raw(t, r, sh, st, t->offset);
}

/* When dims 0..r-2 of t (the rows of a [.., m, k] operand) merge into one
 * dim of stride *row_stride, true. */
static bool rows_merge(const tyr_tensor *t, int64_t *row_stride) {
  int r = t->rank;
  bool have = false;
  int64_t st = t->shape[r - 1], expect = 0;
  for (int i = r - 2; i >= 0; i--) {
    if (t->shape[i] == 1) continue;
    if (!have) {
      st = t->stride[i];
      expect = st * t->shape[i];
      have = true;
    } else if (t->stride[i] != expect) {
      return false;
    } else {
      expect *= t->shape[i];
    }
  }
  *row_stride = st;
  return true;
}

static bool blas_sized(tyr_site s, const char *op, int64_t m, int64_t n, int64_t k) {
  if (m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) return true;
  tyr_raise(TYR_ERR_ARG, s, op,
            "a product of [%lld, %lld] by [%lld, %lld] exceeds the BLAS limit of %d per dim",
            (long long)m, (long long)k, (long long)k, (long long)n, INT_MAX);
  return false;
}

/* out[.., m, n] = a[.., m, k] @ b[.., k, n].  a, b and out have one rank
 * and equal batch dims (a's or b's may have stride 0); out is fresh and
 * contiguous.  Copies an operand only when BLAS cannot read its last two
 * dims as they are; bf16/f16 on the CPU go through f32. */
static void run_gemm(tyr_site s, const char *op, tyr_tensor *out, tyr_tensor *a, tyr_tensor *b) {
  const tyr_backend *be = tyr__be(out);
  if (tyr_numel(out) == 0) return;
  if (a->shape[a->rank - 1] == 0) {
    be->fill(out, 0.0);
    return;
  }
  if (tyr__needs_f32(out)) {
    tyr_tensor *af = tyr__convert(s, op, a, TYR_F32), *bf = tyr__convert(s, op, b, TYR_F32);
    tyr_tensor *of = tyr__new(s, op, TYR_F32, out->device, out->rank, out->shape);
    if (af && bf && of) {
      be->matmul(of, af, bf);
      be->copy(out, of);
    }
    tyr_tensor_free(af);
    tyr_tensor_free(bf);
    tyr_tensor_free(of);
    return;
  }
  bool tr;
  int64_t ld;
  tyr_tensor *ac = NULL, *bc = NULL;
  if (!tyr_gemm_layout(a, &tr, &ld) || ld > INT_MAX) {
    if (!(ac = tyr__convert(s, op, a, a->dtype))) return;
  }
  if (!tyr_gemm_layout(b, &tr, &ld) || ld > INT_MAX) {
    if (!(bc = tyr__convert(s, op, b, b->dtype))) {
      tyr_tensor_free(ac);
      return;
    }
  }
  be->matmul(out, ac ? ac : a, bc ? bc : b);
  tyr_tensor_free(ac);
  tyr_tensor_free(bc);
}

/* out = a @ b for a [.., m, k] and a 2-D b [k, n] shared by every batch
 * element: one GEMM over all rows when a's rows merge, else a batched GEMM
 * with b broadcast (stride 0). */
static void run_gemm_shared(tyr_site s, const char *op, tyr_tensor *out, tyr_tensor *a,
                            tyr_tensor *b) {
  int r = a->rank;
  int64_t k = a->shape[r - 1], n = b->shape[1], rs;
  int64_t m = k ? tyr_numel(a) / k : tyr_numel(out) / (n ? n : 1);
  if (rows_merge(a, &rs)) {
    tyr_tensor a2 =
        tyr__desc(a, 2, (int64_t[]){m, k}, (int64_t[]){rs, a->stride[r - 1]}, a->offset);
    tyr_tensor o2 = tyr__desc(out, 2, (int64_t[]){m, n}, (int64_t[]){n, 1}, out->offset);
    run_gemm(s, op, &o2, &a2, b);
    return;
  }
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  for (int i = 0; i < r - 2; i++) {
    sh[i] = a->shape[i];
    st[i] = 0;
  }
  sh[r - 2] = b->shape[0];
  sh[r - 1] = n;
  st[r - 2] = b->stride[0];
  st[r - 1] = b->stride[1];
  tyr_tensor bb = tyr__desc(b, r, sh, st, b->offset);
  run_gemm(s, op, out, a, &bb);
}

static bool float_pair(tyr_site s, const char *op, const char *an, tyr_tensor *a, const char *bn,
                       tyr_tensor *b) {
  return tyr__arg_ok(s, op, an, a) && tyr__arg_ok(s, op, bn, b) && tyr__same_device(s, op, a, b) &&
         tyr__same_dtype(s, op, a, b) && tyr__is_float(s, op, an, a) &&
         tyr_backend_get(s, op, a->device);
}

/* ---- matmul ------------------------------------------------------------------ */
static void matmul_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *a = n->in[0], *b = n->in[1];
  /* dA = dC @ BT (for a shared 2-D b too: [.., m, n] @ [n, k]) */
  if (tyr__node_needs(n, 0)) gin[0] = tyr_matmul_at(s, g, tview(b));
  if (!tyr__node_needs(n, 1)) return;
  if (b->rank == a->rank) { /* dB = AT @ dC, batch by batch */
    gin[1] = tyr_matmul_at(s, tview(a), g);
    return;
  }
  /* shared b: dB = sum over the batch of AT @ dC = A2T @ dC2 over all rows */
  int r = a->rank;
  int64_t k = a->shape[r - 1], nn = b->shape[1], m = 1;
  for (int i = 0; i < r - 1; i++) m *= a->shape[i];
  tyr_tensor *a2 = tyr_reshape_at(s, a, 2, (int64_t[]){m, k});
  tyr_tensor *g2 = tyr_reshape_at(s, g, 2, (int64_t[]){m, nn});
  if (a2 && g2) gin[1] = tyr_matmul_at(s, tview(a2), g2);
}

tyr_tensor *tyr_matmul_at(tyr_site s, tyr_tensor *a, tyr_tensor *b) {
  const char *op = "tyr_matmul";
  if (!float_pair(s, op, "a", a, "b", b)) return NULL;
  char x[160], y[160];
  int ra = a->rank, rb = b->rank;
  if (ra < 2 || !(rb == 2 || rb == ra)) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "a is %s and b is %s: a must be [.., m, k] (rank 2 to %d) and b [k, n] or of the "
              "same rank as a",
              tyr_shape_str(a->shape, ra, x, sizeof x), tyr_shape_str(b->shape, rb, y, sizeof y),
              TYR_MAX_RANK);
    return NULL;
  }
  if (a->shape[ra - 1] != b->shape[rb - 2]) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "inner dimensions differ: a is %s and b is %s (a [.., m, k] needs b [.., k, n]; "
              "k = %lld, but b has %lld rows)",
              tyr_shape_str(a->shape, ra, x, sizeof x), tyr_shape_str(b->shape, rb, y, sizeof y),
              (long long)a->shape[ra - 1], (long long)b->shape[rb - 2]);
    return NULL;
  }
  if (rb == ra) {
    for (int i = 0; i < ra - 2; i++) {
      if (a->shape[i] != b->shape[i]) {
        tyr_raise(TYR_ERR_SHAPE, s, op,
                  "batch dimensions differ: a is %s and b is %s (dim %d: %lld vs %lld); b must "
                  "have the batch dims of a, or be 2-D",
                  tyr_shape_str(a->shape, ra, x, sizeof x),
                  tyr_shape_str(b->shape, rb, y, sizeof y), i, (long long)a->shape[i],
                  (long long)b->shape[i]);
        return NULL;
      }
    }
  }
  int64_t m = a->shape[ra - 2], k = a->shape[ra - 1], n = b->shape[rb - 1];
  if (rb == 2 && ra > 2)
    for (int i = 0; i < ra - 2; i++) m *= a->shape[i];
  if (!blas_sized(s, op, m, n, k)) return NULL;
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0; i < ra - 1; i++) sh[i] = a->shape[i];
  sh[ra - 1] = n;
  tyr_tensor *out = tyr__new(s, op, a->dtype, a->device, ra, sh);
  if (!out) return NULL;
  if (rb == 2 && ra > 2)
    run_gemm_shared(s, op, out, a, b);
  else
    run_gemm(s, op, out, a, b);
  TYR_RECORD(s, op, out, matmul_backward, a, b);
  return out;
}

/* ---- linear -------------------------------------------------------------------- */
/* out [.., N] = x [.., K] @ wT + bias, all f32 or f64 (or any dtype the
 * backend computes directly). */
static void linear_compute(tyr_site s, const char *op, tyr_tensor *out, tyr_tensor *x,
                           tyr_tensor *w, tyr_tensor *bias) {
  int r = x->rank;
  int64_t K = w->shape[1], N = w->shape[0], M = 1;
  for (int i = 0; i < r - 1; i++) M *= x->shape[i];
  tyr_tensor wt = tyr__desc_t(w); /* [K, N] */
  tyr_tensor o2 = tyr__desc(out, 2, (int64_t[]){M, N}, (int64_t[]){N, 1}, out->offset);
  tyr_tensor *xc = NULL;
  int64_t rs;
  if (r == 1) {
    rs = K;
  } else if (!rows_merge(x, &rs)) {
    xc = tyr__convert(s, op, x, x->dtype);
    if (!xc) return;
    rs = K;
  }
  tyr_tensor *xs = xc ? xc : x;
  tyr_tensor x2 =
      tyr__desc(xs, 2, (int64_t[]){M, K}, (int64_t[]){rs, xs->stride[r - 1]}, xs->offset);
  const tyr_backend *be = tyr__be(out);
  bool tr;
  int64_t ld, ldw;
  if (bias && M * N > 0 && K > 0 && be->matmul_bias && tyr_gemm_layout(&x2, &tr, &ld) &&
      ld <= INT_MAX && tyr_gemm_layout(&wt, &tr, &ldw) && ldw <= INT_MAX) {
    be->matmul_bias(&o2, &x2, &wt, bias); /* the bias in the GEMM's epilogue */
    tyr_tensor_free(xc);
    return;
  }
  run_gemm(s, op, &o2, &x2, &wt);
  tyr_tensor_free(xc);
  if (!bias || M * N == 0) return;
  /* + bias on every row: one add with the bias seen as [M, N] (row stride 0) */
  tyr_tensor rows =
      tyr__desc(bias, 2, (int64_t[]){M, N}, (int64_t[]){0, bias->stride[0]}, bias->offset);
  tyr__be(out)->binary(TYR_BIN_ADD, &o2, &o2, &rows);
}

static void linear_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *w = n->in[1];
  int64_t N = w->shape[0], K = w->shape[1], M = 1;
  for (int i = 0; i < x->rank - 1; i++) M *= x->shape[i];
  tyr_tensor *g2 = tyr_reshape_at(s, g, 2, (int64_t[]){M, N});
  if (!g2) return;
  if (tyr__node_needs(n, 0)) { /* dx = dy @ w */
    tyr_tensor *gx = tyr_matmul_at(s, g2, w);
    if (gx) gin[0] = tyr_reshape_at(s, gx, x->rank, x->shape);
  }
  if (!tyr__node_needs(n, 1) && !tyr__node_needs(n, 2)) return;
  tyr_tensor *x2 = tyr_reshape_at(s, x, 2, (int64_t[]){M, K});
  tyr_tensor *bias = n->in[2];
  tyr_dtype gdt = tyr__grad_dtype(w);
  if (bias && tyr__grad_dtype(bias) != gdt) gdt = g->dtype;
  if (x2)
    tyr__linear_param_grads(s, g2, x2, tyr__node_needs(n, 1), tyr__node_needs(n, 2), gdt, &gin[1],
                            &gin[2]);
}

void tyr__linear_param_grads(tyr_site s, tyr_tensor *g2, tyr_tensor *x2, bool want_w, bool want_b,
                             tyr_dtype gdt, tyr_tensor **gw, tyr_tensor **gb) {
  int64_t M = g2->shape[0], N = g2->shape[1];
  const tyr_backend *be = tyr__be(g2);
  if (want_w && want_b && be->matmul_bgrad && M > 0) { /* one GEMM */
    int64_t K = x2->shape[1];
    /* in the gradients' final dtype first (f32 from bf16 operands), else dy's */
    tyr_dtype dts[2] = {gdt, g2->dtype};
    for (int i = gdt == g2->dtype ? 1 : 0; i < 2; i++) {
      tyr_tensor *w = tyr__new(s, "tyr_linear", dts[i], g2->device, 2, (int64_t[]){N, K});
      tyr_tensor *b = w ? tyr__new(s, "tyr_linear", dts[i], g2->device, 1, &N) : NULL;
      if (b && be->matmul_bgrad(w, b, tview(g2), x2)) {
        *gw = w;
        *gb = b;
        return;
      }
      tyr_tensor_free(b);
      tyr_tensor_free(w);
    }
  }
  if (want_w) *gw = tyr_matmul_at(s, tview(g2), x2); /* dw = dyT @ x over all rows */
  if (want_b) *gb = tyr_sum_dim_at(s, g2, 0, false); /* dbias = dy summed over rows */
}

tyr_tensor *tyr_linear_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *bias) {
  const char *op = "tyr_linear";
  if (!float_pair(s, op, "x", x, "w", w)) return NULL;
  char a[160], b[160];
  int r = x->rank;
  if (r < 1 || w->rank != 2 || w->shape[1] != x->shape[r - 1]) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "x is %s and w is %s: the weight must be [out, in] with in equal to the last dim of "
              "x (%lld)",
              tyr_shape_str(x->shape, r, a, sizeof a),
              tyr_shape_str(w->shape, w->rank, b, sizeof b), r ? (long long)x->shape[r - 1] : 0LL);
    return NULL;
  }
  if (bias) {
    if (!tyr__same_device(s, op, x, bias) || !tyr__same_dtype(s, op, x, bias)) return NULL;
    if (bias->rank != 1 || bias->shape[0] != w->shape[0]) {
      tyr_raise(TYR_ERR_SHAPE, s, op, "bias is %s and w is %s: the bias must be [%lld] (out)",
                tyr_shape_str(bias->shape, bias->rank, a, sizeof a),
                tyr_shape_str(w->shape, 2, b, sizeof b), (long long)w->shape[0]);
      return NULL;
    }
  }
  int64_t M = 1, N = w->shape[0], K = w->shape[1];
  for (int i = 0; i < r - 1; i++) M *= x->shape[i];
  if (!blas_sized(s, op, M, N, K)) return NULL;
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0; i < r - 1; i++) sh[i] = x->shape[i];
  sh[r - 1] = N;
  tyr_tensor *out = tyr__new(s, op, x->dtype, x->device, r, sh);
  if (!out) return NULL;
  if (tyr__needs_f32(x)) { /* bf16/f16 on the CPU: in f32, rounded once at the end */
    tyr_tensor *xf = tyr__convert(s, op, x, TYR_F32), *wf = tyr__convert(s, op, w, TYR_F32);
    tyr_tensor *bf = bias ? tyr__convert(s, op, bias, TYR_F32) : NULL;
    tyr_tensor *of = tyr__new(s, op, TYR_F32, x->device, r, sh);
    if (xf && wf && of && (bf || !bias)) {
      linear_compute(s, op, of, xf, wf, bf);
      tyr__be(x)->copy(out, of);
    }
    tyr_tensor_free(xf);
    tyr_tensor_free(wf);
    tyr_tensor_free(bf);
    tyr_tensor_free(of);
  } else {
    linear_compute(s, op, out, x, w, bias);
  }
  TYR_RECORD(s, op, out, linear_backward, x, w, bias);
  return out;
}
