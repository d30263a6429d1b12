/* Learning-rate schedules. */
#include <math.h>
#include <string.h>

#include "tyr/optim.h"

double tyr_lr_at(const tyr_lr_schedule *sch, int64_t step) {
  double lr = sch->max_lr, lo = sch->min_lr;
  if (sch->kind == TYR_LR_CONSTANT) return lr;
  if (sch->warmup > 0 && step < sch->warmup) return lr * (double)(step + 1) / (double)sch->warmup;
  switch (sch->kind) {
  case TYR_LR_WARMUP_COSINE: {
    if (step >= sch->decay_steps) return lo;
    double span = (double)(sch->decay_steps - sch->warmup);
    double r = span > 0 ? (double)(step - sch->warmup) / span : 1.0;
    return lo + 0.5 * (1.0 + cos(M_PI * r)) * (lr - lo);
  }
  case TYR_LR_WARMUP_LINEAR: {
    if (step >= sch->total) return lo;
    double span = (double)(sch->total - sch->warmup);
    double r = span > 0 ? (double)(step - sch->warmup) / span : 1.0;
    return lr + (lo - lr) * r;
  }
  case TYR_LR_WARMUP_PLATEAU_WARMDOWN: {
    int64_t start = sch->total - sch->warmdown;
    if (step < start) return lr;
    if (step >= sch->total) return lo;
    double r = sch->warmdown > 0 ? (double)(step - start) / (double)sch->warmdown : 1.0;
    return lr + (lo - lr) * r;
  }
  default:
    return lr;
  }
}

bool tyr_lr_kind_parse(const char *s, tyr_lr_kind *out) {
  static const struct {
    const char *name;
    tyr_lr_kind kind;
  } kinds[] = {{"constant", TYR_LR_CONSTANT},
               {"linear", TYR_LR_WARMUP_LINEAR},
               {"cosine", TYR_LR_WARMUP_COSINE},
               {"warmdown", TYR_LR_WARMUP_PLATEAU_WARMDOWN}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (s && strcmp(s, kinds[i].name) == 0) {
      *out = kinds[i].kind;
      return true;
    }
  return false;
}
