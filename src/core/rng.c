/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11): a counter-based generator.  Element i of every random tensor
 * is a function of (seed, counter + i) only.  The arithmetic lives in
 * core/philox.h, shared with the CUDA backend. */
#include "core/philox.h"
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
  tyr__philox4x32(seed, counter, out);
}

float tyr_philox_uniform(uint64_t seed, uint64_t counter) {
  return tyr__philox_uniform(seed, counter);
}

float tyr_philox_normal(uint64_t seed, uint64_t counter) {
  return tyr__philox_normal(seed, counter);
}
