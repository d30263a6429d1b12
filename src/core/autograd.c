/* Reverse-mode autograd over the tape recorded by the ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/internal.h"
#include "core/profile.h"
#include "tyr/autograd.h"
#include "tyr/debug.h"

static _Thread_local bool g_no_grad; /* inverted so the default (false) means enabled */

bool tyr_grad_enabled(void) {
  return !g_no_grad;
}
bool tyr_set_grad_enabled(bool on) {
  bool prev = !g_no_grad;
  g_no_grad = !on;
  return prev;
}

bool tyr__needs_grad(int n, tyr_tensor *const *in) {
  if (g_no_grad) return false;
  for (int i = 0; i < n; i++)
    if (in[i] && in[i]->requires_grad) return true;
  return false;
}

tyr_node *tyr__record(tyr_site s, const char *op, tyr_tensor *out, tyr_backward_fn bw, int nin,
                      tyr_tensor *const *in) {
  if (!out || !tyr__needs_grad(nin, in)) return NULL;
  tyr_node *n = tyr__rc_alloc(TYR_RC_NODE, sizeof *n);
  if (n) memset(n, 0, sizeof *n);
  if (!n) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory recording the graph");
    return NULL;
  }
  n->op = op;
  n->site = s;
  n->backward = bw;
  n->nin = nin;
  for (int i = 0; i < nin; i++) n->in[i] = tyr_tensor_retain(in[i]);
  n->out = out;
  out->grad_fn = n;
  out->requires_grad = true;
  return n;
}

void tyr__node_save(tyr_node *n, int k, tyr_tensor *t) {
  if (!n) return;
  tyr_tensor_release(n->saved[k]);
  n->saved[k] = tyr_tensor_retain(t);
}

static void node_free(tyr_node *n) {
  if (!n) return;
  tyr_tensor_release(n->cast);
  for (int i = 0; i < n->nin; i++) tyr_tensor_release(n->in[i]);
  for (int i = 0; i < TYR_NODE_MAX_SAVED; i++) tyr_tensor_release(n->saved[i]);
  tyr__rc_free(TYR_RC_NODE, n);
}

void tyr__autograd_release(tyr_tensor *t) {
  tyr_tensor *g = t->grad, *ga = t->gradacc;
  tyr_node *n = t->grad_fn;
  t->grad = t->gradacc = NULL;
  t->grad_fn = NULL;
  tyr_tensor_free(g);
  tyr_tensor_release(ga);
  node_free(n);
}

tyr_tensor *tyr_requires_grad_at(tyr_site s, tyr_tensor *t, bool on) {
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_requires_grad", "tensor is NULL");
    return NULL;
  }
  if (on && !tyr_dtype_is_float(t->dtype)) {
    tyr_raise(TYR_ERR_DTYPE, s, "tyr_requires_grad",
              "only floating tensors can require grad, not %s", tyr_dtype_name(t->dtype));
    return NULL;
  }
  if (on && t->grad_fn) {
    tyr_raise(TYR_ERR_AUTOGRAD, s, "tyr_requires_grad",
              "only leaf tensors can be marked; this one was made by %s", t->grad_fn->op);
    return NULL;
  }
  t->requires_grad = on;
  return t;
}

tyr_tensor *tyr_grad_e(const tyr_tensor *t) {
  return t ? t->grad : NULL;
}

void tyr_zero_grad_e(tyr_tensor *t) {
  if (!t) return;
  tyr_tensor_free(t->grad);
  t->grad = NULL;
}

/* A contiguous copy of g with dtype dt that belongs to the caller. */
static tyr_tensor *owned_copy(tyr_site s, const tyr_tensor *g, tyr_dtype dt) {
  tyr_tensor *c = tyr_empty_at(s, dt, g->device, g->rank, g->shape);
  if (!c) return NULL;
  tyr_keep_e(c);
  tyr_backend_lookup(g->device)->copy(c, g);
  return c;
}

/* Whether the gradient being accumulated for a tensor is held by nothing
   else: no other reference to it (a node's backward may hand one gradient
   to several inputs), no view of its storage, contiguous.  The sum then
   goes into it in place instead of into a copy (in a GPT's backward each
   residual-stream gradient is such a sum: a copy of the stream's size less
   per block and norm). */
static bool sole_holder(const tyr_tensor *t) {
  return t->refcount == 1 && t->storage && t->storage->refcount == 1 && !t->storage->borrowed &&
         tyr_is_contiguous(t);
}

/* Whether dst += g is one kernel with g as it is although the dtypes
   differ: an f32 dst and a 16-bit g (a weight's gradient from a
   mixed-precision matmul) on a GPU, which widens g as it reads it; the
   CPU's kernels take one dtype. */
static bool widens(const tyr_tensor *dst, const tyr_tensor *g) {
  return dst->device.type != TYR_CPU && dst->dtype == TYR_F32 &&
         (g->dtype == TYR_BF16 || g->dtype == TYR_F16);
}

/* Whether gin[k] can become a leaf's .grad as it is: of the leaf's dtype,
   held by nothing but this backward step (sole_holder) and handed to no
   other input of the node (an add's backward gives its gradient to both
   inputs: were the leaf's .grad the tensor another input's node still has
   to read, a later contribution added into the .grad in place would change
   what that node reads).  Then no later reference to it can appear, and a
   later contribution may be added into it in place.  Every parameter's
   gradient in an f32 model, and the f32 weight gradients the
   mixed-precision linear layers write (tyr__linear_param_grads), go this
   way: a copy kernel per parameter less in each backward. */
static bool adoptable(tyr_tensor *const *gin, int nin, int k, tyr_dtype dt) {
  if (gin[k]->dtype != dt || !sole_holder(gin[k])) return false;
  for (int j = 0; j < nin; j++)
    if (j != k && gin[j] && gin[j]->storage == gin[k]->storage) return false;
  return true;
}

/* dst += g, dst contiguous and owned; g converted first unless widens */
static void accumulate_into(tyr_tensor *dst, const tyr_tensor *g) {
  const tyr_backend *be = tyr_backend_lookup(dst->device);
  if (g->dtype == dst->dtype || widens(dst, g)) {
    be->binary(TYR_BIN_ADD, dst, dst, g);
  } else {
    tyr_tensor *c = owned_copy((tyr_site){0}, g, dst->dtype);
    be->binary(TYR_BIN_ADD, dst, dst, c);
    tyr_tensor_free(c);
  }
}

tyr_tensor *tyr__grad_accumulator(tyr_node *n, int k) {
  tyr_tensor *x = n->in[k];
  if (!x || !x->requires_grad || !x->grad_fn || !x->gradacc) return NULL;
  tyr_tensor *acc = x->gradacc;
  return sole_holder(acc) && acc->dtype == x->dtype ? acc : NULL;
}

void tyr__grad_added(tyr_node *n, int k) {
  n->added |= 1u << k;
}

void tyr__node_converts_grad(tyr_node *n, tyr_dtype dt) {
  if (n) n->cast_dt = 1 + (int)dt;
}

bool tyr__grad_cast_handover = true;

int tyr__grad_cast_wanted(tyr_node *n, int k) {
  if (!tyr__grad_cast_handover) return -1;
  tyr_tensor *x = n->in[k];
  tyr_node *p = x && x->requires_grad ? x->grad_fn : NULL;
  return p && p->cast_dt && p->pending == 1 && !p->cast ? p->cast_dt - 1 : -1;
}

void tyr__grad_cast_set(tyr_node *n, int k, tyr_tensor *t) {
  tyr_node *p = n->in[k]->grad_fn;
  tyr_tensor_release(p->cast);
  p->cast = tyr_tensor_retain(t);
}

tyr_tensor *tyr__grad_cast_take(tyr_node *n) {
  tyr_tensor *t = n->cast;
  n->cast = NULL;
  if (t) tyr__scope_track(t); /* the node's reference goes to the backward's scope */
  return t;
}

typedef struct {
  tyr_tensor **v;
  int64_t n, cap;
} tvec;

static bool tvec_push(tvec *a, tyr_tensor *t) {
  if (a->n == a->cap) {
    int64_t cap = a->cap ? a->cap * 2 : 64;
    tyr_tensor **p = realloc(a->v, (size_t)cap * sizeof *p);
    if (!p) return false;
    a->v = p;
    a->cap = cap;
  }
  a->v[a->n++] = t;
  return true;
}

/* Post-order of the graph below root: an iterative DFS that marks nodes
 * with a generation number (entered in mark[0], emitted in mark[1]). */
static bool topo_sort(tyr_tensor *root, tvec *order) {
  tvec stack = {0};
  bool ok = true;
  static _Thread_local int64_t gen;
  gen++;
  ok = tvec_push(&stack, root);
  while (ok && stack.n) {
    tyr_tensor *t = stack.v[stack.n - 1];
    tyr_node *n = t->grad_fn;
    if (!n) { /* leaf */
      stack.n--;
      continue;
    }
    if (n->mark[0] == gen) { /* children done */
      stack.n--;
      if (n->mark[1] != gen) {
        n->mark[1] = gen;
        ok = tvec_push(order, t);
      }
      continue;
    }
    n->mark[0] = gen;
    for (int k = 0; k < n->nin && ok; k++) {
      tyr_tensor *c = n->in[k];
      if (c && c->requires_grad && c->grad_fn && c->grad_fn->mark[0] != gen)
        ok = tvec_push(&stack, c);
    }
  }
  free(stack.v);
  return ok;
}

/* ---- the leaf hook: a count of pending consumers per leaf ---------------- */
static tyr__leaf_hook_fn g_leaf_hook;
static void *g_leaf_ctx;

void tyr__autograd_set_leaf_hook(tyr__leaf_hook_fn fn, void *ctx) {
  g_leaf_hook = fn;
  g_leaf_ctx = ctx;
}

typedef struct {
  tyr_tensor **key;
  int64_t *count;
  int64_t cap; /* a power of two */
} leafmap;

static int64_t *leafmap_slot(leafmap *m, tyr_tensor *t) {
  uint64_t h = ((uint64_t)(uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ull;
  for (int64_t i = (int64_t)(h & (uint64_t)(m->cap - 1));; i = (i + 1) & (m->cap - 1)) {
    if (m->key[i] == t) return &m->count[i];
    if (!m->key[i]) {
      m->key[i] = t;
      m->count[i] = 0;
      return &m->count[i];
    }
  }
}

/* Counts, for every leaf that requires grad, the node inputs it appears in. */
static bool leafmap_build(leafmap *m, const tvec *order) {
  int64_t n = 0;
  for (int64_t i = 0; i < order->n; i++) n += order->v[i]->grad_fn->nin;
  m->cap = 16;
  while (m->cap < 2 * n + 16) m->cap *= 2;
  m->key = calloc((size_t)m->cap, sizeof *m->key);
  m->count = calloc((size_t)m->cap, sizeof *m->count);
  if (!m->key || !m->count) return false;
  for (int64_t i = 0; i < order->n; i++) {
    tyr_node *nd = order->v[i]->grad_fn;
    for (int k = 0; k < nd->nin; k++) {
      tyr_tensor *x = nd->in[k];
      if (x && x->requires_grad && !x->grad_fn) (*leafmap_slot(m, x))++;
    }
  }
  return true;
}

static void leafmap_free(leafmap *m) {
  free(m->key);
  free(m->count);
}

static int run_backward(tyr_site s, tyr_tensor *root, tyr_tensor *seed) {
  const char *op = "tyr_backward";
  tvec order = {0};
  if (!topo_sort(root, &order)) {
    free(order.v);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  /* check differentiability first, so that nothing is half-done */
  for (int64_t i = 0; i < order.n; i++) {
    tyr_node *n = order.v[i]->grad_fn;
    for (int k = 0; k < n->nin; k++) { /* an input whose own graph a backward freed */
      tyr_tensor *x = n->in[k];
      if (x && x->requires_grad && !x->grad_fn && x->graph_freed) {
        free(order.v);
        char made[600];
        snprintf(made, sizeof made, "%s:%d", x->site.file ? x->site.file : "?", x->site.line);
        return tyr_raise(TYR_ERR_AUTOGRAD, s, op,
                         "trying to backward through a graph a second time: input %d of %s "
                         "(called at %s:%d), made at %s, had its graph freed by an earlier "
                         "backward (compute it again)",
                         k, n->op, n->site.file ? n->site.file : "?", n->site.line, made);
      }
    }
    if (!n->backward) {
      free(order.v);
      return tyr_raise(
          TYR_ERR_AUTOGRAD, s, op,
          "%s (called at %s:%d) is not differentiable, but its result needs a gradient", n->op,
          n->site.file ? n->site.file : "?", n->site.line);
    }
  }
  /* consumers of each non-leaf whose gradient is still to come */
  for (int64_t i = 0; i < order.n; i++) order.v[i]->grad_fn->pending = 0;
  for (int64_t i = 0; i < order.n; i++) {
    tyr_node *n = order.v[i]->grad_fn;
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] && n->in[k]->requires_grad && n->in[k]->grad_fn) n->in[k]->grad_fn->pending++;
  }
  leafmap leaves = {0};
  tyr__leaf_hook_fn hook = g_leaf_hook;
  if (hook && !leafmap_build(&leaves, &order)) {
    leafmap_free(&leaves);
    free(order.v);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  bool prev = tyr_set_grad_enabled(false);
  tyr_scope_begin();
  root->gradacc = tyr_tensor_retain(seed);
  int status = 0;
  for (int64_t i = order.n - 1; i >= 0; i--) {
    tyr_tensor *t = order.v[i];
    tyr_node *n = t->grad_fn;
    tyr_tensor *g = t->gradacc;
    t->gradacc = NULL;
    if (!g) { /* no gradient reached it: nor does it send any */
      for (int k = 0; k < n->nin; k++)
        if (n->in[k] && n->in[k]->requires_grad && n->in[k]->grad_fn) n->in[k]->grad_fn->pending--;
      continue;
    }
    tyr_tensor *gin[TYR_NODE_MAX_IN] = {0};
    tyr_scope_begin();
    n->backward(n, g, gin);
    for (int k = 0; k < n->nin; k++) {
      tyr_tensor *x = n->in[k];
      if (x && x->requires_grad && x->grad_fn) x->grad_fn->pending--;
      bool last_use =
          hook && x && x->requires_grad && !x->grad_fn && --*leafmap_slot(&leaves, x) == 0;
      if (!x || !x->requires_grad || !gin[k] || (n->added >> k & 1)) {
        if (last_use) hook(x, g_leaf_ctx);
        continue;
      }
      if (gin[k]->rank != x->rank ||
          memcmp(gin[k]->shape, x->shape, sizeof(int64_t) * (size_t)x->rank)) {
        char a[160], b[160];
        status = tyr_raise(TYR_ERR_AUTOGRAD, n->site, n->op,
                           "internal: gradient of input %d has shape %s, input is %s", k,
                           tyr_shape_str(gin[k]->shape, gin[k]->rank, a, sizeof a),
                           tyr_shape_str(x->shape, x->rank, b, sizeof b));
        continue;
      }
      if (!x->grad_fn) { /* leaf: accumulate into .grad */
        if (!x->grad && adoptable(gin, n->nin, k, x->dtype))
          x->grad = tyr_tensor_retain(gin[k]); /* no copy: nothing else sees it */
        else if (!x->grad)
          x->grad = owned_copy(s, gin[k], x->dtype);
        else
          accumulate_into(x->grad, gin[k]);
        if (last_use) hook(x, g_leaf_ctx);
      } else if (!x->gradacc) {
        x->gradacc = tyr_tensor_retain(gin[k]);
      } else if (sole_holder(x->gradacc) &&
                 (x->gradacc->dtype == gin[k]->dtype || widens(x->gradacc, gin[k]))) {
        accumulate_into(x->gradacc, gin[k]); /* no one else sees it: add in place */
      } else {
        tyr_tensor *sum = owned_copy(s, x->gradacc, x->gradacc->dtype);
        accumulate_into(sum, gin[k]);
        tyr_tensor_release(x->gradacc);
        x->gradacc = sum;
      }
    }
    tyr_scope_end();
    tyr_tensor_release(g);
  }
  if (hook) { /* leaves whose last consumer got no gradient */
    for (int64_t i = 0; i < leaves.cap; i++)
      if (leaves.key[i] && leaves.count[i] > 0) hook(leaves.key[i], g_leaf_ctx);
    leafmap_free(&leaves);
  }
  /* free the graph: every node visited */
  for (int64_t i = 0; i < order.n; i++) {
    tyr_tensor *t = order.v[i];
    tyr_node *n = t->grad_fn;
    t->grad_fn = NULL;
    t->graph_freed = true;
    tyr_tensor_release(t->gradacc);
    t->gradacc = NULL;
    node_free(n);
  }
  free(order.v);
  tyr_scope_end();
  tyr_set_grad_enabled(prev);
  return status;
}

int tyr_backward_at(tyr_site s, tyr_tensor *loss) {
  const char *op = "tyr_backward";
  if (!tyr_tensor_check_at(s, op, "loss", loss)) return TYR_ERR_ARG;
  if (tyr_numel(loss) != 1) {
    char b[160];
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "backward needs a one-element loss, got %s (use tyr_backward_with)",
                     tyr_shape_str(loss->shape, loss->rank, b, sizeof b));
  }
  if (!loss->requires_grad)
    return tyr_raise(TYR_ERR_AUTOGRAD, s, op,
                     "the loss does not require grad (no input of it requires grad, or it was "
                     "computed with grad mode off)");
  tyr_tensor *seed = tyr_empty_at(s, loss->dtype, loss->device, loss->rank, loss->shape);
  if (!seed) return TYR_ERR_MEMORY;
  tyr_keep_e(seed);
  tyr_backend_lookup(loss->device)->fill(seed, 1.0);
  int st = tyr_backward_with_at(s, loss, seed);
  tyr_tensor_free(seed);
  return st;
}

int tyr_backward_with_at(tyr_site s, tyr_tensor *out, tyr_tensor *grad) {
  const char *op = "tyr_backward_with";
  if (!tyr_tensor_check_at(s, op, "out", out) || !tyr_tensor_check_at(s, op, "grad", grad))
    return TYR_ERR_ARG;
  if (out->rank != grad->rank ||
      memcmp(out->shape, grad->shape, sizeof(int64_t) * (size_t)out->rank)) {
    char a[160], b[160];
    return tyr_raise(TYR_ERR_SHAPE, s, op, "gradient %s does not match output %s",
                     tyr_shape_str(grad->shape, grad->rank, a, sizeof a),
                     tyr_shape_str(out->shape, out->rank, b, sizeof b));
  }
  if (!out->requires_grad)
    return tyr_raise(TYR_ERR_AUTOGRAD, s, op, "the output does not require grad");
  if (!out->grad_fn && out->graph_freed)
    return tyr_raise(TYR_ERR_AUTOGRAD, s, op,
                     "trying to backward through the graph a second time: the first backward "
                     "freed it (compute the loss again, or call backward once)");
  if (!out->grad_fn) { /* a leaf: the gradient is grad itself */
    if (!out->grad)
      out->grad = owned_copy(s, grad, out->dtype);
    else
      accumulate_into(out->grad, grad);
    return 0;
  }
  int prev = tyr__profile_enter(TYR_PROF_BACKWARD);
  int st = run_backward(s, out, grad);
  tyr__profile_leave(prev);
  return st;
}

tyr_tensor *tyr_detach_at(tyr_site s, tyr_tensor *t) {
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_detach", "tensor is NULL");
    return NULL;
  }
  return tyr_view_raw(t, t->rank, t->shape, t->stride, t->offset);
}
