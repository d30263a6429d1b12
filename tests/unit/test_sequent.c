/* The NanoProof domain (tyr/models/sequent.h): parsing with positions,
 * canonical printing, the checker on hand-made proofs and refutations, the
 * complete prover against truth tables, and the generator's labels. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tyr/models/sequent.h"
#include "tyr/tyr.h"

static void parse_ok(const char *text, const char *canon) {
  tyr_sequent q;
  char buf[TYR_SEQUENT_TEXT_MAX];
  assert_int_equal(tyr_sequent_parse(text, &q), 0);
  tyr_sequent_print(&q, buf, sizeof buf);
  assert_string_equal(buf, canon);
  /* canonical text parses back to itself */
  tyr_sequent r;
  char buf2[TYR_SEQUENT_TEXT_MAX];
  assert_int_equal(tyr_sequent_parse(buf, &r), 0);
  tyr_sequent_print(&r, buf2, sizeof buf2);
  assert_string_equal(buf, buf2);
}

static void test_parse(void **state) {
  (void)state;
  parse_ok("a|-a", "a |- a");
  parse_ok("|- a -> b -> a", "|- a -> (b -> a)");
  parse_ok("|- a & b | c -> ~d", "|- ((a & b) | c) -> ~d");
  parse_ok("~~a, a&b&c |- ", "~~a, (a & b) & c |-");
  parse_ok("~(a | b) |- ~a & ~b", "~(a | b) |- ~a & ~b");
  parse_ok("(a -> b) -> a |- a", "(a -> b) -> a |- a");
  char err[200];
  tyr_sequent q;
  assert_int_equal(tyr_sequent_parse_quiet("a & |- b", &q, err, sizeof err), -1);
  assert_non_null(strstr(err, "position 4: expected a formula"));
  assert_int_equal(tyr_sequent_parse_quiet("a |- (b", &q, err, sizeof err), -1);
  assert_non_null(strstr(err, "position 7: expected ')'"));
  assert_int_equal(tyr_sequent_parse_quiet("a b |- c", &q, err, sizeof err), -1);
  assert_non_null(strstr(err, "position 2: expected ',' or '|-', got 'b'"));
  assert_int_equal(tyr_sequent_parse_quiet("a", &q, err, sizeof err), -1);
  assert_int_equal(tyr_sequent_parse_quiet("A |- a", &q, err, sizeof err), -1);
  assert_non_null(strstr(err, "position 0"));
  char deep[400];
  memset(deep, '~', 200);
  strcpy(deep + 200, "a");
  assert_int_equal(tyr_sequent_parse_quiet(deep, &q, err, sizeof err), -1);
  assert_non_null(strstr(err, "nesting"));
  tyr_test_record_errors();
  EXPECT_TYR_ERROR(tyr_sequent_parse("a |- b c", &q), "tyr_sequent_parse");
}

static tyr_sequent_step step(const char *text) {
  tyr_sequent_step st;
  char err[100];
  if (!tyr_sequent_step_parse(text, &st, err, sizeof err)) fail_msg("%s: %s", text, err);
  return st;
}

static void test_checker(void **state) {
  (void)state;
  tyr_sequent q, out[2];
  char err[200], buf[TYR_SEQUENT_TEXT_MAX];
  /* |- (a & b) -> (b & a): impR 0, andL 0, andR 0, ax, ax */
  assert_int_equal(tyr_sequent_parse("|- a & b -> b & a", &q), 0);
  tyr_sequent_step p1[] = {step("impR 0"), step("andL 0"), step("andR 0"), step("ax"), step("ax")};
  assert_int_equal(tyr_sequent_check_proof(&q, p1, 5, err, sizeof err), 0);
  assert_int_equal(tyr_sequent_apply(&q, p1[0], out, err, sizeof err), 1);
  tyr_sequent_print(&out[0], buf, sizeof buf);
  assert_string_equal(buf, "a & b |- b & a");
  /* Peirce's law, classical: |- ((a -> b) -> a) -> a */
  assert_int_equal(tyr_sequent_parse("|- ((a -> b) -> a) -> a", &q), 0);
  tyr_sequent_step p2[] = {step("impR 0"), step("impL 0"), step("impR 1"), step("ax"), step("ax")};
  assert_int_equal(tyr_sequent_check_proof(&q, p2, 5, err, sizeof err), 0);
  assert_int_equal(tyr_sequent_apply(&q, p2[0], out, err, sizeof err), 1);
  assert_int_equal(tyr_sequent_apply(&out[0], p2[1], out, err, sizeof err), 2);
  tyr_sequent_print(&out[0], buf, sizeof buf);
  assert_string_equal(buf, "|- a, a -> b");
  tyr_sequent_print(&out[1], buf, sizeof buf);
  assert_string_equal(buf, "a |- a");
  /* rejected steps, with reasons */
  assert_int_equal(tyr_sequent_parse("a | b |- c", &q), 0);
  assert_int_equal(tyr_sequent_apply(&q, step("andL 0"), out, err, sizeof err), -1);
  assert_string_equal(err, "andL 0: 'a | b' is not a conjunction");
  assert_int_equal(tyr_sequent_apply(&q, step("orL 2"), out, err, sizeof err), -1);
  assert_string_equal(err, "orL 2: the left side has 1 formula");
  assert_int_equal(tyr_sequent_apply(&q, step("ax"), out, err, sizeof err), -1);
  assert_string_equal(err, "ax: no formula is on both sides");
  tyr_sequent_step junk;
  assert_false(tyr_sequent_step_parse("cut 0", &junk, err, sizeof err));
  assert_string_equal(err, "unknown rule 'cut'");
  assert_false(tyr_sequent_step_parse("andL", &junk, err, sizeof err));
  assert_false(tyr_sequent_step_parse("ax 3", &junk, err, sizeof err));
  /* a wrong proof and an incomplete one */
  assert_int_equal(tyr_sequent_parse("|- a & b -> b & a", &q), 0);
  tyr_sequent_step bad[] = {step("impR 0"), step("andR 0"), step("ax")};
  assert_int_equal(tyr_sequent_check_proof(&q, bad, 3, err, sizeof err), -1);
  assert_non_null(strstr(err, "step 2: ax: no formula"));
  assert_int_equal(tyr_sequent_check_proof(&q, p1, 4, err, sizeof err), -1);
  assert_non_null(strstr(err, "left open"));
  /* refutations: the prover says no, and the checker accepts no proof */
  const char *refuted[] = {"|- a", "a |- b", "|- a -> b", "a | b |- a & b", "|- (a -> b) -> a"};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(tyr_sequent_parse(refuted[i], &q), 0);
    assert_int_equal(tyr_sequent_prove(&q, 100, NULL), 0);
  }
}

/* truth-table validity of q over atoms a..e */
static bool valid(const tyr_sequent *q);

static bool eval(const char *f, unsigned v, int *pos);

/* an atom, a negation or a parenthesised formula (canonical text puts every
   binary child in parentheses) */
static bool eval_unary(const char *f, unsigned v, int *pos) {
  if (f[*pos] == '~') {
    (*pos)++;
    return !eval_unary(f, v, pos);
  }
  if (f[*pos] == '(') {
    (*pos)++;
    bool x = eval(f, v, pos);
    (*pos)++; /* ')' */
    return x;
  }
  return (v >> (f[(*pos)++] - 'a')) & 1;
}

static bool eval(const char *f, unsigned v, int *pos) {
  bool x = eval_unary(f, v, pos);
  if (f[*pos] == ' ') { /* " & ", " | " or " -> " */
    char op = f[*pos + 1];
    *pos += op == '-' ? 4 : 3;
    bool y = eval_unary(f, v, pos);
    x = op == '&' ? (x && y) : op == '|' ? (x || y) : (!x || y);
  }
  return x;
}

static bool valid(const tyr_sequent *q) {
  for (unsigned v = 0; v < 32; v++) {
    bool all_l = true, any_r = false;
    for (int i = 0; i < q->n_left; i++) {
      int p = 0;
      all_l = all_l && eval(q->left[i], v, &p);
    }
    for (int i = 0; i < q->n_right; i++) {
      int p = 0;
      any_r = any_r || eval(q->right[i], v, &p);
    }
    if (all_l && !any_r) return false;
  }
  return true;
}

static void test_prover_and_generator(void **state) {
  (void)state;
  uint64_t rng = 7;
  int provable = 0, by_level[TYR_SEQUENT_LEVELS + 1] = {0};
  tyr_sequent_proof pf = {0};
  char err[300];
  for (int i = 0; i < 3000; i++) {
    tyr_sequent q;
    tyr_sequent_random(&rng, 3, 1 + i % 12, &q);
    int r = tyr_sequent_prove(&q, 10000, &pf);
    assert_true(r == 0 || r == 1);
    /* the generator's label (the prover's verdict) is the truth table's */
    assert_int_equal(r == 1, valid(&q));
    if (r == 1) {
      provable++;
      assert_int_equal(tyr_sequent_check_proof(&q, pf.steps, pf.n, err, sizeof err), 0);
      assert_int_equal(pf.remaining[0], pf.n);
      by_level[tyr_sequent_level(pf.n)]++;
    }
  }
  tyr_sequent_proof_free(&pf);
  assert_true(provable > 300 && provable < 2700);
  for (int l = 1; l <= TYR_SEQUENT_LEVELS; l++) assert_true(by_level[l] > 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_parse),
      TYR_TEST(test_checker),
      TYR_TEST(test_prover_and_generator),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
