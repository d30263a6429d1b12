/* Proof search (tyr/models/proof_search.h) with stub policies and values:
 * a perfect policy proves in as many calls as the proof has steps; a noisy
 * policy (mostly rejected steps) still lets the search prove what sampling
 * alone misses at the same budget; rejected steps are reported; the
 * proofs found pass the checker; a refuted goal fails without looping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/models/proof_search.h"

static int perfect(void *ctx, const tyr_sequent *g, int k, tyr_proof_candidate *out, double *v) {
  (void)ctx;
  (void)k;
  tyr_sequent_step st;
  *v = 0.5;
  if (!tyr_sequent_first_step(g, &st)) return 0;
  tyr_sequent_step_print(st, out[0].text, sizeof out[0].text);
  out[0].logp = 0;
  return 1;
}

typedef struct noisy {
  uint64_t rng;
  int rejects;
} noisy;

static double uni(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

/* each candidate is the right step with probability 0.35, otherwise a
   step the checker rejects */
static int noisy_policy(void *ctx, const tyr_sequent *g, int k, tyr_proof_candidate *out,
                        double *v) {
  noisy *n = ctx;
  tyr_sequent_step st;
  *v = 0.5;
  if (!tyr_sequent_first_step(g, &st)) st = (tyr_sequent_step){TYR_RULE_AX, 0};
  for (int i = 0; i < k; i++) {
    if (uni(&n->rng) < 0.35) {
      tyr_sequent_step_print(st, out[i].text, sizeof out[i].text);
      out[i].logp = -1.0;
    } else {
      snprintf(out[i].text, sizeof out[i].text, i % 2 ? "andL 9" : "cut %d", i);
      out[i].logp = -0.5;
    }
  }
  return k;
}

static void on_reject(void *ctx, const tyr_sequent *g, const char *step, const char *why) {
  (void)g;
  (void)step;
  noisy *n = ctx;
  assert_true(strstr(why, "unknown rule 'cut'") || strstr(why, "andL 9:"));
  n->rejects++;
}

static void test_perfect_policy(void **state) {
  (void)state;
  tyr_sequent q;
  assert_int_equal(tyr_sequent_parse("|- ((a -> b) -> a) -> a", &q), 0);
  tyr_sequent_proof pf = {0};
  assert_int_equal(tyr_sequent_prove(&q, 100, &pf), 1);
  tyr_proof_result r;
  tyr_proof_search_config c = tyr_proof_search_defaults();
  assert_int_equal(tyr_proof_search(&q, &c, perfect, NULL, &r), 0);
  assert_true(r.proved);
  assert_int_equal(r.calls, pf.n); /* one expansion per step */
  assert_int_equal(r.n, pf.n);
  char err[200];
  assert_int_equal(tyr_sequent_check_proof(&q, r.steps, r.n, err, sizeof err), 0);
  assert_int_equal(r.depth[0], 0);
  tyr_proof_result_free(&r);
  assert_int_equal(tyr_proof_sample(&q, &c, perfect, NULL, &r), 0);
  assert_true(r.proved);
  assert_int_equal(tyr_sequent_check_proof(&q, r.steps, r.n, err, sizeof err), 0);
  tyr_proof_result_free(&r);
  tyr_sequent_proof_free(&pf);
  /* a refuted goal: the search ends failed before the budget */
  assert_int_equal(tyr_sequent_parse("a | b |- a & b", &q), 0);
  c.budget = 1000;
  assert_int_equal(tyr_proof_search(&q, &c, perfect, NULL, &r), 0);
  assert_false(r.proved);
  assert_true(r.calls < 1000);
  tyr_proof_result_free(&r);
}

static void test_search_beats_sampling(void **state) {
  (void)state;
  uint64_t gen = 11;
  int searched = 0, sampled = 0, tried = 0;
  noisy n = {.rng = 5};
  tyr_proof_search_config c = tyr_proof_search_defaults();
  c.budget = 24;
  c.samples = 4;
  c.on_reject = on_reject;
  c.reject_ctx = &n;
  while (tried < 20) {
    tyr_sequent q;
    tyr_sequent_random(&gen, 3, 8, &q);
    tyr_sequent_proof pf = {0};
    int ok = tyr_sequent_prove(&q, 1000, &pf);
    int steps = pf.n;
    tyr_sequent_proof_free(&pf);
    if (ok != 1 || steps < 5 || steps > 10) continue;
    tried++;
    tyr_proof_result r;
    char err[200];
    assert_int_equal(tyr_proof_search(&q, &c, noisy_policy, &n, &r), 0);
    if (r.proved) {
      searched++;
      assert_int_equal(tyr_sequent_check_proof(&q, r.steps, r.n, err, sizeof err), 0);
    }
    assert_true(r.calls <= c.budget);
    tyr_proof_result_free(&r);
    assert_int_equal(tyr_proof_sample(&q, &c, noisy_policy, &n, &r), 0);
    if (r.proved) {
      sampled++;
      assert_int_equal(tyr_sequent_check_proof(&q, r.steps, r.n, err, sizeof err), 0);
    }
    tyr_proof_result_free(&r);
  }
  printf("  noisy policy, budget 24: search %d/20, sampling %d/20, %d rejected steps\n", searched,
         sampled, n.rejects);
  assert_true(n.rejects > 0);
  assert_true(searched >= 18);
  assert_true(searched > sampled + 5);
}

static int cmp_int(const void *a, const void *b) {
  return *(const int *)a - *(const int *)b;
}

/* labels from search outcomes: with the perfect policy every expanded goal
   is on the proof, and its label is the proof length below it; a refuted
   goal labels everything it expanded 0 */
static void test_search_labels(void **state) {
  (void)state;
  tyr_sequent q;
  tyr_proof_result r;
  tyr_proof_search_config c = tyr_proof_search_defaults();
  /* by hand: a & b |- a  is  andL 0, then ax on  a, b |- a */
  assert_int_equal(tyr_sequent_parse("a & b |- a", &q), 0);
  assert_int_equal(tyr_proof_search(&q, &c, perfect, NULL, &r), 0);
  assert_true(r.proved);
  assert_int_equal(r.n_labels, 2);
  char text[TYR_SEQUENT_TEXT_MAX];
  tyr_sequent_print(&r.label_goals[0], text, sizeof text);
  assert_string_equal(text, "a & b |- a");
  tyr_sequent_print(&r.label_goals[1], text, sizeof text);
  assert_string_equal(text, "a, b |- a");
  assert_int_equal(r.label_steps[0], 2);
  assert_int_equal(r.label_steps[1], 1);
  assert_float_equal(tyr_proof_result_label(&r, 0, 0.97), 0.97, 1e-12);
  assert_float_equal(tyr_proof_result_label(&r, 1, 0.97), 1.0, 1e-12);
  tyr_proof_result_free(&r);
  /* a longer proof: the labels are the complete prover's steps left */
  assert_int_equal(tyr_sequent_parse("|- ((a -> b) -> a) -> a", &q), 0);
  tyr_sequent_proof pf = {0};
  assert_int_equal(tyr_sequent_prove(&q, 100, &pf), 1);
  assert_int_equal(tyr_proof_search(&q, &c, perfect, NULL, &r), 0);
  assert_int_equal(r.n_labels, pf.n);
  assert_int_equal(r.label_steps[0], pf.n);
  qsort(r.label_steps, (size_t)r.n_labels, sizeof *r.label_steps, cmp_int);
  qsort(pf.remaining, (size_t)pf.n, sizeof *pf.remaining, cmp_int);
  for (int i = 0; i < pf.n; i++) assert_int_equal(r.label_steps[i], pf.remaining[i]);
  tyr_proof_result_free(&r);
  tyr_sequent_proof_free(&pf);
  /* refuted: the root is labelled 0; a subgoal proved on the way keeps its
     proof length, and the complete prover agrees it is provable */
  assert_int_equal(tyr_sequent_parse("a | b |- a & b", &q), 0);
  c.budget = 1000;
  assert_int_equal(tyr_proof_search(&q, &c, perfect, NULL, &r), 0);
  assert_false(r.proved);
  assert_true(r.n_labels > 0);
  assert_int_equal(r.label_steps[0], 0);
  for (int i = 0; i < r.n_labels; i++) {
    tyr_sequent_proof sub = {0};
    assert_int_equal(tyr_sequent_prove(&r.label_goals[i], 1000, &sub), r.label_steps[i] > 0);
    tyr_sequent_proof_free(&sub);
  }
  tyr_proof_result_free(&r);
  /* the sampling baseline gives no labels */
  assert_int_equal(tyr_proof_sample(&q, &c, perfect, NULL, &r), 0);
  assert_int_equal(r.n_labels, 0);
  tyr_proof_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_perfect_policy),
      TYR_TEST(test_search_beats_sampling),
      TYR_TEST(test_search_labels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
