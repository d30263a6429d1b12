/* Image rearrangements and resampling: pixel_shuffle / unshuffle,
 * patchify / unpatchify, pad (constant, reflect), interpolate (nearest,
 * bilinear).  Each is a composition of recorded ops (reshape, permute,
 * index_select, cat, expand, mul, add), so its backward and its CUDA path
 * are theirs; the shape rules are checked here first, with this op's name
 * (include/tyr/ops_conv.h has the typed forms). */
#include <math.h>
#include <stdlib.h>

#include "ops/nn_util.h"
#include "tyr/ops_conv.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_index.h"
#include "tyr/ops_layout.h"

static bool image_ok(tyr_site s, const char *op, tyr_tensor *x, int rank) {
  if (!tyr__arg_ok(s, op, "x", x) || !tyr_backend_get(s, op, x->device)) return false;
  char a[160];
  if (x->rank != rank)
    return !tyr_raise(TYR_ERR_SHAPE, s, op, "x must have rank %d, but it is %s", rank,
                      TYR__NN_SHAPE(x, a));
  return true;
}

/* reshape to sh1, permute by perm, reshape to sh2 (temporaries dropped) */
static tyr_tensor *rearrange(tyr_site s, tyr_tensor *x, int r1, const int64_t *sh1, const int *perm,
                             int r2, const int64_t *sh2) {
  tyr_tensor *a = tyr_reshape_at(s, x, r1, sh1);
  tyr_tensor *b = a ? tyr_permute_n_at(s, a, r1, perm) : NULL;
  tyr_tensor *c = b ? tyr_reshape_at(s, b, r2, sh2) : NULL;
  tyr__nn_drop(b);
  tyr__nn_drop(a);
  return c;
}

tyr_tensor *tyr_pixel_shuffle_at(tyr_site s, tyr_tensor *x, int64_t r) {
  const char *op = "tyr_pixel_shuffle";
  if (!image_ok(s, op, x, 4)) return NULL;
  char a[160];
  int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  if (r < 1 || C % (r * r) != 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "the factor %lld must be >= 1 and its square divide the channels of x %s",
                     (long long)r, TYR__NN_SHAPE(x, a)),
           NULL;
  int64_t c = C / (r * r);
  return rearrange(s, x, 6, (int64_t[]){N, c, r, r, H, W}, (int[]){0, 1, 4, 2, 5, 3}, 4,
                   (int64_t[]){N, c, H * r, W * r});
}

tyr_tensor *tyr_pixel_unshuffle_at(tyr_site s, tyr_tensor *x, int64_t r) {
  const char *op = "tyr_pixel_unshuffle";
  if (!image_ok(s, op, x, 4)) return NULL;
  char a[160];
  int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  if (r < 1 || H % r != 0 || W % r != 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "the factor %lld must be >= 1 and divide H and W of x %s", (long long)r,
                     TYR__NN_SHAPE(x, a)),
           NULL;
  return rearrange(s, x, 6, (int64_t[]){N, C, H / r, r, W / r, r}, (int[]){0, 1, 3, 5, 2, 4}, 4,
                   (int64_t[]){N, C * r * r, H / r, W / r});
}

tyr_tensor *tyr_patchify_at(tyr_site s, tyr_tensor *x, int64_t p) {
  const char *op = "tyr_patchify";
  if (!image_ok(s, op, x, 4)) return NULL;
  char a[160];
  int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  if (p < 1 || H % p != 0 || W % p != 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "the patch size %lld must be >= 1 and divide H and W of x %s", (long long)p,
                     TYR__NN_SHAPE(x, a)),
           NULL;
  /* [N, C, h, p, w, p] -> [N, h, w, C, p, p] */
  return rearrange(s, x, 6, (int64_t[]){N, C, H / p, p, W / p, p}, (int[]){0, 2, 4, 1, 3, 5}, 3,
                   (int64_t[]){N, (H / p) * (W / p), C * p * p});
}

tyr_tensor *tyr_unpatchify_at(tyr_site s, tyr_tensor *x, int64_t H, int64_t W, int64_t p) {
  const char *op = "tyr_unpatchify";
  if (!image_ok(s, op, x, 3)) return NULL;
  char a[160];
  int64_t N = x->shape[0], L = x->shape[1], D = x->shape[2];
  if (p < 1 || H < 1 || W < 1 || H % p != 0 || W % p != 0 || L != (H / p) * (W / p) ||
      D % (p * p) != 0)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "x %s must be [N, (H/p)(W/p), C p p] for H %lld, W %lld, p %lld",
                     TYR__NN_SHAPE(x, a), (long long)H, (long long)W, (long long)p),
           NULL;
  int64_t C = D / (p * p);
  return rearrange(s, x, 6, (int64_t[]){N, H / p, W / p, C, p, p}, (int[]){0, 3, 1, 4, 2, 5}, 4,
                   (int64_t[]){N, C, H, W});
}

/* x with an index_select of idx (n entries, i64) along dim */
static tyr_tensor *select_along(tyr_site s, tyr_tensor *x, int dim, const int64_t *idx, int64_t n) {
  tyr_tensor *it = tyr_from_host_at(s, idx, TYR_I64, x->device, 1, &n);
  tyr_tensor *r = it ? tyr_index_select_at(s, x, dim, it) : NULL;
  tyr__nn_drop(it);
  return r;
}

tyr_tensor *tyr_pad2d_at(tyr_site s, tyr_tensor *x, const int64_t pad[4], tyr_pad_mode mode,
                         double value) {
  const char *op = "tyr_pad2d";
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__is_float(s, op, "x", x)) return NULL;
  char a[160];
  if (x->rank < 2)
    return tyr_raise(TYR_ERR_SHAPE, s, op, "x must have rank >= 2 ([..., H, W]), but it is %s",
                     TYR__NN_SHAPE(x, a)),
           NULL;
  if (!pad) return tyr_raise(TYR_ERR_ARG, s, op, "pad is NULL"), NULL;
  int r = x->rank;
  int64_t H = x->shape[r - 2], W = x->shape[r - 1];
  for (int i = 0; i < 4; i++) {
    int64_t len = i < 2 ? W : H;
    if (pad[i] < 0 || (mode == TYR_PAD_REFLECT && pad[i] >= len))
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "padding %lld must be >= 0%s (x is %s; pad is left, right, top, bottom)",
                       (long long)pad[i],
                       mode == TYR_PAD_REFLECT ? " and smaller than the dim" : "",
                       TYR__NN_SHAPE(x, a)),
             NULL;
  }
  if (mode != TYR_PAD_CONSTANT && mode != TYR_PAD_REFLECT)
    return tyr_raise(TYR_ERR_ARG, s, op, "unknown pad mode %d", (int)mode), NULL;
  /* columns (last dim, pad[0], pad[1]), then rows (pad[2], pad[3]) */
  tyr_tensor *cur = x;
  for (int pass = 0; pass < 2 && cur; pass++) {
    int dim = pass == 0 ? r - 1 : r - 2;
    int64_t lo = pad[2 * pass], hi = pad[2 * pass + 1], len = cur->shape[dim];
    if (lo == 0 && hi == 0) continue;
    tyr_tensor *next;
    if (mode == TYR_PAD_REFLECT) {
      int64_t n = len + lo + hi;
      int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
      if (!idx) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of memory"), NULL;
      for (int64_t i = 0; i < n; i++) {
        int64_t j = i - lo;
        if (j < 0) j = -j;
        if (j >= len) j = 2 * (len - 1) - j;
        idx[i] = j;
      }
      next = select_along(s, cur, dim, idx, n);
      free(idx);
    } else {
      int64_t sh[TYR_MAX_RANK];
      for (int i = 0; i < r; i++) sh[i] = cur->shape[i];
      tyr_tensor *parts[3];
      int np = 0;
      tyr_tensor *zl = NULL, *zh = NULL;
      if (lo) {
        sh[dim] = lo;
        zl = parts[np++] = tyr_full_at(s, cur->dtype, cur->device, r, sh, value);
      }
      parts[np++] = cur;
      if (hi) {
        sh[dim] = hi;
        zh = parts[np++] = tyr_full_at(s, cur->dtype, cur->device, r, sh, value);
      }
      next = (!lo || zl) && (!hi || zh) ? tyr_cat_at(s, np, parts, dim) : NULL;
      tyr__nn_drop(zl);
      tyr__nn_drop(zh);
    }
    if (cur != x) tyr__nn_drop(cur);
    cur = next;
  }
  if (cur == x) /* no padding: a recorded view */
    return tyr_reshape_at(s, x, x->rank, x->shape);
  return cur;
}

/* source coordinate of output i along a dim of in -> out */
static double src_coord(int64_t i, int64_t in, int64_t out, bool align_corners) {
  if (align_corners) return out > 1 ? (double)i * (double)(in - 1) / (double)(out - 1) : 0.0;
  double c = ((double)i + 0.5) * (double)in / (double)out - 0.5;
  return c < 0 ? 0 : c;
}

/* x resampled along dim (2 or 3 of [N, C, H, W]) to out entries */
static tyr_tensor *resample(tyr_site s, tyr_tensor *x, int dim, int64_t out, tyr_interp_mode mode,
                            bool align_corners) {
  int64_t in = x->shape[dim];
  int64_t *i0 = malloc(sizeof(int64_t) * (size_t)out), *i1 = malloc(sizeof(int64_t) * (size_t)out);
  double *f = malloc(sizeof(double) * (size_t)out);
  tyr_tensor *r = NULL;
  if (!i0 || !i1 || !f) goto done;
  for (int64_t i = 0; i < out; i++) {
    if (mode == TYR_INTERP_NEAREST) {
      int64_t j = (int64_t)floor((double)i * (double)in / (double)out);
      i0[i] = j < in ? j : in - 1;
      continue;
    }
    double c = src_coord(i, in, out, align_corners);
    int64_t j = (int64_t)floor(c);
    if (j > in - 1) j = in - 1;
    i0[i] = j;
    i1[i] = j + 1 < in ? j + 1 : in - 1;
    f[i] = c - (double)j;
  }
  if (mode == TYR_INTERP_NEAREST) {
    r = select_along(s, x, dim, i0, out);
    goto done;
  }
  {
    /* (1 - f) x[i0] + f x[i1], the weights expanded over the other dims */
    tyr_tensor *a = select_along(s, x, dim, i0, out), *b = select_along(s, x, dim, i1, out);
    int64_t wsh[4] = {1, 1, 1, 1};
    wsh[dim] = out;
    double *wf = malloc(sizeof(double) * (size_t)out), *wg = malloc(sizeof(double) * (size_t)out);
    for (int64_t i = 0; wf && wg && i < out; i++) {
      wf[i] = f[i];
      wg[i] = 1 - f[i];
    }
    tyr_tensor *tf = wf ? tyr_from_host_at(s, wf, TYR_F64, x->device, 4, wsh) : NULL;
    tyr_tensor *tg = wg ? tyr_from_host_at(s, wg, TYR_F64, x->device, 4, wsh) : NULL;
    free(wf);
    free(wg);
    tyr_tensor *cf = tf ? tyr_to_dtype_at(s, tf, x->dtype) : NULL;
    tyr_tensor *cg = tg ? tyr_to_dtype_at(s, tg, x->dtype) : NULL;
    tyr_tensor *ef = a && cf ? tyr_expand_at(s, cf, 4, a->shape) : NULL;
    tyr_tensor *eg = a && cg ? tyr_expand_at(s, cg, 4, a->shape) : NULL;
    tyr_tensor *ma = eg ? tyr_mul_at(s, a, eg) : NULL;
    tyr_tensor *mb = ef && b ? tyr_mul_at(s, b, ef) : NULL;
    r = ma && mb ? tyr_add_at(s, ma, mb) : NULL;
    tyr_tensor *tmp[] = {a, b, ef, eg, ma, mb};
    for (size_t k = 0; k < sizeof tmp / sizeof tmp[0]; k++) tyr__nn_drop(tmp[k]);
    if (cf != tf) tyr__nn_drop(cf);
    if (cg != tg) tyr__nn_drop(cg);
    tyr__nn_drop(tf);
    tyr__nn_drop(tg);
  }
done:
  free(i0);
  free(i1);
  free(f);
  return r;
}

tyr_tensor *tyr_interpolate_at(tyr_site s, tyr_tensor *x, int64_t oh, int64_t ow,
                               tyr_interp_mode mode, bool align_corners) {
  const char *op = "tyr_interpolate";
  if (!image_ok(s, op, x, 4) || !tyr__is_float(s, op, "x", x)) return NULL;
  char a[160];
  if (oh < 1 || ow < 1 || x->shape[2] < 1 || x->shape[3] < 1)
    return tyr_raise(TYR_ERR_SHAPE, s, op,
                     "the output size %lld x %lld and x's H and W must be positive (x is %s)",
                     (long long)oh, (long long)ow, TYR__NN_SHAPE(x, a)),
           NULL;
  if (mode != TYR_INTERP_NEAREST && mode != TYR_INTERP_BILINEAR)
    return tyr_raise(TYR_ERR_ARG, s, op, "unknown interpolation mode %d", (int)mode), NULL;
  tyr_tensor *h = resample(s, x, 2, oh, mode, align_corners);
  tyr_tensor *r = h ? resample(s, h, 3, ow, mode, align_corners) : NULL;
  tyr__nn_drop(h);
  return r;
}
