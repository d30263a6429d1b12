/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11): a counter-based generator.  Element i of every random tensor
 * is a function of (seed, counter + i) only. */
#include <math.h>

#include "tyr/tensor.h"

static uint64_t g_seed = 0x2545F4914F6CDD1DULL;
static uint64_t g_counter;

void tyr_manual_seed(uint64_t seed) {
  g_seed = seed;
  g_counter = 0;
}

tyr_rng_state tyr_rng_get_state(void) {
  return (tyr_rng_state){g_seed, g_counter};
}
void tyr_rng_set_state(tyr_rng_state st) {
  g_seed = st.seed;
  g_counter = st.counter;
}

uint64_t tyr_rng_reserve(uint64_t n, uint64_t *seed) {
  uint64_t c = g_counter;
  g_counter += n;
  if (seed) *seed = g_seed;
  return c;
}

void tyr_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]) {
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

/* (0, 1]: 24 random bits */
static inline float u01(uint32_t x) {
  return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

float tyr_philox_uniform(uint64_t seed, uint64_t counter) {
  uint32_t r[4];
  tyr_philox4x32(seed, counter, r);
  return u01(r[0]);
}

float tyr_philox_normal(uint64_t seed, uint64_t counter) {
  uint32_t r[4];
  tyr_philox4x32(seed, counter, r);
  float u1 = u01(r[0]), u2 = u01(r[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}
