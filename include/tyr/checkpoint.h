/* tyr/checkpoint.h - training checkpoints: model parameters, optimizer
 * state, step, RNG state and free-form metadata (e.g. the config as JSON)
 * in one safetensors file, written atomically (temporary name, rename).
 *
 * Tensor names: the parameters' own names; optimizer state as
 * "optim.<param>.m" / "optim.<param>.v".  Metadata: "tyr.step",
 * "tyr.optim_step", "tyr.rng_seed", "tyr.rng_counter", and the caller's
 * keys. */
#ifndef TYR_CHECKPOINT_H
#define TYR_CHECKPOINT_H
#include "tyr/optim.h"
#include "tyr/params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_CHECKPOINT_MAX_META 32

typedef struct tyr_checkpoint_info {
  int64_t step;
  tyr_rng_state rng;
  int nmeta;
  const char *keys[TYR_CHECKPOINT_MAX_META];
  const char *values[TYR_CHECKPOINT_MAX_META];
} tyr_checkpoint_info;

/* Writes model's parameters, opt's state and info (step, info->rng as the RNG
 * state - take it with tyr_rng_get_state() - and the metadata) to path
 * atomically.  info NULL: step 0 and the current RNG state.  0 or the status. */
/* opt may be NULL (a model-only file). */
int tyr_checkpoint_save_at(tyr_site s, const char *path, tyr_params *model, tyr_optim *opt,
                           const tyr_checkpoint_info *info);
#define tyr_checkpoint_save(path, model, opt, info)                                                \
  tyr_checkpoint_save_at(TYR_SITE, (path), (model), (opt), (info))

/* Opened checkpoint, for reading metadata before loading. */
typedef struct tyr_safetensors tyr_checkpoint;
/* Opens and checks the file (the caller closes it with tyr_checkpoint_close);
 * NULL after raising. */
tyr_checkpoint *tyr_checkpoint_open_at(tyr_site s, const char *path);
#define tyr_checkpoint_open(path) tyr_checkpoint_open_at(TYR_SITE, (path))
/* The metadata value of key (owned by c, valid until close), or NULL. */
const char *tyr_checkpoint_meta(const tyr_checkpoint *c, const char *key);
/* Checks that every parameter (and optimizer state when opt is given) is in
 * the file with the same dtype and shape, then loads them all, the step and
 * the RNG state (info may be NULL; the global RNG is restored).  On a
 * mismatch nothing is changed and the error names the file and tensor. */
int tyr_checkpoint_load_at(tyr_site s, tyr_checkpoint *c, tyr_params *model, tyr_optim *opt,
                           tyr_checkpoint_info *info);
#define tyr_checkpoint_load(c, model, opt, info)                                                   \
  tyr_checkpoint_load_at(TYR_SITE, (c), (model), (opt), (info))
/* Loads the parameters only (checked first as above): the RNG state, the
 * step and any optimizer state in the file are left alone, so that loading
 * weights to evaluate or fine-tune does not change the program's random
 * stream (tyr_checkpoint_load, which restores it, is for resuming). */
int tyr_checkpoint_load_weights_at(tyr_site s, tyr_checkpoint *c, tyr_params *model);
#define tyr_checkpoint_load_weights(c, model) tyr_checkpoint_load_weights_at(TYR_SITE, (c), (model))
/* Closes c; tensors loaded from it stay valid.  NULL is ignored. */
void tyr_checkpoint_close(tyr_checkpoint *c);

#ifdef __cplusplus
}
#endif
#endif
