/* Branching Flows (tyr/branching_flows.h, tyr/models/branching_flows.h):
 * the branch-time distributions against closed forms; statistics with
 * fixed seeds against exact laws (split times by Kolmogorov-Smirnov, merge
 * counts against the binomial, deletion survival against S_del, live
 * segments at t against their expectation by simulation); the structure of
 * forests and bridges (binary, groups and group minimums kept, descendants
 * summing to the leaves, x1 exactly at t = 1 and the start states at
 * t = 0); deletion padding; bad input named by element and rule; the losses
 * against hand computations and finite differences; gradients through the
 * model; the sampler's splits, deletions and max_len; one seed giving the
 * same batches and samples on 1 and 2 threads. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "testutil.h"
#include "tyr/branching_flows.h"
#include "tyr/models/branching_flows.h"
#include "tyr/tyr.h"

/* n 1-D elements x = i (tokens i % vocab when vocab > 0) */
static void line_elems(tyr_bf_elem *e, int64_t n, int vocab) {
  memset(e, 0, (size_t)n * sizeof *e);
  for (int64_t i = 0; i < n; i++) {
    e[i].x[0] = (float)i;
    e[i].x[1] = (float)(2 * i);
    e[i].tok = vocab > 0 ? (int32_t)(i % vocab) : 0;
  }
}

static void test_distributions(void **state) {
  (void)state;
  tyr_bf_dist u = tyr_bf_uniform(), b = tyr_bf_beta(2, 3);
  ASSERT_CLOSE(tyr_bf_dist_cdf(&u, 0.3), 0.3, 1e-15, 0);
  ASSERT_CLOSE(tyr_bf_dist_quantile(&u, 0.7), 0.7, 1e-15, 0);
  /* Beta(2, 3): F(x) = 6x^2 - 8x^3 + 3x^4, f(x) = 12 x (1 - x)^2 */
  for (double x = 0.05; x < 1; x += 0.1) {
    double F = 6 * x * x - 8 * x * x * x + 3 * x * x * x * x;
    ASSERT_CLOSE(tyr_bf_dist_cdf(&b, x), F, 1e-13, 0);
    ASSERT_CLOSE(tyr_bf_dist_survival(&b, x), 1 - F, 1e-13, 0);
    ASSERT_CLOSE(tyr_bf_dist_pdf(&b, x), 12 * x * (1 - x) * (1 - x), 1e-12, 1e-12);
    ASSERT_CLOSE(tyr_bf_dist_quantile(&b, F), x, 1e-12, 0);
    ASSERT_CLOSE(tyr_bf_dist_hazard(&b, x), 12 * x * (1 - x) * (1 - x) / (1 - F), 1e-10, 1e-10);
  }
  /* truncated to [0.2, 0.8]: (F(t) - F(.2)) / (F(.8) - F(.2)) */
  tyr_bf_dist tb = tyr_bf_truncated(b, 0.2, 0.8);
  double F2 = tyr_bf_dist_cdf(&b, 0.2), F8 = tyr_bf_dist_cdf(&b, 0.8);
  ASSERT_CLOSE(tyr_bf_dist_cdf(&tb, 0.5), (tyr_bf_dist_cdf(&b, 0.5) - F2) / (F8 - F2), 1e-14, 0);
  ASSERT_CLOSE(tyr_bf_dist_cdf(&tb, 0.1), 0, 0, 0);
  ASSERT_CLOSE(tyr_bf_dist_cdf(&tb, 0.9), 1, 0, 0);
  ASSERT_CLOSE(tyr_bf_dist_pdf(&tb, 0.5), tyr_bf_dist_pdf(&b, 0.5) / (F8 - F2), 1e-12, 1e-12);
  for (double p = 0.05; p < 1; p += 0.1)
    ASSERT_CLOSE(tyr_bf_dist_cdf(&tb, tyr_bf_dist_quantile(&tb, p)), p, 1e-12, 0);
  tyr_bf_dist d;
  assert_true(tyr_bf_dist_parse("beta:2,3@0.2,0.8", &d));
  assert_int_equal(d.kind, TYR_BF_DIST_BETA);
  ASSERT_CLOSE(d.a + 10 * d.b + 100 * d.lo + 1000 * d.hi, 2 + 30 + 20 + 800, 1e-12, 0);
  assert_true(tyr_bf_dist_parse("uniform", &d));
  assert_false(tyr_bf_dist_parse("beta:0,3", &d));
  assert_false(tyr_bf_dist_parse("uniform@0.5,0.2", &d));
  assert_false(tyr_bf_dist_parse("gamma:1,2", &d));
  assert_false(tyr_bf_dist_parse("beta:inf,2", &d));
  assert_false(tyr_bf_dist_parse("beta:2,3@0.2", &d));
  /* a shape parameter below 1e-3: the CDF's symmetric branch cancels to
     noise there (fuzz_bf_config found CDF values of -2 and 2.3 for this) */
  assert_false(tyr_bf_dist_parse("beta:10,.0000000000000000005@.1,.99", &d));
  assert_false(tyr_bf_dist_parse("beta:0.0009,2", &d));
  /* at the smallest b allowed, truncated where the symmetric branch is used:
     CDF in [0, 1], nondecreasing, inverted by the quantile */
  assert_true(tyr_bf_dist_parse("beta:10,0.001@0.1,0.99", &d));
  double prev = 0;
  for (double p = 0.0625; p < 1; p += 0.125) {
    double t = tyr_bf_dist_quantile(&d, p), F = tyr_bf_dist_cdf(&d, t);
    assert_true(t >= d.lo && t <= d.hi && F >= prev && F <= 1);
    ASSERT_CLOSE(F, p, 1e-6, 0);
    prev = F;
  }
  EXPECT_TYR_ERROR(
      tyr_bf_dist_check_at(TYR_SITE, &(tyr_bf_dist){TYR_BF_DIST_BETA, -1, 2, 0, 1}, "branch_time"),
      "branch_time: Beta(-1, 2) needs a and b in [0.001, 1e6]");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* split times of a node with W leaves below t0: P(T <= t) = 1 - (S(t) / S(t0))^(W - 1) */
static void test_split_times_ks(void **state) {
  (void)state;
  enum { N = 4000 };
  const tyr_bf_dist dists[2] = {tyr_bf_uniform(), tyr_bf_truncated(tyr_bf_beta(2, 1.5), 0, 0.9)};
  const int64_t Ws[2] = {2, 6};
  static double t[N];
  for (int k = 0; k < 2; k++)
    for (int w = 0; w < 2; w++) {
      tyr_bf_rng r;
      tyr_bf_rng_init(&r, 1234, (uint64_t)(k * 2 + w));
      const double t0 = 0.25;
      for (int i = 0; i < N; i++) t[i] = tyr_bf_split_time(&dists[k], Ws[w], t0, &r);
      qsort(t, N, sizeof *t, cmp_double);
      double S0 = tyr_bf_dist_survival(&dists[k], t0), D = 0;
      for (int i = 0; i < N; i++) {
        assert_true(t[i] >= t0 && t[i] <= 1);
        double F = 1 - pow(tyr_bf_dist_survival(&dists[k], t[i]) / S0, (double)(Ws[w] - 1));
        D = fmax(D, fmax(fabs(F - (double)i / N), fabs(F - (double)(i + 1) / N)));
      }
      /* the 0.1% critical value of the one-sample KS statistic: 1.95 / sqrt(N) (four
         checks here; a 1% level would fail one seed in 25 for no fault) */
      if (D > 1.95 / sqrt((double)N))
        fail_msg("dist %d, W %lld: KS statistic %.4f above %.4f", k, (long long)Ws[w], D,
                 1.95 / sqrt((double)N));
    }
}

/* merges ~ Binomial(n - 1, p) for one group of n with the uniform policy and minimum 1 */
static void test_merge_counts_binomial(void **state) {
  (void)state;
  enum { N = 4000, n = 10 };
  const double p = 0.3;
  tyr_bf_config c = tyr_bf_config_default(2, 0);
  c.coalescence_factor = p;
  tyr_bf_elem e[n];
  line_elems(e, n, 0);
  tyr_bf_target x1 = {.n = n, .elems = e};
  int64_t hist[n] = {0};
  tyr_bf_rng r;
  tyr_bf_rng_init(&r, 77, 0);
  for (int i = 0; i < N; i++) {
    tyr_bf_forest f;
    assert_int_equal(tyr_bf_forest_sample(&c, &x1, &r, &f), 0);
    assert_int_equal(f.max_merges, n - 1);
    assert_int_equal(f.n_roots, n - f.merges);
    hist[f.merges]++;
    tyr_bf_forest_free(&f);
  }
  /* every count's frequency within 4 standard errors of the binomial pmf */
  double pmf = pow(1 - p, n - 1), mean = 0;
  for (int k = 0; k < n; k++) {
    double se = sqrt(pmf * (1 - pmf) / N), obs = (double)hist[k] / N;
    if (fabs(obs - pmf) > 4 * se + 1e-9)
      fail_msg("merges = %d: frequency %.4f, binomial %.4f (se %.4f)", k, obs, pmf, se);
    mean += k * obs;
    pmf = pmf * (double)(n - 1 - k) / (double)(k + 1) * p / (1 - p);
  }
  ASSERT_CLOSE(mean, (n - 1) * p, 4 * sqrt((n - 1) * p * (1 - p) / N), 0);
}

/* in-order leaves of node k, checking binarity, weights, groups and times */
static int64_t check_node(const tyr_bf_forest *f, int32_t k, int64_t *next_leaf, double parent_t) {
  const tyr_bf_node *nd = &f->nodes[k];
  if (nd->left < 0) {
    assert_int_equal(nd->right, -1);
    assert_int_equal(nd->weight, 1);
    assert_int_equal(nd->id, *next_leaf + 1);
    assert_int_equal(k, *next_leaf);
    (*next_leaf)++;
    return 1;
  }
  assert_true(nd->right >= 0);
  assert_int_equal(nd->id, 0);
  assert_true(nd->branchable && nd->flowable && !nd->del);
  assert_true(nd->time >= parent_t && nd->time <= 1);
  const tyr_bf_node *a = &f->nodes[nd->left], *b = &f->nodes[nd->right];
  assert_int_equal(a->group, nd->group);
  assert_int_equal(b->group, nd->group);
  assert_true(a->branchable && b->branchable);
  int64_t w =
      check_node(f, nd->left, next_leaf, nd->time) + check_node(f, nd->right, next_leaf, nd->time);
  assert_int_equal(w, nd->weight);
  /* the merged data: the leaf-count-weighted mean */
  ASSERT_CLOSE(nd->data.x[0], (a->weight * a->data.x[0] + b->weight * b->data.x[0]) / w, 1e-4,
               1e-6);
  return w;
}

static void test_forest_structure(void **state) {
  (void)state;
  enum { n = 14 };
  const int32_t group[n] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2};
  const uint8_t branchable[n] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
  const int64_t mins[3] = {2, 1, 3};
  tyr_bf_elem e[n];
  line_elems(e, n, 5);
  tyr_bf_target x1 = {.n = n, .elems = e, .group = group, .branchable = branchable};
  for (int pol = 0; pol < 3; pol++) {
    tyr_bf_config c = tyr_bf_config_default(2, 5);
    c.policy = (tyr_bf_policy)pol;
    c.alpha = 2;
    c.group_mins = mins;
    c.n_group_mins = 3;
    tyr_bf_rng r;
    tyr_bf_rng_init(&r, 5, (uint64_t)pol);
    for (int it = 0; it < 300; it++) {
      tyr_bf_forest f;
      assert_int_equal(tyr_bf_forest_sample(&c, &x1, &r, &f), 0);
      int64_t next = 0, roots_per_group[3] = {0}, total = 0;
      for (int64_t k = 0; k < f.n_roots; k++) {
        total += check_node(&f, f.roots[k], &next, 0.0);
        const tyr_bf_node *nd = &f.nodes[f.roots[k]];
        if (nd->branchable) roots_per_group[nd->group]++;
      }
      assert_int_equal(total, n);
      assert_int_equal(next, n);
      assert_int_equal(f.n_splits, f.merges);
      if (pol != TYR_BF_POLICY_BLOCK_MIN)
        for (int g = 0; g < 3; g++) assert_true(roots_per_group[g] >= mins[g]);
      /* descendants of the segments alive at any t sum to the leaves */
      tyr_bf_segment seg[n];
      for (double t = 0; t <= 1.0; t += 0.25) {
        int64_t m = tyr_bf_bridge(&c, &f, t, &r, seg), sum = 0;
        for (int64_t i = 0; i < m; i++) sum += seg[i].descendants;
        assert_int_equal(sum, n);
      }
      tyr_bf_forest_free(&f);
    }
  }
  /* block minimum: with min 3, blocks of a group split by a non-branchable element keep 3 each */
  tyr_bf_config c = tyr_bf_config_default(2, 5);
  c.policy = TYR_BF_POLICY_BLOCK_MIN;
  c.group_min = 2;
  const int32_t g1[6] = {0, 0, 0, 0, 0, 0};
  const uint8_t b1[6] = {1, 1, 1, 0, 1, 1};
  tyr_bf_target y1 = {.n = 6, .elems = e, .group = g1, .branchable = b1};
  tyr_bf_rng r;
  tyr_bf_rng_init(&r, 8, 0);
  for (int it = 0; it < 100; it++) {
    tyr_bf_forest f;
    assert_int_equal(tyr_bf_forest_sample(&c, &y1, &r, &f), 0);
    /* roots: block {0,1,2} keeps >= 2, the non-branchable 3, block {4,5} keeps 2 */
    assert_true(f.n_roots >= 5);
    tyr_bf_forest_free(&f);
  }
}

/* at t = 1: x1 exactly; at t = 0: one segment per root, its start state */
static void test_bridge_endpoints(void **state) {
  (void)state;
  enum { n = 9 };
  tyr_bf_elem e[n];
  line_elems(e, n, 4);
  const uint8_t flowable[n] = {1, 1, 0, 1, 1, 1, 1, 1, 1};
  const uint8_t branchable[n] = {1, 1, 0, 1, 1, 1, 1, 1, 1};
  tyr_bf_target x1 = {.n = n, .elems = e, .flowable = flowable, .branchable = branchable};
  for (int kind = 0; kind < 2; kind++) {
    tyr_bf_config c = tyr_bf_config_default(2, 4);
    c.bridge = kind ? TYR_BF_BRIDGE_BROWNIAN : TYR_BF_BRIDGE_LINEAR;
    c.sigma = 0.5;
    c.coalescence_factor = 0.7;
    tyr_bf_rng r;
    tyr_bf_rng_init(&r, 11, (uint64_t)kind);
    for (int it = 0; it < 50; it++) {
      tyr_bf_forest f;
      assert_int_equal(tyr_bf_forest_sample(&c, &x1, &r, &f), 0);
      tyr_bf_segment seg[n];
      assert_int_equal(tyr_bf_bridge(&c, &f, 1.0, &r, seg), n);
      for (int i = 0; i < n; i++) {
        assert_memory_equal(seg[i].xt.x, e[i].x, sizeof e[i].x);
        assert_int_equal(seg[i].xt.tok, e[i].tok);
        assert_int_equal(seg[i].descendants, 1);
        assert_int_equal(seg[i].id, i + 1);
      }
      tyr_bf_rng replay = r;
      int64_t m = tyr_bf_bridge(&c, &f, 0.0, &r, seg);
      assert_int_equal(m, f.n_roots);
      for (int64_t k = 0; k < m; k++) {
        tyr_bf_elem x0;
        tyr_bf_start_state(&c, &replay, &x0);
        const tyr_bf_node *root = &f.nodes[f.roots[k]];
        const tyr_bf_elem *want = root->flowable ? &x0 : &root->data;
        assert_memory_equal(seg[k].xt.x, want->x, sizeof want->x);
        assert_int_equal(seg[k].xt.tok, root->flowable ? 4 : root->data.tok);
        assert_int_equal(seg[k].descendants, root->weight);
        assert_memory_equal(&seg[k].anchor, &root->data, sizeof root->data);
      }
      tyr_bf_forest_free(&f);
    }
  }
}

/* a to-be-deleted leaf alive at t with probability S_del(t) / S_del(t_parent) */
static void test_deletion_survival(void **state) {
  (void)state;
  enum { n = 20, N = 600 };
  tyr_bf_elem e[n];
  line_elems(e, n, 0);
  uint8_t del[n];
  memset(del, 1, sizeof del);
  tyr_bf_target x1 = {.n = n, .elems = e, .deleted = del};
  tyr_bf_config c = tyr_bf_config_default(2, 0);
  c.coalescence_factor = 0; /* leaves are roots: t_parent = 0 */
  c.deletion_time = tyr_bf_beta(2, 2);
  const double ts[3] = {0.2, 0.5, 0.8};
  for (int k = 0; k < 3; k++) {
    tyr_bf_rng r;
    tyr_bf_rng_init(&r, 21, (uint64_t)k);
    int64_t alive = 0;
    for (int it = 0; it < N; it++) {
      tyr_bf_forest f;
      assert_int_equal(tyr_bf_forest_sample(&c, &x1, &r, &f), 0);
      tyr_bf_segment seg[n];
      int64_t m = tyr_bf_bridge(&c, &f, ts[k], &r, seg);
      for (int64_t i = 0; i < m; i++) assert_true(seg[i].del);
      alive += m;
      if (k == 2) assert_int_equal(tyr_bf_bridge(&c, &f, 1.0, &r, seg), 0);
      tyr_bf_forest_free(&f);
    }
    double p = tyr_bf_dist_survival(&c.deletion_time, ts[k]), obs = (double)alive / (n * N);
    ASSERT_CLOSE(obs, p, 4 * sqrt(p * (1 - p) / (n * N)), 0);
  }
}

/* the live segments at t: exactly roots + splits <= t per forest (no deletions), and their
   mean matches the mean of that count over forests drawn independently */
static void test_live_segments(void **state) {
  (void)state;
  enum { n = 12, N = 3000 };
  tyr_bf_elem e[n];
  line_elems(e, n, 0);
  tyr_bf_target x1 = {.n = n, .elems = e};
  tyr_bf_config c = tyr_bf_config_default(2, 0);
  c.coalescence_factor = 0.8;
  c.branch_time = tyr_bf_beta(1.5, 1);
  const double t = 0.5;
  tyr_bf_rng r1, r2;
  tyr_bf_rng_init(&r1, 31, 0);
  tyr_bf_rng_init(&r2, 32, 0);
  double s1 = 0, q1 = 0, s2 = 0, q2 = 0;
  for (int it = 0; it < N; it++) {
    tyr_bf_forest f;
    tyr_bf_segment seg[n];
    assert_int_equal(tyr_bf_forest_sample(&c, &x1, &r1, &f), 0);
    int64_t m = tyr_bf_bridge(&c, &f, t, &r1, seg), bound = f.n_roots;
    for (int64_t i = 0; i < f.n_splits; i++) bound += f.split_times[i] <= t;
    assert_int_equal(m, bound);
    s1 += (double)m;
    q1 += (double)(m * m);
    tyr_bf_forest_free(&f);
    /* the expectation by simulation: roots plus split times up to t */
    assert_int_equal(tyr_bf_forest_sample(&c, &x1, &r2, &f), 0);
    int64_t k = f.n_roots;
    for (int64_t i = 0; i < f.n_splits; i++) k += f.split_times[i] <= t;
    s2 += (double)k;
    q2 += (double)(k * k);
    tyr_bf_forest_free(&f);
  }
  double m1 = s1 / N, m2 = s2 / N, v1 = q1 / N - m1 * m1, v2 = q2 / N - m2 * m2;
  ASSERT_CLOSE(m1, m2, 4 * sqrt((v1 + v2) / N), 0);
  assert_true(m1 > 1 && m1 < n);
}

/* deletion padding: removing the to-be-deleted elements gives x1 back; the mean added count is
   deletion_pad * n - n */
static void test_deletion_padding(void **state) {
  (void)state;
  enum { n = 8, N = 2000 };
  tyr_bf_elem e[n];
  line_elems(e, n, 3);
  tyr_bf_target x1 = {.n = n, .elems = e};
  tyr_bf_config c = tyr_bf_config_default(2, 3);
  c.deletion_pad = 1.5;
  c.max_len = 64;
  tyr_bf_rng r;
  tyr_bf_rng_init(&r, 41, 0);
  double added = 0;
  for (int it = 0; it < N; it++) {
    tyr_bf_seq q;
    assert_int_equal(tyr_bf_pad_deletions(&c, &x1, &r, &q), 0);
    int64_t k = 0;
    for (int64_t i = 0; i < q.n; i++) {
      assert_true(q.flowable[i] && q.branchable[i]);
      if (q.deleted[i]) continue;
      assert_true(k < n);
      assert_memory_equal(&q.elems[i], &e[k], sizeof e[k]);
      k++;
    }
    assert_int_equal(k, n);
    added += (double)(q.n - n);
    tyr_bf_seq_free(&q);
  }
  double want = 1.5 * n - n;
  ASSERT_CLOSE(added / N, want, 4 * sqrt(want / N), 0);
}

static void test_bad_input(void **state) {
  (void)state;
  enum { n = 6 };
  tyr_bf_elem e[n];
  line_elems(e, n, 3);
  tyr_bf_config c = tyr_bf_config_default(2, 3);
  tyr_bf_rng r;
  tyr_bf_rng_init(&r, 1, 0);
  tyr_bf_forest f;
  uint8_t del[n] = {0, 0, 1, 0, 0, 0}, flow[n] = {1, 1, 0, 1, 1, 1};
  tyr_bf_target x1 = {.n = n, .elems = e, .deleted = del, .flowable = flow};
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x1, &r, &f),
                   "element 2: to be deleted but not flowable");
  uint8_t br[n] = {1, 1, 0, 1, 1, 1};
  tyr_bf_target x2 = {.n = n, .elems = e, .deleted = del, .branchable = br};
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x2, &r, &f),
                   "element 2: to be deleted but not branchable");
  tyr_bf_target x3 = {.n = n, .elems = e};
  c.max_len = 5;
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x3, &r, &f), "6 elements, more than max_len 5");
  c.max_len = 64;
  int32_t g[n] = {0, 0, 0, 0, 1, 1};
  tyr_bf_target x4 = {.n = n, .elems = e, .group = g};
  c.group_min = 3;
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x4, &r, &f),
                   "group 1 has 2 branchable elements, fewer than its minimum 3");
  c.group_min = 1;
  e[4].tok = 3;
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x3, &r, &f), "element 4: token 3 is outside 0..2");
  e[4].tok = 1;
  e[1].x[1] = NAN;
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x3, &r, &f), "element 1: x[1] is nan");
  e[1].x[1] = 2;
  c.coalescence_factor = 1.5;
  EXPECT_TYR_ERROR(tyr_bf_forest_sample(&c, &x3, &r, &f), "coalescence_factor 1.5 must be in");
  c.coalescence_factor = 1;
  tyr_bf_batch b;
  EXPECT_TYR_ERROR(tyr_bf_batch_sample(&c, &x3, 1, (double[]){1.5}, 1, 0, &b),
                   "batch element 0: time 1.5 is outside [0, 1]");
  /* every forest too long at t: a target of 6 within max_len 6, padded with deletions */
  c.max_len = 6;
  c.deletion_pad = 4;
  c.max_resample = 3;
  EXPECT_TYR_ERROR(tyr_bf_batch_sample(&c, &x3, 1, (double[]){0.999}, 1, 0, &b),
                   "batch element 0: 3 forests in a row had more than max_len 6");
}

/* ---- losses ---------------------------------------------------------------------- */
static tyr_tensor *t64(const double *v, int rank, const int64_t *shape) {
  return tyr_from_host_at(TYR_SITE, v, TYR_F64, TYR_DEVICE_CPU, rank, shape);
}

static void test_losses_by_hand(void **state) {
  (void)state;
  TYR_SCOPE;
  const int64_t sh[2] = {1, 4};
  const double lg[4] = {0.5, -1.0, 2.0, 0.1}, c[4] = {0, 2, 3, 5}, m[4] = {1, 1, 1, 0};
  /* mu - c log mu - (c - c log c) over the three cells in the mask */
  double want = 0;
  for (int i = 0; i < 3; i++)
    want += exp(lg[i]) - c[i] * lg[i] - (c[i] - (c[i] > 0 ? c[i] * log(c[i]) : 0));
  want /= 3;
  ASSERT_CLOSE(tyr_item_e(tyr_bf_split_loss_e(t64(lg, 2, sh), t64(c, 2, sh), t64(m, 2, sh))), want,
               1e-12, 1e-12);
  /* the split loss is 0 where mu = c */
  const double lc[4] = {log(2.0), log(3.0), -100, 0}, cc[4] = {2, 3, 0, 1};
  ASSERT_CLOSE(tyr_item_e(tyr_bf_split_loss_e(t64(lc, 2, sh), t64(cc, 2, sh), t64(m, 2, sh))),
               exp(-100.0) / 3, 1e-12, 0);
  /* deletion BCE on logits: softplus(x) - y x */
  const double y[4] = {1, 0, 1, 1};
  want = 0;
  for (int i = 0; i < 3; i++) want += log1p(exp(lg[i])) - y[i] * lg[i];
  ASSERT_CLOSE(tyr_item_e(tyr_bf_deletion_loss_e(t64(lg, 2, sh), t64(y, 2, sh), t64(m, 2, sh))),
               want / 3, 1e-12, 1e-12);
  /* MSE over dim 2 and the mask */
  const int64_t sh3[3] = {1, 4, 2};
  const double p[8] = {1, 2, 3, 4, 5, 6, 7, 8}, a[8] = {0, 2, 3, 1, 5, 4, 0, 0};
  ASSERT_CLOSE(tyr_item_e(tyr_bf_mse_loss_e(t64(p, 3, sh3), t64(a, 3, sh3), t64(m, 2, sh))),
               (1.0 + 9.0 + 4.0) / 6.0, 1e-12, 1e-12);
  /* CE of the anchor tokens; the padding cell holds the mask token V = 2 */
  const double l3[8] = {0, 1, 2, 0, 0.5, 0.5, 1, 1};
  const int64_t at[4] = {1, 0, 1, 2};
  tyr_tensor *atok = tyr_from_host_at(TYR_SITE, at, TYR_I64, TYR_DEVICE_CPU, 2, sh);
  want = -(1 - log(exp(0.0) + exp(1.0))) - (2 - log(exp(2.0) + 1)) - (0.5 - log(2 * exp(0.5)));
  ASSERT_CLOSE(tyr_item_e(tyr_bf_ce_loss_e(t64(l3, 3, sh3), atok, t64(m, 2, sh))), want / 3, 1e-12,
               1e-12);
  /* an empty mask gives 0; shapes that differ are named */
  const double z[4] = {0, 0, 0, 0};
  ASSERT_CLOSE(tyr_item_e(tyr_bf_split_loss_e(t64(lg, 2, sh), t64(c, 2, sh), t64(z, 2, sh))), 0, 0,
               0);
  EXPECT_TYR_ERROR(tyr_bf_split_loss_e(t64(lg, 2, sh), t64(c, 2, (int64_t[]){2, 2}), t64(m, 2, sh)),
                   "tyr_bf_split_loss: logits [1, 4] and split targets [2, 2] must have one shape");
}

/* the typed forms: the same values, and run-time dims that differ stopped at the call */
static void test_typed_losses(void **state) {
  (void)state;
  TYR_SCOPE;
  volatile int64_t vb = 2, vl = 3, vl2 = 4;
  const int64_t B = vb, L = vl, L2 = vl2;
  tyr_T(B, L) lg = tyr_randn(B, L), c = tyr_ones(B, L), m = tyr_ones(B, L);
  tyr_T(B, L, 2) p = tyr_randn(B, L, 2), a = tyr_zeros(B, L, 2);
  tyr_T(B, L, 5) tl = tyr_randn(B, L, 5);
  tyr_T(B, L) tok =
      tyr_cast(tyr_zeros_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 2, (int64_t[]){B, L}), B, L);
  ASSERT_CLOSE(tyr_item(tyr_bf_split_loss(lg, c, m)),
               tyr_item_e(tyr_bf_split_loss_e(tyr_erase(lg), tyr_erase(c), tyr_erase(m))), 0, 0);
  ASSERT_CLOSE(tyr_item(tyr_bf_deletion_loss(lg, c, m)),
               tyr_item_e(tyr_bf_deletion_loss_e(tyr_erase(lg), tyr_erase(c), tyr_erase(m))), 0, 0);
  ASSERT_CLOSE(tyr_item(tyr_bf_mse_loss(p, a, m)),
               tyr_item_e(tyr_bf_mse_loss_e(tyr_erase(p), tyr_erase(a), tyr_erase(m))), 0, 0);
  ASSERT_CLOSE(tyr_item(tyr_bf_ce_loss(tl, tok, m)),
               tyr_item_e(tyr_bf_ce_loss_e(tyr_erase(tl), tyr_erase(tok), tyr_erase(m))), 0, 0);
  tyr_T(B, L2) c2 = tyr_ones(B, L2);
  EXPECT_TYR_ERROR(tyr_bf_split_loss(lg, c2, m),
                   "tyr_bf_split_loss: logits [2, 3] and split targets [2, 4]");
}

typedef struct loss_ctx {
  int which;
  tyr_tensor *target, *mask;
} loss_ctx;

static tyr_tensor *call_loss(tyr_tensor **in, void *ctx) {
  loss_ctx *c = ctx;
  switch (c->which) {
  case 0:
    return tyr_bf_split_loss_e(in[0], c->target, c->mask);
  case 1:
    return tyr_bf_deletion_loss_e(in[0], c->target, c->mask);
  case 2:
    return tyr_bf_mse_loss_e(in[0], c->target, c->mask);
  default:
    return tyr_bf_ce_loss_e(in[0], c->target, c->mask);
  }
}

static void test_loss_gradients(void **state) {
  (void)state;
  TYR_SCOPE;
  const int64_t sh[2] = {2, 3};
  const double m[6] = {1, 0, 1, 1, 1, 0}, c[6] = {0, 1, 2, 3, 0.5, 4}, y[6] = {1, 0, 0, 1, 1, 0};
  const double a[12] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 1.0, -1.1, 1.2};
  const int64_t tk[6] = {0, 3, 2, 1, 2, 3};
  loss_ctx ctx[4] = {
      {0, t64(c, 2, sh), t64(m, 2, sh)},
      {1, t64(y, 2, sh), t64(m, 2, sh)},
      {2, t64(a, 3, (int64_t[]){2, 3, 2}), t64(m, 2, sh)},
      {3, tyr_from_host_at(TYR_SITE, tk, TYR_I64, TYR_DEVICE_CPU, 2, sh), t64(m, 2, sh)},
  };
  const char *names[4] = {"tyr_bf_split_loss", "tyr_bf_deletion_loss", "tyr_bf_mse_loss",
                          "tyr_bf_ce_loss"};
  tyr_tensor *in[4] = {TYR_TEST_LEAF(-2, 2, 2, 3), TYR_TEST_LEAF(-2, 2, 2, 3),
                       TYR_TEST_LEAF(-2, 2, 2, 3, 2), TYR_TEST_LEAF(-2, 2, 2, 3, 3)};
  for (int k = 0; k < 4; k++) {
    tyr_gradcheck(names[k], call_loss, &ctx[k], 1, &in[k], 1e-6, 1e-6);
    tyr_tensor_free(in[k]);
  }
}

/* ---- the model --------------------------------------------------------------------- */
static tyr_bfm_config micro_model(int dim, int vocab) {
  return (tyr_bfm_config){
      .dim = dim, .vocab = vocab, .max_len = 8, .n_layer = 1, .n_head = 2, .n_embd = 8};
}

/* every parameter ~ N(0, std) (the zero-initialised heads too) */
static void randomize(tyr_bfm *m, double std) {
  TYR_NO_GRAD;
  for (int i = 0; i < m->params.n; i++) {
    TYR_SCOPE;
    tyr_tensor *p = m->params.items[i].t;
    tyr_copy_e(p, tyr_randn_at(TYR_SITE, p->dtype, p->device, p->rank, p->shape, 0.0, std));
  }
}

typedef struct model_ctx {
  tyr_bfm *m;
  const tyr_bf_batch *b;
} model_ctx;

static tyr_tensor *call_model(tyr_tensor **in, void *ctx) {
  (void)in;
  model_ctx *c = ctx;
  tyr_bfm_losses l;
  tyr_bfm_loss_weights w = {1.0, 0.7, 0.3};
  return tyr_bfm_loss(c->m, c->b, w, &l) ? NULL : l.total;
}

/* targets of 2..5 elements: points x = (i, 2i), tokens i % 3 */
static void micro_targets(tyr_bf_elem *e, tyr_bf_target *x1, int B) {
  for (int b = 0; b < B; b++) {
    line_elems(e + 8 * b, 8, 3);
    x1[b] = (tyr_bf_target){.n = 2 + b % 4, .elems = e + 8 * b};
  }
}

static void test_model_gradients(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_set_default_dtype(TYR_F64);
  tyr_manual_seed(3);
  tyr_bfm_config mc = micro_model(2, 3);
  tyr_bfm m;
  assert_int_equal(tyr_bfm_init(&m, &mc), 0);
  randomize(&m, 0.4);
  tyr_bf_config c = tyr_bf_config_default(2, 3);
  c.max_len = 8;
  c.deletion_pad = 0.5;
  tyr_bf_elem e[8 * 3];
  tyr_bf_target x1[3];
  micro_targets(e, x1, 3);
  tyr_bf_batch b;
  assert_int_equal(tyr_bf_batch_sample(&c, x1, 3, NULL, 5, 0, &b), 0);
  /* the padding (shorter sequences) matters: the batch has live and padding cells */
  b.L = 6; /* the model sees [B, 6] (the packed rows stay [B, 8]: only the first 6 read) */
  tyr_bf_batch narrow = b;
  static float xt[3 * 6 * 2], an[3 * 6 * 2], st[18], dl[18], pm[18], fm[18], bm[18];
  static int64_t tk[18], at[18];
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < 6; i++) {
      int src = r * 8 + i, dst = r * 6 + i;
      for (int d = 0; d < 2; d++) {
        xt[dst * 2 + d] = b.xt[src * 2 + d];
        an[dst * 2 + d] = b.anchor[src * 2 + d];
      }
      st[dst] = b.split_target[src];
      dl[dst] = b.del[src];
      pm[dst] = b.padmask[src];
      fm[dst] = b.flowmask[src];
      bm[dst] = b.branchmask[src];
      tk[dst] = b.tok[src];
      at[dst] = b.anchor_tok[src];
    }
  narrow.xt = xt, narrow.anchor = an, narrow.split_target = st, narrow.del = dl;
  narrow.padmask = pm, narrow.flowmask = fm, narrow.branchmask = bm, narrow.tok = tk;
  narrow.anchor_tok = at;
  b.L = 8;
  model_ctx ctx = {&m, &narrow};
  tyr_tensor *in[64];
  int n = 0;
  for (int i = 0; i < m.params.n && n < 64; i++) in[n++] = m.params.items[i].t;
  tyr_gradcheck("tyr_bfm_loss", call_model, &ctx, n, in, 1e-6, 1e-5);
  /* the padding does not change the live cells' outputs */
  tyr_bfm_out o6, o8;
  {
    TYR_NO_GRAD;
    int64_t s6[2] = {3, 6}, s8[2] = {3, 8};
    assert_int_equal(
        tyr_bfm_forward(
            &m,
            tyr_to_dtype_e(
                tyr_from_host_at(TYR_SITE, xt, TYR_F32, TYR_DEVICE_CPU, 3, (int64_t[]){3, 6, 2}),
                TYR_F64),
            tyr_from_host_at(TYR_SITE, tk, TYR_I64, TYR_DEVICE_CPU, 2, s6),
            tyr_to_dtype_e(
                tyr_from_host_at(TYR_SITE, b.t, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){3}),
                TYR_F64),
            tyr_to_dtype_e(tyr_from_host_at(TYR_SITE, pm, TYR_F32, TYR_DEVICE_CPU, 2, s6), TYR_F64),
            &o6),
        0);
    assert_int_equal(
        tyr_bfm_forward(
            &m,
            tyr_to_dtype_e(
                tyr_from_host_at(TYR_SITE, b.xt, TYR_F32, TYR_DEVICE_CPU, 3, (int64_t[]){3, 8, 2}),
                TYR_F64),
            tyr_from_host_at(TYR_SITE, b.tok, TYR_I64, TYR_DEVICE_CPU, 2, s8),
            tyr_to_dtype_e(
                tyr_from_host_at(TYR_SITE, b.t, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){3}),
                TYR_F64),
            tyr_to_dtype_e(tyr_from_host_at(TYR_SITE, b.padmask, TYR_F32, TYR_DEVICE_CPU, 2, s8),
                           TYR_F64),
            &o8),
        0);
  }
  double a6[18], a8[24];
  tyr_to_host_e(o6.split, a6, sizeof a6);
  tyr_to_host_e(o8.split, a8, sizeof a8);
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < b.len[r] && i < 6; i++)
      ASSERT_CLOSE(a6[r * 6 + i], a8[r * 8 + i], 1e-9, 1e-9);
  tyr_bf_batch_free(&b);
  tyr_bfm_free(&m);
  tyr_set_default_dtype(TYR_F32);
}

/* ---- the sampler ------------------------------------------------------------------- */
static void test_sampler_step(void **state) {
  (void)state;
  tyr_bf_config c = tyr_bf_config_default(2, 3);
  c.max_len = 40;
  tyr_bf_rng r;
  tyr_bf_rng_init(&r, 51, 0);
  /* the mean number of splits of one step: dt mu h(t), h = 1 / (1 - t) for Uniform */
  enum { N = 4000 };
  float px[2] = {0.5f, 0.5f}, pl[3] = {0, 0, 0}, ps[1] = {(float)log(3.0)}, pd[1] = {-30};
  tyr_bf_prediction p = {px, pl, ps, pd};
  double total = 0;
  for (int it = 0; it < N; it++) {
    tyr_bf_state st;
    assert_int_equal(tyr_bf_state_init_at(TYR_SITE, &c, &st, 1, &r), 0);
    st.e[0].tok = 1;
    pl[1] = 50; /* the token keeps its value: splits are not suppressed */
    assert_int_equal(tyr_bf_step(&c, &st, &p, 0.5, 0.1, &r), 0);
    total += (double)(st.n - 1);
    for (int64_t i = 1; i < st.n; i++) assert_memory_equal(&st.e[i], &st.e[0], sizeof st.e[0]);
    tyr_bf_state_free(&st);
  }
  double want = 0.1 * 3 * (1 / 0.5);
  ASSERT_CLOSE(total / N, want, 4 * sqrt(want / N), 0);
  /* the anchor is reached at the last step, a changed token suppresses splits, max_len caps */
  tyr_bf_state st;
  assert_int_equal(tyr_bf_state_init_at(TYR_SITE, &c, &st, 1, &r), 0);
  pl[1] = 0;
  pl[2] = 50;
  ps[0] = 11;
  assert_int_equal(tyr_bf_step(&c, &st, &p, 0.9, 0.1, &r), 0);
  assert_int_equal(st.n, 1); /* the token jumped (dt / (1 - t) = 1): no split */
  ASSERT_CLOSE(st.e[0].x[0], 0.5, 1e-7, 0);
  assert_int_equal(st.e[0].tok, 2);
  assert_int_equal(tyr_bf_step(&c, &st, &p, 0.5, 0.4, &r), 0);
  assert_int_equal(st.n, 40); /* e^11 splits expected: cut at max_len */
  /* deletions: logit +30, probability 1 - exp(-h dt) = 1 - 1/e with h = 1 / (1 - t), dt = 1 - t:
     25.3 of 40 expected (sd 3.05) */
  pd[0] = 30;
  ps[0] = -100;
  float px40[80], pl40[120], ps40[40], pd40[40];
  for (int i = 0; i < 40; i++) {
    px40[2 * i] = px40[2 * i + 1] = 0.5f;
    pl40[3 * i] = pl40[3 * i + 1] = 0, pl40[3 * i + 2] = 50;
    ps40[i] = -100;
    pd40[i] = 30;
  }
  tyr_bf_prediction p40 = {px40, pl40, ps40, pd40};
  assert_int_equal(tyr_bf_step(&c, &st, &p40, 0.9, 0.1, &r), 0);
  assert_true(st.n >= 40 - 25 - 13 && st.n <= 40 - 25 + 13);
  for (int i = 0; i < 40; i++) pd40[i] = -30;
  int64_t before = st.n;
  assert_int_equal(tyr_bf_step(&c, &st, &p40, 0.5, 0.1, &r), 0);
  assert_int_equal(st.n, before); /* logit -30: none */
  tyr_bf_state_free(&st);
  EXPECT_TYR_ERROR(tyr_bf_step(&c, &st, &p, 0.9, 0.2, &r), "t 0.9 and dt 0.2 must satisfy");
}

/* one seed: the same batch and the same samples on 1 and 2 threads */
static void test_threads(void **state) {
  (void)state;
  enum { B = 12 };
  tyr_bf_elem e[8 * B];
  tyr_bf_target x1[B];
  micro_targets(e, x1, B);
  tyr_bf_config c = tyr_bf_config_default(2, 3);
  c.max_len = 8;
  c.deletion_pad = 1.2;
  c.snap_prob = 0.3;
  c.bridge = TYR_BF_BRIDGE_BROWNIAN;
  tyr_bf_batch b1, b2;
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  assert_int_equal(tyr_bf_batch_sample(&c, x1, B, NULL, 99, 7, &b1), 0);
  omp_set_num_threads(2);
  assert_int_equal(tyr_bf_batch_sample(&c, x1, B, NULL, 99, 7, &b2), 0);
  assert_memory_equal(b1.t, b2.t, B * sizeof(float));
  assert_memory_equal(b1.xt, b2.xt, B * 8 * 2 * sizeof(float));
  assert_memory_equal(b1.tok, b2.tok, B * 8 * sizeof(int64_t));
  assert_memory_equal(b1.split_target, b2.split_target, B * 8 * sizeof(float));
  assert_memory_equal(b1.del, b2.del, B * 8 * sizeof(float));
  assert_memory_equal(b1.padmask, b2.padmask, B * 8 * sizeof(float));
  /* another step gives another batch */
  tyr_bf_batch b3;
  assert_int_equal(tyr_bf_batch_sample(&c, x1, B, NULL, 99, 8, &b3), 0);
  assert_true(memcmp(b1.t, b3.t, B * sizeof(float)) != 0);
  tyr_bf_batch_free(&b1);
  tyr_bf_batch_free(&b2);
  tyr_bf_batch_free(&b3);
  /* generation */
  tyr_manual_seed(4);
  tyr_bfm_config mc = micro_model(2, 3);
  tyr_bfm m;
  assert_int_equal(tyr_bfm_init(&m, &mc), 0);
  randomize(&m, 0.3);
  tyr_bf_state s1[4], s2[4];
  omp_set_num_threads(1);
  assert_int_equal(tyr_bfm_generate(&m, &c, 4, 2, 16, 5, s1, NULL, NULL), 0);
  omp_set_num_threads(2);
  assert_int_equal(tyr_bfm_generate(&m, &c, 4, 2, 16, 5, s2, NULL, NULL), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(s1[i].n, s2[i].n);
    assert_true(s1[i].n <= 8);
    if (s1[i].n) assert_memory_equal(s1[i].e, s2[i].e, (size_t)s1[i].n * sizeof *s1[i].e);
    tyr_bf_state_free(&s1[i]);
    tyr_bf_state_free(&s2[i]);
  }
  omp_set_num_threads(saved);
  tyr_bfm_free(&m);
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_distributions),
      TYR_TEST(test_split_times_ks),
      TYR_TEST(test_merge_counts_binomial),
      TYR_TEST(test_forest_structure),
      TYR_TEST(test_bridge_endpoints),
      TYR_TEST(test_deletion_survival),
      TYR_TEST(test_live_segments),
      TYR_TEST(test_deletion_padding),
      TYR_TEST(test_bad_input),
      TYR_TEST(test_losses_by_hand),
      TYR_TEST(test_typed_losses),
      TYR_TEST(test_loss_gradients),
      TYR_TEST(test_model_gradients),
      TYR_TEST(test_sampler_step),
      TYR_TEST(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
