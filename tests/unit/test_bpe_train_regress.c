/* BPE trainer regressions found by tests/fuzz/fuzz_bpe_train.c (they show
 * under the sanitizers: `make sanitize`).  Chunks of up to 8 bytes keep
 * their bytes in the key rather than an arena offset; forming arena + key
 * for them was a pointer overflow (UBSan) on short multi-byte input. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/tokenizer.h"

static void round_trip(const char *text) {
  const char *texts[1] = {text};
  size_t lens[1] = {strlen(text)};
  tyr_tokenizer *tok = tyr_tokenizer_train(texts, lens, 1, 272, NULL);
  assert_non_null(tok);
  uint32_t *ids = NULL;
  size_t cap = 0, bcap = 0;
  char *back = NULL;
  size_t n = tyr_tokenizer_encode(tok, text, lens[0], false, &ids, &cap);
  assert_true(n != TYR_TOKENIZER_FAIL && n < lens[0]); /* something was merged */
  assert_int_equal(tyr_tokenizer_decode(tok, ids, n, &back, &bcap), lens[0]);
  assert_memory_equal(back, text, lens[0]);
  free(ids);
  free(back);
  tyr_tokenizer_free(tok);
}

static void test_short_multibyte_chunks(void **state) {
  (void)state;
  round_trip(
      "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 \xf0\x9f\x98\x80\xf0\x9f\x98\x80"); /* 8-byte chunks */
  round_trip("\xc3\xa9\xc3\xa9 \xc3\xa9\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac");
}

int main(void) {
  const struct CMUnitTest tests[] = {TYR_TEST(test_short_multibyte_chunks)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
