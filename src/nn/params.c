/* The parameter collection. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/profile.h"
#include "core/internal.h"
#include "tyr/autograd.h"
#include "tyr/params.h"

void tyr_params_init(tyr_params *ps) {
  memset(ps, 0, sizeof *ps);
}

void tyr_params_free(tyr_params *ps) {
  for (int i = 0; i < ps->n; i++) tyr_tensor_free(ps->items[i].t);
  free(ps->items);
  memset(ps, 0, sizeof *ps);
}

tyr_param *tyr_params_find(const tyr_params *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (strcmp(ps->items[i].name, name) == 0) return &ps->items[i];
  return NULL;
}

tyr_tensor *tyr_params_add_at(tyr_site s, tyr_params *ps, const char *name, tyr_tensor *t) {
  const char *op = "tyr_params_add";
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, op, "parameter '%s' is NULL", name ? name : "?");
    return NULL;
  }
  if (!name || !name[0] || strlen(name) >= TYR_PARAM_NAME_MAX) {
    tyr_raise(TYR_ERR_ARG, s, op, "a parameter name must have 1 to %d characters",
              TYR_PARAM_NAME_MAX - 1);
    return NULL;
  }
  if (tyr_params_find(ps, name)) {
    tyr_raise(TYR_ERR_ARG, s, op, "a parameter named '%s' already exists", name);
    return NULL;
  }
  if (ps->n == ps->cap) {
    int cap = ps->cap ? ps->cap * 2 : 32;
    tyr_param *p = realloc(ps->items, (size_t)cap * sizeof *p);
    if (!p) {
      tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
      return NULL;
    }
    ps->items = p;
    ps->cap = cap;
  }
  tyr_param *p = &ps->items[ps->n++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->t = tyr_keep_e(t);
  p->t->name = p->name;
  if (tyr_dtype_is_float(t->dtype)) t->requires_grad = true;
  return t;
}

tyr_tensor *tyr_params_addf_at(tyr_site s, tyr_params *ps, tyr_tensor *t, const char *fmt, ...) {
  char name[TYR_PARAM_NAME_MAX + 8];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return tyr_params_add_at(s, ps, name, t);
}

int64_t tyr_params_numel(const tyr_params *ps) {
  int64_t n = 0;
  for (int i = 0; i < ps->n; i++) n += tyr_numel(ps->items[i].t);
  return n;
}

void tyr_params_zero_grad(tyr_params *ps) {
  for (int i = 0; i < ps->n; i++) tyr_zero_grad_e(ps->items[i].t);
}

void tyr_params_requires_grad(tyr_params *ps, bool on) {
  for (int i = 0; i < ps->n; i++)
    if (tyr_dtype_is_float(ps->items[i].t->dtype)) ps->items[i].t->requires_grad = on;
}

void tyr_params_map(tyr_params *ps, tyr_param_fn fn, void *ctx) {
  for (int i = 0; i < ps->n; i++) fn(&ps->items[i], ctx);
}

int tyr_params_zip_at(tyr_site s, tyr_params *a, tyr_params *b, tyr_param_zip_fn fn, void *ctx) {
  if (a->n != b->n)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_params_zip", "collections have %d and %d parameters",
                     a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    tyr_param *pb = tyr_params_find(b, a->items[i].name);
    if (!pb)
      return tyr_raise(TYR_ERR_ARG, s, "tyr_params_zip",
                       "'%s' is missing from the second collection", a->items[i].name);
    tyr_tensor *x = a->items[i].t, *y = pb->t;
    if (x->rank != y->rank || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->rank)) {
      char sa[160], sb[160];
      return tyr_raise(TYR_ERR_SHAPE, s, "tyr_params_zip",
                       "'%s' is %s in one collection and %s in the other", a->items[i].name,
                       tyr_shape_str(x->shape, x->rank, sa, sizeof sa),
                       tyr_shape_str(y->shape, y->rank, sb, sizeof sb));
    }
  }
  for (int i = 0; i < a->n; i++) fn(&a->items[i], tyr_params_find(b, a->items[i].name), ctx);
  return 0;
}

double tyr_params_fold(tyr_params *ps, tyr_param_fold_fn fn, double init, void *ctx) {
  double acc = init;
  for (int i = 0; i < ps->n; i++) acc = fn(acc, &ps->items[i], ctx);
  return acc;
}

double tyr_params_grad_norm(tyr_params *ps) {
  /* one call for all gradients when they share a device that can (one wait on a GPU) */
  const tyr_tensor **gs = malloc(sizeof *gs * (size_t)(ps->n > 0 ? ps->n : 1));
  int ng = 0;
  bool one_device = gs != NULL;
  for (int i = 0; gs && i < ps->n; i++) {
    tyr_tensor *g = ps->items[i].t->grad;
    if (!g) continue;
    if (ng > 0 && !tyr_device_eq(g->device, gs[0]->device)) one_device = false;
    gs[ng++] = g;
  }
  if (one_device && ng > 0) {
    const tyr_backend *be = tyr_backend_lookup(gs[0]->device);
    if (be && be->sum_squares_many) {
      double ss = be->sum_squares_many(ng, gs);
      free(gs);
      return sqrt(ss);
    }
  }
  free(gs);
  double ss = 0;
  for (int i = 0; i < ps->n; i++) {
    tyr_tensor *g = ps->items[i].t->grad;
    if (!g) continue;
    const tyr_backend *be = tyr_backend_lookup(g->device);
    if (!be || !be->sum_squares) {
      tyr_raise(TYR_ERR_DEVICE, TYR_SITE, "tyr_params_grad_norm", "no %s kernel for this op (%s)",
                g->device.type == TYR_CUDA ? "CUDA" : "device", tyr_device_name(g->device));
      return NAN;
    }
    ss += be->sum_squares(g);
  }
  return sqrt(ss);
}

static double clip_grad_norm(tyr_params *ps, double max_norm);

double tyr_params_clip_grad_norm(tyr_params *ps, double max_norm) {
  int prev = tyr__profile_enter(TYR_PROF_OPTIMIZER); /* tyr/profile.h */
  double norm = clip_grad_norm(ps, max_norm);
  tyr__profile_leave(prev);
  return norm;
}

static double clip_grad_norm(tyr_params *ps, double max_norm) {
  double norm = tyr_params_grad_norm(ps);
  if (max_norm > 0 && norm > max_norm && isfinite(norm)) {
    double c = max_norm / (norm + 1e-6);
    for (int i = 0; i < ps->n; i++) {
      tyr_tensor *g = ps->items[i].t->grad;
      const tyr_backend *be = g ? tyr_backend_lookup(g->device) : NULL;
      if (!g) continue;
      if (!be || !be->scale_) {
        tyr_raise(TYR_ERR_DEVICE, TYR_SITE, "tyr_params_clip_grad_norm",
                  "no %s kernel for this op (%s)", g->device.type == TYR_CUDA ? "CUDA" : "device",
                  tyr_device_name(g->device));
        return NAN;
      }
      be->scale_(g, c);
    }
  }
  return norm;
}

tyr_tensor *tyr_params_clip_grad_norm_dev_at(tyr_site s, tyr_params *ps, double max_norm) {
  const char *op = "tyr_params_clip_grad_norm_dev";
  tyr_tensor **gs = malloc(sizeof *gs * (size_t)(ps->n > 0 ? ps->n : 1));
  if (!gs) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  int ng = 0;
  bool one_device = true;
  for (int i = 0; i < ps->n; i++) {
    tyr_tensor *g = ps->items[i].t->grad;
    if (!g) continue;
    if (ng > 0 && !tyr_device_eq(g->device, gs[0]->device)) one_device = false;
    gs[ng++] = g;
  }
  tyr_device dev = ng > 0 ? gs[0]->device : ps->n > 0 ? ps->items[0].t->device : TYR_DEVICE_CPU;
  const tyr_backend *be = tyr_backend_get(s, op, dev);
  tyr_tensor *norm = be ? tyr_empty_at(s, TYR_F64, dev, 0, NULL) : NULL;
  if (!norm) {
    free(gs);
    return NULL;
  }
  for (int i = 0; one_device && i < ng; i++)
    if (!tyr_is_contiguous(gs[i])) one_device = false; /* the kernel's contract */
  uint64_t errors = tyr__error_count();
  if (one_device && be->clip_grad_norm) {
    be->clip_grad_norm(ng, gs, max_norm, norm);
  } else {
    /* the host path (the CPU, gradients on several devices) */
    double v = tyr_params_clip_grad_norm(ps, max_norm);
    if (tyr__error_count() != errors)
      ; /* it raised (e.g. refused during a capture): no value to store */
    else if (dev.type == TYR_CPU)
      be->fill(norm, v);
    else
      be->from_host(tyr_data_ptr(norm), &v, sizeof v, dev);
  }
  free(gs);
  if (tyr__error_count() != errors) { /* nothing was written: no norm to return */
    tyr_tensor_free(norm);
    return NULL;
  }
  return norm;
}
