/* Row kernels of the functional ops: softmax / log-softmax (+ backward),
 * layer / RMS norm (+ backward), cross entropy (+ backward).
 *
 * A row is handled by a group of 32..1024 threads (blockDim.x), several
 * short rows per block (blockDim.y), with warp shuffles and, for groups
 * wider than a warp, shared memory.  Values are computed in the compute
 * type (f32 for f32/bf16/f16, f64 for f64) following src/cpu/nn.c;
 * per-row statistics (mean, rstd) and per-row scales may have their own
 * dtype.  The column sums of the norm's weight/bias gradients use 32 x 8
 * blocks over columns, split over rows when there are many.  Norm rows
 * that fit a warp's registers (f32/bf16/f16, see "the vectorised path")
 * have kernels of their own; the fused cross entropy reads 16-byte vectors
 * where its rows allow. */
#include <math.h>

#include "cuda/cuda_internal.cuh"

__device__ __forceinline__ float m_exp(float x) {
  return expf(x);
}
__device__ __forceinline__ double m_exp(double x) {
  return exp(x);
}
__device__ __forceinline__ float m_log(float x) {
  return logf(x);
}
__device__ __forceinline__ double m_log(double x) {
  return log(x);
}

template <typename C, bool MAX>
__device__ __forceinline__ C warp_all(C v) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    C o = __shfl_xor_sync(0xffffffffu, v, d);
    v = MAX ? (o > v ? o : v) : v + o;
  }
  return v;
}

/* All-reduce over the blockDim.x threads of a row group.  sm holds
 * blockDim.y * 32 values of C. */
template <typename C, bool MAX>
__device__ __forceinline__ C row_all(C v, C *sm) {
  v = warp_all<C, MAX>(v);
  int wpr = blockDim.x >> 5;
  if (wpr > 1) {
    C *s = sm + threadIdx.y * 32;
    if ((threadIdx.x & 31) == 0) s[threadIdx.x >> 5] = v;
    __syncthreads();
    v = s[0];
    for (int i = 1; i < wpr; i++) v = MAX ? (s[i] > v ? s[i] : v) : v + s[i];
    __syncthreads();
  }
  return v;
}

struct RowGeom {
  dim3 grid, block;
};
static RowGeom row_geom(int64_t rows, int64_t n, int dev) {
  int tpr = 32;
  while (tpr < 1024 && (int64_t)tpr * 4 < n) tpr *= 2;
  int rpb = tpr >= 256 ? 1 : 256 / tpr;
  int64_t g = (rows + rpb - 1) / rpb, cap = (int64_t)tcu_sm_count(dev) * 64;
  if (g > cap) g = cap;
  RowGeom r;
  r.grid = dim3((unsigned)(g < 1 ? 1 : g));
  r.block = dim3(tpr, rpb);
  return r;
}

#define ROW_LOOP(row, rows)                                                                        \
  for (int64_t row##0 = (int64_t)blockIdx.x * blockDim.y; row##0 < (rows);                         \
       row##0 += (int64_t)gridDim.x * blockDim.y)                                                  \
    for (int64_t row = row##0 + threadIdx.y, row##_once = 0; row##_once == 0; row##_once = 1)

/* shared memory for row_all: 8 rows x 32 warps at most (of double) */
#define ROW_SMEM(C)                                                                                \
  __shared__ double row_sm_raw[256];                                                               \
  C *row_sm = reinterpret_cast<C *>(row_sm_raw)

/* ---- softmax ------------------------------------------------------------------- */
template <typename T>
__global__ void softmax_kernel(T *y, const T *x, int64_t rows, int64_t n, bool use_log) {
  typedef typename Acc<T>::type C;
  ROW_SMEM(C);
  ROW_LOOP(row, rows) {
    bool live = row < rows;
    const T *xr = x + (live ? row : 0) * n;
    T *yr = y + (live ? row : 0) * n;
    C mx = -INFINITY;
    if (live)
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        C v = to_c(xr[i]);
        mx = v > mx ? v : mx;
      }
    mx = row_all<C, true>(mx, row_sm);
    C sum = 0;
    if (live)
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += m_exp(to_c(xr[i]) - mx);
    sum = row_all<C, false>(sum, row_sm);
    if (!live) continue;
    if (use_log) {
      C lse = mx + m_log(sum);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = from_c<T>(to_c(xr[i]) - lse);
    } else {
      C inv = (C)(1.0 / (double)sum);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = from_c<T>(m_exp(to_c(xr[i]) - mx) * inv);
    }
  }
}

template <typename T>
__global__ void softmax_bw_kernel(T *gx, const T *y, const T *gy, int64_t rows, int64_t n,
                                  bool use_log) {
  typedef typename Acc<T>::type C;
  ROW_SMEM(C);
  ROW_LOOP(row, rows) {
    bool live = row < rows;
    int64_t base = (live ? row : 0) * n;
    C dot = 0;
    if (live)
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        dot += use_log ? to_c(gy[base + i]) : to_c(gy[base + i]) * to_c(y[base + i]);
    dot = row_all<C, false>(dot, row_sm);
    if (!live) continue;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      C g = to_c(gy[base + i]), yv = to_c(y[base + i]);
      gx[base + i] = from_c<T>(use_log ? g - m_exp(yv) * dot : yv * (g - dot));
    }
  }
}

static int64_t rows_of(const tyr_tensor *t) {
  int64_t c = t->rank ? t->shape[t->rank - 1] : 1;
  return c ? tyr_numel(t) / c : 0;
}
static int64_t cols_of(const tyr_tensor *t) {
  return t->rank ? t->shape[t->rank - 1] : 1;
}

static bool float_dtype_ok(const char *fn, const tyr_tensor *t) {
  if (tcu_is_float(t->dtype)) return true;
  tcu_fail(__FILE__, __LINE__, fn, "dtype %s is not supported", tyr_dtype_name(t->dtype));
  return false;
}

void tcu_softmax(tyr_tensor *out, const tyr_tensor *x, bool log) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t rows = rows_of(x), n = cols_of(x);
  if (!st || rows == 0 || n == 0 || !float_dtype_ok("cuda_softmax", x)) return;
  TmpTensor tx;
  const tyr_tensor *xc = tcu_contiguous(x, &tx);
  if (!xc) return;
  RowGeom g = row_geom(rows, n, out->device.index);
  TCU_FLOAT_DISPATCH(x->dtype, softmax_kernel<scalar_t><<<g.grid, g.block, 0, st>>>(
                                   (scalar_t *)tyr_data_ptr(out),
                                   (const scalar_t *)tyr_data_ptr(xc), rows, n, log));
  LAUNCH_CHECK();
  tcu_release(xc, &tx);
}

void tcu_softmax_backward(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log) {
  cudaStream_t st = tcu_enter(gx->device);
  int64_t rows = rows_of(y), n = cols_of(y);
  if (!st || rows == 0 || n == 0 || !float_dtype_ok("cuda_softmax_backward", y)) return;
  TmpTensor ty, tg;
  const tyr_tensor *yc = tcu_contiguous(y, &ty);
  const tyr_tensor *gc = yc ? tcu_contiguous(gy, &tg) : NULL;
  if (yc && gc) {
    RowGeom g = row_geom(rows, n, gx->device.index);
    TCU_FLOAT_DISPATCH(y->dtype,
                       softmax_bw_kernel<scalar_t><<<g.grid, g.block, 0, st>>>(
                           (scalar_t *)tyr_data_ptr(gx), (const scalar_t *)tyr_data_ptr(yc),
                           (const scalar_t *)tyr_data_ptr(gc), rows, n, log));
    LAUNCH_CHECK();
  }
  if (gc) tcu_release(gc, &tg);
  if (yc) tcu_release(yc, &ty);
}

/* ---- layer norm / RMS norm ----------------------------------------------------------
 * Optional operands travel as (pointer, dtype); a NULL pointer means absent. */
struct Opt {
  void *p;
  int dt;
};
static Opt opt_of(const tyr_tensor *t) {
  Opt o;
  o.p = t ? tyr_data_ptr(t) : NULL;
  o.dt = t ? (int)t->dtype : 0;
  return o;
}

/* r.p: the rows normalised are x + r, stored to sum first (each thread
 * reads back only what it stored) */
template <typename T, typename TY>
__global__ void ln_kernel(TY *y, Opt mean, Opt rstd, const T *x, Opt w, Opt b, int64_t rows,
                          int64_t n, double eps, T *sum, Opt r) {
  typedef typename Acc<T>::type C;
  ROW_SMEM(C);
  ROW_LOOP(row, rows) {
    bool live = row < rows;
    const T *xr = x + (live ? row : 0) * n;
    if (r.p && live) {
      T *sr = sum + row * n;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        sr[i] = from_c<T>(to_c(xr[i]) + (C)ld_any(r.p, r.dt, row * n + i));
      xr = sr;
    }
    C mu = 0;
    if (mean.p) {
      if (live)
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mu += to_c(xr[i]);
      mu = row_all<C, false>(mu, row_sm) / (C)n;
    }
    C var = 0;
    if (live)
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        C d = to_c(xr[i]) - mu;
        var += d * d;
      }
    var = row_all<C, false>(var, row_sm) / (C)n;
    if (!live) continue;
    C rs = (C)(1.0 / sqrt((double)var + eps));
    TY *yr = y + row * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      C v = (to_c(xr[i]) - mu) * rs;
      if (w.p) v *= (C)ld_any(w.p, w.dt, i);
      if (b.p) v += (C)ld_any(b.p, b.dt, i);
      yr[i] = from_c<TY>(v);
    }
    if (threadIdx.x == 0) {
      if (mean.p) st_any(mean.p, mean.dt, row, (double)mu);
      st_any(rstd.p, rstd.dt, row, (double)rs);
    }
  }
}

/* gx per row: rs * (g*w - mean(g*w) - xh * mean(g*w*xh)), mean(g*w) = 0 for RMS */
/* gh.p: gx as stored also written to gh, a 16-bit copy (gx_cast) */
template <typename T>
__device__ __forceinline__ void st_cast(Opt gh, int64_t i, T v) {
  float f = (float)to_c(v);
  if (gh.dt == TYR_BF16)
    ((bf16 *)gh.p)[i] = from_c<bf16>(f);
  else
    ((f16 *)gh.p)[i] = from_c<f16>(f);
}

template <typename T, typename TG>
__global__ void ln_bw_kernel(T *gx, const TG *gy, const T *x, Opt w, Opt mean, Opt rstd,
                             int64_t rows, int64_t n, bool add, Opt gh) {
  typedef typename Acc<T>::type C;
  ROW_SMEM(C);
  ROW_LOOP(row, rows) {
    bool live = row < rows;
    int64_t r = live ? row : 0, base = r * n;
    C m = mean.p ? (C)ld_any(mean.p, mean.dt, r) : (C)0, rs = (C)ld_any(rstd.p, rstd.dt, r);
    C s1 = 0, s2 = 0;
    if (live)
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        C xh = (to_c(x[base + i]) - m) * rs;
        C g = to_c(gy[base + i]) * (w.p ? (C)ld_any(w.p, w.dt, i) : (C)1);
        s1 += g;
        s2 += g * xh;
      }
    s1 = row_all<C, false>(s1, row_sm) / (C)n;
    s2 = row_all<C, false>(s2, row_sm) / (C)n;
    if (!mean.p) s1 = 0;
    if (!live) continue;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      C xh = (to_c(x[base + i]) - m) * rs;
      C g = to_c(gy[base + i]) * (w.p ? (C)ld_any(w.p, w.dt, i) : (C)1);
      C v = rs * (g - s1 - xh * s2);
      T o = from_c<T>(add ? to_c(gx[base + i]) + v : v);
      gx[base + i] = o;
      if (gh.p) st_cast<T>(gh, base + i, o);
    }
  }
}

/* column sums sw[i] = sum_r gy * xh, sb[i] = sum_r gy over rows [r0, r1) of
 * this block's split, in double */
template <typename T, typename TG>
__global__ void ln_bw_cols(const TG *gy, const T *x, Opt mean, Opt rstd, int64_t rows, int64_t n,
                           int64_t chunk, double *part, Opt gw, Opt gb, int splits) {
  __shared__ double sw_s[8][33], sb_s[8][33];
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t col = (int64_t)blockIdx.x * 32 + tx;
  int split = blockIdx.y;
  int64_t r0 = (int64_t)split * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  double sw = 0, sb = 0;
  if (col < n) {
    for (int64_t r = r0 + ty; r < r1; r += 8) {
      double m = mean.p ? ld_any(mean.p, mean.dt, r) : 0.0, rs = ld_any(rstd.p, rstd.dt, r);
      double g = (double)to_c(gy[r * n + col]);
      double xh = (double)(typename Acc<T>::type)(
          (to_c(x[r * n + col]) - (typename Acc<T>::type)m) * (typename Acc<T>::type)rs);
      sw += g * xh;
      sb += g;
    }
  }
  sw_s[ty][tx] = sw;
  sb_s[ty][tx] = sb;
  __syncthreads();
  if (ty == 0 && col < n) {
    for (int y = 1; y < 8; y++) {
      sw += sw_s[y][tx];
      sb += sb_s[y][tx];
    }
    if (splits == 1) {
      if (gw.p) st_any(gw.p, gw.dt, col, sw);
      if (gb.p) st_any(gb.p, gb.dt, col, sb);
    } else {
      part[((int64_t)split * n + col) * 2] = sw;
      part[((int64_t)split * n + col) * 2 + 1] = sb;
    }
  }
}

__global__ void ln_bw_cols_final(const double *part, int splits, int64_t n, Opt gw, Opt gb) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    double sw = 0, sb = 0;
    for (int s = 0; s < splits; s++) {
      sw += part[((int64_t)s * n + i) * 2];
      sb += part[((int64_t)s * n + i) * 2 + 1];
    }
    if (gw.p) st_any(gw.p, gw.dt, i, sw);
    if (gb.p) st_any(gb.p, gb.dt, i, sb);
  }
}

/* ---- the vectorised path: f32 / bf16 / f16 rows whose length is a multiple
 * of the 16-byte vector (4 or 8 elements) and at most 32 * MAX_NV vectors
 * (1024 f32, 1536 bf16/f16 columns), 16-byte aligned ------------------------------------
 * Forward and input gradient: a warp a row, four rows a block, the row held
 * in registers after one pass of 16-byte loads; weight and bias are read
 * per row (from the cache).  Lane l holds the vectors l, l + 32, ....
 * Column sums of the weight / bias gradients: a second pass over x and gy,
 * each thread one vector of columns over a slice of the rows; the slices'
 * partials are added by a last kernel in slice order (no atomics: the same
 * bits on every run); up to LN_COLS_SMALL_ROWS rows, one kernel sums a
 * column vector over all rows (ln_cols_small).  Rows of up to 24 elements
 * a lane (768 f32, 768 bf16 columns) do the input gradient and the column
 * sums in one pass (ln_bw_fused) when there are at least 64 rows an SM. */
template <typename T>
struct LnVec {
  static const int N = 16 / sizeof(T);
  static const int MAX_NV = sizeof(T) == 2 ? 6 : 8;
};

/* E elements of TS as one load (16 bytes, or 8 for a 16-bit operand of an
 * f32 row: the norms' mixed-precision output and its gradient) */
template <int BYTES>
struct LnRaw;
template <>
struct LnRaw<16> {
  typedef uint4 type;
};
template <>
struct LnRaw<8> {
  typedef uint2 type;
};

/* vector j of a row: LnVec<T>::N elements of TS (T, or a 16-bit TS beside f32 T) */
template <typename T, typename TS = T>
__device__ __forceinline__ void ln_load_vec(float (&v)[LnVec<T>::N], const TS *p, int64_t j) {
  const int E = LnVec<T>::N;
  typedef typename LnRaw<E * sizeof(TS)>::type R;
  R raw = reinterpret_cast<const R *>(p)[j];
  TS e[E];
  memcpy(e, &raw, sizeof raw);
#pragma unroll
  for (int q = 0; q < E; q++) v[q] = to_c(e[q]);
}

/* vector j of an optional per-column operand (dtype tdt: vector loads) */
template <typename T>
__device__ __forceinline__ void ln_load_param(float (&v)[LnVec<T>::N], Opt o, int tdt, float dflt,
                                              int64_t j) {
  const int E = LnVec<T>::N;
  if (!o.p) {
#pragma unroll
    for (int q = 0; q < E; q++) v[q] = dflt;
  } else if (o.dt == tdt) {
    ln_load_vec<T>(v, (const T *)o.p, j);
  } else {
#pragma unroll
    for (int q = 0; q < E; q++) v[q] = (float)ld_any(o.p, o.dt, j * E + q);
  }
}

template <typename T, int NV, typename TS = T>
__device__ __forceinline__ void ln_load_row(float (&v)[NV][LnVec<T>::N], const TS *p, int lane,
                                            int nvec) {
#pragma unroll
  for (int k = 0; k < NV; k++) {
    if (lane + 32 * k < nvec) {
      ln_load_vec<T, TS>(v[k], p, lane + 32 * k);
    } else {
#pragma unroll
      for (int q = 0; q < LnVec<T>::N; q++) v[k][q] = 0.f;
    }
  }
}

template <typename T, typename TS = T>
__device__ __forceinline__ void ln_store_vec(TS *p, int64_t j, const float (&v)[LnVec<T>::N]) {
  const int E = LnVec<T>::N;
  typedef typename LnRaw<E * sizeof(TS)>::type R;
  TS e[E];
#pragma unroll
  for (int q = 0; q < E; q++) e[q] = from_c<TS>(v[q]);
  R raw;
  memcpy(&raw, e, sizeof raw);
  reinterpret_cast<R *>(p)[j] = raw;
}

/* v (vector j of the row of x at element off) plus vector j of r's row
 * (r in x's dtype tdt, or a 16-bit dtype beside an f32 x), rounded to T,
 * stored to sum's row */
template <typename T>
__device__ __forceinline__ void ln_add_res(float (&v)[LnVec<T>::N], T *sum, Opt r, int tdt,
                                           int64_t off, int64_t j) {
  const int E = LnVec<T>::N;
  float a[E];
  if (r.dt == tdt)
    ln_load_vec<T>(a, (const T *)r.p + off, j);
  else if (r.dt == TYR_BF16)
    ln_load_vec<T, bf16>(a, (const bf16 *)r.p + off, j);
  else
    ln_load_vec<T, f16>(a, (const f16 *)r.p + off, j);
#pragma unroll
  for (int q = 0; q < E; q++) v[q] = to_c(from_c<T>(v[q] + a[q]));
  ln_store_vec<T>(sum, j, v);
}

template <typename T, typename TY, int NV>
__global__ void ln_fw_row(TY *y, Opt mean, Opt rstd, const T *x, Opt w, Opt b, int tdt,
                          int64_t rows, int n, double eps, T *sum, Opt r) {
  const int E = LnVec<T>::N;
  int lane = threadIdx.x & 31, nvec = n / E;
  int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  float v[NV][E];
  ln_load_row<T, NV>(v, x + row * n, lane, nvec);
  if (r.p) {
#pragma unroll
    for (int k = 0; k < NV; k++)
      if (lane + 32 * k < nvec) ln_add_res<T>(v[k], sum + row * n, r, tdt, row * n, lane + 32 * k);
  }
  float mu = 0.f;
  if (mean.p) {
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
      for (int q = 0; q < E; q++) mu += v[k][q];
    mu = warp_all<float, false>(mu) / (float)n;
  }
  float var = 0.f;
#pragma unroll
  for (int k = 0; k < NV; k++)
    if (lane + 32 * k < nvec)
#pragma unroll
      for (int q = 0; q < E; q++) {
        float d = v[k][q] - mu;
        var += d * d;
      }
  var = warp_all<float, false>(var) / (float)n;
  float rs = (float)(1.0 / sqrt((double)var + eps));
#pragma unroll
  for (int k = 0; k < NV; k++) {
    int j = lane + 32 * k;
    if (j >= nvec) continue;
    float wv[E], bv[E];
    ln_load_param<T>(wv, w, tdt, 1.f, j);
    ln_load_param<T>(bv, b, tdt, 0.f, j);
#pragma unroll
    for (int q = 0; q < E; q++) v[k][q] = (v[k][q] - mu) * rs * wv[q] + bv[q];
    ln_store_vec<T, TY>(y + row * n, j, v[k]);
  }
  if (lane == 0) {
    if (mean.p) st_any(mean.p, mean.dt, row, (double)mu);
    st_any(rstd.p, rstd.dt, row, (double)rs);
  }
}

/* A row's input gradient from its lanes' g*w (g), xh (xv) and their lane
 * sums of g*w (s1) and g*w*xh (s2), stored to gxr (add: added to what gxr
 * holds): the end of ln_bw_row and ln_bw_fused.  centred: layer norm (RMS
 * norm has no mean term). */
template <typename T, int NV>
__device__ __forceinline__ void ln_bw_store_row(T *gxr, float (&g)[NV][LnVec<T>::N],
                                                const float (&xv)[NV][LnVec<T>::N], float s1,
                                                float s2, float rs, bool centred, bool add,
                                                int lane, int nvec, int n, Opt gh, int64_t off) {
  s1 = centred ? warp_all<float, false>(s1) / (float)n : 0.f;
  s2 = warp_all<float, false>(s2) / (float)n;
#pragma unroll
  for (int k = 0; k < NV; k++) {
    int j = lane + 32 * k;
    if (j >= nvec) continue;
#pragma unroll
    for (int q = 0; q < LnVec<T>::N; q++) g[k][q] = rs * (g[k][q] - s1 - xv[k][q] * s2);
    if (add) {
      float o[LnVec<T>::N];
      ln_load_vec<T>(o, gxr, j);
#pragma unroll
      for (int q = 0; q < LnVec<T>::N; q++) g[k][q] += o[q];
    }
    ln_store_vec<T>(gxr, j, g[k]);
    if (gh.p) { /* the 16-bit copy of the values as stored */
#pragma unroll
      for (int q = 0; q < LnVec<T>::N; q++) g[k][q] = to_c(from_c<T>(g[k][q]));
      if (gh.dt == TYR_BF16)
        ln_store_vec<T, bf16>((bf16 *)gh.p + off, j, g[k]);
      else
        ln_store_vec<T, f16>((f16 *)gh.p + off, j, g[k]);
    }
  }
}

/* gx = rs * (g*w - mean(g*w) - xh * mean(g*w*xh)), mean(g*w) = 0 for RMS */
template <typename T, typename TG, int NV>
__global__ void ln_bw_row(T *gx, const TG *gy, const T *x, Opt w, Opt mean, Opt rstd, int tdt,
                          int64_t rows, int n, bool add, Opt gh) {
  const int E = LnVec<T>::N;
  int lane = threadIdx.x & 31, nvec = n / E;
  int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  float xv[NV][E], g[NV][E];
  ln_load_row<T, NV>(xv, x + row * n, lane, nvec);
  ln_load_row<T, NV, TG>(g, gy + row * n, lane, nvec);
  float m = mean.p ? (float)ld_any(mean.p, mean.dt, row) : 0.f;
  float rs = (float)ld_any(rstd.p, rstd.dt, row);
  float s1 = 0.f, s2 = 0.f;
#pragma unroll
  for (int k = 0; k < NV; k++) {
    float wv[E];
    ln_load_param<T>(wv, w, tdt, 1.f, lane + 32 * k < nvec ? lane + 32 * k : 0);
#pragma unroll
    for (int q = 0; q < E; q++) {
      float xh = (xv[k][q] - m) * rs, gw = g[k][q] * wv[q]; /* g is 0 past the row */
      s1 += gw;
      s2 += gw * xh;
      xv[k][q] = xh;
      g[k][q] = gw;
    }
  }
  ln_bw_store_row<T, NV>(gx + row * n, g, xv, s1, s2, rs, mean.p != NULL, add, lane, nvec, n, gh,
                         row * n);
}

/* ln_bw_row and ln_cols_vec in one pass over x and gy, where a lane's
 * share of a row is at most 24 elements (its sums, weights and row then
 * fit in registers): block b takes rows [b chunk, (b + 1) chunk), each of
 * its four warps every fourth of them; a warp writes gx of its rows (when
 * gx) and its lanes add gy * xh and gy for their columns, the sums going
 * to part[4 b + warp][0][c] and part[4 b + warp][1][c] for ln_cols_final.
 * The weight is read once a block.  One kernel less, and x and gy read
 * once instead of twice. */
template <typename T, typename TG, int NV>
__global__ void __launch_bounds__(128)
    ln_bw_fused(T *gx, float *part, const TG *gy, const T *x, Opt w, Opt mean, Opt rstd, int tdt,
                int64_t rows, int n, int64_t chunk, bool add, Opt gh) {
  const int E = LnVec<T>::N;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nvec = n / E;
  int64_t r0 = (int64_t)blockIdx.x * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  float aw[NV][E], ab[NV][E], wv[NV][E];
#pragma unroll
  for (int k = 0; k < NV; k++) {
    ln_load_param<T>(wv[k], w, tdt, 1.f, lane + 32 * k < nvec ? lane + 32 * k : 0);
#pragma unroll
    for (int q = 0; q < E; q++) aw[k][q] = ab[k][q] = 0.f;
  }
  for (int64_t row = r0 + warp; row < r1; row += 4) {
    float xv[NV][E], g[NV][E];
    ln_load_row<T, NV>(xv, x + row * n, lane, nvec);
    ln_load_row<T, NV, TG>(g, gy + row * n, lane, nvec);
    float m = mean.p ? (float)ld_any(mean.p, mean.dt, row) : 0.f;
    float rs = (float)ld_any(rstd.p, rstd.dt, row);
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
      for (int q = 0; q < E; q++) {
        float xh = (xv[k][q] - m) * rs, gw = g[k][q] * wv[k][q]; /* g is 0 past the row */
        aw[k][q] += g[k][q] * xh;
        ab[k][q] += g[k][q];
        s1 += gw;
        s2 += gw * xh;
        xv[k][q] = xh;
        g[k][q] = gw;
      }
    if (gx) /* the same for the whole warp */
      ln_bw_store_row<T, NV>(gx + row * n, g, xv, s1, s2, rs, mean.p != NULL, add, lane, nvec, n,
                             gh, row * n);
  }
  float *out = part + ((int64_t)blockIdx.x * 4 + warp) * 2 * n;
#pragma unroll
  for (int k = 0; k < NV; k++) {
    int j = lane + 32 * k;
    if (j >= nvec) continue;
#pragma unroll
    for (int q = 0; q < E; q++) {
      out[j * E + q] = aw[k][q];
      out[n + j * E + q] = ab[k][q];
    }
  }
}

/* Vector j of row r into the column sums: aw += gy * xh, ab += gy. */
template <typename T, typename TG>
__device__ __forceinline__ void ln_cols_add_row(float (&aw)[LnVec<T>::N], float (&ab)[LnVec<T>::N],
                                                const TG *gy, const T *x, Opt mean, Opt rstd, int n,
                                                int64_t r, int64_t j) {
  const int E = LnVec<T>::N;
  float m = mean.p ? (float)ld_any(mean.p, mean.dt, r) : 0.f;
  float rs = (float)ld_any(rstd.p, rstd.dt, r);
  float xv[E], g[E];
  ln_load_vec<T>(xv, x + r * n, j);
  ln_load_vec<T, TG>(g, gy + r * n, j);
#pragma unroll
  for (int q = 0; q < E; q++) {
    aw[q] += g[q] * ((xv[q] - m) * rs);
    ab[q] += g[q];
  }
}

/* column sums over rows [r0, r1) of blockIdx.y's slice, 32 x 8 threads:
 * part[slice][0][c] = sum gy * xh, part[slice][1][c] = sum gy */
template <typename T, typename TG>
__global__ void ln_cols_vec(float *part, const TG *gy, const T *x, Opt mean, Opt rstd, int64_t rows,
                            int n, int64_t chunk) {
  const int E = LnVec<T>::N;
  __shared__ float sm[2][8][32][E + 1];
  int tx = threadIdx.x, ty = threadIdx.y, nvec = n / E;
  int64_t j = (int64_t)blockIdx.x * 32 + tx;
  int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  float aw[E], ab[E];
#pragma unroll
  for (int q = 0; q < E; q++) aw[q] = ab[q] = 0.f;
  if (j < nvec)
    for (int64_t r = r0 + ty; r < r1; r += 8)
      ln_cols_add_row<T, TG>(aw, ab, gy, x, mean, rstd, n, r, j);
#pragma unroll
  for (int q = 0; q < E; q++) {
    sm[0][ty][tx][q] = aw[q];
    sm[1][ty][tx][q] = ab[q];
  }
  __syncthreads();
  if (ty >= 2 || j >= nvec) return;
  float *out = part + (int64_t)blockIdx.y * 2 * n + (int64_t)ty * n + j * E;
#pragma unroll
  for (int q = 0; q < E; q++) {
    float acc = 0.f;
    for (int y = 0; y < 8; y++) acc += sm[ty][y][tx][q];
    out[q] = acc;
  }
}

/* The column sums in one launch where the rows are few (LN_COLS_SMALL_ROWS):
 * block j takes vector j (E columns) of every row, each of its 256 threads
 * the rows r = tid, tid + 256, ..., then the block adds its threads' sums
 * in a fixed order (the same sums every run) and writes gw and gb for its
 * columns: one launch where ln_cols_vec + ln_cols_final make two (nine a
 * step fewer for the 4x128 char model's 768-row norms; docs/benchmarks.md
 * has the step before and after). */
#define LN_COLS_SMALL_ROWS 2048
template <typename T, typename TG>
__global__ void __launch_bounds__(256) ln_cols_small(const TG *gy, const T *x, Opt mean, Opt rstd,
                                                     int64_t rows, int n, Opt gw, Opt gb) {
  const int E = LnVec<T>::N;
  __shared__ float sm[8][2 * E];
  int j = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  float aw[E], ab[E]; /* sum gy * xh and sum gy, per column */
#pragma unroll
  for (int q = 0; q < E; q++) aw[q] = ab[q] = 0.f;
#pragma unroll 4
  for (int64_t r = tid; r < rows; r += 256)
    ln_cols_add_row<T, TG>(aw, ab, gy, x, mean, rstd, n, r, j);
#pragma unroll
  for (int q = 0; q < E; q++)
    for (int o = 16; o > 0; o >>= 1) {
      aw[q] += __shfl_xor_sync(0xffffffffu, aw[q], o);
      ab[q] += __shfl_xor_sync(0xffffffffu, ab[q], o);
    }
  if (lane == 0)
#pragma unroll
    for (int q = 0; q < E; q++) {
      sm[warp][q] = aw[q];
      sm[warp][E + q] = ab[q];
    }
  __syncthreads();
  if (tid >= 2 * E) return;
  float acc = 0.f;
  for (int w = 0; w < 8; w++) acc += sm[w][tid];
  Opt dst = tid < E ? gw : gb;
  if (dst.p) st_any(dst.p, dst.dt, (int64_t)j * E + tid % E, acc);
}

/* gw[c] = sum over slices of part[s][0][c], gb[c] of part[s][1][c], in double */
__global__ void ln_cols_final(const float *part, int slices, int n, Opt gw, Opt gb) {
  __shared__ double sm[2][8][33];
  int tx = threadIdx.x, ty = threadIdx.y;
  int c = blockIdx.x * 32 + tx;
  double sw = 0, sb = 0;
  if (c < n)
    for (int sl = ty; sl < slices; sl += 8) {
      sw += part[(int64_t)sl * 2 * n + c];
      sb += part[(int64_t)sl * 2 * n + n + c];
    }
  sm[0][ty][tx] = sw;
  sm[1][ty][tx] = sb;
  __syncthreads();
  if (ty != 0 || c >= n) return;
  for (int y = 1; y < 8; y++) {
    sw += sm[0][y][tx];
    sb += sm[1][y][tx];
  }
  if (gw.p) st_any(gw.p, gw.dt, c, sw);
  if (gb.p) st_any(gb.p, gb.dt, c, sb);
}

/* vectors a lane holds for rows of n elements of T; 0 when the path does not apply */
template <typename T>
static int ln_vec_nv(int64_t n, const void *const *ptrs, int nptrs) {
  const int E = LnVec<T>::N;
  if (sizeof(T) == 8 || n % E || n > (int64_t)32 * LnVec<T>::MAX_NV * E) return 0;
  for (int i = 0; i < nptrs; i++)
    if (ptrs[i] && !tcu_aligned16(ptrs[i])) return 0;
  return (int)((n / E + 31) / 32);
}

#define LN_NV_DISPATCH(nv, ...)                                                                    \
  switch (nv) {                                                                                    \
  case 1: {                                                                                        \
    const int NV = 1;                                                                              \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  case 2: {                                                                                        \
    const int NV = 2;                                                                              \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  case 3: {                                                                                        \
    const int NV = 3;                                                                              \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  case 4: {                                                                                        \
    const int NV = 4;                                                                              \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  case 5:                                                                                          \
  case 6: {                                                                                        \
    const int NV = 6;                                                                              \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  default: {                                                                                       \
    const int NV = LnVec<T>::MAX_NV;                                                               \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  }

template <typename T, typename TY>
static bool ln_fw_fast(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                       const tyr_tensor *w, const tyr_tensor *b, int64_t rows, int64_t n,
                       double eps, tyr_tensor *sum, const tyr_tensor *r, cudaStream_t st) {
  const void *ptrs[6] = {tyr_data_ptr(y),
                         tyr_data_ptr(x),
                         w ? tyr_data_ptr(w) : NULL,
                         b ? tyr_data_ptr(b) : NULL,
                         r ? tyr_data_ptr(sum) : NULL,
                         r ? tyr_data_ptr(r) : NULL};
  int nv = ln_vec_nv<T>(n, ptrs, 6);
  if (!nv) return false;
  T *ps = r ? (T *)tyr_data_ptr(sum) : NULL;
  LN_NV_DISPATCH(nv,
                 ln_fw_row<T, TY, NV><<<(unsigned)((rows + 3) / 4), 128, 0, st>>>(
                     (TY *)tyr_data_ptr(y), opt_of(mean), opt_of(rstd), (const T *)tyr_data_ptr(x),
                     opt_of(w), opt_of(b), (int)x->dtype, rows, (int)n, eps, ps, opt_of(r)));
  LAUNCH_CHECK();
  return true;
}

template <typename T, typename TG>
static bool ln_bw_fast(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                       const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *mean,
                       const tyr_tensor *rstd, int64_t rows, int64_t n, bool add, tyr_tensor *gh,
                       cudaStream_t st) {
  const void *ptrs[5] = {gx ? tyr_data_ptr(gx) : NULL, tyr_data_ptr(gy), tyr_data_ptr(x),
                         w ? tyr_data_ptr(w) : NULL, gh ? tyr_data_ptr(gh) : NULL};
  int nv = ln_vec_nv<T>(n, ptrs, 5);
  if (!nv) return false;
  int dev = x->device.index;
  const TG *pgy = (const TG *)tyr_data_ptr(gy);
  const T *px = (const T *)tyr_data_ptr(x);
  /* one pass for gx and the column sums where there are rows enough for
     two blocks an SM at 8 rows a warp; with fewer, the warps' rows run one
     after another on too few SMs (the 4x128 char model's 768 rows took
     longer than the two passes) */
  int64_t sms = tcu_sm_count(dev);
  if ((gw || gb) && nv * LnVec<T>::N <= 24 && rows >= 64 * sms) {
    int64_t slices = 2 * sms;
    int64_t chunk = (rows + slices - 1) / slices;
    slices = (rows + chunk - 1) / chunk;
    size_t pbytes = (size_t)slices * 4 * 2 * (size_t)n * sizeof(float);
    float *part = (float *)tcu_alloc(pbytes, dev);
    if (!part) return true; /* reported */
    T *pgx = gx ? (T *)tyr_data_ptr(gx) : NULL;
#define LN_BW_FUSED(NV)                                                                            \
  ln_bw_fused<T, TG, NV><<<(unsigned)slices, 128, 0, st>>>(                                        \
      pgx, part, pgy, px, opt_of(w), opt_of(mean), opt_of(rstd), (int)x->dtype, rows, (int)n,      \
      chunk, add, opt_of(gh))
    switch (nv) {
    case 1:
      LN_BW_FUSED(1);
      break;
    case 2:
      LN_BW_FUSED(2);
      break;
    case 3:
      LN_BW_FUSED(3);
      break;
    case 4:
      LN_BW_FUSED(4);
      break;
    default: /* 5 or 6 f32 vectors */
      LN_BW_FUSED(24 / LnVec<T>::N);
      break;
    }
#undef LN_BW_FUSED
    if (LAUNCH_CHECK()) {
      ln_cols_final<<<(unsigned)((n + 31) / 32), dim3(32, 8), 0, st>>>(
          part, (int)(slices * 4), (int)n, opt_of(gw), opt_of(gb));
      LAUNCH_CHECK();
    }
    tcu_free(part, pbytes, dev);
    return true;
  }
  if (gx) {
    LN_NV_DISPATCH(nv, ln_bw_row<T, TG, NV><<<(unsigned)((rows + 3) / 4), 128, 0, st>>>(
                           (T *)tyr_data_ptr(gx), pgy, px, opt_of(w), opt_of(mean), opt_of(rstd),
                           (int)x->dtype, rows, (int)n, add, opt_of(gh)));
    if (!LAUNCH_CHECK()) return true;
  }
  if (!gw && !gb) return true;
  int64_t nvec = n / LnVec<T>::N, xb = (nvec + 31) / 32;
  if (rows <= LN_COLS_SMALL_ROWS) {
    ln_cols_small<T, TG><<<(unsigned)nvec, 256, 0, st>>>(pgy, px, opt_of(mean), opt_of(rstd), rows,
                                                         (int)n, opt_of(gw), opt_of(gb));
    LAUNCH_CHECK();
    return true;
  }
  int64_t target = 4 * (int64_t)tcu_sm_count(dev), slices = (target + xb - 1) / xb;
  if (slices > (rows + 31) / 32) slices = (rows + 31) / 32; /* 32 rows a slice at least */
  if (slices < 1) slices = 1;
  int64_t chunk = (rows + slices - 1) / slices;
  slices = (rows + chunk - 1) / chunk;
  size_t pbytes = (size_t)slices * 2 * (size_t)n * sizeof(float);
  float *part = (float *)tcu_alloc(pbytes, dev);
  if (!part) return true; /* reported */
  ln_cols_vec<T, TG><<<dim3((unsigned)xb, (unsigned)slices), dim3(32, 8), 0, st>>>(
      part, pgy, px, opt_of(mean), opt_of(rstd), rows, (int)n, chunk);
  if (LAUNCH_CHECK()) {
    ln_cols_final<<<(unsigned)((n + 31) / 32), dim3(32, 8), 0, st>>>(part, (int)slices, (int)n,
                                                                     opt_of(gw), opt_of(gb));
    LAUNCH_CHECK();
  }
  tcu_free(part, pbytes, dev);
  return true;
}

template <>
bool ln_fw_fast<double, double>(tyr_tensor *, tyr_tensor *, tyr_tensor *, const tyr_tensor *,
                                const tyr_tensor *, const tyr_tensor *, int64_t, int64_t, double,
                                tyr_tensor *, const tyr_tensor *, cudaStream_t) {
  return false; /* f64 rows take the generic kernel */
}
template <>
bool ln_bw_fast<double, double>(tyr_tensor *, tyr_tensor *, tyr_tensor *, const tyr_tensor *,
                                const tyr_tensor *, const tyr_tensor *, const tyr_tensor *,
                                const tyr_tensor *, int64_t, int64_t, bool, tyr_tensor *,
                                cudaStream_t) {
  return false;
}

/* the vectorised kernel where it applies, else the generic one */
template <typename T, typename TY>
static void ln_fw_run(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                      const tyr_tensor *w, const tyr_tensor *b, int64_t rows, int64_t n, double eps,
                      tyr_tensor *sum, const tyr_tensor *r, cudaStream_t st) {
  if (ln_fw_fast<T, TY>(y, mean, rstd, x, w, b, rows, n, eps, sum, r, st)) return;
  RowGeom g = row_geom(rows, n, y->device.index);
  ln_kernel<T, TY><<<g.grid, g.block, 0, st>>>(
      (TY *)tyr_data_ptr(y), opt_of(mean), opt_of(rstd), (const T *)tyr_data_ptr(x), opt_of(w),
      opt_of(b), rows, n, eps, r ? (T *)tyr_data_ptr(sum) : NULL, opt_of(r));
  LAUNCH_CHECK();
}

/* Runs F<T, T2> for x's dtype T and T2 the dtype of the output (forward) or
 * of its gradient (backward): x's own, or bf16/f16 beside an f32 x (the
 * mixed-precision norm, tyr_layer_norm_to).  False for other pairs. */
#define LN_DTYPES_DISPATCH(xdt, odt, F)                                                            \
  [&]() -> bool {                                                                                  \
    if ((xdt) == (odt)) {                                                                          \
      bool known = tcu_is_float(xdt);                                                              \
      TCU_FLOAT_DISPATCH(xdt, F(scalar_t, scalar_t));                                              \
      return known;                                                                                \
    }                                                                                              \
    if ((xdt) == TYR_F32 && (odt) == TYR_BF16) {                                                   \
      F(float, bf16);                                                                              \
      return true;                                                                                 \
    }                                                                                              \
    if ((xdt) == TYR_F32 && (odt) == TYR_F16) {                                                    \
      F(float, f16);                                                                               \
      return true;                                                                                 \
    }                                                                                              \
    return false;                                                                                  \
  }()

void tcu_layer_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                    const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                    const tyr_tensor *r) {
  cudaStream_t st = tcu_enter(y->device);
  int64_t rows = rows_of(x), n = cols_of(x);
  if (!st || rows == 0 || !float_dtype_ok("cuda_layer_norm", x)) return;
  if (n == 0) return;
  if (r && r->dtype != x->dtype &&
      !(x->dtype == TYR_F32 && (r->dtype == TYR_BF16 || r->dtype == TYR_F16))) {
    tcu_fail(__FILE__, __LINE__, "cuda_layer_norm", "x %s with the residual r %s is not supported",
             tyr_dtype_name(x->dtype), tyr_dtype_name(r->dtype));
    return;
  }
  TmpTensor tx, tw, tb, tr;
  const tyr_tensor *xc = tcu_contiguous(x, &tx);
  const tyr_tensor *wc = xc && w ? tcu_contiguous(w, &tw) : NULL;
  const tyr_tensor *bc = xc && b ? tcu_contiguous(b, &tb) : NULL;
  const tyr_tensor *rc = xc && r ? tcu_contiguous(r, &tr) : NULL;
  if (xc && (!w || wc) && (!b || bc) && (!r || rc)) {
#define LN_FW(T, TY) ln_fw_run<T, TY>(y, mean, rstd, xc, wc, bc, rows, n, eps, sum, rc, st)
    if (!LN_DTYPES_DISPATCH(x->dtype, y->dtype, LN_FW))
      tcu_fail(__FILE__, __LINE__, "cuda_layer_norm", "x %s with y %s is not supported",
               tyr_dtype_name(x->dtype), tyr_dtype_name(y->dtype));
#undef LN_FW
  }
  if (rc) tcu_release(rc, &tr);
  if (bc) tcu_release(bc, &tb);
  if (wc) tcu_release(wc, &tw);
  if (xc) tcu_release(xc, &tx);
}

template <typename T, typename TG>
static void ln_bw_run(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                      const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *mean,
                      const tyr_tensor *rstd, int64_t rows, int64_t n, bool add, tyr_tensor *gh,
                      cudaStream_t st) {
  if (ln_bw_fast<T, TG>(gx, gw, gb, gy, x, w, mean, rstd, rows, n, add, gh, st)) return;
  int dev = x->device.index;
  const TG *pgy = (const TG *)tyr_data_ptr(gy);
  const T *px = (const T *)tyr_data_ptr(x);
  if (gx) {
    RowGeom g = row_geom(rows, n, dev);
    ln_bw_kernel<T, TG><<<g.grid, g.block, 0, st>>>((T *)tyr_data_ptr(gx), pgy, px, opt_of(w),
                                                    opt_of(mean), opt_of(rstd), rows, n, add,
                                                    opt_of(gh));
    if (!LAUNCH_CHECK()) return;
  }
  if (!gw && !gb) return;
  int64_t gxb = (n + 31) / 32, target = 4 * (int64_t)tcu_sm_count(dev);
  int splits = 1;
  if (gxb < target && rows > 256) {
    int64_t s = (target + gxb - 1) / gxb, cap = rows / 64;
    if (s > cap) s = cap;
    if (s > 1024) s = 1024;
    splits = s < 1 ? 1 : (int)s;
  }
  int64_t chunk = (rows + splits - 1) / splits;
  double *part = NULL;
  size_t pbytes = (size_t)splits * (size_t)n * 2 * sizeof(double);
  if (splits > 1 && !(part = (double *)tcu_alloc(pbytes, dev))) return;
  ln_bw_cols<T, TG><<<dim3((unsigned)gxb, (unsigned)splits), dim3(32, 8), 0, st>>>(
      pgy, px, opt_of(mean), opt_of(rstd), rows, n, chunk, part, opt_of(gw), opt_of(gb), splits);
  if (LAUNCH_CHECK() && splits > 1) {
    ln_bw_cols_final<<<tcu_blocks(n, 256, dev), 256, 0, st>>>(part, splits, n, opt_of(gw),
                                                              opt_of(gb));
    LAUNCH_CHECK();
  }
  if (part) tcu_free(part, pbytes, dev);
}

void tcu_layer_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                             const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *mean,
                             const tyr_tensor *rstd, bool add_gx, tyr_tensor *gx_cast) {
  cudaStream_t st = tcu_enter(x->device);
  int64_t rows = rows_of(x), n = cols_of(x);
  if (!st || n == 0 || !float_dtype_ok("cuda_layer_norm_backward", x)) return;
  if (gx_cast && (!gx || (gx_cast->dtype != TYR_BF16 && gx_cast->dtype != TYR_F16))) {
    tcu_fail(__FILE__, __LINE__, "cuda_layer_norm_backward",
             "the copy of gx must be bf16 or f16 (and gx given), not %s",
             tyr_dtype_name(gx_cast->dtype));
    return;
  }
  if (rows == 0) { /* empty batch: the parameter gradients are zero */
    if (gw) tcu_fill(gw, 0.0);
    if (gb) tcu_fill(gb, 0.0);
    return;
  }
  TmpTensor tg, tx, tw;
  const tyr_tensor *gyc = tcu_contiguous(gy, &tg);
  const tyr_tensor *xc = gyc ? tcu_contiguous(x, &tx) : NULL;
  const tyr_tensor *wc = xc && w ? tcu_contiguous(w, &tw) : NULL;
  if (gyc && xc && (!w || wc)) {
#define LN_BW(T, TG)                                                                               \
  ln_bw_run<T, TG>(gx, gw, gb, gyc, xc, wc, mean, rstd, rows, n, add_gx, gx_cast, st)
    if (!LN_DTYPES_DISPATCH(x->dtype, gy->dtype, LN_BW))
      tcu_fail(__FILE__, __LINE__, "cuda_layer_norm_backward", "x %s with gy %s is not supported",
               tyr_dtype_name(x->dtype), tyr_dtype_name(gy->dtype));
#undef LN_BW
  }
  if (wc) tcu_release(wc, &tw);
  if (xc) tcu_release(xc, &tx);
  if (gyc) tcu_release(gyc, &tg);
}

/* ---- cross entropy over rows of [N, V] logits ------------------------------------------ */
__device__ __forceinline__ int64_t ld_index(const void *p, int dt, int64_t i) {
  return dt == TYR_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

/* Every row of a block goes through the same row_all calls (they may
 * synchronise the block); ignored rows only mask their loads and stores. */
template <typename T>
__global__ void ce_kernel(T *loss, const T *lg, const void *tg, int tdt, int64_t ign, int64_t N,
                          int64_t V) {
  typedef typename Acc<T>::type C;
  ROW_SMEM(C);
  ROW_LOOP(row, N) {
    bool live = row < N;
    int64_t r = live ? row : 0;
    int64_t t = ld_index(tg, tdt, r);
    bool active = live && t != ign;
    const T *x = lg + r * V;
    C mx = -INFINITY;
    if (active)
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        C v = to_c(x[i]);
        mx = v > mx ? v : mx;
      }
    mx = row_all<C, true>(mx, row_sm);
    C s = 0;
    if (active)
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += m_exp(to_c(x[i]) - mx);
    s = row_all<C, false>(s, row_sm);
    if (!live || threadIdx.x != 0) continue;
    if (!active)
      loss[r] = from_c<T>((C)0);
    else if (t < 0 || t >= V) /* the ops layer checks targets; never read out of bounds */
      loss[r] = from_c<T>((C)NAN);
    else
      loss[r] = from_c<T>(mx + m_log(s) - to_c(x[t]));
  }
}

template <typename T>
__global__ void ce_bw_kernel(T *g, const T *lg, const void *tg, int tdt, int64_t ign, Opt gl,
                             int64_t N, int64_t V) {
  typedef typename Acc<T>::type C;
  ROW_SMEM(C);
  ROW_LOOP(row, N) {
    bool live = row < N;
    int64_t r = live ? row : 0;
    int64_t t = ld_index(tg, tdt, r);
    bool active = live && t != ign;
    T *o = g + r * V;
    const T *x = lg + r * V;
    C mx = -INFINITY;
    if (active)
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        C v = to_c(x[i]);
        mx = v > mx ? v : mx;
      }
    mx = row_all<C, true>(mx, row_sm);
    C s = 0;
    if (active)
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += m_exp(to_c(x[i]) - mx);
    s = row_all<C, false>(s, row_sm);
    if (!live) continue;
    if (!active) {
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) o[i] = from_c<T>((C)0);
      continue;
    }
    C scale = (C)ld_any(gl.p, gl.dt, r), inv = (C)(1.0 / (double)s);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      C p = m_exp(to_c(x[i]) - mx) * inv * scale;
      if (i == t) p -= scale;
      o[i] = from_c<T>(p);
    }
  }
}

void tcu_cross_entropy(tyr_tensor *losses, const tyr_tensor *logits, const tyr_tensor *targets,
                       int64_t ignore_index) {
  cudaStream_t st = tcu_enter(logits->device);
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (!st || N == 0 || !float_dtype_ok("cuda_cross_entropy", logits)) return;
  TmpTensor tl, tt;
  const tyr_tensor *lc = tcu_contiguous(logits, &tl);
  const tyr_tensor *tc = lc ? tcu_contiguous(targets, &tt) : NULL;
  if (lc && tc) {
    RowGeom g = row_geom(N, V, logits->device.index);
    TCU_FLOAT_DISPATCH(logits->dtype,
                       ce_kernel<scalar_t><<<g.grid, g.block, 0, st>>>(
                           (scalar_t *)tyr_data_ptr(losses), (const scalar_t *)tyr_data_ptr(lc),
                           tyr_data_ptr(tc), (int)tc->dtype, ignore_index, N, V));
    LAUNCH_CHECK();
  }
  if (tc) tcu_release(tc, &tt);
  if (lc) tcu_release(lc, &tl);
}

void tcu_cross_entropy_backward(tyr_tensor *glogits, const tyr_tensor *logits,
                                const tyr_tensor *targets, int64_t ignore_index,
                                const tyr_tensor *gloss) {
  cudaStream_t st = tcu_enter(logits->device);
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (!st || N == 0 || V == 0 || !float_dtype_ok("cuda_cross_entropy_backward", logits)) return;
  TmpTensor tl, tt, tg;
  const tyr_tensor *lc = tcu_contiguous(logits, &tl);
  const tyr_tensor *tc = lc ? tcu_contiguous(targets, &tt) : NULL;
  const tyr_tensor *gc = tc ? tcu_contiguous(gloss, &tg) : NULL;
  if (lc && tc && gc) {
    RowGeom g = row_geom(N, V, logits->device.index);
    TCU_FLOAT_DISPATCH(logits->dtype,
                       ce_bw_kernel<scalar_t><<<g.grid, g.block, 0, st>>>(
                           (scalar_t *)tyr_data_ptr(glogits), (const scalar_t *)tyr_data_ptr(lc),
                           tyr_data_ptr(tc), (int)tc->dtype, ignore_index, opt_of(gc), N, V));
    LAUNCH_CHECK();
  }
  if (gc) tcu_release(gc, &tg);
  if (tc) tcu_release(tc, &tt);
  if (lc) tcu_release(lc, &tl);
}

/* Cross entropy and its gradient in one kernel (tyr_linear_cross_entropy):
 * one read of the row for the running max and sum of exponentials (each
 * thread keeps its own, rescaled when its max grows, then merged), the loss
 * in the compute type, and one read + write turning the logits into
 * (softmax - onehot) * scale in place: each thread reads and writes only
 * its own stride of the row after the reductions. */
/* Online max / sum over a row, one value at a time */
template <typename C>
__device__ __forceinline__ void online_add(C &mx, C &s, C v) {
  if (v > mx) {
    s = s * m_exp(mx - v) + 1;
    mx = v;
  } else if (mx != -INFINITY) { /* v = mx = -inf adds nothing */
    s += m_exp(v - mx);
  }
}

/* The same for a 16-byte vector: one rescale at most, from the vector's own max */
template <typename T, typename C>
__device__ __forceinline__ void online_add_vec(C &mx, C &s, const V16<T> &a) {
  const int E = V16<T>::N;
  C vm = to_c(a.v[0]);
#pragma unroll
  for (int q = 1; q < E; q++) vm = fmax(vm, to_c(a.v[q]));
  if (vm > mx) {
    s = mx == -INFINITY ? (C)0 : s * m_exp(mx - vm);
    mx = vm;
  }
  if (mx != -INFINITY)
#pragma unroll
    for (int q = 0; q < E; q++) s += m_exp(to_c(a.v[q]) - mx);
}

/* The row is read as 16-byte vectors when nvec > 0 (V a multiple of the
 * vector and the logits aligned): one rescale per vector at most, from the
 * vector's own max; the elements past nvec vectors go one at a time. */
template <typename T>
__global__ void ce_fused_kernel(typename Acc<T>::type *loss, T *lg, const void *tg, int tdt,
                                int64_t ign, const typename Acc<T>::type *scale_p, int64_t N,
                                int64_t V, int64_t nvec) {
  typedef typename Acc<T>::type C;
  const int E = V16<T>::N;
  ROW_SMEM(C);
  C scale = *scale_p;
  ROW_LOOP(row, N) {
    bool live = row < N;
    int64_t r = live ? row : 0;
    int64_t t = ld_index(tg, tdt, r);
    bool active = live && t != ign && t >= 0 && t < V;
    T *x = lg + r * V;
    C mx = -INFINITY, s = 0;
    if (active) {
      for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
        online_add_vec<T, C>(mx, s, vload(x, j));
      }
      for (int64_t i = nvec * E + threadIdx.x; i < V; i += blockDim.x)
        online_add<C>(mx, s, to_c(x[i]));
    }
    C gmx = row_all<C, true>(mx, row_sm);
    s = row_all<C, false>(mx == -INFINITY ? (C)0 : s * m_exp(mx - gmx), row_sm);
    if (!live) continue;
    if (!active) {
      if (threadIdx.x == 0) loss[r] = t == ign ? (C)0 : (C)NAN;
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) x[i] = from_c<T>((C)0);
      continue;
    }
    /* x[t] is read and then written by the one thread whose stride holds t */
    int64_t owner = t < nvec * E ? (t / E) % blockDim.x : (t - nvec * E) % blockDim.x;
    if (owner == threadIdx.x) loss[r] = gmx + m_log(s) - to_c(x[t]);
    C f = scale / s;
    for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
      V16<T> a = vload(x, j);
#pragma unroll
      for (int q = 0; q < E; q++) {
        C p = m_exp(to_c(a.v[q]) - gmx) * f;
        if (j * E + q == t) p -= scale;
        a.v[q] = from_c<T>(p);
      }
      vstore(x, j, a);
    }
    for (int64_t i = nvec * E + threadIdx.x; i < V; i += blockDim.x) {
      C p = m_exp(to_c(x[i]) - gmx) * f;
      if (i == t) p -= scale;
      x[i] = from_c<T>(p);
    }
  }
}

/* The same with the row kept in shared memory, for rows that fit (GPT-2's
 * 50,304 bf16 logits take 98 KiB): the logits are read from global memory
 * once instead of twice, their running max and sum taken as they are copied
 * in, and the gradient computed from the copy.  One block a row, 16-byte
 * vectors from the row's first 16-byte boundary (a row of odd length starts
 * anywhere), the elements before it and past the last vector one at a time. */
template <typename T>
__global__ void ce_fused_smem_kernel(typename Acc<T>::type *loss, T *lg, const void *tg, int tdt,
                                     int64_t ign, const typename Acc<T>::type *scale_p, int64_t N,
                                     int64_t V) {
  typedef typename Acc<T>::type C;
  const int E = V16<T>::N;
  extern __shared__ __align__(16) unsigned char ce_row_raw[];
  ROW_SMEM(C);
  C scale = *scale_p;
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    int64_t t = ld_index(tg, tdt, r);
    T *x = lg + r * V;
    if (t == ign || t < 0 || t >= V) { /* the same for every thread of the block */
      if (threadIdx.x == 0) loss[r] = t == ign ? (C)0 : (C)NAN;
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) x[i] = from_c<T>((C)0);
      continue;
    }
    int64_t head = (int64_t)((16 - ((uintptr_t)x & 15)) & 15) / (int64_t)sizeof(T);
    if (head > V) head = V;
    int64_t nvec = (V - head) / E, tail0 = head + nvec * E;
    T *sx = reinterpret_cast<T *>(ce_row_raw) + (E - head % E) % E; /* sx + head: 16-byte aligned */
    C mx = -INFINITY, s = 0;
    for (int64_t i = threadIdx.x; i < head; i += blockDim.x) {
      T v = x[i];
      sx[i] = v;
      online_add<C>(mx, s, to_c(v));
    }
    for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
      V16<T> a = vload(x + head, j);
      vstore(sx + head, j, a);
      online_add_vec<T, C>(mx, s, a);
    }
    for (int64_t i = tail0 + threadIdx.x; i < V; i += blockDim.x) {
      T v = x[i];
      sx[i] = v;
      online_add<C>(mx, s, to_c(v));
    }
    C gmx = row_all<C, true>(mx, row_sm);
    s = row_all<C, false>(mx == -INFINITY ? (C)0 : s * m_exp(mx - gmx), row_sm);
    __syncthreads(); /* every element of sx written */
    if (threadIdx.x == 0) loss[r] = gmx + m_log(s) - to_c(sx[t]);
    C f = scale / s;
    for (int64_t i = threadIdx.x; i < head; i += blockDim.x)
      x[i] = from_c<T>(m_exp(to_c(sx[i]) - gmx) * f - (i == t ? scale : (C)0));
    for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
      V16<T> a = vload(sx + head, j);
#pragma unroll
      for (int q = 0; q < E; q++) {
        C p = m_exp(to_c(a.v[q]) - gmx) * f;
        if (head + j * E + q == t) p -= scale;
        a.v[q] = from_c<T>(p);
      }
      vstore(x + head, j, a);
    }
    for (int64_t i = tail0 + threadIdx.x; i < V; i += blockDim.x)
      x[i] = from_c<T>(m_exp(to_c(sx[i]) - gmx) * f - (i == t ? scale : (C)0));
    __syncthreads(); /* sx and row_sm are the next row's */
  }
}

/* Test hook: nonzero runs every fused cross entropy with the two-pass
   kernel, so that the tests check both. */
static bool g_ce_two_pass;
extern "C" void tcu_cross_entropy_set_two_pass(int on) {
  g_ce_two_pass = on != 0;
}
/* Test hook: whether the last fused cross entropy ran the shared-memory kernel. */
static bool g_ce_last_smem;
extern "C" int tcu_cross_entropy_last_smem(void) {
  return g_ce_last_smem;
}

/* Shared memory a block of device dev may opt in to (0 until asked). */
static int ce_smem_limit(int dev) {
  static int lim[TCU_MAX_DEV];
  if (!lim[dev] && cudaDeviceGetAttribute(&lim[dev], cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                          dev) != cudaSuccess) {
    cudaGetLastError();
    lim[dev] = -1;
  }
  return lim[dev];
}

/* Rows of at most 2048 logits take ce_fused_kernel, whose row geometry
   gives them fewer threads than the shared-memory kernel's 1024 (a warp a
   row up to 128 logits; from 2049 on it gives 1024 too, and the row kept
   in shared memory saves the second read): the 4x128 char model's
   [768, 65] logits took 25 us with 1024 threads a row and 6 us with a
   warp (ncu, which runs the GPU at its base clock). */
#define CE_SMEM_MIN_V 2049

/* Runs the shared-memory kernel when V's row fits and is long enough
   (CE_SMEM_MIN_V); false otherwise. */
template <typename T>
static bool ce_fused_smem_run(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *tc,
                              int64_t ign, const tyr_tensor *scale, cudaStream_t st) {
  typedef typename Acc<T>::type C;
  int dev = logits->device.index;
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (V < CE_SMEM_MIN_V) return false;
  size_t bytes = (size_t)(V + V16<T>::N) * sizeof(T);
  int lim = ce_smem_limit(dev);
  /* room for row_all's 2 KiB of static shared memory and the runtime's own */
  if (lim <= 0 || bytes + 4096 > (size_t)lim) return false;
  static bool opted[TCU_MAX_DEV];
  if (!opted[dev]) {
    if (cudaFuncSetAttribute(ce_fused_smem_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             lim - 4096) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    opted[dev] = true;
  }
  int64_t grid = (int64_t)tcu_sm_count(dev) * 4;
  if (grid > N) grid = N;
  ce_fused_smem_kernel<T><<<(unsigned)grid, 1024, bytes, st>>>(
      (C *)tyr_data_ptr(losses), (T *)tyr_data_ptr(logits), tyr_data_ptr(tc), (int)tc->dtype, ign,
      (const C *)tyr_data_ptr(scale), N, V);
  LAUNCH_CHECK();
  return true;
}

void tcu_cross_entropy_fused(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *targets,
                             int64_t ignore_index, const tyr_tensor *scale) {
  cudaStream_t st = tcu_enter(logits->device);
  int64_t N = logits->shape[0], V = logits->shape[1];
  if (!st || N == 0 || V == 0 || !float_dtype_ok("cuda_cross_entropy_fused", logits)) return;
  TmpTensor tt;
  const tyr_tensor *tc = tcu_contiguous(targets, &tt);
  bool done = false;
  if (tc && !g_ce_two_pass)
    TCU_FLOAT_DISPATCH(logits->dtype, done = ce_fused_smem_run<scalar_t>(losses, logits, tc,
                                                                         ignore_index, scale, st));
  g_ce_last_smem = done;
  if (tc && !done) {
    RowGeom g = row_geom(N, V, logits->device.index);
    int64_t E = 16 / (int64_t)tyr_dtype_size(logits->dtype);
    int64_t nvec = V % E == 0 && tcu_aligned16(tyr_data_ptr(logits)) ? V / E : 0;
    TCU_FLOAT_DISPATCH(logits->dtype,
                       ce_fused_kernel<scalar_t><<<g.grid, g.block, 0, st>>>(
                           (typename Acc<scalar_t>::type *)tyr_data_ptr(losses),
                           (scalar_t *)tyr_data_ptr(logits), tyr_data_ptr(tc), (int)tc->dtype,
                           ignore_index, (const typename Acc<scalar_t>::type *)tyr_data_ptr(scale),
                           N, V, nvec));
    LAUNCH_CHECK();
    tcu_release(tc, &tt);
  }
}
