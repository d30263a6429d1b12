/* CUDA optimizer kernels (fused AdamW and SGD steps, squared norms, in-place
 * scaling) and the rotary embedding.  The arithmetic follows src/cpu/optim.c
 * and src/cpu/rotary.c: f32 parameters with f32 gradients are updated in f32,
 * other dtypes in double; state is f32. */
#include <math.h>

#include "cuda/cuda_internal.cuh"

/* ---- AdamW --------------------------------------------------------------------- */
/* hp: NULL, or the step's scalars in device memory (capturable mode: the
 * host writes them before each replay of a CUDA graph); the arithmetic is
 * the same either way. */
/* One element; every f32 AdamW kernel (per tensor, many tensors, one or
 * four elements a thread) computes it with this function.  Each rounding
 * is spelled out (the _rn intrinsics), so that the code generator cannot
 * fuse a multiply and an add in one kernel and not in another (it did,
 * between the one- and four-element loops): the results are the same bit
 * for bit whichever kernel runs, and those of the CPU's builds with FMA
 * (x86-64-v3 and v4) of src/cpu/optim.c, which compute
 *   m = fma(b1, m, (1 - b1) g),  v = fma(b2, v, ((1 - b2) g) g),
 *   p = fma(p, dc, -(ss m / (sqrt(v) / bs + e))). */
__device__ __forceinline__ void adamw_f32_val(float &p, float gi, float &m, float &v, float b1,
                                              float b2, float ss, float bs, float e, float dc) {
  float mi = __fmaf_rn(b1, m, __fmul_rn(__fsub_rn(1.f, b1), gi));
  float vi = __fmaf_rn(b2, v, __fmul_rn(__fmul_rn(__fsub_rn(1.f, b2), gi), gi));
  m = mi;
  v = vi;
  float r = __fdiv_rn(__fmul_rn(ss, mi), __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bs), e));
  p = __fmaf_rn(p, dc, -r);
}

__device__ __forceinline__ void adamw_f32_elem(float *p, const float *g, float *m, float *v,
                                               int64_t i, float b1, float b2, float ss, float bs,
                                               float e, float dc) {
  float pi = p[i], mi = m[i], vi = v[i];
  adamw_f32_val(pi, g[i], mi, vi, b1, b2, ss, bs, e, dc);
  m[i] = mi;
  v[i] = vi;
  p[i] = pi;
}

/* Elements 4 i .. 4 i + 3 with 16-byte loads and stores (p, g, m and v
   aligned to 16 bytes); the arithmetic of adamw_f32_elem for each. */
__device__ __forceinline__ void adamw_f32_elem4(float *p, const float *g, float *m, float *v,
                                                int64_t i, float b1, float b2, float ss, float bs,
                                                float e, float dc) {
  float4 pp = reinterpret_cast<float4 *>(p)[i], gg = reinterpret_cast<const float4 *>(g)[i];
  float4 mm = reinterpret_cast<float4 *>(m)[i], vv = reinterpret_cast<float4 *>(v)[i];
  adamw_f32_val(pp.x, gg.x, mm.x, vv.x, b1, b2, ss, bs, e, dc);
  adamw_f32_val(pp.y, gg.y, mm.y, vv.y, b1, b2, ss, bs, e, dc);
  adamw_f32_val(pp.z, gg.z, mm.z, vv.z, b1, b2, ss, bs, e, dc);
  adamw_f32_val(pp.w, gg.w, mm.w, vv.w, b1, b2, ss, bs, e, dc);
  reinterpret_cast<float4 *>(m)[i] = mm;
  reinterpret_cast<float4 *>(v)[i] = vv;
  reinterpret_cast<float4 *>(p)[i] = pp;
}

__global__ void adamw_f32_kernel(float *p, const float *g, float *m, float *v, int64_t n, float b1,
                                 float b2, float ss, float bs, float e, float dc,
                                 const double *hp) {
  if (hp) {
    ss = (float)hp[0];
    bs = (float)hp[1];
    dc = (float)hp[2];
  }
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    adamw_f32_elem(p, g, m, v, i, b1, b2, ss, bs, e, dc);
}

__global__ void adamw_any_kernel(void *p, int pdt, const void *g, int gdt, float *m, float *v,
                                 int64_t n, double b1, double b2, double ss, double bs, double e,
                                 double dc, const double *hp) {
  if (hp) {
    ss = hp[0];
    bs = hp[1];
    dc = hp[2];
  }
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    double gi = ld_any(g, gdt, i);
    double mi = b1 * m[i] + (1 - b1) * gi;
    double vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = (float)mi;
    v[i] = (float)vi;
    st_any(p, pdt, i, ld_any(p, pdt, i) * dc - ss * mi / (sqrt(vi) / bs + e));
  }
}

extern "C" void tcu_adamw_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m,
                               tyr_tensor *v, double lr, double beta1, double beta2, double eps,
                               double weight_decay, int64_t step) {
  cudaStream_t st = tcu_enter(param->device);
  int64_t n = tyr_numel(param);
  if (!st || n == 0) return;
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  double step_size = lr / bc1, bc2_sqrt = sqrt(bc2), decay = 1.0 - lr * weight_decay;
  unsigned blocks = tcu_blocks(n, 256, param->device.index);
  float *mm = (float *)tyr_data_ptr(m), *vv = (float *)tyr_data_ptr(v);
  if (param->dtype == TYR_F32 && grad->dtype == TYR_F32) {
    adamw_f32_kernel<<<blocks, 256, 0, st>>>(
        (float *)tyr_data_ptr(param), (const float *)tyr_data_ptr(grad), mm, vv, n, (float)beta1,
        (float)beta2, (float)step_size, (float)bc2_sqrt, (float)eps, (float)decay, NULL);
  } else {
    adamw_any_kernel<<<blocks, 256, 0, st>>>(tyr_data_ptr(param), param->dtype, tyr_data_ptr(grad),
                                             grad->dtype, mm, vv, n, beta1, beta2, step_size,
                                             bc2_sqrt, eps, decay, NULL);
  }
  LAUNCH_CHECK();
}

extern "C" void tcu_adamw_step_dev(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *m,
                                   tyr_tensor *v, double beta1, double beta2, double eps,
                                   const tyr_tensor *hyper, int group) {
  cudaStream_t st = tcu_enter(param->device);
  int64_t n = tyr_numel(param);
  if (!st || n == 0) return;
  const double *hp = (const double *)tyr_data_ptr(hyper) + 4 * group;
  unsigned blocks = tcu_blocks(n, 256, param->device.index);
  float *mm = (float *)tyr_data_ptr(m), *vv = (float *)tyr_data_ptr(v);
  if (param->dtype == TYR_F32 && grad->dtype == TYR_F32) {
    adamw_f32_kernel<<<blocks, 256, 0, st>>>(
        (float *)tyr_data_ptr(param), (const float *)tyr_data_ptr(grad), mm, vv, n, (float)beta1,
        (float)beta2, 0.f, 1.f, (float)eps, 1.f, hp);
  } else {
    adamw_any_kernel<<<blocks, 256, 0, st>>>(tyr_data_ptr(param), param->dtype, tyr_data_ptr(grad),
                                             grad->dtype, mm, vv, n, beta1, beta2, 0.0, 1.0, eps,
                                             1.0, hp);
  }
  LAUNCH_CHECK();
}

/* ---- AdamW over many tensors ---------------------------------------------------------
 * One launch per ADAMW_MT tensors (f32 parameters with f32 gradients): the
 * table of pointers, sizes and scalars is a kernel parameter (under the
 * 4 KB parameter limit), so a CUDA graph captures it by value.  The blocks
 * of tensor t are end[t - 1] .. end[t] - 1; each runs the per-tensor
 * kernel's grid-stride loop over its tensor with that many blocks, over
 * groups of four elements with 16-byte loads where the tensor's pointers
 * are aligned and its size a multiple of four (a quarter of the blocks;
 * the 4x128 char model's update ran at 0.7 TB/s under ncu with one
 * element a thread).  Every element is updated by adamw_f32_val with the
 * scalars the per-tensor kernel would use, so the results are the same bit
 * for bit. */
#define ADAMW_MT 64
struct AdamwMany {
  float *p[ADAMW_MT];
  const float *g[ADAMW_MT];
  float *m[ADAMW_MT];
  float *v[ADAMW_MT];
  int64_t n[ADAMW_MT];
  int end[ADAMW_MT];
  int grp[ADAMW_MT];                              /* hp mode: the group */
  bool vec[ADAMW_MT];                             /* 16-byte loads (adamw_f32_elem4) */
  float ss[ADAMW_MT], bs[ADAMW_MT], dc[ADAMW_MT]; /* host mode */
  const double *hp;                               /* NULL: host mode */
  int k;
};
static_assert(sizeof(AdamwMany) + 3 * sizeof(float) <= 4096, "AdamW table over 4 KB");

__global__ void adamw_f32_many_kernel(const __grid_constant__ AdamwMany a, float b1, float b2,
                                      float e) {
  int bid = (int)blockIdx.x, t = tcu_many_tensor(a.end, a.k, bid);
  int first = t ? a.end[t - 1] : 0, nb = a.end[t] - first;
  float ss = a.ss[t], bs = a.bs[t], dc = a.dc[t];
  if (a.hp) {
    const double *hp = a.hp + 4 * a.grp[t];
    ss = (float)hp[0];
    bs = (float)hp[1];
    dc = (float)hp[2];
  }
  float *p = a.p[t], *m = a.m[t], *v = a.v[t];
  const float *g = a.g[t];
  int64_t n = a.n[t];
  if (a.vec[t]) {
    for (int64_t i = (bid - first) * (int64_t)blockDim.x + threadIdx.x; i < n / 4;
         i += (int64_t)nb * blockDim.x)
      adamw_f32_elem4(p, g, m, v, i, b1, b2, ss, bs, e, dc);
    return;
  }
  for (int64_t i = (bid - first) * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)nb * blockDim.x)
    adamw_f32_elem(p, g, m, v, i, b1, b2, ss, bs, e, dc);
}

extern "C" void tcu_adamw_step_many(int n, tyr_tensor *const *params,
                                    const tyr_tensor *const *grads, tyr_tensor *const *m,
                                    tyr_tensor *const *v, const int *group, const double *lr,
                                    const double *weight_decay, double beta1, double beta2,
                                    double eps, int64_t step, const tyr_tensor *hyper) {
  if (n <= 0) return;
  tyr_device d = params[0]->device;
  cudaStream_t st = tcu_enter(d);
  if (!st) return;
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  AdamwMany a;
  memset(&a, 0, sizeof a);
  a.hp = hyper ? (const double *)tyr_data_ptr(hyper) : NULL;
  int blocks = 0;
  for (int i = 0; i < n; i++) {
    int64_t numel = tyr_numel(params[i]);
    if (numel == 0) continue;
    if (params[i]->dtype != TYR_F32 || grads[i]->dtype != TYR_F32) {
      /* the per-tensor kernel (in double) */
      if (hyper)
        tcu_adamw_step_dev(params[i], grads[i], m[i], v[i], beta1, beta2, eps, hyper, group[i]);
      else
        tcu_adamw_step(params[i], grads[i], m[i], v[i], lr[group[i]], beta1, beta2, eps,
                       weight_decay[group[i]], step);
      continue;
    }
    int k = a.k++;
    a.p[k] = (float *)tyr_data_ptr(params[i]);
    a.g[k] = (const float *)tyr_data_ptr(grads[i]);
    a.m[k] = (float *)tyr_data_ptr(m[i]);
    a.v[k] = (float *)tyr_data_ptr(v[i]);
    a.n[k] = numel;
    a.grp[k] = group[i];
    if (!hyper) { /* tcu_adamw_step's scalars */
      double glr = lr[group[i]];
      a.ss[k] = (float)(glr / bc1);
      a.bs[k] = (float)sqrt(bc2);
      a.dc[k] = (float)(1.0 - glr * weight_decay[group[i]]);
    } else {
      a.ss[k] = 0.f;
      a.bs[k] = 1.f;
      a.dc[k] = 1.f;
    }
    a.vec[k] = numel % 4 == 0 && tcu_aligned16(a.p[k]) && tcu_aligned16(a.g[k]) &&
               tcu_aligned16(a.m[k]) && tcu_aligned16(a.v[k]);
    blocks += (int)tcu_blocks(a.vec[k] ? numel / 4 : numel, 256, d.index);
    a.end[k] = blocks;
    if (a.k == ADAMW_MT) {
      adamw_f32_many_kernel<<<(unsigned)blocks, 256, 0, st>>>(a, (float)beta1, (float)beta2,
                                                              (float)eps);
      if (!LAUNCH_CHECK()) return;
      a.k = 0;
      blocks = 0;
    }
  }
  if (a.k > 0) {
    adamw_f32_many_kernel<<<(unsigned)blocks, 256, 0, st>>>(a, (float)beta1, (float)beta2,
                                                            (float)eps);
    LAUNCH_CHECK();
  }
}

/* ---- SGD ----------------------------------------------------------------------- */
__global__ void sgd_kernel(void *p, int pdt, const void *g, int gdt, float *b, int64_t n, double lr,
                           double momentum, double dampening, double wd, bool nesterov,
                           bool first) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    double pi = ld_any(p, pdt, i);
    double d = ld_any(g, gdt, i) + wd * pi;
    if (momentum != 0 && b) {
      double bi = first ? d : momentum * b[i] + (1 - dampening) * d;
      b[i] = (float)bi;
      d = nesterov ? d + momentum * bi : bi;
    }
    st_any(p, pdt, i, pi - lr * d);
  }
}

extern "C" void tcu_sgd_step(tyr_tensor *param, const tyr_tensor *grad, tyr_tensor *buf, double lr,
                             double momentum, double dampening, double weight_decay, bool nesterov,
                             bool first) {
  cudaStream_t st = tcu_enter(param->device);
  int64_t n = tyr_numel(param);
  if (!st || n == 0) return;
  sgd_kernel<<<tcu_blocks(n, 256, param->device.index), 256, 0, st>>>(
      tyr_data_ptr(param), param->dtype, tyr_data_ptr(grad), grad->dtype,
      buf ? (float *)tyr_data_ptr(buf) : NULL, n, lr, momentum, dampening, weight_decay, nesterov,
      first);
  LAUNCH_CHECK();
}

/* ---- sum of squares (two passes, no atomics: the same sum every run) ------------ */
#define SS_THREADS 256
#define SS_BLOCKS 512

__device__ __forceinline__ double block_sum(double x, double *sh) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if (l == 0) sh[w] = x;
  __syncthreads();
  if (w == 0) {
    x = l < (int)(blockDim.x / 32) ? sh[l] : 0.0;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  }
  return x;
}

/* Block b (of nb) of one tensor's sum: the grid-stride loop of a launch
 * with nb blocks, reduced to partial[b]. */
__device__ __forceinline__ void sumsq_block(const void *p, int dt, int64_t n, int b, int nb,
                                            double *partial) {
  __shared__ double sh[32];
  double acc = 0;
  if (dt == TYR_F32 && n % 4 == 0 && ((uintptr_t)p & 15u) == 0) { /* 16-byte loads */
    const float4 *f = (const float4 *)p;
    for (int64_t i = b * (int64_t)blockDim.x + threadIdx.x; i < n / 4;
         i += (int64_t)nb * blockDim.x) {
      float4 x = f[i];
      acc += (double)x.x * x.x;
      acc += (double)x.y * x.y;
      acc += (double)x.z * x.z;
      acc += (double)x.w * x.w;
    }
  } else if (dt == TYR_F32) {
    const float *f = (const float *)p;
    for (int64_t i = b * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)nb * blockDim.x)
      acc += (double)f[i] * f[i];
  } else {
    for (int64_t i = b * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)nb * blockDim.x) {
      double x = ld_any(p, dt, i);
      acc += x * x;
    }
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[b] = acc;
}

/* The partial sums of up to SS_MT tensors in one launch: the blocks of
 * tensor t are end[t - 1] .. end[t] - 1 and write partial[end[t - 1] ..],
 * the partials (and the order of every sum) of one launch of nb blocks per
 * tensor with the tensors' partials one after the other. */
#define SS_MT 128
struct SumsqMany {
  const void *p[SS_MT];
  int64_t n[SS_MT];
  int end[SS_MT];
  int dt[SS_MT];
  int k;
};
static_assert(sizeof(SumsqMany) + sizeof(double *) <= 4096, "sum-of-squares table over 4 KB");

__global__ void sumsq_many_kernel(const __grid_constant__ SumsqMany a, double *partial) {
  int bid = (int)blockIdx.x;
  int lo = 0, hi = a.k - 1; /* the first t with end[t] > bid */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (a.end[mid] > bid)
      hi = mid;
    else
      lo = mid + 1;
  }
  int t = lo;
  int first = t ? a.end[t - 1] : 0;
  sumsq_block(a.p[t], a.dt[t], a.n[t], bid - first, a.end[t] - first, partial + first);
}

__global__ void sum_partials_kernel(const double *partial, int64_t n, double *out) {
  __shared__ double sh[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) *out = acc;
}

/* blocks of a tensor of n elements: 16 elements a thread at least (one
   a thread summed the 4x128 char model's gradients at 0.3 TB/s under
   ncu), at most SS_BLOCKS */
static int sumsq_blocks(int64_t n) {
  int64_t per = (int64_t)SS_THREADS * 16, nb = (n + per - 1) / per;
  return (int)(nb < SS_BLOCKS ? nb : SS_BLOCKS);
}

/* sumsq_blocks(numel) partial sums of every tensor, one tensor after the
 * other, into partial; one launch per SS_MT non-empty tensors. */
static bool sumsq_partials(int n, const tyr_tensor *const *ts, double *partial, cudaStream_t st) {
  SumsqMany a;
  memset(&a, 0, sizeof a);
  int blocks = 0;
  for (int i = 0; i < n; i++) {
    int nb = sumsq_blocks(tyr_numel(ts[i]));
    if (nb == 0) continue;
    int k = a.k++;
    a.p[k] = tyr_data_ptr(ts[i]);
    a.n[k] = tyr_numel(ts[i]);
    a.dt[k] = (int)ts[i]->dtype;
    blocks += nb;
    a.end[k] = blocks;
    if (a.k == SS_MT) {
      sumsq_many_kernel<<<(unsigned)blocks, SS_THREADS, 0, st>>>(a, partial);
      if (!LAUNCH_CHECK()) return false;
      partial += blocks;
      a.k = 0;
      blocks = 0;
    }
  }
  if (a.k == 0) return true;
  sumsq_many_kernel<<<(unsigned)blocks, SS_THREADS, 0, st>>>(a, partial);
  return LAUNCH_CHECK();
}

/* One partial sum per block of every tensor into a device buffer, one
 * final sum, one copy back. */
extern "C" double tcu_sum_squares_many(int n, const tyr_tensor *const *ts) {
  if (n <= 0) return 0.0;
  cudaStream_t st = tcu_enter(ts[0]->device);
  if (!st) return NAN;
  int dev = ts[0]->device.index;
  if (tcu_refuse_capture(dev, "tcu_sum_squares_many",
                         "a sum of squares read back on the host (tyr_params_grad_norm, "
                         "tyr_params_clip_grad_norm: use tyr_params_clip_grad_norm_dev)"))
    return NAN;
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += sumsq_blocks(tyr_numel(ts[i]));
  if (total == 0) return 0.0;
  size_t bytes = sizeof(double) * (size_t)(total + 1);
  double *tmp = (double *)tcu_alloc(bytes, dev);
  if (!tmp) return NAN;
  double r = NAN;
  bool ok = sumsq_partials(n, ts, tmp + 1, st);
  if (ok) {
    sum_partials_kernel<<<1, 1024, 0, st>>>(tmp + 1, total, tmp);
    ok = LAUNCH_CHECK() &&
         CUDA_CHECK(cudaMemcpyAsync(&r, tmp, sizeof r, cudaMemcpyDeviceToHost, st)) &&
         CUDA_CHECK(cudaStreamSynchronize(st));
  }
  tcu_free(tmp, bytes, dev);
  return ok ? r : NAN;
}

extern "C" double tcu_sum_squares(const tyr_tensor *t) {
  return tcu_sum_squares_many(1, &t);
}

/* ---- gradient clipping on the device ------------------------------------------------
 * The norm is summed as tcu_sum_squares_many sums it (same partials, same
 * order) and its square root taken on the device in double, so it is the
 * norm the host path computes, bit for bit; the scale factor too
 * (max_norm / (norm + 1e-6) in double, rounded to the tensor's compute
 * type as scale_kernel rounds it). */
__global__ void norm_finish_kernel(const double *partial, int64_t n, double *out) {
  __shared__ double sh[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) *out = sqrt(acc);
}

#define CLIP_MAX_TENSORS 128
struct ClipArgs {
  void *p[CLIP_MAX_TENSORS];
  int64_t n[CLIP_MAX_TENSORS];
  int dt[CLIP_MAX_TENSORS];
};

template <typename T>
__device__ __forceinline__ void clip_scale(T *p, int64_t n, double c) {
  typedef typename Acc<T>::type C;
  C cc = (C)c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    p[i] = from_c<T>(to_c(p[i]) * cc);
}

/* blockIdx.y picks the tensor; the factor is read from the norm each block */
__global__ void clip_scale_kernel(const __grid_constant__ ClipArgs a, const double *norm,
                                  double max_norm) {
  double nm = *norm;
  if (!(max_norm > 0 && nm > max_norm && isfinite(nm))) return;
  double c = max_norm / (nm + 1e-6);
  int k = blockIdx.y;
  switch (a.dt[k]) {
  case TYR_F32:
    clip_scale<float>((float *)a.p[k], a.n[k], c);
    break;
  case TYR_F64:
    clip_scale<double>((double *)a.p[k], a.n[k], c);
    break;
  case TYR_BF16:
    clip_scale<bf16>((bf16 *)a.p[k], a.n[k], c);
    break;
  case TYR_F16:
    clip_scale<f16>((f16 *)a.p[k], a.n[k], c);
    break;
  default:
    break;
  }
}

extern "C" void tcu_clip_grad_norm(int n, tyr_tensor *const *ts, double max_norm,
                                   tyr_tensor *norm) {
  cudaStream_t st = tcu_enter(norm->device);
  if (!st) return;
  int dev = norm->device.index;
  double *out = (double *)tyr_data_ptr(norm);
  int64_t total = 0, maxn = 0;
  for (int i = 0; i < n; i++) {
    int64_t numel = tyr_numel(ts[i]);
    total += sumsq_blocks(numel);
    if (numel > maxn) maxn = numel;
  }
  if (total == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), st));
    return;
  }
  size_t bytes = sizeof(double) * (size_t)total;
  double *tmp = (double *)tcu_alloc(bytes, dev);
  if (!tmp) return;
  bool ok = sumsq_partials(n, (const tyr_tensor *const *)ts, tmp, st);
  if (ok) {
    norm_finish_kernel<<<1, 1024, 0, st>>>(tmp, total, out);
    ok = LAUNCH_CHECK();
  }
  unsigned gx = tcu_blocks(maxn, 256, dev);
  for (int i0 = 0; ok && i0 < n; i0 += CLIP_MAX_TENSORS) {
    ClipArgs a;
    memset(&a, 0, sizeof a);
    int k = 0;
    for (int i = i0; i < n && i < i0 + CLIP_MAX_TENSORS; i++, k++) {
      a.p[k] = tyr_data_ptr(ts[i]);
      a.n[k] = tyr_numel(ts[i]);
      a.dt[k] = (int)ts[i]->dtype;
    }
    if (max_norm > 0) {
      clip_scale_kernel<<<dim3(gx, (unsigned)k), 256, 0, st>>>(a, out, max_norm);
      ok = LAUNCH_CHECK();
    }
  }
  tcu_free(tmp, bytes, dev);
}

/* ---- t *= c ---------------------------------------------------------------------- */
template <typename T>
__global__ void scale_kernel(T *p, int64_t n, typename Acc<T>::type c) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    p[i] = from_c<T>(to_c(p[i]) * c);
}

extern "C" void tcu_scale_(tyr_tensor *t, double c) {
  cudaStream_t st = tcu_enter(t->device);
  int64_t n = tyr_numel(t);
  if (!st || n == 0) return;
  unsigned blocks = tcu_blocks(n, 256, t->device.index);
  TCU_FLOAT_DISPATCH(t->dtype, {
    scale_kernel<scalar_t>
        <<<blocks, 256, 0, st>>>((scalar_t *)tyr_data_ptr(t), n, (typename Acc<scalar_t>::type)c);
    LAUNCH_CHECK();
  });
}

/* ---- rotary (rotate-half) ----------------------------------------------------------- */
template <typename T>
__global__ void rotary_kernel(T *out, const T *x, const T *cs, const T *sn, int64_t rows,
                              int64_t Tn, int64_t half, typename Acc<T>::type sign) {
  typedef typename Acc<T>::type C;
  int64_t total = rows * half;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
       k += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = k / half, i = k - r * half;
    int64_t tp = (r % Tn) * half + i;
    const T *xr = x + r * 2 * half;
    T *o = out + r * 2 * half;
    C x1 = to_c(xr[i]), x2 = to_c(xr[i + half]), c = to_c(cs[tp]), s = sign * to_c(sn[tp]);
    o[i] = from_c<T>(x1 * c - x2 * s);
    o[i + half] = from_c<T>(x2 * c + x1 * s);
  }
}

extern "C" void tcu_rotary(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *cos_table,
                           const tyr_tensor *sin_table, bool inverse) {
  cudaStream_t st = tcu_enter(x->device);
  int64_t D = x->shape[x->rank - 1], Tn = x->shape[x->rank - 2];
  int64_t rows = Tn && D ? tyr_numel(x) / D : 0;
  if (!st || rows == 0 || D < 2) return;
  int64_t half = D / 2;
  unsigned blocks = tcu_blocks(rows * half, 256, x->device.index);
  TCU_FLOAT_DISPATCH(x->dtype, {
    rotary_kernel<scalar_t><<<blocks, 256, 0, st>>>(
        (scalar_t *)tyr_data_ptr(out), (const scalar_t *)tyr_data_ptr(x),
        (const scalar_t *)tyr_data_ptr(cos_table), (const scalar_t *)tyr_data_ptr(sin_table), rows,
        Tn, half, (typename Acc<scalar_t>::type)(inverse ? -1 : 1));
    LAUNCH_CHECK();
  });
}
