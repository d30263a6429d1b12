/* CPU matrix multiply through OpenBLAS.  a and b may be transposed views
 * (a stride of 1 on either of their last two dims); batch dims broadcast
 * by stride 0 are handled by the loop. */
#include <cblas.h>

#include "cpu/cpu.h"

static void layout(const tyr_tensor *t, CBLAS_TRANSPOSE *tr, int64_t *ld) {
  bool trans;
  tyr_gemm_layout(t, &trans, ld);
  *tr = trans ? CblasTrans : CblasNoTrans;
}

void tyr_cpu_matmul(tyr_tensor *out, const tyr_tensor *a, const tyr_tensor *b) {
  int r = out->rank;
  int64_t M = out->shape[r - 2], N = out->shape[r - 1], K = a->shape[a->rank - 1];
  int64_t batch = 1;
  for (int i = 0; i < r - 2; i++) batch *= out->shape[i];
  CBLAS_TRANSPOSE ta, tb;
  int64_t lda, ldb;
  layout(a, &ta, &lda);
  layout(b, &tb, &ldb);
  for (int64_t bi = 0; bi < batch; bi++) {
    /* offsets of this batch element in a, b (batch dims may be strided) */
    int64_t oa = a->offset, ob = b->offset, rem = bi;
    for (int i = r - 3; i >= 0; i--) {
      int64_t idx = rem % out->shape[i];
      rem /= out->shape[i];
      oa += idx * a->stride[i];
      ob += idx * b->stride[i];
    }
    int64_t oo = out->offset + bi * M * N;
    if (out->dtype == TYR_F32) {
      cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0f, TYR_BASE(a, float) + oa,
                  (int)lda, TYR_BASE(b, float) + ob, (int)ldb, 0.0f, TYR_BASE(out, float) + oo,
                  (int)N);
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0, TYR_BASE(a, double) + oa,
                  (int)lda, TYR_BASE(b, double) + ob, (int)ldb, 0.0, TYR_BASE(out, double) + oo,
                  (int)N);
    }
  }
}
