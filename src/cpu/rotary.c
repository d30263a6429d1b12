/* CPU rotary position embedding (rotate-half convention). */
#include "cpu/cpu.h"

#define DEFINE_ROTARY(T, SFX)                                                                      \
  static void rotary_##SFX(T *out, const T *x, const T *cs, const T *sn, int64_t N, int64_t Tn,    \
                           int64_t D, T sign) {                                                    \
    int64_t half = D / 2;                                                                          \
    _Pragma("omp parallel for if (N * Tn * D > 65536)") for (int64_t r = 0; r < N * Tn; r++) {     \
      const T *c = cs + (r % Tn) * half, *s = sn + (r % Tn) * half, *xr = x + r * D;               \
      T *o = out + r * D;                                                                          \
      _Pragma("omp simd") for (int64_t i = 0; i < half; i++) {                                     \
        T x1 = xr[i], x2 = xr[i + half], si = sign * s[i];                                         \
        o[i] = x1 * c[i] - x2 * si;                                                                \
        o[i + half] = x2 * c[i] + x1 * si;                                                         \
      }                                                                                            \
    }                                                                                              \
  }
DEFINE_ROTARY(float, f32)
DEFINE_ROTARY(double, f64)

void tyr_cpu_rotary(tyr_tensor *out, const tyr_tensor *x, const tyr_tensor *cos_table,
                    const tyr_tensor *sin_table, bool inverse) {
  int64_t D = x->shape[x->rank - 1], Tn = x->shape[x->rank - 2];
  int64_t N = Tn && D ? tyr_numel(x) / (Tn * D) : 0;
  if (x->dtype == TYR_F32)
    rotary_f32(tyr_data_ptr(out), tyr_data_ptr(x), tyr_data_ptr(cos_table), tyr_data_ptr(sin_table),
               N, Tn, D, inverse ? -1.0f : 1.0f);
  else
    rotary_f64(tyr_data_ptr(out), tyr_data_ptr(x), tyr_data_ptr(cos_table), tyr_data_ptr(sin_table),
               N, Tn, D, inverse ? -1.0 : 1.0);
}
