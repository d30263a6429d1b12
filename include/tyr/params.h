/* tyr/params.h - a named collection of parameters (dotted names such as
 * "blocks.3.attn.qkv.weight"): map, zip and fold over all of them, count,
 * zero_grad, requires_grad.  Optimizers, checkpoints, clipping and
 * data-parallel all-reduce work on a collection. */
#ifndef TYR_PARAMS_H
#define TYR_PARAMS_H
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_PARAM_NAME_MAX 128

typedef struct tyr_param {
  char name[TYR_PARAM_NAME_MAX];
  tyr_tensor *t; /* owned by the collection */
  int group;     /* optimizer parameter group */
} tyr_param;

typedef struct tyr_params {
  tyr_param *items;
  int n, cap;
} tyr_params;

/* An empty collection. */
void tyr_params_init(tyr_params *ps);
/* Frees every tensor of the collection (and their gradients). */
void tyr_params_free(tyr_params *ps);
/* Adds t under name, taking ownership (t leaves any scope), marks it as
 * requiring grad when it is floating; returns t, or NULL after raising
 * (duplicate or over-long name). */
tyr_tensor *tyr_params_add_at(tyr_site s, tyr_params *ps, const char *name, tyr_tensor *t);
#define tyr_params_add(ps, name, t) tyr_params_add_at(TYR_SITE, (ps), (name), (t))
/* printf-style name */
tyr_tensor *tyr_params_addf_at(tyr_site s, tyr_params *ps, tyr_tensor *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define tyr_params_addf(ps, t, ...) tyr_params_addf_at(TYR_SITE, (ps), (t), __VA_ARGS__)
/* Looks a parameter up by name; NULL if absent. */
tyr_param *tyr_params_find(const tyr_params *ps, const char *name);
/* Total number of scalars. */
int64_t tyr_params_numel(const tyr_params *ps);
/* Frees every gradient; marks every floating tensor as (not) requiring grad. */
void tyr_params_zero_grad(tyr_params *ps);
void tyr_params_requires_grad(tyr_params *ps, bool on);

typedef void (*tyr_param_fn)(tyr_param *p, void *ctx);
typedef void (*tyr_param_zip_fn)(tyr_param *a, tyr_param *b, void *ctx);
typedef double (*tyr_param_fold_fn)(double acc, tyr_param *p, void *ctx);
/* Calls fn on every parameter in the order they were added. */
void tyr_params_map(tyr_params *ps, tyr_param_fn fn, void *ctx);
/* Calls fn on pairs with equal names; raises if the two collections differ
 * in names or shapes. Returns 0 or the error status. */
int tyr_params_zip_at(tyr_site s, tyr_params *a, tyr_params *b, tyr_param_zip_fn fn, void *ctx);
#define tyr_params_zip(a, b, fn, ctx) tyr_params_zip_at(TYR_SITE, (a), (b), (fn), (ctx))
/* acc = fn(acc, p, ctx) over the parameters from init; returns acc. */
double tyr_params_fold(tyr_params *ps, tyr_param_fold_fn fn, double init, void *ctx);

/* Global L2 norm of all gradients (missing gradients count as zero). */
double tyr_params_grad_norm(tyr_params *ps);
/* Scales all gradients so that their global norm is at most max_norm;
 * returns the norm before clipping. */
double tyr_params_clip_grad_norm(tyr_params *ps, double max_norm);
/* The same clipping without reading the norm back to the host (so that it
 * can be captured in a CUDA graph): the norm is computed, and the factor
 * max_norm / (norm + 1e-6) applied when the norm is finite and above
 * max_norm (max_norm > 0), on the gradients' device.  Returns the norm
 * before clipping as an f64 scalar tensor on that device (read it with
 * tyr_item after the step, or after a replay), or NULL after raising.  The
 * gradients, the norm and the clipped values are those of
 * tyr_params_clip_grad_norm, bit for bit.  Without gradients the norm is
 * 0 (on the first parameter's device, or the CPU). */
tyr_tensor *tyr_params_clip_grad_norm_dev_at(tyr_site s, tyr_params *ps, double max_norm);
#define tyr_params_clip_grad_norm_dev(ps, max_norm)                                                \
  tyr_params_clip_grad_norm_dev_at(TYR_SITE, (ps), (max_norm))

#ifdef __cplusplus
}
#endif
#endif
