/* Small math helpers of the CPU kernels written so that gcc and clang
 * vectorise the loops that call them (no libm calls, no float max
 * reductions). */
#ifndef TYR_CPU_FASTMATH_H
#define TYR_CPU_FASTMATH_H
#include <math.h>
#include <stdint.h>

/* e^x in f32 that the compiler can vectorise (Cephes expf: x = n ln2 + r,
 * |r| <= ln2/2, a polynomial for e^r, and 2^n put in the exponent bits);
 * relative error below 2e-7 for x <= 10, which covers the kernels' x (at
 * most rounding above 0; larger only for masked-out entries, which are
 * discarded).  0 below -87 (e^-87 = 1.6e-38) and for -inf; NaN stays NaN. */
static inline float tyr_cpu_expf(float x) {
  float xc = x > -87.0f ? x : -87.0f; /* keeps the biased exponent n + 127 >= 1 */
  xc = xc < 10.0f ? xc : 10.0f;
  /* n = round(x / ln2) by the 1.5 * 2^23 trick: floorf does not vectorise */
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  union {
    uint32_t i;
    float f;
  } two_n = {.i = (uint32_t)((int32_t)n + 127) << 23};
  float e = y * two_n.f;
  e = x < -87.0f ? 0.0f : e; /* e^-87 = 1.6e-38: flush below */
  return x != x ? x : e;
}

/* 1 - erf(a) for a >= 0 given e = e^(-a^2): A&S 7.1.26's polynomial in
 * t = 1 / (1 + p a), times e. */
static inline float tyr__erfc_from_exp(float a, float e) {
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  return p * t * e;
}

/* erf(x) in f32 that the compiler can vectorise: Abramowitz and Stegun
 * 7.1.26 (absolute error below 1.5e-7; 6e-7 in f32 arithmetic) with the
 * exp above (its argument -x^2 is never above 0). */
static inline float tyr_cpu_erff(float x) {
  float ax = x < 0 ? -x : x;
  float y = 1.0f - tyr__erfc_from_exp(ax, tyr_cpu_expf(-ax * ax));
  return x < 0 ? -y : y;
}

/* GELU's derivative Phi(x) + x phi(x) in f32 that the compiler can
 * vectorise: erf as above, whose e^(-z^2) with z = x / sqrt(2) is also
 * the Gaussian's e^(-x^2 / 2), so one exponential serves both terms
 * (tyr_cpu_erff and tyr_cpu_expf called apart compute it twice).
 * Absolute error below 4e-7 (tests/unit/test_fastmath.c); 1 and 0 at
 * +-inf. */
static inline float tyr_cpu_gelu_gradf(float x) {
  float z = x * 0.70710678118654752f;
  float az = z < 0 ? -z : z;
  float e = tyr_cpu_expf(-az * az);
  float erfc_abs = tyr__erfc_from_exp(az, e); /* 1 - erf(|z|) */
  float cdf = z < 0 ? 0.5f * erfc_abs : 1.0f - 0.5f * erfc_abs;
  /* x phi(x) is 0 where e^(-z^2) flushed to 0, also for x = +-inf */
  float xpdf = az < 14.0f ? x * (e * 0.39894228040143268f) : 0.0f;
  return cdf + xpdf; /* NaN stays NaN (through cdf) */
}

/* tanh(x) in f32 that the compiler can vectorise (Cephes tanhf): an odd
 * polynomial below |x| = 0.625, (1 - t) / (1 + t) with t = e^(-2|x|) above
 * (t <= 0.29, so no cancellation); both are computed and one is selected.
 * Relative error below 3e-7 (tests/unit/test_fastmath.c); +-1 from
 * |x| = 8.67 on (t flushes at |x| = 43.5); NaN stays NaN. */
static inline float tyr_cpu_tanhf(float x) {
  float ax = x < 0 ? -x : x;
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = x * (1.0f + p * z); /* keeps the sign of -0 */
  float t = tyr_cpu_expf(-2.0f * ax);
  float large = (1.0f - t) / (1.0f + t);
  large = x < 0 ? -large : large;
  return ax < 0.625f ? small : x != x ? x : large;
}

/* The logistic function 1 / (1 + e^-x) in f32 that the compiler can
 * vectorise: e^(-|x|) (never above 1, so the exp above is accurate) and the
 * form that divides by 1 + e^(-|x|) for either sign. */
static inline float tyr_cpu_sigmoidf(float x) {
  float e = tyr_cpu_expf(x < 0 ? x : -x);
  float s = 1.0f / (1.0f + e);
  return x < 0 ? e * s : s;
}

/* max of x[0..n) (-inf when n is 0), in 16 running maxima. */
#define TYR__DEFINE_VMAX(T, SFX)                                                                   \
  static inline T tyr_cpu_max_##SFX(const T *restrict x, int64_t n) {                              \
    T mm[16];                                                                                      \
    for (int w = 0; w < 16; w++) mm[w] = -INFINITY;                                                \
    int64_t c = 0;                                                                                 \
    for (; c + 16 <= n; c += 16)                                                                   \
      for (int w = 0; w < 16; w++) mm[w] = x[c + w] > mm[w] ? x[c + w] : mm[w];                    \
    for (; c < n; c++) mm[0] = x[c] > mm[0] ? x[c] : mm[0];                                        \
    T m = mm[0];                                                                                   \
    for (int w = 1; w < 16; w++) m = mm[w] > m ? mm[w] : m;                                        \
    return m;                                                                                      \
  }
TYR__DEFINE_VMAX(float, f32)
TYR__DEFINE_VMAX(double, f64)
#undef TYR__DEFINE_VMAX

/* sum of e^(x[i] - m) over i < n, accumulated in double. */
static inline double tyr_cpu_sum_exp_f32(const float *restrict x, float m, int64_t n) {
  double acc[8] = {0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int w = 0; w < 8; w++) acc[w] += (double)tyr_cpu_expf(x[c + w] - m);
  for (; c < n; c++) acc[0] += (double)tyr_cpu_expf(x[c] - m);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
static inline double tyr_cpu_sum_exp_f64(const double *restrict x, double m, int64_t n) {
  double s = 0;
  for (int64_t c = 0; c < n; c++) s += exp(x[c] - m);
  return s;
}
#endif
