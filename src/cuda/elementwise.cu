/* Elementwise kernels: unary (and its backward), binary, where.
 *
 * Float tensors are computed in their compute type (f32 for f32/bf16/f16,
 * f64 for f64) with the formulas of src/cpu/elementwise.c.  Contiguous,
 * 16-byte aligned operands go through 16-byte vector loads and stores;
 * anything else (transposed or sliced views, stride-0 expanded inputs)
 * through the strided path, whose layout descriptor is passed by value.
 * Integer and bool operands and comparisons are computed in double, as on
 * the CPU.  The op is a run-time switch inside the kernel: one kernel per
 * dtype and path instead of one per op keeps compile time low, and the
 * branch is uniform across the grid. */
#include <math.h>

#include "cuda/cuda_internal.cuh"

#define SQRT_2_OVER_PI 0.7978845608028654
#define INV_SQRT_2 0.7071067811865476

/* ---- math in the compute type ----------------------------------------------- */
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
__device__ __forceinline__ float m_sqrt(float x) {
  return sqrtf(x);
}
__device__ __forceinline__ double m_sqrt(double x) {
  return sqrt(x);
}
__device__ __forceinline__ float m_abs(float x) {
  return fabsf(x);
}
__device__ __forceinline__ double m_abs(double x) {
  return fabs(x);
}
__device__ __forceinline__ float m_tanh(float x) {
  return tanhf(x);
}
__device__ __forceinline__ double m_tanh(double x) {
  return tanh(x);
}
__device__ __forceinline__ float m_erf(float x) {
  return erff(x);
}
__device__ __forceinline__ double m_erf(double x) {
  return erf(x);
}
__device__ __forceinline__ float m_erfc(float x) {
  return erfcf(x);
}
__device__ __forceinline__ double m_erfc(double x) {
  return erfc(x);
}
__device__ __forceinline__ float m_pow(float x, float y) {
  return powf(x, y);
}
__device__ __forceinline__ double m_pow(double x, double y) {
  return pow(x, y);
}

template <typename C>
__device__ __forceinline__ C un(int op, C x, double p0d, double p1d) {
  C p0 = (C)p0d, p1 = (C)p1d;
  switch (op) {
  case TYR_UN_NEG:
    return -x;
  case TYR_UN_EXP:
    return m_exp(x);
  case TYR_UN_LOG:
    return m_log(x);
  case TYR_UN_SQRT:
    return m_sqrt(x);
  case TYR_UN_RSQRT:
    return (C)1 / m_sqrt(x);
  case TYR_UN_ABS:
    return m_abs(x);
  case TYR_UN_TANH:
    return m_tanh(x);
  case TYR_UN_SIGMOID:
    return (C)1 / ((C)1 + m_exp(-x));
  case TYR_UN_RELU:
    return x > 0 ? x : (C)0;
  case TYR_UN_RELU2:
    return x > 0 ? x * x : (C)0;
  case TYR_UN_GELU:
    return (C)0.5 * x * ((C)1 + m_erf(x * (C)INV_SQRT_2));
  case TYR_UN_GELU_TANH:
    return (C)0.5 * x * ((C)1 + m_tanh((C)SQRT_2_OVER_PI * (x + (C)0.044715 * x * x * x)));
  case TYR_UN_SILU:
    return x / ((C)1 + m_exp(-x));
  case TYR_UN_SOFTCAP:
    return p0 * m_tanh(x / p0);
  case TYR_UN_POW:
    return m_pow(x, p0);
  case TYR_UN_ADD_SCALAR:
    return x + p0;
  case TYR_UN_MUL_SCALAR:
    return x * p0;
  case TYR_UN_RSUB_SCALAR:
    return p0 - x;
  case TYR_UN_RDIV_SCALAR:
    return p0 / x;
  case TYR_UN_CLAMP:
    return x < p0 ? p0 : (x > p1 ? p1 : x);
  case TYR_UN_SIGN:
    return (C)((x > 0) - (x < 0));
  case TYR_UN_RECIPROCAL:
    return (C)1 / x;
  case TYR_UN_SQUARE:
    return x * x;
  case TYR_UN_SIN:
    return sin(x);
  case TYR_UN_COS:
    return cos(x);
  case TYR_UN_SOFTPLUS:
    return x > (C)20 ? x : log1p(m_exp(x));
  case TYR_UN_LEAKY_RELU:
    return x > 0 ? x : p0 * x;
  default:
    return x;
  }
}

/* d op(x) / dx */
template <typename C>
__device__ __forceinline__ C dun(int op, C x, double p0d, double p1d) {
  C p0 = (C)p0d, p1 = (C)p1d;
  switch (op) {
  case TYR_UN_NEG:
    return (C)-1;
  case TYR_UN_EXP:
    return m_exp(x);
  case TYR_UN_LOG:
    return (C)1 / x;
  case TYR_UN_SQRT:
    return (C)0.5 / m_sqrt(x);
  case TYR_UN_RSQRT:
    return (C)-0.5 / (x * m_sqrt(x));
  case TYR_UN_ABS:
    return (C)((x > 0) - (x < 0));
  case TYR_UN_TANH: {
    C t = m_tanh(x);
    return (C)1 - t * t;
  }
  case TYR_UN_SIGMOID: {
    C s = (C)1 / ((C)1 + m_exp(-x));
    return s * ((C)1 - s);
  }
  case TYR_UN_RELU:
    return x > 0 ? (C)1 : (C)0;
  case TYR_UN_RELU2:
    return x > 0 ? 2 * x : (C)0;
  case TYR_UN_GELU: { /* Phi(x) + x phi(x), as the CPU's gelu_grad computes it */
    C z = x * (C)INV_SQRT_2, az = m_abs(z);
    C h = (C)0.5 * m_erfc(az); /* Phi(-|x|): no cancellation for negative x */
    C cdf = z < 0 ? h : (C)1 - h;
    C e = m_exp(-az * az);
    /* x phi(x) is 0 where e^(-x^2/2) is 0, also at x = +-inf (inf * 0 would
       be NaN); NaN stays NaN through cdf */
    C xpdf = e == (C)0 ? (C)0 : x * (e * (C)0.3989422804014327);
    return cdf + xpdf;
  }
  case TYR_UN_GELU_TANH: {
    C u = (C)SQRT_2_OVER_PI * (x + (C)0.044715 * x * x * x);
    C t = m_tanh(u);
    C du = (C)SQRT_2_OVER_PI * ((C)1 + (C)3 * (C)0.044715 * x * x);
    return (C)0.5 * ((C)1 + t) + (C)0.5 * x * ((C)1 - t * t) * du;
  }
  case TYR_UN_SILU: {
    C s = (C)1 / ((C)1 + m_exp(-x));
    return s * ((C)1 + x * ((C)1 - s));
  }
  case TYR_UN_SOFTCAP: {
    C t = m_tanh(x / p0);
    return (C)1 - t * t;
  }
  case TYR_UN_POW:
    return p0 * m_pow(x, p0 - (C)1);
  case TYR_UN_ADD_SCALAR:
    return (C)1;
  case TYR_UN_MUL_SCALAR:
    return p0;
  case TYR_UN_RSUB_SCALAR:
    return (C)-1;
  case TYR_UN_RDIV_SCALAR:
    return -p0 / (x * x);
  case TYR_UN_CLAMP:
    return (x >= p0 && x <= p1) ? (C)1 : (C)0;
  case TYR_UN_SIGN:
    return (C)0;
  case TYR_UN_RECIPROCAL:
    return (C)-1 / (x * x);
  case TYR_UN_SQUARE:
    return 2 * x;
  case TYR_UN_SIN:
    return cos(x);
  case TYR_UN_COS:
    return -sin(x);
  case TYR_UN_SOFTPLUS:
    return x > (C)20 ? (C)1 : (C)1 / ((C)1 + m_exp(-x));
  case TYR_UN_LEAKY_RELU:
    return x > 0 ? (C)1 : p0;
  default:
    return (C)0;
  }
}

template <typename C>
__device__ __forceinline__ C bin(int op, C x, C y) {
  switch (op) {
  case TYR_BIN_ADD:
    return x + y;
  case TYR_BIN_SUB:
    return x - y;
  case TYR_BIN_MUL:
    return x * y;
  case TYR_BIN_DIV:
    return x / y;
  case TYR_BIN_POW:
    return m_pow(x, y);
  case TYR_BIN_MAX:
    return x > y || x != x ? x : y;
  case TYR_BIN_MIN:
    return x < y || x != x ? x : y;
  case TYR_BIN_EQ:
    return x == y;
  case TYR_BIN_NE:
    return x != y;
  case TYR_BIN_LT:
    return x < y;
  case TYR_BIN_LE:
    return x <= y;
  case TYR_BIN_GT:
    return x > y;
  case TYR_BIN_GE:
    return x >= y;
  default:
    return 0;
  }
}

/* ---- unary ------------------------------------------------------------------------ */
template <typename T>
__global__ void unary_contig(int op, T *o, const T *x, int64_t n, int64_t nvec, double p0,
                             double p1) {
  typedef typename Acc<T>::type C;
  const int N = V16<T>::N;
  GRID_LOOP(i, 0, nvec) {
    V16<T> a = vload(x, i), r;
#pragma unroll
    for (int k = 0; k < N; k++) r.v[k] = from_c<T>(un<C>(op, to_c(a.v[k]), p0, p1));
    vstore(o, i, r);
  }
  GRID_LOOP(i, nvec * N, n) o[i] = from_c<T>(un<C>(op, to_c(x[i]), p0, p1));
}

template <typename T, typename I>
__global__ void unary_strided(int op, T *o, const T *x, Layout<2> L, I n, double p0, double p1) {
  typedef typename Acc<T>::type C;
  GRID_LOOP_I(I, i, n) {
    int64_t off[2];
    layout_offsets<2, I>(L, i, off);
    o[off[0]] = from_c<T>(un<C>(op, to_c(x[off[1]]), p0, p1));
  }
}

/* integer dtypes: in double, as the CPU */
template <typename I>
__global__ void unary_generic(int op, void *o, int odt, const void *x, int xdt, Layout<2> L, I n,
                              double p0, double p1) {
  GRID_LOOP_I(I, i, n) {
    int64_t off[2];
    layout_offsets<2, I>(L, i, off);
    st_any(o, odt, off[0], un<double>(op, ld_any(x, xdt, off[1]), p0, p1));
  }
}

template <typename T>
static void unary_run(int op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1,
                      cudaStream_t st) {
  int dev = out->device.index;
  int64_t n = tyr_numel(out);
  T *o = (T *)tyr_data_ptr(out);
  const T *x = (const T *)tyr_data_ptr(a);
  if (tyr_is_contiguous(out) && tyr_is_contiguous(a)) {
    int64_t nvec = tcu_aligned16(o) && tcu_aligned16(x) ? n / V16<T>::N : 0;
    unary_contig<T>
        <<<tcu_blocks(nvec ? nvec : n, 256, dev), 256, 0, st>>>(op, o, x, n, nvec, p0, p1);
  } else {
    const tyr_tensor *ts[2] = {out, a};
    Layout<2> L = make_layout<2>(ts);
    if (n < INT32_MAX)
      unary_strided<T, uint32_t>
          <<<tcu_blocks(n, 256, dev), 256, 0, st>>>(op, o, x, L, (uint32_t)n, p0, p1);
    else
      unary_strided<T, int64_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(op, o, x, L, n, p0, p1);
  }
  LAUNCH_CHECK();
}

void tcu_unary(tyr_unary_op op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  if (tcu_is_float(out->dtype) && out->dtype == a->dtype) {
    TCU_FLOAT_DISPATCH(out->dtype, unary_run<scalar_t>((int)op, out, a, p0, p1, st));
    return;
  }
  const tyr_tensor *ts[2] = {out, a};
  Layout<2> L = make_layout<2>(ts);
  int dev = out->device.index;
  if (n < INT32_MAX)
    unary_generic<uint32_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
        (int)op, tyr_data_ptr(out), (int)out->dtype, tyr_data_ptr(a), (int)a->dtype, L, (uint32_t)n,
        p0, p1);
  else
    unary_generic<int64_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
        (int)op, tyr_data_ptr(out), (int)out->dtype, tyr_data_ptr(a), (int)a->dtype, L, n, p0, p1);
  LAUNCH_CHECK();
}

/* ---- unary backward: gin = gout * op'(a) ------------------------------------------- */
template <typename T>
__global__ void unary_bw_contig(int op, T *o, const T *x, const T *g, int64_t n, int64_t nvec,
                                double p0, double p1) {
  typedef typename Acc<T>::type C;
  const int N = V16<T>::N;
  GRID_LOOP(i, 0, nvec) {
    V16<T> a = vload(x, i), b = vload(g, i), r;
#pragma unroll
    for (int k = 0; k < N; k++) r.v[k] = from_c<T>(to_c(b.v[k]) * dun<C>(op, to_c(a.v[k]), p0, p1));
    vstore(o, i, r);
  }
  GRID_LOOP(i, nvec * N, n) o[i] = from_c<T>(to_c(g[i]) * dun<C>(op, to_c(x[i]), p0, p1));
}

template <typename T, typename I>
__global__ void unary_bw_strided(int op, T *o, const T *x, const T *g, Layout<3> L, I n, double p0,
                                 double p1) {
  typedef typename Acc<T>::type C;
  GRID_LOOP_I(I, i, n) {
    int64_t off[3];
    layout_offsets<3, I>(L, i, off);
    o[off[0]] = from_c<T>(to_c(g[off[2]]) * dun<C>(op, to_c(x[off[1]]), p0, p1));
  }
}

template <typename T>
static void unary_bw_run(int op, tyr_tensor *gin, const tyr_tensor *a, const tyr_tensor *gout,
                         double p0, double p1, cudaStream_t st) {
  int dev = gin->device.index;
  int64_t n = tyr_numel(gin);
  T *o = (T *)tyr_data_ptr(gin);
  const T *x = (const T *)tyr_data_ptr(a), *g = (const T *)tyr_data_ptr(gout);
  if (tyr_is_contiguous(gin) && tyr_is_contiguous(a) && tyr_is_contiguous(gout)) {
    bool al = tcu_aligned16(o) && tcu_aligned16(x) && tcu_aligned16(g);
    int64_t nvec = al ? n / V16<T>::N : 0;
    unary_bw_contig<T>
        <<<tcu_blocks(nvec ? nvec : n, 256, dev), 256, 0, st>>>(op, o, x, g, n, nvec, p0, p1);
  } else {
    const tyr_tensor *ts[3] = {gin, a, gout};
    Layout<3> L = make_layout<3>(ts);
    if (n < INT32_MAX)
      unary_bw_strided<T, uint32_t>
          <<<tcu_blocks(n, 256, dev), 256, 0, st>>>(op, o, x, g, L, (uint32_t)n, p0, p1);
    else
      unary_bw_strided<T, int64_t>
          <<<tcu_blocks(n, 256, dev), 256, 0, st>>>(op, o, x, g, L, n, p0, p1);
  }
  LAUNCH_CHECK();
}

void tcu_unary_backward(tyr_unary_op op, tyr_tensor *gin, const tyr_tensor *a,
                        const tyr_tensor *gout, double p0, double p1) {
  cudaStream_t st = tcu_enter(gin->device);
  if (!st || tyr_numel(gin) == 0) return;
  if (!tcu_is_float(gin->dtype) || a->dtype != gin->dtype || gout->dtype != gin->dtype) {
    tcu_fail(__FILE__, __LINE__, "cuda_unary_backward", "dtypes %s, %s, %s are not supported",
             tyr_dtype_name(gin->dtype), tyr_dtype_name(a->dtype), tyr_dtype_name(gout->dtype));
    return;
  }
  TCU_FLOAT_DISPATCH(gin->dtype, unary_bw_run<scalar_t>((int)op, gin, a, gout, p0, p1, st));
}

/* ---- binary ------------------------------------------------------------------------- */
template <typename T>
__global__ void binary_contig(int op, T *o, const T *x, const T *y, int64_t n, int64_t nvec) {
  typedef typename Acc<T>::type C;
  const int N = V16<T>::N;
  GRID_LOOP(i, 0, nvec) {
    V16<T> a = vload(x, i), b = vload(y, i), r;
#pragma unroll
    for (int k = 0; k < N; k++) r.v[k] = from_c<T>(bin<C>(op, to_c(a.v[k]), to_c(b.v[k])));
    vstore(o, i, r);
  }
  GRID_LOOP(i, nvec * N, n) o[i] = from_c<T>(bin<C>(op, to_c(x[i]), to_c(y[i])));
}

template <typename T, typename I>
__global__ void binary_strided(int op, T *o, const T *x, const T *y, Layout<3> L, I n) {
  typedef typename Acc<T>::type C;
  GRID_LOOP_I(I, i, n) {
    int64_t off[3];
    layout_offsets<3, I>(L, i, off);
    o[off[0]] = from_c<T>(bin<C>(op, to_c(x[off[1]]), to_c(y[off[2]])));
  }
}

/* comparisons (bool out) and integer dtypes: in double, as the CPU */
template <typename I>
__global__ void binary_generic(int op, void *o, int odt, const void *x, int xdt, const void *y,
                               int ydt, Layout<3> L, I n, bool integral) {
  GRID_LOOP_I(I, i, n) {
    int64_t off[3];
    layout_offsets<3, I>(L, i, off);
    double r = bin<double>(op, ld_any(x, xdt, off[1]), ld_any(y, ydt, off[2]));
    if (integral && op == TYR_BIN_DIV) r = trunc(r);
    st_any(o, odt, off[0], r);
  }
}

template <typename T>
static void binary_run(int op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                       cudaStream_t st) {
  int dev = out->device.index;
  int64_t n = tyr_numel(out);
  T *o = (T *)tyr_data_ptr(out);
  const T *x = (const T *)tyr_data_ptr(a), *y = (const T *)tyr_data_ptr(b);
  if (tyr_is_contiguous(out) && tyr_is_contiguous(a) && tyr_is_contiguous(b)) {
    bool al = tcu_aligned16(o) && tcu_aligned16(x) && tcu_aligned16(y);
    int64_t nvec = al ? n / V16<T>::N : 0;
    binary_contig<T><<<tcu_blocks(nvec ? nvec : n, 256, dev), 256, 0, st>>>(op, o, x, y, n, nvec);
  } else {
    const tyr_tensor *ts[3] = {out, a, b};
    Layout<3> L = make_layout<3>(ts);
    if (n < INT32_MAX)
      binary_strided<T, uint32_t>
          <<<tcu_blocks(n, 256, dev), 256, 0, st>>>(op, o, x, y, L, (uint32_t)n);
    else
      binary_strided<T, int64_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(op, o, x, y, L, n);
  }
  LAUNCH_CHECK();
}

/* f32 out and a, 16-bit b (the mixed-precision residual add): b widened as
 * it is read, four elements a step (16-byte loads of a, 8-byte loads of b) */
template <typename TB>
__global__ void binary_f32_mixed(int op, float *o, const float *x, const TB *y, int64_t n,
                                 int64_t nvec) {
  GRID_LOOP(i, 0, nvec) {
    float4 a = reinterpret_cast<const float4 *>(x)[i];
    uint2 raw = reinterpret_cast<const uint2 *>(y)[i];
    TB e[4];
    memcpy(e, &raw, 8);
    float4 r;
    r.x = bin<float>(op, a.x, to_c(e[0]));
    r.y = bin<float>(op, a.y, to_c(e[1]));
    r.z = bin<float>(op, a.z, to_c(e[2]));
    r.w = bin<float>(op, a.w, to_c(e[3]));
    reinterpret_cast<float4 *>(o)[i] = r;
  }
  GRID_LOOP(i, nvec * 4, n) o[i] = bin<float>(op, x[i], to_c(y[i]));
}

static bool binary_f32_mixed_run(int op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                                 cudaStream_t st) {
  if (out->dtype != TYR_F32 || a->dtype != TYR_F32 ||
      (b->dtype != TYR_BF16 && b->dtype != TYR_F16) || !tyr_is_contiguous(out) ||
      !tyr_is_contiguous(a) || !tyr_is_contiguous(b))
    return false;
  int dev = out->device.index;
  int64_t n = tyr_numel(out);
  float *o = (float *)tyr_data_ptr(out);
  const float *x = (const float *)tyr_data_ptr(a);
  const void *y = tyr_data_ptr(b);
  bool al = tcu_aligned16(o) && tcu_aligned16(x) && ((uintptr_t)y % 8) == 0;
  int64_t nvec = al ? n / 4 : 0;
  unsigned grid = tcu_blocks(nvec ? nvec : n, 256, dev);
  if (b->dtype == TYR_BF16)
    binary_f32_mixed<bf16><<<grid, 256, 0, st>>>(op, o, x, (const bf16 *)y, n, nvec);
  else
    binary_f32_mixed<f16><<<grid, 256, 0, st>>>(op, o, x, (const f16 *)y, n, nvec);
  LAUNCH_CHECK();
  return true;
}

void tcu_binary(tyr_binary_op op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  bool cmp = op >= TYR_BIN_EQ;
  if (!cmp && tcu_is_float(out->dtype) && a->dtype == out->dtype && b->dtype == out->dtype) {
    TCU_FLOAT_DISPATCH(out->dtype, binary_run<scalar_t>((int)op, out, a, b, st));
    return;
  }
  /* exact in f32 as in double (each result rounded once): the generic
     kernel's double arithmetic gives the same bits for these four */
  bool f32_exact = op == TYR_BIN_ADD || op == TYR_BIN_SUB || op == TYR_BIN_MUL || op == TYR_BIN_DIV;
  if (f32_exact && binary_f32_mixed_run((int)op, out, a, b, st)) return;
  const tyr_tensor *ts[3] = {out, a, b};
  Layout<3> L = make_layout<3>(ts);
  int dev = out->device.index;
  bool integral = !tyr_dtype_is_float(a->dtype);
  if (n < INT32_MAX)
    binary_generic<uint32_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
        (int)op, tyr_data_ptr(out), (int)out->dtype, tyr_data_ptr(a), (int)a->dtype,
        tyr_data_ptr(b), (int)b->dtype, L, (uint32_t)n, integral);
  else
    binary_generic<int64_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>(
        (int)op, tyr_data_ptr(out), (int)out->dtype, tyr_data_ptr(a), (int)a->dtype,
        tyr_data_ptr(b), (int)b->dtype, L, n, integral);
  LAUNCH_CHECK();
}

/* ---- where -------------------------------------------------------------------------- */
template <typename U, typename I>
__global__ void where_kernel(U *o, const uint8_t *c, const U *x, const U *y, Layout<4> L, I n) {
  GRID_LOOP_I(I, i, n) {
    int64_t off[4];
    layout_offsets<4, I>(L, i, off);
    o[off[0]] = c[off[1]] ? x[off[2]] : y[off[3]];
  }
}

template <typename U, typename I>
static void where_launch(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a,
                         const tyr_tensor *b, const Layout<4> &L, I n, cudaStream_t st) {
  where_kernel<U, I><<<tcu_blocks((int64_t)n, 256, out->device.index), 256, 0, st>>>(
      (U *)tyr_data_ptr(out), (const uint8_t *)tyr_data_ptr(cond), (const U *)tyr_data_ptr(a),
      (const U *)tyr_data_ptr(b), L, n);
}

template <typename I>
static void where_run(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a,
                      const tyr_tensor *b, const Layout<4> &L, I n, cudaStream_t st) {
  switch (tyr_dtype_size(out->dtype)) {
  case 1:
    where_launch<uint8_t, I>(out, cond, a, b, L, n, st);
    break;
  case 2:
    where_launch<uint16_t, I>(out, cond, a, b, L, n, st);
    break;
  case 4:
    where_launch<uint32_t, I>(out, cond, a, b, L, n, st);
    break;
  default:
    where_launch<uint64_t, I>(out, cond, a, b, L, n, st);
    break;
  }
  LAUNCH_CHECK();
}

void tcu_where(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a, const tyr_tensor *b) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  const tyr_tensor *ts[4] = {out, cond, a, b};
  Layout<4> L = make_layout<4>(ts);
  if (n < INT32_MAX)
    where_run<uint32_t>(out, cond, a, b, L, (uint32_t)n, st);
  else
    where_run<int64_t>(out, cond, a, b, L, n, st);
}
