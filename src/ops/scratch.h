/* Helpers for ops built from other ops (reductions and layout):
 *
 * - a scratch region: a private scope with grad mode off, so that the
 *   intermediate tensors of a composite forward pass are released at its
 *   end and nothing is recorded; the one result kept leaves the region in
 *   the caller's scope, where an ordinary op result would be;
 * - tyr__drop: release a temporary that an op made, also when a graph node
 *   has retained it (a plain tyr_tensor_free of a scoped temporary would
 *   leave the scope holding a reference that the node now owns). */
#ifndef TYR_OPS_SCRATCH_H
#define TYR_OPS_SCRATCH_H
#include "ops/common.h"

typedef struct {
  bool prev_grad;
  bool open;
} tyr__scratch;

/* Opens the region; false (after the scope call raised) when it cannot. */
static inline bool tyr__scratch_begin(tyr__scratch *sc) {
  int depth = tyr_scope_depth();
  tyr_scope_begin();
  sc->open = tyr_scope_depth() == depth + 1;
  if (sc->open) sc->prev_grad = tyr_set_grad_enabled(false);
  return sc->open;
}

/* Closes the region, keeping result (which may be NULL) and handing it to
 * the caller's scope.  Returns result. */
static inline tyr_tensor *tyr__scratch_end(tyr__scratch *sc, tyr_tensor *result) {
  if (!sc->open) return NULL;
  if (result) tyr_keep_e(result);
  tyr_set_grad_enabled(sc->prev_grad);
  tyr_scope_end();
  sc->open = false;
  if (result) tyr__scope_track(result);
  return result;
}

/* Drops the op's own reference to a temporary it made. */
static inline void tyr__drop(tyr_tensor *t) {
  if (t) tyr_tensor_free(tyr_keep_e(t));
}
#endif
