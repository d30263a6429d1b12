/* CUDA scaled-dot-product attention on tensor cores, FlashAttention-2
 * style: bf16 operands in shared memory, mma.sync m16n8k16 with f32
 * accumulators, the online softmax in registers.  It runs in place of the
 * CUDA-core kernel (attention.cu) for bf16 tensors, and for f32 tensors
 * while the matmul mode is TYR_CUDA_MATMUL_BF16 (their q, k, v and dout are
 * rounded to bf16 as they are staged in shared memory; out, lse and the
 * gradients are written as f32), with head dims 32, 64 and 128 and no
 * bool/u8 mask.  Causal masks, sliding windows, document ids (checked per
 * score; tiles are skipped by position only), grouped KV heads, T != S
 * (query i sits at key position i + S - T) and fully masked rows (output 0,
 * lse -inf, zero gradients) follow src/cpu/attention.c; lse is the natural
 * log-sum-exp of the scaled scores, as the CUDA-core kernel saves it, so
 * either backward can follow either forward.
 *
 * Work split (4 warps, 128 threads, per block):
 *   forward   64 query rows (16 per warp) x key/value tiles of 64
 *   dq        64 query rows (16 per warp) x key/value tiles of 64 (32 for D 128)
 *   dk, dv    64 key rows (16 per warp) x query tiles of 64 (32 for D 128),
 *             looping over the query heads of a GQA group
 * The backward recomputes the probabilities from lse in both passes, so no
 * atomics are needed and results are deterministic.  Tiles are staged in
 * shared memory double-buffered: bf16 tensors by cp.async (the next tile is
 * in flight while the current one is used), f32 tensors by loads that are
 * rounded to bf16 and stored at once.
 *
 * mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32, D = A B + C with A 16x16,
 * B 16x8, C/D 16x8 (PTX ISA, "Matrix Fragments for mma.m16n8k16").  For
 * lane l, g = l / 4 and t = l % 4:
 *   A: 4 registers of 2 bf16 (low half = lower column):
 *      a0 = A[g][2t..2t+1]    a1 = A[g+8][2t..2t+1]
 *      a2 = A[g][2t+8..2t+9]  a3 = A[g+8][2t+8..2t+9]
 *   B: 2 registers: b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
 *   C: 4 floats: c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = C[g+8][2t], C[g+8][2t+1]
 * so the C fragments of two neighbouring 16x8 blocks (columns 0-7 and 8-15)
 * are, packed to bf16 in pairs, exactly the A fragment of that 16x16 block:
 * scores turn into the A operand of P V without going through shared
 * memory.
 *
 * ldmatrix.m8n8.x4 loads four 8x8 b16 matrices; lanes 8m..8m+7 give the
 * addresses of the 8 rows (16 bytes each) of matrix m, and lane l receives
 * in register m the elements (l/4, 2(l%4)) and (l/4, 2(l%4)+1) of matrix m
 * (with .trans: (2(l%4), l/4) and (2(l%4)+1, l/4)).  Shared tiles are
 * row-major with rows of D + 8 bf16 (the 16-byte pad puts the 8 rows of a
 * matrix in distinct banks). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/attention_tc.cuh"
#include "tyr/cuda.h"

/* ---- which kernel (tyr_cuda_set_attention_kernel) -------------------------------------------- */
static pthread_mutex_t g_attn_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_attn = -1; /* tyr_cuda_attention_kernel; -1: not read from the environment yet */

extern "C" void tyr_cuda_set_attention_kernel(tyr_cuda_attention_kernel kernel) {
  pthread_mutex_lock(&g_attn_lock);
  g_attn = kernel == TYR_CUDA_ATTENTION_SIMT || kernel == TYR_CUDA_ATTENTION_TC ||
                   kernel == TYR_CUDA_ATTENTION_CUDNN
               ? (int)kernel
               : (int)TYR_CUDA_ATTENTION_AUTO;
  pthread_mutex_unlock(&g_attn_lock);
}

extern "C" tyr_cuda_attention_kernel tyr_cuda_get_attention_kernel(void) {
  pthread_mutex_lock(&g_attn_lock);
  if (g_attn < 0) {
    const char *e = getenv("TYR_CUDA_ATTN");
    g_attn = e && !strcmp(e, "simt")    ? TYR_CUDA_ATTENTION_SIMT
             : e && !strcmp(e, "tc")    ? TYR_CUDA_ATTENTION_TC
             : e && !strcmp(e, "cudnn") ? TYR_CUDA_ATTENTION_CUDNN
                                        : TYR_CUDA_ATTENTION_AUTO;
  }
  int k = g_attn;
  pthread_mutex_unlock(&g_attn_lock);
  return (tyr_cuda_attention_kernel)k;
}

static __thread int g_attn_last; /* tyr_cuda_attention_kernel; AUTO: none yet */

void tcu_attention_ran(tyr_cuda_attention_kernel kernel) {
  g_attn_last = kernel;
}

extern "C" tyr_cuda_attention_kernel tyr_cuda_attention_last(void) {
  return (tyr_cuda_attention_kernel)g_attn_last;
}

namespace {

#define TC_THREADS 128 /* 4 warps */
#define TC_BM 64       /* rows a block owns: queries (forward, dq) or keys (dk, dv) */
#define TC_LOG2E 1.4426950408889634f
#define TC_LN2 0.6931471805599453f

/* Positions are ints (the host checks T and S < 2^30); element offsets are
 * int64. */
struct TcShape {
  int Hq, Hkv, T, S;
  int off;            /* S - T: query i sits at key position i + off */
  int window;         /* > 0: query i sees keys (i + off - window, i + off] */
  bool cw;            /* causal or window: keys after a query's position are hidden */
  const int32_t *doc; /* [B, S] document ids, or NULL: query i sees key j only when
                         doc[b, i + off] == doc[b, j] */
};

/* Element strides of a [B, H, T, D] operand over batch, head and row (the
 * head dim is contiguous): views into a packed [B, T, (Hq + 2 Hkv) D]
 * projection or a [B, T, H, D] output need no copies. */
struct TcStr {
  int64_t b, h, t;
};
struct TcLayout {
  TcStr q, k, v, o, g, dq, dk, dv; /* g: dout */
};
__device__ __forceinline__ int64_t tc_base(const TcStr &s, int64_t b, int64_t h) {
  return b * s.b + h * s.h;
}

/* Whether query i of batch b sees key j (j >= 0, i >= 0; i < T where
 * document ids are read). */
__device__ __forceinline__ bool tc_visible(const TcShape &sh, int64_t b, int i, int j) {
  int pos = i + sh.off;
  return j < sh.S && (!sh.cw || j <= pos) && (sh.window <= 0 || j > pos - sh.window) &&
         (!sh.doc || (i < sh.T && sh.doc[b * sh.S + pos] == sh.doc[b * sh.S + j]));
}

/* ---- PTX wrappers ---------------------------------------------------------------------------- */
__device__ __forceinline__ uint32_t smem_addr(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
/* c += A B (fragments as in the header comment) */
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
               "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* two floats rounded to bf16 (nearest even), lo in the low half */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
/* 2^x; exactly 0 for -inf (and for results below the normal range) */
__device__ __forceinline__ float tc_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
/* 16 bytes global -> shared without registers; zeros when !valid */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* ---- staging tiles --------------------------------------------------------------------------- */
/* Rows [r0, r0 + ROWS) of a [*, D] matrix with rows ld elements apart
 * (rows from rmax on are zeros: they add nothing to products, and never
 * NaN) into a shared tile of bf16 with row stride D + 8, by 16-byte chunks
 * (D / 8 per row). */
template <int D, int ROWS>
__device__ __forceinline__ void tc_load(uint16_t *dst, const bf16 *src, int r0, int rmax,
                                        int64_t ld) {
  constexpr int CH = D / 8, LD = D + 8;
#pragma unroll
  for (int it = 0; it < ROWS * CH / TC_THREADS; it++) {
    const int idx = threadIdx.x + it * TC_THREADS, r = idx / CH, c = idx % CH;
    const bool ok = r0 + r < rmax;
    cp_async16(smem_addr(dst + r * LD + c * 8), ok ? src + (int64_t)(r0 + r) * ld + c * 8 : src,
               ok);
  }
}
template <int D, int ROWS>
__device__ __forceinline__ void tc_load(uint16_t *dst, const float *src, int r0, int rmax,
                                        int64_t ld) {
  constexpr int CH = D / 8, LD = D + 8, N = ROWS * CH / TC_THREADS;
  float4 x[N][2];
#pragma unroll
  for (int it = 0; it < N; it++) { /* every load first, then the stores */
    const int idx = threadIdx.x + it * TC_THREADS, r = idx / CH, c = idx % CH;
    if (r0 + r < rmax) {
      const float4 *p = (const float4 *)(src + (int64_t)(r0 + r) * ld + c * 8);
      x[it][0] = p[0];
      x[it][1] = p[1];
    } else {
      x[it][0] = x[it][1] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
#pragma unroll
  for (int it = 0; it < N; it++) {
    const int idx = threadIdx.x + it * TC_THREADS, r = idx / CH, c = idx % CH;
    uint4 w;
    w.x = pack_bf16(x[it][0].x, x[it][0].y);
    w.y = pack_bf16(x[it][0].z, x[it][0].w);
    w.z = pack_bf16(x[it][1].x, x[it][1].y);
    w.w = pack_bf16(x[it][1].z, x[it][1].w);
    *(uint4 *)(dst + r * LD + c * 8) = w;
  }
}

/* ---- fragments from shared tiles ------------------------------------------------------------- */
/* A operand (16 x 16) from rows row0.., columns col0.. of a row-major tile:
 * matrices 0..3 = (rows 0-7, cols 0-7), (rows 8-15, cols 0-7),
 * (rows 0-7, cols 8-15), (rows 8-15, cols 8-15) = a0..a3. */
template <int LD>
__device__ __forceinline__ void ld_a(uint32_t (&a)[4], const uint16_t *tile, int row0, int col0) {
  const int lane = threadIdx.x & 31;
  ldsm4(a, smem_addr(tile + (row0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + col0 +
                     (lane >> 4) * 8));
}
/* B operands of two neighbouring n-blocks (n0..n0+7 and n0+8..n0+15) for
 * k0..k0+15, where B[k][n] = tile[n][k] (the tile's rows are the n index:
 * K in Q K^T, V in dO V^T, Q in K Q^T).  Matrices 0..3 = (n 0-7, k 0-7),
 * (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15): lane l gets tile[n0 +
 * l/4][k0 + 2(l%4)..] = B[2t..2t+1][g], i.e. b0; so b[0], b[1] serve n-block
 * n0 and b[2], b[3] n-block n0 + 8. */
template <int LD>
__device__ __forceinline__ void ld_b_nk(uint32_t (&b)[4], const uint16_t *tile, int n0, int k0) {
  const int lane = threadIdx.x & 31;
  ldsm4(b, smem_addr(tile + (n0 + (lane & 7) + (lane >> 4) * 8) * LD + k0 + ((lane >> 3) & 1) * 8));
}
/* B operands of two neighbouring n-blocks for k0..k0+15 where B[k][n] =
 * tile[k][n] (the tile's rows are the k index: V in P V, K in dS K, dO in
 * P^T dO, Q in dS^T Q), by ldmatrix.trans.  Matrices 0..3 = (k 0-7, n 0-7),
 * (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15); transposed, lane l
 * gets tile[k0 + 2(l%4)..+1][n0 + l/4] = B[2t..2t+1][g].  b[0], b[1] serve
 * n-block n0, b[2], b[3] n-block n0 + 8. */
template <int LD>
__device__ __forceinline__ void ld_b_kn(uint32_t (&b)[4], const uint16_t *tile, int k0, int n0) {
  const int lane = threadIdx.x & 31;
  ldsm4_t(b,
          smem_addr(tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n0 + (lane >> 4) * 8));
}
/* The A operand for columns 16kk..16kk+15 from the C fragments of the two
 * 16x8 blocks c0 (columns 16kk..+7) and c1 (16kk+8..+15). */
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4],
                                       const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

/* two neighbouring outputs */
__device__ __forceinline__ void st2(float *p, float a, float b) {
  *(float2 *)p = make_float2(a, b);
}
__device__ __forceinline__ void st2(bf16 *p, float a, float b) {
  *(uint32_t *)p = pack_bf16(a, b);
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Keys [lo, hi) seen by some query in [i0, i1] (i1 < T). */
__device__ __forceinline__ void tc_key_range(const TcShape &sh, int i0, int i1, int *lo, int *hi) {
  int l = 0, h = sh.S;
  if (sh.cw && i1 + sh.off + 1 < h) h = i1 + sh.off + 1;
  if (sh.window > 0 && i0 + sh.off - sh.window + 1 > l) l = i0 + sh.off - sh.window + 1;
  *lo = l;
  *hi = h > l ? h : l;
}
/* Whether some query in [i0, i1] sees some key in [j0, j1] (i1 < T, j1 < S). */
__device__ __forceinline__ bool tc_any_visible(const TcShape &sh, int i0, int i1, int j0, int j1) {
  return i0 <= i1 && j0 <= j1 && (!sh.cw || j0 <= i1 + sh.off) &&
         (sh.window <= 0 || j1 > i0 + sh.off - sh.window);
}
/* Whether every query in [i0, i1] sees every key in [j0, j1] before the
 * bounds T and S (which the kernels handle apart); never with document ids,
 * which are checked element by element. */
__device__ __forceinline__ bool tc_all_visible(const TcShape &sh, int i0, int i1, int j0, int j1) {
  return !sh.doc && (!sh.cw || j1 <= i0 + sh.off) &&
         (sh.window <= 0 || j0 > i1 + sh.off - sh.window);
}

/* ---- forward --------------------------------------------------------------------------------- */
/* Block: 64 query rows of one (batch, head), the last rows first (under a
 * causal mask they have the most keys).  Warp w owns rows 16w..16w+15: its Q
 * fragments stay in registers; per key tile it computes S = Q K^T (16 x 64),
 * scales it to log2 units (scale * log2 e), masks, and updates the running
 * max m and sum l of each row and the output accumulator O (16 x D).  Lane
 * (g, t) holds rows g and g+8 of S and O (C fragments); the 4 lanes of a
 * quad share rows, so row max and sum reduce over a quad only. */
template <typename T, int D>
__global__ void __launch_bounds__(TC_THREADS)
    tc_fw_kernel(T *__restrict__ out, float *__restrict__ lse, const T *__restrict__ q,
                 const T *__restrict__ k, const T *__restrict__ v, TcShape sh, TcLayout L,
                 float sl2) {
  constexpr int BM = TC_BM, BN = 64, LD = D + 8, KD = D / 16, ND = D / 8, NS = BN / 8;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  uint16_t *sQ = (uint16_t *)tc_smem; /* [BM][LD] */
  uint16_t *sK = sQ + BM * LD;        /* [2][BN][LD] */
  uint16_t *sV = sK + 2 * BN * LD;    /* [2][BN][LD] */
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t bh = blockIdx.y, b = bh / sh.Hq, h = bh % sh.Hq, hk = h / (sh.Hq / sh.Hkv);
  const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * BM;
  const T *qb = q + tc_base(L.q, b, h);
  const T *kb = k + tc_base(L.k, b, hk), *vb = v + tc_base(L.v, b, hk);
  int lo, hi;
  tc_key_range(sh, i0, i0 + BM - 1 < sh.T ? i0 + BM - 1 : sh.T - 1, &lo, &hi);
  const int ntiles = (hi - lo + BN - 1) / BN;
  const int w0 = i0 + warp * 16, w1 = w0 + 15 < sh.T ? w0 + 15 : sh.T - 1; /* warp's rows */
  const int row[2] = {w0 + g, w0 + g + 8};                                 /* this lane's rows */

  float o[ND][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int d = 0; d < ND; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  uint32_t qf[KD][4];

  if (ntiles > 0) {
    tc_load<D, BM>(sQ, qb, i0, sh.T, L.q.t);
    tc_load<D, BN>(sK, kb, lo, sh.S, L.k.t);
    tc_load<D, BN>(sV, vb, lo, sh.S, L.v.t);
    cp_async_commit();
  }
  for (int n = 0; n < ntiles; n++) {
    const int j0 = lo + n * BN;
    const uint16_t *cK = sK + (n & 1) * BN * LD, *cV = sV + (n & 1) * BN * LD;
    if (n + 1 < ntiles) { /* the next tile into the other buffer, freed at the end of n - 1 */
      tc_load<D, BN>(sK + ((n + 1) & 1) * BN * LD, kb, j0 + BN, sh.S, L.k.t);
      tc_load<D, BN>(sV + ((n + 1) & 1) * BN * LD, vb, j0 + BN, sh.S, L.v.t);
      cp_async_commit();
      cp_async_wait<1>(); /* all but the group just issued: tile n (and Q) */
    } else {
      cp_async_wait<0>();
    }
    __syncthreads(); /* tile n visible to every warp */
    if (n == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; kk++) ld_a<LD>(qf[kk], sQ, warp * 16, kk * 16);
    }
    const int j1 = j0 + BN - 1 < sh.S ? j0 + BN - 1 : sh.S - 1;
    if (tc_any_visible(sh, w0, w1, j0, j1)) { /* uniform across the warp */
      float s[NS][4];
#pragma unroll
      for (int c = 0; c < NS; c++) {
        s[c][0] = s[c][1] = s[c][2] = s[c][3] = 0.f;
      }
      /* S = Q K^T: B[d][j] = K[j][d] */
#pragma unroll
      for (int kk = 0; kk < KD; kk++)
#pragma unroll
        for (int nn = 0; nn < NS / 2; nn++) {
          uint32_t bk[4];
          ld_b_nk<LD>(bk, cK, nn * 16, kk * 16);
          mma_bf16(s[2 * nn], qf[kk], bk[0], bk[1]);
          mma_bf16(s[2 * nn + 1], qf[kk], bk[2], bk[3]);
        }
      const bool full = j0 + BN <= sh.S && tc_all_visible(sh, w0, w1, j0, j0 + BN - 1);
#pragma unroll
      for (int c = 0; c < NS; c++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[c][e] *= sl2;
          if (!full && !tc_visible(sh, b, row[e >> 1], j0 + c * 8 + 2 * t + (e & 1)))
            s[c][e] = -INFINITY;
        }
      }
      /* online softmax: row r of this lane is C elements 2r, 2r+1 */
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < NS; c++) mx = fmaxf(mx, fmaxf(s[c][2 * r], s[c][2 * r + 1]));
        const float mn = fmaxf(m[r], quad_max(mx));
        const float base = mn == -INFINITY ? 0.f : mn; /* a row with nothing visible yet */
        const float corr = tc_exp2(m[r] - base);       /* 0 while m was -inf */
        m[r] = mn;
        float sum = 0.f;
#pragma unroll
        for (int c = 0; c < NS; c++) {
          s[c][2 * r] = tc_exp2(s[c][2 * r] - base);
          s[c][2 * r + 1] = tc_exp2(s[c][2 * r + 1] - base);
          sum += s[c][2 * r] + s[c][2 * r + 1];
        }
        l[r] = l[r] * corr + sum; /* this lane's part; the quad's sum at the end */
#pragma unroll
        for (int d = 0; d < ND; d++) {
          o[d][2 * r] *= corr;
          o[d][2 * r + 1] *= corr;
        }
      }
      /* O += P V: A = P (bf16, from the C fragments), B[j][d] = V[j][d] */
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++) {
        uint32_t a[4];
        c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
        for (int dd = 0; dd < D / 16; dd++) {
          uint32_t bv[4];
          ld_b_kn<LD>(bv, cV, kk * 16, dd * 16);
          mma_bf16(o[2 * dd], a, bv[0], bv[1]);
          mma_bf16(o[2 * dd + 1], a, bv[2], bv[3]);
        }
      }
    }
    __syncthreads(); /* every warp is done with buffer n & 1 before it is refilled */
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const float sum = quad_sum(l[r]);
    if (row[r] >= sh.T) continue;
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    T *orow = out + tc_base(L.o, b, h) + row[r] * L.o.t + 2 * t;
#pragma unroll
    for (int d = 0; d < ND; d++) st2(orow + d * 8, o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
    if (t == 0) lse[bh * sh.T + row[r]] = sum > 0.f ? m[r] * TC_LN2 + logf(sum) : -INFINITY;
  }
}

/* ---- backward: delta = rowsum(dout * out), one warp per row ---------------------------------- */
template <typename T>
__global__ void tc_delta_kernel(float *__restrict__ delta, const T *__restrict__ dout,
                                const T *__restrict__ out, int64_t rows, int D, int H, int Tq,
                                TcLayout L) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; r < rows;
       r += (int64_t)gridDim.x * blockDim.x / 32) {
    const int64_t i = r % Tq, bh = r / Tq, b = bh / H, h = bh % H;
    const T *gr = dout + tc_base(L.g, b, h) + i * L.g.t,
            *orow = out + tc_base(L.o, b, h) + i * L.o.t;
    float acc = 0.f;
    for (int d = lane; d < D; d += 32) acc += to_c(gr[d]) * to_c(orow[d]);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) delta[r] = acc;
  }
}

/* log2-scaled lse of a query row for the backward: +inf for rows that see
 * nothing (lse -inf) and rows past T, so that exp2(s - L) is 0 there */
__device__ __forceinline__ float tc_lse2(const float *lse, int i, int T) {
  const float L = i < T ? lse[i] : -INFINITY;
  return L == -INFINITY ? INFINITY : L * TC_LOG2E;
}

/* ---- backward: dq ---------------------------------------------------------------------------- */
/* Laid out like the forward: warp w owns query rows 16w..16w+15 with their
 * Q and dO fragments in registers; per key tile it computes S = Q K^T and
 * dP = dO V^T, P = exp2(S scale log2 e - lse log2 e), dS = P (dP - delta),
 * and accumulates dQ += dS K (16 x D). */
template <typename T, int D, int BN>
__global__ void __launch_bounds__(TC_THREADS)
    tc_dq_kernel(T *__restrict__ dq, const T *__restrict__ dout, const T *__restrict__ q,
                 const T *__restrict__ k, const T *__restrict__ v, const float *__restrict__ lse,
                 const float *__restrict__ delta, TcShape sh, TcLayout L, float sl2, float scale) {
  constexpr int BM = TC_BM, LD = D + 8, KD = D / 16, ND = D / 8, NS = BN / 8;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  uint16_t *sQ = (uint16_t *)tc_smem; /* [BM][LD] */
  uint16_t *sG = sQ + BM * LD;        /* [BM][LD]: dout */
  uint16_t *sK = sG + BM * LD;        /* [2][BN][LD] */
  uint16_t *sV = sK + 2 * BN * LD;    /* [2][BN][LD] */
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t bh = blockIdx.y, b = bh / sh.Hq, h = bh % sh.Hq, hk = h / (sh.Hq / sh.Hkv);
  const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * BM;
  const T *kb = k + tc_base(L.k, b, hk), *vb = v + tc_base(L.v, b, hk);
  int lo, hi;
  tc_key_range(sh, i0, i0 + BM - 1 < sh.T ? i0 + BM - 1 : sh.T - 1, &lo, &hi);
  const int ntiles = (hi - lo + BN - 1) / BN;
  const int w0 = i0 + warp * 16, w1 = w0 + 15 < sh.T ? w0 + 15 : sh.T - 1;
  const int row[2] = {w0 + g, w0 + g + 8};
  float L2[2], Dl[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    L2[r] = tc_lse2(lse + bh * sh.T, row[r], sh.T);
    Dl[r] = row[r] < sh.T ? delta[bh * sh.T + row[r]] : 0.f;
  }

  float acc[ND][4];
#pragma unroll
  for (int d = 0; d < ND; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.f;
  uint32_t qf[KD][4], gf[KD][4];

  if (ntiles > 0) {
    tc_load<D, BM>(sQ, q + tc_base(L.q, b, h), i0, sh.T, L.q.t);
    tc_load<D, BM>(sG, dout + tc_base(L.g, b, h), i0, sh.T, L.g.t);
    tc_load<D, BN>(sK, kb, lo, sh.S, L.k.t);
    tc_load<D, BN>(sV, vb, lo, sh.S, L.v.t);
    cp_async_commit();
  }
  for (int n = 0; n < ntiles; n++) {
    const int j0 = lo + n * BN;
    const uint16_t *cK = sK + (n & 1) * BN * LD, *cV = sV + (n & 1) * BN * LD;
    if (n + 1 < ntiles) {
      tc_load<D, BN>(sK + ((n + 1) & 1) * BN * LD, kb, j0 + BN, sh.S, L.k.t);
      tc_load<D, BN>(sV + ((n + 1) & 1) * BN * LD, vb, j0 + BN, sh.S, L.v.t);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (n == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        ld_a<LD>(qf[kk], sQ, warp * 16, kk * 16);
        ld_a<LD>(gf[kk], sG, warp * 16, kk * 16);
      }
    }
    const int j1 = j0 + BN - 1 < sh.S ? j0 + BN - 1 : sh.S - 1;
    if (tc_any_visible(sh, w0, w1, j0, j1)) {
      float s[NS][4], dp[NS][4];
#pragma unroll
      for (int c = 0; c < NS; c++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[c][e] = dp[c][e] = 0.f;
          /* S = Q K^T, dP = dO V^T: B[d][j] = K[j][d], V[j][d] */
#pragma unroll
      for (int kk = 0; kk < KD; kk++)
#pragma unroll
        for (int nn = 0; nn < NS / 2; nn++) {
          uint32_t bk[4], bv[4];
          ld_b_nk<LD>(bk, cK, nn * 16, kk * 16);
          mma_bf16(s[2 * nn], qf[kk], bk[0], bk[1]);
          mma_bf16(s[2 * nn + 1], qf[kk], bk[2], bk[3]);
          ld_b_nk<LD>(bv, cV, nn * 16, kk * 16);
          mma_bf16(dp[2 * nn], gf[kk], bv[0], bv[1]);
          mma_bf16(dp[2 * nn + 1], gf[kk], bv[2], bv[3]);
        }
      const bool full = j0 + BN <= sh.S && tc_all_visible(sh, w0, w1, j0, j0 + BN - 1);
#pragma unroll
      for (int c = 0; c < NS; c++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int r = e >> 1;
          float p = tc_exp2(s[c][e] * sl2 - L2[r]);
          if (!full && !tc_visible(sh, b, row[r], j0 + c * 8 + 2 * t + (e & 1))) p = 0.f;
          s[c][e] = p * (dp[c][e] - Dl[r]); /* dS */
        }
      }
      /* dQ += dS K: A = dS, B[j][d] = K[j][d] */
#pragma unroll
      for (int kk = 0; kk < BN / 16; kk++) {
        uint32_t a[4];
        c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
        for (int dd = 0; dd < D / 16; dd++) {
          uint32_t bk[4];
          ld_b_kn<LD>(bk, cK, kk * 16, dd * 16);
          mma_bf16(acc[2 * dd], a, bk[0], bk[1]);
          mma_bf16(acc[2 * dd + 1], a, bk[2], bk[3]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (row[r] >= sh.T) continue;
    T *orow = dq + tc_base(L.dq, b, h) + row[r] * L.dq.t + 2 * t;
#pragma unroll
    for (int d = 0; d < ND; d++)
      st2(orow + d * 8, acc[d][2 * r] * scale, acc[d][2 * r + 1] * scale);
  }
}

/* ---- backward: dk, dv ------------------------------------------------------------------------ */
/* Block: 64 key rows of one (batch, kv head); warp w owns keys
 * 16w..16w+15.  It walks the query tiles that see the block, for every
 * query head of the group, and per tile computes S^T = K Q^T and
 * dP^T = V dO^T (16 keys x BQ queries; lse and delta are per column),
 * P^T = exp2(S^T scale log2 e - lse log2 e), dS^T = P^T (dP^T - delta), and
 * accumulates dV += P^T dO and dK += dS^T Q (16 x D each).  With KVREG the
 * warp's K and V fragments stay in registers, else (D 128: the accumulators
 * take 128 registers) they are read from shared memory for every tile. */
template <typename T, int D, int BQ, bool KVREG>
__global__ void __launch_bounds__(TC_THREADS)
    tc_dkv_kernel(T *__restrict__ dk, T *__restrict__ dv, const T *__restrict__ dout,
                  const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v,
                  const float *__restrict__ lse, const float *__restrict__ delta, TcShape sh,
                  TcLayout L, float sl2, float scale) {
  constexpr int BM = TC_BM, LD = D + 8, KD = D / 16, ND = D / 8, NQ = BQ / 8;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  uint16_t *sK = (uint16_t *)tc_smem;      /* [BM][LD] */
  uint16_t *sV = sK + BM * LD;             /* [BM][LD] */
  uint16_t *sQ = sV + BM * LD;             /* [2][BQ][LD] */
  uint16_t *sG = sQ + 2 * BQ * LD;         /* [2][BQ][LD]: dout */
  float *sL = (float *)(sG + 2 * BQ * LD); /* [2][BQ]: tc_lse2 of the tile's queries */
  float *sD = sL + 2 * BQ;                 /* [2][BQ]: delta */
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t bkv = blockIdx.y, b = bkv / sh.Hkv, hk = bkv % sh.Hkv, G = sh.Hq / sh.Hkv;
  const int j0 = (int)blockIdx.x * BM;
  const int jlast = j0 + BM - 1 < sh.S ? j0 + BM - 1 : sh.S - 1;
  /* queries [ilo, ihi) that see some key of the block */
  int ilo = 0, ihi = sh.T;
  if (sh.cw && j0 - sh.off > ilo) ilo = j0 - sh.off;
  if (sh.window > 0 && jlast - sh.off + sh.window < ihi) ihi = jlast - sh.off + sh.window;
  const int nq = ihi > ilo ? (ihi - ilo + BQ - 1) / BQ : 0;
  const int ntiles = (int)G * nq; /* tile n: head n / nq of the group, query tile n % nq */
  const int k0 = j0 + warp * 16, k1 = k0 + 15 < sh.S ? k0 + 15 : sh.S - 1; /* warp's keys */
  const int key[2] = {k0 + g, k0 + g + 8}; /* this lane's keys (C rows g, g + 8) */

  float adk[ND][4], adv[ND][4];
#pragma unroll
  for (int d = 0; d < ND; d++)
#pragma unroll
    for (int e = 0; e < 4; e++) adk[d][e] = adv[d][e] = 0.f;
  uint32_t kf[KVREG ? KD : 1][4], vf[KVREG ? KD : 1][4];

  /* Q, dO, lse, delta of tile n into buffer n & 1 */
  auto load_tile = [&](int n) {
    const int buf = n & 1;
    const int64_t h = hk * G + n / nq, bh = b * sh.Hq + h;
    const int t0 = ilo + (n % nq) * BQ;
    tc_load<D, BQ>(sQ + buf * BQ * LD, q + tc_base(L.q, b, h), t0, sh.T, L.q.t);
    tc_load<D, BQ>(sG + buf * BQ * LD, dout + tc_base(L.g, b, h), t0, sh.T, L.g.t);
    if (threadIdx.x < BQ) {
      const int i = t0 + (int)threadIdx.x;
      sL[buf * BQ + threadIdx.x] = tc_lse2(lse + bh * sh.T, i, sh.T);
      sD[buf * BQ + threadIdx.x] = i < sh.T ? delta[bh * sh.T + i] : 0.f;
    }
  };
  if (ntiles > 0) {
    tc_load<D, BM>(sK, k + tc_base(L.k, b, hk), j0, sh.S, L.k.t);
    tc_load<D, BM>(sV, v + tc_base(L.v, b, hk), j0, sh.S, L.v.t);
    load_tile(0);
    cp_async_commit();
  }
  for (int n = 0; n < ntiles; n++) {
    const int buf = n & 1;
    const int t0 = ilo + (n % nq) * BQ;
    if (n + 1 < ntiles) {
      load_tile(n + 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (KVREG && n == 0) {
#pragma unroll
      for (int kk = 0; kk < (KVREG ? KD : 0); kk++) {
        ld_a<LD>(kf[kk], sK, warp * 16, kk * 16);
        ld_a<LD>(vf[kk], sV, warp * 16, kk * 16);
      }
    }
    const uint16_t *cQ = sQ + buf * BQ * LD, *cG = sG + buf * BQ * LD;
    const float *cL = sL + buf * BQ, *cD = sD + buf * BQ;
    const int t1 = t0 + BQ - 1 < sh.T ? t0 + BQ - 1 : sh.T - 1;
    if (tc_any_visible(sh, t0, t1, k0, k1)) {
      float st[NQ][4], dpt[NQ][4];
#pragma unroll
      for (int c = 0; c < NQ; c++)
#pragma unroll
        for (int e = 0; e < 4; e++) st[c][e] = dpt[c][e] = 0.f;
          /* S^T = K Q^T, dP^T = V dO^T: B[d][i] = Q[i][d], dO[i][d] */
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        uint32_t ak[4], av[4];
        if (KVREG) {
#pragma unroll
          for (int e = 0; e < 4; e++) {
            ak[e] = kf[KVREG ? kk : 0][e];
            av[e] = vf[KVREG ? kk : 0][e];
          }
        } else {
          ld_a<LD>(ak, sK, warp * 16, kk * 16);
          ld_a<LD>(av, sV, warp * 16, kk * 16);
        }
#pragma unroll
        for (int nn = 0; nn < NQ / 2; nn++) {
          uint32_t bq[4], bg[4];
          ld_b_nk<LD>(bq, cQ, nn * 16, kk * 16);
          mma_bf16(st[2 * nn], ak, bq[0], bq[1]);
          mma_bf16(st[2 * nn + 1], ak, bq[2], bq[3]);
          ld_b_nk<LD>(bg, cG, nn * 16, kk * 16);
          mma_bf16(dpt[2 * nn], av, bg[0], bg[1]);
          mma_bf16(dpt[2 * nn + 1], av, bg[2], bg[3]);
        }
      }
      /* rows are keys, columns queries; queries past T have lse2 = +inf
       * (P = 0) and keys past S are never written, so only the causal and
       * window masks need checking */
      const bool full = tc_all_visible(sh, t0, t0 + BQ - 1, k0, k0 + 15);
#pragma unroll
      for (int c = 0; c < NQ; c++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int col = c * 8 + 2 * t + (e & 1);
          float p = tc_exp2(st[c][e] * sl2 - cL[col]);
          if (!full && !tc_visible(sh, b, t0 + col, key[e >> 1])) p = 0.f;
          st[c][e] = p;                          /* P^T */
          dpt[c][e] = p * (dpt[c][e] - cD[col]); /* dS^T */
        }
      }
      /* dV += P^T dO, dK += dS^T Q: B[i][d] = dO[i][d], Q[i][d] */
#pragma unroll
      for (int kk = 0; kk < BQ / 16; kk++) {
        uint32_t ap[4], as[4];
        c_to_a(ap, st[2 * kk], st[2 * kk + 1]);
        c_to_a(as, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
        for (int dd = 0; dd < D / 16; dd++) {
          uint32_t bg[4], bq[4];
          ld_b_kn<LD>(bg, cG, kk * 16, dd * 16);
          mma_bf16(adv[2 * dd], ap, bg[0], bg[1]);
          mma_bf16(adv[2 * dd + 1], ap, bg[2], bg[3]);
          ld_b_kn<LD>(bq, cQ, kk * 16, dd * 16);
          mma_bf16(adk[2 * dd], as, bq[0], bq[1]);
          mma_bf16(adk[2 * dd + 1], as, bq[2], bq[3]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (key[r] >= sh.S) continue;
    T *krow = dk + tc_base(L.dk, b, hk) + key[r] * L.dk.t + 2 * t,
      *vrow = dv + tc_base(L.dv, b, hk) + key[r] * L.dv.t + 2 * t;
#pragma unroll
    for (int d = 0; d < ND; d++) {
      st2(krow + d * 8, adk[d][2 * r] * scale, adk[d][2 * r + 1] * scale);
      st2(vrow + d * 8, adv[d][2 * r], adv[d][2 * r + 1]);
    }
  }
}

} // namespace

/* ---- host side ------------------------------------------------------------------------------- */
/* Tile sizes of the backward: the second operand's tile is 64 rows, 32 for D 128 (registers). */
#define TC_BWD_TILE(D) ((D) == 128 ? 32 : 64)

static size_t tc_fw_smem(int D) {
  return sizeof(uint16_t) * (size_t)(TC_BM + 4 * 64) * (D + 8);
}
static size_t tc_dq_smem(int D) {
  return sizeof(uint16_t) * (size_t)(2 * TC_BM + 4 * TC_BWD_TILE(D)) * (D + 8);
}
static size_t tc_dkv_smem(int D) {
  return sizeof(uint16_t) * (size_t)(2 * TC_BM + 4 * TC_BWD_TILE(D)) * (D + 8) +
         sizeof(float) * 4 * TC_BWD_TILE(D);
}

/* Compute capability 8.0 or newer (bf16 mma.sync, ldmatrix, cp.async). */
static bool tc_device_ok(int dev) {
  return tcu_cc_major(dev) >= 8;
}

/* An operand the kernels can address: head dim contiguous, the other
 * strides and the data 16-byte aligned (tiles are staged by 16-byte
 * chunks). */
static bool tc_operand_ok(const tyr_tensor *t) {
  const int64_t e = 16 / (int64_t)tyr_dtype_size(t->dtype);
  if (t->rank != 4 || (t->stride[3] != 1 && t->shape[3] > 1)) return false;
  for (int i = 0; i < 3; i++)
    if (t->shape[i] > 1 && t->stride[i] % e) return false;
  return tcu_aligned16(tyr_data_ptr(t));
}

static TcStr tc_str(const tyr_tensor *t) {
  TcStr s = {t->stride[0], t->stride[1], t->stride[2]};
  return s;
}

/* Whether the tensor-core kernel takes a call: dtype and mode, head dim,
 * no mask, grid limits, addressable operands (n of them). */
static bool tc_applies(const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *mask,
                       const tyr_tensor *const *ops, int n) {
  if (mask || tyr_cuda_get_attention_kernel() == TYR_CUDA_ATTENTION_SIMT) return false;
  if (!(q->dtype == TYR_BF16 ||
        (q->dtype == TYR_F32 && tyr_cuda_get_matmul_mode() == TYR_CUDA_MATMUL_BF16)))
    return false;
  const int64_t D = q->shape[3];
  if (D != 32 && D != 64 && D != 128) return false;
  if (q->shape[0] * q->shape[1] > 65535 || k->shape[0] * k->shape[1] > 65535) return false;
  if (q->shape[2] >= (1 << 30) || k->shape[2] >= (1 << 30)) return false;
  for (int i = 0; i < n; i++)
    if (!tc_operand_ok(ops[i])) return false;
  return tc_device_ok(q->device.index);
}

static TcShape tc_shape(const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *doc,
                        bool causal, int64_t window) {
  TcShape sh;
  sh.Hq = (int)q->shape[1];
  sh.Hkv = (int)k->shape[1];
  sh.T = (int)q->shape[2];
  sh.S = (int)k->shape[2];
  sh.off = sh.S - sh.T;
  /* a window longer than T + S hides nothing that causality does not */
  sh.window = (int)(window > q->shape[2] + k->shape[2] ? q->shape[2] + k->shape[2] : window);
  sh.cw = causal || window > 0;
  sh.doc = doc ? (const int32_t *)tyr_data_ptr(doc) : NULL;
  return sh;
}

/* Launches kernel with smem bytes of dynamic shared memory (raising the
 * limit past 48 KiB when needed). */
template <typename K, typename... A>
static bool tc_launch(K kernel, dim3 grid, size_t smem, cudaStream_t st, A... args) {
  if (smem > 48 * 1024 && !CUDA_CHECK(cudaFuncSetAttribute(
                              kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
    return false;
  kernel<<<grid, TC_THREADS, smem, st>>>(args...);
  return LAUNCH_CHECK();
}

/* Runs the statement with HD set to the head dim (32, 64 or 128). */
#define TC_D_DISPATCH(D, ...)                                                                      \
  switch (D) {                                                                                     \
  case 32: {                                                                                       \
    const int HD = 32;                                                                             \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case 64: {                                                                                       \
    const int HD = 64;                                                                             \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  default: {                                                                                       \
    const int HD = 128;                                                                            \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  }

/* f32 or bf16 tensors: the statement with scalar_t set */
#define TC_T_DISPATCH(dt, ...)                                                                     \
  if ((dt) == TYR_BF16) {                                                                          \
    typedef bf16 scalar_t;                                                                         \
    __VA_ARGS__;                                                                                   \
  } else {                                                                                         \
    typedef float scalar_t;                                                                        \
    __VA_ARGS__;                                                                                   \
  }

bool tcu_sdpa_tc(cudaStream_t st, tyr_tensor *out, tyr_tensor *lse, const tyr_tensor *q,
                 const tyr_tensor *k, const tyr_tensor *v, const tyr_tensor *mask,
                 const tyr_tensor *doc, bool causal, int64_t window, double scale) {
  const tyr_tensor *ops[4] = {out, q, k, v};
  if (!tc_applies(q, k, mask, ops, 4)) return false;
  TcShape sh = tc_shape(q, k, doc, causal, window);
  TcLayout L;
  memset(&L, 0, sizeof L);
  L.q = tc_str(q);
  L.k = tc_str(k);
  L.v = tc_str(v);
  L.o = tc_str(out);
  const int64_t B = q->shape[0];
  if (B * sh.Hq * sh.T == 0) return true;
  dim3 grid((unsigned)((sh.T + TC_BM - 1) / TC_BM), (unsigned)(B * sh.Hq));
  const float sl2 = (float)(scale * 1.4426950408889634);
  TC_T_DISPATCH(q->dtype, {
    TC_D_DISPATCH((int)q->shape[3], {
      tc_launch(tc_fw_kernel<scalar_t, HD>, grid, tc_fw_smem(HD), st, (scalar_t *)tyr_data_ptr(out),
                (float *)tyr_data_ptr(lse), (const scalar_t *)tyr_data_ptr(q),
                (const scalar_t *)tyr_data_ptr(k), (const scalar_t *)tyr_data_ptr(v), sh, L, sl2);
    });
  });
  tcu_attention_ran(TYR_CUDA_ATTENTION_TC);
  return true;
}

bool tcu_sdpa_tc_backward(cudaStream_t st, tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv,
                          const tyr_tensor *dout, const tyr_tensor *q, const tyr_tensor *k,
                          const tyr_tensor *v, const tyr_tensor *out, const tyr_tensor *lse,
                          const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                          int64_t window, double scale) {
  const tyr_tensor *ops[8] = {dq, dk, dv, q, k, v, dout, out};
  if (out->dtype != q->dtype || dout->dtype != q->dtype || lse->dtype != TYR_F32 ||
      !tc_applies(q, k, mask, ops, 8))
    return false;
  TcShape sh = tc_shape(q, k, doc, causal, window);
  TcLayout L = {tc_str(q),    tc_str(k),  tc_str(v),  tc_str(out),
                tc_str(dout), tc_str(dq), tc_str(dk), tc_str(dv)};
  const int dev = q->device.index;
  const int64_t B = q->shape[0], rows = B * sh.Hq * sh.T;
  const size_t dbytes = sizeof(float) * (size_t)rows;
  float *delta = (float *)tcu_alloc(dbytes, dev);
  if (!delta) return true; /* raised */
  const float sl2 = (float)(scale * 1.4426950408889634), fscale = (float)scale;
  const int D = (int)q->shape[3];
  dim3 gq((unsigned)((sh.T + TC_BM - 1) / TC_BM), (unsigned)(B * sh.Hq));
  dim3 gkv((unsigned)((sh.S + TC_BM - 1) / TC_BM), (unsigned)(B * sh.Hkv));
  TC_T_DISPATCH(q->dtype, {
    const scalar_t *qp = (const scalar_t *)tyr_data_ptr(q), *kp = (const scalar_t *)tyr_data_ptr(k),
                   *vp = (const scalar_t *)tyr_data_ptr(v),
                   *gp = (const scalar_t *)tyr_data_ptr(dout);
    const float *lp = (const float *)tyr_data_ptr(lse);
    tc_delta_kernel<scalar_t><<<tcu_blocks(rows * 32, 256, dev), 256, 0, st>>>(
        delta, gp, (const scalar_t *)tyr_data_ptr(out), rows, D, sh.Hq, sh.T, L);
    bool ok = LAUNCH_CHECK();
    TC_D_DISPATCH(D, {
      ok = ok && tc_launch(tc_dq_kernel<scalar_t, HD, TC_BWD_TILE(HD)>, gq, tc_dq_smem(HD), st,
                           (scalar_t *)tyr_data_ptr(dq), gp, qp, kp, vp, lp, (const float *)delta,
                           sh, L, sl2, fscale);
      ok = ok &&
           tc_launch(tc_dkv_kernel<scalar_t, HD, TC_BWD_TILE(HD), (HD <= 64)>, gkv, tc_dkv_smem(HD),
                     st, (scalar_t *)tyr_data_ptr(dk), (scalar_t *)tyr_data_ptr(dv), gp, qp, kp, vp,
                     lp, (const float *)delta, sh, L, sl2, fscale);
    });
    (void)ok;
  });
  tcu_free(delta, dbytes, dev);
  tcu_attention_ran(TYR_CUDA_ATTENTION_TC);
  return true;
}
