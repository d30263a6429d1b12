/* The CUDA backend against the CPU: every kernel of the backend table and
 * every public op is run on cuda:0 and on the CPU with the same inputs, and
 * the results compared (f32/f64 to ~1e-5 relative, bf16 to ~1e-2; random
 * numbers, copies and index moves bit for bit).  Inputs come in several
 * layouts: contiguous, transposed, sliced at an odd offset (no 16-byte
 * alignment), and expanded with stride 0.
 *
 * Without a GPU (or in a build without the CUDA backend) it prints
 * "no CUDA GPU: skipped", every GPU test is skipped, and the program exits
 * 0; only test_without_gpu (the no-GPU error messages) runs.  With a GPU
 * every test runs and none is skipped.
 *
 * Adding a case: most tests walk a table (UNARY_KERNEL, BINARY_OPS,
 * MATMUL_SHAPES, ...); add a row.  A new op family gets a test function
 * that builds its inputs with pair_2d() / cpu_rand(), runs the op on both
 * devices and calls expect_close() or expect_same_bits(), and a line in
 * main().  Kernels without a public op yet are called through the backend
 * table (gpu_be() vs &tyr_cpu_backend).
 *
 * The tensor-core attention kernel has its own tests (test_sdpa_tc against
 * an f64 CPU reference, test_sdpa_tc_vs_simt against the CUDA-core kernel,
 * test_sdpa_tc_dispatch for which calls take it).
 *
 * TYR_CUDA_TEST_VERBOSE=1 prints the largest error of every comparison. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h" /* grad_fn->op */
#include "core/backend.h"
#include "core/internal.h"
#include "cpu/isa.h"     /* tyr_cpu_isa_level */
#include "ops/nn_util.h" /* tyr__lce_set_chunk_bytes */
#include "testutil.h"
#include "tyr/tyr.h"
/* src/cuda/attention_cudnn.cu's test hooks (stubs without the backend:
 * check_graphs returns 1) */
int tcu_sdpa_cudnn_check_graphs(char *err, size_t n);
int tcu_sdpa_cudnn_device(int dev);
void tcu_sdpa_cudnn_set_workspace_limit(long long bytes);
void tcu_cross_entropy_set_two_pass(int on);
int tcu_cross_entropy_last_smem(void);
int tcu_copy_many_last_launches(void);
int tcu_sdpa_cudnn_backward_calls(void);

#define S TYR_SITE
#define CPU TYR_DEVICE_CPU

static bool g_gpu;
static bool g_verbose;

static tyr_device gpu(void) {
  return TYR_DEVICE_CUDA(0);
}

#define REQUIRE_GPU()                                                                              \
  do {                                                                                             \
    if (!g_gpu) skip();                                                                            \
  } while (0)

static const tyr_backend *gpu_be(void) {
  const tyr_backend *be = tyr_backend_get(S, "test_cuda_ops", gpu());
  assert_non_null(be);
  return be;
}

/* ---- tensors ----------------------------------------------------------------- */
/* uniform in [lo, hi); integer and bool dtypes get the values truncated */
static tyr_tensor *cpu_rand(tyr_dtype dt, int rank, const int64_t *shape, double lo, double hi) {
  bool fl = tyr_dtype_is_float(dt);
  tyr_tensor *t = tyr_rand_at(S, fl ? dt : TYR_F64, CPU, rank, shape, lo, hi);
  assert_non_null(t);
  if (!fl) {
    bool prev = tyr_set_grad_enabled(false);
    t = tyr_to_dtype_at(S, t, dt);
    tyr_set_grad_enabled(prev);
    assert_non_null(t);
  }
  return t;
}
#define RAND(dt, lo, hi, ...)                                                                      \
  cpu_rand((dt), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__}, (lo), (hi))

static tyr_tensor *to_dev(tyr_tensor *t, tyr_device dev) {
  bool prev = tyr_set_grad_enabled(false);
  tyr_tensor *r = tyr_to_device_at(S, t, dev);
  tyr_set_grad_enabled(prev);
  assert_non_null(r);
  return r;
}
static tyr_tensor *as_dtype(tyr_tensor *t, tyr_dtype dt) {
  bool prev = tyr_set_grad_enabled(false);
  tyr_tensor *r = tyr_to_dtype_at(S, t, dt);
  tyr_set_grad_enabled(prev);
  assert_non_null(r);
  return r;
}
static tyr_tensor *empty_on(tyr_device dev, tyr_dtype dt, int rank, const int64_t *shape) {
  tyr_tensor *t = tyr_empty_at(S, dt, dev, rank, shape);
  assert_non_null(t);
  return t;
}
static tyr_tensor *empty_like_on(tyr_device dev, tyr_dtype dt, const tyr_tensor *t) {
  return empty_on(dev, dt, t->rank, t->shape);
}

/* views */
static tyr_tensor *transposed(tyr_tensor *t, int d0, int d1) {
  int64_t sh[TYR_MAX_RANK], st[TYR_MAX_RANK];
  for (int i = 0; i < t->rank; i++) {
    sh[i] = t->shape[i];
    st[i] = t->stride[i];
  }
  sh[d0] = t->shape[d1];
  sh[d1] = t->shape[d0];
  st[d0] = t->stride[d1];
  st[d1] = t->stride[d0];
  tyr_tensor *v = tyr_view_raw(t, t->rank, sh, st, t->offset);
  assert_non_null(v);
  return v;
}
static tyr_tensor *sliced(tyr_tensor *t, int dim, int64_t start, int64_t len) {
  int64_t sh[TYR_MAX_RANK];
  for (int i = 0; i < t->rank; i++) sh[i] = t->shape[i];
  sh[dim] = len;
  tyr_tensor *v = tyr_view_raw(t, t->rank, sh, t->stride, t->offset + start * t->stride[dim]);
  assert_non_null(v);
  return v;
}

/* The same [R, C] operand on the CPU and the GPU, in one of four layouts. */
typedef enum { L_CONTIG, L_TRANSPOSED, L_SLICED, L_EXPANDED, L_COUNT } layout_kind;
static const char *LAYOUT_NAMES[] = {"contiguous", "transposed", "sliced", "expanded"};

static tyr_tensor *quantized(tyr_tensor *t, bool on) {
  return on ? as_dtype(as_dtype(t, TYR_I32), t->dtype) : t;
}

/* quant: whole numbers only (so that comparisons see ties) */
static void pair_2d_q(layout_kind k, tyr_dtype dt, int64_t R, int64_t C, double lo, double hi,
                      bool quant, tyr_tensor **c, tyr_tensor **g) {
  tyr_tensor *base;
  switch (k) {
  case L_TRANSPOSED:
    base = quantized(RAND(dt, lo, hi, C, R), quant);
    *c = transposed(base, 0, 1);
    *g = transposed(to_dev(base, gpu()), 0, 1);
    break;
  case L_SLICED:
    base = quantized(RAND(dt, lo, hi, R, C + 3), quant);
    *c = sliced(base, 1, 1, C);
    *g = sliced(to_dev(base, gpu()), 1, 1, C);
    break;
  case L_EXPANDED: {
    base = quantized(RAND(dt, lo, hi, 1, C), quant);
    int64_t sh[2] = {R, C};
    *c = tyr_expand_at(S, base, 2, sh);
    *g = tyr_expand_at(S, to_dev(base, gpu()), 2, sh);
    break;
  }
  default:
    base = quantized(RAND(dt, lo, hi, R, C), quant);
    *c = base;
    *g = to_dev(base, gpu());
    break;
  }
  assert_non_null(*c);
  assert_non_null(*g);
}
static void pair_2d(layout_kind k, tyr_dtype dt, int64_t R, int64_t C, double lo, double hi,
                    tyr_tensor **c, tyr_tensor **g) {
  pair_2d_q(k, dt, R, C, lo, hi, false, c, g);
}

/* ---- comparisons ------------------------------------------------------------- */
static double tol_for(tyr_dtype dt, double f32_tol) {
  return dt == TYR_F64 ? 1e-10 : (dt == TYR_BF16 || dt == TYR_F16) ? 1e-2 : f32_tol;
}

/* |got - want| <= atol + rtol |want| elementwise (NaN matches NaN); got on
 * any device and dtype, want on the CPU. */
static void expect_close(const char *what, tyr_tensor *got, tyr_tensor *want, double rtol,
                         double atol) {
  TYR_SCOPE;
  assert_non_null(got);
  assert_non_null(want);
  if (got->rank != want->rank || memcmp(got->shape, want->shape, sizeof(int64_t) * got->rank)) {
    char a[160], b[160];
    fail_msg("%s: shape %s, expected %s", what, tyr_shape_str(got->shape, got->rank, a, sizeof a),
             tyr_shape_str(want->shape, want->rank, b, sizeof b));
  }
  tyr_tensor *g = as_dtype(to_dev(got, CPU), TYR_F64), *w = as_dtype(to_dev(want, CPU), TYR_F64);
  const double *pg = tyr_data_ptr(g), *pw = tyr_data_ptr(w);
  int64_t n = tyr_numel(g), bad = 0, first = -1;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(pg[i]) && isnan(pw[i])) continue;
    double d = fabs(pg[i] - pw[i]);
    double lim = atol + rtol * fabs(pw[i]);
    double rel = d / (fabs(pw[i]) + atol / (rtol > 0 ? rtol : 1));
    if (rel > worst || isnan(d)) worst = isnan(d) ? INFINITY : rel;
    if (!(d <= lim)) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (g_verbose) printf("    %-60s n=%-9lld max rel err %.3g\n", what, (long long)n, worst);
  if (bad)
    fail_msg("%s: %lld of %lld elements differ; first at %lld: cuda %.9g, cpu %.9g (rtol %g, atol "
             "%g)",
             what, (long long)bad, (long long)n, (long long)first, pg[first], pw[first], rtol,
             atol);
}

/* The same dtype, shape and bytes. */
static void expect_same_bits(const char *what, tyr_tensor *got, tyr_tensor *want) {
  TYR_SCOPE;
  assert_int_equal(got->dtype, want->dtype);
  assert_int_equal(tyr_numel(got), tyr_numel(want));
  tyr_tensor *g = to_dev(got, CPU), *w = to_dev(want, CPU); /* contiguous copies */
  size_t es = tyr_dtype_size(g->dtype);
  const unsigned char *pg = tyr_data_ptr(g), *pw = tyr_data_ptr(w);
  int64_t n = tyr_numel(g), bad = 0, first = -1;
  for (int64_t i = 0; i < n; i++)
    if (memcmp(pg + i * es, pw + i * es, es)) {
      if (first < 0) first = i;
      bad++;
    }
  if (g_verbose)
    printf("    %-60s n=%-9lld %s\n", what, (long long)n, bad ? "DIFFERS" : "same bits");
  if (bad) {
    double a = tyr__load_f64(pg + first * es, g->dtype),
           b = tyr__load_f64(pw + first * es, w->dtype);
    fail_msg("%s: %lld of %lld elements differ in their bits; first at %lld: cuda %.17g, cpu %.17g",
             what, (long long)bad, (long long)n, (long long)first, a, b);
  }
}

/* ---- no GPU: the error messages ------------------------------------------------- */
static void test_without_gpu(void **state) {
  (void)state;
  if (g_gpu) return; /* nothing to check here */
  TYR_SCOPE;
  assert_false(tyr_cuda_available());
  assert_int_equal(tyr_cuda_device_count(), 0);
  EXPECT_TYR_ERROR(tyr_zeros_at(S, TYR_F32, gpu(), 1, (int64_t[]){4}), "cuda:0 was asked for");
  tyr_cuda_mem_stats ms;
  EXPECT_TYR_ERROR(tyr_cuda_memory_stats(0, &ms), "tyr_cuda_memory_stats");
  assert_int_equal(tyr_cuda_synchronize(), 0);
  tyr_cuda_empty_cache();
}

/* ---- memory, host copies, allocator ----------------------------------------------- */
static void test_host_copies(void **state) {
  (void)state;
  REQUIRE_GPU();
  TYR_SCOPE;
  /* sizes around the 4 MiB staging chunks, all dtypes */
  const int64_t sizes[] = {0, 1, 3, 1000, 1 << 20, (4 << 20) / 4 + 1, 3 * (1 << 20) + 17};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (int dt = 0; dt < TYR_DTYPE_COUNT; dt++) {
      if (sizes[i] > 1000 && dt != TYR_F32 && dt != TYR_U8) continue;
      tyr_tensor *c = tyr_randint_at(S, (tyr_dtype)dt, CPU, 1, &sizes[i], 0, 100);
      tyr_tensor *g = to_dev(c, gpu());
      tyr_tensor *back = to_dev(g, CPU);
      char what[96];
      snprintf(what, sizeof what, "host -> cuda -> host, %lld x %s", (long long)sizes[i],
               tyr_dtype_name((tyr_dtype)dt));
      expect_same_bits(what, back, c);
      if (sizes[i] == 1) assert_true(tyr_item_at(S, g) == tyr_item_at(S, c));
    }
  }
  /* tyr_to_host / tyr_from_host */
  float host[257], out[257];
  for (int i = 0; i < 257; i++) host[i] = (float)i * 0.5f - 3;
  tyr_tensor *g = tyr_from_host_at(S, host, TYR_F32, gpu(), 1, (int64_t[]){257});
  assert_int_equal(tyr_to_host_at(S, g, out, sizeof out), 0);
  assert_memory_equal(host, out, sizeof host);
  assert_int_equal(tyr_cuda_synchronize(), 0);
}

static void test_allocator(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_mem_stats a, b, c;
  assert_int_equal(tyr_cuda_memory_stats(0, &a), 0);
  {
    TYR_SCOPE;
    tyr_tensor *t = tyr_empty_at(S, TYR_F32, gpu(), 1, (int64_t[]){1000000});
    assert_non_null(t);
    assert_int_equal(tyr_cuda_memory_stats(0, &b), 0);
    assert_true(b.allocated >= a.allocated + 4000000);
    assert_true(b.allocated <= a.allocated + 4000000 + 4000000 / 8 + 512);
    assert_true(b.peak_allocated >= b.allocated);
    assert_true(b.reserved >= b.allocated);
  }
  assert_int_equal(tyr_cuda_memory_stats(0, &c), 0);
  assert_int_equal(c.allocated, a.allocated);
  assert_true(c.cached >= 4000000); /* the block stays for reuse */
  uint64_t mallocs = c.n_cuda_malloc;
  {
    TYR_SCOPE; /* the same size again: served from the cache */
    assert_non_null(tyr_empty_at(S, TYR_F32, gpu(), 1, (int64_t[]){999000}));
    assert_int_equal(tyr_cuda_memory_stats(0, &b), 0);
    assert_int_equal(b.n_cuda_malloc, mallocs);
  }
  tyr_cuda_empty_cache();
  assert_int_equal(tyr_cuda_memory_stats(0, &c), 0);
  assert_int_equal(c.cached, 0);
  assert_int_equal(c.reserved, c.allocated);
  assert_int_equal(tyr_cuda_reset_peak(0), 0);
  assert_int_equal(tyr_cuda_memory_stats(0, &c), 0);
  assert_int_equal(c.peak_allocated, c.allocated);
  if (g_verbose)
    printf("    allocator: allocated %zu, reserved %zu, %llu allocations, %llu cudaMalloc\n",
           c.allocated, c.reserved, (unsigned long long)c.n_alloc,
           (unsigned long long)c.n_cuda_malloc);
}

static void test_device_errors(void **state) {
  (void)state;
  REQUIRE_GPU();
  TYR_SCOPE;
  int n = tyr_cuda_device_count();
  EXPECT_TYR_ERROR(tyr_zeros_at(S, TYR_F32, TYR_DEVICE_CUDA(n + 3), 1, (int64_t[]){4}),
                   "cannot allocate");
  tyr_cuda_mem_stats ms;
  EXPECT_TYR_ERROR(tyr_cuda_memory_stats(n + 3, &ms), "out of range");
  EXPECT_TYR_ERROR(tyr_cuda_memory_stats(0, NULL), "out is NULL");
  tyr_tensor *c = RAND(TYR_F32, 0, 1, 4), *g = to_dev(c, gpu());
  EXPECT_TYR_ERROR(tyr_add_at(S, c, g), "different devices");
  /* out of device memory: an error, not a crash, and the allocator recovers */
  EXPECT_TYR_ERROR(tyr_empty_at(S, TYR_U8, gpu(), 1, (int64_t[]){(int64_t)1 << 46}),
                   "cannot allocate");
  assert_non_null(tyr_zeros_at(S, TYR_F32, gpu(), 1, (int64_t[]){16}));
}

/* ---- creation: fill, arange, eye, random ---------------------------------------------- */
static void test_fill_arange(void **state) {
  (void)state;
  REQUIRE_GPU();
  TYR_SCOPE;
  const double values[] = {0.0, 1.0, -2.75, 3.1e38, 1e-40, 255.0, 7.0};
  for (int dt = 0; dt < TYR_DTYPE_COUNT; dt++) {
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
      if (!tyr_dtype_is_float((tyr_dtype)dt) &&
          (values[v] < 0 || values[v] > 255 || values[v] != floor(values[v])))
        continue;
      int64_t sh[2] = {33, 65};
      tyr_tensor *c = tyr_full_at(S, (tyr_dtype)dt, CPU, 2, sh, values[v]);
      tyr_tensor *g = tyr_full_at(S, (tyr_dtype)dt, gpu(), 2, sh, values[v]);
      char what[96];
      snprintf(what, sizeof what, "full %g %s", values[v], tyr_dtype_name((tyr_dtype)dt));
      expect_same_bits(what, g, c);
    }
    tyr_tensor *c = tyr_arange_at(S, (tyr_dtype)dt, CPU, 0, 200, 1);
    tyr_tensor *g = tyr_arange_at(S, (tyr_dtype)dt, gpu(), 0, 200, 1);
    expect_same_bits("arange", g, c);
    if (tyr_dtype_is_float((tyr_dtype)dt)) {
      expect_same_bits("linspace", tyr_linspace_at(S, (tyr_dtype)dt, gpu(), -1.3, 2.9, 1001),
                       tyr_linspace_at(S, (tyr_dtype)dt, CPU, -1.3, 2.9, 1001));
      expect_same_bits("arange fractional step",
                       tyr_arange_at(S, (tyr_dtype)dt, gpu(), 0.1, 7, 0.3),
                       tyr_arange_at(S, (tyr_dtype)dt, CPU, 0.1, 7, 0.3));
    }
    expect_same_bits("eye", tyr_eye_at(S, (tyr_dtype)dt, gpu(), 17),
                     tyr_eye_at(S, (tyr_dtype)dt, CPU, 17));
  }
  /* fill of a strided view (tyr_fill on a transposed view) */
  tyr_tensor *c, *g;
  pair_2d(L_TRANSPOSED, TYR_F32, 19, 23, -1, 1, &c, &g);
  assert_int_equal(tyr_fill_at(S, c, 4.5), 0);
  assert_int_equal(tyr_fill_at(S, g, 4.5), 0);
  expect_same_bits("fill transposed view", g, c);
}

static void test_random_bits(void **state) {
  (void)state;
  REQUIRE_GPU();
  TYR_SCOPE;
  const tyr_dtype fdt[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_F16};
  const int64_t sizes[] = {1, 1000, 1 << 20};
  for (size_t s = 0; s < 3; s++) {
    for (size_t d = 0; d < 4; d++) {
      char what[96];
      tyr_manual_seed(77 + s);
      tyr_tensor *c = tyr_rand_at(S, fdt[d], CPU, 1, &sizes[s], -2, 5);
      tyr_manual_seed(77 + s);
      tyr_tensor *g = tyr_rand_at(S, fdt[d], gpu(), 1, &sizes[s], -2, 5);
      snprintf(what, sizeof what, "rand %lld %s", (long long)sizes[s], tyr_dtype_name(fdt[d]));
      expect_same_bits(what, g, c);
      tyr_manual_seed(1000 + s);
      c = tyr_randn_at(S, fdt[d], CPU, 1, &sizes[s], 0.5, 2);
      tyr_manual_seed(1000 + s);
      g = tyr_randn_at(S, fdt[d], gpu(), 1, &sizes[s], 0.5, 2);
      snprintf(what, sizeof what, "randn %lld %s", (long long)sizes[s], tyr_dtype_name(fdt[d]));
      expect_same_bits(what, g, c);
    }
    const tyr_dtype idt[] = {TYR_I64, TYR_I32};
    for (int d = 0; d < 2; d++) {
      tyr_manual_seed(5);
      tyr_tensor *c = tyr_randint_at(S, idt[d], CPU, 1, &sizes[s], -50, 1000003);
      tyr_manual_seed(5);
      tyr_tensor *g = tyr_randint_at(S, idt[d], gpu(), 1, &sizes[s], -50, 1000003);
      expect_same_bits("randint", g, c);
    }
  }
  /* the dropout mask kind, straight through the table, at a large counter */
  for (size_t d = 0; d < 4; d++) {
    int64_t n = 100003;
    tyr_tensor *c = empty_on(CPU, fdt[d], 1, &n), *g = empty_on(gpu(), fdt[d], 1, &n);
    tyr_cpu_backend.random(c, TYR_RAND_BERNOULLI_KEEP, 0.3, 0, 0xDEADBEEFULL, (uint64_t)1 << 40);
    gpu_be()->random(g, TYR_RAND_BERNOULLI_KEEP, 0.3, 0, 0xDEADBEEFULL, (uint64_t)1 << 40);
    expect_same_bits("dropout keep mask", g, c);
  }
  /* and the normals look normal */
  int64_t n = 1 << 20;
  tyr_tensor *g = tyr_randn_at(S, TYR_F64, gpu(), 1, &n, 0, 1);
  double mean = tyr_item_at(S, tyr_mean_at(S, g));
  double var = tyr_item_at(S, tyr_mean_at(S, tyr_square_at(S, g)));
  assert_true(fabs(mean) < 0.01);
  assert_true(fabs(var - 1) < 0.01);
}

/* ---- copies and dtype conversion -------------------------------------------------------- */
static void test_copy_convert(void **state) {
  (void)state;
  REQUIRE_GPU();
  TYR_SCOPE;
  /* every dtype pair, values that every dtype holds */
  for (int from = 0; from < TYR_DTYPE_COUNT; from++) {
    tyr_tensor *c = tyr_randint_at(S, (tyr_dtype)from, CPU, 2, (int64_t[]){31, 17}, 0, 120);
    if (tyr_dtype_is_float((tyr_dtype)from))
      c = tyr_add_at(S, c, RAND((tyr_dtype)from, 0, 0.9, 31, 17)); /* fractions too */
    tyr_tensor *g = to_dev(c, gpu());
    for (int to = 0; to < TYR_DTYPE_COUNT; to++) {
      char what[96];
      snprintf(what, sizeof what, "to_dtype %s -> %s", tyr_dtype_name((tyr_dtype)from),
               tyr_dtype_name((tyr_dtype)to));
      expect_same_bits(what, as_dtype(g, (tyr_dtype)to), as_dtype(c, (tyr_dtype)to));
      /* and from a transposed view */
      snprintf(what, sizeof what, "to_dtype %s -> %s (transposed)", tyr_dtype_name((tyr_dtype)from),
               tyr_dtype_name((tyr_dtype)to));
      expect_same_bits(what, as_dtype(transposed(g, 0, 1), (tyr_dtype)to),
                       as_dtype(transposed(c, 0, 1), (tyr_dtype)to));
    }
  }
  /* strided sources and strided destinations */
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_U8};
  for (int d = 0; d < 4; d++) {
    for (int k = 0; k < L_COUNT; k++) {
      tyr_tensor *c, *g;
      pair_2d((layout_kind)k, dts[d], 37, 41, 0, 100, &c, &g);
      char what[96];
      snprintf(what, sizeof what, "clone %s %s", LAYOUT_NAMES[k], tyr_dtype_name(dts[d]));
      expect_same_bits(what, tyr_clone_at(S, g), tyr_clone_at(S, c));
      /* into a transposed destination */
      tyr_tensor *dc = transposed(empty_on(CPU, dts[d], 2, (int64_t[]){41, 37}), 0, 1);
      tyr_tensor *dg = transposed(empty_on(gpu(), dts[d], 2, (int64_t[]){41, 37}), 0, 1);
      assert_int_equal(tyr_copy_at(S, dc, c), 0);
      assert_int_equal(tyr_copy_at(S, dg, g), 0);
      snprintf(what, sizeof what, "copy %s -> transposed %s", LAYOUT_NAMES[k],
               tyr_dtype_name(dts[d]));
      expect_same_bits(what, dg, dc);
    }
  }
  /* a rank-5 permuted view */
  tyr_tensor *c = RAND(TYR_F32, -1, 1, 2, 3, 4, 5, 6);
  tyr_tensor *g = to_dev(c, gpu());
  tyr_tensor *vc = transposed(transposed(c, 0, 4), 1, 3),
             *vg = transposed(transposed(g, 0, 4), 1, 3);
  expect_same_bits("clone rank-5 permuted view", tyr_clone_at(S, vg), tyr_clone_at(S, vc));
  /* copies between devices into a view */
  tyr_tensor *dst = tyr_zeros_at(S, TYR_F32, gpu(), 2, (int64_t[]){8, 8});
  tyr_tensor *src = RAND(TYR_F32, -1, 1, 8, 8);
  assert_int_equal(tyr_copy_at(S, transposed(dst, 0, 1), src), 0);
  expect_same_bits("cpu -> cuda transposed view", transposed(dst, 0, 1), src);
}

/* tyr_to_dtype_many: the weights of a mixed-precision step cast in one
   launch per 64 tensors, bit for bit what tyr_to_dtype makes (on the GPU
   and on the CPU); sizes around the kernel's 8-element groups, a view that
   starts off a 16-byte boundary, a source of another dtype and a
   transposed one (one at a time), and more than 64 tensors. */
static void test_to_dtype_many(void **state) {
  (void)state;
  REQUIRE_GPU();
  TYR_SCOPE;
  enum { N = 75 };
  tyr_tensor *c[N], *g[N], *outg[N], *outc[N];
  const int64_t sizes[] = {1, 7, 8, 9, 1000, 65537, 3 * 50304};
  for (int i = 0; i < N; i++) {
    int64_t n = sizes[i % 7] + (i / 7);
    c[i] = RAND(TYR_F32, -3, 3, n);
    g[i] = to_dev(c[i], gpu());
  }
  /* off a 16-byte boundary: elements 1.. of a tensor */
  g[3] = tyr_narrow_at(S, to_dev(RAND(TYR_F32, -3, 3, 1001), gpu()), 0, 1, 1000);
  c[3] = to_dev(g[3], CPU);
  const tyr_dtype to[] = {TYR_BF16, TYR_F16, TYR_F64};
  for (int d = 0; d < 3; d++) {
    for (int k = 0; k < 2; k++) { /* the first 64, then all 75 (two launches) */
      int n = k ? N : 64;
      assert_int_equal(tyr_to_dtype_many_at(S, n, g, to[d], outg), 0);
      assert_int_equal(tcu_copy_many_last_launches(), k ? 2 : 1);
      assert_int_equal(tyr_to_dtype_many_at(S, n, c, to[d], outc), 0);
      for (int i = 0; i < n; i++) {
        char what[96];
        snprintf(what, sizeof what, "to_dtype_many f32 -> %s, tensor %d of %d",
                 tyr_dtype_name(to[d]), i, n);
        expect_same_bits(what, outg[i], as_dtype(g[i], to[d]));
        expect_same_bits(what, outg[i], outc[i]);
      }
    }
  }
  /* a bf16 source among f32 ones and a transposed one: copied one at a time */
  tyr_tensor *mixed[4] = {g[0], as_dtype(g[1], TYR_BF16),
                          transposed(to_dev(RAND(TYR_F32, -1, 1, 5, 9), gpu()), 0, 1), g[4]};
  tyr_tensor *outm[4];
  assert_int_equal(tyr_to_dtype_many_at(S, 4, mixed, TYR_F16, outm), 0);
  assert_int_equal(tcu_copy_many_last_launches(), 1);
  for (int i = 0; i < 4; i++) {
    char what[64];
    snprintf(what, sizeof what, "to_dtype_many mixed sources, tensor %d", i);
    expect_same_bits(what, outm[i], as_dtype(mixed[i], TYR_F16));
  }
  /* the gradient of each output reaches its own input */
  tyr_tensor *w[2] = {tyr_requires_grad_e(to_dev(RAND(TYR_F32, -1, 1, 300), gpu()), true),
                      tyr_requires_grad_e(to_dev(RAND(TYR_F32, -1, 1, 40), gpu()), true)};
  tyr_tensor *wb[2];
  assert_int_equal(tyr_to_dtype_many_at(S, 2, w, TYR_BF16, wb), 0);
  tyr_tensor *loss =
      tyr_add_at(S, tyr_sum_at(S, tyr_to_dtype_at(S, wb[0], TYR_F32)),
                 tyr_mul_scalar_at(S, tyr_sum_at(S, tyr_to_dtype_at(S, wb[1], TYR_F32)), 3.0));
  assert_int_equal(tyr_backward_at(S, loss), 0);
  expect_same_bits("to_dtype_many gradient 0", w[0]->grad,
                   tyr_full_at(S, TYR_F32, gpu(), 1, (int64_t[]){300}, 1.0));
  expect_same_bits("to_dtype_many gradient 1", w[1]->grad,
                   tyr_full_at(S, TYR_F32, gpu(), 1, (int64_t[]){40}, 3.0));
}

/* ---- unary kernels (values and derivatives), through the table --------------------------- */
typedef struct {
  const char *name;
  tyr_unary_op op;
  double p0, p1, lo, hi;
} unary_case;

static const unary_case UNARY_KERNEL[] = {
    {"neg", TYR_UN_NEG, 0, 0, -2, 2},
    {"exp", TYR_UN_EXP, 0, 0, -3, 3},
    {"log", TYR_UN_LOG, 0, 0, 0.1, 4},
    {"sqrt", TYR_UN_SQRT, 0, 0, 0.1, 4},
    {"rsqrt", TYR_UN_RSQRT, 0, 0, 0.1, 4},
    {"abs", TYR_UN_ABS, 0, 0, -2, 2},
    {"tanh", TYR_UN_TANH, 0, 0, -3, 3},
    {"sigmoid", TYR_UN_SIGMOID, 0, 0, -5, 5},
    {"relu", TYR_UN_RELU, 0, 0, -2, 2},
    {"relu2", TYR_UN_RELU2, 0, 0, -2, 2},
    {"gelu", TYR_UN_GELU, 0, 0, -4, 4},
    {"gelu_tanh", TYR_UN_GELU_TANH, 0, 0, -4, 4},
    {"silu", TYR_UN_SILU, 0, 0, -5, 5},
    {"softcap", TYR_UN_SOFTCAP, 2.5, 0, -6, 6},
    {"pow", TYR_UN_POW, 2.5, 0, 0.1, 3},
    {"add_scalar", TYR_UN_ADD_SCALAR, 1.5, 0, -2, 2},
    {"mul_scalar", TYR_UN_MUL_SCALAR, -0.75, 0, -2, 2},
    {"rsub_scalar", TYR_UN_RSUB_SCALAR, 2, 0, -2, 2},
    {"rdiv_scalar", TYR_UN_RDIV_SCALAR, 3, 0, 0.5, 2},
    {"clamp", TYR_UN_CLAMP, -0.5, 0.7, -2, 2},
    {"sign", TYR_UN_SIGN, 0, 0, -2, 2},
    {"reciprocal", TYR_UN_RECIPROCAL, 0, 0, 0.5, 2},
    {"square", TYR_UN_SQUARE, 0, 0, -2, 2},
    {"sin", TYR_UN_SIN, 0, 0, -4, 4},
    {"cos", TYR_UN_COS, 0, 0, -4, 4},
    {"softplus", TYR_UN_SOFTPLUS, 0, 0, -25, 25},
    {"leaky_relu", TYR_UN_LEAKY_RELU, 0.1, 0, -2, 2},
};
#define NUNARY_KERNEL (sizeof UNARY_KERNEL / sizeof UNARY_KERNEL[0])

static const tyr_dtype FLOAT_DTYPES[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_F16};

/* CPU kernels take f32/f64: bf16/f16 references are computed in f32 */
static tyr_dtype ref_dtype(tyr_dtype dt) {
  return dt == TYR_F64 ? TYR_F64 : TYR_F32;
}

static void test_unary_kernels(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t u = 0; u < NUNARY_KERNEL; u++) {
    const unary_case *uc = &UNARY_KERNEL[u];
    for (int d = 0; d < 4; d++) {
      for (int k = 0; k < L_COUNT; k++) {
        TYR_SCOPE;
        tyr_dtype dt = FLOAT_DTYPES[d];
        tyr_tensor *xc, *xg, *gc, *gg;
        pair_2d((layout_kind)k, dt, 37, 53, uc->lo, uc->hi, &xc, &xg);
        pair_2d((layout_kind)((k + 1) % L_COUNT), dt, 37, 53, -1, 1, &gc, &gg);
        tyr_tensor *xr = as_dtype(xc, ref_dtype(dt)), *gr = as_dtype(gc, ref_dtype(dt));
        tyr_tensor *yc = empty_like_on(CPU, ref_dtype(dt), xr), *yg = empty_like_on(gpu(), dt, xg);
        C->unary(uc->op, yc, xr, uc->p0, uc->p1);
        G->unary(uc->op, yg, xg, uc->p0, uc->p1);
        char what[128];
        snprintf(what, sizeof what, "unary %s %s %s", uc->name, tyr_dtype_name(dt),
                 LAYOUT_NAMES[k]);
        double tol = tol_for(dt, 2e-6);
        expect_close(what, yg, yc, tol, tol);
        tyr_tensor *dc = empty_like_on(CPU, ref_dtype(dt), xr), *dg = empty_like_on(gpu(), dt, xg);
        C->unary_backward(uc->op, dc, xr, gr, uc->p0, uc->p1);
        G->unary_backward(uc->op, dg, xg, gg, uc->p0, uc->p1);
        snprintf(what, sizeof what, "unary backward %s %s %s", uc->name, tyr_dtype_name(dt),
                 LAYOUT_NAMES[k]);
        expect_close(what, dg, dc, tol, tol);
      }
    }
  }
}

/* GELU's derivative where e^(-x^2/2) underflows and at +-inf: Phi(x) +
   x phi(x) with x phi(x) taken as 0 there (inf * 0 gave NaN), Phi from erfc
   for negative x; the same limits as the CPU's (test_ops_elementwise); NaN
   stays NaN. */
static void test_gelu_grad_limits(void **state) {
  (void)state;
  REQUIRE_GPU();
  const double xs[] = {-INFINITY, -40, -10, -3, -0.75, 0, 0.5, 3, 10, 40, INFINITY, NAN};
  const int n = (int)(sizeof xs / sizeof xs[0]);
  for (int k = 0; k < 2; k++) {
    TYR_SCOPE;
    tyr_dtype dt = k ? TYR_F64 : TYR_F32;
    tyr_tensor *xc = tyr_full_at(S, dt, CPU, 1, (int64_t[]){n}, 0);
    for (int i = 0; i < n; i++) tyr_set_e(xc, xs[i], i);
    tyr_tensor *x = to_dev(xc, gpu());
    tyr_requires_grad_at(S, x, true);
    assert_int_equal(tyr_backward_at(S, tyr_sum_at(S, tyr_gelu_at(S, x))), 0);
    tyr_tensor *g = tyr_to_device_at(S, tyr_grad_e(x), CPU);
    for (int i = 0; i < n; i++) {
      double v = xs[i], got = tyr_get_e(g, i);
      if (isnan(v)) { /* NaN in, NaN out */
        if (!isnan(got)) fail_msg("cuda gelu' %s at NaN: %.17g", tyr_dtype_name(dt), got);
        continue;
      }
      double want = isinf(v) ? (v > 0 ? 1 : 0)
                             : 0.5 * erfc(-v / sqrt(2)) + v * exp(-0.5 * v * v) / sqrt(2 * M_PI);
      double tol = k ? 1e-12 * fmax(fabs(want), 1e-300) : 4e-7;
      if (!(fabs(got - want) <= tol))
        fail_msg("cuda gelu' %s at %g: %.17g, want %.17g", tyr_dtype_name(dt), v, got, want);
    }
  }
}

/* ---- public elementwise ops ------------------------------------------------------------------ */
typedef struct {
  const char *name;
  tyr_tensor *(*fn)(tyr_site, tyr_tensor *);
  double lo, hi;
} unary_op_case;
static const unary_op_case UNARY_OPS[] = {
    {"tyr_neg", tyr_neg_at, -2, 2},
    {"tyr_exp", tyr_exp_at, -2, 2},
    {"tyr_log", tyr_log_at, 0.2, 3},
    {"tyr_sqrt", tyr_sqrt_at, 0.2, 3},
    {"tyr_rsqrt", tyr_rsqrt_at, 0.2, 3},
    {"tyr_abs", tyr_abs_at, -2, 2},
    {"tyr_tanh", tyr_tanh_at, -2, 2},
    {"tyr_sigmoid", tyr_sigmoid_at, -3, 3},
    {"tyr_relu", tyr_relu_at, -2, 2},
    {"tyr_relu2", tyr_relu2_at, -2, 2},
    {"tyr_gelu", tyr_gelu_at, -3, 3},
    {"tyr_gelu_tanh", tyr_gelu_tanh_at, -3, 3},
    {"tyr_silu", tyr_silu_at, -3, 3},
    {"tyr_square", tyr_square_at, -2, 2},
    {"tyr_reciprocal", tyr_reciprocal_at, 0.5, 2},
    {"tyr_sign", tyr_sign_at, -2, 2},
    {"tyr_sin", tyr_sin_at, -3, 3},
    {"tyr_cos", tyr_cos_at, -3, 3},
    {"tyr_softplus", tyr_softplus_at, -3, 3},
};

static void test_unary_ops(void **state) {
  (void)state;
  REQUIRE_GPU();
  for (size_t u = 0; u < sizeof UNARY_OPS / sizeof UNARY_OPS[0]; u++) {
    for (int d = 0; d < 3; d++) {
      TYR_SCOPE;
      tyr_dtype dt = FLOAT_DTYPES[d];
      tyr_tensor *xc, *xg;
      pair_2d(d == 0 ? L_SLICED : L_CONTIG, dt, 5, 1031, UNARY_OPS[u].lo, UNARY_OPS[u].hi, &xc,
              &xg);
      char what[96];
      snprintf(what, sizeof what, "%s %s", UNARY_OPS[u].name, tyr_dtype_name(dt));
      double tol = tol_for(dt, 2e-6);
      expect_close(what, UNARY_OPS[u].fn(S, xg), UNARY_OPS[u].fn(S, xc), tol, tol);
    }
  }
  TYR_SCOPE;
  tyr_tensor *xc, *xg;
  pair_2d(L_TRANSPOSED, TYR_F32, 40, 30, -3, 3, &xc, &xg);
  expect_close("tyr_softcap", tyr_softcap_at(S, xg, 1.7), tyr_softcap_at(S, xc, 1.7), 2e-6, 2e-6);
  expect_close("tyr_clamp", tyr_clamp_at(S, xg, -1, 0.5), tyr_clamp_at(S, xc, -1, 0.5), 0, 0);
  expect_close("tyr_sub_scalar", tyr_sub_scalar_at(S, xg, 0.25), tyr_sub_scalar_at(S, xc, 0.25),
               1e-7, 1e-7);
  expect_close("tyr_div_scalar", tyr_div_scalar_at(S, xg, 3), tyr_div_scalar_at(S, xc, 3), 1e-7,
               1e-7);
  /* a large contiguous tensor: the vector path and the grid-stride loop */
  int64_t n = (1 << 22) + 5;
  tyr_tensor *bc = cpu_rand(TYR_F32, 1, &n, -3, 3), *bg = to_dev(bc, gpu());
  expect_close("tyr_gelu 4M", tyr_gelu_at(S, bg), tyr_gelu_at(S, bc), 2e-6, 2e-6);
  tyr_tensor *hc = as_dtype(bc, TYR_BF16), *hg = to_dev(hc, gpu());
  expect_close("tyr_silu 4M bf16", tyr_silu_at(S, hg), tyr_silu_at(S, hc), 1e-2, 1e-2);
}

typedef struct {
  const char *name;
  tyr_tensor *(*fn)(tyr_site, tyr_tensor *, tyr_tensor *);
  double lo, hi;
  bool ints; /* also run on i32 / i64 */
  bool ties; /* whole-number operands, so that equal values occur */
} binary_case;
static const binary_case BINARY_OPS[] = {
    {"tyr_add", tyr_add_at, -2, 2, true, false},
    {"tyr_sub", tyr_sub_at, -2, 2, true, false},
    {"tyr_mul", tyr_mul_at, -2, 2, true, false},
    {"tyr_div", tyr_div_at, 0.5, 3, true, false},
    {"tyr_pow", tyr_pow_at, 0.2, 2, false, false},
    {"tyr_maximum", tyr_maximum_at, -2, 2, true, true},
    {"tyr_minimum", tyr_minimum_at, -2, 2, true, true},
    {"tyr_eq", tyr_eq_at, 0, 3, true, true},
    {"tyr_ne", tyr_ne_at, 0, 3, true, true},
    {"tyr_lt", tyr_lt_at, -2, 2, true, false},
    {"tyr_le", tyr_le_at, 0, 3, true, true},
    {"tyr_gt", tyr_gt_at, -2, 2, true, false},
    {"tyr_ge", tyr_ge_at, 0, 3, true, true},
};

static void test_binary_ops(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_F16, TYR_I32, TYR_I64};
  for (size_t b = 0; b < sizeof BINARY_OPS / sizeof BINARY_OPS[0]; b++) {
    const binary_case *bc = &BINARY_OPS[b];
    for (int d = 0; d < 6; d++) {
      tyr_dtype dt = dts[d];
      bool integral = !tyr_dtype_is_float(dt);
      if (integral && !bc->ints) continue;
      for (int k = 0; k < L_COUNT; k++) {
        TYR_SCOPE;
        tyr_tensor *ac, *ag, *bc2, *bg;
        double lo = integral ? (bc->lo > 0 ? 1 : -20) : bc->lo, hi = integral ? 20 : bc->hi;
        pair_2d_q((layout_kind)k, dt, 29, 67, lo, hi, bc->ties, &ac, &ag);
        pair_2d_q((layout_kind)((k + 2) % L_COUNT), dt, 29, 67, lo, hi, bc->ties, &bc2, &bg);
        char what[128];
        snprintf(what, sizeof what, "%s %s %s", bc->name, tyr_dtype_name(dt), LAYOUT_NAMES[k]);
        double tol = integral ? 0 : tol_for(dt, 2e-6);
        expect_close(what, bc->fn(S, ag, bg), bc->fn(S, ac, bc2), tol, tol);
      }
    }
  }
  /* row and column broadcasts (stride-0 expansions made by the ops) */
  TYR_SCOPE;
  tyr_tensor *xc = RAND(TYR_F32, -1, 1, 6, 7, 130), *xg = to_dev(xc, gpu());
  tyr_tensor *rc = RAND(TYR_F32, 0.5, 1, 130), *rg = to_dev(rc, gpu());
  tyr_tensor *cc = RAND(TYR_F32, 0.5, 1, 6, 7), *cg = to_dev(cc, gpu());
  expect_close("tyr_add_row", tyr_add_row_at(S, xg, rg), tyr_add_row_at(S, xc, rc), 1e-6, 1e-6);
  expect_close("tyr_div_row", tyr_div_row_at(S, xg, rg), tyr_div_row_at(S, xc, rc), 1e-6, 1e-6);
  expect_close("tyr_mul_col", tyr_mul_col_at(S, xg, cg), tyr_mul_col_at(S, xc, cc), 1e-6, 1e-6);
  expect_close("tyr_sub_col", tyr_sub_col_at(S, xg, cg), tyr_sub_col_at(S, xc, cc), 1e-6, 1e-6);
  /* NaN handling of maximum/minimum: a NaN wins */
  float va[4] = {1, NAN, 3, NAN}, vb[4] = {2, 0, NAN, NAN};
  tyr_tensor *a = tyr_from_host_at(S, va, TYR_F32, CPU, 1, (int64_t[]){4});
  tyr_tensor *b = tyr_from_host_at(S, vb, TYR_F32, CPU, 1, (int64_t[]){4});
  expect_close("tyr_maximum NaN", tyr_maximum_at(S, to_dev(a, gpu()), to_dev(b, gpu())),
               tyr_maximum_at(S, a, b), 0, 0);
}

static void test_where(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_I64, TYR_U8};
  for (int d = 0; d < 5; d++) {
    for (int k = 0; k < L_COUNT; k++) {
      TYR_SCOPE;
      tyr_tensor *ac, *ag, *bc, *bg, *mc, *mg;
      pair_2d((layout_kind)k, dts[d], 23, 45, 0, 50, &ac, &ag);
      pair_2d((layout_kind)((k + 1) % L_COUNT), dts[d], 23, 45, 0, 50, &bc, &bg);
      pair_2d((layout_kind)((k + 3) % L_COUNT), TYR_F32, 23, 45, -1, 1, &mc, &mg);
      tyr_tensor *zc = tyr_zeros_at(S, TYR_F32, CPU, 2, (int64_t[]){23, 45});
      tyr_tensor *condc = tyr_gt_at(S, mc, zc), *condg = tyr_gt_at(S, mg, to_dev(zc, gpu()));
      char what[96];
      snprintf(what, sizeof what, "tyr_where %s %s", tyr_dtype_name(dts[d]), LAYOUT_NAMES[k]);
      expect_same_bits(what, tyr_where_at(S, condg, ag, bg), tyr_where_at(S, condc, ac, bc));
      if (tyr_dtype_is_float(dts[d])) {
        snprintf(what, sizeof what, "tyr_masked_fill %s %s", tyr_dtype_name(dts[d]),
                 LAYOUT_NAMES[k]);
        expect_same_bits(what, tyr_masked_fill_at(S, ag, condg, -1e4),
                         tyr_masked_fill_at(S, ac, condc, -1e4));
      }
    }
  }
}

/* ---- reductions ------------------------------------------------------------------------------ */
typedef struct {
  int rank;
  int64_t shape[4];
} shape_case;
static const shape_case REDUCE_SHAPES[] = {
    {1, {1}},        {1, {1000003}},      {2, {3, 70001}}, {2, {70001, 3}},
    {3, {7, 33, 5}}, {3, {2, 100000, 3}}, {2, {512, 768}}, {4, {2, 3, 1, 9}},
    {2, {1, 40}},    {3, {4, 0, 3}},
};

static void test_reduce_kernels(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  const char *names[] = {"sum", "mean", "max", "min", "argmax", "argmin"};
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_I32};
  for (size_t s = 0; s < sizeof REDUCE_SHAPES / sizeof REDUCE_SHAPES[0]; s++) {
    const shape_case *sc = &REDUCE_SHAPES[s];
    int64_t numel = 1;
    for (int i = 0; i < sc->rank; i++) numel *= sc->shape[i];
    for (int d = 0; d < 4; d++) {
      tyr_dtype dt = dts[d];
      if (numel > 200000 && d >= 2) continue;
      TYR_SCOPE;
      tyr_tensor *x = cpu_rand(TYR_F64, sc->rank, sc->shape, -1, 1);
      if (dt == TYR_I32) x = tyr_mul_scalar_at(S, x, 1000);
      x = as_dtype(x, dt);
      tyr_tensor *xr = as_dtype(x, ref_dtype(dt)), *xg = to_dev(x, gpu());
      for (int op = 0; op < TYR_RED_COUNT; op++) {
        if (dt == TYR_I32 && op == TYR_RED_MEAN) continue;
        for (int dim = -1; dim < sc->rank; dim++) {
          TYR_SCOPE;
          int64_t sh[4];
          int rank = dim < 0 ? 0 : sc->rank;
          for (int i = 0; i < rank; i++) sh[i] = i == dim ? 1 : sc->shape[i];
          bool arg = op == TYR_RED_ARGMAX || op == TYR_RED_ARGMIN;
          tyr_dtype odt = arg || dt == TYR_I32 ? TYR_I64 : dt;
          tyr_tensor *oc = empty_on(CPU, arg || dt == TYR_I32 ? TYR_I64 : ref_dtype(dt), rank, sh);
          tyr_tensor *og = empty_on(gpu(), odt, rank, sh);
          C->reduce((tyr_reduce_op)op, oc, dt == TYR_I32 ? x : xr, dim);
          G->reduce((tyr_reduce_op)op, og, xg, dim);
          char what[128], sb[64];
          snprintf(what, sizeof what, "reduce %s dim %d of %s %s", names[op], dim,
                   tyr_shape_str(sc->shape, sc->rank, sb, sizeof sb), tyr_dtype_name(dt));
          double n = dim < 0 ? (double)numel : (double)sc->shape[dim];
          if (arg || op == TYR_RED_MAX || op == TYR_RED_MIN || dt == TYR_I32)
            expect_close(what, og, oc, 0, 0);
          else if (dt == TYR_BF16)
            expect_close(what, og, oc, 1e-2, 1e-2 * sqrt(n + 1));
          else /* f32 inputs are summed in double on both */
            expect_close(what, og, oc, 1e-6, 1e-9 * (n + 1));
        }
      }
    }
  }
  /* ties and NaN: the first index of the best value, the first NaN wins */
  TYR_SCOPE;
  float v[10] = {1, 5, 5, -2, 5, NAN, 0, NAN, -2, 3};
  tyr_tensor *x = tyr_from_host_at(S, v, TYR_F32, CPU, 2, (int64_t[]){2, 5});
  tyr_tensor *xg = to_dev(x, gpu());
  for (int op = TYR_RED_MAX; op <= TYR_RED_ARGMIN; op++) {
    for (int dim = -1; dim < 2; dim++) {
      int64_t sh[2] = {dim == 0 ? 1 : 2, dim == 1 ? 1 : 5};
      int rank = dim < 0 ? 0 : 2;
      bool arg = op >= TYR_RED_ARGMAX;
      tyr_tensor *oc = empty_on(CPU, arg ? TYR_I64 : TYR_F32, rank, sh);
      tyr_tensor *og = empty_on(gpu(), arg ? TYR_I64 : TYR_F32, rank, sh);
      C->reduce((tyr_reduce_op)op, oc, x, dim);
      G->reduce((tyr_reduce_op)op, og, xg, dim);
      char what[64];
      snprintf(what, sizeof what, "reduce %s dim %d with ties and NaN", names[op], dim);
      expect_close(what, og, oc, 0, 0);
    }
  }
}

static void test_reduce_ops(void **state) {
  (void)state;
  REQUIRE_GPU();
  for (int d = 0; d < 3; d++) {
    for (int k = 0; k < L_COUNT; k++) {
      TYR_SCOPE;
      tyr_dtype dt = FLOAT_DTYPES[d];
      tyr_tensor *xc, *xg;
      pair_2d((layout_kind)k, dt, 300, 211, -1, 1, &xc, &xg);
      double tol = tol_for(dt, 1e-6);
      char what[96];
      snprintf(what, sizeof what, "tyr_sum %s %s", tyr_dtype_name(dt), LAYOUT_NAMES[k]);
      expect_close(what, tyr_sum_at(S, xg), tyr_sum_at(S, xc), tol, tol * 10);
      for (int dim = 0; dim < 2; dim++) {
        snprintf(what, sizeof what, "tyr_sum_dim %d %s %s", dim, tyr_dtype_name(dt),
                 LAYOUT_NAMES[k]);
        expect_close(what, tyr_sum_dim_at(S, xg, dim, false), tyr_sum_dim_at(S, xc, dim, false),
                     tol, tol * 10);
        snprintf(what, sizeof what, "tyr_mean_dim %d keepdim %s %s", dim, tyr_dtype_name(dt),
                 LAYOUT_NAMES[k]);
        expect_close(what, tyr_mean_dim_at(S, xg, dim, true), tyr_mean_dim_at(S, xc, dim, true),
                     tol, tol);
      }
      snprintf(what, sizeof what, "tyr_mean %s %s", tyr_dtype_name(dt), LAYOUT_NAMES[k]);
      expect_close(what, tyr_mean_at(S, xg), tyr_mean_at(S, xc), tol, tol);
    }
  }
}

/* ---- matmul ------------------------------------------------------------------------------------
 */
typedef struct {
  int64_t batch[2]; /* 0: absent */
  int64_t M, K, N;
  bool ta, tb;      /* a / b given as transposed views */
  bool broadcast_a; /* a's batch dims expanded with stride 0 */
} matmul_case;
static const matmul_case MATMUL_SHAPES[] = {
    {{0, 0}, 1, 1, 1, false, false, false},       {{0, 0}, 7, 5, 3, false, false, false},
    {{0, 0}, 33, 17, 65, true, false, false},     {{0, 0}, 33, 17, 65, false, true, false},
    {{0, 0}, 33, 17, 65, true, true, false},      {{0, 0}, 1, 129, 1, false, false, false},
    {{0, 0}, 257, 513, 129, false, false, false}, {{0, 0}, 128, 256, 64, true, true, false},
    {{3, 0}, 9, 11, 13, false, false, false},     {{3, 0}, 9, 11, 13, true, true, false},
    {{4, 0}, 16, 32, 8, false, true, true},       {{2, 3}, 7, 8, 9, false, false, false},
    {{2, 3}, 7, 8, 9, true, false, true},         {{2, 5}, 64, 64, 64, false, true, false},
};

/* a [batch..., M, K]: contiguous, or the transpose of a [batch..., K, M] */
static void matmul_operand(tyr_dtype dt, int nb, const int64_t *batch, int64_t R, int64_t C,
                           bool trans, bool bcast, tyr_tensor **c, tyr_tensor **g) {
  int64_t sh[4];
  int r = 0;
  for (int i = 0; i < nb; i++) sh[r++] = bcast ? 1 : batch[i];
  sh[r++] = trans ? C : R;
  sh[r++] = trans ? R : C;
  tyr_tensor *base = cpu_rand(dt, r, sh, -1, 1), *bg = to_dev(base, gpu());
  if (trans) {
    base = transposed(base, r - 2, r - 1);
    bg = transposed(bg, r - 2, r - 1);
  }
  if (bcast) {
    int64_t full[4];
    for (int i = 0; i < nb; i++) full[i] = batch[i];
    full[nb] = R;
    full[nb + 1] = C;
    base = tyr_expand_at(S, base, r, full);
    bg = tyr_expand_at(S, bg, r, full);
  }
  *c = base;
  *g = bg;
}

static void test_matmul(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t m = 0; m < sizeof MATMUL_SHAPES / sizeof MATMUL_SHAPES[0]; m++) {
    const matmul_case *mc = &MATMUL_SHAPES[m];
    int nb = (mc->batch[0] > 0) + (mc->batch[1] > 0);
    for (int d = 0; d < 4; d++) {
      TYR_SCOPE;
      tyr_dtype dt = FLOAT_DTYPES[d];
      tyr_tensor *ac, *ag, *bc, *bg;
      matmul_operand(dt, nb, mc->batch, mc->M, mc->K, mc->ta, mc->broadcast_a, &ac, &ag);
      matmul_operand(dt, nb, mc->batch, mc->K, mc->N, mc->tb, false, &bc, &bg);
      int64_t osh[4];
      int r = 0;
      for (int i = 0; i < nb; i++) osh[r++] = mc->batch[i];
      osh[r++] = mc->M;
      osh[r++] = mc->N;
      tyr_dtype rdt = ref_dtype(dt);
      tyr_tensor *ar = dt == rdt ? ac : as_dtype(ac, rdt), *br = dt == rdt ? bc : as_dtype(bc, rdt);
      tyr_tensor *oc = empty_on(CPU, rdt, r, osh), *og = empty_on(gpu(), dt, r, osh);
      C->matmul(oc, ar, br);
      G->matmul(og, ag, bg);
      char what[160];
      snprintf(what, sizeof what, "matmul [%lldx%lld]%s @ [%lldx%lld]%s batch %lldx%lld%s %s",
               (long long)mc->M, (long long)mc->K, mc->ta ? "^T" : "", (long long)mc->K,
               (long long)mc->N, mc->tb ? "^T" : "", (long long)mc->batch[0],
               (long long)mc->batch[1], mc->broadcast_a ? " (a broadcast)" : "",
               tyr_dtype_name(dt));
      double k = (double)(mc->K + 1);
      if (dt == TYR_F64)
        expect_close(what, og, oc, 1e-12, 1e-13 * k);
      else if (dt == TYR_F32)
        expect_close(what, og, oc, 1e-5, 1e-6 * k);
      else
        expect_close(what, og, oc, 1e-2, 1e-2 * sqrt(k));
    }
  }
  /* K = 0: zeros (checked on the GPU alone: BLAS rejects a zero leading dimension) */
  TYR_SCOPE;
  tyr_tensor *a = tyr_zeros_at(S, TYR_F32, gpu(), 2, (int64_t[]){5, 0});
  tyr_tensor *b = tyr_zeros_at(S, TYR_F32, gpu(), 2, (int64_t[]){0, 4});
  tyr_tensor *o = tyr_full_at(S, TYR_F32, gpu(), 2, (int64_t[]){5, 4}, 7.0);
  G->matmul(o, a, b);
  expect_same_bits("matmul K = 0", o, tyr_zeros_at(S, TYR_F32, CPU, 2, (int64_t[]){5, 4}));
}

/* ---- softmax, layer norm, cross entropy
 * ------------------------------------------------------------ */
static const int64_t ROW_SHAPES[][2] = {{1, 1},    {5, 10},   {300, 7},  {64, 100},
                                        {3, 1000}, {17, 768}, {2, 5000}, {4, 50257}};
#define NROW_SHAPES (sizeof ROW_SHAPES / sizeof ROW_SHAPES[0])

static void test_softmax(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t s = 0; s < NROW_SHAPES; s++) {
    for (int d = 0; d < 3; d++) {
      for (int lg = 0; lg < 2; lg++) {
        TYR_SCOPE;
        tyr_dtype dt = FLOAT_DTYPES[d], rdt = ref_dtype(dt);
        int64_t R = ROW_SHAPES[s][0], N = ROW_SHAPES[s][1];
        tyr_tensor *x = RAND(dt, -4, 4, R, N), *gy = RAND(dt, -1, 1, R, N);
        tyr_tensor *xr = as_dtype(x, rdt), *gr = as_dtype(gy, rdt);
        tyr_tensor *yc = empty_like_on(CPU, rdt, xr), *yg = empty_like_on(gpu(), dt, x);
        C->softmax(yc, xr, lg);
        G->softmax(yg, to_dev(x, gpu()), lg);
        char what[128];
        snprintf(what, sizeof what, "%s [%lld, %lld] %s", lg ? "log_softmax" : "softmax",
                 (long long)R, (long long)N, tyr_dtype_name(dt));
        double tol = tol_for(dt, 1e-5);
        expect_close(what, yg, yc, tol, tol * 1e-2);
        /* backward from the same y on both (the bf16 one, widened, for the CPU) */
        tyr_tensor *yref = as_dtype(yg, rdt);
        tyr_tensor *yrc = to_dev(yref, CPU);
        tyr_tensor *gxc = empty_like_on(CPU, rdt, xr), *gxg = empty_like_on(gpu(), dt, x);
        C->softmax_backward(gxc, yrc, gr, lg);
        G->softmax_backward(gxg, yg, to_dev(gy, gpu()), lg);
        snprintf(what, sizeof what, "%s backward [%lld, %lld] %s", lg ? "log_softmax" : "softmax",
                 (long long)R, (long long)N, tyr_dtype_name(dt));
        expect_close(what, gxg, gxc, tol, dt == TYR_F32 ? 1e-6 : tol);
      }
    }
  }
}

/* Rows that fit in a warp's registers (n a multiple of the 16-byte vector,
 * up to 1024 f32 / 1536 bf16 columns) take the warp-per-row kernels; the
 * others, and f64, the generic ones.  4100 rows: several rows per warp and
 * several blocks' partial column sums; 1040: a partly filled last vector
 * group in bf16, the generic kernel in f32; 9000 x 768 (GPT-2's width):
 * rows enough for the one-pass backward (ln_bw_fused, 64 rows an SM);
 * 768 x 128 (the 4x128 char model's) and the other vectorised shapes of
 * up to 2048 rows: the column sums in one launch (ln_cols_small); 3000 x
 * 100: the two-pass column sums with a partly filled column block. */
static const int64_t LN_SHAPES[][2] = {{5, 10},   {300, 7},    {64, 100},   {3, 1000},
                                       {17, 768}, {2, 5000},   {4100, 768}, {33, 1536},
                                       {9, 1040}, {9000, 768}, {768, 128},  {3000, 100}};

static void test_layer_norm(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t s = 0; s < sizeof LN_SHAPES / sizeof LN_SHAPES[0]; s++) {
    for (int d = 0; d < 3; d++) {
      for (int variant = 0; variant < 4; variant++) { /* 0 w+b, 1 none, 2 rms w, 3 rms none */
        TYR_SCOPE;
        tyr_dtype dt = FLOAT_DTYPES[d], rdt = ref_dtype(dt);
        int64_t R = LN_SHAPES[s][0], N = LN_SHAPES[s][1];
        bool rms = variant >= 2, aff = variant == 0 || variant == 2;
        tyr_tensor *x = RAND(dt, -3, 5, R, N), *gy = RAND(dt, -1, 1, R, N);
        tyr_tensor *w = aff ? RAND(dt, 0.5, 1.5, N) : NULL,
                   *b = aff && !rms ? RAND(dt, -1, 1, N) : NULL;
        tyr_tensor *xr = as_dtype(x, rdt), *gr = as_dtype(gy, rdt);
        tyr_tensor *wr = w ? as_dtype(w, rdt) : NULL, *br = b ? as_dtype(b, rdt) : NULL;
        tyr_tensor *xg = to_dev(x, gpu()), *gg = to_dev(gy, gpu());
        tyr_tensor *wg = w ? to_dev(w, gpu()) : NULL, *bg = b ? to_dev(b, gpu()) : NULL;
        tyr_tensor *yc = empty_like_on(CPU, rdt, xr), *yg = empty_like_on(gpu(), dt, x);
        tyr_tensor *mc = rms ? NULL : empty_on(CPU, rdt, 1, &R), *rc = empty_on(CPU, rdt, 1, &R);
        tyr_tensor *mg = rms ? NULL : empty_on(gpu(), rdt, 1, &R),
                   *rg = empty_on(gpu(), rdt, 1, &R);
        C->layer_norm(yc, mc, rc, xr, wr, br, 1e-5, NULL, NULL);
        G->layer_norm(yg, mg, rg, xg, wg, bg, 1e-5, NULL, NULL);
        char what[128];
        const char *vn[] = {"layer_norm w b", "layer_norm", "rms_norm w", "rms_norm"};
        double tol = tol_for(dt, 1e-5);
        snprintf(what, sizeof what, "%s [%lld, %lld] %s", vn[variant], (long long)R, (long long)N,
                 tyr_dtype_name(dt));
        expect_close(what, yg, yc, tol, tol);
        if (mc) expect_close("  mean", mg, mc, tol, tol);
        expect_close("  rstd", rg, rc, tol, tol);
        /* with a residual r: the norm of x + r, the sum stored as the rows
           are read; the bits of the addition kernel followed by the norm,
           and the CPU's fused form against its own composition */
        {
          tyr_tensor *res = RAND(dt, -2, 2, R, N), *resg = to_dev(res, gpu());
          tyr_tensor *s1 = empty_like_on(gpu(), dt, x), *s2 = empty_like_on(gpu(), dt, x);
          tyr_tensor *y1 = empty_like_on(gpu(), dt, x), *y2 = empty_like_on(gpu(), dt, x);
          tyr_tensor *m1 = rms ? NULL : empty_on(gpu(), rdt, 1, &R),
                     *r1 = empty_on(gpu(), rdt, 1, &R);
          tyr_tensor *m2 = rms ? NULL : empty_on(gpu(), rdt, 1, &R),
                     *r2 = empty_on(gpu(), rdt, 1, &R);
          G->layer_norm(y1, m1, r1, xg, wg, bg, 1e-5, s1, resg);
          G->binary(TYR_BIN_ADD, s2, xg, resg);
          G->layer_norm(y2, m2, r2, s2, wg, bg, 1e-5, NULL, NULL);
          snprintf(what, sizeof what, "%s with a residual [%lld, %lld] %s: the sum", vn[variant],
                   (long long)R, (long long)N, tyr_dtype_name(dt));
          expect_same_bits(what, s1, s2);
          expect_same_bits("  the norm", y1, y2);
          if (m1) expect_same_bits("  mean", m1, m2);
          expect_same_bits("  rstd", r1, r2);
          tyr_tensor *rr = as_dtype(res, rdt);
          tyr_tensor *sc1 = empty_like_on(CPU, rdt, xr), *sc2 = empty_like_on(CPU, rdt, xr);
          tyr_tensor *yc1 = empty_like_on(CPU, rdt, xr), *yc2 = empty_like_on(CPU, rdt, xr);
          tyr_tensor *rc1 = empty_on(CPU, rdt, 1, &R), *rc2 = empty_on(CPU, rdt, 1, &R);
          tyr_tensor *mc1 = rms ? NULL : empty_on(CPU, rdt, 1, &R),
                     *mc2 = rms ? NULL : empty_on(CPU, rdt, 1, &R);
          C->layer_norm(yc1, mc1, rc1, xr, wr, br, 1e-5, sc1, rr);
          C->binary(TYR_BIN_ADD, sc2, xr, rr);
          C->layer_norm(yc2, mc2, rc2, sc2, wr, br, 1e-5, NULL, NULL);
          expect_same_bits("  the CPU's sum", sc1, sc2);
          expect_same_bits("  the CPU's norm", yc1, yc2);
          expect_close("  the norm against the CPU's", y1, yc1, tol, tol);
        }
        tyr_tensor *gxc = empty_like_on(CPU, rdt, xr), *gxg = empty_like_on(gpu(), dt, x);
        tyr_tensor *gwc = w ? empty_on(CPU, rdt, 1, &N) : NULL,
                   *gwg = w ? empty_on(gpu(), dt, 1, &N) : NULL;
        tyr_tensor *gbc = b ? empty_on(CPU, rdt, 1, &N) : NULL,
                   *gbg = b ? empty_on(gpu(), dt, 1, &N) : NULL;
        /* both backwards from the GPU's statistics */
        tyr_tensor *mrc = mg ? to_dev(mg, CPU) : NULL, *rrc = to_dev(rg, CPU);
        C->layer_norm_backward(gxc, gwc, gbc, gr, xr, wr, mrc, rrc, false, NULL);
        G->layer_norm_backward(gxg, gwg, gbg, gg, xg, wg, mg, rg, false, NULL);
        snprintf(what, sizeof what, "%s backward [%lld, %lld] %s", vn[variant], (long long)R,
                 (long long)N, tyr_dtype_name(dt));
        expect_close(what, gxg, gxc, tol, dt == TYR_F32 ? 1e-5 : tol);
        if (gwc) expect_close("  dw", gwg, gwc, tol, tol * sqrt((double)R));
        if (gbc) expect_close("  db", gbg, gbc, tol, tol * sqrt((double)R));
        /* add_gx: the input gradient added to what gx holds, in the same
           pass: each backend's is its own plain gradient plus the addend,
           to rounding (the last product and the addition may be one fused
           multiply-add); the GPU's with the parameter gradients again, so
           that the one-pass kernel adds too */
        tyr_tensor *acc = RAND(dt, -2, 2, R, N);
        tyr_tensor *accc = tyr_clone_at(S, as_dtype(acc, rdt)), *accg = to_dev(acc, gpu());
        tyr_tensor *want_c = tyr_add_at(S, as_dtype(acc, rdt), gxc);
        tyr_tensor *want_g = tyr_add_at(S, accg, gxg);
        C->layer_norm_backward(accc, NULL, NULL, gr, xr, wr, mrc, rrc, true, NULL);
        G->layer_norm_backward(accg, gwg, gbg, gg, xg, wg, mg, rg, true, NULL);
        expect_close("  added to gx (CPU)", accc, want_c, 1e-6, 1e-6);
        expect_close("  added to gx", accg, want_g, tol, dt == TYR_F32 ? 1e-6 : 2 * tol);
        if (gwc) expect_close("  dw (adding)", gwg, gwc, tol, tol * sqrt((double)R));
        if (gbc) expect_close("  db (adding)", gbg, gbc, tol, tol * sqrt((double)R));
      }
    }
  }
}

/* |got - want| <= frac * max |want| + atol (defined with the MLP tests) */
static void expect_close_scaled(const char *what, tyr_tensor *got, tyr_tensor *want, double frac,
                                double atol);

/* The mixed-precision norm and residual add (tyr_layer_norm_to,
 * tyr_residual_add): an f32 x with the result (or the gradient, or the
 * addend) in bf16/f16.  The kernels read and write the 16-bit operand
 * directly; each must give the bits of the same kernel in f32 followed by
 * a conversion, on the vectorised rows and on the generic ones.  Then the
 * ops against the CPU, gradients included. */
static void test_mixed_precision_norm_add(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be();
  const tyr_dtype hdts[] = {TYR_BF16, TYR_F16};
  for (size_t s = 0; s < sizeof LN_SHAPES / sizeof LN_SHAPES[0]; s++)
    for (int d = 0; d < 2; d++)
      for (int variant = 0; variant < 4; variant++) { /* 0 w+b, 1 none, 2 rms w, 3 rms none */
        TYR_SCOPE;
        tyr_dtype hdt = hdts[d];
        int64_t R = LN_SHAPES[s][0], N = LN_SHAPES[s][1];
        bool rms = variant >= 2, aff = variant == 0 || variant == 2;
        tyr_tensor *xg = to_dev(RAND(TYR_F32, -3, 5, R, N), gpu());
        tyr_tensor *wg = aff ? to_dev(RAND(TYR_F32, 0.5, 1.5, N), gpu()) : NULL;
        tyr_tensor *bg = aff && !rms ? to_dev(RAND(TYR_F32, -1, 1, N), gpu()) : NULL;
        tyr_tensor *gh = to_dev(as_dtype(RAND(TYR_F32, -1, 1, R, N), hdt), gpu());
        tyr_tensor *yh = empty_on(gpu(), hdt, 2, (int64_t[]){R, N});
        tyr_tensor *yf = empty_on(gpu(), TYR_F32, 2, (int64_t[]){R, N});
        tyr_tensor *m[2], *r[2];
        for (int k = 0; k < 2; k++) {
          m[k] = rms ? NULL : empty_on(gpu(), TYR_F32, 1, &R);
          r[k] = empty_on(gpu(), TYR_F32, 1, &R);
        }
        G->layer_norm(yh, m[0], r[0], xg, wg, bg, 1e-5, NULL, NULL);
        G->layer_norm(yf, m[1], r[1], xg, wg, bg, 1e-5, NULL, NULL);
        char what[128];
        const char *vn[] = {"layer_norm w b", "layer_norm", "rms_norm w", "rms_norm"};
        snprintf(what, sizeof what, "%s f32 -> %s [%lld, %lld]", vn[variant], tyr_dtype_name(hdt),
                 (long long)R, (long long)N);
        expect_same_bits(what, yh, as_dtype(yf, hdt));
        if (m[0]) expect_same_bits("  mean", m[0], m[1]);
        expect_same_bits("  rstd", r[0], r[1]);
        /* with a 16-bit residual beside the f32 x (a block's output added
           to the stream by the next norm): the mixed addition kernel
           followed by the norm, bit for bit */
        {
          tyr_tensor *rh = to_dev(as_dtype(RAND(TYR_F32, -2, 2, R, N), hdt), gpu());
          tyr_tensor *s1 = empty_on(gpu(), TYR_F32, 2, (int64_t[]){R, N}),
                     *s2 = empty_on(gpu(), TYR_F32, 2, (int64_t[]){R, N});
          tyr_tensor *y1 = empty_on(gpu(), hdt, 2, (int64_t[]){R, N}),
                     *y2 = empty_on(gpu(), hdt, 2, (int64_t[]){R, N});
          G->layer_norm(y1, m[0], r[0], xg, wg, bg, 1e-5, s1, rh);
          G->binary(TYR_BIN_ADD, s2, xg, rh);
          G->layer_norm(y2, m[1], r[1], s2, wg, bg, 1e-5, NULL, NULL);
          snprintf(what, sizeof what, "%s f32 + %s residual -> %s [%lld, %lld]: the sum",
                   vn[variant], tyr_dtype_name(hdt), tyr_dtype_name(hdt), (long long)R,
                   (long long)N);
          expect_same_bits(what, s1, s2);
          expect_same_bits("  the norm", y1, y2);
          if (m[0]) expect_same_bits("  mean", m[0], m[1]);
          expect_same_bits("  rstd", r[0], r[1]);
          G->layer_norm(yf, m[1], r[1], xg, wg, bg, 1e-5, NULL, NULL); /* as before */
        }
        tyr_tensor *gx[2], *gw[2], *gb[2];
        for (int k = 0; k < 2; k++) {
          gx[k] = empty_on(gpu(), TYR_F32, 2, (int64_t[]){R, N});
          gw[k] = wg ? empty_on(gpu(), TYR_F32, 1, &N) : NULL;
          gb[k] = bg ? empty_on(gpu(), TYR_F32, 1, &N) : NULL;
          G->layer_norm_backward(gx[k], gw[k], gb[k], k ? as_dtype(gh, TYR_F32) : gh, xg, wg, m[1],
                                 r[1], false, NULL);
        }
        snprintf(what, sizeof what, "%s backward, gy %s [%lld, %lld]", vn[variant],
                 tyr_dtype_name(hdt), (long long)R, (long long)N);
        expect_same_bits(what, gx[0], gx[1]);
        if (gw[0]) expect_same_bits("  dw", gw[0], gw[1]);
        if (gb[0]) expect_same_bits("  db", gb[0], gb[1]);
        /* the input gradient added to the residual stream's in the same pass:
           the addition after the plain kernel, to rounding */
        tyr_tensor *accg = to_dev(RAND(TYR_F32, -2, 2, R, N), gpu());
        tyr_tensor *want = tyr_add_at(S, accg, gx[0]);
        G->layer_norm_backward(accg, gw[0], gb[0], gh, xg, wg, m[1], r[1], true, NULL);
        expect_close("  added to gx", accg, want, 1e-6, 1e-6);
        /* gx_cast: the finished gradient also stored in 16 bits, adding and
           not, with and without the parameter gradients (the one-pass
           kernel and the row kernel): the bits of the conversion of gx */
        for (int add = 0; add < 2; add++)
          for (int params = 0; params < 2; params++) {
            tyr_tensor *acc2 = to_dev(RAND(TYR_F32, -2, 2, R, N), gpu());
            tyr_tensor *gxh = empty_on(gpu(), hdt, 2, (int64_t[]){R, N});
            G->layer_norm_backward(acc2, params ? gw[0] : NULL, params ? gb[0] : NULL, gh, xg, wg,
                                   m[1], r[1], add, gxh);
            snprintf(what, sizeof what, "  gx and its %s copy (add %d, params %d)",
                     tyr_dtype_name(hdt), add, params);
            expect_same_bits(what, gxh, as_dtype(acc2, hdt));
          }
        /* the residual add: contiguous (vectorised and tail) and a view at an odd offset */
        snprintf(what, sizeof what, "residual_add f32 + %s [%lld, %lld]", tyr_dtype_name(hdt),
                 (long long)R, (long long)N);
        expect_same_bits(what, tyr_residual_add_at(S, xg, gh),
                         tyr_add_at(S, xg, as_dtype(gh, TYR_F32)));
        if (R * N > 2) {
          int64_t n1 = R * N - 1;
          tyr_tensor *x1 = tyr_narrow_at(S, tyr_reshape_at(S, xg, 1, (int64_t[]){R * N}), 0, 1, n1);
          tyr_tensor *h1 = tyr_narrow_at(S, tyr_reshape_at(S, gh, 1, (int64_t[]){R * N}), 0, 0, n1);
          expect_same_bits("  at an odd offset", tyr_residual_add_at(S, x1, h1),
                           tyr_add_at(S, x1, as_dtype(h1, TYR_F32)));
          /* strided operands (transposed views) */
          tyr_tensor *xt = tyr_transpose_at(S, xg, 0, 1), *ht = tyr_transpose_at(S, gh, 0, 1);
          expect_same_bits("  transposed", tyr_residual_add_at(S, xt, ht),
                           tyr_add_at(S, xt, as_dtype(ht, TYR_F32)));
        }
      }
  /* the ops with their gradients, CUDA against the CPU */
  for (int d = 0; d < 2; d++)
    for (int rms = 0; rms < 2; rms++) {
      TYR_SCOPE;
      tyr_dtype hdt = hdts[d];
      tyr_tensor *in[2][4] = {{RAND(TYR_F32, -3, 5, 4, 33, 768), RAND(TYR_F32, 0.5, 1.5, 768),
                               RAND(TYR_F32, -1, 1, 768),
                               as_dtype(RAND(TYR_F32, -1, 1, 4, 33, 768), hdt)}};
      for (int i = 0; i < 4; i++) in[1][i] = to_dev(in[0][i], gpu());
      tyr_tensor *gy = RAND(TYR_F32, -1, 1, 4, 33, 768);
      tyr_tensor *out[2], *g[2][4];
      for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 4; i++) tyr_requires_grad_at(S, in[k][i], true);
        tyr_tensor *x = tyr_residual_add_at(S, in[k][0], in[k][3]);
        out[k] = rms ? tyr_rms_norm_to_at(S, x, in[k][1], 1e-5, hdt)
                     : tyr_layer_norm_to_at(S, x, in[k][1], in[k][2], 1e-5, hdt);
        assert_non_null(out[k]);
        assert_int_equal(out[k]->dtype, hdt);
        tyr_tensor *gk = as_dtype(k ? to_dev(gy, gpu()) : gy, hdt);
        assert_int_equal(tyr_backward_with_at(S, out[k], gk), 0);
        for (int i = 0; i < 4; i++) g[k][i] = tyr_grad_e(in[k][i]);
      }
      char what[96];
      snprintf(what, sizeof what, "%s_to(residual_add) -> %s", rms ? "rms_norm" : "layer_norm",
               tyr_dtype_name(hdt));
      expect_close(what, out[1], out[0], 1e-2, 1e-2);
      const char *names[] = {"dx", "dw", "db", "dy"};
      for (int i = 0; i < 4; i++) {
        if (rms && i == 2) continue;
        char w2[128];
        snprintf(w2, sizeof w2, "%s %s", what, names[i]);
        expect_close_scaled(w2, g[1][i], g[0][i], 2e-2, 1e-3);
      }
    }
}

static void test_cross_entropy(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t s = 0; s < NROW_SHAPES; s++) {
    for (int d = 0; d < 3; d++) {
      for (int it = 0; it < 2; it++) {
        TYR_SCOPE;
        tyr_dtype dt = FLOAT_DTYPES[d], rdt = ref_dtype(dt), idt = it ? TYR_I32 : TYR_I64;
        int64_t R = ROW_SHAPES[s][0], V = ROW_SHAPES[s][1];
        tyr_tensor *lg = RAND(dt, -5, 5, R, V);
        tyr_tensor *tg = tyr_randint_at(S, idt, CPU, 1, &R, 0, V);
        if (R > 2) tyr_set_at(S, tg, (int64_t[]){1}, -100); /* an ignored row */
        tyr_tensor *gl = RAND(dt, 0.1, 1, R);
        tyr_tensor *lr = as_dtype(lg, rdt), *glr = as_dtype(gl, rdt);
        tyr_tensor *lc = empty_on(CPU, rdt, 1, &R), *lgpu = empty_on(gpu(), dt, 1, &R);
        C->cross_entropy(lc, lr, tg, -100);
        G->cross_entropy(lgpu, to_dev(lg, gpu()), to_dev(tg, gpu()), -100);
        char what[128];
        snprintf(what, sizeof what, "cross_entropy [%lld, %lld] %s targets %s", (long long)R,
                 (long long)V, tyr_dtype_name(dt), tyr_dtype_name(idt));
        double tol = tol_for(dt, 1e-5);
        expect_close(what, lgpu, lc, tol, tol);
        tyr_tensor *gc = empty_like_on(CPU, rdt, lr), *gg = empty_like_on(gpu(), dt, lg);
        C->cross_entropy_backward(gc, lr, tg, -100, glr);
        G->cross_entropy_backward(gg, to_dev(lg, gpu()), to_dev(tg, gpu()), -100,
                                  to_dev(gl, gpu()));
        snprintf(what, sizeof what, "cross_entropy backward [%lld, %lld] %s targets %s",
                 (long long)R, (long long)V, tyr_dtype_name(dt), tyr_dtype_name(idt));
        expect_close(what, gg, gc, tol, dt == TYR_F32 ? 1e-6 : tol * 1e-2);
      }
    }
  }
}

/* ---- classifier + cross entropy in one op (cross_entropy_fused) ----------------------- */
/* The kernel against the CPU's (in f64 for bf16/f16), with ignored rows,
 * then tyr_linear_cross_entropy's loss and gradients against the CPU's,
 * without and with a softcap (tyr_linear_cross_entropy_softcap):
 * f32 and f64 to f32 accuracy, bf16 (computed from the same bf16 values
 * in f32 on the CPU) to bf16 accuracy. */
static void test_linear_cross_entropy(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  /* the kernel that keeps a row in shared memory (rows of more than 2048
     logits that fit: 5000, and 50257 but in f64) and the two-pass one */
  for (int two = 0; two < 2; two++)
    for (size_t sh = 0; sh < NROW_SHAPES; sh++) {
      tcu_cross_entropy_set_two_pass(two);
      for (int d = 0; d < 4; d++) {
        TYR_SCOPE;
        tyr_dtype dt = FLOAT_DTYPES[d], rdt = ref_dtype(dt);
        tyr_dtype ldt = dt == TYR_F64 ? TYR_F64 : TYR_F32;
        int64_t R = ROW_SHAPES[sh][0], V = ROW_SHAPES[sh][1];
        tyr_tensor *lg = RAND(dt, -5, 5, R, V);
        tyr_tensor *tg = tyr_randint_at(S, TYR_I64, CPU, 1, &R, 0, V);
        if (R > 2) tyr_set_at(S, tg, (int64_t[]){1}, -100);
        tyr_tensor *lc = as_dtype(lg, rdt), *lgc = to_dev(lg, gpu());
        tyr_tensor *scc = tyr_full_at(S, rdt == TYR_F64 ? TYR_F64 : TYR_F32, CPU, 0, NULL, 0.37);
        tyr_tensor *scg = tyr_full_at(S, ldt, gpu(), 0, NULL, 0.37);
        tyr_tensor *losc = empty_on(CPU, scc->dtype, 1, &R), *losg = empty_on(gpu(), ldt, 1, &R);
        C->cross_entropy_fused(losc, lc, tg, -100, scc);
        G->cross_entropy_fused(losg, lgc, to_dev(tg, gpu()), -100, scg);
        /* rows of up to 5000 f64 (40 KB) fit any GPU's shared memory; rows
           of at most 2048 logits take the two-pass kernel (CE_SMEM_MIN_V) */
        bool smem = !two && V > 2048, ran = tcu_cross_entropy_last_smem();
        if ((two || V <= 5000) && ran != smem)
          fail_msg("cross_entropy_fused [%lld, %lld] %s: the %s kernel ran", (long long)R,
                   (long long)V, tyr_dtype_name(dt), ran ? "shared-memory" : "two-pass");
        char what[128];
        snprintf(what, sizeof what, "cross_entropy_fused%s [%lld, %lld] %s loss",
                 two ? " (two-pass)" : "", (long long)R, (long long)V, tyr_dtype_name(dt));
        double tol = tol_for(dt, 1e-5);
        expect_close(what, losg, losc, dt == TYR_F64 ? 1e-10 : 1e-5, 1e-5);
        snprintf(what, sizeof what, "cross_entropy_fused%s [%lld, %lld] %s dlogits",
                 two ? " (two-pass)" : "", (long long)R, (long long)V, tyr_dtype_name(dt));
        expect_close(what, lgc, lc, tol, dt == TYR_F32 ? 1e-6 : tol * 1e-2);
      }
    }
  tcu_cross_entropy_set_two_pass(0);
  /* the op, with a GPT-2-sized vocabulary among the shapes, whole and in
     chunks of 16 rows */
  const int64_t shapes[][3] = {{3, 5, 7}, {2, 64, 50304}, {96, 128, 65}, {40, 64, 50304}};
  for (int cp = 0; cp < 2; cp++) /* without and with a softcap */
    for (size_t sh = 0; sh < 4; sh++) {
      for (int d = 0; d < 3; d++) {
        TYR_SCOPE;
        double cap = cp ? 1.5 : 0;
        bool chunked = sh == 3;
        tyr_dtype dt = (tyr_dtype[]){TYR_F32, TYR_F64, TYR_BF16}[d];
        int64_t N = shapes[sh][0], K = shapes[sh][1], V = shapes[sh][2];
        tyr_tensor *x = as_dtype(RAND(TYR_F32, -1, 1, N, K), dt);
        tyr_tensor *w = as_dtype(RAND(TYR_F32, -0.2, 0.2, V, K), dt);
        tyr_tensor *tg = tyr_randint_at(S, TYR_I32, CPU, 1, &N, 0, V);
        tyr_set_at(S, tg, (int64_t[]){N - 1}, -1);
        tyr_tensor *in[2][2] = {{x, w}, {to_dev(x, gpu()), to_dev(w, gpu())}};
        tyr_tensor *loss[2], *gx[2], *gw[2];
        for (int k = 0; k < 2; k++) {
          tyr_requires_grad_at(S, in[k][0], true);
          tyr_requires_grad_at(S, in[k][1], true);
          tyr_tensor *t = k ? to_dev(tg, gpu()) : tg;
          if (chunked) tyr__lce_set_chunk_bytes(16 * shapes[sh][2] * (int64_t)tyr_dtype_size(dt));
          loss[k] = tyr_linear_cross_entropy_softcap_at(S, in[k][0], in[k][1], t, -1, cap);
          tyr__lce_set_chunk_bytes(0);
          assert_non_null(loss[k]);
          assert_int_equal(loss[k]->dtype, dt == TYR_F64 ? TYR_F64 : TYR_F32);
          assert_int_equal(tyr_backward_e(tyr_mul_scalar_e(loss[k], 3.0)), 0);
          gx[k] = tyr_grad_e(in[k][0]);
          gw[k] = tyr_grad_e(in[k][1]);
        }
        char what[128];
        double tol = dt == TYR_F64 ? 1e-10 : dt == TYR_BF16 ? 2e-2 : 1e-5;
        snprintf(what, sizeof what, "linear_cross_entropy [%lld, %lld] x [%lld, %lld] %s%s%s",
                 (long long)N, (long long)K, (long long)V, (long long)K, tyr_dtype_name(dt),
                 chunked ? " in chunks" : "", cap > 0 ? " softcap 1.5" : "");
        ASSERT_CLOSE(tyr_item_e(loss[1]), tyr_item_e(loss[0]), tol, tol);
        expect_close(what, gx[1], gx[0], tol, tol * 0.1);
        expect_close(what, gw[1], gw[0], tol, tol * 0.1);
      }
    }
}

/* ---- tyr_linear with a bias: the bias in the GEMM's epilogue (matmul_bias) ------------- */
static void test_linear_bias(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16};
  /* B, T, K, N; the last at a GPT-2 layer's width (the weight and bias
     gradients by one GEMM where the backend fuses them: matmul_bgrad) */
  const int64_t shapes[][4] = {{3, 37, 64, 96}, {1, 5, 8, 3}, {2, 4, 0, 6}, {2, 300, 768, 2304}};
  for (int m = 0; m < 2; m++) /* f32 matmuls in full f32, then with bf16 inputs */
    for (size_t sh = 0; sh < 4; sh++)
      for (int d = 0; d < 3; d++) {
        TYR_SCOPE;
        tyr_cuda_set_matmul_mode(m ? TYR_CUDA_MATMUL_BF16 : TYR_CUDA_MATMUL_F32);
        tyr_dtype dt = dts[d];
        int64_t B = shapes[sh][0], T = shapes[sh][1], K = shapes[sh][2], N = shapes[sh][3];
        tyr_tensor *in[2][3] = {{as_dtype(RAND(TYR_F32, -1, 1, B, T, K), dt),
                                 as_dtype(RAND(TYR_F32, -0.5, 0.5, N, K), dt),
                                 as_dtype(RAND(TYR_F32, -1, 1, N), dt)}};
        tyr_tensor *gy = as_dtype(RAND(TYR_F32, -1, 1, B, T, N), dt);
        for (int i = 0; i < 3; i++) in[1][i] = to_dev(in[0][i], gpu());
        tyr_tensor *y[2], *g[2][3];
        for (int k = 0; k < 2; k++) {
          for (int i = 0; i < 3; i++) tyr_requires_grad_at(S, in[k][i], true);
          y[k] = tyr_linear_at(S, in[k][0], in[k][1], in[k][2]);
          assert_non_null(y[k]);
          assert_int_equal(tyr_backward_with_at(S, y[k], k ? to_dev(gy, gpu()) : gy), 0);
          for (int i = 0; i < 3; i++) g[k][i] = tyr_grad_e(in[k][i]);
        }
        /* sums of K products: f32 rounded in another order than the CPU's,
           bf16 operands (or f32 ones rounded to bf16) off by up to ~sqrt(K) ulps */
        double tol = dt == TYR_F64           ? 1e-10
                     : (dt == TYR_BF16 || m) ? 2e-2 * (K > 64 ? sqrt(K / 64.0) : 1)
                     : K > 64                ? 1e-4
                                             : 1e-5;
        char what[160];
        const char *names[] = {"dx", "dw", "dbias"};
        snprintf(what, sizeof what, "linear+bias [%lld, %lld, %lld] x [%lld, %lld] %s%s",
                 (long long)B, (long long)T, (long long)K, (long long)N, (long long)K,
                 tyr_dtype_name(dt), m ? " bf16 mode" : "");
        expect_close(what, y[1], y[0], tol, tol);
        for (int i = 0; i < 3; i++) {
          char w2[200];
          snprintf(w2, sizeof w2, "%s %s", what, names[i]);
          expect_close(w2, g[1][i], g[0][i], tol, tol);
        }
      }
  tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
}

/* ---- the feed-forward block as one op (tyr_mlp_gelu_tanh) ------------------------------ */
/* bf16 / f16 on the GPU against the CPU's tyr_linear, tyr_gelu_tanh,
 * tyr_linear in f32 from the same rounded values: the output and all five
 * gradients.  Hidden widths that are multiples of 8 take the fused node
 * (GELU and its derivative in the GEMMs' epilogues, bias gradients from the
 * GEMMs); others, and a missing bias, are checked as well.  The first case
 * also runs with only some inputs requiring gradients (the fused node keeps
 * pre but not h on CUDA, and computes h again only for dw2): frozen w2, only
 * x, only b2. */

static void test_mlp_gelu_tanh(void **state) {
  (void)state;
  REQUIRE_GPU();
  const struct {
    int64_t B, T, C, F, C2;
    bool bias, fused;
  } cases[] = {{2, 37, 64, 256, 64, true, true},
               {3, 5, 24, 40, 16, true, true},
               {2, 9, 32, 36, 32, true, false},
               {2, 11, 64, 128, 48, false, true},
               {4, 256, 768, 3072, 768, true, true}};
  const tyr_dtype dts[] = {TYR_BF16, TYR_F16};
  const unsigned masks[] = {0x1f, 0x17, 0x01, 0x10}; /* bit i: input i requires grad */
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int d = 0; d < 2; d++)
      for (size_t m = 0; m < (c == 0 && d == 0 ? sizeof masks / sizeof masks[0] : 1); m++) {
        TYR_SCOPE;
        tyr_dtype dt = dts[d];
        int64_t B = cases[c].B, T = cases[c].T, C = cases[c].C, F = cases[c].F, C2 = cases[c].C2;
        double ws = 1 / sqrt((double)C), ws2 = 1 / sqrt((double)F);
        tyr_tensor *in[2][5] = {
            {as_dtype(RAND(TYR_F32, -1, 1, B, T, C), dt),
             as_dtype(RAND(TYR_F32, -ws, ws, F, C), dt),
             cases[c].bias ? as_dtype(RAND(TYR_F32, -0.5, 0.5, F), dt) : NULL,
             as_dtype(RAND(TYR_F32, -ws2, ws2, C2, F), dt),
             cases[c].bias ? as_dtype(RAND(TYR_F32, -0.5, 0.5, C2), dt) : NULL}};
        for (int i = 0; i < 5; i++) {
          in[1][i] = in[0][i] ? to_dev(in[0][i], gpu()) : NULL;
          in[0][i] = in[0][i] ? as_dtype(in[0][i], TYR_F32) : NULL; /* the CPU in f32 */
        }
        tyr_tensor *gy = as_dtype(RAND(TYR_F32, -1, 1, B, T, C2), dt);
        tyr_tensor *y[2], *g[2][5];
        const char *made_by[2];
        for (int k = 0; k < 2; k++) {
          for (int i = 0; i < 5; i++)
            if (in[k][i] && (masks[m] >> i & 1)) tyr_requires_grad_at(S, in[k][i], true);
          y[k] = tyr_mlp_gelu_tanh_at(S, in[k][0], in[k][1], in[k][2], in[k][3], in[k][4]);
          assert_non_null(y[k]);
          assert_non_null(y[k]->grad_fn);
          made_by[k] = y[k]->grad_fn->op; /* the graph is freed by backward */
          assert_int_equal(
              tyr_backward_with_at(S, y[k], k ? to_dev(gy, gpu()) : as_dtype(gy, TYR_F32)), 0);
          for (int i = 0; i < 5; i++)
            g[k][i] = in[k][i] && (masks[m] >> i & 1) ? tyr_grad_e(in[k][i]) : NULL;
        }
        char what[200];
        snprintf(what, sizeof what,
                 "mlp_gelu_tanh [%lld, %lld, %lld] -> %lld -> %lld%s %s, gradients of 0x%x",
                 (long long)B, (long long)T, (long long)C, (long long)F, (long long)C2,
                 cases[c].bias ? "" : " (no bias)", tyr_dtype_name(dt), masks[m]);
        /* the fused node, or the three ops where the epilogues do not apply */
        const char *want_op = cases[c].fused ? "tyr_mlp_gelu_tanh" : "tyr_linear";
        if (strcmp(made_by[1], want_op))
          fail_msg("%s: made by %s, expected %s", what, made_by[1], want_op);
        expect_close_scaled(what, y[1], y[0], 2e-2, 1e-3);
        const char *names[] = {"dx", "dw1", "db1", "dw2", "db2"};
        for (int i = 0; i < 5; i++) {
          if (!in[0][i] || !(masks[m] >> i & 1)) continue;
          if (!g[0][i] || !g[1][i]) fail_msg("%s %s: no gradient", what, names[i]);
          char w2[240];
          snprintf(w2, sizeof w2, "%s %s", what, names[i]);
          expect_close_scaled(w2, g[1][i], g[0][i], 2e-2, 1e-3);
        }
      }
}

/* ---- f32 parameters of bf16 layers: gradients written in f32 ------------------------- */
/* Mixed precision casts f32 parameters to bf16 (tyr_to_dtype, or
 * tyr_to_dtype_many for a model's weights) for the bf16 GEMMs.  The weight
 * and bias gradients of tyr_linear and tyr_mlp_gelu_tanh then come from the
 * GEMM's f32 accumulator as f32 (matmul_bgrad with f32 outputs) and become
 * the parameters' .grad as they are, instead of being rounded to bf16 and
 * widened.  Checked: tyr_linear's against the CPU's f32 product of the
 * same bf16 values to 1e-4 (a bf16 rounding is 4e-3), the block's against
 * the CPU's f32 block as test_mlp_gelu_tanh checks it, and for both ops
 * that the gradients hold values no bf16 holds. */
static bool bf16_exact(tyr_tensor *t) {
  TYR_SCOPE;
  tyr_tensor *c = to_dev(as_dtype(t, TYR_F32), TYR_DEVICE_CPU);
  tyr_tensor *r = as_dtype(as_dtype(c, TYR_BF16), TYR_F32);
  return !memcmp(tyr_data_ptr(c), tyr_data_ptr(r), (size_t)tyr_nbytes(c));
}

static void test_mixed_param_grads(void **state) {
  (void)state;
  REQUIRE_GPU();
  for (int many = 0; many < 2; many++) {
    TYR_SCOPE;
    int64_t B = 2, T = 37, C = 64, N = 96, F = 256;
    tyr_tensor *x = as_dtype(RAND(TYR_F32, -1, 1, B, T, C), TYR_BF16);
    tyr_tensor *x2 = as_dtype(RAND(TYR_F32, -1, 1, B, T, N), TYR_BF16);
    tyr_tensor *gy = as_dtype(RAND(TYR_F32, -1, 1, B, T, N), TYR_BF16);
    /* f32 parameters on the GPU; the CPU's copies hold their bf16 values */
    tyr_tensor *p[2][6] = {{RAND(TYR_F32, -0.2, 0.2, N, C), RAND(TYR_F32, -0.5, 0.5, N),
                            RAND(TYR_F32, -0.1, 0.1, F, N), RAND(TYR_F32, -0.5, 0.5, F),
                            RAND(TYR_F32, -0.1, 0.1, N, F), RAND(TYR_F32, -0.5, 0.5, N)}};
    for (int i = 0; i < 6; i++) {
      p[1][i] = to_dev(p[0][i], gpu());
      p[0][i] = as_dtype(as_dtype(p[0][i], TYR_BF16), TYR_F32);
      tyr_requires_grad_at(S, p[1][i], true);
      tyr_requires_grad_at(S, p[0][i], true);
    }
    tyr_tensor *q[6];
    if (many) {
      assert_int_equal(tyr_to_dtype_many_at(S, 6, p[1], TYR_BF16, q), 0);
    } else {
      for (int i = 0; i < 6; i++) q[i] = tyr_to_dtype_at(S, p[1][i], TYR_BF16);
    }
    /* a linear layer and, on another input, the feed-forward block */
    tyr_tensor *y1 = tyr_linear_at(S, to_dev(x, gpu()), q[0], q[1]);
    tyr_tensor *y2 = tyr_mlp_gelu_tanh_at(S, to_dev(x2, gpu()), q[2], q[3], q[4], q[5]);
    assert_non_null(y1);
    assert_non_null(y2);
    assert_string_equal(y2->grad_fn->op, "tyr_mlp_gelu_tanh");
    assert_int_equal(tyr_backward_with_at(S, y1, to_dev(gy, gpu())), 0);
    assert_int_equal(tyr_backward_with_at(S, y2, to_dev(gy, gpu())), 0);
    /* the linear layer on the CPU in f32 from the same bf16 values: the
       products are exact in f32, only their order of summation differs */
    tyr_tensor *y1c = tyr_linear_at(S, as_dtype(x, TYR_F32), p[0][0], p[0][1]);
    assert_int_equal(tyr_backward_with_at(S, y1c, as_dtype(gy, TYR_F32)), 0);
    /* the block on the CPU in f32: the GPU rounds pre, h and dpre to bf16 on
       the way, so to test_mlp_gelu_tanh's tolerance */
    tyr_tensor *y2c =
        tyr_mlp_gelu_tanh_at(S, as_dtype(x2, TYR_F32), p[0][2], p[0][3], p[0][4], p[0][5]);
    assert_int_equal(tyr_backward_with_at(S, y2c, as_dtype(gy, TYR_F32)), 0);
    const char *names[] = {"w", "b", "w1", "b1", "w2", "b2"};
    for (int i = 0; i < 6; i++) {
      tyr_tensor *g = tyr_grad_e(p[1][i]);
      char what[96];
      snprintf(what, sizeof what, "mixed-precision %s.grad (%s)", names[i],
               many ? "tyr_to_dtype_many" : "tyr_to_dtype");
      if (!g) fail_msg("%s: none", what);
      if (g->dtype != TYR_F32) fail_msg("%s: %s, expected f32", what, tyr_dtype_name(g->dtype));
      if (bf16_exact(g)) fail_msg("%s: every value is a bf16 value: rounded on the way", what);
      if (i < 2)
        expect_close(what, g, tyr_grad_e(p[0][i]), 1e-4, 1e-4);
      else
        expect_close_scaled(what, g, tyr_grad_e(p[0][i]), 2e-2, 1e-3);
    }
  }
}

/* ---- attention on a packed qkv projection (tyr_sdpa_qkv) ------------------------------- */
/* The result and the gradient of qkv from the strided views against the
 * same kernel run on contiguous copies (narrow, reshape, transpose, tyr_sdpa,
 * merge): the tensor-core path (bf16; f32 in the bf16 matmul mode) and the
 * CUDA-core path (f32, f64, head dims the tensor cores do not take), with
 * grouped KV heads, T not a multiple of the tiles, and a window. */
static tyr_tensor *sdpa_qkv_composite(tyr_tensor *qkv, int64_t H, int64_t Hkv,
                                      const tyr_sdpa_opts *o) {
  int64_t B = qkv->shape[0], T = qkv->shape[1], D = qkv->shape[2] / (H + 2 * Hkv);
  tyr_tensor *q = tyr_narrow_at(S, qkv, 2, 0, H * D), *k = tyr_narrow_at(S, qkv, 2, H * D, Hkv * D);
  tyr_tensor *v = tyr_narrow_at(S, qkv, 2, (H + Hkv) * D, Hkv * D);
  q = tyr_transpose_at(S, tyr_reshape_at(S, q, 4, (int64_t[]){B, T, H, D}), 1, 2);
  k = tyr_transpose_at(S, tyr_reshape_at(S, k, 4, (int64_t[]){B, T, Hkv, D}), 1, 2);
  v = tyr_transpose_at(S, tyr_reshape_at(S, v, 4, (int64_t[]){B, T, Hkv, D}), 1, 2);
  tyr_tensor *y = tyr_sdpa_at(S, q, k, v, o);
  return tyr_reshape_at(S, tyr_transpose_at(S, y, 1, 2), 3, (int64_t[]){B, T, H * D});
}

static void test_sdpa_qkv(void **state) {
  (void)state;
  REQUIRE_GPU();
  const struct {
    const char *name;
    tyr_dtype dt;
    tyr_cuda_matmul_mode mode;
    int64_t D, window;
  } cases[] = {
      {"bf16 D64 (tensor cores)", TYR_BF16, TYR_CUDA_MATMUL_F32, 64, 0},
      {"bf16 D32 window 40 (tensor cores)", TYR_BF16, TYR_CUDA_MATMUL_F32, 32, 40},
      {"f32 D64 bf16 mode (tensor cores)", TYR_F32, TYR_CUDA_MATMUL_BF16, 64, 0},
      {"f32 D48 (CUDA cores)", TYR_F32, TYR_CUDA_MATMUL_F32, 48, 0},
      {"f64 D32 window 17 (CUDA cores)", TYR_F64, TYR_CUDA_MATMUL_F32, 32, 17},
  };
  const int64_t B = 2, T = 100, H = 4, Hkv = 2;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    TYR_SCOPE;
    tyr_cuda_set_matmul_mode(cases[c].mode);
    int64_t W = (H + 2 * Hkv) * cases[c].D;
    tyr_sdpa_opts o = {.causal = true, .window = cases[c].window};
    tyr_tensor *base = to_dev(as_dtype(RAND(TYR_F32, -1, 1, B, T, W), cases[c].dt), gpu());
    tyr_tensor *gy =
        to_dev(as_dtype(RAND(TYR_F32, -1, 1, B, T, H * cases[c].D), cases[c].dt), gpu());
    tyr_tensor *y[2], *g[2];
    for (int k = 0; k < 2; k++) {
      tyr_tensor *x = tyr_clone_at(S, base);
      tyr_requires_grad_at(S, x, true);
      y[k] = k ? sdpa_qkv_composite(x, H, Hkv, &o) : tyr_sdpa_qkv_at(S, x, H, Hkv, &o);
      assert_non_null(y[k]);
      assert_int_equal(tyr_backward_with_at(S, y[k], gy), 0);
      g[k] = tyr_grad_e(x);
      assert_non_null(g[k]);
    }
    char what[128];
    snprintf(what, sizeof what, "sdpa_qkv %s: out", cases[c].name);
    expect_close(what, y[0], y[1], 0, 0);
    snprintf(what, sizeof what, "sdpa_qkv %s: dqkv", cases[c].name);
    expect_close(what, g[0], g[1], 0, 0);
  }
  tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
  /* bad shapes name the op */
  TYR_SCOPE;
  tyr_tensor *x = tyr_zeros_at(S, TYR_BF16, gpu(), 3, (int64_t[]){2, 8, 100});
  EXPECT_TYR_ERROR(tyr_sdpa_qkv_at(S, x, 4, 2, NULL),
                   "tyr_sdpa_qkv: qkv must be [B, T, (n_head + 2 n_kv_head) D] = [B, T, 8 D]");
  EXPECT_TYR_ERROR(tyr_sdpa_qkv_at(S, x, 3, 2, NULL), "tyr_sdpa_qkv: n_head (3) must be");
}

/* ---- gathers and scatters
 * --------------------------------------------------------------------------- */
static void test_index(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16};
  for (int d = 0; d < 3; d++) {
    for (int it = 0; it < 2; it++) {
      for (int dim = 0; dim < 3; dim++) {
        TYR_SCOPE;
        tyr_dtype dt = dts[d], rdt = ref_dtype(dt), idt = it ? TYR_I32 : TYR_I64;
        int64_t sh[3] = {6, 7, 5};
        tyr_tensor *src = cpu_rand(dt, 3, sh, -1, 1), *srcg = to_dev(src, gpu());
        char what[128];
        /* index_select: 9 picks (with repeats) along dim */
        int64_t m = 9;
        tyr_tensor *idx = tyr_randint_at(S, idt, CPU, 1, &m, 0, sh[dim]),
                   *idxg = to_dev(idx, gpu());
        int64_t osh[3] = {sh[0], sh[1], sh[2]};
        osh[dim] = m;
        tyr_tensor *oc = empty_on(CPU, dt, 3, osh), *og = empty_on(gpu(), dt, 3, osh);
        C->index_select(oc, src, dim, idx);
        G->index_select(og, srcg, dim, idxg);
        snprintf(what, sizeof what, "index_select dim %d %s idx %s", dim, tyr_dtype_name(dt),
                 tyr_dtype_name(idt));
        expect_same_bits(what, og, oc);
        /* index_add: out[.., idx[j], ..] += src2[.., j, ..] (repeated indices accumulate) */
        tyr_tensor *s2 = cpu_rand(dt, 3, osh, -1, 1);
        tyr_tensor *accr = as_dtype(cpu_rand(dt, 3, sh, -1, 1), rdt), *accg = to_dev(accr, gpu());
        accg = as_dtype(accg, dt);
        tyr_tensor *accc = as_dtype(as_dtype(accr, dt), rdt);
        C->index_add(accc, dim, idx, as_dtype(s2, rdt));
        G->index_add(accg, dim, idxg, to_dev(s2, gpu()));
        snprintf(what, sizeof what, "index_add dim %d %s idx %s", dim, tyr_dtype_name(dt),
                 tyr_dtype_name(idt));
        expect_close(what, accg, accc, tol_for(dt, 1e-6), tol_for(dt, 1e-6));
        /* gather / scatter_add with an index of src's shape, smaller along dim */
        int64_t ish[3] = {sh[0], sh[1], sh[2]};
        ish[dim] = 4;
        tyr_tensor *gi = tyr_randint_at(S, idt, CPU, 3, ish, 0, sh[dim]), *gig = to_dev(gi, gpu());
        tyr_tensor *gc = empty_on(CPU, dt, 3, ish), *gg = empty_on(gpu(), dt, 3, ish);
        C->gather(gc, src, dim, gi);
        G->gather(gg, srcg, dim, gig);
        snprintf(what, sizeof what, "gather dim %d %s idx %s", dim, tyr_dtype_name(dt),
                 tyr_dtype_name(idt));
        expect_same_bits(what, gg, gc);
        tyr_tensor *s3 = cpu_rand(dt, 3, ish, -1, 1);
        tyr_tensor *outc = as_dtype(tyr_zeros_at(S, dt, CPU, 3, sh), rdt);
        tyr_tensor *outg = tyr_zeros_at(S, dt, gpu(), 3, sh);
        C->scatter_add(outc, dim, gi, as_dtype(s3, rdt));
        G->scatter_add(outg, dim, gig, to_dev(s3, gpu()));
        snprintf(what, sizeof what, "scatter_add dim %d %s idx %s", dim, tyr_dtype_name(dt),
                 tyr_dtype_name(idt));
        expect_close(what, outg, outc, tol_for(dt, 1e-6), tol_for(dt, 1e-6));
      }
    }
  }
  /* an embedding-sized gather: [50257, 768] rows picked by 1024 tokens */
  TYR_SCOPE;
  int64_t V = 50257, Cd = 768, T = 1024;
  tyr_tensor *wte = cpu_rand(TYR_F32, 2, (int64_t[]){V, Cd}, -1, 1);
  tyr_tensor *tok = tyr_randint_at(S, TYR_I32, CPU, 1, &T, 0, V);
  tyr_tensor *oc = empty_on(CPU, TYR_F32, 2, (int64_t[]){T, Cd});
  tyr_tensor *og = empty_on(gpu(), TYR_F32, 2, (int64_t[]){T, Cd});
  C->index_select(oc, wte, 0, tok);
  G->index_select(og, to_dev(wte, gpu()), 0, to_dev(tok, gpu()));
  expect_same_bits("index_select embedding [50257, 768] x 1024", og, oc);
}

/* ---- autograd: a small MLP on both devices ------------------------------------------------------
 */
/* x [B, I] @ w^T [I, O] + b, from public ops only: broadcast multiply and
 * a sum over I (tyr_matmul is not on main yet). */
static tyr_tensor *linear(tyr_tensor *x, tyr_tensor *w, tyr_tensor *b) {
  int64_t B = x->shape[0], I = x->shape[1], O = w->shape[0];
  tyr_tensor *xe =
      tyr_expand_at(S, tyr_reshape_at(S, x, 3, (int64_t[]){B, 1, I}), 3, (int64_t[]){B, O, I});
  tyr_tensor *we =
      tyr_expand_at(S, tyr_reshape_at(S, w, 3, (int64_t[]){1, O, I}), 3, (int64_t[]){B, O, I});
  return tyr_add_row_at(S, tyr_sum_dim_at(S, tyr_mul_at(S, xe, we), 2, false), b);
}

static void mlp_grads(tyr_device dev, tyr_tensor *const *params_cpu, tyr_tensor *x_cpu,
                      tyr_tensor *y_cpu, tyr_tensor **grads_out, double *loss_out) {
  tyr_tensor *p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = to_dev(params_cpu[i], dev);
    tyr_requires_grad_at(S, p[i], true);
  }
  tyr_tensor *x = to_dev(x_cpu, dev), *y = to_dev(y_cpu, dev);
  tyr_tensor *h = tyr_gelu_at(S, linear(x, p[0], p[1]));
  tyr_tensor *o = tyr_tanh_at(S, linear(h, p[2], p[3]));
  tyr_tensor *loss = tyr_mean_at(S, tyr_square_at(S, tyr_sub_at(S, o, y)));
  assert_int_equal(tyr_backward_at(S, loss), 0);
  *loss_out = tyr_item_at(S, loss);
  for (int i = 0; i < 4; i++) {
    assert_non_null(tyr_grad_e(p[i]));
    grads_out[i] = to_dev(tyr_grad_e(p[i]), CPU);
  }
}

static void test_mlp_gradients(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_dtype dts[] = {TYR_F32, TYR_F64};
  for (int d = 0; d < 2; d++) {
    TYR_SCOPE;
    tyr_dtype dt = dts[d];
    int64_t B = 16, I = 24, H = 40, O = 10;
    tyr_tensor *params[4] = {RAND(dt, -0.3, 0.3, H, I), RAND(dt, -0.1, 0.1, H),
                             RAND(dt, -0.3, 0.3, O, H), RAND(dt, -0.1, 0.1, O)};
    tyr_tensor *x = RAND(dt, -1, 1, B, I), *y = RAND(dt, -0.5, 0.5, B, O);
    tyr_tensor *gc[4], *gg[4];
    double lc, lgpu;
    mlp_grads(CPU, params, x, y, gc, &lc);
    mlp_grads(gpu(), params, x, y, gg, &lgpu);
    double tol = dt == TYR_F64 ? 1e-10 : 2e-5;
    ASSERT_CLOSE(lgpu, lc, tol, tol);
    const char *names[] = {"mlp dL/dw1", "mlp dL/db1", "mlp dL/dw2", "mlp dL/db2"};
    for (int i = 0; i < 4; i++) expect_close(names[i], gg[i], gc[i], tol, tol * 0.1);
  }
}

/* ---- f32 matmul modes (tyr_cuda_set_matmul_mode) --------------------------------------- */
static void test_matmul_modes(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  const tyr_cuda_matmul_mode modes[] = {TYR_CUDA_MATMUL_F32, TYR_CUDA_MATMUL_TF32,
                                        TYR_CUDA_MATMUL_BF16};
  const char *names[] = {"f32", "tf32", "bf16"};
  const double tols[] = {2e-5, 5e-3, 3e-2};
  for (int i = 0; i < 3; i++) {
    TYR_SCOPE;
    tyr_cuda_set_matmul_mode(modes[i]);
    assert_int_equal(tyr_cuda_get_matmul_mode(), modes[i]);
    tyr_tensor *a = RAND(TYR_F32, -1, 1, 3, 96, 200), *b = RAND(TYR_F32, -1, 1, 3, 200, 72);
    tyr_tensor *want = tyr_matmul_at(S, a, b);
    tyr_tensor *got = tyr_matmul_at(S, to_dev(a, gpu()), to_dev(b, gpu()));
    char what[64];
    snprintf(what, sizeof what, "matmul f32 in %s mode", names[i]);
    /* entries are sums of 200 products of size ~1/3: atol in proportion */
    expect_close(what, got, want, tols[i], tols[i] * 8);
    assert_int_equal(got->dtype, TYR_F32);
  }
  tyr_cuda_set_matmul_mode(prev);
}

/* ---- optimizer kernels (through the backend table) ------------------------------------ */
/* p, g (dtype dt) and f32 state on the CPU and their GPU copies */
typedef struct {
  tyr_tensor *p[2], *g[2], *m[2], *v[2];
} optim_set;

static void optim_set_init(optim_set *o, tyr_dtype dt, int64_t n) {
  o->p[0] = as_dtype(RAND(TYR_F32, -1, 1, n), dt);
  o->g[0] = as_dtype(RAND(TYR_F32, -0.5, 0.5, n), dt);
  o->m[0] = RAND(TYR_F32, -0.1, 0.1, n);
  o->v[0] = RAND(TYR_F32, 0, 0.1, n);
  o->p[1] = to_dev(o->p[0], gpu());
  o->g[1] = to_dev(o->g[0], gpu());
  o->m[1] = to_dev(o->m[0], gpu());
  o->v[1] = to_dev(o->v[0], gpu());
}

static void test_optim_kernels(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_backend *be[2] = {&tyr_cpu_backend, gpu_be()};
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16};
  const int64_t sizes[] = {1, 1000, 300001};
  for (int d = 0; d < 3; d++)
    for (int z = 0; z < 3; z++) {
      TYR_SCOPE;
      tyr_dtype dt = dts[d];
      char what[96];
      optim_set o;
      optim_set_init(&o, dt, sizes[z]);
      for (int step = 1; step <= 3; step++)
        for (int k = 0; k < 2; k++)
          be[k]->adamw_step(o.p[k], o.g[k], o.m[k], o.v[k], 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
      /* the state is f32 on both backends, so an f64 parameter is only as
         close as one f32 rounding of m and v allows */
      double tol = dt == TYR_F64 ? 1e-6 : tol_for(dt, 1e-5);
      snprintf(what, sizeof what, "adamw %s n=%lld param", tyr_dtype_name(dt), (long long)sizes[z]);
      expect_close(what, o.p[1], o.p[0], tol, tol * 0.1);
      snprintf(what, sizeof what, "adamw %s n=%lld m", tyr_dtype_name(dt), (long long)sizes[z]);
      expect_close(what, o.m[1], o.m[0], 1e-5, 1e-7);
      snprintf(what, sizeof what, "adamw %s n=%lld v", tyr_dtype_name(dt), (long long)sizes[z]);
      expect_close(what, o.v[1], o.v[0], 1e-5, 1e-7);
      /* f32: the CUDA kernels spell out the roundings of the CPU's builds
         with FMA (x86-64-v3 and v4), so those agree bit for bit */
      if (dt == TYR_F32 && tyr_cpu_isa_level() >= 1) {
        snprintf(what, sizeof what, "adamw f32 n=%lld param, bits", (long long)sizes[z]);
        expect_same_bits(what, o.p[1], o.p[0]);
        snprintf(what, sizeof what, "adamw f32 n=%lld m, bits", (long long)sizes[z]);
        expect_same_bits(what, o.m[1], o.m[0]);
        snprintf(what, sizeof what, "adamw f32 n=%lld v, bits", (long long)sizes[z]);
        expect_same_bits(what, o.v[1], o.v[0]);
      }

      /* SGD: plain, momentum, nesterov */
      for (int variant = 0; variant < 3; variant++) {
        for (int step = 1; step <= 3; step++)
          for (int k = 0; k < 2; k++)
            be[k]->sgd_step(o.p[k], o.g[k], variant ? o.m[k] : NULL, 0.05, variant ? 0.9 : 0.0, 0.1,
                            0.01, variant == 2, step == 1);
        snprintf(what, sizeof what, "sgd %s n=%lld variant %d", tyr_dtype_name(dt),
                 (long long)sizes[z], variant);
        expect_close(what, o.p[1], o.p[0], tol, tol * 0.1);
      }

      /* sum of squares and in-place scaling */
      double ss[2];
      for (int k = 0; k < 2; k++) ss[k] = be[k]->sum_squares(o.g[k]);
      ASSERT_CLOSE(ss[1], ss[0], 1e-12, 1e-9);
      for (int k = 0; k < 2; k++) be[k]->scale_(o.g[k], 0.37);
      snprintf(what, sizeof what, "scale_ %s n=%lld", tyr_dtype_name(dt), (long long)sizes[z]);
      expect_close(what, o.g[1], o.g[0], tol_for(dt, 1e-6), 0);
    }
  /* an empty tensor */
  TYR_SCOPE;
  tyr_tensor *e = to_dev(RAND(TYR_F32, 0, 1, 0), gpu());
  assert_true(gpu_be()->sum_squares(e) == 0.0);
  assert_true(gpu_be()->sum_squares_many(1, (const tyr_tensor *const[]){e}) == 0.0);
  /* several tensors at once (gradient norms), mixed sizes and dtypes, one empty */
  const tyr_tensor *cs[4] = {RAND(TYR_F32, -1, 1, 7), RAND(TYR_F32, -1, 1, 300001),
                             as_dtype(RAND(TYR_F32, -1, 1, 1000), TYR_BF16),
                             RAND(TYR_F32, 0, 1, 0)};
  const tyr_tensor *gs[4];
  for (int i = 0; i < 4; i++) gs[i] = to_dev((tyr_tensor *)cs[i], gpu());
  double want = tyr_cpu_backend.sum_squares_many(4, cs), got = gpu_be()->sum_squares_many(4, gs);
  ASSERT_CLOSE(got, want, 1e-12, 1e-9);
}

/* ---- multi-tensor AdamW and sums of squares ------------------------------------------ */
/* adamw_step_many over n tensors (parameter i of dtype dts[i] and size
 * sizes[i], in group i % 2) against adamw_step / adamw_step_dev called per
 * tensor on copies: the same bits in parameters and state after 3 steps,
 * with the scalars from the host or (dev_scalars) from a device table. */
static void adamw_many_case(int n, const int64_t *sizes, const tyr_dtype *dts, bool dev_scalars) {
  TYR_SCOPE;
  const tyr_backend *be = gpu_be();
  const double lr[2] = {1e-2, 3e-3}, wd[2] = {0.1, 0.0}, b1 = 0.9, b2 = 0.95, eps = 1e-8;
  tyr_tensor **t = calloc((size_t)n * 8, sizeof *t); /* p, g, m, v: many; then per tensor */
  int *group = calloc((size_t)n, sizeof *group);
  assert_non_null(t);
  assert_non_null(group);
  for (int i = 0; i < n; i++) {
    tyr_tensor *c[4] = {as_dtype(RAND(TYR_F32, -1, 1, sizes[i]), dts[i]),
                        as_dtype(RAND(TYR_F32, -0.5, 0.5, sizes[i]), dts[i]),
                        RAND(TYR_F32, -0.1, 0.1, sizes[i]), RAND(TYR_F32, 0, 0.1, sizes[i])};
    for (int j = 0; j < 4; j++) {
      t[j * n + i] = to_dev(c[j], gpu());
      t[(4 + j) * n + i] = to_dev(c[j], gpu());
    }
    group[i] = i % 2;
  }
  tyr_tensor *hyper = empty_on(gpu(), TYR_F64, 1, (int64_t[]){8});
  for (int step = 1; step <= 3; step++) {
    double h[8], bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
    for (int k = 0; k < 2; k++) { /* as tyr_optim_prepare_step writes them */
      h[4 * k + 0] = lr[k] / bc1;
      h[4 * k + 1] = sqrt(bc2);
      h[4 * k + 2] = 1.0 - lr[k] * wd[k];
      h[4 * k + 3] = lr[k];
    }
    be->from_host(tyr_data_ptr(hyper), h, sizeof h, gpu());
    be->adamw_step_many(n, t, (const tyr_tensor *const *)t + n, t + 2 * n, t + 3 * n, group, lr, wd,
                        b1, b2, eps, step, dev_scalars ? hyper : NULL);
    for (int i = 0; i < n; i++) {
      tyr_tensor *p = t[4 * n + i], *g = t[5 * n + i], *m = t[6 * n + i], *v = t[7 * n + i];
      if (dev_scalars)
        be->adamw_step_dev(p, g, m, v, b1, b2, eps, hyper, group[i]);
      else
        be->adamw_step(p, g, m, v, lr[group[i]], b1, b2, eps, wd[group[i]], step);
    }
  }
  const char *names[3] = {"param", "m", "v"};
  const int slot[3] = {0, 2, 3};
  for (int i = 0; i < n; i++)
    for (int j = 0; j < 3; j++) {
      char what[128];
      snprintf(what, sizeof what, "adamw_step_many (%s scalars, %d tensors) #%d %s n=%lld %s",
               dev_scalars ? "device" : "host", n, i, tyr_dtype_name(dts[i]), (long long)sizes[i],
               names[j]);
      expect_same_bits(what, t[slot[j] * n + i], t[(4 + slot[j]) * n + i]);
    }
  free(t);
  free(group);
}

static void test_adamw_many(void **state) {
  (void)state;
  REQUIRE_GPU();
  enum { N = 12 };
  const int64_t sizes[N] = {1, 7, 1000, 65536 + 3, 0, 257, 300001, 33, 4096, 5, 1000, 129};
  tyr_dtype dts[N];
  for (int i = 0; i < N; i++) dts[i] = TYR_F32;
  for (int dev_scalars = 0; dev_scalars < 2; dev_scalars++) {
    adamw_many_case(N, sizes, dts, dev_scalars);
    /* other dtypes take the per-tensor kernel inside the call */
    dts[5] = TYR_F64;
    dts[9] = TYR_BF16;
    adamw_many_case(N, sizes, dts, dev_scalars);
    dts[5] = dts[9] = TYR_F32;
  }
  /* more tensors than one launch's table holds */
  enum { M = 150 };
  int64_t many[M];
  tyr_dtype mdts[M];
  for (int i = 0; i < M; i++) {
    many[i] = 1 + (i * 37) % 300;
    mdts[i] = TYR_F32;
  }
  adamw_many_case(M, many, mdts, false);
  adamw_many_case(M, many, mdts, true);
}

/* The sum of squares of f32 tensors in the order of the CUDA kernels: per
 * tensor min(ceil(n / 4096), 512) blocks of 256 threads (16 elements a
 * thread at least), each thread summing a grid-stride loop (over groups of
 * four elements, in order, when n is a multiple of four: the kernel's
 * 16-byte loads of an aligned tensor), each block reduced by warp-shuffle
 * trees (lanes and then warps); one 1024-thread block sums the partials (a
 * strided loop per thread, then the same trees). */
static double warp_tree(double *x) {
  for (int o = 16; o > 0; o >>= 1)
    for (int l = 0; l < o; l++) x[l] += x[l + o];
  return x[0];
}
static double block_tree(double *acc, int threads) {
  double x[32] = {0};
  for (int w = 0; w < threads / 32; w++) x[w] = warp_tree(acc + 32 * w);
  return warp_tree(x);
}
static int64_t sumsq_nb(int64_t numel) {
  int64_t nb = (numel + 4095) / 4096;
  return nb < 512 ? nb : 512;
}
static double sumsq_in_gpu_order(int n, tyr_tensor *const *cpu_ts) {
  int64_t np = 0;
  for (int i = 0; i < n; i++) np += sumsq_nb(tyr_numel(cpu_ts[i]));
  double *part = malloc(sizeof(double) * (size_t)(np + 1)), acc[1024];
  assert_non_null(part);
  int64_t k = 0;
  for (int i = 0; i < n; i++) {
    const float *f = tyr_data_ptr(cpu_ts[i]);
    int64_t numel = tyr_numel(cpu_ts[i]), nb = sumsq_nb(numel);
    int w = numel % 4 == 0 ? 4 : 1; /* elements a step of the loop */
    for (int64_t b = 0; b < nb; b++) {
      for (int64_t th = 0; th < 256; th++) {
        acc[th] = 0;
        for (int64_t j = b * 256 + th; j < numel / w; j += nb * 256)
          for (int q = 0; q < w; q++) acc[th] += (double)f[j * w + q] * f[j * w + q];
      }
      part[k++] = block_tree(acc, 256);
    }
  }
  for (int64_t th = 0; th < 1024; th++) {
    acc[th] = 0;
    for (int64_t j = th; j < np; j += 1024) acc[th] += part[j];
  }
  free(part);
  return block_tree(acc, 1024);
}

/* sum_squares_many and clip_grad_norm's norm (one launch per up to 128
 * tensors for the partials) against that order, bit for bit */
static void sumsq_many_case(int n, const int64_t *sizes) {
  TYR_SCOPE;
  tyr_tensor **c = calloc((size_t)n * 2, sizeof *c);
  assert_non_null(c);
  for (int i = 0; i < n; i++) {
    c[i] = RAND(TYR_F32, -1, 1, sizes[i]);
    c[n + i] = to_dev(c[i], gpu());
  }
  double want = sumsq_in_gpu_order(n, c);
  double got = gpu_be()->sum_squares_many(n, (const tyr_tensor *const *)c + n);
  if (got != want)
    fail_msg("sum_squares_many over %d tensors: %.17g, expected %.17g", n, got, want);
  tyr_tensor *norm = empty_on(gpu(), TYR_F64, 0, NULL);
  gpu_be()->clip_grad_norm(n, c + n, 0, norm);
  double nv = tyr_item_e(norm);
  if (nv != sqrt(want))
    fail_msg("clip_grad_norm over %d tensors: norm %.17g, expected %.17g", n, nv, sqrt(want));
  free(c);
}

static void test_sumsq_many(void **state) {
  (void)state;
  REQUIRE_GPU();
  const int64_t sizes[] = {1, 7, 1000, 65536 + 3, 0, 257, 300001, 33, 4096, 5, 200000};
  sumsq_many_case((int)(sizeof sizes / sizeof sizes[0]), sizes);
  enum { M = 300 };
  int64_t many[M];
  for (int i = 0; i < M; i++) many[i] = (i * 53) % 700;
  sumsq_many_case(M, many);
}

/* ---- rotary (op and its backward, which applies the inverse rotation) ------------------- */
static void rotary_run(tyr_device dev, tyr_tensor *x_cpu, tyr_tensor *cs, tyr_tensor *sn,
                       tyr_tensor *w_cpu, tyr_tensor **out, tyr_tensor **gx) {
  tyr_tensor *x = to_dev(x_cpu, dev);
  tyr_requires_grad_at(S, x, true);
  tyr_tensor *y = tyr_rotary_at(S, x, to_dev(cs, dev), to_dev(sn, dev));
  assert_non_null(y);
  tyr_tensor *loss = tyr_sum_at(S, tyr_mul_at(S, y, to_dev(w_cpu, dev)));
  assert_int_equal(tyr_backward_at(S, loss), 0);
  *out = to_dev(y, CPU);
  *gx = to_dev(tyr_grad_e(x), CPU);
}

static void test_rotary(void **state) {
  (void)state;
  REQUIRE_GPU();
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16};
  const int64_t shapes[][4] = {{1, 1, 1, 2}, {2, 3, 10, 16}, {4, 12, 64, 64}, {1, 2, 33, 128}};
  for (int d = 0; d < 3; d++)
    for (int c = 0; c < 4; c++) {
      TYR_SCOPE;
      tyr_dtype dt = dts[d];
      const int64_t *sh = shapes[c];
      tyr_tensor *cs, *sn;
      assert_int_equal(tyr_rotary_tables_at(S, sh[2], sh[3], 0, dt, CPU, &cs, &sn), 0);
      tyr_tensor *x = as_dtype(RAND(TYR_F32, -1, 1, sh[0], sh[1], sh[2], sh[3]), dt);
      tyr_tensor *w = as_dtype(RAND(TYR_F32, -1, 1, sh[0], sh[1], sh[2], sh[3]), dt);
      tyr_tensor *oc, *gc, *og, *gg;
      rotary_run(CPU, x, cs, sn, w, &oc, &gc);
      rotary_run(gpu(), x, cs, sn, w, &og, &gg);
      char what[96];
      double tol = tol_for(dt, 1e-5);
      snprintf(what, sizeof what, "rotary %s [%lld, %lld, %lld, %lld]", tyr_dtype_name(dt),
               (long long)sh[0], (long long)sh[1], (long long)sh[2], (long long)sh[3]);
      expect_close(what, og, oc, tol, tol);
      strncat(what, " grad", sizeof what - strlen(what) - 1);
      expect_close(what, gg, gc, tol, tol);
    }
}

/* ---- attention ---------------------------------------------------------------------------- */
typedef struct {
  int64_t B, Hq, Hkv, T, Sk, D;
  bool causal;
  int64_t window;
  int mask; /* 0 none, 1 random u8, 2 random bool with fully masked rows */
} sdpa_case;

static const sdpa_case SDPA_CASES[] = {
    {2, 4, 4, 37, 37, 64, false, 0, 0}, {2, 4, 2, 50, 50, 64, true, 0, 0},
    {1, 6, 2, 20, 45, 128, true, 0, 0}, {1, 2, 1, 40, 20, 64, true, 0, 0},
    {1, 2, 1, 70, 70, 64, true, 16, 0}, {1, 3, 3, 33, 40, 64, false, 7, 0},
    {1, 2, 2, 33, 40, 64, false, 0, 1}, {1, 4, 1, 64, 64, 128, true, 0, 2},
    {2, 2, 2, 17, 17, 32, false, 0, 2}, {1, 2, 1, 48, 48, 80, true, 0, 0},
    {1, 1, 1, 1, 1, 64, false, 0, 0},   {1, 12, 12, 130, 130, 64, true, 0, 0},
};

typedef struct {
  tyr_tensor *out, *dq, *dk, *dv;
} sdpa_result;

static sdpa_result sdpa_run(tyr_device dev, tyr_tensor *const *qkv, tyr_tensor *w, tyr_tensor *mask,
                            const sdpa_case *c) {
  tyr_tensor *t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = to_dev(qkv[i], dev);
    tyr_requires_grad_at(S, t[i], true);
  }
  tyr_sdpa_opts o = {.causal = c->causal, .window = c->window};
  o.mask = mask ? to_dev(mask, dev) : NULL;
  tyr_tensor *y = tyr_sdpa_at(S, t[0], t[1], t[2], &o);
  assert_non_null(y);
  tyr_tensor *loss = tyr_sum_at(S, tyr_mul_at(S, y, to_dev(w, dev)));
  assert_int_equal(tyr_backward_at(S, loss), 0);
  sdpa_result r = {to_dev(y, CPU), to_dev(tyr_grad_e(t[0]), CPU), to_dev(tyr_grad_e(t[1]), CPU),
                   to_dev(tyr_grad_e(t[2]), CPU)};
  return r;
}

static void test_sdpa(void **state) {
  (void)state;
  REQUIRE_GPU();
  /* f32 tensors at f32 tolerance: not the bf16 matmul mode (test_sdpa_tc
   * covers that) */
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
  const tyr_dtype dts[] = {TYR_F32, TYR_BF16, TYR_F64};
  for (size_t ci = 0; ci < sizeof SDPA_CASES / sizeof *SDPA_CASES; ci++)
    for (int d = 0; d < 3; d++) {
      const sdpa_case *c = &SDPA_CASES[ci];
      tyr_dtype dt = dts[d];
      if (dt == TYR_F64 && ci % 3 != 0) continue; /* f64 on a few shapes */
      TYR_SCOPE;
      tyr_tensor *qkv[3] = {
          as_dtype(RAND(TYR_F32, -1, 1, c->B, c->Hq, c->T, c->D), dt),
          as_dtype(RAND(TYR_F32, -1, 1, c->B, c->Hkv, c->Sk, c->D), dt),
          as_dtype(RAND(TYR_F32, -1, 1, c->B, c->Hkv, c->Sk, c->D), dt),
      };
      tyr_tensor *w = as_dtype(RAND(TYR_F32, -1, 1, c->B, c->Hq, c->T, c->D), dt);
      tyr_tensor *mask = NULL;
      if (c->mask) {
        mask = RAND(TYR_U8, 0, 2, c->T, c->Sk);
        if (c->mask == 2) {
          uint8_t *mp = tyr_data_ptr(mask);
          for (int64_t i = 0; i < c->T; i += 5) memset(mp + i * c->Sk, 0, (size_t)c->Sk);
          mask = as_dtype(mask, TYR_BOOL);
        }
      }
      sdpa_result rc = sdpa_run(CPU, qkv, w, mask, c);
      sdpa_result rg = sdpa_run(gpu(), qkv, w, mask, c);
      char base[128], what[160];
      snprintf(base, sizeof base, "sdpa %s B%lld Hq%lld Hkv%lld T%lld S%lld D%lld%s w%lld m%d",
               tyr_dtype_name(dt), (long long)c->B, (long long)c->Hq, (long long)c->Hkv,
               (long long)c->T, (long long)c->Sk, (long long)c->D, c->causal ? " causal" : "",
               (long long)c->window, c->mask);
      double tol = dt == TYR_F64 ? 1e-9 : dt == TYR_BF16 ? 3e-2 : 2e-4;
      const char *names[4] = {"out", "dq", "dk", "dv"};
      tyr_tensor *g[4] = {rg.out, rg.dq, rg.dk, rg.dv}, *want[4] = {rc.out, rc.dq, rc.dk, rc.dv};
      for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "%s %s", base, names[i]);
        expect_close(what, g[i], want[i], tol, tol);
      }
    }
  tyr_cuda_set_matmul_mode(prev);
}

/* ---- tensor-core attention (src/cuda/attention_tc.cu) ---------------------------------------
 * The tensor-core kernel runs for bf16 tensors and for f32 tensors in
 * TYR_CUDA_MATMUL_BF16 mode (head dim 32, 64 or 128, no mask).  Its forward
 * (out, lse) and backward (dq, dk, dv) are called through the backend table
 * and compared with the CPU kernel run in f64 on the same inputs (the bf16
 * values for bf16 tensors, the unrounded f32 values for f32 tensors).  Its
 * operands are rounded to bf16, so each result is compared against its
 * largest magnitude: |cuda - cpu| <= TC_FRAC max |cpu| (lse: an absolute
 * TC_LSE_TOL), and infinities (the lse of rows that see no key) must match
 * exactly.  A failure names the result, the case, the largest error and the
 * [b, h, row, col] where it is. */
#define TC_FRAC 3e-2
#define TC_LSE_TOL 5e-2

typedef struct {
  int64_t B, Hq, Hkv, T, Sk, D;
  bool causal;
  int64_t window;
} tc_case;

static const tc_case TC_CASES[] = {
    {1, 2, 2, 64, 64, 64, false, 0},    /* one whole tile */
    {2, 2, 2, 130, 130, 64, true, 0},   /* partial last tiles, causal */
    {1, 2, 2, 130, 130, 32, false, 0},  /* D 32 */
    {1, 2, 2, 130, 130, 128, true, 0},  /* D 128 */
    {1, 2, 2, 17, 40, 64, true, 0},     /* T < S: query i sees keys up to i + 23 */
    {1, 2, 2, 17, 40, 128, false, 0},   /* T < S, D 128 */
    {1, 2, 2, 17, 40, 32, true, 0},     /* T < S, D 32 */
    {1, 2, 1, 40, 17, 64, true, 0},     /* T > S, causal: rows 0..22 see no key */
    {1, 4, 2, 100, 100, 64, true, 0},   /* GQA */
    {1, 4, 2, 70, 90, 32, false, 0},    /* GQA, T != S */
    {1, 4, 2, 150, 150, 128, true, 0},  /* GQA, D 128 */
    {1, 2, 2, 200, 200, 64, true, 48},  /* sliding window */
    {1, 4, 2, 130, 150, 32, false, 33}, /* window (implies causal), GQA, T != S */
    {1, 2, 1, 96, 96, 128, true, 20},   /* window, D 128 */
    {2, 12, 12, 256, 256, 64, true, 0}, /* GPT-like */
};

static void tc_case_name(char *buf, size_t n, const char *tag, const tc_case *c) {
  snprintf(buf, n, "%s B%lld Hq%lld Hkv%lld T%lld S%lld D%lld%s w%lld", tag, (long long)c->B,
           (long long)c->Hq, (long long)c->Hkv, (long long)c->T, (long long)c->Sk, (long long)c->D,
           c->causal ? " causal" : "", (long long)c->window);
}

/* the multi-index of flat element i of t, as "[b, h, i, d]" */
static void index_str(const tyr_tensor *t, int64_t flat, char *buf, size_t n) {
  int64_t idx[TYR_MAX_RANK];
  for (int d = t->rank - 1; d >= 0; d--) {
    idx[d] = t->shape[d] ? flat % t->shape[d] : 0;
    flat = t->shape[d] ? flat / t->shape[d] : 0;
  }
  size_t o = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < t->rank && o < n; d++)
    o += (size_t)snprintf(buf + o, n - o, d ? ", %lld" : "%lld", (long long)idx[d]);
  if (o < n) snprintf(buf + o, n - o, "]");
}

/* |got - want| <= frac max |want| + atol everywhere (want finite), and
 * got == want where either is infinite. */
static void expect_close_scaled(const char *what, tyr_tensor *got, tyr_tensor *want, double frac,
                                double atol) {
  TYR_SCOPE;
  assert_non_null(got);
  assert_non_null(want);
  if (got->rank != want->rank || memcmp(got->shape, want->shape, sizeof(int64_t) * got->rank)) {
    char a[160], b[160];
    fail_msg("%s: shape %s, expected %s", what, tyr_shape_str(got->shape, got->rank, a, sizeof a),
             tyr_shape_str(want->shape, want->rank, b, sizeof b));
  }
  tyr_tensor *g = as_dtype(to_dev(got, CPU), TYR_F64), *w = as_dtype(to_dev(want, CPU), TYR_F64);
  const double *pg = tyr_data_ptr(g), *pw = tyr_data_ptr(w);
  int64_t n = tyr_numel(g), bad = 0, worst = -1, inf_bad = -1;
  double maxw = 0, werr = 0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(pw[i])) maxw = fmax(maxw, fabs(pw[i]));
  const double tol = frac * maxw + atol;
  for (int64_t i = 0; i < n; i++) {
    if (isinf(pw[i]) || isinf(pg[i])) {
      if (pg[i] != pw[i]) {
        bad++;
        if (inf_bad < 0) inf_bad = i;
      }
      continue;
    }
    double d = fabs(pg[i] - pw[i]);
    if (isnan(d)) d = INFINITY;
    if (worst < 0 || d > werr) {
      werr = d;
      worst = i;
    }
    if (!(d <= tol)) bad++;
  }
  char at[64] = "-";
  if (worst >= 0) index_str(w, worst, at, sizeof at);
  if (g_verbose)
    printf("    %-60s n=%-8lld max|cpu| %.3g  max abs err %.3g (%.2g of max) at %s\n", what,
           (long long)n, maxw, werr, maxw > 0 ? werr / maxw : werr, at);
  if (inf_bad >= 0) {
    char ai[64];
    index_str(w, inf_bad, ai, sizeof ai);
    fail_msg("%s: infinities differ at %s: cuda %g, cpu %g (%lld elements off)", what, ai,
             pg[inf_bad], pw[inf_bad], (long long)bad);
  }
  if (bad)
    fail_msg("%s: %lld of %lld elements off; largest error %.4g at %s: cuda %.9g, cpu %.9g "
             "(max |cpu| %.4g, allowed %.4g = %g x max + %g)",
             what, (long long)bad, (long long)n, werr, at, pg[worst], pw[worst], maxw, tol, frac,
             atol);
}

/* Rows [0, nrows) of every (b, h) of t [B, H, T, D] are exactly zero. */
static void expect_rows_zero(const char *what, tyr_tensor *t, int64_t nrows) {
  TYR_SCOPE;
  tyr_tensor *h = as_dtype(to_dev(t, CPU), TYR_F64);
  const double *p = tyr_data_ptr(h);
  int64_t BH = t->shape[0] * t->shape[1], T = t->shape[2], D = t->shape[3];
  for (int64_t bh = 0; bh < BH; bh++)
    for (int64_t i = 0; i < nrows; i++)
      for (int64_t d = 0; d < D; d++) {
        double x = p[(bh * T + i) * D + d];
        if (x != 0)
          fail_msg("%s: row %lld of (b, h) %lld sees no key but element %lld is %.9g, not 0", what,
                   (long long)i, (long long)bh, (long long)d, x);
      }
}

typedef struct {
  tyr_tensor *out, *lse, *dq, *dk, *dv;
} tc_result;

/* q, k (uniform in [-2, 2): fairly peaked softmax rows), v and dout (in
 * [-1, 1)) as f32 on the CPU */
static void tc_inputs(const tc_case *c, tyr_tensor **in) {
  in[0] = RAND(TYR_F32, -2, 2, c->B, c->Hq, c->T, c->D);
  in[1] = RAND(TYR_F32, -2, 2, c->B, c->Hkv, c->Sk, c->D);
  in[2] = RAND(TYR_F32, -1, 1, c->B, c->Hkv, c->Sk, c->D);
  in[3] = RAND(TYR_F32, -1, 1, c->B, c->Hq, c->T, c->D);
}

/* c's inputs in dtype dt: on the GPU (gin) and, with the same values, in
 * f64 on the CPU (cin) */
static void tc_inputs_as(const tc_case *c, tyr_dtype dt, tyr_tensor **gin, tyr_tensor **cin) {
  tyr_tensor *in[4];
  tc_inputs(c, in);
  for (int i = 0; i < 4; i++) {
    tyr_tensor *x = as_dtype(in[i], dt);
    gin[i] = to_dev(x, gpu());
    cin[i] = as_dtype(x, TYR_F64);
  }
}

/* The forward and the backward through be's table on in = q, k, v, dout
 * (of dtype dt, on dev), mask NULL or [T, S] on dev. */
static tc_result tc_run(const tyr_backend *be, tyr_device dev, tyr_dtype dt, tyr_tensor *const *in,
                        tyr_tensor *mask, const tc_case *c) {
  const double scale = 1.0 / sqrt((double)c->D);
  tyr_tensor *q = in[0], *k = in[1], *v = in[2], *g = in[3];
  tc_result r;
  r.out = empty_like_on(dev, dt, q);
  r.lse = empty_on(dev, dt == TYR_F64 ? TYR_F64 : TYR_F32, 3, q->shape);
  r.dq = empty_like_on(dev, dt, q);
  r.dk = empty_like_on(dev, dt, k);
  r.dv = empty_like_on(dev, dt, v);
  be->sdpa(r.out, r.lse, q, k, v, mask, NULL, c->causal, c->window, scale);
  be->sdpa_backward(r.dq, r.dk, r.dv, g, q, k, v, r.out, r.lse, mask, NULL, c->causal, c->window,
                    scale);
  assert_int_equal(tyr_cuda_synchronize(), 0); /* a failed kernel shows here */
  return r;
}

/* The five results of two runs compared; tag names the pair. */
static void tc_compare(const char *tag, const tc_result *got, const tc_result *want) {
  const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
  tyr_tensor *g[5] = {got->out, got->lse, got->dq, got->dk, got->dv};
  tyr_tensor *w[5] = {want->out, want->lse, want->dq, want->dk, want->dv};
  for (int i = 0; i < 5; i++) {
    char what[200];
    snprintf(what, sizeof what, "%s: %s", tag, names[i]);
    if (i == 1)
      expect_close_scaled(what, g[i], w[i], 0, TC_LSE_TOL);
    else
      expect_close_scaled(what, g[i], w[i], TC_FRAC, 1e-6);
  }
}

/* 0: bf16 tensors; 1: f32 tensors in the bf16 matmul mode */
static tyr_dtype tc_mode_set(int mode) {
  tyr_cuda_set_matmul_mode(mode ? TYR_CUDA_MATMUL_BF16 : TYR_CUDA_MATMUL_F32);
  return mode ? TYR_F32 : TYR_BF16;
}
static const char *const TC_MODE_NAMES[2] = {"bf16", "f32 in bf16 mode"};

/* the tensor-core kernel against the CPU in f64 */
static void test_sdpa_tc(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  tyr_cuda_attention_kernel prev_k = tyr_cuda_get_attention_kernel();
  tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_TC);
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t ci = 0; ci < sizeof TC_CASES / sizeof *TC_CASES; ci++)
    for (int mode = 0; mode < 2; mode++) {
      TYR_SCOPE;
      const tc_case *c = &TC_CASES[ci];
      tyr_dtype dt = tc_mode_set(mode);
      tyr_tensor *gin[4], *cin[4];
      tc_inputs_as(c, dt, gin, cin);
      tc_result rg = tc_run(G, gpu(), dt, gin, NULL, c);
      tc_result rc = tc_run(C, CPU, TYR_F64, cin, NULL, c);
      char tag[160];
      tc_case_name(tag, sizeof tag, TC_MODE_NAMES[mode], c);
      tc_compare(tag, &rg, &rc);
      /* rows that see no key: out and dq exactly 0 (lse -inf is checked above) */
      int64_t blind = (c->causal || c->window > 0) && c->T > c->Sk ? c->T - c->Sk : 0;
      if (blind) {
        char what[200];
        snprintf(what, sizeof what, "%s: out", tag);
        expect_rows_zero(what, rg.out, blind);
        snprintf(what, sizeof what, "%s: dq", tag);
        expect_rows_zero(what, rg.dq, blind);
      }
    }
  tyr_cuda_set_matmul_mode(prev);
  tyr_cuda_set_attention_kernel(prev_k);
}

/* Number of elements whose bits differ (same dtype and shape). */
static int64_t count_differing(tyr_tensor *a, tyr_tensor *b) {
  TYR_SCOPE;
  tyr_tensor *x = to_dev(a, CPU), *y = to_dev(b, CPU);
  size_t es = tyr_dtype_size(x->dtype);
  const unsigned char *px = tyr_data_ptr(x), *py = tyr_data_ptr(y);
  int64_t n = 0;
  for (int64_t i = 0; i < tyr_numel(x); i++) n += memcmp(px + i * es, py + i * es, es) != 0;
  return n;
}

/* the tensor-core kernel against the CUDA-core kernel on the same GPU inputs */
static void test_sdpa_tc_vs_simt(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  tyr_cuda_attention_kernel prev_k = tyr_cuda_get_attention_kernel();
  static const tc_case cases[] = {
      {2, 12, 12, 256, 256, 64, true, 0},
      {1, 4, 2, 130, 150, 32, false, 33},
      {1, 4, 2, 150, 150, 128, true, 0},
      {1, 2, 2, 17, 40, 64, false, 0},
  };
  const tyr_backend *G = gpu_be();
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
    for (int mode = 0; mode < 2; mode++) {
      TYR_SCOPE;
      const tc_case *c = &cases[ci];
      tyr_dtype dt = tc_mode_set(mode);
      tyr_tensor *in[4], *gin[4];
      tc_inputs(c, in);
      for (int i = 0; i < 4; i++) gin[i] = to_dev(as_dtype(in[i], dt), gpu());
      tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_TC);
      tc_result rt = tc_run(G, gpu(), dt, gin, NULL, c);
      tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_SIMT);
      tc_result rs = tc_run(G, gpu(), dt, gin, NULL, c);
      char tag[160], what[200];
      tc_case_name(tag, sizeof tag, TC_MODE_NAMES[mode], c);
      snprintf(what, sizeof what, "tensor-core vs CUDA-core %s", tag);
      tc_compare(what, &rt, &rs);
      assert_int_equal(tyr_cuda_attention_last(), TYR_CUDA_ATTENTION_SIMT);
      /* bf16 probabilities change low bits: identical results mean the
       * tensor-core kernel did not run (see tc_applies in attention_tc.cu) */
      if (!count_differing(rt.dq, rs.dq))
        fail_msg("%s: dq bit-identical with TYR_CUDA_ATTENTION_TC and _SIMT: the tensor-core "
                 "kernel did not run",
                 what);
    }
  tyr_cuda_set_matmul_mode(prev);
  tyr_cuda_set_attention_kernel(prev_k);
}

/* The setting round-trips; which calls take the tensor-core kernel: where
 * it does not apply, TC gives the CUDA-core kernel's bits. */
static void test_sdpa_tc_dispatch(void **state) {
  (void)state;
  tyr_cuda_attention_kernel prev_k = tyr_cuda_get_attention_kernel();
  tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_SIMT);
  assert_int_equal(tyr_cuda_get_attention_kernel(), TYR_CUDA_ATTENTION_SIMT);
  tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_CUDNN);
  assert_int_equal(tyr_cuda_get_attention_kernel(), TYR_CUDA_ATTENTION_CUDNN);
  tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_TC);
  assert_int_equal(tyr_cuda_get_attention_kernel(), TYR_CUDA_ATTENTION_TC);
  tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_AUTO);
  assert_int_equal(tyr_cuda_get_attention_kernel(), TYR_CUDA_ATTENTION_AUTO);
  tyr_cuda_set_attention_kernel((tyr_cuda_attention_kernel)77); /* not a kernel: AUTO */
  assert_int_equal(tyr_cuda_get_attention_kernel(), TYR_CUDA_ATTENTION_AUTO);
  tyr_cuda_set_attention_kernel(prev_k);
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  const struct {
    const char *name;
    tyr_dtype dt;
    tyr_cuda_matmul_mode mode;
    bool mask;
    int64_t D;
    bool tc; /* expected to take the tensor-core kernel */
  } rows[] = {
      {"bf16 D64", TYR_BF16, TYR_CUDA_MATMUL_F32, false, 64, true},
      {"f32 D64 bf16 mode", TYR_F32, TYR_CUDA_MATMUL_BF16, false, 64, true},
      {"f32 D64 f32 mode", TYR_F32, TYR_CUDA_MATMUL_F32, false, 64, false},
      {"f32 D64 tf32 mode", TYR_F32, TYR_CUDA_MATMUL_TF32, false, 64, false},
      {"f64 D64 bf16 mode", TYR_F64, TYR_CUDA_MATMUL_BF16, false, 64, false},
      {"bf16 D64 with a mask", TYR_BF16, TYR_CUDA_MATMUL_F32, true, 64, false},
      {"bf16 D80", TYR_BF16, TYR_CUDA_MATMUL_F32, false, 80, false},
      {"f32 D48 bf16 mode", TYR_F32, TYR_CUDA_MATMUL_BF16, false, 48, false},
  };
  const tyr_backend *G = gpu_be();
  for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++) {
    TYR_SCOPE;
    tc_case c = {1, 2, 2, 70, 70, rows[ri].D, true, 0};
    tyr_cuda_set_matmul_mode(rows[ri].mode);
    tyr_tensor *in[4], *gin[4];
    tc_inputs(&c, in);
    for (int i = 0; i < 4; i++) gin[i] = to_dev(as_dtype(in[i], rows[ri].dt), gpu());
    tyr_tensor *mask = rows[ri].mask ? to_dev(RAND(TYR_U8, 0, 2, c.T, c.Sk), gpu()) : NULL;
    tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_TC);
    tc_result ra = tc_run(G, gpu(), rows[ri].dt, gin, mask, &c);
    assert_int_equal(tyr_cuda_attention_last(),
                     rows[ri].tc ? TYR_CUDA_ATTENTION_TC : TYR_CUDA_ATTENTION_SIMT);
    tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_SIMT);
    tc_result rs = tc_run(G, gpu(), rows[ri].dt, gin, mask, &c);
    int64_t diff = count_differing(ra.out, rs.out) + count_differing(ra.dq, rs.dq) +
                   count_differing(ra.dk, rs.dk);
    if (g_verbose)
      printf("    dispatch %-30s %lld elements differ from the CUDA-core kernel\n", rows[ri].name,
             (long long)diff);
    if (rows[ri].tc && !diff)
      fail_msg("%s: results bit-identical to the CUDA-core kernel: the tensor-core kernel did not "
               "run",
               rows[ri].name);
    if (!rows[ri].tc && diff)
      fail_msg("%s: %lld elements differ from the CUDA-core kernel: the tensor-core kernel ran "
               "where it should not",
               rows[ri].name, (long long)diff);
  }
  tyr_cuda_set_matmul_mode(prev);
  tyr_cuda_set_attention_kernel(prev_k);
}

/* The cuDNN attention graphs, operation by operation: needs the CUDA build
 * (and cuDNN's libraries), not a GPU. */
static void test_sdpa_cudnn_graphs(void **state) {
  (void)state;
  char err[400] = "";
  int rc = tcu_sdpa_cudnn_check_graphs(err, sizeof err);
  if (rc == 1) skip(); /* no CUDA backend in this build */
  if (rc != 0) fail_msg("%s", err);
}

/* The forward alone on the GPU (out and lse of the result). */
static tc_result sdpa_forward_on(const tyr_backend *G, tyr_dtype dt, tyr_tensor *const *gin,
                                 const tc_case *c, double scale) {
  tc_result r;
  memset(&r, 0, sizeof r);
  r.out = empty_like_on(gpu(), dt, gin[0]);
  r.lse = empty_on(gpu(), TYR_F32, 3, gin[0]->shape);
  G->sdpa(r.out, r.lse, gin[0], gin[1], gin[2], NULL, NULL, c->causal, 0, scale);
  return r;
}

/* The backward from fw's out and lse into new gradients (fw's out and lse
 * kept in the result). */
static tc_result sdpa_backward_on(const tyr_backend *G, tyr_dtype dt, tyr_tensor *const *gin,
                                  const tc_result *fw, const tc_case *c, double scale) {
  tc_result r = *fw;
  r.dq = empty_like_on(gpu(), dt, gin[0]);
  r.dk = empty_like_on(gpu(), dt, gin[1]);
  r.dv = empty_like_on(gpu(), dt, gin[2]);
  G->sdpa_backward(r.dq, r.dk, r.dv, gin[3], gin[0], gin[1], gin[2], fw->out, fw->lse, NULL, NULL,
                   c->causal, 0, scale);
  assert_int_equal(tyr_cuda_synchronize(), 0);
  return r;
}

/* cuDNN's fused attention (the default, AUTO, where it applies) against
 * the CPU in f64, the kernel that ran each direction, the backward's bits
 * repeated, and each direction paired with the tensor-core kernel's other
 * (the saved lse is shared). */
static void test_sdpa_cudnn(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  tyr_cuda_attention_kernel prev_k = tyr_cuda_get_attention_kernel();
  tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
  /* cuDNN takes these on Hopper and newer with cuDNN 9.10.2 or newer (its
     version here, 0 where it does not run); up to 9.15.0 the backward only
     with S a multiple of 128.  Elsewhere the tensor-core kernel (bf16) or
     the CUDA-core kernel (f16) */
  const int version = tcu_sdpa_cudnn_device(0);
  if (g_verbose) printf("    cuDNN %d on cuda:0%s\n", version, version ? "" : ": not used");
  static const tc_case cases[] = {
      {2, 12, 12, 256, 256, 64, true, 0}, /* GPT-like */
      {1, 2, 2, 130, 130, 64, true, 0},   /* partial last tiles */
      {1, 3, 3, 200, 200, 128, true, 0},  /* D 128 */
      {2, 2, 2, 70, 90, 64, false, 0},    /* not causal, T != S */
      {1, 2, 2, 1024, 1024, 64, true, 0}, /* long rows */
  };
  const tyr_backend *G = gpu_be(), *C = &tyr_cpu_backend;
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
    for (int dt_i = 0; dt_i < 2; dt_i++) {
      TYR_SCOPE;
      const tc_case *c = &cases[ci];
      const tyr_dtype dt = dt_i ? TYR_F16 : TYR_BF16;
      const tyr_cuda_attention_kernel other =
          dt == TYR_BF16 ? TYR_CUDA_ATTENTION_TC : TYR_CUDA_ATTENTION_SIMT;
      const bool bwd_shape = version > 91500 || c->Sk % 128 == 0;
      const tyr_cuda_attention_kernel want_f = version ? TYR_CUDA_ATTENTION_CUDNN : other;
      const tyr_cuda_attention_kernel want_b =
          version && bwd_shape ? TYR_CUDA_ATTENTION_CUDNN : other;
      const double scale = 1.0 / sqrt((double)c->D);
      tyr_tensor *gin[4], *cin[4];
      tc_inputs_as(c, dt, gin, cin);
      char tag[160], what[200];
      tc_case_name(tag, sizeof tag, tyr_dtype_name(dt), c);
      tc_result rc = tc_run(C, CPU, TYR_F64, cin, NULL, c);
      /* both directions with the default setting (cuDNN first), then CUDNN */
      for (int s = 0; s < 2; s++) {
        tyr_cuda_set_attention_kernel(s ? TYR_CUDA_ATTENTION_CUDNN : TYR_CUDA_ATTENTION_AUTO);
        tc_result ra = sdpa_forward_on(G, dt, gin, c, scale);
        if (tyr_cuda_attention_last() != want_f)
          fail_msg("%s: the forward ran kernel %d, not %d", tag, (int)tyr_cuda_attention_last(),
                   (int)want_f);
        ra = sdpa_backward_on(G, dt, gin, &ra, c, scale);
        if (tyr_cuda_attention_last() != want_b)
          fail_msg("%s: the backward ran kernel %d, not %d", tag, (int)tyr_cuda_attention_last(),
                   (int)want_b);
        if (s == 0) continue;
        snprintf(what, sizeof what, "cuDNN %s", tag);
        tc_compare(what, &ra, &rc);
        /* the backward again: the same bits (the deterministic default) */
        tc_result again = sdpa_backward_on(G, dt, gin, &ra, c, scale);
        int64_t nd = count_differing(ra.dq, again.dq) + count_differing(ra.dk, again.dk) +
                     count_differing(ra.dv, again.dv);
        if (nd)
          fail_msg("%s: a second backward differs in %lld elements (not deterministic)", what,
                   (long long)nd);
        /* the other kernel's backward (TC: tensor cores for bf16, CUDA cores
           for f16) after this forward, and this backward after its forward */
        tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_TC);
        tc_result rt = tc_run(G, gpu(), dt, gin, NULL, c);
        if (tyr_cuda_attention_last() != other)
          fail_msg("%s: with TC the backward ran kernel %d, not %d", tag,
                   (int)tyr_cuda_attention_last(), (int)other);
        tc_result mix = sdpa_backward_on(G, dt, gin, &ra, c, scale);
        snprintf(what, sizeof what, "cuDNN forward, TC's backward %s", tag);
        tc_compare(what, &mix, &rc);
        tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_CUDNN);
        mix = sdpa_backward_on(G, dt, gin, &rt, c, scale);
        snprintf(what, sizeof what, "TC's forward, cuDNN backward %s", tag);
        tc_compare(what, &mix, &rc);
        if (g_verbose)
          printf("    cudnn %-45s kernels %d/%d, %lld dq elements differ from TC's\n", tag,
                 (int)want_f, (int)want_b, (long long)count_differing(ra.dq, rt.dq));
      }
    }
  /* the deterministic backward over a workspace limit runs the batch in
     chunks (here 5 entries, 2.6 MB of workspace in all on an H100 with
     cuDNN 9.14: chunks of 2, 2 and 1 under a 1 MiB limit), against the CPU
     as above */
  if (version) {
    TYR_SCOPE;
    const tc_case c = {5, 4, 4, 256, 256, 64, true, 0};
    const double scale = 1.0 / sqrt((double)c.D);
    tyr_tensor *gin[4], *cin[4];
    tc_inputs_as(&c, TYR_BF16, gin, cin);
    char tag[160], what[200];
    tc_case_name(tag, sizeof tag, "bf16", &c);
    tc_result rc = tc_run(C, CPU, TYR_F64, cin, NULL, &c);
    tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_AUTO);
    tcu_sdpa_cudnn_set_workspace_limit(1LL << 20);
    tc_result ra = sdpa_forward_on(G, TYR_BF16, gin, &c, scale);
    ra = sdpa_backward_on(G, TYR_BF16, gin, &ra, &c, scale);
    const tyr_cuda_attention_kernel ran = tyr_cuda_attention_last();
    const int calls = tcu_sdpa_cudnn_backward_calls();
    tcu_sdpa_cudnn_set_workspace_limit(-1);
    if (ran != TYR_CUDA_ATTENTION_CUDNN)
      fail_msg("%s: the chunked backward ran kernel %d, not cuDNN's", tag, (int)ran);
    if (calls < 2)
      fail_msg("%s: the backward ran as %d cuDNN call(s) under a 1 MiB workspace limit, not in "
               "chunks",
               tag, calls);
    snprintf(what, sizeof what, "cuDNN, 1 MiB workspace limit, %s", tag);
    tc_compare(what, &ra, &rc);
  }
  /* where it does not apply: the tensor-core kernel (window, GQA, T != S causal, D 32) */
  static const tc_case other[] = {
      {1, 2, 2, 200, 200, 64, true, 48},
      {1, 4, 2, 100, 100, 64, true, 0},
      {1, 2, 2, 17, 40, 64, true, 0},
      {1, 2, 2, 130, 130, 32, false, 0},
  };
  tyr_cuda_set_attention_kernel(TYR_CUDA_ATTENTION_CUDNN);
  for (size_t ci = 0; ci < sizeof other / sizeof *other; ci++) {
    TYR_SCOPE;
    tyr_tensor *in[4], *gin[4];
    tc_inputs(&other[ci], in);
    for (int i = 0; i < 4; i++) gin[i] = to_dev(as_dtype(in[i], TYR_BF16), gpu());
    tc_run(G, gpu(), TYR_BF16, gin, NULL, &other[ci]);
    char tag[160];
    tc_case_name(tag, sizeof tag, "bf16", &other[ci]);
    if (tyr_cuda_attention_last() != TYR_CUDA_ATTENTION_TC)
      fail_msg("%s: ran kernel %d, not the tensor-core kernel", tag,
               (int)tyr_cuda_attention_last());
  }
  tyr_cuda_set_matmul_mode(prev);
  tyr_cuda_set_attention_kernel(prev_k);
}

int main(void) {
  const char *v = getenv("TYR_CUDA_TEST_VERBOSE");
  g_verbose = v && *v && strcmp(v, "0") != 0;
  g_gpu = tyr_cuda_available();
  if (!g_gpu)
    printf("no CUDA GPU: skipped\n");
  else
    printf("test_cuda_ops: %d CUDA device%s, testing cuda:0\n", tyr_cuda_device_count(),
           tyr_cuda_device_count() == 1 ? "" : "s");
  fflush(stdout);
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_without_gpu),
      TYR_TEST(test_host_copies),
      TYR_TEST(test_allocator),
      TYR_TEST(test_device_errors),
      TYR_TEST(test_fill_arange),
      TYR_TEST(test_random_bits),
      TYR_TEST(test_copy_convert),
      TYR_TEST(test_to_dtype_many),
      TYR_TEST(test_unary_kernels),
      TYR_TEST(test_gelu_grad_limits),
      TYR_TEST(test_unary_ops),
      TYR_TEST(test_binary_ops),
      TYR_TEST(test_where),
      TYR_TEST(test_reduce_kernels),
      TYR_TEST(test_reduce_ops),
      TYR_TEST(test_matmul),
      TYR_TEST(test_softmax),
      TYR_TEST(test_layer_norm),
      TYR_TEST(test_mixed_precision_norm_add),
      TYR_TEST(test_cross_entropy),
      TYR_TEST(test_index),
      TYR_TEST(test_mlp_gradients),
      TYR_TEST(test_optim_kernels),
      TYR_TEST(test_rotary),
      TYR_TEST(test_sdpa),
      TYR_TEST(test_matmul_modes),
      TYR_TEST(test_sdpa_tc),
      TYR_TEST(test_sdpa_tc_vs_simt),
      TYR_TEST(test_sdpa_tc_dispatch),
      TYR_TEST(test_sdpa_cudnn_graphs),
      TYR_TEST(test_sdpa_cudnn),
      TYR_TEST(test_adamw_many),
      TYR_TEST(test_sumsq_many),
      TYR_TEST(test_linear_cross_entropy),
      TYR_TEST(test_sdpa_qkv),
      TYR_TEST(test_linear_bias),
      TYR_TEST(test_mlp_gelu_tanh),
      TYR_TEST(test_mixed_param_grads),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  tyr_cuda_empty_cache();
  return failed;
}
