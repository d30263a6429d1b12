/* In-memory datasets and batch iterators: order, partial and dropped last
 * batches, shuffling (deterministic, a permutation per epoch), exact resume
 * from a saved position, the typed form, and errors. */
#include <stdlib.h>

#include "testutil.h"
#include "tyr/tyr.h"
#include "tyr/dataset.h"

enum { N = 10, F = 3 };

/* x [N, F] with x[i][j] = 10 i + j (f32), y [N] = i (i64) */
static void make(tyr_tensor **x, tyr_tensor **y) {
  float xv[N * F];
  int64_t yv[N];
  for (int i = 0; i < N; i++) {
    yv[i] = i;
    for (int j = 0; j < F; j++) xv[i * F + j] = (float)(10 * i + j);
  }
  *x = tyr_from_host_at(TYR_SITE, xv, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){N, F});
  *y = tyr_from_host_at(TYR_SITE, yv, TYR_I64, TYR_DEVICE_CPU, 1, (int64_t[]){N});
}

/* Reads one epoch; ids[] gets the example of each row, returns the rows. */
static int epoch_ids(tyr_batch_iter *it, int64_t *ids, int64_t *sizes, int *nb) {
  int rows = 0;
  *nb = 0;
  tyr_tensor *out[2];
  for (int64_t b; (b = tyr_batch_next_e(it, out)) > 0;) {
    sizes[(*nb)++] = b;
    assert_int_equal(out[0]->shape[0], b);
    assert_int_equal(out[0]->shape[1], F);
    assert_int_equal(out[1]->shape[0], b);
    for (int64_t i = 0; i < b; i++) {
      int64_t id = (int64_t)tyr_get_e(out[1], i);
      for (int j = 0; j < F; j++) assert_true(tyr_get_e(out[0], i, j) == (double)(10 * id + j));
      ids[rows++] = id;
    }
    tyr_tensor_free(out[0]);
    tyr_tensor_free(out[1]);
  }
  assert_null(out[0]);
  return rows;
}

static void test_sequential_keep_and_drop(void **state) {
  (void)state;
  tyr_tensor *x, *y;
  make(&x, &y);
  tyr_dataset *ds = tyr_dataset_new(x, y);
  tyr_tensor_free(x); /* the dataset keeps its own references */
  tyr_tensor_free(y);
  assert_int_equal(tyr_dataset_len(ds), N);
  assert_int_equal(tyr_dataset_count(ds), 2);
  int64_t ids[N], sizes[N];
  int nb;
  tyr_batch_iter *it = tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = 4});
  assert_int_equal(tyr_batch_iter_batches(it), 3);
  assert_int_equal(epoch_ids(it, ids, sizes, &nb), N);
  assert_int_equal(nb, 3);
  assert_int_equal(sizes[2], 2);
  for (int i = 0; i < N; i++) assert_int_equal(ids[i], i);
  assert_int_equal(tyr_batch_iter_epoch(it), 1);
  tyr_batch_iter_free(it);
  it = tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = 4, .drop_last = true});
  assert_int_equal(tyr_batch_iter_batches(it), 2);
  assert_int_equal(epoch_ids(it, ids, sizes, &nb), 8);
  assert_int_equal(nb, 2);
  assert_int_equal(epoch_ids(it, ids, sizes, &nb), 8); /* the next epoch */
  assert_int_equal(tyr_batch_iter_epoch(it), 2);
  tyr_batch_iter_free(it);
  tyr_dataset_free(ds);
}

static void test_shuffle(void **state) {
  (void)state;
  tyr_tensor *x, *y;
  make(&x, &y);
  tyr_dataset *ds = tyr_dataset_new(x, y);
  tyr_batch_opts o = {.batch_size = 3, .shuffle = true, .seed = 42};
  tyr_batch_iter *a = tyr_batch_iter_new(ds, &o), *b = tyr_batch_iter_new(ds, &o);
  int64_t ia[2][N], ib[N], sizes[N];
  int nb;
  for (int e = 0; e < 2; e++) {
    assert_int_equal(epoch_ids(a, ia[e], sizes, &nb), N);
    assert_int_equal(nb, 4);
    int seen[N] = {0};
    for (int i = 0; i < N; i++) seen[ia[e][i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1); /* a permutation */
  }
  assert_memory_not_equal(ia[0], ia[1], sizeof ia[0]); /* a new one each epoch */
  bool identity = true;
  for (int i = 0; i < N; i++) identity &= ia[0][i] == i;
  assert_false(identity);
  /* the same seed: the same batches, whatever the global generator does */
  tyr_manual_seed(7);
  assert_int_equal(epoch_ids(b, ib, sizes, &nb), N);
  assert_memory_equal(ib, ia[0], sizeof ib);
  tyr_batch_iter_free(b);
  o.seed = 43;
  b = tyr_batch_iter_new(ds, &o);
  assert_int_equal(epoch_ids(b, ib, sizes, &nb), N);
  assert_memory_not_equal(ib, ia[0], sizeof ib);
  tyr_batch_iter_free(b);
  tyr_batch_iter_free(a);
  tyr_dataset_free(ds);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

static void test_resume(void **state) {
  (void)state;
  tyr_tensor *x, *y;
  make(&x, &y);
  tyr_dataset *ds = tyr_dataset_new(x, y);
  tyr_batch_opts o = {.batch_size = 4, .shuffle = true, .seed = 5};
  tyr_batch_iter *a = tyr_batch_iter_new(ds, &o);
  tyr_tensor *out[2];
  int64_t ids[N], sizes[N];
  int nb;
  epoch_ids(a, ids, sizes, &nb);
  tyr_batch_next_e(a, out); /* one batch into epoch 1 */
  tyr_tensor_free(out[0]);
  tyr_tensor_free(out[1]);
  tyr_batch_state st = tyr_batch_iter_get_state(a);
  assert_int_equal(st.epoch, 1);
  assert_int_equal(st.pos, 4);
  /* a fresh iterator set to the state gives the same rest of the epoch */
  tyr_batch_iter *b = tyr_batch_iter_new(ds, &o);
  assert_int_equal(tyr_batch_iter_set_state(b, st), 0);
  int64_t ra[N], rb[N];
  int na = epoch_ids(a, ra, sizes, &nb), nbr = epoch_ids(b, rb, sizes, &nb);
  assert_int_equal(na, 6);
  assert_int_equal(nbr, 6);
  assert_memory_equal(ra, rb, 6 * sizeof(int64_t));
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_batch_iter_set_state(b, ((tyr_batch_state){0, N + 1})),
                   "does not fit a dataset of 10 examples");
  tyr_batch_iter_free(a);
  tyr_batch_iter_free(b);
  tyr_dataset_free(ds);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

static void test_typed(void **state) {
  (void)state;
  tyr_tensor *x, *y;
  make(&x, &y);
  tyr_dataset *ds = tyr_dataset_new(x, y);
  tyr_batch_iter *it = tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = 4});
  tyr_test_record_errors();
  int full = 0, partial = 0;
  for (int64_t b; (b = tyr_batch_iter_peek(it)) > 0;) {
    TYR_SCOPE;
    if (b == 4) {
      tyr_T(4, F) xb;
      tyr_T(4) yb;
      assert_int_equal(tyr_batch_next(it, &xb, &yb), 4);
      assert_true(tyr_get(xb, 3, 2) == (double)(10 * (4 * full + 3) + 2));
      full++;
    } else {
      tyr_T(4, F) xb;
      tyr_T(4) yb;
      EXPECT_TYR_ERROR(tyr_batch_next(it, &xb, &yb), "the next batch has 2 rows, not 4");
      assert_null(xb);
      tyr_tensor *out[2];
      assert_int_equal(tyr_batch_next_e(it, out), 2);
      partial++;
    }
  }
  assert_int_equal(full, 2);
  assert_int_equal(partial, 1);
  {
    tyr_T(4, F) xb;
    tyr_T(4) yb;
    assert_int_equal(tyr_batch_next(it, &xb, &yb), 0); /* the end of the epoch */
    assert_null(xb);
    tyr_T(4, F + 1) xw;
    EXPECT_TYR_ERROR(tyr_batch_next(it, &xw, &yb), "handle 0 is declared [4, 4], the batches");
    int n = 4;
    tyr_T(n, F) xd;
    tyr_T(n) yd;
    assert_int_equal(tyr_batch_next(it, &xd, &yd), 4); /* run-time dims */
    tyr_free(xd);
    tyr_free(yd);
    tyr_T(4, F) x1;
    EXPECT_TYR_ERROR(tyr_batch_next(it, &x1), "1 handles for a dataset of 2 tensors");
  }
  tyr_batch_iter_free(it);
  tyr_dataset_free(ds);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

static void test_errors(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_tensor *x, *y;
  make(&x, &y);
  tyr_tensor *z = tyr_zeros_e(N + 1);
  EXPECT_TYR_ERROR(tyr_dataset_new(x, z), "tensor 1 is [11], tensor 0 is [10, 3]");
  tyr_tensor *t = tyr_transpose_e(x, 0, 1);
  EXPECT_TYR_ERROR(tyr_dataset_new(t), "must be a contiguous CPU tensor");
  tyr_tensor *sc = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 0, NULL);
  EXPECT_TYR_ERROR(tyr_dataset_new(sc), "tensor 0 is a scalar");
  tyr_tensor_free(sc);
  tyr_dataset *ds = tyr_dataset_new(x, y);
  EXPECT_TYR_ERROR(tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = 0}),
                   "batch_size must be >= 1, got 0");
  EXPECT_TYR_ERROR(tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = 11, .drop_last = true}),
                   "no batch would be made");
  tyr_dataset_free(ds);
  tyr_tensor_free(t);
  tyr_tensor_free(z);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

/* Batches on a CUDA device (skipped without a GPU). */
static void test_cuda_batches(void **state) {
  (void)state;
  if (!tyr_cuda_available()) skip();
  tyr_tensor *x, *y;
  make(&x, &y);
  tyr_dataset *ds = tyr_dataset_new(x, y);
  tyr_batch_iter *it = tyr_batch_iter_new(
      ds,
      &(tyr_batch_opts){.batch_size = 4, .shuffle = true, .seed = 3, .device = TYR_DEVICE_CUDA(0)});
  tyr_batch_iter *ref =
      tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = 4, .shuffle = true, .seed = 3});
  {
    TYR_SCOPE;
    tyr_tensor *g[2], *c[2];
    assert_int_equal(tyr_batch_next_e(it, g), 4);
    assert_int_equal(tyr_batch_next_e(ref, c), 4);
    assert_int_equal(g[0]->device.type, TYR_CUDA);
    tyr_tensor *back = tyr_to_device_e(g[0], TYR_DEVICE_CPU);
    assert_memory_equal(tyr_data_ptr(back), tyr_data_ptr(c[0]), 4 * F * sizeof(float));
  }
  tyr_batch_iter_free(it);
  tyr_batch_iter_free(ref);
  tyr_dataset_free(ds);
  tyr_tensor_free(x);
  tyr_tensor_free(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_sequential_keep_and_drop),
      TYR_TEST(test_shuffle),
      TYR_TEST(test_resume),
      TYR_TEST(test_typed),
      TYR_TEST(test_errors),
      TYR_TEST(test_cuda_batches),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
