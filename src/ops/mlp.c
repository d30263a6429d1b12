/* tyr_mlp and tyr_mlp_gelu_tanh: a transformer's feed-forward block as one
 * op,
 *   out = act(x @ w1^T + b1) @ w2^T + b2.
 *
 * Where the backend fuses the activation into the GEMMs (matmul_act and
 * matmul_dact: cuBLASLt's GELU_AUX_BIAS and DGELU epilogues on CUDA for
 * tanh GELU in bf16/f16; on the CPU every activation of tyr_act_kind in
 * f32/f64, applied by the GEMM's threads to the blocks they computed), the
 * op is one graph node:
 *   forward   h = act(x @ w1^T + b1) with pre = x @ w1^T + b1 written by the
 *             same GEMM; out = h @ w2^T + b2 (tyr_linear)
 *   backward  dw2, db2 = dyT @ h and dy summed over rows (one GEMM where the
 *             backend has matmul_bgrad, as tyr_linear's backward); dpre = (dy @ w2) * act'(pre) by
 * one GEMM, db1 = dpre summed over rows; dw1 = dpreT @ x; dx = dpre @ w1 so no elementwise kernel
 * applies the activation or its derivative.  The node keeps pre, and h on the CPU; on CUDA h is
 * computed again from pre in the backward (docs/cuda.md: the memory it saves and the time it
 * costs). Elsewhere (layouts and dtypes the epilogues do not take) the op is tyr_linear, the
 * activation and tyr_linear, with their nodes.  Either way the values are those of the three ops.
 */
#include "ops/nn_util.h"
#include "tyr/autograd.h"
#include "tyr/nn.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_linalg.h"
#include "tyr/ops_nn.h"
#include "tyr/ops_reduce.h"

static tyr_unary_op act_op(tyr_act_kind act) {
  switch (act) {
  case TYR_ACT_GELU:
    return TYR_UN_GELU;
  case TYR_ACT_GELU_TANH:
    return TYR_UN_GELU_TANH;
  case TYR_ACT_RELU2:
    return TYR_UN_RELU2;
  case TYR_ACT_RELU:
    return TYR_UN_RELU;
  case TYR_ACT_SILU:
    return TYR_UN_SILU;
  }
  return TYR_UN_COUNT;
}

/* The dtype the gradients of the weight in[k] and its bias in[k + 1] end
   in (tyr__grad_dtype), or dt when they differ. */
static tyr_dtype param_grad_dtype(const tyr_node *n, int k, tyr_dtype dt) {
  tyr_dtype w = tyr__grad_dtype(n->in[k]);
  return n->in[k + 1] && tyr__grad_dtype(n->in[k + 1]) != w ? dt : w;
}

static void mlp_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  const char *op = n->op;
  tyr_unary_op act = (tyr_unary_op)n->i[0];
  tyr_tensor *x = n->in[0], *w1 = n->in[1], *w2 = n->in[3];
  tyr_tensor *pre = n->saved[0], *h = n->saved[1];
  int64_t M = pre->shape[0], F = pre->shape[1], C = w1->shape[1], C2 = w2->shape[0];
  const tyr_backend *be = tyr__be(g);
  tyr_tensor *g2 = tyr_reshape_at(s, g, 2, (int64_t[]){M, C2});
  tyr_tensor *x2 = tyr_reshape_at(s, x, 2, (int64_t[]){M, C});
  if (!g2 || !x2) return;
  if (!h && tyr__node_needs(n, 3)) { /* not kept (CUDA): act(pre) again, one elementwise pass */
    h = tyr__new(s, op, pre->dtype, pre->device, 2, (int64_t[]){M, F});
    if (!h) return;
    be->unary(act, h, pre, 0, 0);
  }
  /* second layer: dw2 = dyT @ h, db2 = dy summed over rows */
  tyr__linear_param_grads(s, g2, h, tyr__node_needs(n, 3), tyr__node_needs(n, 4),
                          param_grad_dtype(n, 3, g->dtype), &gin[3], &gin[4]);
  if (!tyr__node_needs(n, 0) && !tyr__node_needs(n, 1) && !tyr__node_needs(n, 2)) return;
  /* dpre = (dy @ w2) * act'(pre), the derivative in the GEMM's epilogue
     (DGELU on CUDA); on CUDA db1 = dpre summed over rows by the reduction
     kernel, as cuBLASLt's DGELU_BGRAD runs a separate, slower kernel
     (docs/cuda.md) */
  tyr_tensor *dpre = tyr__new(s, op, g->dtype, g->device, 2, (int64_t[]){M, F});
  if (!dpre) return;
  if (!be->matmul_dact(dpre, g2, w2, pre, act)) { /* the GEMM, then the backward */
    tyr_tensor *dh = tyr_matmul_at(s, g2, w2);
    if (!dh) return;
    be->unary_backward(act, dpre, pre, dh, 0, 0);
  }
  tyr_dtype gdt1 = param_grad_dtype(n, 1, g->dtype);
  /* the CPU: as tyr_linear's backward (a GEMM for db1); CUDA too when the
     GEMM writes the gradients wider than dpre (f32 parameters of a bf16
     layer: no casts after it) */
  if (g->device.type != TYR_CUDA ||
      (gdt1 != g->dtype && tyr__node_needs(n, 1) && tyr__node_needs(n, 2) && be->matmul_bgrad))
    tyr__linear_param_grads(s, dpre, x2, tyr__node_needs(n, 1), tyr__node_needs(n, 2), gdt1,
                            &gin[1], &gin[2]);
  else {
    if (tyr__node_needs(n, 2)) gin[2] = tyr_sum_dim_at(s, dpre, 0, false);
    if (tyr__node_needs(n, 1)) gin[1] = tyr_matmul_at(s, tyr_transpose_at(s, dpre, 0, 1), x2);
  }
  if (tyr__node_needs(n, 0)) {
    tyr_tensor *gx = tyr_matmul_at(s, dpre, w1);
    if (gx) gin[0] = tyr_reshape_at(s, gx, x->rank, x->shape);
  }
}

static bool check_vec(tyr_site s, const char *op, const char *name, const tyr_tensor *b, int64_t n,
                      const tyr_tensor *x) {
  char a[160];
  if (!b) return true;
  if (!tyr__same_device(s, op, x, b) || !tyr__same_dtype(s, op, x, b)) return false;
  if (b->rank != 1 || b->shape[0] != n) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "%s is %s: it must be [%lld]", name,
              tyr_shape_str(b->shape, b->rank, a, sizeof a), (long long)n);
    return false;
  }
  return true;
}

static bool check_operands(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w1,
                           tyr_tensor *b1, tyr_tensor *w2, tyr_tensor *b2) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "w1", w1) ||
      !tyr__arg_ok(s, op, "w2", w2) || !tyr__is_float(s, op, "x", x) ||
      !tyr__same_device(s, op, x, w1) || !tyr__same_device(s, op, x, w2) ||
      !tyr__same_dtype(s, op, x, w1) || !tyr__same_dtype(s, op, x, w2))
    return false;
  char a[160], b[160];
  int r = x->rank;
  if (r < 1 || w1->rank != 2 || w1->shape[1] != x->shape[r - 1]) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "x is %s and w1 is %s: w1 must be [hidden, in] with in the last dim of x",
              tyr_shape_str(x->shape, r, a, sizeof a),
              tyr_shape_str(w1->shape, w1->rank, b, sizeof b));
    return false;
  }
  if (w2->rank != 2 || w2->shape[1] != w1->shape[0]) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "w1 is %s and w2 is %s: w2 must be [out, hidden]",
              tyr_shape_str(w1->shape, 2, a, sizeof a),
              tyr_shape_str(w2->shape, w2->rank, b, sizeof b));
    return false;
  }
  return check_vec(s, op, "b1", b1, w1->shape[0], x) && check_vec(s, op, "b2", b2, w2->shape[0], x);
}

/* The fused node; NULL (nothing raised) when the backend does not take
   these operands, so the caller composes the op instead. */
static tyr_tensor *mlp_fused(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w1,
                             tyr_tensor *b1, tyr_tensor *w2, tyr_tensor *b2, tyr_unary_op act,
                             bool *raised) {
  const tyr_backend *be = tyr__be(x);
  int r = x->rank;
  int64_t M = 1, C = x->shape[r - 1], F = w1->shape[0];
  for (int i = 0; i < r - 1; i++) M *= x->shape[i];
  if (!be->matmul_act || !be->matmul_dact || M == 0 || !tyr_is_contiguous(x)) return NULL;
  tyr_tensor *pre = tyr__new(s, op, x->dtype, x->device, 2, (int64_t[]){M, F});
  tyr_tensor *h = pre ? tyr__new(s, op, x->dtype, x->device, 2, (int64_t[]){M, F}) : NULL;
  if (!h) {
    tyr_tensor_free(pre);
    *raised = true;
    return NULL;
  }
  tyr_tensor x2 = tyr__desc(x, 2, (int64_t[]){M, C}, (int64_t[]){C, 1}, x->offset);
  tyr_tensor w1t = tyr__desc_t(w1);
  if (!be->matmul_act(h, pre, &x2, &w1t, b1, act)) {
    tyr_tensor_free(h);
    tyr_tensor_free(pre);
    return NULL;
  }
  tyr_tensor *out = NULL;
  {
    TYR_NO_GRAD;
    int64_t sh[TYR_MAX_RANK];
    for (int i = 0; i < r - 1; i++) sh[i] = x->shape[i];
    sh[r - 1] = F;
    tyr_tensor *h3 = tyr__nn_view(h, r, sh);
    out = h3 ? tyr_linear_at(s, h3, w2, b2) : NULL;
    tyr__nn_drop(h3);
  }
  if (out) {
    tyr_node *n = TYR_RECORD(s, op, out, mlp_backward, x, w1, b1, w2, b2);
    if (n) {
      n->i[0] = act;
      tyr__node_save(n, 0, pre);
      /* on CUDA h is not kept but computed again from pre in the backward:
         one elementwise pass over [M, hidden] for a buffer of that size per
         layer held from the forward to the backward (GPT-2 124M at batch
         16: 1.2 GB) */
      if (x->device.type != TYR_CUDA) tyr__node_save(n, 1, h);
    }
  }
  tyr_tensor_free(h);
  tyr_tensor_free(pre);
  *raised = !out;
  return out;
}

static tyr_tensor *mlp(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w1, tyr_tensor *b1,
                       tyr_tensor *w2, tyr_tensor *b2, tyr_act_kind act) {
  tyr_unary_op u = act_op(act);
  if (u == TYR_UN_COUNT) {
    tyr_raise(TYR_ERR_ARG, s, op, "act %d is not a tyr_act_kind", (int)act);
    return NULL;
  }
  if (!check_operands(s, op, x, w1, b1, w2, b2)) return NULL;
  bool raised = false;
  /* CUDA's epilogues take tanh GELU only: other activations there go
     straight to the three ops, without allocating the fused node's buffers */
  tyr_tensor *out = x->device.type != TYR_CUDA || u == TYR_UN_GELU_TANH
                        ? mlp_fused(s, op, x, w1, b1, w2, b2, u, &raised)
                        : NULL;
  if (out || raised) return out;
  tyr_tensor *h = tyr_linear_at(s, x, w1, b1);
  h = h ? tyr_nn_act_at(s, act, h) : NULL;
  return h ? tyr_linear_at(s, h, w2, b2) : NULL;
}

tyr_tensor *tyr_mlp_at(tyr_site s, tyr_tensor *x, tyr_tensor *w1, tyr_tensor *b1, tyr_tensor *w2,
                       tyr_tensor *b2, tyr_act_kind act) {
  return mlp(s, "tyr_mlp", x, w1, b1, w2, b2, act);
}

tyr_tensor *tyr_mlp_gelu_tanh_at(tyr_site s, tyr_tensor *x, tyr_tensor *w1, tyr_tensor *b1,
                                 tyr_tensor *w2, tyr_tensor *b2) {
  return mlp(s, "tyr_mlp_gelu_tanh", x, w1, b1, w2, b2, TYR_ACT_GELU_TANH);
}
