/* Fuzz target: the IDX reader on arbitrary bytes (plain or gzip), in memory
 * and through a file; whatever parses must have the size its dims say, and
 * must write back and read again to the same tensor. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tyr/idx.h"

static void quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

static void check(int ok) {
  if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[128], out[128];
  if (!path[0]) {
    tyr_error_set_handler(quiet, NULL);
    snprintf(path, sizeof path, "/tmp/tyr-fuzz-idx-%d.idx", (int)getpid());
    snprintf(out, sizeof out, "/tmp/tyr-fuzz-idx-%d.out", (int)getpid());
  }
  tyr_tensor *t = tyr_idx_parse("fuzz", data, size);
  int parsed = t != NULL;
  if (t) {
    check(t->rank >= 1 && t->rank <= TYR_MAX_RANK);
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    check(n == tyr_numel(t));
    if (tyr_idx_save(out, t) == 0) {
      tyr_tensor *u = tyr_idx_load(out);
      check(u != NULL);
      check(u->dtype == t->dtype && u->rank == t->rank);
      check(memcmp(tyr_data_ptr(u), tyr_data_ptr(t), (size_t)tyr_nbytes(t)) == 0);
      tyr_tensor_free(u);
      unlink(out);
    }
    tyr_tensor_free(t);
  }
  FILE *fp = fopen(path, "wb");
  if (!fp) return 0;
  if (size) fwrite(data, 1, size, fp);
  fclose(fp);
  tyr_tensor *f = tyr_idx_load(path);
  check((f != NULL) == parsed);
  tyr_tensor_free(f);
  unlink(path);
  return 0;
}
