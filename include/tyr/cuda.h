/* tyr/cuda.h - the CUDA backend seen from outside: whether a GPU is usable,
 * the caching allocator's figures, and synchronisation.
 *
 * Tensors go to a GPU with tyr_to_device(x, TYR_DEVICE_CUDA(0)) or by
 * making them there (tyr_zeros_at(..., TYR_DEVICE_CUDA(0), ...)).  Every
 * kernel of a device runs in order on one stream of that device, so results
 * are ready for the next op without waiting; tyr_to_host and tyr_item wait
 * for them.  These functions exist in every build: without the CUDA backend
 * tyr_cuda_available() is false and the others report that no GPU is there. */
#ifndef TYR_CUDA_H
#define TYR_CUDA_H
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when this build has the CUDA backend and at least one GPU answers. */
bool tyr_cuda_available(void);
/* Number of usable GPUs (0 without the backend or a GPU). */
int tyr_cuda_device_count(void);

/* Figures of the caching allocator of one device.  Device memory is taken
 * from cudaMalloc in size classes (8 per power of two, 512 bytes at least)
 * and kept for reuse when tensors are freed. */
typedef struct tyr_cuda_mem_stats {
  size_t allocated;       /* bytes held by live tensors and temporaries (class sizes) */
  size_t peak_allocated;  /* the most `allocated` has been since start or the last reset */
  size_t reserved;        /* bytes taken from cudaMalloc: allocated plus cached */
  size_t cached;          /* free blocks kept for reuse */
  uint64_t n_alloc;       /* allocations served */
  uint64_t n_cuda_malloc; /* of which needed a new cudaMalloc */
  uint64_t n_oom_retry;   /* cudaMalloc failures retried after emptying the cache */
  size_t graph_reserved;  /* bytes owned by live CUDA graphs (in use or idle) */
  size_t graph_idle;      /* of which no tensor holds: kept for the graphs' replays
                             (reserved = allocated + cached + graph_idle) */
} tyr_cuda_mem_stats;

/* Fills *out for device dev; 0, or the error status after raising (no GPU,
 * bad device index, NULL out). */
int tyr_cuda_memory_stats_at(tyr_site s, int dev, tyr_cuda_mem_stats *out);
#define tyr_cuda_memory_stats(dev, out) tyr_cuda_memory_stats_at(TYR_SITE, (dev), (out))
/* Sets peak_allocated of dev to the current allocated. */
int tyr_cuda_reset_peak_at(tyr_site s, int dev);
#define tyr_cuda_reset_peak(dev) tyr_cuda_reset_peak_at(TYR_SITE, (dev))
/* Waits for every device, then returns the cached blocks of every device
 * to the driver (cudaFree).  Does nothing without a GPU. */
void tyr_cuda_empty_cache(void);
/* Waits until every kernel and copy issued so far on every device has
 * finished; 0, or the error status after raising (an asynchronous kernel
 * failure shows here). */
int tyr_cuda_synchronize_at(tyr_site s);
#define tyr_cuda_synchronize() tyr_cuda_synchronize_at(TYR_SITE)

/* ---- CUDA graphs ----------------------------------------------------------
 * A graph records the kernels and device copies that the code between
 * tyr_cuda_graph_begin and tyr_cuda_graph_end issues on one device (nothing
 * runs then) and replays them with one launch.  A whole training step
 * (forward, backward, tyr_params_clip_grad_norm_dev, tyr_optim_step in
 * capturable mode, zero_grad) fits in one graph:
 *
 *   x, y: device tensors allocated before the capture (inputs)
 *   tyr_optim_set_capturable(&opt, true);
 *   ... two eager steps (tyr_optim_step prepares itself eagerly) ...
 *   tyr_cuda_graph *g = tyr_cuda_graph_begin(0);
 *   loss = tyr_keep_e(<forward>); tyr_backward(loss);
 *   tyr_params_clip_grad_norm_dev(&ps, 1.0); tyr_optim_step(&opt, -1);
 *   tyr_optim_zero_grad(&opt);
 *   tyr_cuda_graph_end(g);
 *   each step: tyr_copy(x, ...); tyr_copy(y, ...); tyr_optim_prepare_step(&opt, lr);
 *              tyr_cuda_graph_launch(g); then tyr_item(loss) if wanted
 *   tyr_tensor_free(loss); tyr_cuda_graph_free(g);
 *
 * Memory: blocks allocated during the capture (and blocks freed during it)
 * belong to the graph and stay reserved until tyr_cuda_graph_free, even
 * when the tensor over them is freed, because every replay writes them
 * again; tensors made during the capture (the loss) hold the values of the
 * latest replay.  Tensors the graph reads or writes that were made before
 * it (parameters, optimizer state, inputs) must outlive its replays.
 * Refused during a capture, with an error naming the operation: copies
 * between host and device, tyr_item and other reads of device values,
 * tyr_cuda_synchronize, tyr_cuda_empty_cache, tyr_params_grad_norm /
 * tyr_params_clip_grad_norm (use the _dev form), random numbers (dropout:
 * the Philox counter is kept on the host, so a replay would repeat the
 * capture's mask), and tyr_optim_step of an optimizer not in capturable
 * mode.  Index and target range checks, which read values back, are skipped
 * during a capture (the kernels read nothing out of bounds; an out-of-range
 * index gives zeros, an out-of-range target a NaN loss).  One thread at a time may use a device
 * that captures. Without the CUDA backend or a GPU every function raises TYR_ERR_DEVICE. */
typedef struct tyr_cuda_graph tyr_cuda_graph;

/* Starts capturing the work of device dev; NULL after raising (no GPU, a
 * capture already running on dev). */
tyr_cuda_graph *tyr_cuda_graph_begin_at(tyr_site s, int dev);
#define tyr_cuda_graph_begin(dev) tyr_cuda_graph_begin_at(TYR_SITE, (dev))
/* Ends the capture and instantiates the graph; 0, or the error status after
 * raising (the capture was invalidated).  g must still be freed. */
int tyr_cuda_graph_end_at(tyr_site s, tyr_cuda_graph *g);
#define tyr_cuda_graph_end(g) tyr_cuda_graph_end_at(TYR_SITE, (g))
/* Replays g on its device's stream (asynchronously, in order with other
 * work of that device); 0, or the error status after raising. */
int tyr_cuda_graph_launch_at(tyr_site s, tyr_cuda_graph *g);
#define tyr_cuda_graph_launch(g) tyr_cuda_graph_launch_at(TYR_SITE, (g))
/* Destroys g (ending its capture if it is still running) and returns its
 * idle memory to the allocator's cache; blocks still held by tensors become
 * ordinary blocks.  NULL is ignored. */
void tyr_cuda_graph_free(tyr_cuda_graph *g);

/* How f32 matrix multiplies run on CUDA devices (other dtypes are not
 * affected).  F32: full f32 arithmetic, results agree with the CPU to
 * ~1e-6 (the default).  TF32: tensor cores with TF32 inputs (10-bit
 * mantissa).  BF16: tensor cores with inputs rounded to bf16 (8-bit
 * mantissa), i.e. mixed precision with f32 weights, activations and
 * gradients.  Every mode accumulates in f32.  The default comes from
 * TYR_CUDA_MATMUL=f32|tf32|bf16 in the environment (or TYR_CUDA_TF32=1).
 * Without the CUDA backend the setting is kept and has no effect. */
typedef enum tyr_cuda_matmul_mode {
  TYR_CUDA_MATMUL_F32,
  TYR_CUDA_MATMUL_TF32,
  TYR_CUDA_MATMUL_BF16
} tyr_cuda_matmul_mode;
void tyr_cuda_set_matmul_mode(tyr_cuda_matmul_mode mode);
tyr_cuda_matmul_mode tyr_cuda_get_matmul_mode(void);

/* Which kernel computes attention (tyr_sdpa, forward and backward) on CUDA
 * devices.
 *   AUTO (the default): cuDNN's fused flash attention where it applies
 *     (bf16/f16 tensors, head dim 64 or 128, no bool/u8 mask, document ids
 *     or window, as many key/value heads as query heads, T == S when
 *     causal, compute capability 9.0 or newer, cuDNN 9.10.2 or newer, and
 *     cuDNN accepts the shape: docs/cuda.md), else the tensor-core kernel
 *     where it applies (bf16 tensors, or f32 tensors while the matmul mode
 *     is TYR_CUDA_MATMUL_BF16; head dim 32, 64 or 128; no bool/u8 mask),
 *     else the CUDA-core kernel.
 *   CUDNN: as AUTO.
 *   TC: as AUTO without cuDNN: the tensor-core kernel where it applies,
 *     else the CUDA-core kernel.
 *   SIMT: always the CUDA-core kernel.
 * TYR_CUDA_ATTN=auto|simt|tc|cudnn in the environment sets the default
 * (read once).  Without the CUDA backend the setting is kept and has no
 * effect. */
typedef enum tyr_cuda_attention_kernel {
  TYR_CUDA_ATTENTION_AUTO,
  TYR_CUDA_ATTENTION_SIMT,
  TYR_CUDA_ATTENTION_TC,
  TYR_CUDA_ATTENTION_CUDNN
} tyr_cuda_attention_kernel;
void tyr_cuda_set_attention_kernel(tyr_cuda_attention_kernel kernel);
tyr_cuda_attention_kernel tyr_cuda_get_attention_kernel(void);
/* The kernel (SIMT, TC or CUDNN) that ran the calling thread's last CUDA
 * attention forward or backward; AUTO before any. */
tyr_cuda_attention_kernel tyr_cuda_attention_last(void);

#ifdef __cplusplus
}
#endif
#endif
