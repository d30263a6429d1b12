/* CUDA kernels of the convolution family (the CPU's are in src/cpu/conv.c,
 * the shape rules and tape in src/ops/conv.c).
 *
 * conv2d forward, input gradient and weight gradient: cuDNN's convolution
 * API (cudnnConvolutionForward / BackwardData / BackwardFilter, NCHW,
 * grouped convolutions by cudnnSetConvolutionGroupCount), one cuDNN handle
 * per device on Tyr's stream; per geometry a cached plan (descriptors, and
 * the fastest algorithm of each direction, timed once on first use as
 * torch.backends.cudnn.benchmark does), workspace from the caching
 * allocator.  f32 runs in f32 (CUDNN_FMA_MATH) unless the matmul mode is
 * TF32 or BF16 (tyr_cuda_set_matmul_mode), when cuDNN may use TF32 tensor
 * cores as PyTorch does by default; bf16 and f16 use tensor cores with f32
 * accumulation.
 *
 * Bias add and bias gradient, pooling (max with indices, average, adaptive
 * average) and batch norm: kernels of our own.  Pooling backward gathers
 * (each input element sums the outputs whose window holds it), so no
 * atomics are needed for any dtype.  Batch norm: partial sums over
 * (channel, chunk) blocks, added in order per channel, then one elementwise
 * pass; statistics in double. */
#include "cuda/dnn.cuh"
#include "tyr/cuda.h"

/* The descriptors of one convolution: x [N, C, H, W], w [K, C/g, R, S],
 * y [N, K, P, Q]. */
struct ConvDesc {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  bool ok;
};

static void conv_desc_free(ConvDesc *d) {
  if (d->x) cudnnDestroyTensorDescriptor(d->x);
  if (d->y) cudnnDestroyTensorDescriptor(d->y);
  if (d->w) cudnnDestroyFilterDescriptor(d->w);
  if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
}

static ConvDesc conv_desc(const tyr_conv_geom *g, tyr_dtype dt) {
  ConvDesc d;
  memset(&d, 0, sizeof d);
  cudnnDataType_t t = tcu_dnn_dtype(dt);
  cudnnDataType_t acc = dt == TYR_F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  bool half = dt == TYR_BF16 || dt == TYR_F16;
  tyr_cuda_matmul_mode mode = tyr_cuda_get_matmul_mode();
  cudnnMathType_t math = half                                           ? CUDNN_TENSOR_OP_MATH
                         : dt == TYR_F32 && mode != TYR_CUDA_MATMUL_F32 ? CUDNN_DEFAULT_MATH
                                                                        : CUDNN_FMA_MATH;
  d.ok = DNN_CHECK(cudnnCreateTensorDescriptor(&d.x)) &&
         DNN_CHECK(cudnnCreateTensorDescriptor(&d.y)) &&
         DNN_CHECK(cudnnCreateFilterDescriptor(&d.w)) &&
         DNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv)) &&
         DNN_CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, t, (int)g->N, (int)g->C,
                                              (int)g->H, (int)g->W)) &&
         DNN_CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, t, (int)g->N, (int)g->K,
                                              (int)g->P, (int)g->Q)) &&
         DNN_CHECK(cudnnSetFilter4dDescriptor(d.w, t, CUDNN_TENSOR_NCHW, (int)g->K,
                                              (int)(g->C / g->groups), (int)g->R, (int)g->S)) &&
         DNN_CHECK(cudnnSetConvolution2dDescriptor(
             d.conv, (int)g->pad[0], (int)g->pad[1], (int)g->stride[0], (int)g->stride[1],
             (int)g->dil[0], (int)g->dil[1], CUDNN_CROSS_CORRELATION, acc)) &&
         DNN_CHECK(cudnnSetConvolutionGroupCount(d.conv, (int)g->groups)) &&
         DNN_CHECK(cudnnSetConvolutionMathType(d.conv, math));
  return d;
}

/* Scaling factors: float for float/half data, double for double. */
struct Alpha {
  float f[2];
  double d[2];
  const void *one(tyr_dtype dt) const { return dt == TYR_F64 ? (const void *)&d[1] : &f[1]; }
  const void *zero(tyr_dtype dt) const { return dt == TYR_F64 ? (const void *)&d[0] : &f[0]; }
};
static const Alpha ALPHA = {{0.0f, 1.0f}, {0.0, 1.0}};

#define ALGO_TRIES 8

/* ---- plans: descriptors and algorithms, cached per geometry --------------------------
 * Asking cuDNN for its algorithm list on every call costs about a
 * millisecond (cuDNN 9 builds the candidate engines each time), far more than
 * the convolutions of a small CNN.  A plan keeps one geometry's descriptors
 * and, per direction, the algorithm found by timing the candidates once
 * (cudnnFind*AlgorithmEx, as torch.backends.cudnn.benchmark does) with at
 * most PLAN_WS_MAX bytes of workspace (cuDNN's heuristics while a CUDA graph
 * is being captured).  The cache is per process and not locked, like the cuDNN
 * handles: convolutions are called from one thread at a time. */
#define PLAN_SLOTS 128
#define PLAN_WS_MAX ((size_t)256 << 20)

struct PlanKey {
  int64_t N, C, H, W, K, R, S, P, Q, pad[2], stride[2], dil[2], groups;
  int dtype, math, dev;
};
struct Plan {
  PlanKey key;
  bool used;
  ConvDesc d;
  int algo[3]; /* forward, backward data, backward filter; -1: not chosen yet */
  size_t ws[3];
};
static Plan g_plans[PLAN_SLOTS];
static int g_plan_next;

static PlanKey plan_key(const tyr_conv_geom *g, tyr_dtype dt, int dev) {
  PlanKey k;
  memset(&k, 0, sizeof k); /* padding too: keys are compared with memcmp */
  k.N = g->N, k.C = g->C, k.H = g->H, k.W = g->W, k.K = g->K, k.R = g->R, k.S = g->S;
  k.P = g->P, k.Q = g->Q, k.groups = g->groups;
  for (int i = 0; i < 2; i++)
    k.pad[i] = g->pad[i], k.stride[i] = g->stride[i], k.dil[i] = g->dil[i];
  k.dtype = (int)dt, k.math = (int)tyr_cuda_get_matmul_mode(), k.dev = dev;
  return k;
}

/* The plan of this geometry (made on first use); NULL after raising. */
static Plan *plan_get(const tyr_conv_geom *g, tyr_dtype dt, int dev) {
  PlanKey k = plan_key(g, dt, dev);
  for (int i = 0; i < PLAN_SLOTS; i++)
    if (g_plans[i].used && memcmp(&g_plans[i].key, &k, sizeof k) == 0) return &g_plans[i];
  Plan *p = &g_plans[g_plan_next];
  g_plan_next = (g_plan_next + 1) % PLAN_SLOTS;
  if (p->used) conv_desc_free(&p->d);
  memset(p, 0, sizeof *p);
  p->d = conv_desc(g, dt);
  if (!p->d.ok) {
    conv_desc_free(&p->d);
    memset(p, 0, sizeof *p);
    return NULL;
  }
  p->key = k;
  p->used = true;
  p->algo[0] = p->algo[1] = p->algo[2] = -1;
  return p;
}

/* The first usable result of a cuDNN algorithm list (the fastest when the
 * list comes from timing); -1 when none succeeded.  Deterministic
 * algorithms are not preferred: picking one of them over the fastest gave a
 * wrong bf16 conv3d input gradient on an H200 (cuDNN 9, test_cuda_conv). */
template <typename Perf>
static int pick_algo(const Perf *perf, int n, size_t *ws) {
  for (int i = 0; i < n; i++) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    *ws = perf[i].memory;
    return (int)perf[i].algo;
  }
  return -1;
}

/* Chooses direction dir's algorithm: by timing the candidates once on these
 * very tensors (their outputs are overwritten by the call that follows),
 * with a workspace of at most PLAN_WS_MAX bytes and a quarter of the free
 * memory; while a CUDA graph is being captured (timing would synchronise)
 * from cuDNN's heuristics.  False when no algorithm works. */
static bool plan_choose(cudnnHandle_t h, cudaStream_t st, Plan *p, int dir, const void *x,
                        const void *w, void *y, int dev) {
  const ConvDesc &d = p->d;
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(st, &cap);
  bool timed = cap == cudaStreamCaptureStatusNone;
  size_t wsn = 0, free_b = 0, total_b = 0;
  if (timed && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    wsn = free_b / 4 < PLAN_WS_MAX ? free_b / 4 : PLAN_WS_MAX;
  void *ws = wsn ? tcu_alloc(wsn, dev) : NULL;
  if (!ws) wsn = 0;
  int n = 0, algo = -1;
  size_t need = 0;
  if (dir == 0) {
    cudnnConvolutionFwdAlgoPerf_t perf[ALGO_TRIES];
    cudnnStatus_t r = timed ? cudnnFindConvolutionForwardAlgorithmEx(
                                  h, d.x, x, d.w, w, d.conv, d.y, y, ALGO_TRIES, &n, perf, ws, wsn)
                            : cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y,
                                                                     ALGO_TRIES, &n, perf);
    if (r == CUDNN_STATUS_SUCCESS) algo = pick_algo(perf, n, &need);
  } else if (dir == 1) { /* y: gx, x: gy */
    cudnnConvolutionBwdDataAlgoPerf_t perf[ALGO_TRIES];
    cudnnStatus_t r = timed ? cudnnFindConvolutionBackwardDataAlgorithmEx(
                                  h, d.w, w, d.y, x, d.conv, d.x, y, ALGO_TRIES, &n, perf, ws, wsn)
                            : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x,
                                                                          ALGO_TRIES, &n, perf);
    if (r == CUDNN_STATUS_SUCCESS) algo = pick_algo(perf, n, &need);
  } else { /* x: x, w: gy, y: gw */
    cudnnConvolutionBwdFilterAlgoPerf_t perf[ALGO_TRIES];
    cudnnStatus_t r = timed ? cudnnFindConvolutionBackwardFilterAlgorithmEx(
                                  h, d.x, x, d.y, w, d.conv, d.w, y, ALGO_TRIES, &n, perf, ws, wsn)
                            : cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                  h, d.x, d.y, d.conv, d.w, ALGO_TRIES, &n, perf);
    if (r == CUDNN_STATUS_SUCCESS) algo = pick_algo(perf, n, &need);
  }
  if (ws) tcu_free(ws, wsn, dev);
  if (algo < 0) return false;
  p->algo[dir] = algo;
  p->ws[dir] = need;
  return true;
}

static void conv_forward(cudnnHandle_t h, Plan *p, const tyr_tensor *x, const tyr_tensor *w,
                         tyr_tensor *y, int dev) {
  if (p->algo[0] < 0 && !plan_choose(h, tcu_enter(TYR_DEVICE_CUDA(dev)), p, 0, tyr_data_ptr(x),
                                     tyr_data_ptr(w), tyr_data_ptr(y), dev)) {
    tcu_fail(__FILE__, __LINE__, __func__, "cuDNN has no forward algorithm for this convolution");
    return;
  }
  size_t ws = p->ws[0];
  void *wsp = ws ? tcu_alloc(ws, dev) : NULL;
  if (ws && !wsp) return;
  DNN_CHECK(cudnnConvolutionForward(h, ALPHA.one(x->dtype), p->d.x, tyr_data_ptr(x), p->d.w,
                                    tyr_data_ptr(w), p->d.conv,
                                    (cudnnConvolutionFwdAlgo_t)p->algo[0], wsp, ws,
                                    ALPHA.zero(x->dtype), p->d.y, tyr_data_ptr(y)));
  if (wsp) tcu_free(wsp, ws, dev);
}

static void conv_backward_data(cudnnHandle_t h, Plan *p, const tyr_tensor *gy, const tyr_tensor *w,
                               tyr_tensor *gx, int dev) {
  if (p->algo[1] < 0 && !plan_choose(h, tcu_enter(TYR_DEVICE_CUDA(dev)), p, 1, tyr_data_ptr(gy),
                                     tyr_data_ptr(w), tyr_data_ptr(gx), dev)) {
    tcu_fail(__FILE__, __LINE__, __func__,
             "cuDNN has no backward-data algorithm for this convolution");
    return;
  }
  size_t ws = p->ws[1];
  void *wsp = ws ? tcu_alloc(ws, dev) : NULL;
  if (ws && !wsp) return;
  DNN_CHECK(cudnnConvolutionBackwardData(h, ALPHA.one(gy->dtype), p->d.w, tyr_data_ptr(w), p->d.y,
                                         tyr_data_ptr(gy), p->d.conv,
                                         (cudnnConvolutionBwdDataAlgo_t)p->algo[1], wsp, ws,
                                         ALPHA.zero(gy->dtype), p->d.x, tyr_data_ptr(gx)));
  if (wsp) tcu_free(wsp, ws, dev);
}

static void conv_backward_filter(cudnnHandle_t h, Plan *p, const tyr_tensor *x,
                                 const tyr_tensor *gy, tyr_tensor *gw, int dev) {
  if (p->algo[2] < 0 && !plan_choose(h, tcu_enter(TYR_DEVICE_CUDA(dev)), p, 2, tyr_data_ptr(x),
                                     tyr_data_ptr(gy), tyr_data_ptr(gw), dev)) {
    tcu_fail(__FILE__, __LINE__, __func__,
             "cuDNN has no backward-filter algorithm for this convolution");
    return;
  }
  size_t ws = p->ws[2];
  void *wsp = ws ? tcu_alloc(ws, dev) : NULL;
  if (ws && !wsp) return;
  DNN_CHECK(cudnnConvolutionBackwardFilter(h, ALPHA.one(x->dtype), p->d.x, tyr_data_ptr(x), p->d.y,
                                           tyr_data_ptr(gy), p->d.conv,
                                           (cudnnConvolutionBwdFilterAlgo_t)p->algo[2], wsp, ws,
                                           ALPHA.zero(x->dtype), p->d.w, tyr_data_ptr(gw)));
  if (wsp) tcu_free(wsp, ws, dev);
}

/* ---- bias ------------------------------------------------------------------------- */
template <typename T>
__global__ void bias_add_kernel(T *y, const T *b, int64_t n, int64_t K, int64_t PQ) {
  GRID_LOOP(i, 0, n) {
    int64_t k = (i / PQ) % K;
    y[i] = from_c<T>(to_c(y[i]) + to_c(b[k]));
  }
}

/* gb[k] = sum over n and positions of gy[n, k, :]: one block per channel */
template <typename T>
__global__ void bias_grad_kernel(T *gb, const T *gy, int64_t N, int64_t K, int64_t PQ) {
  int64_t k = blockIdx.x;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < N * PQ; i += blockDim.x) {
    int64_t n = i / PQ, p = i - n * PQ;
    acc += (double)to_c(gy[(n * K + k) * PQ + p]);
  }
  __shared__ double red[256];
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) gb[k] = from_c<T>((typename Acc<T>::type)red[0]);
}

extern "C" void tcu_conv2d(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *w,
                           const tyr_tensor *bias, const tyr_conv_geom *g) {
  cudaStream_t st = tcu_enter(out->device);
  int dev = out->device.index;
  cudnnHandle_t h = st ? tcu_dnn_handle(dev, st) : NULL;
  if (!h) return;
  Plan *p = plan_get(g, x->dtype, dev);
  if (!p) return;
  conv_forward(h, p, x, w, out, dev);
  if (bias) {
    int64_t n = tyr_numel(out);
    TCU_FLOAT_DISPATCH(out->dtype,
                       bias_add_kernel<scalar_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
                           (scalar_t *)tyr_data_ptr(out), (const scalar_t *)tyr_data_ptr(bias), n,
                           g->K, g->P * g->Q));
    LAUNCH_CHECK();
  }
}

extern "C" void tcu_conv2d_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                    const tyr_tensor *gy, const tyr_tensor *x, const tyr_tensor *w,
                                    const tyr_conv_geom *g) {
  cudaStream_t st = tcu_enter(gy->device);
  int dev = gy->device.index;
  cudnnHandle_t h = st ? tcu_dnn_handle(dev, st) : NULL;
  if (!h) return;
  if (gb) {
    TCU_FLOAT_DISPATCH(gy->dtype, bias_grad_kernel<scalar_t><<<(unsigned)g->K, 256, 0, st>>>(
                                      (scalar_t *)tyr_data_ptr(gb),
                                      (const scalar_t *)tyr_data_ptr(gy), g->N, g->K, g->P * g->Q));
    if (!LAUNCH_CHECK()) return;
  }
  if (!gx && !gw) return;
  Plan *p = plan_get(g, gy->dtype, dev);
  if (!p) return;
  if (gx) conv_backward_data(h, p, gy, w, gx, dev);
  if (gw) conv_backward_filter(h, p, x, gy, gw, dev);
}

/* ---- pooling ---------------------------------------------------------------------- */
struct PoolG {
  int kind;
  int64_t H, W, P, Q, kh, kw, sh, sw, ph, pw;
};
static PoolG pool_g(const tyr_pool_geom *g) {
  PoolG p = {(int)g->kind, g->H,         g->W,         g->P,      g->Q,     g->kernel[0],
             g->kernel[1], g->stride[0], g->stride[1], g->pad[0], g->pad[1]};
  return p;
}

/* Input rows [*a, *b) of output row i (adaptive or strided window). */
__device__ __forceinline__ void window(int kind, int64_t i, int64_t in, int64_t out, int64_t k,
                                       int64_t s, int64_t pad, int64_t *a, int64_t *b) {
  if (kind == TYR_POOL_ADAPTIVE_AVG) {
    *a = i * in / out;
    *b = ((i + 1) * in + out - 1) / out;
    return;
  }
  int64_t st = i * s - pad;
  *a = st < 0 ? 0 : st;
  *b = st + k > in ? in : st + k;
}

template <typename T>
__global__ void pool_kernel(T *y, int32_t *idx, const T *x, int64_t n, PoolG g) {
  GRID_LOOP(i, 0, n) {
    int64_t q = i % g.Q, p = (i / g.Q) % g.P, plane = i / (g.P * g.Q);
    const T *xp = x + plane * g.H * g.W;
    int64_t h0, h1, w0, w1;
    window(g.kind, p, g.H, g.P, g.kh, g.sh, g.ph, &h0, &h1);
    window(g.kind, q, g.W, g.Q, g.kw, g.sw, g.pw, &w0, &w1);
    if (g.kind == TYR_POOL_MAX) {
      typename Acc<T>::type best = to_c(xp[h0 * g.W + w0]);
      int64_t at = h0 * g.W + w0;
      for (int64_t hh = h0; hh < h1; hh++)
        for (int64_t ww = w0; ww < w1; ww++) {
          typename Acc<T>::type v = to_c(xp[hh * g.W + ww]);
          if (v > best || (isnan(v) && !isnan(best))) {
            best = v;
            at = hh * g.W + ww;
          }
        }
      y[i] = from_c<T>(best);
      idx[i] = (int32_t)at;
    } else {
      double acc = 0;
      for (int64_t hh = h0; hh < h1; hh++)
        for (int64_t ww = w0; ww < w1; ww++) acc += (double)to_c(xp[hh * g.W + ww]);
      double div = g.kind == TYR_POOL_AVG ? (double)(g.kh * g.kw) : (double)((h1 - h0) * (w1 - w0));
      y[i] = from_c<T>((typename Acc<T>::type)(acc / div));
    }
  }
}

/* The output rows whose window holds input row h: a superset [*a, *b). */
__device__ __forceinline__ void outputs_of(int kind, int64_t h, int64_t in, int64_t out, int64_t k,
                                           int64_t s, int64_t pad, int64_t *a, int64_t *b) {
  if (kind == TYR_POOL_ADAPTIVE_AVG) {
    int64_t lo = h * out / in - 1, hi = (h + 1) * out / in + 2;
    *a = lo < 0 ? 0 : lo;
    *b = hi > out ? out : hi;
    return;
  }
  int64_t lo = h + pad - k + 1; /* smallest start that still covers h */
  *a = lo <= 0 ? 0 : (lo + s - 1) / s;
  int64_t hi = (h + pad) / s + 1;
  *b = hi > out ? out : hi;
}

template <typename T>
__global__ void pool_backward_kernel(T *gx, const T *gy, const int32_t *idx, int64_t n, PoolG g) {
  GRID_LOOP(i, 0, n) {
    int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.H * g.W);
    const T *gp = gy + plane * g.P * g.Q;
    const int32_t *ip = idx ? idx + plane * g.P * g.Q : NULL;
    int64_t p0, p1, q0, q1;
    outputs_of(g.kind, h, g.H, g.P, g.kh, g.sh, g.ph, &p0, &p1);
    outputs_of(g.kind, w, g.W, g.Q, g.kw, g.sw, g.pw, &q0, &q1);
    double acc = 0;
    for (int64_t p = p0; p < p1; p++)
      for (int64_t q = q0; q < q1; q++) {
        int64_t o = p * g.Q + q;
        if (g.kind == TYR_POOL_MAX) {
          if (ip[o] == (int32_t)(h * g.W + w)) acc += (double)to_c(gp[o]);
          continue;
        }
        int64_t a0, a1, b0, b1;
        window(g.kind, p, g.H, g.P, g.kh, g.sh, g.ph, &a0, &a1);
        window(g.kind, q, g.W, g.Q, g.kw, g.sw, g.pw, &b0, &b1);
        if (h < a0 || h >= a1 || w < b0 || w >= b1) continue;
        double div =
            g.kind == TYR_POOL_AVG ? (double)(g.kh * g.kw) : (double)((a1 - a0) * (b1 - b0));
        acc += (double)to_c(gp[o]) / div;
      }
    gx[i] = from_c<T>((typename Acc<T>::type)acc);
  }
}

extern "C" void tcu_pool2d(tyr_tensor *out, tyr_tensor *idx, const tyr_tensor *x,
                           const tyr_pool_geom *g) {
  cudaStream_t st = tcu_enter(out->device);
  if (!st) return;
  int64_t n = tyr_numel(out);
  int dev = out->device.index;
  PoolG pg = pool_g(g);
  TCU_FLOAT_DISPATCH(out->dtype,
                     pool_kernel<scalar_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
                         (scalar_t *)tyr_data_ptr(out), idx ? (int32_t *)tyr_data_ptr(idx) : NULL,
                         (const scalar_t *)tyr_data_ptr(x), n, pg));
  LAUNCH_CHECK();
}

extern "C" void tcu_pool2d_backward(tyr_tensor *gx, const tyr_tensor *gy, const tyr_tensor *idx,
                                    const tyr_pool_geom *g) {
  cudaStream_t st = tcu_enter(gx->device);
  if (!st) return;
  int64_t n = tyr_numel(gx);
  int dev = gx->device.index;
  PoolG pg = pool_g(g);
  TCU_FLOAT_DISPATCH(gx->dtype,
                     pool_backward_kernel<scalar_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
                         (scalar_t *)tyr_data_ptr(gx), (const scalar_t *)tyr_data_ptr(gy),
                         idx ? (const int32_t *)tyr_data_ptr(idx) : NULL, n, pg));
  LAUNCH_CHECK();
}

/* ---- batch norm -------------------------------------------------------------------- */
#define BN_THREADS 256
__device__ __forceinline__ double block_sum(double v, double *red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  double r = red[0];
  __syncthreads();
  return r;
}

/* Batch norm over x [N, C, M] in three steps, so that a layer with few
 * channels still fills the GPU: partial sums over (channel, chunk) blocks,
 * one finishing thread per channel that adds the chunks in order (the
 * result does not depend on scheduling) and turns them into per-channel
 * coefficients, then one elementwise pass over every element.  Sums in
 * double; the variance is E[x^2] - mean^2 of double sums. */
struct BnGrid {
  int64_t N, C, M, chunk; /* elements of a channel per block */
  int split;              /* blocks per channel */
};
static BnGrid bn_grid(int64_t N, int64_t C, int64_t M, int dev) {
  BnGrid g = {N, C, M, 0, 1};
  int64_t cnt = N * M, want = (int64_t)tcu_sm_count(dev) * 8;     /* blocks to fill the GPU */
  int64_t split = (want + C - 1) / C, most = (cnt + 4095) / 4096; /* at least 4096 per block */
  if (split > most) split = most;
  if (split < 1) split = 1;
  g.split = (int)split;
  g.chunk = (cnt + split - 1) / split;
  return g;
}

/* part[(c * split + k) * 2 + {0, 1}] = sums of a and a*b over chunk k of
 * channel c, where a = u and b = v (v NULL: b = a; vmean: v - vmean[c]) */
template <typename T, typename S>
__global__ void bn_partial_kernel(double *part, const T *u, const T *v, const S *vmean, BnGrid g) {
  __shared__ double red[BN_THREADS];
  int64_t c = blockIdx.x / g.split, k = blockIdx.x % g.split;
  int64_t lo = k * g.chunk, hi = lo + g.chunk < g.N * g.M ? lo + g.chunk : g.N * g.M;
  double mu = vmean ? (double)vmean[c] : 0, s1 = 0, s2 = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    int64_t n = i / g.M, o = (n * g.C + c) * g.M + (i - n * g.M);
    double a = (double)to_c(u[o]), bb = v ? (double)to_c(v[o]) - mu : a;
    s1 += a;
    s2 += a * bb;
  }
  s1 = block_sum(s1, red);
  s2 = block_sum(s2, red);
  if (threadIdx.x == 0) {
    part[blockIdx.x * 2] = s1;
    part[blockIdx.x * 2 + 1] = s2;
  }
}

/* per channel: the statistics and y = x * coef[2c] + coef[2c + 1] */
template <typename T, typename S>
__global__ void bn_finish_kernel(S *mean, S *rstd, S *rm, S *rv, double *coef, const double *part,
                                 const T *w, const T *b, BnGrid g, bool training, double momentum,
                                 double eps) {
  int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (c >= g.C) return;
  double mu, rs;
  if (training) {
    double s1 = 0, s2 = 0, cnt = (double)(g.N * g.M);
    for (int k = 0; k < g.split; k++)
      s1 += part[(c * g.split + k) * 2], s2 += part[(c * g.split + k) * 2 + 1];
    mu = s1 / cnt;
    double var = s2 / cnt - mu * mu;
    if (var < 0) var = 0;
    rs = 1.0 / sqrt(var + eps);
    if (rm) rm[c] = (S)((1 - momentum) * (double)rm[c] + momentum * mu);
    if (rv)
      rv[c] =
          (S)((1 - momentum) * (double)rv[c] + momentum * (cnt > 1 ? var * cnt / (cnt - 1) : var));
  } else {
    mu = (double)rm[c];
    rs = 1.0 / sqrt((double)rv[c] + eps);
  }
  mean[c] = (S)mu;
  rstd[c] = (S)rs;
  double wc = w ? (double)to_c(w[c]) : 1.0, bc = b ? (double)to_c(b[c]) : 0.0;
  coef[2 * c] = (double)(S)(rs * wc);
  coef[2 * c + 1] = (double)(S)(bc - mu * rs * wc);
}

template <typename T, typename S>
__global__ void bn_apply_kernel(T *y, const T *x, const double *coef, int64_t n, int64_t C,
                                int64_t M) {
  GRID_LOOP(o, 0, n) {
    int64_t c = (o / M) % C;
    y[o] = from_c<T>((typename Acc<T>::type)((S)to_c(x[o]) * (S)coef[2 * c] + (S)coef[2 * c + 1]));
  }
}

/* backward, per channel: gw = sum(gy * xhat), gb = sum(gy), and the
 * coefficients of gx = a * (gy - mdy - xhat * mdyx) */
template <typename T, typename S>
__global__ void bn_backward_finish_kernel(T *gw, T *gb, double *coef, const double *part,
                                          const T *w, const S *rstd, BnGrid g, bool training) {
  int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (c >= g.C) return;
  double sdy = 0, sdyx = 0, rs = (double)rstd[c], cnt = (double)(g.N * g.M);
  for (int k = 0; k < g.split; k++)
    sdy += part[(c * g.split + k) * 2], sdyx += part[(c * g.split + k) * 2 + 1];
  sdyx *= rs; /* the partials summed gy * (x - mean) */
  if (gw) gw[c] = from_c<T>((typename Acc<T>::type)sdyx);
  if (gb) gb[c] = from_c<T>((typename Acc<T>::type)sdy);
  coef[3 * c] = (w ? (double)to_c(w[c]) : 1.0) * rs;
  coef[3 * c + 1] = training ? sdy / cnt : 0;
  coef[3 * c + 2] = training ? sdyx / cnt : 0;
}

template <typename T, typename S>
__global__ void bn_backward_apply_kernel(T *gx, const T *gy, const T *x, const S *mean,
                                         const S *rstd, const double *coef, int64_t n, int64_t C,
                                         int64_t M) {
  GRID_LOOP(o, 0, n) {
    int64_t c = (o / M) % C;
    double xh = ((double)to_c(x[o]) - (double)mean[c]) * (double)rstd[c];
    double v = coef[3 * c] * ((double)to_c(gy[o]) - coef[3 * c + 1] - xh * coef[3 * c + 2]);
    gx[o] = from_c<T>((typename Acc<T>::type)v);
  }
}

template <typename T>
static T *ptr_of(const tyr_tensor *t) {
  return t ? (T *)tyr_data_ptr(t) : NULL;
}

extern "C" void tcu_batch_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd,
                               const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *b,
                               tyr_tensor *running_mean, tyr_tensor *running_var, bool training,
                               double momentum, double eps) {
  cudaStream_t st = tcu_enter(y->device);
  if (!st) return;
  int dev = y->device.index;
  int64_t N = x->shape[0], C = x->shape[1], M = x->shape[2], n = N * C * M;
  BnGrid g = bn_grid(N, C, M, dev);
  size_t nb = sizeof(double) * (size_t)(2 * C * g.split + 2 * C);
  double *ws = (double *)tcu_alloc(nb, dev);
  if (!ws) return;
  double *part = ws, *coef = ws + 2 * C * g.split;
  unsigned fb = (unsigned)((C + 127) / 128);
  TCU_FLOAT_DISPATCH(x->dtype, {
    typedef typename Acc<scalar_t>::type stat_t;
    if (training && n > 0)
      bn_partial_kernel<scalar_t, stat_t><<<(unsigned)(C * g.split), BN_THREADS, 0, st>>>(
          part, ptr_of<scalar_t>(x), (const scalar_t *)NULL, (const stat_t *)NULL, g);
    bn_finish_kernel<scalar_t, stat_t>
        <<<fb, 128, 0, st>>>(ptr_of<stat_t>(mean), ptr_of<stat_t>(rstd),
                             ptr_of<stat_t>(running_mean), ptr_of<stat_t>(running_var), coef, part,
                             ptr_of<scalar_t>(w), ptr_of<scalar_t>(b), g, training, momentum, eps);
    if (n > 0)
      bn_apply_kernel<scalar_t, stat_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
          ptr_of<scalar_t>(y), ptr_of<scalar_t>(x), coef, n, C, M);
  });
  LAUNCH_CHECK();
  tcu_free(ws, nb, dev);
}

extern "C" void tcu_batch_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb,
                                        const tyr_tensor *gy, const tyr_tensor *x,
                                        const tyr_tensor *w, const tyr_tensor *mean,
                                        const tyr_tensor *rstd, bool training) {
  cudaStream_t st = tcu_enter(x->device);
  if (!st) return;
  int dev = x->device.index;
  int64_t N = x->shape[0], C = x->shape[1], M = x->shape[2], n = N * C * M;
  BnGrid g = bn_grid(N, C, M, dev);
  size_t nb = sizeof(double) * (size_t)(2 * C * g.split + 3 * C);
  double *ws = (double *)tcu_alloc(nb, dev);
  if (!ws) return;
  double *part = ws, *coef = ws + 2 * C * g.split;
  unsigned fb = (unsigned)((C + 127) / 128);
  TCU_FLOAT_DISPATCH(x->dtype, {
    typedef typename Acc<scalar_t>::type stat_t;
    if (n > 0)
      bn_partial_kernel<scalar_t, stat_t><<<(unsigned)(C * g.split), BN_THREADS, 0, st>>>(
          part, ptr_of<scalar_t>(gy), ptr_of<scalar_t>(x), ptr_of<stat_t>(mean), g);
    else
      cudaMemsetAsync(part, 0, sizeof(double) * (size_t)(2 * C * g.split), st);
    bn_backward_finish_kernel<scalar_t, stat_t>
        <<<fb, 128, 0, st>>>(ptr_of<scalar_t>(gw), ptr_of<scalar_t>(gb), coef, part,
                             ptr_of<scalar_t>(w), ptr_of<stat_t>(rstd), g, training);
    if (gx && n > 0)
      bn_backward_apply_kernel<scalar_t, stat_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
          ptr_of<scalar_t>(gx), ptr_of<scalar_t>(gy), ptr_of<scalar_t>(x), ptr_of<stat_t>(mean),
          ptr_of<stat_t>(rstd), coef, n, C, M);
  });
  LAUNCH_CHECK();
  tcu_free(ws, nb, dev);
}

/* The backend table's convolution entries (called from cuda_runtime.cu). */
extern "C" void tcu_conv_register(tyr_backend *t) {
  t->conv2d = tcu_conv2d;
  t->conv2d_backward = tcu_conv2d_backward;
  t->pool2d = tcu_pool2d;
  t->pool2d_backward = tcu_pool2d_backward;
  t->batch_norm = tcu_batch_norm;
  t->batch_norm_backward = tcu_batch_norm_backward;
}
