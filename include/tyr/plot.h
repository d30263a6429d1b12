/* tyr/plot.h - line charts written as PNG (libpng), for training curves. */
#ifndef TYR_PLOT_H
#define TYR_PLOT_H
#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_plot_series {
  const char *label;
  const double *x, *y;
  int64_t n;
  uint32_t rgb; /* 0xRRGGBB */
} tyr_plot_series;

/* Writes a width x height chart of the series (axes, ticks, legend, title)
 * to path atomically.  Returns 0 or the error status. */
int tyr_plot_png_at(tyr_site s, const char *path, int width, int height, const char *title,
                    const char *xlabel, const char *ylabel, const tyr_plot_series *series,
                    int nseries);
#define tyr_plot_png(...) tyr_plot_png_at(TYR_SITE, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
