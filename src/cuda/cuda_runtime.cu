/* The CUDA backend's run time: initialisation, one stream per device, the
 * caching allocator, host copies through pinned staging buffers, fill,
 * arange and strided/converting copies, the backend table and the public
 * functions of <tyr/cuda.h>.
 *
 * Devices are set up on first use (their context, stream, properties), so
 * a process that uses one GPU of eight touches only that one.  Every kernel
 * and copy of a device goes to its stream, in order; memory freed to the
 * cache is reused by later work on the same stream, which the stream orders
 * after earlier users of the block. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda/cuda_internal.cuh"
#include "cuda/graph_pool.h"
#include "tyr/cuda.h"

/* ---- errors ---------------------------------------------------------------- */
void tcu_fail(const char *file, int line, const char *fn, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tyr_raise(TYR_ERR_DEVICE, (tyr_site){file, line}, fn, "%s", msg);
}

bool tcu_check(cudaError_t e, const char *file, int line, const char *fn, const char *what) {
  if (e == cudaSuccess) return true;
  tcu_fail(file, line, fn, "%s failed: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
  return false;
}

/* ---- devices ----------------------------------------------------------------- */
#define NCLASS TCU_NCLASS
#define STAGE_SLOTS 4
#define STAGE_BYTES ((size_t)4 << 20)

namespace {
struct FreeNode {
  void *p;
  FreeNode *next;
};
} // namespace

struct tyr_cuda_graph {
  int dev;
  bool capturing, ready;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  tcu_gpool pool; /* the graph's memory (src/cuda/graph_pool.h) */
};

namespace {

struct Dev {
  bool ready;
  cudaStream_t stream;
  int sm_count;
  int cc_major;         /* compute capability */
  pthread_mutex_t lock; /* the pool and the staging buffers */
  /* caching allocator */
  FreeNode *free_list[NCLASS];
  size_t allocated, peak, reserved, cached;
  uint64_t n_alloc, n_malloc, n_retry;
  /* pinned staging for host copies */
  int stage_state; /* 0 not tried, 1 ready, -1 unavailable */
  void *stage[STAGE_SLOTS];
  cudaEvent_t stage_ev[STAGE_SLOTS];
  int stage_next;
  /* CUDA graphs (see "graphs" below) */
  tyr_cuda_graph *capture; /* the graph being captured on this device's stream, or NULL */
  tcu_gmap gmap;           /* the used chunks of graphs' pools, by address */
  size_t graph_reserved, graph_idle;
};
} // namespace

static Dev g_dev[TCU_MAX_DEV];
static int g_ndev = -1; /* -1: not asked yet */
static bool g_no_cache;
static FILE *g_alloc_log; /* TYR_CUDA_ALLOC_LOG: one line per allocation and free */
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;

/* Number of devices (0 when the driver has none or fails); asks once. */
static int device_count(void) {
  pthread_mutex_lock(&g_init_lock);
  if (g_ndev < 0) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError(); /* clear: "no device" is an answer, not an error */
      n = 0;
    }
    g_ndev = n > TCU_MAX_DEV ? TCU_MAX_DEV : n;
    const char *nc = getenv("TYR_CUDA_NO_CACHE");
    g_no_cache = nc && *nc && strcmp(nc, "0") != 0;
    const char *lp = getenv("TYR_CUDA_ALLOC_LOG");
    if (lp && *lp && !(g_alloc_log = fopen(lp, "w")))
      fprintf(stderr, "tyr: TYR_CUDA_ALLOC_LOG: cannot open %s for writing: %s\n", lp,
              strerror(errno));
  }
  int n = g_ndev;
  pthread_mutex_unlock(&g_init_lock);
  return n;
}

static bool dev_init(int idx) {
  bool ok = true;
  pthread_mutex_lock(&g_init_lock);
  Dev *d = &g_dev[idx];
  if (!d->ready) {
    ok = CUDA_CHECK(cudaSetDevice(idx)) &&
         CUDA_CHECK(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking)) &&
         CUDA_CHECK(cudaDeviceGetAttribute(&d->sm_count, cudaDevAttrMultiProcessorCount, idx)) &&
         CUDA_CHECK(cudaDeviceGetAttribute(&d->cc_major, cudaDevAttrComputeCapabilityMajor, idx));
    if (ok) {
      pthread_mutex_init(&d->lock, NULL);
      d->ready = true;
    }
  }
  pthread_mutex_unlock(&g_init_lock);
  return ok;
}

cudaStream_t tcu_enter(tyr_device dev) {
  int n = device_count();
  if (dev.type != TYR_CUDA || dev.index < 0 || dev.index >= n) {
    tcu_fail(__FILE__, __LINE__, "cuda", "%s was asked for, but %d CUDA device%s usable",
             tyr_device_name(dev), n, n == 1 ? " is" : "s are");
    return NULL;
  }
  Dev *d = &g_dev[dev.index];
  if (!d->ready && !dev_init(dev.index)) return NULL;
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != dev.index) {
    if (!CUDA_CHECK(cudaSetDevice(dev.index))) return NULL;
  }
  return d->stream;
}

bool tcu_capturing(int dev) {
  return dev >= 0 && dev < TCU_MAX_DEV && g_dev[dev].capture != NULL;
}

bool tcu_refuse_capture(int dev, const char *fn, const char *what) {
  if (!tcu_capturing(dev)) return false;
  tcu_fail(__FILE__, __LINE__, fn,
           "%s cannot run while a CUDA graph is being captured on cuda:%d (captured work is "
           "recorded, not run, and waiting for it would break the capture); do it before "
           "tyr_cuda_graph_begin or after tyr_cuda_graph_end (a value the graph computes can be "
           "read after tyr_cuda_graph_launch)",
           what, dev);
  return true;
}

int tcu_sm_count(int dev) {
  return dev >= 0 && dev < TCU_MAX_DEV && g_dev[dev].ready ? g_dev[dev].sm_count : 1;
}

int tcu_cc_major(int dev) {
  if (dev < 0 || dev >= TCU_MAX_DEV) return 0;
  if (g_dev[dev].ready) return g_dev[dev].cc_major;
  int m = 0; /* a device not entered yet: asked, not kept */
  if (cudaDeviceGetAttribute(&m, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    cudaGetLastError(); /* not sticky: clear it */
    m = 0;
  }
  return m;
}

/* ---- caching allocator -----------------------------------------------------
 * Sizes are rounded up to a class (tcu_size_class: 512 bytes, then 8 classes
 * per power of two, at most 12.5% waste).  Each class keeps a free list of
 * whole blocks; outside graphs a block is never split, so no bookkeeping per
 * pointer is needed: the caller gives the size back on free (the backend
 * table's contract).  Graphs split their blocks (src/cuda/graph_pool.h). */
static int size_class(size_t n, size_t *rounded) {
  return tcu_size_class(n, rounded);
}

/* Returns every cached block of d to the driver (lock held). */
static void release_cached(Dev *d) {
  for (int c = 0; c < NCLASS; c++) {
    while (d->free_list[c]) {
      FreeNode *f = d->free_list[c];
      d->free_list[c] = f->next;
      cudaFree(f->p);
      free(f);
    }
  }
  d->reserved -= d->cached;
  d->cached = 0;
}

/* ---- graphs' memory (lock held) --------------------------------------------- */
/* Gives a block of r bytes (a class size) back to the cache, or to the
   driver with the cache off, but never during a capture: cudaFree would end
   it.  Out of host memory the block stays out of every pool. */
static void cache_put(Dev *d, void *p, size_t r) {
  size_t rr;
  int c = size_class(r, &rr);
  if (g_no_cache && !d->capture) {
    cudaFree(p);
    d->reserved -= r;
    return;
  }
  FreeNode *f = (FreeNode *)malloc(sizeof *f);
  if (!f) return;
  f->p = p;
  f->next = d->free_list[c];
  d->free_list[c] = f;
  d->cached += r;
}

/* An idle segment of a freed graph back to the cache (tcu_gpool_clear) */
static void graph_give_back(void *ctx, void *p, size_t r) {
  Dev *d = (Dev *)ctx;
  d->graph_reserved -= r;
  d->graph_idle -= r;
  cache_put(d, p, r);
}

/* A line of the TYR_CUDA_ALLOC_LOG trace (lock held): the event (a
 * allocation, f free, B and E a capture's begin and end), device, pointer,
 * the size class asked for and the block's size in bytes, whether a capture
 * was running, and for an allocation where the block came from (g the
 * capturing graph's idle blocks, c the cache, m cudaMalloc). */
static void alloc_log(char ev, int dev, const void *p, size_t want, size_t r, bool capturing,
                      char src) {
  if (g_alloc_log)
    fprintf(g_alloc_log, "%c %d %p %zu %zu %d %c\n", ev, dev, p, want, r, capturing, src);
}

/* A block of class c (r bytes) from the cache or the driver; NULL when the
   device is out of memory (lock held).  *src says which ('c' or 'm'). */
static void *block_get(Dev *d, int c, size_t r, char *src) {
  FreeNode *f = d->free_list[c];
  void *p = NULL;
  if (f) {
    p = f->p;
    d->free_list[c] = f->next;
    free(f);
    d->cached -= r;
    *src = 'c';
    return p;
  }
  *src = 'm';
  /* during a capture (relaxed mode) cudaMalloc is allowed; cudaFree is not,
     so the cache is not emptied for a retry then */
  cudaError_t e = cudaMalloc(&p, r);
  if (e == cudaErrorMemoryAllocation && d->cached > 0 && !d->capture) {
    cudaGetLastError();
    release_cached(d); /* cudaFree waits for the device */
    d->n_retry++;
    e = cudaMalloc(&p, r);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (e != cudaErrorMemoryAllocation) /* out of memory is reported by the caller */
      tcu_check(e, __FILE__, __LINE__, "cuda_alloc", "cudaMalloc");
    return NULL;
  }
  d->reserved += r;
  d->n_malloc++;
  return p;
}

/* An allocation during g's capture (lock held): the smallest idle chunk of
   g's pool that fits, else a new segment of the request's class whose rest
   stays idle for later requests. */
static void *graph_alloc(Dev *d, int dev, tyr_cuda_graph *g, size_t nbytes) {
  size_t n = (nbytes + TCU_GCHUNK_ALIGN - 1) / TCU_GCHUNK_ALIGN * TCU_GCHUNK_ALIGN, r;
  int c = size_class(n, &r);
  if (!tcu_gmap_reserve(&d->gmap)) return NULL; /* out of host memory: reported by the caller */
  size_t idle0 = g->pool.idle, res0 = g->pool.reserved;
  tcu_gchunk *ch = tcu_gpool_take(&g->pool, n);
  char src = 'g';
  if (!ch) {
    void *p = block_get(d, c, r, &src);
    if (!p) return NULL;
    if (!tcu_gpool_add(&g->pool, p, r, n, &ch)) {
      cache_put(d, p, r);
      return NULL;
    }
  }
  d->graph_reserved += g->pool.reserved - res0;
  d->graph_idle = d->graph_idle + g->pool.idle - idle0;
  tcu_gmap_put(&d->gmap, ch->p, ch);
  d->allocated += ch->size;
  if (d->allocated > d->peak) d->peak = d->allocated;
  d->n_alloc++;
  alloc_log('a', dev, ch->p, n, ch->size, true, src);
  return ch->p;
}

static void *pool_alloc(size_t nbytes, tyr_device dev) {
  cudaStream_t st = tcu_enter(dev);
  if (!st) return NULL;
  Dev *d = &g_dev[dev.index];
  void *p = NULL;
  pthread_mutex_lock(&d->lock);
  if (d->capture) {
    p = graph_alloc(d, dev.index, d->capture, nbytes);
    pthread_mutex_unlock(&d->lock);
    return p;
  }
  size_t r;
  int c = size_class(nbytes, &r);
  char src;
  p = block_get(d, c, r, &src);
  if (p) {
    d->allocated += r;
    if (d->allocated > d->peak) d->peak = d->allocated;
    d->n_alloc++;
    alloc_log('a', dev.index, p, r, r, false, src);
  }
  pthread_mutex_unlock(&d->lock);
  return p;
}

/* The free of a graph's chunk (lock held): back to its graph's pool.  A
   chunk that outlived its graph returns to its segment, which goes back to
   the cache with its last chunk, or joins the graph being captured, whose
   work may have used the chunk (each replay writes it again).  Such a
   segment counts as graph memory until it goes back, so that
   reserved = allocated + cached + graph_idle holds throughout. */
static void graph_free(Dev *d, tcu_gchunk *ch) {
  size_t n = ch->size;
  tcu_gmap_del(&d->gmap, ch->p);
  d->allocated -= n;
  if (!ch->seg->pool && d->capture) tcu_gpool_adopt(&d->capture->pool, ch);
  void *base;
  size_t size;
  if (tcu_gpool_release(ch, &base, &size)) { /* the segment is gone */
    d->graph_reserved -= size;
    d->graph_idle -= size - n;
    cache_put(d, base, size);
  } else {
    d->graph_idle += n;
  }
}

static void pool_free(void *p, size_t nbytes, tyr_device dev) {
  if (!p || dev.index < 0 || dev.index >= TCU_MAX_DEV || !g_dev[dev.index].ready) return;
  Dev *d = &g_dev[dev.index];
  pthread_mutex_lock(&d->lock);
  /* a graph's chunk: the table knows its size */
  tcu_gchunk *ch = tcu_gmap_find(&d->gmap, p);
  if (ch) {
    alloc_log('f', dev.index, p, ch->size, ch->size, d->capture != NULL, '-');
    graph_free(d, ch);
    pthread_mutex_unlock(&d->lock);
    return;
  }
  size_t r;
  size_class(nbytes ? nbytes : 1, &r);
  d->allocated -= r;
  alloc_log('f', dev.index, p, r, r, d->capture != NULL, '-');
  if (d->capture) {
    /* a block freed during a capture joins the capturing graph: captured
       work uses it again at every replay, so eager allocations must not
       take it (out of host memory it stays out of every pool) */
    tcu_gpool *cp = &d->capture->pool;
    if (tcu_gpool_add(cp, p, r, 0, NULL)) {
      d->graph_reserved += r;
      d->graph_idle += r;
    }
  } else {
    cache_put(d, p, r);
  }
  pthread_mutex_unlock(&d->lock);
}

void *tcu_alloc(size_t nbytes, int dev) {
  void *p = pool_alloc(nbytes ? nbytes : 1, TYR_DEVICE_CUDA(dev));
  if (!p)
    tcu_fail(__FILE__, __LINE__, "cuda_alloc",
             "cannot allocate %zu bytes of temporary memory on cuda:%d", nbytes, dev);
  return p;
}
void tcu_free(void *p, size_t nbytes, int dev) {
  pool_free(p, nbytes ? nbytes : 1, TYR_DEVICE_CUDA(dev));
}

/* ---- temporaries with a tensor header -------------------------------------- */
tyr_tensor *tcu_temp_like(const tyr_tensor *t, tyr_dtype dt, TmpTensor *tmp) {
  memset(tmp, 0, sizeof *tmp);
  int64_t n = tyr_numel(t);
  size_t nb = (size_t)n * tyr_dtype_size(dt);
  tmp->st.data = tcu_alloc(nb, t->device.index);
  if (!tmp->st.data) return NULL;
  tmp->st.nbytes = nb;
  tmp->st.refcount = 1;
  tmp->st.device = t->device;
  tmp->t.storage = &tmp->st;
  tmp->t.rank = t->rank;
  int64_t s = 1;
  for (int i = t->rank - 1; i >= 0; i--) {
    tmp->t.shape[i] = t->shape[i];
    tmp->t.stride[i] = s;
    s *= t->shape[i];
  }
  tmp->t.dtype = dt;
  tmp->t.device = t->device;
  tmp->t.refcount = 1;
  return &tmp->t;
}

const tyr_tensor *tcu_contiguous(const tyr_tensor *t, TmpTensor *tmp) {
  if (tyr_is_contiguous(t)) return t;
  tyr_tensor *c = tcu_temp_like(t, t->dtype, tmp);
  if (c) tcu_copy(c, t);
  return c;
}

void tcu_release(const tyr_tensor *t, TmpTensor *tmp) {
  if (t && t == &tmp->t) tcu_free(tmp->st.data, tmp->st.nbytes, tmp->st.device.index);
}

/* ---- host copies --------------------------------------------------------------
 * Through STAGE_SLOTS pinned buffers of STAGE_BYTES: uploads copy into a
 * free slot and return at once (the DMA runs on the stream, ahead of the
 * kernels that use the data); downloads keep several chunks in flight and
 * copy each out as it lands.  Without pinned memory, plain copies and a
 * stream synchronisation. */
static bool stage_ready(Dev *d) {
  if (d->stage_state == 0) {
    d->stage_state = 1;
    for (int i = 0; i < STAGE_SLOTS; i++) {
      if (cudaHostAlloc(&d->stage[i], STAGE_BYTES, cudaHostAllocDefault) != cudaSuccess ||
          cudaEventCreateWithFlags(&d->stage_ev[i], cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        d->stage_state = -1;
        break;
      }
    }
  }
  return d->stage_state == 1;
}

static void cuda_from_host(void *dst, const void *src, size_t n, tyr_device dev) {
  cudaStream_t st = tcu_enter(dev);
  if (!st || n == 0) return;
  if (tcu_refuse_capture(dev.index, "cuda_from_host", "a copy from host memory to the device"))
    return;
  Dev *d = &g_dev[dev.index];
  pthread_mutex_lock(&d->lock);
  if (!stage_ready(d)) {
    if (CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, st)))
      CUDA_CHECK(cudaStreamSynchronize(st));
  } else {
    for (size_t off = 0; off < n; off += STAGE_BYTES) {
      size_t len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
      int slot = d->stage_next;
      d->stage_next = (slot + 1) % STAGE_SLOTS;
      if (!CUDA_CHECK(cudaEventSynchronize(d->stage_ev[slot]))) break;
      memcpy(d->stage[slot], (const char *)src + off, len);
      if (!CUDA_CHECK(cudaMemcpyAsync((char *)dst + off, d->stage[slot], len,
                                      cudaMemcpyHostToDevice, st)) ||
          !CUDA_CHECK(cudaEventRecord(d->stage_ev[slot], st)))
        break;
    }
  }
  pthread_mutex_unlock(&d->lock);
}

static void cuda_to_host(void *dst, const void *src, size_t n, tyr_device dev) {
  cudaStream_t st = tcu_enter(dev);
  if (!st || n == 0) return;
  if (tcu_refuse_capture(dev.index, "cuda_to_host",
                         "a copy from the device to host memory (tyr_to_host, tyr_to_device to "
                         "the CPU)")) {
    memset(dst, 0, n);
    return;
  }
  Dev *d = &g_dev[dev.index];
  pthread_mutex_lock(&d->lock);
  if (!stage_ready(d)) {
    if (CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, st)))
      CUDA_CHECK(cudaStreamSynchronize(st));
  } else {
    size_t nchunks = (n + STAGE_BYTES - 1) / STAGE_BYTES;
    bool ok = true;
    /* earlier uploads out of a slot precede these downloads on the stream */
    for (size_t i = 0; ok && i < nchunks && i < STAGE_SLOTS; i++) {
      size_t off = i * STAGE_BYTES, len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
      ok = CUDA_CHECK(cudaMemcpyAsync(d->stage[i], (const char *)src + off, len,
                                      cudaMemcpyDeviceToHost, st)) &&
           CUDA_CHECK(cudaEventRecord(d->stage_ev[i], st));
    }
    for (size_t i = 0; ok && i < nchunks; i++) {
      int slot = (int)(i % STAGE_SLOTS);
      size_t off = i * STAGE_BYTES, len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
      if (!(ok = CUDA_CHECK(cudaEventSynchronize(d->stage_ev[slot])))) break;
      memcpy((char *)dst + off, d->stage[slot], len);
      size_t j = i + STAGE_SLOTS;
      if (j < nchunks) {
        size_t offj = j * STAGE_BYTES, lenj = n - offj < STAGE_BYTES ? n - offj : STAGE_BYTES;
        ok = CUDA_CHECK(cudaMemcpyAsync(d->stage[slot], (const char *)src + offj, lenj,
                                        cudaMemcpyDeviceToHost, st)) &&
             CUDA_CHECK(cudaEventRecord(d->stage_ev[slot], st));
      }
    }
    d->stage_next = 0;
  }
  pthread_mutex_unlock(&d->lock);
}

static double cuda_read_scalar(const tyr_tensor *t) {
  if (tcu_refuse_capture(t->device.index, "cuda_read_scalar",
                         "reading a device value on the host (tyr_item, an index or target "
                         "check)"))
    return NAN;
  uint64_t buf = 0;
  cuda_to_host(&buf, tyr_data_ptr(t), tyr_dtype_size(t->dtype), t->device);
  return tyr__load_f64(&buf, t->dtype);
}

static void cuda_synchronize(tyr_device dev) {
  cudaStream_t st = tcu_enter(dev);
  if (st && !tcu_refuse_capture(dev.index, "cuda_synchronize", "waiting for the device"))
    CUDA_CHECK(cudaStreamSynchronize(st));
}

static bool cuda_capturing(tyr_device dev) {
  return dev.type == TYR_CUDA && tcu_capturing(dev.index);
}

/* ---- fill, arange, copy --------------------------------------------------------- */
template <typename U>
__global__ void fill_kernel(U *p, U v, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    p[i] = v;
}

template <typename U, typename I>
__global__ void fill_strided_kernel(U *p, U v, Layout<1> L, I n) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
    int64_t off[1];
    layout_offsets<1, I>(L, i, off);
    p[off[0]] = v;
  }
}

template <typename U>
static void launch_fill(void *p, const void *bits, const tyr_tensor *out, int64_t n,
                        cudaStream_t st) {
  U v;
  memcpy(&v, bits, sizeof v);
  int dev = out->device.index;
  if (tyr_is_contiguous(out)) {
    fill_kernel<U><<<tcu_blocks(n, 256, dev), 256, 0, st>>>((U *)p, v, n);
  } else {
    const tyr_tensor *ts[1] = {out};
    Layout<1> L = make_layout<1>(ts);
    if (n < INT32_MAX)
      fill_strided_kernel<U, uint32_t>
          <<<tcu_blocks(n, 256, dev), 256, 0, st>>>((U *)p, v, L, (uint32_t)n);
    else
      fill_strided_kernel<U, int64_t><<<tcu_blocks(n, 256, dev), 256, 0, st>>>((U *)p, v, L, n);
  }
  LAUNCH_CHECK();
}

void tcu_fill(tyr_tensor *out, double value) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  size_t es = tyr_dtype_size(out->dtype);
  unsigned char bits[8] = {0};
  tyr__store_f64(bits, out->dtype, value); /* the CPU's conversion, exactly */
  bool zero = true;
  for (size_t i = 0; i < es; i++) zero = zero && bits[i] == 0;
  void *p = tyr_data_ptr(out);
  if ((zero || es == 1) && tyr_is_contiguous(out)) {
    CUDA_CHECK(cudaMemsetAsync(p, bits[0], (size_t)n * es, st));
    return;
  }
  switch (es) {
  case 1:
    launch_fill<uint8_t>(p, bits, out, n, st);
    break;
  case 2:
    launch_fill<uint16_t>(p, bits, out, n, st);
    break;
  case 4:
    launch_fill<uint32_t>(p, bits, out, n, st);
    break;
  default:
    launch_fill<uint64_t>(p, bits, out, n, st);
    break;
  }
}

__global__ void arange_kernel(void *p, int dt, double start, double step, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    st_any(p, dt, i, fma((double)i, step, start)); /* as src/cpu: an explicit fma */
}

void tcu_arange(tyr_tensor *out, double start, double step) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  arange_kernel<<<tcu_blocks(n, 256, out->device.index), 256, 0, st>>>(
      tyr_data_ptr(out), (int)out->dtype, start, step, n);
  LAUNCH_CHECK();
}

/* same dtype, any strides: moves elements of U (the element's size) */
template <typename U, typename I>
__global__ void copy_strided_kernel(U *o, const U *s, Layout<2> L, I n) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
    int64_t off[2];
    layout_offsets<2, I>(L, i, off);
    o[off[0]] = s[off[1]];
  }
}

/* dtype conversion, any strides: through double, as tyr__load/store_f64 */
template <typename I>
__global__ void convert_kernel(void *o, int odt, const void *s, int sdt, Layout<2> L, I n) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
    int64_t off[2];
    layout_offsets<2, I>(L, i, off);
    st_any(o, odt, off[0], ld_any(s, sdt, off[1]));
  }
}

/* dtype conversion between float types, both contiguous: eight elements a
 * thread through 16-byte loads and stores when both are 16-byte aligned.
 * The value goes through the source's compute type, then the target's
 * (f64 -> bf16 rounds to f32 first), as st_any does. */
template <typename T>
struct __align__(16) Pack8 {
  T v[8];
};
/* Elements i0, i0 + stride, ... of n: 8-element groups of 16-byte loads and
   stores for the first ngroups * 8, then one at a time */
template <typename S, typename D>
__device__ __forceinline__ void convert_range(D *o, const S *s, int64_t n, int64_t ngroups,
                                              int64_t i0, int64_t stride) {
  for (int64_t g = i0; g < ngroups; g += stride) {
    Pack8<S> a;
    Pack8<D> r;
    const uint4 *src = reinterpret_cast<const uint4 *>(s + g * 8);
#pragma unroll
    for (int k = 0; k < (int)sizeof(S) / 2; k++) reinterpret_cast<uint4 *>(&a)[k] = src[k];
#pragma unroll
    for (int k = 0; k < 8; k++) r.v[k] = from_c<D>((typename Acc<D>::type)to_c(a.v[k]));
    uint4 *dst = reinterpret_cast<uint4 *>(o + g * 8);
#pragma unroll
    for (int k = 0; k < (int)sizeof(D) / 2; k++) dst[k] = reinterpret_cast<const uint4 *>(&r)[k];
  }
  for (int64_t i = ngroups * 8 + i0; i < n; i += stride)
    o[i] = from_c<D>((typename Acc<D>::type)to_c(s[i]));
}

template <typename S, typename D>
__global__ void convert_contig(D *o, const S *s, int64_t n, int64_t ngroups) {
  convert_range<S, D>(o, s, n, ngroups, blockIdx.x * (int64_t)blockDim.x + threadIdx.x,
                      (int64_t)gridDim.x * blockDim.x);
}

static bool is_float_dtype(tyr_dtype dt) {
  return dt == TYR_F32 || dt == TYR_F64 || dt == TYR_BF16 || dt == TYR_F16;
}

template <typename S>
static void launch_convert_contig(tyr_tensor *out, const S *s, int64_t n, int dev,
                                  cudaStream_t st) {
  void *o = tyr_data_ptr(out);
  int64_t ngroups = tcu_aligned16(o) && tcu_aligned16(s) ? n / 8 : 0;
  unsigned blocks = tcu_blocks(ngroups ? ngroups : n, 256, dev);
  TCU_FLOAT_DISPATCH(out->dtype, convert_contig<S, scalar_t>
                     <<<blocks, 256, 0, st>>>((scalar_t *)o, s, n, ngroups));
  LAUNCH_CHECK();
}

template <typename U, typename I>
static void launch_copy(void *o, const void *s, const Layout<2> &L, I n, int dev, cudaStream_t st) {
  copy_strided_kernel<U, I>
      <<<tcu_blocks((int64_t)n, 256, dev), 256, 0, st>>>((U *)o, (const U *)s, L, n);
}

template <typename I>
static void copy_any(tyr_tensor *out, const tyr_tensor *src, const Layout<2> &L, I n,
                     cudaStream_t st) {
  int dev = out->device.index;
  void *o = tyr_data_ptr(out);
  const void *s = tyr_data_ptr(src);
  if (out->dtype != src->dtype) {
    convert_kernel<I><<<tcu_blocks((int64_t)n, 256, dev), 256, 0, st>>>(o, (int)out->dtype, s,
                                                                        (int)src->dtype, L, n);
  } else {
    switch (tyr_dtype_size(out->dtype)) {
    case 1:
      launch_copy<uint8_t, I>(o, s, L, n, dev, st);
      break;
    case 2:
      launch_copy<uint16_t, I>(o, s, L, n, dev, st);
      break;
    case 4:
      launch_copy<uint32_t, I>(o, s, L, n, dev, st);
      break;
    default:
      launch_copy<uint64_t, I>(o, s, L, n, dev, st);
      break;
    }
  }
  LAUNCH_CHECK();
}

void tcu_copy(tyr_tensor *out, const tyr_tensor *src) {
  cudaStream_t st = tcu_enter(out->device);
  int64_t n = tyr_numel(out);
  if (!st || n == 0) return;
  if (out->dtype == src->dtype && tyr_is_contiguous(out) && tyr_is_contiguous(src)) {
    CUDA_CHECK(cudaMemcpyAsync(tyr_data_ptr(out), tyr_data_ptr(src),
                               (size_t)n * tyr_dtype_size(out->dtype), cudaMemcpyDeviceToDevice,
                               st));
    return;
  }
  if (is_float_dtype(out->dtype) && is_float_dtype(src->dtype) && tyr_is_contiguous(out) &&
      tyr_is_contiguous(src)) {
    TCU_FLOAT_DISPATCH(src->dtype,
                       launch_convert_contig<scalar_t>(out, (const scalar_t *)tyr_data_ptr(src), n,
                                                       out->device.index, st));
    return;
  }
  const tyr_tensor *ts[2] = {out, src};
  Layout<2> L = make_layout<2>(ts);
  if (n < INT32_MAX)
    copy_any<uint32_t>(out, src, L, (uint32_t)n, st);
  else
    copy_any<int64_t>(out, src, L, n, st);
}

/* ---- conversions of many tensors -------------------------------------------------
 * One launch per CONV_MT tensors (the weights a mixed-precision step casts
 * to bf16, say): the table of pointers and sizes is a kernel parameter, so
 * a CUDA graph captures it by value.  The blocks of tensor t are
 * end[t - 1] .. end[t] - 1, each running convert_contig's loop over its
 * tensor (eight elements a thread where both pointers are 16-byte aligned):
 * the same values as tcu_copy, one launch instead of one per tensor. */
#define CONV_MT 64
struct ConvMany {
  const void *s[CONV_MT];
  void *o[CONV_MT];
  int64_t n[CONV_MT];
  int64_t ngroups[CONV_MT]; /* 8-element groups; 0: unaligned, one at a time */
  int end[CONV_MT];
  int k;
};
static_assert(sizeof(ConvMany) <= 4096, "conversion table over 4 KB");

template <typename S, typename D>
__global__ void convert_many_kernel(const __grid_constant__ ConvMany a) {
  int bid = (int)blockIdx.x, t = tcu_many_tensor(a.end, a.k, bid);
  int first = t ? a.end[t - 1] : 0, nb = a.end[t] - first;
  convert_range<S, D>((D *)a.o[t], (const S *)a.s[t], a.n[t], a.ngroups[t],
                      (int64_t)(bid - first) * blockDim.x + threadIdx.x, (int64_t)nb * blockDim.x);
}

static int g_copy_many_launches; /* in the last copy_many (a test hook's) */

template <typename S>
static void launch_convert_many(tyr_dtype odt, const ConvMany &a, int blocks, cudaStream_t st) {
  TCU_FLOAT_DISPATCH(odt, convert_many_kernel<S, scalar_t><<<(unsigned)blocks, 256, 0, st>>>(a));
  LAUNCH_CHECK();
  g_copy_many_launches++;
}

/* Test hook: the launches of convert_many_kernel in the last copy_many */
extern "C" int tcu_copy_many_last_launches(void) {
  return g_copy_many_launches;
}

static void copy_many(int n, tyr_tensor *const *outs, const tyr_tensor *const *srcs) {
  g_copy_many_launches = 0;
  if (n <= 0) return;
  tyr_device d = outs[0]->device;
  cudaStream_t st = tcu_enter(d);
  if (!st) return;
  tyr_dtype sdt = srcs[0]->dtype, odt = outs[0]->dtype;
  ConvMany a;
  memset(&a, 0, sizeof a);
  int blocks = 0;
  for (int i = 0; i < n; i++) {
    int64_t numel = tyr_numel(outs[i]);
    if (numel == 0) continue;
    if (srcs[i]->dtype != sdt || outs[i]->dtype != odt || !is_float_dtype(sdt) ||
        !is_float_dtype(odt) || !tyr_is_contiguous(outs[i]) || !tyr_is_contiguous(srcs[i])) {
      tcu_copy(outs[i], srcs[i]); /* outside the contract: one at a time */
      continue;
    }
    int k = a.k++;
    a.s[k] = tyr_data_ptr(srcs[i]);
    a.o[k] = tyr_data_ptr(outs[i]);
    a.n[k] = numel;
    a.ngroups[k] = tcu_aligned16(a.s[k]) && tcu_aligned16(a.o[k]) ? numel / 8 : 0;
    blocks += (int)tcu_blocks(a.ngroups[k] ? a.ngroups[k] : numel, 256, d.index);
    a.end[k] = blocks;
    if (a.k == CONV_MT) {
      TCU_FLOAT_DISPATCH(sdt, launch_convert_many<scalar_t>(odt, a, blocks, st));
      a.k = 0;
      blocks = 0;
    }
  }
  if (a.k > 0) TCU_FLOAT_DISPATCH(sdt, launch_convert_many<scalar_t>(odt, a, blocks, st));
}

/* ---- the table --------------------------------------------------------------------
 * Every entry of struct tyr_backend is set.  An entry added to the struct
 * later stays NULL here until it has a CUDA kernel; the ops layer raises
 * TYR_ERR_DEVICE ("no CUDA kernel for this op") instead of calling it. */
static tyr_backend g_table;

static void table_init(void) {
  g_table.name = "cuda";
  g_table.alloc = pool_alloc;
  g_table.free = pool_free;
  g_table.to_host = cuda_to_host;
  g_table.from_host = cuda_from_host;
  g_table.read_scalar = cuda_read_scalar;
  g_table.synchronize = cuda_synchronize;
  g_table.fill = tcu_fill;
  g_table.arange = tcu_arange;
  g_table.copy = tcu_copy;
  g_table.random = tcu_random;
  g_table.unary = tcu_unary;
  g_table.unary_backward = tcu_unary_backward;
  g_table.binary = tcu_binary;
  g_table.where = tcu_where;
  g_table.reduce = tcu_reduce;
  g_table.matmul = tcu_matmul;
  g_table.softmax = tcu_softmax;
  g_table.softmax_backward = tcu_softmax_backward;
  g_table.layer_norm = tcu_layer_norm;
  g_table.layer_norm_backward = tcu_layer_norm_backward;
  g_table.index_select = tcu_index_select;
  g_table.index_add = tcu_index_add;
  g_table.gather = tcu_gather;
  g_table.scatter_add = tcu_scatter_add;
  g_table.cross_entropy = tcu_cross_entropy;
  g_table.cross_entropy_backward = tcu_cross_entropy_backward;
  g_table.cross_entropy_fused = tcu_cross_entropy_fused;
  g_table.matmul_bias = tcu_matmul_bias;
  g_table.adamw_step = tcu_adamw_step;
  g_table.sgd_step = tcu_sgd_step;
  g_table.sum_squares = tcu_sum_squares;
  g_table.scale_ = tcu_scale_;
  g_table.sdpa = tcu_sdpa;
  g_table.sdpa_backward = tcu_sdpa_backward;
  g_table.rotary = tcu_rotary;
  g_table.sum_squares_many = tcu_sum_squares_many;
  g_table.copy_many = copy_many;
  g_table.capturing = cuda_capturing;
  g_table.adamw_step_dev = tcu_adamw_step_dev;
  g_table.clip_grad_norm = tcu_clip_grad_norm;
  g_table.adamw_step_many = tcu_adamw_step_many;
  g_table.matmul_bgrad = tcu_matmul_bgrad;
  g_table.matmul_act = tcu_matmul_act;
  g_table.matmul_dact = tcu_matmul_dact;
  g_table.cumsum = tcu_cumsum;
  tcu_conv_register(&g_table); /* src/cuda/conv.cu */
}

/* Called by the dispatch layer the first time a CUDA device is asked for;
 * non-zero when no GPU is usable. */
extern "C" int tyr_cuda_init_backend(void) {
  if (device_count() <= 0) return 1;
  pthread_mutex_lock(&g_init_lock);
  if (!g_table.name) table_init();
  pthread_mutex_unlock(&g_init_lock);
  tyr_backend_register(TYR_CUDA, &g_table);
  return 0;
}

/* ---- <tyr/cuda.h> ------------------------------------------------------------------ */
extern "C" bool tyr_cuda_available(void) {
  return device_count() > 0;
}

extern "C" int tyr_cuda_device_count(void) {
  return device_count();
}

static Dev *stats_dev(tyr_site s, const char *op, int dev) {
  int n = device_count();
  if (n == 0) {
    tyr_raise(TYR_ERR_DEVICE, s, op, "no CUDA GPU is usable");
    return NULL;
  }
  if (dev < 0 || dev >= n) {
    tyr_raise(TYR_ERR_ARG, s, op, "device %d is out of range (%d CUDA device%s)", dev, n,
              n == 1 ? "" : "s");
    return NULL;
  }
  return &g_dev[dev];
}

extern "C" int tyr_cuda_memory_stats_at(tyr_site s, int dev, tyr_cuda_mem_stats *out) {
  const char *op = "tyr_cuda_memory_stats";
  if (!out) return tyr_raise(TYR_ERR_ARG, s, op, "out is NULL");
  Dev *d = stats_dev(s, op, dev);
  if (!d) return tyr_error_last()->status;
  memset(out, 0, sizeof *out);
  if (!d->ready) return 0; /* never used: nothing allocated */
  pthread_mutex_lock(&d->lock);
  out->allocated = d->allocated;
  out->peak_allocated = d->peak;
  out->reserved = d->reserved;
  out->cached = d->cached;
  out->n_alloc = d->n_alloc;
  out->n_cuda_malloc = d->n_malloc;
  out->n_oom_retry = d->n_retry;
  out->graph_reserved = d->graph_reserved;
  out->graph_idle = d->graph_idle;
  pthread_mutex_unlock(&d->lock);
  return 0;
}

extern "C" int tyr_cuda_reset_peak_at(tyr_site s, int dev) {
  Dev *d = stats_dev(s, "tyr_cuda_reset_peak", dev);
  if (!d) return tyr_error_last()->status;
  if (!d->ready) return 0;
  pthread_mutex_lock(&d->lock);
  d->peak = d->allocated;
  pthread_mutex_unlock(&d->lock);
  return 0;
}

extern "C" void tyr_cuda_empty_cache(void) {
  int n = device_count();
  for (int i = 0; i < n; i++) {
    Dev *d = &g_dev[i];
    if (!d->ready) continue;
    if (!tcu_enter(TYR_DEVICE_CUDA(i))) continue;
    if (tcu_refuse_capture(i, "tyr_cuda_empty_cache", "tyr_cuda_empty_cache")) continue;
    pthread_mutex_lock(&d->lock);
    CUDA_CHECK(cudaStreamSynchronize(d->stream));
    release_cached(d);
    pthread_mutex_unlock(&d->lock);
  }
}

extern "C" int tyr_cuda_synchronize_at(tyr_site s) {
  int n = device_count();
  for (int i = 0; i < n; i++) {
    if (!g_dev[i].ready) continue;
    if (!tcu_enter(TYR_DEVICE_CUDA(i))) return TYR_ERR_DEVICE;
    if (tcu_capturing(i))
      return tyr_raise(TYR_ERR_STATE, s, "tyr_cuda_synchronize",
                       "cannot run while a CUDA graph is being captured on cuda:%d (it would "
                       "wait for work that is recorded, not run); call it after "
                       "tyr_cuda_graph_end",
                       i);
    cudaError_t e = cudaStreamSynchronize(g_dev[i].stream);
    if (e != cudaSuccess)
      return tyr_raise(TYR_ERR_DEVICE, s, "tyr_cuda_synchronize", "cuda:%d: %s (%s)", i,
                       cudaGetErrorName(e), cudaGetErrorString(e));
  }
  return 0;
}

/* ---- graphs --------------------------------------------------------------------------
 * Capture records the work issued on the device's stream (relaxed mode, so
 * that the allocator may still cudaMalloc); every block allocated during the
 * capture, and every block freed during it, becomes the graph's: a
 * segment of its pool, split for later allocations of the same capture and
 * merged again as they are freed (src/cuda/graph_pool.h), reserved for the
 * graph until tyr_cuda_graph_free, since each replay writes it again.  Host copies,
 * reads of device values and waits refuse to run during a capture (they
 * would either fail inside CUDA and invalidate it, or read values that are
 * not computed yet). */
static tyr_cuda_graph *graph_check(tyr_site s, const char *op, tyr_cuda_graph *g) {
  if (!g) tyr_raise(TYR_ERR_ARG, s, op, "graph is NULL");
  return g;
}

extern "C" tyr_cuda_graph *tyr_cuda_graph_begin_at(tyr_site s, int dev) {
  const char *op = "tyr_cuda_graph_begin";
  Dev *d = stats_dev(s, op, dev);
  if (!d) return NULL;
  cudaStream_t st = tcu_enter(TYR_DEVICE_CUDA(dev));
  if (!st) return NULL;
  if (d->capture) {
    tyr_raise(TYR_ERR_STATE, s, op,
              "a CUDA graph is already being captured on cuda:%d (end it with "
              "tyr_cuda_graph_end first)",
              dev);
    return NULL;
  }
  tyr_cuda_graph *g = (tyr_cuda_graph *)calloc(1, sizeof *g);
  if (!g) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  g->dev = dev;
  cudaError_t e = cudaStreamBeginCapture(st, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    cudaGetLastError();
    free(g);
    tyr_raise(TYR_ERR_DEVICE, s, op, "cudaStreamBeginCapture on cuda:%d failed: %s (%s)", dev,
              cudaGetErrorName(e), cudaGetErrorString(e));
    return NULL;
  }
  pthread_mutex_lock(&d->lock);
  g->capturing = true;
  d->capture = g;
  alloc_log('B', dev, NULL, 0, 0, true, '-');
  pthread_mutex_unlock(&d->lock);
  return g;
}

/* Stops g's capture (lock not held); the recorded graph, if any, in *out. */
static cudaError_t capture_stop(tyr_cuda_graph *g, cudaGraph_t *out) {
  Dev *d = &g_dev[g->dev];
  *out = NULL;
  cudaError_t e = cudaSuccess;
  if (tcu_enter(TYR_DEVICE_CUDA(g->dev))) e = cudaStreamEndCapture(d->stream, out);
  if (e != cudaSuccess) cudaGetLastError();
  pthread_mutex_lock(&d->lock);
  if (d->capture == g) d->capture = NULL;
  g->capturing = false;
  alloc_log('E', g->dev, NULL, 0, 0, false, '-');
  if (g_alloc_log) fflush(g_alloc_log);
  pthread_mutex_unlock(&d->lock);
  return e;
}

extern "C" int tyr_cuda_graph_end_at(tyr_site s, tyr_cuda_graph *g) {
  const char *op = "tyr_cuda_graph_end";
  if (!graph_check(s, op, g)) return TYR_ERR_ARG;
  if (!g->capturing)
    return tyr_raise(TYR_ERR_STATE, s, op, "this graph is not being captured (ended already?)");
  cudaGraph_t graph = NULL;
  cudaError_t e = capture_stop(g, &graph);
  if (e != cudaSuccess || !graph) {
    if (graph) cudaGraphDestroy(graph);
    return tyr_raise(TYR_ERR_DEVICE, s, op,
                     "the capture on cuda:%d failed: %s (%s); an operation issued during it "
                     "could not be captured",
                     g->dev, cudaGetErrorName(e), cudaGetErrorString(e));
  }
  g->graph = graph;
  e = cudaGraphInstantiate(&g->exec, graph, 0);
  if (e == cudaSuccess) e = cudaGraphUpload(g->exec, g_dev[g->dev].stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (g->exec) cudaGraphExecDestroy(g->exec);
    g->exec = NULL;
    return tyr_raise(TYR_ERR_DEVICE, s, op, "cudaGraphInstantiate on cuda:%d failed: %s (%s)",
                     g->dev, cudaGetErrorName(e), cudaGetErrorString(e));
  }
  g->ready = true;
  return 0;
}

extern "C" int tyr_cuda_graph_launch_at(tyr_site s, tyr_cuda_graph *g) {
  const char *op = "tyr_cuda_graph_launch";
  if (!graph_check(s, op, g)) return TYR_ERR_ARG;
  if (!g->ready)
    return tyr_raise(TYR_ERR_STATE, s, op,
                     g->capturing ? "the graph is still being captured (call tyr_cuda_graph_end)"
                                  : "the graph has no instance (its capture failed)");
  cudaStream_t st = tcu_enter(TYR_DEVICE_CUDA(g->dev));
  if (!st) return TYR_ERR_DEVICE;
  if (tcu_capturing(g->dev))
    return tyr_raise(TYR_ERR_STATE, s, op,
                     "cannot run while another CUDA graph is being captured on cuda:%d", g->dev);
  cudaError_t e = cudaGraphLaunch(g->exec, st);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return tyr_raise(TYR_ERR_DEVICE, s, op, "cudaGraphLaunch on cuda:%d failed: %s (%s)", g->dev,
                     cudaGetErrorName(e), cudaGetErrorString(e));
  }
  return 0;
}

extern "C" void tyr_cuda_graph_free(tyr_cuda_graph *g) {
  if (!g) return;
  Dev *d = &g_dev[g->dev];
  if (g->capturing) { /* abandoned capture */
    cudaGraph_t graph = NULL;
    capture_stop(g, &graph);
    if (graph) cudaGraphDestroy(graph);
  }
  tcu_enter(TYR_DEVICE_CUDA(g->dev));
  /* an instance still running is freed when it completes; its memory goes
     back to the cache, whose next users the stream orders after it */
  if (g->exec) cudaGraphExecDestroy(g->exec);
  if (g->graph) cudaGraphDestroy(g->graph);
  pthread_mutex_lock(&d->lock);
  /* idle segments go back to the cache (to the driver with the cache off,
     but for none while another graph is being captured on the device: that
     would end its capture); a segment with chunks still held by tensors
     goes back with the last of them (graph_free) */
  tcu_gpool_clear(&g->pool, graph_give_back, d);
  pthread_mutex_unlock(&d->lock);
  free(g);
}
