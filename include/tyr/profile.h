/* tyr/profile.h - where the time of a CPU training step goes.
 *
 * With the profiler on, every kernel the CPU backend runs (the entries of
 * its backend table: matmul, sdpa, layer_norm, unary gelu, binary add,
 * adamw_step_many, alloc, ...; GEMMs by which operand they read
 * transposed, "matmul aT @ b") is timed, and its wall time, call count and,
 * for GEMMs and attention, floating-point work are summed per kernel and
 * per phase: forward (everything outside the two below), backward (inside
 * tyr_backward) and optimizer (tyr_optim_step and gradient clipping).
 * Each phase's wall time less the time of its kernels is its host
 * overhead: op dispatch, shape checks, the tape, tensor structs.  Minor
 * page faults (fresh memory the kernel zeroes on first touch) are counted
 * per phase.  Kernel times include the waits of their OpenMP threads at
 * the region's end (load imbalance shows up there, not apart).
 *
 *   TYR_PROFILE=1 ./build/train_gpt --iters 50   (the table on stderr at exit)
 *
 * or from a program: tyr_profile_enable(true), tyr_profile_reset() before
 * the steps to measure, tyr_profile_print(stdout, steps) after them.  Off,
 * it costs one branch per backend lookup.  CUDA kernels are not timed
 * (they run asynchronously); CPU tensors only. */
#ifndef TYR_PROFILE_H
#define TYR_PROFILE_H
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Turns the profiler on or off; returns the previous setting.  The
 * environment variable TYR_PROFILE=1 turns it on when the program starts and
 * prints the table to stderr at exit. */
bool tyr_profile_enable(bool on);
bool tyr_profile_enabled(void);
/* Forgets everything measured so far and starts the clock again. */
void tyr_profile_reset(void);
/* Prints the table of what was measured since the last reset: per phase,
 * its wall time and kernels (ms per step, share of the phase, calls per
 * step, GFLOP/s where counted), then the host overhead and page faults.
 * steps divides the totals (steps < 1: the totals themselves, as printed
 * at exit under TYR_PROFILE=1). */
void tyr_profile_print(FILE *f, int steps);

#ifdef __cplusplus
}
#endif
#endif
