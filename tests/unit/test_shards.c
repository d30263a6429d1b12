/* Token shards: writing and reading both layouts, sources (file, directory,
 * glob), and every validation error with its message. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/data.h"

static const char *tmp_path(const char *name) {
  static char buf[8][512];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 512, "%s/%s", tyr_test_tmpdir(), name);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (n) assert_int_equal(fwrite(data, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

/* A header with the given words and `body` bytes of tokens after it. */
static void write_header_file(const char *path, int32_t magic, int32_t version, int32_t count,
                              size_t body) {
  size_t n = TYR_SHARD_HEADER_BYTES + body;
  unsigned char *b = calloc(1, n);
  assert_non_null(b);
  int32_t w[3] = {magic, version, count};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 4; k++) b[i * 4 + k] = (unsigned char)((uint32_t)w[i] >> (8 * k));
  write_bytes(path, b, n);
  free(b);
}

static int count_dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static void test_roundtrip_llmc(void **state) {
  (void)state;
  const char *p = tmp_path("rt.bin");
  uint16_t tok[1000];
  for (int i = 0; i < 1000; i++) tok[i] = (uint16_t)(i * 131 + 7);
  tok[5] = 65535;
  assert_int_equal(tyr_shard_write(p, tok, 1000, TYR_SHARD_LLMC), 0);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_size, 1024 + 2000);
  /* the header words, little-endian */
  FILE *f = fopen(p, "rb");
  unsigned char h[12];
  assert_int_equal(fread(h, 1, 12, f), 12);
  fclose(f);
  assert_int_equal(h[0] | h[1] << 8 | h[2] << 16 | h[3] << 24, 20240520);
  assert_int_equal(h[4] | h[5] << 8, 1);
  assert_int_equal(h[8] | h[9] << 8, 1000);

  tyr_shards *sh = tyr_shards_open(p, TYR_SHARD_LLMC);
  assert_non_null(sh);
  assert_int_equal(tyr_shards_count(sh), 1);
  assert_int_equal(tyr_shards_ntokens(sh, 0), 1000);
  assert_int_equal(tyr_shards_total_tokens(sh), 1000);
  assert_string_equal(tyr_shards_path(sh, 0), p);
  assert_memory_equal(tyr_shards_tokens(sh, 0), tok, sizeof tok);
  assert_null(tyr_shards_tokens(sh, 1));
  assert_null(tyr_shards_path(sh, -1));
  tyr_shards_close(sh);

  /* overwrite in place: no temporary left behind */
  int before = count_dir_entries(tyr_test_tmpdir());
  assert_int_equal(tyr_shard_write(p, tok, 10, TYR_SHARD_LLMC), 0);
  assert_int_equal(count_dir_entries(tyr_test_tmpdir()), before);
  sh = tyr_shards_open(p, TYR_SHARD_LLMC);
  assert_int_equal(tyr_shards_ntokens(sh, 0), 10);
  tyr_shards_close(sh);
}

static void test_roundtrip_headerless(void **state) {
  (void)state;
  const char *p = tmp_path("raw.u16");
  uint16_t tok[7] = {1, 2, 3, 65535, 0, 42, 9};
  assert_int_equal(tyr_shard_write(p, tok, 7, TYR_SHARD_U16), 0);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_size, 14);
  tyr_shards *sh = tyr_shards_open(p, TYR_SHARD_U16);
  assert_non_null(sh);
  assert_int_equal(tyr_shards_ntokens(sh, 0), 7);
  assert_memory_equal(tyr_shards_tokens(sh, 0), tok, sizeof tok);
  tyr_shards_close(sh);
  /* the same file read as an llm.c shard is too short for a header */
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC),
                   "raw.u16: truncated header: the file has 14 bytes, the header needs 1024");
}

static void test_directory_sorted(void **state) {
  (void)state;
  const char *dir = tmp_path("dir");
  assert_int_equal(mkdir(dir, 0755), 0);
  char p[600];
  const char *names[3] = {"b.bin", "a.bin", "c.bin"};
  for (int i = 0; i < 3; i++) {
    uint16_t tok[4] = {(uint16_t)i, (uint16_t)i, (uint16_t)i, (uint16_t)i};
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    assert_int_equal(tyr_shard_write(p, tok, i + 2, TYR_SHARD_LLMC), 0);
  }
  /* not shards: other suffixes, hidden files, directories named *.bin */
  snprintf(p, sizeof p, "%s/notes.txt", dir);
  write_bytes(p, "hello", 5);
  snprintf(p, sizeof p, "%s/.hidden.bin", dir);
  write_bytes(p, "x", 1);
  snprintf(p, sizeof p, "%s/sub.bin", dir);
  assert_int_equal(mkdir(p, 0755), 0);

  tyr_shards *sh = tyr_shards_open(dir, TYR_SHARD_LLMC);
  assert_non_null(sh);
  assert_int_equal(tyr_shards_count(sh), 3);
  const char *want[3] = {"a.bin", "b.bin", "c.bin"};
  int64_t want_n[3] = {3, 2, 4};
  for (int i = 0; i < 3; i++) {
    const char *path = tyr_shards_path(sh, i);
    assert_string_equal(path + strlen(path) - 5, want[i]);
    assert_int_equal(tyr_shards_ntokens(sh, i), want_n[i]);
  }
  assert_int_equal(tyr_shards_tokens(sh, 0)[0], 1); /* a.bin was written second */
  assert_int_equal(tyr_shards_total_tokens(sh), 9);
  tyr_shards_close(sh);

  /* a trailing slash works too */
  snprintf(p, sizeof p, "%s/", dir);
  sh = tyr_shards_open(p, TYR_SHARD_LLMC);
  assert_non_null(sh);
  assert_int_equal(tyr_shards_count(sh), 3);
  tyr_shards_close(sh);
}

static void test_glob(void **state) {
  (void)state;
  const char *dir = tmp_path("globdir");
  assert_int_equal(mkdir(dir, 0755), 0);
  char p[600];
  uint16_t tok[3] = {5, 6, 7};
  const char *names[4] = {"d_train_000001.bin", "d_val_000000.bin", "d_train_000000.bin",
                          "d_train_000002.bin"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    assert_int_equal(tyr_shard_write(p, tok, 1 + i % 3, TYR_SHARD_LLMC), 0);
  }
  snprintf(p, sizeof p, "%s/d_train_*.bin", dir);
  tyr_shards *sh = tyr_shards_open(p, TYR_SHARD_LLMC);
  assert_non_null(sh);
  assert_int_equal(tyr_shards_count(sh), 3);
  for (int i = 0; i < 3; i++) {
    char want[64];
    snprintf(want, sizeof want, "d_train_%06d.bin", i);
    const char *path = tyr_shards_path(sh, i);
    assert_string_equal(path + strlen(path) - strlen(want), want);
  }
  assert_int_equal(tyr_shards_total_tokens(sh), 1 + 3 + 1);
  tyr_shards_close(sh);

  snprintf(p, sizeof p, "%s/d_val_00000[0-9].bin", dir);
  sh = tyr_shards_open(p, TYR_SHARD_LLMC);
  assert_non_null(sh);
  assert_int_equal(tyr_shards_count(sh), 1);
  tyr_shards_close(sh);

  snprintf(p, sizeof p, "%s/d_test_*.bin", dir);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "d_test_*.bin: no files match the pattern");
  /* a pattern matching only directories */
  snprintf(p, sizeof p, "%s/sub_x", dir);
  assert_int_equal(mkdir(p, 0755), 0);
  snprintf(p, sizeof p, "%s/sub_*", dir);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "only directories");
}

static void test_bad_magic(void **state) {
  (void)state;
  const char *p = tmp_path("magic.bin");
  write_header_file(p, 12345, 1, 2, 4);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC),
                   "magic.bin: bad magic 12345 (expected 20240520)");
}

static void test_bad_version(void **state) {
  (void)state;
  const char *p = tmp_path("version.bin");
  write_header_file(p, 20240520, 2, 2, 4);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC),
                   "version.bin: unsupported version 2 (expected 1)");
}

static void test_count_vs_size(void **state) {
  (void)state;
  const char *p = tmp_path("x.bin");
  write_header_file(p, 20240520, 1, 1000, 1500);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC),
                   "x.bin: token count 1000 needs 2000 bytes after the header, the file has 1500");
  /* too many bytes is as wrong as too few */
  write_header_file(p, 20240520, 1, 10, 22);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC),
                   "x.bin: token count 10 needs 20 bytes after the header, the file has 22");
  write_header_file(p, 20240520, 1, 0, 0);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "x.bin: token count is 0 (no tokens)");
  write_header_file(p, 20240520, 1, -4, 0);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "x.bin: negative token count -4");
  /* huge count: no overflow in the size check */
  write_header_file(p, 20240520, 1, INT32_MAX, 2);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "needs 4294967294 bytes after the header");
}

static void test_truncated_header(void **state) {
  (void)state;
  const char *p = tmp_path("short.bin");
  unsigned char b[100] = {0x88, 0xd8, 0x34, 0x01}; /* the magic, then nothing */
  write_bytes(p, b, sizeof b);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC),
                   "short.bin: truncated header: the file has 100 bytes, the header needs 1024");
  /* one byte short of a header */
  write_header_file(p, 20240520, 1, 0, 0);
  assert_int_equal(truncate(p, 1023), 0);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "the file has 1023 bytes");
}

static void test_empty_file(void **state) {
  (void)state;
  const char *p = tmp_path("empty.bin");
  write_bytes(p, NULL, 0);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_LLMC), "empty.bin: empty file");
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_U16), "empty.bin: empty file");
}

static void test_odd_headerless(void **state) {
  (void)state;
  const char *p = tmp_path("odd.u16");
  write_bytes(p, "abc", 3);
  EXPECT_TYR_ERROR(tyr_shards_open(p, TYR_SHARD_U16),
                   "odd.u16: headerless uint16 file has an odd size (3 bytes)");
}

static void test_missing_and_empty_sources(void **state) {
  (void)state;
  EXPECT_TYR_ERROR(tyr_shards_open(tmp_path("nope.bin"), TYR_SHARD_LLMC),
                   "nope.bin: cannot open: No such file or directory");
  const char *dir = tmp_path("emptydir");
  assert_int_equal(mkdir(dir, 0755), 0);
  EXPECT_TYR_ERROR(tyr_shards_open(dir, TYR_SHARD_LLMC),
                   "emptydir: no *.bin files in the directory");
  EXPECT_TYR_ERROR(tyr_shards_open("", TYR_SHARD_LLMC), "source is empty");
  EXPECT_TYR_ERROR(tyr_shards_open(NULL, TYR_SHARD_LLMC), "source is NULL");
  EXPECT_TYR_ERROR(tyr_shards_open(dir, (tyr_shard_format)7), "unknown shard format 7");
}

static void test_bad_shard_in_directory(void **state) {
  (void)state;
  const char *dir = tmp_path("mixed");
  assert_int_equal(mkdir(dir, 0755), 0);
  char p[600];
  uint16_t tok[2] = {1, 2};
  snprintf(p, sizeof p, "%s/a.bin", dir);
  assert_int_equal(tyr_shard_write(p, tok, 2, TYR_SHARD_LLMC), 0);
  snprintf(p, sizeof p, "%s/b.bin", dir);
  write_header_file(p, 20240520, 1, 5, 8);
  /* the message names the bad file; the good one is unmapped (ASan checks) */
  EXPECT_TYR_ERROR(tyr_shards_open(dir, TYR_SHARD_LLMC),
                   "mixed/b.bin: token count 5 needs 10 bytes after the header, the file has 8");
}

static void test_write_errors(void **state) {
  (void)state;
  uint16_t tok[2] = {1, 2};
  EXPECT_TYR_ERROR(tyr_shard_write(tmp_path("zero.bin"), tok, 0, TYR_SHARD_LLMC),
                   "zero.bin: token count 0: a shard needs at least one token");
  EXPECT_TYR_ERROR(
      tyr_shard_write(tmp_path("big.bin"), tok, (int64_t)INT32_MAX + 1, TYR_SHARD_LLMC),
      "over the format's limit");
  EXPECT_TYR_ERROR(tyr_shard_write(tmp_path("null.bin"), NULL, 2, TYR_SHARD_LLMC),
                   "tokens is NULL");
  EXPECT_TYR_ERROR(tyr_shard_write(tmp_path("no/such/dir/x.bin"), tok, 2, TYR_SHARD_LLMC),
                   "x.bin: cannot create a temporary file: No such file or directory");
  EXPECT_TYR_ERROR(tyr_shard_write("", tok, 2, TYR_SHARD_LLMC), "path is empty");
  assert_int_equal(access(tmp_path("zero.bin"), F_OK), -1);
}

static void test_parse_in_memory(void **state) {
  (void)state;
  unsigned char b[1024 + 6] = {0};
  b[0] = 0x88, b[1] = 0xd8, b[2] = 0x34, b[3] = 0x01; /* 20240520 */
  b[4] = 1;
  b[8] = 3;
  b[1024] = 0x34, b[1025] = 0x12; /* 0x1234 */
  const uint16_t *t = NULL;
  int64_t n = 0;
  assert_int_equal(tyr_shard_parse_at(TYR_SITE, "mem", b, sizeof b, TYR_SHARD_LLMC, &t, &n), 0);
  assert_int_equal(n, 3);
  assert_ptr_equal((const void *)t, (const void *)(b + 1024));
  EXPECT_TYR_ERROR(tyr_shard_parse_at(TYR_SITE, "mem", b, sizeof b - 1, TYR_SHARD_LLMC, &t, &n),
                   "mem: token count 3 needs 6 bytes after the header, the file has 5");
  EXPECT_TYR_ERROR(tyr_shard_parse_at(TYR_SITE, "mem", b, 0, TYR_SHARD_LLMC, &t, &n),
                   "mem: empty file");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_roundtrip_llmc),
      TYR_TEST(test_roundtrip_headerless),
      TYR_TEST(test_directory_sorted),
      TYR_TEST(test_glob),
      TYR_TEST(test_bad_magic),
      TYR_TEST(test_bad_version),
      TYR_TEST(test_count_vs_size),
      TYR_TEST(test_truncated_header),
      TYR_TEST(test_empty_file),
      TYR_TEST(test_odd_headerless),
      TYR_TEST(test_missing_and_empty_sources),
      TYR_TEST(test_bad_shard_in_directory),
      TYR_TEST(test_write_errors),
      TYR_TEST(test_parse_in_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
