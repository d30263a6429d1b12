/* Fuzzes the tokenizer loaders (our format and tiktoken rank files, plain
 * or zstd) on arbitrary bytes.  A file that loads must save to the same
 * text it loads from again, and encode and decode text losslessly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_internal.h"

static void quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

static void check_round_trip(const tyr_tokenizer *t, const char *text, size_t len, bool special) {
  uint32_t *ids = NULL;
  size_t cap = 0;
  char *out = NULL;
  size_t ocap = 0;
  size_t n = tyr_tokenizer_encode(t, text, len, special, &ids, &cap);
  if (n == TYR_TOKENIZER_FAIL) {
    /* only a pattern that exceeds PCRE2's match limits may fail */
    free(ids);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if ((int)ids[i] >= tyr_tokenizer_vocab_size(t) ||
        (!special && tyr_tokenizer_is_special(t, ids[i])))
      abort();
  size_t m = tyr_tokenizer_decode(t, ids, n, &out, &ocap);
  if (m != len || (len && memcmp(out, text, len) != 0)) abort();
  free(ids);
  free(out);
}

static void check(const tyr_tokenizer *t, const uint8_t *data, size_t size) {
  size_t a, b;
  char *sa = bpe_serialize(t, &a);
  if (!sa) abort();
  if (!strpbrk(tyr_tokenizer_pattern(t), "\r\n")) {
    tyr_tokenizer *u = tyr_tokenizer_load_mem(sa, a, "reloaded");
    if (!u) abort();
    char *sb = bpe_serialize(u, &b);
    if (!sb || a != b || memcmp(sa, sb, a) != 0) abort();
    free(sb);
    tyr_tokenizer_free(u);
  }
  free(sa);
  static const char text[] = "Hello, world! It's 2024: <|endoftext|> caf\xc3\xa9 \xff\xfe  \n\n x";
  check_round_trip(t, text, sizeof text - 1, false);
  check_round_trip(t, text, sizeof text - 1, true);
  check_round_trip(t, (const char *)data, size < 512 ? size : 512, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    tyr_error_set_handler(quiet, NULL);
    tyr__bpe_max_file = (size_t)8 << 20;
    ready = true;
  }
  tyr_tokenizer *t = tyr_tokenizer_load_mem(data, size, "fuzz");
  if (t) check(t, data, size);
  tyr_tokenizer_free(t);
  const char *specials[2] = {"<|endoftext|>", "<|x|>"};
  t = tyr_tokenizer_load_tiktoken_mem_at(TYR_SITE, data, size, "fuzz", TYR_TOKENIZER_PATTERN_GPT2,
                                         specials, NULL, 2);
  if (t) check(t, data, size);
  tyr_tokenizer_free(t);
  tyr_error_clear();
  return 0;
}
