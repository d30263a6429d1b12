/* Convolutions and image ops: conv1d, conv2d, conv_transpose2d, max / avg /
 * adaptive average pooling, batch norm, group norm, instance norm.  Shape
 * rules (the same as the typed forms in include/tyr/ops_conv.h check when
 * the program is compiled), dispatch to the backend kernels (conv2d,
 * pool2d, batch_norm and their backwards in src/core/backend.h) and the
 * backward passes.
 *
 * conv1d is conv2d on [N, C, 1, L]; conv_transpose2d runs conv2d's kernels
 * with the roles of input and output swapped (its forward is conv2d's
 * input gradient, its input gradient conv2d's forward); group and instance
 * norm are layer norm over [N, groups, C/groups * spatial] and a
 * per-channel affine, so they run wherever layer norm does. */
#include <math.h>
#include <stdio.h>

#include "ops/nn_util.h"
#include "tyr/ops_conv.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_reduce.h"

static const tyr_conv_opts default_opts = {
    .stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1}, .groups = 1, .output_padding = {0, 0}};

/* Checks the options of an nd-dimensional (1 or 2) convolution. */
static bool conv_opts_ok(tyr_site s, const char *op, const tyr_conv_opts *o, int nd,
                         bool transpose) {
  for (int i = 0; i < nd; i++) {
    if (o->stride[i] < 1)
      return !tyr_raise(TYR_ERR_ARG, s, op, "stride must be >= 1, got %lld",
                        (long long)o->stride[i]);
    if (o->dilation[i] < 1)
      return !tyr_raise(TYR_ERR_ARG, s, op, "dilation must be >= 1, got %lld",
                        (long long)o->dilation[i]);
    if (o->padding[i] < 0)
      return !tyr_raise(TYR_ERR_ARG, s, op, "padding must be >= 0, got %lld",
                        (long long)o->padding[i]);
    if (transpose && (o->output_padding[i] < 0 || (o->output_padding[i] >= o->stride[i] &&
                                                   o->output_padding[i] >= o->dilation[i])))
      return !tyr_raise(TYR_ERR_ARG, s, op,
                        "output_padding %lld must be >= 0 and smaller than stride or dilation",
                        (long long)o->output_padding[i]);
    if (!transpose && o->output_padding[i] != 0)
      return !tyr_raise(TYR_ERR_ARG, s, op, "output_padding is for conv_transpose only");
  }
  if (o->groups < 1)
    return !tyr_raise(TYR_ERR_ARG, s, op, "groups must be >= 1, got %lld", (long long)o->groups);
  return true;
}

/* Common operand checks: float x, w (and b) of one dtype and device. */
static bool conv_operands_ok(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w,
                             tyr_tensor *b) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "w", w)) return false;
  if (!tyr__is_float(s, op, "x", x) || !tyr__same_device(s, op, x, w) ||
      !tyr__same_dtype(s, op, x, w))
    return false;
  if (b && (!tyr__same_device(s, op, x, b) || !tyr__same_dtype(s, op, x, b))) return false;
  return tyr_backend_get(s, op, x->device) != NULL;
}

/* The geometry of conv(x, w) for x [N, C, sp...], w [K, C/g, k...] with
 * nd spatial dims (1 or 2), after every rule is checked; false after
 * raising.  b is [K] or NULL. */
static bool conv_geom(tyr_site s, const char *op, const tyr_tensor *x, const tyr_tensor *w,
                      const tyr_tensor *b, const tyr_conv_opts *o, int nd, tyr_conv_geom *g) {
  char a[160], c[160];
  if (x->rank != nd + 2 || w->rank != nd + 2)
    return !tyr_raise(TYR_ERR_SHAPE, s, op, "x must be %s and w %s, but x is %s and w is %s",
                      nd == 2 ? "[N, C, H, W]" : "[N, C, L]",
                      nd == 2 ? "[K, C/groups, R, S]" : "[K, C/groups, R]", TYR__NN_SHAPE(x, a),
                      TYR__NN_SHAPE(w, c));
  int64_t C = x->shape[1], K = w->shape[0], G = o->groups;
  if (C % G != 0 || K % G != 0 || w->shape[1] * G != C)
    return !tyr_raise(TYR_ERR_SHAPE, s, op,
                      "channels must be divisible by groups (%lld) and w must be [K, C/groups, "
                      "...]: x is %s, w is %s",
                      (long long)G, TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c));
  g->N = x->shape[0];
  g->C = C;
  g->K = K;
  g->groups = G;
  int64_t in[2] = {1, 1}, k[2] = {1, 1};
  for (int i = 0; i < nd; i++) {
    in[2 - nd + i] = x->shape[2 + i];
    k[2 - nd + i] = w->shape[2 + i];
  }
  g->H = in[0];
  g->W = in[1];
  g->R = k[0];
  g->S = k[1];
  for (int j = 0; j < 2; j++) {
    int i = j - (2 - nd); /* index into the options (conv1d's dim is option 0) */
    bool used = i >= 0;
    g->stride[j] = used ? o->stride[i] : 1;
    g->pad[j] = used ? o->padding[i] : 0;
    g->dil[j] = used ? o->dilation[i] : 1;
    int64_t span = g->dil[j] * (k[j] - 1) + 1;
    if (in[j] + 2 * g->pad[j] < span)
      return !tyr_raise(TYR_ERR_SHAPE, s, op,
                        "the kernel (extent %lld with dilation %lld) is larger than the padded "
                        "input (%lld + 2 x %lld): x is %s, w is %s",
                        (long long)span, (long long)g->dil[j], (long long)in[j],
                        (long long)g->pad[j], TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c));
  }
  g->P = (g->H + 2 * g->pad[0] - g->dil[0] * (g->R - 1) - 1) / g->stride[0] + 1;
  g->Q = (g->W + 2 * g->pad[1] - g->dil[1] * (g->S - 1) - 1) / g->stride[1] + 1;
  if (b && (b->rank != 1 || b->shape[0] != K))
    return !tyr_raise(TYR_ERR_SHAPE, s, op, "w is %s, so b must be [%lld], but it is %s",
                      TYR__NN_SHAPE(w, a), (long long)K, TYR__NN_SHAPE(b, c));
  return true;
}

/* The 4-d descriptor of contiguous t with shape sh (a conv1d operand seen
 * as 2-d). */
static tyr_tensor desc4(const tyr_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t sh[4] = {a, b, c, d}, st[4] = {b * c * d, c * d, d, 1};
  return tyr__desc(t, 4, sh, st, t->offset);
}

static void save_geom(tyr_node *n, const tyr_conv_geom *g) {
  if (!n) return;
  n->i[0] = g->stride[0];
  n->i[1] = g->stride[1];
  n->i[2] = g->pad[0];
  n->i[3] = g->pad[1];
  n->i[4] = g->dil[0];
  n->i[5] = g->dil[1];
  n->i[6] = g->groups;
}
/* the geometry of conv(x, w) from the shapes and a node's saved options */
static tyr_conv_geom node_geom(const tyr_node *n, const tyr_tensor *x, const tyr_tensor *w) {
  int nd = x->rank - 2;
  tyr_conv_geom g = {.N = x->shape[0],
                     .C = x->shape[1],
                     .K = w->shape[0],
                     .H = nd == 2 ? x->shape[2] : 1,
                     .W = x->shape[x->rank - 1],
                     .R = nd == 2 ? w->shape[2] : 1,
                     .S = w->shape[w->rank - 1],
                     .stride = {n->i[0], n->i[1]},
                     .pad = {n->i[2], n->i[3]},
                     .dil = {n->i[4], n->i[5]},
                     .groups = n->i[6]};
  g.P = (g.H + 2 * g.pad[0] - g.dil[0] * (g.R - 1) - 1) / g.stride[0] + 1;
  g.Q = (g.W + 2 * g.pad[1] - g.dil[1] * (g.S - 1) - 1) / g.stride[1] + 1;
  return g;
}

/* ---- conv1d / conv2d ------------------------------------------------------------ */
static void conv_backward(tyr_node *n, tyr_tensor *gy, tyr_tensor **gin) {
  tyr_site s = n->site;
  const char *op = n->op;
  tyr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  tyr_conv_geom g = node_geom(n, x, w);
  tyr_dtype kdt = tyr__nn_kdt(x);
  bool nx = tyr__node_needs(n, 0), nw = tyr__node_needs(n, 1), nb = b && tyr__node_needs(n, 2);
  tyr_tensor *gx = nx ? tyr__new(s, op, kdt, x->device, x->rank, x->shape) : NULL;
  tyr_tensor *gw = nw ? tyr__new(s, op, kdt, x->device, w->rank, w->shape) : NULL;
  tyr_tensor *gb = nb ? tyr__new(s, op, kdt, x->device, 1, &g.K) : NULL;
  tyr_tensor *gk = tyr__nn_prep(s, op, gy, kdt);
  tyr_tensor *xk = nw ? tyr__nn_prep(s, op, x, kdt) : NULL;
  tyr_tensor *wk = nx ? tyr__nn_prep(s, op, w, kdt) : NULL;
  if ((nx && (!gx || !wk)) || (nw && (!gw || !xk)) || (nb && !gb) || !gk) return;
  tyr_tensor dgy = desc4(gk, g.N, g.K, g.P, g.Q);
  tyr_tensor dx = xk ? desc4(xk, g.N, g.C, g.H, g.W) : dgy;
  tyr_tensor dw = desc4(wk ? wk : w, g.K, g.C / g.groups, g.R, g.S);
  tyr_tensor dgx = gx ? desc4(gx, g.N, g.C, g.H, g.W) : dgy;
  tyr_tensor dgw = gw ? desc4(gw, g.K, g.C / g.groups, g.R, g.S) : dgy;
  if (g.N > 0)
    tyr__be(x)->conv2d_backward(gx ? &dgx : NULL, gw ? &dgw : NULL, gb, &dgy, xk ? &dx : NULL, &dw,
                                &g);
  else {
    if (gw) tyr__be(x)->fill(gw, 0);
    if (gb) tyr__be(x)->fill(gb, 0);
  }
  tyr__nn_release(gk, gy);
  tyr__nn_release(xk, x);
  tyr__nn_release(wk, w);
  if (nx) gin[0] = tyr__nn_finish(s, op, gx, x->dtype);
  if (nw) gin[1] = tyr__nn_finish(s, op, gw, w->dtype);
  if (nb) gin[2] = tyr__nn_finish(s, op, gb, b->dtype);
}

static tyr_tensor *conv_op(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                           const tyr_conv_opts *o, int nd) {
  if (!o) o = &default_opts;
  if (!conv_operands_ok(s, op, x, w, b) || !conv_opts_ok(s, op, o, nd, false)) return NULL;
  tyr_conv_geom g;
  if (!conv_geom(s, op, x, w, b, o, nd, &g)) return NULL;
  const tyr_backend *be = tyr__be(x);
  if (!tyr__nn_has(s, op, x, (const void *)be->conv2d, "conv2d")) return NULL;
  tyr_dtype kdt = tyr__nn_kdt(x);
  int64_t osh[4] = {g.N, g.K, g.P, g.Q};
  if (nd == 1) osh[2] = g.Q;
  tyr_tensor *out = tyr__new(s, op, kdt, x->device, nd + 2, osh);
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt), *wk = tyr__nn_prep(s, op, w, kdt);
  tyr_tensor *bk = b ? tyr__nn_prep(s, op, b, kdt) : NULL;
  bool ok = out && xk && wk && (!b || bk);
  if (ok && tyr_numel(out) > 0) {
    tyr_tensor dx = desc4(xk, g.N, g.C, g.H, g.W), dw = desc4(wk, g.K, g.C / g.groups, g.R, g.S);
    tyr_tensor dy = desc4(out, g.N, g.K, g.P, g.Q);
    be->conv2d(&dy, &dx, &dw, bk, &g);
  }
  tyr__nn_release(xk, x);
  tyr__nn_release(wk, w);
  tyr__nn_release(bk, b);
  if (!ok) {
    tyr__nn_drop(out);
    return NULL;
  }
  out = tyr__nn_finish(s, op, out, x->dtype);
  tyr_node *n = out ? TYR_RECORD(s, op, out, conv_backward, x, w, b) : NULL;
  save_geom(n, &g);
  return out;
}

tyr_tensor *tyr_conv2d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                          const tyr_conv_opts *o) {
  return conv_op(s, "tyr_conv2d", x, w, b, o, 2);
}
tyr_tensor *tyr_conv1d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                          const tyr_conv_opts *o) {
  return conv_op(s, "tyr_conv1d", x, w, b, o, 1);
}

/* ---- conv_transpose2d ---------------------------------------------------------
 * y = conv_transpose(x, w) is the input gradient of the convolution
 * c(y) = conv(y, w) [N, K', H', W'] -> [N, C', H, W] with K' = C of w... in
 * conv2d's terms: the convolution's input is y (channels Cout), its weight
 * w [Cin, Cout/g, R, S] ("K" = Cin) and its output x. */
static tyr_conv_geom transpose_geom(const tyr_node *n, const tyr_tensor *x, const tyr_tensor *w,
                                    const tyr_tensor *y) {
  tyr_conv_geom g = {.N = x->shape[0],
                     .C = y->shape[1],
                     .H = y->shape[2],
                     .W = y->shape[3],
                     .K = w->shape[0],
                     .R = w->shape[2],
                     .S = w->shape[3],
                     .P = x->shape[2],
                     .Q = x->shape[3],
                     .stride = {n->i[0], n->i[1]},
                     .pad = {n->i[2], n->i[3]},
                     .dil = {n->i[4], n->i[5]},
                     .groups = n->i[6]};
  return g;
}

static void conv_transpose_backward(tyr_node *n, tyr_tensor *gy, tyr_tensor **gin) {
  tyr_site s = n->site;
  const char *op = n->op;
  tyr_tensor *x = n->in[0], *w = n->in[1];
  tyr_conv_geom g = transpose_geom(n, x, w, gy);
  tyr_dtype kdt = tyr__nn_kdt(x);
  bool nx = tyr__node_needs(n, 0), nw = tyr__node_needs(n, 1);
  tyr_tensor *gk = tyr__nn_prep(s, op, gy, kdt);
  tyr_tensor *xk = nw ? tyr__nn_prep(s, op, x, kdt) : NULL;
  tyr_tensor *wk = tyr__nn_prep(s, op, w, kdt);
  tyr_tensor *gx = nx ? tyr__new(s, op, kdt, x->device, x->rank, x->shape) : NULL;
  tyr_tensor *gw = nw ? tyr__new(s, op, kdt, x->device, w->rank, w->shape) : NULL;
  if (!gk || !wk || (nx && !gx) || (nw && (!gw || !xk))) return;
  const tyr_backend *be = tyr__be(x);
  if (g.N > 0) {
    if (gx) be->conv2d(gx, gk, wk, NULL, &g);                    /* d x = conv(gy, w) */
    if (gw) be->conv2d_backward(NULL, gw, NULL, xk, gk, wk, &g); /* x plays dY */
  } else if (gw) {
    be->fill(gw, 0);
  }
  tyr__nn_release(gk, gy);
  tyr__nn_release(xk, x);
  tyr__nn_release(wk, w);
  if (nx) gin[0] = tyr__nn_finish(s, op, gx, x->dtype);
  if (nw) gin[1] = tyr__nn_finish(s, op, gw, w->dtype);
}

tyr_tensor *tyr_conv_transpose2d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                    const tyr_conv_opts *o) {
  const char *op = "tyr_conv_transpose2d";
  if (!o) o = &default_opts;
  if (!conv_operands_ok(s, op, x, w, b) || !conv_opts_ok(s, op, o, 2, true)) return NULL;
  char a[160], c[160];
  if (x->rank != 4 || w->rank != 4)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "x must be [N, C, H, W] and w [C, K/groups, R, S], but x is %s and w is %s",
                     TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c)),
           NULL;
  int64_t G = o->groups, Cin = x->shape[1];
  if (w->shape[0] != Cin || Cin % G != 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "w must be [C, K/groups, R, S] with C (x's channels) divisible by groups "
                     "(%lld): x is %s, w is %s",
                     (long long)G, TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c)),
           NULL;
  int64_t K = w->shape[1] * G;
  if (b && (b->rank != 1 || b->shape[0] != K))
    return tyr_raise(TYR_ERR_SHAPE, s, op, "b must be [%lld] (K of w %s), but it is %s",
                     (long long)K, TYR__NN_SHAPE(w, a), TYR__NN_SHAPE(b, c)),
           NULL;
  int64_t osz[2];
  for (int i = 0; i < 2; i++) {
    osz[i] = (x->shape[2 + i] - 1) * o->stride[i] - 2 * o->padding[i] +
             o->dilation[i] * (w->shape[2 + i] - 1) + o->output_padding[i] + 1;
    if (osz[i] < 1)
      return tyr_raise(TYR_ERR_SHAPE, s, op,
                       "the output would be empty (size %lld along dim %d): x is %s, w is %s",
                       (long long)osz[i], 2 + i, TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c)),
             NULL;
  }
  const tyr_backend *be = tyr__be(x);
  if (!tyr__nn_has(s, op, x, (const void *)be->conv2d_backward, "conv2d_backward")) return NULL;
  tyr_dtype kdt = tyr__nn_kdt(x);
  int64_t ysh[4] = {x->shape[0], K, osz[0], osz[1]};
  tyr_tensor *y = tyr__new(s, op, kdt, x->device, 4, ysh);
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt), *wk = tyr__nn_prep(s, op, w, kdt);
  bool ok = y && xk && wk;
  tyr_node tmp = {.i = {o->stride[0], o->stride[1], o->padding[0], o->padding[1], o->dilation[0],
                        o->dilation[1], G}};
  if (ok) {
    tyr_conv_geom g = transpose_geom(&tmp, x, w, y);
    if (tyr_numel(y) > 0 && tyr_numel(x) > 0)
      be->conv2d_backward(y, NULL, NULL, xk, NULL, wk, &g);
    else if (tyr_numel(y) > 0)
      be->fill(y, 0);
  }
  tyr__nn_release(xk, x);
  tyr__nn_release(wk, w);
  if (!ok) {
    tyr__nn_drop(y);
    return NULL;
  }
  y = tyr__nn_finish(s, op, y, x->dtype);
  tyr_node *n = y ? TYR_RECORD(s, op, y, conv_transpose_backward, x, w) : NULL;
  if (n) memcpy(n->i, tmp.i, sizeof tmp.i);
  if (!y || !b) return y;
  /* the bias: a per-channel add, recorded by the elementwise ops */
  tyr_tensor *bv = tyr_reshape_at(s, b, 4, (int64_t[]){1, K, 1, 1});
  tyr_tensor *be4 = bv ? tyr_expand_at(s, bv, 4, ysh) : NULL;
  tyr_tensor *out = be4 ? tyr_add_at(s, y, be4) : NULL;
  tyr__nn_drop(be4);
  tyr__nn_drop(bv);
  tyr__nn_drop(y);
  return out;
}

/* conv_transpose1d: conv_transpose2d on [N, C, 1, L] */
tyr_tensor *tyr_conv_transpose1d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                    const tyr_conv_opts *o) {
  const char *op = "tyr_conv_transpose1d";
  if (!o) o = &default_opts;
  if (!conv_operands_ok(s, op, x, w, b) || !conv_opts_ok(s, op, o, 1, true)) return NULL;
  char a[160], c[160];
  if (x->rank != 3 || w->rank != 3)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "x must be [N, C, L] and w [C, K/groups, R], but x is %s and w is %s",
                     TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c)),
           NULL;
  tyr_conv_opts o2 = {.stride = {1, o->stride[0]},
                      .padding = {0, o->padding[0]},
                      .dilation = {1, o->dilation[0]},
                      .groups = o->groups,
                      .output_padding = {0, o->output_padding[0]}};
  tyr_tensor *x4 = tyr_unsqueeze_at(s, x, 2), *w4 = tyr_unsqueeze_at(s, w, 2);
  tyr_tensor *y4 = x4 && w4 ? tyr_conv_transpose2d_at(s, x4, w4, b, &o2) : NULL;
  tyr_tensor *y = y4 ? tyr_squeeze_at(s, y4, 2) : NULL;
  tyr__nn_drop(y4);
  tyr__nn_drop(w4);
  tyr__nn_drop(x4);
  return y;
}

/* ---- pooling ------------------------------------------------------------------ */
static void pool_backward(tyr_node *n, tyr_tensor *gy, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0], *idx = n->saved[0];
  tyr_pool_geom g = {.kind = (tyr_pool_kind)n->i[6],
                     .N = x->shape[0],
                     .C = x->shape[1],
                     .H = x->shape[2],
                     .W = x->shape[3],
                     .P = gy->shape[2],
                     .Q = gy->shape[3],
                     .kernel = {n->i[0], n->i[1]},
                     .stride = {n->i[2], n->i[3]},
                     .pad = {n->i[4], n->i[5]}};
  tyr_dtype kdt = tyr__nn_kdt(x);
  tyr_tensor *gk = tyr__nn_prep(s, n->op, gy, kdt);
  tyr_tensor *gx = tyr__new(s, n->op, kdt, x->device, 4, x->shape);
  if (!gk || !gx) return;
  if (tyr_numel(gx) > 0) tyr__be(x)->pool2d_backward(gx, gk, idx, &g);
  tyr__nn_release(gk, gy);
  gin[0] = tyr__nn_finish(s, n->op, gx, x->dtype);
}

static tyr_tensor *pool_op(tyr_site s, const char *op, tyr_tensor *x, tyr_pool_kind kind,
                           const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                           int64_t oh, int64_t ow) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  char a[160];
  if (x->rank != 4)
    return tyr_raise(TYR_ERR_SHAPE, s, op, "x must be [N, C, H, W], but it is %s",
                     TYR__NN_SHAPE(x, a)),
           NULL;
  tyr_pool_geom g = {
      .kind = kind, .N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3]};
  if (kind == TYR_POOL_ADAPTIVE_AVG) {
    if (oh < 1 || ow < 1)
      return tyr_raise(TYR_ERR_ARG, s, op, "the output size must be positive, got %lld x %lld",
                       (long long)oh, (long long)ow),
             NULL;
    g.P = oh;
    g.Q = ow;
  } else {
    if (!kernel || !stride || !padding)
      return tyr_raise(TYR_ERR_ARG, s, op, "kernel, stride and padding must be given"), NULL;
    for (int i = 0; i < 2; i++) {
      if (kernel[i] < 1 || stride[i] < 1 || padding[i] < 0 || 2 * padding[i] > kernel[i])
        return tyr_raise(TYR_ERR_ARG, s, op,
                         "kernel (%lld) and stride (%lld) must be >= 1 and padding (%lld) "
                         "between 0 and half the kernel",
                         (long long)kernel[i], (long long)stride[i], (long long)padding[i]),
               NULL;
      if (x->shape[2 + i] + 2 * padding[i] < kernel[i])
        return tyr_raise(TYR_ERR_SHAPE, s, op,
                         "the kernel (%lld) is larger than the padded input (%lld + 2 x %lld): x "
                         "is %s",
                         (long long)kernel[i], (long long)x->shape[2 + i], (long long)padding[i],
                         TYR__NN_SHAPE(x, a)),
               NULL;
      g.kernel[i] = kernel[i];
      g.stride[i] = stride[i];
      g.pad[i] = padding[i];
    }
    g.P = (g.H + 2 * g.pad[0] - g.kernel[0]) / g.stride[0] + 1;
    g.Q = (g.W + 2 * g.pad[1] - g.kernel[1]) / g.stride[1] + 1;
  }
  const tyr_backend *be = tyr__be(x);
  if (!tyr__nn_has(s, op, x, (const void *)be->pool2d, "pool2d")) return NULL;
  tyr_dtype kdt = tyr__nn_kdt(x);
  int64_t osh[4] = {g.N, g.C, g.P, g.Q};
  tyr_tensor *out = tyr__new(s, op, kdt, x->device, 4, osh);
  tyr_tensor *idx = kind == TYR_POOL_MAX ? tyr__new(s, op, TYR_I32, x->device, 4, osh) : NULL;
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt);
  bool ok = out && xk && (kind != TYR_POOL_MAX || idx);
  if (ok && tyr_numel(out) > 0) be->pool2d(out, idx, xk, &g);
  tyr__nn_release(xk, x);
  if (!ok) {
    tyr__nn_drop(out);
    tyr__nn_drop(idx);
    return NULL;
  }
  out = tyr__nn_finish(s, op, out, x->dtype);
  tyr_node *n = out ? TYR_RECORD(s, op, out, pool_backward, x) : NULL;
  if (n) {
    int64_t v[7] = {g.kernel[0], g.kernel[1], g.stride[0], g.stride[1], g.pad[0], g.pad[1], kind};
    memcpy(n->i, v, sizeof v);
    tyr__node_save(n, 0, idx);
  }
  tyr__nn_drop(idx);
  return out;
}

tyr_tensor *tyr_max_pool2d_at(tyr_site s, tyr_tensor *x, const int64_t kernel[2],
                              const int64_t stride[2], const int64_t padding[2]) {
  return pool_op(s, "tyr_max_pool2d", x, TYR_POOL_MAX, kernel, stride, padding, 0, 0);
}
tyr_tensor *tyr_avg_pool2d_at(tyr_site s, tyr_tensor *x, const int64_t kernel[2],
                              const int64_t stride[2], const int64_t padding[2]) {
  return pool_op(s, "tyr_avg_pool2d", x, TYR_POOL_AVG, kernel, stride, padding, 0, 0);
}
tyr_tensor *tyr_adaptive_avg_pool2d_at(tyr_site s, tyr_tensor *x, int64_t oh, int64_t ow) {
  return pool_op(s, "tyr_adaptive_avg_pool2d", x, TYR_POOL_ADAPTIVE_AVG, NULL, NULL, NULL, oh, ow);
}

/* ---- batch norm ---------------------------------------------------------------- */
/* The dtype of the statistics (saved mean and rstd, running mean and var):
 * f64 for f64 x, f32 otherwise (also for bf16 / f16 x). */
static tyr_dtype stat_dtype(const tyr_tensor *x) {
  return x->dtype == TYR_F64 ? TYR_F64 : TYR_F32;
}

static bool channel_param_ok(tyr_site s, const char *op, const char *arg, const tyr_tensor *x,
                             const tyr_tensor *p, tyr_dtype dt) {
  if (!p) return true;
  char a[160], b[160];
  if (!tyr__same_device(s, op, x, p)) return false;
  if (p->dtype != dt)
    return !tyr_raise(TYR_ERR_DTYPE, s, op, "%s must be %s (like x), not %s", arg,
                      tyr_dtype_name(dt), tyr_dtype_name(p->dtype));
  if (p->rank == 1 && p->shape[0] == x->shape[1]) return true;
  return !tyr_raise(TYR_ERR_SHAPE, s, op, "x is %s, so %s must be [%lld], but it is %s",
                    TYR__NN_SHAPE(x, a), arg, (long long)x->shape[1], TYR__NN_SHAPE(p, b));
}

static void batch_norm_backward(tyr_node *n, tyr_tensor *gy, tyr_tensor **gin) {
  tyr_site s = n->site;
  const char *op = n->op;
  tyr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  tyr_dtype kdt = tyr__nn_kdt(x);
  int64_t N = x->shape[0], C = x->shape[1], M = tyr_numel(x) / (N * C > 0 ? N * C : 1);
  bool nx = tyr__node_needs(n, 0), nw = w && tyr__node_needs(n, 1), nb = b && tyr__node_needs(n, 2);
  tyr_tensor *gx = nx ? tyr__new(s, op, kdt, x->device, x->rank, x->shape) : NULL;
  tyr_tensor *gw = nw ? tyr__new(s, op, kdt, x->device, 1, &C) : NULL;
  tyr_tensor *gb = nb ? tyr__new(s, op, kdt, x->device, 1, &C) : NULL;
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt), *gk = tyr__nn_prep(s, op, gy, kdt);
  tyr_tensor *wk = w ? tyr__nn_prep(s, op, w, kdt) : NULL;
  if ((nx && !gx) || (nw && !gw) || (nb && !gb) || !xk || !gk || (w && !wk)) return;
  tyr_tensor dx = desc4(xk, N, C, M, 1), dg = desc4(gk, N, C, M, 1);
  tyr_tensor dgx = gx ? desc4(gx, N, C, M, 1) : dx;
  dx.rank = dg.rank = dgx.rank = 3;
  if (tyr_numel(x) > 0)
    tyr__be(x)->batch_norm_backward(gx ? &dgx : NULL, gw, gb, &dg, &dx, wk, n->saved[0],
                                    n->saved[1], n->i[0] != 0);
  tyr__nn_release(xk, x);
  tyr__nn_release(gk, gy);
  tyr__nn_release(wk, w);
  if (nx) gin[0] = tyr__nn_finish(s, op, gx, x->dtype);
  if (nw) gin[1] = tyr__nn_finish(s, op, gw, w->dtype);
  if (nb) gin[2] = tyr__nn_finish(s, op, gb, b->dtype);
}

tyr_tensor *tyr_batch_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                              tyr_tensor *running_mean, tyr_tensor *running_var, bool training,
                              double momentum, double eps) {
  const char *op = "tyr_batch_norm";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  char a[160];
  if (x->rank < 2)
    return tyr_raise(TYR_ERR_SHAPE, s, op, "x must be [N, C, ...], but it is %s",
                     TYR__NN_SHAPE(x, a)),
           NULL;
  tyr_dtype kdt = tyr__nn_kdt(x), sdt = stat_dtype(x);
  if (!channel_param_ok(s, op, "w", x, w, x->dtype) ||
      !channel_param_ok(s, op, "b", x, b, x->dtype) ||
      !channel_param_ok(s, op, "running_mean", x, running_mean, sdt) ||
      !channel_param_ok(s, op, "running_var", x, running_var, sdt))
    return NULL;
  if (!training && (!running_mean || !running_var))
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "evaluation (training false) needs running_mean and running_var"),
           NULL;
  if ((running_mean && !tyr_is_contiguous(running_mean)) ||
      (running_var && !tyr_is_contiguous(running_var)))
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "running_mean and running_var are updated in place: they must be "
                     "contiguous"),
           NULL;
  if (!(eps >= 0) || !isfinite(eps) || !(momentum >= 0 && momentum <= 1))
    return tyr_raise(TYR_ERR_ARG, s, op, "eps (%g) must be >= 0 and momentum (%g) in [0, 1]", eps,
                     momentum),
           NULL;
  int64_t N = x->shape[0], C = x->shape[1], M = 1;
  for (int i = 2; i < x->rank; i++) M *= x->shape[i];
  if (training && N * M <= 1 && tyr_numel(x) > 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "training needs more than one value per channel, but x is %s",
                     TYR__NN_SHAPE(x, a)),
           NULL;
  const tyr_backend *be = tyr__be(x);
  if (!tyr__nn_has(s, op, x, (const void *)be->batch_norm, "batch_norm")) return NULL;
  tyr_tensor *y = tyr__new(s, op, kdt, x->device, x->rank, x->shape);
  tyr_tensor *mean = tyr__new(s, op, sdt, x->device, 1, &C);
  tyr_tensor *rstd = tyr__new(s, op, sdt, x->device, 1, &C);
  tyr_tensor *xk = tyr__nn_prep(s, op, x, kdt);
  tyr_tensor *wk = w ? tyr__nn_prep(s, op, w, kdt) : NULL,
             *bk = b ? tyr__nn_prep(s, op, b, kdt) : NULL;
  bool ok = y && mean && rstd && xk && (!w || wk) && (!b || bk);
  if (ok && tyr_numel(x) > 0) {
    tyr_tensor dx = desc4(xk, N, C, M, 1), dy = desc4(y, N, C, M, 1);
    dx.rank = dy.rank = 3;
    be->batch_norm(&dy, mean, rstd, &dx, wk, bk, running_mean, running_var, training, momentum,
                   eps);
  }
  tyr__nn_release(xk, x);
  tyr__nn_release(wk, w);
  tyr__nn_release(bk, b);
  if (ok) {
    y = tyr__nn_finish(s, op, y, x->dtype);
    tyr_node *n = y ? TYR_RECORD(s, op, y, batch_norm_backward, x, w, b) : NULL;
    tyr__node_save(n, 0, mean);
    tyr__node_save(n, 1, rstd);
    if (n) n->i[0] = training;
  } else {
    tyr__nn_drop(y);
    y = NULL;
  }
  tyr__nn_drop(mean);
  tyr__nn_drop(rstd);
  return y;
}

/* ---- group norm and instance norm ------------------------------------------------ */
static tyr_tensor *group_norm_op(tyr_site s, const char *op, tyr_tensor *x, int64_t groups,
                                 tyr_tensor *w, tyr_tensor *b, double eps) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  char a[160];
  if (x->rank < 2)
    return tyr_raise(TYR_ERR_SHAPE, s, op, "x must be [N, C, ...], but it is %s",
                     TYR__NN_SHAPE(x, a)),
           NULL;
  int64_t N = x->shape[0], C = x->shape[1];
  if (groups < 1 || C % groups != 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "groups (%lld) must be >= 1 and divide the channels: x is %s",
                     (long long)groups, TYR__NN_SHAPE(x, a)),
           NULL;
  if (!channel_param_ok(s, op, "w", x, w, x->dtype) ||
      !channel_param_ok(s, op, "b", x, b, x->dtype))
    return NULL;
  if (!(eps >= 0) || !isfinite(eps))
    return tyr_raise(TYR_ERR_ARG, s, op, "eps must be finite and >= 0, got %g", eps), NULL;
  int64_t rest = C / groups;
  for (int i = 2; i < x->rank; i++) rest *= x->shape[i];
  /* [N, G, C/G * spatial], layer norm over the last dim, back to x's shape */
  tyr_tensor *xr = tyr_reshape_at(s, x, 3, (int64_t[]){N, groups, rest});
  tyr_tensor *yn = xr ? tyr_layer_norm_at(s, xr, NULL, NULL, eps) : NULL;
  tyr_tensor *y = yn ? tyr_reshape_at(s, yn, x->rank, x->shape) : NULL;
  tyr__nn_drop(xr);
  tyr__nn_drop(yn);
  int64_t csh[TYR_MAX_RANK];
  for (int i = 0; i < x->rank; i++) csh[i] = i == 1 ? C : 1;
  tyr_tensor *ps[2] = {w, b};
  for (int k = 0; k < 2 && y; k++) {
    if (!ps[k]) continue;
    tyr_tensor *pv = tyr_reshape_at(s, ps[k], x->rank, csh);
    tyr_tensor *pe = pv ? tyr_expand_at(s, pv, x->rank, x->shape) : NULL;
    tyr_tensor *r = pe ? (k == 0 ? tyr_mul_at(s, y, pe) : tyr_add_at(s, y, pe)) : NULL;
    tyr__nn_drop(pe);
    tyr__nn_drop(pv);
    tyr__nn_drop(y);
    y = r;
  }
  return y;
}

tyr_tensor *tyr_group_norm_at(tyr_site s, tyr_tensor *x, int64_t groups, tyr_tensor *w,
                              tyr_tensor *b, double eps) {
  return group_norm_op(s, "tyr_group_norm", x, groups, w, b, eps);
}
tyr_tensor *tyr_instance_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                 double eps) {
  if (!tyr__arg_ok(s, "tyr_instance_norm", "x", x)) return NULL;
  return group_norm_op(s, "tyr_instance_norm", x, x->rank >= 2 ? x->shape[1] : 1, w, b, eps);
}
