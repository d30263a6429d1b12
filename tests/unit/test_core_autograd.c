/* The autograd engine's bookkeeping of leaf gradients: a gradient that
 * nothing else holds becomes the leaf's .grad without a copy, and one that
 * is shared (an add's backward hands one tensor to both inputs; a view of
 * it; a leaf used twice) is copied, so that a later contribution added in
 * place into one .grad never shows in another. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h" /* tyr__grad_cast_handover */
#include "core/internal.h" /* tyr__load_f64 */
#include "testutil.h"
#include "tyr/tyr.h"

static tyr_tensor *leaf(const float *v, int64_t n) {
  tyr_tensor *t = tyr_from_host_at(TYR_SITE, v, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){n});
  assert_non_null(t);
  tyr_requires_grad_e(t, true);
  return t;
}

static void expect_grad(const char *what, tyr_tensor *t, const float *want, int64_t n) {
  tyr_tensor *g = tyr_grad_e(t);
  if (!g) fail_msg("%s: no gradient", what);
  assert_int_equal(tyr_numel(g), n);
  float got[8];
  assert_int_equal(tyr_to_host_e(g, got, sizeof got), 0);
  for (int64_t i = 0; i < n; i++)
    if (fabsf(got[i] - want[i]) > 1e-6f)
      fail_msg("%s: grad[%lld] = %g, expected %g", what, (long long)i, got[i], want[i]);
}

/* L = sum((a + b') * c) + sum(a * d), b' = b or 2 b: the add hands one
   gradient to a and to b' (a leaf, or a node that keeps it until its own
   backward), and a gets a second contribution, in either order of the two
   terms */
static void test_shared_gradient_not_aliased(void **state) {
  (void)state;
  const float av[] = {1, 2, 3}, bv[] = {-1, 0.5f, 2}, cv[] = {2, 3, 4}, dv[] = {10, 20, 30};
  for (int form = 0; form < 4; form++) {
    bool scaled = form & 1, swapped = form & 2;
    tyr_tensor *a = leaf(av, 3), *b = leaf(bv, 3);
    for (int round = 1; round <= 2; round++) { /* the second adds into the kept .grad */
      TYR_SCOPE;
      tyr_tensor *c = tyr_from_host_e(cv, 3);
      tyr_tensor *d = tyr_from_host_e(dv, 3);
      tyr_tensor *b2 = scaled ? tyr_mul_scalar_e(b, 2.0) : b;
      tyr_tensor *t1 = tyr_sum_e(tyr_mul_e(tyr_add_e(a, b2), c)), *t2 = tyr_sum_e(tyr_mul_e(a, d));
      assert_int_equal(tyr_backward_e(swapped ? tyr_add_e(t2, t1) : tyr_add_e(t1, t2)), 0);
      float ga[3], gb[3];
      for (int i = 0; i < 3; i++) {
        ga[i] = (float)round * (cv[i] + dv[i]);
        gb[i] = (float)round * cv[i] * (scaled ? 2.0f : 1.0f);
      }
      char what[96];
      snprintf(what, sizeof what, "a (used twice), form %d", form);
      expect_grad(what, a, ga, 3);
      snprintf(what, sizeof what, "b (shares the add's gradient with a), form %d", form);
      expect_grad(what, b, gb, 3);
    }
    tyr_tensor_free(a);
    tyr_tensor_free(b);
  }
}

/* the gradient as a view (reshape's backward) and as the incoming gradient
   itself (clone's backward) */
static void test_views_and_passthrough(void **state) {
  (void)state;
  const float av[] = {1, 2, 3, 4}, bv[] = {5, 6, 7, 8}, wv[] = {1, -2, 3, -4};
  tyr_tensor *a = leaf(av, 4), *b = leaf(bv, 4);
  {
    TYR_SCOPE;
    tyr_tensor *w = tyr_from_host_e(wv, 2, 2);
    tyr_tensor *ra = tyr_reshape_e(a, 2, 2);
    tyr_tensor *y = tyr_mul_e(tyr_add_e(ra, tyr_reshape_e(tyr_clone_e(b), 2, 2)), w);
    /* a again, through clone: its second gradient is added to the first */
    tyr_tensor *l = tyr_add_e(tyr_sum_e(y), tyr_sum_e(tyr_mul_e(tyr_clone_e(a), a)));
    assert_int_equal(tyr_backward_e(l), 0);
  }
  float ga[4], gb[4];
  for (int i = 0; i < 4; i++) {
    ga[i] = wv[i] + 2 * av[i];
    gb[i] = wv[i];
  }
  expect_grad("a", a, ga, 4);
  expect_grad("b", b, gb, 4);
  tyr_tensor_free(a);
  tyr_tensor_free(b);
}

/* calls of the backward phase's element-wise binary kernels in the
   profiler's table (tyr_profile_print): the additions autograd makes */
static double backward_binary_calls(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  tyr_profile_print(f, 1);
  fclose(f);
  double calls = 0;
  bool in_backward = false;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char name[64];
    double ms, pct, c;
    if (sscanf(line, " %63s", name) == 1 && line[2] != ' ') in_backward = !strcmp(name, "backward");
    if (in_backward && sscanf(line, " binary %*s %lf %lf %lf", &ms, &pct, &c) == 3) calls += c;
  }
  free(buf);
  return calls;
}

/* A residual stream through three blocks, x = x + LN(x) * c: each norm's
   input gradient is added to the stream's gradient (which the next
   block's residual add has already handed back) by the norm's backward
   kernel itself (tyr__grad_accumulator), with no addition after it.  The
   gradients must be those of the same graph where a clone stands between
   the stream and each norm (the clone's input then sums the two the usual
   way), for x in f32 and f64, with and without the norm's parameters, to
   rounding (the compiler may fuse the kernel's last product and the
   addition: 1.9e-06 of 16 in f32 here, one unit in the last place); and
   the fused graph makes one binary kernel call fewer per block in its
   backward. */
static void test_norm_adds_into_stream_gradient(void **state) {
  (void)state;
  enum { R = 5, C = 24, BLOCKS = 3 };
  for (int d = 0; d < 2; d++)
    for (int affine = 0; affine < 2; affine++) {
      tyr_dtype dt = d ? TYR_F64 : TYR_F32;
      tyr_tensor *grads[2][3] = {{0}};
      double adds[2];
      for (int cloned = 0; cloned < 2; cloned++) {
        tyr_manual_seed(7);
        tyr_tensor *p = tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 2, (int64_t[]){R, C}, 0, 1);
        tyr_tensor *w =
            affine ? tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 1, (int64_t[]){C}, 1, 0.2) : NULL;
        tyr_tensor *b =
            affine ? tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 1, (int64_t[]){C}, 0, 0.2) : NULL;
        tyr_requires_grad_e(p, true);
        if (affine) {
          tyr_requires_grad_e(w, true);
          tyr_requires_grad_e(b, true);
        }
        tyr_profile_enable(true);
        tyr_profile_reset();
        {
          TYR_SCOPE;
          tyr_tensor *x = tyr_mul_scalar_e(p, 1.5);
          for (int k = 0; k < BLOCKS; k++) {
            tyr_tensor *c = tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 2, (int64_t[]){R, C}, 0, 1);
            tyr_tensor *h = tyr_layer_norm_e(cloned ? tyr_clone_e(x) : x, w, b, 1e-5);
            x = tyr_add_e(x, tyr_mul_e(h, c));
          }
          tyr_tensor *d2 = tyr_randn_at(TYR_SITE, dt, TYR_DEVICE_CPU, 2, (int64_t[]){R, C}, 0, 1);
          assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(x, d2))), 0);
        }
        adds[cloned] = backward_binary_calls();
        tyr_profile_enable(false);
        grads[cloned][0] = tyr_clone_e(tyr_grad_e(p));
        grads[cloned][1] = affine ? tyr_clone_e(tyr_grad_e(w)) : NULL;
        grads[cloned][2] = affine ? tyr_clone_e(tyr_grad_e(b)) : NULL;
        tyr_tensor_free(p);
        tyr_tensor_free(w);
        tyr_tensor_free(b);
      }
      const char *names[] = {"x", "w", "b"};
      for (int k = 0; k < 3; k++) {
        if (!grads[0][k]) continue;
        int64_t n = tyr_numel(grads[0][k]);
        double worst = 0, scale = 0;
        for (int64_t i = 0; i < n; i++) {
          double u = tyr__load_f64((char *)tyr_data_ptr(grads[0][k]) + i * tyr_dtype_size(dt), dt),
                 v = tyr__load_f64((char *)tyr_data_ptr(grads[1][k]) + i * tyr_dtype_size(dt), dt);
          worst = fmax(worst, fabs(u - v));
          scale = fmax(scale, fabs(v));
        }
        if (worst > (d ? 1e-13 : 1e-5) * scale)
          fail_msg("%s, %s, affine %d: the gradient differs from the cloned graph's by %g (largest "
                   "%g)",
                   names[k], tyr_dtype_name(dt), affine, worst, scale);
        tyr_tensor_free(grads[0][k]);
        tyr_tensor_free(grads[1][k]);
      }
      if (adds[0] != adds[1] - BLOCKS)
        fail_msg("%s, affine %d: %g binary kernels in the backward, against %g with clones "
                 "(expected %d fewer)",
                 tyr_dtype_name(dt), affine, adds[0], adds[1], BLOCKS);
    }
}

/* calls of the backward phase's copy kernel (conversions included) */
static double backward_copy_calls(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  tyr_profile_print(f, 1);
  fclose(f);
  double calls = 0;
  bool in_backward = false;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char name[64];
    double ms, pct, c;
    if (sscanf(line, " %63s", name) == 1 && line[2] != ' ') in_backward = !strcmp(name, "backward");
    if (in_backward && sscanf(line, " copy %lf %lf %lf", &ms, &pct, &c) == 3) calls += c;
  }
  free(buf);
  return calls;
}

/* A mixed-precision residual stream, x = x + bf16(LN(x)) * c with an f32
   x and bf16 branches (c a bf16 leaf): the residual add's backward
   converts the stream's gradient to bf16 for the branch.  Where a norm's
   backward finishes that gradient (it adds into it last:
   tyr__grad_cast_wanted), it writes the bf16 copy too, and the addition's
   backward takes it instead of converting.  The gradients (x's, the
   norm's parameters', and the branch leaves' through the copy) must be bit
   for bit those of the same graph without the handover, and the backward
   must make one conversion fewer for each block after the first (the
   first block's norm reads x0, which no residual add made). */
static void test_norm_writes_the_branch_gradient(void **state) {
  (void)state;
  enum { R = 6, C = 40, BLOCKS = 3 };
  for (int affine = 0; affine < 2; affine++) {
    tyr_tensor *grads[2][3 + BLOCKS] = {{0}};
    double copies[2];
    for (int handover = 0; handover < 2; handover++) {
      tyr__grad_cast_handover = handover;
      tyr_manual_seed(11);
      tyr_tensor *p = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){R, C}, 0, 1);
      tyr_tensor *w =
          affine ? tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){C}, 1, 0.2)
                 : NULL;
      tyr_tensor *b =
          affine ? tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){C}, 0, 0.2)
                 : NULL;
      tyr_tensor *c[BLOCKS];
      for (int k = 0; k < BLOCKS; k++) {
        TYR_SCOPE;
        c[k] = tyr_keep_e(tyr_to_dtype_e(
            tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){R, C}, 0, 1), TYR_BF16));
        tyr_requires_grad_e(c[k], true);
      }
      tyr_requires_grad_e(p, true);
      if (affine) {
        tyr_requires_grad_e(w, true);
        tyr_requires_grad_e(b, true);
      }
      tyr_profile_enable(true);
      tyr_profile_reset();
      {
        TYR_SCOPE;
        tyr_tensor *x = tyr_mul_scalar_e(p, 1.5);
        for (int k = 0; k < BLOCKS; k++)
          x = tyr_residual_add_e(x, tyr_mul_e(tyr_layer_norm_to_e(x, w, b, 1e-5, TYR_BF16), c[k]));
        tyr_tensor *d2 =
            tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){R, C}, 0, 1);
        assert_int_equal(tyr_backward_e(tyr_sum_e(tyr_mul_e(x, d2))), 0);
      }
      copies[handover] = backward_copy_calls();
      tyr_profile_enable(false);
      grads[handover][0] = tyr_clone_e(tyr_grad_e(p));
      grads[handover][1] = affine ? tyr_clone_e(tyr_grad_e(w)) : NULL;
      grads[handover][2] = affine ? tyr_clone_e(tyr_grad_e(b)) : NULL;
      for (int k = 0; k < BLOCKS; k++) {
        grads[handover][3 + k] = tyr_clone_e(tyr_grad_e(c[k]));
        tyr_tensor_free(c[k]);
      }
      tyr_tensor_free(p);
      tyr_tensor_free(w);
      tyr_tensor_free(b);
    }
    tyr__grad_cast_handover = true;
    const char *names[] = {"x", "w", "b", "c0", "c1", "c2"};
    bool same = true;
    char msg[200] = "";
    for (int k = 0; k < 3 + BLOCKS; k++) {
      if (!grads[0][k]) continue;
      assert_int_equal(grads[0][k]->dtype, grads[1][k]->dtype);
      size_t bytes = (size_t)tyr_nbytes(grads[0][k]);
      if (same && memcmp(tyr_data_ptr(grads[0][k]), tyr_data_ptr(grads[1][k]), bytes)) {
        same = false;
        snprintf(msg, sizeof msg, "affine %d: the gradient of %s differs with the handover", affine,
                 names[k]);
      }
      tyr_tensor_free(grads[0][k]);
      tyr_tensor_free(grads[1][k]);
    }
    if (!same) fail_msg("%s", msg);
    if (copies[1] != copies[0] - (BLOCKS - 1))
      fail_msg("affine %d: %g copy kernels in the backward with the handover, %g without (expected "
               "%d fewer)",
               affine, copies[1], copies[0], BLOCKS - 1);
  }
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_shared_gradient_not_aliased),
      TYR_TEST(test_views_and_passthrough),
      TYR_TEST(test_norm_adds_into_stream_gradient),
      TYR_TEST(test_norm_writes_the_branch_gradient),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
