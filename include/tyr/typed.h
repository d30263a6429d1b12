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
 * tools/tyr-cc prints these types back as tyr_T(32, 768) in diagnostics.
 *
 * Giving a handle of one shape where another is expected is an
 * incompatible-pointer-types diagnostic, which this header makes an error.
 * Each typed op is a macro that computes its result type from its operands'
 * types and checks its shape rule when the program is compiled if the
 * compiler can decide it (a static assertion when the dims are constants,
 * so that the op's message comes before any type mismatch the broken rule
 * causes; a call to a function declared __attribute__((error(msg))) that
 * survives only when the rule is broken, when only the optimizer can
 * decide), and otherwise at run time at the call, naming file, line, op and
 * both shapes.  Every typed call also passes the dims its operands' types
 * claim, so a handle whose type does not match its tensor is caught at its
 * next use (and the message names the line that made the tensor).
 *
 * Each macro evaluates each of its handle arguments exactly once.  Dims in
 * the typed layer must be positive and free of side effects (they are
 * evaluated more than once).  The erased layer (tyr_tensor *) has no such
 * limits.  Requires GCC >= 10 or Clang >= 14.
 *
 * ---- How to write a typed op ---------------------------------------------
 *  1. Messages: one per rule, starting with the op's own name, defined as a
 *     macro <failfn>_msg next to the failing function:
 *         #define tyr__ct_foo_msg "tyr_foo: w must be [C] for x [..., C]"
 *         TYR_CT_ERROR(tyr__ct_foo, tyr__ct_foo_msg);
 *     Never share a failfn between two public ops (tyr_eq and tyr_lt each
 *     get their own), so the message names the op the user called.
 *  2. The macro is a statement expression that binds every handle argument
 *     once:  __auto_type tyr__a = (x);  and uses only the locals after that
 *     (never __typeof__(x), sizeof or tyr_dim on the argument itself: with
 *     run-time dims those evaluate it again).
 *  3. Rules with TYR_RULE(cond, failfn) (or TYR_RULE_SAME_SHAPE /
 *     TYR_RULE_RANK), which need failfn##_msg; TYR_CT_CHECK is the older
 *     optimizer-only form, whose message another error can hide.
 *  4. tyr_site tyr__s = TYR_SITE; then TYR__CLAIM(tyr__s, "tyr_foo", "x",
 *     tyr__a) for every handle operand (NULL stops), including optional
 *     ones (TYR__OPTIONAL, TYR__CLAIM_OPT) and masks: no operand may be an
 *     unchecked erased tensor.
 *  5. The result: TYR_RESULT(type, tyr__s, "tyr_foo", call): the cast to
 *     the result type computed from the locals' types, and a stamp of the
 *     op and call site on the tensor, so that a handle later found to
 *     disagree with its type (a variable declared with another shape)
 *     names this line.
 *  6. Tests: a must-fail snippet in tests/compile/fail per rule (// expect:
 *     the op's name and message), one whose result goes into a wrongly
 *     declared variable, must-pass coverage with constant, run-time and
 *     mixed dims in tests/compile/pass, and the op in
 *     tests/typed/test_typed_once.c (each argument evaluated once).
 *  Also: messages without apostrophes (gcc prints them as \' in static
 *  assertions); dims of locals read with TYR__DIMN / TYR__D0..5 (tyr_dim
 *  range-checks, for users); macro parameters not named like a struct
 *  field the body uses.  Example, x [..., C] and w [C] -> x's type (one
 *  macro, line continuations left out):
 *    #define tyr__ct_foo_msg "tyr_foo: w must be [C] for x [..., C]"
 *    TYR_CT_ERROR(tyr__ct_foo, tyr__ct_foo_msg);
 *    #define tyr_foo(x, w) ({
 *      __auto_type tyr__a = (x);
 *      __auto_type tyr__w = (w);
 *      TYR_RULE_RANK(tyr__w, 1, tyr__ct_foo);
 *      TYR_RULE(TYR__D0(tyr__w) == TYR__DIMN(tyr__a, -1), tyr__ct_foo);
 *      tyr_site tyr__s = TYR_SITE;
 *      tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, "tyr_foo", "x", tyr__a);
 *      tyr_tensor *tyr__ew =
 *          tyr__ea ? TYR__CLAIM(tyr__s, "tyr_foo", "w", tyr__w) : NULL;
 *      TYR_RESULT(__typeof__(tyr__a), tyr__s, "tyr_foo",
 *                 tyr__ew ? tyr_foo_at(tyr__s, tyr__ea, tyr__ew) : NULL); })
 *  TYR_TYPED_UNARY and TYR_TYPED_SAME2 do all of this for the two common
 *  shapes of op. */
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
/* Dim i of a shaped handle (negative i counts from the end).  A constant
 * when i and the dim are constants.  i outside the rank fails the build
 * when i is a constant, and stops at run time (naming the call) when not.
 * p is evaluated when its dims are run-time values: pass a variable. */
#define tyr_dim(p, i)                                                                              \
  __builtin_choose_expr(__builtin_constant_p(i), TYR__DIM_CT(p, TYR__CONST_OR0(i)),                \
                        TYR__DIM_RT(p, i))
#define TYR__CONST_OR0(i) __builtin_choose_expr(__builtin_constant_p(i), (i), 0)
#define TYR__DIM_IN_RANK(p, i) ((i) >= -tyr_rank(p) && (i) < tyr_rank(p))
#ifdef __cplusplus /* no types in sizeof in C++: the range is checked in C */
#define TYR__DIM_CT(p, i) ((int64_t)TYR__DIMN(p, i))
#else
#define TYR__DIM_CT(p, i)                                                                          \
  ((int64_t)(TYR__DIMN(p, i) + 0 * sizeof(struct {                                                 \
                                 _Static_assert(                                                   \
                                     !TYR__CT_BAD(TYR__DIM_IN_RANK(p, i)),                         \
                                     "tyr_dim: the dim index is outside the rank of the handle");  \
                                 char tyr__c;                                                      \
                               })))
#endif
#define TYR__DIM_RT(p, i)                                                                          \
  tyr_dim_at(TYR_SITE, tyr_rank(p), (const int64_t[]){TYR__DIMS_OF(p)}, (int)(i))
/* Dim i of p without a range check (i a constant; past the rank reads 1):
 * for the typed ops' own use, on their locals. */
#define TYR__DIMN(p, i) TYR__DIM(p, TYR__NORM(p, i))
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
/* Fails the build (through failfn) when the optimizer finds cond constant
 * and false.  Older form: another error in the statement can hide it. */
#define TYR_CT_CHECK(cond, failfn)                                                                 \
  do {                                                                                             \
    if (__builtin_constant_p(cond) && !(cond)) failfn();                                           \
  } while (0)
/* 1 when cond is an integer constant expression and false, else 0. */
#define TYR__CT_BAD(cond) __builtin_choose_expr(__builtin_constant_p(cond), !(cond), 0)
/* A shape rule: when cond is an integer constant expression and false, a
 * static assertion fails with failfn##_msg in the front end (before any
 * type mismatch that the broken rule causes, so clang and gcc both show
 * it); otherwise when the optimizer decides it, failfn fails the build.
 * Needs `#define failfn##_msg "tyr_op: ..."` next to TYR_CT_ERROR. */
#define TYR_RULE(cond, failfn) TYR__RULE(cond, failfn, failfn##_msg)
#define TYR__RULE(cond, failfn, msg)                                                               \
  do {                                                                                             \
    enum { tyr__rule_ok = !TYR__CT_BAD(cond) };                                                    \
    _Static_assert(tyr__rule_ok, msg);                                                             \
    TYR_CT_CHECK(cond, failfn);                                                                    \
  } while (0)
/* A compile-time check for a condition on ranks (always constant). */
#define TYR_CT_RANK(p, r, failfn) TYR_CT_CHECK(tyr_rank(p) == (r), failfn)
#define TYR_RULE_RANK(p, r, failfn) TYR_RULE(tyr_rank(p) == (r), failfn)

/* The erased tensor behind a shaped handle, after checking that its real
 * shape is the one its type claims (NULL, with an error raised, if not). */
#define TYR__CLAIM(site, op, arg, p)                                                               \
  tyr_check_shape_at((site), (op), (arg), (tyr_tensor *)(p), tyr_rank(p),                          \
                     (const int64_t[]){TYR__DIMS_OF(p)})
/* The result of a typed op: call's tensor (or NULL) cast to type T, the
 * op's name and call site stamped on it (see tyr_result_at). */
#define TYR_RESULT(T, site, op, call) ((T)tyr_result_at((site), (op), (call)))

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
/* A typed expression checked against the shape it is declared with: the
 * form that names the op and both shapes when a result lands in a variable
 * of another shape, at the faulty line (at compile time when the dims are
 * constants, at run time otherwise):
 *   tyr_T(B, T, C) y = tyr_as(tyr_linear(x, w), B, T, C);              */
#define tyr_as(p, ...)                                                                             \
  ({                                                                                               \
    __auto_type tyr__p = (p);                                                                      \
    typedef tyr_T(__VA_ARGS__) tyr__as_t;                                                          \
    enum {                                                                                         \
      tyr__as_ok = tyr_rank(tyr__p) == TYR__NARGS(__VA_ARGS__) &&                                  \
                   !TYR__CT_BAD(TYR__D0(tyr__p) == TYR__D0((tyr__as_t)0)) &&                       \
                   !TYR__CT_BAD(TYR__D1(tyr__p) == TYR__D1((tyr__as_t)0)) &&                       \
                   !TYR__CT_BAD(TYR__D2(tyr__p) == TYR__D2((tyr__as_t)0)) &&                       \
                   !TYR__CT_BAD(TYR__D3(tyr__p) == TYR__D3((tyr__as_t)0)) &&                       \
                   !TYR__CT_BAD(TYR__D4(tyr__p) == TYR__D4((tyr__as_t)0)) &&                       \
                   !TYR__CT_BAD(TYR__D5(tyr__p) == TYR__D5((tyr__as_t)0))                          \
    };                                                                                             \
    _Static_assert(tyr__as_ok, "tyr_as: the shape of `" #p "` differs from the declared "          \
                               "tyr_T(" #__VA_ARGS__ ")");                                         \
    (tyr__as_t) tyr_check_shape_at(TYR_SITE, "tyr_as", #p, (tyr_tensor *)tyr__p,                   \
                                   TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__});       \
  })
/* The erased tensor behind a shaped handle (no check). */
#define tyr_erase(p) ((tyr_tensor *)(p))
/* Shaped versions of the lifetime and autograd calls: each keeps the type
 * and evaluates its argument once. */
#define TYR__KEEP_TYPE(p, call)                                                                    \
  ({                                                                                               \
    __auto_type tyr__p = (p);                                                                      \
    tyr_tensor *tyr__e = tyr_erase(tyr__p);                                                        \
    (__typeof__(tyr__p))(call);                                                                    \
  })
#define tyr_keep(p) TYR__KEEP_TYPE(p, tyr_keep_e(tyr__e))
#define tyr_free(p) tyr_tensor_free(tyr_erase(p))
#define tyr_retain(p) TYR__KEEP_TYPE(p, tyr_tensor_retain(tyr__e))
#define tyr_requires_grad(p) TYR__KEEP_TYPE(p, tyr_requires_grad_at(TYR_SITE, tyr__e, true))
#define tyr_grad(p) TYR__KEEP_TYPE(p, tyr_grad_e(tyr__e))
#define tyr_zero_grad(p) tyr_zero_grad_e(tyr_erase(p))
#define tyr_detach(p) TYR__KEEP_TYPE(p, tyr_detach_at(TYR_SITE, tyr__e))
#define tyr_backward(loss) tyr_backward_at(TYR_SITE, tyr_erase(loss))
/* The value of a one-element tensor (a loss): its type must claim one
 * element (tyr_T0, tyr_T(1), ...). */
#define tyr__ct_item_msg "tyr_item: the type of the handle is not a scalar (more than one element)"
TYR_CT_ERROR(tyr__ct_item, tyr__ct_item_msg);
#define tyr_item(p)                                                                                \
  ({                                                                                               \
    __auto_type tyr__p = (p);                                                                      \
    TYR_RULE(tyr_numel_of(tyr__p) == 1, tyr__ct_item);                                             \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__e = TYR__CLAIM(tyr__s, "tyr_item", "x", tyr__p);                              \
    tyr__e ? tyr_item_at(tyr__s, tyr__e) : 0.0;                                                    \
  })
/* Element access: tyr_get(x, i, j) for a [m, n] handle: one index per dim
 * (checked when compiled); each index in range (checked at run time). */
#define tyr__ct_get_msg "tyr_get: the number of indices differs from the rank of the handle"
#define tyr__ct_set_msg "tyr_set: the number of indices differs from the rank of the handle"
TYR_CT_ERROR(tyr__ct_get, tyr__ct_get_msg);
TYR_CT_ERROR(tyr__ct_set, tyr__ct_set_msg);
#define tyr_get(p, ...)                                                                            \
  ({                                                                                               \
    __auto_type tyr__p = (p);                                                                      \
    TYR_RULE(TYR__NARGS(__VA_ARGS__) == tyr_rank(tyr__p), tyr__ct_get);                            \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__e = TYR__CLAIM(tyr__s, "tyr_get", "x", tyr__p);                               \
    tyr__e ? tyr_get_at(tyr__s, tyr__e, (const int64_t[]){__VA_ARGS__}) : 0.0;                     \
  })
#define tyr_set(p, v, ...)                                                                         \
  ({                                                                                               \
    __auto_type tyr__p = (p);                                                                      \
    double tyr__v = (v);                                                                           \
    TYR_RULE(TYR__NARGS(__VA_ARGS__) == tyr_rank(tyr__p), tyr__ct_set);                            \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__e = TYR__CLAIM(tyr__s, "tyr_set", "x", tyr__p);                               \
    if (tyr__e) tyr_set_at(tyr__s, tyr__e, (const int64_t[]){__VA_ARGS__}, tyr__v);                \
    (void)0;                                                                                       \
  })

/* ---- building blocks of typed ops ---------------------------------------- */
/* Checks every dim and the rank of two handles for equality. */
#define TYR__SAME_SHAPE_(a, b, CHECK, failfn)                                                      \
  do {                                                                                             \
    CHECK(tyr_rank(a) == tyr_rank(b), failfn);                                                     \
    CHECK(TYR__D0(a) == TYR__D0(b), failfn);                                                       \
    CHECK(TYR__D1(a) == TYR__D1(b), failfn);                                                       \
    CHECK(TYR__D2(a) == TYR__D2(b), failfn);                                                       \
    CHECK(TYR__D3(a) == TYR__D3(b), failfn);                                                       \
    CHECK(TYR__D4(a) == TYR__D4(b), failfn);                                                       \
    CHECK(TYR__D5(a) == TYR__D5(b), failfn);                                                       \
  } while (0)
#define TYR_CT_SAME_SHAPE(a, b, failfn) TYR__SAME_SHAPE_(a, b, TYR_CT_CHECK, failfn)
/* The same through TYR_RULE (needs failfn##_msg): one static assertion
 * over every dim that is a constant in both, then the optimizer's checks. */
#define TYR_RULE_SAME_SHAPE(a, b, failfn)                                                          \
  do {                                                                                             \
    enum {                                                                                         \
      tyr__same_ok =                                                                               \
          !(TYR__CT_BAD(tyr_rank(a) == tyr_rank(b)) || TYR__CT_BAD(TYR__D0(a) == TYR__D0(b)) ||    \
            TYR__CT_BAD(TYR__D1(a) == TYR__D1(b)) || TYR__CT_BAD(TYR__D2(a) == TYR__D2(b)) ||      \
            TYR__CT_BAD(TYR__D3(a) == TYR__D3(b)) || TYR__CT_BAD(TYR__D4(a) == TYR__D4(b)) ||      \
            TYR__CT_BAD(TYR__D5(a) == TYR__D5(b)))                                                 \
    };                                                                                             \
    _Static_assert(tyr__same_ok, failfn##_msg);                                                    \
    TYR_CT_SAME_SHAPE(a, b, failfn);                                                               \
  } while (0)

/* A typed op of one handle whose result has the operand's type. */
#define TYR_TYPED_UNARY(name, call, a)                                                             \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, name, "x", tyr__a);                                   \
    TYR_RESULT(__typeof__(tyr__a), tyr__s, name, tyr__ea ? call : NULL);                           \
  })

/* A typed op of two same-shape handles whose result has their type. */
#define TYR_TYPED_SAME2(name, failfn, call, a, b)                                                  \
  ({                                                                                               \
    __auto_type tyr__a = (a);                                                                      \
    __auto_type tyr__b = (b);                                                                      \
    TYR_RULE_SAME_SHAPE(tyr__a, tyr__b, failfn);                                                   \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ea = TYR__CLAIM(tyr__s, name, "a", tyr__a);                                   \
    tyr_tensor *tyr__eb = tyr__ea ? TYR__CLAIM(tyr__s, name, "b", tyr__b) : NULL;                  \
    TYR_RESULT(__typeof__(tyr__a), tyr__s, name, tyr__eb ? call : NULL);                           \
  })

#endif
