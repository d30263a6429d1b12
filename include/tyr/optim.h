/* tyr/optim.h - optimizers over a parameter collection (SGD with momentum
 * and Nesterov, AdamW with decoupled weight decay and parameter groups) and
 * learning-rate schedules. */
#ifndef TYR_OPTIM_H
#define TYR_OPTIM_H
#include "tyr/params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_OPTIM_MAX_GROUPS 8

/* A parameter group: its learning rate is lr_scale * the optimizer's lr. */
typedef struct tyr_param_group {
  double lr_scale;
  double weight_decay;
} tyr_param_group;

typedef enum tyr_optim_kind { TYR_OPTIM_SGD, TYR_OPTIM_ADAMW } tyr_optim_kind;

typedef struct tyr_optim_config {
  tyr_optim_kind kind;
  double lr;
  double beta1, beta2, eps;   /* AdamW */
  double momentum, dampening; /* SGD */
  bool nesterov;
  int ngroups; /* 0: one group with weight_decay below */
  tyr_param_group groups[TYR_OPTIM_MAX_GROUPS];
  double weight_decay;
} tyr_optim_config;

/* Defaults: AdamW betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
tyr_optim_config tyr_adamw_config(double lr);
tyr_optim_config tyr_sgd_config(double lr, double momentum);

typedef struct tyr_optim {
  tyr_optim_config cfg;
  tyr_params *params;
  int64_t step;
  /* state per parameter, in the collection's order: AdamW m and v, SGD
   * momentum buffer (in v) — f32, on the parameter's device */
  tyr_tensor **m, **v;
  int n;
  /* capturable mode (tyr_optim_set_capturable) */
  bool capturable;
  double lr_now;     /* the rate of the step prepared last */
  tyr_tensor *hyper; /* f64 [4 * ngroups] on the parameters' GPU: the step's scalars */
} tyr_optim;

/* The optimizer keeps a pointer to ps, which must outlive it. */
int tyr_optim_init_at(tyr_site s, tyr_optim *opt, tyr_params *ps, tyr_optim_config cfg);
#define tyr_optim_init(opt, ps, cfg) tyr_optim_init_at(TYR_SITE, (opt), (ps), (cfg))
/* Frees the optimizer's state (not the parameters). */
void tyr_optim_free(tyr_optim *opt);
/* Pass as lr to tyr_optim_step / tyr_optim_prepare_step to use the rate the
 * optimizer was configured with (any negative value means the same). */
#define TYR_LR_CONFIGURED (-1.0)
/* One update with the current gradients (parameters without a gradient
 * are skipped); lr overrides the configured rate when >= 0, and
 * TYR_LR_CONFIGURED uses the configured one. */
int tyr_optim_step_at(tyr_site s, tyr_optim *opt, double lr);
#define tyr_optim_step(opt, lr) tyr_optim_step_at(TYR_SITE, (opt), (lr))
/* Frees the gradients of the optimizer's parameters. */
void tyr_optim_zero_grad(tyr_optim *opt);

/* Capturable mode (AdamW only), for a step captured in a CUDA graph (see
 * <tyr/cuda.h>): the kernels read the step's learning rate and bias
 * corrections from a small device buffer instead of taking them as
 * arguments, so one captured step serves every step.  The host half of a
 * step, tyr_optim_prepare_step, advances the step count and writes the
 * buffer (an ordinary asynchronous upload, outside the graph); call it
 * before each replay.  Outside a capture tyr_optim_step prepares the step
 * itself, so eager steps work as before; during a capture it only records
 * the kernels (its lr argument is ignored: the rate comes from
 * tyr_optim_prepare_step).  The arithmetic is that of the ordinary step, bit
 * for bit.  On the CPU the mode changes nothing.  Parameters must share one
 * device.  0, or the error status after raising. */
int tyr_optim_set_capturable_at(tyr_site s, tyr_optim *opt, bool on);
#define tyr_optim_set_capturable(opt, on) tyr_optim_set_capturable_at(TYR_SITE, (opt), (on))
/* lr overrides the configured rate when >= 0 (TYR_LR_CONFIGURED: use it). */
int tyr_optim_prepare_step_at(tyr_site s, tyr_optim *opt, double lr);
#define tyr_optim_prepare_step(opt, lr) tyr_optim_prepare_step_at(TYR_SITE, (opt), (lr))
/* Adds the optimizer's state to ps (borrowed names "optim.<param>.m" etc.,
 * the tensors stay owned by opt) for checkpoints: see tyr_checkpoint. */
int tyr_optim_state_tensors(tyr_optim *opt, int max, const char **names, tyr_tensor **tensors,
                            char (*name_buf)[TYR_PARAM_NAME_MAX + 16]);

/* Assigns groups the usual way: group 0 (decay) for rank >= 2 parameters,
 * group 1 (no decay) for biases, norms' weights and other 1-D ones. */
void tyr_params_group_by_rank(tyr_params *ps);

/* ---- learning-rate schedules ------------------------------------------- */
typedef enum tyr_lr_kind {
  TYR_LR_CONSTANT,
  TYR_LR_WARMUP_LINEAR,          /* warmup, then linear decay to min_lr at total */
  TYR_LR_WARMUP_COSINE,          /* warmup, then cosine to min_lr at decay_steps, then min_lr */
  TYR_LR_WARMUP_PLATEAU_WARMDOWN /* warmup, constant, then linear to min_lr over the last warmdown
                                    steps */
} tyr_lr_kind;

typedef struct tyr_lr_schedule {
  tyr_lr_kind kind;
  double max_lr, min_lr;
  int64_t warmup;      /* steps of linear warmup from 0 */
  int64_t decay_steps; /* cosine: step at which min_lr is reached */
  int64_t total;       /* linear, warmdown: the last step */
  int64_t warmdown;    /* warmdown steps before total */
} tyr_lr_schedule;

/* The rate at step (0-based). */
double tyr_lr_at(const tyr_lr_schedule *sch, int64_t step);
/* "constant", "linear", "cosine", "warmdown" -> *out; false on another name. */
bool tyr_lr_kind_parse(const char *s, tyr_lr_kind *out);

#ifdef __cplusplus
}
#endif
#endif
