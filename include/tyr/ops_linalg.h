/* tyr/ops_linalg.h - matrix products: matmul and linear layers.
 *
 * Shape rules
 *   tyr_matmul(a, b)
 *     a [m, k]          @ b [k, n]          -> [m, n]
 *     a [B.., m, k]     @ b [B.., k, n]     -> [B.., m, n]   (rank 3 to 6, equal batch dims)
 *     a [B.., m, k]     @ b [k, n]          -> [B.., m, n]   (one b shared by every batch
 *                                                             element: a linear layer)
 *   No other broadcasting; vectors (rank 1) are not accepted (reshape to [1, k] or [k, 1]).
 *   tyr_linear(x, w, bias)
 *     x [.., in], w [out, in], bias [out] or NULL -> [.., out];  y = x wT + bias
 *     (x may be rank 1 to 6; w is stored [out, in] as in PyTorch.)
 *
 * Operands share a dtype and a device.  f32 and f64 run through BLAS (GEMM)
 * directly, and transposed views (tyr_transpose of a contiguous tensor) are
 * handed to BLAS as they are, without a copy; bf16/f16 on the CPU are
 * computed in f32.  Backward: dA = dC BT, dB = AT dC; dbias = dC summed over
 * rows.
 *
 * Erased forms: tyr_matmul_e(a, b), tyr_linear_e(x, w, bias_or_NULL).
 * Typed forms:  tyr_matmul(a, b), tyr_linear(x, w), tyr_linear_bias(x, w, b);
 * their result types come from the operands' types, e.g.
 *     tyr_T(B, T, C) x;  tyr_T(4 * C, C) w;  ->  tyr_linear(x, w) is tyr_T(B, T, 4 * C)
 * A broken rule on constant dims fails the build with a message starting
 * with the op's name; with run-time dims it stops at the call with
 * "file:line: op: ..." naming both shapes. */
#ifndef TYR_OPS_LINALG_H
#define TYR_OPS_LINALG_H
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every function below returns a new tensor (or a view sharing its
 * operand's storage, where said), owned by the innermost open scope, or
 * by the caller when no scope is open; NULL after raising an error. */
/* a @ b and x wT + bias (bias NULL: none), shapes as in this file's comment. */
tyr_tensor *tyr_matmul_at(tyr_site s, tyr_tensor *a, tyr_tensor *b);
tyr_tensor *tyr_linear_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *bias);

#define tyr_matmul_e(a, b) tyr_matmul_at(TYR_SITE, (a), (b))
#define tyr_linear_e(x, w, bias) tyr_linear_at(TYR_SITE, (x), (w), (bias))

/* ---- compile-time checks ---------------------------------------------------
 * TYR__CT_ASSERT(tag, cond, failfn, msg): when cond is an integer constant
 * expression (all dims involved are constants) and false, a static
 * assertion fails with msg in the compiler's front end, so that the
 * message comes first (before any type mismatch the broken rule causes in
 * the rest of the statement).  Otherwise TYR_CT_CHECK lets the optimizer
 * decide it, and the erased function checks it at run time.  tag names an
 * enumerator local to the typed macro's block. */
#define TYR__CT_ASSERT(tag, cond, failfn, msg)                                                     \
  enum { tag = !TYR__CT_BAD(cond) };                                                               \
  _Static_assert(tag, msg);                                                                        \
  TYR_CT_CHECK(cond, failfn)

#define TYR__MSG_MATMUL_RANK                                                                       \
  "tyr_matmul: a must be [.., m, k] (rank 2 to 6) and b [k, n] or of the same rank as a"
#define TYR__MSG_MATMUL_INNER                                                                      \
  "tyr_matmul: inner dimensions differ (a is [.., m, k], so b must be [.., k, n])"
#define TYR__MSG_MATMUL_BATCH                                                                      \
  "tyr_matmul: batch dimensions differ (a [B.., m, k] needs b [B.., k, n] with the same B.., "     \
  "or a 2-D b)"
#define TYR__MSG_LINEAR_W                                                                          \
  "tyr_linear: the weight must be [out, in] with in equal to the last dim of x (x is [.., in], "   \
  "y = x wT is [.., out])"
#define TYR__MSG_LINEAR_BIAS "tyr_linear_bias: the bias must be [out], out being the first dim of w"
#define tyr__ct_matmul_rank_msg TYR__MSG_MATMUL_RANK
TYR_CT_ERROR(tyr__ct_matmul_rank, tyr__ct_matmul_rank_msg);
#define tyr__ct_matmul_inner_msg TYR__MSG_MATMUL_INNER
TYR_CT_ERROR(tyr__ct_matmul_inner, tyr__ct_matmul_inner_msg);
#define tyr__ct_matmul_batch_msg TYR__MSG_MATMUL_BATCH
TYR_CT_ERROR(tyr__ct_matmul_batch, tyr__ct_matmul_batch_msg);
#define tyr__ct_linear_w_msg TYR__MSG_LINEAR_W
TYR_CT_ERROR(tyr__ct_linear_w, tyr__ct_linear_w_msg);
#define tyr__ct_linear_bias_msg TYR__MSG_LINEAR_BIAS
TYR_CT_ERROR(tyr__ct_linear_bias, tyr__ct_linear_bias_msg);

/* batch dim j of a and b agree, or does not exist, or b is shared (2-D) */
#define TYR__MM_BATCH(a, b, j)                                                                     \
  __builtin_choose_expr(tyr_rank(b) == 2 || tyr_rank(a) < (j) + 3, 1,                              \
                        TYR__DIM(a, j) == TYR__DIM(b, j))

/* ---- typed layer ------------------------------------------------------------ */
/* Result type: a's type with its last dim replaced by b's last dim. */
#define tyr_matmul(a, b)                                                                           \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    TYR__CT_ASSERT(tyr__matmul_rank_ok,                                                            \
                   tyr_rank(tyr__a) >= 2 &&                                                        \
                       (tyr_rank(tyr__b) == 2 || tyr_rank(tyr__b) == tyr_rank(tyr__a)),            \
                   tyr__ct_matmul_rank, TYR__MSG_MATMUL_RANK);                                     \
    TYR__CT_ASSERT(tyr__matmul_inner_ok, TYR__DIMN(tyr__a, -1) == TYR__DIMN(tyr__b, -2),           \
                   tyr__ct_matmul_inner, TYR__MSG_MATMUL_INNER);                                   \
    TYR__CT_ASSERT(tyr__matmul_b0_ok, TYR__MM_BATCH(tyr__a, tyr__b, 0), tyr__ct_matmul_batch,      \
                   TYR__MSG_MATMUL_BATCH);                                                         \
    TYR__CT_ASSERT(tyr__matmul_b1_ok, TYR__MM_BATCH(tyr__a, tyr__b, 1), tyr__ct_matmul_batch,      \
                   TYR__MSG_MATMUL_BATCH);                                                         \
    TYR__CT_ASSERT(tyr__matmul_b2_ok, TYR__MM_BATCH(tyr__a, tyr__b, 2), tyr__ct_matmul_batch,      \
                   TYR__MSG_MATMUL_BATCH);                                                         \
    TYR__CT_ASSERT(tyr__matmul_b3_ok, TYR__MM_BATCH(tyr__a, tyr__b, 3), tyr__ct_matmul_batch,      \
                   TYR__MSG_MATMUL_BATCH);                                                         \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_matmul", "a", tyr__a);                           \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, "tyr_matmul", "b", tyr__b) : NULL;          \
    (TYR__TYPE_REPLACE(tyr__a, tyr_rank(tyr__a) - 1, TYR__DIMN(tyr__b, -1)))(                      \
        tyr__eb ? tyr_result_at(tyr__s, "tyr_matmul", tyr_matmul_at(tyr__s, tyr__ea, tyr__eb))     \
                : NULL);                                                                           \
  })

/* Result type: x's type with its last dim replaced by w's first dim. */
#define TYR__LINEAR_W_CHECKS(x, w)                                                                 \
  TYR__CT_ASSERT(tyr__linear_wr_ok, tyr_rank(w) == 2, tyr__ct_linear_w, TYR__MSG_LINEAR_W);        \
  TYR__CT_ASSERT(tyr__linear_w_ok,                                                                 \
                 __builtin_choose_expr(tyr_rank(w) == 2, TYR__DIMN(w, 1) == TYR__DIMN(x, -1), 1),  \
                 tyr__ct_linear_w, TYR__MSG_LINEAR_W)
#define tyr_linear(x, w)                                                                           \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    TYR__LINEAR_W_CHECKS(tyr__x, tyr__w);                                                          \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_linear", "x", tyr__x);                           \
    tyr_tensor *tyr__ew = tyr__ex ? TYR__CLAIM(tyr__s, "tyr_linear", "w", tyr__w) : NULL;          \
    (TYR__TYPE_REPLACE(tyr__x, tyr_rank(tyr__x) - 1, TYR__D0(tyr__w)))(                            \
        tyr__ew                                                                                    \
            ? tyr_result_at(tyr__s, "tyr_linear", tyr_linear_at(tyr__s, tyr__ex, tyr__ew, NULL))   \
            : NULL);                                                                               \
  })
#define tyr_linear_bias(x, w, bias)                                                                \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__bias = (bias);                                                                \
    TYR__LINEAR_W_CHECKS(tyr__x, tyr__w);                                                          \
    TYR__CT_ASSERT(tyr__linear_br_ok, tyr_rank(tyr__bias) == 1, tyr__ct_linear_bias,               \
                   TYR__MSG_LINEAR_BIAS);                                                          \
    TYR__CT_ASSERT(                                                                                \
        tyr__linear_b_ok,                                                                          \
        __builtin_choose_expr(tyr_rank(tyr__bias) == 1, TYR__D0(tyr__bias) == TYR__D0(tyr__w), 1), \
        tyr__ct_linear_bias, TYR__MSG_LINEAR_BIAS);                                                \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_linear", "x", tyr__x);                           \
    tyr_tensor *tyr__ew = tyr__ex ? TYR__CLAIM(tyr__s, "tyr_linear", "w", tyr__w) : NULL;          \
    tyr_tensor *tyr__eb = tyr__ew ? TYR__CLAIM(tyr__s, "tyr_linear", "bias", tyr__bias) : NULL;    \
    (TYR__TYPE_REPLACE(tyr__x, tyr_rank(tyr__x) - 1, TYR__D0(tyr__w)))(                            \
        tyr__eb ? tyr_result_at(tyr__s, "tyr_linear",                                              \
                                tyr_linear_at(tyr__s, tyr__ex, tyr__ew, tyr__eb))                  \
                : NULL);                                                                           \
  })

#ifdef __cplusplus
}
#endif
#endif
