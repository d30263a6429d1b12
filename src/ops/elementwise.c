/* Elementwise ops: shape rules, dispatch, and backward. */
#include <math.h>

#include "ops/common.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_reduce.h"
#include "tyr/ops_layout.h"

/* ---- unary ---------------------------------------------------------------- */
static void run_unary(tyr_site s, const char *op, tyr_unary_op uop, tyr_tensor *out, tyr_tensor *x,
                      double p0, double p1) {
  if (tyr__needs_f32(x)) { /* bf16/f16 on the CPU: compute in f32 */
    tyr_tensor *xf = tyr__convert(s, op, x, TYR_F32);
    tyr_tensor *of = tyr__new(s, op, TYR_F32, out->device, out->rank, out->shape);
    tyr__be(x)->unary(uop, of, xf, p0, p1);
    tyr__be(x)->copy(out, of);
    tyr_tensor_free(xf);
    tyr_tensor_free(of);
    return;
  }
  tyr__be(x)->unary(uop, out, x, p0, p1);
}

static void unary_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *x = n->in[0];
  tyr_tensor *gx = tyr__new_like(n->site, n->op, x);
  if (!gx) return;
  tyr_unary_op uop = (tyr_unary_op)n->i[0];
  if (tyr__needs_f32(x)) {
    tyr_tensor *xf = tyr__convert(n->site, n->op, x, TYR_F32);
    tyr_tensor *gf = tyr__convert(n->site, n->op, g, TYR_F32);
    tyr_tensor *of = tyr__new(n->site, n->op, TYR_F32, x->device, x->rank, x->shape);
    tyr__be(x)->unary_backward(uop, of, xf, gf, n->f[0], n->f[1]);
    tyr__be(x)->copy(gx, of);
  } else {
    tyr__be(x)->unary_backward(uop, gx, x, g, n->f[0], n->f[1]);
  }
  gin[0] = gx;
}

static tyr_tensor *unary(tyr_site s, const char *op, tyr_unary_op uop, tyr_tensor *x, double p0,
                         double p1, bool differentiable) {
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  if (!tyr__is_float(s, op, "x", x)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  tyr_tensor *out = tyr__new_like(s, op, x);
  if (!out) return NULL;
  run_unary(s, op, uop, out, x, p0, p1);
  tyr_node *n = TYR_RECORD(s, op, out, differentiable ? unary_backward : NULL, x);
  if (n) {
    n->i[0] = uop;
    n->f[0] = p0;
    n->f[1] = p1;
  }
  return out;
}

#define DEF_UNARY(name, UOP, diff)                                                                 \
  tyr_tensor *tyr_##name##_at(tyr_site s, tyr_tensor *x) {                                         \
    return unary(s, "tyr_" #name, UOP, x, 0, 0, diff);                                             \
  }
DEF_UNARY(neg, TYR_UN_NEG, true)
DEF_UNARY(exp, TYR_UN_EXP, true)
DEF_UNARY(log, TYR_UN_LOG, true)
DEF_UNARY(sqrt, TYR_UN_SQRT, true)
DEF_UNARY(rsqrt, TYR_UN_RSQRT, true)
DEF_UNARY(abs, TYR_UN_ABS, true)
DEF_UNARY(tanh, TYR_UN_TANH, true)
DEF_UNARY(sigmoid, TYR_UN_SIGMOID, true)
DEF_UNARY(relu, TYR_UN_RELU, true)
DEF_UNARY(relu2, TYR_UN_RELU2, true)
DEF_UNARY(gelu, TYR_UN_GELU, true)
DEF_UNARY(gelu_tanh, TYR_UN_GELU_TANH, true)
DEF_UNARY(silu, TYR_UN_SILU, true)
DEF_UNARY(square, TYR_UN_SQUARE, true)
DEF_UNARY(reciprocal, TYR_UN_RECIPROCAL, true)
DEF_UNARY(sign, TYR_UN_SIGN, false)
DEF_UNARY(sin, TYR_UN_SIN, true)
DEF_UNARY(cos, TYR_UN_COS, true)
DEF_UNARY(softplus, TYR_UN_SOFTPLUS, true)
tyr_tensor *tyr_leaky_relu_at(tyr_site s, tyr_tensor *x, double negative_slope) {
  return unary(s, "tyr_leaky_relu", TYR_UN_LEAKY_RELU, x, negative_slope, 0, true);
}

tyr_tensor *tyr_softcap_at(tyr_site s, tyr_tensor *x, double cap) {
  if (!(cap > 0)) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_softcap", "cap must be positive, got %g", cap);
    return NULL;
  }
  return unary(s, "tyr_softcap", TYR_UN_SOFTCAP, x, cap, 0, true);
}
tyr_tensor *tyr_clamp_at(tyr_site s, tyr_tensor *x, double lo, double hi) {
  if (lo > hi) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_clamp", "lo (%g) is above hi (%g)", lo, hi);
    return NULL;
  }
  return unary(s, "tyr_clamp", TYR_UN_CLAMP, x, lo, hi, true);
}
tyr_tensor *tyr_pow_scalar_at(tyr_site s, tyr_tensor *x, double p) {
  return unary(s, "tyr_pow_scalar", TYR_UN_POW, x, p, 0, true);
}
tyr_tensor *tyr_add_scalar_at(tyr_site s, tyr_tensor *x, double c) {
  return unary(s, "tyr_add_scalar", TYR_UN_ADD_SCALAR, x, c, 0, true);
}
tyr_tensor *tyr_sub_scalar_at(tyr_site s, tyr_tensor *x, double c) {
  return unary(s, "tyr_sub_scalar", TYR_UN_ADD_SCALAR, x, -c, 0, true);
}
tyr_tensor *tyr_rsub_scalar_at(tyr_site s, tyr_tensor *x, double c) {
  return unary(s, "tyr_rsub_scalar", TYR_UN_RSUB_SCALAR, x, c, 0, true);
}
tyr_tensor *tyr_mul_scalar_at(tyr_site s, tyr_tensor *x, double c) {
  return unary(s, "tyr_mul_scalar", TYR_UN_MUL_SCALAR, x, c, 0, true);
}
tyr_tensor *tyr_div_scalar_at(tyr_site s, tyr_tensor *x, double c) {
  if (c == 0) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_div_scalar", "division by zero");
    return NULL;
  }
  return unary(s, "tyr_div_scalar", TYR_UN_MUL_SCALAR, x, 1.0 / c, 0, true);
}
tyr_tensor *tyr_rdiv_scalar_at(tyr_site s, tyr_tensor *x, double c) {
  return unary(s, "tyr_rdiv_scalar", TYR_UN_RDIV_SCALAR, x, c, 0, true);
}

/* ---- binary --------------------------------------------------------------- */
static bool binary_args(tyr_site s, const char *op, tyr_tensor *a, tyr_tensor *b) {
  return tyr__arg_ok(s, op, "a", a) && tyr__arg_ok(s, op, "b", b) &&
         tyr__same_device(s, op, a, b) && tyr__same_dtype(s, op, a, b) &&
         tyr__same_shape(s, op, a, b) && tyr_backend_get(s, op, a->device);
}

static void run_binary(tyr_site s, const char *op, tyr_binary_op bop, tyr_tensor *out,
                       tyr_tensor *a, tyr_tensor *b) {
  if (tyr__needs_f32(a)) {
    tyr_tensor *af = tyr__convert(s, op, a, TYR_F32), *bf = tyr__convert(s, op, b, TYR_F32);
    tyr_tensor *of =
        out->dtype == TYR_BOOL ? out : tyr__new(s, op, TYR_F32, out->device, out->rank, out->shape);
    tyr__be(a)->binary(bop, of, af, bf);
    if (of != out) {
      tyr__be(a)->copy(out, of);
      tyr_tensor_free(of);
    }
    tyr_tensor_free(af);
    tyr_tensor_free(bf);
    return;
  }
  tyr__be(a)->binary(bop, out, a, b);
}

static void binary_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *a = n->in[0], *b = n->in[1];
  bool na = tyr__node_needs(n, 0), nb = tyr__node_needs(n, 1);
  switch ((tyr_binary_op)n->i[0]) {
  case TYR_BIN_ADD:
    if (na) gin[0] = g;
    if (nb) gin[1] = g;
    break;
  case TYR_BIN_SUB:
    if (na) gin[0] = g;
    if (nb) gin[1] = tyr_neg_at(s, g);
    break;
  case TYR_BIN_MUL:
    if (na) gin[0] = tyr_mul_at(s, g, b);
    if (nb) gin[1] = tyr_mul_at(s, g, a);
    break;
  case TYR_BIN_DIV:
    if (na) gin[0] = tyr_div_at(s, g, b);
    if (nb) gin[1] = tyr_neg_at(s, tyr_div_at(s, tyr_mul_at(s, g, a), tyr_mul_at(s, b, b)));
    break;
  case TYR_BIN_POW: {
    tyr_tensor *y = n->out; /* a ^ b */
    if (na) gin[0] = tyr_mul_at(s, g, tyr_mul_at(s, b, tyr_div_at(s, y, a)));
    if (nb) gin[1] = tyr_mul_at(s, g, tyr_mul_at(s, y, tyr_log_at(s, a)));
    break;
  }
  case TYR_BIN_MAX:
  case TYR_BIN_MIN: {
    /* the gradient goes to the operand that was chosen (a on ties) */
    tyr_tensor *pick_a = n->i[0] == TYR_BIN_MAX ? tyr_ge_at(s, a, b) : tyr_le_at(s, a, b);
    tyr_tensor *zero = tyr_mul_scalar_at(s, g, 0.0);
    if (na) gin[0] = tyr_where_at(s, pick_a, g, zero);
    if (nb) gin[1] = tyr_where_at(s, pick_a, zero, g);
    break;
  }
  default:
    break;
  }
}

static tyr_tensor *binary(tyr_site s, const char *op, tyr_binary_op bop, tyr_tensor *a,
                          tyr_tensor *b) {
  if (!binary_args(s, op, a, b)) return NULL;
  bool cmp = bop >= TYR_BIN_EQ;
  if (!cmp && a->dtype == TYR_BOOL) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "arithmetic on bool tensors; convert them first");
    return NULL;
  }
  tyr_tensor *out = tyr__new(s, op, cmp ? TYR_BOOL : a->dtype, a->device, a->rank, a->shape);
  if (!out) return NULL;
  run_binary(s, op, bop, out, a, b);
  if (!cmp && tyr_dtype_is_float(a->dtype)) {
    tyr_node *n = TYR_RECORD(s, op, out, binary_backward, a, b);
    if (n) n->i[0] = bop;
  }
  return out;
}

/* ---- residual add: x + y with y converted to x's dtype ---------------------- */
static void residual_add_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_tensor *y = n->in[1];
  tyr_tensor *c = tyr__grad_cast_take(n); /* g converted by the kernel that finished it */
  if (tyr__node_needs(n, 0)) gin[0] = g;
  if (tyr__node_needs(n, 1))
    gin[1] = g->dtype == y->dtype        ? g
             : c && c->dtype == y->dtype ? c
                                         : tyr_to_dtype_at(n->site, g, y->dtype);
}

tyr_tensor *tyr_residual_add_at(tyr_site s, tyr_tensor *x, tyr_tensor *y) {
  const char *op = "tyr_residual_add";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "y", y) || !tyr__is_float(s, op, "x", x) ||
      !tyr__is_float(s, op, "y", y) || !tyr__same_device(s, op, x, y) ||
      !tyr__same_shape(s, op, x, y) || !tyr_backend_get(s, op, x->device))
    return NULL;
  tyr_tensor *out = tyr__new_like(s, op, x);
  if (!out) return NULL;
  /* one kernel for an f32 stream and a 16-bit y the device computes
     natively (it widens y as it reads it); other mixes convert y first */
  bool native =
      x->dtype == y->dtype ||
      (x->dtype == TYR_F32 && (y->dtype == TYR_BF16 || y->dtype == TYR_F16) && !tyr__needs_f32(y));
  tyr_tensor *yk = native ? y : tyr__convert(s, op, y, x->dtype);
  if (!yk) {
    tyr_tensor_free(out);
    return NULL;
  }
  run_binary(s, op, TYR_BIN_ADD, out, x, yk);
  if (yk != y) tyr_tensor_free(yk);
  tyr__residual_add_record(s, out, x, y);
  return out;
}

void tyr__residual_add_record(tyr_site s, tyr_tensor *out, tyr_tensor *x, tyr_tensor *y) {
  tyr_node *n = TYR_RECORD(s, "tyr_residual_add", out, residual_add_backward, x, y);
  /* its backward converts the stream's gradient for a 16-bit y: a norm's
     backward that finishes that gradient may write the copy as it does */
  if (n && y->requires_grad && y->dtype != x->dtype &&
      (y->dtype == TYR_BF16 || y->dtype == TYR_F16))
    tyr__node_converts_grad(n, y->dtype);
}

#define DEF_BINARY(name, BOP)                                                                      \
  tyr_tensor *tyr_##name##_at(tyr_site s, tyr_tensor *a, tyr_tensor *b) {                          \
    return binary(s, "tyr_" #name, BOP, a, b);                                                     \
  }
DEF_BINARY(add, TYR_BIN_ADD)
DEF_BINARY(sub, TYR_BIN_SUB)
DEF_BINARY(mul, TYR_BIN_MUL)
DEF_BINARY(div, TYR_BIN_DIV)
DEF_BINARY(pow, TYR_BIN_POW)
DEF_BINARY(maximum, TYR_BIN_MAX)
DEF_BINARY(minimum, TYR_BIN_MIN)
DEF_BINARY(eq, TYR_BIN_EQ)
DEF_BINARY(ne, TYR_BIN_NE)
DEF_BINARY(lt, TYR_BIN_LT)
DEF_BINARY(le, TYR_BIN_LE)
DEF_BINARY(gt, TYR_BIN_GT)
DEF_BINARY(ge, TYR_BIN_GE)

/* ---- where, masked_fill ---------------------------------------------------- */
static void where_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *cond = n->in[0];
  tyr_tensor *zero = tyr_mul_scalar_at(s, g, 0.0);
  if (tyr__node_needs(n, 1)) gin[1] = tyr_where_at(s, cond, g, zero);
  if (tyr__node_needs(n, 2)) gin[2] = tyr_where_at(s, cond, zero, g);
}

tyr_tensor *tyr_where_at(tyr_site s, tyr_tensor *cond, tyr_tensor *a, tyr_tensor *b) {
  const char *op = "tyr_where";
  if (!tyr__arg_ok(s, op, "cond", cond) || !binary_args(s, op, a, b)) return NULL;
  if (cond->dtype != TYR_BOOL && cond->dtype != TYR_U8) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "cond must be bool or u8, not %s", tyr_dtype_name(cond->dtype));
    return NULL;
  }
  if (!tyr__same_device(s, op, cond, a) || !tyr__same_shape(s, op, cond, a)) return NULL;
  tyr_tensor *out = tyr__new_like(s, op, a);
  if (!out) return NULL;
  tyr__be(a)->where(out, cond, a, b);
  if (tyr_dtype_is_float(a->dtype)) TYR_RECORD(s, op, out, where_backward, cond, a, b);
  return out;
}

tyr_tensor *tyr_masked_fill_at(tyr_site s, tyr_tensor *x, tyr_tensor *mask, double value) {
  const char *op = "tyr_masked_fill";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "mask", mask)) return NULL;
  if (!tyr__same_device(s, op, x, mask) || !tyr__same_shape(s, op, x, mask)) return NULL;
  if (!tyr_backend_get(s, op, x->device)) return NULL;
  tyr_tensor *fill = tyr__new(s, op, x->dtype, x->device, 0, NULL);
  if (!fill) return NULL;
  tyr__be(x)->fill(fill, value);
  tyr_tensor *full = tyr_expand_at(s, fill, x->rank, x->shape);
  tyr_tensor *out = tyr_where_at(s, mask, full, x);
  tyr_tensor_free(full);
  tyr_tensor_free(fill);
  return out;
}

/* ---- expand and the _row / _col forms -------------------------------------- */
static void expand_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *x = n->in[0];
  int lead = g->rank - x->rank;
  tyr_tensor *acc = g;
  /* sum over leading dims, then over dims where x had size 1 */
  for (int d = 0; d < lead; d++) acc = tyr_sum_dim_at(s, acc, 0, false);
  for (int d = 0; d < x->rank; d++)
    if (x->shape[d] == 1 && acc->shape[d] != 1) acc = tyr_sum_dim_at(s, acc, d, true);
  gin[0] = acc;
}

tyr_tensor *tyr_expand_at(tyr_site s, tyr_tensor *x, int rank, const int64_t *shape) {
  const char *op = "tyr_expand";
  if (!tyr__arg_ok(s, op, "x", x)) return NULL;
  char a[160], b[160];
  if (rank < x->rank || rank > TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "cannot expand %s to rank %d",
              tyr_shape_str(x->shape, x->rank, a, sizeof a), rank);
    return NULL;
  }
  int64_t st[TYR_MAX_RANK];
  int lead = rank - x->rank;
  for (int d = 0; d < rank; d++) {
    if (shape[d] < 0) {
      tyr_raise(TYR_ERR_ARG, s, op, "target dim %d is negative", d);
      return NULL;
    }
    if (d < lead) {
      st[d] = 0;
      continue;
    }
    int64_t xd = x->shape[d - lead];
    if (xd == shape[d]) {
      st[d] = x->stride[d - lead];
    } else if (xd == 1) {
      st[d] = 0;
    } else {
      tyr_raise(TYR_ERR_SHAPE, s, op, "cannot expand %s to %s: dim %d is %lld, not 1 or %lld",
                tyr_shape_str(x->shape, x->rank, a, sizeof a),
                tyr_shape_str(shape, rank, b, sizeof b), d - lead, (long long)xd,
                (long long)shape[d]);
      return NULL;
    }
  }
  tyr_tensor *out = tyr_view_raw(x, rank, shape, st, x->offset);
  if (out) TYR_RECORD(s, op, out, expand_backward, x);
  return out;
}

static tyr_tensor *row_op(tyr_site s, const char *op, tyr_binary_op bop, tyr_tensor *x,
                          tyr_tensor *row) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "row", row)) return NULL;
  char a[160], b[160];
  if (x->rank < 1 || row->rank != 1 || row->shape[0] != x->shape[x->rank - 1]) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "x is %s, so row must be [%lld], but it is %s",
              tyr_shape_str(x->shape, x->rank, a, sizeof a),
              x->rank ? (long long)x->shape[x->rank - 1] : 0LL,
              tyr_shape_str(row->shape, row->rank, b, sizeof b));
    return NULL;
  }
  tyr_tensor *e = tyr_expand_at(s, row, x->rank, x->shape);
  if (!e) return NULL;
  tyr_tensor *out = binary(s, op, bop, x, e);
  tyr_tensor_free(e);
  return out;
}

static tyr_tensor *col_op(tyr_site s, const char *op, tyr_binary_op bop, tyr_tensor *x,
                          tyr_tensor *col) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "col", col)) return NULL;
  char a[160], b[160];
  bool ok = x->rank >= 2 && col->rank == x->rank - 1;
  for (int d = 0; ok && d < col->rank; d++) ok = col->shape[d] == x->shape[d];
  if (!ok) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "x is %s, so col must be %s without its last dim, but it is %s",
              tyr_shape_str(x->shape, x->rank, a, sizeof a), "x's shape",
              tyr_shape_str(col->shape, col->rank, b, sizeof b));
    return NULL;
  }
  /* view col as [..., 1] then expand */
  int64_t sh[TYR_MAX_RANK];
  for (int d = 0; d < col->rank; d++) sh[d] = col->shape[d];
  sh[col->rank] = 1;
  tyr_tensor *c1 = tyr_reshape_at(s, col, col->rank + 1, sh);
  if (!c1) return NULL;
  tyr_tensor *e = tyr_expand_at(s, c1, x->rank, x->shape);
  tyr_tensor *out = e ? binary(s, op, bop, x, e) : NULL;
  tyr_tensor_free(e);
  tyr_tensor_free(c1);
  return out;
}

#define DEF_ROWCOL(name, BOP)                                                                      \
  tyr_tensor *tyr_##name##_row_at(tyr_site s, tyr_tensor *x, tyr_tensor *r) {                      \
    return row_op(s, "tyr_" #name "_row", BOP, x, r);                                              \
  }                                                                                                \
  tyr_tensor *tyr_##name##_col_at(tyr_site s, tyr_tensor *x, tyr_tensor *c) {                      \
    return col_op(s, "tyr_" #name "_col", BOP, x, c);                                              \
  }
DEF_ROWCOL(add, TYR_BIN_ADD)
DEF_ROWCOL(sub, TYR_BIN_SUB)
DEF_ROWCOL(mul, TYR_BIN_MUL)
DEF_ROWCOL(div, TYR_BIN_DIV)
