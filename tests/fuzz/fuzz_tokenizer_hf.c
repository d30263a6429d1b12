/* Fuzzes the tokenizer.json loader (tyr_tokenizer_load_hf_mem) on arbitrary
 * bytes.  A file that loads must encode and decode text losslessly, with
 * and without its added tokens, and give ids below its vocabulary size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_internal.h"

static void quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

static void round_trip(const tyr_tokenizer *t, const char *text, size_t len, bool special) {
  uint32_t *ids = NULL;
  size_t cap = 0;
  char *out = NULL;
  size_t ocap = 0;
  size_t n = tyr_tokenizer_encode(t, text, len, special, &ids, &cap);
  if (n == TYR_TOKENIZER_FAIL) { /* a pattern past PCRE2's match limits */
    free(ids);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if ((int)ids[i] >= tyr_tokenizer_vocab_size(t) ||
        (!special && tyr_tokenizer_is_special(t, ids[i])))
      abort();
  size_t m = tyr_tokenizer_decode(t, ids, n, &out, &ocap);
  /* NFC may change the text; otherwise decoding gives it back */
  if (m == TYR_TOKENIZER_FAIL || (!t->nfc && (m != len || (len && memcmp(out, text, len) != 0))))
    abort();
  free(ids);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    tyr_error_set_handler(quiet, NULL);
    tyr__bpe_max_file = (size_t)8 << 20;
    ready = true;
  }
  tyr_tokenizer *t = tyr_tokenizer_load_hf_mem(data, size, "fuzz.json");
  if (t) {
    static const char text[] =
        "Hello, world! It's 2024: <|endoftext|> caf\xc3\xa9 \xff\xfe  \n\n x";
    round_trip(t, text, sizeof text - 1, false);
    round_trip(t, text, sizeof text - 1, true);
    round_trip(t, (const char *)data, size < 256 ? size : 256, true);
  }
  tyr_tokenizer_free(t);
  tyr_error_clear();
  return 0;
}
