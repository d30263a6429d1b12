/* Times safetensors save, open and load for a GPT-2-small-sized set of f32
 * tensors (124M parameters, about 500 MB) in the system temp directory.
 * Prints MB/s for each step; the file is removed at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tyr/safetensors.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  char path[512];
  snprintf(path, sizeof path, "%s/bench-%ld.safetensors", dir, (long)getpid());
  enum { L = 12, D = 768, V = 50257, T = 1024, PER = 12, N = 2 + 2 + L * PER };
  tyr_tensor *ts[N];
  char *names[N];
  int k = 0;
  int64_t total = 0;
#define ADD(nm, r, ...)                                                                            \
  do {                                                                                             \
    int64_t sh[] = {__VA_ARGS__};                                                                  \
    ts[k] = tyr_empty_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, r, sh);                                \
    memset(tyr_data_ptr(ts[k]), k, (size_t)tyr_nbytes(ts[k]));                                     \
    total += tyr_nbytes(ts[k]);                                                                    \
    names[k] = strdup(nm);                                                                         \
    k++;                                                                                           \
  } while (0)
  ADD("wte", 2, V, D);
  ADD("wpe", 2, T, D);
  ADD("ln_f.weight", 1, D);
  ADD("ln_f.bias", 1, D);
  for (int l = 0; l < L; l++) {
    char nm[64];
#define LAYER(suffix, r, ...)                                                                      \
  snprintf(nm, sizeof nm, "h.%d.%s", l, suffix);                                                   \
  ADD(nm, r, __VA_ARGS__)
    LAYER("ln_1.weight", 1, D);
    LAYER("ln_1.bias", 1, D);
    LAYER("attn.c_attn.weight", 2, D, 3 * D);
    LAYER("attn.c_attn.bias", 1, 3 * D);
    LAYER("attn.c_proj.weight", 2, D, D);
    LAYER("attn.c_proj.bias", 1, D);
    LAYER("ln_2.weight", 1, D);
    LAYER("ln_2.bias", 1, D);
    LAYER("mlp.c_fc.weight", 2, D, 4 * D);
    LAYER("mlp.c_fc.bias", 1, 4 * D);
    LAYER("mlp.c_proj.weight", 2, 4 * D, D);
    LAYER("mlp.c_proj.bias", 1, D);
  }
  double mb = (double)total / 1e6;
  const char *mk[] = {"format"}, *mv[] = {"pt"};

  double t0 = now();
  if (tyr_safetensors_save(path, N, (const char *const *)names, ts, 1, mk, mv) != 0) return 1;
  double t1 = now();
  tyr_safetensors *f = tyr_safetensors_open(path);
  double t2 = now();
  int64_t loaded = 0;
  for (int i = 0; i < tyr_safetensors_count(f); i++) {
    tyr_tensor *t = tyr_safetensors_load(f, tyr_safetensors_name(f, i));
    loaded += tyr_nbytes(t);
    tyr_tensor_free(t);
  }
  double t3 = now();
  tyr_safetensors_close(f);
  printf("safetensors: %d f32 tensors, %.1f MB, file in %s\n", N, mb, dir);
  printf("  save        %8.3f s  %8.0f MB/s\n", t1 - t0, mb / (t1 - t0));
  printf("  open        %8.3f ms (header parse and checks)\n", 1e3 * (t2 - t1));
  printf("  load all    %8.3f s  %8.0f MB/s (%lld bytes)\n", t3 - t2, mb / (t3 - t2),
         (long long)loaded);
  unlink(path);
  for (int i = 0; i < N; i++) {
    tyr_tensor_free(ts[i]);
    free(names[i]);
  }
  return 0;
}
