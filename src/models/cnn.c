/* A small residual CNN (include/tyr/models/cnn.h). */
#include "tyr/models/cnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/tyr.h"

int tyr_cnn_init_at(tyr_site s, tyr_cnn *m, const tyr_cnn_config *cfg) {
  memset(m, 0, sizeof *m);
  const tyr_cnn_config *c = cfg;
  if (c->in_channels < 1 || c->num_classes < 1 || c->width < 1 || c->stages < 1 || c->stages > 5 ||
      c->blocks < 1)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_cnn_init",
                     "in_channels %lld, num_classes %lld, width %lld and blocks %lld must be "
                     "positive and stages %lld in 1..5",
                     (long long)c->in_channels, (long long)c->num_classes, (long long)c->width,
                     (long long)c->blocks, (long long)c->stages);
  m->cfg = *c;
  m->mode.training = true;
  tyr_params_init(&m->params);
  tyr_params *ps = &m->params;
  int rc = tyr_nn_conv2d_init_at(s, &m->stem, ps, "stem.conv", c->in_channels, c->width, 3, 1, 1, 1,
                                 false, 0);
  if (!rc) rc = tyr_nn_batchnorm2d_init_at(s, &m->stem_bn, ps, "stem.bn", c->width, 0, 0, &m->mode);
  m->blocks = calloc((size_t)(c->stages * c->blocks), sizeof *m->blocks);
  if (!m->blocks) return tyr_raise(TYR_ERR_MEMORY, s, "tyr_cnn_init", "out of memory");
  int64_t in = c->width;
  for (int64_t st = 0; st < c->stages && !rc; st++) {
    int64_t out = c->width << st;
    for (int64_t b = 0; b < c->blocks && !rc; b++) {
      tyr_cnn_block *blk = &m->blocks[st * c->blocks + b];
      int64_t stride = (st > 0 && b == 0) ? 2 : 1;
      char p[64];
#define P(leaf) (snprintf(p, sizeof p, "stages.%lld.%lld.%s", (long long)st, (long long)b, leaf), p)
      rc =
          tyr_nn_conv2d_init_at(s, &blk->conv1, ps, P("conv1"), in, out, 3, stride, 1, 1, false, 0);
      if (!rc) rc = tyr_nn_batchnorm2d_init_at(s, &blk->bn1, ps, P("bn1"), out, 0, 0, &m->mode);
      if (!rc)
        rc = tyr_nn_conv2d_init_at(s, &blk->conv2, ps, P("conv2"), out, out, 3, 1, 1, 1, false, 0);
      if (!rc) rc = tyr_nn_batchnorm2d_init_at(s, &blk->bn2, ps, P("bn2"), out, 0, 0, &m->mode);
      if (!rc && (stride != 1 || in != out)) {
        rc = tyr_nn_conv2d_init_at(s, &blk->down, ps, P("down.conv"), in, out, 1, stride, 0, 1,
                                   false, 0);
        if (!rc)
          rc = tyr_nn_batchnorm2d_init_at(s, &blk->down_bn, ps, P("down.bn"), out, 0, 0, &m->mode);
      }
#undef P
      in = out;
    }
  }
  if (!rc) rc = tyr_nn_linear_init_at(s, &m->fc, ps, "fc", in, c->num_classes, true, 0);
  return rc;
}

void tyr_cnn_free(tyr_cnn *m) {
  tyr_params_free(&m->params);
  free(m->blocks);
  memset(m, 0, sizeof *m);
}

static tyr_tensor *bn_relu(tyr_site s, const tyr_nn_batchnorm2d *bn, tyr_tensor *x) {
  tyr_tensor *y = tyr_nn_batchnorm2d_forward_at(s, bn, x);
  return y ? tyr_relu_at(s, y) : NULL;
}

tyr_tensor *tyr_cnn_forward_at(tyr_site s, tyr_cnn *m, tyr_tensor *x) {
  const tyr_cnn_config *c = &m->cfg;
  tyr_tensor *h = tyr_nn_conv2d_forward_at(s, &m->stem, x);
  h = h ? bn_relu(s, &m->stem_bn, h) : NULL;
  for (int64_t i = 0; i < c->stages * c->blocks && h; i++) {
    tyr_cnn_block *b = &m->blocks[i];
    tyr_tensor *o = tyr_nn_conv2d_forward_at(s, &b->conv1, h);
    o = o ? bn_relu(s, &b->bn1, o) : NULL;
    o = o ? tyr_nn_conv2d_forward_at(s, &b->conv2, o) : NULL;
    o = o ? tyr_nn_batchnorm2d_forward_at(s, &b->bn2, o) : NULL;
    tyr_tensor *sc = h;
    if (b->down.weight) {
      sc = tyr_nn_conv2d_forward_at(s, &b->down, h);
      sc = sc ? tyr_nn_batchnorm2d_forward_at(s, &b->down_bn, sc) : NULL;
    }
    o = o && sc ? tyr_add_at(s, o, sc) : NULL;
    h = o ? tyr_relu_at(s, o) : NULL;
  }
  if (!h) return NULL;
  tyr_tensor *p = tyr_adaptive_avg_pool2d_at(s, h, 1, 1);
  p = p ? tyr_reshape_at(s, p, 2, (int64_t[]){h->shape[0], h->shape[1]}) : NULL;
  return p ? tyr_nn_linear_forward_at(s, &m->fc, p) : NULL;
}

static double conv_macs(const tyr_nn_conv2d *cv, int64_t *h, int64_t *w) {
  int64_t st = cv->opts.stride[0], pad = cv->opts.padding[0], k = cv->kernel;
  *h = (*h + 2 * pad - k) / st + 1;
  *w = (*w + 2 * pad - k) / st + 1;
  return (double)*h * (double)*w * (double)cv->out * (double)(cv->in / cv->opts.groups) *
         (double)(k * k);
}

double tyr_cnn_macs(const tyr_cnn *m, int64_t h, int64_t w) {
  double macs = conv_macs(&m->stem, &h, &w);
  for (int64_t i = 0; i < m->cfg.stages * m->cfg.blocks; i++) {
    const tyr_cnn_block *b = &m->blocks[i];
    int64_t h0 = h, w0 = w;
    macs += conv_macs(&b->conv1, &h, &w);
    macs += conv_macs(&b->conv2, &h, &w);
    if (b->down.weight) macs += conv_macs(&b->down, &h0, &w0);
  }
  return macs + (double)m->fc.in * (double)m->fc.out;
}
