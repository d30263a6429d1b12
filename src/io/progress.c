/* The progress bar of the training programs (see tyr/progress.h). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "tyr/progress.h"
#include "tyr/tensor.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *tyr_format_duration(double s, char *buf, size_t n) {
  if (!(s >= 0) || !isfinite(s)) s = 0;
  if (s > 1e9) s = 1e9;
  int64_t t = (int64_t)s, h = t / 3600, m = (t / 60) % 60, sec = t % 60;
  if (h)
    snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", h, m, sec);
  else
    snprintf(buf, n, "%" PRId64 "m%02" PRId64 "s", m, sec);
  return buf;
}

void tyr_progress_bar(char *buf, int width, int64_t step, int64_t total) {
  if (step < 0) step = 0;
  int filled = total > 0 ? (int)((int64_t)width * (step < total ? step : total) / total) : width;
  for (int i = 0; i < width; i++) buf[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
  buf[width] = 0;
}

void tyr_progress_draw(FILE *out, bool tty, int64_t step, int64_t total, double eta,
                       const char *text) {
  enum { WIDTH = 30 };
  char bar[WIDTH + 1], e[32];
  tyr_progress_bar(bar, WIDTH, step, total);
  char etabuf[48] = "";
  if (eta >= 0) snprintf(etabuf, sizeof etabuf, " | ETA %s", tyr_format_duration(eta, e, sizeof e));
  fprintf(out, "%s[%s] %" PRId64 "/%" PRId64 "%s%s%s | live tensors %" PRId64 "%s", tty ? "\r" : "",
          bar, step, total, text && text[0] ? " " : "", text ? text : "", etabuf,
          tyr_live_tensors(), tty ? "   " : "\n");
  fflush(out);
}

void tyr_progress_init(tyr_progress *p, int64_t total, const char *unit, int64_t log_every) {
  *p = (tyr_progress){.total = total,
                      .log_every = log_every < 1 ? 1 : log_every,
                      .unit = unit,
                      .out = stderr,
                      .tty = isatty(fileno(stderr)) != 0};
  p->t_last = p->t_draw = now_s();
}

void tyr_progress_update(tyr_progress *p, int64_t step, double units, const char *fmt, ...) {
  double t = now_s(), dt = t - p->t_last;
  p->t_last = t;
  double r = units / (dt > 1e-9 ? dt : 1e-9);
  p->rate = p->updates++ < 2 ? r : 0.9 * p->rate + 0.1 * r;
  bool last = step >= p->total;
  if (p->tty ? !(last || t - p->t_draw >= 0.1) : !(last || step % p->log_every == 0)) return;
  p->t_draw = t;
  char text[512] = "";
  size_t k = 0;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    k = w < 0 ? 0 : (size_t)w < sizeof text ? (size_t)w : sizeof text - 1;
  }
  double eta = -1;
  if (p->unit && p->rate > 0) {
    snprintf(text + k, sizeof text - k, "%s%.0f %s/s", k ? " | " : "", p->rate, p->unit);
    eta = (double)(p->total - step) * units / p->rate;
  }
  tyr_progress_draw(p->out, p->tty, step, p->total, eta, text);
  p->drawn = p->tty;
}

void tyr_progress_finish(tyr_progress *p) {
  if (p->drawn) {
    fputc('\n', p->out);
    fflush(p->out);
  }
  p->drawn = false;
}
