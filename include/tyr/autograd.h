/* tyr/autograd.h - reverse-mode automatic differentiation (erased layer).
 * The typed forms live in <tyr/typed.h>. */
#ifndef TYR_AUTOGRAD_H
#define TYR_AUTOGRAD_H
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a leaf tensor as needing a gradient; returns t. */
tyr_tensor *tyr_requires_grad_at(tyr_site s, tyr_tensor *t, bool on);
#define tyr_requires_grad_e(t, on) tyr_requires_grad_at(TYR_SITE, (t), (on))
/* The accumulated gradient of a leaf (owned by t), or NULL. */
tyr_tensor *tyr_grad_e(const tyr_tensor *t);
/* Frees the gradient of t. */
void tyr_zero_grad_e(tyr_tensor *t);
/* Backpropagates from a one-element loss, accumulating into the .grad of
 * every leaf that requires grad, then frees the graph.  Returns 0 or the
 * error status. */
int tyr_backward_at(tyr_site s, tyr_tensor *loss);
#define tyr_backward_e(loss) tyr_backward_at(TYR_SITE, (loss))
/* Same, from any tensor with an explicit gradient of its shape. */
int tyr_backward_with_at(tyr_site s, tyr_tensor *out, tyr_tensor *grad);

/* Whether ops record the graph on this thread (on unless turned off). */
bool tyr_grad_enabled(void);
/* Returns the previous setting. */
bool tyr_set_grad_enabled(bool on);
static inline void tyr__grad_restore(bool *prev) {
  tyr_set_grad_enabled(*prev);
}
/* Turns recording off until the end of the enclosing block:
 *   { TYR_NO_GRAD; ... }
 * Like TYR_SCOPE, each use has a guard of its own name (__COUNTER__): two in
 * one block, or nested ones, compile cleanly under -Wshadow. */
#define TYR_NO_GRAD                                                                                \
  __attribute__((cleanup(tyr__grad_restore), unused)) bool TYR__CAT(tyr__nograd_, __COUNTER__) =   \
      tyr_set_grad_enabled(false)
/* Detaches t from the graph: a new tensor sharing storage that needs no grad. */
tyr_tensor *tyr_detach_at(tyr_site s, tyr_tensor *t);
#define tyr_detach_e(t) tyr_detach_at(TYR_SITE, (t))

#ifdef __cplusplus
}
#endif
#endif
