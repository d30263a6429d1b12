/* Gathers and scatters along a dim: index_select, index_add, gather,
 * scatter_add, with the index layouts of src/cpu/nn.c (tensors seen as
 * [outer, n, inner] around dim; indices i32 or i64).
 *
 * Gathers move elements by size (any dtype).  Scatters add with atomics:
 * f32 and f64 directly; bf16 and f16 through an f32 copy of the output
 * that is converted back once, so that no addition rounds to 16 bits.
 * The ops layer checks index ranges; an index out of range here reads as
 * zero and is skipped by scatters instead of touching memory out of
 * bounds.  Atomic additions make the order of the sums, and so the last
 * bits of the result, vary from run to run. */
#include "cuda/cuda_internal.cuh"

__device__ __forceinline__ int64_t ld_idx(const void *p, bool i32, int64_t i) {
  return i32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

/* out[a, j, c] = src[a, idx[j], c] */
template <typename U, typename I>
__global__ void index_select_kernel(U *o, const U *s, const void *idx, bool i32, I m, I n, I inner,
                                    I total) {
  for (I lin = blockIdx.x * blockDim.x + threadIdx.x; lin < total;
       lin += (I)gridDim.x * blockDim.x) {
    I c = lin % inner, q = lin / inner, j = q % m, a = q / m;
    int64_t k = ld_idx(idx, i32, (int64_t)j);
    U v;
    if (k >= 0 && k < (int64_t)n)
      v = s[((int64_t)a * n + k) * inner + c];
    else
      memset(&v, 0, sizeof v);
    o[lin] = v;
  }
}

/* out[lin] = src[a, idx[lin], c], lin = (a * m + j) * inner + c over idx's shape */
template <typename U, typename I>
__global__ void gather_kernel(U *o, const U *s, const void *idx, bool i32, I m, I inner, I n,
                              I sinner, I total) {
  for (I lin = blockIdx.x * blockDim.x + threadIdx.x; lin < total;
       lin += (I)gridDim.x * blockDim.x) {
    I c = lin % inner, a = lin / inner / m;
    int64_t k = ld_idx(idx, i32, (int64_t)lin);
    U v;
    if (k >= 0 && k < (int64_t)n)
      v = s[((int64_t)a * n + k) * sinner + c];
    else
      memset(&v, 0, sizeof v);
    o[lin] = v;
  }
}

/* out[a, idx[j], c] += src[a, j, c] */
template <typename T, typename A>
__global__ void index_add_kernel(A *o, const T *s, const void *idx, bool i32, int64_t m, int64_t n,
                                 int64_t inner, int64_t total) {
  for (int64_t lin = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; lin < total;
       lin += (int64_t)gridDim.x * blockDim.x) {
    int64_t c = lin % inner, q = lin / inner, j = q % m, a = q / m;
    int64_t k = ld_idx(idx, i32, j);
    if (k >= 0 && k < n) atomicAdd(&o[(a * n + k) * inner + c], (A)to_c(s[lin]));
  }
}

/* out[a, idx[lin], c] += src[a, j, c] over idx's shape */
template <typename T, typename A>
__global__ void scatter_add_kernel(A *o, const T *s, const void *idx, bool i32, int64_t m,
                                   int64_t inner, int64_t n, int64_t oinner, int64_t sm,
                                   int64_t sinner, int64_t total) {
  for (int64_t lin = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; lin < total;
       lin += (int64_t)gridDim.x * blockDim.x) {
    int64_t c = lin % inner, q = lin / inner, j = q % m, a = q / m;
    int64_t k = ld_idx(idx, i32, lin);
    if (k >= 0 && k < n)
      atomicAdd(&o[(a * n + k) * oinner + c], (A)to_c(s[(a * sm + j) * sinner + c]));
  }
}

static void split3(const tyr_tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < dim; i++) *outer *= t->shape[i];
  *n = t->shape[dim];
  for (int i = dim + 1; i < t->rank; i++) *inner *= t->shape[i];
}

/* ---- gathers -------------------------------------------------------------------- */
template <typename I>
static void select_launch(size_t es, void *o, const void *s, const void *idx, bool i32, I m, I n,
                          I inner, I total, int dev, cudaStream_t st) {
  unsigned nb = tcu_blocks((int64_t)total, 256, dev);
  switch (es) {
  case 1:
    index_select_kernel<uint8_t, I>
        <<<nb, 256, 0, st>>>((uint8_t *)o, (const uint8_t *)s, idx, i32, m, n, inner, total);
    break;
  case 2:
    index_select_kernel<uint16_t, I>
        <<<nb, 256, 0, st>>>((uint16_t *)o, (const uint16_t *)s, idx, i32, m, n, inner, total);
    break;
  case 4:
    index_select_kernel<uint32_t, I>
        <<<nb, 256, 0, st>>>((uint32_t *)o, (const uint32_t *)s, idx, i32, m, n, inner, total);
    break;
  default:
    index_select_kernel<uint64_t, I>
        <<<nb, 256, 0, st>>>((uint64_t *)o, (const uint64_t *)s, idx, i32, m, n, inner, total);
    break;
  }
}

void tcu_index_select(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t total = tyr_numel(out);
  if (!st || total == 0) return;
  int64_t outer, n, inner, m = tyr_numel(idx);
  split3(src, dim, &outer, &n, &inner);
  TmpTensor ts, ti;
  const tyr_tensor *sc = tcu_contiguous(src, &ts);
  const tyr_tensor *ic = sc ? tcu_contiguous(idx, &ti) : NULL;
  if (sc && ic) {
    int dev = out->device.index;
    size_t es = tyr_dtype_size(out->dtype);
    bool i32 = ic->dtype == TYR_I32;
    if (total < INT32_MAX && outer * n * inner < INT32_MAX)
      select_launch<uint32_t>(es, tyr_data_ptr(out), tyr_data_ptr(sc), tyr_data_ptr(ic), i32,
                              (uint32_t)m, (uint32_t)n, (uint32_t)inner, (uint32_t)total, dev, st);
    else
      select_launch<int64_t>(es, tyr_data_ptr(out), tyr_data_ptr(sc), tyr_data_ptr(ic), i32, m, n,
                             inner, total, dev, st);
    LAUNCH_CHECK();
  }
  if (ic) tcu_release(ic, &ti);
  if (sc) tcu_release(sc, &ts);
}

template <typename I>
static void gather_launch(size_t es, void *o, const void *s, const void *idx, bool i32, I m,
                          I inner, I n, I sinner, I total, int dev, cudaStream_t st) {
  unsigned nb = tcu_blocks((int64_t)total, 256, dev);
  switch (es) {
  case 1:
    gather_kernel<uint8_t, I><<<nb, 256, 0, st>>>((uint8_t *)o, (const uint8_t *)s, idx, i32, m,
                                                  inner, n, sinner, total);
    break;
  case 2:
    gather_kernel<uint16_t, I><<<nb, 256, 0, st>>>((uint16_t *)o, (const uint16_t *)s, idx, i32, m,
                                                   inner, n, sinner, total);
    break;
  case 4:
    gather_kernel<uint32_t, I><<<nb, 256, 0, st>>>((uint32_t *)o, (const uint32_t *)s, idx, i32, m,
                                                   inner, n, sinner, total);
    break;
  default:
    gather_kernel<uint64_t, I><<<nb, 256, 0, st>>>((uint64_t *)o, (const uint64_t *)s, idx, i32, m,
                                                   inner, n, sinner, total);
    break;
  }
}

void tcu_gather(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t total = tyr_numel(idx);
  if (!st || total == 0) return;
  int64_t outer, m, inner, n = src->shape[dim], sinner = 1;
  split3(idx, dim, &outer, &m, &inner);
  for (int i = dim + 1; i < src->rank; i++) sinner *= src->shape[i];
  TmpTensor ts, ti;
  const tyr_tensor *sc = tcu_contiguous(src, &ts);
  const tyr_tensor *ic = sc ? tcu_contiguous(idx, &ti) : NULL;
  if (sc && ic) {
    int dev = out->device.index;
    size_t es = tyr_dtype_size(out->dtype);
    bool i32 = ic->dtype == TYR_I32;
    if (total < INT32_MAX && tyr_numel(sc) < INT32_MAX)
      gather_launch<uint32_t>(es, tyr_data_ptr(out), tyr_data_ptr(sc), tyr_data_ptr(ic), i32,
                              (uint32_t)m, (uint32_t)inner, (uint32_t)n, (uint32_t)sinner,
                              (uint32_t)total, dev, st);
    else
      gather_launch<int64_t>(es, tyr_data_ptr(out), tyr_data_ptr(sc), tyr_data_ptr(ic), i32, m,
                             inner, n, sinner, total, dev, st);
    LAUNCH_CHECK();
  }
  if (ic) tcu_release(ic, &ti);
  if (sc) tcu_release(sc, &ts);
}

/* ---- scatters ----------------------------------------------------------------------
 * Runs `launch(acc_ptr, src_ptr)` with an f32/f64 accumulator: out itself,
 * or an f32 copy of a bf16/f16 out that is converted back afterwards. */
struct ScatterArgs {
  int dim;
  const tyr_tensor *idx, *src;
  tyr_tensor *out;
};

template <typename T, typename A>
static void scatter_launch(bool is_index_add, A *acc, const ScatterArgs &g, cudaStream_t st) {
  const T *s = (const T *)tyr_data_ptr(g.src);
  bool i32 = g.idx->dtype == TYR_I32;
  const void *ip = tyr_data_ptr(g.idx);
  int dev = g.out->device.index;
  if (is_index_add) {
    int64_t outer, n, inner, m = tyr_numel(g.idx);
    split3(g.out, g.dim, &outer, &n, &inner);
    int64_t total = tyr_numel(g.src);
    index_add_kernel<T, A>
        <<<tcu_blocks(total, 256, dev), 256, 0, st>>>(acc, s, ip, i32, m, n, inner, total);
  } else {
    int64_t outer, m, inner, n = g.out->shape[g.dim], oinner = 1, sinner = 1;
    split3(g.idx, g.dim, &outer, &m, &inner);
    for (int i = g.dim + 1; i < g.out->rank; i++) oinner *= g.out->shape[i];
    for (int i = g.dim + 1; i < g.src->rank; i++) sinner *= g.src->shape[i];
    int64_t sm = g.src->shape[g.dim], total = tyr_numel(g.idx);
    scatter_add_kernel<T, A><<<tcu_blocks(total, 256, dev), 256, 0, st>>>(
        acc, s, ip, i32, m, inner, n, oinner, sm, sinner, total);
  }
  LAUNCH_CHECK();
}

static void scatter_common(const char *fn, bool is_index_add, tyr_tensor *out, int dim,
                           const tyr_tensor *idx, const tyr_tensor *src) {
  cudaStream_t st = tcu_enter(out->device);
  if (!st || tyr_numel(is_index_add ? src : idx) == 0 || tyr_numel(out) == 0) return;
  if (!tcu_is_float(out->dtype) || src->dtype != out->dtype) {
    tcu_fail(__FILE__, __LINE__, fn, "dtypes %s += %s are not supported",
             tyr_dtype_name(out->dtype), tyr_dtype_name(src->dtype));
    return;
  }
  TmpTensor ts, ti, to;
  memset(&to, 0, sizeof to);
  const tyr_tensor *sc = tcu_contiguous(src, &ts);
  const tyr_tensor *ic = sc ? tcu_contiguous(idx, &ti) : NULL;
  tyr_tensor *oc = NULL;
  bool half = out->dtype == TYR_BF16 || out->dtype == TYR_F16;
  if (ic) {
    if (half || !tyr_is_contiguous(out)) {
      oc = tcu_temp_like(out, half ? TYR_F32 : out->dtype, &to);
      if (oc) tcu_copy(oc, out);
    } else {
      oc = out;
    }
  }
  if (oc) {
    ScatterArgs g = {dim, ic, sc, out};
    switch (out->dtype) {
    case TYR_F32:
      scatter_launch<float, float>(is_index_add, (float *)tyr_data_ptr(oc), g, st);
      break;
    case TYR_F64:
      scatter_launch<double, double>(is_index_add, (double *)tyr_data_ptr(oc), g, st);
      break;
    case TYR_BF16:
      scatter_launch<bf16, float>(is_index_add, (float *)tyr_data_ptr(oc), g, st);
      break;
    default:
      scatter_launch<f16, float>(is_index_add, (float *)tyr_data_ptr(oc), g, st);
      break;
    }
    if (oc != out) {
      tcu_copy(out, oc);
      tcu_release(oc, &to);
    }
  }
  if (ic) tcu_release(ic, &ti);
  if (sc) tcu_release(sc, &ts);
}

void tcu_index_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src) {
  scatter_common("cuda_index_add", true, out, dim, idx, src);
}

void tcu_scatter_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src) {
  scatter_common("cuda_scatter_add", false, out, dim, idx, src);
}
