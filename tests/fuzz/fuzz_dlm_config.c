/* Fuzzes the diffusion LM's config parser (tyr_dlm_config_from_json, which
 * reads the "train_diffusion.config" metadata of checkpoints) on arbitrary
 * bytes.  A config that parses must check without crashing and, when it is
 * valid, write back JSON that parses to the same config. */
#include <stdlib.h>
#include <string.h>

#include "tyr/models/diffusion_lm.h"
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
  tyr_dlm_config c;
  if (tyr_dlm_config_from_json(s, &c) && tyr_dlm_config_check(&c) == 0) {
    char js[1024];
    tyr_dlm_config back;
    tyr_dlm_config_json(&c, js, sizeof js);
    if (!tyr_dlm_config_from_json(js, &back) || back.seq_len != c.seq_len ||
        back.n_layer != c.n_layer || back.n_head != c.n_head || back.n_embd != c.n_embd ||
        back.steps != c.steps || back.context_len != c.context_len || strcmp(back.name, c.name))
      abort();
  }
  free(s);
  return 0;
}
