/* tyr/models/proof_search.h - proof search over sequents
 * (tyr/models/sequent.h) guided by a policy that proposes steps as text
 * with log-probabilities and a value that estimates how likely a goal is
 * to be proved (NanoProof's two heads, or any other function).
 *
 * The search tree has OR nodes (goals: one proof of any child suffices)
 * and AND nodes (a step applied to a goal: every goal it yields must be
 * proved).  Each iteration walks from the root: at a goal it takes the
 * step maximising  Q + c_puct * prior * sqrt(N + 1) / (1 + n)  (PUCT; Q the
 * step's value, prior the policy's probability renormalised over the
 * distinct steps proposed, N and n visit counts), at a step the unproved
 * goal of lowest value; the first unexpanded goal reached is expanded with
 * one policy call (samples candidates and the value in one batch).  A
 * goal's value is 1 when proved, 0 when failed, the value estimate before
 * expansion, and discount times its best step's value after; a step's
 * value is the product of its goals'.  The budget counts policy calls.
 *
 * Steps the checker rejects are reported through on_reject and skipped;
 * the search goes on.  tyr_proof_sample is the baseline: one sampled step
 * per goal, depth first, restarting from the root after a failure, with
 * the same budget in policy calls. */
#ifndef TYR_MODELS_PROOF_SEARCH_H
#define TYR_MODELS_PROOF_SEARCH_H
#include <stdint.h>
#include <stdio.h>

#include "tyr/models/sequent.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_PROOF_STEP_MAX 48

typedef struct tyr_proof_candidate {
  char text[TYR_PROOF_STEP_MAX]; /* a step as text ("andL 0"), checked by the search */
  double logp;                   /* its log-probability under the policy */
} tyr_proof_candidate;

/* One policy call: up to k candidate steps for goal (out[0..k)), and the
 * goal's value in [0, 1] in *value.  Returns the number of candidates, or
 * a negative value to abort the search. */
typedef int (*tyr_proof_policy_fn)(void *ctx, const tyr_sequent *goal, int k,
                                   tyr_proof_candidate *out, double *value);
typedef void (*tyr_proof_reject_fn)(void *ctx, const tyr_sequent *goal, const char *step,
                                    const char *why);

typedef struct tyr_proof_search_config {
  int64_t budget;                /* policy calls (expansions) */
  int samples;                   /* candidates asked per call (search); the baseline asks 1 */
  double c_puct;                 /* exploration constant */
  double discount;               /* value discount per step */
  int max_depth;                 /* goals deeper than this fail */
  tyr_proof_reject_fn on_reject; /* may be NULL */
  void *reject_ctx;
} tyr_proof_search_config;
/* budget 64, samples 8, c_puct 1.0, discount 0.99, max_depth 48 */
tyr_proof_search_config tyr_proof_search_defaults(void);

typedef struct tyr_proof_result {
  bool proved;
  int64_t calls;    /* policy calls made */
  int64_t rejected; /* candidates the checker rejected (or that did not parse) */
  int64_t nodes;    /* goals in the tree */
  int n;            /* the proof: n (goal, step, depth) triples, depth first */
  tyr_sequent *goals;
  tyr_sequent_step *steps;
  int *depth;
  /* Search outcomes (tyr_proof_search only): one label per goal the search
   * expanded, root first.  label_steps[i] is the number of steps of the
   * proof the search found below label_goals[i] (1 when a single step
   * closes it), or 0 when the goal was refuted, failed or still open when
   * the budget ran out: a value target is discount^(steps - 1), or 0. */
  int n_labels;
  tyr_sequent *label_goals;
  int *label_steps;
} tyr_proof_result;

/* 0, or -1 when the policy aborted or memory ran out (out is then freed). */
int tyr_proof_search(const tyr_sequent *root, const tyr_proof_search_config *cfg,
                     tyr_proof_policy_fn policy, void *ctx, tyr_proof_result *out);
int tyr_proof_sample(const tyr_sequent *root, const tyr_proof_search_config *cfg,
                     tyr_proof_policy_fn policy, void *ctx, tyr_proof_result *out);
void tyr_proof_result_free(tyr_proof_result *r);
/* The value target of label i: discount^(label_steps[i] - 1), or 0. */
double tyr_proof_result_label(const tyr_proof_result *r, int i, double discount);
/* The proof as an indented tree: one line per goal, "goal   [step]". */
void tyr_proof_result_print(FILE *f, const tyr_proof_result *r);

#ifdef __cplusplus
}
#endif
#endif
