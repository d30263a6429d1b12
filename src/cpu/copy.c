/* Strided copies (with dtype conversion).  Dims are coalesced where both
 * sides are contiguous across them; the innermost dim is then a tight loop
 * (memcpy when it is contiguous on both sides), and outer rows are split
 * over threads. */
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/parallel.h"

typedef struct {
  int rank;
  int64_t shape[TYR_MAX_RANK], so[TYR_MAX_RANK], ss[TYR_MAX_RANK];
} layout2;

static void coalesce(layout2 *l, const tyr_tensor *out, const tyr_tensor *src) {
  int r = 0;
  for (int i = 0; i < out->rank; i++) {
    if (out->shape[i] == 1) continue;
    if (r > 0 && l->so[r - 1] == out->stride[i] * out->shape[i] &&
        l->ss[r - 1] == src->stride[i] * out->shape[i]) {
      l->shape[r - 1] *= out->shape[i];
      l->so[r - 1] = out->stride[i];
      l->ss[r - 1] = src->stride[i];
      continue;
    }
    l->shape[r] = out->shape[i];
    l->so[r] = out->stride[i];
    l->ss[r] = src->stride[i];
    r++;
  }
  if (r == 0) {
    l->shape[0] = 1;
    l->so[0] = l->ss[0] = 1;
    r = 1;
  }
  l->rank = r;
}

#define COPY_ROWS(TO, TS, CONV)                                                                    \
  TYR_PAR_FOR(                                                                                     \
      total > 32768 && rows > 1, "omp parallel for", for (int64_t row = 0; row < rows; row++) {    \
        int64_t oo = out->offset, os = src->offset, rem = row;                                     \
        for (int d = l.rank - 2; d >= 0; d--) {                                                    \
          int64_t k = rem % l.shape[d];                                                            \
          rem /= l.shape[d];                                                                       \
          oo += k * l.so[d];                                                                       \
          os += k * l.ss[d];                                                                       \
        }                                                                                          \
        TO *po = (TO *)out->storage->data + oo;                                                    \
        const TS *ps = (const TS *)src->storage->data + os;                                        \
        if (so == 1 && ss == 1 && sizeof(TO) == sizeof(TS) && CONV == 0) {                         \
          memcpy(po, ps, (size_t)inner * sizeof(TO));                                              \
        } else {                                                                                   \
          for (int64_t i = 0; i < inner; i++) po[i * so] = (TO)ps[i * ss];                         \
        }                                                                                          \
      });

void tyr_cpu_copy(tyr_tensor *out, const tyr_tensor *src) {
  int64_t total = tyr_numel(out);
  if (total == 0) return;
  layout2 l;
  coalesce(&l, out, src);
  int64_t inner = l.shape[l.rank - 1], so = l.so[l.rank - 1], ss = l.ss[l.rank - 1];
  int64_t rows = total / inner;
  if (out->dtype == src->dtype) {
    switch (tyr_dtype_size(out->dtype)) {
    case 4:
      COPY_ROWS(uint32_t, uint32_t, 0) return;
    case 8:
      COPY_ROWS(uint64_t, uint64_t, 0) return;
    case 2:
      COPY_ROWS(uint16_t, uint16_t, 0) return;
    default:
      COPY_ROWS(uint8_t, uint8_t, 0) return;
    }
  }
  if (out->dtype == TYR_F32 && src->dtype == TYR_F64) {
    COPY_ROWS(float, double, 1) return;
  }
  if (out->dtype == TYR_F64 && src->dtype == TYR_F32) {
    COPY_ROWS(double, float, 1) return;
  }
  /* other conversions: through double, element by element */
  size_t eo = tyr_dtype_size(out->dtype), es = tyr_dtype_size(src->dtype);
  char *po = out->storage->data;
  const char *ps = src->storage->data;
  TYR_PAR_FOR(total > 65536, "omp parallel for",
              for (int64_t i = 0; i < total; i++) tyr__store_f64(
                  po + tyr_offset_of(out, i) * (int64_t)eo, out->dtype,
                  tyr__load_f64(ps + tyr_offset_of(src, i) * (int64_t)es, src->dtype)););
}
