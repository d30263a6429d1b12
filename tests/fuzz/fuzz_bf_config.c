/* Fuzzes the two text parsers of Branching Flows on arbitrary bytes: the
 * model's config (tyr_bfm_config_from_json, which reads the
 * "branching_flows.model" metadata of checkpoints) and the distribution
 * strings of --branch-time / --deletion-time (tyr_bf_dist_parse).  A
 * config that parses must check without crashing and, when valid, write
 * back JSON that parses to the same config; a distribution that parses
 * must be valid and give a CDF in [0, 1] that its quantile inverts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/branching_flows.h"
#include "tyr/models/branching_flows.h"
#include "tyr/tyr.h"

static void quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tyr_error_set_handler(quiet, NULL);
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = 0;
  tyr_bfm_config c;
  if (tyr_bfm_config_from_json(s, &c) && tyr_bfm_config_check(&c) == 0) {
    char js[512];
    tyr_bfm_config back;
    tyr_bfm_config_json(&c, js, sizeof js);
    if (!tyr_bfm_config_from_json(js, &back) || memcmp(&back, &c, sizeof c)) abort();
  }
  tyr_bf_dist d;
  if (tyr_bf_dist_parse(s, &d)) {
    if (tyr_bf_dist_check_at(TYR_SITE, &d, "fuzz")) abort();
    for (double p = 0.125; p < 1; p += 0.25) {
      double t = tyr_bf_dist_quantile(&d, p), F = tyr_bf_dist_cdf(&d, t);
      if (!(t >= d.lo && t <= d.hi) || !(F >= 0 && F <= 1)) abort();
    }
  }
  free(s);
  return 0;
}
