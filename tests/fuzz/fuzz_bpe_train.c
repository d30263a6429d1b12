/* Fuzzes the BPE trainer: any bytes (split into one to three texts, with a
 * vocabulary size from the first byte) must train without undefined
 * behaviour, and the trained tokenizer must encode the texts back to the
 * same bytes and produce ids below its vocabulary size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/tokenizer.h"

static void quiet(const tyr_error *e, void *ctx) {
  (void)e;
  (void)ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  tyr_error_set_handler(quiet, NULL); /* refusals are fine; crashes are not */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int vocab = 265 + data[0] % 96; /* 256 bytes, 9 specials, merges */
  data++;
  size--;
  /* up to three texts, split at 0xff bytes */
  const char *texts[3];
  size_t lens[3];
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= size && n < 3; i++)
    if (i == size || (data[i] == 0xff && n < 2)) {
      texts[n] = (const char *)data + start;
      lens[n++] = i - start;
      start = i + 1;
    }
  tyr_tokenizer *tok = tyr_tokenizer_train(texts, lens, n, vocab, NULL);
  if (!tok) return 0;
  uint32_t *ids = NULL;
  size_t cap = 0;
  char *back = NULL;
  size_t bcap = 0;
  for (int t = 0; t < n; t++) {
    size_t k = tyr_tokenizer_encode(tok, texts[t], lens[t], false, &ids, &cap);
    if (k == TYR_TOKENIZER_FAIL) abort();
    for (size_t i = 0; i < k; i++)
      if (ids[i] >= (uint32_t)tyr_tokenizer_vocab_size(tok)) abort();
    size_t m = tyr_tokenizer_decode(tok, ids, k, &back, &bcap);
    if (m != lens[t] || (m && memcmp(back, texts[t], m) != 0)) abort();
  }
  free(ids);
  free(back);
  tyr_tokenizer_free(tok);
  return 0;
}
