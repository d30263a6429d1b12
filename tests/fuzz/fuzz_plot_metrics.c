/* Fuzzes the metrics.jsonl reader behind tyr_plot_metrics_png on arbitrary
 * bytes: it must plot or decline (-1, or an error status) without crashing,
 * and never leave a half-written PNG. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/plot.h"
#include "tyr/tyr.h"

static void quiet(const tyr_error *err, void *ctx) {
  (void)err;
  (void)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tyr_error_set_handler(quiet, NULL);
  char js[64], png[64];
  snprintf(js, sizeof js, "/tmp/tyr-fuzz-metrics-%d.jsonl", (int)getpid());
  snprintf(png, sizeof png, "/tmp/tyr-fuzz-metrics-%d.png", (int)getpid());
  FILE *f = fopen(js, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  remove(png);
  int st = tyr_plot_metrics_png(png, js, "FUZZ", "LOSS");
  struct stat sb;
  if (st != 0 && stat(png, &sb) == 0) abort(); /* a failed plot left a file */
  remove(png);
  remove(js);
  return 0;
}
