/* tyr/ops_reduce.h - reductions over all elements or one dim.
 * Shape rule: over all elements the result is a scalar (rank 0); over dim
 * d it is the input's shape without d, or with d of size 1 (keepdim). */
#ifndef TYR_OPS_REDUCE_H
#define TYR_OPS_REDUCE_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

tyr_tensor *tyr_sum_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_mean_at(tyr_site s, tyr_tensor *x);
tyr_tensor *tyr_sum_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);
tyr_tensor *tyr_mean_dim_at(tyr_site s, tyr_tensor *x, int dim, bool keepdim);

#define tyr_sum_e(x) tyr_sum_at(TYR_SITE, (x))
#define tyr_mean_e(x) tyr_mean_at(TYR_SITE, (x))
#define tyr_sum_dim_e(x, d, k) tyr_sum_dim_at(TYR_SITE, (x), (d), (k))
#define tyr_mean_dim_e(x, d, k) tyr_mean_dim_at(TYR_SITE, (x), (d), (k))

/* ---- typed layer: dim must be a constant --------------------------------- */
TYR_CT_ERROR(tyr__ct_reduce_dim, "tyr_reduce: dim is out of range for the tensor's rank");
#define TYR__TRED_ALL(name, x)                                                                     \
  ((tyr_T0)TYR_TYPED_UNARY("tyr_" #name, tyr_##name##_at(tyr__s, tyr__ea), x))
#define tyr_sum(x) TYR__TRED_ALL(sum, x)
#define tyr_mean(x) TYR__TRED_ALL(mean, x)
/* result type: x without dim d */
#define TYR__TRED_DIM(name, x, d)                                                                  \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_CT_CHECK(TYR__NORM(tyr__a, d) >= 0 && TYR__NORM(tyr__a, d) < tyr_rank(tyr__a),             \
                 tyr__ct_reduce_dim);                                                              \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__a);                           \
    (TYR__TYPE_DROP(tyr__a, TYR__NORM(tyr__a, d)))(                                                \
        tyr__ea ? tyr_##name##_at(tyr__s, tyr__ea, (d), false) : NULL);                            \
  })
/* result type: x with dim d of size 1 */
#define TYR__TRED_KEEP(name, x, d)                                                                 \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_CT_CHECK(TYR__NORM(tyr__a, d) >= 0 && TYR__NORM(tyr__a, d) < tyr_rank(tyr__a),             \
                 tyr__ct_reduce_dim);                                                              \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__a);                           \
    (TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, d), 1))(                                          \
        tyr__ea ? tyr_##name##_at(tyr__s, tyr__ea, (d), true) : NULL);                             \
  })
#define tyr_sum_dim(x, d) TYR__TRED_DIM(sum_dim, x, d)
#define tyr_mean_dim(x, d) TYR__TRED_DIM(mean_dim, x, d)
#define tyr_sum_keepdim(x, d) TYR__TRED_KEEP(sum_dim, x, d)
#define tyr_mean_keepdim(x, d) TYR__TRED_KEEP(mean_dim, x, d)

#ifdef __cplusplus
}
#endif
#endif
