/* tyr/debug.h - checks against silent lifetime mistakes.
 *
 * Use after free.  Every tensor remembers where it was made; when a scope
 * frees it, the tensor is marked dead with the place the scope was opened.
 * Handing a dead tensor to an op (or to tyr_backward, tyr_item,
 * tyr_to_host, tyr_tensor_free) stops with
 *
 *   main.c:31: tyr_add: a is a tensor used after it was freed: made at
 *   main.c:24, freed when the scope opened at main.c:22 ended
 *
 * In checked mode freed tensor structs are held back (the most recent
 * TYR_CHECKED_QUARANTINE of them) instead of being reused at once, so that
 * the check is reliable; without it the check still fires while the memory
 * has not been reused.  Checked mode is on by default in builds without
 * NDEBUG (Debug) and off in Release; the environment variable TYR_CHECKED=1
 * or =0 decides over the default, and tyr_set_checked at run time.  Its
 * cost in a Release build is measured in docs/benchmarks.md.
 *
 * Pile-ups.  Tensors made outside any scope belong to the caller; a loop
 * that makes them without freeing them leaks.  When the number alive
 * passes a threshold (10000 by default; TYR_UNSCOPED_WARN=n, 0 turns it
 * off) one warning goes to stderr with the place that made most of them,
 * and again each time the number doubles.
 *
 * Backward twice.  tyr_backward frees the graph it ran through; a second
 * backward through it (from the same loss, or from a new result of a
 * tensor whose graph was freed) is an error naming the tensor's op, as in
 * PyTorch, rather than a silent zero gradient. */
#ifndef TYR_DEBUG_H
#define TYR_DEBUG_H
#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_CHECKED_QUARANTINE 65536

/* Turns checked mode on or off; returns the previous setting. */
bool tyr_set_checked(bool on);
bool tyr_checked(void);

/* The threshold of the pile-up warning (0: off); returns the previous one. */
int64_t tyr_set_unscoped_warning(int64_t threshold);
/* Tensors alive that were made outside any scope. */
int64_t tyr_unscoped_tensors(void);

/* True when t is a live tensor; otherwise raises TYR_ERR_STATE naming arg,
 * where t was made and where it was freed (NULL t: raises "is NULL"). */
bool tyr_tensor_check_at(tyr_site s, const char *op, const char *arg, const tyr_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
