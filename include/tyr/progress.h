/* tyr/progress.h - what a training program prints while it runs: a
 * progress bar with loss, speed and time left (one line redrawn in place on
 * a terminal, a line per report otherwise), durations as "1m05s", and the
 * output directory created with its parents. */
#ifndef TYR_PROGRESS_H
#define TYR_PROGRESS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes a bar of `width` cells for step of total into buf (at least
 * width + 1 bytes): '=' done, '>' the current cell, ' ' to come. */
void tyr_progress_bar(char *buf, int width, int64_t step, int64_t total);
/* "12m05s" (negative or non-finite: 0). */
void tyr_format_duration(double seconds, char *buf, size_t n);
/* One report to f:  [=====>    ] step/total loss L | N tok/s | ETA 1m05s
 * followed by extra (may be NULL or "").  On a terminal (tty) the line
 * starts with '\r' and is redrawn in place; otherwise it ends with '\n'. */
void tyr_progress_print(FILE *f, int64_t step, int64_t total, double loss, double tok_s,
                        double eta_seconds, const char *extra, bool tty);
/* mkdir -p; 0 or -1 with errno set. */
int tyr_mkdirs(const char *path);

#ifdef __cplusplus
}
#endif
#endif
