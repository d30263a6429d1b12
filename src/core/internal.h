/* Internal helpers shared by the run time (not installed). */
#ifndef TYR_CORE_INTERNAL_H
#define TYR_CORE_INTERNAL_H
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

void tyr__scope_track(tyr_tensor *t);
/* checks.c: a tensor whose last reference went (quarantined in checked
 * mode), and the count of tensors made outside any scope */
void tyr__tensor_retire(tyr_tensor *t);
void tyr__unscoped_add(tyr_tensor *t);
void tyr__unscoped_remove(tyr_tensor *t);
/* Frees t's autograd state (grad, graph node). */
void tyr__autograd_release(tyr_tensor *t);
/* Errors raised on this thread so far: a change across a call means it raised. */
uint64_t tyr__error_count(void);
double tyr__load_f64(const void *p, tyr_dtype dt);
void tyr__store_f64(void *p, tyr_dtype dt, double v);

/* Recycled small blocks (src/core/recycle.c): one class per block size.
 * tyr__rc_alloc returns uninitialised memory of the class's size. */
typedef enum tyr_rc_class {
  TYR_RC_TENSOR,  /* sizeof(tyr_tensor) */
  TYR_RC_STORAGE, /* sizeof(tyr_storage) */
  TYR_RC_NODE,    /* sizeof(struct tyr_node) */
  TYR_RC_DATA64,  /* tensor data of at most 64 bytes */
  TYR_RC_COUNT
} tyr_rc_class;
void *tyr__rc_alloc(tyr_rc_class c, size_t size);
void tyr__rc_free(tyr_rc_class c, void *p);

#define TYR_UNUSED(x) (void)(x)
#ifdef __cplusplus
}
#endif
#endif
