/* matmul and linear: values against double-precision loops (2-D, batched,
 * shared right operand, transposed and strided views), gradients against
 * finite differences, shape/dtype errors, bf16, and the typed forms. */
#include <math.h>
#include <stdio.h>

#include "gradcheck.h"

/* ---- references ------------------------------------------------------------ */
/* Multi-index of linear element i of shape[rank]. */
static void unravel(int64_t i, int rank, const int64_t *shape, int64_t *idx) {
  for (int d = rank - 1; d >= 0; d--) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
}

/* Checks c = a @ b element by element (b of a's rank or 2-D). */
static void check_matmul(const tyr_tensor *a, const tyr_tensor *b, const tyr_tensor *c, double atol,
                         double rtol) {
  int r = a->rank;
  assert_int_equal(c->rank, r);
  for (int d = 0; d < r - 1; d++) assert_int_equal(c->shape[d], a->shape[d]);
  assert_int_equal(c->shape[r - 1], b->shape[b->rank - 1]);
  int64_t K = a->shape[r - 1], n = tyr_numel(c);
  for (int64_t i = 0; i < n; i++) {
    int64_t ci[TYR_MAX_RANK], ai[TYR_MAX_RANK], bi[TYR_MAX_RANK];
    unravel(i, r, c->shape, ci);
    double acc = 0;
    for (int64_t k = 0; k < K; k++) {
      for (int d = 0; d < r; d++) ai[d] = ci[d];
      ai[r - 1] = k;
      if (b->rank == r) {
        for (int d = 0; d < r; d++) bi[d] = ci[d];
      }
      bi[b->rank - 2] = k;
      bi[b->rank - 1] = ci[r - 1];
      acc += tyr_get_at(TYR_SITE, a, ai) * tyr_get_at(TYR_SITE, b, bi);
    }
    ASSERT_CLOSE(tyr_get_at(TYR_SITE, c, ci), acc, atol, rtol);
  }
}

/* Checks y = x wT + bias (bias may be NULL). */
static void check_linear(const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *bias,
                         const tyr_tensor *y, double atol, double rtol) {
  int r = x->rank;
  int64_t K = w->shape[1], n = tyr_numel(y);
  assert_int_equal(y->rank, r);
  assert_int_equal(y->shape[r - 1], w->shape[0]);
  for (int64_t i = 0; i < n; i++) {
    int64_t yi[TYR_MAX_RANK], xi[TYR_MAX_RANK];
    unravel(i, r, y->shape, yi);
    int64_t o = yi[r - 1];
    double acc = bias ? tyr_get_e(bias, o) : 0;
    for (int64_t k = 0; k < K; k++) {
      for (int d = 0; d < r; d++) xi[d] = yi[d];
      xi[r - 1] = k;
      acc += tyr_get_at(TYR_SITE, x, xi) * tyr_get_e(w, o, k);
    }
    ASSERT_CLOSE(tyr_get_at(TYR_SITE, y, yi), acc, atol, rtol);
  }
}

static tyr_tensor *randn(tyr_dtype dt, int rank, const int64_t *shape) {
  return tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, rank, shape, 0, 1);
}
#define RANDN(dt, ...) randn((dt), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

/* The transposed view of t's last two dims (not recorded). */
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

/* ---- values ---------------------------------------------------------------- */
static void test_matmul_2d(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int k = 0; k < 2; k++) {
    tyr_dtype dt = k ? TYR_F64 : TYR_F32;
    double tol = k ? 1e-12 : 1e-5;
    tyr_tensor *a = RANDN(dt, 5, 7), *b = RANDN(dt, 7, 3);
    tyr_tensor *c = tyr_matmul_e(a, b);
    assert_int_equal(c->dtype, dt);
    check_matmul(a, b, c, tol, tol);
    /* 1 x n and m x 1 edge shapes */
    tyr_tensor *r = RANDN(dt, 1, 7), *col = RANDN(dt, 7, 1);
    check_matmul(r, b, tyr_matmul_e(r, b), tol, tol);
    check_matmul(a, col, tyr_matmul_e(a, col), tol, tol);
    check_matmul(r, col, tyr_matmul_e(r, col), tol, tol);
  }
}

static void test_matmul_batched(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a3 = RANDN(TYR_F64, 2, 4, 5), *b3 = RANDN(TYR_F64, 2, 5, 3);
  check_matmul(a3, b3, tyr_matmul_e(a3, b3), 1e-12, 1e-12);
  tyr_tensor *a4 = RANDN(TYR_F32, 2, 3, 4, 5), *b4 = RANDN(TYR_F32, 2, 3, 5, 6);
  check_matmul(a4, b4, tyr_matmul_e(a4, b4), 1e-5, 1e-5);
  tyr_tensor *a5 = RANDN(TYR_F64, 2, 1, 2, 3, 4), *b5 = RANDN(TYR_F64, 2, 1, 2, 4, 2);
  check_matmul(a5, b5, tyr_matmul_e(a5, b5), 1e-12, 1e-12);
  /* one 2-D right operand shared by every batch element */
  tyr_tensor *w = RANDN(TYR_F32, 5, 6);
  check_matmul(a4, w, tyr_matmul_e(a4, w), 1e-5, 1e-5);
  tyr_tensor *w3 = RANDN(TYR_F64, 5, 2);
  check_matmul(a3, w3, tyr_matmul_e(a3, w3), 1e-12, 1e-12);
}

static void test_matmul_views(void **state) {
  (void)state;
  TYR_SCOPE;
  /* transposed views go to BLAS as they are */
  tyr_tensor *at = RANDN(TYR_F64, 7, 5), *bt = RANDN(TYR_F64, 3, 7);
  tyr_tensor *a = tview(at), *b = tview(bt);
  check_matmul(a, b, tyr_matmul_e(a, b), 1e-12, 1e-12);
  tyr_tensor *b0 = RANDN(TYR_F64, 7, 3);
  check_matmul(a, b0, tyr_matmul_e(a, b0), 1e-12, 1e-12);
  /* batched transposed */
  tyr_tensor *bat = RANDN(TYR_F32, 2, 6, 4), *bbt = RANDN(TYR_F32, 2, 3, 6);
  check_matmul(tview(bat), tview(bbt), tyr_matmul_e(tview(bat), tview(bbt)), 1e-5, 1e-5);
  /* a column slice with a row stride wider than its width (lda > k) */
  tyr_tensor *wide = RANDN(TYR_F64, 5, 10);
  tyr_tensor *slice = tyr_view_raw(wide, 2, (int64_t[]){5, 4}, (int64_t[]){10, 1}, 3);
  tyr_tensor *b4 = RANDN(TYR_F64, 4, 2);
  check_matmul(slice, b4, tyr_matmul_e(slice, b4), 1e-12, 1e-12);
  /* every other column: BLAS cannot read it, so it is copied first */
  tyr_tensor *strided = tyr_view_raw(wide, 2, (int64_t[]){5, 4}, (int64_t[]){10, 2}, 1);
  check_matmul(strided, b4, tyr_matmul_e(strided, b4), 1e-12, 1e-12);
  /* a permuted [B, m, k] whose rows do not merge, times a shared b */
  tyr_tensor *base = RANDN(TYR_F64, 4, 3, 5); /* [m, B, k] */
  tyr_tensor *perm = tyr_view_raw(base, 3, (int64_t[]){3, 4, 5}, (int64_t[]){5, 15, 1}, 0);
  tyr_tensor *w = RANDN(TYR_F64, 5, 2);
  check_matmul(perm, w, tyr_matmul_e(perm, w), 1e-12, 1e-12);
  tyr_tensor *wt = tview(RANDN(TYR_F64, 2, 5));
  check_matmul(perm, wt, tyr_matmul_e(perm, wt), 1e-12, 1e-12);
  /* a batch broadcast with stride 0 */
  tyr_tensor *one = RANDN(TYR_F64, 1, 4, 5);
  tyr_tensor *bcast = tyr_expand_e(one, 3, 4, 5);
  tyr_tensor *b3 = RANDN(TYR_F64, 3, 5, 2);
  check_matmul(bcast, b3, tyr_matmul_e(bcast, b3), 1e-12, 1e-12);
  /* zero-size operands */
  tyr_tensor *e0 = RANDN(TYR_F32, 3, 0), *e1 = RANDN(TYR_F32, 0, 4);
  tyr_tensor *z = tyr_matmul_e(e0, e1);
  assert_int_equal(z->shape[0], 3);
  assert_int_equal(z->shape[1], 4);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++) ASSERT_CLOSE(tyr_get_e(z, i, j), 0, 0, 0);
  tyr_tensor *z2 = tyr_matmul_e(e1, RANDN(TYR_F32, 4, 2));
  assert_int_equal(tyr_numel(z2), 0);
}

/* f32 matmuls across the CPU kernel's block sizes (12-row and 32-column
   register tiles, 192-deep and 132-row blocks, 1024-column blocks), every
   transpose combination, A a strided view, one and two threads: against
   the same product in f64.  With two threads, products of more rows than
   columns split the rows (M 140, 300 and 1100: each thread's rows fewer
   and more than the 132-row block, and 1030 columns past the 1024-column
   block). */
static void test_matmul_f32_blocks(void **state) {
  (void)state;
  const int64_t Ms[] = {1, 13, 140, 300, 1100}, Ns[] = {1, 33, 1030}, Ks[] = {1, 200, 401};
  int threads = tyr_get_num_threads();
  for (int nt = 1; nt <= 2; nt++) {
    tyr_set_num_threads(nt);
    for (int im = 0; im < 5; im++)
      for (int in = 0; in < 3; in++)
        for (int ik = 0; ik < 3; ik++)
          for (int tr = 0; tr < 4; tr++) {
            int64_t M = Ms[im], N = Ns[in], K = Ks[ik];
            if (M * N * K > 30000000) continue;
            double tol = 4e-6 * (double)K, worst = 0;
            {
              TYR_SCOPE;
              /* operands inside wider matrices (leading dimension past the
                 product's: 3 more columns, from column 2), as the kernel
                 reads A where it is */
              tyr_tensor *a = tr & 1 ? tview(tyr_narrow_e(RANDN(TYR_F32, K, M + 3), 1, 2, M))
                                     : tyr_narrow_e(RANDN(TYR_F32, M, K + 3), 1, 2, K);
              tyr_tensor *b = tr & 2 ? tview(RANDN(TYR_F32, N, K)) : RANDN(TYR_F32, K, N);
              tyr_tensor *c = tyr_matmul_e(a, b);
              tyr_tensor *ref =
                  tyr_matmul_e(tyr_to_dtype_e(a, TYR_F64), tyr_to_dtype_e(b, TYR_F64));
              for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                  double d = fabs(tyr_get_e(c, i, j) - tyr_get_e(ref, i, j));
                  worst = d > worst ? d : worst;
                }
            }
            if (worst > tol) {
              tyr_set_num_threads(threads);
              fail_msg("M=%lld N=%lld K=%lld transposes %d threads %d: max error %g > %g",
                       (long long)M, (long long)N, (long long)K, tr, nt, worst, tol);
            }
          }
  }
  tyr_set_num_threads(threads);
}

static void test_linear_values(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int k = 0; k < 2; k++) {
    tyr_dtype dt = k ? TYR_F64 : TYR_F32;
    double tol = k ? 1e-12 : 1e-5;
    tyr_tensor *x = RANDN(dt, 2, 3, 5), *w = RANDN(dt, 4, 5), *b = RANDN(dt, 4);
    check_linear(x, w, NULL, tyr_linear_e(x, w, NULL), tol, tol);
    check_linear(x, w, b, tyr_linear_e(x, w, b), tol, tol);
    tyr_tensor *x1 = RANDN(dt, 5);
    check_linear(x1, w, b, tyr_linear_e(x1, w, b), tol, tol);
    tyr_tensor *x2 = RANDN(dt, 6, 5);
    check_linear(x2, w, b, tyr_linear_e(x2, w, b), tol, tol);
  }
  /* views: a weight stored [in, out] and seen transposed, a permuted x, a
   * transposed 2-D x, a strided bias */
  tyr_tensor *wt = RANDN(TYR_F64, 5, 4);
  tyr_tensor *w = tview(wt);
  tyr_tensor *base = RANDN(TYR_F64, 3, 2, 5);
  tyr_tensor *xp = tyr_view_raw(base, 3, (int64_t[]){2, 3, 5}, (int64_t[]){5, 10, 1}, 0);
  tyr_tensor *bb = RANDN(TYR_F64, 8);
  tyr_tensor *b = tyr_view_raw(bb, 1, (int64_t[]){4}, (int64_t[]){2}, 1);
  check_linear(xp, w, b, tyr_linear_e(xp, w, b), 1e-12, 1e-12);
  tyr_tensor *xt = tview(RANDN(TYR_F64, 5, 6));
  check_linear(xt, w, b, tyr_linear_e(xt, w, b), 1e-12, 1e-12);
  /* empty batch */
  tyr_tensor *x0 = RANDN(TYR_F32, 0, 5), *w0 = RANDN(TYR_F32, 4, 5), *b0 = RANDN(TYR_F32, 4);
  tyr_tensor *y0 = tyr_linear_e(x0, w0, b0);
  assert_int_equal(y0->shape[0], 0);
  assert_int_equal(y0->shape[1], 4);
}

/* The bias added in the CPU GEMM's epilogue (matmul_bias), at sizes split
 * between threads by rows and by columns, with a contiguous and a strided
 * bias: bit for bit the product followed by a broadcast add. */
static void test_linear_bias_epilogue(void **state) {
  (void)state;
  TYR_SCOPE;
  const int64_t shapes[3][3] = {{300, 70, 90}, {20, 500, 64}, {1, 3, 2}}; /* M, N, K */
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 3; c++) {
      tyr_dtype dt = k ? TYR_F64 : TYR_F32;
      int64_t M = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
      tyr_tensor *x = RANDN(dt, M, K), *w = RANDN(dt, N, K), *bb = RANDN(dt, 2 * N);
      tyr_tensor *b = c == 1 ? tyr_view_raw(bb, 1, (int64_t[]){N}, (int64_t[]){2}, 1)
                             : tyr_narrow_e(bb, 0, 0, N);
      tyr_tensor *y = tyr_linear_e(x, w, b);
      tyr_tensor *ref = tyr_add_e(tyr_linear_e(x, w, NULL), tyr_expand_e(b, M, N));
      assert_true(tyr_item_e(tyr_max_e(tyr_abs_e(tyr_sub_e(y, ref)))) == 0.0);
    }
}

/* ---- gradients -------------------------------------------------------------- */
static tyr_tensor *call_matmul(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_matmul_e(in[0], in[1]);
}
/* two matmuls in a row: the first one's gradient comes from the second's
 * backward (a product with a transposed view) */
static tyr_tensor *call_matmul_chain(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *ab = tyr_matmul_e(in[0], in[1]);
  return tyr_matmul_e(ab, in[2]);
}
static tyr_tensor *call_linear(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_linear_e(in[0], in[1], in[2]);
}
static tyr_tensor *call_linear_nobias(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_linear_e(in[0], in[1], NULL);
}

static void test_matmul_gradients(void **state) {
  (void)state;
  struct {
    const char *name;
    int ra, rb;
    int64_t sa[4], sb[4];
  } cases[] = {
      {"matmul 2-D", 2, 2, {3, 4}, {4, 5}},
      {"matmul 3-D", 3, 3, {2, 3, 4}, {2, 4, 2}},
      {"matmul 4-D", 4, 4, {2, 2, 3, 2}, {2, 2, 2, 3}},
      {"matmul shared b", 3, 2, {2, 3, 4}, {4, 2}},
      {"matmul shared b, 4-D", 4, 2, {2, 1, 2, 3}, {3, 2}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    tyr_tensor *in[2] = {tyr_test_leaf(cases[c].ra, cases[c].sa, -1, 1),
                         tyr_test_leaf(cases[c].rb, cases[c].sb, -1, 1)};
    tyr_gradcheck(cases[c].name, call_matmul, NULL, 2, in, 1e-6, 1e-6);
    /* only one operand needing a gradient */
    tyr_requires_grad_e(in[0], false);
    tyr_gradcheck(cases[c].name, call_matmul, NULL, 2, in, 1e-6, 1e-6);
    tyr_tensor_free(in[0]);
    tyr_tensor_free(in[1]);
  }
  tyr_tensor *ch[3] = {TYR_TEST_LEAF(-1, 1, 3, 4), TYR_TEST_LEAF(-1, 1, 4, 2),
                       TYR_TEST_LEAF(-1, 1, 2, 5)};
  tyr_gradcheck("matmul chain", call_matmul_chain, NULL, 3, ch, 1e-6, 1e-6);
  for (int i = 0; i < 3; i++) tyr_tensor_free(ch[i]);
}

static void test_linear_gradients(void **state) {
  (void)state;
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 2, 3, 5), TYR_TEST_LEAF(-1, 1, 4, 5),
                       TYR_TEST_LEAF(-1, 1, 4)};
  tyr_gradcheck("linear", call_linear, NULL, 3, in, 1e-6, 1e-6);
  tyr_gradcheck("linear without bias", call_linear_nobias, NULL, 2, in, 1e-6, 1e-6);
  tyr_requires_grad_e(in[0], false);
  tyr_gradcheck("linear, weights only", call_linear, NULL, 3, in, 1e-6, 1e-6);
  tyr_tensor *x1 = TYR_TEST_LEAF(-1, 1, 5);
  tyr_tensor *in1[3] = {x1, in[1], in[2]};
  tyr_gradcheck("linear of a vector", call_linear, NULL, 3, in1, 1e-6, 1e-6);
  tyr_tensor_free(x1);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
}

/* gradients through a network of two layers agree with hand-written ones */
static void test_linear_backward_values(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 6, 3), *w = TYR_TEST_LEAF(-1, 1, 2, 3),
             *b = TYR_TEST_LEAF(-1, 1, 2);
  {
    TYR_SCOPE;
    tyr_tensor *y = tyr_linear_e(x, w, b);
    assert_int_equal(tyr_backward_e(tyr_sum_e(y)), 0);
  }
  /* d sum(y) / d b = rows, / d w[o, k] = sum_r x[r, k], / d x[r, k] = sum_o w[o, k] */
  for (int64_t o = 0; o < 2; o++) {
    ASSERT_CLOSE(tyr_get_e(tyr_grad_e(b), o), 6, 1e-12, 0);
    for (int64_t k = 0; k < 3; k++) {
      double s = 0;
      for (int64_t r = 0; r < 6; r++) s += tyr_get_e(x, r, k);
      ASSERT_CLOSE(tyr_get_e(tyr_grad_e(w), o, k), s, 1e-12, 1e-12);
    }
  }
  for (int64_t r = 0; r < 6; r++)
    for (int64_t k = 0; k < 3; k++)
      ASSERT_CLOSE(tyr_get_e(tyr_grad_e(x), r, k), tyr_get_e(w, 0, k) + tyr_get_e(w, 1, k), 1e-12,
                   1e-12);
  tyr_tensor_free(x);
  tyr_tensor_free(w);
  tyr_tensor_free(b);
}

/* ---- errors ------------------------------------------------------------------- */
static void test_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a = RANDN(TYR_F32, 2, 3), *b = RANDN(TYR_F32, 4, 5);
  EXPECT_TYR_ERROR(tyr_matmul_e(a, b),
                   "tyr_matmul: inner dimensions differ: a is [2, 3] and b is [4, 5]");
  tyr_tensor *a3 = RANDN(TYR_F32, 2, 2, 3), *b3 = RANDN(TYR_F32, 3, 3, 4);
  EXPECT_TYR_ERROR(tyr_matmul_e(a3, b3),
                   "tyr_matmul: batch dimensions differ: a is [2, 2, 3] and b is [3, 3, 4] (dim 0: "
                   "2 vs 3)");
  EXPECT_TYR_ERROR(tyr_matmul_e(a, b3), "tyr_matmul: a is [2, 3] and b is [3, 3, 4]: a must be");
  tyr_tensor *v = RANDN(TYR_F32, 3);
  EXPECT_TYR_ERROR(tyr_matmul_e(v, RANDN(TYR_F32, 3, 2)), "tyr_matmul: a is [3] and b is [3, 2]");
  EXPECT_TYR_ERROR(tyr_matmul_e(a, RANDN(TYR_F64, 3, 2)),
                   "tyr_matmul: operands have different dtypes (f32 and f64)");
  tyr_tensor *i = tyr_zeros_at(TYR_SITE, TYR_I32, TYR_DEVICE_CPU, 2, (int64_t[]){3, 3});
  EXPECT_TYR_ERROR(tyr_matmul_e(i, i), "tyr_matmul: a must be a floating dtype, not i32");
  EXPECT_TYR_ERROR(tyr_matmul_e(a, NULL), "tyr_matmul: b is NULL");
  /* linear: both shapes and the rule */
  tyr_tensor *x = RANDN(TYR_F32, 32, 768), *w = RANDN(TYR_F32, 768, 512);
  EXPECT_TYR_ERROR(tyr_linear_e(x, w, NULL),
                   "tyr_linear: x is [32, 768] and w is [768, 512]: the weight must be [out, in] "
                   "with in equal to the last dim of x (768)");
  tyr_tensor *w2 = RANDN(TYR_F32, 4, 3), *bias = RANDN(TYR_F32, 3);
  EXPECT_TYR_ERROR(tyr_linear_e(a, w2, bias),
                   "tyr_linear: bias is [3] and w is [4, 3]: the bias must be [4]");
  EXPECT_TYR_ERROR(tyr_linear_e(a, RANDN(TYR_F32, 4, 3, 1), NULL), "tyr_linear: x is [2, 3] and w");
  EXPECT_TYR_ERROR(tyr_linear_e(a, w2, RANDN(TYR_F64, 4)),
                   "tyr_linear: operands have different dtypes");
  EXPECT_TYR_ERROR(tyr_linear_e(NULL, w2, NULL), "tyr_linear: x is NULL");
  /* the message names this file and line */
  int line = __LINE__ + 1;
  tyr_matmul_e(a, b);
  char where[80];
  snprintf(where, sizeof where, "test_ops_linalg.c:%d: tyr_matmul: ", line);
  assert_non_null(strstr(tyr_test_error_message(), where));
  tyr_test_error_reset();
}

/* ---- bf16 / f16 -------------------------------------------------------------- */
static void test_half_precision(void **state) {
  (void)state;
  TYR_SCOPE;
  for (int k = 0; k < 2; k++) {
    tyr_dtype dt = k ? TYR_F16 : TYR_BF16;
    tyr_tensor *a = RANDN(dt, 2, 3, 8), *b = RANDN(dt, 2, 8, 4), *w = RANDN(dt, 5, 8),
               *bias = RANDN(dt, 5);
    tyr_tensor *c = tyr_matmul_e(a, b);
    assert_int_equal(c->dtype, dt);
    /* computed in f32 from the rounded inputs, rounded once at the end */
    check_matmul(a, b, c, 3e-2, k ? 2e-3 : 1e-2);
    tyr_tensor *y = tyr_linear_e(a, w, bias);
    assert_int_equal(y->dtype, dt);
    check_linear(a, w, bias, y, 3e-2, k ? 2e-3 : 1e-2);
    check_matmul(a, tview(w), tyr_matmul_e(a, tview(w)), 3e-2, k ? 2e-3 : 1e-2);
  }
  /* backward in bf16 gives bf16 gradients close to the f64 ones */
  tyr_tensor *xd = TYR_TEST_LEAF(-1, 1, 4, 6), *wd = TYR_TEST_LEAF(-1, 1, 3, 6),
             *bd = TYR_TEST_LEAF(-1, 1, 3);
  tyr_tensor *xh, *wh, *bh;
  {
    TYR_NO_GRAD;
    xh = tyr_keep_e(tyr_to_dtype_e(xd, TYR_BF16));
    wh = tyr_keep_e(tyr_to_dtype_e(wd, TYR_BF16));
    bh = tyr_keep_e(tyr_to_dtype_e(bd, TYR_BF16));
  }
  tyr_requires_grad_e(xh, true);
  tyr_requires_grad_e(wh, true);
  tyr_requires_grad_e(bh, true);
  {
    TYR_SCOPE;
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_square_e(tyr_linear_e(xd, wd, bd)))), 0);
    assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_square_e(tyr_linear_e(xh, wh, bh)))), 0);
  }
  tyr_tensor *pairs[3][2] = {{xd, xh}, {wd, wh}, {bd, bh}};
  for (int p = 0; p < 3; p++) {
    tyr_tensor *gd = tyr_grad_e(pairs[p][0]), *gh = tyr_grad_e(pairs[p][1]);
    assert_non_null(gh);
    assert_int_equal(gh->dtype, TYR_BF16);
    int64_t n = tyr_numel(gd);
    for (int64_t i = 0; i < n; i++) {
      int64_t ix[2];
      unravel(i, gd->rank, gd->shape, ix);
      ASSERT_CLOSE(tyr_get_at(TYR_SITE, gh, ix), tyr_get_at(TYR_SITE, gd, ix), 0.1, 0.05);
    }
  }
  tyr_tensor *all[6] = {xd, wd, bd, xh, wh, bh};
  for (int i = 0; i < 6; i++) tyr_tensor_free(all[i]);
}

/* ---- typed forms ------------------------------------------------------------- */
static void test_typed_forms(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { Batch = 4, T = 3, In = 6, Out = 5 };
  tyr_T(Batch, In) x = tyr_randn(Batch, In);
  tyr_T(Out, In) w = tyr_randn(Out, In);
  tyr_T(Out) b = tyr_randn(Out);
  tyr_T(Batch, Out) y = tyr_linear(x, w);
  tyr_T(Batch, Out) yb = tyr_linear_bias(x, w, b);
  check_linear(tyr_erase(x), tyr_erase(w), NULL, tyr_erase(y), 1e-5, 1e-5);
  check_linear(tyr_erase(x), tyr_erase(w), tyr_erase(b), tyr_erase(yb), 1e-5, 1e-5);
  tyr_T(Batch, T, In) x3 = tyr_randn(Batch, T, In);
  __auto_type y3 = tyr_linear_bias(x3, w, b);
  _Static_assert(tyr_rank(y3) == 3 && tyr_dim(y3, 0) == Batch && tyr_dim(y3, 1) == T &&
                     tyr_dim(y3, 2) == Out,
                 "linear result type");
  tyr_T(In, Out) m = tyr_randn(In, Out);
  tyr_T(Batch, T, Out) z = tyr_matmul(x3, m); /* shared right operand */
  tyr_T(Batch, Out, T) zt = tyr_randn(Batch, Out, T);
  tyr_T(Batch, T, T) zz = tyr_matmul(z, zt); /* batched */
  check_matmul(tyr_erase(z), tyr_erase(zt), tyr_erase(zz), 1e-4, 1e-4);
  /* nested calls */
  tyr_T(Batch, In) back = tyr_matmul(tyr_linear(x, w), w);
  assert_non_null(back);
  /* run-time dims: the same code, checked at the call */
  /* volatile: at -O3 the optimizer would see through plain copies of
   * constants and rightly fail the build on the checks below */
  static volatile int vb = Batch, vi = In, vo = Out;
  int n = vb, in = vi, out = vo;
  tyr_T(n, in) xd = tyr_cast(tyr_erase(x), n, in);
  tyr_T(out, in) wd = tyr_cast(tyr_erase(w), out, in);
  tyr_T(n, out) yd = tyr_linear(xd, wd);
  ASSERT_CLOSE(tyr_get(yd, 1, 2), tyr_get(y, 1, 2), 1e-6, 0);
  tyr_T(in, out) wrong = tyr_randn(in, out);
  EXPECT_TYR_ERROR(tyr_linear(xd, wrong),
                   "tyr_linear: x is [4, 6] and w is [6, 5]: the weight must be [out, in]");
  tyr_T(out, n) bad = tyr_randn(out, n);
  EXPECT_TYR_ERROR(tyr_matmul(xd, bad),
                   "tyr_matmul: inner dimensions differ: a is [4, 6] and b is [5, 4]");
  /* a handle whose type lies about its tensor is caught at its next use */
  tyr_T(n, in) liar = (tyr_T(n, in))tyr_erase(tyr_zeros(In, Batch));
  EXPECT_TYR_ERROR(tyr_linear(liar, w),
                   "tyr_linear: x is declared [4, 6] but the tensor is [6, 4]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_matmul_2d),
      TYR_TEST(test_matmul_batched),
      TYR_TEST(test_matmul_views),
      TYR_TEST(test_matmul_f32_blocks),
      TYR_TEST(test_linear_values),
      TYR_TEST(test_linear_bias_epilogue),
      TYR_TEST(test_matmul_gradients),
      TYR_TEST(test_linear_gradients),
      TYR_TEST(test_linear_backward_values),
      TYR_TEST(test_errors),
      TYR_TEST(test_half_precision),
      TYR_TEST(test_typed_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
