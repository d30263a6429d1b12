/* Convolutions and image ops: values against direct double-precision
 * references (odd sizes, stride > 1, dilation, groups, depthwise),
 * gradients against finite differences in f64, bad input, typed forms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
  return tyr_randn_at(TYR_SITE, dt, CPU, rank, shape, 0, 1);
}
#define RANDN(dt, ...) randn((dt), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

static void expect_values(tyr_tensor *t, const double *ref, int64_t n, double tol,
                          const char *what) {
  assert_int_equal(tyr_numel(t), n);
  double *v = values(t);
  for (int64_t i = 0; i < n; i++)
    if (!(fabs(v[i] - ref[i]) <= tol + tol * fabs(ref[i]))) {
      double got = v[i];
      free(v);
      fail_msg("%s: element %lld is %.10g, expected %.10g", what, (long long)i, got, ref[i]);
    }
  free(v);
}

/* ---- conv2d ------------------------------------------------------------------ */
typedef struct {
  int64_t N, C, H, W, K, R, S, st[2], pad[2], dil[2], G;
} conv_case;

static int64_t out_size(int64_t in, int64_t k, int64_t st, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (k - 1) - 1) / st + 1;
}

/* direct convolution in double */
static void ref_conv2d(const conv_case *c, const double *x, const double *w, const double *b,
                       double *y) {
  int64_t P = out_size(c->H, c->R, c->st[0], c->pad[0], c->dil[0]);
  int64_t Q = out_size(c->W, c->S, c->st[1], c->pad[1], c->dil[1]);
  int64_t Cg = c->C / c->G, Kg = c->K / c->G;
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t k = 0; k < c->K; k++)
      for (int64_t p = 0; p < P; p++)
        for (int64_t q = 0; q < Q; q++) {
          double acc = b ? b[k] : 0;
          int64_t g = k / Kg;
          for (int64_t ci = 0; ci < Cg; ci++)
            for (int64_t r = 0; r < c->R; r++)
              for (int64_t s = 0; s < c->S; s++) {
                int64_t ih = p * c->st[0] - c->pad[0] + r * c->dil[0];
                int64_t iw = q * c->st[1] - c->pad[1] + s * c->dil[1];
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                acc += x[((n * c->C + g * Cg + ci) * c->H + ih) * c->W + iw] *
                       w[((k * Cg + ci) * c->R + r) * c->S + s];
              }
          y[((n * c->K + k) * P + p) * Q + q] = acc;
        }
}

static const conv_case conv_cases[] = {
    {2, 3, 7, 5, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},  /* odd sizes, same padding */
    {2, 4, 9, 8, 6, 3, 2, {2, 3}, {1, 0}, {1, 1}, 2},  /* stride > 1, groups */
    {1, 3, 11, 9, 2, 3, 3, {1, 2}, {2, 1}, {2, 3}, 1}, /* dilation */
    {3, 6, 6, 7, 6, 3, 3, {2, 2}, {1, 1}, {1, 1}, 6},  /* depthwise */
    {2, 5, 4, 6, 3, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1},  /* pointwise */
    {2, 4, 5, 5, 8, 5, 5, {1, 1}, {0, 0}, {1, 1}, 4},  /* kernel as large as the input */
};

static void test_conv2d_values(void **state) {
  (void)state;
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
    const conv_case *c = &conv_cases[ci];
    for (int dt = 0; dt < 2; dt++) {
      for (int bias = 0; bias < 2; bias++) {
        TYR_SCOPE;
        tyr_dtype t = dt ? TYR_F64 : TYR_F32;
        tyr_tensor *x = RANDN(t, c->N, c->C, c->H, c->W);
        tyr_tensor *w = RANDN(t, c->K, c->C / c->G, c->R, c->S);
        tyr_tensor *b = bias ? RANDN(t, c->K) : NULL;
        tyr_conv_opts o = {.stride = {c->st[0], c->st[1]},
                           .padding = {c->pad[0], c->pad[1]},
                           .dilation = {c->dil[0], c->dil[1]},
                           .groups = c->G};
        tyr_tensor *y = tyr_conv2d_e(x, w, b, &o);
        assert_non_null(y);
        int64_t P = out_size(c->H, c->R, c->st[0], c->pad[0], c->dil[0]);
        int64_t Q = out_size(c->W, c->S, c->st[1], c->pad[1], c->dil[1]);
        assert_int_equal(y->shape[2], P);
        assert_int_equal(y->shape[3], Q);
        double *xv = values(x), *wv = values(w), *bv = b ? values(b) : NULL;
        int64_t n = c->N * c->K * P * Q;
        double *ref = malloc(sizeof(double) * (size_t)n);
        ref_conv2d(c, xv, wv, bv, ref);
        char what[64];
        snprintf(what, sizeof what, "conv2d case %zu %s%s", ci, dt ? "f64" : "f32",
                 bias ? " bias" : "");
        expect_values(y, ref, n, dt ? 1e-12 : 1e-4, what);
        free(ref);
        free(xv);
        free(wv);
        free(bv);
      }
    }
  }
}

typedef struct {
  tyr_conv_opts o;
  int kind; /* 0 conv2d, 1 conv1d, 2 conv_transpose2d */
} conv_ctx;
static tyr_tensor *conv_fn(tyr_tensor **in, void *ctx) {
  conv_ctx *c = ctx;
  if (c->kind == 1) return tyr_conv1d_e(in[0], in[1], in[2], &c->o);
  if (c->kind == 2) return tyr_conv_transpose2d_e(in[0], in[1], in[2], &c->o);
  return tyr_conv2d_e(in[0], in[1], in[2], &c->o);
}

static void test_conv2d_grad(void **state) {
  (void)state;
  for (size_t ci = 0; ci < 4; ci++) {
    const conv_case *c = &conv_cases[ci];
    conv_ctx ctx = {.o = {.stride = {c->st[0], c->st[1]},
                          .padding = {c->pad[0], c->pad[1]},
                          .dilation = {c->dil[0], c->dil[1]},
                          .groups = c->G}};
    tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 2, c->C, c->H, c->W),
                         TYR_TEST_LEAF(-1, 1, c->K, c->C / c->G, c->R, c->S),
                         TYR_TEST_LEAF(-1, 1, c->K)};
    tyr_gradcheck("conv2d", conv_fn, &ctx, 3, in, 1e-6, 1e-6);
    for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
  }
}

static void test_conv1d(void **state) {
  (void)state;
  /* conv1d equals conv2d on [N, C, 1, L] */
  {
    TYR_SCOPE;
    tyr_tensor *x = RANDN(TYR_F64, 2, 4, 13), *w = RANDN(TYR_F64, 6, 2, 3), *b = RANDN(TYR_F64, 6);
    tyr_conv_opts o = {.stride = {2}, .padding = {2}, .dilation = {2}, .groups = 2};
    tyr_tensor *y = tyr_conv1d_e(x, w, b, &o);
    assert_non_null(y);
    assert_int_equal(y->rank, 3);
    assert_int_equal(y->shape[2], (13 + 4 - 4 - 1) / 2 + 1);
    conv_case c = {2, 4, 1, 13, 6, 1, 3, {1, 2}, {0, 2}, {1, 2}, 2};
    double *xv = values(x), *wv = values(w), *bv = values(b);
    double ref[2 * 6 * 7];
    ref_conv2d(&c, xv, wv, bv, ref);
    expect_values(y, ref, 2 * 6 * 7, 1e-12, "conv1d");
    free(xv);
    free(wv);
    free(bv);
  }
  conv_ctx ctx = {.o = {.stride = {2}, .padding = {1}, .dilation = {1}, .groups = 1}, .kind = 1};
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 2, 3, 9), TYR_TEST_LEAF(-1, 1, 4, 3, 3),
                       TYR_TEST_LEAF(-1, 1, 4)};
  tyr_gradcheck("conv1d", conv_fn, &ctx, 3, in, 1e-6, 1e-6);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
}

/* ---- conv3d --------------------------------------------------------------------- */
/* direct 3-d convolution in double: x [N, C, D, H, W], w [K, C/G, A, R, S] */
static void ref_conv3d(const int64_t *xs, const int64_t *ws, const int64_t st[3],
                       const int64_t pad[3], const int64_t dil[3], int64_t G, const double *x,
                       const double *w, const double *b, double *y, int64_t os[3]) {
  int64_t N = xs[0], C = xs[1], K = ws[0], Cg = C / G, Kg = K / G;
  for (int i = 0; i < 3; i++) os[i] = out_size(xs[2 + i], ws[2 + i], st[i], pad[i], dil[i]);
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t od = 0; od < os[0]; od++)
        for (int64_t oh = 0; oh < os[1]; oh++)
          for (int64_t ow = 0; ow < os[2]; ow++) {
            double acc = b ? b[k] : 0;
            int64_t g = k / Kg;
            for (int64_t c = 0; c < Cg; c++)
              for (int64_t a = 0; a < ws[2]; a++)
                for (int64_t r = 0; r < ws[3]; r++)
                  for (int64_t q = 0; q < ws[4]; q++) {
                    int64_t d = od * st[0] - pad[0] + a * dil[0];
                    int64_t h = oh * st[1] - pad[1] + r * dil[1];
                    int64_t v = ow * st[2] - pad[2] + q * dil[2];
                    if (d < 0 || d >= xs[2] || h < 0 || h >= xs[3] || v < 0 || v >= xs[4]) continue;
                    acc += x[(((n * C + g * Cg + c) * xs[2] + d) * xs[3] + h) * xs[4] + v] *
                           w[(((k * Cg + c) * ws[2] + a) * ws[3] + r) * ws[4] + q];
                  }
            y[(((n * K + k) * os[0] + od) * os[1] + oh) * os[2] + ow] = acc;
          }
}

typedef struct {
  tyr_conv3d_opts o;
} conv3d_ctx;
static tyr_tensor *conv3d_fn(tyr_tensor **in, void *ctx) {
  return tyr_conv3d_e(in[0], in[1], in[2], &((conv3d_ctx *)ctx)->o);
}

static void test_conv3d(void **state) {
  (void)state;
  struct {
    int64_t xs[5], ws[5], st[3], pad[3], dil[3], G;
    bool bias;
  } cases[] = {
      {{2, 3, 5, 6, 4}, {4, 3, 3, 3, 2}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1, true},
      {{1, 4, 7, 5, 6}, {6, 2, 3, 2, 3}, {2, 1, 2}, {1, 1, 0}, {1, 2, 1}, 2, true},
      {{2, 4, 4, 4, 4}, {4, 1, 2, 3, 3}, {1, 2, 1}, {2, 1, 1}, {2, 1, 1}, 4, false}, /* depthwise */
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    TYR_SCOPE;
    tyr_tensor *x = randn(TYR_F64, 5, cases[ci].xs), *w = randn(TYR_F64, 5, cases[ci].ws);
    tyr_tensor *b = cases[ci].bias ? RANDN(TYR_F64, cases[ci].ws[0]) : NULL;
    tyr_conv3d_opts o = {.groups = cases[ci].G};
    for (int i = 0; i < 3; i++)
      o.stride[i] = cases[ci].st[i], o.padding[i] = cases[ci].pad[i],
      o.dilation[i] = cases[ci].dil[i];
    tyr_tensor *y = tyr_conv3d_e(x, w, b, &o);
    assert_non_null(y);
    double *xv = values(x), *wv = values(w), *bv = b ? values(b) : NULL;
    int64_t os[3], n = cases[ci].xs[0] * cases[ci].ws[0] * 7 * 6 * 6;
    double *ref = malloc(sizeof(double) * (size_t)n);
    ref_conv3d(cases[ci].xs, cases[ci].ws, cases[ci].st, cases[ci].pad, cases[ci].dil, cases[ci].G,
               xv, wv, bv, ref, os);
    assert_int_equal(y->rank, 5);
    for (int i = 0; i < 3; i++) assert_int_equal(y->shape[2 + i], os[i]);
    expect_values(y, ref, cases[ci].xs[0] * cases[ci].ws[0] * os[0] * os[1] * os[2], 1e-12,
                  "conv3d");
    free(xv), free(wv), free(bv), free(ref);
  }
  /* gradients of x, w and b in f64 */
  conv3d_ctx ctx = {
      .o = {.stride = {2, 1, 1}, .padding = {1, 0, 1}, .dilation = {1, 1, 2}, .groups = 1}};
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 2, 2, 4, 3, 4), TYR_TEST_LEAF(-1, 1, 3, 2, 2, 2, 2),
                       TYR_TEST_LEAF(-1, 1, 3)};
  tyr_gradcheck("conv3d", conv3d_fn, &ctx, 3, in, 1e-6, 1e-6);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
  /* run-time errors name the op and both shapes, nothing computed */
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F64, 1, 2, 3, 3, 3), *w = RANDN(TYR_F64, 4, 2, 4, 1, 1);
  EXPECT_TYR_ERROR(tyr_conv3d_e(x, w, NULL, NULL), "tyr_conv3d: the kernel");
  tyr_tensor *w3 = RANDN(TYR_F64, 4, 3, 1, 1, 1);
  EXPECT_TYR_ERROR(tyr_conv3d_e(x, w3, NULL, NULL), "divisible by groups");
  tyr_conv3d_opts bad = TYR_CONV3D_OPTS(0, 0, 1, 1);
  tyr_tensor *w1 = RANDN(TYR_F64, 4, 2, 1, 1, 1);
  EXPECT_TYR_ERROR(tyr_conv3d_e(x, w1, NULL, &bad), "stride and dilation must be >= 1");
  EXPECT_TYR_ERROR(tyr_conv3d_e(RANDN(TYR_F64, 2, 3, 3, 3), w1, NULL, NULL),
                   "x must be [N, C, D, H, W]");
  /* the typed form: constant dims give the output type */
  tyr_T(1, 2, 5, 6, 7) xt = tyr_randn_to(TYR_F64, CPU, 1, 2, 5, 6, 7);
  tyr_T(3, 2, 3, 3, 3) wt = tyr_randn_to(TYR_F64, CPU, 3, 2, 3, 3, 3);
  tyr_T(1, 3, 3, 3, 4) yt = tyr_conv3d(xt, wt, NULL, 2, 1, 1, 1);
  assert_non_null(yt);
}

/* conv_transpose2d(x, w) is the adjoint of conv2d(., w): <conv(y, w), x> =
 * <y, conv_transpose(x, w)> for every y; checked with random y, plus the
 * gradient check */
static void test_conv_transpose2d(void **state) {
  (void)state;
  {
    TYR_SCOPE;
    tyr_conv_opts o = {.stride = {2, 2}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
    tyr_tensor *w = RANDN(TYR_F64, 4, 3, 3, 2); /* conv: K 4, C 6; transpose: C 4 -> K 6 */
    tyr_tensor *y = RANDN(TYR_F64, 2, 6, 9, 8);
    tyr_tensor *cy = tyr_conv2d_e(y, w, NULL, &o);
    assert_non_null(cy);
    tyr_tensor *x = randn(TYR_F64, 4, cy->shape);
    tyr_conv_opts ot = o;
    ot.output_padding[0] = (9 + 2 - 3) % 2;
    ot.output_padding[1] = (8 - 2 - 1) % 2;
    tyr_tensor *tx = tyr_conv_transpose2d_e(x, w, NULL, &ot);
    assert_non_null(tx);
    assert_int_equal(tx->shape[2], 9);
    assert_int_equal(tx->shape[3], 8);
    double lhs = tyr_item_e(tyr_sum_e(tyr_mul_e(cy, x)));
    double rhs = tyr_item_e(tyr_sum_e(tyr_mul_e(y, tx)));
    ASSERT_CLOSE(lhs, rhs, 1e-9, 1e-9);
  }
  conv_ctx ctx = {.o = {.stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 1},
                  .kind = 2};
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 2, 3, 4, 3), TYR_TEST_LEAF(-1, 1, 3, 2, 3, 3),
                       TYR_TEST_LEAF(-1, 1, 2)};
  tyr_gradcheck("conv_transpose2d", conv_fn, &ctx, 3, in, 1e-6, 1e-6);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
  /* conv_transpose1d equals conv_transpose2d on [N, C, 1, L] */
  {
    TYR_SCOPE;
    tyr_conv_opts o1 = {
        .stride = {3}, .padding = {1}, .dilation = {2}, .groups = 2, .output_padding = {1}};
    tyr_conv_opts o2 = {.stride = {1, 3},
                        .padding = {0, 1},
                        .dilation = {1, 2},
                        .groups = 2,
                        .output_padding = {0, 1}};
    tyr_tensor *x = RANDN(TYR_F64, 2, 4, 7), *w = RANDN(TYR_F64, 4, 3, 3), *b = RANDN(TYR_F64, 6);
    tyr_tensor *y1 = tyr_conv_transpose1d_e(x, w, b, &o1);
    tyr_tensor *y2 = tyr_conv_transpose2d_e(tyr_unsqueeze_e(x, 2), tyr_unsqueeze_e(w, 2), b, &o2);
    assert_non_null(y1);
    assert_int_equal(y1->shape[2], (7 - 1) * 3 - 2 + 2 * 2 + 1 + 1);
    double *v2 = values(y2);
    expect_values(y1, v2, tyr_numel(y2), 0, "conv_transpose1d");
    free(v2);
  }
  /* the typed form computes the output size */
  {
    TYR_SCOPE;
    tyr_T(2, 4, 5, 6) x = tyr_randn(2, 4, 5, 6);
    tyr_T(4, 3, 3, 3) w = tyr_randn(4, 3, 3, 3);
    tyr_T(2, 6, 9, 11) y = tyr_conv_transpose2d(x, w, NULL, 2, 1, 1, 2);
    assert_non_null(y);
  }
}

/* ---- pooling ------------------------------------------------------------------- */
static void ref_pool(int kind, const double *x, double *y, int64_t NC, int64_t H, int64_t W,
                     int64_t k, int64_t st, int64_t pad, int64_t P, int64_t Q) {
  for (int64_t pl = 0; pl < NC; pl++)
    for (int64_t p = 0; p < P; p++)
      for (int64_t q = 0; q < Q; q++) {
        double best = -INFINITY, sum = 0;
        int64_t h0 = p * st - pad, w0 = q * st - pad, h1 = h0 + k, w1 = w0 + k, cnt = k * k;
        if (kind == 2) {
          h0 = p * H / P;
          h1 = ((p + 1) * H + P - 1) / P;
          w0 = q * W / Q;
          w1 = ((q + 1) * W + Q - 1) / Q;
          cnt = (h1 - h0) * (w1 - w0);
        }
        for (int64_t h = h0; h < h1; h++)
          for (int64_t w = w0; w < w1; w++) {
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            double v = x[(pl * H + h) * W + w];
            best = fmax(best, v);
            sum += v;
          }
        y[(pl * P + p) * Q + q] = kind == 0 ? best : sum / (double)cnt;
      }
}

typedef struct {
  int kind;
  int64_t k, st, pad, oh, ow;
} pool_ctx;
static tyr_tensor *pool_fn(tyr_tensor **in, void *ctx) {
  pool_ctx *c = ctx;
  if (c->kind == 0) return tyr_max_pool2d_e(in[0], c->k, c->st, c->pad);
  if (c->kind == 1) return tyr_avg_pool2d_e(in[0], c->k, c->st, c->pad);
  return tyr_adaptive_avg_pool2d_e(in[0], c->oh, c->ow);
}

static void test_pool(void **state) {
  (void)state;
  pool_ctx cases[] = {{0, 3, 2, 1, 0, 0}, {0, 2, 2, 0, 0, 0}, {1, 3, 2, 1, 0, 0},
                      {1, 2, 1, 0, 0, 0}, {2, 0, 0, 0, 3, 2}, {2, 0, 0, 0, 1, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pool_ctx *c = &cases[i];
    for (int dt = 0; dt < 2; dt++) {
      TYR_SCOPE;
      int64_t N = 2, C = 3, H = 7, W = 8;
      tyr_tensor *x = RANDN(dt ? TYR_F64 : TYR_F32, N, C, H, W);
      tyr_tensor *in[1] = {x};
      tyr_tensor *y = pool_fn(in, c);
      assert_non_null(y);
      int64_t P = y->shape[2], Q = y->shape[3];
      if (c->kind < 2) {
        assert_int_equal(P, out_size(H, c->k, c->st, c->pad, 1));
        assert_int_equal(Q, out_size(W, c->k, c->st, c->pad, 1));
      }
      double *xv = values(x), *ref = malloc(sizeof(double) * (size_t)(N * C * P * Q));
      ref_pool(c->kind, xv, ref, N * C, H, W, c->k, c->st, c->pad, P, Q);
      expect_values(y, ref, N * C * P * Q, dt ? 1e-12 : 1e-5, "pool");
      free(xv);
      free(ref);
    }
    /* distinct values, so that the maximum is unique and differentiable */
    tyr_tensor *x = TYR_TEST_LEAF(0, 1, 2, 2, 7, 6);
    tyr_tensor *in[1] = {x};
    tyr_gradcheck("pool", pool_fn, c, 1, in, 1e-7, 1e-6);
    tyr_tensor_free(x);
  }
}

/* ---- batch norm ------------------------------------------------------------------ */
typedef struct {
  bool training;
  tyr_tensor *rm, *rv;
} bn_ctx;
static tyr_tensor *bn_fn(tyr_tensor **in, void *ctx) {
  bn_ctx *c = ctx;
  /* the running statistics must not drift during the finite differences */
  return tyr_batch_norm_e(in[0], in[1], in[2], c->training ? NULL : c->rm,
                          c->training ? NULL : c->rv, c->training, 0.1, 1e-5);
}

static void test_batch_norm(void **state) {
  (void)state;
  int64_t N = 3, C = 4, H = 5, W = 3, M = H * W;
  for (int dt = 0; dt < 2; dt++) {
    TYR_SCOPE;
    tyr_dtype t = dt ? TYR_F64 : TYR_F32;
    tyr_tensor *x = RANDN(t, N, C, H, W), *w = RANDN(t, C), *b = RANDN(t, C);
    tyr_tensor *rm = tyr_zeros_at(TYR_SITE, t, CPU, 1, &C);
    tyr_tensor *rv = tyr_ones_at(TYR_SITE, t, CPU, 1, &C);
    tyr_tensor *y = tyr_batch_norm_e(x, w, b, rm, rv, true, 0.1, 1e-5);
    assert_non_null(y);
    double *xv = values(x), *wv = values(w), *bv = values(b);
    double ref[3 * 4 * 15], mu[4], var[4];
    for (int64_t c = 0; c < C; c++) {
      double s = 0, v = 0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < M; i++) s += xv[(n * C + c) * M + i];
      mu[c] = s / (double)(N * M);
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < M; i++) v += pow(xv[(n * C + c) * M + i] - mu[c], 2);
      var[c] = v / (double)(N * M);
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < M; i++)
          ref[(n * C + c) * M + i] =
              (xv[(n * C + c) * M + i] - mu[c]) / sqrt(var[c] + 1e-5) * wv[c] + bv[c];
    }
    double tol = dt ? 1e-10 : 1e-4;
    expect_values(y, ref, N * C * M, tol, "batch_norm training");
    double rmr[4], rvr[4];
    for (int c = 0; c < 4; c++) {
      rmr[c] = 0.1 * mu[c];
      rvr[c] = 0.9 + 0.1 * var[c] * (double)(N * M) / (double)(N * M - 1);
    }
    expect_values(rm, rmr, C, tol, "running_mean");
    expect_values(rv, rvr, C, tol, "running_var");
    /* evaluation uses the running statistics */
    tyr_tensor *ye = tyr_batch_norm_e(x, w, b, rm, rv, false, 0.1, 1e-5);
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < M; i++)
          ref[(n * C + c) * M + i] =
              (xv[(n * C + c) * M + i] - rmr[c]) / sqrt(rvr[c] + 1e-5) * wv[c] + bv[c];
    expect_values(ye, ref, N * C * M, tol, "batch_norm eval");
    expect_values(rm, rmr, C, tol, "running_mean unchanged by eval");
    free(xv);
    free(wv);
    free(bv);
  }
  for (int tr = 0; tr < 2; tr++) {
    bn_ctx ctx = {.training = tr};
    ctx.rm = tyr_keep_e(RANDN(TYR_F64, C));
    ctx.rv = tyr_keep_e(tyr_rand_at(TYR_SITE, TYR_F64, CPU, 1, &C, 0.5, 2));
    tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 3, 4, 2, 3), TYR_TEST_LEAF(0.5, 1.5, 4),
                         TYR_TEST_LEAF(-1, 1, 4)};
    tyr_gradcheck(tr ? "batch_norm training" : "batch_norm eval", bn_fn, &ctx, 3, in, 1e-6, 1e-5);
    for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
    tyr_tensor_free(ctx.rm);
    tyr_tensor_free(ctx.rv);
  }
}

/* ---- group norm and instance norm ------------------------------------------------ */
static tyr_tensor *gn_fn(tyr_tensor **in, void *ctx) {
  int64_t g = *(int64_t *)ctx;
  if (g == 0) return tyr_instance_norm_e(in[0], in[1], in[2], 1e-5);
  return tyr_group_norm_e(in[0], g, in[1], in[2], 1e-5);
}

static void test_group_norm(void **state) {
  (void)state;
  int64_t N = 2, C = 6, M = 5;
  int64_t groups[3] = {3, 1, 0};
  for (int gi = 0; gi < 3; gi++) {
    TYR_SCOPE;
    int64_t G = groups[gi] ? groups[gi] : C;
    tyr_tensor *x = RANDN(TYR_F64, N, C, M), *w = RANDN(TYR_F64, C), *b = RANDN(TYR_F64, C);
    tyr_tensor *in[3] = {x, w, b};
    tyr_tensor *y = gn_fn(in, &groups[gi]);
    assert_non_null(y);
    double *xv = values(x), *wv = values(w), *bv = values(b), ref[2 * 6 * 5];
    int64_t cg = C / G;
    for (int64_t n = 0; n < N; n++)
      for (int64_t g = 0; g < G; g++) {
        const double *xs = xv + (n * C + g * cg) * M;
        double s = 0, v = 0;
        for (int64_t i = 0; i < cg * M; i++) s += xs[i];
        double mu = s / (double)(cg * M);
        for (int64_t i = 0; i < cg * M; i++) v += (xs[i] - mu) * (xs[i] - mu);
        double rs = 1 / sqrt(v / (double)(cg * M) + 1e-5);
        for (int64_t i = 0; i < cg * M; i++) {
          int64_t c = g * cg + i / M;
          ref[(n * C + g * cg) * M + i] = (xs[i] - mu) * rs * wv[c] + bv[c];
        }
      }
    expect_values(y, ref, N * C * M, 1e-10, "group_norm");
    free(xv);
    free(wv);
    free(bv);
  }
  int64_t g = 2;
  tyr_tensor *in[3] = {TYR_TEST_LEAF(-1, 1, 2, 4, 2, 3), TYR_TEST_LEAF(0.5, 1.5, 4),
                       TYR_TEST_LEAF(-1, 1, 4)};
  tyr_gradcheck("group_norm", gn_fn, &g, 3, in, 1e-6, 1e-5);
  for (int i = 0; i < 3; i++) tyr_tensor_free(in[i]);
}

/* ---- rearrangements and resampling ---------------------------------------------- */
static void test_shuffle_patchify(void **state) {
  (void)state;
  TYR_SCOPE;
  int64_t N = 2, C = 3, r = 2, H = 3, W = 5;
  tyr_tensor *x = RANDN(TYR_F64, N, C * r * r, H, W);
  double *xv = values(x);
  tyr_tensor *y = tyr_pixel_shuffle_e(x, r);
  assert_non_null(y);
  double ref[2 * 12 * 15];
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t h = 0; h < H * r; h++)
        for (int64_t w = 0; w < W * r; w++)
          ref[((n * C + c) * H * r + h) * W * r + w] =
              xv[((n * C * r * r + c * r * r + (h % r) * r + (w % r)) * H + h / r) * W + w / r];
  expect_values(y, ref, N * C * H * W * r * r, 0, "pixel_shuffle");
  expect_values(tyr_pixel_unshuffle_e(y, r), xv, N * C * H * W * r * r, 0, "pixel_unshuffle");
  free(xv);
  /* patchify: patch (i, j) of [N, C, H, W] flattened as (c, a, b) */
  int64_t p = 2, PH = 4, PW = 6;
  tyr_tensor *im = RANDN(TYR_F64, N, C, PH, PW);
  double *iv = values(im), pref[2 * 6 * 12];
  tyr_tensor *pt = tyr_patchify_e(im, p);
  assert_non_null(pt);
  assert_int_equal(pt->shape[1], (PH / p) * (PW / p));
  assert_int_equal(pt->shape[2], C * p * p);
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < PH / p; i++)
      for (int64_t j = 0; j < PW / p; j++)
        for (int64_t c = 0; c < C; c++)
          for (int64_t a = 0; a < p; a++)
            for (int64_t b = 0; b < p; b++)
              pref[((n * (PH / p) * (PW / p) + i * (PW / p) + j) * C + c) * p * p + a * p + b] =
                  iv[((n * C + c) * PH + i * p + a) * PW + j * p + b];
  expect_values(pt, pref, N * C * PH * PW, 0, "patchify");
  expect_values(tyr_unpatchify_e(pt, PH, PW, p), iv, N * C * PH * PW, 0, "unpatchify");
  free(iv);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_pixel_shuffle_e(RANDN(TYR_F32, 1, 6, 2, 2), 2), "tyr_pixel_shuffle");
  EXPECT_TYR_ERROR(tyr_patchify_e(RANDN(TYR_F32, 1, 3, 5, 4), 2), "tyr_patchify: the patch size");
  EXPECT_TYR_ERROR(tyr_unpatchify_e(RANDN(TYR_F32, 1, 5, 12), 4, 4, 2), "tyr_unpatchify");
}

static void test_pad(void **state) {
  (void)state;
  TYR_SCOPE;
  int64_t N = 2, C = 2, H = 4, W = 5, pd[4] = {2, 1, 3, 0};
  tyr_tensor *x = RANDN(TYR_F64, N, C, H, W);
  double *xv = values(x);
  int64_t OH = H + pd[2] + pd[3], OW = W + pd[0] + pd[1];
  double ref[2 * 2 * 7 * 8];
  for (int mode = 0; mode < 2; mode++) {
    for (int64_t pl = 0; pl < N * C; pl++)
      for (int64_t h = 0; h < OH; h++)
        for (int64_t w = 0; w < OW; w++) {
          int64_t sh = h - pd[2], sw = w - pd[0];
          double v;
          if (mode == 0) {
            v = (sh >= 0 && sh < H && sw >= 0 && sw < W) ? xv[(pl * H + sh) * W + sw] : 1.5;
          } else {
            sh = sh < 0 ? -sh : sh >= H ? 2 * (H - 1) - sh : sh;
            sw = sw < 0 ? -sw : sw >= W ? 2 * (W - 1) - sw : sw;
            v = xv[(pl * H + sh) * W + sw];
          }
          ref[(pl * OH + h) * OW + w] = v;
        }
    tyr_tensor *y =
        tyr_pad2d_e(x, pd[0], pd[1], pd[2], pd[3], mode ? TYR_PAD_REFLECT : TYR_PAD_CONSTANT, 1.5);
    expect_values(y, ref, N * C * OH * OW, 0, mode ? "pad reflect" : "pad constant");
  }
  free(xv);
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_pad2d_e(x, 5, 0, 0, 0, TYR_PAD_REFLECT, 0), "tyr_pad2d: padding 5");
  EXPECT_TYR_ERROR(tyr_pad2d_e(x, -1, 0, 0, 0, TYR_PAD_CONSTANT, 0), "tyr_pad2d");
}

/* PyTorch's interpolate, in double */
static void ref_interp(const double *x, double *y, int64_t NC, int64_t H, int64_t W, int64_t OH,
                       int64_t OW, int mode, bool ac) {
  for (int64_t pl = 0; pl < NC; pl++)
    for (int64_t i = 0; i < OH; i++)
      for (int64_t j = 0; j < OW; j++) {
        double v;
        if (mode == 0) {
          int64_t si = (int64_t)floor((double)i * H / OH), sj = (int64_t)floor((double)j * W / OW);
          v = x[(pl * H + (si < H ? si : H - 1)) * W + (sj < W ? sj : W - 1)];
        } else {
          double ci = ac ? (OH > 1 ? (double)i * (H - 1) / (OH - 1) : 0)
                         : fmax(0, (i + 0.5) * H / OH - 0.5);
          double cj = ac ? (OW > 1 ? (double)j * (W - 1) / (OW - 1) : 0)
                         : fmax(0, (j + 0.5) * W / OW - 0.5);
          int64_t i0 = (int64_t)floor(ci), j0 = (int64_t)floor(cj);
          if (i0 > H - 1) i0 = H - 1;
          if (j0 > W - 1) j0 = W - 1;
          int64_t i1 = i0 + 1 < H ? i0 + 1 : H - 1, j1 = j0 + 1 < W ? j0 + 1 : W - 1;
          double fi = ci - i0, fj = cj - j0;
          const double *p = x + pl * H * W;
          v = (1 - fi) * ((1 - fj) * p[i0 * W + j0] + fj * p[i0 * W + j1]) +
              fi * ((1 - fj) * p[i1 * W + j0] + fj * p[i1 * W + j1]);
        }
        y[(pl * OH + i) * OW + j] = v;
      }
}

typedef struct {
  int mode;
  bool ac;
  int64_t oh, ow;
} interp_ctx;
static tyr_tensor *interp_fn(tyr_tensor **in, void *ctx) {
  interp_ctx *c = ctx;
  return tyr_interpolate_e(in[0], c->oh, c->ow, c->mode ? TYR_INTERP_BILINEAR : TYR_INTERP_NEAREST,
                           c->ac);
}
static tyr_tensor *pad_fn(tyr_tensor **in, void *ctx) {
  return tyr_pad2d_e(in[0], 1, 2, 2, 1, *(int *)ctx ? TYR_PAD_REFLECT : TYR_PAD_CONSTANT, 0.5);
}
static tyr_tensor *shuffle_fn(tyr_tensor **in, void *ctx) {
  (void)ctx;
  return tyr_patchify_e(tyr_pixel_shuffle_e(in[0], 2), 2);
}

static void test_interpolate(void **state) {
  (void)state;
  interp_ctx cases[] = {{0, false, 7, 10}, {0, false, 3, 2}, {1, false, 7, 10},
                        {1, true, 7, 10},  {1, false, 2, 3}, {1, true, 1, 3}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    TYR_SCOPE;
    interp_ctx *c = &cases[k];
    tyr_tensor *x = RANDN(TYR_F64, 2, 3, 4, 5);
    tyr_tensor *in[1] = {x};
    tyr_tensor *y = interp_fn(in, c);
    assert_non_null(y);
    double *xv = values(x), *ref = malloc(sizeof(double) * (size_t)(6 * c->oh * c->ow));
    ref_interp(xv, ref, 6, 4, 5, c->oh, c->ow, c->mode, c->ac);
    expect_values(y, ref, 6 * c->oh * c->ow, 1e-12, "interpolate");
    free(xv);
    free(ref);
    tyr_tensor *leafx = TYR_TEST_LEAF(-1, 1, 1, 2, 4, 5);
    tyr_tensor *gi[1] = {leafx};
    tyr_gradcheck("interpolate", interp_fn, c, 1, gi, 1e-6, 1e-6);
    tyr_tensor_free(leafx);
  }
  for (int mode = 0; mode < 2; mode++) {
    tyr_tensor *leafx = TYR_TEST_LEAF(-1, 1, 1, 2, 4, 5);
    tyr_tensor *gi[1] = {leafx};
    tyr_gradcheck("pad2d", pad_fn, &mode, 1, gi, 1e-6, 1e-6);
    tyr_tensor_free(leafx);
  }
  tyr_tensor *leafx = TYR_TEST_LEAF(-1, 1, 1, 8, 2, 3);
  tyr_tensor *gi[1] = {leafx};
  tyr_gradcheck("pixel_shuffle+patchify", shuffle_fn, NULL, 1, gi, 1e-6, 1e-6);
  tyr_tensor_free(leafx);
  tyr_test_record_errors();
  TYR_SCOPE;
  EXPECT_TYR_ERROR(tyr_interpolate_e(RANDN(TYR_F32, 1, 1, 4, 4), 0, 3, TYR_INTERP_NEAREST, false),
                   "tyr_interpolate: the output size");
}

static void test_image_typed(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_T(2, 12, 4, 6) x = tyr_randn(2, 12, 4, 6);
  tyr_T(2, 3, 8, 12) ps = tyr_pixel_shuffle(x, 2);
  tyr_T(2, 12, 4, 6) pu = tyr_pixel_unshuffle(ps, 2);
  tyr_T(2, 24, 12) pt = tyr_patchify(ps, 2);
  tyr_T(2, 3, 8, 12) up = tyr_unpatchify(pt, 8, 12, 2);
  tyr_T(2, 3, 11, 15) pd = tyr_pad2d(up, 1, 2, 3, 0, TYR_PAD_REFLECT, 0.0);
  tyr_T(2, 3, 16, 24) ip = tyr_interpolate(ps, 16, 24, TYR_INTERP_BILINEAR, false);
  assert_non_null(pu);
  assert_non_null(pd);
  assert_non_null(ip);
}

/* ---- bad input ------------------------------------------------------------------ */
static void test_errors(void **state) {
  (void)state;
  tyr_test_record_errors();
  TYR_SCOPE;
  tyr_tensor *x = RANDN(TYR_F32, 2, 4, 5, 5), *w = RANDN(TYR_F32, 6, 2, 3, 3);
  tyr_conv_opts o = TYR_CONV_OPTS(1, 0, 1, 2);
  assert_non_null(tyr_conv2d_e(x, w, NULL, &o));
  o.stride[1] = 0;
  EXPECT_TYR_ERROR(tyr_conv2d_e(x, w, NULL, &o), "tyr_conv2d: stride must be >= 1");
  o = TYR_CONV_OPTS(1, 0, 1, 3);
  EXPECT_TYR_ERROR(tyr_conv2d_e(x, w, NULL, &o), "divisible by groups");
  o = TYR_CONV_OPTS(1, 0, 3, 2); /* dilated kernel 7 > 5 */
  EXPECT_TYR_ERROR(tyr_conv2d_e(x, w, NULL, &o), "larger than the padded input");
  o = TYR_CONV_OPTS(1, 0, 1, 2);
  EXPECT_TYR_ERROR(tyr_conv2d_e(x, w, RANDN(TYR_F32, 5), &o), "b must be [6]");
  EXPECT_TYR_ERROR(tyr_conv2d_e(RANDN(TYR_F32, 4, 5, 5), w, NULL, &o), "x must be [N, C, H, W]");
  EXPECT_TYR_ERROR(tyr_conv1d_e(RANDN(TYR_F32, 1, 2, 2), RANDN(TYR_F32, 1, 2, 3), NULL, NULL),
                   "tyr_conv1d: the kernel");
  EXPECT_TYR_ERROR(tyr_max_pool2d_e(x, 7, 1, 0), "tyr_max_pool2d: the kernel (7) is larger");
  EXPECT_TYR_ERROR(tyr_avg_pool2d_e(x, 2, 0, 0), "tyr_avg_pool2d: kernel");
  EXPECT_TYR_ERROR(tyr_max_pool2d_e(x, 2, 1, 2), "padding");
  EXPECT_TYR_ERROR(tyr_group_norm_e(x, 3, NULL, NULL, 1e-5),
                   "tyr_group_norm: groups (3) must be >= 1 and divide the channels");
  EXPECT_TYR_ERROR(tyr_batch_norm_e(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5),
                   "needs running_mean");
  EXPECT_TYR_ERROR(tyr_batch_norm_e(x, RANDN(TYR_F32, 3), NULL, NULL, NULL, true, 0.1, 1e-5),
                   "w must be [4]");
  EXPECT_TYR_ERROR(tyr_batch_norm_e(RANDN(TYR_F32, 1, 4), NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
                   "more than one value per channel");
}

/* ---- typed forms ------------------------------------------------------------------ */
enum { N = 2, C = 4, H = 9, W = 7, K = 6 };
static void test_typed(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_T(N, C, H, W) x = tyr_randn(N, C, H, W);
  tyr_T(K, C / 2, 3, 3) w = tyr_randn(K, C / 2, 3, 3);
  tyr_T(K) b = tyr_zeros(K);
  tyr_T(N, K, 5, 4) y = tyr_conv2d(x, w, b, 2, 1, 1, 2);
  assert_int_equal(tyr_erase(y)->shape[2], 5);
  tyr_T(N, K, 9, 7) y2 = tyr_conv2d(x, w, NULL, 1, 2, 2, 2);
  assert_non_null(y2);
  tyr_T(N, K, 5, 4) p = tyr_max_pool2d(y2, 3, 2, 1);
  tyr_T(N, K, 5, 4) a = tyr_avg_pool2d(y2, 3, 2, 1);
  tyr_T(N, K, 1, 1) ap = tyr_adaptive_avg_pool2d(a, 1, 1);
  assert_non_null(p);
  assert_non_null(ap);
  tyr_T(K) rm = tyr_zeros(K);
  tyr_T(K) rv = tyr_ones(K);
  tyr_T(N, K, 5, 4) bn = tyr_batch_norm(p, NULL, NULL, rm, rv, true, 0.1, 1e-5);
  tyr_T(N, K, 5, 4) gn = tyr_group_norm(bn, 3, NULL, NULL, 1e-5);
  assert_non_null(gn);
  tyr_T(N, C, 11) s = tyr_randn(N, C, 11);
  tyr_T(K, C, 3) w1 = tyr_randn(K, C, 3);
  tyr_T(N, K, 6) y1 = tyr_conv1d(s, w1, NULL, 2, 1, 1, 1);
  assert_non_null(y1);
  /* run-time dims: the same source checks at run time */
  int64_t hh = H;
  tyr_T(N, C, hh, W) xd = tyr_cast(tyr_erase(x), N, C, hh, W);
  tyr_T(N, K, TYR_CONV_OUT(hh, 3, 2, 1, 1), 4) yd = tyr_conv2d(xd, w, b, 2, 1, 1, 2);
  assert_int_equal(tyr_erase(yd)->shape[2], 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_conv2d_values), TYR_TEST(test_conv2d_grad),      TYR_TEST(test_conv1d),
      TYR_TEST(test_conv3d),        TYR_TEST(test_conv_transpose2d), TYR_TEST(test_pool),
      TYR_TEST(test_batch_norm),    TYR_TEST(test_group_norm),       TYR_TEST(test_errors),
      TYR_TEST(test_typed),         TYR_TEST(test_shuffle_patchify), TYR_TEST(test_pad),
      TYR_TEST(test_interpolate),   TYR_TEST(test_image_typed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
