/* Layout ops: values against naive index arithmetic, which ops are views,
 * gradients through views feeding other ops, cat/stack of many tensors,
 * split/chunk, tril/triu, errors naming both shapes, bf16, typed forms. */
#include <math.h>
#include <stdio.h>

#include "gradcheck.h"

/* element k (row-major) of t */
static double at(const tyr_tensor *t, int64_t k) {
  int64_t idx[TYR_MAX_RANK];
  for (int i = t->rank - 1; i >= 0; i--) {
    idx[i] = k % t->shape[i];
    k /= t->shape[i];
  }
  return tyr_get_at(TYR_SITE, t, idx);
}

/* an f64 tensor with element k = k + 1 (distinct values) */
static tyr_tensor *iota(int rank, const int64_t *shape) {
  tyr_tensor *t = tyr_empty_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, rank, shape);
  for (int64_t k = 0; k < tyr_numel(t); k++) ((double *)tyr_data_ptr(t))[k] = (double)k + 1;
  return t;
}
#define IOTA(...) iota(TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

static bool same_shape(const tyr_tensor *a, const tyr_tensor *b) {
  return a->rank == b->rank && !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->rank);
}

static bool shares_storage(const tyr_tensor *a, const tyr_tensor *b) {
  return a->storage == b->storage;
}

static void test_transpose_permute_contiguous(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = IOTA(2, 3, 4);
  tyr_tensor *t = tyr_transpose_e(x, 0, 2); /* [4, 3, 2] */
  assert_true(shares_storage(t, x));
  assert_int_equal(t->shape[0], 4);
  assert_int_equal(t->shape[2], 2);
  for (int64_t i = 0; i < 2; i++)
    for (int64_t j = 0; j < 3; j++)
      for (int64_t k = 0; k < 4; k++)
        ASSERT_CLOSE(tyr_get_e(t, k, j, i), tyr_get_e(x, i, j, k), 0, 0);
  /* a view: writing through it changes x */
  tyr_set_e(t, -5.0, 3, 1, 0);
  ASSERT_CLOSE(tyr_get_e(x, 0, 1, 3), -5.0, 0, 0);
  tyr_set_e(t, 8.0, 3, 1, 0);
  tyr_tensor *tn = tyr_transpose_e(x, -1, -3);
  assert_true(same_shape(tn, t));
  tyr_tensor *p = tyr_permute_e(x, 2, 0, 1); /* [4, 2, 3] */
  assert_true(shares_storage(p, x));
  for (int64_t i = 0; i < 2; i++)
    for (int64_t j = 0; j < 3; j++)
      for (int64_t k = 0; k < 4; k++)
        ASSERT_CLOSE(tyr_get_e(p, k, i, j), tyr_get_e(x, i, j, k), 0, 0);
  tyr_tensor *pn = tyr_permute_at(TYR_SITE, x, (const int[]){-1, 0, 1});
  assert_true(same_shape(pn, p));
  /* contiguous: a copy of a strided view, a view of a contiguous tensor */
  tyr_tensor *c = tyr_contiguous_e(p);
  assert_true(tyr_is_contiguous(c));
  assert_false(shares_storage(c, x));
  for (int64_t k = 0; k < 24; k++) ASSERT_CLOSE(at(c, k), at(p, k), 0, 0);
  tyr_tensor *cc = tyr_contiguous_e(x);
  assert_true(shares_storage(cc, x));
  EXPECT_TYR_ERROR(tyr_transpose_e(x, 0, 3),
                   "tyr_transpose: dim 3 is out of range for a tensor of shape [2, 3, 4]");
  EXPECT_TYR_ERROR(tyr_permute_e(x, 0, 1), "tyr_permute: the permutation has 2 entries, but x "
                                           "[2, 3, 4] has rank 3");
  EXPECT_TYR_ERROR(tyr_permute_e(x, 0, 2, 0),
                   "tyr_permute: (0, 2, 0) is not a permutation of the dims of x [2, 3, 4]");
  EXPECT_TYR_ERROR(tyr_permute_e(x, 0, 1, 3), "tyr_permute: (0, 1, 3) is not a permutation");
  EXPECT_TYR_ERROR(tyr_contiguous_e(NULL), "tyr_contiguous: x is NULL");
}

static void test_squeeze_unsqueeze_flatten(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = IOTA(2, 1, 3);
  tyr_tensor *sq = tyr_squeeze_e(x, 1);
  assert_int_equal(sq->rank, 2);
  assert_true(shares_storage(sq, x));
  for (int64_t k = 0; k < 6; k++) ASSERT_CLOSE(at(sq, k), k + 1, 0, 0);
  EXPECT_TYR_ERROR(tyr_squeeze_e(x, 2), "tyr_squeeze: dim 2 of x [2, 1, 3] has size 3, not 1");
  EXPECT_TYR_ERROR(tyr_squeeze_e(x, 3), "tyr_squeeze: dim 3 is out of range");
  for (int d = -4; d <= 3; d++) {
    tyr_tensor *u = tyr_unsqueeze_e(x, d);
    int dn = d < 0 ? d + 4 : d;
    assert_int_equal(u->rank, 4);
    assert_int_equal(u->shape[dn], 1);
    for (int64_t k = 0; k < 6; k++) ASSERT_CLOSE(at(u, k), k + 1, 0, 0);
  }
  /* unsqueeze of a strided view keeps it a view with the right values */
  tyr_tensor *tv = tyr_transpose_e(x, 0, 2);
  tyr_tensor *tu = tyr_unsqueeze_e(tv, 1);
  assert_true(shares_storage(tu, x));
  for (int64_t k = 0; k < 6; k++) ASSERT_CLOSE(at(tu, k), at(tv, k), 0, 0);
  EXPECT_TYR_ERROR(tyr_unsqueeze_e(x, 4),
                   "tyr_unsqueeze: dim 4 is out of range for inserting a dim into [2, 1, 3]");
  tyr_tensor *r6 = tyr_zeros_e(1, 1, 1, 1, 1, 1);
  EXPECT_TYR_ERROR(tyr_unsqueeze_e(r6, 0), "tyr_unsqueeze: x [1, 1, 1, 1, 1, 1] already has the "
                                           "largest rank, 6");
  /* flatten: a view of contiguous dims, a copy otherwise */
  tyr_tensor *y = IOTA(2, 3, 4, 5);
  tyr_tensor *f = tyr_flatten_e(y, 1, 2);
  assert_int_equal(f->rank, 3);
  assert_int_equal(f->shape[1], 12);
  assert_true(shares_storage(f, y));
  for (int64_t k = 0; k < 120; k++) ASSERT_CLOSE(at(f, k), k + 1, 0, 0);
  tyr_tensor *fa = tyr_flatten_e(y, 0, -1);
  assert_int_equal(fa->rank, 1);
  assert_int_equal(fa->shape[0], 120);
  tyr_tensor *yt = tyr_transpose_e(y, 1, 3); /* [2, 5, 4, 3] */
  tyr_tensor *fv = tyr_flatten_e(yt, 0, 0);  /* nothing merged: a view */
  assert_true(shares_storage(fv, y));
  tyr_tensor *ft = tyr_flatten_e(yt, 1, 3); /* [2, 60]: needs a copy */
  assert_false(shares_storage(ft, y));
  for (int64_t k = 0; k < 120; k++) ASSERT_CLOSE(at(ft, k), at(yt, k), 0, 0);
  /* merging across a size-1 dim of odd stride is still a view */
  tyr_tensor *z = IOTA(3, 4);
  tyr_tensor *zu = tyr_unsqueeze_e(z, 1); /* [3, 1, 4] */
  tyr_tensor *zf = tyr_flatten_e(zu, 0, 2);
  assert_true(shares_storage(zf, z));
  for (int64_t k = 0; k < 12; k++) ASSERT_CLOSE(at(zf, k), k + 1, 0, 0);
  /* a column of a transposed matrix merged with a size-1 dim: strided view */
  tyr_tensor *zc = tyr_flatten_e(tyr_unsqueeze_e(tyr_transpose_e(z, 0, 1), 2), 1, 2); /* [4, 3] */
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j < 3; j++) ASSERT_CLOSE(tyr_get_e(zc, i, j), tyr_get_e(z, j, i), 0, 0);
  tyr_tensor *s0 = tyr_full_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 0, NULL, 7.0);
  assert_int_equal(s0->rank, 0);
  tyr_tensor *f0 = tyr_flatten_e(s0, 0, -1);
  assert_int_equal(f0->rank, 1);
  assert_int_equal(f0->shape[0], 1);
  EXPECT_TYR_ERROR(tyr_flatten_e(y, 2, 1), "tyr_flatten: start dim 2 comes after end dim 1 in x "
                                           "[2, 3, 4, 5]");
  EXPECT_TYR_ERROR(tyr_flatten_e(y, 0, 4), "tyr_flatten: dim 4 is out of range");
  EXPECT_TYR_ERROR(tyr_flatten_e(s0, 1, 1), "tyr_flatten: start 1 and end 1 must be 0 or -1");
}

static void test_narrow_split_chunk(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = IOTA(3, 7);
  tyr_tensor *n = tyr_narrow_e(x, 1, 2, 4);
  assert_true(shares_storage(n, x));
  assert_int_equal(n->shape[1], 4);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++) ASSERT_CLOSE(tyr_get_e(n, i, j), tyr_get_e(x, i, j + 2), 0, 0);
  tyr_tensor *e = tyr_narrow_e(x, 0, 3, 0);
  assert_int_equal(e->shape[0], 0);
  EXPECT_TYR_ERROR(tyr_narrow_e(x, 1, 5, 3),
                   "tyr_narrow: start 5 and length 3 do not fit in dim 1 of x [3, 7] (size 7)");
  EXPECT_TYR_ERROR(tyr_narrow_e(x, -1, -1, 2), "tyr_narrow: start -1 and length 2 do not fit");
  EXPECT_TYR_ERROR(tyr_narrow_e(x, 2, 0, 1), "tyr_narrow: dim 2 is out of range");
  /* split: sizes 3, 3, 1 */
  tyr_tensor *p[4] = {0};
  assert_int_equal(tyr_split_e(x, 3, -1, p, 4), 3);
  int64_t want[3] = {3, 3, 1};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(p[k]->shape[1], want[k]);
    assert_true(shares_storage(p[k], x));
    for (int64_t i = 0; i < 3; i++)
      for (int64_t j = 0; j < want[k]; j++)
        ASSERT_CLOSE(tyr_get_e(p[k], i, j), tyr_get_e(x, i, 3 * k + j), 0, 0);
  }
  assert_null(p[3]);
  tyr_tensor *q[2] = {0};
  EXPECT_TYR_ERROR(tyr_split_e(x, 2, 1, q, 2),
                   "tyr_split: dim 1 of x [3, 7] splits into 4 pieces of 2, but out holds 2");
  assert_null(q[0]); /* nothing stored */
  EXPECT_TYR_ERROR(tyr_split_e(x, 0, 1, q, 2), "tyr_split: size must be positive, got 0");
  EXPECT_TYR_ERROR(tyr_split_e(x, 1, 1, NULL, 2), "tyr_split: out is NULL");
  /* chunk: 7 in 4 chunks is 2, 2, 2, 1; 7 in 5 chunks is 2, 2, 2, 1 (four) */
  tyr_tensor *c[5] = {0};
  assert_int_equal(tyr_chunk_e(x, 4, 1, c), 4);
  assert_int_equal(c[3]->shape[1], 1);
  assert_int_equal(tyr_chunk_e(x, 5, 1, c), 4);
  assert_int_equal(tyr_chunk_e(x, 1, 0, c), 1);
  assert_int_equal(c[0]->shape[0], 3);
  EXPECT_TYR_ERROR(tyr_chunk_e(x, 0, 1, c), "tyr_chunk: chunks must be positive, got 0");
  /* an empty dim: one empty piece */
  tyr_tensor *z = tyr_zeros_e(0, 2);
  assert_int_equal(tyr_split_e(z, 4, 0, p, 4), 1);
  assert_int_equal(p[0]->shape[0], 0);
  assert_int_equal(tyr_chunk_e(z, 3, 0, c), 1);
}

static void test_cat_stack(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *a = IOTA(2, 3), *b = tyr_mul_scalar_e(IOTA(2, 2), -1.0);
  tyr_tensor *bt = tyr_transpose_e(tyr_mul_scalar_e(IOTA(3, 2), 10.0), 0, 1); /* strided [2, 3] */
  tyr_tensor *c1 = tyr_cat_e(3, ((tyr_tensor *[]){a, b, a}), 1);              /* [2, 8] */
  assert_int_equal(c1->shape[1], 8);
  for (int64_t i = 0; i < 2; i++)
    for (int64_t j = 0; j < 8; j++) {
      double w = j < 3   ? tyr_get_e(a, i, j)
                 : j < 5 ? tyr_get_e(b, i, j - 3)
                         : tyr_get_e(a, i, j - 5);
      ASSERT_CLOSE(tyr_get_e(c1, i, j), w, 0, 0);
    }
  tyr_tensor *c0 = tyr_cat_e(2, ((tyr_tensor *[]){a, bt}), -2); /* [4, 3] */
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j < 3; j++)
      ASSERT_CLOSE(tyr_get_e(c0, i, j), i < 2 ? tyr_get_e(a, i, j) : tyr_get_e(bt, i - 2, j), 0, 0);
  tyr_tensor *one = tyr_cat_e(1, &a, 0);
  assert_false(shares_storage(one, a));
  for (int64_t k = 0; k < 6; k++) ASSERT_CLOSE(at(one, k), at(a, k), 0, 0);
  /* stack along each position */
  for (int d = -3; d <= 2; d++) {
    tyr_tensor *st = tyr_stack_e(3, ((tyr_tensor *[]){a, bt, a}), d);
    int dn = d < 0 ? d + 3 : d;
    assert_int_equal(st->rank, 3);
    assert_int_equal(st->shape[dn], 3);
    tyr_tensor *src[3] = {a, bt, a};
    for (int64_t s = 0; s < 3; s++)
      for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 3; j++) {
          int64_t idx[3], o[2] = {i, j};
          for (int q = 0, r = 0; q < 3; q++) idx[q] = q == dn ? s : o[r++];
          ASSERT_CLOSE(tyr_get_e(st, idx[0], idx[1], idx[2]), tyr_get_e(src[s], i, j), 0, 0);
        }
  }
  /* errors name both shapes */
  EXPECT_TYR_ERROR(tyr_cat_e(2, ((tyr_tensor *[]){a, b}), 0),
                   "tyr_cat: xs[1] is [2, 2] and xs[0] is [2, 3]: they must agree in every dim but "
                   "dim 0");
  tyr_tensor *r3 = tyr_zeros_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 3, (int64_t[]){2, 3, 1});
  EXPECT_TYR_ERROR(tyr_cat_e(2, ((tyr_tensor *[]){a, r3}), 0),
                   "tyr_cat: xs[1] is [2, 3, 1] and xs[0] is [2, 3]");
  tyr_tensor *f32 = tyr_zeros_e(2, 3);
  EXPECT_TYR_ERROR(tyr_cat_e(2, ((tyr_tensor *[]){a, f32}), 0), "tyr_cat: xs[1] is f32 but xs[0] "
                                                                "is f64");
  EXPECT_TYR_ERROR(tyr_cat_e(2, ((tyr_tensor *[]){a, a}), 2),
                   "tyr_cat: dim 2 is out of range for a "
                   "tensor of shape [2, 3]");
  EXPECT_TYR_ERROR(tyr_cat_e(0, ((tyr_tensor *[]){a}), 0), "tyr_cat: no tensors to join (n = 0)");
  EXPECT_TYR_ERROR(tyr_cat_e(2, ((tyr_tensor *[]){a, NULL}), 0), "tyr_cat: xs[1] is NULL");
  EXPECT_TYR_ERROR(tyr_stack_e(2, ((tyr_tensor *[]){a, b}), 0),
                   "tyr_stack: xs[1] is [2, 2] and xs[0] is [2, 3]: stacked tensors must have one "
                   "shape");
  EXPECT_TYR_ERROR(tyr_stack_e(2, ((tyr_tensor *[]){a, a}), 3),
                   "tyr_stack: dim 3 is out of range for inserting a dim into [2, 3] (-3..2)");
}

static void test_tril_triu(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = IOTA(2, 3, 4);
  for (int64_t k = -3; k <= 4; k++) {
    tyr_tensor *lo = tyr_tril_e(x, k), *up = tyr_triu_e(x, k);
    for (int64_t b = 0; b < 2; b++)
      for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++) {
          double v = tyr_get_e(x, b, i, j);
          ASSERT_CLOSE(tyr_get_e(lo, b, i, j), j - i <= k ? v : 0, 0, 0);
          ASSERT_CLOSE(tyr_get_e(up, b, i, j), j - i >= k ? v : 0, 0, 0);
        }
  }
  /* strided input and integer dtype */
  tyr_tensor *xt = tyr_transpose_e(x, 1, 2); /* [2, 4, 3] */
  tyr_tensor *lt = tyr_tril_e(xt, 0);
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j < 3; j++)
      ASSERT_CLOSE(tyr_get_e(lt, 1, i, j), j <= i ? tyr_get_e(x, 1, j, i) : 0, 0, 0);
  tyr_tensor *xi = tyr_to_dtype_e(x, TYR_I32);
  tyr_tensor *ui = tyr_triu_e(xi, 1);
  assert_int_equal(ui->dtype, TYR_I32);
  ASSERT_CLOSE(tyr_get_e(ui, 0, 0, 1), 2, 0, 0);
  ASSERT_CLOSE(tyr_get_e(ui, 0, 1, 1), 0, 0, 0);
  tyr_tensor *v = IOTA(5);
  EXPECT_TYR_ERROR(tyr_tril_e(v, 0), "tyr_tril: x must have rank 2 or more, but is [5]");
  EXPECT_TYR_ERROR(tyr_triu_e(NULL, 0), "tyr_triu: x is NULL");
}

/* ---- gradients through views and joins ----------------------------------- */
static tyr_tensor *g_w; /* a fixed weight, so that a view's gradient has structure */

static tyr_tensor *call_transpose(tyr_tensor **in, void *ctx) {
  (void)ctx; /* transposed view feeding mul and a reduction */
  return tyr_sum_dim_e(tyr_mul_e(tyr_transpose_e(in[0], 0, 2), g_w), 1, false);
}
static tyr_tensor *call_permute(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *p = tyr_permute_e(in[0], 2, 0, 1); /* [4, 2, 3] */
  return tyr_mul_e(tyr_exp_e(p), tyr_permute_e(in[1], 2, 0, 1));
}
static tyr_tensor *call_contiguous(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_square_e(tyr_contiguous_e(tyr_transpose_e(in[0], 1, 2)));
}
static tyr_tensor *call_squeeze(tyr_tensor **in, void *ctx) {
  (void)ctx; /* [2, 3, 4] -> [2, 1, 3, 4] -> sum keepdim over 2 -> [2, 1, 1, 4] -> [2, 1, 4] */
  tyr_tensor *u = tyr_unsqueeze_e(in[0], 1);
  tyr_tensor *m = tyr_max_dim_e(u, 2, true);
  return tyr_mul_e(tyr_squeeze_e(m, 1), tyr_squeeze_e(tyr_narrow_e(u, 2, 1, 1), 2));
}
static tyr_tensor *call_flatten(tyr_tensor **in, void *ctx) {
  (void)ctx; /* a non-contiguous flatten (copy) and a view flatten */
  tyr_tensor *a = tyr_flatten_e(tyr_transpose_e(in[0], 0, 1), 0, 1); /* [6, 4] */
  tyr_tensor *b = tyr_flatten_e(in[0], 0, 1);
  return tyr_mul_e(tyr_tanh_e(a), b);
}
static tyr_tensor *call_narrow(tyr_tensor **in, void *ctx) {
  (void)ctx; /* overlapping narrowed views feeding other ops, one of a transposed view */
  tyr_tensor *a = tyr_narrow_e(in[0], 2, 0, 3);
  tyr_tensor *b = tyr_narrow_e(in[0], 2, 1, 3);
  tyr_tensor *t = tyr_narrow_e(tyr_transpose_e(in[0], 1, 2), 1, 1, 3); /* [2, 3, 3] */
  return tyr_add_e(tyr_mul_e(a, b), tyr_transpose_e(t, 1, 2));
}
static tyr_tensor *call_split(tyr_tensor **in, void *ctx) {
  (void)ctx;
  tyr_tensor *p[3];
  assert_int_equal(tyr_split_e(in[0], 2, 2, p, 3), 2);
  tyr_tensor *c[3];
  assert_int_equal(tyr_chunk_e(in[0], 3, 1, c), 3);
  tyr_tensor *y = tyr_mul_e(p[0], tyr_sigmoid_e(p[1]));                 /* [2, 3, 2] */
  tyr_tensor *z = tyr_mul_e(c[0], tyr_add_e(c[1], tyr_square_e(c[2]))); /* [2, 1, 4] */
  return tyr_add_e(tyr_sum_e(y), tyr_sum_e(z));
}
static tyr_tensor *call_cat(tyr_tensor **in, void *ctx) {
  int n = *(int *)ctx; /* n pieces, some transposed views, some repeated */
  tyr_tensor *xs[9];
  for (int k = 0; k < n; k++) {
    tyr_tensor *v = in[k % 2];
    xs[k] =
        k % 3 == 1 ? tyr_transpose_e(tyr_transpose_e(v, 0, 1), 0, 1) : tyr_mul_scalar_e(v, k + 1);
  }
  return tyr_tanh_e(tyr_cat_e(n, xs, 1));
}
static tyr_tensor *call_stack(tyr_tensor **in, void *ctx) {
  int n = *(int *)ctx;
  tyr_tensor *xs[9];
  for (int k = 0; k < n; k++) xs[k] = tyr_mul_scalar_e(tyr_transpose_e(in[k % 2], 1, 2), k - 2.5);
  return tyr_square_e(tyr_stack_e(n, xs, 1));
}
static tyr_tensor *call_tri(tyr_tensor **in, void *ctx) {
  int k = *(int *)ctx;
  return tyr_mul_e(tyr_tril_e(tyr_exp_e(in[0]), k), tyr_triu_e(in[1], -k));
}

static void test_gradients(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 2, 3, 4), *y = TYR_TEST_LEAF(-1, 1, 2, 3, 4);
  tyr_scope_begin();
  g_w = tyr_rand_at(TYR_SITE, TYR_F64, TYR_DEVICE_CPU, 3, (int64_t[]){4, 3, 2}, 0.5, 1.5);
  tyr_tensor *in[2] = {x, y};
  tyr_gradcheck("transpose", call_transpose, NULL, 1, in, 1e-6, 1e-6);
  tyr_gradcheck("permute", call_permute, NULL, 2, in, 1e-6, 1e-6);
  tyr_gradcheck("contiguous", call_contiguous, NULL, 1, in, 1e-6, 1e-6);
  tyr_gradcheck("squeeze/unsqueeze", call_squeeze, NULL, 1, in, 1e-6, 1e-6);
  tyr_gradcheck("flatten", call_flatten, NULL, 1, in, 1e-6, 1e-6);
  tyr_gradcheck("narrow", call_narrow, NULL, 1, in, 1e-6, 1e-6);
  tyr_gradcheck("split/chunk", call_split, NULL, 1, in, 1e-6, 1e-6);
  for (int n = 1; n <= 9; n++) { /* more than a graph node's inputs: chained nodes */
    char name[32];
    snprintf(name, sizeof name, "cat of %d", n);
    tyr_gradcheck(name, call_cat, &n, n > 1 ? 2 : 1, in, 1e-6, 1e-6);
    snprintf(name, sizeof name, "stack of %d", n);
    tyr_gradcheck(name, call_stack, &n, n > 1 ? 2 : 1, in, 1e-6, 1e-6);
  }
  for (int k = -2; k <= 2; k++) tyr_gradcheck("tril/triu", call_tri, &k, 2, in, 1e-6, 1e-6);
  tyr_scope_end();
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

/* Results kept past the end of the scope that made them still carry a
 * working graph (the temporaries the graph needs are owned by it). */
static void test_graph_outlives_scope(void **state) {
  (void)state;
  tyr_tensor *x = TYR_TEST_LEAF(-1, 1, 2, 3), *y = TYR_TEST_LEAF(-1, 1, 2, 3);
  tyr_tensor *out;
  {
    TYR_SCOPE;
    tyr_tensor *xs[7] = {x, y, x, y, x, y, tyr_transpose_e(tyr_transpose_e(x, 0, 1), 1, 0)};
    tyr_tensor *s1 = tyr_keep_e(tyr_sum_e(tyr_stack_e(7, xs, 0)));
    tyr_tensor *o2 = tyr_cat_e(7, xs, 1);
    out = tyr_keep_e(tyr_add_e(s1, tyr_sum_e(tyr_mul_e(o2, o2))));
    tyr_tensor_free(s1); /* the graph holds it */
  }
  assert_int_equal(tyr_backward_e(out), 0);
  /* d/dx: stack contributes 4 (x appears 4 times), cat of squares 2 x per use */
  for (int64_t i = 0; i < 2; i++)
    for (int64_t j = 0; j < 3; j++) {
      ASSERT_CLOSE(tyr_get_e(tyr_grad_e(x), i, j), 4 + 8 * tyr_get_e(x, i, j), 1e-12, 1e-12);
      ASSERT_CLOSE(tyr_get_e(tyr_grad_e(y), i, j), 3 + 6 * tyr_get_e(y, i, j), 1e-12, 1e-12);
    }
  tyr_tensor_free(out);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

static void test_half_precision(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *x = tyr_randn_at(TYR_SITE, TYR_BF16, TYR_DEVICE_CPU, 2, (int64_t[]){3, 4}, 0, 1);
  tyr_tensor *y = tyr_randn_at(TYR_SITE, TYR_BF16, TYR_DEVICE_CPU, 2, (int64_t[]){4, 3}, 0, 1);
  tyr_tensor *c = tyr_cat_e(2, ((tyr_tensor *[]){x, tyr_transpose_e(y, 0, 1)}), 0); /* [6, 4] */
  assert_int_equal(c->dtype, TYR_BF16);
  for (int64_t i = 0; i < 6; i++)
    for (int64_t j = 0; j < 4; j++)
      ASSERT_CLOSE(tyr_get_e(c, i, j), i < 3 ? tyr_get_e(x, i, j) : tyr_get_e(y, j, i - 3), 0, 0);
  tyr_tensor *t = tyr_triu_e(c, 1);
  assert_int_equal(t->dtype, TYR_BF16);
  for (int64_t i = 0; i < 6; i++)
    for (int64_t j = 0; j < 4; j++)
      ASSERT_CLOSE(tyr_get_e(t, i, j), j - i >= 1 ? tyr_get_e(c, i, j) : 0, 0, 0);
  /* gradient into a bf16 leaf through narrow + stack */
  tyr_tensor *leaf = tyr_keep_e(tyr_clone_e(x));
  tyr_requires_grad_e(leaf, true);
  tyr_tensor *s = tyr_stack_e(
      2, ((tyr_tensor *[]){tyr_narrow_e(leaf, 1, 1, 2), tyr_narrow_e(leaf, 1, 2, 2)}), 0);
  assert_int_equal(tyr_backward_e(tyr_sum_e(s)), 0);
  double want[4] = {0, 1, 2, 1};
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++) ASSERT_CLOSE(tyr_get_e(tyr_grad_e(leaf), i, j), want[j], 0, 0);
  assert_int_equal(tyr_grad_e(leaf)->dtype, TYR_BF16);
  tyr_tensor_free(leaf);
}

static void test_typed_forms(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { B = 2, T = 3, C = 6 };
  tyr_T(B, T, C) x = tyr_randn(B, T, C);
  tyr_T(C, T, B) t = tyr_transpose(x, 0, 2);
  tyr_T(B, C, T) t2 = tyr_transpose(x, -1, -2);
  tyr_T(T, C, B) p = tyr_permute(x, 1, 2, 0);
  tyr_T(B, T, C) c = tyr_contiguous(tyr_transpose(t, 0, 2));
  tyr_T(B, 1, T, C) u = tyr_unsqueeze(x, 1);
  tyr_T(B, T, C, 1) ue = tyr_unsqueeze(x, -1);
  tyr_T(B, T, C) sq = tyr_squeeze(u, 1);
  tyr_T(B, T * C) f = tyr_flatten(x, 1, 2);
  tyr_T(B * T * C) fa = tyr_flatten(x, 0, -1);
  tyr_T(B, T, 2) nw = tyr_narrow(x, 2, 4, 2);
  tyr_T(B, T, C + 2) ct = tyr_cat2(x, nw, 2);
  tyr_T(B, T, C + 4) ct3 = tyr_cat3(nw, x, nw, -1);
  tyr_T(B, 2, T, C) st = tyr_stack2(x, c, 1);
  tyr_T(B, T, C, 3) st3 = tyr_stack3(x, c, sq, -1);
  tyr_T(B, T, C) lo = tyr_tril(x, 0);
  tyr_T(B, T, C) up = tyr_triu(x, -1);
  tyr_T(B, T, C / 2) h0, h1;
  assert_int_equal(tyr_chunk2(x, -1, &h0, &h1), 0);
  tyr_T(B, T, C / 3) q, k, v;
  assert_int_equal(tyr_chunk3(x, 2, &q, &k, &v), 0);
  _Static_assert(tyr_rank(t) == 3 && tyr_dim(t, 0) == C && tyr_dim(t, 2) == B, "transpose type");
  _Static_assert(tyr_dim(p, 0) == T && tyr_dim(p, 1) == C && tyr_dim(p, 2) == B, "permute type");
  _Static_assert(tyr_rank(f) == 2 && tyr_dim(f, 1) == T * C, "flatten type");
  _Static_assert(tyr_dim(ct3, 2) == C + 4 && tyr_dim(st3, 3) == 3, "cat/stack types");
  ASSERT_CLOSE(tyr_get(t2, 1, 5, 2), tyr_get(x, 1, 2, 5), 0, 0);
  ASSERT_CLOSE(tyr_get(p, 2, 5, 1), tyr_get(x, 1, 2, 5), 0, 0);
  ASSERT_CLOSE(tyr_get(c, 1, 2, 3), tyr_get(x, 1, 2, 3), 0, 0);
  ASSERT_CLOSE(tyr_get(ue, 1, 2, 3, 0), tyr_get(x, 1, 2, 3), 0, 0);
  ASSERT_CLOSE(tyr_get(fa, 17), tyr_get(x, 0, 2, 5), 0, 0);
  ASSERT_CLOSE(tyr_get(f, 1, 7), tyr_get(x, 1, 1, 1), 0, 0);
  ASSERT_CLOSE(tyr_get(ct, 1, 2, 7), tyr_get(x, 1, 2, 5), 0, 0);
  ASSERT_CLOSE(tyr_get(st, 1, 1, 2, 3), tyr_get(x, 1, 2, 3), 0, 0);
  ASSERT_CLOSE(tyr_get(lo, 0, 1, 2), 0, 0, 0);
  ASSERT_CLOSE(tyr_get(up, 0, 2, 1), tyr_get(x, 0, 2, 1), 0, 0);
  ASSERT_CLOSE(tyr_get(h1, 1, 2, 0), tyr_get(x, 1, 2, 3), 0, 0);
  ASSERT_CLOSE(tyr_get(v, 1, 2, 1), tyr_get(x, 1, 2, 5), 0, 0);
  ASSERT_CLOSE(tyr_get(k, 0, 0, 0), tyr_get(x, 0, 0, 2), 0, 0);
  (void)q;
  /* run-time dims: the same code, checked at run time */
  int n = T, m = 4;
  tyr_T(B, n, C) xd = tyr_cast(tyr_erase(x), B, n, C);
  tyr_T(C, n, B) td = tyr_transpose(xd, 0, 2);
  tyr_T(B, m, C) nd = tyr_narrow(tyr_cat2(xd, xd, 1), 1, 1, m);
  ASSERT_CLOSE(tyr_get(td, 5, 2, 1), tyr_get(x, 1, 2, 5), 0, 0);
  ASSERT_CLOSE(tyr_get(nd, 0, 3, 0), tyr_get(x, 0, 1, 0), 0, 0);
  int big = 5;
  EXPECT_TYR_ERROR(tyr_narrow(xd, 1, 1, big),
                   "tyr_narrow: start 1 and length 5 do not fit in dim 1 of x [2, 3, 6] (size 3)");
  int five = 5;
  tyr_T(B, five) odd = tyr_zeros(B, five);
  tyr_T(B, five / 2) o0, o1;
  EXPECT_TYR_ERROR(tyr_chunk2(odd, 1, &o0, &o1),
                   "tyr_chunk2: dim 1 of x [2, 5] has size 5, which does not divide into 2 equal");
  assert_null(o0);
  tyr_T(B, n, 1) notone = (tyr_T(B, n, 1))tyr_erase(tyr_zeros(B, n, 1));
  tyr_T(B, n) sqd = tyr_squeeze(notone, 2);
  assert_non_null(sqd);
  EXPECT_TYR_ERROR(tyr_squeeze(xd, 1), "tyr_squeeze: dim 1 of x [2, 3, 6] has size 3, not 1");
  tyr_T(B, n, C) other = tyr_zeros(B, n, C);
  int wide = C + 1;
  tyr_T(B, n, wide) w = tyr_zeros(B, n, wide);
  EXPECT_TYR_ERROR(tyr_cat2(other, w, 1), "tyr_cat: xs[1] is [2, 3, 7] and xs[0] is [2, 3, 6]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_transpose_permute_contiguous),
      TYR_TEST(test_squeeze_unsqueeze_flatten),
      TYR_TEST(test_narrow_split_chunk),
      TYR_TEST(test_cat_stack),
      TYR_TEST(test_tril_triu),
      TYR_TEST(test_gradients),
      TYR_TEST(test_graph_outlives_scope),
      TYR_TEST(test_half_precision),
      TYR_TEST(test_typed_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
