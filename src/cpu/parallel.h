/* Loops that enter OpenMP only when they are big enough.
 *
 * `#pragma omp parallel for if (cond)` still enters the OpenMP run time
 * when cond is false: libgomp makes a one-thread team and ends it with a
 * barrier that wakes waiters with a futex system call.  On a virtual
 * machine that costs microseconds, which dominated the time of every op
 * on a small tensor.  TYR_PAR_FOR runs the loop without OpenMP unless
 * cond holds:
 *
 *     TYR_PAR_FOR(n > PAR_THRESHOLD, "omp parallel for simd",
 *                 for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];);
 */
#ifndef TYR_CPU_PARALLEL_H
#define TYR_CPU_PARALLEL_H

#define TYR_PAR_FOR(cond, pragma, ...)                                                             \
  do {                                                                                             \
    if (cond) {                                                                                    \
      _Pragma(pragma) __VA_ARGS__                                                                  \
    } else {                                                                                       \
      __VA_ARGS__                                                                                  \
    }                                                                                              \
  } while (0)

/* The same for a loop that must vectorise: "omp parallel for simd" when
 * cond holds and "omp simd" when it does not.  The simd pragma makes gcc
 * vectorise loops whose cost model it would otherwise decline: gcc 13
 * leaves the loops of tanh, tanh GELU, SiLU and exact GELU's derivative
 * scalar (16-19 ns an element on an Intel Xeon, against about 1 ns
 * vectorised), which gcc 12 vectorises without it.  Only for loops whose iterations are
 * independent (an output element from the inputs' same element). */
#define TYR_PAR_FOR_SIMD(cond, ...)                                                                \
  do {                                                                                             \
    if (cond) {                                                                                    \
      _Pragma("omp parallel for simd") __VA_ARGS__                                                 \
    } else {                                                                                       \
      _Pragma("omp simd") __VA_ARGS__                                                              \
    }                                                                                              \
  } while (0)

#endif
