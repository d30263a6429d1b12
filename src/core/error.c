/* Errors: one message format ("file:line: op: what"), a replaceable handler,
 * and the last error per thread for embedding programs and tests. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tyr/tensor.h"

static void default_handler(const tyr_error *err, void *ctx) {
  (void)ctx;
  fprintf(stderr, "%s\n", err->message);
  fflush(stderr);
  exit(1);
}

static tyr_error_handler g_handler = default_handler;
static void *g_handler_ctx;
static _Thread_local tyr_error g_last;
static _Thread_local uint64_t g_count;

uint64_t tyr__error_count(void) {
  return g_count;
}

void tyr_error_set_handler(tyr_error_handler fn, void *ctx) {
  g_handler = fn ? fn : default_handler;
  g_handler_ctx = fn ? ctx : NULL;
}

void tyr_error_get_handler(tyr_error_handler *fn, void **ctx) {
  if (fn) *fn = g_handler;
  if (ctx) *ctx = g_handler_ctx;
}

const tyr_error *tyr_error_last(void) {
  return g_last.status == TYR_OK ? NULL : &g_last;
}

void tyr_error_clear(void) {
  memset(&g_last, 0, sizeof g_last);
}

const char *tyr_status_name(tyr_status st) {
  switch (st) {
  case TYR_OK:
    return "ok";
  case TYR_ERR_SHAPE:
    return "shape error";
  case TYR_ERR_ARG:
    return "bad argument";
  case TYR_ERR_DTYPE:
    return "dtype error";
  case TYR_ERR_DEVICE:
    return "device error";
  case TYR_ERR_MEMORY:
    return "out of memory";
  case TYR_ERR_IO:
    return "i/o error";
  case TYR_ERR_FORMAT:
    return "malformed file";
  case TYR_ERR_AUTOGRAD:
    return "autograd error";
  case TYR_ERR_STATE:
    return "invalid state";
  }
  return "error";
}

tyr_status tyr_raise(tyr_status st, tyr_site site, const char *op, const char *fmt, ...) {
  tyr_error *e = &g_last;
  g_count++;
  e->status = st;
  e->site = site;
  e->op = op;
  int n = 0;
  if (site.file)
    n = snprintf(e->message, sizeof e->message, "%s:%d: %s: ", site.file, site.line,
                 op ? op : "tyr");
  else
    n = snprintf(e->message, sizeof e->message, "%s: ", op ? op : "tyr");
  if (n < 0) n = 0;
  if ((size_t)n < sizeof e->message) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message + n, sizeof e->message - (size_t)n, fmt, ap);
    va_end(ap);
  }
  g_handler(e, g_handler_ctx);
  return st;
}

char *tyr_shape_str(const int64_t *shape, int rank, char *buf, size_t n) {
  size_t used = 0;
  if (n == 0) return buf;
  buf[0] = 0;
  used += (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}
