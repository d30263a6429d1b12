/* Batch loaders: windows, shifts, order, seeds, ranks, shard and epoch
 * wrap-around, BOS alignment, changing B and T, state, errors. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "tyr/data.h"

/* Token at position i of shard s: unique while shards have < 1000 tokens
 * (except in BOS tests, which write their own). */
#define TOK(s, i) ((uint16_t)(1000 * (s) + (i) + 1))

/* A fresh directory with shards of the given lengths, TOK content. */
static const char *make_shards(const char *name, const int64_t *len, int n) {
  static char dir[8][512];
  static int next;
  char *d = dir[next++ % 8];
  snprintf(d, 512, "%s/%s", tyr_test_tmpdir(), name);
  assert_int_equal(mkdir(d, 0755), 0);
  for (int s = 0; s < n; s++) {
    uint16_t *t = malloc((size_t)len[s] * sizeof *t);
    assert_non_null(t);
    for (int64_t i = 0; i < len[s]; i++) t[i] = TOK(s, i);
    char p[600];
    snprintf(p, sizeof p, "%s/shard_%03d.bin", d, s);
    assert_int_equal(tyr_shard_write(p, t, len[s], TYR_SHARD_LLMC), 0);
    free(t);
  }
  return d;
}

/* Checks that x and y are [B, T] int64, y = x shifted by one, and that row b
 * is the window at (shard, pos) of TOK data; returns nothing. */
static void check_shape(const tyr_tensor *x, const tyr_tensor *y, int64_t B, int64_t T) {
  assert_non_null(x);
  assert_non_null(y);
  assert_int_equal(x->dtype, TYR_I64);
  assert_int_equal(y->dtype, TYR_I64);
  assert_int_equal(x->rank, 2);
  assert_int_equal(x->shape[0], B);
  assert_int_equal(x->shape[1], T);
  assert_int_equal(y->shape[0], B);
  assert_int_equal(y->shape[1], T);
  assert_true(x->device.type == TYR_CPU);
}

/* Decodes row b of a TOK batch to (shard, pos) and checks every token. */
static void row_window(const int64_t *x, const int64_t *y, int64_t b, int64_t T, int *shard,
                       int64_t *pos) {
  int64_t v = x[b * T] - 1;
  *shard = (int)(v / 1000);
  *pos = v % 1000;
  for (int64_t t = 0; t < T; t++) {
    assert_int_equal(x[b * T + t], TOK(*shard, *pos + t));
    assert_int_equal(y[b * T + t], TOK(*shard, *pos + t + 1));
  }
}

static void test_sequential_windows(void **state) {
  (void)state;
  int64_t len[1] = {1000};
  const char *d = make_shards("seq", len, 1);
  tyr_loader *l = tyr_loader_open(d, NULL);
  assert_non_null(l);
  assert_int_equal(tyr_loader_windows_at(TYR_SITE, l, 16), 999 / 16);
  for (int call = 0; call < 3; call++) {
    tyr_tensor *x, *y;
    assert_int_equal(tyr_loader_next_e(l, 4, 16, &x, &y), 0);
    check_shape(x, y, 4, 16);
    const int64_t *xp = tyr_data_ptr(x), *yp = tyr_data_ptr(y);
    for (int b = 0; b < 4; b++) {
      int s;
      int64_t pos;
      row_window(xp, yp, b, 16, &s, &pos);
      assert_int_equal(s, 0);
      assert_int_equal(pos, (call * 4 + b) * 16);
    }
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }
  assert_int_equal(tyr_loader_epoch(l), 0);
  tyr_loader_close(l);
}

static void test_headerless_source(void **state) {
  (void)state;
  uint16_t t[50];
  for (int i = 0; i < 50; i++) t[i] = (uint16_t)(i * 3);
  char p[600];
  snprintf(p, sizeof p, "%s/train.u16", tyr_test_tmpdir());
  assert_int_equal(tyr_shard_write(p, t, 50, TYR_SHARD_U16), 0);
  tyr_loader_opts o = {.format = TYR_SHARD_U16};
  tyr_loader *l = tyr_loader_open(p, &o);
  assert_non_null(l);
  int64_t x[2 * 5], y[2 * 5];
  assert_int_equal(tyr_loader_next_into_at(TYR_SITE, l, 2, 5, x, y), 0);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(x[i], t[i]);
    assert_int_equal(y[i], t[i + 1]);
  }
  tyr_loader_close(l);
}

/* Reads one epoch of N windows (B * W divides N) and returns the window
 * starts per call in order, as shard * 1000 + pos. */
static void read_epoch(tyr_loader *l, int64_t B, int64_t T, int calls, int64_t *out) {
  for (int c = 0; c < calls; c++) {
    int64_t *x = malloc((size_t)(B * T) * sizeof *x), *y = malloc((size_t)(B * T) * sizeof *y);
    assert_int_equal(tyr_loader_next_into_at(TYR_SITE, l, B, T, x, y), 0);
    for (int64_t b = 0; b < B; b++) {
      int s;
      int64_t pos;
      row_window(x, y, b, T, &s, &pos);
      assert_int_equal(pos % T, 0);
      out[c * B + b] = s * 1000 + pos;
    }
    free(x);
    free(y);
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void test_random_windows_and_seed(void **state) {
  (void)state;
  int64_t len[1] = {1001}; /* T = 10: 100 windows */
  const char *d = make_shards("rnd", len, 1);
  tyr_loader_opts o = {.order = TYR_LOADER_RANDOM, .seed = 42};
  tyr_loader *a = tyr_loader_open(d, &o), *b = tyr_loader_open(d, &o);
  o.seed = 43;
  tyr_loader *c = tyr_loader_open(d, &o);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  int64_t ea[100], eb[100], ec[100], ea2[100];
  read_epoch(a, 4, 10, 25, ea);
  read_epoch(b, 4, 10, 25, eb);
  read_epoch(c, 4, 10, 25, ec);
  assert_memory_equal(ea, eb, sizeof ea); /* same seed, same batches */
  assert_memory_not_equal(ea, ec, sizeof ea);
  /* not the file order */
  int in_order = 0;
  for (int i = 0; i < 100; i++) in_order += ea[i] == i * 10;
  assert_true(in_order < 20);
  /* one epoch is a permutation of all windows */
  assert_int_equal(tyr_loader_epoch(a), 1);
  int64_t sorted[100];
  memcpy(sorted, ea, sizeof sorted);
  qsort(sorted, 100, sizeof *sorted, cmp_i64);
  for (int i = 0; i < 100; i++) assert_int_equal(sorted[i], i * 10);
  /* the next epoch is another permutation */
  read_epoch(a, 4, 10, 25, ea2);
  assert_memory_not_equal(ea, ea2, sizeof ea);
  qsort(ea2, 100, sizeof *ea2, cmp_i64);
  assert_memory_equal(sorted, ea2, sizeof sorted);
  assert_int_equal(tyr_loader_epoch(a), 2);
  /* reset goes back to the start */
  tyr_loader_reset(b);
  read_epoch(b, 4, 10, 25, eb);
  assert_memory_equal(ea, eb, sizeof ea);
  tyr_loader_close(a);
  tyr_loader_close(b);
  tyr_loader_close(c);
}

/* Permutations for many epoch sizes: every window once per epoch. */
static void test_random_permutation_sizes(void **state) {
  (void)state;
  int64_t len[1] = {301};
  const char *d = make_shards("perm", len, 1);
  tyr_loader_opts o = {.order = TYR_LOADER_RANDOM, .seed = 7};
  tyr_loader *l = tyr_loader_open(d, &o);
  int64_t sizes[] = {300, 150, 100, 75, 60, 50, 30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    int64_t T = sizes[i];
    int64_t N = tyr_loader_windows_at(TYR_SITE, l, T);
    assert_int_equal(N, 300 / T);
    tyr_loader_reset(l);
    int64_t *w = malloc((size_t)N * sizeof *w);
    read_epoch(l, 1, T, (int)N, w);
    qsort(w, (size_t)N, sizeof *w, cmp_i64);
    for (int64_t k = 0; k < N; k++) assert_int_equal(w[k], k * T);
    free(w);
  }
  tyr_loader_close(l);
}

static void check_ranks(tyr_loader_order order) {
  int64_t len[2] = {481, 481}; /* T = 10: 48 + 48 windows */
  const char *d = make_shards(order == TYR_LOADER_RANDOM ? "ranks_r" : "ranks_s", len, 2);
  enum { W = 3, B = 4, N = 96, CALLS = N / (W * B) };
  int64_t seen[W][CALLS * B];
  for (int r = 0; r < W; r++) {
    tyr_loader_opts o = {.order = order, .seed = 99, .rank = r, .world_size = W};
    tyr_loader *l = tyr_loader_open(d, &o);
    assert_non_null(l);
    read_epoch(l, B, 10, CALLS, seen[r]);
    assert_int_equal(tyr_loader_epoch(l), 1);
    tyr_loader_close(l);
  }
  /* sequential: rank r takes windows r, r + W, ... of each global batch */
  if (order == TYR_LOADER_SEQUENTIAL)
    for (int r = 0; r < W; r++)
      for (int i = 0; i < CALLS * B; i++) {
        int64_t w = (int64_t)i * W + r; /* grid window */
        int64_t want = w < 48 ? w * 10 : 1000 + (w - 48) * 10;
        assert_int_equal(seen[r][i], want);
      }
  /* disjoint and covering */
  int64_t all[N];
  memcpy(all, seen, sizeof all);
  qsort(all, N, sizeof *all, cmp_i64);
  for (int i = 0; i < N; i++) assert_int_equal(all[i], i < 48 ? i * 10 : 1000 + (i - 48) * 10);
}

static void test_rank_slicing_sequential(void **state) {
  (void)state;
  check_ranks(TYR_LOADER_SEQUENTIAL);
}

static void test_rank_slicing_random(void **state) {
  (void)state;
  check_ranks(TYR_LOADER_RANDOM);
}

static void test_wrap_shards_and_epochs(void **state) {
  (void)state;
  /* T = 10: 3 windows, none (too short), 2, 4: 9 windows an epoch */
  int64_t len[4] = {35, 5, 21, 50};
  const char *d = make_shards("wrap", len, 4);
  tyr_loader *l = tyr_loader_open(d, NULL);
  assert_int_equal(tyr_loader_windows_at(TYR_SITE, l, 10), 9);
  const int64_t grid[9] = {0, 10, 20, 2000, 2010, 3000, 3010, 3020, 3030};
  const int64_t epochs_after[] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2};
  for (int call = 0; call < 10; call++) {
    tyr_tensor *x, *y;
    assert_int_equal(tyr_loader_next_e(l, 2, 10, &x, &y), 0);
    for (int b = 0; b < 2; b++) {
      int s;
      int64_t pos;
      row_window(tyr_data_ptr(x), tyr_data_ptr(y), b, 10, &s, &pos);
      assert_int_equal(s * 1000 + pos, grid[(call * 2 + b) % 9]);
    }
    assert_int_equal(tyr_loader_epoch(l), epochs_after[call]);
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }
  /* a batch larger than an epoch wraps several times */
  tyr_loader_reset(l);
  int64_t x[20 * 10], y[20 * 10];
  assert_int_equal(tyr_loader_next_into_at(TYR_SITE, l, 20, 10, x, y), 0);
  for (int b = 0; b < 20; b++) {
    int s;
    int64_t pos;
    row_window(x, y, b, 10, &s, &pos);
    assert_int_equal(s * 1000 + pos, grid[b % 9]);
  }
  assert_int_equal(tyr_loader_epoch(l), 2);
  tyr_loader_close(l);
}

static void test_bos_alignment(void **state) {
  (void)state;
  /* documents: BOS (= 0) then text; lengths 3, 12, 4, 2, 9, 30, 5 */
  int doclen[] = {3, 12, 4, 2, 9, 30, 5};
  uint16_t t[200];
  int n = 0, bospos[16], nb = 0;
  for (size_t d = 0; d < sizeof doclen / sizeof *doclen; d++) {
    bospos[nb++] = n;
    t[n++] = 0;
    for (int i = 0; i < doclen[d]; i++, n++) t[n] = (uint16_t)(100 + n);
  }
  char p[600];
  snprintf(p, sizeof p, "%s/bos.bin", tyr_test_tmpdir());
  assert_int_equal(tyr_shard_write(p, t, n, TYR_SHARD_LLMC), 0);
  const int64_t T = 8;
  /* the greedy rule: next window at the first BOS >= previous start + T */
  int64_t want[16];
  int nw = 0;
  for (int q = 0; q < nb;) {
    int64_t s = bospos[q];
    if (s + T + 1 > n) break;
    want[nw++] = s;
    while (q < nb && bospos[q] < s + T) q++;
  }
  assert_true(nw >= 4);

  tyr_loader_opts o = {.align_bos = true, .bos_token = 0};
  tyr_loader *l = tyr_loader_open(p, &o);
  assert_non_null(l);
  assert_int_equal(tyr_loader_windows_at(TYR_SITE, l, T), nw);
  for (int k = 0; k < nw; k++) {
    int64_t x[T], y[T];
    assert_int_equal(tyr_loader_next_into_at(TYR_SITE, l, 1, T, x, y), 0);
    assert_int_equal(x[0], 0); /* starts at BOS */
    for (int i = 0; i < T; i++) {
      assert_int_equal(x[i], t[want[k] + i]);
      assert_int_equal(y[i], t[want[k] + i + 1]);
    }
  }
  assert_int_equal(tyr_loader_epoch(l), 1);
  tyr_loader_close(l);

  /* random order: every row starts at a BOS */
  o.order = TYR_LOADER_RANDOM;
  o.seed = 5;
  l = tyr_loader_open(p, &o);
  for (int c = 0; c < 5; c++) {
    tyr_tensor *x, *y;
    assert_int_equal(tyr_loader_next_e(l, 3, T, &x, &y), 0);
    const int64_t *xp = tyr_data_ptr(x);
    for (int b = 0; b < 3; b++) assert_int_equal(xp[b * T], 0);
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }
  /* no BOS followed by T tokens */
  tyr_tensor *x = NULL, *y = NULL;
  EXPECT_TYR_ERROR(tyr_loader_next_e(l, 1, 100, &x, &y),
                   "bos.bin: no window of T + 1 = 101 tokens starting at BOS token 0 fits");
  assert_null(x);
  tyr_loader_close(l);
  /* a BOS id that never occurs */
  o.bos_token = 7;
  l = tyr_loader_open(p, &o);
  assert_int_equal(tyr_loader_windows_at(TYR_SITE, l, 2), 0);
  EXPECT_TYR_ERROR(tyr_loader_next_e(l, 1, 2, &x, &y), "starting at BOS token 7");
  tyr_loader_close(l);
}

static void test_changing_batch_shape(void **state) {
  (void)state;
  int64_t len[1] = {400};
  const char *d = make_shards("shape", len, 1);
  tyr_loader *l = tyr_loader_open(d, NULL);
  struct {
    int64_t B, T, first;
  } steps[] = {
      {2, 10, 0},  /* windows 0, 10 -> position 20 */
      {3, 7, 21},  /* first T = 7 window at or after 20: 21, 28, 35 -> 42 */
      {1, 20, 60}, /* first T = 20 window at or after 42: 60 -> 80 */
      {5, 1, 80},  /* 80..84 */
      {2, 10, 90}, /* first T = 10 window at or after 85: 90 */
  };
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    tyr_tensor *x, *y;
    assert_int_equal(tyr_loader_next_e(l, steps[i].B, steps[i].T, &x, &y), 0);
    check_shape(x, y, steps[i].B, steps[i].T);
    for (int64_t b = 0; b < steps[i].B; b++) {
      int s;
      int64_t pos;
      row_window(tyr_data_ptr(x), tyr_data_ptr(y), b, steps[i].T, &s, &pos);
      assert_int_equal(pos, steps[i].first + b * steps[i].T);
    }
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }
  tyr_loader_close(l);

  /* random order: valid windows under any shape, progress carried over */
  tyr_loader_opts o = {.order = TYR_LOADER_RANDOM, .seed = 3};
  l = tyr_loader_open(d, &o);
  for (int i = 0; i < 20; i++) {
    int64_t B = 1 + i % 4, T = 3 + (i * 7) % 17;
    tyr_tensor *x, *y;
    assert_int_equal(tyr_loader_next_e(l, B, T, &x, &y), 0);
    check_shape(x, y, B, T);
    for (int64_t b = 0; b < B; b++) {
      int s;
      int64_t pos;
      row_window(tyr_data_ptr(x), tyr_data_ptr(y), b, T, &s, &pos);
      assert_int_equal(pos % T, 0);
    }
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }
  tyr_loader_close(l);
}

static void test_scope_owns_batches(void **state) {
  (void)state;
  int64_t len[1] = {100};
  const char *d = make_shards("scope", len, 1);
  tyr_loader *l = tyr_loader_open(d, NULL);
  int64_t live = tyr_live_tensors();
  {
    TYR_SCOPE;
    tyr_tensor *x, *y;
    assert_int_equal(tyr_loader_next_e(l, 2, 8, &x, &y), 0);
    assert_int_equal(tyr_live_tensors(), live + 2);
    assert_ptr_not_equal(x->scope, NULL);
  }
  assert_int_equal(tyr_live_tensors(), live);
  tyr_loader_close(l);
}

static void test_state_resume(void **state) {
  (void)state;
  int64_t len[2] = {300, 300};
  const char *d = make_shards("resume", len, 2);
  tyr_loader_opts o = {.order = TYR_LOADER_RANDOM, .seed = 11, .rank = 1, .world_size = 2};
  tyr_loader *a = tyr_loader_open(d, &o);
  int64_t skip[40];
  read_epoch(a, 4, 9, 5, skip); /* 40 of the 66 windows (both ranks) */
  tyr_loader_state st = tyr_loader_get_state(a);
  assert_int_equal(st.T, 9);
  int64_t want[24], got[24];
  read_epoch(a, 4, 9, 6, want); /* goes past the end of the epoch */
  assert_int_equal(tyr_loader_epoch(a), 1);

  tyr_loader *b = tyr_loader_open(d, &o);
  assert_int_equal(tyr_loader_set_state_at(TYR_SITE, b, st), 0);
  read_epoch(b, 4, 9, 6, got);
  assert_memory_equal(want, got, sizeof want);
  assert_int_equal(tyr_loader_epoch(b), 1);

  tyr_loader_state bad = {0, 1000, 9};
  EXPECT_TYR_ERROR(tyr_loader_set_state_at(TYR_SITE, b, bad),
                   "window 1000 is out of range: 66 windows of T = 9");
  bad = (tyr_loader_state){0, 1000, 10};
  EXPECT_TYR_ERROR(tyr_loader_set_state_at(TYR_SITE, b, bad), "58 windows of T = 10");
  bad = (tyr_loader_state){-1, 0, 9};
  EXPECT_TYR_ERROR(tyr_loader_set_state_at(TYR_SITE, b, bad), "negative field in state");
  /* the failed calls changed nothing */
  tyr_loader_state now = tyr_loader_get_state(b);
  tyr_loader_state after = tyr_loader_get_state(a);
  assert_int_equal(now.epoch, after.epoch);
  assert_int_equal(now.window, after.window);
  assert_int_equal(now.T, 9);
  tyr_loader_close(a);
  tyr_loader_close(b);
}

static void test_typed_next(void **state) {
  (void)state;
  int64_t len[1] = {200};
  const char *d = make_shards("typed", len, 1);
  tyr_loader *l = tyr_loader_open(d, NULL);
  enum { B = 2, T = 8 };
  tyr_T(B, T) x, y;
  assert_int_equal(tyr_loader_next(l, B, T, &x, &y), 0);
  assert_int_equal(tyr_dim(x, 0), B);
  assert_int_equal(tyr_dim(y, 1), T);
  assert_int_equal(tyr_erase(x)->dtype, TYR_I64);
  assert_int_equal((int64_t)tyr_get(x, 1, 3), TOK(0, 8 + 3));
  assert_int_equal((int64_t)tyr_get(y, 1, 3), TOK(0, 8 + 4));
  tyr_free(x);
  tyr_free(y);

  /* run-time dims (volatile: an optimizer that sees constants would turn the
   * mismatches below into build errors) */
  volatile int64_t vb = 3, vt = 5, vbig = 500;
  int64_t b = vb, t = vt;
  tyr_T(b, t) xd, yd;
  assert_int_equal(tyr_loader_next_typed(l, b, t, &xd, &yd), 0);
  assert_int_equal(tyr_dim(xd, 0), 3);
  assert_int_equal((int64_t)tyr_get(xd, 0, 0), TOK(0, 20)); /* T = 8 position 16 -> T = 5: 20 */
  tyr_free(xd);
  tyr_free(yd);
  /* a call whose shape is not the handles' declared shape */
  EXPECT_TYR_ERROR(tyr_loader_next(l, b, t + 1, &xd, &yd),
                   "tyr_loader_next: x is declared [3, 5] but the batch is [3, 6]");
  assert_null(xd);
  assert_null(yd);
  /* that moved nothing: the next batch goes on at 35 */
  assert_int_equal(tyr_loader_next(l, b, t, &xd, &yd), 0);
  assert_int_equal((int64_t)tyr_get(xd, 0, 0), TOK(0, 35));
  tyr_free(xd);
  tyr_free(yd);
  /* errors of the erased call come through */
  int64_t big = vbig;
  tyr_T(b, big) xb, yb;
  EXPECT_TYR_ERROR(tyr_loader_next(l, b, big, &xb, &yb), "no window of T + 1 = 501 tokens");
  assert_null(xb);
  assert_null(yb);
  tyr_loader_close(l);
}

static void test_errors(void **state) {
  (void)state;
  int64_t len[1] = {50};
  const char *d = make_shards("errs", len, 1);
  tyr_loader_opts o = {.rank = 2, .world_size = 2};
  EXPECT_TYR_ERROR(tyr_loader_open(d, &o), "rank 2 is out of range for world size 2");
  o = (tyr_loader_opts){.world_size = -1};
  EXPECT_TYR_ERROR(tyr_loader_open(d, &o), "world size -1 is negative");
  o = (tyr_loader_opts){.align_bos = true, .bos_token = 70000};
  EXPECT_TYR_ERROR(tyr_loader_open(d, &o), "BOS token 70000 is not a uint16 token id");
  o = (tyr_loader_opts){.order = (tyr_loader_order)5};
  EXPECT_TYR_ERROR(tyr_loader_open(d, &o), "unknown order 5");
  char missing[600];
  snprintf(missing, sizeof missing, "%s/missing_dir", tyr_test_tmpdir());
  EXPECT_TYR_ERROR(tyr_loader_open(missing, NULL), "missing_dir: cannot open: No such file");

  tyr_loader *l = tyr_loader_open(d, NULL);
  tyr_tensor *x = (tyr_tensor *)1, *y = (tyr_tensor *)1;
  EXPECT_TYR_ERROR(tyr_loader_next_e(l, 0, 4, &x, &y),
                   "batch size 0 and sequence length 4 must be >= 1");
  assert_null(x);
  assert_null(y);
  EXPECT_TYR_ERROR(tyr_loader_next_e(l, 2, -1, &x, &y), "sequence length -1");
  EXPECT_TYR_ERROR(tyr_loader_next_e(l, 1, 50, &x, &y),
                   "errs: no window of T + 1 = 51 tokens fits in any shard (1 shard, longest 50 "
                   "tokens)");
  EXPECT_TYR_ERROR(tyr_loader_next_e(l, 1, 5, NULL, &y), "output pointer is NULL");
  EXPECT_TYR_ERROR(tyr_loader_next_e(NULL, 1, 5, &x, &y), "loader is NULL");
  EXPECT_TYR_ERROR(tyr_loader_windows_at(TYR_SITE, l, 0), "sequence length 0");
  /* the errors moved nothing: the first batch is still window 0 */
  assert_int_equal(tyr_loader_next_e(l, 1, 49, &x, &y), 0);
  assert_int_equal(((int64_t *)tyr_data_ptr(x))[0], TOK(0, 0));
  tyr_tensor_free(x);
  tyr_tensor_free(y);
  tyr_loader_close(l);
  tyr_loader_close(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_sequential_windows),
      TYR_TEST(test_headerless_source),
      TYR_TEST(test_random_windows_and_seed),
      TYR_TEST(test_random_permutation_sizes),
      TYR_TEST(test_rank_slicing_sequential),
      TYR_TEST(test_rank_slicing_random),
      TYR_TEST(test_wrap_shards_and_epochs),
      TYR_TEST(test_bos_alignment),
      TYR_TEST(test_changing_batch_shape),
      TYR_TEST(test_scope_owns_batches),
      TYR_TEST(test_state_resume),
      TYR_TEST(test_typed_next),
      TYR_TEST(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
