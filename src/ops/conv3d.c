/* conv3d: x [N, C, D, H, W] * w [K, C/groups, KD, R, S] (+ b [K]) ->
 * [N, K, OD, OH, OW], built from the recorded ops it decomposes into:
 *
 *   y[:, :, od] = b + sum over kd of conv2d(x[:, :, od * sd - pd + kd * dd], w[:, :, kd])
 *
 * (depth padding by concatenated zeros).  Each conv2d runs the backend's
 * kernel (im2col + GEMM on the CPU, cuDNN on CUDA) and the backward follows
 * from autograd through conv2d, narrow, add, cat and stack, so the op has
 * every dtype, device and gradient that conv2d has.  It costs OD x KD
 * conv2d calls: fine for the video-VAE-sized 3-D layers it exists for, not
 * a tuned 3-D kernel. */
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"
#include "ops/nn_util.h"
#include "tyr/ops_conv.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"

static const tyr_conv3d_opts default_opts3 = {
    .stride = {1, 1, 1}, .padding = {0, 0, 0}, .dilation = {1, 1, 1}, .groups = 1};

/* Every rule, before anything is computed; the output dims in out[3]. */
static bool conv3d_check(tyr_site s, const char *op, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                         const tyr_conv3d_opts *o, int64_t out[3]) {
  char a[160], c[160];
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__arg_ok(s, op, "w", w)) return false;
  if (!tyr__is_float(s, op, "x", x) || !tyr__same_device(s, op, x, w) ||
      !tyr__same_dtype(s, op, x, w))
    return false;
  if (b && (!tyr__same_device(s, op, x, b) || !tyr__same_dtype(s, op, x, b))) return false;
  if (x->rank != 5 || w->rank != 5)
    return !tyr_raise(TYR_ERR_SHAPE, s, op,
                      "x must be [N, C, D, H, W] and w [K, C/groups, KD, R, S], but x is %s and w "
                      "is %s",
                      TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c));
  int64_t G = o->groups, C = x->shape[1], K = w->shape[0];
  for (int i = 0; i < 3; i++)
    if (o->stride[i] < 1 || o->dilation[i] < 1 || o->padding[i] < 0)
      return !tyr_raise(TYR_ERR_ARG, s, op,
                        "stride and dilation must be >= 1 and padding >= 0, got stride %lld, "
                        "padding %lld, dilation %lld in dim %d",
                        (long long)o->stride[i], (long long)o->padding[i],
                        (long long)o->dilation[i], i);
  if (G < 1 || C % G != 0 || K % G != 0 || w->shape[1] * G != C)
    return !tyr_raise(TYR_ERR_SHAPE, s, op,
                      "channels must be divisible by groups (%lld) and w must be [K, C/groups, "
                      "...]: x is %s, w is %s",
                      (long long)G, TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c));
  for (int i = 0; i < 3; i++) {
    int64_t in = x->shape[2 + i], k = w->shape[2 + i];
    int64_t span = o->dilation[i] * (k - 1) + 1;
    if (in + 2 * o->padding[i] < span)
      return !tyr_raise(TYR_ERR_SHAPE, s, op,
                        "the kernel (extent %lld with dilation %lld) is larger than the padded "
                        "input (%lld + 2 x %lld): x is %s, w is %s",
                        (long long)span, (long long)o->dilation[i], (long long)in,
                        (long long)o->padding[i], TYR__NN_SHAPE(x, a), TYR__NN_SHAPE(w, c));
    out[i] = (in + 2 * o->padding[i] - span) / o->stride[i] + 1;
  }
  if (b && (b->rank != 1 || b->shape[0] != K))
    return !tyr_raise(TYR_ERR_SHAPE, s, op, "w is %s, so b must be [%lld], but it is %s",
                      TYR__NN_SHAPE(w, a), (long long)K, TYR__NN_SHAPE(b, c));
  return true;
}

/* t [N, C, 1, H, W] (a narrow of dim 2) as [N, C, H, W] */
static tyr_tensor *drop_depth(tyr_site s, tyr_tensor *t) {
  return tyr_squeeze_at(s, tyr_contiguous_at(s, t), 2);
}

tyr_tensor *tyr_conv3d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                          const tyr_conv3d_opts *o) {
  const char *op = "tyr_conv3d";
  if (!o) o = &default_opts3;
  int64_t out[3];
  if (!conv3d_check(s, op, x, w, b, o, out)) return NULL;
  int64_t N = x->shape[0], C = x->shape[1], KD = w->shape[2];
  int64_t sd = o->stride[0], pd = o->padding[0], dd = o->dilation[0];
  tyr_scope_begin();
  tyr_tensor *xp = x;
  if (pd > 0) { /* zeros before and after along the depth */
    int64_t zs[5] = {N, C, pd, x->shape[3], x->shape[4]};
    tyr_tensor *z = tyr_zeros_at(s, x->dtype, x->device, 5, zs);
    xp = z ? tyr_cat_at(s, 3, (tyr_tensor *[]){z, x, z}, 2) : NULL;
  }
  tyr_conv_opts o2 = {.stride = {o->stride[1], o->stride[2]},
                      .padding = {o->padding[1], o->padding[2]},
                      .dilation = {o->dilation[1], o->dilation[2]},
                      .groups = o->groups};
  tyr_tensor **wk = calloc((size_t)KD, sizeof *wk), **ys = calloc((size_t)out[0], sizeof *ys);
  bool ok = xp && wk && ys;
  for (int64_t kd = 0; kd < KD && ok; kd++) /* w[:, :, kd] as [K, C/groups, R, S] */
    ok = (wk[kd] = drop_depth(s, tyr_narrow_at(s, w, 2, kd, 1))) != NULL;
  for (int64_t od = 0; od < out[0] && ok; od++) {
    tyr_tensor *acc = NULL;
    for (int64_t kd = 0; kd < KD && ok; kd++) {
      tyr_tensor *xs = drop_depth(s, tyr_narrow_at(s, xp, 2, od * sd + kd * dd, 1));
      tyr_tensor *y = xs ? tyr_conv2d_at(s, xs, wk[kd], kd == 0 ? b : NULL, &o2) : NULL;
      acc = !y ? NULL : acc ? tyr_add_at(s, acc, y) : y;
      ok = acc != NULL;
    }
    ys[od] = acc;
  }
  tyr_tensor *res = ok ? tyr_stack_at(s, (int)out[0], ys, 2) : NULL;
  free(ys);
  free(wk);
  /* the intermediates go with this private scope (the graph keeps what the
     backward needs); the result joins the caller's scope like any op's */
  if (res) tyr_keep_e(res);
  tyr_scope_end();
  if (res) tyr__scope_track(res);
  return res;
}
