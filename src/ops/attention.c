/* Scaled-dot-product attention: shape rules, options, dispatch to the
 * backend's fused kernel (which saves each row's log-sum-exp), backward;
 * and tyr_sdpa_qkv, the same on a packed qkv projection. */
#include <math.h>

#include "ops/nn_util.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_nn.h"

static const char *const OP = "tyr_sdpa";

/* t as the backend's operand of dtype dt: t itself on the CPU when its
 * last dim is contiguous (the kernels take strided heads), else a
 * contiguous copy (release with tyr__nn_release). */
static tyr_tensor *sdpa_prep(tyr_site s, tyr_tensor *t, tyr_dtype dt) {
  if (t && t->device.type == TYR_CPU && t->dtype == dt && t->rank == 4 &&
      (t->stride[3] == 1 || t->shape[3] == 1))
    return t;
  return tyr__nn_prep(s, OP, t, dt);
}

static void sdpa_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  tyr_tensor *lse = n->saved[0], *mask = n->saved[1], *doc = n->saved[3];
  tyr_tensor *outk = n->saved[2] ? n->saved[2] : n->out;
  tyr_dtype kdt = tyr__nn_kdt(q);
  tyr_tensor *dq = tyr__new(s, OP, kdt, q->device, 4, q->shape);
  tyr_tensor *dk = tyr__new(s, OP, kdt, q->device, 4, k->shape);
  tyr_tensor *dv = tyr__new(s, OP, kdt, q->device, 4, v->shape);
  if (!dq || !dk || !dv) return;
  if (tyr_numel(q) > 0 && tyr_numel(k) > 0) {
    tyr_tensor *qk = sdpa_prep(s, q, kdt), *kk = sdpa_prep(s, k, kdt);
    tyr_tensor *vk = sdpa_prep(s, v, kdt), *gk = sdpa_prep(s, g, kdt);
    if (!qk || !kk || !vk || !gk) return;
    tyr__be(q)->sdpa_backward(dq, dk, dv, gk, qk, kk, vk, outk, lse, mask, doc, n->i[0] != 0,
                              n->i[1], n->f[0]);
  } else {
    const tyr_backend *be = tyr__be(q);
    be->fill(dq, 0.0);
    be->fill(dk, 0.0);
    be->fill(dv, 0.0);
  }
  if (tyr__node_needs(n, 0)) gin[0] = tyr__nn_finish(s, OP, dq, q->dtype);
  if (tyr__node_needs(n, 1)) gin[1] = tyr__nn_finish(s, OP, dk, k->dtype);
  if (tyr__node_needs(n, 2)) gin[2] = tyr__nn_finish(s, OP, dv, v->dtype);
}

/* Checks operands and options; fills *causal, *window, *scale. */
static bool sdpa_check(tyr_site s, const char *OP, tyr_tensor *q, tyr_tensor *k, tyr_tensor *v,
                       const tyr_sdpa_opts *o, bool *causal, int64_t *window, double *scale) {
  if (!tyr__arg_ok(s, OP, "q", q) || !tyr__arg_ok(s, OP, "k", k) || !tyr__arg_ok(s, OP, "v", v))
    return false;
  if (!tyr__is_float(s, OP, "q", q) || !tyr__same_dtype(s, OP, q, k) ||
      !tyr__same_dtype(s, OP, q, v) || !tyr__same_device(s, OP, q, k) ||
      !tyr__same_device(s, OP, q, v))
    return false;
  char a[160], b[160], c[160];
  if (q->rank != 4 || k->rank != 4 || v->rank != 4) {
    tyr_raise(TYR_ERR_SHAPE, s, OP,
              "q, k and v must have rank 4 (q [B, Hq, T, D], k and v [B, Hkv, S, D]), but q is "
              "%s, k is %s, v is %s",
              TYR__NN_SHAPE(q, a), TYR__NN_SHAPE(k, b), TYR__NN_SHAPE(v, c));
    return false;
  }
  const char *why = NULL;
  if (q->shape[0] != k->shape[0] || q->shape[0] != v->shape[0])
    why = "batch sizes differ";
  else if (q->shape[3] != k->shape[3] || q->shape[3] != v->shape[3])
    why = "head dims differ";
  else if (!tyr__shape_eq(k, v))
    why = "k and v have different shapes";
  else if (k->shape[1] == 0 || q->shape[1] % k->shape[1] != 0)
    why = "the number of query heads is not a multiple of the number of key/value heads";
  if (why) {
    tyr_raise(TYR_ERR_SHAPE, s, OP, "%s: q is %s, k is %s, v is %s", why, TYR__NN_SHAPE(q, a),
              TYR__NN_SHAPE(k, b), TYR__NN_SHAPE(v, c));
    return false;
  }
  *causal = o && o->causal;
  *window = o ? o->window : 0;
  *scale = o ? o->scale : 0;
  if (*window < 0) {
    tyr_raise(TYR_ERR_ARG, s, OP, "window must be >= 0 (0: none), got %lld", (long long)*window);
    return false;
  }
  if (!isfinite(*scale)) {
    tyr_raise(TYR_ERR_ARG, s, OP, "scale must be finite (0: 1/sqrt(D)), got %g", *scale);
    return false;
  }
  if (*scale == 0) *scale = q->shape[3] > 0 ? 1.0 / sqrt((double)q->shape[3]) : 1.0;
  tyr_tensor *m = o ? o->mask : NULL;
  if (m) {
    if (m->dtype != TYR_BOOL && m->dtype != TYR_U8) {
      tyr_raise(TYR_ERR_DTYPE, s, OP, "mask must be bool or u8, not %s", tyr_dtype_name(m->dtype));
      return false;
    }
    if (!tyr__same_device(s, OP, q, m)) return false;
    if (m->rank != 2 || m->shape[0] != q->shape[2] || m->shape[1] != k->shape[2]) {
      tyr_raise(TYR_ERR_SHAPE, s, OP,
                "q is %s and k is %s, so mask must be [%lld, %lld], but it is %s",
                TYR__NN_SHAPE(q, a), TYR__NN_SHAPE(k, b), (long long)q->shape[2],
                (long long)k->shape[2], TYR__NN_SHAPE(m, c));
      return false;
    }
  }
  tyr_tensor *d = o ? o->doc_ids : NULL;
  if (d) {
    if (d->dtype != TYR_I32) {
      tyr_raise(TYR_ERR_DTYPE, s, OP, "doc_ids must be i32, not %s", tyr_dtype_name(d->dtype));
      return false;
    }
    if (!tyr__same_device(s, OP, q, d)) return false;
    if (d->rank != 2 || d->shape[0] != k->shape[0] || d->shape[1] != k->shape[2]) {
      tyr_raise(TYR_ERR_SHAPE, s, OP,
                "q is %s and k is %s, so doc_ids must be [%lld, %lld] (batch, keys), but it is %s",
                TYR__NN_SHAPE(q, a), TYR__NN_SHAPE(k, b), (long long)k->shape[0],
                (long long)k->shape[2], TYR__NN_SHAPE(d, c));
      return false;
    }
  }
  const tyr_backend *be = tyr_backend_get(s, OP, q->device);
  return be && tyr__nn_has(s, OP, q, (const void *)be->sdpa, "attention") &&
         tyr__nn_has(s, OP, q, (const void *)be->sdpa_backward, "attention backward");
}

tyr_tensor *tyr_sdpa_at(tyr_site s, tyr_tensor *q, tyr_tensor *k, tyr_tensor *v,
                        const tyr_sdpa_opts *opts) {
  bool causal;
  int64_t window;
  double scale;
  if (!sdpa_check(s, OP, q, k, v, opts, &causal, &window, &scale)) return NULL;
  tyr_dtype kdt = tyr__nn_kdt(q);
  int64_t lsh[3] = {q->shape[0], q->shape[1], q->shape[2]};
  tyr_tensor *qk = sdpa_prep(s, q, kdt), *kk = sdpa_prep(s, k, kdt);
  tyr_tensor *vk = sdpa_prep(s, v, kdt);
  tyr_tensor *mk = opts && opts->mask ? tyr__contig(s, OP, opts->mask) : NULL;
  tyr_tensor *dk = opts && opts->doc_ids ? tyr__contig(s, OP, opts->doc_ids) : NULL;
  tyr_tensor *outk = tyr__new(s, OP, kdt, q->device, 4, q->shape);
  /* lse is kept in f32 for half-precision inputs (the backward exponentiates
   * differences against it) */
  tyr_dtype ldt = kdt == TYR_BF16 || kdt == TYR_F16 ? TYR_F32 : kdt;
  tyr_tensor *lse = tyr__new(s, OP, ldt, q->device, 3, lsh);
  tyr_tensor *out = NULL;
  bool ok = qk && kk && vk && (!opts || !opts->mask || mk) && (!opts || !opts->doc_ids || dk) &&
            outk && lse;
  if (ok) {
    if (tyr_numel(outk) > 0) {
      tyr__be(q)->sdpa(outk, lse, qk, kk, vk, mk, dk, causal, window, scale);
    } else if (tyr_numel(lse) > 0) {
      tyr__be(q)->fill(lse, -INFINITY);
    }
    out = outk->dtype == q->dtype ? outk : tyr__convert(s, OP, outk, q->dtype);
  }
  tyr__nn_release(qk, q);
  tyr__nn_release(kk, k);
  tyr__nn_release(vk, v);
  if (out) {
    tyr_node *n = TYR_RECORD(s, OP, out, sdpa_backward, q, k, v);
    tyr__node_save(n, 0, lse);
    tyr__node_save(n, 1, mk);
    if (out != outk) tyr__node_save(n, 2, outk); /* never out itself: that would be a cycle */
    tyr__node_save(n, 3, dk);
    if (n) {
      n->i[0] = causal;
      n->i[1] = window;
      n->f[0] = scale;
    }
  }
  if (outk != out) tyr__nn_drop(outk);
  if (mk && mk != opts->mask) tyr__nn_drop(mk);
  if (dk && dk != opts->doc_ids) tyr__nn_drop(dk);
  tyr__nn_drop(lse);
  return out;
}

/* ---- attention on a packed qkv projection -------------------------------------------
 * q, k and v are read where a fused projection put them and the output is
 * written with its heads side by side: the CUDA kernels take these
 * strided views (no layout copies), the CPU backend gathers them in one
 * pass (src/cpu/attention.c), and the gradient of qkv is written into one
 * tensor.  Half precision on the CPU (computed in f32) and other devices:
 * the same through the layout ops and tyr_sdpa. */
static const char *const OPQ = "tyr_sdpa_qkv";

/* base's storage as a [B, H, T, D] descriptor (tyr__desc) with the given
 * strides, offset elements past base's own */
static tyr_tensor heads_view(const tyr_tensor *base, int64_t B, int64_t H, int64_t T, int64_t D,
                             int64_t sb, int64_t sh, int64_t st, int64_t offset) {
  return tyr__desc(base, 4, (int64_t[]){B, H, T, D}, (int64_t[]){sb, sh, st, 1},
                   base->offset + offset);
}

/* q, k, v of a contiguous packed [B, T, (Hq + 2 Hkv) D] tensor */
static void qkv_views(const tyr_tensor *p, int64_t Hq, int64_t Hkv, tyr_tensor *q, tyr_tensor *k,
                      tyr_tensor *v) {
  int64_t B = p->shape[0], T = p->shape[1], W = p->shape[2], D = W / (Hq + 2 * Hkv);
  *q = heads_view(p, B, Hq, T, D, T * W, D, W, 0);
  *k = heads_view(p, B, Hkv, T, D, T * W, D, W, Hq * D);
  *v = heads_view(p, B, Hkv, T, D, T * W, D, W, (Hq + Hkv) * D);
}

/* a contiguous [B, T, H * D] tensor as [B, H, T, D] */
static tyr_tensor merged_view(const tyr_tensor *t, int64_t H) {
  int64_t B = t->shape[0], T = t->shape[1], C = t->shape[2];
  return heads_view(t, B, H, T, C / H, T * C, C / H, C, 0);
}

static void sdpa_qkv_backward(tyr_node *n, tyr_tensor *g, tyr_tensor **gin) {
  tyr_site s = n->site;
  tyr_tensor *qkv = n->in[0], *lse = n->saved[0], *mask = n->saved[1], *doc = n->saved[2];
  tyr_tensor *out = n->out;
  int64_t Hq = n->i[2], Hkv = n->i[3];
  tyr_tensor *dqkv = tyr__new(s, OPQ, qkv->dtype, qkv->device, 3, qkv->shape);
  tyr_tensor *gc = tyr__contig(s, OPQ, g);
  if (!dqkv || !gc) return;
  tyr_tensor q, k, v, dq, dk, dv;
  qkv_views(qkv, Hq, Hkv, &q, &k, &v);
  qkv_views(dqkv, Hq, Hkv, &dq, &dk, &dv);
  tyr_tensor o = merged_view(out, Hq), go = merged_view(gc, Hq);
  if (tyr_numel(qkv) > 0)
    tyr__be(qkv)->sdpa_backward(&dq, &dk, &dv, &go, &q, &k, &v, &o, lse, mask, doc, n->i[0] != 0,
                                n->i[1], n->f[0]);
  if (gc != g) tyr__nn_drop(gc);
  gin[0] = dqkv;
}

tyr_tensor *tyr_sdpa_qkv_at(tyr_site s, tyr_tensor *qkv, int64_t n_head, int64_t n_kv_head,
                            const tyr_sdpa_opts *opts) {
  if (!tyr__arg_ok(s, OPQ, "qkv", qkv) || !tyr__is_float(s, OPQ, "qkv", qkv)) return NULL;
  if (n_kv_head == 0) n_kv_head = n_head;
  char a[160];
  if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head) {
    tyr_raise(TYR_ERR_ARG, s, OPQ,
              "n_head (%lld) must be a positive multiple of n_kv_head (%lld, 0: n_head)",
              (long long)n_head, (long long)n_kv_head);
    return NULL;
  }
  int64_t parts = n_head + 2 * n_kv_head;
  if (qkv->rank != 3 || qkv->shape[2] % parts || qkv->shape[2] == 0) {
    tyr_raise(TYR_ERR_SHAPE, s, OPQ,
              "qkv must be [B, T, (n_head + 2 n_kv_head) D] = [B, T, %lld D] with D >= 1, got %s",
              (long long)parts, TYR__NN_SHAPE(qkv, a));
    return NULL;
  }
  int64_t B = qkv->shape[0], T = qkv->shape[1], D = qkv->shape[2] / parts;
  if ((qkv->device.type != TYR_CUDA && qkv->device.type != TYR_CPU) || tyr__needs_f32(qkv) ||
      !tyr_is_contiguous(qkv)) {
    int64_t C = n_head * D, KV = n_kv_head * D;
    tyr_tensor *q = tyr_narrow_at(s, qkv, 2, 0, C), *k = tyr_narrow_at(s, qkv, 2, C, KV);
    tyr_tensor *v = tyr_narrow_at(s, qkv, 2, C + KV, KV);
    q = tyr_transpose_at(s, tyr_reshape_at(s, q, 4, (int64_t[]){B, T, n_head, D}), 1, 2);
    k = tyr_transpose_at(s, tyr_reshape_at(s, k, 4, (int64_t[]){B, T, n_kv_head, D}), 1, 2);
    v = tyr_transpose_at(s, tyr_reshape_at(s, v, 4, (int64_t[]){B, T, n_kv_head, D}), 1, 2);
    if (!q || !k || !v) return NULL;
    tyr_tensor *y = tyr_sdpa_at(s, q, k, v, opts);
    return y ? tyr_reshape_at(s, tyr_transpose_at(s, y, 1, 2), 3, (int64_t[]){B, T, C}) : NULL;
  }
  tyr_tensor *pc = qkv;
  tyr_tensor q, k, v;
  qkv_views(pc, n_head, n_kv_head, &q, &k, &v);
  bool causal;
  int64_t window;
  double scale;
  tyr_tensor *out = NULL, *lse = NULL, *mk = NULL, *dk = NULL;
  if (!sdpa_check(s, OPQ, &q, &k, &v, opts, &causal, &window, &scale)) goto done;
  mk = opts && opts->mask ? tyr__contig(s, OPQ, opts->mask) : NULL;
  dk = opts && opts->doc_ids ? tyr__contig(s, OPQ, opts->doc_ids) : NULL;
  out = tyr__new(s, OPQ, qkv->dtype, qkv->device, 3, (int64_t[]){B, T, n_head * D});
  lse = tyr__new(s, OPQ, qkv->dtype == TYR_F64 ? TYR_F64 : TYR_F32, qkv->device, 3,
                 (int64_t[]){B, n_head, T});
  if (!out || !lse || (opts && opts->mask && !mk) || (opts && opts->doc_ids && !dk)) {
    tyr__nn_drop(out);
    out = NULL;
    goto done;
  }
  if (tyr_numel(out) > 0) {
    tyr_tensor o = merged_view(out, n_head);
    tyr__be(qkv)->sdpa(&o, lse, &q, &k, &v, mk, dk, causal, window, scale);
  }
  tyr_node *nd = TYR_RECORD(s, OPQ, out, sdpa_qkv_backward, pc);
  tyr__node_save(nd, 0, lse);
  tyr__node_save(nd, 1, mk);
  tyr__node_save(nd, 2, dk);
  if (nd) {
    nd->i[0] = causal;
    nd->i[1] = window;
    nd->i[2] = n_head;
    nd->i[3] = n_kv_head;
    nd->f[0] = scale;
  }
done:
  if (mk && mk != opts->mask) tyr__nn_drop(mk);
  if (dk && dk != opts->doc_ids) tyr__nn_drop(dk);
  tyr__nn_drop(lse);
  return out;
}
