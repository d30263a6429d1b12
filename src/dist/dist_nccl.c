/* The NCCL backend (CUDA tensors).  The communicator is made at the first
 * collective on a CUDA tensor, on that tensor's device; the unique id comes
 * from rank 0 over MPI when the group has MPI, else over the TCP
 * rendezvous at MASTER_ADDR:MASTER_PORT.  Collectives run on NCCL's own
 * stream, ordered after the work already queued on the device's stream
 * (an event); waiting makes the device's stream wait for them (another
 * event), so the host does not block and backward keeps running while a
 * bucket is reduced.  Built when CUDA and NCCL are (TYR_HAVE_NCCL). */
#ifdef TYR_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "dist/internal.h"

void *tcu_dist_stream(int dev);

typedef struct nccl_state {
  ncclComm_t comm;
  int dev;
  cudaStream_t stream; /* NCCL's */
  void *desc;          /* device buffer for the cross-rank checks */
} nccl_state;

static int nccl_fail(tyr_dist *pg, tyr_site s, const char *op, ncclResult_t r) {
  return tyr_raise(TYR_ERR_STATE, s, op, "rank %d of %d: NCCL error: %s", pg->cfg.rank,
                   pg->cfg.world_size, ncclGetErrorString(r));
}

static int cuda_fail(tyr_dist *pg, tyr_site s, const char *op, cudaError_t e) {
  return tyr_raise(TYR_ERR_DEVICE, s, op, "rank %d of %d: CUDA error: %s", pg->cfg.rank,
                   pg->cfg.world_size, cudaGetErrorString(e));
}

/* The communicator on device dev, made at first use. */
static nccl_state *nccl_get(tyr_dist *pg, tyr_site s, const char *op, int dev) {
  nccl_state *st = pg->nccl;
  if (st) {
    if (st->dev != dev) {
      tyr_raise(TYR_ERR_DEVICE, s, op,
                "rank %d: the group's NCCL communicator is on cuda:%d, this tensor on cuda:%d "
                "(one device per rank)",
                pg->cfg.rank, st->dev, dev);
      return NULL;
    }
    return st;
  }
  if (!tcu_dist_stream(dev)) return NULL; /* raised: no such device */
  st = calloc(1, sizeof *st);
  if (!st) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  st->dev = dev;
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  ncclResult_t r = ncclSuccess;
  if (pg->cfg.rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) {
    nccl_fail(pg, s, op, r);
    free(st);
    return NULL;
  }
  int e = 0;
#ifdef TYR_HAVE_MPI
  if (pg->mpi)
    e = tyr__dist_mpi_bcast_bytes(pg, s, &id, (int)sizeof id);
  else
#endif
    e = tyr__dist_tcp_bcast(&pg->cfg, s, op, &id, sizeof id, pg->timeout_s);
  if (e) {
    free(st);
    return NULL;
  }
  if ((r = ncclCommInitRank(&st->comm, pg->cfg.world_size, id, pg->cfg.rank)) != ncclSuccess) {
    nccl_fail(pg, s, op, r);
    free(st);
    return NULL;
  }
  cudaError_t ce = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
  if (ce == cudaSuccess) ce = cudaMalloc(&st->desc, sizeof(int64_t) * 64 * 4);
  if (ce != cudaSuccess) {
    cuda_fail(pg, s, op, ce);
    ncclCommDestroy(st->comm);
    free(st);
    return NULL;
  }
  pg->nccl = st;
  pg->nccl_dev = dev;
  return st;
}

static void nccl_free(tyr_dist *pg) {
  nccl_state *st = pg->nccl;
  if (!st) return;
  ncclCommDestroy(st->comm);
  cudaStreamDestroy(st->stream);
  cudaFree(st->desc);
  free(st);
  pg->nccl = NULL;
}

static ncclDataType_t nccl_type(tyr_dtype dt) {
  switch (dt) {
  case TYR_F32:
    return ncclFloat32;
  case TYR_F64:
    return ncclFloat64;
  case TYR_BF16:
    return ncclBfloat16;
  case TYR_F16:
    return ncclFloat16;
  default:
    return ncclInt64;
  }
}

/* AVG is ncclAvg, except at world size 1, where it is ncclSum (the
 * identity): NCCL's one-rank ncclAvg reduce-scatter was seen to leave the
 * last few elements unscaled (the NCCL of CUDA 13 on an H200: 3 to 5 of
 * 26912 floats). */
static ncclRedOp_t nccl_op(tyr_dist_op op, int world_size) {
  switch (op) {
  case TYR_DIST_AVG:
    return world_size == 1 ? ncclSum : ncclAvg;
  case TYR_DIST_MAX:
    return ncclMax;
  case TYR_DIST_MIN:
    return ncclMin;
  default:
    return ncclSum;
  }
}

static int nccl_start(tyr_dist_work *w, const tyr_tensor *in, tyr_tensor *out, int root) {
  tyr_dist *pg = w->pg;
  nccl_state *st = nccl_get(pg, w->site, w->op, out->device.index);
  if (!st) return TYR_ERR_STATE;
  cudaStream_t main = tcu_dist_stream(st->dev);
  if (!main) return TYR_ERR_DEVICE;
  cudaEvent_t ready = NULL, done = NULL;
  cudaError_t ce = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
  if (ce == cudaSuccess) ce = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
  if (ce == cudaSuccess) ce = cudaEventRecord(ready, main);
  if (ce == cudaSuccess) ce = cudaStreamWaitEvent(st->stream, ready, 0);
  if (ready) cudaEventDestroy(ready);
  if (ce != cudaSuccess) {
    if (done) cudaEventDestroy(done);
    return cuda_fail(pg, w->site, w->op, ce);
  }
  ncclDataType_t ty = nccl_type(out->dtype);
  ncclResult_t r = ncclSuccess;
  void *po = tyr_data_ptr(out);
  const void *pi = tyr_data_ptr(in);
  switch (w->kind) {
  case DK_ALL_REDUCE:
    r = ncclAllReduce(po, po, (size_t)tyr_numel(out), ty, nccl_op(w->rop, pg->cfg.world_size),
                      st->comm, st->stream);
    break;
  case DK_BROADCAST:
    r = ncclBroadcast(po, po, (size_t)tyr_numel(out), ty, root, st->comm, st->stream);
    break;
  case DK_REDUCE_SCATTER:
    r = ncclReduceScatter(pi, po, (size_t)tyr_numel(out), ty, nccl_op(w->rop, pg->cfg.world_size),
                          st->comm, st->stream);
    break;
  case DK_ALL_GATHER:
    r = ncclAllGather(pi, po, (size_t)tyr_numel(in), ty, st->comm, st->stream);
    break;
  }
  if (r != ncclSuccess) {
    cudaEventDestroy(done);
    return nccl_fail(pg, w->site, w->op, r);
  }
  ce = cudaEventRecord(done, st->stream);
  if (ce != cudaSuccess) {
    cudaStreamSynchronize(st->stream);
    cudaEventDestroy(done);
    return cuda_fail(pg, w->site, w->op, ce);
  }
  cudaEvent_t *pe = malloc(sizeof *pe);
  if (!pe) {
    cudaEventSynchronize(done);
    cudaEventDestroy(done);
    return tyr_raise(TYR_ERR_MEMORY, w->site, w->op, "out of host memory");
  }
  *pe = done;
  w->state = pe;
  return 0;
}

static int nccl_test(tyr_dist_work *w, bool *done) {
  cudaError_t ce = cudaEventQuery(*(cudaEvent_t *)w->state);
  *done = ce == cudaSuccess;
  if (ce != cudaSuccess && ce != cudaErrorNotReady) return cuda_fail(w->pg, w->site, w->op, ce);
  return 0;
}

static int nccl_wait(tyr_dist_work *w) {
  nccl_state *st = w->pg->nccl;
  cudaStream_t main = tcu_dist_stream(st->dev);
  cudaError_t ce = cudaStreamWaitEvent(main, *(cudaEvent_t *)w->state, 0);
  if (ce != cudaSuccess) return cuda_fail(w->pg, w->site, w->op, ce);
  w->done = true;
  return 0;
}

static void nccl_work_free(tyr_dist_work *w) {
  if (!w->state) return;
  cudaEventDestroy(*(cudaEvent_t *)w->state);
  free(w->state);
}

static int nccl_gather_desc(tyr_dist *pg, tyr_site s, const char *op, const int64_t *mine,
                            int64_t *all, int n) {
#ifdef TYR_HAVE_MPI
  if (pg->cpu && pg->cpu->gather_desc) return pg->cpu->gather_desc(pg, s, op, mine, all, n);
#endif
  nccl_state *st = pg->nccl;
  if (!st) return 0; /* made at the first collective's start: checked from the next one */
  if (pg->cfg.world_size > 64) return 0;
  int64_t *d = st->desc;
  cudaError_t ce = cudaMemcpyAsync(d + (size_t)n * pg->cfg.rank, mine, sizeof(int64_t) * n,
                                   cudaMemcpyHostToDevice, st->stream);
  if (ce != cudaSuccess) return cuda_fail(pg, s, op, ce);
  ncclResult_t r =
      ncclAllGather(d + (size_t)n * pg->cfg.rank, d, (size_t)n, ncclInt64, st->comm, st->stream);
  if (r != ncclSuccess) return nccl_fail(pg, s, op, r);
  ce = cudaMemcpyAsync(all, d, sizeof(int64_t) * n * pg->cfg.world_size, cudaMemcpyDeviceToHost,
                       st->stream);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st->stream);
  if (ce != cudaSuccess) return cuda_fail(pg, s, op, ce);
  return 0;
}

static int nccl_barrier(tyr_dist *pg, tyr_site s) {
  (void)s;
  nccl_state *st = pg->nccl;
  if (!st) return 0;
  return cudaStreamSynchronize(st->stream) == cudaSuccess ? 0 : TYR_ERR_DEVICE;
}

const dist_impl tyr__dist_nccl = {.name = "nccl",
                                  .start = nccl_start,
                                  .test = nccl_test,
                                  .wait = nccl_wait,
                                  .work_free = nccl_work_free,
                                  .gather_desc = nccl_gather_desc,
                                  .barrier = nccl_barrier,
                                  .free = nccl_free};
#endif
