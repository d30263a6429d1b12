/* Process groups: the launcher's environment, the checks every collective
 * makes before moving data, and the one-process (local) backend. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend.h"
#include "dist/internal.h"

double tyr__dist_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool tyr_dist_have_mpi(void) {
#ifdef TYR_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool tyr_dist_have_nccl(void) {
#ifdef TYR_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

const char *tyr_dist_launcher_name(tyr_dist_launcher l) {
  switch (l) {
  case TYR_LAUNCH_NONE:
    return "none";
  case TYR_LAUNCH_MPIRUN:
    return "mpirun";
  case TYR_LAUNCH_SRUN:
    return "srun";
  case TYR_LAUNCH_TORCHRUN:
    return "torchrun";
  case TYR_LAUNCH_EXPLICIT:
    return "explicit";
  }
  return "?";
}

const char *tyr_dist_op_name(tyr_dist_op op) {
  switch (op) {
  case TYR_DIST_SUM:
    return "sum";
  case TYR_DIST_AVG:
    return "avg";
  case TYR_DIST_MAX:
    return "max";
  case TYR_DIST_MIN:
    return "min";
  }
  return "?";
}

/* ---- the environment ---------------------------------------------------- */

/* An environment variable as an int >= min; -1 absent; raises on garbage. */
static int env_int(tyr_site s, const char *op, const char *name, int min, int *out) {
  const char *v = getenv(name);
  if (!v) return -1;
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < min || x > INT_MAX)
    return tyr_raise(TYR_ERR_ARG, s, op, "environment variable %s='%s' is not an integer >= %d",
                     name, v, min);
  *out = (int)x;
  return 0;
}

int tyr_dist_config_from_env_at(tyr_site s, tyr_dist_config *cfg) {
  const char *op = "tyr_dist_config_from_env";
  memset(cfg, 0, sizeof *cfg);
  cfg->world_size = 1;
  const char *rv = NULL, *sv = NULL, *lv = NULL;
  if (getenv("OMPI_COMM_WORLD_RANK") || getenv("OMPI_COMM_WORLD_SIZE")) {
    cfg->launcher = TYR_LAUNCH_MPIRUN;
    rv = "OMPI_COMM_WORLD_RANK", sv = "OMPI_COMM_WORLD_SIZE", lv = "OMPI_COMM_WORLD_LOCAL_RANK";
  } else if (getenv("SLURM_PROCID") && getenv("SLURM_STEP_NUM_TASKS")) {
    /* srun sets SLURM_STEP_NUM_TASKS; a batch script alone does not */
    cfg->launcher = TYR_LAUNCH_SRUN;
    rv = "SLURM_PROCID", sv = "SLURM_STEP_NUM_TASKS", lv = "SLURM_LOCALID";
  } else if (getenv("RANK") || getenv("WORLD_SIZE")) {
    cfg->launcher = TYR_LAUNCH_TORCHRUN;
    rv = "RANK", sv = "WORLD_SIZE", lv = "LOCAL_RANK";
  }
  int st;
  if (cfg->launcher != TYR_LAUNCH_NONE) {
    int r = -1, n = -1, l = 0;
    if ((st = env_int(s, op, rv, 0, &r)) > 0 || (st = env_int(s, op, sv, 1, &n)) > 0 ||
        (st = env_int(s, op, lv, 0, &l)) > 0)
      return st;
    if (r < 0 || n < 0)
      return tyr_raise(TYR_ERR_ARG, s, op, "%s launch: %s is set but %s is missing",
                       tyr_dist_launcher_name(cfg->launcher), r < 0 ? sv : rv, r < 0 ? rv : sv);
    if (r >= n)
      return tyr_raise(TYR_ERR_ARG, s, op, "%s launch: %s=%d is not below %s=%d",
                       tyr_dist_launcher_name(cfg->launcher), rv, r, sv, n);
    cfg->rank = r, cfg->world_size = n, cfg->local_rank = l;
  }
  const char *addr = getenv("MASTER_ADDR");
  if (addr) {
    if (strlen(addr) >= sizeof cfg->master_addr)
      return tyr_raise(TYR_ERR_ARG, s, op, "environment variable MASTER_ADDR is too long");
    strcpy(cfg->master_addr, addr);
  }
  /* torchrun's own store listens on MASTER_PORT: Tyr's rendezvous takes the
   * next port unless TYR_DIST_PORT names one */
  int port = 29500;
  if ((st = env_int(s, op, "MASTER_PORT", 1, &port)) > 0) return st;
  if (port > 65534)
    return tyr_raise(TYR_ERR_ARG, s, op, "environment variable MASTER_PORT=%d is not a port", port);
  port++;
  if ((st = env_int(s, op, "TYR_DIST_PORT", 1, &port)) > 0) return st;
  if (port > 65535)
    return tyr_raise(TYR_ERR_ARG, s, op, "environment variable TYR_DIST_PORT=%d is not a port",
                     port);
  cfg->master_port = port;
  if (cfg->launcher == TYR_LAUNCH_TORCHRUN && cfg->world_size > 1 && !addr)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "torchrun launch (RANK=%d, WORLD_SIZE=%d): MASTER_ADDR is not set", cfg->rank,
                     cfg->world_size);
  const char *be = getenv("TYR_DIST_BACKEND");
  if (be && *be) {
    if (!strcmp(be, "auto"))
      cfg->backend = TYR_DIST_AUTO;
    else if (!strcmp(be, "local"))
      cfg->backend = TYR_DIST_LOCAL;
    else if (!strcmp(be, "mpi"))
      cfg->backend = TYR_DIST_MPI;
    else if (!strcmp(be, "nccl"))
      cfg->backend = TYR_DIST_NCCL;
    else
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "environment variable TYR_DIST_BACKEND='%s' is not auto, local, mpi or nccl",
                       be);
  }
  const char *to = getenv("TYR_DIST_TIMEOUT");
  if (to && *to) {
    char *end;
    double x = strtod(to, &end);
    if (end == to || *end || !(x > 0))
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "environment variable TYR_DIST_TIMEOUT='%s' is not a positive number of "
                       "seconds",
                       to);
    cfg->timeout_s = x;
  }
  return 0;
}

/* ---- the group ------------------------------------------------------------ */

tyr_dist *tyr_dist_init_at(tyr_site s, const tyr_dist_config *cfg_in) {
  const char *op = "tyr_dist_init";
  tyr_dist_config cfg;
  if (cfg_in) {
    cfg = *cfg_in;
    if (cfg.world_size < 1 || cfg.rank < 0 || cfg.rank >= cfg.world_size || cfg.local_rank < 0) {
      tyr_raise(TYR_ERR_ARG, s, op, "rank %d, world size %d, local rank %d: need 0 <= rank < world",
                cfg.rank, cfg.world_size, cfg.local_rank);
      return NULL;
    }
    if (cfg.launcher == TYR_LAUNCH_NONE && cfg.world_size > 1) cfg.launcher = TYR_LAUNCH_EXPLICIT;
  } else if (tyr_dist_config_from_env_at(s, &cfg)) {
    return NULL;
  }
  tyr_dist *pg = calloc(1, sizeof *pg);
  if (!pg) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  pg->cfg = cfg;
  pg->timeout_s = cfg.timeout_s > 0 ? cfg.timeout_s : 300;
  const char *chk = getenv("TYR_DIST_CHECK");
  pg->check = !(chk && !strcmp(chk, "0"));
  bool launched_mpi = cfg.launcher == TYR_LAUNCH_MPIRUN || cfg.launcher == TYR_LAUNCH_SRUN;
  bool want_mpi = cfg.backend == TYR_DIST_MPI ||
                  (cfg.backend != TYR_DIST_LOCAL && launched_mpi && cfg.world_size > 1) ||
                  (cfg.backend == TYR_DIST_NCCL && launched_mpi && cfg.world_size > 1);
  if (cfg.backend == TYR_DIST_LOCAL && cfg.world_size > 1) {
    tyr_raise(TYR_ERR_ARG, s, op, "the local backend is for one process, not a world of %d",
              cfg.world_size);
    free(pg);
    return NULL;
  }
  if (cfg.world_size == 1 && cfg.backend != TYR_DIST_MPI) {
    pg->cpu = &tyr__dist_local;
    pg->cuda = &tyr__dist_local;
  }
  if (want_mpi) {
#ifdef TYR_HAVE_MPI
    if (tyr__dist_mpi_open(pg, s)) {
      free(pg);
      return NULL;
    }
    pg->cpu = &tyr__dist_mpi;
#else
    tyr_raise(TYR_ERR_ARG, s, op,
              "rank %d of %d (%s launch): this build of Tyr has no MPI backend (install "
              "libopenmpi-dev and rebuild)",
              cfg.rank, cfg.world_size, tyr_dist_launcher_name(cfg.launcher));
    free(pg);
    return NULL;
#endif
  }
#ifdef TYR_HAVE_NCCL
  if (cfg.world_size > 1 || cfg.backend == TYR_DIST_NCCL) pg->cuda = &tyr__dist_nccl;
#else
  if (cfg.backend == TYR_DIST_NCCL) {
    tyr_raise(TYR_ERR_DEVICE, s, op,
              "the NCCL backend was asked for, but this build of Tyr has no NCCL (build with "
              "CUDA and NCCL)");
    tyr_dist_free(pg);
    return NULL;
  }
#endif
  return pg;
}

void tyr_dist_free(tyr_dist *pg) {
  if (!pg) return;
  if (pg->cuda && pg->cuda->free && pg->cuda != pg->cpu) pg->cuda->free(pg);
  if (pg->cpu && pg->cpu->free) pg->cpu->free(pg);
  free(pg);
}

int tyr_dist_rank(const tyr_dist *pg) {
  return pg ? pg->cfg.rank : 0;
}
int tyr_dist_world_size(const tyr_dist *pg) {
  return pg ? pg->cfg.world_size : 1;
}
int tyr_dist_local_rank(const tyr_dist *pg) {
  return pg ? pg->cfg.local_rank : 0;
}
const tyr_dist_config *tyr_dist_get_config(const tyr_dist *pg) {
  return &pg->cfg;
}

static const dist_impl *impl_for(const tyr_dist *pg, tyr_device dev) {
  return dev.type == TYR_CUDA ? pg->cuda : pg->cpu;
}

const char *tyr_dist_backend_name(const tyr_dist *pg, tyr_device dev) {
  const dist_impl *im = impl_for(pg, dev);
  return im ? im->name : "none";
}

int tyr_dist_barrier_at(tyr_site s, tyr_dist *pg) {
  if (!pg) return tyr_raise(TYR_ERR_ARG, s, "tyr_dist_barrier", "group is NULL");
  if (pg->cfg.world_size == 1) return 0;
  if (pg->cpu && pg->cpu->barrier) return pg->cpu->barrier(pg, s);
  /* GPU ranks without MPI: a one-element all-reduce, waited for on the host */
  tyr_dist_reduce_scalar_at(s, pg, 0.0, TYR_DIST_SUM);
  return 0;
}

/* ---- the collectives' front end ---------------------------------------- */

static const char *kind_name(dist_kind k) {
  switch (k) {
  case DK_ALL_REDUCE:
    return "tyr_dist_all_reduce";
  case DK_BROADCAST:
    return "tyr_dist_broadcast";
  case DK_REDUCE_SCATTER:
    return "tyr_dist_reduce_scatter";
  case DK_ALL_GATHER:
    return "tyr_dist_all_gather";
  }
  return "?";
}

static bool dtype_ok(tyr_dtype dt) {
  return dt == TYR_F32 || dt == TYR_F64 || dt == TYR_BF16 || dt == TYR_F16 || dt == TYR_I64;
}

static int check_tensor(tyr_site s, const char *op, const tyr_dist *pg, const char *arg,
                        const tyr_tensor *t) {
  if (!t) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL (rank %d)", arg, pg->cfg.rank);
  if (!dtype_ok(t->dtype))
    return tyr_raise(TYR_ERR_DTYPE, s, op, "%s is %s; collectives take f32, f64, bf16, f16, i64",
                     arg, tyr_dtype_name(t->dtype));
  if (!tyr_is_contiguous(t)) return tyr_raise(TYR_ERR_ARG, s, op, "%s is not contiguous", arg);
  return 0;
}

/* The last word of a descriptor: a root or a reduction's name. */
static const char *desc_arg(const int64_t *d) {
  static _Thread_local char buf[4][24];
  static _Thread_local int k;
  char *b = buf[k++ & 3];
  if (d[0] == DK_BROADCAST)
    snprintf(b, 24, "%lld", (long long)d[3]);
  else
    snprintf(b, 24, "%s", tyr_dist_op_name((tyr_dist_op)d[3]));
  return b;
}

/* Checks arguments here, then across ranks, then starts the collective. */
static tyr_dist_work *start(tyr_site s, tyr_dist *pg, dist_kind kind, tyr_tensor *out,
                            const tyr_tensor *in, tyr_dist_op rop, int root, bool blocking) {
  const char *op = kind_name(kind);
  if (!pg) {
    tyr_raise(TYR_ERR_ARG, s, op, "group is NULL");
    return NULL;
  }
  int N = pg->cfg.world_size, rank = pg->cfg.rank;
  if (check_tensor(s, op, pg, in == out ? "tensor" : "out", out)) return NULL;
  if (in != out && check_tensor(s, op, pg, "in", in)) return NULL;
  if (in != out) {
    if (in->dtype != out->dtype || !tyr_device_eq(in->device, out->device)) {
      tyr_raise(TYR_ERR_DTYPE, s, op, "in is %s on %s, out is %s on %s", tyr_dtype_name(in->dtype),
                tyr_device_name(in->device), tyr_dtype_name(out->dtype),
                tyr_device_name(out->device));
      return NULL;
    }
    int64_t ni = tyr_numel(in), no = tyr_numel(out);
    if ((kind == DK_REDUCE_SCATTER && ni != no * N) || (kind == DK_ALL_GATHER && no != ni * N)) {
      tyr_raise(TYR_ERR_SHAPE, s, op,
                "in has %lld elements and out %lld; with %d ranks %s needs %s = %d x %s",
                (long long)ni, (long long)no, N, op, kind == DK_ALL_GATHER ? "out" : "in", N,
                kind == DK_ALL_GATHER ? "in" : "out");
      return NULL;
    }
  }
  if ((kind == DK_ALL_REDUCE || kind == DK_REDUCE_SCATTER) && rop == TYR_DIST_AVG &&
      !tyr_dtype_is_float(out->dtype)) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "avg needs a floating dtype, not %s",
              tyr_dtype_name(out->dtype));
    return NULL;
  }
  if ((unsigned)rop > TYR_DIST_MIN) {
    tyr_raise(TYR_ERR_ARG, s, op, "unknown reduction %d", (int)rop);
    return NULL;
  }
  if (kind == DK_BROADCAST && (root < 0 || root >= N)) {
    tyr_raise(TYR_ERR_ARG, s, op, "root %d is not a rank of a world of %d", root, N);
    return NULL;
  }
  const dist_impl *im = impl_for(pg, out->device);
  if (!im) {
    tyr_raise(TYR_ERR_DEVICE, s, op,
              "no backend for %s tensors in this group (rank %d of %d, %s launch): %s",
              tyr_device_name(out->device), rank, N, tyr_dist_launcher_name(pg->cfg.launcher),
              out->device.type == TYR_CUDA ? "NCCL is not built"
                                           : "CPU tensors need MPI (start with mpirun or srun)");
    return NULL;
  }
  if (pg->check && N > 1 && im->gather_desc) {
    int64_t mine[4] = {kind, out->dtype, tyr_numel(in),
                       kind == DK_BROADCAST ? (int64_t)root : (int64_t)rop};
    int64_t stackbuf[4 * 16], *all = N <= 16 ? stackbuf : malloc(sizeof(int64_t) * 4 * (size_t)N);
    if (!all) {
      tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
      return NULL;
    }
    /* every row starts as this rank's: a backend that skips the check
       (NCCL before its communicator exists, or past 64 ranks) compares equal */
    for (int r = 0; r < N; r++) memcpy(all + 4 * r, mine, sizeof mine);
    if (im->gather_desc(pg, s, op, mine, all, 4)) {
      if (all != stackbuf) free(all);
      return NULL;
    }
    int bad = -1;
    for (int r = 0; r < N && bad < 0; r++)
      if (memcmp(all + 4 * r, all, sizeof mine)) bad = r;
    if (bad >= 0) {
      int64_t *a = all, *b = all + 4 * bad;
      char da[128], db[128];
      const char *what = kind == DK_BROADCAST ? "root" : "reduction";
      snprintf(da, sizeof da, "%s of %lld %s elements, %s %s", kind_name((dist_kind)a[0]),
               (long long)a[2], tyr_dtype_name((tyr_dtype)a[1]), what, desc_arg(a));
      snprintf(db, sizeof db, "%s of %lld %s elements, %s %s", kind_name((dist_kind)b[0]),
               (long long)b[2], tyr_dtype_name((tyr_dtype)b[1]), what, desc_arg(b));
      if (all != stackbuf) free(all);
      tyr_raise(TYR_ERR_SHAPE, s, op,
                "ranks disagree (seen by rank %d): rank 0 called %s, rank %d %s", rank, da, bad,
                db);
      return NULL;
    }
    if (all != stackbuf) free(all);
  }
  tyr_dist_work *w = calloc(1, sizeof *w);
  if (!w) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  *w = (tyr_dist_work){.pg = pg,
                       .impl = im,
                       .site = s,
                       .op = op,
                       .kind = kind,
                       .rop = rop,
                       .out = tyr_tensor_retain(out),
                       .in = in};
  if (in != out) tyr_tensor_retain((tyr_tensor *)in);
  /* a blocking call where the backend has one (MPI's blocking collectives
   * use better algorithms than the nonblocking ones) */
  if (blocking && im->run ? im->run(w, in, out, root) : im->start(w, in, out, root)) {
    if (in != out) tyr_tensor_release((tyr_tensor *)in);
    tyr_tensor_release(out);
    free(w);
    return NULL;
  }
  return w;
}

static void work_free(tyr_dist_work *w) {
  if (w->impl->work_free) w->impl->work_free(w);
  if (w->in != w->out) tyr_tensor_release((tyr_tensor *)w->in);
  tyr_tensor_release(w->out);
  free(w);
}

bool tyr_dist_test(tyr_dist_work *w) {
  if (!w) return true;
  if (w->done) return true;
  bool done = false;
  if (w->impl->test(w, &done)) return true; /* raised: the wait reports it again */
  return done;
}

int tyr_dist_wait_at(tyr_site s, tyr_dist_work *w) {
  if (!w) return tyr_raise(TYR_ERR_ARG, s, "tyr_dist_wait", "handle is NULL");
  int st = w->done ? 0 : w->impl->wait(w);
  work_free(w);
  return st;
}

tyr_dist_work *tyr_dist_all_reduce_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *t,
                                            tyr_dist_op op) {
  return start(s, pg, DK_ALL_REDUCE, t, t, op, 0, false);
}
tyr_dist_work *tyr_dist_broadcast_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *t, int root) {
  return start(s, pg, DK_BROADCAST, t, t, TYR_DIST_SUM, root, false);
}
tyr_dist_work *tyr_dist_reduce_scatter_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *out,
                                                const tyr_tensor *in, tyr_dist_op op) {
  return start(s, pg, DK_REDUCE_SCATTER, out, in, op, 0, false);
}
tyr_dist_work *tyr_dist_all_gather_async_at(tyr_site s, tyr_dist *pg, tyr_tensor *out,
                                            const tyr_tensor *in) {
  return start(s, pg, DK_ALL_GATHER, out, in, TYR_DIST_SUM, 0, false);
}

static int finish(tyr_site s, tyr_dist_work *w) {
  if (!w) {
    const tyr_error *e = tyr_error_last();
    return e && e->status ? e->status : TYR_ERR_STATE;
  }
  return tyr_dist_wait_at(s, w);
}

int tyr_dist_all_reduce_at(tyr_site s, tyr_dist *pg, tyr_tensor *t, tyr_dist_op op) {
  return finish(s, start(s, pg, DK_ALL_REDUCE, t, t, op, 0, true));
}
int tyr_dist_broadcast_at(tyr_site s, tyr_dist *pg, tyr_tensor *t, int root) {
  return finish(s, start(s, pg, DK_BROADCAST, t, t, TYR_DIST_SUM, root, true));
}
int tyr_dist_reduce_scatter_at(tyr_site s, tyr_dist *pg, tyr_tensor *out, const tyr_tensor *in,
                               tyr_dist_op op) {
  return finish(s, start(s, pg, DK_REDUCE_SCATTER, out, in, op, 0, true));
}
int tyr_dist_all_gather_at(tyr_site s, tyr_dist *pg, tyr_tensor *out, const tyr_tensor *in) {
  return finish(s, start(s, pg, DK_ALL_GATHER, out, in, TYR_DIST_SUM, 0, true));
}

double tyr_dist_reduce_scalar_at(tyr_site s, tyr_dist *pg, double x, tyr_dist_op op) {
  if (!pg || pg->cfg.world_size == 1) return x;
  if (!pg->cpu && pg->cuda) { /* a group of GPU ranks without MPI (torchrun): through NCCL */
    tyr_device dev = TYR_DEVICE_CUDA(pg->cfg.local_rank);
    if (pg->nccl) dev.index = pg->nccl_dev; /* the communicator's device */
    const tyr_backend *be = tyr_backend_get(s, "tyr_dist_reduce_scalar", dev);
    if (!be) return x;
    tyr_tensor *t = tyr_keep_e(tyr_empty_at(s, TYR_F64, dev, 1, (int64_t[]){1}));
    if (!t) return x;
    be->from_host(tyr_data_ptr(t), &x, sizeof x, dev);
    if (!tyr_dist_all_reduce_at(s, pg, t, op)) {
      be->synchronize(dev);
      be->to_host(&x, tyr_data_ptr(t), sizeof x, dev);
    }
    tyr_tensor_free(t);
    return x;
  }
  tyr_tensor *t = tyr_from_buffer_at(s, &x, TYR_F64, 1, (int64_t[]){1});
  if (!t) return x;
  tyr_keep_e(t);
  tyr_dist_all_reduce_at(s, pg, t, op);
  tyr_tensor_free(t);
  return x;
}

void tyr__dist_divide(void *p, tyr_dtype dt, int64_t n, double d) {
  switch (dt) {
  case TYR_F32:
    for (int64_t i = 0; i < n; i++) ((float *)p)[i] /= (float)d;
    break;
  case TYR_F64:
    for (int64_t i = 0; i < n; i++) ((double *)p)[i] /= d;
    break;
  case TYR_BF16:
    for (int64_t i = 0; i < n; i++) {
      uint16_t *h = (uint16_t *)p + i;
      *h = tyr_f32_to_bf16(tyr_bf16_to_f32(*h) / (float)d);
    }
    break;
  case TYR_F16:
    for (int64_t i = 0; i < n; i++) {
      uint16_t *h = (uint16_t *)p + i;
      *h = tyr_f32_to_f16(tyr_f16_to_f32(*h) / (float)d);
    }
    break;
  default:
    break;
  }
}

/* ---- one process ----------------------------------------------------------- */

static int local_start(tyr_dist_work *w, const tyr_tensor *in, tyr_tensor *out, int root) {
  (void)root;
  if (in != out) {
    /* reduce_scatter / all_gather of one rank: a copy of the same count */
    tyr_tensor *src =
        tyr_view_raw((tyr_tensor *)in, out->rank, out->shape, out->stride, in->offset);
    if (!src) return TYR_ERR_MEMORY;
    tyr_backend_lookup(out->device)->copy(out, src);
    tyr_tensor_free(src);
  }
  w->done = true;
  return 0;
}
static int local_test(tyr_dist_work *w, bool *done) {
  (void)w;
  *done = true;
  return 0;
}
static int local_wait(tyr_dist_work *w) {
  (void)w;
  return 0;
}

const dist_impl tyr__dist_local = {
    .name = "local", .start = local_start, .test = local_test, .wait = local_wait};
