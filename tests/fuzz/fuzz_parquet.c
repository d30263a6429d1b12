/* libFuzzer target for the Parquet reader: the input is a whole file,
 * written to a memfd and opened through /proc/self/fd; every column of
 * every row group is read, then the file is closed.  Errors are recorded,
 * not fatal; memory errors and leaks are what the fuzzer looks for. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tyr/parquet.h"

/* The reader's sources are compiled into this target so that they carry
 * the fuzzer's coverage and sanitizer instrumentation (the library itself
 * is built without them); the linker then takes nothing of the reader
 * from libtyr. */
#include "data/parquet.c"
#include "data/parquet_codec.c"
#include "data/parquet_meta.c"
#include "data/parquet_rle.c"
#include "data/thrift_compact.c"

static void fuzz_quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

static int fuzz_count(const char *s, size_t len, void *ctx) {
  (void)s;
  *(size_t *)ctx += len;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    tyr_error_set_handler(fuzz_quiet, NULL);
    fd = memfd_create("fuzz-parquet", MFD_CLOEXEC);
    if (fd < 0) return 0;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) return 0;
  /* mostly pread (into exact-size buffers, where ASan sees overreads),
   * sometimes a memory map */
  tyr__parquet_mmap_min = size % 4 == 0 ? 0 : (int64_t)1 << 20;
  tyr_parquet_file *f = tyr_parquet_open(path);
  if (!f) return 0;
  /* a small input may describe billions of rows (that is valid Parquet):
   * keep every buffer small */
  tyr_parquet_set_max_alloc(f, (size_t)64 << 20);
  for (int g = 0; g < tyr_parquet_num_row_groups(f); g++) {
    for (int c = 0; c < tyr_parquet_num_columns(f); c++) {
      tyr_parquet_column_data d;
      if (tyr_parquet_read_column(f, g, c, &d) == 0) {
        /* touch what was returned */
        volatile uint64_t sum = 0;
        for (int64_t i = 0; i < d.num_rows; i++) sum += d.valid[i];
        if (d.type == TYR_PARQUET_BYTE_ARRAY && d.num_rows > 0)
          sum += (uint8_t)d.bytes[d.offsets[d.num_rows] > 0 ? d.offsets[d.num_rows] - 1 : 0];
        (void)sum;
        tyr_parquet_column_data_free(&d);
      }
    }
  }
  int col = -1;
  for (int c = 0; c < tyr_parquet_num_columns(f) && col < 0; c++)
    if (tyr_parquet_column_type(f, c) == TYR_PARQUET_BYTE_ARRAY) col = c;
  if (col >= 0 && tyr_parquet_num_rows(f) < 100000) {
    size_t total = 0;
    tyr_parquet_foreach_string(path, tyr_parquet_column_name(f, col), fuzz_count, &total);
  }
  tyr_parquet_close(f);
  tyr_error_clear();
  return 0;
}
