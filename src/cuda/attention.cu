/* CUDA scaled-dot-product attention, flash-attention style: the forward
 * walks key tiles staged in shared memory with an online softmax in f32
 * (f64 for f64 inputs) and saves each row's log-sum-exp; the backward
 * recomputes the probabilities from it in two passes, dq by blocks of query
 * rows and dk/dv by blocks of keys (summing over the query heads of a
 * group), so no atomics are needed.  Semantics are those of
 * src/cpu/attention.c (see struct tyr_backend in src/core/backend.h).
 *
 * Work split: a block of ATT_WARPS warps owns ATT_RPW rows per warp; a warp
 * scores one row against a tile of 32 keys (or queries) with one lane per
 * key, and accumulates its output row with lane l holding dims l, l+32, ...
 * (NC of them: head dims up to 32 * NC, at most 256). */
#include <math.h>

#include "cuda/cuda_internal.cuh"

#define ATT_WARPS 4
#define ATT_RPW 4
#define ATT_ROWS (ATT_WARPS * ATT_RPW)
#define ATT_TILE 32
#define ATT_MAX_D 256

struct AttShape {
  int64_t B, Hq, Hkv, T, S, D;
  bool causal;
  int64_t window;
};

/* Keys [lo, hi) that query row i may see before the mask. */
__host__ __device__ __forceinline__ void att_key_range(const AttShape &sh, int64_t i, int64_t *lo,
                                                       int64_t *hi) {
  int64_t pos = i + sh.S - sh.T;
  int64_t l = 0, h = sh.S;
  if (sh.causal || sh.window > 0) h = pos + 1 < h ? pos + 1 : h;
  if (sh.window > 0) l = pos - sh.window + 1 > 0 ? pos - sh.window + 1 : 0;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

/* Query rows [ilo, ihi) that may see some key in [j0, j1). */
__host__ __device__ __forceinline__ void att_query_range(const AttShape &sh, int64_t j0, int64_t j1,
                                                         int64_t *ilo, int64_t *ihi) {
  int64_t off = sh.S - sh.T, l = 0, h = sh.T;
  if (sh.causal || sh.window > 0) l = j0 - off > 0 ? j0 - off : 0;
  if (sh.window > 0) h = j1 - 1 - off + sh.window < h ? j1 - 1 - off + sh.window : h;
  if (h < l) h = l;
  *ilo = l;
  *ihi = h;
}

__device__ __forceinline__ bool att_visible(const AttShape &sh, const uint8_t *mask, int64_t i,
                                            int64_t j) {
  if (j < 0 || j >= sh.S || i < 0 || i >= sh.T) return false;
  int64_t pos = i + sh.S - sh.T;
  if ((sh.causal || sh.window > 0) && j > pos) return false;
  if (sh.window > 0 && j <= pos - sh.window) return false;
  return !mask || mask[i * sh.S + j];
}

template <typename C>
__device__ __forceinline__ C warp_max(C x) {
  for (int o = 16; o > 0; o >>= 1) {
    C y = __shfl_xor_sync(0xffffffffu, x, o);
    x = y > x ? y : x;
  }
  return x;
}
template <typename C>
__device__ __forceinline__ C warp_sum(C x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float att_exp(float x) {
  return expf(x);
}
__device__ __forceinline__ double att_exp(double x) {
  return exp(x);
}
__device__ __forceinline__ float att_log(float x) {
  return logf(x);
}
__device__ __forceinline__ double att_log(double x) {
  return log(x);
}
template <typename C>
__device__ __forceinline__ C att_ninf();
template <>
__device__ __forceinline__ float att_ninf<float>() {
  return -INFINITY;
}
template <>
__device__ __forceinline__ double att_ninf<double>() {
  return -(double)INFINITY;
}

/* rows x D of src (row stride D, rows from r0, rmax valid) into dst with
 * row stride ld, as C; rows past rmax are zero */
template <typename T, typename C>
__device__ __forceinline__ void att_stage(C *dst, int ld, const T *src, int64_t r0, int64_t rmax,
                                          int rows, int D) {
  for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
    int r = e / D, d = e - r * D;
    int64_t g = r0 + r;
    dst[r * ld + d] = g < rmax ? to_c(src[g * D + d]) : (C)0;
  }
}

/* ---- forward ------------------------------------------------------------------------ */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    sdpa_fw_kernel(T *out, typename Acc<T>::type *lse, const T *q, const T *k, const T *v,
                   const uint8_t *mask, AttShape sh, typename Acc<T>::type scale) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char att_smem[];
  const int D = (int)sh.D, ldk = D + 1;
  C *sQ = (C *)att_smem;       /* [ATT_ROWS][D] */
  C *sK = sQ + ATT_ROWS * D;   /* [TILE][D + 1] */
  C *sV = sK + ATT_TILE * ldk; /* [TILE][D] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / sh.Hq, h = bh % sh.Hq;
  const int64_t hk = h / (sh.Hq / sh.Hkv);
  /* the last rows first: under a causal mask they have the most keys */
  const int64_t i0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * ATT_ROWS;
  const T *qb = q + bh * sh.T * sh.D;
  const T *kb = k + (b * sh.Hkv + hk) * sh.S * sh.D;
  const T *vb = v + (b * sh.Hkv + hk) * sh.S * sh.D;
  att_stage<T, C>(sQ, D, qb, i0, sh.T, ATT_ROWS, D);

  int64_t ilast = i0 + ATT_ROWS - 1 < sh.T - 1 ? i0 + ATT_ROWS - 1 : sh.T - 1;
  int64_t lo, hi, lo2, hi2;
  att_key_range(sh, i0, &lo, &hi2);
  att_key_range(sh, ilast, &lo2, &hi);
  (void)hi2;
  (void)lo2;

  C m[ATT_RPW], l[ATT_RPW], acc[ATT_RPW][NC];
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    m[r] = att_ninf<C>();
    l[r] = 0;
#pragma unroll
    for (int c = 0; c < NC; c++) acc[r][c] = 0;
  }
  for (int64_t j0 = lo; j0 < hi; j0 += ATT_TILE) {
    __syncthreads();
    att_stage<T, C>(sK, ldk, kb, j0, sh.S, ATT_TILE, D);
    att_stage<T, C>(sV, D, vb, j0, sh.S, ATT_TILE, D);
    __syncthreads();
    const int64_t j = j0 + lane;
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
      const int rl = warp * ATT_RPW + r;
      const int64_t i = i0 + rl;
      if (i >= sh.T) continue;
      bool vis = att_visible(sh, mask, i, j);
      C s = att_ninf<C>();
      if (vis) {
        const C *qr = sQ + rl * D, *kr = sK + lane * ldk;
        C dot = 0;
        for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
        s = dot * scale;
      }
      C mt = warp_max(s);
      if (mt == att_ninf<C>()) continue; /* nothing visible in this tile */
      C mn = m[r] > mt ? m[r] : mt;
      C corr = att_exp(m[r] - mn); /* 0 when m was -inf */
      C p = vis ? att_exp(s - mn) : (C)0;
      l[r] = l[r] * corr + warp_sum(p);
#pragma unroll
      for (int c = 0; c < NC; c++) acc[r][c] *= corr;
      for (int jj = 0; jj < ATT_TILE; jj++) {
        C pj = __shfl_sync(0xffffffffu, p, jj);
        if (pj == (C)0) continue; /* uniform across the warp */
        const C *vr = sV + jj * D;
#pragma unroll
        for (int c = 0; c < NC; c++) {
          int d = lane + 32 * c;
          if (d < D) acc[r][c] += pj * vr[d];
        }
      }
      m[r] = mn;
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    const int64_t i = i0 + warp * ATT_RPW + r;
    if (i >= sh.T) continue;
    T *o = out + (bh * sh.T + i) * sh.D;
    bool any = l[r] > (C)0;
    C inv = any ? (C)1 / l[r] : (C)0;
#pragma unroll
    for (int c = 0; c < NC; c++) {
      int d = lane + 32 * c;
      if (d < D) o[d] = from_c<T>(acc[r][c] * inv);
    }
    if (lane == 0) lse[bh * sh.T + i] = any ? m[r] + att_log(l[r]) : att_ninf<C>();
  }
}

/* ---- backward: delta = rowsum(dout * out) ------------------------------------------------ */
template <typename T>
__global__ void sdpa_delta_kernel(typename Acc<T>::type *delta, const T *dout, const T *out,
                                  int64_t rows, int D) {
  typedef typename Acc<T>::type C;
  const int lane = threadIdx.x % 32;
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; r < rows;
       r += (int64_t)gridDim.x * blockDim.x / 32) {
    C acc = 0;
    for (int d = lane; d < D; d += 32) acc += to_c(dout[r * D + d]) * to_c(out[r * D + d]);
    acc = warp_sum(acc);
    if (lane == 0) delta[r] = acc;
  }
}

/* ---- backward: dq ------------------------------------------------------------------------- */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    sdpa_dq_kernel(T *dq, const T *dout, const T *q, const T *k, const T *v,
                   const typename Acc<T>::type *lse, const typename Acc<T>::type *delta,
                   const uint8_t *mask, AttShape sh, typename Acc<T>::type scale) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char att_smem[];
  const int D = (int)sh.D, ldk = D + 1;
  C *sQ = (C *)att_smem;       /* [ATT_ROWS][D] */
  C *sG = sQ + ATT_ROWS * D;   /* [ATT_ROWS][D]: dout */
  C *sK = sG + ATT_ROWS * D;   /* [TILE][D + 1] */
  C *sV = sK + ATT_TILE * ldk; /* [TILE][D + 1] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / sh.Hq, h = bh % sh.Hq;
  const int64_t hk = h / (sh.Hq / sh.Hkv);
  /* the last rows first: under a causal mask they have the most keys */
  const int64_t i0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * ATT_ROWS;
  const T *kb = k + (b * sh.Hkv + hk) * sh.S * sh.D;
  const T *vb = v + (b * sh.Hkv + hk) * sh.S * sh.D;
  att_stage<T, C>(sQ, D, q + bh * sh.T * sh.D, i0, sh.T, ATT_ROWS, D);
  att_stage<T, C>(sG, D, dout + bh * sh.T * sh.D, i0, sh.T, ATT_ROWS, D);

  int64_t ilast = i0 + ATT_ROWS - 1 < sh.T - 1 ? i0 + ATT_ROWS - 1 : sh.T - 1;
  int64_t lo, hi, lo2, hi2;
  att_key_range(sh, i0, &lo, &hi2);
  att_key_range(sh, ilast, &lo2, &hi);
  (void)hi2;
  (void)lo2;

  C L[ATT_RPW], Dl[ATT_RPW], acc[ATT_RPW][NC];
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    int64_t i = i0 + warp * ATT_RPW + r;
    L[r] = i < sh.T ? lse[bh * sh.T + i] : att_ninf<C>();
    Dl[r] = i < sh.T ? delta[bh * sh.T + i] : (C)0;
#pragma unroll
    for (int c = 0; c < NC; c++) acc[r][c] = 0;
  }
  for (int64_t j0 = lo; j0 < hi; j0 += ATT_TILE) {
    __syncthreads();
    att_stage<T, C>(sK, ldk, kb, j0, sh.S, ATT_TILE, D);
    att_stage<T, C>(sV, ldk, vb, j0, sh.S, ATT_TILE, D);
    __syncthreads();
    const int64_t j = j0 + lane;
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
      const int rl = warp * ATT_RPW + r;
      const int64_t i = i0 + rl;
      if (i >= sh.T || L[r] == att_ninf<C>()) continue;
      bool vis = att_visible(sh, mask, i, j);
      C ds = 0;
      if (vis) {
        const C *qr = sQ + rl * D, *gr = sG + rl * D, *kr = sK + lane * ldk, *vr = sV + lane * ldk;
        C s = 0, dp = 0;
        for (int d = 0; d < D; d++) {
          s += qr[d] * kr[d];
          dp += gr[d] * vr[d];
        }
        C p = att_exp(s * scale - L[r]);
        ds = p * (dp - Dl[r]);
      }
      for (int jj = 0; jj < ATT_TILE; jj++) {
        C dj = __shfl_sync(0xffffffffu, ds, jj);
        if (dj == (C)0) continue;
        const C *kr = sK + jj * ldk;
#pragma unroll
        for (int c = 0; c < NC; c++) {
          int d = lane + 32 * c;
          if (d < D) acc[r][c] += dj * kr[d];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    const int64_t i = i0 + warp * ATT_RPW + r;
    if (i >= sh.T) continue;
    T *o = dq + (bh * sh.T + i) * sh.D;
#pragma unroll
    for (int c = 0; c < NC; c++) {
      int d = lane + 32 * c;
      if (d < D) o[d] = from_c<T>(acc[r][c] * scale);
    }
  }
}

/* ---- backward: dk, dv ----------------------------------------------------------------------- */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    sdpa_dkv_kernel(T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v,
                    const typename Acc<T>::type *lse, const typename Acc<T>::type *delta,
                    const uint8_t *mask, AttShape sh, typename Acc<T>::type scale) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char att_smem[];
  const int D = (int)sh.D, ldq = D + 1;
  C *sK = (C *)att_smem;       /* [ATT_ROWS][D] */
  C *sV = sK + ATT_ROWS * D;   /* [ATT_ROWS][D] */
  C *sQ = sV + ATT_ROWS * D;   /* [TILE][D + 1] */
  C *sG = sQ + ATT_TILE * ldq; /* [TILE][D + 1] */
  C *sL = sG + ATT_TILE * ldq; /* [TILE] */
  C *sD = sL + ATT_TILE;       /* [TILE] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bhk = blockIdx.y, b = bhk / sh.Hkv, hk = bhk % sh.Hkv;
  const int64_t G = sh.Hq / sh.Hkv;
  const int64_t j0 = (int64_t)blockIdx.x * ATT_ROWS;
  const int64_t j1 = j0 + ATT_ROWS < sh.S ? j0 + ATT_ROWS : sh.S;
  att_stage<T, C>(sK, D, k + bhk * sh.S * sh.D, j0, sh.S, ATT_ROWS, D);
  att_stage<T, C>(sV, D, v + bhk * sh.S * sh.D, j0, sh.S, ATT_ROWS, D);
  int64_t ilo, ihi;
  att_query_range(sh, j0, j1, &ilo, &ihi);

  C ak[ATT_RPW][NC], av[ATT_RPW][NC];
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++)
#pragma unroll
    for (int c = 0; c < NC; c++) ak[r][c] = av[r][c] = 0;

  for (int64_t g = 0; g < G; g++) {
    const int64_t bh = b * sh.Hq + hk * G + g;
    const T *qb = q + bh * sh.T * sh.D, *gb = dout + bh * sh.T * sh.D;
    for (int64_t t0 = ilo; t0 < ihi; t0 += ATT_TILE) {
      __syncthreads();
      att_stage<T, C>(sQ, ldq, qb, t0, sh.T, ATT_TILE, D);
      att_stage<T, C>(sG, ldq, gb, t0, sh.T, ATT_TILE, D);
      if (threadIdx.x < ATT_TILE) {
        int64_t i = t0 + threadIdx.x;
        sL[threadIdx.x] = i < sh.T ? lse[bh * sh.T + i] : att_ninf<C>();
        sD[threadIdx.x] = i < sh.T ? delta[bh * sh.T + i] : (C)0;
      }
      __syncthreads();
      const int64_t i = t0 + lane;
      const C Li = sL[lane], Di = sD[lane];
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) {
        const int rl = warp * ATT_RPW + r;
        const int64_t j = j0 + rl;
        if (j >= sh.S) continue;
        bool vis = Li != att_ninf<C>() && att_visible(sh, mask, i, j);
        C p = 0, ds = 0;
        if (vis) {
          const C *kr = sK + rl * D, *vr = sV + rl * D, *qr = sQ + lane * ldq,
                  *gr = sG + lane * ldq;
          C s = 0, dp = 0;
          for (int d = 0; d < D; d++) {
            s += qr[d] * kr[d];
            dp += gr[d] * vr[d];
          }
          p = att_exp(s * scale - Li);
          ds = p * (dp - Di);
        }
        for (int ii = 0; ii < ATT_TILE; ii++) {
          C pi = __shfl_sync(0xffffffffu, p, ii);
          C di = __shfl_sync(0xffffffffu, ds, ii);
          if (pi == (C)0 && di == (C)0) continue;
          const C *qr = sQ + ii * ldq, *gr = sG + ii * ldq;
#pragma unroll
          for (int c = 0; c < NC; c++) {
            int d = lane + 32 * c;
            if (d < D) {
              av[r][c] += pi * gr[d];
              ak[r][c] += di * qr[d];
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    const int64_t j = j0 + warp * ATT_RPW + r;
    if (j >= sh.S) continue;
    T *ok = dk + (bhk * sh.S + j) * sh.D, *ov = dv + (bhk * sh.S + j) * sh.D;
#pragma unroll
    for (int c = 0; c < NC; c++) {
      int d = lane + 32 * c;
      if (d < D) {
        ok[d] = from_c<T>(ak[r][c] * scale);
        ov[d] = from_c<T>(av[r][c]);
      }
    }
  }
}

/* ---- host side ------------------------------------------------------------------------------- */
static AttShape att_shape(const tyr_tensor *q, const tyr_tensor *k, bool causal, int64_t window) {
  AttShape sh;
  sh.B = q->shape[0];
  sh.Hq = q->shape[1];
  sh.Hkv = k->shape[1];
  sh.T = q->shape[2];
  sh.S = k->shape[2];
  sh.D = q->shape[3];
  sh.causal = causal;
  sh.window = window;
  return sh;
}

/* Lanes' dims per row: 1, 2, 4 or 8 (0 when D is too large). */
static int att_nc(int64_t D) {
  if (D <= 32) return 1;
  if (D <= 64) return 2;
  if (D <= 128) return 4;
  if (D <= ATT_MAX_D) return 8;
  return 0;
}

/* Launches kernel with smem bytes of dynamic shared memory (raising the
 * limit past 48 KiB when needed). */
template <typename K, typename... A>
static bool att_launch(K kernel, dim3 grid, size_t smem, cudaStream_t st, A... args) {
  if (smem > 48 * 1024 && !CUDA_CHECK(cudaFuncSetAttribute(
                              kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
    return false;
  kernel<<<grid, ATT_WARPS * 32, smem, st>>>(args...);
  return LAUNCH_CHECK();
}

#define ATT_NC_DISPATCH(nc, ...)                                                                   \
  switch (nc) {                                                                                    \
  case 1: {                                                                                        \
    const int NCV = 1;                                                                             \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case 2: {                                                                                        \
    const int NCV = 2;                                                                             \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case 4: {                                                                                        \
    const int NCV = 4;                                                                             \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  default: {                                                                                       \
    const int NCV = 8;                                                                             \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  }

static bool att_check(const tyr_tensor *q, const tyr_tensor *lse) {
  int64_t D = q->shape[3];
  if (!att_nc(D)) {
    tcu_fail(__FILE__, __LINE__, "tyr_sdpa", "head dim %lld is larger than the CUDA kernel's %d",
             (long long)D, ATT_MAX_D);
    return false;
  }
  if (q->shape[0] * q->shape[1] > 65535) {
    tcu_fail(__FILE__, __LINE__, "tyr_sdpa",
             "batch x heads = %lld is more than the CUDA kernel's 65535",
             (long long)(q->shape[0] * q->shape[1]));
    return false;
  }
  tyr_dtype want = q->dtype == TYR_F64 ? TYR_F64 : TYR_F32;
  if (lse->dtype != want) {
    tcu_fail(__FILE__, __LINE__, "tyr_sdpa", "lse must be %s for %s inputs, not %s",
             tyr_dtype_name(want), tyr_dtype_name(q->dtype), tyr_dtype_name(lse->dtype));
    return false;
  }
  return true;
}

extern "C" void tcu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                         const tyr_tensor *v, const tyr_tensor *mask, bool causal, int64_t window,
                         double scale) {
  cudaStream_t st = tcu_enter(q->device);
  if (!st || !att_check(q, lse)) return;
  AttShape sh = att_shape(q, k, causal, window);
  if (sh.B * sh.Hq * sh.T == 0) return;
  int D = (int)sh.D;
  dim3 grid((unsigned)((sh.T + ATT_ROWS - 1) / ATT_ROWS), (unsigned)(sh.B * sh.Hq));
  const uint8_t *mp = mask ? (const uint8_t *)tyr_data_ptr(mask) : NULL;
  TCU_FLOAT_DISPATCH(q->dtype, {
    typedef typename Acc<scalar_t>::type C;
    size_t smem =
        sizeof(C) * ((size_t)ATT_ROWS * D + (size_t)ATT_TILE * (D + 1) + (size_t)ATT_TILE * D);
    ATT_NC_DISPATCH(att_nc(D), {
      att_launch(sdpa_fw_kernel<scalar_t, NCV>, grid, smem, st, (scalar_t *)tyr_data_ptr(out),
                 (C *)tyr_data_ptr(lse), (const scalar_t *)tyr_data_ptr(q),
                 (const scalar_t *)tyr_data_ptr(k), (const scalar_t *)tyr_data_ptr(v), mp, sh,
                 (C)scale);
    });
  });
}

extern "C" void tcu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                                  const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                                  const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                                  const tyr_tensor *mask, bool causal, int64_t window,
                                  double scale) {
  cudaStream_t st = tcu_enter(q->device);
  if (!st || !att_check(q, lse)) return;
  AttShape sh = att_shape(q, k, causal, window);
  int D = (int)sh.D;
  int dev = q->device.index;
  int64_t rows = sh.B * sh.Hq * sh.T;
  const uint8_t *mp = mask ? (const uint8_t *)tyr_data_ptr(mask) : NULL;
  if (rows == 0 || sh.S == 0) {
    /* every output element is written: zeros */
    if (tyr_numel(dq)) CUDA_CHECK(cudaMemsetAsync(tyr_data_ptr(dq), 0, tyr_nbytes(dq), st));
    if (tyr_numel(dk)) CUDA_CHECK(cudaMemsetAsync(tyr_data_ptr(dk), 0, tyr_nbytes(dk), st));
    if (tyr_numel(dv)) CUDA_CHECK(cudaMemsetAsync(tyr_data_ptr(dv), 0, tyr_nbytes(dv), st));
    return;
  }
  TCU_FLOAT_DISPATCH(q->dtype, {
    typedef typename Acc<scalar_t>::type C;
    size_t dbytes = sizeof(C) * (size_t)rows;
    C *delta = (C *)tcu_alloc(dbytes, dev);
    if (!delta) return;
    sdpa_delta_kernel<scalar_t><<<tcu_blocks(rows * 32, 256, dev), 256, 0, st>>>(
        delta, (const scalar_t *)tyr_data_ptr(dout), (const scalar_t *)tyr_data_ptr(out), rows, D);
    bool ok = LAUNCH_CHECK();
    size_t smem_q = sizeof(C) * (2 * (size_t)ATT_ROWS * D + 2 * (size_t)ATT_TILE * (D + 1));
    size_t smem_kv = sizeof(C) * (2 * (size_t)ATT_ROWS * D + 2 * (size_t)ATT_TILE * (D + 1) +
                                  2 * (size_t)ATT_TILE);
    dim3 gq((unsigned)((sh.T + ATT_ROWS - 1) / ATT_ROWS), (unsigned)(sh.B * sh.Hq));
    dim3 gkv((unsigned)((sh.S + ATT_ROWS - 1) / ATT_ROWS), (unsigned)(sh.B * sh.Hkv));
    const scalar_t *qp = (const scalar_t *)tyr_data_ptr(q), *kp = (const scalar_t *)tyr_data_ptr(k),
                   *vp = (const scalar_t *)tyr_data_ptr(v),
                   *gp = (const scalar_t *)tyr_data_ptr(dout);
    const C *lp = (const C *)tyr_data_ptr(lse);
    ATT_NC_DISPATCH(att_nc(D), {
      ok = ok &&
           att_launch(sdpa_dq_kernel<scalar_t, NCV>, gq, smem_q, st, (scalar_t *)tyr_data_ptr(dq),
                      gp, qp, kp, vp, lp, (const C *)delta, mp, sh, (C)scale);
      ok = ok && att_launch(sdpa_dkv_kernel<scalar_t, NCV>, gkv, smem_kv, st,
                            (scalar_t *)tyr_data_ptr(dk), (scalar_t *)tyr_data_ptr(dv), gp, qp, kp,
                            vp, lp, (const C *)delta, mp, sh, (C)scale);
    });
    (void)ok;
    tcu_free(delta, dbytes, dev);
  });
}
