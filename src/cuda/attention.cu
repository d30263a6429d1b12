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
 * (NC of them: head dims up to 32 * NC, at most 256).
 *
 * Calls that the tensor-core kernel takes (bf16, or f32 in the bf16 matmul
 * mode; head dim 32/64/128; no mask: see attention_tc.cu) go there first. */
#include <math.h>

#include "cuda/attention_tc.cuh"
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
  const int32_t *doc; /* [B, S] document ids, or NULL */
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

/* Whether query i of batch b sees key j. */
__device__ __forceinline__ bool att_visible(const AttShape &sh, const uint8_t *mask, int64_t b,
                                            int64_t i, int64_t j) {
  if (j < 0 || j >= sh.S || i < 0 || i >= sh.T) return false;
  int64_t pos = i + sh.S - sh.T;
  if ((sh.causal || sh.window > 0) && j > pos) return false;
  if (sh.window > 0 && j <= pos - sh.window) return false;
  if (sh.doc && sh.doc[b * sh.S + pos] != sh.doc[b * sh.S + j]) return false;
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
 * row stride ld >= Dp, as C; columns D..Dp-1 and rows past rmax are zero
 * (zeros add nothing to dot products) */
template <typename T, typename C>
__device__ __forceinline__ void att_stage(C *dst, int ld, const T *src, int64_t r0, int64_t rmax,
                                          int rows, int D, int Dp) {
  for (int e = threadIdx.x; e < rows * Dp; e += blockDim.x) {
    int r = e / Dp, d = e - r * Dp;
    int64_t g = r0 + r;
    dst[r * ld + d] = g < rmax && d < D ? to_c(src[g * D + d]) : (C)0;
  }
}

/* Four consecutive values from shared memory (16-byte aligned for f32). */
struct C4f {
  float x, y, z, w;
};
struct C4d {
  double x, y, z, w;
};
__device__ __forceinline__ C4f ld4(const float *p) {
  float4 v = *(const float4 *)p;
  C4f r = {v.x, v.y, v.z, v.w};
  return r;
}
__device__ __forceinline__ C4d ld4(const double *p) {
  double2 a = *(const double2 *)p, b = *(const double2 *)(p + 2);
  C4d r = {a.x, a.y, b.x, b.y};
  return r;
}
template <typename V, typename C>
__device__ __forceinline__ C dot4(const V &a, const V &b, C acc) {
  acc += a.x * b.x;
  acc += a.y * b.y;
  acc += a.z * b.z;
  acc += a.w * b.w;
  return acc;
}

/* Head dim padded to a multiple of 4 (vector loads), and the row stride of
 * a tile read by lane (4 more: rows start 4 banks apart, no conflicts). */
__host__ __device__ __forceinline__ int att_dp(int64_t D) {
  return (int)((D + 3) / 4 * 4);
}

/* ---- forward ------------------------------------------------------------------------
 * A warp's ATT_RPW rows are scored together against the key tile (lane =
 * key), so each key vector loaded from shared memory serves every row. */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    sdpa_fw_kernel(T *out, typename Acc<T>::type *lse, const T *q, const T *k, const T *v,
                   const uint8_t *mask, AttShape sh, typename Acc<T>::type scale) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char att_smem[];
  const int D = (int)sh.D, Dp = att_dp(sh.D), ldk = Dp + 4;
  C *sQ = (C *)att_smem;       /* [ATT_ROWS][Dp] */
  C *sK = sQ + ATT_ROWS * Dp;  /* [TILE][ldk] */
  C *sV = sK + ATT_TILE * ldk; /* [TILE][Dp] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / sh.Hq, h = bh % sh.Hq;
  const int64_t hk = h / (sh.Hq / sh.Hkv);
  /* the last rows first: under a causal mask they have the most keys */
  const int64_t i0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * ATT_ROWS;
  const T *qb = q + bh * sh.T * sh.D;
  const T *kb = k + (b * sh.Hkv + hk) * sh.S * sh.D;
  const T *vb = v + (b * sh.Hkv + hk) * sh.S * sh.D;
  att_stage<T, C>(sQ, Dp, qb, i0, sh.T, ATT_ROWS, D, Dp);

  int64_t ilast = i0 + ATT_ROWS - 1 < sh.T - 1 ? i0 + ATT_ROWS - 1 : sh.T - 1;
  int64_t lo, hi, lo2, hi2;
  att_key_range(sh, i0, &lo, &hi2);
  att_key_range(sh, ilast, &lo2, &hi);
  (void)hi2;
  (void)lo2;
  const C *qw = sQ + warp * ATT_RPW * Dp;

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
    att_stage<T, C>(sK, ldk, kb, j0, sh.S, ATT_TILE, D, Dp);
    att_stage<T, C>(sV, Dp, vb, j0, sh.S, ATT_TILE, D, Dp);
    __syncthreads();
    const int64_t j = j0 + lane;
    C dot[ATT_RPW];
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) dot[r] = 0;
    const C *kr = sK + lane * ldk;
    for (int d = 0; d < Dp; d += 4) {
      auto kv = ld4(kr + d);
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) dot[r] = dot4(ld4(qw + r * Dp + d), kv, dot[r]);
    }
    C p[ATT_RPW];
    bool any = false;
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
      const int64_t i = i0 + warp * ATT_RPW + r;
      bool vis = att_visible(sh, mask, b, i, j);
      C s = vis ? dot[r] * scale : att_ninf<C>();
      C mt = warp_max(s);
      p[r] = 0;
      if (mt == att_ninf<C>()) continue; /* nothing visible to this row in this tile */
      any = true;
      C mn = m[r] > mt ? m[r] : mt;
      C corr = att_exp(m[r] - mn); /* 0 when m was -inf */
      p[r] = vis ? att_exp(s - mn) : (C)0;
      l[r] = l[r] * corr + warp_sum(p[r]);
#pragma unroll
      for (int c = 0; c < NC; c++) acc[r][c] *= corr;
      m[r] = mn;
    }
    if (!any) continue; /* uniform across the warp */
    for (int jj = 0; jj < ATT_TILE; jj++) {
      C pj[ATT_RPW];
      bool nz = false;
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) {
        pj[r] = __shfl_sync(0xffffffffu, p[r], jj);
        nz = nz || pj[r] != (C)0;
      }
      if (!nz) continue; /* uniform across the warp */
      const C *vr = sV + jj * Dp;
#pragma unroll
      for (int c = 0; c < NC; c++) {
        int d = lane + 32 * c;
        C vv = d < Dp ? vr[d] : (C)0;
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) acc[r][c] += pj[r] * vv;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    const int64_t i = i0 + warp * ATT_RPW + r;
    if (i >= sh.T) continue;
    T *o = out + (bh * sh.T + i) * sh.D;
    bool seen = l[r] > (C)0;
    C inv = seen ? (C)1 / l[r] : (C)0;
#pragma unroll
    for (int c = 0; c < NC; c++) {
      int d = lane + 32 * c;
      if (d < D) o[d] = from_c<T>(acc[r][c] * inv);
    }
    if (lane == 0) lse[bh * sh.T + i] = seen ? m[r] + att_log(l[r]) : att_ninf<C>();
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

/* ---- backward: dq (lane = key, rows of a warp scored together) ------------------------------ */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    sdpa_dq_kernel(T *dq, const T *dout, const T *q, const T *k, const T *v,
                   const typename Acc<T>::type *lse, const typename Acc<T>::type *delta,
                   const uint8_t *mask, AttShape sh, typename Acc<T>::type scale) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char att_smem[];
  const int D = (int)sh.D, Dp = att_dp(sh.D), ldk = Dp + 4;
  C *sQ = (C *)att_smem;       /* [ATT_ROWS][Dp] */
  C *sG = sQ + ATT_ROWS * Dp;  /* [ATT_ROWS][Dp]: dout */
  C *sK = sG + ATT_ROWS * Dp;  /* [TILE][ldk] */
  C *sV = sK + ATT_TILE * ldk; /* [TILE][ldk] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / sh.Hq, h = bh % sh.Hq;
  const int64_t hk = h / (sh.Hq / sh.Hkv);
  const int64_t i0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * ATT_ROWS;
  const T *kb = k + (b * sh.Hkv + hk) * sh.S * sh.D;
  const T *vb = v + (b * sh.Hkv + hk) * sh.S * sh.D;
  att_stage<T, C>(sQ, Dp, q + bh * sh.T * sh.D, i0, sh.T, ATT_ROWS, D, Dp);
  att_stage<T, C>(sG, Dp, dout + bh * sh.T * sh.D, i0, sh.T, ATT_ROWS, D, Dp);

  int64_t ilast = i0 + ATT_ROWS - 1 < sh.T - 1 ? i0 + ATT_ROWS - 1 : sh.T - 1;
  int64_t lo, hi, lo2, hi2;
  att_key_range(sh, i0, &lo, &hi2);
  att_key_range(sh, ilast, &lo2, &hi);
  (void)hi2;
  (void)lo2;
  const C *qw = sQ + warp * ATT_RPW * Dp, *gw = sG + warp * ATT_RPW * Dp;

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
    att_stage<T, C>(sK, ldk, kb, j0, sh.S, ATT_TILE, D, Dp);
    att_stage<T, C>(sV, ldk, vb, j0, sh.S, ATT_TILE, D, Dp);
    __syncthreads();
    const int64_t j = j0 + lane;
    C s[ATT_RPW], dp[ATT_RPW];
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) s[r] = dp[r] = 0;
    const C *kr = sK + lane * ldk, *vr = sV + lane * ldk;
    for (int d = 0; d < Dp; d += 4) {
      auto kv = ld4(kr + d), vv = ld4(vr + d);
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) {
        s[r] = dot4(ld4(qw + r * Dp + d), kv, s[r]);
        dp[r] = dot4(ld4(gw + r * Dp + d), vv, dp[r]);
      }
    }
    C ds[ATT_RPW];
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
      const int64_t i = i0 + warp * ATT_RPW + r;
      bool vis = L[r] != att_ninf<C>() && att_visible(sh, mask, b, i, j);
      ds[r] = vis ? att_exp(s[r] * scale - L[r]) * (dp[r] - Dl[r]) : (C)0;
    }
    for (int jj = 0; jj < ATT_TILE; jj++) {
      C dj[ATT_RPW];
      bool nz = false;
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) {
        dj[r] = __shfl_sync(0xffffffffu, ds[r], jj);
        nz = nz || dj[r] != (C)0;
      }
      if (!nz) continue;
      const C *kj = sK + jj * ldk;
#pragma unroll
      for (int c = 0; c < NC; c++) {
        int d = lane + 32 * c;
        C kk = d < Dp ? kj[d] : (C)0;
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) acc[r][c] += dj[r] * kk;
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

/* ---- backward: dk, dv (lane = query, key rows of a warp scored together) -------------------- */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    sdpa_dkv_kernel(T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v,
                    const typename Acc<T>::type *lse, const typename Acc<T>::type *delta,
                    const uint8_t *mask, AttShape sh, typename Acc<T>::type scale) {
  typedef typename Acc<T>::type C;
  extern __shared__ __align__(16) unsigned char att_smem[];
  const int D = (int)sh.D, Dp = att_dp(sh.D), ldq = Dp + 4;
  C *sK = (C *)att_smem;       /* [ATT_ROWS][Dp] */
  C *sV = sK + ATT_ROWS * Dp;  /* [ATT_ROWS][Dp] */
  C *sQ = sV + ATT_ROWS * Dp;  /* [TILE][ldq] */
  C *sG = sQ + ATT_TILE * ldq; /* [TILE][ldq] */
  C *sL = sG + ATT_TILE * ldq; /* [TILE] */
  C *sD = sL + ATT_TILE;       /* [TILE] */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bhk = blockIdx.y, b = bhk / sh.Hkv, hk = bhk % sh.Hkv;
  const int64_t G = sh.Hq / sh.Hkv;
  const int64_t j0 = (int64_t)blockIdx.x * ATT_ROWS;
  const int64_t j1 = j0 + ATT_ROWS < sh.S ? j0 + ATT_ROWS : sh.S;
  att_stage<T, C>(sK, Dp, k + bhk * sh.S * sh.D, j0, sh.S, ATT_ROWS, D, Dp);
  att_stage<T, C>(sV, Dp, v + bhk * sh.S * sh.D, j0, sh.S, ATT_ROWS, D, Dp);
  int64_t ilo, ihi;
  att_query_range(sh, j0, j1, &ilo, &ihi);
  const C *kw = sK + warp * ATT_RPW * Dp, *vw = sV + warp * ATT_RPW * Dp;

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
      att_stage<T, C>(sQ, ldq, qb, t0, sh.T, ATT_TILE, D, Dp);
      att_stage<T, C>(sG, ldq, gb, t0, sh.T, ATT_TILE, D, Dp);
      if (threadIdx.x < ATT_TILE) {
        int64_t i = t0 + threadIdx.x;
        sL[threadIdx.x] = i < sh.T ? lse[bh * sh.T + i] : att_ninf<C>();
        sD[threadIdx.x] = i < sh.T ? delta[bh * sh.T + i] : (C)0;
      }
      __syncthreads();
      const int64_t i = t0 + lane;
      const C Li = sL[lane], Di = sD[lane];
      C s[ATT_RPW], dp[ATT_RPW];
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) s[r] = dp[r] = 0;
      const C *qr = sQ + lane * ldq, *gr = sG + lane * ldq;
      for (int d = 0; d < Dp; d += 4) {
        auto qv = ld4(qr + d), gv = ld4(gr + d);
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) {
          s[r] = dot4(ld4(kw + r * Dp + d), qv, s[r]);
          dp[r] = dot4(ld4(vw + r * Dp + d), gv, dp[r]);
        }
      }
      C p[ATT_RPW], ds[ATT_RPW];
#pragma unroll
      for (int r = 0; r < ATT_RPW; r++) {
        const int64_t j = j0 + warp * ATT_RPW + r;
        bool vis = Li != att_ninf<C>() && j < sh.S && att_visible(sh, mask, b, i, j);
        p[r] = vis ? att_exp(s[r] * scale - Li) : (C)0;
        ds[r] = p[r] * (dp[r] - Di);
      }
      for (int ii = 0; ii < ATT_TILE; ii++) {
        C pi[ATT_RPW], di[ATT_RPW];
        bool nz = false;
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) {
          pi[r] = __shfl_sync(0xffffffffu, p[r], ii);
          di[r] = __shfl_sync(0xffffffffu, ds[r], ii);
          nz = nz || pi[r] != (C)0 || di[r] != (C)0;
        }
        if (!nz) continue;
        const C *qi = sQ + ii * ldq, *gi = sG + ii * ldq;
#pragma unroll
        for (int c = 0; c < NC; c++) {
          int d = lane + 32 * c;
          C qq = d < Dp ? qi[d] : (C)0, gg = d < Dp ? gi[d] : (C)0;
#pragma unroll
          for (int r = 0; r < ATT_RPW; r++) {
            av[r][c] += pi[r] * gg;
            ak[r][c] += di[r] * qq;
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
static AttShape att_shape(const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *doc,
                          bool causal, int64_t window) {
  AttShape sh;
  sh.B = q->shape[0];
  sh.Hq = q->shape[1];
  sh.Hkv = k->shape[1];
  sh.T = q->shape[2];
  sh.S = k->shape[2];
  sh.D = q->shape[3];
  sh.causal = causal;
  sh.window = window;
  sh.doc = doc ? (const int32_t *)tyr_data_ptr(doc) : NULL;
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

/* q, k, v, out (and in the backward dout, dq, dk, dv) may be views whose
 * head dim is contiguous: the tensor-core kernel reads and writes them in
 * place; for the CUDA-core kernels, which take contiguous tensors, strided
 * inputs are copied and strided outputs written through temporaries. */
struct AttTmp {
  TmpTensor tmp[8];
  const tyr_tensor *orig[8];
  tyr_tensor *dense[8];
  int n;
};
static const tyr_tensor *att_in(AttTmp *a, const tyr_tensor *t) {
  if (!t) return NULL;
  const tyr_tensor *c = tcu_contiguous(t, &a->tmp[a->n]);
  a->orig[a->n] = t;
  a->dense[a->n++] = (tyr_tensor *)c;
  return c;
}
static tyr_tensor *att_out(AttTmp *a, tyr_tensor *t) {
  tyr_tensor *c = tyr_is_contiguous(t) ? t : tcu_temp_like(t, t->dtype, &a->tmp[a->n]);
  a->orig[a->n] = t;
  a->dense[a->n++] = c;
  return c;
}
/* outputs copied back (write), then every temporary freed */
static void att_done(AttTmp *a, int nout) {
  for (int i = 0; i < a->n; i++) {
    if (!a->dense[i] || a->dense[i] == a->orig[i]) continue;
    if (i < nout) tcu_copy((tyr_tensor *)a->orig[i], a->dense[i]);
    tcu_release(a->dense[i], &a->tmp[i]);
  }
}

static void sdpa_simt(cudaStream_t st, tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q,
                      const tyr_tensor *k, const tyr_tensor *v, const tyr_tensor *mask,
                      const AttShape &sh, double scale) {
  int D = (int)sh.D;
  dim3 grid((unsigned)((sh.T + ATT_ROWS - 1) / ATT_ROWS), (unsigned)(sh.B * sh.Hq));
  const uint8_t *mp = mask ? (const uint8_t *)tyr_data_ptr(mask) : NULL;
  TCU_FLOAT_DISPATCH(q->dtype, {
    typedef typename Acc<scalar_t>::type C;
    int Dp = att_dp(D);
    size_t smem =
        sizeof(C) * ((size_t)ATT_ROWS * Dp + (size_t)ATT_TILE * (Dp + 4) + (size_t)ATT_TILE * Dp);
    ATT_NC_DISPATCH(att_nc(D), {
      att_launch(sdpa_fw_kernel<scalar_t, NCV>, grid, smem, st, (scalar_t *)tyr_data_ptr(out),
                 (C *)tyr_data_ptr(lse), (const scalar_t *)tyr_data_ptr(q),
                 (const scalar_t *)tyr_data_ptr(k), (const scalar_t *)tyr_data_ptr(v), mp, sh,
                 (C)scale);
    });
  });
}

extern "C" void tcu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                         const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc,
                         bool causal, int64_t window, double scale) {
  cudaStream_t st = tcu_enter(q->device);
  if (!st || !att_check(q, lse)) return;
  AttShape sh = att_shape(q, k, doc, causal, window);
  if (sh.B * sh.Hq * sh.T == 0) return;
  if (tcu_sdpa_cudnn(st, out, lse, q, k, v, mask, doc, causal, window, scale)) return;
  if (tcu_sdpa_tc(st, out, lse, q, k, v, mask, doc, causal, window, scale)) return;
  tcu_attention_ran(TYR_CUDA_ATTENTION_SIMT);
  AttTmp a;
  a.n = 0;
  tyr_tensor *oc = att_out(&a, out);
  const tyr_tensor *qc = att_in(&a, q), *kc = att_in(&a, k), *vc = att_in(&a, v);
  if (oc && qc && kc && vc) sdpa_simt(st, oc, lse, qc, kc, vc, mask, sh, scale);
  att_done(&a, 1);
}

static void sdpa_backward_simt(cudaStream_t st, tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                               const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                               const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                               const tyr_tensor *mask, const AttShape &sh, double scale) {
  int D = (int)sh.D;
  int dev = q->device.index;
  int64_t rows = sh.B * sh.Hq * sh.T;
  const uint8_t *mp = mask ? (const uint8_t *)tyr_data_ptr(mask) : NULL;
  TCU_FLOAT_DISPATCH(q->dtype, {
    typedef typename Acc<scalar_t>::type C;
    size_t dbytes = sizeof(C) * (size_t)rows;
    C *delta = (C *)tcu_alloc(dbytes, dev);
    if (!delta) return;
    sdpa_delta_kernel<scalar_t><<<tcu_blocks(rows * 32, 256, dev), 256, 0, st>>>(
        delta, (const scalar_t *)tyr_data_ptr(dout), (const scalar_t *)tyr_data_ptr(out), rows, D);
    bool ok = LAUNCH_CHECK();
    int Dp = att_dp(D);
    size_t smem_q = sizeof(C) * (2 * (size_t)ATT_ROWS * Dp + 2 * (size_t)ATT_TILE * (Dp + 4));
    size_t smem_kv = sizeof(C) * (2 * (size_t)ATT_ROWS * Dp + 2 * (size_t)ATT_TILE * (Dp + 4) +
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

extern "C" void tcu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                                  const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                                  const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                                  const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                                  int64_t window, double scale) {
  cudaStream_t st = tcu_enter(q->device);
  if (!st || !att_check(q, lse)) return;
  AttShape sh = att_shape(q, k, doc, causal, window);
  if (sh.B * sh.Hq * sh.T == 0 || sh.S == 0) {
    /* every output element is written: zeros */
    if (tyr_numel(dq)) tcu_fill(dq, 0.0);
    if (tyr_numel(dk)) tcu_fill(dk, 0.0);
    if (tyr_numel(dv)) tcu_fill(dv, 0.0);
    return;
  }
  if (tcu_sdpa_cudnn_backward(st, dq, dk, dv, dout, q, k, v, out, lse, mask, doc, causal, window,
                              scale))
    return;
  if (tcu_sdpa_tc_backward(st, dq, dk, dv, dout, q, k, v, out, lse, mask, doc, causal, window,
                           scale))
    return;
  tcu_attention_ran(TYR_CUDA_ATTENTION_SIMT);
  AttTmp a;
  a.n = 0;
  tyr_tensor *dqc = att_out(&a, dq), *dkc = att_out(&a, dk), *dvc = att_out(&a, dv);
  const tyr_tensor *gc = att_in(&a, dout), *qc = att_in(&a, q), *kc = att_in(&a, k);
  const tyr_tensor *vc = att_in(&a, v), *oc = att_in(&a, out);
  if (dqc && dkc && dvc && gc && qc && kc && vc && oc)
    sdpa_backward_simt(st, dqc, dkc, dvc, gc, qc, kc, vc, oc, lse, mask, sh, scale);
  att_done(&a, 3);
}
