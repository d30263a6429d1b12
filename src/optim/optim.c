/* SGD and AdamW over a parameter collection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/profile.h"
#include "tyr/ops_create.h"
#include "tyr/optim.h"

tyr_optim_config tyr_adamw_config(double lr) {
  tyr_optim_config c;
  memset(&c, 0, sizeof c);
  c.kind = TYR_OPTIM_ADAMW;
  c.lr = lr;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.eps = 1e-8;
  c.weight_decay = 0.01;
  return c;
}

tyr_optim_config tyr_sgd_config(double lr, double momentum) {
  tyr_optim_config c;
  memset(&c, 0, sizeof c);
  c.kind = TYR_OPTIM_SGD;
  c.lr = lr;
  c.momentum = momentum;
  return c;
}

void tyr_params_group_by_rank(tyr_params *ps) {
  for (int i = 0; i < ps->n; i++) ps->items[i].group = ps->items[i].t->rank >= 2 ? 0 : 1;
}

int tyr_optim_init_at(tyr_site s, tyr_optim *opt, tyr_params *ps, tyr_optim_config cfg) {
  const char *op = "tyr_optim_init";
  memset(opt, 0, sizeof *opt);
  if (!(cfg.lr >= 0)) return tyr_raise(TYR_ERR_ARG, s, op, "lr must be >= 0, got %g", cfg.lr);
  if (cfg.kind == TYR_OPTIM_ADAMW &&
      (!(cfg.beta1 >= 0 && cfg.beta1 < 1) || !(cfg.beta2 >= 0 && cfg.beta2 < 1)))
    return tyr_raise(TYR_ERR_ARG, s, op, "betas must be in [0, 1), got %g, %g", cfg.beta1,
                     cfg.beta2);
  if (cfg.ngroups < 0 || cfg.ngroups > TYR_OPTIM_MAX_GROUPS)
    return tyr_raise(TYR_ERR_ARG, s, op, "ngroups must be in 0..%d", TYR_OPTIM_MAX_GROUPS);
  if (cfg.ngroups == 0) {
    cfg.ngroups = 1;
    cfg.groups[0] = (tyr_param_group){1.0, cfg.weight_decay};
  }
  for (int i = 0; i < ps->n; i++)
    if (ps->items[i].group < 0 || ps->items[i].group >= cfg.ngroups)
      return tyr_raise(TYR_ERR_ARG, s, op, "parameter '%s' is in group %d, but there are %d groups",
                       ps->items[i].name, ps->items[i].group, cfg.ngroups);
  opt->cfg = cfg;
  opt->params = ps;
  opt->n = ps->n;
  opt->m = calloc((size_t)ps->n + 1, sizeof *opt->m);
  opt->v = calloc((size_t)ps->n + 1, sizeof *opt->v);
  if (!opt->m || !opt->v) {
    free(opt->m);
    free(opt->v);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  for (int i = 0; i < ps->n; i++) {
    tyr_tensor *p = ps->items[i].t;
    bool need_m = cfg.kind == TYR_OPTIM_ADAMW,
         need_v = cfg.kind == TYR_OPTIM_ADAMW || cfg.momentum != 0;
    if (need_m) {
      opt->m[i] = tyr_keep_e(tyr_empty_at(s, TYR_F32, p->device, p->rank, p->shape));
      if (!opt->m[i]) goto fail;
      tyr_backend_lookup(p->device)->fill(opt->m[i], 0);
    }
    if (need_v) {
      opt->v[i] = tyr_keep_e(tyr_empty_at(s, TYR_F32, p->device, p->rank, p->shape));
      if (!opt->v[i]) goto fail;
      tyr_backend_lookup(p->device)->fill(opt->v[i], 0);
    }
  }
  return 0;
fail:
  tyr_optim_free(opt);
  return TYR_ERR_MEMORY;
}

void tyr_optim_free(tyr_optim *opt) {
  for (int i = 0; i < opt->n; i++) {
    if (opt->m) tyr_tensor_free(opt->m[i]);
    if (opt->v) tyr_tensor_free(opt->v[i]);
  }
  tyr_tensor_free(opt->hyper);
  free(opt->m);
  free(opt->v);
  memset(opt, 0, sizeof *opt);
}

static int check_state(tyr_site s, const char *op, const tyr_optim *opt) {
  if (!opt->params) return tyr_raise(TYR_ERR_STATE, s, op, "optimizer is not initialised");
  if (opt->params->n != opt->n)
    return tyr_raise(TYR_ERR_STATE, s, op,
                     "the collection has %d parameters, the optimizer was made for %d",
                     opt->params->n, opt->n);
  return 0;
}

/* Whether a CUDA graph is being captured on the parameters' device. */
static bool params_capturing(const tyr_optim *opt) {
  for (int i = 0; i < opt->n; i++) {
    tyr_device d = opt->params->items[i].t->device;
    const tyr_backend *be = tyr_backend_lookup(d);
    if (be && be->capturing && be->capturing(d)) return true;
  }
  return false;
}

int tyr_optim_set_capturable_at(tyr_site s, tyr_optim *opt, bool on) {
  const char *op = "tyr_optim_set_capturable";
  int st = check_state(s, op, opt);
  if (st) return st;
  if (!on) {
    tyr_tensor_free(opt->hyper);
    opt->hyper = NULL;
    opt->capturable = false;
    return 0;
  }
  if (opt->cfg.kind != TYR_OPTIM_ADAMW)
    return tyr_raise(TYR_ERR_ARG, s, op, "capturable mode supports AdamW only");
  if (opt->capturable) return 0;
  tyr_device dev = opt->n > 0 ? opt->params->items[0].t->device : TYR_DEVICE_CPU;
  for (int i = 1; i < opt->n; i++)
    if (!tyr_device_eq(opt->params->items[i].t->device, dev))
      return tyr_raise(TYR_ERR_DEVICE, s, op,
                       "parameters are on %s and %s; capturable mode needs one device",
                       tyr_device_name(dev), tyr_device_name(opt->params->items[i].t->device));
  if (dev.type != TYR_CPU) {
    const tyr_backend *be = tyr_backend_get(s, op, dev);
    if (!be) return TYR_ERR_DEVICE;
    if (!be->adamw_step_dev)
      return tyr_raise(TYR_ERR_DEVICE, s, op, "no device-side AdamW kernel for %s",
                       tyr_device_name(dev));
    opt->hyper =
        tyr_keep_e(tyr_zeros_at(s, TYR_F64, dev, 1, (int64_t[]){4 * (int64_t)opt->cfg.ngroups}));
    if (!opt->hyper) return TYR_ERR_MEMORY;
  }
  opt->lr_now = opt->cfg.lr;
  opt->capturable = true;
  return 0;
}

int tyr_optim_prepare_step_at(tyr_site s, tyr_optim *opt, double lr) {
  const char *op = "tyr_optim_prepare_step";
  int st = check_state(s, op, opt);
  if (st) return st;
  if (!opt->capturable)
    return tyr_raise(TYR_ERR_STATE, s, op,
                     "the optimizer is not in capturable mode (tyr_optim_set_capturable)");
  if (params_capturing(opt))
    return tyr_raise(TYR_ERR_STATE, s, op,
                     "cannot run while a CUDA graph is being captured (it writes the step's "
                     "scalars from the host): call it before each tyr_cuda_graph_launch");
  if (lr < 0) lr = opt->cfg.lr;
  int64_t step = opt->step + 1;
  if (opt->hyper) {
    /* the scalars tcu_adamw_step computes from (lr, step), computed the same way */
    const tyr_optim_config *c = &opt->cfg;
    double h[4 * TYR_OPTIM_MAX_GROUPS];
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    for (int k = 0; k < c->ngroups; k++) {
      double glr = lr * c->groups[k].lr_scale;
      h[4 * k + 0] = glr / bc1;
      h[4 * k + 1] = sqrt(bc2);
      h[4 * k + 2] = 1.0 - glr * c->groups[k].weight_decay;
      h[4 * k + 3] = glr;
    }
    const tyr_backend *be = tyr_backend_lookup(opt->hyper->device);
    be->from_host(tyr_data_ptr(opt->hyper), h, sizeof(double) * 4 * (size_t)c->ngroups,
                  opt->hyper->device);
  }
  opt->step = step;
  opt->lr_now = lr;
  return 0;
}

/* The AdamW step of every parameter with a gradient in one backend call
 * (a few kernel launches on a GPU) when they share a device whose backend
 * has adamw_step_many; false (nothing done) otherwise.  lr: the step's
 * learning rate before the group scales (unused with device scalars). */
static bool adamw_many(tyr_optim *opt, double lr) {
  const tyr_optim_config *c = &opt->cfg;
  int n = 0;
  tyr_device dev = TYR_DEVICE_CPU;
  for (int i = 0; i < opt->n; i++) {
    tyr_tensor *p = opt->params->items[i].t;
    if (!p->grad) continue;
    if (n > 0 && !tyr_device_eq(p->device, dev)) return false;
    dev = p->device;
    n++;
  }
  if (n == 0) return false;
  const tyr_backend *be = tyr_backend_lookup(dev);
  if (!be || !be->adamw_step_many || (opt->hyper && !tyr_device_eq(opt->hyper->device, dev)))
    return false;
  size_t np = (size_t)n;
  tyr_tensor **ps = malloc(sizeof *ps * np), **ms = malloc(sizeof *ms * np),
             **vs = malloc(sizeof *vs * np);
  const tyr_tensor **gs = malloc(sizeof *gs * np);
  int *group = malloc(sizeof *group * np);
  bool ok = ps && ms && vs && gs && group;
  if (ok) {
    int k = 0;
    for (int i = 0; i < opt->n; i++) {
      tyr_param *pp = &opt->params->items[i];
      if (!pp->t->grad) continue;
      ps[k] = pp->t;
      gs[k] = pp->t->grad;
      ms[k] = opt->m[i];
      vs[k] = opt->v[i];
      group[k] = pp->group;
      k++;
    }
    double glr[TYR_OPTIM_MAX_GROUPS], wd[TYR_OPTIM_MAX_GROUPS];
    for (int k2 = 0; k2 < c->ngroups; k2++) {
      glr[k2] = lr * c->groups[k2].lr_scale;
      wd[k2] = c->groups[k2].weight_decay;
    }
    be->adamw_step_many(n, ps, gs, ms, vs, group, glr, wd, c->beta1, c->beta2, c->eps, opt->step,
                        opt->hyper);
  }
  free(ps);
  free(ms);
  free(vs);
  free(gs);
  free(group);
  return ok;
}

static int optim_step(tyr_site s, tyr_optim *opt, double lr) {
  const char *op = "tyr_optim_step";
  int st = check_state(s, op, opt);
  if (st) return st;
  const tyr_optim_config *c = &opt->cfg;
  /* every parameter checked before anything (the step count included) changes */
  for (int i = 0; i < opt->n; i++) {
    tyr_param *pp = &opt->params->items[i];
    tyr_tensor *p = pp->t;
    if (!p->grad) continue;
    const tyr_backend *be = tyr_backend_lookup(p->device);
    if (!tyr_is_contiguous(p))
      return tyr_raise(TYR_ERR_ARG, s, op, "parameter '%s' is not contiguous", pp->name);
    if (!be || (c->kind == TYR_OPTIM_ADAMW ? !be->adamw_step : !be->sgd_step))
      return tyr_raise(TYR_ERR_DEVICE, s, op, "no %s kernel for this op (%s)",
                       p->device.type == TYR_CUDA ? "CUDA" : "device", tyr_device_name(p->device));
  }
  if (params_capturing(opt)) {
    if (!opt->capturable)
      return tyr_raise(TYR_ERR_STATE, s, op,
                       "the optimizer must be in capturable mode (tyr_optim_set_capturable) to "
                       "be captured in a CUDA graph: its learning rate and step count would be "
                       "frozen into the graph");
  } else if (opt->capturable) {
    if ((st = tyr_optim_prepare_step_at(s, opt, lr))) return st;
  } else {
    if (lr < 0) lr = opt->cfg.lr;
    opt->step++;
  }
  if (c->kind == TYR_OPTIM_ADAMW && adamw_many(opt, opt->capturable ? opt->lr_now : lr)) return 0;
  for (int i = 0; i < opt->n; i++) {
    tyr_param *pp = &opt->params->items[i];
    tyr_tensor *p = pp->t, *g = p->grad;
    if (!g) continue;
    const tyr_param_group *grp = &c->groups[pp->group];
    const tyr_backend *be = tyr_backend_lookup(p->device);
    if (c->kind == TYR_OPTIM_ADAMW && opt->hyper)
      be->adamw_step_dev(p, g, opt->m[i], opt->v[i], c->beta1, c->beta2, c->eps, opt->hyper,
                         pp->group);
    else if (c->kind == TYR_OPTIM_ADAMW)
      be->adamw_step(p, g, opt->m[i], opt->v[i],
                     (opt->capturable ? opt->lr_now : lr) * grp->lr_scale, c->beta1, c->beta2,
                     c->eps, grp->weight_decay, opt->step);
    else
      be->sgd_step(p, g, opt->v[i], lr * grp->lr_scale, c->momentum, c->dampening,
                   grp->weight_decay, c->nesterov, opt->step == 1);
  }
  return 0;
}

int tyr_optim_step_at(tyr_site s, tyr_optim *opt, double lr) {
  int prev = tyr__profile_enter(TYR_PROF_OPTIMIZER); /* tyr/profile.h */
  int st = optim_step(s, opt, lr);
  tyr__profile_leave(prev);
  return st;
}

void tyr_optim_zero_grad(tyr_optim *opt) {
  int prev = tyr__profile_enter(TYR_PROF_OPTIMIZER);
  if (opt->params) tyr_params_zero_grad(opt->params);
  tyr__profile_leave(prev);
}

int tyr_optim_state_tensors(tyr_optim *opt, int max, const char **names, tyr_tensor **tensors,
                            char (*name_buf)[TYR_PARAM_NAME_MAX + 16]) {
  int k = 0;
  for (int i = 0; i < opt->n; i++) {
    tyr_tensor *st[2] = {opt->m[i], opt->v[i]};
    const char *suffix[2] = {"m", "v"};
    for (int j = 0; j < 2; j++) {
      if (!st[j]) continue;
      if (k >= max) return -1;
      snprintf(name_buf[k], TYR_PARAM_NAME_MAX + 16, "optim.%s.%s", opt->params->items[i].name,
               suffix[j]);
      names[k] = name_buf[k];
      tensors[k] = st[j];
      k++;
    }
  }
  return k;
}
