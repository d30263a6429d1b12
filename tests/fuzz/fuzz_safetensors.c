/* libFuzzer target: arbitrary bytes as a safetensors file.  Opens it, loads
 * every tensor and reads the metadata; when the file is accepted, writes the
 * tensors back and checks that the copy opens and holds the same bytes. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tyr/safetensors.h"

static void ignore_errors(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

static char g_out[256];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  tyr_error_set_handler(ignore_errors, NULL);
  snprintf(g_out, sizeof g_out, "/tmp/tyr-fuzz-safetensors-%ld.safetensors", (long)getpid());
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz-safetensors", MFD_CLOEXEC);
  if (fd < 0) abort();
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0) abort();
    off += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int64_t live = tyr_live_tensors();

  tyr_safetensors *f = tyr_safetensors_open(path);
  if (f) {
    int n = tyr_safetensors_count(f);
    tyr_tensor **ts = calloc(n ? (size_t)n : 1, sizeof *ts);
    const char **names = calloc(n ? (size_t)n : 1, sizeof *names);
    int nm = tyr_safetensors_metadata_count(f);
    const char **keys = calloc(nm ? (size_t)nm : 1, sizeof *keys);
    const char **vals = calloc(nm ? (size_t)nm : 1, sizeof *vals);
    if (!ts || !names || !keys || !vals) abort();
    for (int i = 0; i < nm; i++) {
      keys[i] = tyr_safetensors_metadata_key(f, i);
      vals[i] = tyr_safetensors_metadata(f, keys[i]);
      if (!vals[i]) abort();
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
      const tyr_safetensors_entry *e = tyr_safetensors_entry_at(f, i);
      if (!e || e->begin != pos || tyr_safetensors_find(f, e->name) != e) abort();
      pos = e->end;
      names[i] = e->name;
      ts[i] = tyr_safetensors_load(f, e->name);
      if (!ts[i] || (uint64_t)tyr_nbytes(ts[i]) != e->end - e->begin) abort();
    }
    /* write it back and read the copy */
    if (tyr_safetensors_save(g_out, n, names, ts, nm, keys, vals) != 0) abort();
    tyr_safetensors *g = tyr_safetensors_open(g_out);
    if (!g || tyr_safetensors_count(g) != n || tyr_safetensors_metadata_count(g) != nm) abort();
    for (int i = 0; i < nm; i++) {
      const char *v = tyr_safetensors_metadata(g, keys[i]);
      if (!v || strcmp(v, vals[i]) != 0) abort();
    }
    for (int i = 0; i < n; i++) {
      tyr_tensor *t = tyr_safetensors_load(g, names[i]);
      if (!t || t->dtype != ts[i]->dtype || t->rank != ts[i]->rank ||
          memcmp(t->shape, ts[i]->shape, sizeof(int64_t) * (size_t)t->rank) != 0 ||
          memcmp(tyr_data_ptr(t), tyr_data_ptr(ts[i]), (size_t)tyr_nbytes(t)) != 0)
        abort();
      tyr_tensor_free(t);
    }
    tyr_safetensors_close(g);
    unlink(g_out);
    for (int i = 0; i < n; i++) tyr_tensor_free(ts[i]);
    free(ts);
    free(names);
    free(keys);
    free(vals);
    tyr_safetensors_close(f);
  }
  close(fd);
  if (tyr_live_tensors() != live) abort();
  tyr_error_clear();
  return 0;
}
