/* Document masking (tyr_sdpa_opts.doc_ids) in the CUDA attention kernels
 * against the CPU kernel (itself checked against a dense masked reference
 * in test_sdpa_doc): forward and gradients through the public ops, on the
 * CUDA-core kernel (f32, f64, and bf16 with the kernel forced) and the
 * tensor-core kernel (bf16, and f32 in the bf16 matmul mode), with causal,
 * sliding windows, grouped heads, T != S, monotone and shuffled ids, and
 * tyr_sdpa_qkv's strided heads.  Each result is compared against its
 * largest magnitude: |cuda - cpu| <= frac max |cpu|.
 *
 * Without a GPU it prints "no CUDA GPU: skipped" and every test is
 * skipped.  TYR_CUDA_TEST_VERBOSE=1 prints the largest error of every
 * comparison. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/tyr.h"

#define S TYR_SITE
#define CPU TYR_DEVICE_CPU

static bool g_gpu, g_verbose;

#define REQUIRE_GPU()                                                                              \
  do {                                                                                             \
    if (!g_gpu) skip();                                                                            \
  } while (0)

typedef struct {
  int64_t B, Hq, Hkv, T, Sk, D;
  bool causal;
  int64_t window;
  int64_t len;   /* document length */
  bool shuffled; /* ids that come back (not monotone) */
} doc_case;

static const doc_case CASES[] = {
    {2, 2, 2, 64, 64, 64, true, 0, 16, false},     /* one tile, four documents */
    {2, 2, 2, 130, 130, 64, true, 0, 37, false},   /* partial tiles, boundaries inside tiles */
    {2, 2, 2, 130, 130, 128, true, 48, 50, false}, /* D 128, window */
    {1, 4, 2, 100, 100, 32, true, 0, 9, true},     /* GQA, D 32, shuffled ids */
    {2, 4, 2, 40, 90, 64, false, 33, 20, false},   /* T < S, window, GQA */
    {2, 2, 1, 90, 60, 64, true, 0, 25, false},     /* T > S: rows see no key */
    {2, 6, 6, 256, 256, 128, true, 128, 70, false} /* nanochat-like: long/short window */
};

/* ids of batch b's key j: (j + 5 b) / len, or that mod 3 when shuffled */
static tyr_tensor *make_docs(const doc_case *c) {
  int32_t *buf = malloc((size_t)(c->B * c->Sk) * sizeof(int32_t));
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t j = 0; j < c->Sk; j++) {
      int32_t d = (int32_t)((j + 5 * b) / c->len);
      buf[b * c->Sk + j] = c->shuffled ? d % 3 : d;
    }
  tyr_tensor *t = tyr_from_host_at(S, buf, TYR_I32, CPU, 2, (int64_t[]){c->B, c->Sk});
  free(buf);
  return t;
}

static tyr_tensor *to(tyr_tensor *t, tyr_device dev, tyr_dtype dt) {
  bool prev = tyr_set_grad_enabled(false);
  tyr_tensor *r = tyr_to_device_at(S, tyr_to_dtype_at(S, t, dt), dev);
  tyr_set_grad_enabled(prev);
  assert_non_null(r);
  return r;
}

/* |got - want| <= frac max |want| + 1e-6 everywhere. */
static void expect_close(const char *what, tyr_tensor *got, tyr_tensor *want, double frac) {
  TYR_SCOPE;
  tyr_tensor *g = to(got, CPU, TYR_F64), *w = to(want, CPU, TYR_F64);
  assert_int_equal(tyr_numel(g), tyr_numel(w));
  const double *pg = tyr_data_ptr(g), *pw = tyr_data_ptr(w);
  int64_t n = tyr_numel(g), worst = 0;
  double maxw = 0, werr = 0;
  for (int64_t i = 0; i < n; i++) maxw = fmax(maxw, fabs(pw[i]));
  for (int64_t i = 0; i < n; i++) {
    double d = fabs(pg[i] - pw[i]);
    if (isnan(d)) d = INFINITY;
    if (d > werr || i == 0) {
      werr = d;
      worst = i;
    }
  }
  double tol = frac * maxw + 1e-6;
  if (g_verbose)
    printf("    %-64s max|cpu| %.3g  max abs err %.3g (%.2g of max)\n", what, maxw, werr,
           maxw > 0 ? werr / maxw : werr);
  if (!(werr <= tol))
    fail_msg("%s: largest error %.4g at element %lld: cuda %.9g, cpu %.9g (allowed %.4g)", what,
             werr, (long long)worst, pg[worst], pw[worst], tol);
}

typedef struct {
  tyr_tensor *out, *dq, *dk, *dv;
} run_result;

/* out and the gradients of sum(out * w) for q, k, v (f32 on the CPU) as
 * dtype dt on dev */
static run_result run(tyr_device dev, tyr_dtype dt, tyr_tensor *const *in, tyr_tensor *w,
                      tyr_tensor *doc, const doc_case *c) {
  tyr_tensor *t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = to(in[i], dev, dt);
    tyr_requires_grad_at(S, t[i], true);
  }
  tyr_sdpa_opts o = {.causal = c->causal, .window = c->window, .doc_ids = to(doc, dev, TYR_I32)};
  tyr_tensor *y = tyr_sdpa_at(S, t[0], t[1], t[2], &o);
  assert_non_null(y);
  assert_int_equal(tyr_backward_at(S, tyr_sum_at(S, tyr_mul_at(S, y, to(w, dev, dt)))), 0);
  run_result r = {to(y, CPU, TYR_F64), to(tyr_grad_e(t[0]), CPU, TYR_F64),
                  to(tyr_grad_e(t[1]), CPU, TYR_F64), to(tyr_grad_e(t[2]), CPU, TYR_F64)};
  return r;
}

static void compare(const char *tag, const run_result *g, const run_result *want, double frac) {
  const char *names[4] = {"out", "dq", "dk", "dv"};
  tyr_tensor *a[4] = {g->out, g->dq, g->dk, g->dv},
             *b[4] = {want->out, want->dq, want->dk, want->dv};
  for (int i = 0; i < 4; i++) {
    char what[200];
    snprintf(what, sizeof what, "%s %s", tag, names[i]);
    expect_close(what, a[i], b[i], frac);
  }
}

/* mode 0: f32, CUDA-core kernel; 1: f64; 2: bf16 forced onto the CUDA-core
 * kernel; 3: bf16 on tensor cores; 4: f32 in the bf16 matmul mode (tensor
 * cores) */
static void test_doc_modes(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  tyr_cuda_attention_kernel prev_k = tyr_cuda_get_attention_kernel();
  const char *mode_names[5] = {"f32 simt", "f64 simt", "bf16 simt", "bf16 tc", "f32-as-bf16 tc"};
  for (size_t ci = 0; ci < sizeof CASES / sizeof *CASES; ci++)
    for (int mode = 0; mode < 5; mode++) {
      TYR_SCOPE;
      const doc_case *c = &CASES[ci];
      tyr_dtype dt = mode == 1 ? TYR_F64 : (mode == 2 || mode == 3) ? TYR_BF16 : TYR_F32;
      tyr_cuda_set_matmul_mode(mode == 4 ? TYR_CUDA_MATMUL_BF16 : TYR_CUDA_MATMUL_F32);
      tyr_cuda_set_attention_kernel(mode == 2 ? TYR_CUDA_ATTENTION_SIMT : TYR_CUDA_ATTENTION_TC);
      tyr_tensor *in[3] = {
          tyr_rand_at(S, TYR_F32, CPU, 4, (int64_t[]){c->B, c->Hq, c->T, c->D}, -2, 2),
          tyr_rand_at(S, TYR_F32, CPU, 4, (int64_t[]){c->B, c->Hkv, c->Sk, c->D}, -2, 2),
          tyr_rand_at(S, TYR_F32, CPU, 4, (int64_t[]){c->B, c->Hkv, c->Sk, c->D}, -1, 1)};
      tyr_tensor *w = tyr_rand_at(S, TYR_F32, CPU, 4, (int64_t[]){c->B, c->Hq, c->T, c->D}, -1, 1);
      if (dt == TYR_BF16) /* the reference sees the values the GPU sees */
        for (int i = 0; i < 3; i++) in[i] = to(in[i], CPU, TYR_BF16);
      tyr_tensor *doc = make_docs(c);
      run_result rc = run(CPU, TYR_F64, in, w, doc, c);
      run_result rg = run(TYR_DEVICE_CUDA(0), dt, in, w, doc, c);
      assert_int_equal(tyr_cuda_synchronize(), 0);
      char tag[160];
      snprintf(tag, sizeof tag, "doc %s B%lld Hq%lld Hkv%lld T%lld S%lld D%lld%s w%lld len%lld%s",
               mode_names[mode], (long long)c->B, (long long)c->Hq, (long long)c->Hkv,
               (long long)c->T, (long long)c->Sk, (long long)c->D, c->causal ? " causal" : "",
               (long long)c->window, (long long)c->len, c->shuffled ? " shuffled" : "");
      compare(tag, &rg, &rc, mode == 1 ? 1e-9 : mode == 0 ? 1e-4 : 3e-2);
    }
  tyr_cuda_set_matmul_mode(prev);
  tyr_cuda_set_attention_kernel(prev_k);
}

/* tyr_sdpa_qkv on CUDA (strided heads read in place) with document ids
 * against the CPU */
static void test_doc_qkv(void **state) {
  (void)state;
  REQUIRE_GPU();
  tyr_cuda_matmul_mode prev = tyr_cuda_get_matmul_mode();
  tyr_cuda_set_matmul_mode(TYR_CUDA_MATMUL_F32);
  for (int bf = 0; bf < 2; bf++) {
    TYR_SCOPE;
    const int64_t B = 2, T = 150, H = 4, Hk = 2, D = 64;
    doc_case c = {B, H, Hk, T, T, D, true, 64, 41, false};
    tyr_dtype dt = bf ? TYR_BF16 : TYR_F32;
    tyr_tensor *x = tyr_rand_at(S, TYR_F32, CPU, 3, (int64_t[]){B, T, (H + 2 * Hk) * D}, -2, 2);
    tyr_tensor *w = tyr_rand_at(S, TYR_F32, CPU, 3, (int64_t[]){B, T, H * D}, -1, 1);
    if (bf) x = to(x, CPU, TYR_BF16);
    tyr_tensor *doc = make_docs(&c), *res[2][2];
    for (int d = 0; d < 2; d++) {
      tyr_device dev = d ? TYR_DEVICE_CUDA(0) : CPU;
      tyr_dtype rdt = d ? dt : TYR_F64;
      tyr_tensor *xd = to(x, dev, rdt);
      tyr_requires_grad_at(S, xd, true);
      tyr_sdpa_opts o = {.causal = true, .window = 64, .doc_ids = to(doc, dev, TYR_I32)};
      tyr_tensor *y = tyr_sdpa_qkv_at(S, xd, H, Hk, &o);
      assert_non_null(y);
      assert_int_equal(tyr_backward_at(S, tyr_sum_at(S, tyr_mul_at(S, y, to(w, dev, rdt)))), 0);
      res[d][0] = to(y, CPU, TYR_F64);
      res[d][1] = to(tyr_grad_e(xd), CPU, TYR_F64);
    }
    expect_close(bf ? "qkv doc bf16 out" : "qkv doc f32 out", res[1][0], res[0][0],
                 bf ? 3e-2 : 1e-4);
    expect_close(bf ? "qkv doc bf16 dqkv" : "qkv doc f32 dqkv", res[1][1], res[0][1],
                 bf ? 3e-2 : 1e-4);
  }
  tyr_cuda_set_matmul_mode(prev);
}

int main(void) {
  const char *v = getenv("TYR_CUDA_TEST_VERBOSE");
  g_verbose = v && *v && strcmp(v, "0") != 0;
  g_gpu = tyr_cuda_available();
  if (!g_gpu) printf("no CUDA GPU: skipped\n");
  fflush(stdout);
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_doc_modes),
      TYR_TEST(test_doc_qkv),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
