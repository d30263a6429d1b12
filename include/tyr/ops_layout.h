/* tyr/ops_layout.h - views and rearrangements: reshape, transpose, permute,
 * contiguous, squeeze/unsqueeze, cat/stack/split/chunk, narrow, index_select,
 * gather/scatter_add, embedding, tril/triu. */
#ifndef TYR_OPS_LAYOUT_H
#define TYR_OPS_LAYOUT_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Same elements, new shape (numel must match; one dim may be -1).  A view
 * when x is contiguous, else a copy.  Recorded. */
tyr_tensor *tyr_reshape_at(tyr_site s, tyr_tensor *x, int rank, const int64_t *shape);
#define tyr_reshape_e(x, ...)                                                                      \
  tyr_reshape_at(TYR_SITE, (x), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})

TYR_CT_ERROR(tyr__ct_reshape, "tyr_reshape: the new shape has a different number of elements");
#define tyr_reshape(x, ...)                                                                        \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_CT_CHECK(tyr_numel_of(tyr__a) == tyr_numel_of((tyr_T(__VA_ARGS__))0), tyr__ct_reshape);    \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_reshape", "x", tyr__a);                          \
    (tyr_T(__VA_ARGS__))(tyr__ea ? tyr_reshape_at(tyr__s, tyr__ea, TYR__NARGS(__VA_ARGS__),        \
                                                  (const int64_t[]){__VA_ARGS__})                  \
                                 : NULL);                                                          \
  })

#ifdef __cplusplus
}
#endif
#endif
