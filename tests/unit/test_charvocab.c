/* Character vocabulary: sorted ids, UTF-8, encode/decode, the JSON file and
 * its errors. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include "tyr/charvocab.h"

static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 512, "%s/%s", tyr_test_tmpdir(), name);
  return p;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_sorted_ids(void **state) {
  (void)state;
  tyr_char_vocab *v = tyr_char_vocab_new();
  const char *text = "hello world\n";
  assert_int_equal(tyr_char_vocab_scan(v, "t", text, strlen(text)), 0);
  /* distinct: \n space d e h l o r w */
  assert_int_equal(tyr_char_vocab_size(v), 9);
  const char *want = "\n dehlorw";
  for (int i = 0; i < 9; i++) assert_int_equal(tyr_char_vocab_char(v, i), want[i]);
  assert_int_equal(tyr_char_vocab_id(v, 'h'), 4);
  assert_int_equal(tyr_char_vocab_id(v, 'z'), -1);
  assert_int_equal(tyr_char_vocab_char(v, 9), -1);
  /* more text renumbers in code point order */
  assert_int_equal(tyr_char_vocab_scan(v, "t2", "!", 1), 0);
  assert_int_equal(tyr_char_vocab_id(v, '!'), 2);
  assert_int_equal(tyr_char_vocab_id(v, 'h'), 5);

  uint16_t ids[32];
  int64_t n = tyr_char_vocab_encode(v, "t", text, strlen(text), ids);
  assert_int_equal(n, 12);
  assert_int_equal(ids[0], 5);
  int64_t ids64[32];
  for (int i = 0; i < n; i++) ids64[i] = ids[i];
  char out[64];
  assert_int_equal(tyr_char_vocab_decode(v, ids64, n, out, sizeof out), 12);
  assert_string_equal(out, text);
  /* truncated output, snprintf-style */
  assert_int_equal(tyr_char_vocab_decode(v, ids64, n, out, 4), 12);
  assert_string_equal(out, "hel");
  ids64[0] = 999;
  tyr_char_vocab_decode(v, ids64, 1, out, sizeof out);
  assert_string_equal(out, "\xef\xbf\xbd");
  tyr_char_vocab_free(v);
}

static void test_utf8(void **state) {
  (void)state;
  tyr_char_vocab *v = tyr_char_vocab_new();
  const char *text = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a, e-acute, euro, emoji */
  assert_int_equal(tyr_char_vocab_scan(v, "u", text, strlen(text)), 0);
  assert_int_equal(tyr_char_vocab_size(v), 4);
  assert_int_equal(tyr_char_vocab_char(v, 1), 0xE9);
  assert_int_equal(tyr_char_vocab_char(v, 2), 0x20AC);
  assert_int_equal(tyr_char_vocab_char(v, 3), 0x1F600);
  assert_int_equal(tyr_char_vocab_id(v, 0x1F600), 3);
  uint16_t ids[16];
  assert_int_equal(tyr_char_vocab_encode(v, "u", text, strlen(text), ids), 4);
  int64_t ids64[4] = {ids[0], ids[1], ids[2], ids[3]};
  char out[32];
  tyr_char_vocab_decode(v, ids64, 4, out, sizeof out);
  assert_string_equal(out, text);
  /* a NUL character is a character */
  assert_int_equal(tyr_char_vocab_scan(v, "nul", "\0", 1), 0);
  assert_int_equal(tyr_char_vocab_char(v, 0), 0);
  tyr_char_vocab_free(v);
}

static void test_invalid_utf8(void **state) {
  (void)state;
  tyr_char_vocab *v = tyr_char_vocab_new();
  assert_int_equal(tyr_char_vocab_scan(v, "ok", "ab", 2), 0);
  EXPECT_TYR_ERROR(tyr_char_vocab_scan(v, "in.txt", "xyz\xff", 4),
                   "in.txt: invalid UTF-8 at byte 3 (0xff)");
  /* unchanged: x, y, z were rolled back */
  assert_int_equal(tyr_char_vocab_size(v), 2);
  assert_int_equal(tyr_char_vocab_id(v, 'x'), -1);
  EXPECT_TYR_ERROR(tyr_char_vocab_scan(v, "in.txt", "a\xc3", 2), "invalid UTF-8 at byte 1");
  EXPECT_TYR_ERROR(tyr_char_vocab_scan(v, "in.txt", "\xc0\xaf", 2), "invalid UTF-8 at byte 0");
  EXPECT_TYR_ERROR(tyr_char_vocab_scan(v, "in.txt", "\xed\xa0\x80", 3), "invalid UTF-8");
  uint16_t ids[8];
  EXPECT_TYR_ERROR(tyr_char_vocab_encode(v, "val.txt", "abc", 3, ids),
                   "val.txt: character U+0063 at byte 2 is not in the vocabulary");
  tyr_char_vocab_free(v);
}

static void test_too_many_chars(void **state) {
  (void)state;
  tyr_char_vocab *v = tyr_char_vocab_new();
  /* every BMP code point but the surrogates: 63488, then 3000 more astral */
  size_t cap = 70000 * 4, len = 0;
  char *buf = malloc(cap);
  for (uint32_t c = 0; c < 0x10000 + 3000; c++) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    if (c < 0x80)
      buf[len++] = (char)c;
    else if (c < 0x800) {
      buf[len++] = (char)(0xC0 | c >> 6);
      buf[len++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      buf[len++] = (char)(0xE0 | c >> 12);
      buf[len++] = (char)(0x80 | (c >> 6 & 0x3F));
      buf[len++] = (char)(0x80 | (c & 0x3F));
    } else {
      buf[len++] = (char)(0xF0 | c >> 18);
      buf[len++] = (char)(0x80 | (c >> 12 & 0x3F));
      buf[len++] = (char)(0x80 | (c >> 6 & 0x3F));
      buf[len++] = (char)(0x80 | (c & 0x3F));
    }
  }
  EXPECT_TYR_ERROR(tyr_char_vocab_scan(v, "big", buf, len), "more than 65536 distinct characters");
  assert_int_equal(tyr_char_vocab_size(v), 0);
  free(buf);
  tyr_char_vocab_free(v);
}

static void test_save_load(void **state) {
  (void)state;
  tyr_char_vocab *v = tyr_char_vocab_new();
  static const char text[] = "To be, or not\tto be:\n\"that\" \\ is\xc3\xa9\0x";
  assert_int_equal(tyr_char_vocab_scan(v, "t", text, sizeof text - 1), 0);
  assert_int_equal(tyr_char_vocab_char(v, 0), 0);
  const char *p = tmp_path("meta.json");
  assert_int_equal(tyr_char_vocab_save(v, p), 0);
  tyr_char_vocab *w = tyr_char_vocab_load(p);
  assert_non_null(w);
  assert_int_equal(tyr_char_vocab_size(w), tyr_char_vocab_size(v));
  for (int i = 0; i < tyr_char_vocab_size(v); i++)
    assert_int_equal(tyr_char_vocab_char(w, i), tyr_char_vocab_char(v, i));
  tyr_char_vocab_free(w);
  tyr_char_vocab_free(v);
}

static void test_load_errors(void **state) {
  (void)state;
  EXPECT_TYR_ERROR(tyr_char_vocab_load(tmp_path("none.json")),
                   "none.json: cannot open: No such file or directory");
  const char *p = tmp_path("bad.json");
  write_text(p, "{\"format\": \"tyr-char-vocab\", ");
  EXPECT_TYR_ERROR(tyr_char_vocab_load(p), "bad.json: line 1:");
  write_text(p, "{\"format\": \"other\"}");
  EXPECT_TYR_ERROR(tyr_char_vocab_load(p), "not a character vocabulary");
  write_text(p, "{\"format\": \"tyr-char-vocab\", \"vocab_size\": 3, \"chars\": [\"a\", \"b\"]}");
  EXPECT_TYR_ERROR(tyr_char_vocab_load(p), "\"chars\" must be an array of \"vocab_size\" strings");
  write_text(p, "{\"format\": \"tyr-char-vocab\", \"vocab_size\": 2, \"chars\": [\"b\", \"a\"]}");
  EXPECT_TYR_ERROR(tyr_char_vocab_load(p), "chars[1] (U+0061) is not after chars[0]");
  write_text(p, "{\"format\": \"tyr-char-vocab\", \"vocab_size\": 2, \"chars\": [\"a\", \"bc\"]}");
  EXPECT_TYR_ERROR(tyr_char_vocab_load(p), "chars[1] is not a one-character string");
  write_text(p, "{\"format\": \"tyr-char-vocab\", \"vocab_size\": 1, \"chars\": [7]}");
  EXPECT_TYR_ERROR(tyr_char_vocab_load(p), "chars[0] is not a one-character string");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_sorted_ids),     TYR_TEST(test_utf8),      TYR_TEST(test_invalid_utf8),
      TYR_TEST(test_too_many_chars), TYR_TEST(test_save_load), TYR_TEST(test_load_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
