/* tyr/dist.h - process groups and collectives for multi-process training.
 *
 * A process group is made from the launcher's environment (Open MPI's
 * mpirun: OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK; Slurm's srun: SLURM_PROCID,
 * SLURM_STEP_NUM_TASKS, SLURM_LOCALID; torchrun: RANK, WORLD_SIZE,
 * LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or from an explicit config.  Without
 * any launcher it is a group of one process, which needs no library.
 *
 * Backends, chosen by the tensor's device: MPI for CPU tensors (when Tyr is
 * built with MPI and the program was started by mpirun or srun), NCCL for
 * CUDA tensors (when built with CUDA and NCCL; the NCCL unique id travels
 * over MPI when MPI is there, else over a TCP rendezvous at
 * MASTER_ADDR:MASTER_PORT, torchrun's contract).
 *
 * Every collective checks, before it moves any data, that all ranks called
 * the same collective with the same element count, dtype and reduction (a
 * small all-gather of descriptors; TYR_DIST_CHECK=0 turns it off): a
 * mismatch is an error on every rank naming the op, the ranks, both counts
 * and the call site, never a hang.  Waits give up after TYR_DIST_TIMEOUT
 * seconds (default 300) with an error naming the op and the rank.
 *
 * Data parallel (tyr_ddp), ZeRO-1 AdamW (tyr_zero1) and distributed Muon
 * (see <tyr/muon.h>) build on these collectives; docs/distributed.md. */
#ifndef TYR_DIST_H
#define TYR_DIST_H
#include "tyr/optim.h"
#include "tyr/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_dist_op { TYR_DIST_SUM = 0, TYR_DIST_AVG, TYR_DIST_MAX, TYR_DIST_MIN } tyr_dist_op;

typedef enum tyr_dist_backend {
  TYR_DIST_AUTO = 0, /* MPI for CPU and NCCL for CUDA tensors when launched; local at world 1 */
  TYR_DIST_LOCAL,    /* one process, no library: collectives are copies */
  TYR_DIST_MPI,      /* MPI for CPU tensors (NCCL for CUDA ones when built) */
  TYR_DIST_NCCL      /* NCCL for CUDA tensors, even at world size 1 */
} tyr_dist_backend;

typedef enum tyr_dist_launcher {
  TYR_LAUNCH_NONE = 0,
  TYR_LAUNCH_MPIRUN,
  TYR_LAUNCH_SRUN,
  TYR_LAUNCH_TORCHRUN,
  TYR_LAUNCH_EXPLICIT
} tyr_dist_launcher;

typedef struct tyr_dist_config {
  int rank, world_size, local_rank;
  tyr_dist_launcher launcher;
  tyr_dist_backend backend;
  char master_addr[256]; /* torchrun's rendezvous (NCCL's unique id without MPI) */
  int master_port;       /* the rendezvous port: TYR_DIST_PORT, else MASTER_PORT + 1 */
  double timeout_s;      /* <= 0: TYR_DIST_TIMEOUT or 300 */
} tyr_dist_config;

/* Reads the launcher's variables into cfg (world size 1, rank 0, launcher
 * NONE when there are none).  Malformed or inconsistent values (RANK >=
 * WORLD_SIZE, a non-number, MASTER_ADDR missing under torchrun at world
 * size > 1) raise, naming the variable.  TYR_DIST_BACKEND=local|mpi|nccl
 * picks the backend (default auto). */
int tyr_dist_config_from_env_at(tyr_site s, tyr_dist_config *cfg);
#define tyr_dist_config_from_env(cfg) tyr_dist_config_from_env_at(TYR_SITE, (cfg))
const char *tyr_dist_launcher_name(tyr_dist_launcher l);
const char *tyr_dist_op_name(tyr_dist_op op);
/* Whether this build has the MPI / NCCL backends. */
bool tyr_dist_have_mpi(void);
bool tyr_dist_have_nccl(void);

typedef struct tyr_dist tyr_dist;
/* cfg NULL: from the environment.  Starts MPI when the backend needs it.
 * NULL after raising. */
tyr_dist *tyr_dist_init_at(tyr_site s, const tyr_dist_config *cfg);
#define tyr_dist_init(cfg) tyr_dist_init_at(TYR_SITE, (cfg))
/* Frees the group (and finalises MPI if it started it). */
void tyr_dist_free(tyr_dist *pg);
int tyr_dist_rank(const tyr_dist *pg);
int tyr_dist_world_size(const tyr_dist *pg);
int tyr_dist_local_rank(const tyr_dist *pg);
const tyr_dist_config *tyr_dist_get_config(const tyr_dist *pg);
/* "mpi", "nccl" or "local": the backend that a tensor on dev would use. */
const char *tyr_dist_backend_name(const tyr_dist *pg, tyr_device dev);

int tyr_dist_barrier_at(tyr_site s, tyr_dist *pg);
#define tyr_dist_barrier(pg) tyr_dist_barrier_at(TYR_SITE, (pg))

/* ---- collectives -----------------------------------------------------------
 * Tensors contiguous, on one device (CPU: MPI; CUDA: NCCL), of dtype f32,
 * f64, bf16, f16 or i64 (AVG needs a floating dtype).  0, or the error
 * status after raising.
 *   all_reduce      t = op over ranks of t, in place
 *   broadcast       t = root's t
 *   reduce_scatter  out (n elements) = op over ranks of in's slice
 *                   [rank*n, (rank+1)*n); in has world_size*n elements
 *   all_gather      out (world_size*n elements) = the ranks' in (n) in rank
 *                   order
 * The async forms start the collective and return a handle; the tensors
 * must stay alive and unchanged until tyr_dist_wait.  NULL after raising. */
typedef struct tyr_dist_work tyr_dist_work;

int tyr_dist_all_reduce_at(tyr_site s, tyr_dist *pg, tyr_tensor *t, tyr_dist_op op);
int tyr_dist_broadcast_at(tyr_site s, tyr_dist *pg, tyr_tensor *t, int root);
int tyr_dist_reduce_scatter_at(tyr_site s, tyr_dist *pg, tyr_tensor *out, const tyr_tensor *in,
                               tyr_dist_op op);
int tyr_dist_all_gather_at(tyr_site s, tyr_dist *pg, tyr_tensor *out, const tyr_tensor *in);
tyr_dist_work *tyr_dist_all_reduce_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *t,
                                            tyr_dist_op op);
tyr_dist_work *tyr_dist_broadcast_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *t, int root);
tyr_dist_work *tyr_dist_reduce_scatter_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *out,
                                                const tyr_tensor *in, tyr_dist_op op);
tyr_dist_work *tyr_dist_all_gather_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *out,
                                            const tyr_tensor *in);
/* Whether the collective has finished (it also lets MPI progress it). */
bool tyr_dist_test(tyr_dist_work *w);
/* Waits for the collective (CUDA: the device's stream waits for it), then
 * frees the handle.  0 or the error status. */
int tyr_dist_wait_at(tyr_site s, tyr_dist_work *w);

#define tyr_dist_all_reduce(pg, t, op) tyr_dist_all_reduce_at(TYR_SITE, (pg), (t), (op))
#define tyr_dist_broadcast(pg, t, root) tyr_dist_broadcast_at(TYR_SITE, (pg), (t), (root))
#define tyr_dist_reduce_scatter(pg, out, in, op)                                                   \
  tyr_dist_reduce_scatter_at(TYR_SITE, (pg), (out), (in), (op))
#define tyr_dist_all_gather(pg, out, in) tyr_dist_all_gather_at(TYR_SITE, (pg), (out), (in))
#define tyr_dist_all_reduce_async(pg, t, op) tyr_dist_all_reduce_async_at(TYR_SITE, (pg), (t), (op))
#define tyr_dist_broadcast_async(pg, t, root)                                                      \
  tyr_dist_broadcast_async_at(TYR_SITE, (pg), (t), (root))
#define tyr_dist_reduce_scatter_async(pg, out, in, op)                                             \
  tyr_dist_reduce_scatter_async_at(TYR_SITE, (pg), (out), (in), (op))
#define tyr_dist_all_gather_async(pg, out, in)                                                     \
  tyr_dist_all_gather_async_at(TYR_SITE, (pg), (out), (in))
#define tyr_dist_wait(w) tyr_dist_wait_at(TYR_SITE, (w))

/* A double averaged (or summed, ...) over ranks: for losses and metrics. */
double tyr_dist_reduce_scalar_at(tyr_site s, tyr_dist *pg, double x, tyr_dist_op op);
#define tyr_dist_reduce_scalar(pg, x, op) tyr_dist_reduce_scalar_at(TYR_SITE, (pg), (x), (op))

/* ---- data parallel ---------------------------------------------------------
 * tyr_ddp_init broadcasts rank 0's parameters to every rank, after checking
 * that all ranks hold the same names, shapes and dtypes (a hash compared
 * across ranks; a mismatch names the first differing parameter).  During
 * backward, as soon as the last gradient of a bucket (about bucket_mb
 * megabytes of parameters, filled in reverse parameter order, as PyTorch's
 * DDP does) is final, the bucket's average over ranks is started
 * asynchronously, so that communication overlaps the rest of backward.
 * tyr_ddp_finish waits for every bucket and writes the averaged gradients
 * back: call it after backward, before clipping and the optimizer step.
 * Gradient accumulation: tyr_ddp_set_sync(d, false) for the micro-steps
 * that only accumulate; set it back to true before the last backward.
 * One tyr_ddp may be active at a time (it owns the autograd leaf hook). */
typedef struct tyr_ddp_config {
  double bucket_mb; /* <= 0: 25; huge: one bucket */
  bool overlap;     /* false: every bucket is reduced in tyr_ddp_finish */
} tyr_ddp_config;
tyr_ddp_config tyr_ddp_default_config(void);

typedef struct tyr_ddp tyr_ddp;
tyr_ddp *tyr_ddp_init_at(tyr_site s, tyr_dist *pg, tyr_params *ps, const tyr_ddp_config *cfg);
#define tyr_ddp_init(pg, ps, cfg) tyr_ddp_init_at(TYR_SITE, (pg), (ps), (cfg))
void tyr_ddp_set_sync(tyr_ddp *d, bool on);
int tyr_ddp_finish_at(tyr_site s, tyr_ddp *d);
#define tyr_ddp_finish(d) tyr_ddp_finish_at(TYR_SITE, (d))
void tyr_ddp_free(tyr_ddp *d);
int tyr_ddp_num_buckets(const tyr_ddp *d);
/* Buckets whose reduction started during backward in the last round. */
int tyr_ddp_overlapped_buckets(const tyr_ddp *d);

/* Checks that every rank holds the same parameter names, shapes and dtypes
 * (what tyr_ddp_init does first); what names the caller's purpose. */
int tyr_dist_check_params_at(tyr_site s, tyr_dist *pg, const tyr_params *ps, const char *what);
/* Broadcasts every parameter from root. */
int tyr_dist_broadcast_params_at(tyr_site s, tyr_dist *pg, tyr_params *ps, int root);

/* ---- ZeRO-1 AdamW ----------------------------------------------------------
 * AdamW whose moments are sharded over the ranks: the parameters (one
 * dtype and device) are laid end to end in a flat buffer padded to a
 * multiple of the world size; a step reduce-scatters the gradients (their
 * average over ranks; a missing gradient counts as zero), clips by the
 * global norm when max_norm > 0, steps this rank's shard with each
 * parameter's group settings, and all-gathers the parameters.  The update
 * is elementwise that of tyr_optim_step on averaged gradients.  Use it
 * instead of tyr_ddp + tyr_optim (it does the gradient communication). */
typedef struct tyr_zero1 tyr_zero1;
tyr_zero1 *tyr_zero1_init_at(tyr_site s, tyr_dist *pg, tyr_params *ps, tyr_optim_config cfg);
#define tyr_zero1_init(pg, ps, cfg) tyr_zero1_init_at(TYR_SITE, (pg), (ps), (cfg))
/* lr < 0: the configured rate.  norm (may be NULL): the global gradient
 * norm before clipping (computed, with a scalar all-reduce, only when
 * max_norm > 0 or norm is asked for: every rank alike). */
int tyr_zero1_step_at(tyr_site s, tyr_zero1 *z, double lr, double max_norm, double *norm);
#define tyr_zero1_step(z, lr, max_norm, norm)                                                      \
  tyr_zero1_step_at(TYR_SITE, (z), (lr), (max_norm), (norm))
void tyr_zero1_free(tyr_zero1 *z);
/* on: the gradients arrive already averaged over ranks (tyr_ddp), so a step
 * takes this rank's shard of them without a reduce-scatter (default off). */
void tyr_zero1_set_grads_averaged(tyr_zero1 *z, bool on);
/* Bytes of optimizer state this rank holds. */
int64_t tyr_zero1_state_bytes(const tyr_zero1 *z);
int64_t tyr_zero1_step_count(const tyr_zero1 *z);
/* Gathers the sharded moments into opt (a tyr_optim made with the same
 * config over the same parameters, e.g. for tyr_checkpoint_save: the file
 * is then that of unsharded AdamW) - collective; and the reverse: takes
 * this rank's shard of opt's moments and step count (after
 * tyr_checkpoint_load), so that a run at any world size resumes exactly. */
int tyr_zero1_gather_state_at(tyr_site s, tyr_zero1 *z, tyr_optim *opt);
int tyr_zero1_scatter_state_at(tyr_site s, tyr_zero1 *z, const tyr_optim *opt);
#define tyr_zero1_gather_state(z, opt) tyr_zero1_gather_state_at(TYR_SITE, (z), (opt))
#define tyr_zero1_scatter_state(z, opt) tyr_zero1_scatter_state_at(TYR_SITE, (z), (opt))

#ifdef __cplusplus
}
#endif
#endif
