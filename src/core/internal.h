/* Internal helpers shared by the run time (not installed). */
#ifndef TYR_CORE_INTERNAL_H
#define TYR_CORE_INTERNAL_H
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

void tyr__scope_track(tyr_tensor *t);
/* Frees t's autograd state (grad, graph node). */
void tyr__autograd_release(tyr_tensor *t);
double tyr__load_f64(const void *p, tyr_dtype dt);
void tyr__store_f64(void *p, tyr_dtype dt, double v);

#define TYR_UNUSED(x) (void)(x)
#ifdef __cplusplus
}
#endif
#endif
