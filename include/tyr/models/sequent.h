/* tyr/models/sequent.h - propositional sequents as text: the proving domain
 * of NanoProof (tyr/models/nanoproof.h).
 *
 * A formula is an atom (a lowercase letter), ~A, A & B, A | B or A -> B;
 * ~ binds tightest, then &, then |, then -> (right associative);
 * parentheses group.  A sequent is "A, B |- C, D" (either side may be
 * empty).  Formulas are kept as canonical text: every binary subformula of
 * a formula is parenthesised, e.g. "(a & b) -> ~(b | c)".
 *
 * The calculus is G3c (classical, multi-succedent, shared contexts, every
 * rule invertible).  A proof step is a rule and the 0-based index of the
 * principal formula on its side:
 *
 *   ax          a formula occurs on both sides: closes the goal
 *   andL i      G, A & B |- D   <-  G, A, B |- D
 *   andR i      G |- A & B, D   <-  G |- A, D   and  G |- B, D
 *   orL i       G, A | B |- D   <-  G, A |- D   and  G, B |- D
 *   orR i       G |- A | B, D   <-  G |- A, B, D
 *   impL i      G, A -> B |- D  <-  G |- A, D   and  G, B |- D
 *   impR i      G |- A -> B, D  <-  G, A |- B, D
 *   notL i      G, ~A |- D      <-  G |- A, D
 *   notR i      G |- ~A, D      <-  G, A |- D
 *
 * The principal formula is removed; the new formulas are appended to their
 * side unless already there.  A sequent is provable exactly when
 * tyr_sequent_prove finds a proof (the rules are invertible, so the first
 * applicable rule never loses a proof). */
#ifndef TYR_MODELS_SEQUENT_H
#define TYR_MODELS_SEQUENT_H
#include <stdbool.h>
#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_SEQUENT_MAX_FORMULAS 12 /* per side */
#define TYR_SEQUENT_MAX_LEN 128     /* bytes of one formula's text, NUL included */
#define TYR_SEQUENT_TEXT_MAX (2 * TYR_SEQUENT_MAX_FORMULAS * (TYR_SEQUENT_MAX_LEN + 2) + 8)

/* A sequent by value (no allocation): copy it freely. */
typedef struct tyr_sequent {
  int n_left, n_right;
  char left[TYR_SEQUENT_MAX_FORMULAS][TYR_SEQUENT_MAX_LEN];
  char right[TYR_SEQUENT_MAX_FORMULAS][TYR_SEQUENT_MAX_LEN];
} tyr_sequent;

/* Parses text (NUL-terminated) into *out.  A syntax error raises
 * TYR_ERR_ARG from op "tyr_sequent_parse" naming the byte position and what
 * was expected, e.g. "position 7: expected a formula, got ')'".  Returns 0
 * or the status. */
int tyr_sequent_parse_at(tyr_site s, const char *text, tyr_sequent *out);
#define tyr_sequent_parse(text, out) tyr_sequent_parse_at(TYR_SITE, (text), (out))
/* The same, with no error raised: 0, or -1 with the message in err. */
int tyr_sequent_parse_quiet(const char *text, tyr_sequent *out, char *err, int err_n);
/* Canonical text ("a, b |- c"); returns its length (at most n - 1). */
int tyr_sequent_print(const tyr_sequent *q, char *buf, int n);

/* The rules (the order in which tyr_sequent_prove tries them). */
typedef enum tyr_sequent_rule {
  TYR_RULE_AX,
  TYR_RULE_NOT_L,
  TYR_RULE_NOT_R,
  TYR_RULE_AND_L,
  TYR_RULE_OR_R,
  TYR_RULE_IMP_R,
  TYR_RULE_AND_R,
  TYR_RULE_OR_L,
  TYR_RULE_IMP_L,
  TYR_RULE_COUNT
} tyr_sequent_rule;
/* "ax", "notL", ... */
const char *tyr_sequent_rule_name(tyr_sequent_rule r);

typedef struct tyr_sequent_step {
  tyr_sequent_rule rule;
  int index; /* principal formula on its side (unused for ax) */
} tyr_sequent_step;
/* Step text: "ax" or "<rule> <index>", e.g. "impR 0". */
int tyr_sequent_step_print(tyr_sequent_step st, char *buf, int n);
/* Parses step text (leading and trailing blanks allowed); false with a
 * reason in err when it is not a step. */
bool tyr_sequent_step_parse(const char *text, tyr_sequent_step *out, char *err, int err_n);

/* Applies a step to goal q.  Returns the number of new goals (0 when ax
 * closes the goal, 1 or 2), written to out[0..], or -1 when the checker
 * rejects the step, with the reason in err (e.g. "andL 2: the left side
 * has 1 formula", "andL 0: 'a | b' is not a conjunction", "ax: no formula
 * is on both sides", or a result that would exceed the sequent's
 * capacity). */
int tyr_sequent_apply(const tyr_sequent *q, tyr_sequent_step st, tyr_sequent out[2], char *err,
                      int err_n);

/* The first applicable step in rule order (the complete prover's choice);
 * false when every formula is an atom and ax does not apply (the goal is
 * then refuted: an atom assignment falsifies it). */
bool tyr_sequent_first_step(const tyr_sequent *q, tyr_sequent_step *st);

/* A proof as a list of (goal, step) pairs in depth-first order. */
typedef struct tyr_sequent_proof {
  int n, cap;
  tyr_sequent *goals;
  tyr_sequent_step *steps;
  int *remaining; /* steps in the subtree rooted at each goal (itself included) */
} tyr_sequent_proof;
/* Proves q with the complete prover (at most max_steps steps).  Returns 1
 * when proved (proof, if not NULL, receives the steps), 0 when refuted,
 * -1 when max_steps ran out or memory ran out. */
int tyr_sequent_prove(const tyr_sequent *q, int max_steps, tyr_sequent_proof *proof);
void tyr_sequent_proof_free(tyr_sequent_proof *p);

/* Checks a proof given as (goal, step) pairs in depth-first order against
 * q: every step must be accepted and the goals must close.  0, or -1 with
 * the reason in err. */
int tyr_sequent_check_proof(const tyr_sequent *q, const tyr_sequent_step *steps, int n, char *err,
                            int err_n);

/* A random sequent: 0..2 hypotheses and one conclusion over the first
 * n_atoms letters, with about `size` connectives in all, from a counter
 * RNG state *rng (advanced).  Not necessarily provable. */
void tyr_sequent_random(uint64_t *rng, int n_atoms, int size, tyr_sequent *out);

/* Difficulty levels 1..TYR_SEQUENT_LEVELS by the complete prover's proof
 * length: 1: 1-3 steps, 2: 4-7, 3: 8-13, 4: 14-24.  0 for a proof outside
 * those, or for an unprovable sequent. */
#define TYR_SEQUENT_LEVELS 4
int tyr_sequent_level(int proof_steps);

#ifdef __cplusplus
}
#endif
#endif
