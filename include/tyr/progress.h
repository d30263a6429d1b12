/* tyr/progress.h - a progress bar for training loops, shared by the example
 * programs.
 *
 *     tyr_progress pb;
 *     tyr_progress_init(&pb, iters, "img", 100);
 *     for (step = 1; step <= iters; step++) {
 *       ...
 *       tyr_progress_update(&pb, step, batch_size, "loss %.4f", loss);
 *     }
 *     tyr_progress_finish(&pb);
 *
 * On a terminal it redraws one line in place (every call at most ten
 * times a second, and always at the last step):
 *
 *     [=========>                    ] 300/1000 loss 0.4410 | 5120 img/s | ETA 0m12s | live tensors
 * 58
 *
 * When stderr is not a terminal (a log file, CI) it prints one such line per
 * `log_every` steps and at the last step.  The rate is an exponential moving
 * average of units per second (tokens, images, ...); the ETA follows from it.
 * The live-tensor count (tyr_live_tensors) shows leaks as they happen. */
#ifndef TYR_PROGRESS_H
#define TYR_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_progress {
  int64_t total;     /* the last step */
  int64_t log_every; /* not a terminal: a line every this many steps */
  const char *unit;  /* what the rate counts ("tok", "img"); NULL: no rate */
  FILE *out;         /* stderr */
  bool tty;          /* out is a terminal: redraw in place */
  bool drawn;        /* a line is on the terminal, unfinished */
  int64_t updates;   /* calls so far */
  double t_last, t_draw, rate;
} tyr_progress;

/* Starts a bar to `total` on stderr.  log_every < 1 means 1. */
void tyr_progress_init(tyr_progress *p, int64_t total, const char *unit, int64_t log_every);
/* Step `step` (1..total) is done after `units` units of work; the text
 * (printf format, may be NULL) follows the counter. */
void tyr_progress_update(tyr_progress *p, int64_t step, double units, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Ends the terminal line (call before printing anything else, and at the
 * end); does nothing when not a terminal. */
void tyr_progress_finish(tyr_progress *p);

/* Draws one line: bar, step/total, text, ETA (seconds; < 0 leaves it out)
 * and live tensors; on a terminal with "\r" before it and no newline,
 * otherwise with a newline.  What tyr_progress_update prints, for programs
 * that compute their own rate. */
void tyr_progress_draw(FILE *out, bool tty, int64_t step, int64_t total, double eta,
                       const char *text);
/* Writes a bar of `width` cells for step of total into buf (at least
 * width + 1 bytes): '=' done, '>' the current cell, ' ' to come. */
void tyr_progress_bar(char *buf, int width, int64_t step, int64_t total);
/* "1h02m03s" / "2m05s" into buf (negative or non-finite: "0m00s"). */
char *tyr_format_duration(double seconds, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
