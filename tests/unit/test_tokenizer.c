/* The BPE tokenizer: exact agreement with tiktoken (GPT-2 and cl100k),
 * round trips, training (against a plain reference trainer), files and
 * their errors, special tokens. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "data/bpe_internal.h"
#include "tyr/tokenizer.h"

static json_t *g_expected;
static tyr_tokenizer *g_gpt2, *g_cl100k;

/* ---- helpers ---------------------------------------------------------------- */
static char *read_all(const char *path, size_t *n) {
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)sz + 1);
  size_t got = fread(buf, 1, (size_t)sz, f);
  fclose(f);
  buf[got] = 0;
  *n = got;
  return buf;
}

static void write_all(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static const char *tmp_path(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", tyr_test_tmpdir(), name);
  return buf;
}

/* The first n bytes of data/tinyshakespeare.txt (malloc'd). */
static char *shakespeare(size_t want, size_t *n) {
  char path[1024];
  const char *root = getenv("TYR_ROOT");
  if (root)
    snprintf(path, sizeof path, "%s/data/tinyshakespeare.txt", root);
  else
    snprintf(path, sizeof path, "%s", tyr_test_data("../../data/tinyshakespeare.txt"));
  size_t len = 0;
  char *text = read_all(path, &len);
  if (!text) fail_msg("cannot read %s", path);
  if (want < len) len = want;
  text[len] = 0;
  *n = len;
  return text;
}

static tyr_tokenizer *load_tiktoken_case(const char *which) {
  json_t *enc = json_object_get(g_expected, which);
  assert_non_null(enc);
  json_t *specials = json_object_get(enc, "specials");
  size_t ns = json_object_size(specials);
  const char **names = calloc(ns, sizeof *names);
  uint32_t *ids = calloc(ns, sizeof *ids);
  const char *key;
  json_t *val;
  size_t i = 0;
  json_object_foreach(specials, key, val) {
    names[i] = key;
    ids[i] = (uint32_t)json_integer_value(val);
    i++;
  }
  const char *pattern = json_string_value(json_object_get(enc, "pattern"));
  const char *file = json_string_value(json_object_get(enc, "rank_file"));
  char path[1024];
  snprintf(path, sizeof path, "tokenizer/%s", file);
  tyr_tokenizer *t = tyr_tokenizer_load_tiktoken(tyr_test_data(path), pattern, names, ids, (int)ns);
  free(names);
  free(ids);
  return t;
}

static int group_setup(void **state) {
  (void)state;
  json_error_t err;
  g_expected = json_load_file(tyr_test_data("tokenizer/expected.json"), 0, &err);
  if (!g_expected) {
    fprintf(stderr, "expected.json: %s (line %d)\n", err.text, err.line);
    return -1;
  }
  g_gpt2 = load_tiktoken_case("gpt2");
  g_cl100k = load_tiktoken_case("cl100k_base");
  return g_gpt2 && g_cl100k ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  tyr_tokenizer_free(g_gpt2);
  tyr_tokenizer_free(g_cl100k);
  json_decref(g_expected);
  return 0;
}

static void assert_ids_equal(const uint32_t *got, size_t n, json_t *want, const char *what) {
  size_t m = json_array_size(want);
  for (size_t i = 0; i < n && i < m; i++) {
    uint32_t w = (uint32_t)json_integer_value(json_array_get(want, i));
    if (got[i] != w) fail_msg("%s: id %zu is %u, tiktoken has %u", what, i, got[i], w);
  }
  if (n != m) fail_msg("%s: %zu ids, tiktoken has %zu", what, n, m);
}

static void round_trip(const tyr_tokenizer *t, const char *text, size_t len, bool special) {
  uint32_t *ids = NULL;
  size_t cap = 0;
  char *out = NULL;
  size_t ocap = 0;
  size_t n = tyr_tokenizer_encode(t, text, len, special, &ids, &cap);
  assert_true(n != TYR_TOKENIZER_FAIL);
  size_t m = tyr_tokenizer_decode(t, ids, n, &out, &ocap);
  assert_int_equal(m, len);
  assert_memory_equal(out, text, len);
  assert_int_equal(out[m], 0);
  free(ids);
  free(out);
}

/* ---- tiktoken ----------------------------------------------------------------- */
static void check_against_tiktoken(const tyr_tokenizer *t, const char *which, const char *pattern) {
  json_t *enc = json_object_get(g_expected, which);
  assert_string_equal(json_string_value(json_object_get(enc, "pattern")), pattern);
  assert_int_equal(tyr_tokenizer_n_ranks(t), json_integer_value(json_object_get(enc, "n_ranks")));
  json_t *cases = json_object_get(enc, "cases");
  assert_true(json_array_size(cases) > 10);
  size_t i;
  json_t *c;
  uint32_t *ids = NULL;
  size_t cap = 0;
  json_array_foreach(cases, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *text = json_object_get(c, "text");
    const char *s = json_string_value(text);
    size_t len = json_string_length(text);
    char what[128];
    size_t n = tyr_tokenizer_encode(t, s, len, false, &ids, &cap);
    snprintf(what, sizeof what, "%s %s ordinary", which, name);
    assert_ids_equal(ids, n, json_object_get(c, "ordinary"), what);
    n = tyr_tokenizer_encode(t, s, len, true, &ids, &cap);
    snprintf(what, sizeof what, "%s %s special", which, name);
    assert_ids_equal(ids, n, json_object_get(c, "special"), what);
    round_trip(t, s, len, false);
    round_trip(t, s, len, true);
  }
  free(ids);
}

static void test_tiktoken_gpt2(void **state) {
  (void)state;
  check_against_tiktoken(g_gpt2, "gpt2", TYR_TOKENIZER_PATTERN_GPT2);
  assert_int_equal(tyr_tokenizer_vocab_size(g_gpt2), 50266);
  assert_int_equal(tyr_tokenizer_special_id(g_gpt2, "<|endoftext|>"), 50256);
}

static void test_tiktoken_cl100k(void **state) {
  (void)state;
  check_against_tiktoken(g_cl100k, "cl100k_base", TYR_TOKENIZER_PATTERN_GPT4);
  assert_int_equal(tyr_tokenizer_special_id(g_cl100k, "<|endofprompt|>"), 100276);
  assert_int_equal(tyr_tokenizer_special_id(g_cl100k, "<|bos|>"), 100277);
  assert_int_equal(tyr_tokenizer_special_id(g_cl100k, "<|nope|>"), -1);
  /* ids in the gap between specials are no tokens */
  assert_null(tyr_tokenizer_token_bytes(g_cl100k, 100270, NULL));
  uint32_t gap = 100270;
  char *out = NULL;
  size_t ocap = 0;
  EXPECT_TYR_ERROR(tyr_tokenizer_decode(g_cl100k, &gap, 1, &out, &ocap), "id 100270");
  free(out);
}

/* Saved in our format and loaded again, cl100k (whose special ids have a
 * gap) still encodes every case as tiktoken does. */
static void test_tiktoken_save_load(void **state) {
  (void)state;
  const char *path = tmp_path("cl100k.tyrbpe.zst");
  assert_int_equal(tyr_tokenizer_save(g_cl100k, path), 0);
  tyr_tokenizer *t = tyr_tokenizer_load(path);
  assert_non_null(t);
  check_against_tiktoken(t, "cl100k_base", TYR_TOKENIZER_PATTERN_GPT4);
  size_t a, b;
  char *sa = bpe_serialize(g_cl100k, &a), *sb = bpe_serialize(t, &b);
  assert_int_equal(a, b);
  assert_memory_equal(sa, sb, a);
  free(sa);
  free(sb);
  tyr_tokenizer_free(t);
}

static void test_round_trip_bytes(void **state) {
  (void)state;
  /* arbitrary bytes, invalid UTF-8 included */
  uint64_t x = 88172645463325252ull;
  char buf[4096];
  for (int round = 0; round < 20; round++) {
    size_t len = (size_t)(round * 200 + 1);
    for (size_t i = 0; i < len; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      buf[i] = round % 2 ? (char)(x & 0xff) : " a\xc3\xa9\xff\n<|"[x % 9];
    }
    round_trip(g_gpt2, buf, len, false);
    round_trip(g_cl100k, buf, len, true);
  }
  /* a lone invalid byte is a chunk of its own and stays a byte */
  uint32_t *ids = NULL;
  size_t cap = 0;
  size_t n = tyr_tokenizer_encode(g_cl100k,
                                  "ab\xff"
                                  "cd",
                                  5, false, &ids, &cap);
  assert_int_equal(n, 3);
  size_t len;
  const uint8_t *p = tyr_tokenizer_token_bytes(g_cl100k, ids[1], &len);
  assert_int_equal(len, 1);
  assert_int_equal(p[0], 0xff);
  free(ids);
  /* very long chunks (the heap merge path) */
  size_t big = 200000;
  char *s = malloc(big);
  for (size_t i = 0; i < big; i++) s[i] = (char)('a' + (i * 7 + i / 3) % 26);
  round_trip(g_cl100k, s, big, false);
  memset(s, ' ', big);
  round_trip(g_gpt2, s, big, false);
  free(s);
}

static void test_encode_append(void **state) {
  (void)state;
  uint32_t *ids = NULL;
  size_t cap = 0, n = 0;
  assert_int_equal(tyr_tokenizer_encode_append(g_gpt2, "<|endoftext|>", 13, true, &ids, &cap, &n),
                   0);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], 50256);
  assert_int_equal(tyr_tokenizer_encode_append(g_gpt2, "Hello", 5, true, &ids, &cap, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(ids[1], 15496);
  n = 0;
  assert_int_equal(tyr_tokenizer_encode_append(g_gpt2, "", 0, true, &ids, &cap, &n), 0);
  assert_int_equal(n, 0);
  EXPECT_TYR_ERROR(tyr_tokenizer_encode(g_gpt2, "x", 1, false, NULL, &cap), "NULL");
  free(ids);
}

static void test_encode_threads(void **state) {
  (void)state;
  size_t len;
  char *text = shakespeare(200000, &len);
  uint32_t *ref = NULL;
  size_t rcap = 0;
  size_t rn = tyr_tokenizer_encode(g_cl100k, text, len, false, &ref, &rcap);
  int bad = 0;
#pragma omp parallel for num_threads(12) reduction(+ : bad)
  for (int k = 0; k < 24; k++) {
    uint32_t *ids = NULL;
    size_t cap = 0;
    size_t n = tyr_tokenizer_encode(g_cl100k, text, len, false, &ids, &cap);
    if (n != rn || memcmp(ids, ref, n * sizeof *ids) != 0) bad++;
    free(ids);
  }
  assert_int_equal(bad, 0);
  free(ref);
  free(text);
}

/* ---- training ----------------------------------------------------------------- */
/* A plain trainer: recounts every pair each step. */
typedef struct ref_tok {
  uint8_t b[256];
  size_t n;
} ref_tok;

static int ref_train(const char *text, size_t len, int n_ranks, ref_tok *toks) {
  bool jit;
  pcre2_code *re = bpe_regex_compile(TYR_SITE, "ref", TYR_TOKENIZER_PATTERN_GPT4, &jit);
  bpe_matcher m;
  bpe_matcher_init(&m, re);
  bpe_splitter sp;
  bpe_split_begin(&sp, re, jit, &m, (const uint8_t *)text, len);
  /* distinct chunks with counts (quadratic, small inputs only) */
  size_t cap = 1024, nw = 0, b, e;
  uint32_t **words = malloc(cap * sizeof *words);
  size_t *wlen = malloc(cap * sizeof *wlen);
  long *wcnt = malloc(cap * sizeof *wcnt);
  const char **wsrc = malloc(cap * sizeof *wsrc);
  while (bpe_split_next(&sp, &b, &e)) {
    size_t k;
    for (k = 0; k < nw; k++)
      if (wlen[k] == e - b && memcmp(wsrc[k], text + b, e - b) == 0) break;
    if (k < nw) {
      wcnt[k]++;
      continue;
    }
    if (nw == cap) {
      cap *= 2;
      words = realloc(words, cap * sizeof *words);
      wlen = realloc(wlen, cap * sizeof *wlen);
      wcnt = realloc(wcnt, cap * sizeof *wcnt);
      wsrc = realloc(wsrc, cap * sizeof *wsrc);
    }
    words[nw] = malloc((e - b) * sizeof **words);
    for (size_t i = b; i < e; i++) words[nw][i - b] = (uint8_t)text[i];
    wlen[nw] = e - b;
    wcnt[nw] = 1;
    wsrc[nw] = text + b;
    nw++;
  }
  int ntok = 256;
  for (int c = 0; c < 256; c++) {
    toks[c].b[0] = (uint8_t)c;
    toks[c].n = 1;
  }
  long *cnt = malloc(sizeof(long) * (size_t)n_ranks * (size_t)n_ranks);
  while (ntok < n_ranks) {
    memset(cnt, 0, sizeof(long) * (size_t)ntok * (size_t)ntok);
    for (size_t k = 0; k < nw; k++)
      for (size_t i = 0; i + 1 < wlen[k]; i++)
        cnt[(size_t)words[k][i] * (size_t)ntok + words[k][i + 1]] += wcnt[k];
    long best = 0;
    uint32_t ba = 0, bb = 0;
    for (uint32_t a = 0; a < (uint32_t)ntok; a++)
      for (uint32_t c = 0; c < (uint32_t)ntok; c++)
        if (cnt[(size_t)a * (size_t)ntok + c] > best) {
          best = cnt[(size_t)a * (size_t)ntok + c];
          ba = a;
          bb = c;
        }
    if (best == 0) break;
    ref_tok nt;
    nt.n = toks[ba].n + toks[bb].n;
    assert_true(nt.n <= sizeof nt.b);
    memcpy(nt.b, toks[ba].b, toks[ba].n);
    memcpy(nt.b + toks[ba].n, toks[bb].b, toks[bb].n);
    uint32_t nid = (uint32_t)ntok;
    for (int q = 0; q < ntok; q++)
      if (toks[q].n == nt.n && memcmp(toks[q].b, nt.b, nt.n) == 0) nid = (uint32_t)q;
    if (nid == (uint32_t)ntok) toks[ntok++] = nt;
    /* counts are indexed by ntok: recount from scratch next step anyway */
    for (size_t k = 0; k < nw; k++) {
      size_t j = 0;
      for (size_t i = 0; i < wlen[k];) {
        if (i + 1 < wlen[k] && words[k][i] == ba && words[k][i + 1] == bb) {
          words[k][j++] = nid;
          i += 2;
        } else {
          words[k][j++] = words[k][i++];
        }
      }
      wlen[k] = j;
    }
  }
  for (size_t k = 0; k < nw; k++) free(words[k]);
  free(words);
  free(wlen);
  free(wcnt);
  free(wsrc);
  free(cnt);
  bpe_matcher_free(&m);
  pcre2_code_free(re);
  return ntok;
}

static void test_train_matches_reference(void **state) {
  (void)state;
  size_t len;
  char *text = shakespeare(30000, &len);
  int n_ranks = 420;
  ref_tok *toks = calloc((size_t)n_ranks, sizeof *toks);
  int got = ref_train(text, len, n_ranks, toks);
  assert_int_equal(got, n_ranks);
  const char *texts[1] = {text};
  tyr_tokenizer *t =
      tyr_tokenizer_train(texts, &len, 1, n_ranks + TYR_TOKENIZER_N_CHAT_SPECIALS, NULL);
  assert_non_null(t);
  assert_int_equal(tyr_tokenizer_n_ranks(t), n_ranks);
  for (int id = 0; id < n_ranks; id++) {
    size_t n;
    const uint8_t *p = tyr_tokenizer_token_bytes(t, (uint32_t)id, &n);
    assert_non_null(p);
    if (n != toks[id].n || memcmp(p, toks[id].b, n) != 0)
      fail_msg("token %d: '%.*s' but the reference has '%.*s'", id, (int)n, p, (int)toks[id].n,
               toks[id].b);
  }
  tyr_tokenizer_free(t);
  free(toks);
  free(text);
}

static void test_train_small(void **state) {
  (void)state;
  size_t len;
  char *text = shakespeare(100000, &len);
  const char *texts[1] = {text};
  tyr_tokenizer *t = tyr_tokenizer_train(texts, &len, 1, 512, NULL);
  assert_non_null(t);
  assert_int_equal(tyr_tokenizer_vocab_size(t), 512);
  assert_int_equal(tyr_tokenizer_n_ranks(t), 503);
  assert_int_equal(tyr_tokenizer_n_specials(t), 9);
  assert_int_equal(tyr_tokenizer_special_id(t, "<|bos|>"), 503);
  assert_int_equal(tyr_tokenizer_special_id(t, "<|output_end|>"), 511);
  assert_string_equal(tyr_tokenizer_pattern(t), TYR_TOKENIZER_PATTERN_GPT4);
  /* merges shrink the text */
  uint32_t *ids = NULL;
  size_t cap = 0;
  size_t n = tyr_tokenizer_encode(t, text, len, false, &ids, &cap);
  assert_true(n < len / 2);
  for (size_t i = 0; i < n; i++) assert_true(ids[i] < 503);
  round_trip(t, text, len, false);
  /* the first merges of English text */
  assert_true(tyr_tokenizer_token_id(t, " the", 4) >= 256);
  assert_int_equal(tyr_tokenizer_token_id(t, "x", 1), 'x');
  /* deterministic, and the same through the streaming trainer */
  tyr_tokenizer *t2 = tyr_tokenizer_train(texts, &len, 1, 512, NULL);
  size_t a, b;
  char *sa = bpe_serialize(t, &a), *sb = bpe_serialize(t2, &b);
  assert_int_equal(a, b);
  assert_memory_equal(sa, sb, a);
  free(sb);
  tyr_tokenizer_free(t2);
  const char *path = tmp_path("corpus.txt");
  write_all(path, text, len);
  size_t old_block = tyr__bpe_file_block;
  tyr__bpe_file_block = 4096; /* many blocks */
  tyr_bpe_trainer *tr = tyr_bpe_trainer_init(NULL);
  assert_int_equal(tyr_bpe_trainer_add_file(tr, path), 0);
  tyr__bpe_file_block = old_block;
  assert_int_equal(tyr_bpe_trainer_n_bytes(tr), len);
  t2 = tyr_bpe_trainer_finish(tr, 512, tyr_tokenizer_chat_specials, TYR_TOKENIZER_N_CHAT_SPECIALS);
  sb = bpe_serialize(t2, &b);
  assert_int_equal(a, b);
  assert_memory_equal(sa, sb, a);
  free(sb);
  tyr_tokenizer_free(t2);
  /* a zstd-compressed corpus counts the same */
  {
    size_t bound = ZSTD_compressBound(len);
    char *z = malloc(bound);
    size_t zn = ZSTD_compress(z, bound, text, len, 3);
    assert_false(ZSTD_isError(zn));
    const char *zpath = tmp_path("corpus.txt.zst");
    write_all(zpath, z, zn);
    tyr__bpe_file_block = 5000;
    tyr_bpe_trainer *tz = tyr_bpe_trainer_init(NULL);
    assert_int_equal(tyr_bpe_trainer_add_file(tz, zpath), 0);
    assert_int_equal(tyr_bpe_trainer_n_bytes(tz), len);
    t2 =
        tyr_bpe_trainer_finish(tz, 512, tyr_tokenizer_chat_specials, TYR_TOKENIZER_N_CHAT_SPECIALS);
    sb = bpe_serialize(t2, &b);
    assert_int_equal(a, b);
    assert_memory_equal(sa, sb, a);
    free(sb);
    tyr_tokenizer_free(t2);
    write_all(zpath, z, zn / 2);
    EXPECT_TYR_ERROR(tyr_bpe_trainer_add_file(tz, zpath), "truncated zstd data");
    z[zn / 2] ^= 0x5a;
    z[zn / 2 + 1] ^= 0x5a;
    write_all(zpath, z, zn);
    tyr_bpe_trainer *tz2 = tyr_bpe_trainer_init(NULL);
    tyr_test_error_reset();
    tyr_bpe_trainer_add_file(tz2, zpath); /* corrupt data: an error or other text */
    tyr_test_error_reset();
    tyr_bpe_trainer_free(tz2);
    tyr__bpe_file_block = old_block;
    tyr_bpe_trainer_free(tz);
    free(z);
  }
  /* finishing again with another size gives a prefix of the ranks */
  t2 = tyr_bpe_trainer_finish(tr, 300, NULL, 0);
  assert_int_equal(tyr_tokenizer_vocab_size(t2), 300);
  for (uint32_t id = 0; id < 300; id++) {
    size_t n1, n2;
    const uint8_t *p1 = tyr_tokenizer_token_bytes(t, id, &n1);
    const uint8_t *p2 = tyr_tokenizer_token_bytes(t2, id, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1);
  }
  tyr_tokenizer_free(t2);
  tyr_bpe_trainer_free(tr);
  free(sa);
  free(ids);
  tyr_tokenizer_free(t);
  free(text);
}

static void test_train_edges(void **state) {
  (void)state;
  /* no text: only the bytes and the specials */
  tyr_tokenizer *t = tyr_tokenizer_train(NULL, NULL, 0, 1000, NULL);
  assert_non_null(t);
  assert_int_equal(tyr_tokenizer_vocab_size(t), 256 + 9);
  tyr_tokenizer_free(t);
  /* the text runs out of pairs */
  const char *texts[2] = {"aaaa", "ab ab"};
  t = tyr_tokenizer_train(texts, NULL, 2, 1000, TYR_TOKENIZER_PATTERN_GPT2);
  assert_non_null(t);
  assert_true(tyr_tokenizer_token_id(t, "aaaa", 4) >= 256);
  assert_true(tyr_tokenizer_token_id(t, " ab", 3) >= 256);
  assert_true(tyr_tokenizer_vocab_size(t) < 280);
  tyr_tokenizer_free(t);
  tyr_bpe_trainer *tr = tyr_bpe_trainer_init(NULL);
  EXPECT_TYR_ERROR(tyr_bpe_trainer_finish(tr, 200, NULL, 0), "vocab size 200");
  EXPECT_TYR_ERROR(tyr_bpe_trainer_finish(tr, 260, tyr_tokenizer_chat_specials, 9),
                   "vocab size 260");
  EXPECT_TYR_ERROR(tyr_bpe_trainer_add_file(tr, "/nonexistent/corpus.txt"), "cannot open");
  const char *bad[1] = {"bad name"};
  EXPECT_TYR_ERROR(tyr_bpe_trainer_finish(tr, 300, bad, 1), "whitespace");
  tyr_bpe_trainer_free(tr);
  EXPECT_TYR_ERROR(tyr_bpe_trainer_init("(unclosed"), "split pattern");
}

/* ---- files --------------------------------------------------------------------- */
static tyr_tokenizer *small_trained(void) {
  size_t len;
  char *text = shakespeare(20000, &len);
  const char *texts[1] = {text};
  tyr_tokenizer *t = tyr_tokenizer_train(texts, &len, 1, 300, NULL);
  free(text);
  return t;
}

static void test_save_load(void **state) {
  (void)state;
  tyr_tokenizer *t = small_trained();
  assert_non_null(t);
  const char *paths[2] = {"tok.txt", "tok.txt.zst"};
  size_t a;
  char *sa = bpe_serialize(t, &a);
  assert_memory_equal(sa, "tyr-bpe 1\npattern ", 18);
  for (int k = 0; k < 2; k++) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path(paths[k]));
    assert_int_equal(tyr_tokenizer_save(t, path), 0);
    tyr_tokenizer *u = tyr_tokenizer_load(path);
    assert_non_null(u);
    size_t b;
    char *sb = bpe_serialize(u, &b);
    assert_int_equal(a, b);
    assert_memory_equal(sa, sb, a);
    free(sb);
    const char *msg = "<|bos|>Hello there, friend.<|user_end|>";
    uint32_t *i1 = NULL, *i2 = NULL;
    size_t c1 = 0, c2 = 0;
    size_t n1 = tyr_tokenizer_encode(t, msg, strlen(msg), true, &i1, &c1);
    size_t n2 = tyr_tokenizer_encode(u, msg, strlen(msg), true, &i2, &c2);
    assert_int_equal(n1, n2);
    assert_memory_equal(i1, i2, n1 * sizeof *i1);
    free(i1);
    free(i2);
    tyr_tokenizer_free(u);
  }
  /* the compressed file is compressed */
  size_t zn = 0;
  char *z = read_all(tmp_path("tok.txt.zst"), &zn);
  assert_true(zn < a / 2);
  free(z);
  /* no temporary file is left behind */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", tyr_test_tmpdir());
  assert_int_not_equal(system(cmd), 0);
  EXPECT_TYR_ERROR(tyr_tokenizer_save(t, "/nonexistent/dir/tok.txt"), "/nonexistent/dir/tok.txt");
  free(sa);
  tyr_tokenizer_free(t);
}

static void test_specials(void **state) {
  (void)state;
  tyr_tokenizer *t = small_trained();
  uint32_t bos = (uint32_t)tyr_tokenizer_special_id(t, "<|bos|>");
  uint32_t us = (uint32_t)tyr_tokenizer_special_id(t, "<|user_start|>");
  assert_int_equal(bos, 291);
  assert_true(tyr_tokenizer_is_special(t, bos));
  assert_false(tyr_tokenizer_is_special(t, 65));
  uint32_t id;
  assert_string_equal(tyr_tokenizer_special(t, 1, &id), "<|user_start|>");
  assert_int_equal(id, us);
  const char *msg = "<|bos|><|user_start|>hi<|user_end|><|bos|";
  uint32_t *ids = NULL;
  size_t cap = 0;
  size_t n = tyr_tokenizer_encode(t, msg, strlen(msg), true, &ids, &cap);
  assert_true(n >= 4);
  assert_int_equal(ids[0], bos);
  assert_int_equal(ids[1], us);
  int specials = 0;
  for (size_t i = 0; i < n; i++) specials += tyr_tokenizer_is_special(t, ids[i]);
  assert_int_equal(specials, 3); /* the unclosed "<|bos|" is text */
  round_trip(t, msg, strlen(msg), true);
  n = tyr_tokenizer_encode(t, msg, strlen(msg), false, &ids, &cap);
  for (size_t i = 0; i < n; i++) assert_false(tyr_tokenizer_is_special(t, ids[i]));
  round_trip(t, msg, strlen(msg), false);
  char *out = NULL;
  size_t ocap = 0;
  uint32_t one[2] = {bos, 9999};
  assert_int_equal(tyr_tokenizer_decode(t, one, 1, &out, &ocap), 7);
  assert_string_equal(out, "<|bos|>");
  EXPECT_TYR_ERROR(tyr_tokenizer_decode(t, one, 2, &out, &ocap), "id 9999 at position 1");
  free(out);
  free(ids);
  tyr_tokenizer_free(t);
}

/* A valid file with one line replaced by another text. */
static char *edit_file(const char *src, const char *find, const char *repl) {
  const char *at = strstr(src, find);
  assert_non_null(at);
  size_t a = (size_t)(at - src), fl = strlen(find), rl = strlen(repl), n = strlen(src);
  char *out = malloc(n - fl + rl + 1);
  memcpy(out, src, a);
  memcpy(out + a, repl, rl);
  memcpy(out + a + rl, at + fl, n - a - fl + 1);
  return out;
}

static void expect_load_error(const char *text, size_t n, const char *substr) {
  const char *path = tmp_path("bad.tok");
  write_all(path, text, n);
  EXPECT_TYR_ERROR(tyr_tokenizer_load(path), substr);
  EXPECT_TYR_ERROR(tyr_tokenizer_load_mem(text, n, "mem"), substr);
}

static void test_malformed_files(void **state) {
  (void)state;
  tyr_tokenizer *t = small_trained();
  size_t n;
  char *good = bpe_serialize(t, &n);
  tyr_tokenizer_free(t);
  char *tmp = malloc(n + 1);
  memcpy(tmp, good, n);
  tmp[n] = 0;
  free(good);
  good = tmp;
  tyr_tokenizer *ok = tyr_tokenizer_load_mem(good, n, "good");
  assert_non_null(ok);
  tyr_tokenizer_free(ok);

  EXPECT_TYR_ERROR(tyr_tokenizer_load("/nonexistent/tok.txt"),
                   "/nonexistent/tok.txt: cannot open: No such file");
  expect_load_error("", 0, "not a tyr tokenizer file");
  expect_load_error("IQ== 0\n", 7, "not a tyr tokenizer file");
  expect_load_error("tyr-bpe 2\n", 10, "unsupported version '2'");
  /* truncated anywhere */
  expect_load_error(good, n / 2, "truncated: the file ends inside line");
  expect_load_error(good, n - 4, "truncated");
  expect_load_error(good, 30, "truncated");
  char *e;
  e = edit_file(good, "\nIQ== 33\n", "\nI!== 33\n");
  expect_load_error(e, strlen(e), "line 46: bad base64 'I!=='");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIR== 33\n"); /* non-zero padding bits */
  expect_load_error(e, strlen(e), "bad base64");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIQ 33\n");
  expect_load_error(e, strlen(e), "bad base64");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIQ== 34\n");
  expect_load_error(e, strlen(e), "line 47: rank 34 appears twice");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIg== 33\n");
  expect_load_error(e, strlen(e), "already has rank");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIQ== x3\n");
  expect_load_error(e, strlen(e), "bad rank 'x3'");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIQ==33\n");
  expect_load_error(e, strlen(e), "expected 'base64token rank'");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nIQ== 99999999\n");
  expect_load_error(e, strlen(e), "rank 99999999 is too large");
  free(e);
  e = edit_file(good, "\nIQ== 33\n", "\nISE= 33\n"); /* byte '!' missing now */
  expect_load_error(e, strlen(e), "no token for the single byte 0x21");
  free(e);
  e = edit_file(good, "special 291 <|bos|>", "special 5 <|bos|>");
  expect_load_error(e, strlen(e), "special token '<|bos|>' has id 5, which is a rank");
  free(e);
  e = edit_file(good, "special 291 <|bos|>", "special 292 <|bos|>");
  expect_load_error(e, strlen(e), "which another has");
  free(e);
  e = edit_file(good, "special 292 <|user_start|>", "special 292 <|bos|>");
  expect_load_error(e, strlen(e), "'<|bos|>' appears twice");
  free(e);
  e = edit_file(good, "special 291 <|bos|>", "special 291 <|b os|>");
  expect_load_error(e, strlen(e), "line 3: the special token name contains whitespace");
  free(e);
  e = edit_file(good, "special 291 <|bos|>", "special x <|bos|>");
  expect_load_error(e, strlen(e), "line 3: expected 'special ID NAME'");
  free(e);
  e = edit_file(good, "special 291 <|bos|>", "special 291 <|b\tos|>");
  expect_load_error(e, strlen(e), "whitespace or a control character");
  free(e);
  e = edit_file(good, "special 291 <|bos|>", "speciall 291 <|bos|>");
  expect_load_error(e, strlen(e), "line 3: unknown header line");
  free(e);
  e = edit_file(good, "\npattern ", "\npattern (?<");
  expect_load_error(e, strlen(e), ": line 2: the split pattern does not compile");
  free(e);
  e = edit_file(good, "ranks 291\n", "ranks 290\n");
  expect_load_error(e, strlen(e), "no 'end' line after the 290 ranks");
  free(e);
  e = edit_file(good, "ranks 291\n", "ranks 292\n");
  expect_load_error(e, strlen(e), "'end' after 291 of 292 rank lines");
  free(e);
  e = edit_file(good, "end\n", "end\nmore\n");
  expect_load_error(e, strlen(e), "5 bytes after the 'end' line");
  free(e);
  /* CRLF line ends are accepted */
  size_t crn = 0;
  char *cr = malloc(2 * n + 1);
  for (size_t i = 0; i < n; i++) {
    if (good[i] == '\n') cr[crn++] = '\r';
    cr[crn++] = good[i];
  }
  ok = tyr_tokenizer_load_mem(cr, crn, "crlf");
  assert_non_null(ok);
  tyr_tokenizer_free(ok);
  free(cr);
  /* broken zstd */
  const char *path = tmp_path("good.zst");
  t = tyr_tokenizer_load_mem(good, n, "good");
  assert_int_equal(tyr_tokenizer_save(t, path), 0);
  tyr_tokenizer_free(t);
  size_t zn = 0;
  char *z = read_all(path, &zn);
  expect_load_error(z, zn / 2, "truncated zstd data");
  z[zn / 2] ^= 0x55;
  z[zn / 2 + 1] ^= 0x55;
  expect_load_error(z, zn, "zstd");
  free(z);
  /* tiktoken rank files */
  const char *tk = "IQ== 0\nIg== 1\n";
  EXPECT_TYR_ERROR(
      tyr_tokenizer_load_tiktoken_mem_at(TYR_SITE, tk, strlen(tk), "tk", NULL, NULL, NULL, 0),
      "tk: no token for the single byte 0x00");
  EXPECT_TYR_ERROR(tyr_tokenizer_load_tiktoken("/nonexistent.tiktoken", NULL, NULL, NULL, 0),
                   "cannot open");
  free(good);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_tiktoken_gpt2),
      TYR_TEST(test_tiktoken_cl100k),
      TYR_TEST(test_tiktoken_save_load),
      TYR_TEST(test_round_trip_bytes),
      TYR_TEST(test_encode_append),
      TYR_TEST(test_encode_threads),
      TYR_TEST(test_train_matches_reference),
      TYR_TEST(test_train_small),
      TYR_TEST(test_train_edges),
      TYR_TEST(test_save_load),
      TYR_TEST(test_specials),
      TYR_TEST(test_malformed_files),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
