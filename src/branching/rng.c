/* Random draws of Branching Flows (tyr/branching_flows.h) from the
 * library's Philox4x32 (src/core/philox.h): a stream is a key and a run of
 * counters, so the draws of one batch element do not depend on which
 * thread makes them, nor on how many threads there are. */
#include <math.h>

#include "core/philox.h"
#include "tyr/branching_flows.h"

void tyr_bf_rng_init(tyr_bf_rng *r, uint64_t seed, uint64_t stream) {
  r->seed = seed;
  r->counter = stream << 32;
  r->used = 4;
}

uint32_t tyr_bf_rng_u32(tyr_bf_rng *r) {
  if (r->used >= 4) {
    tyr__philox4x32(r->seed, r->counter++, r->buf);
    r->used = 0;
  }
  return r->buf[r->used++];
}

double tyr_bf_rng_uniform(tyr_bf_rng *r) {
  uint64_t a = tyr_bf_rng_u32(r) >> 5, b = tyr_bf_rng_u32(r) >> 6; /* 27 + 26 bits */
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

double tyr_bf_rng_exponential(tyr_bf_rng *r) {
  return -log1p(-tyr_bf_rng_uniform(r)); /* 1 - u in (0, 1] */
}

double tyr_bf_rng_normal(tyr_bf_rng *r) {
  double u = 1.0 - tyr_bf_rng_uniform(r), v = tyr_bf_rng_uniform(r);
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

int64_t tyr_bf_rng_below(tyr_bf_rng *r, int64_t n) {
  if (n <= 1) return 0;
  return (int64_t)(tyr_bf_rng_uniform(r) * (double)n);
}

/* Knuth's product of uniforms for a mean up to 30; a larger mean is the
 * sum of independent Poisson(30) draws and the rest (exact, and the means
 * used here are small). */
int64_t tyr_bf_rng_poisson(tyr_bf_rng *r, double mean) {
  if (!(mean > 0)) return 0;
  int64_t k = 0;
  while (mean > 30) {
    k += tyr_bf_rng_poisson(r, 30);
    mean -= 30;
  }
  double limit = exp(-mean), p = 1;
  for (;;) {
    p *= tyr_bf_rng_uniform(r);
    if (p <= limit) return k;
    k++;
  }
}

int64_t tyr_bf_rng_binomial(tyr_bf_rng *r, int64_t n, double p) {
  int64_t k = 0;
  if (p <= 0) return 0;
  if (p >= 1) return n > 0 ? n : 0;
  for (int64_t i = 0; i < n; i++) k += tyr_bf_rng_uniform(r) < p;
  return k;
}
