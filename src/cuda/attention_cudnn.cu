/* CUDA scaled-dot-product attention through cuDNN's fused flash-attention
 * engines: on Hopper, warpgroup-MMA kernels with the copy engine, the ones
 * PyTorch's scaled_dot_product_attention runs there.  At GPT-2's attention
 * shape on an H100 they take 0.36-0.39 of the mma.sync kernel's
 * (attention_tc.cu) forward time and half its forward + backward
 * (docs/cuda.md), so they are the default where they apply.  cuDNN 9.19 has no single attention
 * operation with a causal mask: the attention is described to its graph API as a graph of
 * operations (two matmuls, the scale, the mask, the softmax and, for the backward, its derivative),
 * the graph cudnn-frontend builds, which cuDNN recognises and runs as one fused kernel.
 *
 * Which calls take it (applies): bf16 or f16 q, k, v; head dim 64 or 128;
 * as many key/value heads as query heads; no bool/u8 mask, document ids or
 * window; T == S when causal (cuDNN's causal mask is aligned at the top
 * left, Tyr's at the bottom right: they agree only then); operands whose
 * head dim is contiguous with 16-byte aligned strides (views into a packed
 * qkv projection are taken in place); compute capability 9.0 or newer;
 * cuDNN 9.10.2 or newer (CUDNN_MIN_VERSION; up to 9.15.0 the backward
 * only with S % 128 == 0); the attention kernel setting AUTO (the default)
 * or CUDNN.  The forward writes the row's natural-log
 * log-sum-exp of the scaled scores, as the other kernels do, so any
 * backward can follow any forward.
 *
 * Plans: building a graph and asking cuDNN for an engine costs milliseconds,
 * so the finalized execution plan is kept per shape, layout and device, for
 * the process (a captured CUDA graph keeps calling a plan's kernels); past
 * PLAN_SLOTS shapes a new one runs on the tensor-core kernel.  A shape cuDNN
 * declines is remembered as declined and goes to the tensor-core kernel from
 * then on; TYR_CUDA_ATTN_VERBOSE=1 in the environment prints why.  While a
 * CUDA graph is being captured no plan is built (cuDNN may allocate or
 * compile): a shape first seen during capture runs on the tensor-core
 * kernel. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "cuda/attention_tc.cuh"
#include "cuda/dnn.cuh"
#include "tyr/cuda.h"

namespace {

/* ---- a graph under construction ------------------------------------------------------------
 * Every descriptor made is kept here, alive as long as the plan built from
 * them (for the process), or destroyed when cuDNN declines the graph.  The
 * first failing call is remembered with its line; later calls do nothing. */
#define GB_MAX 160

struct Graph {
  cudnnBackendDescriptor_t d[GB_MAX];
  int n;
  cudnnStatus_t st;
  int line;         /* of the first failure */
  int64_t next_uid; /* virtual tensors */
  cudnnBackendDescriptor_t ops[48];
  int nops;
};

void gb_free(Graph *g) {
  for (int i = g->n - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(g->d[i]);
  g->n = 0;
}

void gb_fail(Graph *g, cudnnStatus_t st, int line) {
  if (g->st == CUDNN_STATUS_SUCCESS && st != CUDNN_STATUS_SUCCESS) {
    g->st = st;
    g->line = line;
  }
}
#define GB_CALL(g, call) gb_fail((g), (g)->st ? (g)->st : (call), __LINE__)

cudnnBackendDescriptor_t gb_new(Graph *g, cudnnBackendDescriptorType_t type) {
  cudnnBackendDescriptor_t d = NULL;
  if (g->st) return NULL;
  if (g->n == GB_MAX) {
    gb_fail(g, CUDNN_STATUS_INTERNAL_ERROR, __LINE__);
    return NULL;
  }
  GB_CALL(g, cudnnBackendCreateDescriptor(type, &d));
  if (d) g->d[g->n++] = d;
  return d;
}

void gb_set(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
            cudnnBackendAttributeType_t type, int64_t count, const void *v) {
  if (!g->st) GB_CALL(g, cudnnBackendSetAttribute(d, name, type, count, v));
}
void gb_link(Graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
             cudnnBackendDescriptor_t v) {
  gb_set(g, d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
}
void gb_finalize(Graph *g, cudnnBackendDescriptor_t d) {
  if (!g->st) GB_CALL(g, cudnnBackendFinalize(d));
}

enum TensorKind { REAL, VIRTUAL, BY_VALUE };

/* A 4-d tensor; uid 0 gives a virtual tensor the next free id. */
cudnnBackendDescriptor_t gb_tensor(Graph *g, int64_t uid, cudnnDataType_t dt, const int64_t dims[4],
                                   const int64_t strides[4], TensorKind kind) {
  cudnnBackendDescriptor_t t = gb_new(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  if (!uid) uid = g->next_uid++;
  const int64_t align = 16;
  const bool virt = kind == VIRTUAL, byval = kind == BY_VALUE;
  gb_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  gb_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
  gb_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
  gb_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
  gb_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  gb_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt);
  gb_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &byval);
  gb_finalize(g, t);
  return t;
}

/* A virtual f32 (or other dt) tensor of packed dims. */
cudnnBackendDescriptor_t gb_virtual(Graph *g, cudnnDataType_t dt, const int64_t dims[4]) {
  const int64_t st[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  return gb_tensor(g, 0, dt, dims, st, VIRTUAL);
}

/* A host scalar passed at execution (by value). */
cudnnBackendDescriptor_t gb_scalar(Graph *g, int64_t uid, cudnnDataType_t dt) {
  const int64_t one[4] = {1, 1, 1, 1};
  return gb_tensor(g, uid, dt, one, one, BY_VALUE);
}

void gb_op(Graph *g, cudnnBackendDescriptor_t op) {
  gb_finalize(g, op);
  if (g->st) return;
  if (g->nops == (int)(sizeof g->ops / sizeof *g->ops)) {
    gb_fail(g, CUDNN_STATUS_INTERNAL_ERROR, __LINE__);
    return;
  }
  g->ops[g->nops++] = op;
}

/* y = mode(x, b, t) elementwise (b, t may be NULL); axis >= 0 for GEN_INDEX. */
void gb_pointwise(Graph *g, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                  cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                  cudnnBackendDescriptor_t y, int64_t axis = -1,
                  cudnnDataType_t prec = CUDNN_DATA_FLOAT) {
  cudnnBackendDescriptor_t pw = gb_new(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  gb_set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  gb_set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
  if (axis >= 0) gb_set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
  gb_finalize(g, pw);
  cudnnBackendDescriptor_t op = gb_new(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  gb_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
  gb_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
  if (b) gb_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
  if (t) gb_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t);
  gb_link(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
  const float one = 1.0f;
  gb_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one);
  gb_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one);
  gb_op(g, op);
}

/* y = reduce(x) over the dims where y has extent 1 */
void gb_reduce(Graph *g, cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x,
               cudnnBackendDescriptor_t y) {
  cudnnBackendDescriptor_t rd = gb_new(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
  const cudnnDataType_t f = CUDNN_DATA_FLOAT;
  gb_set(g, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red);
  gb_set(g, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f);
  const bool det = false;
  gb_set(g, rd, CUDNN_ATTR_REDUCTION_IS_DETERMINISTIC, CUDNN_TYPE_BOOLEAN, 1, &det);
  gb_finalize(g, rd);
  cudnnBackendDescriptor_t op = gb_new(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
  gb_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd);
  gb_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
  gb_link(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
  gb_op(g, op);
}

/* c = a b (batched over the two leading dims), f32 accumulation */
void gb_matmul(Graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
               cudnnBackendDescriptor_t c) {
  cudnnBackendDescriptor_t mm = gb_new(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
  const cudnnDataType_t f = CUDNN_DATA_FLOAT;
  gb_set(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f);
  gb_finalize(g, mm);
  cudnnBackendDescriptor_t op = gb_new(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
  gb_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
  gb_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
  gb_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
  gb_link(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm);
  gb_op(g, op);
}

/* Whether engine configuration cfg is documented deterministic: its engine
 * carries no NONDETERMINISTIC numerical note (false when the notes cannot
 * be read). */
bool cfg_deterministic(Graph *g, cudnnBackendDescriptor_t cfg) {
  cudnnBackendDescriptor_t eng = gb_new(g, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  if (g->st) return false;
  int64_t n = 0;
  if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                               &n, &eng) != CUDNN_STATUS_SUCCESS ||
      n != 1)
    return false;
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int64_t i = 0; i < n && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; i++)
    if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return false;
  return true;
}

/* The operation graph of g's operations, the heuristics' engine
 * configurations in order, and the first that finalizes as a plan (with
 * deterministic, the first whose engine is not marked nondeterministic). */
cudnnBackendDescriptor_t gb_plan(Graph *g, cudnnHandle_t h, bool deterministic, int64_t *ws) {
  cudnnBackendDescriptor_t og = gb_new(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  gb_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->nops, g->ops);
  gb_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  gb_finalize(g, og);
  cudnnBackendDescriptor_t heur = gb_new(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  gb_link(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, og);
  gb_set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  gb_finalize(g, heur);
  if (g->st) return NULL;
  cudnnBackendDescriptor_t cfg[8];
  int64_t ncfg = 0;
  for (int i = 0; i < 8; i++) cfg[i] = gb_new(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
  if (g->st) return NULL;
  GB_CALL(g, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 8, &ncfg, cfg));
  if (g->st) return NULL;
  cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
  for (int64_t i = 0; i < ncfg && i < 8; i++) {
    if (deterministic && !cfg_deterministic(g, cfg[i])) {
      if (g->st) return NULL;
      continue;
    }
    cudnnBackendDescriptor_t plan = gb_new(g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    gb_link(g, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfg[i]);
    if (g->st) return NULL;
    last = cudnnBackendFinalize(plan);
    if (last != CUDNN_STATUS_SUCCESS) continue;
    GB_CALL(g, cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                        CUDNN_TYPE_INT64, 1, NULL, ws));
    return g->st ? NULL : plan;
  }
  gb_fail(g, last, __LINE__);
  return NULL;
}

/* ---- the two graphs -------------------------------------------------------------------------
 * Tensor ids of the operands bound at execution. */
enum {
  UID_Q = 1,
  UID_K,
  UID_V,
  UID_O,
  UID_STATS,
  UID_DO,
  UID_DQ,
  UID_DK,
  UID_DV,
  UID_SCALE,
  UID_NEG_INF,
  UID_SOFTMAX_SUM,
  UID_ONE,
  UID_DQ_ACCUM,
  UID_FIRST_VIRTUAL = 100
};

/* [B, H, rows, D] with the strides of t (head dim contiguous) */
void dims_of(const tyr_tensor *t, int64_t dims[4], int64_t st[4]) {
  for (int i = 0; i < 4; i++) {
    dims[i] = t->shape[i];
    st[i] = t->stride[i];
  }
  st[3] = 1;
}

/* The operand as the graph's [B, H, rows, D] tensor, or its transpose
 * [B, H, D, rows] */
cudnnBackendDescriptor_t io_tensor(Graph *g, int64_t uid, const tyr_tensor *t, bool transposed) {
  int64_t dims[4], st[4];
  dims_of(t, dims, st);
  if (transposed) {
    int64_t r = dims[2];
    dims[2] = dims[3];
    dims[3] = r;
    r = st[2];
    st[2] = st[3];
    st[3] = r;
  }
  return gb_tensor(g, uid, tcu_dnn_dtype(t->dtype), dims, st, REAL);
}

/* The causal mask on scores s: s where row >= column, else -inf. */
cudnnBackendDescriptor_t causal_mask(Graph *g, cudnnBackendDescriptor_t s, const int64_t sd[4],
                                     cudnnBackendDescriptor_t neg_inf) {
  cudnnBackendDescriptor_t row = gb_virtual(g, CUDNN_DATA_INT32, sd);
  cudnnBackendDescriptor_t col = gb_virtual(g, CUDNN_DATA_INT32, sd);
  cudnnBackendDescriptor_t keep = gb_virtual(g, CUDNN_DATA_BOOLEAN, sd);
  cudnnBackendDescriptor_t out = gb_virtual(g, CUDNN_DATA_FLOAT, sd);
  gb_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, s, NULL, NULL, row, 2);
  gb_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, s, NULL, NULL, col, 3);
  gb_pointwise(g, CUDNN_POINTWISE_CMP_GE, row, col, NULL, keep, -1, CUDNN_DATA_BOOLEAN);
  gb_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, s, neg_inf, keep, out);
  return out;
}

/* Forward: O = softmax(scale Q K^T (masked)) V and Stats = the rows'
 * log-sum-exp, as cudnn-frontend's flash-attention node builds it. */
void graph_forward(Graph *g, const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                   const tyr_tensor *out, bool causal) {
  const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], S = k->shape[2];
  const int64_t sd[4] = {B, H, T, S}, rd[4] = {B, H, T, 1};
  cudnnBackendDescriptor_t Q = io_tensor(g, UID_Q, q, false), Kt = io_tensor(g, UID_K, k, true);
  cudnnBackendDescriptor_t V = io_tensor(g, UID_V, v, false), O = io_tensor(g, UID_O, out, false);
  const int64_t rst[4] = {H * T, T, 1, 1};
  cudnnBackendDescriptor_t stats = gb_tensor(g, UID_STATS, CUDNN_DATA_FLOAT, rd, rst, REAL);
  cudnnBackendDescriptor_t scale = gb_scalar(g, UID_SCALE, CUDNN_DATA_FLOAT);

  cudnnBackendDescriptor_t s = gb_virtual(g, CUDNN_DATA_FLOAT, sd);
  gb_matmul(g, Q, Kt, s);
  cudnnBackendDescriptor_t ss = gb_virtual(g, CUDNN_DATA_FLOAT, sd);
  gb_pointwise(g, CUDNN_POINTWISE_MUL, s, scale, NULL, ss);
  if (causal) ss = causal_mask(g, ss, sd, gb_scalar(g, UID_NEG_INF, CUDNN_DATA_FLOAT));

  cudnnBackendDescriptor_t mx = gb_virtual(g, CUDNN_DATA_FLOAT, rd);
  gb_reduce(g, CUDNN_REDUCE_TENSOR_MAX, ss, mx);
  cudnnBackendDescriptor_t sub = gb_virtual(g, CUDNN_DATA_FLOAT, sd);
  gb_pointwise(g, CUDNN_POINTWISE_SUB, ss, mx, NULL, sub);
  cudnnBackendDescriptor_t ex = gb_virtual(g, CUDNN_DATA_FLOAT, sd);
  gb_pointwise(g, CUDNN_POINTWISE_EXP, sub, NULL, NULL, ex);
  cudnnBackendDescriptor_t sum = gb_virtual(g, CUDNN_DATA_FLOAT, rd);
  gb_reduce(g, CUDNN_REDUCE_TENSOR_ADD, ex, sum);
  cudnnBackendDescriptor_t lg = gb_virtual(g, CUDNN_DATA_FLOAT, rd);
  gb_pointwise(g, CUDNN_POINTWISE_LOG, sum, NULL, NULL, lg);
  gb_pointwise(g, CUDNN_POINTWISE_ADD, mx, lg, NULL, stats);
  cudnnBackendDescriptor_t p = gb_virtual(g, tcu_dnn_dtype(q->dtype), sd);
  gb_pointwise(g, CUDNN_POINTWISE_DIV, ex, sum, NULL, p);
  gb_matmul(g, p, V, O);
}

/* y = x viewed with y's dims and strides (a transpose, here) */
void gb_reshape(Graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
  cudnnBackendDescriptor_t op = gb_new(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
  gb_link(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x);
  gb_link(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y);
  gb_op(g, op);
}

/* Backward, as cudnn-frontend's flash-attention backward node builds it:
 * delta = rowsum(dO * O) (softmax_sum, f32, in device memory); P recomputed
 * from Stats; dV = P^T dO; dS = P (dO V^T - delta) scale; dK = dS^T Q;
 * dQ = dS K, accumulated in f32 (dq_accum, in device memory) and converted,
 * or, deterministic, written directly. */
void graph_backward(Graph *g, const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                    const tyr_tensor *out, const tyr_tensor *dout, const tyr_tensor *dq,
                    const tyr_tensor *dk, const tyr_tensor *dv, bool causal, bool deterministic) {
  const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], S = k->shape[2];
  const int64_t D = q->shape[3];
  const int64_t sd[4] = {B, H, T, S}, rd[4] = {B, H, T, 1};
  const int64_t rst[4] = {H * T, T, 1, 1};
  const int64_t sdt[4] = {B, H, S, T}, sdt_st[4] = {H * T * S, T * S, 1, S};
  cudnnBackendDescriptor_t Q = io_tensor(g, UID_Q, q, false), Kt = io_tensor(g, UID_K, k, true);
  cudnnBackendDescriptor_t Vt = io_tensor(g, UID_V, v, true), O = io_tensor(g, UID_O, out, false);
  cudnnBackendDescriptor_t dO = io_tensor(g, UID_DO, dout, false);
  cudnnBackendDescriptor_t dQ = io_tensor(g, UID_DQ, dq, false);
  cudnnBackendDescriptor_t dK = io_tensor(g, UID_DK, dk, false);
  cudnnBackendDescriptor_t dV = io_tensor(g, UID_DV, dv, false);
  cudnnBackendDescriptor_t stats = gb_tensor(g, UID_STATS, CUDNN_DATA_FLOAT, rd, rst, REAL);
  cudnnBackendDescriptor_t ssum = gb_tensor(g, UID_SOFTMAX_SUM, CUDNN_DATA_FLOAT, rd, rst, REAL);
  cudnnBackendDescriptor_t scale = gb_scalar(g, UID_SCALE, CUDNN_DATA_FLOAT);
  cudnnBackendDescriptor_t one = gb_scalar(g, UID_ONE, CUDNN_DATA_FLOAT);
  const cudnnDataType_t io = tcu_dnn_dtype(q->dtype), f = CUDNN_DATA_FLOAT;

  /* delta = rowsum(dO * O) */
  const int64_t od[4] = {B, H, T, D}, ost[4] = {H * T * D, T * D, H * D, 1};
  cudnnBackendDescriptor_t t0 = gb_tensor(g, 0, f, od, ost, VIRTUAL);
  gb_pointwise(g, CUDNN_POINTWISE_MUL, dO, O, NULL, t0);
  cudnnBackendDescriptor_t t1 = gb_virtual(g, f, rd);
  gb_reduce(g, CUDNN_REDUCE_TENSOR_ADD, t0, t1);
  gb_pointwise(g, CUDNN_POINTWISE_MUL, t1, one, NULL, ssum);

  /* P = exp(scale Q K^T - Stats), masked */
  cudnnBackendDescriptor_t s0 = gb_virtual(g, f, sd), s1 = gb_virtual(g, f, sd);
  cudnnBackendDescriptor_t s2 = gb_virtual(g, f, sd);
  gb_matmul(g, Q, Kt, s0);
  gb_pointwise(g, CUDNN_POINTWISE_MUL, s0, scale, NULL, s1);
  gb_pointwise(g, CUDNN_POINTWISE_SUB, s1, stats, NULL, s2);
  if (causal) s2 = causal_mask(g, s2, sd, gb_scalar(g, UID_NEG_INF, f));
  cudnnBackendDescriptor_t p = gb_virtual(g, f, sd);
  gb_pointwise(g, CUDNN_POINTWISE_EXP, s2, NULL, NULL, p);

  /* dV = P^T dO */
  cudnnBackendDescriptor_t pt = gb_tensor(g, 0, io, sdt, sdt_st, VIRTUAL);
  gb_reshape(g, p, pt);
  gb_matmul(g, pt, dO, dV);

  /* dS = P (dO V^T - delta) scale */
  cudnnBackendDescriptor_t dp = gb_virtual(g, f, sd), d1 = gb_virtual(g, f, sd);
  cudnnBackendDescriptor_t d2 = gb_virtual(g, f, sd), ds = gb_virtual(g, f, sd);
  gb_matmul(g, dO, Vt, dp);
  gb_pointwise(g, CUDNN_POINTWISE_SUB, dp, ssum, NULL, d1);
  gb_pointwise(g, CUDNN_POINTWISE_MUL, d1, p, NULL, d2);
  gb_pointwise(g, CUDNN_POINTWISE_MUL, d2, scale, NULL, ds);

  /* dK = dS^T Q */
  cudnnBackendDescriptor_t dst = gb_tensor(g, 0, io, sdt, sdt_st, VIRTUAL);
  gb_reshape(g, ds, dst);
  gb_matmul(g, dst, Q, dK);

  /* dQ = dS K */
  int64_t kd[4], kst[4];
  dims_of(k, kd, kst);
  cudnnBackendDescriptor_t kv = gb_tensor(g, 0, f, kd, kst, VIRTUAL);
  gb_reshape(g, Kt, kv);
  if (deterministic) {
    gb_matmul(g, ds, kv, dQ);
  } else {
    const int64_t qst[4] = {H * T * D, T * D, D, 1};
    cudnnBackendDescriptor_t acc = gb_tensor(g, UID_DQ_ACCUM, f, od, qst, REAL);
    gb_matmul(g, ds, kv, acc);
    gb_pointwise(g, CUDNN_POINTWISE_IDENTITY, acc, NULL, NULL, dQ);
  }
}

/* ---- plans, cached ------------------------------------------------------------------------- */
#define PLAN_SLOTS 64

struct PlanKey {
  int dir; /* 0 forward, 1 backward, 2 backward deterministic */
  int dtype, dev, causal;
  int64_t B, H, T, S, D;
  int64_t st[8][3]; /* strides of the operands' three outer dims */
};

struct Plan {
  PlanKey key;
  bool used, ok;
  Graph g;
  cudnnBackendDescriptor_t plan;
  int64_t ws;
};

pthread_mutex_t g_plan_lock = PTHREAD_MUTEX_INITIALIZER;
Plan g_plans[PLAN_SLOTS];

bool verbose(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("TYR_CUDA_ATTN_VERBOSE");
    v = e && *e && strcmp(e, "0");
  }
  return v;
}

PlanKey plan_key(int dir, const tyr_tensor *const *ops, int n, bool causal) {
  PlanKey k;
  memset(&k, 0, sizeof k);
  const tyr_tensor *q = ops[0];
  k.dir = dir;
  k.dtype = q->dtype;
  k.dev = q->device.index;
  k.causal = causal;
  k.B = q->shape[0];
  k.H = q->shape[1];
  k.T = q->shape[2];
  k.S = ops[1]->shape[2];
  k.D = q->shape[3];
  for (int i = 0; i < n && i < 8; i++)
    for (int j = 0; j < 3; j++) k.st[i][j] = ops[i]->stride[j];
  return k;
}

/* The plan for key, built with build() when not cached; NULL when cuDNN
 * declines the graph (remembered, also when the reason was passing, such as
 * memory), when every slot is taken, or while capturing.  Plans are never
 * freed: a CUDA graph captured with one keeps calling its kernels, so a
 * plan, once returned, stays valid for the process and may be run without
 * the lock.  Called with g_plan_lock held. */
template <typename F>
Plan *plan_get(const PlanKey &key, cudnnHandle_t h, bool capturing, F build) {
  Plan *p = NULL;
  for (int i = 0; i < PLAN_SLOTS; i++) {
    if (!g_plans[i].used) {
      p = &g_plans[i];
      break;
    }
    if (!memcmp(&g_plans[i].key, &key, sizeof key)) return g_plans[i].ok ? &g_plans[i] : NULL;
  }
  if (!p || capturing) {
    if (!p && verbose())
      fprintf(stderr,
              "tyr: cuDNN attention has plans for %d shapes, its most: a new shape runs on the "
              "tensor-core kernel\n",
              PLAN_SLOTS);
    return NULL;
  }
  memset(p, 0, sizeof *p);
  p->key = key;
  p->used = true;
  p->g.next_uid = UID_FIRST_VIRTUAL;
  build(&p->g);
  p->plan = gb_plan(&p->g, h, key.dir == 2, &p->ws);
  p->ok = p->plan != NULL;
  if (verbose()) {
    char what[160];
    snprintf(what, sizeof what, "%s, B %lld H %lld T %lld S %lld D %lld%s",
             key.dir == 0   ? "forward"
             : key.dir == 1 ? "backward"
                            : "deterministic backward",
             (long long)key.B, (long long)key.H, (long long)key.T, (long long)key.S,
             (long long)key.D, key.causal ? ", causal" : "");
    if (p->ok)
      fprintf(stderr, "tyr: cuDNN attention plan (%s): workspace %lld bytes\n", what,
              (long long)p->ws);
    else
      fprintf(stderr,
              "tyr: cuDNN attention declined (%s): %s at %s:%d; the tensor-core kernel runs it\n",
              what, cudnnGetErrorString(p->g.st), __FILE__, p->g.line);
  }
  if (!p->ok) {
    gb_free(&p->g);
    return NULL;
  }
  return p;
}

/* Runs plan p with the operands' addresses (uids[i] -> ptrs[i]) and a
 * workspace from the caching allocator. */
bool plan_run(Plan *p, cudnnHandle_t h, int dev, const int64_t *uids, void **ptrs, int n) {
  void *ws = p->ws > 0 ? tcu_alloc((size_t)p->ws, dev) : NULL;
  if (p->ws > 0 && !ws) return false;
  cudnnBackendDescriptor_t vp = NULL;
  bool ok = DNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
  ok = ok && DNN_CHECK(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                                                CUDNN_TYPE_INT64, n, uids));
  ok = ok && DNN_CHECK(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                                CUDNN_TYPE_VOID_PTR, n, ptrs));
  ok = ok && DNN_CHECK(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                                CUDNN_TYPE_VOID_PTR, 1, &ws));
  ok = ok && DNN_CHECK(cudnnBackendFinalize(vp));
  ok = ok && DNN_CHECK(cudnnBackendExecute(h, p->plan, vp));
  if (vp) cudnnBackendDestroyDescriptor(vp);
  if (ws) tcu_free(ws, (size_t)p->ws, dev);
  return ok;
}

/* Compute capability 9.0 or newer.  cuDNN 9's fused flash-attention
 * engines run on 8.0 too, but only Hopper is aimed at here (where PyTorch's
 * run of them beat the tensor-core kernel's earlier figure,
 * docs/benchmarks.md); elsewhere the tensor-core kernel stays. */
bool device_ok(int dev) {
  return tcu_cc_major(dev) >= 9;
}

bool operand_ok(const tyr_tensor *t, tyr_dtype dt) {
  if (t->dtype != dt || t->rank != 4 || t->stride[3] != 1) return false;
  for (int i = 0; i < 3; i++)
    if (t->shape[i] > 1 && t->stride[i] % 8) return false;
  return tcu_aligned16(tyr_data_ptr(t));
}

/* The cuDNN versions these graphs are written for, as cudnn-frontend
 * builds them: 9.10.2 and newer (-inf as the mask's value from 9.10;
 * 9.10.0 and 9.10.1 have known bugs in bf16/f16 attention).  Up to 9.15.0
 * the frontend adds a padding mask to the backward when S % 128 != 0, the
 * workaround of an invalid memory access fixed in 9.15.1: such a backward
 * is left to the tensor-core kernel there (cudnn_backward_shape_ok). */
#define CUDNN_MIN_VERSION 91002

bool cudnn_version_ok(void) {
  const size_t v = cudnnGetVersion();
  return v >= CUDNN_MIN_VERSION;
}

bool cudnn_backward_shape_ok(int64_t S) {
  return cudnnGetVersion() > 91500 || S % 128 == 0;
}

/* Whether the call is one the cuDNN path takes (the file comment lists
 * the conditions); ops[0] is q, ops[1] k; n == 8 for the backward, which
 * cuDNN's frontend refuses for T == S == 1. */
bool applies(const tyr_tensor *const *ops, int n, const tyr_tensor *mask, const tyr_tensor *doc,
             bool causal, int64_t window) {
  const tyr_tensor *q = ops[0], *k = ops[1];
  const tyr_cuda_attention_kernel kernel = tyr_cuda_get_attention_kernel();
  if (kernel != TYR_CUDA_ATTENTION_AUTO && kernel != TYR_CUDA_ATTENTION_CUDNN) return false;
  if (!cudnn_version_ok()) return false;
  if (n == 8 && ((q->shape[2] == 1 && k->shape[2] == 1) || !cudnn_backward_shape_ok(k->shape[2])))
    return false;
  if (mask || doc || window > 0) return false;
  if (q->dtype != TYR_BF16 && q->dtype != TYR_F16) return false;
  if (q->shape[3] != 64 && q->shape[3] != 128) return false;
  if (k->shape[1] != q->shape[1] || (causal && q->shape[2] != k->shape[2])) return false;
  for (int i = 0; i < n; i++)
    if (!operand_ok(ops[i], q->dtype)) return false;
  return device_ok(q->device.index);
}

} /* namespace */

bool tcu_sdpa_cudnn(cudaStream_t st, tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q,
                    const tyr_tensor *k, const tyr_tensor *v, const tyr_tensor *mask,
                    const tyr_tensor *doc, bool causal, int64_t window, double scale) {
  const tyr_tensor *ops[4] = {q, k, v, out};
  if (!applies(ops, 4, mask, doc, causal, window) || lse->dtype != TYR_F32) return false;
  const int dev = q->device.index;
  cudnnHandle_t h = tcu_dnn_handle(dev, st);
  if (!h) return true; /* raised */
  PlanKey key = plan_key(0, ops, 4, causal);
  pthread_mutex_lock(&g_plan_lock);
  Plan *p = plan_get(key, h, tcu_capturing(dev),
                     [&](Graph *g) { graph_forward(g, q, k, v, out, causal); });
  pthread_mutex_unlock(&g_plan_lock);
  if (!p) return false;
  float fscale = (float)scale, ninf = -INFINITY;
  /* the mask's -inf, last, only with a causal mask */
  const int64_t uids[7] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_NEG_INF};
  void *ptrs[7] = {tyr_data_ptr(q),
                   tyr_data_ptr(k),
                   tyr_data_ptr(v),
                   tyr_data_ptr(out),
                   tyr_data_ptr(lse),
                   &fscale,
                   &ninf};
  if (plan_run(p, h, dev, uids, ptrs, causal ? 7 : 6)) tcu_attention_ran(TYR_CUDA_ATTENTION_CUDNN);
  return true;
}

/* Whether the backward accumulates dq deterministically (TYR_CUDA_ATTN_DETERMINISTIC=0
 * in the environment gives cuDNN's f32 dq accumulator, whose sums depend on
 * the order of the thread blocks' updates). */
static bool deterministic(void) {
  static int d = -1;
  if (d < 0) {
    const char *e = getenv("TYR_CUDA_ATTN_DETERMINISTIC");
    d = !(e && !strcmp(e, "0"));
  }
  return d;
}

namespace {

/* The most workspace one deterministic backward call takes, in bytes (0: no
 * limit).  cuDNN's deterministic engines keep partial dQ sums in f32 (8
 * copies of dQ at GPT-2's shape: 402 MB at B 16), memory that a CUDA
 * graph's pool then holds for good; above the limit the batch is split into
 * equal chunks run one after another, each with its own plan.
 * TYR_CUDA_ATTN_WORKSPACE_MB in the environment (default 0: at GPT-2's
 * B 16 a 64 MiB limit cost 1.6 ms a step and saved 0.32 GB, docs/cuda.md),
 * read once;
 * tcu_sdpa_cudnn_set_workspace_limit (tests).  Called with g_plan_lock held. */
long long g_ws_limit = -1; /* -1: not read yet */

size_t ws_limit(void) {
  if (g_ws_limit < 0) {
    const char *e = getenv("TYR_CUDA_ATTN_WORKSPACE_MB");
    char *end = NULL;
    const long long mb = e && *e ? strtoll(e, &end, 10) : 0;
    g_ws_limit = e && *e && (*end || mb < 0) ? 0 : mb << 20;
  }
  return (size_t)g_ws_limit;
}

} /* namespace */

static __thread int g_backward_calls; /* cuDNN calls of this thread's last backward */

extern "C" int tcu_sdpa_cudnn_backward_calls(void) {
  return g_backward_calls;
}

extern "C" void tcu_sdpa_cudnn_set_workspace_limit(long long bytes) {
  pthread_mutex_lock(&g_plan_lock);
  g_ws_limit = bytes;
  pthread_mutex_unlock(&g_plan_lock);
}

bool tcu_sdpa_cudnn_backward(cudaStream_t st, tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                             const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                             const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                             const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                             int64_t window, double scale) {
  const tyr_tensor *ops[8] = {q, k, v, out, dout, dq, dk, dv};
  if (!applies(ops, 8, mask, doc, causal, window) || lse->dtype != TYR_F32) return false;
  const int dev = q->device.index;
  cudnnHandle_t h = tcu_dnn_handle(dev, st);
  if (!h) return true; /* raised */
  const bool det = deterministic();
  const int dir = det ? 2 : 1;
  const int64_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
  /* the plan for the first n batch entries of the operands */
  auto plan_for = [&](int64_t n, bool capturing) {
    tyr_tensor t[8];
    const tyr_tensor *c[8];
    for (int i = 0; i < 8; i++) {
      t[i] = *ops[i];
      t[i].shape[0] = n;
      c[i] = &t[i];
    }
    return plan_get(plan_key(dir, c, 8, causal), h, capturing, [&](Graph *g) {
      graph_backward(g, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], causal, det);
    });
  };
  pthread_mutex_lock(&g_plan_lock);
  const bool capturing = tcu_capturing(dev);
  Plan *whole = plan_for(B, capturing), *chunk = NULL, *last = NULL;
  int64_t bc = B; /* batch entries a call */
  const size_t limit = ws_limit();
  /* (the per-row f32 tensors of a chunk start 16-byte aligned when H T % 4 == 0) */
  if (whole && det && limit && (size_t)whole->ws > limit && B > 1 && (H * T) % 4 == 0) {
    const int64_t nchunks = std::min<int64_t>(B, ((int64_t)whole->ws + limit - 1) / limit);
    bc = (B + nchunks - 1) / nchunks;
    chunk = plan_for(bc, capturing);
    last = B % bc ? plan_for(B % bc, capturing) : chunk;
    if (!chunk || !last) bc = B; /* declined (or first seen during a capture): whole */
  }
  pthread_mutex_unlock(&g_plan_lock);
  if (!whole) return false;
  /* delta (and the f32 dq accumulator) in device memory */
  const int64_t rows = B * H * T;
  const size_t sbytes = sizeof(float) * (size_t)rows;
  const size_t abytes = det ? 0 : sbytes * (size_t)D;
  float *ssum = (float *)tcu_alloc(sbytes, dev);
  float *acc = abytes ? (float *)tcu_alloc(abytes, dev) : NULL;
  bool ok = ssum && (det || (acc && CUDA_CHECK(cudaMemsetAsync(acc, 0, abytes, st))));
  const size_t es = tyr_dtype_size(q->dtype);
  g_backward_calls = 0;
  for (int64_t b0 = 0; ok && b0 < B; b0 += bc) {
    const int64_t nb = std::min(bc, B - b0);
    Plan *p = nb == B ? whole : nb == bc ? chunk : last;
    float fscale = (float)scale, fone = 1.0f, ninf = -INFINITY;
    int64_t uids[14] = {UID_Q,  UID_K,  UID_V,     UID_O,           UID_DO,    UID_DQ,
                        UID_DK, UID_DV, UID_STATS, UID_SOFTMAX_SUM, UID_SCALE, UID_ONE};
    void *ptrs[14];
    for (int i = 0; i < 8; i++)
      ptrs[i] = (char *)tyr_data_ptr(ops[i]) + (size_t)(b0 * ops[i]->stride[0]) * es;
    ptrs[8] = (float *)tyr_data_ptr(lse) + b0 * H * T;
    ptrs[9] = ssum + b0 * H * T;
    ptrs[10] = &fscale;
    ptrs[11] = &fone;
    /* the mask's -inf only with a causal mask, the accumulator only without determinism */
    int n = 12;
    if (causal) {
      uids[n] = UID_NEG_INF;
      ptrs[n++] = &ninf;
    }
    if (!det) {
      uids[n] = UID_DQ_ACCUM;
      ptrs[n++] = acc + b0 * H * T * D;
    }
    ok = plan_run(p, h, dev, uids, ptrs, n);
    g_backward_calls += ok;
  }
  if (ok) tcu_attention_ran(TYR_CUDA_ATTENTION_CUDNN);
  if (acc) tcu_free(acc, abytes, dev);
  if (ssum) tcu_free(ssum, sbytes, dev);
  return true;
}

/* Whether the cuDNN path runs on device dev with the cuDNN loaded (tests):
 * cuDNN's version (such as 91900), or 0. */
extern "C" int tcu_sdpa_cudnn_device(int dev) {
  return device_ok(dev) && cudnn_version_ok() ? (int)cudnnGetVersion() : 0;
}

/* ---- a check that needs no GPU (test_cuda_ops) -----------------------------------------------
 * Builds the forward and both backward graphs on descriptions of tensors
 * (no data) for contiguous and packed-qkv layouts, causal and not: cuDNN
 * checks each operation as it is finalized.  The operation graph itself
 * needs a handle, so a GPU, and is not built here.  0, or -1 with the first
 * failure described in err. */
extern "C" int tcu_sdpa_cudnn_check_graphs(char *err, size_t n) {
  static const int64_t shapes[2][4] = {{2, 12, 256, 64}, {1, 3, 200, 128}};
  for (int si = 0; si < 2; si++)
    for (int packed = 0; packed < 2; packed++)
      for (int causal = 0; causal < 2; causal++)
        for (int dir = 0; dir < 3; dir++) {
          const int64_t *sh = shapes[si], B = sh[0], H = sh[1], T = sh[2], D = sh[3];
          tyr_tensor t[8]; /* q k v out dout dq dk dv */
          memset(t, 0, sizeof t);
          for (int i = 0; i < 8; i++) {
            const bool in_qkv = packed && (i < 3 || i >= 5);
            t[i].rank = 4;
            memcpy(t[i].shape, sh, sizeof(int64_t) * 4);
            t[i].dtype = TYR_BF16;
            t[i].stride[0] = T * (in_qkv ? 3 : 1) * H * D;
            t[i].stride[1] = D;
            t[i].stride[2] = (in_qkv ? 3 : 1) * H * D;
            t[i].stride[3] = 1;
          }
          Graph g;
          memset(&g, 0, sizeof g);
          g.next_uid = UID_FIRST_VIRTUAL;
          if (dir == 0)
            graph_forward(&g, &t[0], &t[1], &t[2], &t[3], causal);
          else
            graph_backward(&g, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7], causal,
                           dir == 2);
          const cudnnStatus_t st = g.st;
          const int line = g.line, nops = g.nops;
          gb_free(&g);
          const int want = (dir == 0 ? 10 : dir == 1 ? 18 : 17) + (causal ? 4 : 0);
          if (st != CUDNN_STATUS_SUCCESS || nops != want) {
            snprintf(err, n,
                     "%s graph, B %lld H %lld T %lld D %lld%s%s: %s at %s:%d (%d operations, "
                     "want %d)",
                     dir == 0   ? "forward"
                     : dir == 1 ? "backward"
                                : "deterministic backward",
                     (long long)B, (long long)H, (long long)T, (long long)D,
                     packed ? ", packed qkv" : "", causal ? ", causal" : "",
                     cudnnGetErrorString(st), __FILE__, line, nops, want);
            return -1;
          }
        }
  return 0;
}
