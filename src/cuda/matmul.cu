/* Matrix multiply through cuBLASLt.
 *
 * out[..., M, N] = a[..., M, K] @ b[..., K, N], row-major out.  cuBLASLt is
 * column-major, so the call computes out^T = op(b)^T op(a)^T: b's memory
 * is the first operand and a's the second.  Transposed views (a stride of 1
 * on either of the last two dims, tyr_gemm_layout) go in as they are; any
 * other layout is copied to a contiguous temporary first.  Batch dims that
 * can be walked with one stride per operand (stride 0 for broadcast ones)
 * become one strided-batched call; otherwise the outer batch dim is looped.
 *
 * Precision: f32 is computed with CUBLAS_COMPUTE_32F, i.e. full f32 (no
 * TF32) so that results agree with the CPU to ~1e-6.  tyr_cuda_set_matmul_mode
 * (or TYR_CUDA_MATMUL=tf32|bf16 in the environment; TYR_CUDA_TF32=1 is
 * tf32) lets f32 products use tensor cores: TF32 inputs
 * (CUBLAS_COMPUTE_32F_FAST_TF32), or inputs rounded to bf16 (bf16 copies
 * of both operands, then a bf16 x bf16 -> f32 product), always with f32
 * accumulation and f32 tensors in and out: mixed precision with f32
 * weights and activations.  bf16 and f16 use tensor
 * cores with f32 accumulation and round the result once; f64 uses
 * CUBLAS_COMPUTE_64F.  The heuristic's choice is cached per shape. */
#include <cublasLt.h>
#include <pthread.h>
#include <stdlib.h>

#include "cuda/cuda_internal.cuh"
#include "tyr/cuda.h"

#define LT_CHECK(call) lt_check((call), __FILE__, __LINE__, __func__, #call)
static bool lt_check(cublasStatus_t s, const char *file, int line, const char *fn,
                     const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  tcu_fail(file, line, fn, "%s failed: %s (%s)", what, cublasLtGetStatusName(s),
           cublasLtGetStatusString(s));
  return false;
}

#define MM_MAX_DEV 64
#define MM_CACHE 256
#define MM_WORKSPACE ((size_t)32 << 20)

namespace {
struct AlgoKey {
  int64_t v[16];
};
struct AlgoEntry {
  bool used;
  AlgoKey key;
  cublasLtMatmulAlgo_t algo;
};
struct MmDev {
  bool ready;
  cublasLtHandle_t h;
  void *ws;
  size_t ws_size;
  AlgoEntry cache[MM_CACHE];
};
} // namespace

static MmDev g_mm[MM_MAX_DEV];
static pthread_mutex_t g_mm_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_mode = -1; /* tyr_cuda_matmul_mode; -1: not read from the environment yet */

static int mode_from_env(void) {
  const char *m = getenv("TYR_CUDA_MATMUL");
  if (m && !strcmp(m, "tf32")) return TYR_CUDA_MATMUL_TF32;
  if (m && !strcmp(m, "bf16")) return TYR_CUDA_MATMUL_BF16;
  if (m && *m) return TYR_CUDA_MATMUL_F32;
  const char *e = getenv("TYR_CUDA_TF32");
  return e && *e && strcmp(e, "0") != 0 ? TYR_CUDA_MATMUL_TF32 : TYR_CUDA_MATMUL_F32;
}

extern "C" void tyr_cuda_set_matmul_mode(tyr_cuda_matmul_mode mode) {
  pthread_mutex_lock(&g_mm_lock);
  g_mode = mode == TYR_CUDA_MATMUL_TF32 || mode == TYR_CUDA_MATMUL_BF16 ? (int)mode
                                                                        : TYR_CUDA_MATMUL_F32;
  pthread_mutex_unlock(&g_mm_lock);
}

extern "C" tyr_cuda_matmul_mode tyr_cuda_get_matmul_mode(void) {
  pthread_mutex_lock(&g_mm_lock);
  if (g_mode < 0) g_mode = mode_from_env();
  int m = g_mode;
  pthread_mutex_unlock(&g_mm_lock);
  return (tyr_cuda_matmul_mode)m;
}

static MmDev *mm_dev(int dev) {
  if (dev < 0 || dev >= MM_MAX_DEV) return NULL;
  MmDev *m = &g_mm[dev];
  pthread_mutex_lock(&g_mm_lock);
  if (g_mode < 0) g_mode = mode_from_env();
  if (!m->ready) {
    if (LT_CHECK(cublasLtCreate(&m->h))) {
      /* the workspace is the handle's, outside the tensor allocator's figures */
      if (cudaMalloc(&m->ws, MM_WORKSPACE) == cudaSuccess) {
        m->ws_size = MM_WORKSPACE;
      } else {
        cudaGetLastError();
        m->ws = NULL;
        m->ws_size = 0;
      }
      m->ready = true;
    }
  }
  pthread_mutex_unlock(&g_mm_lock);
  return m->ready ? m : NULL;
}

static unsigned align_of(const void *p, int64_t stride_bytes, int64_t batch) {
  uint64_t a = (uint64_t)(uintptr_t)p | 256u;
  if (batch > 1 && stride_bytes) a |= (uint64_t)stride_bytes;
  return (unsigned)(a & (~a + 1)); /* lowest set bit */
}

static uint64_t key_hash(const AlgoKey &k) {
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < 16; i++) h = (h ^ (uint64_t)k.v[i]) * 1099511628211ULL;
  return h;
}

/* Elements from an operand's first to its last (column-major rows x cols
   with leading dim ld, batch matrices stride elements apart). */
static int64_t footprint(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
  return (batch > 1 ? (batch - 1) * stride : 0) + ld * (cols - 1) + rows;
}

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

/* The same with 16-byte loads and 8-byte stores (src 16-byte aligned, dst
   8-byte aligned); n4 groups of four, the tail by the scalar kernel. */
__global__ void f32_to_bf16_x4_kernel(uint2 *dst, const float4 *src, int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4;
       i += (int64_t)gridDim.x * blockDim.x) {
    float4 f = src[i];
    __nv_bfloat162 lo = __floats2bfloat162_rn(f.x, f.y), hi = __floats2bfloat162_rn(f.z, f.w);
    uint2 o;
    memcpy(&o.x, &lo, 4);
    memcpy(&o.y, &hi, 4);
    dst[i] = o;
  }
}

/* A bf16 copy (rounded to nearest even) of n f32 elements, same layout;
   NULL after raising when there is no memory. */
static __nv_bfloat16 *to_bf16(const void *src, int64_t n, int dev, cudaStream_t st) {
  __nv_bfloat16 *d = (__nv_bfloat16 *)tcu_alloc((size_t)n * 2, dev);
  if (!d) return NULL;
  int64_t n4 = ((uintptr_t)src % 16 == 0 && (uintptr_t)d % 8 == 0) ? n / 4 : 0;
  bool ok = true;
  if (n4 > 0) {
    f32_to_bf16_x4_kernel<<<tcu_blocks(n4, 256, dev), 256, 0, st>>>((uint2 *)d, (const float4 *)src,
                                                                    n4);
    ok = LAUNCH_CHECK();
  }
  if (ok && n - 4 * n4 > 0) {
    f32_to_bf16_kernel<<<tcu_blocks(n - 4 * n4, 256, dev), 256, 0, st>>>(
        d + 4 * n4, (const float *)src + 4 * n4, n - 4 * n4);
    ok = LAUNCH_CHECK();
  }
  if (!ok) {
    tcu_free(d, (size_t)n * 2, dev);
    return NULL;
  }
  return d;
}

/* One column-major call: C[m, n] = op(A) op(B), each strided over batch.
   f32 in the BF16 matmul mode: A and B of products of a GFLOP or more are
   rounded to bf16 copies first and the product runs as bf16 x bf16 -> f32
   on the tensor cores (cuBLASLt takes FAST_16BF with f32 inputs as leave to
   use TF32 kernels, which run at half the bf16 rate). */
/* What cuBLASLt's epilogue does besides the product (column-major terms):
   BIAS: vec (m values of C's dtype) added to every column of C (every row
   of Tyr's row-major out); BGRADB: vec (n values) = B summed over the k
   dimension, written by the GEMM; GELU_AUX(_BIAS): C = gelu_tanh(AB
   (+ vec)) and aux (laid out as C, leading dim ldaux) = its argument;
   DGELU: C = AB * gelu_tanh'(aux).  quiet: when cuBLASLt has no algorithm with this
   epilogue, return false without raising (the caller has another way). */
struct LtEpi {
  cublasLtEpilogue_t kind; /* CUBLASLT_EPILOGUE_DEFAULT: none */
  void *vec;
  bool quiet;
  void *aux;
  int64_t ldaux;
};
static const LtEpi NO_EPI = {CUBLASLT_EPILOGUE_DEFAULT, NULL, false, NULL, 0};

static bool lt_matmul_typed(int dev, cudaStream_t st, tyr_dtype dt, bool ta, bool tb, int64_t m,
                            int64_t n, int64_t k, const void *A, int64_t lda, int64_t sa,
                            const void *B, int64_t ldb, int64_t sb, void *C, int64_t ldc,
                            int64_t sc, int64_t batch, bool ab_bf16, const LtEpi &epi);

static bool lt_matmul(int dev, cudaStream_t st, tyr_dtype dt, bool ta, bool tb, int64_t m,
                      int64_t n, int64_t k, const void *A, int64_t lda, int64_t sa, const void *B,
                      int64_t ldb, int64_t sb, void *C, int64_t ldc, int64_t sc, int64_t batch,
                      const LtEpi &epi = NO_EPI) {
  /* below about a GFLOP the two conversion kernels cost more than the
     faster product saves (a small model's step is launch-bound): such
     products keep f32 operands under CUBLAS_COMPUTE_32F_FAST_16BF */
  double flops = 2.0 * (double)m * (double)n * (double)k * (double)batch;
  if (dt != TYR_F32 || tyr_cuda_get_matmul_mode() != TYR_CUDA_MATMUL_BF16 || flops < 1e9)
    return lt_matmul_typed(dev, st, dt, ta, tb, m, n, k, A, lda, sa, B, ldb, sb, C, ldc, sc, batch,
                           false, epi);
  int64_t na = footprint(ta ? k : m, ta ? m : k, lda, sa, batch);
  int64_t nb = footprint(tb ? n : k, tb ? k : n, ldb, sb, batch);
  __nv_bfloat16 *A16 = to_bf16(A, na, dev, st);
  __nv_bfloat16 *B16 = A16 ? to_bf16(B, nb, dev, st) : NULL;
  bool ok = A16 && B16 &&
            lt_matmul_typed(dev, st, dt, ta, tb, m, n, k, A16, lda, sa, B16, ldb, sb, C, ldc, sc,
                            batch, true, epi);
  /* stream order keeps the copies alive until the product has read them */
  if (B16) tcu_free(B16, (size_t)nb * 2, dev);
  if (A16) tcu_free(A16, (size_t)na * 2, dev);
  return ok;
}

static bool lt_matmul_typed(int dev, cudaStream_t st, tyr_dtype dt, bool ta, bool tb, int64_t m,
                            int64_t n, int64_t k, const void *A, int64_t lda, int64_t sa,
                            const void *B, int64_t ldb, int64_t sb, void *C, int64_t ldc,
                            int64_t sc, int64_t batch, bool ab_bf16, const LtEpi &epi) {
  MmDev *md = mm_dev(dev);
  if (!md) return false;
  int mode = ab_bf16 ? 3 : (int)tyr_cuda_get_matmul_mode(); /* 3: bf16 copies of f32 */
  cudaDataType_t ty;
  cublasComputeType_t ct;
  cudaDataType_t scale_ty;
  size_t es = tyr_dtype_size(dt);
  switch (dt) {
  case TYR_F32:
    ty = CUDA_R_32F;
    ct = mode == TYR_CUDA_MATMUL_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
         : mode == TYR_CUDA_MATMUL_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                        : CUBLAS_COMPUTE_32F;
    scale_ty = CUDA_R_32F;
    break;
  case TYR_F64:
    ty = CUDA_R_64F;
    ct = CUBLAS_COMPUTE_64F;
    scale_ty = CUDA_R_64F;
    break;
  case TYR_BF16:
    ty = CUDA_R_16BF;
    ct = CUBLAS_COMPUTE_32F;
    scale_ty = CUDA_R_32F;
    break;
  default:
    ty = CUDA_R_16F;
    ct = CUBLAS_COMPUTE_32F;
    scale_ty = CUDA_R_32F;
    break;
  }
  cublasLtMatmulDesc_t op = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  bool ok = false;
  cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  int32_t bc = (int32_t)batch;
  cudaDataType_t ty_ab = ab_bf16 ? CUDA_R_16BF : ty;
  if (ab_bf16) ct = CUBLAS_COMPUTE_32F;
  size_t es_ab = ab_bf16 ? 2 : es;
  unsigned al_a = align_of(A, sa * (int64_t)es_ab, batch),
           al_b = align_of(B, sb * (int64_t)es_ab, batch),
           al_c = align_of(C, sc * (int64_t)es, batch);
  AlgoKey key;
  memset(&key, 0, sizeof key);
  int64_t kv[16] = {
      (int64_t)dt, ta,   tb,   m,
      n,           k,    lda,  ldb,
      ldc,         sa,   sb,   sc,
      batch,       al_a, al_b, (int64_t)al_c | ((int64_t)mode << 32) | ((int64_t)epi.kind << 40)};
  memcpy(key.v, kv, sizeof kv);
  AlgoEntry *slot = &md->cache[key_hash(key) % MM_CACHE];
  float alpha_f = 1.0f, beta_f = 0.0f;
  double alpha_d = 1.0, beta_d = 0.0;
  const void *alpha = dt == TYR_F64 ? (const void *)&alpha_d : (const void *)&alpha_f;
  const void *beta = dt == TYR_F64 ? (const void *)&beta_d : (const void *)&beta_f;

  if (!LT_CHECK(cublasLtMatmulDescCreate(&op, ct, scale_ty))) goto done;
  if (!LT_CHECK(
          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa)) ||
      !LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb)))
    goto done;
  if (epi.kind != CUBLASLT_EPILOGUE_DEFAULT) {
    if (!LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi.kind,
                                                 sizeof epi.kind)) ||
        (epi.vec && !LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                             &epi.vec, sizeof epi.vec))) ||
        (epi.aux &&
         (!LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                   &epi.aux, sizeof epi.aux)) ||
          !LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                   &epi.ldaux, sizeof epi.ldaux)))))
      goto done;
  }
  if (!LT_CHECK(cublasLtMatrixLayoutCreate(&la, ty_ab, ta ? k : m, ta ? m : k, lda)) ||
      !LT_CHECK(cublasLtMatrixLayoutCreate(&lb, ty_ab, tb ? n : k, tb ? k : n, ldb)) ||
      !LT_CHECK(cublasLtMatrixLayoutCreate(&lc, ty, m, n, ldc)))
    goto done;
  if (batch > 1) {
    cublasLtMatrixLayout_t ls[3] = {la, lb, lc};
    int64_t ss[3] = {sa, sb, sc};
    for (int i = 0; i < 3; i++) {
      if (!LT_CHECK(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc,
                                                     sizeof bc)) ||
          !LT_CHECK(cublasLtMatrixLayoutSetAttribute(
              ls[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &ss[i], sizeof ss[i])))
        goto done;
    }
  }
  pthread_mutex_lock(&g_mm_lock);
  if (!slot->used || memcmp(&slot->key, &key, sizeof key) != 0) {
    pthread_mutex_unlock(&g_mm_lock);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!LT_CHECK(cublasLtMatmulPreferenceCreate(&pref))) goto done;
    uint32_t aa = al_a, ab = al_b, ac = al_c;
    if (!LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &md->ws_size, sizeof md->ws_size)) ||
        !LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa)) ||
        !LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab)) ||
        !LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac)) ||
        !LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac)))
      goto done;
    cublasStatus_t hs =
        cublasLtMatmulAlgoGetHeuristic(md->h, op, la, lb, lc, lc, pref, 1, &res, &found);
    if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
      if (epi.quiet) goto done;
      tcu_fail(__FILE__, __LINE__, "cuda_matmul",
               "cuBLASLt has no algorithm for %s [%lld x %lld] @ [%lld x %lld] (batch %lld, "
               "lda %lld, ldb %lld, transposed %d %d): %s",
               tyr_dtype_name(dt), (long long)n, (long long)k, (long long)k, (long long)m,
               (long long)batch, (long long)ldb, (long long)lda, (int)tb, (int)ta,
               hs != CUBLAS_STATUS_SUCCESS ? cublasLtGetStatusString(hs) : "none found");
      goto done;
    }
    pthread_mutex_lock(&g_mm_lock);
    slot->used = true;
    slot->key = key;
    slot->algo = res.algo;
  }
  {
    cublasLtMatmulAlgo_t algo = slot->algo;
    pthread_mutex_unlock(&g_mm_lock);
    ok = LT_CHECK(cublasLtMatmul(md->h, op, alpha, A, la, B, lb, beta, C, lc, C, lc, &algo, md->ws,
                                 md->ws_size, st));
  }
done:
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (lc) cublasLtMatrixLayoutDestroy(lc);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (op) cublasLtMatmulDescDestroy(op);
  return ok;
}

/* Batch dims of the three operands as up to two groups, each walkable
 * with one stride per operand. */
struct BatchGroups {
  int n;
  int64_t size[TYR_MAX_RANK], sa[TYR_MAX_RANK], sb[TYR_MAX_RANK], so[TYR_MAX_RANK];
};

static int64_t bstride(const tyr_tensor *t, int d, int r) {
  int lead = r - t->rank; /* a rank-2 operand of a batched product repeats */
  return d < lead ? 0 : t->stride[d - lead];
}

static BatchGroups batch_groups(const tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  BatchGroups g;
  g.n = 0;
  int r = out->rank;
  for (int d = 0; d < r - 2; d++) {
    int64_t sz = out->shape[d];
    if (sz == 1) continue;
    int64_t xa = bstride(a, d, r), xb = bstride(b, d, r), xo = out->stride[d];
    if (g.n > 0 && g.sa[g.n - 1] == xa * sz && g.sb[g.n - 1] == xb * sz &&
        g.so[g.n - 1] == xo * sz) {
      g.size[g.n - 1] *= sz;
      g.sa[g.n - 1] = xa;
      g.sb[g.n - 1] = xb;
      g.so[g.n - 1] = xo;
      continue;
    }
    g.size[g.n] = sz;
    g.sa[g.n] = xa;
    g.sb[g.n] = xb;
    g.so[g.n] = xo;
    g.n++;
  }
  return g;
}

/* out [M, N] += bias [N] on every row (bias seen with row stride 0) */
static void add_bias_rows(tyr_tensor *out, const tyr_tensor *bias) {
  tyr_tensor rows = *bias;
  rows.rank = 2;
  rows.shape[0] = out->shape[0], rows.shape[1] = out->shape[1];
  rows.stride[0] = 0, rows.stride[1] = bias->stride[0];
  tcu_binary(TYR_BIN_ADD, out, out, &rows);
}

/* out = a @ b (+ bias on every row when bias is non-NULL: a and b are then
   rank 2, bias [N] contiguous and 16-byte aligned) */
static void matmul_impl(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                        const tyr_tensor *bias) {
  cudaStream_t st = tcu_enter(out->device);
  if (!st) return;
  int r = out->rank;
  int64_t M = out->shape[r - 2], N = out->shape[r - 1], K = a->shape[a->rank - 1];
  if (M == 0 || N == 0 || tyr_numel(out) == 0) return;
  if (K == 0) {
    tcu_fill(out, 0.0);
    if (bias) add_bias_rows(out, bias);
    return;
  }
  tyr_dtype dt = out->dtype;
  if (!tcu_is_float(dt) || a->dtype != dt || b->dtype != dt || (bias && bias->dtype != dt)) {
    tcu_fail(__FILE__, __LINE__, "cuda_matmul", "dtypes %s @ %s -> %s are not supported",
             tyr_dtype_name(a->dtype), tyr_dtype_name(b->dtype), tyr_dtype_name(dt));
    return;
  }
  TmpTensor ta_tmp, tb_tmp, to_tmp;
  memset(&ta_tmp, 0, sizeof ta_tmp);
  memset(&tb_tmp, 0, sizeof tb_tmp);
  memset(&to_tmp, 0, sizeof to_tmp);
  const tyr_tensor *A = a, *B = b;
  tyr_tensor *O = out;
  bool tra, trb;
  int64_t lda, ldb;
  if (!tyr_gemm_layout(A, &tra, &lda)) {
    if (!(A = tcu_contiguous(a, &ta_tmp))) return;
    tyr_gemm_layout(A, &tra, &lda);
  }
  if (!tyr_gemm_layout(B, &trb, &ldb)) {
    if (!(B = tcu_contiguous(b, &tb_tmp))) {
      tcu_release(A, &ta_tmp);
      return;
    }
    tyr_gemm_layout(B, &trb, &ldb);
  }
  if (!tyr_is_contiguous(out)) { /* the table promises a contiguous out; be safe anyway */
    if (!(O = tcu_temp_like(out, dt, &to_tmp))) {
      tcu_release(A, &ta_tmp);
      tcu_release(B, &tb_tmp);
      return;
    }
  }
  BatchGroups g = batch_groups(O, A, B);
  size_t es = tyr_dtype_size(dt);
  const char *pa = (const char *)tyr_data_ptr(A), *pb = (const char *)tyr_data_ptr(B);
  char *po = (char *)tyr_data_ptr(O);
  int dev = out->device.index;
  /* column-major: C^T[N, M] = op(B)^T[N, K] op(A)^T[K, M] */
  if (g.n == 0) {
    LtEpi epi = {CUBLASLT_EPILOGUE_BIAS, bias ? tyr_data_ptr(bias) : NULL, false, NULL, 0};
    lt_matmul(dev, st, dt, trb, tra, N, M, K, pb, ldb, 0, pa, lda, 0, po, N, 0, 1,
              bias ? epi : NO_EPI);
  } else {
    int inner = g.n - 1;
    int64_t outer_n = 1;
    for (int i = 0; i < inner; i++) outer_n *= g.size[i];
    for (int64_t q = 0; q < outer_n; q++) {
      int64_t oa = 0, ob = 0, oo = 0, rem = q;
      for (int i = inner - 1; i >= 0; i--) {
        int64_t idx = rem % g.size[i];
        rem /= g.size[i];
        oa += idx * g.sa[i];
        ob += idx * g.sb[i];
        oo += idx * g.so[i];
      }
      if (!lt_matmul(dev, st, dt, trb, tra, N, M, K, pb + ob * (int64_t)es, ldb, g.sb[inner],
                     pa + oa * (int64_t)es, lda, g.sa[inner], po + oo * (int64_t)es, N, g.so[inner],
                     g.size[inner]))
        break;
    }
  }
  if (O != out) tcu_copy(out, O);
  tcu_release(A, &ta_tmp);
  tcu_release(B, &tb_tmp);
  tcu_release(O, &to_tmp);
}

void tcu_matmul(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  matmul_impl(out, a, b, NULL);
}

void tcu_matmul_bias(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                     const tyr_tensor *bias) {
  if (a->rank != 2 || b->rank != 2 || out->rank != 2 || !tyr_is_contiguous(bias) ||
      !tcu_aligned16(tyr_data_ptr(bias))) { /* outside the epilogue's terms: product, then add */
    matmul_impl(out, a, b, NULL);
    add_bias_rows(out, bias);
    return;
  }
  matmul_impl(out, a, b, bias);
}

/* out [M, N] = a [M, K] @ b [K, N] and gbias [M] = a summed over K in one
   cuBLASLt call (BGRADB: in column-major terms out^T = b^T a^T, and a^T is
   the B operand reduced over k).  Only rank-2 operands cuBLASLt reads as
   they are, a contiguous out and a contiguous 16-byte aligned gbias; a, b,
   out and gbias of one dtype, or bf16 a and b with f32 out and gbias (the
   f32 gradients of a mixed-precision layer's parameters, written by the
   GEMM from its f32 accumulator); otherwise, or when cuBLASLt has no such
   algorithm, nothing is written and false is returned. */
bool tcu_matmul_bgrad(tyr_tensor *out, tyr_tensor *gbias, const tyr_tensor *a,
                      const tyr_tensor *b) {
  tyr_dtype dt = out->dtype;
  bool tra, trb;
  int64_t lda, ldb;
  bool widen = dt == TYR_F32 && a->dtype == TYR_BF16 && b->dtype == TYR_BF16;
  if (a->rank != 2 || b->rank != 2 || out->rank != 2 || !tyr_is_contiguous(out) ||
      !tyr_is_contiguous(gbias) || !tcu_aligned16(tyr_data_ptr(gbias)) ||
      (!widen && (a->dtype != dt || b->dtype != dt)) || gbias->dtype != dt ||
      (dt != TYR_BF16 && dt != TYR_F16 && dt != TYR_F32) || !tyr_gemm_layout(a, &tra, &lda) ||
      !tyr_gemm_layout(b, &trb, &ldb))
    return false;
  int64_t M = out->shape[0], N = out->shape[1], K = a->shape[1];
  if (M == 0 || N == 0 || K == 0 || gbias->shape[0] != M) return false;
  cudaStream_t st = tcu_enter(out->device);
  if (!st) return true; /* raised */
  LtEpi epi = {CUBLASLT_EPILOGUE_BGRADB, tyr_data_ptr(gbias), true, NULL, 0};
  if (widen) /* bf16 operands as they are, f32 out (the path of f32 operands rounded to bf16) */
    return lt_matmul_typed(out->device.index, st, TYR_F32, trb, tra, N, M, K, tyr_data_ptr(b), ldb,
                           0, tyr_data_ptr(a), lda, 0, tyr_data_ptr(out), N, 0, 1, true, epi);
  return lt_matmul(out->device.index, st, dt, trb, tra, N, M, K, tyr_data_ptr(b), ldb, 0,
                   tyr_data_ptr(a), lda, 0, tyr_data_ptr(out), N, 0, 1, epi);
}

/* Whether a, b (rank 2, as cuBLASLt reads them) and the contiguous rank-2
   out of one 16- or 32-bit float dtype suit the GELU epilogues; the
   [M, N] operand that goes with out (pre) must be contiguous, 16-byte
   aligned, with N a multiple of 8 (cuBLASLt's terms for aux). */
static bool act_operands(const tyr_tensor *out, const tyr_tensor *pre, const tyr_tensor *a,
                         const tyr_tensor *b, tyr_unary_op act, bool *tra, int64_t *lda, bool *trb,
                         int64_t *ldb) {
  tyr_dtype dt = out->dtype;
  return act == TYR_UN_GELU_TANH && (dt == TYR_BF16 || dt == TYR_F16) && a->rank == 2 &&
         b->rank == 2 && out->rank == 2 && pre->rank == 2 && a->dtype == dt && b->dtype == dt &&
         pre->dtype == dt && tyr_is_contiguous(out) && tyr_is_contiguous(pre) &&
         pre->shape[0] == out->shape[0] && pre->shape[1] == out->shape[1] &&
         out->shape[1] % 8 == 0 && tcu_aligned16(tyr_data_ptr(pre)) && out->shape[0] > 0 &&
         out->shape[1] > 0 && a->shape[1] > 0 && tyr_gemm_layout(a, tra, lda) &&
         tyr_gemm_layout(b, trb, ldb);
}

static bool vec_ok(const tyr_tensor *v, tyr_dtype dt, int64_t n) {
  return !v || (v->rank == 1 && v->shape[0] == n && v->dtype == dt && tyr_is_contiguous(v) &&
                tcu_aligned16(tyr_data_ptr(v)));
}

/* out [M, N] = act(a [M, K] @ b [K, N] + bias [N]) and pre = its argument,
   by cuBLASLt's GELU_AUX_BIAS (GELU_AUX without a bias) epilogue; false,
   nothing written, outside its terms (act TYR_UN_GELU_TANH, bf16/f16) */
bool tcu_matmul_act(tyr_tensor *out, tyr_tensor *pre, const tyr_tensor *a, const tyr_tensor *b,
                    const tyr_tensor *bias, tyr_unary_op act) {
  bool tra, trb;
  int64_t lda, ldb;
  if (!act_operands(out, pre, a, b, act, &tra, &lda, &trb, &ldb) ||
      !vec_ok(bias, out->dtype, out->shape[1]))
    return false;
  cudaStream_t st = tcu_enter(out->device);
  if (!st) return true; /* raised */
  int64_t M = out->shape[0], N = out->shape[1], K = a->shape[1];
  LtEpi epi = {bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX,
               bias ? tyr_data_ptr(bias) : NULL, true, tyr_data_ptr(pre), N};
  return lt_matmul(out->device.index, st, out->dtype, trb, tra, N, M, K, tyr_data_ptr(b), ldb, 0,
                   tyr_data_ptr(a), lda, 0, tyr_data_ptr(out), N, 0, 1, epi);
}

/* out [M, N] = (a [M, K] @ b [K, N]) * act'(pre) by cuBLASLt's DGELU
   epilogue; false, nothing written, outside its terms.  (DGELU_BGRAD would
   give the bias gradient too, but cuBLASLt runs it as a separate epilogue
   kernel that costs more than a column sum: docs/cuda.md.) */
bool tcu_matmul_dact(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                     const tyr_tensor *pre, tyr_unary_op act) {
  bool tra, trb;
  int64_t lda, ldb;
  if (!act_operands(out, pre, a, b, act, &tra, &lda, &trb, &ldb)) return false;
  cudaStream_t st = tcu_enter(out->device);
  if (!st) return true; /* raised */
  int64_t M = out->shape[0], N = out->shape[1], K = a->shape[1];
  LtEpi epi = {CUBLASLT_EPILOGUE_DGELU, NULL, true, tyr_data_ptr(pre), N};
  return lt_matmul(out->device.index, st, out->dtype, trb, tra, N, M, K, tyr_data_ptr(b), ldb, 0,
                   tyr_data_ptr(a), lda, 0, tyr_data_ptr(out), N, 0, 1, epi);
}
