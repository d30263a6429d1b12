/* f32 GEMM with AVX-512: C = op(A) op(B) for the CPU matmul.
 *
 * The structure is the usual one of packed GEMMs: B is copied in blocks of
 * KC rows into panels of NR = 32 columns (two 16-float registers wide) with
 * k outermost, so that the micro-kernel reads them front to back; the
 * micro-kernel keeps a 12 x 32 tile of C in 24 registers and adds one
 * rank-1 update per k (24 fused multiply-adds, two loads of B, twelve
 * broadcasts of A).  A is walked in blocks of MC rows and read where it is,
 * MR = 12 rows at a time: a broadcast loads one float from any address, so
 * A needs no copy in either layout (packing A took 6% of the samples of
 * shakespeare_cpu's training step; one-thread products at its shapes run
 * up to 15% faster without it: bench_core, docs/benchmarks.md).  Packing B
 * reads either layout, so transposed operands cost nothing extra.  Partial
 * panels (the last rows of A, the last columns of B) are padded with zeros
 * and their tiles stored with masks.
 *
 * The functions are compiled for AVX-512F whatever the build's -march, and
 * tyr_cpu_sgemm_avx512 returns false on a CPU without it (the caller then
 * uses OpenBLAS).  Threads: one call is single-threaded; matmul.c splits the
 * output between threads and calls this on each block. */
#define _GNU_SOURCE /* strcasestr */
#include <immintrin.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/transpose16.h"

char *openblas_get_corename(void);

#define MR 12
#define NR 32
/* The blocking: KC 192 (a 32-column panel of B is 24 KB: it stays in L1
 * with the A panel), MC 132 rows of A swept per packed block of B (11
 * panels, 100 KB: L2), NC 1024 columns of B packed at a time.  The
 * environment may set others for measurements (bench_gemm_libs):
 * TYR_GEMM_KC (16 to 4096), TYR_GEMM_MC (MR to 4096, rounded down to a
 * multiple of MR), TYR_GEMM_NC (NR to 65536, to a multiple of NR),
 * TYR_GEMM_PACK_A=1 to copy every panel of A rather than read whole
 * panels where they are, TYR_GEMM_PREFETCH_C=1 to prefetch each tile's
 * rows of C before its loop. */
static int64_t KC = 192, MC = 132, NC = 1024;
static bool pack_all_a, prefetch_c;

#define AVX512 __attribute__((target("avx512f")))

/* Packing buffers of the calling thread, grown as needed and kept. */
static _Thread_local float *pack_buf;
static _Thread_local size_t pack_cap;

static float *pack_space(size_t nfloats) {
  if (nfloats > pack_cap) {
    free(pack_buf);
    pack_buf = aligned_alloc(64, (nfloats * sizeof(float) + 63) / 64 * 64);
    pack_cap = pack_buf ? nfloats : 0;
  }
  return pack_buf;
}

/* Columns [k, k+16) (fewer at the end: kn) of `rows` rows of a k-contiguous
   matrix, rows past `rows` read as zero, transposed: r[kk] holds element k+kk
   of each row. */
AVX512 static inline void load_transposed(__m512 r[16], const float *src, int64_t ld, int64_t rows,
                                          int64_t kn) {
  __mmask16 m = (__mmask16)(kn >= 16 ? 0xffff : (1u << kn) - 1);
  for (int i = 0; i < 16; i++)
    r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * ld) : _mm512_setzero_ps();
  tyr_cpu_transpose16(r);
}

/* Rows [k0, k0+kc) and columns [j0, j0+nc) of op(B) into NR-column panels:
   panel p holds k-major rows of NR floats, zero beyond column nc. */
AVX512 static void pack_b(float *dst, const float *B, int64_t ldb, bool tb, int64_t k0, int64_t kc,
                          int64_t j0, int64_t nc) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    int64_t w = nc - jp < NR ? nc - jp : NR;
    float *d = dst + jp * kc;
    if (!tb) {
      __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
      __mmask16 m1 = (__mmask16)(w <= 16 ? 0 : w >= 32 ? 0xffff : (1u << (w - 16)) - 1);
      for (int64_t k = 0; k < kc; k++) {
        const float *s = B + (k0 + k) * ldb + j0 + jp;
        _mm512_store_ps(d + k * NR, _mm512_maskz_loadu_ps(m0, s));
        _mm512_store_ps(d + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
      }
    } else { /* B is [N, K]: 16 x 16 blocks transposed in registers */
      for (int half = 0; half < 2; half++) {
        const float *s = B + (j0 + jp + 16 * half) * ldb + k0;
        int64_t rows = w - 16 * half;
        for (int64_t k = 0; k < kc; k += 16) {
          __m512 r[16];
          int64_t kn = kc - k < 16 ? kc - k : 16;
          load_transposed(r, s + k, ldb, rows, kn);
          for (int kk = 0; kk < kn; kk++) _mm512_store_ps(d + (k + kk) * NR + 16 * half, r[kk]);
        }
      }
    }
  }
}

/* Rows [i0, i0+mc) and columns [k0, k0+kc) of op(A) into MR-row panels:
   panel p holds k-major columns of MR floats, zero beyond row mc. */
AVX512 static void pack_a(float *dst, const float *A, int64_t lda, bool ta, int64_t i0, int64_t mc,
                          int64_t k0, int64_t kc) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    int64_t h = mc - ip < MR ? mc - ip : MR;
    float *d = dst + ip * kc;
    if (ta) { /* A is [K, M]: MR contiguous floats per k */
      __mmask16 m = (__mmask16)((1u << h) - 1);
      for (int64_t k = 0; k < kc; k++)
        _mm512_mask_storeu_ps(d + k * MR, (__mmask16)((1u << MR) - 1),
                              _mm512_maskz_loadu_ps(m, A + (k0 + k) * lda + i0 + ip));
    } else { /* A is [M, K]: MR rows and 16 k at a time, transposed in registers */
      const float *s = A + (i0 + ip) * lda + k0;
      for (int64_t k = 0; k < kc; k += 16) {
        __m512 r[16];
        int64_t kn = kc - k < 16 ? kc - k : 16;
        load_transposed(r, s + k, lda, h, kn);
        for (int kk = 0; kk < kn; kk++)
          _mm512_mask_storeu_ps(d + (k + kk) * MR, (__mmask16)((1u << MR) - 1), r[kk]);
      }
    }
  }
}

/* The MR x NR tile of C in registers: C[0:h, 0:w] (+)= op(A)[0:MR, 0:kc] Bp,
   element (i, k) of op(A) at a[i * rs + k * cs]: a packed panel (rs 1,
   cs MR) or the operand itself (A^T stored [K, M]: rs 1, cs lda; A stored
   [M, K]: rs lda, cs 1).  Inlined into the two callers below with their
   strides known. */
AVX512 static inline __attribute__((always_inline)) void
tile(int64_t kc, const float *restrict a, int64_t rs, int64_t cs, const float *restrict Bp,
     float *restrict C, int64_t ldc, int64_t h, int64_t w, bool add) {
  __m512 c[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
  if (prefetch_c) /* the tile's rows of C, read or written after the loop */
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
      if (i < h) {
        _mm_prefetch((const char *)(C + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + i * ldc + 16), _MM_HINT_T0);
      }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(Bp + k * NR), b1 = _mm512_load_ps(Bp + k * NR + 16);
    const float *ak = a + k * cs;
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      __m512 ai = _mm512_set1_ps(ak[i * rs]);
      c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
    }
  }
  __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
  __mmask16 m1 = (__mmask16)(w <= 16 ? 0 : w >= 32 ? 0xffff : (1u << (w - 16)) - 1);
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    if (i < h) {
      float *r = C + i * ldc;
      if (add) {
        c[i][0] = _mm512_add_ps(c[i][0], _mm512_maskz_loadu_ps(m0, r));
        c[i][1] = _mm512_add_ps(c[i][1], _mm512_maskz_loadu_ps(m1, r + 16));
      }
      _mm512_mask_storeu_ps(r, m0, c[i][0]);
      _mm512_mask_storeu_ps(r + 16, m1, c[i][1]);
    }
  }
}

/* A packed MR-row panel, or a transposed operand's MR contiguous floats per k. */
AVX512 static void micro_kernel(int64_t kc, const float *restrict a, int64_t cs,
                                const float *restrict Bp, float *restrict C, int64_t ldc, int64_t h,
                                int64_t w, bool add) {
  tile(kc, a, 1, cs, Bp, C, ldc, h, w, add);
}

/* MR whole rows of a row-major operand, read where they are. */
AVX512 static void micro_kernel_rows(int64_t kc, const float *restrict a, int64_t lda,
                                     const float *restrict Bp, float *restrict C, int64_t ldc,
                                     int64_t w, bool add) {
  tile(kc, a, lda, 1, Bp, C, ldc, MR, w, add);
}

AVX512 static void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                         float *buf) {
  float *Bp = buf, *Ap = buf + (size_t)KC * ((NC + NR - 1) / NR * NR);
  for (int64_t jc = 0; jc < N; jc += NC) {
    int64_t nc = N - jc < NC ? N - jc : NC;
    for (int64_t pc = 0; pc < K; pc += KC) {
      int64_t kc = K - pc < KC ? K - pc : KC;
      pack_b(Bp, B, ldb, tb, pc, kc, jc, nc);
      for (int64_t ic = 0; ic < M; ic += MC) {
        int64_t mc = M - ic < MC ? M - ic : MC;
        /* whole panels of A are read where they are; a partial last panel is
           packed (zero rows past mc) */
        int64_t full = pack_all_a ? 0 : mc / MR * MR;
        if (full < mc) pack_a(Ap, A, lda, ta, ic + full, mc - full, pc, kc);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          int64_t w = nc - jr < NR ? nc - jr : NR;
          const float *bp = Bp + jr * kc;
          float *c = C + ic * ldc + jc + jr;
          for (int64_t ir = 0; ir < full; ir += MR) {
            if (ta)
              micro_kernel(kc, A + pc * lda + ic + ir, lda, bp, c + ir * ldc, ldc, MR, w, pc > 0);
            else
              micro_kernel_rows(kc, A + (ic + ir) * lda + pc, lda, bp, c + ir * ldc, ldc, w,
                                pc > 0);
          }
          for (int64_t ir = full; ir < mc; ir += MR)
            micro_kernel(kc, Ap + (ir - full) * kc, MR, bp, c + ir * ldc, ldc,
                         mc - ir < MR ? mc - ir : MR, w, pc > 0);
        }
      }
    }
  }
}

/* Whether the kernel is used, and the blocking, decided once. */
static bool have;
static void gemm_setup(void) {
  const char *core = openblas_get_corename();
  bool blas512 = core && (strcasestr(core, "skylakex") || strcasestr(core, "cooperlake") ||
                          strcasestr(core, "sapphire"));
  const char *e; /* settings outside [lower, upper] are ignored */
  if ((e = getenv("TYR_GEMM_KC")) && atoll(e) >= 16 && atoll(e) <= 4096) KC = atoll(e);
  if ((e = getenv("TYR_GEMM_MC")) && atoll(e) >= MR && atoll(e) <= 4096) MC = atoll(e) / MR * MR;
  if ((e = getenv("TYR_GEMM_NC")) && atoll(e) >= NR && atoll(e) <= 65536) NC = atoll(e) / NR * NR;
  pack_all_a = (e = getenv("TYR_GEMM_PACK_A")) && e[0] == '1';
  prefetch_c = (e = getenv("TYR_GEMM_PREFETCH_C")) && e[0] == '1';
  have = __builtin_cpu_supports("avx512f") && !blas512 && !getenv("TYR_NO_AVX512");
}

bool tyr_cpu_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc) {
  /* Used when the CPU has AVX-512F and OpenBLAS runs kernels for an older
     instruction set (its Haswell or Zen kernels, chosen by its detection or
     by OPENBLAS_CORETYPE): about twice their speed on a core with 512-bit
     FMA units.  Where OpenBLAS has picked its own AVX-512 kernels they are
     as fast on small products and faster on large ones.  TYR_NO_AVX512=1 in
     the environment: OpenBLAS always. */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, gemm_setup);
  if (!have) return false;
  if (M <= 0 || N <= 0) return true;
  if (K <= 0) {
    for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, sizeof(float) * (size_t)N);
    return true;
  }
  float *buf = pack_space((size_t)KC * ((NC + NR - 1) / NR * NR) + (size_t)KC * (MC + MR));
  if (!buf) return false; /* out of memory: OpenBLAS needs less */
  sgemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, buf);
  return true;
}
