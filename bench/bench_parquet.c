/* Text-column read throughput of the Parquet reader.
 *
 *   bench_parquet [-w] FILE [COLUMN [REPEATS]]
 *
 * Reads the string column COLUMN (default "text") of FILE REPEATS times
 * (default 5) in two ways: tyr_parquet_foreach_string (open, every row
 * group, a callback per non-null value) and tyr_parquet_read_column per row
 * group on an open file.  Prints the best and median time and the rate in
 * MB/s (10^6 bytes) of string bytes decoded, and of file bytes.
 *
 * -w ("warm"): keeps freed memory in the malloc heap between runs
 * (mallopt), as a long-running loader's heap would, so that the runs after
 * the first do not pay for faulting in fresh pages (costly in some VMs:
 * the first touch of a fresh 55 MB buffer can take longer than decoding
 * it).  Without -w every run gets freshly mapped buffers.
 * bench/parquet_vs_duckdb.sh makes a file and runs DuckDB beside it. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tyr/parquet.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  int64_t strings, bytes;
  uint32_t check;
} tally;

static int on_string(const char *s, size_t len, void *ctx) {
  tally *t = ctx;
  t->strings++;
  t->bytes += (int64_t)len;
  if (len) t->check += (uint8_t)s[0] + (uint8_t)s[len - 1]; /* touch the bytes */
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n, int64_t bytes, int64_t file_bytes) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  double best = t[0], med = t[n / 2];
  printf(
      "%-34s best %.3f s  median %.3f s  %8.1f MB/s of strings (median %.1f)  %7.1f MB/s of file\n",
      what, best, med, (double)bytes / best / 1e6, (double)bytes / med / 1e6,
      (double)file_bytes / best / 1e6);
}

int main(int argc, char **argv) {
  bool warm = argc > 1 && strcmp(argv[1], "-w") == 0;
  if (warm) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30); /* big buffers from the heap ... */
    mallopt(M_TRIM_THRESHOLD, -1);      /* ... which is never given back */
    argv++;
    argc--;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: %s [-w] FILE [COLUMN [REPEATS]]\n", argv[0]);
    return 2;
  }
  const char *path = argv[1];
  const char *column = argc > 2 ? argv[2] : "text";
  int repeats = argc > 3 ? atoi(argv[3]) : 5;
  if (repeats < 1 || repeats > 1000) repeats = 5;
  struct stat sb;
  if (stat(path, &sb) != 0) {
    perror(path);
    return 1;
  }
  tyr_parquet_file *f = tyr_parquet_open(path);
  int col = tyr_parquet_column_index(f, column);
  if (col < 0) {
    fprintf(stderr, "%s: no column '%s'\n", path, column);
    return 1;
  }
  printf(
      "%s memory: file %s: %.1f MB, %lld rows, %d row groups, column '%s' %s/%s; created by %s\n",
      warm ? "warm (heap kept)" : "cold (fresh buffers)", path, (double)sb.st_size / 1e6,
      (long long)tyr_parquet_num_rows(f), tyr_parquet_num_row_groups(f), column,
      tyr_parquet_type_name(tyr_parquet_column_type(f, col)),
      tyr_parquet_logical_name(tyr_parquet_column_logical(f, col)), tyr_parquet_created_by(f));

  double *t = calloc((size_t)repeats, sizeof *t);
  tally first = {0};
  /* warm-up (page cache) and the reference tally */
  if (tyr_parquet_foreach_string(path, column, on_string, &first)) return 1;
  printf("%lld non-null strings, %.1f MB of string bytes\n", (long long)first.strings,
         (double)first.bytes / 1e6);

  for (int r = 0; r < repeats; r++) {
    tally tl = {0};
    double t0 = now();
    if (tyr_parquet_foreach_string(path, column, on_string, &tl)) return 1;
    t[r] = now() - t0;
    if (tl.bytes != first.bytes || tl.check != first.check) {
      fprintf(stderr, "results differ between runs\n");
      return 1;
    }
  }
  report("tyr_parquet_foreach_string", t, repeats, first.bytes, (int64_t)sb.st_size);

  for (int r = 0; r < repeats; r++) {
    int64_t bytes = 0;
    double t0 = now();
    for (int g = 0; g < tyr_parquet_num_row_groups(f); g++) {
      tyr_parquet_column_data d;
      if (tyr_parquet_read_column(f, g, col, &d)) return 1;
      bytes += d.nbytes;
      tyr_parquet_column_data_free(&d);
    }
    t[r] = now() - t0;
    if (bytes != first.bytes) {
      fprintf(stderr, "read_column gives %lld bytes, foreach_string %lld\n", (long long)bytes,
              (long long)first.bytes);
      return 1;
    }
  }
  report("tyr_parquet_read_column (per rg)", t, repeats, first.bytes, (int64_t)sb.st_size);
  printf("tyr: string bytes %lld\n", (long long)first.bytes);
  free(t);
  tyr_parquet_close(f);
  return 0;
}
