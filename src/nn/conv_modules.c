/* Vision modules: Conv2d, BatchNorm2d, GroupNorm, and the train / eval
 * mode that BatchNorm and Dropout read. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tyr/nn.h"
#include "tyr/tyr.h"

#define NAME(buf, prefix, leaf)                                                                    \
  snprintf((buf), sizeof(buf), "%s%s%s", (prefix), (prefix)[0] ? "." : "", (leaf))

void tyr_nn_mode_train(tyr_nn_mode *m, bool training) {
  if (m) m->training = training;
}
bool tyr_nn_mode_training(const tyr_nn_mode *m) {
  return !m || m->training;
}

tyr_tensor *tyr_nn_dropout_apply_at(tyr_site s, const tyr_nn_dropout *m, const tyr_nn_mode *mode,
                                    tyr_tensor *x) {
  return tyr_dropout_at(s, x, m->p, tyr_nn_mode_training(mode));
}

/* Adds a fresh tensor under prefix.leaf; NULL after raising. */
static tyr_tensor *add(tyr_site s, tyr_params *ps, const char *prefix, const char *leaf,
                       tyr_tensor *t) {
  char name[TYR_PARAM_NAME_MAX + 16];
  NAME(name, prefix, leaf);
  return t ? tyr_params_add_at(s, ps, name, t) : NULL;
}

int tyr_nn_conv2d_init_at(tyr_site s, tyr_nn_conv2d *m, tyr_params *ps, const char *prefix,
                          int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                          int64_t groups, bool bias, double std) {
  memset(m, 0, sizeof *m);
  if (in <= 0 || out <= 0 || kernel <= 0 || stride <= 0 || padding < 0 || groups <= 0 ||
      in % groups || out % groups)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_nn_conv2d_init",
                     "%s: in %lld and out %lld must be positive multiples of groups %lld, kernel "
                     "%lld and stride %lld positive, padding %lld >= 0",
                     prefix, (long long)in, (long long)out, (long long)groups, (long long)kernel,
                     (long long)stride, (long long)padding);
  m->in = in;
  m->out = out;
  m->kernel = kernel;
  m->opts = TYR_CONV_OPTS(stride, padding, 1, groups);
  int64_t fan_in = in / groups * kernel * kernel;
  int64_t sh[4] = {out, in / groups, kernel, kernel};
  m->weight = add(s, ps, prefix, "weight",
                  tyr_randn_at(s, tyr_default_dtype(), tyr_default_device(), 4, sh, 0.0,
                               std > 0 ? std : sqrt(2.0 / (double)fan_in)));
  if (!m->weight) return TYR_ERR_ARG;
  if (bias) {
    m->bias = add(s, ps, prefix, "bias",
                  tyr_zeros_at(s, tyr_default_dtype(), tyr_default_device(), 1, &out));
    if (!m->bias) return TYR_ERR_ARG;
  }
  return 0;
}

tyr_tensor *tyr_nn_conv2d_forward_at(tyr_site s, const tyr_nn_conv2d *m, tyr_tensor *x) {
  return tyr_conv2d_at(s, x, m->weight, m->bias, &m->opts);
}

int tyr_nn_batchnorm2d_init_at(tyr_site s, tyr_nn_batchnorm2d *m, tyr_params *ps,
                               const char *prefix, int64_t channels, double eps, double momentum,
                               const tyr_nn_mode *mode) {
  memset(m, 0, sizeof *m);
  if (channels <= 0)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_nn_batchnorm2d_init", "%s: channels must be positive",
                     prefix);
  m->channels = channels;
  m->eps = eps > 0 ? eps : 1e-5;
  m->momentum = momentum > 0 ? momentum : 0.1;
  m->mode = mode;
  tyr_dtype dt = tyr_default_dtype();
  tyr_device dev = tyr_default_device();
  m->weight = add(s, ps, prefix, "weight", tyr_ones_at(s, dt, dev, 1, &channels));
  m->bias = add(s, ps, prefix, "bias", tyr_zeros_at(s, dt, dev, 1, &channels));
  m->running_mean = add(s, ps, prefix, "running_mean", tyr_zeros_at(s, dt, dev, 1, &channels));
  m->running_var = add(s, ps, prefix, "running_var", tyr_ones_at(s, dt, dev, 1, &channels));
  if (!m->weight || !m->bias || !m->running_mean || !m->running_var) return TYR_ERR_ARG;
  /* buffers: no gradient, so optimizers and clipping leave them alone */
  tyr_requires_grad_at(s, m->running_mean, false);
  tyr_requires_grad_at(s, m->running_var, false);
  return 0;
}

tyr_tensor *tyr_nn_batchnorm2d_forward_at(tyr_site s, const tyr_nn_batchnorm2d *m, tyr_tensor *x) {
  return tyr_batch_norm_at(s, x, m->weight, m->bias, m->running_mean, m->running_var,
                           tyr_nn_mode_training(m->mode), m->momentum, m->eps);
}

int tyr_nn_groupnorm_init_at(tyr_site s, tyr_nn_groupnorm *m, tyr_params *ps, const char *prefix,
                             int64_t groups, int64_t channels, double eps) {
  memset(m, 0, sizeof *m);
  if (groups <= 0 || channels <= 0 || channels % groups)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_nn_groupnorm_init",
                     "%s: groups %lld must be positive and divide channels %lld", prefix,
                     (long long)groups, (long long)channels);
  m->groups = groups;
  m->channels = channels;
  m->eps = eps > 0 ? eps : 1e-5;
  tyr_dtype dt = tyr_default_dtype();
  tyr_device dev = tyr_default_device();
  m->weight = add(s, ps, prefix, "weight", tyr_ones_at(s, dt, dev, 1, &channels));
  m->bias = add(s, ps, prefix, "bias", tyr_zeros_at(s, dt, dev, 1, &channels));
  return m->weight && m->bias ? 0 : TYR_ERR_ARG;
}

tyr_tensor *tyr_nn_groupnorm_forward_at(tyr_site s, const tyr_nn_groupnorm *m, tyr_tensor *x) {
  return tyr_group_norm_at(s, x, m->groups, m->weight, m->bias, m->eps);
}
