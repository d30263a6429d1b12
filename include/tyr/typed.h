/* tyr/typed.h - shapes in C types.
 *
 * A shaped handle is a pointer whose pointee type spells the dimensions and
 * the rank, padded to TYR_MAX_RANK dims:
 *
 *     tyr_T(32, 768)  is  __typeof__(char (*)[32][768][1][1][1][1][3])
 *
 * (the innermost extent is rank + 1, so the rank is a constant even when
 * some dims are run-time values).  Its value is the run-time tensor itself,
 * cast; it is never dereferenced.  sizeof reads the dims back out of the
 * type, as integer constant expressions when they were constants.
 *
 * Giving a handle of one shape where another is expected is an
 * incompatible-pointer-types diagnostic, which this header makes an error.
 * Each typed op is a macro that computes its result type from its operands'
 * types and checks its shape rule when the program is compiled if the
 * compiler can decide it (a call to a function declared with
 * __attribute__((error("tyr_op: ..."))) that survives only when the rule is
 * broken), and otherwise at run time at the call, naming file, line, op and
 * both shapes.  Every typed call also passes the dims its operands' types
 * claim, so a handle whose type does not match its tensor is caught at its
 * next use.
 *
 * Dims in the typed layer must be positive and free of side effects (they
 * may be evaluated more than once).  The erased layer (tyr_tensor *) has
 * no such limits.  Requires GCC >= 10 or Clang >= 14. */
#ifndef TYR_TYPED_H
#define TYR_TYPED_H

#include "tyr/autograd.h"
#include "tyr/cxx.h"
#include "tyr/tensor.h"

#ifndef __cplusplus /* in C++ these conversions are errors already */
#pragma GCC diagnostic error "-Wincompatible-pointer-types"
#ifdef __clang__
#pragma clang diagnostic error "-Wincompatible-pointer-types"
#endif
#endif

/* ---- the shaped type ----------------------------------------------------- */
#define TYR__NARGS(...) TYR__NARGS_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define TYR__NARGS_(a, b, c, d, e, f, N, ...) N
#define TYR__FIRST6(a, b, c, d, e, f, ...) a, b, c, d, e, f
#define TYR__PAD6(...) TYR__FIRST6(__VA_ARGS__, 1, 1, 1, 1, 1, 1)
#define TYR__POS(d) ((d) > 0 ? (d) : 1)
#define TYR__TYPE(r, d0, d1, d2, d3, d4, d5)                                                       \
  __typeof__(char(*)[TYR__POS(d0)][TYR__POS(d1)][TYR__POS(d2)][TYR__POS(d3)][TYR__POS(d4)]         \
                    [TYR__POS(d5)][(r) + 1])
#define TYR__TYPE_(...) TYR__TYPE(__VA_ARGS__)

/* The shaped handle type of a tensor with the given dims (1 to 6). */
#define tyr_T(...) TYR__TYPE_(TYR__NARGS(__VA_ARGS__), TYR__PAD6(__VA_ARGS__))
/* The shaped handle type of a rank-0 tensor (a scalar, e.g. a loss). */
#define tyr_T0 TYR__TYPE(0, 1, 1, 1, 1, 1, 1)

/* ---- reading dims out of a type ------------------------------------------ */
#define TYR__S0(p) (*(p))
#define TYR__S1(p) (*(p))[0]
#define TYR__S2(p) (*(p))[0][0]
#define TYR__S3(p) (*(p))[0][0][0]
#define TYR__S4(p) (*(p))[0][0][0][0]
#define TYR__S5(p) (*(p))[0][0][0][0][0]
#define TYR__S6(p) (*(p))[0][0][0][0][0][0]
#define TYR__D0(p) ((int64_t)(sizeof(TYR__S0(p)) / sizeof(TYR__S1(p))))
#define TYR__D1(p) ((int64_t)(sizeof(TYR__S1(p)) / sizeof(TYR__S2(p))))
#define TYR__D2(p) ((int64_t)(sizeof(TYR__S2(p)) / sizeof(TYR__S3(p))))
#define TYR__D3(p) ((int64_t)(sizeof(TYR__S3(p)) / sizeof(TYR__S4(p))))
#define TYR__D4(p) ((int64_t)(sizeof(TYR__S4(p)) / sizeof(TYR__S5(p))))
#define TYR__D5(p) ((int64_t)(sizeof(TYR__S5(p)) / sizeof(TYR__S6(p))))

/* Rank of a shaped handle: always an integer constant expression. */
#define tyr_rank(p) ((int)sizeof(TYR__S6(p)) - 1)
/* Dim i of a shaped handle (i a constant; negative counts from the end).
 * A constant when the dim was a constant.  Dims past the rank read 1. */
#define tyr_dim(p, i) TYR__DIM(p, TYR__NORM(p, i))
#define TYR__NORM(p, i) ((i) < 0 ? (i) + tyr_rank(p) : (i))
#define TYR__DIM(p, i)                                                                             \
  __builtin_choose_expr(                                                                           \
      (i) == 0, TYR__D0(p),                                                                        \
      __builtin_choose_expr(                                                                       \
          (i) == 1, TYR__D1(p),                                                                    \
          __builtin_choose_expr(                                                                   \
              (i) == 2, TYR__D2(p),                                                                \
              __builtin_choose_expr(                                                               \
                  (i) == 3, TYR__D3(p),                                                            \
                  __builtin_choose_expr(                                                           \
                      (i) == 4, TYR__D4(p),                                                        \
                      __builtin_choose_expr((i) == 5, TYR__D5(p), (int64_t)1))))))
/* Number of elements a shaped handle's type claims. */
#define tyr_numel_of(p)                                                                            \
  (TYR__D0(p) * TYR__D1(p) * TYR__D2(p) * TYR__D3(p) * TYR__D4(p) * TYR__D5(p))

/* The six padded dims of p, for passing to the run time. */
#define TYR__DIMS_OF(p) TYR__D0(p), TYR__D1(p), TYR__D2(p), TYR__D3(p), TYR__D4(p), TYR__D5(p)
/* The type of a handle with p's dims but dim k replaced by d (k constant). */
#define TYR__REPL(p, k, j, d) __builtin_choose_expr((k) == (j), (int64_t)(d), TYR__DIM(p, j))
#define TYR__TYPE_REPLACE(p, k, d)                                                                 \
  TYR__TYPE(tyr_rank(p), TYR__REPL(p, k, 0, d), TYR__REPL(p, k, 1, d), TYR__REPL(p, k, 2, d),      \
            TYR__REPL(p, k, 3, d), TYR__REPL(p, k, 4, d), TYR__REPL(p, k, 5, d))
/* The type of a handle with p's dims but dim k removed (k constant). */
#define TYR__DROP(p, k, j) __builtin_choose_expr((j) < (k), TYR__DIM(p, j), TYR__DIM(p, (j) + 1))
#define TYR__TYPE_DROP(p, k)                                                                       \
  TYR__TYPE(tyr_rank(p) - 1, TYR__DROP(p, k, 0), TYR__DROP(p, k, 1), TYR__DROP(p, k, 2),           \
            TYR__DROP(p, k, 3), TYR__DROP(p, k, 4), TYR__DROP(p, k, 5))
/* The type of a handle with p's dims and a new dim d inserted at k. */
#define TYR__INS(p, k, j, d)                                                                       \
  __builtin_choose_expr((j) < (k), TYR__DIM(p, j),                                                 \
                        __builtin_choose_expr((j) == (k), (int64_t)(d), TYR__DIM(p, (j)-1)))
#define TYR__TYPE_INSERT(p, k, d)                                                                  \
  TYR__TYPE(tyr_rank(p) + 1, TYR__INS(p, k, 0, d), TYR__INS(p, k, 1, d), TYR__INS(p, k, 2, d),     \
            TYR__INS(p, k, 3, d), TYR__INS(p, k, 4, d), TYR__INS(p, k, 5, d))

/* ---- checks -------------------------------------------------------------- */
/* Declares the function whose surviving call fails the build with msg. */
#define TYR_CT_ERROR(name, msg) extern void name(void) __attribute__((error(msg)))
/* Fails the build (through failfn) when cond is a constant and false. */
#define TYR_CT_CHECK(cond, failfn)                                                                 \
  do {                                                                                             \
    if (__builtin_constant_p(cond) && !(cond)) failfn();                                           \
  } while (0)
/* A compile-time check for a condition on ranks (always constant). */
#define TYR_CT_RANK(p, r, failfn) TYR_CT_CHECK(tyr_rank(p) == (r), failfn)

/* The erased tensor behind a shaped handle, after checking that its real
 * shape is the one its type claims (NULL, with an error raised, if not). */
#define TYR__CLAIM(site, op, arg, p)                                                               \
  tyr_check_shape_at((site), (op), (arg), (tyr_tensor *)(p), tyr_rank(p),                          \
                     (const int64_t[]){TYR__DIMS_OF(p)})

/* ---- conversions between the layers -------------------------------------- */
/* Checked cast of an erased tensor to a shaped handle:
 *   tyr_T(B, T) x = tyr_cast(t, B, T);        stops if t is not [B, T] */
#define tyr_cast(t, ...)                                                                           \
  ({                                                                                               \
    tyr_tensor *tyr__t = (t);                                                                      \
    (tyr_T(__VA_ARGS__))                                                                           \
        tyr_check_shape_at(TYR_SITE, "tyr_cast", "tensor", tyr__t, TYR__NARGS(__VA_ARGS__),        \
                           (const int64_t[]){__VA_ARGS__});                                        \
  })
#define tyr_cast0(t)                                                                               \
  ({                                                                                               \
    tyr_tensor *tyr__t = (t);                                                                      \
    (tyr_T0) tyr_check_shape_at(TYR_SITE, "tyr_cast", "tensor", tyr__t, 0, (const int64_t[]){0});  \
  })
/* The erased tensor behind a shaped handle (no check). */
#define tyr_erase(p) ((tyr_tensor *)(p))
/* Shaped versions of the lifetime and autograd calls: each keeps the type. */
#define tyr_keep(p) ((__typeof__(p))tyr_keep_e(tyr_erase(p)))
#define tyr_free(p) tyr_tensor_free(tyr_erase(p))
#define tyr_retain(p) ((__typeof__(p))tyr_tensor_retain(tyr_erase(p)))
#define tyr_requires_grad(p) ((__typeof__(p))tyr_requires_grad_at(TYR_SITE, tyr_erase(p), true))
#define tyr_grad(p) ((__typeof__(p))tyr_grad_e(tyr_erase(p)))
#define tyr_zero_grad(p) tyr_zero_grad_e(tyr_erase(p))
#define tyr_detach(p) ((__typeof__(p))tyr_detach_at(TYR_SITE, tyr_erase(p)))
#define tyr_backward(loss) tyr_backward_at(TYR_SITE, tyr_erase(loss))
#define tyr_item(p) tyr_item_at(TYR_SITE, tyr_erase(p))
/* Element access: tyr_get(x, i, j) for a [m, n] handle. */
#define tyr_get(p, ...) tyr_get_at(TYR_SITE, tyr_erase(p), (const int64_t[]){__VA_ARGS__})
#define tyr_set(p, v, ...) tyr_set_at(TYR_SITE, tyr_erase(p), (const int64_t[]){__VA_ARGS__}, (v))

/* ---- building blocks of typed ops ---------------------------------------- */
/* Checks every dim and the rank of two handles for equality. */
#define TYR_CT_SAME_SHAPE(a, b, failfn)                                                            \
  do {                                                                                             \
    TYR_CT_CHECK(tyr_rank(a) == tyr_rank(b), failfn);                                              \
    TYR_CT_CHECK(TYR__D0(a) == TYR__D0(b), failfn);                                                \
    TYR_CT_CHECK(TYR__D1(a) == TYR__D1(b), failfn);                                                \
    TYR_CT_CHECK(TYR__D2(a) == TYR__D2(b), failfn);                                                \
    TYR_CT_CHECK(TYR__D3(a) == TYR__D3(b), failfn);                                                \
    TYR_CT_CHECK(TYR__D4(a) == TYR__D4(b), failfn);                                                \
    TYR_CT_CHECK(TYR__D5(a) == TYR__D5(b), failfn);                                                \
  } while (0)

/* A typed op of one handle whose result has the operand's type. */
#define TYR_TYPED_UNARY(name, call, a)                                                             \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, name, "x", tyr__a);                                   \
    (__typeof__(tyr__a))(tyr__ea ? call : NULL);                                                   \
  })

/* A typed op of two same-shape handles whose result has their type. */
#define TYR_TYPED_SAME2(name, failfn, call, a, b)                                                  \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    TYR_CT_SAME_SHAPE(tyr__a, tyr__b, failfn);                                                     \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, name, "a", tyr__a);                                   \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, name, "b", tyr__b) : NULL;                  \
    (__typeof__(tyr__a))(tyr__eb ? call : NULL);                                                   \
  })

#endif
