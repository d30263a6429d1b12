/* tyr/ops_sort.h - sorting and sampling: sort, topk, multinomial.
 *
 * tyr_sort(x, d, descending, &values, &indices): x sorted along dim d;
 *   values has x's shape and dtype, indices (i64) where each value came
 *   from.  The sort is stable (equal values keep their order); NaN sorts
 *   as larger than every number (last ascending, first descending), as in
 *   PyTorch.
 * tyr_topk(x, k, d, largest, &values, &indices): the k largest (or
 *   smallest) entries along d, in sorted order (ties: the lower index
 *   first); the results are x's shape with dim d of size k.  1 <= k <= the
 *   dim's size.
 * tyr_multinomial(probs, n, replacement): n category indices (i64) drawn
 *   from each row of probs ([C] or [B, C]: non-negative, finite, not all
 *   zero; they need not sum to 1) -> [n] or [B, n].  Without replacement a
 *   category is drawn at most once, so n must not exceed the row's
 *   non-zero categories.  Random numbers come from the global Philox
 *   generator (tyr_manual_seed): the same seed, the same draws, on every
 *   device.
 *
 * Gradients: values pass their gradient back to the entries they came
 * from (a gather by the indices); indices and samples have none.
 *
 * Devices: the order (or the draws) is computed on the host, then the
 * values are gathered on x's device: CUDA tensors work, with a copy of x
 * to the host (the GPU waits for it).
 *
 * Erased forms return 0 or the status (sort, topk; the outputs are NULL on
 * error) or the tensor (multinomial).  Typed forms check d (and k, n when
 * constant) when the program is compiled. */
#ifndef TYR_OPS_SORT_H
#define TYR_OPS_SORT_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

int tyr_sort_at(tyr_site s, tyr_tensor *x, int dim, bool descending, tyr_tensor **values,
                tyr_tensor **indices);
int tyr_topk_at(tyr_site s, tyr_tensor *x, int64_t k, int dim, bool largest, tyr_tensor **values,
                tyr_tensor **indices);
tyr_tensor *tyr_multinomial_at(tyr_site s, tyr_tensor *probs, int64_t num_samples,
                               bool replacement);

#define tyr_sort_e(x, d, desc, v, i) tyr_sort_at(TYR_SITE, (x), (d), (desc), (v), (i))
#define tyr_topk_e(x, k, d, largest, v, i) tyr_topk_at(TYR_SITE, (x), (k), (d), (largest), (v), (i))
#define tyr_multinomial_e(p, n, repl) tyr_multinomial_at(TYR_SITE, (p), (n), (repl))

/* ---- typed layer -------------------------------------------------------------- */
#define tyr__ct_sort_msg "tyr_sort: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_sort, tyr__ct_sort_msg);
#define tyr__ct_topk_dim_msg "tyr_topk: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_topk_dim, tyr__ct_topk_dim_msg);
#define tyr__ct_topk_k_msg "tyr_topk: k must be in 1..the size of the dim"
TYR_CT_ERROR(tyr__ct_topk_k, tyr__ct_topk_k_msg);
#define tyr__ct_multinomial_msg                                                                    \
  "tyr_multinomial: probs must be [C] or [B, C] and num_samples positive"
TYR_CT_ERROR(tyr__ct_multinomial, tyr__ct_multinomial_msg);

#define tyr_sort(x, d, descending, pvalues, pindices)                                              \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__pv = (pvalues);                                                               \
    __auto_type tyr__pi = (pindices);                                                              \
    TYR_RULE(TYR__NORM(tyr__a, d) >= 0 && TYR__NORM(tyr__a, d) < tyr_rank(tyr__a), tyr__ct_sort);  \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_sort", "x", tyr__a);                             \
    tyr_tensor *tyr__v = NULL, *tyr__i = NULL;                                                     \
    int tyr__rc = tyr__ea ? tyr_sort_at(tyr__s, tyr__ea, (d), (descending), &tyr__v, &tyr__i)      \
                          : TYR_ERR_SHAPE;                                                         \
    *tyr__pv = (__typeof__(tyr__a))tyr__v;                                                         \
    *tyr__pi = (__typeof__(tyr__a))tyr__i;                                                         \
    tyr__rc;                                                                                       \
  })

#define tyr_topk(x, k, d, largest, pvalues, pindices)                                              \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    __auto_type tyr__pv = (pvalues);                                                               \
    __auto_type tyr__pi = (pindices);                                                              \
    TYR_RULE(TYR__NORM(tyr__a, d) >= 0 && TYR__NORM(tyr__a, d) < tyr_rank(tyr__a),                 \
             tyr__ct_topk_dim);                                                                    \
    TYR_RULE((k) >= 1 && (k) <= TYR__DIM(tyr__a, TYR__NORM(tyr__a, d)), tyr__ct_topk_k);           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_topk", "x", tyr__a);                             \
    tyr_tensor *tyr__v = NULL, *tyr__i = NULL;                                                     \
    int tyr__rc = tyr__ea ? tyr_topk_at(tyr__s, tyr__ea, (k), (d), (largest), &tyr__v, &tyr__i)    \
                          : TYR_ERR_SHAPE;                                                         \
    *tyr__pv = (TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, d), k))tyr__v;                         \
    *tyr__pi = (TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, d), k))tyr__i;                         \
    tyr__rc;                                                                                       \
  })

#define tyr_multinomial(probs, n, replacement)                                                     \
  ({                                                                                               \
    __auto_type tyr__a = (probs);                                                                  \
    TYR_RULE((tyr_rank(tyr__a) == 1 || tyr_rank(tyr__a) == 2) && (n) >= 1, tyr__ct_multinomial);   \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_multinomial", "probs", tyr__a);                  \
    (TYR__TYPE_REPLACE(tyr__a, tyr_rank(tyr__a) - 1, n))(                                          \
        tyr__ea ? tyr_multinomial_at(tyr__s, tyr__ea, (n), (replacement)) : NULL);                 \
  })

#ifdef __cplusplus
}
#endif
#endif
