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

/* A grid of n grayscale images (h x w bytes each, row-major, one after
 * another) in cols columns, each drawn scale times larger with an optional
 * caption below it (caption_rgb[i] its colour, NULL: black); written to
 * path atomically.  Returns 0 or the error status. */
int tyr_plot_images_png_at(tyr_site s, const char *path, const uint8_t *images, int n, int h, int w,
                           int cols, int scale, const char *const *captions,
                           const uint32_t *caption_rgb, const char *title);
#define tyr_plot_images_png(...) tyr_plot_images_png_at(TYR_SITE, __VA_ARGS__)
/* A rows x cols heatmap of m (row-major) with each cell's value written in
 * it (a confusion matrix: rows true, columns predicted); labels may be
 * NULL.  Written to path atomically.  Returns 0 or the error status. */
int tyr_plot_heatmap_png_at(tyr_site s, const char *path, const double *m, int rows, int cols,
                            const char *const *row_labels, const char *const *col_labels,
                            const char *title, const char *xlabel, const char *ylabel);
#define tyr_plot_heatmap_png(...) tyr_plot_heatmap_png_at(TYR_SITE, __VA_ARGS__)
/* The loss curves of a training program's metrics.jsonl as a PNG: the
 * lines {"step":S,"loss":L,...} as TRAIN and {"step":S,"train_loss":A,
 * "val_loss":V,...} as VAL (other lines are skipped).  Returns 0, -1 when
 * the file has no "loss" line yet (nothing is written, nothing raised), or
 * the error status (a file that cannot be read, a PNG that cannot be
 * written). */
int tyr_plot_metrics_png_at(tyr_site s, const char *png_path, const char *jsonl_path,
                            const char *title, const char *ylabel);
#define tyr_plot_metrics_png(...) tyr_plot_metrics_png_at(TYR_SITE, __VA_ARGS__)
/* Point sets as a grid of square scatter panels (cols columns, panel_px
 * pixels a side), one shared range [lo, hi] on both axes (hi <= lo: the
 * range of all the points), each point a dot of its colour (rgb[i], NULL:
 * dark blue), each panel's caption below it.  Written to path atomically.
 * Returns 0 or the error status. */
typedef struct tyr_plot_points {
  const char *caption;
  const double *xy; /* n (x, y) pairs */
  int64_t n;
  const uint32_t *rgb; /* 0xRRGGBB per point, or NULL */
} tyr_plot_points;
int tyr_plot_scatter_png_at(tyr_site s, const char *path, const tyr_plot_points *panels, int n,
                            int cols, int panel_px, double lo, double hi, const char *title);
#define tyr_plot_scatter_png(...) tyr_plot_scatter_png_at(TYR_SITE, __VA_ARGS__)

/* An RGB image (w x h, 3 bytes per pixel, rows top to bottom) as a PNG, or
 * as a binary PPM (P6) when ppm is true; written to path atomically (a
 * temporary name, fsync, rename: never a partial file).  Returns 0 or the
 * error status. */
int tyr_image_write_at(tyr_site s, const char *path, const uint8_t *rgb, int w, int h, bool ppm);
#define tyr_image_write(...) tyr_image_write_at(TYR_SITE, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
