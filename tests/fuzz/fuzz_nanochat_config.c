/* Fuzzes the nanochat GPT's config parser (tyr_nanochat_config_from_json,
 * which reads the "tyr.nanochat.config" metadata of checkpoints and decides
 * whether train_nanochat resumes) on arbitrary bytes.  A config that parses
 * is valid (the parser checks it) and must write back JSON that parses to
 * the same config. */
#include <stdlib.h>
#include <string.h>

#include "tyr/models/nanochat_gpt.h"
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
  tyr_nanochat_config c;
  memset(&c, 0, sizeof c);
  if (tyr_nanochat_config_from_json_at(TYR_SITE, s, "fuzz", &c) == 0) {
    char js[2048];
    tyr_nanochat_config back;
    memset(&back, 0, sizeof back);
    if (tyr_nanochat_config_check_at(TYR_SITE, &c) ||
        tyr_nanochat_config_to_json_at(TYR_SITE, &c, js, sizeof js) < 0 ||
        tyr_nanochat_config_from_json_at(TYR_SITE, js, "fuzz", &back) ||
        memcmp(&back, &c, sizeof c))
      abort();
  }
  free(s);
  return 0;
}
