/* Muon combined with AdamW (see <tyr/muon.h>).  The orthogonalisation is
 * written with the library's ops (matmul, transpose, scalar ops), so that
 * it runs on every backend: in f32 on the CPU, in bf16 on CUDA. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "tyr/autograd.h"
#include "tyr/muon.h"
#include "tyr/ops_create.h"
#include "tyr/ops_elementwise.h"
#include "tyr/ops_layout.h"
#include "tyr/ops_linalg.h"
#include "tyr/ops_reduce.h"

/* Polar Express (Amsel, Persson, Musco, Gower 2025): five (a, b, c) */
static const double PE[5][3] = {
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};
static const double NS[3] = {3.4445, -4.7750, 2.0315};

tyr_muon_config tyr_muon_default_config(double lr, double adamw_lr) {
  tyr_muon_config c;
  memset(&c, 0, sizeof c);
  c.lr = lr;
  c.momentum = 0.95;
  c.nesterov = true;
  c.ortho = TYR_MUON_NEWTON_SCHULZ;
  c.ns_steps = 5;
  c.ns_eps = 1e-7;
  c.pe_safety = 0.01;
  c.normuon_beta2 = 0.95;
  c.adamw = tyr_adamw_config(adamw_lr);
  c.adamw.beta2 = 0.95;
  c.adamw.weight_decay = 0;
  c.adamw_names = "wte,wpe,embed,lm_head";
  return c;
}

static bool name_listed(const char *name, const char *list) {
  if (!list) return false;
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n > 0) {
      char pat[128];
      if (n >= sizeof pat) n = sizeof pat - 1;
      memcpy(pat, p, n);
      pat[n] = 0;
      if (strstr(name, pat)) return true;
    }
    if (!e) break;
    p = e + 1;
  }
  return false;
}

int tyr_muon_orthogonalize_at(tyr_site s, const tyr_muon_config *cfg, tyr_tensor *out,
                              tyr_tensor *u) {
  const char *op = "tyr_muon_orthogonalize";
  if (!u || !out || u->rank != 2 || out->rank != 2 || u->shape[0] != out->shape[0] ||
      u->shape[1] != out->shape[1])
    return tyr_raise(TYR_ERR_SHAPE, s, op, "needs two matrices of one shape");
  TYR_SCOPE;
  TYR_NO_GRAD;
  tyr_dtype dt = cfg->ns_dtype ? cfg->ns_dtype : u->device.type == TYR_CUDA ? TYR_BF16 : TYR_F32;
  bool tall = u->shape[0] > u->shape[1];
  tyr_tensor *x = tyr_to_dtype_at(s, u, dt);
  if (!x) return TYR_ERR_STATE;
  if (tall) x = tyr_contiguous_at(s, tyr_transpose_at(s, x, 0, 1));
  if (!x->storage) return TYR_ERR_STATE;
  double norm;
  {
    tyr_tensor *xf = dt == TYR_F32 ? x : tyr_to_dtype_at(s, x, TYR_F32);
    norm = sqrt(tyr_backend_lookup(xf->device)->sum_squares(xf));
  }
  bool pe = cfg->ortho == TYR_MUON_POLAR_EXPRESS;
  double safety = pe ? 1 + cfg->pe_safety : 1.0;
  x = tyr_mul_scalar_at(s, x, 1.0 / (norm * safety + cfg->ns_eps));
  int steps = pe ? 5 : cfg->ns_steps;
  for (int k = 0; k < steps && x; k++) {
    double a, b, c;
    if (pe) {
      a = PE[k][0] / safety, b = PE[k][1] / pow(safety, 3), c = PE[k][2] / pow(safety, 5);
    } else {
      a = NS[0], b = NS[1], c = NS[2];
    }
    tyr_tensor *A = tyr_matmul_at(s, x, tyr_transpose_at(s, x, 0, 1));
    tyr_tensor *B =
        tyr_add_at(s, tyr_mul_scalar_at(s, A, b), tyr_mul_scalar_at(s, tyr_matmul_at(s, A, A), c));
    x = tyr_add_at(s, tyr_mul_scalar_at(s, x, a), tyr_matmul_at(s, B, x));
  }
  if (!x) return TYR_ERR_STATE;
  if (tall) x = tyr_transpose_at(s, x, 0, 1);
  return tyr_copy_at(s, out, x);
}

int tyr_muon_init_at(tyr_site s, tyr_muon *m, tyr_params *ps, const tyr_muon_config *cfg,
                     tyr_dist *pg) {
  const char *op = "tyr_muon_init";
  memset(m, 0, sizeof *m);
  if (!ps || !cfg) return tyr_raise(TYR_ERR_ARG, s, op, "parameters or config are NULL");
  if (!(cfg->lr >= 0) || !(cfg->momentum >= 0 && cfg->momentum < 1))
    return tyr_raise(TYR_ERR_ARG, s, op, "lr must be >= 0 and momentum in [0, 1), got %g, %g",
                     cfg->lr, cfg->momentum);
  if (cfg->ortho == TYR_MUON_NEWTON_SCHULZ && (cfg->ns_steps < 1 || cfg->ns_steps > 100))
    return tyr_raise(TYR_ERR_ARG, s, op, "ns_steps must be in 1..100, got %d", cfg->ns_steps);
  m->cfg = *cfg;
  m->params = ps;
  m->pg = pg;
  m->muon_idx = calloc((size_t)ps->n + 1, sizeof *m->muon_idx);
  m->buf = calloc((size_t)ps->n + 1, sizeof *m->buf);
  m->v = calloc((size_t)ps->n + 1, sizeof *m->v);
  tyr_params_init(&m->rest);
  tyr_params_init(&m->matrices);
  m->rest.items = calloc((size_t)ps->n + 1, sizeof *m->rest.items);
  m->matrices.items = calloc((size_t)ps->n + 1, sizeof *m->matrices.items);
  if (!m->muon_idx || !m->buf || !m->v || !m->rest.items || !m->matrices.items) {
    tyr_muon_free(m);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  m->rest.cap = m->matrices.cap = ps->n;
  for (int i = 0; i < ps->n; i++) {
    tyr_param *p = &ps->items[i];
    if (p->t->rank == 2 && !name_listed(p->name, cfg->adamw_names)) {
      m->matrices.items[m->matrices.n++] = *p;
      int k = m->nmuon++;
      m->muon_idx[k] = i;
      m->buf[k] = tyr_keep_e(tyr_zeros_at(s, TYR_F32, p->t->device, 2, p->t->shape));
      if (!m->buf[k]) goto fail;
      if (cfg->normuon) {
        bool tallm = p->t->shape[0] >= p->t->shape[1];
        int64_t vs[2] = {tallm ? p->t->shape[0] : 1, tallm ? 1 : p->t->shape[1]};
        m->v[k] = tyr_keep_e(tyr_zeros_at(s, TYR_F32, p->t->device, 2, vs));
        if (!m->v[k]) goto fail;
      }
    } else {
      m->rest.items[m->rest.n++] = *p;
    }
  }
  if (pg && tyr_dist_world_size(pg) > 1 && m->rest.n > 0 && cfg->adamw.kind == TYR_OPTIM_ADAMW) {
    /* DistAdam: the moments sharded over the ranks (tyr_zero1 checks the
       groups and that every rank holds the same parameters) */
    if (!(m->adamw_zero = tyr_zero1_init_at(s, pg, &m->rest, cfg->adamw))) goto fail;
    tyr_zero1_set_grads_averaged(m->adamw_zero, !cfg->reduce_adamw_grads);
  } else if (tyr_optim_init_at(s, &m->adamw, &m->rest, cfg->adamw)) {
    goto fail;
  }
  return 0;
fail:
  tyr_muon_free(m);
  return TYR_ERR_STATE;
}

void tyr_muon_free(tyr_muon *m) {
  if (m->buf)
    for (int k = 0; k < m->nmuon; k++) tyr_tensor_free(m->buf[k]);
  if (m->v)
    for (int k = 0; k < m->nmuon; k++) tyr_tensor_free(m->v[k]);
  if (m->adamw.params) tyr_optim_free(&m->adamw);
  tyr_zero1_free(m->adamw_zero);
  free(m->rest.items);
  free(m->matrices.items);
  free(m->muon_idx);
  free(m->buf);
  free(m->v);
  memset(m, 0, sizeof *m);
}

bool tyr_muon_is_muon_param(const tyr_muon *m, int i) {
  for (int k = 0; k < m->nmuon; k++)
    if (m->muon_idx[k] == i) return true;
  return false;
}

/* The momentum update (every rank, every matrix) and the update direction. */
static tyr_tensor *momentum_update(tyr_site s, tyr_muon *m, int k) {
  tyr_tensor *p = m->params->items[m->muon_idx[k]].t, *g = p->grad;
  tyr_tensor *g32 = g->dtype == TYR_F32 ? g : tyr_to_dtype_at(s, g, TYR_F32);
  double mu = m->cfg.momentum;
  tyr_tensor *nb =
      tyr_add_at(s, tyr_mul_scalar_at(s, m->buf[k], mu), tyr_mul_scalar_at(s, g32, 1 - mu));
  if (!nb || tyr_copy_at(s, m->buf[k], nb)) return NULL;
  if (!m->cfg.nesterov) return m->buf[k];
  return tyr_add_at(s, tyr_mul_scalar_at(s, g32, 1 - mu), tyr_mul_scalar_at(s, m->buf[k], mu));
}

/* NorMuon: o rescaled along its longer side by the running second moment,
 * keeping its Frobenius norm. */
static tyr_tensor *normuon(tyr_site s, tyr_muon *m, int k, tyr_tensor *o) {
  bool tallm = o->shape[0] >= o->shape[1];
  int red = tallm ? 1 : 0;
  tyr_tensor *sq = tyr_mul_at(s, o, o);
  tyr_tensor *vmean = tyr_mean_dim_at(s, sq, red, true);
  double b2 = m->cfg.normuon_beta2;
  tyr_tensor *nv =
      tyr_add_at(s, tyr_mul_scalar_at(s, m->v[k], b2), tyr_mul_scalar_at(s, vmean, 1 - b2));
  if (!nv || tyr_copy_at(s, m->v[k], nv)) return NULL;
  tyr_tensor *step = tyr_rsqrt_at(s, tyr_clamp_at(s, m->v[k], 1e-10, INFINITY));
  const tyr_backend *be = tyr_backend_lookup(o->device);
  double before = sqrt(be->sum_squares(o));
  tyr_tensor *scaled =
      tallm ? tyr_mul_col_at(s, o, tyr_reshape_at(s, step, 1, (int64_t[]){o->shape[0]}))
            : tyr_mul_row_at(s, o, tyr_reshape_at(s, step, 1, (int64_t[]){o->shape[1]}));
  if (!scaled) return NULL;
  double after = sqrt(be->sum_squares(scaled));
  return tyr_mul_scalar_at(s, scaled, before / fmax(after, 1e-10));
}

/* The update of Muon matrix k given its orthogonalised direction o (f32). */
static int apply(tyr_site s, tyr_muon *m, int k, tyr_tensor *o, double lr) {
  tyr_tensor *p = m->params->items[m->muon_idx[k]].t;
  double rows = (double)p->shape[0], cols = (double)p->shape[1];
  double scale = sqrt(fmax(1.0, rows / cols));
  double wd = m->cfg.weight_decay;
  tyr_tensor *pf = p->dtype == TYR_F32 ? p : tyr_to_dtype_at(s, p, TYR_F32);
  tyr_tensor *decayed;
  if (wd == 0) {
    decayed = pf;
  } else if (m->cfg.cautious_wd) {
    tyr_tensor *same =
        tyr_gt_at(s, tyr_mul_at(s, o, pf), tyr_zeros_at(s, TYR_F32, p->device, 2, p->shape));
    decayed = tyr_where_at(s, same, tyr_mul_scalar_at(s, pf, 1 - lr * wd), pf);
  } else {
    decayed = tyr_mul_scalar_at(s, pf, 1 - lr * wd);
  }
  tyr_tensor *np = tyr_sub_at(s, decayed, tyr_mul_scalar_at(s, o, lr * scale));
  return np ? tyr_copy_at(s, p, np) : TYR_ERR_STATE;
}

/* The orthogonalised direction of matrix k (f32), momentum already done. */
static tyr_tensor *direction(tyr_site s, tyr_muon *m, int k, tyr_tensor *u) {
  tyr_tensor *o = tyr_empty_at(s, TYR_F32, u->device, 2, u->shape);
  if (!o || tyr_muon_orthogonalize_at(s, &m->cfg, o, u)) return NULL;
  if (m->cfg.normuon) o = normuon(s, m, k, o);
  return o;
}

int tyr_muon_step_at(tyr_site s, tyr_muon *m, double f) {
  const char *op = "tyr_muon_step";
  if (!m->params) return tyr_raise(TYR_ERR_STATE, s, op, "optimizer is not initialised");
  if (!(f >= 0)) f = 1;
  double lr = m->cfg.lr * f;
  int N = m->pg ? tyr_dist_world_size(m->pg) : 1, R = m->pg ? tyr_dist_rank(m->pg) : 0;
  m->step++;
  TYR_SCOPE;
  TYR_NO_GRAD;
  /* momentum for every matrix with a gradient (on every rank) */
  tyr_tensor **u = calloc((size_t)m->nmuon + 1, sizeof *u);
  if (!u) return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  int st = 0;
  for (int k = 0; k < m->nmuon && !st; k++) {
    if (!m->params->items[m->muon_idx[k]].t->grad) continue;
    if (!(u[k] = momentum_update(s, m, k))) st = TYR_ERR_STATE;
  }
  if (N == 1) {
    for (int k = 0; k < m->nmuon && !st; k++) {
      if (!u[k]) continue;
      tyr_tensor *o = direction(s, m, k, u[k]);
      st = o ? apply(s, m, k, o, lr) : TYR_ERR_STATE;
    }
  } else {
    /* deal the matrices of each shape to the ranks in turn; per round of
     * N matrices, each rank updates its own and an all-gather shares them */
    bool *done = calloc((size_t)m->nmuon + 1, sizeof *done);
    int *group = calloc((size_t)m->nmuon + 1, sizeof *group);
    if (!done || !group) st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    for (int k0 = 0; k0 < m->nmuon && !st; k0++) {
      if (done[k0] || !u[k0]) continue;
      tyr_tensor *p0 = m->params->items[m->muon_idx[k0]].t;
      int ng = 0;
      for (int k = k0; k < m->nmuon; k++) {
        tyr_tensor *p = m->params->items[m->muon_idx[k]].t;
        if (!done[k] && u[k] && p->shape[0] == p0->shape[0] && p->shape[1] == p0->shape[1] &&
            p->dtype == p0->dtype) {
          group[ng++] = k;
          done[k] = true;
        }
      }
      int64_t numel = tyr_numel(p0);
      for (int r0 = 0; r0 < ng && !st; r0 += N) {
        TYR_SCOPE;
        tyr_tensor *mine = tyr_zeros_at(s, p0->dtype, p0->device, 1, (int64_t[]){numel});
        tyr_tensor *all = tyr_empty_at(s, p0->dtype, p0->device, 1, (int64_t[]){numel * N});
        if (!mine || !all) {
          st = TYR_ERR_MEMORY;
          break;
        }
        if (r0 + R < ng) {
          int k = group[r0 + R];
          tyr_tensor *o = direction(s, m, k, u[k]);
          st = o ? apply(s, m, k, o, lr) : TYR_ERR_STATE;
          if (!st)
            st = tyr_copy_at(
                s, mine,
                tyr_reshape_at(s, m->params->items[m->muon_idx[k]].t, 1, (int64_t[]){numel}));
        }
        if (!st) st = tyr_dist_all_gather_at(s, m->pg, all, mine);
        for (int r = 0; r < N && r0 + r < ng && !st; r++) {
          if (r == R) continue;
          tyr_tensor *p = m->params->items[m->muon_idx[group[r0 + r]]].t;
          tyr_tensor *part =
              tyr_view_raw(all, 2, p->shape, (int64_t[]){p->shape[1], 1}, all->offset + r * numel);
          st = tyr_copy_at(s, p, part);
        }
        /* NorMuon's second moments too, so that every rank (and a
         * checkpoint) holds them all */
        if (m->cfg.normuon && !st) {
          tyr_tensor *v0 = m->v[group[r0]];
          int64_t nv = tyr_numel(v0);
          tyr_tensor *vm = tyr_zeros_at(s, TYR_F32, p0->device, 1, (int64_t[]){nv});
          tyr_tensor *va = tyr_empty_at(s, TYR_F32, p0->device, 1, (int64_t[]){nv * N});
          if (!vm || !va) {
            st = TYR_ERR_MEMORY;
            break;
          }
          if (r0 + R < ng)
            st = tyr_copy_at(s, vm, tyr_reshape_at(s, m->v[group[r0 + R]], 1, (int64_t[]){nv}));
          if (!st) st = tyr_dist_all_gather_at(s, m->pg, va, vm);
          for (int r = 0; r < N && r0 + r < ng && !st; r++) {
            if (r == R) continue;
            tyr_tensor *vv = m->v[group[r0 + r]];
            tyr_tensor *part =
                tyr_view_raw(va, 2, vv->shape, (int64_t[]){vv->shape[1], 1}, va->offset + r * nv);
            st = tyr_copy_at(s, vv, part);
          }
        }
      }
    }
    free(done);
    free(group);
  }
  free(u);
  if (st) return st;
  if (m->adamw_zero) return tyr_zero1_step_at(s, m->adamw_zero, m->cfg.adamw.lr * f, 0, NULL);
  return tyr_optim_step_at(s, &m->adamw, m->cfg.adamw.lr * f);
}

int tyr_muon_checkpoint_params_at(tyr_site s, tyr_muon *m, tyr_params *out) {
  tyr_params_init(out);
  int n = m->params->n + 2 * m->nmuon;
  out->items = calloc((size_t)n + 1, sizeof *out->items);
  if (!out->items)
    return tyr_raise(TYR_ERR_MEMORY, s, "tyr_muon_checkpoint_params", "out of host memory");
  out->cap = n;
  for (int i = 0; i < m->params->n; i++) out->items[out->n++] = m->params->items[i];
  for (int k = 0; k < m->nmuon; k++) {
    const char *name = m->params->items[m->muon_idx[k]].name;
    tyr_param *q = &out->items[out->n++];
    snprintf(q->name, sizeof q->name, "optim.%.100s.muon", name);
    q->t = m->buf[k];
    if (m->v[k]) {
      q = &out->items[out->n++];
      snprintf(q->name, sizeof q->name, "optim.%.100s.normuon", name);
      q->t = m->v[k];
    }
  }
  return 0;
}

void tyr_muon_checkpoint_params_release(tyr_params *ps) {
  free(ps->items);
  memset(ps, 0, sizeof *ps);
}

tyr_optim *tyr_muon_gather_adamw_at(tyr_site s, tyr_muon *m) {
  const char *op = "tyr_muon_gather_adamw";
  if (!m || !m->params) {
    tyr_raise(TYR_ERR_STATE, s, op, "optimizer is not initialised");
    return NULL;
  }
  if (!m->adamw_zero) return &m->adamw;
  tyr_optim *whole = calloc(1, sizeof *whole);
  if (!whole) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  if (tyr_optim_init_at(s, whole, &m->rest, m->cfg.adamw) ||
      tyr_zero1_gather_state_at(s, m->adamw_zero, whole)) {
    tyr_muon_release_adamw(m, whole);
    return NULL;
  }
  return whole;
}

int tyr_muon_scatter_adamw_at(tyr_site s, tyr_muon *m, const tyr_optim *whole) {
  if (!m || !whole) return tyr_raise(TYR_ERR_ARG, s, "tyr_muon_scatter_adamw", "NULL");
  if (whole == &m->adamw) return 0;
  if (!m->adamw_zero)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_muon_scatter_adamw",
                     "the optimizer is not sharded: load into m->adamw (tyr_muon_gather_adamw)");
  return tyr_zero1_scatter_state_at(s, m->adamw_zero, whole);
}

void tyr_muon_release_adamw(tyr_muon *m, tyr_optim *whole) {
  if (!whole || (m && whole == &m->adamw)) return;
  if (whole->params) tyr_optim_free(whole);
  free(whole);
}

int64_t tyr_muon_adamw_state_bytes(const tyr_muon *m) {
  if (m->adamw_zero) return tyr_zero1_state_bytes(m->adamw_zero);
  int64_t b = 0;
  for (int i = 0; i < m->adamw.n; i++) {
    if (m->adamw.m && m->adamw.m[i]) b += tyr_nbytes(m->adamw.m[i]);
    if (m->adamw.v && m->adamw.v[i]) b += tyr_nbytes(m->adamw.v[i]);
  }
  return b;
}

int64_t tyr_muon_state_bytes(const tyr_muon *m) {
  int64_t b = tyr_muon_adamw_state_bytes(m);
  for (int k = 0; k < m->nmuon; k++) {
    b += tyr_nbytes(m->buf[k]);
    if (m->v[k]) b += tyr_nbytes(m->v[k]);
  }
  return b;
}
