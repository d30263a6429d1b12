/* tyr/branching_flows.h - Branching Flows (Nordlinder et al., arXiv
 * 2511.09465; the Julia package BranchingFlows.jl): flow matching over
 * sequences whose elements split (insertions) and are deleted along the
 * path from t = 0 to t = 1, so that a model learns to generate sequences of
 * variable length: continuous points, discrete tokens, or both.
 *
 * The training side, for one target sequence x1:
 *   1. tyr_bf_pad_deletions   optional to-be-deleted copies (deletion_pad)
 *   2. tyr_bf_forest_sample   merges of adjacent same-group elements into a
 *                             forest (a binary tree per root), the number of
 *                             merges ~ Binomial(max merges, coalescence
 *                             factor), then split times top-down
 *   3. tyr_bf_bridge          the live segments at time t: each segment's
 *                             state x_t (bridged from its root's start
 *                             state), anchor, descendant count, deletion flag
 *   4. tyr_bf_batch_sample    1-3 for B targets packed to [B, max_len]
 *   5. tyr_bf_*_loss          the losses, tensors with autograd
 * The generating side: tyr_bf_step, one Euler step of a sequence given the
 * model's predictions (anchors, split intensities, deletion logits).
 *
 * Sources: src/branching/ (dist.c: branch-time distributions; rng.c:
 * Philox draws; forest.c; bridge.c; batch.c; loss.c; sampler.c).  Every
 * random number comes from the library's counter-based Philox generator
 * through a tyr_bf_rng stream, so one seed gives the same forests, bridges,
 * batches and samples on any thread count.  The small transformer the demos
 * train is tyr/models/branching_flows.h. */
#ifndef TYR_BRANCHING_FLOWS_H
#define TYR_BRANCHING_FLOWS_H
#include <stdbool.h>
#include <stdint.h>

#include "tyr/tensor.h"
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TYR_BF_MAX_DIM = 8 /* continuous dims of an element */ };

/* ---- branch-time distributions on [0, 1] (dist.c) --------------------------
 * Uniform(0, 1) or Beta(a, b), optionally truncated to [lo, hi] (0 <= lo <
 * hi <= 1; [0, 1] is no truncation).  CDF, survival and quantile are exact
 * (the Beta CDF is the regularized incomplete beta function by its
 * continued fraction; its quantile is found by bisection to 1e-14). */
typedef enum tyr_bf_dist_kind { TYR_BF_DIST_UNIFORM, TYR_BF_DIST_BETA } tyr_bf_dist_kind;
typedef struct tyr_bf_dist {
  tyr_bf_dist_kind kind;
  double a, b;   /* Beta's shape parameters, in [0.001, 1e6] */
  double lo, hi; /* the truncation */
} tyr_bf_dist;
tyr_bf_dist tyr_bf_uniform(void);
tyr_bf_dist tyr_bf_beta(double a, double b);
tyr_bf_dist tyr_bf_truncated(tyr_bf_dist d, double lo, double hi);
/* Raises naming `what` and the rule broken; 0 when d is valid. */
int tyr_bf_dist_check_at(tyr_site s, const tyr_bf_dist *d, const char *what);
double tyr_bf_dist_pdf(const tyr_bf_dist *d, double t);
double tyr_bf_dist_cdf(const tyr_bf_dist *d, double t);
double tyr_bf_dist_survival(const tyr_bf_dist *d, double t); /* 1 - cdf */
double tyr_bf_dist_quantile(const tyr_bf_dist *d, double p);
/* pdf / survival (0 where the survival is 0) */
double tyr_bf_dist_hazard(const tyr_bf_dist *d, double t);
/* "uniform", "beta:A,B", either followed by "@LO,HI" for a truncation ->
 * *out; false if the text is not that. */
bool tyr_bf_dist_parse(const char *text, tyr_bf_dist *out);

/* ---- random numbers (rng.c) ------------------------------------------------
 * A stream of Philox4x32 blocks: key seed, counters (stream << 32) + 0,
 * 1, ...  Streams are independent, so the work of batch element b can use
 * stream (step * B + b) on whichever thread runs it. */
typedef struct tyr_bf_rng {
  uint64_t seed, counter;
  uint32_t buf[4];
  int used; /* words of buf consumed (4: refill) */
} tyr_bf_rng;
void tyr_bf_rng_init(tyr_bf_rng *r, uint64_t seed, uint64_t stream);
uint32_t tyr_bf_rng_u32(tyr_bf_rng *r);
double tyr_bf_rng_uniform(tyr_bf_rng *r);           /* [0, 1), 53 bits */
double tyr_bf_rng_exponential(tyr_bf_rng *r);       /* Exp(1) */
double tyr_bf_rng_normal(tyr_bf_rng *r);            /* N(0, 1) */
int64_t tyr_bf_rng_below(tyr_bf_rng *r, int64_t n); /* uniform on 0..n-1 */
int64_t tyr_bf_rng_poisson(tyr_bf_rng *r, double mean);
int64_t tyr_bf_rng_binomial(tyr_bf_rng *r, int64_t n, double p);

/* ---- elements, targets, config --------------------------------------------- */
/* One element: dim continuous values and, when the config has a vocabulary,
 * a token in 0..vocab-1 (vocab itself is the mask, the discrete start). */
typedef struct tyr_bf_elem {
  float x[TYR_BF_MAX_DIM];
  int32_t tok;
} tyr_bf_elem;

/* A target sequence x1 of n elements (the arrays are the caller's).  NULL
 * masks mean: group 0 for all, all branchable, all flowable, none deleted.
 * branchable: may split and be deleted; flowable: its state flows (a
 * non-flowable element is fixed at its value from t = 0); deleted: to be
 * deleted before t = 1 (must be flowable and branchable). */
typedef struct tyr_bf_target {
  int64_t n;
  const tyr_bf_elem *elems;
  const int32_t *group;
  const uint8_t *branchable, *flowable, *deleted;
} tyr_bf_target;

/* A sequence that owns its arrays (a deletion-padded target). */
typedef struct tyr_bf_seq {
  int64_t n;
  tyr_bf_elem *elems;
  int32_t *group;
  uint8_t *branchable, *flowable, *deleted;
} tyr_bf_seq;
tyr_bf_target tyr_bf_seq_target(const tyr_bf_seq *q);
void tyr_bf_seq_free(tyr_bf_seq *q);

typedef enum tyr_bf_policy {
  TYR_BF_POLICY_UNIFORM,   /* uniform over adjacent same-group branchable pairs, a
                              group merging only while it has more than its minimum */
  TYR_BF_POLICY_BLOCK_MIN, /* the same, the minimum applying to each contiguous
                              branchable block */
  TYR_BF_POLICY_BALANCED   /* pair weight (w_a + w_b)^-alpha (w: leaf counts) */
} tyr_bf_policy;
bool tyr_bf_policy_parse(const char *name, tyr_bf_policy *out); /* uniform|block-min|balanced */

typedef enum tyr_bf_bridge_kind { TYR_BF_BRIDGE_LINEAR, TYR_BF_BRIDGE_BROWNIAN } tyr_bf_bridge_kind;
bool tyr_bf_bridge_kind_parse(const char *name, tyr_bf_bridge_kind *out); /* linear|brownian */

typedef struct tyr_bf_config {
  int dim;                 /* continuous dims, 0..TYR_BF_MAX_DIM */
  int vocab;               /* discrete tokens 0..vocab-1 (vocab is the mask); 0: no discrete part */
  tyr_bf_dist branch_time; /* split times */
  tyr_bf_dist deletion_time; /* deletion hazard */
  tyr_bf_policy policy;
  double alpha;              /* TYR_BF_POLICY_BALANCED's exponent (>= 0) */
  int64_t group_min;         /* minimum length of every group (>= 1) ... */
  const int64_t *group_mins; /* ... or per group id 0..n_group_mins-1 (NULL: group_min) */
  int n_group_mins;
  double coalescence_factor; /* Binomial's p in [0, 1] */
  double deletion_pad;       /* >= 0; 0: no deletion padding */
  tyr_bf_bridge_kind bridge; /* continuous bridge */
  double sigma;              /* Brownian bridge's noise scale */
  double x0_std;             /* continuous start states ~ N(0, x0_std^2) */
  int64_t max_len;           /* segments of a packed batch (and of a sample) */
  double snap_prob;          /* probability to move t to one of the forest's split times */
  int max_resample;          /* forests drawn before giving up on max_len */
  double split_scale;        /* sampler: multiplies the split intensity (1) */
} tyr_bf_config;
/* Uniform branch and deletion times, the uniform policy (alpha 1), group
 * minimum 1, coalescence factor 1, no deletion padding, linear bridge
 * (sigma 0.1), x0_std 1, max_len 64, snap_prob 0, 100 resamples. */
tyr_bf_config tyr_bf_config_default(int dim, int vocab);
/* Raises naming the field and the rule; 0 when valid. */
int tyr_bf_config_check_at(tyr_site s, const tyr_bf_config *c);
#define tyr_bf_config_check(c) tyr_bf_config_check_at(TYR_SITE, (c))
/* Checks a target against the config: masks that contradict (to-be-deleted
 * but not flowable or not branchable), tokens out of range, non-finite
 * values, a group shorter than its minimum, more elements than max_len.
 * The message names the element (or group) and the rule. */
int tyr_bf_target_check_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1);
#define tyr_bf_target_check(c, x1) tyr_bf_target_check_at(TYR_SITE, (c), (x1))

/* ---- deletion padding and forests (forest.c) ------------------------------- */
/* Per group g of length n_g: k ~ Poisson(deletion_pad * max(n_g, min_g) -
 * n_g) events (none when that is <= 0); each picks a flowable branchable
 * element of g uniformly and inserts a copy of it right before or after it
 * (even odds); one of the two is marked to-be-deleted (the original at most
 * once, its copies otherwise).  out gets a new sequence. */
int tyr_bf_pad_deletions_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1,
                            tyr_bf_rng *r, tyr_bf_seq *out);
#define tyr_bf_pad_deletions(c, x1, r, out) tyr_bf_pad_deletions_at(TYR_SITE, (c), (x1), (r), (out))

/* A forest node.  Leaves are the target's elements (left = right = -1,
 * weight 1, time 1, id = index + 1); a merged node has two children (left
 * before right in the sequence), weight = the sum of theirs, id 0, is
 * flowable, branchable and never deleted, and its data is the merger of its
 * children's: the leaf-count-weighted mean of the continuous values and,
 * for the token, the left or the right one with odds w_left : w_right.
 * time: when the node splits (internal nodes), in (parent's time, 1). */
typedef struct tyr_bf_node {
  tyr_bf_elem data;
  int32_t left, right;
  int64_t weight, id;
  int32_t group;
  uint8_t branchable, flowable, del;
  double time;
} tyr_bf_node;

typedef struct tyr_bf_forest {
  tyr_bf_node *nodes; /* leaves first (0..n_leaves-1), then merged nodes */
  int64_t n_nodes, n_leaves;
  int32_t *roots; /* in sequence order */
  int64_t n_roots;
  double *split_times; /* of the internal nodes, in the order they were drawn */
  int64_t n_splits;
  int64_t max_merges, merges; /* the policy's maximum; the number drawn and done */
} tyr_bf_forest;

/* Samples a forest over x1 (checked with tyr_bf_target_check): the number
 * of merges ~ Binomial(max merges, coalescence_factor), each merge of a
 * pair the policy picks (stopping early when no pair is allowed), then the
 * split times top-down from t = 0: a node with W leaves below a parent that
 * split at t0 splits at Q(1 - S(t0) exp(-E / (W - 1))), E ~ Exp(1), S and Q
 * the branch-time distribution's survival and quantile. */
int tyr_bf_forest_sample_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1,
                            tyr_bf_rng *r, tyr_bf_forest *out);
#define tyr_bf_forest_sample(c, x1, r, out) tyr_bf_forest_sample_at(TYR_SITE, (c), (x1), (r), (out))
void tyr_bf_forest_free(tyr_bf_forest *f);
/* One split time: Q(1 - S(t0) exp(-E / (W - 1))) clamped to [t0, 1]
 * (W >= 2, t0 in [0, 1)). */
double tyr_bf_split_time(const tyr_bf_dist *d, int64_t W, double t0, tyr_bf_rng *r);
/* The policy's maximum number of merges over nodes of a sequence (the
 * adjacent same-group branchable pairs). */
int64_t tyr_bf_max_merges(const tyr_bf_target *x1);

/* ---- bridges (bridge.c) ---------------------------------------------------- */
/* One live segment at time t. */
typedef struct tyr_bf_segment {
  tyr_bf_elem xt, anchor; /* the state at t, the node's data ahead */
  int64_t descendants;    /* leaves below (the split target is descendants - 1) */
  double last_coal;       /* the split (coalescence) time behind the segment, 0 at a root */
  int64_t id;             /* the leaf's id, 0 for merged nodes */
  int32_t group;
  uint8_t del, branchable, flowable;
} tyr_bf_segment;

/* The start state of a root: continuous values ~ N(0, x0_std^2), the token
 * the mask (vocab). */
void tyr_bf_start_state(const tyr_bf_config *c, tyr_bf_rng *r, tyr_bf_elem *x0);
/* The bridge from state xs at time s toward anchor (reached at t = 1),
 * evaluated at time t (s <= t <= 1):
 *   linear    x_t = xs + (t - s) / (1 - s) (anchor - xs)
 *   brownian  the same plus sigma sqrt((t - s)(1 - t) / (1 - s)) N(0, 1)
 *   masking   the token becomes the anchor's with probability (t - s) / (1 - s)
 * (at t = 1 exactly the anchor; at t = s exactly xs). */
void tyr_bf_bridge_elem(const tyr_bf_config *c, const tyr_bf_elem *xs, const tyr_bf_elem *anchor,
                        double s, double t, tyr_bf_rng *r, tyr_bf_elem *out);
/* The segments alive at time t in sequence order: a start state per root,
 * bridged down the tree to each node's split time, the node crossing t
 * bridged to t; a to-be-deleted leaf survives from its parent's time t0 to
 * t with probability S_del(t) / S_del(t0); non-flowable leaves are their
 * own data.  seg has room for f->n_leaves segments; returns how many. */
int64_t tyr_bf_bridge(const tyr_bf_config *c, const tyr_bf_forest *f, double t, tyr_bf_rng *r,
                      tyr_bf_segment *seg);

/* ---- batches (batch.c) ----------------------------------------------------- */
/* B bridged targets packed to [B, L] (L = max_len), row-major; padding
 * cells have every mask 0, the mask token and zeros. */
typedef struct tyr_bf_batch {
  int64_t B, L, dim;
  float *t;      /* [B] the time used (after snapping) */
  int64_t *len;  /* [B] live segments */
  float *xt;     /* [B, L, dim] */
  int64_t *tok;  /* [B, L] */
  float *anchor; /* [B, L, dim] */
  int64_t *anchor_tok;
  float *split_target;                    /* [B, L] descendants - 1 */
  float *del;                             /* [B, L] 1: the segment is to be deleted */
  float *padmask, *flowmask, *branchmask; /* [B, L] 1/0 */
  float *last_coal;                       /* [B, L] */
  int32_t *group;                         /* [B, L] */
} tyr_bf_batch;
/* For each b (independently, in parallel, each with its own stream
 * step * B + b of seed): t = times[b] (times NULL: U(0, 1)), pad
 * deletions, sample a forest (again, up to max_resample times, while the
 * segments at t could exceed max_len), snap t to one of its split times
 * with probability snap_prob, bridge, pack.  The targets are checked first;
 * an error names the batch element. */
int tyr_bf_batch_sample_at(tyr_site s, const tyr_bf_config *c, const tyr_bf_target *x1, int64_t B,
                           const double *times, uint64_t seed, uint64_t step, tyr_bf_batch *out);
#define tyr_bf_batch_sample(c, x1, B, times, seed, step, out)                                      \
  tyr_bf_batch_sample_at(TYR_SITE, (c), (x1), (B), (times), (seed), (step), (out))
void tyr_bf_batch_free(tyr_bf_batch *b);

/* ---- losses (loss.c) -------------------------------------------------------
 * Tensors with autograd; masks are float [B, L] of 1/0 of the predictions'
 * dtype; each loss is a masked mean (0 when the mask is empty). */
/* sum(mask (mu - c log mu - (c - c log c))) / sum(mask), mu = exp(clamp(
 * logits, -100, 11)), c the split targets (the Bregman divergence of
 * Poisson's, 0 when mu = c; c log c is 0 at c = 0).  logits, c [B, L]. */
tyr_tensor *tyr_bf_split_loss_at(tyr_site s, tyr_tensor *logits, tyr_tensor *c, tyr_tensor *mask);
/* sum(mask bce_with_logits(logits, del)) / sum(mask); [B, L]. */
tyr_tensor *tyr_bf_deletion_loss_at(tyr_site s, tyr_tensor *logits, tyr_tensor *del,
                                    tyr_tensor *mask);
/* sum(mask[b, i] sum_d (pred - anchor)^2) / (dim sum(mask)); pred, anchor
 * [B, L, dim]. */
tyr_tensor *tyr_bf_mse_loss_at(tyr_site s, tyr_tensor *pred, tyr_tensor *anchor, tyr_tensor *mask);
/* sum(mask[b, i] -log softmax(logits[b, i])[anchor[b, i]]) / sum(mask);
 * logits [B, L, V], anchor [B, L] i64 in 0..V (V, the mask token, is
 * skipped, as padding cells hold it). */
tyr_tensor *tyr_bf_ce_loss_at(tyr_site s, tyr_tensor *logits, tyr_tensor *anchor, tyr_tensor *mask);
#define tyr_bf_split_loss_e(l, c, m) tyr_bf_split_loss_at(TYR_SITE, (l), (c), (m))
#define tyr_bf_deletion_loss_e(l, d, m) tyr_bf_deletion_loss_at(TYR_SITE, (l), (d), (m))
#define tyr_bf_mse_loss_e(p, a, m) tyr_bf_mse_loss_at(TYR_SITE, (p), (a), (m))
#define tyr_bf_ce_loss_e(l, a, m) tyr_bf_ce_loss_at(TYR_SITE, (l), (a), (m))

/* Typed forms: tyr_bf_split_loss(logits, c, mask) and
 * tyr_bf_deletion_loss(logits, del, mask) take three handles of one shape,
 * tyr_bf_mse_loss(pred, anchor, mask) pred and anchor of one shape [B, L,
 * D] and mask [B, L], tyr_bf_ce_loss(logits, anchor, mask) logits [B, L, V]
 * and anchor, mask [B, L]; each returns a tyr_T0.  A broken rule on
 * constant dims fails the build with the op's message; on run-time dims
 * it stops at the call naming both shapes. */
#define tyr__ct_bf_split_loss_msg                                                                  \
  "tyr_bf_split_loss: logits, split targets and mask must have one shape"
TYR_CT_ERROR(tyr__ct_bf_split_loss, tyr__ct_bf_split_loss_msg);
#define tyr__ct_bf_deletion_loss_msg                                                               \
  "tyr_bf_deletion_loss: logits, deletion targets and mask must have one shape"
TYR_CT_ERROR(tyr__ct_bf_deletion_loss, tyr__ct_bf_deletion_loss_msg);
#define tyr__ct_bf_mse_loss_msg                                                                    \
  "tyr_bf_mse_loss: pred and anchor must be one [B, L, D] shape and mask [B, L]"
TYR_CT_ERROR(tyr__ct_bf_mse_loss, tyr__ct_bf_mse_loss_msg);
#define tyr__ct_bf_ce_loss_msg                                                                     \
  "tyr_bf_ce_loss: logits must be [B, L, V] and anchor tokens and mask [B, L]"
TYR_CT_ERROR(tyr__ct_bf_ce_loss, tyr__ct_bf_ce_loss_msg);

/* the three handles' tensors (claimed) and the scalar result */
#define TYR__BF_LOSS3(name, na, nb, a, b, m)                                                       \
  ({                                                                                               \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_bf_" #name, na, a);                              \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_bf_" #name, nb, b) : NULL;             \
    tyr_tensor *tyr__em = tyr__eb ? TYR__CLAIM(tyr__s, "tyr_bf_" #name, "mask", m) : NULL;         \
    (tyr_T0)(tyr__em ? tyr_result_at(tyr__s, "tyr_bf_" #name,                                      \
                                     tyr_bf_##name##_at(tyr__s, tyr__ea, tyr__eb, tyr__em))        \
                     : NULL);                                                                      \
  })
#define TYR__BF_SAME3(name, na, nb, a, b, m)                                                       \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    __auto_type tyr__m = (m);                                                                      \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, tyr__ct_bf_##name);                                        \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__m, tyr__ct_bf_##name);                                        \
    TYR__BF_LOSS3(name, na, nb, tyr__a, tyr__b, tyr__m);                                           \
  })
#define tyr_bf_split_loss(logits, c, mask)                                                         \
  TYR__BF_SAME3(split_loss, "logits", "split targets", logits, c, mask)
#define tyr_bf_deletion_loss(logits, del, mask)                                                    \
  TYR__BF_SAME3(deletion_loss, "logits", "deletion targets", logits, del, mask)
#define tyr_bf_mse_loss(pred, anchor, mask)                                                        \
  ({                                                                                               \
    __auto_type tyr__a = (pred);                                                                   \
    __auto_type tyr__b = (anchor);                                                                 \
    __auto_type tyr__m = (mask);                                                                   \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, tyr__ct_bf_mse_loss);                                      \
    TYR_RULE(tyr_rank(tyr__a) == 3 && tyr_rank(tyr__m) == 2, tyr__ct_bf_mse_loss);                 \
    TYR_RULE(TYR__D0(tyr__a) == TYR__D0(tyr__m), tyr__ct_bf_mse_loss);                             \
    TYR_RULE(TYR__D1(tyr__a) == TYR__D1(tyr__m), tyr__ct_bf_mse_loss);                             \
    TYR__BF_LOSS3(mse_loss, "pred", "anchor", tyr__a, tyr__b, tyr__m);                             \
  })
#define tyr_bf_ce_loss(logits, anchor, mask)                                                       \
  ({                                                                                               \
    __auto_type tyr__a = (logits);                                                                 \
    __auto_type tyr__b = (anchor);                                                                 \
    __auto_type tyr__m = (mask);                                                                   \
    TYR_RULE_SAME_SHAPE(tyr__b, tyr__m, tyr__ct_bf_ce_loss);                                       \
    TYR_RULE(tyr_rank(tyr__a) == 3 && tyr_rank(tyr__m) == 2, tyr__ct_bf_ce_loss);                  \
    TYR_RULE(TYR__D0(tyr__a) == TYR__D0(tyr__m), tyr__ct_bf_ce_loss);                              \
    TYR_RULE(TYR__D1(tyr__a) == TYR__D1(tyr__m), tyr__ct_bf_ce_loss);                              \
    TYR__BF_LOSS3(ce_loss, "logits", "anchor tokens", tyr__a, tyr__b, tyr__m);                     \
  })

/* ---- the sampler (sampler.c) ----------------------------------------------- */
/* A sequence being generated (owns its arrays; grows as elements split). */
typedef struct tyr_bf_state {
  int64_t n, cap;
  tyr_bf_elem *e;
  int32_t *group;
  uint8_t *branchable, *flowable;
} tyr_bf_state;
/* n elements in group 0, branchable and flowable, at their start states. */
int tyr_bf_state_init_at(tyr_site s, const tyr_bf_config *c, tyr_bf_state *st, int64_t n,
                         tyr_bf_rng *r);
void tyr_bf_state_free(tyr_bf_state *st);

/* What the model predicted for each of st->n elements (row-major). */
typedef struct tyr_bf_prediction {
  const float *x;      /* [n, dim] anchors (dim > 0) */
  const float *logits; /* [n, vocab] token logits (vocab > 0) */
  const float *split;  /* [n] split logits: the intensity is exp(clamp(., -100, 11)) */
  const float *del;    /* [n] deletion logits */
} tyr_bf_prediction;
/* One Euler step from t to t + dt (0 <= t < t + dt <= 1), in this order per
 * element: the continuous values move toward the predicted anchor (linear:
 * x += (x1 - x) dt / (1 - t); brownian adds sigma sqrt(dt) N(0, 1)); the
 * token jumps with probability min(1, dt / (1 - t)) to a draw from
 * softmax(logits); splits ~ Poisson(dt split_scale mu h(t)), h the
 * branch-time hazard; deleted with probability sigmoid(del) (1 -
 * exp(-h_del(t) dt)).  Non-branchable elements neither split nor are
 * deleted; a deleted element or one whose token just changed does not
 * split.  Copies are inserted right after their parent; splits that would
 * make the sequence longer than max_len are dropped.  Returns 0 or the
 * error status. */
int tyr_bf_step_at(tyr_site s, const tyr_bf_config *c, tyr_bf_state *st, const tyr_bf_prediction *p,
                   double t, double dt, tyr_bf_rng *r);
#define tyr_bf_step(c, st, p, t, dt, r) tyr_bf_step_at(TYR_SITE, (c), (st), (p), (t), (dt), (r))

#ifdef __cplusplus
}
#endif
#endif
