/* Tensor printing (see tyr/print.h): a host copy for CUDA tensors, one
 * number format per tensor, summarised dims for large tensors. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/autograd.h"
#include "tyr/ops_create.h"
#include "tyr/print.h"

enum { SUMMARY_THRESHOLD = 1000, EDGE = 3 };

typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w < 0) {
      b->oom = true;
      return;
    }
    if ((size_t)w < b->cap - b->n) {
      b->n += (size_t)w;
      return;
    }
    size_t cap = 2 * b->cap + (size_t)w + 64;
    char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
}

static double read_elem(const tyr_tensor *t, int64_t off) {
  const char *base = (const char *)t->storage->data;
  switch (t->dtype) {
  case TYR_F32:
    return ((const float *)base)[off];
  case TYR_F64:
    return ((const double *)base)[off];
  case TYR_BF16:
    return tyr_bf16_to_f32(((const uint16_t *)base)[off]);
  case TYR_F16:
    return tyr_f16_to_f32(((const uint16_t *)base)[off]);
  case TYR_I32:
    return ((const int32_t *)base)[off];
  case TYR_I64:
    return (double)((const int64_t *)base)[off];
  case TYR_U8:
  case TYR_BOOL:
    return ((const uint8_t *)base)[off];
  default:
    return NAN;
  }
}

typedef enum { FMT_INT, FMT_FLOAT_INT, FMT_FIXED, FMT_SCI } numfmt;

typedef struct printer {
  const tyr_tensor *t;
  bool summarise;
  numfmt fmt;
  int width;
} printer;

static int fmt_value(const printer *pr, double v, int64_t iv, char *buf, size_t n) {
  if (pr->t->dtype == TYR_BOOL) return snprintf(buf, n, "%s", v != 0 ? "true" : "false");
  if (pr->fmt == FMT_INT) return snprintf(buf, n, "%lld", (long long)iv);
  if (isnan(v)) return snprintf(buf, n, "nan");
  if (isinf(v)) return snprintf(buf, n, "%sinf", v < 0 ? "-" : "");
  if (pr->fmt == FMT_FLOAT_INT) return snprintf(buf, n, "%.0f.", v);
  if (pr->fmt == FMT_FIXED) return snprintf(buf, n, "%.4f", v);
  return snprintf(buf, n, "%.4e", v);
}

/* Calls fn on every element shown (all, or the edges of each dim). */
typedef void (*visit_fn)(printer *pr, int64_t off, void *ctx);
static void visit(printer *pr, int dim, int64_t off, visit_fn fn, void *ctx) {
  const tyr_tensor *t = pr->t;
  if (dim == t->rank) {
    fn(pr, off, ctx);
    return;
  }
  int64_t n = t->shape[dim];
  for (int64_t i = 0; i < n; i++) {
    if (pr->summarise && n > 2 * EDGE && i == EDGE) i = n - EDGE;
    visit(pr, dim + 1, off + i * t->stride[dim], fn, ctx);
  }
}

typedef struct stats {
  bool all_int, any_finite;
  double max_abs, min_abs;
} stats;

static void gather_stats(printer *pr, int64_t off, void *ctx) {
  stats *st = ctx;
  double v = read_elem(pr->t, off);
  if (!isfinite(v)) return;
  st->any_finite = true;
  if (v != floor(v)) st->all_int = false;
  double a = fabs(v);
  if (a > st->max_abs) st->max_abs = a;
  if (a > 0 && a < st->min_abs) st->min_abs = a;
}

static int64_t read_int(const tyr_tensor *t, int64_t off) {
  if (t->dtype == TYR_I64) return ((const int64_t *)t->storage->data)[off];
  return (int64_t)read_elem(t, off);
}

static void measure(printer *pr, int64_t off, void *ctx) {
  (void)ctx;
  char b[64];
  int w = fmt_value(pr, read_elem(pr->t, off), read_int(pr->t, off), b, sizeof b);
  if (w > pr->width) pr->width = w;
}

static void emit(printer *pr, sbuf *b, int dim, int64_t off, int indent) {
  const tyr_tensor *t = pr->t;
  if (dim == t->rank) {
    char v[64];
    fmt_value(pr, read_elem(t, off), read_int(t, off), v, sizeof v);
    put(b, "%*s", pr->width, v);
    return;
  }
  int64_t n = t->shape[dim];
  put(b, "[");
  for (int64_t i = 0; i < n; i++) {
    if (i > 0) {
      if (dim == t->rank - 1) {
        put(b, ", ");
      } else {
        put(b, ",");
        for (int k = 0; k < t->rank - dim - 1; k++) put(b, "\n");
        put(b, "%*s", indent + dim + 1, "");
      }
    }
    if (pr->summarise && n > 2 * EDGE && i == EDGE) {
      put(b, "...");
      if (dim == t->rank - 1) {
        put(b, ", ");
      } else {
        put(b, ",");
        for (int k = 0; k < t->rank - dim - 1; k++) put(b, "\n");
        put(b, "%*s", indent + dim + 1, "");
      }
      i = n - EDGE;
    }
    emit(pr, b, dim + 1, off + i * t->stride[dim], indent);
  }
  put(b, "]");
}

char *tyr_to_string_at(tyr_site s, const tyr_tensor *t) {
  const char *op = "tyr_print";
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, op, "tensor is NULL");
    return NULL;
  }
  if ((unsigned)t->dtype >= TYR_DTYPE_COUNT || t->rank < 0 || t->rank > TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_ARG, s, op, "not a valid tensor (dtype %d, rank %d)", (int)t->dtype, t->rank);
    return NULL;
  }
  const tyr_tensor *h = t;
  tyr_tensor *copy = NULL;
  if (t->device.type != TYR_CPU) {
    bool prev = tyr_set_grad_enabled(false);
    copy = tyr_to_device_at(s, (tyr_tensor *)t, TYR_DEVICE_CPU);
    tyr_set_grad_enabled(prev);
    if (!copy) return NULL;
    h = copy;
  }
  printer pr = {.t = h, .summarise = tyr_numel(h) > SUMMARY_THRESHOLD};
  if (tyr_dtype_is_float(h->dtype)) {
    stats st = {.all_int = true, .min_abs = INFINITY};
    visit(&pr, 0, h->offset, gather_stats, &st);
    if (!st.any_finite || (st.all_int && st.max_abs < 1e8))
      pr.fmt = FMT_FLOAT_INT;
    else if (st.max_abs >= 1e8 || st.min_abs < 1e-4 || st.max_abs / st.min_abs > 1000)
      pr.fmt = FMT_SCI;
    else
      pr.fmt = FMT_FIXED;
  } else {
    pr.fmt = FMT_INT;
  }
  sbuf b = {0};
  put(&b, "tensor(");
  if (tyr_numel(h) > 0) {
    visit(&pr, 0, h->offset, measure, NULL);
    emit(&pr, &b, 0, h->offset, (int)strlen("tensor("));
  } else {
    put(&b, "[]");
  }
  char shape[160];
  put(&b, ", dtype=%s, device=%s, shape=%s%s)", tyr_dtype_name(t->dtype),
      tyr_device_name(t->device), tyr_shape_str(t->shape, t->rank, shape, sizeof shape),
      t->requires_grad ? ", requires_grad" : "");
  if (copy) tyr_tensor_free(copy);
  if (b.oom) {
    free(b.p);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  return b.p;
}

int tyr_fprint_at(tyr_site s, FILE *f, const tyr_tensor *t) {
  char *str = tyr_to_string_at(s, t);
  if (!str) return tyr_error_last() ? tyr_error_last()->status : TYR_ERR_ARG;
  fprintf(f, "%s\n", str);
  free(str);
  return 0;
}
