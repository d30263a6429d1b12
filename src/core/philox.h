/* Philox4x32-10 and the numbers made from it, written once for every
 * backend: src/core/rng.c and src/cpu/cpu_backend.c compile it as C, and
 * src/cuda/random.cu compiles the same text as CUDA device code, so a
 * random tensor has the same bits on every device for the same (seed,
 * counter).
 *
 * Bit-identical results need arithmetic that every compiler evaluates the
 * same way: no libm transcendental (logf/cosf differ between glibc versions,
 * their FMA and non-FMA variants, and CUDA), and every product that feeds a
 * sum written as an explicit fma() so that no compiler is free to contract
 * it or not (GCC does at -march=native, nvcc does by default).  What is left
 * is IEEE double +, -, *, /, sqrt and fma, correctly rounded everywhere. */
#ifndef TYR_CORE_PHILOX_H
#define TYR_CORE_PHILOX_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define TYR_PHILOX_FN static __host__ __device__ __forceinline__
#else
#define TYR_PHILOX_FN static inline
#endif

TYR_PHILOX_FN void tyr__philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0;
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* (0, 1]: 24 random bits (exact in float) */
TYR_PHILOX_FN float tyr__u01(uint32_t x) {
  return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

/* log(x) for x in (0, 1] given as a float, in double: x = 2^e m with m in
 * [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = (m - 1) / (m + 1).  m - 1
 * and m + 1 are exact (m has 24 bits); |s| < 0.172 so ten terms of the
 * series leave an error below 1e-16. */
TYR_PHILOX_FN double tyr__philox_log(float xf) {
  double x = (double)xf;
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int e = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  double f = m - 1.0;
  double s = f / (2.0 + f);
  double z = s * s;
  double p = 0.052631578947368421;     /* 1/19 */
  p = fma(p, z, 0.058823529411764706); /* 1/17 */
  p = fma(p, z, 0.066666666666666667); /* 1/15 */
  p = fma(p, z, 0.076923076923076923); /* 1/13 */
  p = fma(p, z, 0.090909090909090909); /* 1/11 */
  p = fma(p, z, 0.11111111111111111);  /* 1/9 */
  p = fma(p, z, 0.14285714285714286);  /* 1/7 */
  p = fma(p, z, 0.2);                  /* 1/5 */
  p = fma(p, z, 0.33333333333333333);  /* 1/3 */
  double logm = 2.0 * fma(s * z, p, s);
  return fma((double)e, 0.69314718055994531, logm);
}

/* cos(2 pi t) for t in (0, 1] given as a float, in double: t = n/4 + r with
 * |r| <= 1/8 (exact), then a Taylor series on a = 2 pi r, |a| <= pi/4. */
TYR_PHILOX_FN double tyr__philox_cos2pi(float tf) {
  double t = (double)tf;
  double n = floor(4.0 * t + 0.5);
  double r = t - 0.25 * n;
  double a = 6.2831853071795865 * r;
  double w = a * a;
  int q = (int)n & 3;
  if (q == 0 || q == 2) {
    /* cos a = 1 - w/2! + w^2/4! - ... */
    double c = 4.1103176233121648e-19;      /* 1/20! */
    c = fma(c, w, -1.5619206968586225e-16); /* -1/18! */
    c = fma(c, w, 4.7794773323873853e-14);  /* 1/16! */
    c = fma(c, w, -1.1470745597729725e-11); /* -1/14! */
    c = fma(c, w, 2.0876756987868099e-09);  /* 1/12! */
    c = fma(c, w, -2.7557319223985891e-07); /* -1/10! */
    c = fma(c, w, 2.4801587301587302e-05);  /* 1/8! */
    c = fma(c, w, -1.3888888888888889e-03); /* -1/6! */
    c = fma(c, w, 4.1666666666666667e-02);  /* 1/4! */
    c = fma(c, w, -0.5);
    c = fma(c, w, 1.0);
    return q == 0 ? c : -c;
  }
  /* sin a = a - a^3/3! + ... */
  double sn = -8.2206352466243297e-18;      /* -1/19! */
  sn = fma(sn, w, 2.8114572543455208e-15);  /* 1/17! */
  sn = fma(sn, w, -7.6471637318198165e-13); /* -1/15! */
  sn = fma(sn, w, 1.6059043836821615e-10);  /* 1/13! */
  sn = fma(sn, w, -2.5052108385441719e-08); /* -1/11! */
  sn = fma(sn, w, 2.7557319223985891e-06);  /* 1/9! */
  sn = fma(sn, w, -1.9841269841269841e-04); /* -1/7! */
  sn = fma(sn, w, 8.3333333333333333e-03);  /* 1/5! */
  sn = fma(sn, w, -1.6666666666666667e-01); /* -1/3! */
  double s = fma(a * w, sn, a);
  return q == 1 ? -s : s;
}

TYR_PHILOX_FN float tyr__philox_uniform(uint64_t seed, uint64_t counter) {
  uint32_t r[4];
  tyr__philox4x32(seed, counter, r);
  return tyr__u01(r[0]);
}

/* Box-Muller on the first two words, rounded once to float. */
TYR_PHILOX_FN float tyr__philox_normal(uint64_t seed, uint64_t counter) {
  uint32_t r[4];
  tyr__philox4x32(seed, counter, r);
  double rad = sqrt(-2.0 * tyr__philox_log(tyr__u01(r[0])));
  return (float)(rad * tyr__philox_cos2pi(tyr__u01(r[1])));
}

/* The value of element (seed, c) of a random tensor of the given kind (the
 * numbering of tyr_random_kind in core/backend.h: 0 uniform, 1 normal,
 * 2 integer, 3 dropout keep mask), before conversion to the tensor's dtype. */
TYR_PHILOX_FN double tyr__random_value(int kind, double p0, double p1, uint64_t seed, uint64_t c) {
  switch (kind) {
  case 0: /* p0 + (p1 - p0) * U[0, 1) */
    return fma(p1 - p0, 1.0 - (double)tyr__philox_uniform(seed, c), p0);
  case 1:
    return fma(p1, (double)tyr__philox_normal(seed, c), p0);
  case 2: {
    uint32_t r[4];
    tyr__philox4x32(seed, c, r);
    uint64_t range = (uint64_t)(p1 - p0);
    uint64_t x = ((uint64_t)r[0] << 32) | r[1];
    return p0 + (double)(range ? x % range : 0);
  }
  default:
    return (double)tyr__philox_uniform(seed, c) > p0 ? 1.0 / (1.0 - p0) : 0.0;
  }
}
#endif
