/* Reductions over one dim or all elements.  The input (made contiguous
 * first when it is not) is seen as [outer, n, inner] around the dim.
 *
 * inner == 1 (the last dim, or everything): a group of 32..256 threads per
 * row, warp shuffles then shared memory.  inner > 1: blocks of 32 x 8
 * threads, x along inner (coalesced), y along n, combined in shared memory.
 * When that leaves too few blocks to fill the GPU and n is long, n is split
 * over more blocks that write partial results, and a second kernel combines
 * them.  Sums accumulate in double (as the CPU does); max/min keep the
 * first index of the best value and let the first NaN win, like the CPU,
 * with a combination rule that does not depend on the order of the tree. */
#include <math.h>

#include "cuda/cuda_internal.cuh"

struct RAcc {
  double v;
  int64_t i;
};

__device__ __forceinline__ bool is_sum(int op) {
  return op == TYR_RED_SUM || op == TYR_RED_MEAN;
}
__device__ __forceinline__ bool want_max(int op) {
  return op == TYR_RED_MAX || op == TYR_RED_ARGMAX;
}

__device__ __forceinline__ RAcc r_identity(int op) {
  RAcc a;
  a.v = is_sum(op) ? 0.0 : (want_max(op) ? -INFINITY : INFINITY);
  a.i = INT64_MAX;
  return a;
}

__device__ __forceinline__ RAcc r_combine(int op, RAcc a, RAcc b) {
  if (is_sum(op)) {
    a.v += b.v;
    return a;
  }
  bool an = a.v != a.v, bn = b.v != b.v;
  if (an || bn) {
    if (an && bn) return a.i <= b.i ? a : b;
    return an ? a : b;
  }
  bool mx = want_max(op);
  if (mx ? a.v > b.v : a.v < b.v) return a;
  if (mx ? b.v > a.v : b.v < a.v) return b;
  return a.i <= b.i ? a : b;
}

__device__ __forceinline__ RAcc r_shfl_down(RAcc a, int d) {
  RAcc r;
  r.v = __shfl_down_sync(0xffffffffu, a.v, d);
  r.i = __shfl_down_sync(0xffffffffu, a.i, d);
  return r;
}

__device__ __forceinline__ RAcc r_warp(int op, RAcc a) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) a = r_combine(op, a, r_shfl_down(a, d));
  return a;
}

__device__ __forceinline__ void r_write(int op, void *out, int odt, int64_t j, RAcc a, int64_t n) {
  if (op == TYR_RED_ARGMAX || op == TYR_RED_ARGMIN) {
    int64_t idx = a.i == INT64_MAX ? 0 : a.i;
    if (odt == TYR_I64)
      ((int64_t *)out)[j] = idx;
    else
      st_any(out, odt, j, (double)idx);
    return;
  }
  double v = op == TYR_RED_MEAN ? a.v / (double)n : a.v;
  st_any(out, odt, j, v);
}

/* element loaders: the float dtypes directly, anything else through ld_any */
template <typename T>
struct Ld {
  const T *p;
  __device__ __forceinline__ double operator()(int64_t i) const { return (double)to_c(p[i]); }
};
struct LdAny {
  const void *p;
  int dt;
  __device__ __forceinline__ double operator()(int64_t i) const { return ld_any(p, dt, i); }
};

/* rows: blockDim (tpr, rpb); threadIdx.x walks a row's slice [k0, k1) */
template <typename L>
__global__ void reduce_rows(int op, L ld, int64_t rows, int64_t n, int splits, int64_t chunk,
                            RAcc *partial, void *out, int odt) {
  __shared__ RAcc sm[8][8]; /* [row in block][warp in row] */
  int tpr = blockDim.x, wpr = tpr / 32, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  int split = blockIdx.y;
  int64_t k0 = (int64_t)split * chunk, k1 = k0 + chunk < n ? k0 + chunk : n;
  for (int64_t row0 = (int64_t)blockIdx.x * blockDim.y; row0 < rows;
       row0 += (int64_t)gridDim.x * blockDim.y) {
    int64_t row = row0 + threadIdx.y;
    RAcc acc = r_identity(op);
    if (row < rows) {
      int64_t base = row * n;
      if (is_sum(op)) {
        for (int64_t k = k0 + threadIdx.x; k < k1; k += tpr) acc.v += ld(base + k);
      } else {
        for (int64_t k = k0 + threadIdx.x; k < k1; k += tpr) {
          RAcc e;
          e.v = ld(base + k);
          e.i = k;
          acc = r_combine(op, acc, e);
        }
      }
    }
    acc = r_warp(op, acc);
    if (wpr > 1) {
      if (lane == 0) sm[threadIdx.y][w] = acc;
      __syncthreads();
      if (w == 0) {
        acc = lane < wpr ? sm[threadIdx.y][lane] : r_identity(op);
        acc = r_warp(op, acc);
      }
      __syncthreads();
    }
    if (threadIdx.x == 0 && row < rows) {
      if (splits == 1)
        r_write(op, out, odt, row, acc, n);
      else
        partial[row * splits + split] = acc;
    }
  }
}

/* columns: blockDim (32, 8); x along inner, y along n */
template <typename L>
__global__ void reduce_cols(int op, L ld, int64_t outer, int64_t n, int64_t inner, int splits,
                            int64_t chunk, RAcc *partial, void *out, int odt) {
  __shared__ RAcc sm[8][33];
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t col = (int64_t)blockIdx.x * 32 + tx;
  int split = blockIdx.z;
  int64_t k0 = (int64_t)split * chunk, k1 = k0 + chunk < n ? k0 + chunk : n;
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    RAcc acc = r_identity(op);
    if (col < inner) {
      for (int64_t k = k0 + ty; k < k1; k += 8) {
        double v = ld((o * n + k) * inner + col);
        if (is_sum(op)) {
          acc.v += v;
        } else {
          RAcc e;
          e.v = v;
          e.i = k;
          acc = r_combine(op, acc, e);
        }
      }
    }
    sm[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && col < inner) {
      for (int y = 1; y < 8; y++) acc = r_combine(op, acc, sm[y][tx]);
      if (splits == 1)
        r_write(op, out, odt, o * inner + col, acc, n);
      else
        partial[(o * splits + split) * inner + col] = acc;
    }
    __syncthreads();
  }
}

/* combines partial[(o * splits + s) * inner + c] over s */
__global__ void reduce_partials(int op, const RAcc *partial, int64_t outer, int splits,
                                int64_t inner, void *out, int odt, int64_t n) {
  int64_t total = outer * inner;
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < total;
       j += (int64_t)gridDim.x * blockDim.x) {
    int64_t o = j / inner, c = j - o * inner;
    RAcc acc = r_identity(op);
    for (int s = 0; s < splits; s++)
      acc = r_combine(op, acc, partial[(o * splits + s) * inner + c]);
    r_write(op, out, odt, j, acc, n);
  }
}

template <typename L>
static void reduce_launch(int op, L ld, int64_t outer, int64_t n, int64_t inner, void *out, int odt,
                          int dev, cudaStream_t st) {
  int64_t target = 4 * (int64_t)tcu_sm_count(dev);
  int splits = 1;
  RAcc *partial = NULL;
  size_t pbytes = 0;
  if (inner == 1) {
    int tpr = 32;
    while (tpr < 256 && tpr < n) tpr *= 2;
    int rpb = 256 / tpr;
    if (outer < target && n > 4096) {
      int64_t s = (target + outer - 1) / outer, cap = n / 2048;
      if (s > cap) s = cap;
      if (s > 1024) s = 1024;
      splits = s < 1 ? 1 : (int)s;
    }
    int64_t chunk = (n + splits - 1) / splits;
    if (splits > 1) {
      pbytes = (size_t)outer * splits * sizeof(RAcc);
      if (!(partial = (RAcc *)tcu_alloc(pbytes, dev))) return;
    }
    int64_t gx = (outer + rpb - 1) / rpb;
    if (gx > 1 << 20) gx = 1 << 20;
    dim3 grid((unsigned)gx, (unsigned)splits), block(tpr, rpb);
    reduce_rows<L><<<grid, block, 0, st>>>(op, ld, outer, n, splits, chunk, partial, out, odt);
  } else {
    int64_t gx = (inner + 31) / 32, gy = outer < 65535 ? outer : 65535;
    if (gx * gy < target && n > 64) {
      int64_t s = (target + gx * gy - 1) / (gx * gy), cap = n / 32;
      if (s > cap) s = cap;
      if (s > 1024) s = 1024;
      splits = s < 1 ? 1 : (int)s;
    }
    int64_t chunk = (n + splits - 1) / splits;
    if (splits > 1) {
      pbytes = (size_t)outer * splits * inner * sizeof(RAcc);
      if (!(partial = (RAcc *)tcu_alloc(pbytes, dev))) return;
    }
    dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)splits), block(32, 8);
    reduce_cols<L>
        <<<grid, block, 0, st>>>(op, ld, outer, n, inner, splits, chunk, partial, out, odt);
  }
  if (!LAUNCH_CHECK() || splits == 1) {
    if (partial) tcu_free(partial, pbytes, dev);
    return;
  }
  reduce_partials<<<tcu_blocks(outer * inner, 256, dev), 256, 0, st>>>(op, partial, outer, splits,
                                                                       inner, out, odt, n);
  LAUNCH_CHECK();
  tcu_free(partial, pbytes, dev); /* stream-ordered: safe to reuse after the kernel */
}

void tcu_reduce(tyr_reduce_op op, tyr_tensor *out, const tyr_tensor *a, int dim) {
  cudaStream_t st = tcu_enter(out->device);
  if (!st) return;
  int64_t outer = 1, n = 1, inner = 1;
  if (dim < 0) {
    n = tyr_numel(a);
  } else {
    for (int i = 0; i < dim; i++) outer *= a->shape[i];
    n = a->shape[dim];
    for (int i = dim + 1; i < a->rank; i++) inner *= a->shape[i];
  }
  if (outer * inner == 0) return;
  if (n == 0) { /* as the CPU: 0 for sums, max, min and indices; NaN for means */
    tcu_fill(out, op == TYR_RED_MEAN ? NAN : 0.0);
    return;
  }
  TmpTensor tmp;
  const tyr_tensor *x = tcu_contiguous(a, &tmp);
  if (!x) return;
  int dev = out->device.index, odt = (int)out->dtype;
  void *o = tyr_data_ptr(out);
  const void *p = tyr_data_ptr(x);
  switch (x->dtype) {
  case TYR_F32:
    reduce_launch(op, Ld<float>{(const float *)p}, outer, n, inner, o, odt, dev, st);
    break;
  case TYR_F64:
    reduce_launch(op, Ld<double>{(const double *)p}, outer, n, inner, o, odt, dev, st);
    break;
  case TYR_BF16:
    reduce_launch(op, Ld<bf16>{(const bf16 *)p}, outer, n, inner, o, odt, dev, st);
    break;
  case TYR_F16:
    reduce_launch(op, Ld<f16>{(const f16 *)p}, outer, n, inner, o, odt, dev, st);
    break;
  default:
    reduce_launch(op, LdAny{p, (int)x->dtype}, outer, n, inner, o, odt, dev, st);
    break;
  }
  tcu_release(x, &tmp);
}
