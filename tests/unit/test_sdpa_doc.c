/* Document masking in tyr_sdpa (tyr_sdpa_opts.doc_ids): values against a
 * dense masked reference in double, combined with causal, sliding windows
 * (changed from call to call), explicit masks, grouped heads and T != S;
 * gradients against finite differences; the tiled kernels against their
 * row-at-a-time fallback; tyr_sdpa_qkv; errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/cpu.h" /* tyr_cpu_attention_force_rows */
#include "gradcheck.h"

#define CPU TYR_DEVICE_CPU

static double *values(tyr_tensor *t) {
  TYR_SCOPE;
  int64_t n = tyr_numel(t);
  double *buf = malloc((size_t)(n ? n : 1) * sizeof(double));
  tyr_tensor *d = tyr_to_dtype_e(t, TYR_F64);
  tyr_to_host_e(d, buf, (size_t)n * sizeof(double));
  return buf;
}

static tyr_tensor *randn(tyr_dtype dt, int rank, const int64_t *shape) {
  return tyr_randn_at(TYR_SITE, dt, CPU, rank, shape, 0, 1.0);
}
#define RANDN(dt, ...) randn((dt), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

typedef struct {
  int64_t B, Hq, Hkv, T, S, D;
} attn_dims;

/* Document ids of packed documents: batch b's key j belongs to document
 * (j + 3 b) / len, so boundaries differ between batch rows; with
 * `shuffled` the ids are not monotone (a document may come back). */
static tyr_tensor *make_docs(int64_t B, int64_t S, int64_t len, bool shuffled, int32_t *buf) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < S; j++) {
      int32_t d = (int32_t)((j + 3 * b) / len);
      buf[b * S + j] = shuffled ? d % 3 : d;
    }
  return tyr_from_host_at(TYR_SITE, buf, TYR_I32, CPU, 2, (int64_t[]){B, S});
}

/* The dense [B, T, S] mask of all the options: what the kernels must
 * compute without ever building it. */
static void dense_mask(uint8_t *m, const int32_t *doc, const uint8_t *mask, attn_dims a,
                       bool causal, int64_t window) {
  for (int64_t b = 0; b < a.B; b++)
    for (int64_t i = 0; i < a.T; i++)
      for (int64_t j = 0; j < a.S; j++) {
        int64_t pos = i + a.S - a.T;
        bool ok = doc[b * a.S + pos] == doc[b * a.S + j] && (!mask || mask[i * a.S + j]) &&
                  (!(causal || window > 0) || j <= pos) && (window <= 0 || j > pos - window);
        m[(b * a.T + i) * a.S + j] = ok;
      }
}

/* softmax(q k^T scale, where m) v in double, m dense [B, T, S]. */
static void ref_sdpa(const double *q, const double *k, const double *v, const uint8_t *m,
                     double *out, attn_dims a, double scale) {
  int64_t G = a.Hq / a.Hkv, S = a.S, D = a.D;
  double *p = malloc((size_t)S * sizeof(double));
  for (int64_t b = 0; b < a.B; b++)
    for (int64_t h = 0; h < a.Hq; h++)
      for (int64_t i = 0; i < a.T; i++) {
        const double *qi = q + ((b * a.Hq + h) * a.T + i) * D;
        const double *K = k + (b * a.Hkv + h / G) * S * D, *V = v + (b * a.Hkv + h / G) * S * D;
        const uint8_t *mr = m + (b * a.T + i) * S;
        double *o = out + ((b * a.Hq + h) * a.T + i) * D, mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < S; j++) {
          p[j] = -INFINITY;
          if (!mr[j]) continue;
          double sc = 0;
          for (int64_t d = 0; d < D; d++) sc += qi[d] * K[j * D + d];
          p[j] = sc * scale;
          mx = fmax(mx, p[j]);
        }
        for (int64_t d = 0; d < D; d++) o[d] = 0;
        if (mx == -INFINITY) continue;
        for (int64_t j = 0; j < S; j++) sum += mr[j] ? exp(p[j] - mx) : 0;
        for (int64_t j = 0; j < S; j++)
          if (mr[j])
            for (int64_t d = 0; d < D; d++) o[d] += exp(p[j] - mx) / sum * V[j * D + d];
      }
  free(p);
}

static void check_doc(tyr_dtype dt, attn_dims a, int64_t len, bool shuffled, bool causal,
                      int64_t window, bool use_mask) {
  TYR_SCOPE;
  tyr_tensor *q = RANDN(dt, a.B, a.Hq, a.T, a.D), *k = RANDN(dt, a.B, a.Hkv, a.S, a.D);
  tyr_tensor *v = RANDN(dt, a.B, a.Hkv, a.S, a.D);
  int32_t *db = malloc((size_t)(a.B * a.S) * sizeof(int32_t));
  uint8_t *mb = malloc((size_t)(a.T * a.S)), *dense = malloc((size_t)(a.B * a.T * a.S));
  for (int64_t i = 0; i < a.T * a.S; i++) mb[i] = (i * 7 + 3) % 5 != 0;
  tyr_tensor *doc = make_docs(a.B, a.S, len, shuffled, db);
  tyr_tensor *mask =
      use_mask ? tyr_from_host_at(TYR_SITE, mb, TYR_BOOL, CPU, 2, (int64_t[]){a.T, a.S}) : NULL;
  tyr_tensor *out = tyr_sdpa_e(
      q, k, v, &(tyr_sdpa_opts){.causal = causal, .window = window, .mask = mask, .doc_ids = doc});
  assert_non_null(out);
  dense_mask(dense, db, use_mask ? mb : NULL, a, causal, window);
  double *qv = values(q), *kv = values(k), *vv = values(v), *ov = values(out);
  int64_t n = tyr_numel(out);
  double *ref = malloc((size_t)n * sizeof(double));
  ref_sdpa(qv, kv, vv, dense, ref, a, 1 / sqrt((double)a.D));
  double atol = dt == TYR_F64 ? 1e-12 : 2e-5, rtol = dt == TYR_F64 ? 1e-10 : 1e-4;
  for (int64_t i = 0; i < n; i++)
    if (!(fabs(ov[i] - ref[i]) <= atol + rtol * fabs(ref[i])))
      fail_msg("sdpa doc_ids %s B%lld Hq%lld Hkv%lld T%lld S%lld D%lld len %lld shuffled %d "
               "causal %d window %lld mask %d: element %lld is %.10g, expected %.10g",
               tyr_dtype_name(dt), (long long)a.B, (long long)a.Hq, (long long)a.Hkv,
               (long long)a.T, (long long)a.S, (long long)a.D, (long long)len, shuffled, causal,
               (long long)window, use_mask, (long long)i, ov[i], ref[i]);
  free(ref);
  free(qv);
  free(kv);
  free(vv);
  free(ov);
  free(db);
  free(mb);
  free(dense);
}

static void test_doc_values(void **state) {
  (void)state;
  attn_dims shapes[] = {
      {2, 2, 2, 7, 7, 4},    /* plain */
      {2, 4, 2, 9, 9, 8},    /* grouped KV heads */
      {2, 3, 1, 4, 9, 4},    /* multi-query, T < S: queries sit at the last positions */
      {1, 2, 1, 9, 150, 16}, /* more keys than one chunk of the row kernel */
      {2, 4, 2, 70, 70, 16}, /* several query and key blocks, the parallel path */
  };
  for (int rows = 0; rows < 2; rows++) {
    tyr_cpu_attention_force_rows = rows;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
      for (int opt = 0; opt < 16; opt++) {
        bool causal = opt & 1, mask = opt & 2, shuffled = opt & 8;
        int64_t window = (opt & 4) ? 5 : 0, len = shapes[c].S > 20 ? 17 : 3;
        check_doc(rows || (opt & 1) ? TYR_F32 : TYR_F64, shapes[c], len, shuffled, causal, window,
                  mask);
      }
  }
  tyr_cpu_attention_force_rows = false;
  /* one document per key: only the diagonal; one document: no change */
  check_doc(TYR_F64, (attn_dims){2, 2, 2, 6, 6, 4}, 1, false, true, 0, false);
  check_doc(TYR_F64, (attn_dims){2, 2, 2, 6, 6, 4}, 100, false, false, 0, false);
}

/* The window changes from call to call (per layer, per step) on the same
 * tensors and document ids: each call follows its own window. */
static void test_doc_window_per_call(void **state) {
  (void)state;
  TYR_SCOPE;
  attn_dims a = {2, 2, 2, 40, 40, 8};
  tyr_tensor *q = RANDN(TYR_F64, 2, 2, 40, 8), *k = RANDN(TYR_F64, 2, 2, 40, 8);
  tyr_tensor *v = RANDN(TYR_F64, 2, 2, 40, 8);
  int32_t db[80];
  uint8_t dense[2 * 40 * 40];
  tyr_tensor *doc = make_docs(2, 40, 13, false, db);
  double *qv = values(q), *kv = values(k), *vv = values(v), ref[2 * 2 * 40 * 8];
  int64_t windows[] = {3, 20, 0, 7, 3};
  for (int w = 0; w < 5; w++) {
    tyr_tensor *y =
        tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true, .window = windows[w], .doc_ids = doc});
    dense_mask(dense, db, NULL, a, true, windows[w]);
    ref_sdpa(qv, kv, vv, dense, ref, a, 1 / sqrt(8.0));
    double *yv = values(y);
    for (int64_t i = 0; i < tyr_numel(y); i++) ASSERT_CLOSE(yv[i], ref[i], 1e-12, 1e-10);
    free(yv);
  }
  free(qv);
  free(kv);
  free(vv);
}

typedef struct {
  tyr_sdpa_opts o;
} sdpa_ctx;
static tyr_tensor *call_sdpa(tyr_tensor **in, void *ctx) {
  return tyr_sdpa_e(in[0], in[1], in[2], &((sdpa_ctx *)ctx)->o);
}

static void test_doc_gradients(void **state) {
  (void)state;
  attn_dims shapes[] = {
      {2, 2, 2, 5, 5, 2}, {2, 4, 2, 4, 6, 3}, /* GQA, T < S */
  };
  int32_t db[64];
  uint8_t mb[64];
  for (int run = 0; run < 3; run++) { /* backward in one pass, in two passes, row at a time */
    int rows = run == 2;
    tyr_cpu_attention_force_rows = rows;
    tyr_cpu_attention_bw_passes = run + 1;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
      attn_dims a = shapes[c];
      tyr_tensor *in[3] = {tyr_test_leaf(4, (int64_t[]){a.B, a.Hq, a.T, a.D}, -1.5, 1.5),
                           tyr_test_leaf(4, (int64_t[]){a.B, a.Hkv, a.S, a.D}, -1.5, 1.5),
                           tyr_test_leaf(4, (int64_t[]){a.B, a.Hkv, a.S, a.D}, -1.5, 1.5)};
      tyr_scope_begin();
      tyr_tensor *doc = make_docs(a.B, a.S, 2, c == 1, db);
      for (int64_t i = 0; i < a.T * a.S; i++) mb[i] = (i * 7 + 3) % 5 != 0;
      tyr_tensor *mask = tyr_from_host_at(TYR_SITE, mb, TYR_BOOL, CPU, 2, (int64_t[]){a.T, a.S});
      for (int opt = 0; opt < 8; opt++) {
        sdpa_ctx ctx = {{.causal = opt & 1,
                         .mask = (opt & 2) ? mask : NULL,
                         .window = (opt & 4) ? 2 : 0,
                         .doc_ids = doc}};
        char name[96];
        snprintf(name, sizeof name, "sdpa doc_ids shape %zu run %d causal %d mask %d window %d", c,
                 run, opt & 1, (opt & 2) != 0, (opt & 4) ? 2 : 0);
        tyr_gradcheck(name, call_sdpa, &ctx, 3, in, 1e-6, 1e-6);
      }
      tyr_scope_end();
      for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
    }
  }
  tyr_cpu_attention_force_rows = false;
  tyr_cpu_attention_bw_passes = 0;
}

/* Gradients of a larger case through the tiled kernels equal those of the
 * same attention with the equivalent dense bool mask, batch by batch. */
static void test_doc_gradients_dense(void **state) {
  (void)state;
  TYR_SCOPE;
  const int64_t B = 2, H = 4, Hk = 2, T = 70, D = 8;
  attn_dims a = {B, H, Hk, T, T, D};
  int32_t db[2 * 70];
  uint8_t dense[2 * 70 * 70];
  tyr_tensor *doc = make_docs(B, T, 23, false, db);
  dense_mask(dense, db, NULL, a, true, 30);
  tyr_tensor *q = RANDN(TYR_F64, B, H, T, D), *k = RANDN(TYR_F64, B, Hk, T, D),
             *v = RANDN(TYR_F64, B, Hk, T, D), *go = RANDN(TYR_F64, B, H, T, D);
  tyr_requires_grad_e(q, true);
  tyr_requires_grad_e(k, true);
  tyr_requires_grad_e(v, true);
  for (int passes = 1; passes <= 2; passes++) {
    tyr_cpu_attention_bw_passes = passes;
    tyr_tensor *y =
        tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true, .window = 30, .doc_ids = doc});
    tyr_backward_with_at(TYR_SITE, y, go);
    double *yv = values(y),
           *g[3] = {values(tyr_grad_e(q)), values(tyr_grad_e(k)), values(tyr_grad_e(v))};
    int64_t nq = H * T * D, nk = Hk * T * D;
    for (int64_t b = 0; b < B; b++) {
      TYR_SCOPE;
      tyr_tensor *qb = tyr_narrow_e(tyr_detach_e(q), 0, b, 1),
                 *kb = tyr_narrow_e(tyr_detach_e(k), 0, b, 1);
      tyr_tensor *vb = tyr_narrow_e(tyr_detach_e(v), 0, b, 1), *gb = tyr_narrow_e(go, 0, b, 1);
      qb = tyr_contiguous_e(qb);
      kb = tyr_contiguous_e(kb);
      vb = tyr_contiguous_e(vb);
      tyr_requires_grad_e(qb, true);
      tyr_requires_grad_e(kb, true);
      tyr_requires_grad_e(vb, true);
      tyr_tensor *m =
          tyr_from_host_at(TYR_SITE, dense + b * T * T, TYR_BOOL, CPU, 2, (int64_t[]){T, T});
      tyr_tensor *yb = tyr_sdpa_e(qb, kb, vb, &(tyr_sdpa_opts){.mask = m});
      tyr_backward_with_at(TYR_SITE, yb, gb);
      double *rv = values(yb),
             *rg[3] = {values(tyr_grad_e(qb)), values(tyr_grad_e(kb)), values(tyr_grad_e(vb))};
      for (int64_t i = 0; i < nq; i++) ASSERT_CLOSE(yv[b * nq + i], rv[i], 1e-12, 1e-10);
      for (int64_t i = 0; i < nq; i++) ASSERT_CLOSE(g[0][b * nq + i], rg[0][i], 1e-12, 1e-10);
      for (int t = 1; t < 3; t++)
        for (int64_t i = 0; i < nk; i++) ASSERT_CLOSE(g[t][b * nk + i], rg[t][i], 1e-12, 1e-10);
      free(rv);
      for (int t = 0; t < 3; t++) free(rg[t]);
    }
    free(yv);
    for (int t = 0; t < 3; t++) free(g[t]);
    tyr_zero_grad_e(q);
    tyr_zero_grad_e(k);
    tyr_zero_grad_e(v);
  }
  tyr_cpu_attention_bw_passes = 0;
}

/* tyr_sdpa_qkv with document ids equals tyr_sdpa on the split heads. */
static tyr_tensor *call_qkv(tyr_tensor **in, void *ctx) {
  return tyr_sdpa_qkv_e(in[0], 2, 1, &(tyr_sdpa_opts){.causal = true, .window = 3, .doc_ids = ctx});
}

static void test_doc_qkv(void **state) {
  (void)state;
  tyr_tensor *qkv = TYR_TEST_LEAF(-1, 1, 2, 6, 4 * 3);
  {
    TYR_SCOPE;
    int32_t db[12];
    tyr_tensor *doc = make_docs(2, 6, 2, false, db);
    tyr_tensor *y = call_qkv(&qkv, doc);
    tyr_tensor *q = tyr_narrow_e(qkv, 2, 0, 6), *k = tyr_narrow_e(qkv, 2, 6, 3),
               *v = tyr_narrow_e(qkv, 2, 9, 3);
    q = tyr_transpose_e(tyr_reshape_e(q, 2, 6, 2, 3), 1, 2);
    k = tyr_transpose_e(tyr_reshape_e(k, 2, 6, 1, 3), 1, 2);
    v = tyr_transpose_e(tyr_reshape_e(v, 2, 6, 1, 3), 1, 2);
    tyr_tensor *r =
        tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true, .window = 3, .doc_ids = doc});
    r = tyr_reshape_e(tyr_transpose_e(r, 1, 2), 2, 6, 6);
    double *yv = values(y), *rv = values(r);
    for (int i = 0; i < 2 * 6 * 6; i++) ASSERT_CLOSE(yv[i], rv[i], 1e-15, 0);
    free(yv);
    free(rv);
    tyr_gradcheck("sdpa_qkv doc_ids", call_qkv, doc, 1, &qkv, 1e-6, 1e-6);
  }
  tyr_tensor_free(qkv);
}

static void test_doc_errors(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_tensor *q = RANDN(TYR_F32, 2, 4, 5, 8), *k = RANDN(TYR_F32, 2, 2, 6, 8);
  tyr_tensor *v = RANDN(TYR_F32, 2, 2, 6, 8);
  tyr_tensor *d64 = tyr_zeros_at(TYR_SITE, TYR_I64, CPU, 2, (int64_t[]){2, 6});
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.doc_ids = d64}),
                   "tyr_sdpa: doc_ids must be i32, not i64");
  tyr_tensor *dt = tyr_zeros_at(TYR_SITE, TYR_I32, CPU, 2, (int64_t[]){2, 5});
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.doc_ids = dt}),
                   "tyr_sdpa: q is [2, 4, 5, 8] and k is [2, 2, 6, 8], so doc_ids must be [2, 6] "
                   "(batch, keys), but it is [2, 5]");
  tyr_tensor *d1 = tyr_zeros_at(TYR_SITE, TYR_I32, CPU, 1, (int64_t[]){12});
  EXPECT_TYR_ERROR(tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.doc_ids = d1}),
                   "so doc_ids must be [2, 6] (batch, keys), but it is [12]");
  /* a strided view of document ids is read as its values */
  tyr_tensor *wide = tyr_zeros_at(TYR_SITE, TYR_I32, CPU, 2, (int64_t[]){2, 12});
  tyr_tensor *view = tyr_narrow_e(wide, 1, 3, 6),
             *same = tyr_zeros_at(TYR_SITE, TYR_I32, CPU, 2, (int64_t[]){2, 6});
  tyr_tensor *a = tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true, .doc_ids = view});
  tyr_tensor *b = tyr_sdpa_e(q, k, v, &(tyr_sdpa_opts){.causal = true, .doc_ids = same});
  assert_true(tyr_item_e(tyr_sum_e(tyr_abs_e(tyr_sub_e(a, b)))) == 0.0);
}

/* The typed form: static and dynamic shapes give the erased call's values;
 * a dynamic mismatch stops at the call with both shapes. */
static void test_doc_typed(void **state) {
  (void)state;
  TYR_SCOPE;
  enum { Bs = 2, H = 2, Ts = 9, D = 4 };
  int32_t db[Bs * Ts];
  tyr_T(Bs, H, Ts, D) q = tyr_randn(Bs, H, Ts, D);
  tyr_T(Bs, Ts) doc = tyr_cast(make_docs(Bs, Ts, 3, false, db), Bs, Ts);
  tyr_T(Bs, H, Ts, D) y =
      tyr_sdpa_docs(q, q, q, doc, &(tyr_sdpa_opts){.causal = true, .window = 4});
  tyr_tensor *r =
      tyr_sdpa_e(tyr_erase(q), tyr_erase(q), tyr_erase(q),
                 &(tyr_sdpa_opts){.causal = true, .window = 4, .doc_ids = tyr_erase(doc)});
  assert_true(tyr_item_e(tyr_sum_e(tyr_abs_e(tyr_sub_e(tyr_erase(y), r)))) == 0.0);
  volatile int vn = Bs, vs = Ts + 1; /* run-time dims: the mismatch is found at the call */
  int n = vn, s = vs;
  tyr_T(n, H, Ts, D) qd = tyr_randn(n, H, Ts, D);
  tyr_T(n, H, s, D) kd = tyr_randn(n, H, s, D);
  tyr_T(n, Ts) dd = tyr_zeros_to(TYR_I32, CPU, n, Ts);
  EXPECT_TYR_ERROR(tyr_sdpa_docs(qd, kd, kd, dd, NULL),
                   "tyr_sdpa_docs: the document ids are [2, 9] but q is [2, ..] and k [.., .., 10, "
                   "..] (they must be [B, S])");
  EXPECT_TYR_ERROR(tyr_sdpa_docs(q, q, q, doc, &(tyr_sdpa_opts){.doc_ids = tyr_erase(doc)}),
                   "tyr_sdpa_docs: opts->doc_ids must be NULL");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_doc_values),    TYR_TEST(test_doc_window_per_call),
      TYR_TEST(test_doc_gradients), TYR_TEST(test_doc_gradients_dense),
      TYR_TEST(test_doc_qkv),       TYR_TEST(test_doc_errors),
      TYR_TEST(test_doc_typed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
