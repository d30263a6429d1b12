/* tyr/ops_index.h - gathers and scatters by integer indices: index_select,
 * gather, scatter_add and embedding.
 *
 * Shape rules (idx is i32 or i64; every index value must lie in
 * [0, size of the indexed dim), checked before anything is computed):
 *   tyr_index_select(x, dim, idx)   idx [m]            -> x's shape with dim of size m
 *                                   out[.., j, ..] = x[.., idx[j], ..]
 *   tyr_gather(x, dim, idx)         idx has x's rank and x's dims except along dim
 *                                   -> idx's shape; out[i] = x[i with dim replaced by idx[i]]
 *   tyr_scatter_add(x, dim, idx, src)
 *                                   src has idx's shape, idx x's dims except along dim
 *                                   -> x's shape; a copy of x with out[i with dim replaced
 *                                   by idx[i]] += src[i] (x itself is not changed)
 *   tyr_embedding(weight, idx)      weight [V, C], idx [..] (rank 0 to 5) -> [.., C]
 *                                   out[.., :] = weight[idx[..], :]
 * Repeated indices are allowed everywhere; their gradients add up.
 *
 * Gradients flow to x / weight / src (float dtypes); gathers work for any
 * dtype, scatter_add needs a float dtype (bf16/f16 on the CPU add in f32).
 * Erased forms tyr_<op>_e(...); typed forms tyr_<op>(...) with dim an
 * integer constant (negative counts from the end). */
#ifndef TYR_OPS_INDEX_H
#define TYR_OPS_INDEX_H
#include "tyr/ops_linalg.h"
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
/* The shape rules are in this file's comment above. */
tyr_tensor *tyr_index_select_at(tyr_site s, tyr_tensor *x, int dim, tyr_tensor *idx);
tyr_tensor *tyr_gather_at(tyr_site s, tyr_tensor *x, int dim, tyr_tensor *idx);
tyr_tensor *tyr_scatter_add_at(tyr_site s, tyr_tensor *x, int dim, tyr_tensor *idx,
                               tyr_tensor *src);
tyr_tensor *tyr_embedding_at(tyr_site s, tyr_tensor *weight, tyr_tensor *idx);

#define tyr_index_select_e(x, dim, idx) tyr_index_select_at(TYR_SITE, (x), (dim), (idx))
#define tyr_gather_e(x, dim, idx) tyr_gather_at(TYR_SITE, (x), (dim), (idx))
#define tyr_scatter_add_e(x, dim, idx, src) tyr_scatter_add_at(TYR_SITE, (x), (dim), (idx), (src))
#define tyr_embedding_e(w, idx) tyr_embedding_at(TYR_SITE, (w), (idx))

/* ---- typed layer ------------------------------------------------------------ */
#define TYR__MSG_INDEX_DIM "tyr_index: dim is out of range for the rank of x"
#define TYR__MSG_INDEX_SELECT "tyr_index_select: idx must be 1-D ([m])"
#define TYR__MSG_GATHER "tyr_gather: idx must have the rank of x and the dims of x except along dim"
#define TYR__MSG_SCATTER_ADD                                                                       \
  "tyr_scatter_add: src must have the shape of idx, and idx the rank and dims of x except along "  \
  "dim"
#define TYR__MSG_EMBEDDING_W "tyr_embedding: the weight must be [V, C] (rank 2)"
#define TYR__MSG_EMBEDDING_IDX                                                                     \
  "tyr_embedding: idx has rank 6, so the result [.., C] would have more than 6 dims"
#define tyr__ct_index_dim_msg TYR__MSG_INDEX_DIM
TYR_CT_ERROR(tyr__ct_index_dim, tyr__ct_index_dim_msg);
#define tyr__ct_index_select_msg TYR__MSG_INDEX_SELECT
TYR_CT_ERROR(tyr__ct_index_select, tyr__ct_index_select_msg);
#define tyr__ct_gather_msg TYR__MSG_GATHER
TYR_CT_ERROR(tyr__ct_gather, tyr__ct_gather_msg);
#define tyr__ct_scatter_add_msg TYR__MSG_SCATTER_ADD
TYR_CT_ERROR(tyr__ct_scatter_add, tyr__ct_scatter_add_msg);
#define tyr__ct_embedding_w_msg TYR__MSG_EMBEDDING_W
TYR_CT_ERROR(tyr__ct_embedding_w, tyr__ct_embedding_w_msg);
#define tyr__ct_embedding_idx_msg TYR__MSG_EMBEDDING_IDX
TYR_CT_ERROR(tyr__ct_embedding_idx, tyr__ct_embedding_idx_msg);

#define TYR__IDX_DIM_OK(x, d) (TYR__NORM(x, d) >= 0 && TYR__NORM(x, d) < tyr_rank(x))
/* dim j of x and i agree, or j is the indexed dim d, or past the rank */
#define TYR__IDX_SAME(x, i, d, j)                                                                  \
  __builtin_choose_expr((j) == TYR__NORM(x, d) || (j) >= tyr_rank(x), 1,                           \
                        TYR__DIM(x, j) == TYR__DIM(i, j))
#define TYR__IDX_ALONG(tag, x, i, d, failfn, msg)                                                  \
  TYR__CT_ASSERT(tag##_r, tyr_rank(x) == tyr_rank(i), failfn, msg);                                \
  TYR__CT_ASSERT(tag##_0, TYR__IDX_SAME(x, i, d, 0), failfn, msg);                                 \
  TYR__CT_ASSERT(tag##_1, TYR__IDX_SAME(x, i, d, 1), failfn, msg);                                 \
  TYR__CT_ASSERT(tag##_2, TYR__IDX_SAME(x, i, d, 2), failfn, msg);                                 \
  TYR__CT_ASSERT(tag##_3, TYR__IDX_SAME(x, i, d, 3), failfn, msg);                                 \
  TYR__CT_ASSERT(tag##_4, TYR__IDX_SAME(x, i, d, 4), failfn, msg);                                 \
  TYR__CT_ASSERT(tag##_5, TYR__IDX_SAME(x, i, d, 5), failfn, msg)

/* Result type: x's type with dim d of size m (idx is [m]). */
#define tyr_index_select(x, d, idx)                                                                \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__i = (idx);                                                                    \
    TYR__CT_ASSERT(tyr__isel_dim_ok, TYR__IDX_DIM_OK(tyr__x, d), tyr__ct_index_dim,                \
                   TYR__MSG_INDEX_DIM);                                                            \
    TYR__CT_ASSERT(tyr__isel_idx_ok, tyr_rank(tyr__i) == 1, tyr__ct_index_select,                  \
                   TYR__MSG_INDEX_SELECT);                                                         \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_index_select", "x", tyr__x);                     \
    tyr_tensor *tyr__ei = tyr__ex ? TYR__CLAIM(tyr__s, "tyr_index_select", "idx", tyr__i) : NULL;  \
    (TYR__TYPE_REPLACE(tyr__x, TYR__NORM(tyr__x, d), TYR__D0(tyr__i)))(                            \
        tyr__ei ? tyr_result_at(tyr__s, "tyr_index_select",                                        \
                                tyr_index_select_at(tyr__s, tyr__ex, (d), tyr__ei))                \
                : NULL);                                                                           \
  })

/* Result type: idx's type. */
#define tyr_gather(x, d, idx)                                                                      \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__i = (idx);                                                                    \
    TYR__CT_ASSERT(tyr__gather_dim_ok, TYR__IDX_DIM_OK(tyr__x, d), tyr__ct_index_dim,              \
                   TYR__MSG_INDEX_DIM);                                                            \
    TYR__IDX_ALONG(tyr__gather_ok, tyr__x, tyr__i, d, tyr__ct_gather, TYR__MSG_GATHER);            \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_gather", "x", tyr__x);                           \
    tyr_tensor *tyr__ei = tyr__ex ? TYR__CLAIM(tyr__s, "tyr_gather", "idx", tyr__i) : NULL;        \
    (__typeof__(tyr__i))(tyr__ei ? tyr_result_at(tyr__s, "tyr_gather",                             \
                                                 tyr_gather_at(tyr__s, tyr__ex, (d), tyr__ei))     \
                                 : NULL);                                                          \
  })

/* Result type: x's type. */
#define tyr_scatter_add(x, d, idx, src)                                                            \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__i = (idx);                                                                    \
    __auto_type tyr__src = (src);                                                                  \
    TYR__CT_ASSERT(tyr__scat_dim_ok, TYR__IDX_DIM_OK(tyr__x, d), tyr__ct_index_dim,                \
                   TYR__MSG_INDEX_DIM);                                                            \
    TYR__IDX_ALONG(tyr__scat_ok, tyr__x, tyr__i, d, tyr__ct_scatter_add, TYR__MSG_SCATTER_ADD);    \
    TYR__CT_ASSERT(tyr__scat_sr_ok, tyr_rank(tyr__i) == tyr_rank(tyr__src), tyr__ct_scatter_add,   \
                   TYR__MSG_SCATTER_ADD);                                                          \
    TYR__CT_ASSERT(tyr__scat_s0_ok, TYR__D0(tyr__i) == TYR__D0(tyr__src), tyr__ct_scatter_add,     \
                   TYR__MSG_SCATTER_ADD);                                                          \
    TYR__CT_ASSERT(tyr__scat_s1_ok, TYR__D1(tyr__i) == TYR__D1(tyr__src), tyr__ct_scatter_add,     \
                   TYR__MSG_SCATTER_ADD);                                                          \
    TYR__CT_ASSERT(tyr__scat_s2_ok, TYR__D2(tyr__i) == TYR__D2(tyr__src), tyr__ct_scatter_add,     \
                   TYR__MSG_SCATTER_ADD);                                                          \
    TYR__CT_ASSERT(tyr__scat_s3_ok, TYR__D3(tyr__i) == TYR__D3(tyr__src), tyr__ct_scatter_add,     \
                   TYR__MSG_SCATTER_ADD);                                                          \
    TYR__CT_ASSERT(tyr__scat_s4_ok, TYR__D4(tyr__i) == TYR__D4(tyr__src), tyr__ct_scatter_add,     \
                   TYR__MSG_SCATTER_ADD);                                                          \
    TYR__CT_ASSERT(tyr__scat_s5_ok, TYR__D5(tyr__i) == TYR__D5(tyr__src), tyr__ct_scatter_add,     \
                   TYR__MSG_SCATTER_ADD);                                                          \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_scatter_add", "x", tyr__x);                      \
    tyr_tensor *tyr__ei = tyr__ex ? TYR__CLAIM(tyr__s, "tyr_scatter_add", "idx", tyr__i) : NULL;   \
    tyr_tensor *tyr__es = tyr__ei ? TYR__CLAIM(tyr__s, "tyr_scatter_add", "src", tyr__src) : NULL; \
    (__typeof__(tyr__x))(tyr__es ? tyr_result_at(                                                  \
                                       tyr__s, "tyr_scatter_add",                                  \
                                       tyr_scatter_add_at(tyr__s, tyr__ex, (d), tyr__ei, tyr__es)) \
                                 : NULL);                                                          \
  })

/* Result type: idx's dims followed by C. */
#define tyr_embedding(w, idx)                                                                      \
  ({                                                                                               \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__i = (idx);                                                                    \
    TYR__CT_ASSERT(tyr__emb_w_ok, tyr_rank(tyr__w) == 2, tyr__ct_embedding_w,                      \
                   TYR__MSG_EMBEDDING_W);                                                          \
    TYR__CT_ASSERT(tyr__emb_i_ok, tyr_rank(tyr__i) < TYR_MAX_RANK, tyr__ct_embedding_idx,          \
                   TYR__MSG_EMBEDDING_IDX);                                                        \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ew = TYR__CLAIM(tyr__s, "tyr_embedding", "weight", tyr__w);                   \
    tyr_tensor *tyr__ei = tyr__ew ? TYR__CLAIM(tyr__s, "tyr_embedding", "idx", tyr__i) : NULL;     \
    (TYR__TYPE_INSERT(tyr__i, tyr_rank(tyr__i), TYR__D1(tyr__w)))(                                 \
        tyr__ei                                                                                    \
            ? tyr_result_at(tyr__s, "tyr_embedding", tyr_embedding_at(tyr__s, tyr__ew, tyr__ei))   \
            : NULL);                                                                               \
  })

#ifdef __cplusplus
}
#endif
#endif
