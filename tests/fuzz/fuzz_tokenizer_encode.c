/* Fuzzes encode and decode: any bytes must come back unchanged, with and
 * without special tokens, and the two merge loops (scanning for short
 * chunks, a heap for long ones) must agree with each other and with the
 * cached result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_internal.h"

static tyr_tokenizer *g_tok;

static const char corpus[] =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
    "resolved.\n\nint main(void) { return 0; }  // 1234567 aaaaaaaa ====== \xc3\xa9\xc3\xa9 "
    "\xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80\xf0\x9f\x98\x80 it's we'll they've    \t\t\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *texts[1] = {corpus};
  g_tok = tyr_tokenizer_train(texts, NULL, 1, 420, NULL);
  if (!g_tok) abort();
  return 0;
}

static size_t encode(const char *text, size_t len, bool special, uint32_t **ids, size_t *cap) {
  size_t n = tyr_tokenizer_encode(g_tok, text, len, special, ids, cap);
  if (n == TYR_TOKENIZER_FAIL) abort();
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  bool special = data[0] & 1;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  uint32_t *a = NULL, *b = NULL;
  size_t ca = 0, cb = 0;
  size_t na = encode(text, len, special, &a, &ca);
  /* no cache, every chunk through the heap */
  tyr__bpe_use_cache = false;
  size_t saved = tyr__bpe_scan_max;
  tyr__bpe_scan_max = 0;
  size_t nb = encode(text, len, special, &b, &cb);
  tyr__bpe_scan_max = saved;
  if (na != nb || (na && memcmp(a, b, na * sizeof *a) != 0)) abort();
  /* no cache, scanning */
  nb = encode(text, len, special, &b, &cb);
  tyr__bpe_use_cache = true;
  if (na != nb || (na && memcmp(a, b, na * sizeof *a) != 0)) abort();
  /* cached */
  nb = encode(text, len, special, &b, &cb);
  if (na != nb || (na && memcmp(a, b, na * sizeof *a) != 0)) abort();
  for (size_t i = 0; i < na; i++) {
    if ((int)a[i] >= tyr_tokenizer_vocab_size(g_tok)) abort();
    if (!special && tyr_tokenizer_is_special(g_tok, a[i])) abort();
  }
  char *out = NULL;
  size_t ocap = 0;
  size_t m = tyr_tokenizer_decode(g_tok, a, na, &out, &ocap);
  if (m != len || (len && memcmp(out, text, len) != 0)) abort();
  free(a);
  free(b);
  free(out);
  return 0;
}
