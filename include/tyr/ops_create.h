/* tyr/ops_create.h - making tensors: constants, ranges, random numbers,
 * host memory in and out, copies, dtype and device conversion.
 *
 * The typed forms take the dims and use the default dtype and device
 * (f32 and cpu unless changed with tyr_set_default_dtype/_device):
 *     tyr_T(B, T, C) x = tyr_randn(B, T, C);
 * The _to forms name dtype and device:  tyr_zeros_to(TYR_F64, dev, 3, 4). */
#ifndef TYR_OPS_CREATE_H
#define TYR_OPS_CREATE_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The dtype and device the typed constructors and the _e forms use (f32 and
 * the CPU unless set), per thread. */
void tyr_set_default_dtype(tyr_dtype dt);
tyr_dtype tyr_default_dtype(void);
void tyr_set_default_device(tyr_device dev);
tyr_device tyr_default_device(void);

/* ---- erased layer ------------------------------------------------------- */
/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
tyr_tensor *tyr_full_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                        double v);
tyr_tensor *tyr_zeros_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape);
tyr_tensor *tyr_ones_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape);
/* uniform in [lo, hi) */
tyr_tensor *tyr_rand_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                        double lo, double hi);
/* normal with mean and std */
tyr_tensor *tyr_randn_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                         double mean, double std);
/* integers in [lo, hi) */
tyr_tensor *tyr_randint_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape,
                           int64_t lo, int64_t hi);
/* [n]: start, start+step, ... (n = ceil((end - start) / step)) */
tyr_tensor *tyr_arange_at(tyr_site s, tyr_dtype dt, tyr_device dev, double start, double end,
                          double step);
/* [n] evenly spaced from a to b inclusive */
tyr_tensor *tyr_linspace_at(tyr_site s, tyr_dtype dt, tyr_device dev, double a, double b,
                            int64_t n);
/* [n, n] identity */
tyr_tensor *tyr_eye_at(tyr_site s, tyr_dtype dt, tyr_device dev, int64_t n);
/* A copy of host memory (data has numel elements of dt). */
tyr_tensor *tyr_from_host_at(tyr_site s, const void *data, tyr_dtype dt, tyr_device dev, int rank,
                             const int64_t *shape);
/* Copies t's elements to host memory (dst holds numel * dtype size bytes). */
int tyr_to_host_at(tyr_site s, const tyr_tensor *t, void *dst, size_t dst_bytes);
/* A new contiguous tensor with t's values (recorded: the gradient flows). */
tyr_tensor *tyr_clone_at(tyr_site s, tyr_tensor *t);
/* t converted to dt (recorded between float dtypes). */
tyr_tensor *tyr_to_dtype_at(tyr_site s, tyr_tensor *t, tyr_dtype dt);
/* out[i] = ts[i] converted to dt for n tensors, as n calls of tyr_to_dtype
   would make them (recorded between float dtypes), with as few kernel
   launches as the backend can (one for up to 64 contiguous tensors of one
   dtype on a GPU): the weights a mixed-precision step casts.  0, or the
   error's status with every out[i] NULL and nothing made. */
int tyr_to_dtype_many_at(tyr_site s, int n, tyr_tensor *const *ts, tyr_dtype dt, tyr_tensor **out);
/* t copied to dev (recorded). */
tyr_tensor *tyr_to_device_at(tyr_site s, tyr_tensor *t, tyr_device dev);
/* dst = src, in place, values only (not recorded; shapes must match). */
int tyr_copy_at(tyr_site s, tyr_tensor *dst, const tyr_tensor *src);
/* Fills t in place (not recorded). */
int tyr_fill_at(tyr_site s, tyr_tensor *t, double v);

#define TYR__SHAPE_ARGS(...)                                                                       \
  TYR__NARGS(__VA_ARGS__), (const int64_t[]) {                                                     \
    __VA_ARGS__                                                                                    \
  }
#define tyr_empty_e(...)                                                                           \
  tyr_empty_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__))
#define tyr_zeros_e(...)                                                                           \
  tyr_zeros_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__))
#define tyr_ones_e(...)                                                                            \
  tyr_ones_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__))
#define tyr_full_e(v, ...)                                                                         \
  tyr_full_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__),   \
              (v))
#define tyr_rand_e(...)                                                                            \
  tyr_rand_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__),   \
              0.0, 1.0)
#define tyr_randn_e(...)                                                                           \
  tyr_randn_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__),  \
               0.0, 1.0)
#define tyr_randint_e(lo, hi, ...)                                                                 \
  tyr_randint_at(TYR_SITE, TYR_I64, tyr_default_device(), TYR__SHAPE_ARGS(__VA_ARGS__), (lo), (hi))
#define tyr_arange_e(n)                                                                            \
  tyr_arange_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), 0, (double)(n), 1)
#define tyr_linspace_e(a, b, n)                                                                    \
  tyr_linspace_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), (a), (b), (n))
#define tyr_eye_e(n) tyr_eye_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), (n))
#define tyr_from_host_e(data, ...)                                                                 \
  tyr_from_host_at(TYR_SITE, (data), tyr_default_dtype(), tyr_default_device(),                    \
                   TYR__SHAPE_ARGS(__VA_ARGS__))
#define tyr_to_host_e(t, dst, n) tyr_to_host_at(TYR_SITE, (t), (dst), (n))
#define tyr_clone_e(t) tyr_clone_at(TYR_SITE, (t))
#define tyr_to_dtype_e(t, dt) tyr_to_dtype_at(TYR_SITE, (t), (dt))
#define tyr_to_dtype_many_e(n, ts, dt, out) tyr_to_dtype_many_at(TYR_SITE, (n), (ts), (dt), (out))
#define tyr_to_device_e(t, dev) tyr_to_device_at(TYR_SITE, (t), (dev))
#define tyr_copy_e(dst, src) tyr_copy_at(TYR_SITE, (dst), (src))
#define tyr_fill_e(t, v) tyr_fill_at(TYR_SITE, (t), (v))

/* ---- typed layer -------------------------------------------------------- */
#define TYR__TNEW(call, ...) ((tyr_T(__VA_ARGS__))(call))
#define tyr_empty(...) TYR__TNEW(tyr_empty_e(__VA_ARGS__), __VA_ARGS__)
#define tyr_zeros(...) TYR__TNEW(tyr_zeros_e(__VA_ARGS__), __VA_ARGS__)
#define tyr_ones(...) TYR__TNEW(tyr_ones_e(__VA_ARGS__), __VA_ARGS__)
#define tyr_full(v, ...) TYR__TNEW(tyr_full_e(v, __VA_ARGS__), __VA_ARGS__)
#define tyr_rand(...) TYR__TNEW(tyr_rand_e(__VA_ARGS__), __VA_ARGS__)
#define tyr_randn(...) TYR__TNEW(tyr_randn_e(__VA_ARGS__), __VA_ARGS__)
#define tyr_randint(lo, hi, ...) TYR__TNEW(tyr_randint_e(lo, hi, __VA_ARGS__), __VA_ARGS__)
#define tyr_from_host(data, ...) TYR__TNEW(tyr_from_host_e(data, __VA_ARGS__), __VA_ARGS__)
#define tyr_zeros_to(dt, dev, ...)                                                                 \
  TYR__TNEW(tyr_zeros_at(TYR_SITE, (dt), (dev), TYR__SHAPE_ARGS(__VA_ARGS__)), __VA_ARGS__)
#define tyr_ones_to(dt, dev, ...)                                                                  \
  TYR__TNEW(tyr_ones_at(TYR_SITE, (dt), (dev), TYR__SHAPE_ARGS(__VA_ARGS__)), __VA_ARGS__)
#define tyr_randn_to(dt, dev, ...)                                                                 \
  TYR__TNEW(tyr_randn_at(TYR_SITE, (dt), (dev), TYR__SHAPE_ARGS(__VA_ARGS__), 0.0, 1.0),           \
            __VA_ARGS__)
#define tyr_rand_to(dt, dev, ...)                                                                  \
  TYR__TNEW(tyr_rand_at(TYR_SITE, (dt), (dev), TYR__SHAPE_ARGS(__VA_ARGS__), 0.0, 1.0), __VA_ARGS__)
#define tyr_from_host_to(data, dt, dev, ...)                                                       \
  TYR__TNEW(tyr_from_host_at(TYR_SITE, (data), (dt), (dev), TYR__SHAPE_ARGS(__VA_ARGS__)),         \
            __VA_ARGS__)
#define tyr_arange(n) ((tyr_T(n))tyr_arange_e(n))
#define tyr_linspace(a, b, n) ((tyr_T(n))tyr_linspace_e(a, b, n))
#define tyr_eye(n) ((tyr_T(n, n))tyr_eye_e(n))
#define tyr_scalar(v)                                                                              \
  ((tyr_T0)tyr_full_at(TYR_SITE, tyr_default_dtype(), tyr_default_device(), 0,                     \
                       (const int64_t[]){0}, (v)))
#define tyr_clone(x) TYR_TYPED_UNARY("tyr_clone", tyr_clone_at(tyr__s, tyr__ea), x)
#define tyr_to_dtype(x, dt)                                                                        \
  TYR_TYPED_UNARY("tyr_to_dtype", tyr_to_dtype_at(tyr__s, tyr__ea, (dt)), x)
#define tyr_to_device(x, dev)                                                                      \
  TYR_TYPED_UNARY("tyr_to_device", tyr_to_device_at(tyr__s, tyr__ea, (dev)), x)
#define tyr_to_host(x, dst, n)                                                                     \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_to_host", "x", tyr__a);                          \
    tyr__ea ? tyr_to_host_at(tyr__s, tyr__ea, (dst), (n)) : -1;                                    \
  })
#define tyr__ct_copy_msg "tyr_copy: source and destination have different shapes"
TYR_CT_ERROR(tyr__ct_copy, tyr__ct_copy_msg);
#define tyr_copy(dst, src)                                                                         \
  ({                                                                                               \
    __auto_type tyr__a = (dst);                                                                    \
    __auto_type tyr__b = (src);                                                                    \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, tyr__ct_copy);                                             \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_copy", "dst", tyr__a);                           \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_copy", "src", tyr__b) : NULL;          \
    tyr__eb ? tyr_copy_at(tyr__s, tyr__ea, tyr__eb) : -1;                                          \
  })
#define tyr_fill(x, v)                                                                             \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_fill", "x", tyr__a);                             \
    tyr__ea ? tyr_fill_at(tyr__s, tyr__ea, (v)) : -1;                                              \
  })

#ifdef __cplusplus
}
#endif
#endif
