/* tyr/ops_layout.h - views and rearrangements: reshape, transpose, permute,
 * contiguous, squeeze/unsqueeze, flatten, narrow, cat/stack, split/chunk,
 * tril/triu.
 *
 * Views share x's storage (writing into one, e.g. with tyr_copy, changes
 * the other): transpose, permute, squeeze, unsqueeze, narrow, and the
 * pieces of split/chunk always; reshape and flatten when the elements are
 * laid out so that no copy is needed; contiguous when x already is.  cat,
 * stack, tril and triu make new tensors.  Every op is recorded for
 * autograd; a view's gradient is g put back in x's layout (narrow: padded
 * with zeros).  A negative dim counts from the end (for unsqueeze and
 * stack, which add a dim, from the end of the result).  Any dtype.
 *
 * Erased forms: tyr_<op>_e(...) over tyr_<op>_at(site, ...).
 * Typed forms (dims, permutations and diagonal offsets constant; the
 * result type follows the op; a rule broken by constant dims fails the
 * build, by run-time dims raises at the call):
 *   tyr_reshape(x, d0, ...)            tyr_transpose(x, d0, d1)
 *   tyr_permute(x, p0, p1, ...)        tyr_contiguous(x)
 *   tyr_squeeze(x, d)                  tyr_unsqueeze(x, d)
 *   tyr_flatten(x, start, end)         tyr_narrow(x, dim, start, len)
 *   tyr_cat2(a, b, dim)                tyr_cat3(a, b, c, dim)
 *   tyr_stack2(a, b, dim)              tyr_stack3(a, b, c, dim)
 *   tyr_chunk2(x, dim, &p0, &p1)       tyr_chunk3(x, dim, &p0, &p1, &p2)
 *   tyr_tril(x, k)                     tyr_triu(x, k)
 * tyr_chunk2/3 need the dim to divide evenly and store the pieces (typed)
 * into the given variables.  Uneven pieces have no single type: use the
 * erased tyr_split_e / tyr_chunk_e and tyr_cast each piece, e.g.
 *     tyr_tensor *p[3];
 *     int n = tyr_split_e(tyr_erase(x), 4, 1, p, 3);   x: [B, 10]
 *     tyr_T(B, 4) a = tyr_cast(p[0], B, 4);  ...  tyr_T(B, 2) c = tyr_cast(p[2], B, 2); */
#ifndef TYR_OPS_LAYOUT_H
#define TYR_OPS_LAYOUT_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- erased layer ------------------------------------------------------ */
/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
/* Same elements, new shape (numel must match; one dim may be -1).  A view
 * when x is contiguous, else a copy. */
tyr_tensor *tyr_reshape_at(tyr_site s, tyr_tensor *x, int rank, const int64_t *shape);
/* x with dims d0 and d1 swapped (a view). */
tyr_tensor *tyr_transpose_at(tyr_site s, tyr_tensor *x, int d0, int d1);
/* Dim i of the result is dim perm[i] of x; perm has x's rank entries (a
 * view).  tyr_permute_n_at also checks that perm has n == rank entries. */
tyr_tensor *tyr_permute_at(tyr_site s, tyr_tensor *x, const int *perm);
tyr_tensor *tyr_permute_n_at(tyr_site s, tyr_tensor *x, int n, const int *perm);
/* x's values in a contiguous layout (a view of x when it already is). */
tyr_tensor *tyr_contiguous_at(tyr_site s, tyr_tensor *x);
/* x without dim, which must have size 1 (a view). */
tyr_tensor *tyr_squeeze_at(tyr_site s, tyr_tensor *x, int dim);
/* x with a new dim of size 1 at dim, 0..rank (a view). */
tyr_tensor *tyr_unsqueeze_at(tyr_site s, tyr_tensor *x, int dim);
/* x with dims start..end (inclusive) merged into one; a rank-0 x gives
 * [1].  A view when those dims are laid out as one, else a copy. */
tyr_tensor *tyr_flatten_at(tyr_site s, tyr_tensor *x, int start, int end);
/* Elements start .. start+len-1 of dim (a view). */
tyr_tensor *tyr_narrow_at(tyr_site s, tyr_tensor *x, int dim, int64_t start, int64_t len);
/* xs[0..n-1] joined along dim; all have x's rank and equal dims except
 * dim, one dtype and one device. */
tyr_tensor *tyr_cat_at(tyr_site s, int n, tyr_tensor *const *xs, int dim);
/* xs[0..n-1], all of one shape, joined along a new dim (0..rank). */
tyr_tensor *tyr_stack_at(tyr_site s, int n, tyr_tensor *const *xs, int dim);
/* Views of x in pieces of size along dim (the last may be smaller) into
 * out[0..]; returns the count, or -1 (nothing stored) after an error,
 * including a count above max_out.  An empty dim gives one empty piece. */
int tyr_split_at(tyr_site s, tyr_tensor *x, int64_t size, int dim, tyr_tensor **out, int max_out);
/* x in at most `chunks` pieces of size ceil(len / chunks) along dim (so
 * there may be fewer); out holds `chunks` entries.  Returns the count or -1. */
int tyr_chunk_at(tyr_site s, tyr_tensor *x, int chunks, int dim, tyr_tensor **out);
/* The lower (tril: col - row <= diagonal) or upper (triu: col - row >=
 * diagonal) triangle of the last two dims of x (rank >= 2), zeros elsewhere. */
tyr_tensor *tyr_tril_at(tyr_site s, tyr_tensor *x, int64_t diagonal);
tyr_tensor *tyr_triu_at(tyr_site s, tyr_tensor *x, int64_t diagonal);
/* For the typed chunk forms: exactly `chunks` equal pieces (the dim must
 * divide evenly), errors naming op.  Returns chunks or -1. */
int tyr__chunk_even_at(tyr_site s, const char *op, tyr_tensor *x, int chunks, int dim,
                       tyr_tensor **out);

#define tyr_reshape_e(x, ...)                                                                      \
  tyr_reshape_at(TYR_SITE, (x), TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__})
#define tyr_transpose_e(x, d0, d1) tyr_transpose_at(TYR_SITE, (x), (d0), (d1))
#define tyr_permute_e(x, ...)                                                                      \
  tyr_permute_n_at(TYR_SITE, (x), TYR__NARGS(__VA_ARGS__), (const int[]){__VA_ARGS__})
#define tyr_contiguous_e(x) tyr_contiguous_at(TYR_SITE, (x))
#define tyr_squeeze_e(x, d) tyr_squeeze_at(TYR_SITE, (x), (d))
#define tyr_unsqueeze_e(x, d) tyr_unsqueeze_at(TYR_SITE, (x), (d))
#define tyr_flatten_e(x, a, b) tyr_flatten_at(TYR_SITE, (x), (a), (b))
#define tyr_narrow_e(x, d, start, len) tyr_narrow_at(TYR_SITE, (x), (d), (start), (len))
#define tyr_cat_e(n, xs, d) tyr_cat_at(TYR_SITE, (n), (xs), (d))
#define tyr_stack_e(n, xs, d) tyr_stack_at(TYR_SITE, (n), (xs), (d))
#define tyr_split_e(x, size, d, out, max) tyr_split_at(TYR_SITE, (x), (size), (d), (out), (max))
#define tyr_chunk_e(x, chunks, d, out) tyr_chunk_at(TYR_SITE, (x), (chunks), (d), (out))
#define tyr_tril_e(x, k) tyr_tril_at(TYR_SITE, (x), (k))
#define tyr_triu_e(x, k) tyr_triu_at(TYR_SITE, (x), (k))

/* ---- typed layer -------------------------------------------------------- */
#define tyr__ct_reshape_msg "tyr_reshape: the new shape has a different number of elements"
TYR_CT_ERROR(tyr__ct_reshape, tyr__ct_reshape_msg);
#define tyr_reshape(x, ...)                                                                        \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(tyr_numel_of(tyr__a) == tyr_numel_of((tyr_T(__VA_ARGS__))0), tyr__ct_reshape);        \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_reshape", "x", tyr__a);                          \
    (tyr_T(__VA_ARGS__))(                                                                          \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_reshape",                                             \
                                tyr_reshape_at(tyr__s, tyr__ea, TYR__NARGS(__VA_ARGS__),           \
                                               (const int64_t[]){__VA_ARGS__}))                    \
                : NULL);                                                                           \
  })

/* d is a dim of p (after normalising a negative d) */
#define TYR__DIM_IN(p, d) (TYR__NORM(p, d) >= 0 && TYR__NORM(p, d) < tyr_rank(p))
/* an insertion point 0..rank of p (negative counts from rank + 1) */
#define TYR__INORM(p, d) ((d) < 0 ? (d) + tyr_rank(p) + 1 : (d))
#define TYR__INS_IN(p, d)                                                                          \
  (tyr_rank(p) < TYR_MAX_RANK && TYR__INORM(p, d) >= 0 && TYR__INORM(p, d) <= tyr_rank(p))

/* transpose: dims a and b swapped */
#define tyr__ct_transpose_msg "tyr_transpose: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_transpose, tyr__ct_transpose_msg);
#define TYR__SWAPD(p, a, b, j)                                                                     \
  __builtin_choose_expr((j) == (a), TYR__DIM(p, b),                                                \
                        __builtin_choose_expr((j) == (b), TYR__DIM(p, a), TYR__DIM(p, j)))
#define TYR__TYPE_SWAP(p, a, b)                                                                    \
  TYR__TYPE(tyr_rank(p), TYR__SWAPD(p, a, b, 0), TYR__SWAPD(p, a, b, 1), TYR__SWAPD(p, a, b, 2),   \
            TYR__SWAPD(p, a, b, 3), TYR__SWAPD(p, a, b, 4), TYR__SWAPD(p, a, b, 5))
#define tyr_transpose(x, d0, d1)                                                                   \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, d0) && TYR__DIM_IN(tyr__a, d1), tyr__ct_transpose);               \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_transpose", "x", tyr__a);                        \
    (TYR__TYPE_SWAP(tyr__a, TYR__NORM(tyr__a, d0), TYR__NORM(tyr__a, d1)))(                        \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_transpose",                                           \
                                tyr_transpose_at(tyr__s, tyr__ea, (d0), (d1)))                     \
                : NULL);                                                                           \
  })

/* permute: dim j of the result is dim p_j of x */
#define tyr__ct_permute_len_msg                                                                    \
  "tyr_permute: the length of the permutation differs from the rank of the tensor"
TYR_CT_ERROR(tyr__ct_permute_len, tyr__ct_permute_len_msg);
#define tyr__ct_permute_msg                                                                        \
  "tyr_permute: the dims given are not a permutation of the "                                      \
  "dims of the tensor (each of 0..rank-1 exactly once)"
TYR_CT_ERROR(tyr__ct_permute, tyr__ct_permute_msg);
#define TYR__PADP(...) TYR__FIRST6(__VA_ARGS__, 99, 99, 99, 99, 99, 99)
#define TYR__PIN(x, n, j, q) ((j) >= (n) || (TYR__NORM(x, q) >= 0 && TYR__NORM(x, q) < (n)))
#define TYR__PBIT(x, n, j, q) ((j) < (n) ? 1 << (TYR__NORM(x, q) & 15) : 0)
#define TYR__PERMOK(x, n, q0, q1, q2, q3, q4, q5)                                                  \
  (TYR__PIN(x, n, 0, q0) && TYR__PIN(x, n, 1, q1) && TYR__PIN(x, n, 2, q2) &&                      \
   TYR__PIN(x, n, 3, q3) && TYR__PIN(x, n, 4, q4) && TYR__PIN(x, n, 5, q5) &&                      \
   (TYR__PBIT(x, n, 0, q0) | TYR__PBIT(x, n, 1, q1) | TYR__PBIT(x, n, 2, q2) |                     \
    TYR__PBIT(x, n, 3, q3) | TYR__PBIT(x, n, 4, q4) | TYR__PBIT(x, n, 5, q5)) == (1 << (n)) - 1)
#define TYR__PERMOK_(...) TYR__PERMOK(__VA_ARGS__)
#define TYR__TYPE_PERM(x, q0, q1, q2, q3, q4, q5)                                                  \
  TYR__TYPE(tyr_rank(x), TYR__DIM(x, TYR__NORM(x, q0)), TYR__DIM(x, TYR__NORM(x, q1)),             \
            TYR__DIM(x, TYR__NORM(x, q2)), TYR__DIM(x, TYR__NORM(x, q3)),                          \
            TYR__DIM(x, TYR__NORM(x, q4)), TYR__DIM(x, TYR__NORM(x, q5)))
#define TYR__TYPE_PERM_(...) TYR__TYPE_PERM(__VA_ARGS__)
#define tyr_permute(x, ...)                                                                        \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__NARGS(__VA_ARGS__) == tyr_rank(tyr__a), tyr__ct_permute_len);                    \
    TYR_RULE(TYR__PERMOK_(tyr__a, TYR__NARGS(__VA_ARGS__), TYR__PADP(__VA_ARGS__)),                \
             tyr__ct_permute);                                                                     \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_permute", "x", tyr__a);                          \
    (TYR__TYPE_PERM_(tyr__a, TYR__PADP(__VA_ARGS__)))(                                             \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_permute",                                             \
                                tyr_permute_n_at(tyr__s, tyr__ea, TYR__NARGS(__VA_ARGS__),         \
                                                 (const int[]){__VA_ARGS__}))                      \
                : NULL);                                                                           \
  })

#define tyr_contiguous(x) TYR_TYPED_UNARY("tyr_contiguous", tyr_contiguous_at(tyr__s, tyr__ea), x)

/* squeeze / unsqueeze */
#define tyr__ct_squeeze_dim_msg "tyr_squeeze: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_squeeze_dim, tyr__ct_squeeze_dim_msg);
#define tyr__ct_squeeze_msg "tyr_squeeze: the dim to remove does not have size 1"
TYR_CT_ERROR(tyr__ct_squeeze, tyr__ct_squeeze_msg);
#define tyr_squeeze(x, d)                                                                          \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, d), tyr__ct_squeeze_dim);                                         \
    TYR_RULE(!TYR__DIM_IN(tyr__a, d) || TYR__DIMN(tyr__a, d) == 1, tyr__ct_squeeze);               \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_squeeze", "x", tyr__a);                          \
    (TYR__TYPE_DROP(tyr__a, TYR__NORM(tyr__a, d)))(                                                \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_squeeze", tyr_squeeze_at(tyr__s, tyr__ea, (d)))       \
                : NULL);                                                                           \
  })
#define tyr__ct_unsqueeze_msg                                                                      \
  "tyr_unsqueeze: dim is out of range 0..rank, or the tensor "                                     \
  "already has the largest rank"
TYR_CT_ERROR(tyr__ct_unsqueeze, tyr__ct_unsqueeze_msg);
#define tyr_unsqueeze(x, d)                                                                        \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__INS_IN(tyr__a, d), tyr__ct_unsqueeze);                                           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_unsqueeze", "x", tyr__a);                        \
    (TYR__TYPE_INSERT(tyr__a, TYR__INORM(tyr__a, d), 1))(                                          \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_unsqueeze", tyr_unsqueeze_at(tyr__s, tyr__ea, (d)))   \
                : NULL);                                                                           \
  })

/* flatten: dims a..b merged */
#define tyr__ct_flatten_msg                                                                        \
  "tyr_flatten: start or end is out of range for the rank of the tensor, or start > end"
TYR_CT_ERROR(tyr__ct_flatten, tyr__ct_flatten_msg);
#define TYR__FLIN(p, a, b, i)                                                                      \
  __builtin_choose_expr((i) >= (a) && (i) <= (b), TYR__DIM(p, i), (int64_t)1)
#define TYR__FLPROD(p, a, b)                                                                       \
  (TYR__FLIN(p, a, b, 0) * TYR__FLIN(p, a, b, 1) * TYR__FLIN(p, a, b, 2) * TYR__FLIN(p, a, b, 3) * \
   TYR__FLIN(p, a, b, 4) * TYR__FLIN(p, a, b, 5))
#define TYR__FLD(p, a, b, j)                                                                       \
  __builtin_choose_expr(                                                                           \
      (j) < (a), TYR__DIM(p, j),                                                                   \
      __builtin_choose_expr((j) == (a), TYR__FLPROD(p, a, b), TYR__DIM(p, (j) + (b) - (a))))
#define TYR__TYPE_FLATTEN(p, a, b)                                                                 \
  TYR__TYPE(tyr_rank(p) - ((b) - (a)), TYR__FLD(p, a, b, 0), TYR__FLD(p, a, b, 1),                 \
            TYR__FLD(p, a, b, 2), TYR__FLD(p, a, b, 3), TYR__FLD(p, a, b, 4),                      \
            TYR__FLD(p, a, b, 5))
#define tyr_flatten(x, start, end)                                                                 \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, start) && TYR__DIM_IN(tyr__a, end) &&                             \
                 TYR__NORM(tyr__a, start) <= TYR__NORM(tyr__a, end),                               \
             tyr__ct_flatten);                                                                     \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_flatten", "x", tyr__a);                          \
    (TYR__TYPE_FLATTEN(tyr__a, TYR__NORM(tyr__a, start), TYR__NORM(tyr__a, end)))(                 \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_flatten",                                             \
                                tyr_flatten_at(tyr__s, tyr__ea, (start), (end)))                   \
                : NULL);                                                                           \
  })

/* narrow: dim replaced by len */
#define tyr__ct_narrow_dim_msg "tyr_narrow: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_narrow_dim, tyr__ct_narrow_dim_msg);
#define tyr__ct_narrow_msg                                                                         \
  "tyr_narrow: start + len exceeds the size of the dim (or start or "                              \
  "len is negative)"
TYR_CT_ERROR(tyr__ct_narrow, tyr__ct_narrow_msg);
#define tyr_narrow(x, dim, start, len)                                                             \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, dim), tyr__ct_narrow_dim);                                        \
    TYR_RULE((int64_t)(start) >= 0 && (int64_t)(len) >= 0, tyr__ct_narrow);                        \
    TYR_RULE(!TYR__DIM_IN(tyr__a, dim) || (len) <= TYR__DIMN(tyr__a, dim), tyr__ct_narrow);        \
    TYR_RULE(!TYR__DIM_IN(tyr__a, dim) || (start) + (len) <= TYR__DIMN(tyr__a, dim),               \
             tyr__ct_narrow);                                                                      \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_narrow", "x", tyr__a);                           \
    (TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, dim), len))(                                      \
        tyr__ea ? tyr_result_at(tyr__s, "tyr_narrow",                                              \
                                tyr_narrow_at(tyr__s, tyr__ea, (dim), (start), (len)))             \
                : NULL);                                                                           \
  })

/* cat: dim replaced by the sum; every other dim equal */
#define TYR__CATEQ(a, b, k, j) ((j) == (k) || TYR__DIM(a, j) == TYR__DIM(b, j))
#define TYR_CT_CAT_OK(a, b, k, failfn)                                                             \
  do {                                                                                             \
    TYR_RULE(tyr_rank(a) == tyr_rank(b), failfn);                                                  \
    TYR_RULE(TYR__CATEQ(a, b, k, 0) && TYR__CATEQ(a, b, k, 1) && TYR__CATEQ(a, b, k, 2) &&         \
                 TYR__CATEQ(a, b, k, 3) && TYR__CATEQ(a, b, k, 4) && TYR__CATEQ(a, b, k, 5),       \
             failfn);                                                                              \
  } while (0)
#define tyr__ct_cat_dim_msg "tyr_cat: dim is out of range for the rank of the tensors"
TYR_CT_ERROR(tyr__ct_cat_dim, tyr__ct_cat_dim_msg);
#define tyr__ct_cat2_msg                                                                           \
  "tyr_cat2: the operands differ in rank or in a dim other than the "                              \
  "one they are joined along"
TYR_CT_ERROR(tyr__ct_cat2, tyr__ct_cat2_msg);
#define tyr__ct_cat3_msg                                                                           \
  "tyr_cat3: the operands differ in rank or in a dim other than the "                              \
  "one they are joined along"
TYR_CT_ERROR(tyr__ct_cat3, tyr__ct_cat3_msg);
#define tyr_cat2(a, b, dim)                                                                        \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, dim), tyr__ct_cat_dim);                                           \
    TYR_CT_CAT_OK(tyr__a, tyr__b, TYR__NORM(tyr__a, dim), tyr__ct_cat2);                           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_cat", "a", tyr__a);                              \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_cat", "b", tyr__b) : NULL;             \
    (TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, dim),                                             \
                       TYR__DIMN(tyr__a, dim) + TYR__DIMN(tyr__b, dim)))(                          \
        tyr__eb                                                                                    \
            ? tyr_result_at(tyr__s, "tyr_cat",                                                     \
                            tyr_cat_at(tyr__s, 2, (tyr_tensor *const[]){tyr__ea, tyr__eb}, (dim))) \
            : NULL);                                                                               \
  })
#define tyr_cat3(a, b, c, dim)                                                                     \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    __auto_type tyr__c = (c);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, dim), tyr__ct_cat_dim);                                           \
    TYR_CT_CAT_OK(tyr__a, tyr__b, TYR__NORM(tyr__a, dim), tyr__ct_cat3);                           \
    TYR_CT_CAT_OK(tyr__a, tyr__c, TYR__NORM(tyr__a, dim), tyr__ct_cat3);                           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_cat", "a", tyr__a);                              \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_cat", "b", tyr__b) : NULL;             \
    tyr_tensor *tyr__ec = tyr__eb ? TYR__CLAIM(tyr__s, "tyr_cat", "c", tyr__c) : NULL;             \
    (TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, dim),                                             \
                       TYR__DIMN(tyr__a, dim) + TYR__DIMN(tyr__b, dim) + TYR__DIMN(tyr__c, dim)))( \
        tyr__ec                                                                                    \
            ? tyr_result_at(                                                                       \
                  tyr__s, "tyr_cat",                                                               \
                  tyr_cat_at(tyr__s, 3, (tyr_tensor *const[]){tyr__ea, tyr__eb, tyr__ec}, (dim)))  \
            : NULL);                                                                               \
  })

/* stack: a new dim of size n at dim; operands of one shape */
#define tyr__ct_stack_dim_msg                                                                      \
  "tyr_stack: dim is out of range 0..rank, or the tensors already "                                \
  "have the largest rank"
TYR_CT_ERROR(tyr__ct_stack_dim, tyr__ct_stack_dim_msg);
#define tyr__ct_stack2_msg "tyr_stack2: the operands have different shapes"
TYR_CT_ERROR(tyr__ct_stack2, tyr__ct_stack2_msg);
#define tyr__ct_stack3_msg "tyr_stack3: the operands have different shapes"
TYR_CT_ERROR(tyr__ct_stack3, tyr__ct_stack3_msg);
#define tyr_stack2(a, b, dim)                                                                      \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    TYR_RULE(TYR__INS_IN(tyr__a, dim), tyr__ct_stack_dim);                                         \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, tyr__ct_stack2);                                           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_stack", "a", tyr__a);                            \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_stack", "b", tyr__b) : NULL;           \
    (TYR__TYPE_INSERT(tyr__a, TYR__INORM(tyr__a, dim), 2))(                                        \
        tyr__eb ? tyr_result_at(                                                                   \
                      tyr__s, "tyr_stack",                                                         \
                      tyr_stack_at(tyr__s, 2, (tyr_tensor *const[]){tyr__ea, tyr__eb}, (dim)))     \
                : NULL);                                                                           \
  })
#define tyr_stack3(a, b, c, dim)                                                                   \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    __auto_type tyr__c = (c);                                                                      \
    TYR_RULE(TYR__INS_IN(tyr__a, dim), tyr__ct_stack_dim);                                         \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, tyr__ct_stack3);                                           \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__c, tyr__ct_stack3);                                           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_stack", "a", tyr__a);                            \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_stack", "b", tyr__b) : NULL;           \
    tyr_tensor *tyr__ec = tyr__eb ? TYR__CLAIM(tyr__s, "tyr_stack", "c", tyr__c) : NULL;           \
    (TYR__TYPE_INSERT(tyr__a, TYR__INORM(tyr__a, dim), 3))(                                        \
        tyr__ec                                                                                    \
            ? tyr_result_at(tyr__s, "tyr_stack",                                                   \
                            tyr_stack_at(tyr__s, 3,                                                \
                                         (tyr_tensor *const[]){tyr__ea, tyr__eb, tyr__ec}, (dim))) \
            : NULL);                                                                               \
  })

/* chunk2/chunk3: equal pieces stored through the pointers; evaluates to
 * 0, or -1 after an error (the pieces are then NULL) */
#define tyr__ct_chunk_dim_msg "tyr_chunk: dim is out of range for the rank of the tensor"
TYR_CT_ERROR(tyr__ct_chunk_dim, tyr__ct_chunk_dim_msg);
#define tyr__ct_chunk2_msg "tyr_chunk2: the dim does not divide into 2 equal pieces"
TYR_CT_ERROR(tyr__ct_chunk2, tyr__ct_chunk2_msg);
#define tyr__ct_chunk3_msg "tyr_chunk3: the dim does not divide into 3 equal pieces"
TYR_CT_ERROR(tyr__ct_chunk3, tyr__ct_chunk3_msg);
#define TYR__TCHUNK(name, k, failfn, x, dim, ...)                                                  \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(TYR__DIM_IN(tyr__a, dim), tyr__ct_chunk_dim);                                         \
    TYR_RULE(TYR__DIMN(tyr__a, dim) % (k) == 0, failfn);                                           \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, name, "x", tyr__a);                                   \
    tyr_tensor *tyr__p[3] = {NULL, NULL, NULL};                                                    \
    int tyr__rc = tyr__ea ? tyr__chunk_even_at(tyr__s, name, tyr__ea, (k), (dim), tyr__p) : -1;    \
    typedef TYR__TYPE_REPLACE(tyr__a, TYR__NORM(tyr__a, dim), TYR__DIMN(tyr__a, dim) / (k))        \
        tyr__piece_t;                                                                              \
    tyr_tensor **tyr__pp = tyr__p;                                                                 \
    TYR__CHUNK_STORE(__VA_ARGS__);                                                                 \
    tyr__rc < 0 ? -1 : 0;                                                                          \
  })
#define TYR__CHUNK_STORE(...) TYR__CHUNK_STORE_N(TYR__NARGS(__VA_ARGS__), __VA_ARGS__)
#define TYR__CHUNK_STORE_N(n, ...) TYR__CHUNK_STORE_N_(n, __VA_ARGS__)
#define TYR__CHUNK_STORE_N_(n, ...) TYR__CHUNK_STORE##n(__VA_ARGS__)
#define TYR__CHUNK_STORE2(o0, o1)                                                                  \
  (*(o0) = (tyr__piece_t)tyr__pp[0], *(o1) = (tyr__piece_t)tyr__pp[1])
#define TYR__CHUNK_STORE3(o0, o1, o2)                                                              \
  (*(o0) = (tyr__piece_t)tyr__pp[0], *(o1) = (tyr__piece_t)tyr__pp[1],                             \
   *(o2) = (tyr__piece_t)tyr__pp[2])
#define tyr_chunk2(x, dim, p0, p1) TYR__TCHUNK("tyr_chunk2", 2, tyr__ct_chunk2, x, dim, p0, p1)
#define tyr_chunk3(x, dim, p0, p1, p2)                                                             \
  TYR__TCHUNK("tyr_chunk3", 3, tyr__ct_chunk3, x, dim, p0, p1, p2)

/* tril / triu: same type, rank >= 2 */
#define tyr__ct_tril_msg "tyr_tril: the tensor must have rank 2 or more"
TYR_CT_ERROR(tyr__ct_tril, tyr__ct_tril_msg);
#define tyr__ct_triu_msg "tyr_triu: the tensor must have rank 2 or more"
TYR_CT_ERROR(tyr__ct_triu, tyr__ct_triu_msg);
#define TYR__TTRI(name, x, k)                                                                      \
  ({                                                                                               \
    __auto_type tyr__a = (x);                                                                      \
    TYR_RULE(tyr_rank(tyr__a) >= 2, tyr__ct_##name);                                               \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__a);                           \
    (__typeof__(tyr__a))(tyr__ea ? tyr_result_at(tyr__s, "tyr_" #name,                             \
                                                 tyr_##name##_at(tyr__s, tyr__ea, (k)))            \
                                 : NULL);                                                          \
  })
#define tyr_tril(x, k) TYR__TTRI(tril, x, k)
#define tyr_triu(x, k) TYR__TTRI(triu, x, k)

#ifdef __cplusplus
}
#endif
#endif
