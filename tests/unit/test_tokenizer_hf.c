/* Hugging Face tokenizer.json files: the ids the tokenizers library gives
 * for a byte-level BPE with Qwen2's normalizer and pre-tokenizer
 * (tests/data/flux, made by make_qwen3_fixtures.py), the merge order of the
 * tokenizers library where it differs from tiktoken's rule, added tokens,
 * and files refused by name. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/tokenizer.h"
#include "tyr/tyr.h"

/* ---- a tokenizer.json made here ------------------------------------------- */
/* GPT-2's byte-level alphabet: byte b as a code point */
static int byte_cp(int b) {
  int next = 256;
  for (int x = 0; x < 256; x++) {
    bool self = (x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff);
    if (x == b) return self ? x : next;
    if (!self) next++;
  }
  return -1;
}

static void cp_utf8(int cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = 0;
  } else {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    out[2] = 0;
  }
}

/* vocab: the 256 bytes (id = byte), "ab" 256, "bc" 257, "xyz" 258,
 * "<|endoftext|>" 259 (also an added token); merges "b c" then "a b" (the
 * reverse of the ids' order), unless swap; added <|endoftext|> 259 and
 * <|im_start|> 300. */
static json_t *small_json(bool swap, bool ignore_merges) {
  json_t *vocab = json_object();
  for (int b = 0; b < 256; b++) {
    char s[4];
    cp_utf8(byte_cp(b), s);
    json_object_set_new(vocab, s, json_integer(b));
  }
  json_object_set_new(vocab, "ab", json_integer(256));
  json_object_set_new(vocab, "bc", json_integer(257));
  json_object_set_new(vocab, "xyz", json_integer(258));
  json_object_set_new(vocab, "<|endoftext|>", json_integer(259));
  json_t *merges =
      swap ? json_pack("[s, s]", "a b", "b c") : json_pack("[s, [s, s]]", "b c", "a", "b");
  json_t *model =
      json_pack("{s:s, s:o, s:o, s:n, s:b, s:b}", "type", "BPE", "vocab", vocab, "merges", merges,
                "dropout", "byte_fallback", 0, "ignore_merges", ignore_merges);
  json_t *added =
      json_pack("[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b}]", "id",
                259, "content", "<|endoftext|>", "single_word", 0, "lstrip", 0, "rstrip", 0,
                "normalized", 0, "special", 1, "id", 300, "content", "<|im_start|>", "single_word",
                0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
  json_t *pre = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                          "trim_offsets", 1, "use_regex", 1);
  return json_pack("{s:s, s:o, s:n, s:o, s:n, s:o}", "version", "1.0", "added_tokens", added,
                   "normalizer", "pre_tokenizer", pre, "post_processor", "model", model);
}

static tyr_tokenizer *load_json(json_t *j) {
  char *text = json_dumps(j, JSON_COMPACT);
  assert_non_null(text);
  tyr_tokenizer *t = tyr_tokenizer_load_hf_mem_at(TYR_SITE, text, strlen(text), "small.json");
  free(text);
  json_decref(j);
  return t;
}

static size_t enc(const tyr_tokenizer *t, const char *text, uint32_t *out, size_t max) {
  uint32_t *ids = NULL;
  size_t cap = 0;
  size_t n = tyr_tokenizer_encode(t, text, strlen(text), true, &ids, &cap);
  assert_true(n != TYR_TOKENIZER_FAIL && n <= max);
  memcpy(out, ids, n * sizeof *ids);
  free(ids);
  return n;
}

static void test_merge_order(void **state) {
  (void)state;
  uint32_t ids[64];
  tyr_tokenizer *t = load_json(small_json(false, false));
  assert_non_null(t);
  /* merge "b c" ranks first: a|bc, where tiktoken's rule (lowest id) makes ab|c */
  assert_int_equal(enc(t, "abc", ids, 16), 2);
  assert_int_equal(ids[0], 'a');
  assert_int_equal(ids[1], 257);
  /* "xyz" is a token but no merge makes it: bytes, as the tokenizers library does */
  assert_int_equal(enc(t, "xyz", ids, 16), 3);
  assert_int_equal(ids[0], 'x');
  /* added tokens are found in the text; the vocab's copy of one is not a rank */
  assert_int_equal(enc(t, "ab<|endoftext|><|im_start|>", ids, 16), 3);
  assert_int_equal(ids[0], 256);
  assert_int_equal(ids[1], 259);
  assert_int_equal(ids[2], 300);
  assert_int_equal(tyr_tokenizer_special_id(t, "<|im_start|>"), 300);
  assert_int_equal(tyr_tokenizer_vocab_size(t), 301);
  /* decoding gives the bytes back */
  char *out = NULL;
  size_t cap = 0;
  uint32_t n = (uint32_t)enc(t, "  hello\n\tw\xc3\xb6rld \xe6\x97\xa5", ids, 64);
  assert_int_equal(tyr_tokenizer_decode(t, ids, n, &out, &cap), 19);
  assert_string_equal(out, "  hello\n\tw\xc3\xb6rld \xe6\x97\xa5");
  free(out);
  /* it cannot be saved in Tyr's format, which has no merge list */
  char path[4200];
  snprintf(path, sizeof path, "%s/hf.tok", tyr_test_tmpdir());
  EXPECT_TYR_ERROR(tyr_tokenizer_save(t, path), "merge list");
  tyr_tokenizer_free(t);

  t = load_json(small_json(true, false));
  assert_int_equal(enc(t, "abc", ids, 16), 2); /* now "a b" ranks first */
  assert_int_equal(ids[0], 256);
  assert_int_equal(ids[1], 'c');
  tyr_tokenizer_free(t);
  t = load_json(small_json(false, true)); /* ignore_merges: a whole token wins */
  assert_int_equal(enc(t, "xyz", ids, 16), 1);
  assert_int_equal(ids[0], 258);
  tyr_tokenizer_free(t);
}

static json_t *model_of(json_t *j) {
  return json_object_get(j, "model");
}

static void test_refused(void **state) {
  (void)state;
  json_t *j = small_json(false, false);
  json_object_set_new(model_of(j), "type", json_string("WordPiece"));
  EXPECT_TYR_ERROR(load_json(j), "model type is WordPiece");
  j = small_json(false, false);
  json_object_set_new(model_of(j), "byte_fallback", json_true());
  EXPECT_TYR_ERROR(load_json(j), "byte_fallback is set");
  j = small_json(false, false);
  json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 1), "lstrip", json_true());
  EXPECT_TYR_ERROR(load_json(j), "<|im_start|> has lstrip");
  j = small_json(false, false);
  json_array_append_new(json_object_get(model_of(j), "merges"), json_string("q zz"));
  EXPECT_TYR_ERROR(load_json(j), "merge 2 is not two vocabulary tokens");
  j = small_json(false, false);
  json_array_append_new(json_object_get(model_of(j), "merges"), json_string("a c"));
  EXPECT_TYR_ERROR(load_json(j), "merge 2 makes a token that is not in the vocabulary");
  j = small_json(false, false);
  json_object_set_new(json_object_get(model_of(j), "vocab"), "\xe4\xb8\xad", json_integer(270));
  EXPECT_TYR_ERROR(load_json(j), "is not a byte-level token");
  j = small_json(false, false);
  json_object_set_new(j, "pre_tokenizer", json_pack("{s:s}", "type", "Whitespace"));
  EXPECT_TYR_ERROR(load_json(j), "pre_tokenizer type Whitespace");
  /* ByteLevel without its regex and no Split: nothing splits the text (alone, and as the
     only step of a Sequence) */
  j = small_json(false, false);
  json_object_set_new(json_object_get(j, "pre_tokenizer"), "use_regex", json_false());
  EXPECT_TYR_ERROR(load_json(j), "the pre-tokenizer does not split the text");
  j = small_json(false, false);
  json_object_set_new(j, "pre_tokenizer",
                      json_pack("{s:s, s:[{s:s, s:b}]}", "type", "Sequence", "pretokenizers",
                                "type", "ByteLevel", "use_regex", 0));
  EXPECT_TYR_ERROR(load_json(j), "the pre-tokenizer does not split the text");
  j = small_json(false, false);
  json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "Lowercase"));
  EXPECT_TYR_ERROR(load_json(j), "normalizer Lowercase");
  j = small_json(false, false);
  json_object_del(json_object_get(model_of(j), "vocab"), "\xc4\xa0"); /* the space byte */
  EXPECT_TYR_ERROR(load_json(j), "no token for the single byte 0x20");
  EXPECT_TYR_ERROR(tyr_tokenizer_load_hf_mem_at(TYR_SITE, "{\"model\": [", 11, "broken.json"),
                   "broken.json: line 1");
  EXPECT_TYR_ERROR(tyr_tokenizer_load_hf("/nonexistent/tokenizer.json"),
                   "/nonexistent/tokenizer.json: cannot open");
}

/* ---- the fixture made by the tokenizers library --------------------------- */
static void test_tokenizers_fixture(void **state) {
  (void)state;
  tyr_tokenizer *t = tyr_tokenizer_load_hf(tyr_test_data("flux/tokenizer.json"));
  assert_non_null(t);
  json_error_t jerr;
  json_t *exp = json_load_file(tyr_test_data("flux/tokenizer_ids.json"), 0, &jerr);
  assert_non_null(exp);
  json_t *texts = json_object_get(exp, "texts"), *ids = json_object_get(exp, "ids");
  assert_true(json_array_size(texts) >= 10);
  assert_int_equal(json_array_size(texts), json_array_size(ids));
  uint32_t *got = NULL;
  size_t cap = 0;
  for (size_t i = 0; i < json_array_size(texts); i++) {
    json_t *tx = json_array_get(texts, i), *want = json_array_get(ids, i);
#ifndef TYR_HAVE_ICU
    /* without ICU a text that NFC changes (a combining accent) is encoded as it is */
    if (strstr(json_string_value(tx), "\xcc\x81")) continue;
#endif
    size_t n =
        tyr_tokenizer_encode(t, json_string_value(tx), json_string_length(tx), true, &got, &cap);
    assert_true(n != TYR_TOKENIZER_FAIL);
    if (n != json_array_size(want))
      fail_msg("text %zu: %zu ids, want %zu", i, n, json_array_size(want));
    for (size_t k = 0; k < n; k++)
      if (got[k] != (uint32_t)json_integer_value(json_array_get(want, k)))
        fail_msg("text %zu (%.40s): id %zu is %u, want %lld", i, json_string_value(tx), k, got[k],
                 (long long)json_integer_value(json_array_get(want, k)));
  }
  free(got);
  json_decref(exp);
  assert_true(tyr_tokenizer_special_id(t, "<|im_start|>") >= 0);
  assert_true(tyr_tokenizer_special_id(t, "</think>") >= 0);
  tyr_tokenizer_free(t);
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_merge_order),
      TYR_TEST(test_refused),
      TYR_TEST(test_tokenizers_fixture),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
