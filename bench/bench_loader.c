/* Loader throughput: tokens per second delivered as [B, T] int64 batches,
 * sequential and random order, plain and BOS-aligned windows, from shards
 * written to a temporary directory; shard write and open times.
 *
 *   bench_loader [--tokens N] [--shards K] [--B B] [--T T]
 *
 * Defaults: 64M tokens in 4 shards, B = 16, T = 1024. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tyr/data.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run(const char *dir, const char *what, tyr_loader_opts o, int64_t B, int64_t T,
                int64_t total) {
  tyr_loader *l = tyr_loader_open(dir, &o);
  int64_t *x = malloc((size_t)(B * T) * sizeof *x), *y = malloc((size_t)(B * T) * sizeof *y);
  /* one warm-up batch, then about one pass over the data */
  tyr_loader_next_into_at(TYR_SITE, l, B, T, x, y);
  int64_t calls = total / (B * T);
  if (calls < 4) calls = 4;
  double t0 = now();
  int64_t sum = 0;
  for (int64_t i = 0; i < calls; i++) {
    tyr_loader_next_into_at(TYR_SITE, l, B, T, x, y);
    sum += x[0];
  }
  double el = now() - t0;
  printf("%-28s B=%lld T=%lld: %8.1f M tokens/s  (%.0f batches/s, %lld batches, epoch %lld)%s\n",
         what, (long long)B, (long long)T, (double)(calls * B * T) / el / 1e6, (double)calls / el,
         (long long)calls, (long long)tyr_loader_epoch(l), sum < 0 ? "!" : "");
  free(x);
  free(y);
  tyr_loader_close(l);
}

int main(int argc, char **argv) {
  int64_t ntok = 64 << 20, B = 16, T = 1024;
  int nsh = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--tokens"))
      ntok = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--shards"))
      nsh = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--B"))
      B = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--T"))
      T = atoll(argv[i + 1]);
    else {
      fprintf(stderr, "usage: bench_loader [--tokens N] [--shards K] [--B B] [--T T]\n");
      return 2;
    }
  }
  char dir[] = "/tmp/tyr-bench-loader-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  int64_t per = ntok / nsh;
  uint16_t *t = malloc((size_t)per * sizeof *t);
  /* documents of 200..1200 tokens, each starting with BOS = 50256 */
  uint64_t r = 88172645463325252ull;
  for (int64_t i = 0, left = 0; i < per; i++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    if (left-- <= 0) {
      t[i] = 50256;
      left = 200 + (int64_t)(r % 1000);
    } else {
      t[i] = (uint16_t)(r % 50000);
    }
  }
  double t0 = now();
  char path[256];
  for (int s = 0; s < nsh; s++) {
    snprintf(path, sizeof path, "%s/bench_train_%06d.bin", dir, s);
    tyr_shard_write(path, t, per, TYR_SHARD_LLMC);
  }
  double tw = now() - t0;
  t0 = now();
  tyr_shards *sh = tyr_shards_open(dir, TYR_SHARD_LLMC);
  double to = now() - t0;
  printf("shards: %d x %lld tokens; write %.0f MB/s, open (map + validate) %.3f ms\n", nsh,
         (long long)per, (double)(nsh * per * 2) / tw / 1e6, to * 1e3);
  tyr_shards_close(sh);
  free(t);

  int64_t total = per * nsh;
  run(dir, "sequential", (tyr_loader_opts){0}, B, T, total);
  run(dir, "random", (tyr_loader_opts){.order = TYR_LOADER_RANDOM, .seed = 1}, B, T, total);
  run(dir, "sequential, rank 1 of 8", (tyr_loader_opts){.rank = 1, .world_size = 8}, B, T,
      total / 8);
  t0 = now();
  tyr_loader_opts bos = {.align_bos = true, .bos_token = 50256};
  tyr_loader *l = tyr_loader_open(dir, &bos);
  printf("BOS index: %.1f ms to find the BOS tokens, %lld windows of T=%lld\n", (now() - t0) * 1e3,
         (long long)tyr_loader_windows_at(TYR_SITE, l, T), (long long)T);
  tyr_loader_close(l);
  run(dir, "sequential, BOS-aligned", bos, B, T, total);
  bos.order = TYR_LOADER_RANDOM;
  run(dir, "random, BOS-aligned", bos, B, T, total);

  for (int s = 0; s < nsh; s++) {
    snprintf(path, sizeof path, "%s/bench_train_%06d.bin", dir, s);
    unlink(path);
  }
  rmdir(dir);
  return 0;
}
