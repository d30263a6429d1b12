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
 * devices.  AUTO: the tensor-core kernel (bf16 operands, f32 accumulation)
 * where it applies - bf16 tensors, or f32 tensors while the matmul mode is
 * TYR_CUDA_MATMUL_BF16; head dim 32, 64 or 128; no bool/u8 mask - and the
 * f32 CUDA-core kernel elsewhere.  SIMT: always the CUDA-core kernel.  The
 * default is AUTO, or SIMT with TYR_CUDA_ATTN=simt in the environment.
 * Without the CUDA backend the setting is kept and has no effect. */
typedef enum tyr_cuda_attention_kernel {
  TYR_CUDA_ATTENTION_AUTO,
  TYR_CUDA_ATTENTION_SIMT
} tyr_cuda_attention_kernel;
void tyr_cuda_set_attention_kernel(tyr_cuda_attention_kernel kernel);
tyr_cuda_attention_kernel tyr_cuda_get_attention_kernel(void);

#ifdef __cplusplus
}
#endif
#endif
