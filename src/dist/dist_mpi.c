/* The MPI backend (CPU tensors): nonblocking MPI collectives, waited on by
 * polling with the group's timeout.  bf16 and f16 travel as 16-bit words
 * reduced by user-defined operations (MPI has no such types).  Built when
 * CMake finds MPI (TYR_HAVE_MPI).
 *
 * Waits are MPI's own blocking calls (MPI_Wait, MPI_Allreduce, ...: they
 * progress the transfer efficiently), watched by a thread that ends the
 * process with a message naming the op, the rank and the call site when
 * one lasts longer than the group's timeout (a rank died or never called
 * the collective). */
#ifdef TYR_HAVE_MPI
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/internal.h"

typedef struct mpi_state {
  MPI_Comm comm;
  bool started;          /* this group called MPI_Init */
  MPI_Op half_ops[2][3]; /* [bf16, f16][sum, max, min] */
} mpi_state;

#define HALF_OP(name, to32, from32, expr)                                                          \
  static void name(void *in, void *inout, int *len, MPI_Datatype *dt) {                            \
    (void)dt;                                                                                      \
    const uint16_t *a = in;                                                                        \
    uint16_t *b = inout;                                                                           \
    for (int i = 0; i < *len; i++) {                                                               \
      float x = to32(a[i]), y = to32(b[i]);                                                        \
      b[i] = from32(expr);                                                                         \
    }                                                                                              \
  }
HALF_OP(bf16_sum, tyr_bf16_to_f32, tyr_f32_to_bf16, x + y)
HALF_OP(bf16_max, tyr_bf16_to_f32, tyr_f32_to_bf16, x > y ? x : y)
HALF_OP(bf16_min, tyr_bf16_to_f32, tyr_f32_to_bf16, x < y ? x : y)
HALF_OP(f16_sum, tyr_f16_to_f32, tyr_f32_to_f16, x + y)
HALF_OP(f16_max, tyr_f16_to_f32, tyr_f32_to_f16, x > y ? x : y)
HALF_OP(f16_min, tyr_f16_to_f32, tyr_f32_to_f16, x < y ? x : y)

static int mpi_fail(tyr_dist *pg, tyr_site s, const char *op, int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return tyr_raise(TYR_ERR_STATE, s, op, "rank %d of %d: MPI error: %.*s", pg->cfg.rank,
                   pg->cfg.world_size, len, msg);
}

int tyr__dist_mpi_open(tyr_dist *pg, tyr_site s) {
  const char *op = "tyr_dist_init";
  mpi_state *m = calloc(1, sizeof *m);
  if (!m) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided;
    /* only the thread that made the group calls MPI */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      free(m);
      return tyr_raise(TYR_ERR_STATE, s, op, "MPI_Init_thread failed (rank %d of %d)", pg->cfg.rank,
                       pg->cfg.world_size);
    }
    m->started = true;
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
  MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
  int r, n;
  MPI_Comm_rank(m->comm, &r);
  MPI_Comm_size(m->comm, &n);
  if (pg->cfg.launcher == TYR_LAUNCH_EXPLICIT || pg->cfg.launcher == TYR_LAUNCH_NONE) {
    if (pg->cfg.world_size == 1 && pg->cfg.rank == 0) pg->cfg.rank = r, pg->cfg.world_size = n;
  }
  if (r != pg->cfg.rank || n != pg->cfg.world_size) {
    int st = tyr_raise(TYR_ERR_ARG, s, op,
                       "MPI says rank %d of %d, the launcher's environment says rank %d of %d", r,
                       n, pg->cfg.rank, pg->cfg.world_size);
    MPI_Comm_free(&m->comm);
    if (m->started) MPI_Finalize();
    free(m);
    return st;
  }
  MPI_User_function *fns[2][3] = {{bf16_sum, bf16_max, bf16_min}, {f16_sum, f16_max, f16_min}};
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) MPI_Op_create(fns[i][j], 1, &m->half_ops[i][j]);
  pg->mpi = m;
  return 0;
}

static void mpi_free(tyr_dist *pg) {
  mpi_state *m = pg->mpi;
  if (!m) return;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) MPI_Op_free(&m->half_ops[i][j]);
  MPI_Comm_free(&m->comm);
  if (m->started) MPI_Finalize();
  free(m);
  pg->mpi = NULL;
}

static MPI_Datatype mpi_type(tyr_dtype dt) {
  switch (dt) {
  case TYR_F32:
    return MPI_FLOAT;
  case TYR_F64:
    return MPI_DOUBLE;
  case TYR_I64:
    return MPI_INT64_T;
  default:
    return MPI_UINT16_T; /* bf16, f16 */
  }
}

static MPI_Op mpi_op(const mpi_state *m, tyr_dtype dt, tyr_dist_op op) {
  int j = op == TYR_DIST_MAX ? 1 : op == TYR_DIST_MIN ? 2 : 0;
  if (dt == TYR_BF16) return m->half_ops[0][j];
  if (dt == TYR_F16) return m->half_ops[1][j];
  return j == 1 ? MPI_MAX : j == 2 ? MPI_MIN : MPI_SUM;
}

/* ---- the watchdog ------------------------------------------------------- */
static pthread_mutex_t g_wd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  bool armed, started;
  double deadline, timeout;
  tyr_site site;
  const char *op;
  int rank, world;
} g_wd;

static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&g_wd_lock);
    bool late = g_wd.armed && tyr__dist_now() > g_wd.deadline;
    if (late) {
      fprintf(stderr,
              "%s:%d: %s: rank %d of %d: timed out after %g s (TYR_DIST_TIMEOUT): another rank "
              "died or is not calling this collective\n",
              g_wd.site.file ? g_wd.site.file : "?", g_wd.site.line, g_wd.op, g_wd.rank, g_wd.world,
              g_wd.timeout);
      fflush(stderr);
      _exit(1);
    }
    pthread_mutex_unlock(&g_wd_lock);
  }
  return NULL;
}

static void guard_begin(tyr_dist *pg, tyr_site s, const char *op) {
  pthread_mutex_lock(&g_wd_lock);
  if (!g_wd.started) {
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog, NULL) == 0) {
      pthread_detach(th);
      g_wd.started = true;
    }
  }
  g_wd.armed = true;
  g_wd.deadline = tyr__dist_now() + pg->timeout_s;
  g_wd.timeout = pg->timeout_s;
  g_wd.site = s;
  g_wd.op = op;
  g_wd.rank = pg->cfg.rank;
  g_wd.world = pg->cfg.world_size;
  pthread_mutex_unlock(&g_wd_lock);
}

static void guard_end(void) {
  pthread_mutex_lock(&g_wd_lock);
  g_wd.armed = false;
  pthread_mutex_unlock(&g_wd_lock);
}

/* Waits for req under the watchdog. */
static int poll_wait(tyr_dist *pg, tyr_site s, const char *op, MPI_Request *req) {
  guard_begin(pg, s, op);
  int rc = MPI_Wait(req, MPI_STATUS_IGNORE);
  guard_end();
  return rc == MPI_SUCCESS ? 0 : mpi_fail(pg, s, op, rc);
}

static int mpi_start(tyr_dist_work *w, const tyr_tensor *in, tyr_tensor *out, int root) {
  tyr_dist *pg = w->pg;
  mpi_state *m = pg->mpi;
  MPI_Request *req = malloc(sizeof *req);
  if (!req) return tyr_raise(TYR_ERR_MEMORY, w->site, w->op, "out of host memory");
  MPI_Datatype ty = mpi_type(out->dtype);
  MPI_Op mop = mpi_op(m, out->dtype, w->rop);
  int rc = MPI_SUCCESS;
  int64_t n = tyr_numel(out);
  if (w->kind == DK_REDUCE_SCATTER || w->kind == DK_ALL_GATHER)
    n = w->kind == DK_ALL_GATHER ? tyr_numel(in) : tyr_numel(out);
  if (n > INT32_MAX) {
    free(req);
    return tyr_raise(TYR_ERR_ARG, w->site, w->op, "%lld elements: over MPI's count limit",
                     (long long)n);
  }
  void *po = tyr_data_ptr(out);
  const void *pi = tyr_data_ptr(in);
  switch (w->kind) {
  case DK_ALL_REDUCE:
    rc = MPI_Iallreduce(MPI_IN_PLACE, po, (int)n, ty, mop, m->comm, req);
    break;
  case DK_BROADCAST:
    rc = MPI_Ibcast(po, (int)n, ty, root, m->comm, req);
    break;
  case DK_REDUCE_SCATTER:
    rc = MPI_Ireduce_scatter_block(pi, po, (int)n, ty, mop, m->comm, req);
    break;
  case DK_ALL_GATHER:
    rc = MPI_Iallgather(pi, (int)n, ty, po, (int)n, ty, m->comm, req);
    break;
  }
  if (rc != MPI_SUCCESS) {
    free(req);
    return mpi_fail(pg, w->site, w->op, rc);
  }
  w->state = req;
  return 0;
}

static void after(tyr_dist_work *w) {
  w->done = true;
  if (w->rop == TYR_DIST_AVG && (w->kind == DK_ALL_REDUCE || w->kind == DK_REDUCE_SCATTER))
    tyr__dist_divide(tyr_data_ptr(w->out), w->out->dtype, tyr_numel(w->out),
                     (double)w->pg->cfg.world_size);
}

/* The blocking form: MPI's blocking collectives (their tuned algorithms). */
static int mpi_run(tyr_dist_work *w, const tyr_tensor *in, tyr_tensor *out, int root) {
  tyr_dist *pg = w->pg;
  mpi_state *m = pg->mpi;
  MPI_Datatype ty = mpi_type(out->dtype);
  MPI_Op mop = mpi_op(m, out->dtype, w->rop);
  int64_t n = w->kind == DK_ALL_GATHER ? tyr_numel(in) : tyr_numel(out);
  if (n > INT32_MAX)
    return tyr_raise(TYR_ERR_ARG, w->site, w->op, "%lld elements: over MPI's count limit",
                     (long long)n);
  void *po = tyr_data_ptr(out);
  const void *pi = tyr_data_ptr(in);
  int rc = MPI_SUCCESS;
  guard_begin(pg, w->site, w->op);
  switch (w->kind) {
  case DK_ALL_REDUCE:
    rc = MPI_Allreduce(MPI_IN_PLACE, po, (int)n, ty, mop, m->comm);
    break;
  case DK_BROADCAST:
    rc = MPI_Bcast(po, (int)n, ty, root, m->comm);
    break;
  case DK_REDUCE_SCATTER:
    rc = MPI_Reduce_scatter_block(pi, po, (int)n, ty, mop, m->comm);
    break;
  case DK_ALL_GATHER:
    rc = MPI_Allgather(pi, (int)n, ty, po, (int)n, ty, m->comm);
    break;
  }
  guard_end();
  if (rc != MPI_SUCCESS) return mpi_fail(pg, w->site, w->op, rc);
  after(w);
  return 0;
}

static int mpi_test(tyr_dist_work *w, bool *done) {
  int flag = 0, rc = MPI_Test(w->state, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) return mpi_fail(w->pg, w->site, w->op, rc);
  if (flag) after(w);
  *done = flag != 0;
  return 0;
}

static int mpi_wait(tyr_dist_work *w) {
  int st = poll_wait(w->pg, w->site, w->op, w->state);
  if (!st) after(w);
  return st;
}

static void mpi_work_free(tyr_dist_work *w) {
  free(w->state);
}

static int mpi_gather_desc(tyr_dist *pg, tyr_site s, const char *op, const int64_t *mine,
                           int64_t *all, int n) {
  mpi_state *m = pg->mpi;
  guard_begin(pg, s, op);
  int rc = MPI_Allgather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, m->comm);
  guard_end();
  return rc == MPI_SUCCESS ? 0 : mpi_fail(pg, s, op, rc);
}

static int mpi_barrier(tyr_dist *pg, tyr_site s) {
  mpi_state *m = pg->mpi;
  guard_begin(pg, s, "tyr_dist_barrier");
  int rc = MPI_Barrier(m->comm);
  guard_end();
  return rc == MPI_SUCCESS ? 0 : mpi_fail(pg, s, "tyr_dist_barrier", rc);
}

int tyr__dist_mpi_bcast_bytes(tyr_dist *pg, tyr_site s, void *buf, int n) {
  mpi_state *m = pg->mpi;
  MPI_Request req;
  int rc = MPI_Ibcast(buf, n, MPI_BYTE, 0, m->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_fail(pg, s, "tyr_dist_init", rc);
  return poll_wait(pg, s, "tyr_dist_init (NCCL unique id)", &req);
}

const dist_impl tyr__dist_mpi = {.name = "mpi",
                                 .start = mpi_start,
                                 .run = mpi_run,
                                 .test = mpi_test,
                                 .wait = mpi_wait,
                                 .work_free = mpi_work_free,
                                 .gather_desc = mpi_gather_desc,
                                 .barrier = mpi_barrier,
                                 .free = mpi_free};
#endif
