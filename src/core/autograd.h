/* The tape: each op whose inputs need gradients records a node on its
 * output.  Backward walks the nodes in reverse topological order. */
#ifndef TYR_CORE_AUTOGRAD_H
#define TYR_CORE_AUTOGRAD_H
#include "tyr/tensor.h"

#define TYR_NODE_MAX_IN 6
#define TYR_NODE_MAX_SAVED 4

typedef struct tyr_node tyr_node;
/* Computes the gradient of each input i with needs[i] true into gin[i]
 * (a tensor of the input's shape, or NULL for "zero").  Runs with grad mode
 * off inside a scope: results are ordinary temporaries. */
typedef void (*tyr_backward_fn)(tyr_node *n, tyr_tensor *gout, tyr_tensor **gin);

struct tyr_node {
  const char *op;
  tyr_site site;
  tyr_backward_fn backward; /* NULL: not differentiable */
  int nin;
  tyr_tensor *in[TYR_NODE_MAX_IN];       /* retained; NULL allowed */
  tyr_tensor *saved[TYR_NODE_MAX_SAVED]; /* retained extra tensors */
  tyr_tensor *out;                       /* weak: the node lives inside out */
  double f[4];
  int64_t i[8];
  int64_t shape[TYR_MAX_RANK]; /* an extra shape (e.g. the input's, for views) */
  int rank;
  int64_t mark[2];  /* traversal marks */
  unsigned added;   /* inputs whose gradient the backward added into their gradacc itself
                       (tyr__grad_accumulator) */
  int64_t pending;  /* during a backward: consumers of out whose gradient is still to come */
  int cast_dt;      /* 1 + the dtype this node's backward converts out's gradient to, 0: none
                       (tyr__node_converts_grad) */
  tyr_tensor *cast; /* that conversion, made ahead by a consumer's backward (retained) */
};

/* True when grad mode is on and any non-NULL input requires grad. */
bool tyr__needs_grad(int n, tyr_tensor *const *in);
/* Records a node on out (which then requires grad) with the given inputs,
 * and returns it so the op can save what its backward needs; returns NULL
 * when no input needs a gradient. */
tyr_node *tyr__record(tyr_site s, const char *op, tyr_tensor *out, tyr_backward_fn bw, int nin,
                      tyr_tensor *const *in);
#define TYR_RECORD(site, op, out, bw, ...)                                                         \
  tyr__record((site), (op), (out), (bw),                                                           \
              sizeof((tyr_tensor *[]){__VA_ARGS__}) / sizeof(tyr_tensor *),                        \
              (tyr_tensor *[]){__VA_ARGS__})
/* Saves t (retained) in slot k. */
void tyr__node_save(tyr_node *n, int k, tyr_tensor *t);
/* True when input k of n needs its gradient. */
static inline bool tyr__node_needs(const tyr_node *n, int k) {
  return n->in[k] && n->in[k]->requires_grad;
}
/* For the backward of n, while it runs: the gradient that input k (a
 * non-leaf) has gathered so far from its other consumers, when the backward
 * may add its own contribution into it in place, in one kernel with
 * computing it (a norm's input gradient added to the residual stream's):
 * held by nothing else, contiguous and of the input's dtype.  NULL when
 * there is none; the backward then returns its gradient in gin[k] as usual.
 * A backward that adds into it calls tyr__grad_added(n, k) and leaves
 * gin[k] NULL. */
tyr_tensor *tyr__grad_accumulator(tyr_node *n, int k);
void tyr__grad_added(tyr_node *n, int k);
/* Conversions of a finished gradient made by the kernel that finishes it.
 * At record time a node whose backward converts its output's gradient to
 * dt for an input (tyr_residual_add: the f32 stream's gradient to a bf16
 * branch output) says so with tyr__node_converts_grad.  During the backward
 * of a consumer n: tyr__grad_cast_wanted(n, k) is that dtype when input k
 * has such a producer and n's contribution to its gradient is the last one
 * (the other consumers' are in), else -1.  A backward that adds into
 * tyr__grad_accumulator(n, k) and writes the sum in that dtype too (the
 * norms) hands the copy over with tyr__grad_cast_set, and the producer's
 * backward takes it with tyr__grad_cast_take (NULL: convert as usual). */
void tyr__node_converts_grad(tyr_node *n, tyr_dtype dt);
int tyr__grad_cast_wanted(tyr_node *n, int k);
void tyr__grad_cast_set(tyr_node *n, int k, tyr_tensor *t);
tyr_tensor *tyr__grad_cast_take(tyr_node *n);
/* Off: tyr__grad_cast_wanted is always -1 (the tests compare both ways). */
extern bool tyr__grad_cast_handover;
/* A hook called during backward as soon as a leaf's gradient is final
 * (every node that feeds it has run), with the leaf; leaves whose last
 * consumer was skipped (no gradient reached it) are reported when backward
 * ends.  Data parallel starts its bucket reductions from here.  One hook
 * at a time (NULL removes it); grad mode is off while it runs. */
typedef void (*tyr__leaf_hook_fn)(tyr_tensor *leaf, void *ctx);
void tyr__autograd_set_leaf_hook(tyr__leaf_hook_fn fn, void *ctx);
#endif
