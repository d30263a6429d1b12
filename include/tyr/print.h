/* tyr/print.h - printing tensors the way PyTorch does.
 *
 *     tyr_print(x);
 *     tensor([[ 0.1940,  2.1614, -0.1721],
 *             [ 0.8491, -1.9244,  0.6530]], dtype=f32, device=cpu, shape=[2, 3])
 *
 * Floats share one format chosen from the values: integers as "3.", fixed
 * point with 4 decimals, or scientific notation ("1.2346e+05") when the
 * largest and smallest non-zero magnitudes are more than 1000 apart or out
 * of [1e-4, 1e8); nan and inf as such.  Integers and bools print as they
 * are.  Tensors of more than 1000 elements are summarised: the first and
 * last 3 entries of each dim with "..." between.  A tensor that requires a
 * gradient says so.  CUDA tensors are copied to the host to be printed; the
 * tensor itself is never changed and no graph is recorded. */
#ifndef TYR_PRINT_H
#define TYR_PRINT_H

#include <stdio.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The text tyr_print prints, without the newline: a new string the caller
 * frees with free(); NULL (after raising) on error. */
char *tyr_to_string_at(tyr_site s, const tyr_tensor *t);
/* Writes the text and a newline to f; 0 or the status. */
int tyr_fprint_at(tyr_site s, FILE *f, const tyr_tensor *t);

/* For erased and shaped handles alike. */
#define tyr_to_string(t) tyr_to_string_at(TYR_SITE, (const tyr_tensor *)(t))
#define tyr_print(t) tyr_fprint_at(TYR_SITE, stdout, (const tyr_tensor *)(t))
#define tyr_fprint(f, t) tyr_fprint_at(TYR_SITE, (f), (const tyr_tensor *)(t))

#ifdef __cplusplus
}
#endif
#endif
