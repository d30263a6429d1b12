/* Line charts rendered into an RGB buffer and written with libpng.  Text
 * uses a built-in 5x7 font (upper case, digits, punctuation). */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tyr/fileio.h"
#include "tyr/plot.h"

typedef struct {
  int w, h;
  uint8_t *px;
} canvas;

static void put(canvas *c, int x, int y, uint32_t rgb) {
  if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
  uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
  p[0] = (uint8_t)(rgb >> 16);
  p[1] = (uint8_t)(rgb >> 8);
  p[2] = (uint8_t)rgb;
}

static void line(canvas *c, double x0, double y0, double x1, double y1, uint32_t rgb, int thick) {
  double dx = x1 - x0, dy = y1 - y0;
  int n = (int)fmax(fabs(dx), fabs(dy)) + 1;
  for (int i = 0; i <= n; i++) {
    double t = (double)i / n;
    int x = (int)lround(x0 + t * dx), y = (int)lround(y0 + t * dy);
    for (int a = 0; a < thick; a++)
      for (int b = 0; b < thick; b++) put(c, x + a - thick / 2, y + b - thick / 2, rgb);
  }
}

/* 5x7 glyphs: 7 rows of 5 bits each (bit 4 = leftmost) */
static const struct {
  char ch;
  uint8_t rows[7];
} FONT[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
    {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
    {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}},
    {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},
    {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}},
    {'Q', {14, 17, 17, 17, 21, 18, 13}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
    {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
    {'U', {17, 17, 17, 17, 17, 17, 14}}, {'V', {17, 17, 17, 17, 17, 10, 4}},
    {'W', {17, 17, 17, 21, 21, 21, 10}}, {'X', {17, 17, 10, 4, 10, 17, 17}},
    {'Y', {17, 17, 10, 4, 4, 4, 4}},     {'Z', {31, 1, 2, 4, 8, 16, 31}},
    {'.', {0, 0, 0, 0, 0, 12, 12}},      {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'+', {0, 4, 4, 31, 4, 4, 0}},       {':', {0, 12, 12, 0, 12, 12, 0}},
    {'/', {1, 1, 2, 4, 8, 16, 16}},      {'(', {2, 4, 8, 8, 8, 4, 2}},
    {')', {8, 4, 2, 2, 2, 4, 8}},        {'_', {0, 0, 0, 0, 0, 0, 31}},
    {',', {0, 0, 0, 0, 12, 4, 8}},       {'=', {0, 0, 31, 0, 31, 0, 0}},
    {'%', {24, 25, 2, 4, 8, 19, 3}},
};

static void text(canvas *c, int x, int y, const char *s, uint32_t rgb, int scale) {
  for (; *s; s++, x += 6 * scale) {
    char ch = *s >= 'a' && *s <= 'z' ? (char)(*s - 32) : *s;
    for (size_t g = 0; g < sizeof FONT / sizeof FONT[0]; g++) {
      if (FONT[g].ch != ch) continue;
      for (int r = 0; r < 7; r++)
        for (int b = 0; b < 5; b++)
          if (FONT[g].rows[r] & (1 << (4 - b)))
            for (int a = 0; a < scale; a++)
              for (int d = 0; d < scale; d++) put(c, x + b * scale + a, y + r * scale + d, rgb);
      break;
    }
  }
}

static int write_png(int fd, const canvas *c);

/* Writes c to path atomically (tyr/fileio.h: a temporary file, fsync,
 * rename, the directory fsync'd); frees c's pixels. */
static int save_canvas(tyr_site s, const char *op, const char *path, canvas *c) {
  tyr_atomic_file af;
  int st = tyr_atomic_open_at(s, &af, path);
  if (st) {
    free(c->px);
    return st;
  }
  int rc = write_png(af.fd, c);
  free(c->px);
  if (rc != 0) {
    int e = errno;
    tyr_atomic_abort(&af);
    return tyr_raise(TYR_ERR_IO, s, op, "%s: cannot write (%s)", path, strerror(e));
  }
  return tyr_atomic_commit_at(s, &af);
}

static double nice_step(double range, int ticks) {
  double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* The PNG of c into the open file descriptor fd (a temporary file of
 * tyr/fileio.h; fd stays open); 0 or -1. */
static int write_png(int fd, const canvas *c) {
  int fd2 = dup(fd);
  FILE *f = fd2 >= 0 ? fdopen(fd2, "wb") : NULL;
  if (!f) {
    if (fd2 >= 0) close(fd2);
    return -1;
  }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < c->h; y++) png_write_row(png, c->px + (size_t)y * (size_t)c->w * 3);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return fclose(f) == 0 ? 0 : -1;
}

int tyr_plot_png_at(tyr_site s, const char *path, int width, int height, const char *title,
                    const char *xlabel, const char *ylabel, const tyr_plot_series *series,
                    int nseries) {
  const char *op = "tyr_plot_png";
  if (!path) return tyr_raise(TYR_ERR_ARG, s, op, "path is NULL");
  if (width < 200 || height < 150 || width > 8192 || height > 8192)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: size %dx%d is outside 200x150..8192x8192", path,
                     width, height);
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int k = 0; k < nseries; k++)
    for (int64_t i = 0; i < series[k].n; i++) {
      if (!isfinite(series[k].x[i]) || !isfinite(series[k].y[i])) continue;
      x0 = fmin(x0, series[k].x[i]);
      x1 = fmax(x1, series[k].x[i]);
      y0 = fmin(y0, series[k].y[i]);
      y1 = fmax(y1, series[k].y[i]);
    }
  if (!(x1 >= x0)) return tyr_raise(TYR_ERR_ARG, s, op, "%s: no finite points to plot", path);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  canvas c = {width, height, malloc((size_t)width * (size_t)height * 3)};
  if (!c.px) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  memset(c.px, 255, (size_t)width * (size_t)height * 3);
  int L = 70, R = width - 20, T = 40, B = height - 50;
#define PX(v) (L + ((v)-x0) / (x1 - x0) * (R - L))
#define PY(v) (B - ((v)-y0) / (y1 - y0) * (B - T))
  /* grid and ticks */
  double ys = nice_step(y1 - y0, 6), xs = nice_step(x1 - x0, 8);
  char buf[64];
  for (double v = ceil(y0 / ys) * ys; v <= y1; v += ys) {
    line(&c, L, PY(v), R, PY(v), 0xe6e6e6, 1);
    snprintf(buf, sizeof buf, "%.*f", ys < 0.1 ? 2 : ys < 1 ? 1 : 0, v);
    text(&c, L - 6 - 6 * (int)strlen(buf), (int)PY(v) - 3, buf, 0x333333, 1);
  }
  for (double v = ceil(x0 / xs) * xs; v <= x1; v += xs) {
    line(&c, PX(v), T, PX(v), B, 0xe6e6e6, 1);
    snprintf(buf, sizeof buf, "%.0f", v);
    text(&c, (int)PX(v) - 3 * (int)strlen(buf), B + 8, buf, 0x333333, 1);
  }
  line(&c, L, B, R, B, 0x000000, 1);
  line(&c, L, T, L, B, 0x000000, 1);
  for (int k = 0; k < nseries; k++) {
    const tyr_plot_series *sr = &series[k];
    for (int64_t i = 1; i < sr->n; i++)
      if (isfinite(sr->y[i - 1]) && isfinite(sr->y[i]))
        line(&c, PX(sr->x[i - 1]), PY(sr->y[i - 1]), PX(sr->x[i]), PY(sr->y[i]), sr->rgb, 2);
    if (sr->n == 1)
      line(&c, PX(sr->x[0]) - 2, PY(sr->y[0]), PX(sr->x[0]) + 2, PY(sr->y[0]), sr->rgb, 3);
    /* legend */
    int ly = T + 8 + 14 * k;
    line(&c, R - 150, ly + 3, R - 130, ly + 3, sr->rgb, 3);
    if (sr->label) text(&c, R - 124, ly, sr->label, 0x000000, 1);
  }
  if (title) text(&c, L, 12, title, 0x000000, 2);
  if (xlabel) text(&c, (L + R) / 2 - 3 * (int)strlen(xlabel), height - 18, xlabel, 0x000000, 1);
  if (ylabel) text(&c, 6, T - 14, ylabel, 0x000000, 1);
#undef PX
#undef PY
  return save_canvas(s, op, path, &c);
}

/* ---- image grids and heatmaps ------------------------------------------------- */
/* Writes c to path through a temporary name; frees c's pixels. */

int tyr_plot_images_png_at(tyr_site s, const char *path, const uint8_t *images, int n, int h, int w,
                           int cols, int scale, const char *const *captions,
                           const uint32_t *caption_rgb, const char *title) {
  const char *op = "tyr_plot_images_png";
  if (!path || !images) return tyr_raise(TYR_ERR_ARG, s, op, "path or images is NULL");
  if (n < 1 || h < 1 || w < 1 || cols < 1 || scale < 1 || h * scale > 1024 || w * scale > 1024 ||
      n > 4096)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: bad grid (%d images of %dx%d, %d columns, scale %d)",
                     path, n, h, w, cols, scale);
  int rows = (n + cols - 1) / cols, cw = w * scale + 12, ch = h * scale + 24, top = title ? 30 : 6;
  int cap_w = 0;
  for (int i = 0; captions && i < n; i++)
    if (captions[i] && (int)strlen(captions[i]) * 6 + 12 > cap_w)
      cap_w = (int)strlen(captions[i]) * 6 + 12;
  if (cap_w > cw) cw = cap_w;
  canvas c = {cols * cw + 6, top + rows * ch + 6, NULL};
  c.px = malloc((size_t)c.w * (size_t)c.h * 3);
  if (!c.px) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of memory", path);
  memset(c.px, 255, (size_t)c.w * (size_t)c.h * 3);
  for (int i = 0; i < n; i++) {
    int x0 = 6 + (i % cols) * cw, y0 = top + (i / cols) * ch;
    const uint8_t *im = images + (size_t)i * (size_t)h * (size_t)w;
    for (int y = 0; y < h * scale; y++)
      for (int x = 0; x < w * scale; x++) {
        uint32_t v = im[(y / scale) * w + x / scale];
        put(&c, x0 + x, y0 + y, (v << 16) | (v << 8) | v);
      }
    if (captions && captions[i])
      text(&c, x0, y0 + h * scale + 4, captions[i], caption_rgb ? caption_rgb[i] : 0, 1);
  }
  if (title) text(&c, 6, 8, title, 0x000000, 2);
  return save_canvas(s, op, path, &c);
}

int tyr_plot_heatmap_png_at(tyr_site s, const char *path, const double *m, int rows, int cols,
                            const char *const *row_labels, const char *const *col_labels,
                            const char *title, const char *xlabel, const char *ylabel) {
  const char *op = "tyr_plot_heatmap_png";
  if (!path || !m) return tyr_raise(TYR_ERR_ARG, s, op, "path or values is NULL");
  if (rows < 1 || cols < 1 || rows > 256 || cols > 256)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: bad size %dx%d (1..256 each)", path, rows, cols);
  int lw = 0;
  for (int i = 0; row_labels && i < rows; i++)
    if (row_labels[i] && (int)strlen(row_labels[i]) * 6 > lw) lw = (int)strlen(row_labels[i]) * 6;
  int cell = 44, L = lw + 30, T = 60, W = L + cols * cell + 20, H = T + rows * cell + 40;
  canvas c = {W, H, NULL};
  c.px = malloc((size_t)W * (size_t)H * 3);
  if (!c.px) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of memory", path);
  memset(c.px, 255, (size_t)W * (size_t)H * 3);
  double mx = 0;
  for (int i = 0; i < rows * cols; i++)
    if (isfinite(m[i]) && m[i] > mx) mx = m[i];
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < cols; k++) {
      double v = m[r * cols + k], f = mx > 0 && isfinite(v) ? v / mx : 0;
      if (f < 0) f = 0;
      /* white to dark blue */
      uint32_t R = (uint32_t)(255 - f * 247), G = (uint32_t)(255 - f * 207),
               B = (uint32_t)(255 - f * 148);
      int x0 = L + k * cell, y0 = T + r * cell;
      for (int y = 1; y < cell; y++)
        for (int x = 1; x < cell; x++) put(&c, x0 + x, y0 + y, (R << 16) | (G << 8) | B);
      char buf[32];
      snprintf(buf, sizeof buf, "%.0f", v);
      text(&c, x0 + cell / 2 - 3 * (int)strlen(buf), y0 + cell / 2 - 3, buf,
           f > 0.5 ? 0xffffff : 0x000000, 1);
    }
  for (int r = 0; row_labels && r < rows; r++)
    if (row_labels[r]) text(&c, 24, T + r * cell + cell / 2 - 3, row_labels[r], 0x000000, 1);
  for (int k = 0; col_labels && k < cols; k++)
    if (col_labels[k]) {
      /* column labels: at most cell / 6 characters */
      char buf[16];
      snprintf(buf, sizeof buf, "%.*s", cell / 6 - 1, col_labels[k]);
      text(&c, L + k * cell + 3, T - 12, buf, 0x000000, 1);
    }
  if (title) text(&c, 6, 8, title, 0x000000, 2);
  if (xlabel) text(&c, L, T - 28, xlabel, 0x000000, 1);
  if (ylabel) text(&c, 4, T - 12, ylabel, 0x000000, 1);
  return save_canvas(s, op, path, &c);
}

/* ---- scatter panels ------------------------------------------------------------- */
int tyr_plot_scatter_png_at(tyr_site s, const char *path, const tyr_plot_points *panels, int n,
                            int cols, int panel_px, double lo, double hi, const char *title) {
  const char *op = "tyr_plot_scatter_png";
  if (!path || !panels) return tyr_raise(TYR_ERR_ARG, s, op, "path or panels is NULL");
  if (n < 1 || n > 1024 || cols < 1 || panel_px < 40 || panel_px > 2048)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "%s: bad grid (%d panels in 1..1024, %d columns, panels of %d px in 40..2048)",
                     path, n, cols, panel_px);
  if (!(hi > lo) || !isfinite(lo) || !isfinite(hi)) { /* the range of the points */
    lo = INFINITY;
    hi = -INFINITY;
    for (int k = 0; k < n; k++)
      for (int64_t i = 0; i < 2 * panels[k].n; i++)
        if (isfinite(panels[k].xy[i])) {
          lo = fmin(lo, panels[k].xy[i]);
          hi = fmax(hi, panels[k].xy[i]);
        }
    if (!(hi >= lo)) lo = -1, hi = 1;
    double pad = (hi - lo) * 0.05 + 1e-9;
    lo -= pad;
    hi += pad;
  }
  int rows = (n + cols - 1) / cols, cw = panel_px + 12, ch = panel_px + 24, top = title ? 30 : 6;
  canvas c = {cols * cw + 6, top + rows * ch + 6, NULL};
  c.px = malloc((size_t)c.w * (size_t)c.h * 3);
  if (!c.px) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of memory", path);
  memset(c.px, 255, (size_t)c.w * (size_t)c.h * 3);
  for (int k = 0; k < n; k++) {
    const tyr_plot_points *p = &panels[k];
    int x0 = 6 + (k % cols) * cw, y0 = top + (k / cols) * ch, e = panel_px - 1;
    line(&c, x0, y0, x0 + e, y0, 0x999999, 1);
    line(&c, x0, y0 + e, x0 + e, y0 + e, 0x999999, 1);
    line(&c, x0, y0, x0, y0 + e, 0x999999, 1);
    line(&c, x0 + e, y0, x0 + e, y0 + e, 0x999999, 1);
    for (int64_t i = 0; i < p->n; i++) {
      double x = p->xy[2 * i], y = p->xy[2 * i + 1];
      if (!isfinite(x) || !isfinite(y) || x < lo || x > hi || y < lo || y > hi) continue;
      int px = x0 + (int)lround((x - lo) / (hi - lo) * e),
          py = y0 + e - (int)lround((y - lo) / (hi - lo) * e);
      uint32_t rgb = p->rgb ? p->rgb[i] : 0x1f4e9a;
      for (int dy = -3; dy <= 3; dy++)
        for (int dx = -3; dx <= 3; dx++)
          if (dx * dx + dy * dy <= 9 && px + dx > x0 && px + dx < x0 + e && py + dy > y0 &&
              py + dy < y0 + e)
            put(&c, px + dx, py + dy, rgb);
    }
    if (p->caption) text(&c, x0, y0 + panel_px + 4, p->caption, 0x000000, 1);
  }
  if (title) text(&c, 6, 8, title, 0x000000, 2);
  return save_canvas(s, op, path, &c);
}

int tyr_image_write_at(tyr_site s, const char *path, const uint8_t *rgb, int w, int h, bool ppm) {
  const char *op = "tyr_image_write";
  if (!path || !rgb || w <= 0 || h <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "path, pixels and a positive size are needed");
  if (ppm) {
    char head[64];
    int n = snprintf(head, sizeof head, "P6\n%d %d\n255\n", w, h);
    size_t bytes = (size_t)n + (size_t)w * (size_t)h * 3;
    uint8_t *buf = malloc(bytes);
    if (!buf) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of memory", path);
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, rgb, bytes - (size_t)n);
    int st = tyr_file_write_atomic_at(s, path, buf, bytes);
    free(buf);
    return st;
  }
  canvas c = {w, h, malloc((size_t)w * (size_t)h * 3)};
  if (!c.px) return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of memory", path);
  memcpy(c.px, rgb, (size_t)w * (size_t)h * 3);
  return save_canvas(s, op, path, &c);
}
