/* Muon: one step against a double-precision implementation written here
 * (momentum, Nesterov, Newton-Schulz, the shape scale, decoupled and
 * cautious weight decay); the singular values of the orthogonalised update
 * inside the band the coefficients promise (Newton-Schulz and Polar
 * Express); the split between Muon and AdamW; the checkpoint names;
 * argument errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "tyr/autograd.h"
#include "tyr/muon.h"
#include "tyr/ops_create.h"

static double *dmat(int r, int c) {
  return calloc((size_t)(r * c), sizeof(double));
}

static void dmatmul(const double *a, const double *b, double *out, int n, int k, int m) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) {
      double s = 0;
      for (int l = 0; l < k; l++) s += a[i * k + l] * b[l * m + j];
      out[i * m + j] = s;
    }
}

static void dtranspose(const double *a, double *out, int r, int c) {
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
}

/* Newton-Schulz in double: u (r x c) -> out */
static void ns_ref(const double *u, double *out, int r, int c, int steps, double eps) {
  bool tall = r > c;
  int R = tall ? c : r, C = tall ? r : c;
  double *x = dmat(R, C), *xt = dmat(C, R), *A = dmat(R, R), *AA = dmat(R, R), *B = dmat(R, R),
         *BX = dmat(R, C);
  if (tall)
    dtranspose(u, x, r, c);
  else
    memcpy(x, u, sizeof(double) * (size_t)(r * c));
  double n = 0;
  for (int i = 0; i < R * C; i++) n += x[i] * x[i];
  n = sqrt(n);
  for (int i = 0; i < R * C; i++) x[i] /= n + eps;
  for (int k = 0; k < steps; k++) {
    dtranspose(x, xt, R, C);
    dmatmul(x, xt, A, R, C, R);
    dmatmul(A, A, AA, R, R, R);
    for (int i = 0; i < R * R; i++) B[i] = -4.7750 * A[i] + 2.0315 * AA[i];
    dmatmul(B, x, BX, R, R, C);
    for (int i = 0; i < R * C; i++) x[i] = 3.4445 * x[i] + BX[i];
  }
  if (tall)
    dtranspose(x, out, R, C);
  else
    memcpy(out, x, sizeof(double) * (size_t)(r * c));
  free(x), free(xt), free(A), free(AA), free(B), free(BX);
}

static tyr_tensor *rand_param(int r, int c, uint64_t seed) {
  tyr_manual_seed(seed);
  return tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){r, c}, 0.0, 1.0);
}

static void fill_grad(tyr_tensor *p, uint64_t seed) {
  tyr_manual_seed(seed);
  p->grad =
      tyr_keep_e(tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, p->rank, p->shape, 0.0, 1.0));
}

/* two steps of Muon on a wide and a tall matrix against the reference */
static void check_against_reference(bool cautious) {
  tyr_params ps;
  tyr_params_init(&ps);
  const int shapes[2][2] = {{6, 10}, {12, 5}};
  for (int i = 0; i < 2; i++)
    tyr_params_addf(&ps, rand_param(shapes[i][0], shapes[i][1], 10 + i), "h.%d.weight", i);
  tyr_muon_config cfg = tyr_muon_default_config(0.05, 1e-3);
  cfg.weight_decay = 0.3;
  cfg.cautious_wd = cautious;
  tyr_muon m;
  assert_int_equal(tyr_muon_init(&m, &ps, &cfg, NULL), 0);
  assert_int_equal(m.nmuon, 2);
  /* reference state */
  double *W[2], *Bf[2];
  for (int i = 0; i < 2; i++) {
    int n = shapes[i][0] * shapes[i][1];
    W[i] = dmat(shapes[i][0], shapes[i][1]);
    Bf[i] = dmat(shapes[i][0], shapes[i][1]);
    const float *p = tyr_data_ptr(ps.items[i].t);
    for (int k = 0; k < n; k++) W[i][k] = p[k];
  }
  for (int step = 0; step < 2; step++) {
    for (int i = 0; i < 2; i++) {
      tyr_tensor *p = ps.items[i].t;
      tyr_zero_grad_e(p);
      fill_grad(p, 100 + 10 * step + i);
      int r = shapes[i][0], c = shapes[i][1], n = r * c;
      const float *g = tyr_data_ptr(p->grad);
      double *u = dmat(r, c), *o = dmat(r, c);
      for (int k = 0; k < n; k++) {
        Bf[i][k] += (1 - 0.95) * (g[k] - Bf[i][k]);
        u[k] = g[k] + 0.95 * (Bf[i][k] - g[k]);
      }
      ns_ref(u, o, r, c, 5, 1e-7);
      double scale = sqrt(fmax(1.0, (double)r / c));
      for (int k = 0; k < n; k++) {
        bool decay = !cautious || o[k] * W[i][k] > 0;
        if (decay) W[i][k] *= 1 - 0.05 * 0.3;
        W[i][k] -= 0.05 * scale * o[k];
      }
      free(u), free(o);
    }
    assert_int_equal(tyr_muon_step(&m, 1.0), 0);
  }
  for (int i = 0; i < 2; i++) {
    const float *p = tyr_data_ptr(ps.items[i].t);
    for (int k = 0; k < shapes[i][0] * shapes[i][1]; k++) ASSERT_CLOSE(p[k], W[i][k], 2e-5, 1e-4);
    free(W[i]), free(Bf[i]);
  }
  tyr_muon_free(&m);
  tyr_params_free(&ps);
}

static void test_muon_step_matches_double_reference(void **state) {
  (void)state;
  check_against_reference(false);
}

static void test_muon_cautious_weight_decay(void **state) {
  (void)state;
  check_against_reference(true);
}

/* eigenvalues of a symmetric n x n matrix (cyclic Jacobi), into ev */
static void jacobi_eig(double *a, int n, double *ev) {
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0;
    for (int i = 0; i < n; i++)
      for (int j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
    if (off < 1e-22) break;
    for (int p = 0; p < n; p++)
      for (int q = p + 1; q < n; q++) {
        if (fabs(a[p * n + q]) < 1e-300) continue;
        double th = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
        double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
        double c = 1 / sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; k++) {
          double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; k++) {
          double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
  }
  for (int i = 0; i < n; i++) ev[i] = a[i * n + i];
}

/* singular values of the orthogonalised 32 x 64 Gaussian matrix */
static void singular_band(tyr_muon_ortho ortho, double lo, double hi) {
  TYR_SCOPE;
  enum { R = 32, C = 64 };
  tyr_tensor *u = rand_param(R, C, 5);
  tyr_tensor *o = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){R, C});
  tyr_muon_config cfg = tyr_muon_default_config(0.02, 1e-3);
  cfg.ortho = ortho;
  assert_int_equal(tyr_muon_orthogonalize_at(TYR_SITE, &cfg, o, u), 0);
  const float *x = tyr_data_ptr(o);
  double *g = dmat(R, R), ev[R];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < R; j++) {
      double s = 0;
      for (int k = 0; k < C; k++) s += (double)x[i * C + k] * x[j * C + k];
      g[i * R + j] = s;
    }
  jacobi_eig(g, R, ev);
  double smin = 1e9, smax = 0;
  for (int i = 0; i < R; i++) {
    double sv = sqrt(fmax(ev[i], 0));
    smin = fmin(smin, sv), smax = fmax(smax, sv);
  }
  print_message("%s: singular values in [%.4f, %.4f]\n",
                ortho == TYR_MUON_POLAR_EXPRESS ? "polar express" : "newton-schulz", smin, smax);
  assert_true(smin >= lo);
  assert_true(smax <= hi);
  free(g);
  tyr_tensor_free(u);
}

static void test_muon_newton_schulz_singular_values(void **state) {
  (void)state;
  /* the quintic's fixed points: singular values end in about (0.7, 1.2) */
  singular_band(TYR_MUON_NEWTON_SCHULZ, 0.6, 1.25);
}

static void test_muon_polar_express_singular_values(void **state) {
  (void)state;
  /* Polar Express: a narrower band around 1 than the quintic's */
  singular_band(TYR_MUON_POLAR_EXPRESS, 0.8, 1.2);
}

static void test_muon_splits_params_and_checkpoint_names(void **state) {
  (void)state;
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_params_add(&ps, "wte.weight", rand_param(10, 4, 1));
  tyr_params_add(&ps, "blocks.0.attn.qkv.weight", rand_param(12, 4, 2));
  tyr_params_add(&ps, "blocks.0.attn.qkv.bias",
                 tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){12}));
  tyr_params_add(&ps, "lm_head.weight", rand_param(10, 4, 3));
  tyr_muon_config cfg = tyr_muon_default_config(0.02, 1e-3);
  cfg.normuon = true;
  tyr_muon m;
  assert_int_equal(tyr_muon_init(&m, &ps, &cfg, NULL), 0);
  assert_int_equal(m.nmuon, 1);
  assert_true(tyr_muon_is_muon_param(&m, 1));
  assert_false(tyr_muon_is_muon_param(&m, 0));
  assert_int_equal(m.rest.n, 3);
  assert_int_equal(m.matrices.n, 1); /* what tyr_ddp averages with reduce_adamw_grads */
  assert_ptr_equal(m.matrices.items[0].t, ps.items[1].t);
  /* one process: the AdamW part whole, m->adamw itself for checkpoints */
  assert_null(m.adamw_zero);
  assert_int_equal(tyr_muon_adamw_state_bytes(&m), 8 * (10 * 4 + 12 + 10 * 4));
  assert_int_equal(tyr_muon_state_bytes(&m),
                   tyr_muon_adamw_state_bytes(&m) + 4 * (12 * 4) + 4 * 12); /* momentum, NorMuon */
  tyr_optim *whole = tyr_muon_gather_adamw(&m);
  assert_ptr_equal(whole, &m.adamw);
  assert_int_equal(tyr_muon_scatter_adamw(&m, whole), 0);
  tyr_muon_release_adamw(&m, whole);
  tyr_params ck;
  assert_int_equal(tyr_muon_checkpoint_params_at(TYR_SITE, &m, &ck), 0);
  assert_int_equal(ck.n, 6);
  assert_non_null(tyr_params_find(&ck, "optim.blocks.0.attn.qkv.weight.muon"));
  assert_non_null(tyr_params_find(&ck, "optim.blocks.0.attn.qkv.weight.normuon"));
  for (int i = 0; i < ps.n; i++) fill_grad(ps.items[i].t, 50 + i);
  float a[48];
  memcpy(a, tyr_data_ptr(ps.items[1].t), sizeof a);
  assert_int_equal(tyr_muon_step(&m, 1.0), 0);
  /* NorMuon keeps the update's norm: ||dW|| = lr * sqrt(max(1, 12/4)) * ||O|| with ||O||
   * about sqrt(min(rows, cols)) = 2 */
  double d = 0;
  const float *b = tyr_data_ptr(ps.items[1].t);
  for (int k = 0; k < 48; k++) d += (a[k] - b[k]) * (double)(a[k] - b[k]);
  d = sqrt(d) / (0.02 * sqrt(3.0));
  print_message("normuon: ||O||_F = %.4f\n", d);
  assert_true(d > 1.4 && d < 2.3);
  tyr_muon_checkpoint_params_release(&ck);
  tyr_muon_free(&m);
  tyr_params_free(&ps);
}

static void test_muon_errors(void **state) {
  (void)state;
  tyr_test_record_errors();
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_muon m;
  tyr_muon_config cfg = tyr_muon_default_config(0.02, 1e-3);
  cfg.momentum = 1.5;
  EXPECT_TYR_ERROR(tyr_muon_init(&m, &ps, &cfg, NULL), "momentum");
  cfg = tyr_muon_default_config(0.02, 1e-3);
  cfg.ns_steps = 0;
  EXPECT_TYR_ERROR(tyr_muon_init(&m, &ps, &cfg, NULL), "ns_steps");
  TYR_SCOPE;
  tyr_tensor *a = rand_param(3, 4, 1), *b = rand_param(4, 3, 1);
  EXPECT_TYR_ERROR(tyr_muon_orthogonalize_at(TYR_SITE, &cfg, a, b), "tyr_muon_orthogonalize");
  /* an unsharded optimizer takes no state from another AdamW */
  tyr_params_add(&ps, "wte.weight", rand_param(3, 4, 2));
  cfg = tyr_muon_default_config(0.02, 1e-3);
  assert_int_equal(tyr_muon_init(&m, &ps, &cfg, NULL), 0);
  tyr_optim other;
  assert_int_equal(tyr_optim_init(&other, &m.rest, cfg.adamw), 0);
  EXPECT_TYR_ERROR(tyr_muon_scatter_adamw(&m, &other), "tyr_muon_scatter_adamw");
  tyr_optim_free(&other);
  tyr_muon_free(&m);
  tyr_params_free(&ps);
  tyr_tensor_free(a);
  tyr_tensor_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_muon_step_matches_double_reference),
      TYR_TEST(test_muon_cautious_weight_decay),
      TYR_TEST(test_muon_newton_schulz_singular_values),
      TYR_TEST(test_muon_polar_express_singular_values),
      TYR_TEST(test_muon_splits_params_and_checkpoint_names),
      TYR_TEST(test_muon_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
