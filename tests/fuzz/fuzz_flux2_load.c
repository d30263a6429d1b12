/* libFuzzer target: arbitrary bytes as FLUX.2 weights.  The bytes are the
 * safetensors file handed to tyr_flux2_load (the tiny config, BFL or
 * diffusers names) and to tyr_flux2_vae_load (the tiny decoder): every
 * input is either refused with an error, leaving no tensor behind, or
 * loaded into a complete model that runs one forward pass. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tyr/models/flux2.h"
#include "tyr/models/flux2_vae.h"
#include "tyr/tyr.h"

static void ignore_errors(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  tyr_error_set_handler(ignore_errors, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz-flux2", MFD_CLOEXEC);
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
  tyr_flux2_config c;
  tyr_flux2_config_named("tiny", &c);
  tyr_flux2 m;
  if (tyr_flux2_load(&m, path, &c, TYR_F32, TYR_DEVICE_CPU) == 0) {
    if (m.params.n == 0) abort();
    TYR_SCOPE;
    tyr_tensor *img =
        tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 3, (const int64_t[]){1, 1, 128});
    tyr_tensor *txt =
        tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 3, (const int64_t[]){1, 2, 192});
    tyr_tensor *t = tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (const int64_t[]){1});
    if (!tyr_flux2_forward(&m, img, txt, t, 1, 1)) abort();
    tyr_flux2_free(&m);
  }
  tyr_flux2_vae_config vc;
  tyr_flux2_vae_config_named("tiny", &vc);
  tyr_flux2_vae v;
  if (tyr_flux2_vae_load(&v, path, &vc, TYR_F32, TYR_DEVICE_CPU) == 0) tyr_flux2_vae_free(&v);
  if (tyr_live_tensors() != live) abort();
  close(fd);
  return 0;
}
