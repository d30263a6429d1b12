/* Fuzz target: the shard reader on arbitrary bytes, in memory and through
 * a file, and a loader over whatever opens.  Header bytes 12..19, which the
 * format leaves zero and the reader ignores, pick the loader's options. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tyr/data.h"

static void quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

static void check(int ok) {
  if (!ok) __builtin_trap();
}

static void run_loader(const char *path, tyr_shard_format fmt, const uint8_t *d, size_t n) {
  uint8_t o[8] = {0};
  for (size_t i = 0; i < 8 && 12 + i < n; i++) o[i] = d[12 + i];
  tyr_loader_opts opts = {
      .format = fmt,
      .order = (o[2] & 1) ? TYR_LOADER_RANDOM : TYR_LOADER_SEQUENTIAL,
      .seed = o[3],
      .world_size = 1 + o[4] % 3,
      .align_bos = (o[2] & 2) != 0,
      .bos_token = o[5],
  };
  opts.rank = o[6] % opts.world_size;
  tyr_loader *l = tyr_loader_open(path, &opts);
  if (!l) return;
  int64_t B = 1 + o[0] % 4, T = 1 + o[1] % 40;
  int64_t *x = malloc(sizeof(int64_t) * 4 * 80), *y = malloc(sizeof(int64_t) * 4 * 80);
  for (int step = 0; step < 6; step++) {
    int64_t t = step % 3 == 2 ? 1 + (T * 7 + o[7]) % 80 : T;
    if (tyr_loader_next_into_at(TYR_SITE, l, B, t, x, y)) continue;
    for (int64_t b = 0; b < B; b++) {
      for (int64_t i = 0; i + 1 < t; i++) check(y[b * t + i] == x[b * t + i + 1]);
      for (int64_t i = 0; i < t; i++) check(x[b * t + i] >= 0 && x[b * t + i] < 65536);
      if (opts.align_bos) check(x[b * t] == opts.bos_token);
    }
    if (step == 3) {
      tyr_loader_state st = tyr_loader_get_state(l);
      check(tyr_loader_set_state_at(TYR_SITE, l, st) == 0);
    }
  }
  check(tyr_loader_epoch(l) >= 0);
  free(x);
  free(y);
  tyr_loader_close(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[128];
  if (!path[0]) {
    tyr_error_set_handler(quiet, NULL);
    snprintf(path, sizeof path, "/tmp/tyr-fuzz-shards-%d.bin", (int)getpid());
  }
  /* in memory, from an aligned copy */
  uint16_t *copy = malloc(size + 2);
  if (size) memcpy(copy, data, size);
  for (int f = 0; f < 2; f++) {
    const uint16_t *tok = NULL;
    int64_t n = 0;
    if (tyr_shard_parse_at(TYR_SITE, "fuzz", copy, size, (tyr_shard_format)f, &tok, &n) == 0) {
      check(n > 0);
      check((const char *)tok >= (const char *)copy);
      check((const char *)(tok + n) <= (const char *)copy + size);
      uint64_t sum = 0;
      for (int64_t i = 0; i < n; i++) sum += tok[i];
      check(sum <= (uint64_t)n * 65535);
    }
  }
  free(copy);
  /* through a file */
  FILE *fp = fopen(path, "wb");
  if (!fp) return 0;
  if (size) fwrite(data, 1, size, fp);
  fclose(fp);
  for (int f = 0; f < 2; f++) {
    tyr_shards *sh = tyr_shards_open(path, (tyr_shard_format)f);
    if (sh) {
      check(tyr_shards_count(sh) == 1);
      check(tyr_shards_total_tokens(sh) > 0);
      tyr_shards_close(sh);
      run_loader(path, (tyr_shard_format)f, data, size);
    }
  }
  unlink(path);
  return 0;
}
