/* tyr/muon.h - Muon (MomentUm Orthogonalized by Newton-Schulz), combined
 * with AdamW as in modded-nanogpt: Muon for the 2-D hidden matrices, AdamW
 * for embeddings, the head, gains and biases.
 *
 * A Muon step for a matrix W (rows x cols) with gradient G, following
 * torch.optim.Muon:
 *   B <- B + (1 - momentum) (G - B)                 (momentum buffer)
 *   U  = nesterov ? G + momentum (B - G) : B
 *   O  = orthogonalise(U)  (Newton-Schulz quintic or Polar Express, on
 *        U / (||U||_F * safety + eps), transposed when rows > cols)
 *   W <- W (1 - lr wd) - lr sqrt(max(1, rows/cols)) O
 * Cautious weight decay (an option) decays only the entries where O and W
 * have the same sign (where the update already moves towards zero).
 * NorMuon (an option) rescales O's rows (or columns, along the longer
 * side) by a running second moment, keeping ||O||_F.
 *
 * With a process group of several ranks, the orthogonalisations are
 * shared: matrices of one shape are dealt to the ranks in turn, each rank
 * orthogonalises its whole matrices and updates them, and an all-gather
 * per shape and round brings every rank the others' (never flat slices of
 * a matrix).  The matrices' gradients must already be averaged over ranks
 * (tyr_ddp); the momentum is kept whole on every rank (elementwise work), so
 * that a checkpoint holds it and resumes at any world size.
 *
 * The AdamW part (an AdamW config) is then sharded over the ranks
 * (DistAdam, with tyr_zero1's layout and collectives): each rank keeps the
 * moments of its slice of the AdamW parameters laid end to end, steps that
 * slice, and an all-gather brings every rank the whole parameters.  Its gradients are either
 * averaged already (tyr_ddp over every parameter; the default) or, with
 * reduce_adamw_grads, averaged by tyr_muon_step itself with a reduce-scatter
 * (tyr_ddp over m->matrices only: no gradient is reduced twice, and the
 * reduce-scatter plus all-gather move what an all-reduce would).
 * Checkpoints gather the shards into the whole state (tyr_muon_gather_adamw)
 * so that the file is that of one process. */
#ifndef TYR_MUON_H
#define TYR_MUON_H
#include "tyr/dist.h"
#include "tyr/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_muon_ortho {
  TYR_MUON_NEWTON_SCHULZ = 0, /* (a, b, c) = (3.4445, -4.7750, 2.0315), ns_steps times */
  TYR_MUON_POLAR_EXPRESS      /* five coefficient triples, divided by the safety factor */
} tyr_muon_ortho;

typedef struct tyr_muon_config {
  double lr;           /* Muon's rate (default 0.02) */
  double momentum;     /* 0.95 */
  bool nesterov;       /* true */
  double weight_decay; /* decoupled, scaled by lr (default 0) */
  bool cautious_wd;    /* decay only where update and weight share a sign */
  tyr_muon_ortho ortho;
  int ns_steps;       /* Newton-Schulz iterations (5) */
  double ns_eps;      /* added to the norm (1e-7) */
  double pe_safety;   /* Polar Express: norm scaled by (1 + pe_safety), coefficients by it (0.01) */
  tyr_dtype ns_dtype; /* TYR_BF16 (default on CUDA) or TYR_F32 (default on the CPU); 0: default */
  bool normuon;       /* NorMuon's second-moment normalisation */
  double normuon_beta2; /* 0.95 */
  /* AdamW for everything else (its lr, betas, eps and parameter groups) */
  tyr_optim_config adamw;
  /* Comma-separated name substrings that send a 2-D parameter to AdamW
   * (default "wte,wpe,embed,lm_head"); parameters of rank != 2 always go
   * to AdamW. */
  const char *adamw_names;
  /* With a group of several ranks: false (default), the AdamW parameters'
   * gradients arrive averaged (tyr_ddp over every parameter) and each rank
   * takes its shard of them; true, tyr_muon_step averages them with a
   * reduce-scatter (tyr_ddp over m->matrices only). */
  bool reduce_adamw_grads;
} tyr_muon_config;

/* Defaults as above; adamw = tyr_adamw_config(adamw_lr) with betas (0.9, 0.95). */
tyr_muon_config tyr_muon_default_config(double lr, double adamw_lr);

typedef struct tyr_muon {
  tyr_muon_config cfg;
  tyr_params *params;
  tyr_dist *pg; /* NULL: one process */
  int nmuon;
  int *muon_idx;    /* indices (in params) of the Muon matrices */
  tyr_tensor **buf; /* momentum, per Muon matrix (f32) */
  tyr_tensor **v;   /* NorMuon's second moment, per Muon matrix, or NULL */
  tyr_params rest;  /* the AdamW parameters (borrowed tensors) */
  tyr_optim adamw;  /* the AdamW part, unsharded (uninitialised when sharded) */
  int64_t step;
  tyr_params matrices;   /* the Muon matrices (borrowed tensors): what tyr_ddp must average */
  tyr_zero1 *adamw_zero; /* the AdamW part sharded over the group's ranks, or NULL */
} tyr_muon;

/* pg may be NULL (one process). */
int tyr_muon_init_at(tyr_site s, tyr_muon *m, tyr_params *ps, const tyr_muon_config *cfg,
                     tyr_dist *pg);
#define tyr_muon_init(m, ps, cfg, pg) tyr_muon_init_at(TYR_SITE, (m), (ps), (cfg), (pg))
void tyr_muon_free(tyr_muon *m);
/* lr_factor scales both rates (a schedule's multiplier; 1 for none). */
int tyr_muon_step_at(tyr_site s, tyr_muon *m, double lr_factor);
#define tyr_muon_step(m, f) tyr_muon_step_at(TYR_SITE, (m), (f))
bool tyr_muon_is_muon_param(const tyr_muon *m, int param_index);

/* Orthogonalises u (rows x cols, any float dtype and device) into out (same
 * shape, u's dtype), computing in cfg's ns_dtype: the update before its
 * scale.  Exposed for tests. */
int tyr_muon_orthogonalize_at(tyr_site s, const tyr_muon_config *cfg, tyr_tensor *out,
                              tyr_tensor *u);

/* A collection naming the model's parameters and Muon's state
 * ("optim.<param>.muon", "optim.<param>.normuon"), the tensors borrowed:
 * give it with m->adamw to tyr_checkpoint_save / tyr_checkpoint_load.
 * Release it with tyr_muon_checkpoint_params_release (not
 * tyr_params_free). */
int tyr_muon_checkpoint_params_at(tyr_site s, tyr_muon *m, tyr_params *out);
#define tyr_muon_checkpoint_params(m, out) tyr_muon_checkpoint_params_at(TYR_SITE, (m), (out))
void tyr_muon_checkpoint_params_release(tyr_params *ps);

/* The AdamW part's whole state, for tyr_checkpoint_save / _load next to
 * tyr_muon_checkpoint_params.  Unsharded it is &m->adamw itself; sharded, a
 * new AdamW over m->rest into which the shards' moments and step count are
 * gathered (a collective: every rank calls it, also before loading; the
 * whole AdamW state is then held on every rank until released).  After
 * tyr_checkpoint_load into it, tyr_muon_scatter_adamw hands every rank its
 * shard (nothing to do for &m->adamw), so that a file written at any world
 * size resumes at any other.  tyr_muon_release_adamw frees it.  NULL after
 * raising. */
tyr_optim *tyr_muon_gather_adamw_at(tyr_site s, tyr_muon *m);
int tyr_muon_scatter_adamw_at(tyr_site s, tyr_muon *m, const tyr_optim *whole);
void tyr_muon_release_adamw(tyr_muon *m, tyr_optim *whole);
#define tyr_muon_gather_adamw(m) tyr_muon_gather_adamw_at(TYR_SITE, (m))
#define tyr_muon_scatter_adamw(m, whole) tyr_muon_scatter_adamw_at(TYR_SITE, (m), (whole))

/* Bytes of optimizer state this rank holds: Muon's momentum (and NorMuon's
 * second moments), whole on every rank, plus the AdamW part's moments
 * (this rank's shard when sharded).  tyr_muon_adamw_state_bytes: the AdamW
 * part alone. */
int64_t tyr_muon_state_bytes(const tyr_muon *m);
int64_t tyr_muon_adamw_state_bytes(const tyr_muon *m);

#ifdef __cplusplus
}
#endif
#endif
