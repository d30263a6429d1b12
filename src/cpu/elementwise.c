/* CPU elementwise kernels: unary (with backward), binary, where. */
#include <math.h>

#include "cpu/cpu.h"
#include "cpu/fastmath.h"
#include "cpu/parallel.h"

#define SQRT_2_OVER_PI 0.7978845608028654
#define INV_SQRT_2 0.7071067811865476

#define UNARY_EXPR(T, x, p0, p1, FN)                                                               \
  switch (op) {                                                                                    \
  case TYR_UN_NEG:                                                                                 \
    return -x;                                                                                     \
  case TYR_UN_EXP:                                                                                 \
    return FN(exp)(x);                                                                             \
  case TYR_UN_LOG:                                                                                 \
    return FN(log)(x);                                                                             \
  case TYR_UN_SQRT:                                                                                \
    return FN(sqrt)(x);                                                                            \
  case TYR_UN_RSQRT:                                                                               \
    return (T)1 / FN(sqrt)(x);                                                                     \
  case TYR_UN_ABS:                                                                                 \
    return FN(fabs)(x);                                                                            \
  case TYR_UN_TANH:                                                                                \
    return FN(act_tanh)(x);                                                                        \
  case TYR_UN_SIGMOID:                                                                             \
    return FN(act_sigmoid)(x);                                                                     \
  case TYR_UN_RELU:                                                                                \
    return x > 0 ? x : 0;                                                                          \
  case TYR_UN_RELU2:                                                                               \
    return x > 0 ? x * x : 0;                                                                      \
  case TYR_UN_GELU:                                                                                \
    return (T)0.5 * x * ((T)1 + FN(gelu_erf)(x * (T)INV_SQRT_2));                                  \
  case TYR_UN_GELU_TANH:                                                                           \
    return (T)0.5 * x * ((T)1 + FN(act_tanh)((T)SQRT_2_OVER_PI * (x + (T)0.044715 * x * x * x)));  \
  case TYR_UN_SILU:                                                                                \
    return x * FN(act_sigmoid)(x);                                                                 \
  case TYR_UN_SOFTCAP:                                                                             \
    return (T)p0 * FN(act_tanh)(x / (T)p0);                                                        \
  case TYR_UN_POW:                                                                                 \
    return FN(pow)(x, (T)p0);                                                                      \
  case TYR_UN_ADD_SCALAR:                                                                          \
    return x + (T)p0;                                                                              \
  case TYR_UN_MUL_SCALAR:                                                                          \
    return x * (T)p0;                                                                              \
  case TYR_UN_RSUB_SCALAR:                                                                         \
    return (T)p0 - x;                                                                              \
  case TYR_UN_RDIV_SCALAR:                                                                         \
    return (T)p0 / x;                                                                              \
  case TYR_UN_CLAMP:                                                                               \
    return x < (T)p0 ? (T)p0 : (x > (T)p1 ? (T)p1 : x);                                            \
  case TYR_UN_SIGN:                                                                                \
    return (T)((x > 0) - (x < 0));                                                                 \
  case TYR_UN_RECIPROCAL:                                                                          \
    return (T)1 / x;                                                                               \
  case TYR_UN_SQUARE:                                                                              \
    return x * x;                                                                                  \
  case TYR_UN_SIN:                                                                                 \
    return FN(sin)(x);                                                                             \
  case TYR_UN_COS:                                                                                 \
    return FN(cos)(x);                                                                             \
  case TYR_UN_SOFTPLUS:                                                                            \
    return x > (T)20 ? x : FN(log1p)(FN(exp)(x));                                                  \
  case TYR_UN_LEAKY_RELU:                                                                          \
    return x > 0 ? x : (T)p0 * x;                                                                  \
  default:                                                                                         \
    return x;                                                                                      \
  }

#define FNF(name) name##f
#define FND(name) name
/* GELU's erf and Gaussian in f32 through the vectorisable forms (their
 * arguments stay in the range where those are accurate); f64 uses libm */
#define gelu_erff tyr_cpu_erff
#define gelu_erf erf
/* GELU's derivative Phi(x) + x phi(x): one exponential for both terms in
 * f32 (fastmath.h), libm in f64 */
#define gelu_gradf tyr_cpu_gelu_gradf
static inline double gelu_grad(double x) {
  /* Phi through erfc: no cancellation for negative x; x phi(x) is 0 where
     the Gaussian underflows, also at +-inf */
  double xpdf = fabs(x) < 40.0 ? x * exp(-0.5 * x * x) * 0.3989422804014327 : 0.0;
  return 0.5 * erfc(-x * INV_SQRT_2) + xpdf;
}
/* tanh and the logistic function (tanh, sigmoid, SiLU, GELU's tanh form,
 * softcap) likewise: vectorisable forms in f32, libm in f64 */
#define act_tanhf tyr_cpu_tanhf
#define act_tanh tanh
#define act_sigmoidf tyr_cpu_sigmoidf
static inline double act_sigmoid(double x) {
  return 1.0 / (1.0 + exp(-x));
}
static inline float un_f32(tyr_unary_op op, float x, double p0, double p1) {
  (void)p1;
  UNARY_EXPR(float, x, p0, p1, FNF)
}
static inline double un_f64(tyr_unary_op op, double x, double p0, double p1) {
  (void)p1;
  UNARY_EXPR(double, x, p0, p1, FND)
}

/* d op(x) / dx */
#define UNARY_DERIV(T, x, p0, p1, FN)                                                              \
  switch (op) {                                                                                    \
  case TYR_UN_NEG:                                                                                 \
    return -1;                                                                                     \
  case TYR_UN_EXP:                                                                                 \
    return FN(exp)(x);                                                                             \
  case TYR_UN_LOG:                                                                                 \
    return (T)1 / x;                                                                               \
  case TYR_UN_SQRT:                                                                                \
    return (T)0.5 / FN(sqrt)(x);                                                                   \
  case TYR_UN_RSQRT:                                                                               \
    return (T)-0.5 / (x * FN(sqrt)(x));                                                            \
  case TYR_UN_ABS:                                                                                 \
    return (T)((x > 0) - (x < 0));                                                                 \
  case TYR_UN_TANH: {                                                                              \
    T t = FN(act_tanh)(x);                                                                         \
    return (T)1 - t * t;                                                                           \
  }                                                                                                \
  case TYR_UN_SIGMOID: {                                                                           \
    T s = FN(act_sigmoid)(x);                                                                      \
    return s * ((T)1 - s);                                                                         \
  }                                                                                                \
  case TYR_UN_RELU:                                                                                \
    return x > 0 ? 1 : 0;                                                                          \
  case TYR_UN_RELU2:                                                                               \
    return x > 0 ? 2 * x : 0;                                                                      \
  case TYR_UN_GELU:                                                                                \
    return FN(gelu_grad)(x);                                                                       \
  case TYR_UN_GELU_TANH: {                                                                         \
    T u = (T)SQRT_2_OVER_PI * (x + (T)0.044715 * x * x * x);                                       \
    T t = FN(act_tanh)(u);                                                                         \
    T du = (T)SQRT_2_OVER_PI * ((T)1 + (T)3 * (T)0.044715 * x * x);                                \
    return (T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du;                                 \
  }                                                                                                \
  case TYR_UN_SILU: {                                                                              \
    T s = FN(act_sigmoid)(x);                                                                      \
    return s * ((T)1 + x * ((T)1 - s));                                                            \
  }                                                                                                \
  case TYR_UN_SOFTCAP: {                                                                           \
    T t = FN(act_tanh)(x / (T)p0);                                                                 \
    return (T)1 - t * t;                                                                           \
  }                                                                                                \
  case TYR_UN_POW:                                                                                 \
    return (T)p0 * FN(pow)(x, (T)p0 - (T)1);                                                       \
  case TYR_UN_ADD_SCALAR:                                                                          \
    return 1;                                                                                      \
  case TYR_UN_MUL_SCALAR:                                                                          \
    return (T)p0;                                                                                  \
  case TYR_UN_RSUB_SCALAR:                                                                         \
    return -1;                                                                                     \
  case TYR_UN_RDIV_SCALAR:                                                                         \
    return -(T)p0 / (x * x);                                                                       \
  case TYR_UN_CLAMP:                                                                               \
    return (x >= (T)p0 && x <= (T)p1) ? 1 : 0;                                                     \
  case TYR_UN_SIGN:                                                                                \
    return 0;                                                                                      \
  case TYR_UN_RECIPROCAL:                                                                          \
    return (T)-1 / (x * x);                                                                        \
  case TYR_UN_SQUARE:                                                                              \
    return 2 * x;                                                                                  \
  case TYR_UN_SIN:                                                                                 \
    return FN(cos)(x);                                                                             \
  case TYR_UN_COS:                                                                                 \
    return -FN(sin)(x);                                                                            \
  case TYR_UN_SOFTPLUS:                                                                            \
    return x > (T)20 ? (T)1 : FN(act_sigmoid)(x);                                                  \
  case TYR_UN_LEAKY_RELU:                                                                          \
    return x > 0 ? (T)1 : (T)p0;                                                                   \
  default:                                                                                         \
    return 0;                                                                                      \
  }
static inline float dun_f32(tyr_unary_op op, float x, double p0, double p1) {
  (void)p1;
  UNARY_DERIV(float, x, p0, p1, FNF)
}
static inline double dun_f64(tyr_unary_op op, double x, double p0, double p1) {
  (void)p1;
  UNARY_DERIV(double, x, p0, p1, FND)
}

#define PAR_THRESHOLD 32768

void tyr_cpu_unary(tyr_unary_op op, tyr_tensor *out, const tyr_tensor *a, double p0, double p1) {
  int64_t n = tyr_numel(out);
  bool contig = tyr_is_contiguous(a);
  if (out->dtype == TYR_F32) {
    float *o = TYR_BASE(out, float) + out->offset;
    const float *x = TYR_BASE(a, float);
    if (contig) {
      x += a->offset;
      /* one loop per op, so that each is a simple expression the compiler
       * can vectorise (a switch inside the loop stops gcc and clang) */
#define UN_CASE(OP)                                                                                \
  case OP:                                                                                         \
    TYR_PAR_FOR_SIMD(n > PAR_THRESHOLD,                                                            \
                     for (int64_t i = 0; i < n; i++) o[i] = un_f32(OP, x[i], p0, p1););            \
    return;
      switch (op) {
        UN_CASE(TYR_UN_NEG)
        UN_CASE(TYR_UN_EXP)
        UN_CASE(TYR_UN_LOG)
        UN_CASE(TYR_UN_SQRT)
        UN_CASE(TYR_UN_RSQRT)
        UN_CASE(TYR_UN_ABS)
        UN_CASE(TYR_UN_TANH)
        UN_CASE(TYR_UN_SIGMOID)
        UN_CASE(TYR_UN_RELU)
        UN_CASE(TYR_UN_RELU2)
        UN_CASE(TYR_UN_GELU)
        UN_CASE(TYR_UN_GELU_TANH)
        UN_CASE(TYR_UN_SILU)
        UN_CASE(TYR_UN_SOFTCAP)
        UN_CASE(TYR_UN_POW)
        UN_CASE(TYR_UN_ADD_SCALAR)
        UN_CASE(TYR_UN_MUL_SCALAR)
        UN_CASE(TYR_UN_RSUB_SCALAR)
        UN_CASE(TYR_UN_RDIV_SCALAR)
        UN_CASE(TYR_UN_CLAMP)
        UN_CASE(TYR_UN_SIGN)
        UN_CASE(TYR_UN_RECIPROCAL)
        UN_CASE(TYR_UN_SQUARE)
      default:
        TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                    for (int64_t i = 0; i < n; i++) o[i] = un_f32(op, x[i], p0, p1););
        return;
      }
#undef UN_CASE
    } else {
      TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                  for (int64_t i = 0; i < n; i++) o[i] =
                      un_f32(op, x[tyr_offset_of(a, i)], p0, p1););
    }
  } else if (out->dtype == TYR_F64) {
    double *o = TYR_BASE(out, double) + out->offset;
    const double *x = TYR_BASE(a, double);
    TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                for (int64_t i = 0; i < n; i++) o[i] =
                    un_f64(op, x[contig ? a->offset + i : tyr_offset_of(a, i)], p0, p1););
  } else { /* integer dtypes: computed in double */
    size_t eo = tyr_dtype_size(out->dtype), ea = tyr_dtype_size(a->dtype);
    for (int64_t i = 0; i < n; i++) {
      double x =
          tyr__load_f64((char *)a->storage->data + tyr_offset_of(a, i) * (int64_t)ea, a->dtype);
      tyr__store_f64((char *)out->storage->data + (out->offset + i) * (int64_t)eo, out->dtype,
                     un_f64(op, x, p0, p1));
    }
  }
}

void tyr_cpu_unary_backward(tyr_unary_op op, tyr_tensor *gin, const tyr_tensor *a,
                            const tyr_tensor *gout, double p0, double p1) {
  int64_t n = tyr_numel(gin);
  bool ca = tyr_is_contiguous(a), cg = tyr_is_contiguous(gout);
  if (gin->dtype == TYR_F32 && ca && cg) {
    float *o = TYR_BASE(gin, float) + gin->offset;
    const float *x = TYR_BASE(a, float) + a->offset, *g = TYR_BASE(gout, float) + gout->offset;
    /* one loop per op, so that each vectorises */
#define BW_CASE(OP)                                                                                \
  case OP:                                                                                         \
    TYR_PAR_FOR_SIMD(n > PAR_THRESHOLD,                                                            \
                     for (int64_t i = 0; i < n; i++) o[i] = g[i] * dun_f32(OP, x[i], p0, p1););    \
    return;
    switch (op) {
      BW_CASE(TYR_UN_GELU)
      BW_CASE(TYR_UN_GELU_TANH)
      BW_CASE(TYR_UN_RELU)
      BW_CASE(TYR_UN_RELU2)
      BW_CASE(TYR_UN_EXP)
      BW_CASE(TYR_UN_MUL_SCALAR)
      BW_CASE(TYR_UN_SQUARE)
      BW_CASE(TYR_UN_SILU)
      BW_CASE(TYR_UN_TANH)
    default:
      TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                  for (int64_t i = 0; i < n; i++) o[i] = g[i] * dun_f32(op, x[i], p0, p1););
      return;
    }
#undef BW_CASE
  } else if (gin->dtype == TYR_F32) {
    float *o = TYR_BASE(gin, float) + gin->offset;
    const float *x = TYR_BASE(a, float), *g = TYR_BASE(gout, float);
    TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                for (int64_t i = 0; i < n; i++) o[i] =
                    g[cg ? gout->offset + i : tyr_offset_of(gout, i)] *
                    dun_f32(op, x[ca ? a->offset + i : tyr_offset_of(a, i)], p0, p1););
  } else {
    double *o = TYR_BASE(gin, double) + gin->offset;
    const double *x = TYR_BASE(a, double), *g = TYR_BASE(gout, double);
    TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                for (int64_t i = 0; i < n; i++) o[i] =
                    g[cg ? gout->offset + i : tyr_offset_of(gout, i)] *
                    dun_f64(op, x[ca ? a->offset + i : tyr_offset_of(a, i)], p0, p1););
  }
}

void tyr_cpu_act_row(tyr_unary_op op, bool f64, void *out, const void *x, int64_t n) {
  if (f64) {
    double *o = out;
    const double *xv = x;
    for (int64_t i = 0; i < n; i++) o[i] = un_f64(op, xv[i], 0, 0);
    return;
  }
  float *o = out;
  const float *xv = x;
#define ACT_CASE(OP)                                                                               \
  case OP:                                                                                         \
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = un_f32(OP, xv[i], 0, 0);            \
    return;
  switch (op) { /* one loop per op, so that each vectorises (parallel.h: why simd) */
    ACT_CASE(TYR_UN_GELU)
    ACT_CASE(TYR_UN_GELU_TANH)
    ACT_CASE(TYR_UN_RELU)
    ACT_CASE(TYR_UN_RELU2)
    ACT_CASE(TYR_UN_SILU)
  default:
    for (int64_t i = 0; i < n; i++) o[i] = un_f32(op, xv[i], 0, 0);
  }
#undef ACT_CASE
}

void tyr_cpu_dact_row(tyr_unary_op op, bool f64, void *g, const void *x, int64_t n) {
  if (f64) {
    double *o = g;
    const double *xv = x;
    for (int64_t i = 0; i < n; i++) o[i] = o[i] * dun_f64(op, xv[i], 0, 0);
    return;
  }
  float *o = g;
  const float *xv = x;
#define DACT_CASE(OP)                                                                              \
  case OP:                                                                                         \
    _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = o[i] * dun_f32(OP, xv[i], 0, 0);    \
    return;
  switch (op) {
    DACT_CASE(TYR_UN_GELU)
    DACT_CASE(TYR_UN_GELU_TANH)
    DACT_CASE(TYR_UN_RELU)
    DACT_CASE(TYR_UN_RELU2)
    DACT_CASE(TYR_UN_SILU)
  default:
    for (int64_t i = 0; i < n; i++) o[i] = o[i] * dun_f32(op, xv[i], 0, 0);
  }
#undef DACT_CASE
}

#define BINARY_EXPR(T, x, y, FN)                                                                   \
  switch (op) {                                                                                    \
  case TYR_BIN_ADD:                                                                                \
    return x + y;                                                                                  \
  case TYR_BIN_SUB:                                                                                \
    return x - y;                                                                                  \
  case TYR_BIN_MUL:                                                                                \
    return x * y;                                                                                  \
  case TYR_BIN_DIV:                                                                                \
    return x / y;                                                                                  \
  case TYR_BIN_POW:                                                                                \
    return FN(pow)(x, y);                                                                          \
  case TYR_BIN_MAX:                                                                                \
    return x > y || x != x ? x : y;                                                                \
  case TYR_BIN_MIN:                                                                                \
    return x < y || x != x ? x : y;                                                                \
  case TYR_BIN_EQ:                                                                                 \
    return x == y;                                                                                 \
  case TYR_BIN_NE:                                                                                 \
    return x != y;                                                                                 \
  case TYR_BIN_LT:                                                                                 \
    return x < y;                                                                                  \
  case TYR_BIN_LE:                                                                                 \
    return x <= y;                                                                                 \
  case TYR_BIN_GT:                                                                                 \
    return x > y;                                                                                  \
  case TYR_BIN_GE:                                                                                 \
    return x >= y;                                                                                 \
  default:                                                                                         \
    return 0;                                                                                      \
  }
static inline float bin_f32(tyr_binary_op op, float x, float y) {
  BINARY_EXPR(float, x, y, FNF)
}
static inline double bin_f64(tyr_binary_op op, double x, double y) {
  BINARY_EXPR(double, x, y, FND)
}

void tyr_cpu_binary(tyr_binary_op op, tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  int64_t n = tyr_numel(out);
  bool ca = tyr_is_contiguous(a), cb = tyr_is_contiguous(b);
  bool cmp = op >= TYR_BIN_EQ;
  if (!cmp && out->dtype == TYR_F32 && a->dtype == TYR_F32 && b->dtype == TYR_F32) {
    float *o = TYR_BASE(out, float) + out->offset;
    const float *x = TYR_BASE(a, float), *y = TYR_BASE(b, float);
    if (ca && cb) {
      x += a->offset;
      y += b->offset;
      switch (op) { /* the common ones, vectorised */
      case TYR_BIN_ADD:
        TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for simd",
                    for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];);
        return;
      case TYR_BIN_MUL:
        TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for simd",
                    for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i];);
        return;
      case TYR_BIN_SUB:
        TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for simd",
                    for (int64_t i = 0; i < n; i++) o[i] = x[i] - y[i];);
        return;
      default:
        TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                    for (int64_t i = 0; i < n; i++) o[i] = bin_f32(op, x[i], y[i]););
        return;
      }
    }
    /* a broadcast block (a bias row, a position table expanded over the
       batch): a contiguous, b one block of C elements (its trailing dims,
       contiguous) repeated over its leading dims (stride 0) */
    int64_t C = 1;
    int lead = b->rank - 1;
    for (; lead >= 0; lead--) {
      if (b->shape[lead] == 1) continue;
      if (b->stride[lead] != C) break;
      C *= b->shape[lead];
    }
    bool row = ca;
    for (int d = 0; row && d <= lead; d++) row = b->stride[d] == 0 || b->shape[d] == 1;
    if (row && (op == TYR_BIN_ADD || op == TYR_BIN_MUL)) {
      int64_t rows = C > 0 ? n / C : 0;
      x += a->offset;
      y += b->offset;
      bool add = op == TYR_BIN_ADD;
      TYR_PAR_FOR(
          n > PAR_THRESHOLD, "omp parallel for", for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * C;
            float *orow = o + r * C;
            if (add) {
              _Pragma("omp simd") for (int64_t c = 0; c < C; c++) orow[c] = xr[c] + y[c];
            } else {
              _Pragma("omp simd") for (int64_t c = 0; c < C; c++) orow[c] = xr[c] * y[c];
            }
          });
      return;
    }
    /* any other layout */
    TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                for (int64_t i = 0; i < n; i++) o[i] =
                    bin_f32(op, x[ca ? a->offset + i : tyr_offset_of(a, i)],
                            y[cb ? b->offset + i : tyr_offset_of(b, i)]););
    return;
  }
  if (!cmp && out->dtype == TYR_F64 && a->dtype == TYR_F64) {
    double *o = TYR_BASE(out, double) + out->offset;
    const double *x = TYR_BASE(a, double), *y = TYR_BASE(b, double);
    TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for",
                for (int64_t i = 0; i < n; i++) o[i] =
                    bin_f64(op, x[ca ? a->offset + i : tyr_offset_of(a, i)],
                            y[cb ? b->offset + i : tyr_offset_of(b, i)]););
    return;
  }
  /* everything else (integers, comparisons) in double */
  size_t eo = tyr_dtype_size(out->dtype), ea = tyr_dtype_size(a->dtype),
         eb = tyr_dtype_size(b->dtype);
  bool integral = !tyr_dtype_is_float(a->dtype);
  TYR_PAR_FOR(
      n > PAR_THRESHOLD, "omp parallel for", for (int64_t i = 0; i < n; i++) {
        double x =
            tyr__load_f64((char *)a->storage->data + tyr_offset_of(a, i) * (int64_t)ea, a->dtype);
        double y =
            tyr__load_f64((char *)b->storage->data + tyr_offset_of(b, i) * (int64_t)eb, b->dtype);
        double r = bin_f64(op, x, y);
        if (integral && op == TYR_BIN_DIV) r = trunc(r);
        tyr__store_f64((char *)out->storage->data + tyr_offset_of(out, i) * (int64_t)eo, out->dtype,
                       r);
      });
}

void tyr_cpu_where(tyr_tensor *out, const tyr_tensor *cond, const tyr_tensor *a,
                   const tyr_tensor *b) {
  int64_t n = tyr_numel(out);
  size_t es = tyr_dtype_size(out->dtype);
  char *o = (char *)out->storage->data + out->offset * (int64_t)es;
  const uint8_t *c = TYR_BASE(cond, uint8_t);
  const char *x = a->storage->data, *y = b->storage->data;
  TYR_PAR_FOR(
      n > PAR_THRESHOLD, "omp parallel for", for (int64_t i = 0; i < n; i++) {
        const char *src = c[tyr_offset_of(cond, i)] ? x + tyr_offset_of(a, i) * (int64_t)es
                                                    : y + tyr_offset_of(b, i) * (int64_t)es;
        if (es == 4)
          ((uint32_t *)o)[i] = *(const uint32_t *)src;
        else if (es == 8)
          ((uint64_t *)o)[i] = *(const uint64_t *)src;
        else
          for (size_t k = 0; k < es; k++) o[i * (int64_t)es + (int64_t)k] = src[k];
      });
}
