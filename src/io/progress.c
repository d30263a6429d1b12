/* The progress bar and small helpers of training programs (tyr/progress.h). */
#include "tyr/progress.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>

void tyr_progress_bar(char *buf, int width, int64_t step, int64_t total) {
  int filled = total > 0 ? (int)((int64_t)width * step / total) : width;
  for (int i = 0; i < width; i++) buf[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
  buf[width] = 0;
}

void tyr_format_duration(double s, char *buf, size_t n) {
  if (s < 0 || !isfinite(s)) s = 0;
  int m = (int)(s / 60), sec = (int)s % 60;
  snprintf(buf, n, "%dm%02ds", m, sec);
}

void tyr_progress_print(FILE *f, int64_t step, int64_t total, double loss, double tok_s, double eta,
                        const char *extra, bool tty) {
  char e[32], bar[32];
  tyr_format_duration(eta, e, sizeof e);
  tyr_progress_bar(bar, 30, step, total);
  fprintf(f, "%s[%s] %" PRId64 "/%" PRId64 " loss %.4f | %.0f tok/s | ETA %s%s%s", tty ? "\r" : "",
          bar, step, total, loss, tok_s, e, extra ? extra : "", tty ? "   " : "\n");
  fflush(f);
}

int tyr_mkdirs(const char *path) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}
