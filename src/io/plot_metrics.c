/* Loss curves from a training program's metrics.jsonl (tyr/plot.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/plot.h"

typedef struct {
  double *x, *y;
  int64_t n, cap;
} series_buf;

static int push(series_buf *b, double x, double y) {
  if (b->n == b->cap) {
    int64_t cap = b->cap ? 2 * b->cap : 1024;
    double *nx = realloc(b->x, sizeof(double) * (size_t)cap);
    if (!nx) return -1;
    b->x = nx;
    double *ny = realloc(b->y, sizeof(double) * (size_t)cap);
    if (!ny) return -1;
    b->y = ny;
    b->cap = cap;
  }
  b->x[b->n] = x;
  b->y[b->n++] = y;
  return 0;
}

int tyr_plot_metrics_png_at(tyr_site s, const char *png_path, const char *jsonl_path,
                            const char *title, const char *ylabel) {
  const char *op = "tyr_plot_metrics_png";
  FILE *f = fopen(jsonl_path, "r");
  if (!f) return tyr_raise(TYR_ERR_IO, s, op, "%s: cannot open (%s)", jsonl_path, strerror(errno));
  series_buf tr = {0}, va = {0};
  char line[1024];
  int st = 0;
  while (!st && fgets(line, sizeof line, f)) {
    long long step;
    double a, b;
    if (sscanf(line, "{\"step\":%lld,\"train_loss\":%lf,\"val_loss\":%lf", &step, &a, &b) == 3)
      st = push(&va, (double)step, b);
    else if (sscanf(line, "{\"step\":%lld,\"loss\":%lf", &step, &a) == 2)
      st = push(&tr, (double)step, a);
  }
  fclose(f);
  if (st)
    st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  else if (tr.n == 0)
    st = -1; /* nothing to plot yet */
  else {
    tyr_plot_series ser[2] = {{"TRAIN", tr.x, tr.y, tr.n, 0x1f77b4},
                              {"VAL", va.x, va.y, va.n, 0xd62728}};
    st = tyr_plot_png_at(s, png_path, 900, 500, title, "STEP", ylabel, ser, 2);
  }
  free(tr.x);
  free(tr.y);
  free(va.x);
  free(va.y);
  return st;
}
