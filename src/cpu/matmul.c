/* CPU matrix multiply through OpenBLAS.  a and b may be transposed views
 * (a stride of 1 on either of their last two dims); batch dims broadcast
 * by stride 0 are handled by the loop.
 *
 * OpenBLAS runs single-threaded and the work is split here, over the
 * batch or over blocks of rows or columns of the output, in Tyr's own
 * OpenMP team.  Two thread pools on the same cores (OpenBLAS's, which
 * spins with sched_yield, and OpenMP's) cost more than the GEMMs of a
 * small model take, and one pool lets the other ops keep their threads
 * warm between GEMMs.
 *
 * tyr_cpu_matmul_bias adds a linear layer's bias to each block of the
 * output as soon as that block is computed, by the thread that computed
 * it, while the block is still in its cache: no second pass over the
 * output and no second parallel region (the sum is the same float
 * addition as a separate add's).  tyr_cpu_matmul_act and
 * tyr_cpu_matmul_dact do the same with an activation (the product plus
 * bias is written to pre and act(pre) to out) or its derivative (the
 * product times act'(pre)), in the arithmetic of the unary kernels. */
#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>

#include "cpu/cpu.h"

/* below this many flops a GEMM runs on the calling thread */
#define PAR_GEMM_FLOPS (1 << 20)

typedef struct {
  CBLAS_TRANSPOSE ta, tb;
  int64_t M, N, K, lda, ldb;
  bool f64;
  const char *bias; /* [N] added to every row, or NULL */
  int64_t bias_stride;
  int act;             /* a tyr_unary_op applied after the bias, or -1 */
  char *act_out;       /* act's result [M, N] (the product itself goes to pre), or NULL */
  const char *act_pre; /* when not NULL: the product is multiplied by act'(act_pre [M, N]) */
} gemm_plan;

static void layout(const tyr_tensor *t, CBLAS_TRANSPOSE *tr, int64_t *ld) {
  bool trans;
  tyr_gemm_layout(t, &trans, ld);
  *tr = trans ? CblasTrans : CblasNoTrans;
}

/* rows [m0, m1) and columns [n0, n1) of one output matrix */
static void gemm_block(const gemm_plan *p, const char *a, const char *b, char *c, int64_t m0,
                       int64_t m1, int64_t n0, int64_t n1) {
  /* element offsets of the block's first row of a and first column of b */
  int64_t oa = p->ta == CblasNoTrans ? m0 * p->lda : m0;
  int64_t ob = p->tb == CblasNoTrans ? n0 : n0 * p->ldb;
  int64_t oc = m0 * p->N + n0;
  if (p->f64)
    cblas_dgemm(CblasRowMajor, p->ta, p->tb, (int)(m1 - m0), (int)(n1 - n0), (int)p->K, 1.0,
                (const double *)a + oa, (int)p->lda, (const double *)b + ob, (int)p->ldb, 0.0,
                (double *)c + oc, (int)p->N);
  else if (!tyr_cpu_sgemm_avx512(p->ta == CblasTrans, p->tb == CblasTrans, m1 - m0, n1 - n0, p->K,
                                 (const float *)a + oa, p->lda, (const float *)b + ob, p->ldb,
                                 (float *)c + oc, p->N))
    cblas_sgemm(CblasRowMajor, p->ta, p->tb, (int)(m1 - m0), (int)(n1 - n0), (int)p->K, 1.0f,
                (const float *)a + oa, (int)p->lda, (const float *)b + ob, (int)p->ldb, 0.0f,
                (float *)c + oc, (int)p->N);
}

static void add_bias(const gemm_plan *p, char *cbase, int64_t oo, int64_t m0, int64_t m1,
                     int64_t n0, int64_t n1);

/* Block k of the batch * mb * nb blocks of the output. */
static void run_block(const gemm_plan *p, const tyr_tensor *out, const tyr_tensor *a,
                      const tyr_tensor *b, int64_t k, int64_t mb, int64_t nb, const char *abase,
                      const char *bbase, char *cbase) {
  int r = out->rank;
  size_t es = p->f64 ? 8 : 4;
  int64_t bi = k / (mb * nb), im = (k / nb) % mb, in = k % nb;
  /* offsets of this batch element in a, b (batch dims may be strided) */
  int64_t oa = a->offset, ob = b->offset, rem = bi;
  for (int i = r - 3; i >= 0; i--) {
    int64_t idx = rem % out->shape[i];
    rem /= out->shape[i];
    oa += idx * a->stride[i];
    ob += idx * b->stride[i];
  }
  int64_t oo = out->offset + bi * p->M * p->N;
  int64_t m0 = p->M * im / mb, m1 = p->M * (im + 1) / mb;
  int64_t n0 = p->N * in / nb, n1 = p->N * (in + 1) / nb;
  gemm_block(p, abase + oa * es, bbase + ob * es, cbase + oo * es, m0, m1, n0, n1);
  if (p->bias) add_bias(p, cbase, oo, m0, m1, n0, n1);
  if (p->act < 0) return;
  for (int64_t i = m0; i < m1; i++) { /* the rank-2 epilogues: no batch, oo = the offset */
    char *c = cbase + (oo + i * p->N + n0) * (int64_t)es;
    size_t at = (size_t)(i * p->N + n0) * es;
    if (p->act_out)
      tyr_cpu_act_row((tyr_unary_op)p->act, p->f64, p->act_out + at, c, n1 - n0);
    else
      tyr_cpu_dact_row((tyr_unary_op)p->act, p->f64, c, p->act_pre + at, n1 - n0);
  }
}

/* The bias added to rows [m0, m1), columns [n0, n1) of one output matrix
   (element offset oo). */
static void add_bias(const gemm_plan *p, char *cbase, int64_t oo, int64_t m0, int64_t m1,
                     int64_t n0, int64_t n1) {
  int64_t bs = p->bias_stride;
  for (int64_t i = m0; i < m1; i++) {
    if (p->f64) {
      double *c = (double *)cbase + oo + i * p->N;
      const double *bv = (const double *)p->bias;
      for (int64_t j = n0; j < n1; j++) c[j] += bv[j * bs];
    } else {
      float *c = (float *)cbase + oo + i * p->N;
      const float *bv = (const float *)p->bias;
      if (bs == 1) {
#pragma omp simd
        for (int64_t j = n0; j < n1; j++) c[j] += bv[j];
      } else {
        for (int64_t j = n0; j < n1; j++) c[j] += bv[j * bs];
      }
    }
  }
}

/* out = a @ b (+ bias), then the epilogue of act / act_out / act_pre
   (gemm_plan) when act >= 0 */
static void matmul(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                   const tyr_tensor *bias, int act, char *act_out, const char *act_pre) {
  static _Atomic bool blas_single;
  if (!blas_single) {
    openblas_set_num_threads(1);
    blas_single = true;
  }
  int r = out->rank;
  gemm_plan p = {.M = out->shape[r - 2],
                 .N = out->shape[r - 1],
                 .K = a->shape[a->rank - 1],
                 .f64 = out->dtype == TYR_F64,
                 .bias = bias ? (const char *)tyr_data_ptr(bias) : NULL,
                 .bias_stride = bias ? bias->stride[0] : 0,
                 .act = act,
                 .act_out = act_out,
                 .act_pre = act_pre};
  layout(a, &p.ta, &p.lda);
  layout(b, &p.tb, &p.ldb);
  int64_t batch = 1;
  for (int i = 0; i < r - 2; i++) batch *= out->shape[i];
  const char *abase = (const char *)a->storage->data, *bbase = (const char *)b->storage->data;
  char *cbase = (char *)out->storage->data;

  /* the work is cut into batch * mb * nb blocks: whole matrices when the
     batch alone gives every thread some, else rows (or columns when the
     output is wide) in blocks of at least 32 */
  int nt = omp_get_max_threads();
  double flops = 2.0 * (double)batch * (double)p.M * (double)p.N * (double)p.K;
  if (flops < PAR_GEMM_FLOPS) nt = 1;
  int64_t mb = 1, nb = 1;
  if (nt > 1 && batch < nt) {
    int64_t want = (nt + batch - 1) / batch;
    int64_t *cut = p.M >= p.N ? &mb : &nb, len = p.M >= p.N ? p.M : p.N;
    *cut = len / 32 < want ? (len / 32 > 0 ? len / 32 : 1) : want;
  }
  int64_t blocks = batch * mb * nb;
  if (blocks < 2) nt = 1;

  if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t k = 0; k < blocks; k++) run_block(&p, out, a, b, k, mb, nb, abase, bbase, cbase);
  } else { /* no OpenMP team at all: even a one-thread team costs a futex wake-up here */
    for (int64_t k = 0; k < blocks; k++) run_block(&p, out, a, b, k, mb, nb, abase, bbase, cbase);
  }
}

void tyr_cpu_matmul(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  matmul(out, a, b, NULL, -1, NULL, NULL);
}

void tyr_cpu_matmul_bias(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                         const tyr_tensor *bias) {
  matmul(out, a, b, bias, -1, NULL, NULL);
}

/* What the act epilogues take: the activations below, f32/f64 operands of
   one dtype, rank 2 with GEMM layouts, out and pre contiguous and alike. */
static bool act_operands(const tyr_tensor *out, const tyr_tensor *pre, const tyr_tensor *a,
                         const tyr_tensor *b, tyr_unary_op act) {
  bool t;
  int64_t ld;
  switch (act) {
  case TYR_UN_GELU:
  case TYR_UN_GELU_TANH:
  case TYR_UN_RELU:
  case TYR_UN_RELU2:
  case TYR_UN_SILU:
    break;
  default:
    return false;
  }
  tyr_dtype dt = out->dtype;
  return (dt == TYR_F32 || dt == TYR_F64) && pre->dtype == dt && a->dtype == dt && b->dtype == dt &&
         out->rank == 2 && pre->rank == 2 && a->rank == 2 && b->rank == 2 &&
         pre->shape[0] == out->shape[0] && pre->shape[1] == out->shape[1] &&
         a->shape[0] == out->shape[0] && b->shape[1] == out->shape[1] &&
         a->shape[1] == b->shape[0] && a->shape[1] > 0 && tyr_is_contiguous(out) &&
         tyr_is_contiguous(pre) && tyr_gemm_layout(a, &t, &ld) && tyr_gemm_layout(b, &t, &ld);
}

bool tyr_cpu_matmul_act(tyr_tensor *out, tyr_tensor *pre, const tyr_tensor *a, const tyr_tensor *b,
                        const tyr_tensor *bias, tyr_unary_op act) {
  if (!act_operands(out, pre, a, b, act) ||
      (bias && (bias->dtype != out->dtype || bias->rank != 1 || bias->shape[0] != out->shape[1])))
    return false;
  matmul(pre, a, b, bias, (int)act, (char *)tyr_data_ptr(out), NULL);
  return true;
}

bool tyr_cpu_matmul_dact(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b,
                         const tyr_tensor *pre, tyr_unary_op act) {
  if (!act_operands(out, pre, a, b, act)) return false;
  matmul(out, a, b, NULL, (int)act, NULL, (const char *)tyr_data_ptr(pre));
  return true;
}
