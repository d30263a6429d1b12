/* tyr_plot_scatter_png (tyr/plot.h): the grid's size, each point drawn in
 * its colour where its coordinates put it, points outside the range left
 * out, and bad arguments refused with the file named. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/plot.h"
#include "tyr/tyr.h"

/* the RGB pixels of a PNG file (malloc'd), its size in *w, *h */
static uint8_t *read_png(const char *path, int *w, int *h) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&im, path)) return NULL;
  im.format = PNG_FORMAT_RGB;
  uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
  if (!px || !png_image_finish_read(&im, NULL, px, 0, NULL)) {
    free(px);
    return NULL;
  }
  *w = (int)im.width;
  *h = (int)im.height;
  return px;
}

static uint32_t at(const uint8_t *px, int w, int x, int y) {
  const uint8_t *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3;
  return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static void test_scatter(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/scatter.png", tyr_test_tmpdir());
  const double a[6] = {0, 0, 1, 1, -1, -1}, b[4] = {0.5, -0.5, 5, 5};
  const uint32_t ca[3] = {0xff0000, 0x00ff00, 0x0000ff};
  tyr_plot_points p[2] = {{"A", a, 3, ca}, {"B", b, 2, NULL}};
  assert_int_equal(tyr_plot_scatter_png(path, p, 2, 2, 101, -1.0, 1.0, "POINTS"), 0);
  int w, h;
  uint8_t *px = read_png(path, &w, &h);
  assert_non_null(px);
  /* two columns of 101 + 12, one row of 101 + 24 below a 30 px title */
  assert_int_equal(w, 2 * 113 + 6);
  assert_int_equal(h, 30 + 125 + 6);
  /* panel 0 starts at (6, 30): (0, 0) is its centre (56, 80), (1, 1) its top right corner
     (clipped inside the border), (-1, -1) its bottom left */
  assert_int_equal(at(px, w, 56, 80), 0xff0000);
  assert_int_equal(at(px, w, 6 + 98, 30 + 2), 0x00ff00);
  assert_int_equal(at(px, w, 6 + 2, 30 + 98), 0x0000ff);
  /* panel 1 starts at (119, 30): (0.5, -0.5) at (119 + 75, 30 + 75); (5, 5) is out of range */
  assert_int_equal(at(px, w, 119 + 75, 30 + 75), 0x1f4e9a);
  free(px);
  EXPECT_TYR_ERROR(tyr_plot_scatter_png(path, p, 0, 2, 101, -1.0, 1.0, NULL),
                   "scatter.png: bad grid");
  EXPECT_TYR_ERROR(tyr_plot_scatter_png(path, p, 2, 2, 10, -1.0, 1.0, NULL), "panels of 10 px");
  /* an automatic range covers every point */
  assert_int_equal(tyr_plot_scatter_png(path, p, 2, 1, 60, 0.0, 0.0, NULL), 0);
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {TYR_TEST(test_scatter)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
