/* tyr/cxx.h - the GNU C the typed layer is written in, spelled for C++.
 *
 * Included by <tyr/typed.h>; nothing to include by hand.  The headers
 * compile as C++17 (g++ and clang++, -std=c++17 or gnu++17): the erased
 * API is plain C behind extern "C", and the typed macros use statement
 * expressions and __typeof__, which both C++ compilers accept.  clang++
 * also accepts __auto_type, __builtin_choose_expr and _Static_assert;
 * g++ gets them here as auto, a conditional expression (all the typed
 * layer's choices are between integers) and static_assert. */
#ifndef TYR_CXX_H
#define TYR_CXX_H
#if defined(__cplusplus) && !defined(__clang__)
#define __auto_type auto
#define __builtin_choose_expr(c, a, b) ((c) ? (a) : (b))
#define _Static_assert static_assert
#endif

#ifdef __cplusplus
#include <cstddef>
/* TYR__OPTIONAL(p, like) (<tyr/ops_nn.h>) without _Generic: nullptr (or
 * 0) gives a null handle of type like, a handle stays itself.  In C++ pass
 * nullptr for an absent optional operand: g++ warns about NULL there. */
extern "C++" {
template <class Like, class P>
inline P *tyr__optional(P *p) {
  return p;
}
template <class Like>
inline Like tyr__optional(void *) {
  return (Like)0;
}
template <class Like>
inline Like tyr__optional(std::nullptr_t) {
  return (Like)0;
}
template <class Like>
inline Like tyr__optional(int) {
  return (Like)0;
}
template <class Like>
inline Like tyr__optional(long) {
  return (Like)0;
}
}
#endif
#endif
