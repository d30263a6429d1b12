/* Fuzz target: the sequent parser (tyr/models/sequent.h) and the proof-step
 * parser on arbitrary text; whatever parses must print to canonical text
 * that parses back to itself, and the checker and the complete prover must
 * run on it without fault. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/models/sequent.h"

static void check(int ok) {
  if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  static tyr_sequent q, r, out[2];
  char err[256], a[TYR_SEQUENT_TEXT_MAX], b[TYR_SEQUENT_TEXT_MAX];
  tyr_sequent_step st;
  if (tyr_sequent_step_parse(text, &st, err, sizeof err)) {
    check(st.rule >= 0 && st.rule < TYR_RULE_COUNT);
    tyr_sequent_step_print(st, a, sizeof a);
  }
  if (tyr_sequent_parse_quiet(text, &q, err, sizeof err) == 0) {
    tyr_sequent_print(&q, a, sizeof a);
    check(tyr_sequent_parse_quiet(a, &r, err, sizeof err) == 0);
    tyr_sequent_print(&r, b, sizeof b);
    check(strcmp(a, b) == 0);
    for (int rule = 0; rule < TYR_RULE_COUNT; rule++)
      for (int i = 0; i < 3; i++) {
        int g = tyr_sequent_apply(&q, (tyr_sequent_step){(tyr_sequent_rule)rule, i}, out, err,
                                  sizeof err);
        check(g >= -1 && g <= 2);
      }
    int res = tyr_sequent_prove(&q, 2000, NULL);
    check(res >= -1 && res <= 1);
  } else {
    check(err[0] != 0 && strncmp(err, "position ", 9) == 0);
  }
  free(text);
  return 0;
}
