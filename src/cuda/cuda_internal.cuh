/* Shared pieces of the CUDA backend (included by the .cu files of src/cuda only):
 * error checks, devices and streams, temporaries, the element types, and
 * the strided-layout descriptor that kernels take by value. */
#ifndef TYR_CUDA_INTERNAL_CUH
#define TYR_CUDA_INTERNAL_CUH
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "core/backend.h"
#include "core/internal.h"

/* ---- errors --------------------------------------------------------------
 * Every CUDA / cuBLAS status is checked.  A failure raises TYR_ERR_DEVICE
 * naming the file and line of the call, the calling function and the
 * library's message, and the kernel family returns without touching
 * anything else (no abort). */
bool tcu_check(cudaError_t e, const char *file, int line, const char *fn, const char *what);
#define CUDA_CHECK(call) tcu_check((call), __FILE__, __LINE__, __func__, #call)
/* After a kernel launch: reports bad launch configurations. */
#define LAUNCH_CHECK() tcu_check(cudaGetLastError(), __FILE__, __LINE__, __func__, "kernel launch")
void tcu_fail(const char *file, int line, const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- devices ---------------------------------------------------------------
 * tcu_enter makes dev current on this thread (initialising it on first use:
 * its stream, properties and allocator) and returns its stream, or NULL
 * after raising. */
cudaStream_t tcu_enter(tyr_device dev);
/* Whether a CUDA graph is being captured on device dev. */
bool tcu_capturing(int dev);
/* When dev is capturing: raises (naming fn and what cannot run) and
 * returns true; else false. */
bool tcu_refuse_capture(int dev, const char *fn, const char *what);
#define TCU_MAX_DEV 64 /* device indices the backend keeps state for */
int tcu_sm_count(int dev);
/* The compute capability's major number of device dev (0 when unknown). */
int tcu_cc_major(int dev);
/* Device temporaries from the caching allocator (stream-ordered: a block
 * freed here may be reused by the next kernel on the same stream). */
void *tcu_alloc(size_t nbytes, int dev);
void tcu_free(void *p, size_t nbytes, int dev);

/* Blocks for a grid-stride loop over n items. */
static inline unsigned tcu_blocks(int64_t n, int threads, int dev) {
  int64_t b = (n + threads - 1) / threads;
  int64_t cap = (int64_t)tcu_sm_count(dev) * 32;
  if (b > cap) b = cap;
  return (unsigned)(b < 1 ? 1 : b);
}

/* ---- element types -------------------------------------------------------
 * bf16 and f16 are stored as raw 16-bit words and computed in f32; the
 * conversions are those of src/core/dtype.c, bit for bit. */
struct bf16 {
  uint16_t x;
};
struct f16 {
  uint16_t x;
};

__host__ __device__ __forceinline__ float tcu_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
__host__ __device__ __forceinline__ uint16_t tcu_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)((u + rounding) >> 16);
}
__host__ __device__ __forceinline__ float tcu_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400u));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}
__host__ __device__ __forceinline__ uint16_t tcu_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return sign | 0x7e00u;
  if (absx >= 0x477ff000u) return sign | 0x7c00u;
  if (absx < 0x38800000u) {
    if (absx < 0x33000000u) return sign;
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 113 - e + 13;
    uint32_t r = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return sign | (uint16_t)r;
  }
  uint32_t r = absx + 0xfffu + ((absx >> 13) & 1u);
  r -= 0x38000000u;
  return sign | (uint16_t)(r >> 13);
}

/* Compute type: f32 for f32/bf16/f16, f64 for f64. */
template <typename T>
struct Acc {
  typedef float type;
};
template <>
struct Acc<double> {
  typedef double type;
};

__device__ __forceinline__ float to_c(float v) {
  return v;
}
__device__ __forceinline__ double to_c(double v) {
  return v;
}
__device__ __forceinline__ float to_c(bf16 v) {
  return tcu_bf16_to_f32(v.x);
}
__device__ __forceinline__ float to_c(f16 v) {
  return tcu_f16_to_f32(v.x);
}

template <typename T>
__device__ __forceinline__ T from_c(typename Acc<T>::type v);
template <>
__device__ __forceinline__ float from_c<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ double from_c<double>(double v) {
  return v;
}
template <>
__device__ __forceinline__ bf16 from_c<bf16>(float v) {
  bf16 r;
  r.x = tcu_f32_to_bf16(v);
  return r;
}
template <>
__device__ __forceinline__ f16 from_c<f16>(float v) {
  f16 r;
  r.x = tcu_f32_to_f16(v);
  return r;
}

/* Any dtype as double and back: tyr__load_f64 / tyr__store_f64 on the GPU. */
__device__ __forceinline__ double ld_any(const void *p, int dt, int64_t i) {
  switch (dt) {
  case TYR_F32:
    return ((const float *)p)[i];
  case TYR_F64:
    return ((const double *)p)[i];
  case TYR_BF16:
    return tcu_bf16_to_f32(((const uint16_t *)p)[i]);
  case TYR_F16:
    return tcu_f16_to_f32(((const uint16_t *)p)[i]);
  case TYR_I32:
    return ((const int32_t *)p)[i];
  case TYR_I64:
    return (double)((const int64_t *)p)[i];
  case TYR_U8:
    return ((const uint8_t *)p)[i];
  case TYR_BOOL:
    return ((const uint8_t *)p)[i] != 0;
  default:
    return 0;
  }
}
__device__ __forceinline__ void st_any(void *p, int dt, int64_t i, double v) {
  switch (dt) {
  case TYR_F32:
    ((float *)p)[i] = (float)v;
    break;
  case TYR_F64:
    ((double *)p)[i] = v;
    break;
  case TYR_BF16:
    ((uint16_t *)p)[i] = tcu_f32_to_bf16((float)v);
    break;
  case TYR_F16:
    ((uint16_t *)p)[i] = tcu_f32_to_f16((float)v);
    break;
  case TYR_I32:
    ((int32_t *)p)[i] = (int32_t)(int64_t)v;
    break;
  case TYR_I64:
    ((int64_t *)p)[i] = (int64_t)v;
    break;
  case TYR_U8:
    ((uint8_t *)p)[i] = (uint8_t)(int64_t)v;
    break;
  case TYR_BOOL:
    ((uint8_t *)p)[i] = v != 0;
    break;
  default:
    break;
  }
}

/* ---- strided layouts -----------------------------------------------------
 * N tensors of one shape (the first is usually the output) iterated in
 * row-major order.  Dims of size 1 are dropped and neighbours that are
 * contiguous in every tensor are merged, so most views end up with rank 1
 * or 2.  Offsets are in elements, relative to each tensor's data pointer. */
template <int N>
struct Layout {
  int rank;
  int64_t shape[TYR_MAX_RANK];
  int64_t stride[N][TYR_MAX_RANK];
};

template <int N>
static Layout<N> make_layout(const tyr_tensor *const *ts) {
  Layout<N> L;
  const tyr_tensor *t0 = ts[0];
  int r = 0;
  for (int d = 0; d < t0->rank; d++) {
    if (t0->shape[d] == 1) continue;
    L.shape[r] = t0->shape[d];
    for (int k = 0; k < N; k++) L.stride[k][r] = ts[k]->stride[d];
    r++;
  }
  /* merge dim i into i+1 from the back when contiguous in every tensor */
  int m = 0;
  for (int d = 0; d < r; d++) {
    if (m > 0) {
      bool ok = true;
      for (int k = 0; k < N; k++) ok = ok && L.stride[k][m - 1] == L.stride[k][d] * L.shape[d];
      if (ok) {
        L.shape[m - 1] *= L.shape[d];
        for (int k = 0; k < N; k++) L.stride[k][m - 1] = L.stride[k][d];
        continue;
      }
    }
    L.shape[m] = L.shape[d];
    for (int k = 0; k < N; k++) L.stride[k][m] = L.stride[k][d];
    m++;
  }
  if (m == 0) {
    L.shape[0] = 1;
    for (int k = 0; k < N; k++) L.stride[k][0] = 0;
    m = 1;
  }
  L.rank = m;
  return L;
}

/* Offsets of linear index i in each tensor.  I is uint32_t when the element
 * count fits (32-bit division is far cheaper on the GPU), else int64_t. */
template <int N, typename I>
__device__ __forceinline__ void layout_offsets(const Layout<N> &L, I i, int64_t *off) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = 0;
#pragma unroll
  for (int d = TYR_MAX_RANK - 1; d >= 0; d--) {
    if (d >= L.rank) continue;
    I sz = (I)L.shape[d];
    I q = i / sz;
    I rem = i - q * sz;
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += (int64_t)rem * L.stride[k][d];
    i = q;
  }
}

/* ---- vector access -------------------------------------------------------------- */
template <typename T>
struct V16 {
  static const int N = 16 / sizeof(T);
  T v[N];
};
template <typename T>
__device__ __forceinline__ V16<T> vload(const T *p, int64_t i) {
  uint4 raw = reinterpret_cast<const uint4 *>(p)[i];
  V16<T> r;
  memcpy(&r, &raw, 16);
  return r;
}
template <typename T>
__device__ __forceinline__ void vstore(T *p, int64_t i, const V16<T> &r) {
  uint4 raw;
  memcpy(&raw, &r, 16);
  reinterpret_cast<uint4 *>(p)[i] = raw;
}

/* Grid-stride loops over [start, n): int64_t or a given index type I. */
#define GRID_LOOP(i, start, n)                                                                     \
  for (int64_t i = (start) + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);              \
       i += (int64_t)gridDim.x * blockDim.x)
#define GRID_LOOP_I(I, i, n)                                                                       \
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (I)gridDim.x * blockDim.x)

/* The tensor that block bid of a multi-tensor launch works on, where
   end[t] counts the blocks of tensors 0..t (k tensors): the first t with
   end[t] > bid. */
__device__ __forceinline__ int tcu_many_tensor(const int *end, int k, int bid) {
  int lo = 0, hi = k - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (end[mid] > bid)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* Whether p is aligned to 16 bytes (for vector loads). */
static inline bool tcu_aligned16(const void *p) {
  return ((uintptr_t)p & 15u) == 0;
}

/* Dispatch on the float dtypes: runs the statement with scalar_t set to
 * the element type (float, double, bf16, f16); other dtypes do nothing. */
#define TCU_FLOAT_DISPATCH(dt, ...)                                                                \
  switch (dt) {                                                                                    \
  case TYR_F32: {                                                                                  \
    typedef float scalar_t;                                                                        \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case TYR_F64: {                                                                                  \
    typedef double scalar_t;                                                                       \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case TYR_BF16: {                                                                                 \
    typedef bf16 scalar_t;                                                                         \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case TYR_F16: {                                                                                  \
    typedef f16 scalar_t;                                                                          \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }

static inline bool tcu_is_float(tyr_dtype dt) {
  return dt == TYR_F32 || dt == TYR_F64 || dt == TYR_BF16 || dt == TYR_F16;
}

/* Entry points of the kernel families (the backend table's functions). */
extern "C" {
void tcu_fill(tyr_tensor *out, double value);
void tcu_arange(tyr_tensor *out, double start, double step);
void tcu_copy(tyr_tensor *out, const tyr_tensor *src);
void tcu_random(tyr_tensor *out, tyr_random_kind kind, double p0, double p1, uint64_t seed,
                uint64_t counter);
void tcu_unary(tyr_unary_op op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1);
void tcu_unary_backward(tyr_unary_op op, tyr_tensor *gin, const tyr_tensor *a,
                        const tyr_tensor *gout, double p0, double p1);
void tcu_binary(tyr_binary_op op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b);
void tcu_where(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a, const tyr_tensor *b);
void tcu_reduce(tyr_reduce_op op, tyr_tensor *out, const tyr_tensor *a, int dim);
void tcu_cumsum(tyr_tensor *out, const tyr_tensor *x, int dim);
void tcu_matmul(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b);
void tcu_matmul_bias(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                     const tyr_tensor *bias);
bool tcu_matmul_bgrad(tyr_tensor *out, tyr_tensor *gbias, const tyr_tensor *a, const tyr_tensor *b);
bool tcu_matmul_act(tyr_tensor *out, tyr_tensor *pre, const tyr_tensor *a, const tyr_tensor *b,
                    const tyr_tensor *bias, tyr_unary_op act);
bool tcu_matmul_dact(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                     const tyr_tensor *pre, tyr_unary_op act);
void tcu_softmax(tyr_tensor *out, const tyr_tensor *x, bool log);
void tcu_softmax_backward(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log);
void tcu_layer_norm(tyr_tensor *y, tyr_tensor *mean, tyr_tensor *rstd, const tyr_tensor *x,
                    const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                    const tyr_tensor *r);
void tcu_layer_norm_backward(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                             const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *mean,
                             const tyr_tensor *rstd, bool add_gx, tyr_tensor *gx_cast);
void tcu_index_select(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx);
void tcu_index_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src);
void tcu_gather(tyr_tensor *out, const tyr_tensor *src, int dim, const tyr_tensor *idx);
void tcu_scatter_add(tyr_tensor *out, int dim, const tyr_tensor *idx, const tyr_tensor *src);
void tcu_cross_entropy(tyr_tensor *losses, const tyr_tensor *logits, const tyr_tensor *targets,
                       int64_t ignore_index);
void tcu_cross_entropy_fused(tyr_tensor *losses, tyr_tensor *logits, const tyr_tensor *targets,
                             int64_t ignore_index, const tyr_tensor *scale);
void tcu_cross_entropy_backward(tyr_tensor *glogits, const tyr_tensor *logits,
                                const tyr_tensor *targets, int64_t ignore_index,
                                const tyr_tensor *gloss);
void tcu_adamw_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                    double lr, double beta1, double beta2, double eps, double weight_decay,
                    int64_t step);
void tcu_sgd_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *buf, double lr,
                  double momentum, double dampening, double weight_decay, bool nesterov,
                  bool first);
double tcu_sum_squares(const tyr_tensor *t);
double tcu_sum_squares_many(int n, const tyr_tensor *const *ts);
void tcu_adamw_step_dev(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m, tyr_tensor *v,
                        double beta1, double beta2, double eps, const tyr_tensor *hyper, int group);
void tcu_clip_grad_norm(int n, tyr_tensor *const *ts, double max_norm, tyr_tensor *norm);
void tcu_adamw_step_many(int n, tyr_tensor *const *params, const tyr_tensor *const *grads,
                         tyr_tensor *const *m, tyr_tensor *const *v, const int *group,
                         const double *lr, const double *weight_decay, double beta1, double beta2,
                         double eps, int64_t step, const tyr_tensor *hyper);
void tcu_scale_(tyr_tensor *t, double c);
void tcu_rotary(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *cos_table,
                const tyr_tensor *sin_table, bool inverse);
void tcu_sdpa(tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
              const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
              int64_t window, double scale);
/* the convolution family's entries (src/cuda/conv.cu) into the table */
void tcu_conv_register(tyr_backend *t);
void tcu_sdpa_backward(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                       const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                       const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                       const tyr_tensor *doc, bool causal, int64_t window, double scale);
}

/* A tensor header over a device temporary, not counted among live
 * tensors: kernels that need contiguous inputs use it for a copy of a
 * strided one. */
struct TmpTensor {
  tyr_tensor t;
  tyr_storage st;
};
/* t itself when contiguous, else a contiguous copy in *tmp (release with
 * tcu_release); NULL after raising. */
const tyr_tensor *tcu_contiguous(const tyr_tensor *t, TmpTensor *tmp);
/* A contiguous temporary of the given dtype and t's shape and device. */
tyr_tensor *tcu_temp_like(const tyr_tensor *t, tyr_dtype dt, TmpTensor *tmp);
/* Frees what tcu_contiguous / tcu_temp_like allocated (nothing when t is
 * not tmp's tensor). */
void tcu_release(const tyr_tensor *t, TmpTensor *tmp);
#endif
