/* sort, topk and multinomial (tyr/ops_sort.h).  The order of each line (or
 * the draws) is computed on the host from a copy of the keys in double (or
 * int64 for integer dtypes, so large integers keep their order); the
 * values are then gathered from x on its own device with tyr_gather,
 * whose backward scatters the gradient back to where each value came from. */
#include <math.h>
#include <stdlib.h>

#include "ops/common.h"
#include "tyr/ops_create.h"
#include "tyr/ops_index.h"
#include "tyr/ops_sort.h"

typedef struct key {
  double f;
  int64_t i; /* integer key (integer dtypes) */
  int64_t pos;
} key;

static bool g_int_keys; /* set around qsort calls, under the one-op-at-a-time rule */

/* ascending, NaN last, ties by position (a stable order) */
static int cmp_asc(const void *pa, const void *pb) {
  const key *a = pa, *b = pb;
  if (g_int_keys) {
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
  } else {
    bool an = isnan(a->f), bn = isnan(b->f);
    if (an != bn) return an ? 1 : -1;
    if (!an && a->f != b->f) return a->f < b->f ? -1 : 1;
  }
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}
/* descending, NaN first, ties by position */
static int cmp_desc(const void *pa, const void *pb) {
  const key *a = pa, *b = pb;
  if (g_int_keys) {
    if (a->i != b->i) return a->i > b->i ? -1 : 1;
  } else {
    bool an = isnan(a->f), bn = isnan(b->f);
    if (an != bn) return an ? -1 : 1;
    if (!an && a->f != b->f) return a->f > b->f ? -1 : 1;
  }
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* A contiguous host copy of x in f64 (floats) or i64 (integers, bool). */
static tyr_tensor *host_keys(tyr_site s, const char *op, tyr_tensor *x) {
  tyr_dtype kdt = tyr_dtype_is_float(x->dtype) ? TYR_F64 : TYR_I64;
  tyr_tensor *h = x->device.type == TYR_CPU ? x : tyr_to_device_at(s, x, TYR_DEVICE_CPU);
  if (!h) return NULL;
  tyr_tensor *k = tyr__convert(s, op, h, kdt); /* a contiguous copy */
  if (h != x) tyr_tensor_free(h);
  return k;
}

/* The first k positions of each line of x along dim in the requested
 * order, as an i64 tensor of x's shape with dim = k, on x's device. */
static tyr_tensor *order(tyr_site s, const char *op, tyr_tensor *x, int dim, int64_t k,
                         bool descending) {
  bool prev = tyr_set_grad_enabled(false);
  tyr_tensor *kt = host_keys(s, op, x);
  tyr_tensor *idx = NULL;
  int64_t shape[TYR_MAX_RANK];
  for (int i = 0; i < x->rank; i++) shape[i] = x->shape[i];
  shape[dim] = k;
  int64_t n = x->shape[dim], outer = 1, inner = 1;
  for (int i = 0; i < dim; i++) outer *= x->shape[i];
  for (int i = dim + 1; i < x->rank; i++) inner *= x->shape[i];
  key *buf = malloc(sizeof(key) * (size_t)(n ? n : 1));
  tyr_tensor *ih = kt && buf ? tyr__new(s, op, TYR_I64, TYR_DEVICE_CPU, x->rank, shape) : NULL;
  if (ih) {
    bool ints = kt->dtype == TYR_I64;
    const double *fk = tyr_data_ptr(kt);
    const int64_t *ik = tyr_data_ptr(kt);
    int64_t *out = tyr_data_ptr(ih);
    g_int_keys = ints;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t in = 0; in < inner; in++) {
        for (int64_t j = 0; j < n; j++) {
          int64_t at = (o * n + j) * inner + in;
          buf[j] = (key){ints ? 0 : fk[at], ints ? ik[at] : 0, j};
        }
        qsort(buf, (size_t)n, sizeof(key), descending ? cmp_desc : cmp_asc);
        for (int64_t j = 0; j < k; j++) out[(o * k + j) * inner + in] = buf[j].pos;
      }
    idx = x->device.type == TYR_CPU ? ih : tyr_to_device_at(s, ih, x->device);
    if (idx != ih) tyr_tensor_free(ih);
  } else if (kt && !buf) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  free(buf);
  if (kt) tyr_tensor_free(kt);
  tyr_set_grad_enabled(prev);
  return idx;
}

static int select_sorted(tyr_site s, const char *op, tyr_tensor *x, int64_t k, int dim,
                         bool descending, tyr_tensor **values, tyr_tensor **indices) {
  tyr_tensor *idx = order(s, op, x, dim, k, descending);
  tyr_tensor *v = idx ? tyr_gather_at(s, x, dim, idx) : NULL;
  if (!v) {
    if (idx) tyr_tensor_free(idx);
    return tyr_error_last() ? tyr_error_last()->status : TYR_ERR_MEMORY;
  }
  *values = v;
  *indices = idx;
  return 0;
}

static bool outs_ok(tyr_site s, const char *op, tyr_tensor **values, tyr_tensor **indices) {
  if (values && indices) {
    *values = *indices = NULL;
    return true;
  }
  tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", values ? "indices" : "values");
  return false;
}

int tyr_sort_at(tyr_site s, tyr_tensor *x, int dim, bool descending, tyr_tensor **values,
                tyr_tensor **indices) {
  const char *op = "tyr_sort";
  if (!outs_ok(s, op, values, indices)) return TYR_ERR_ARG;
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__dim_ok(s, op, x, &dim) ||
      !tyr_backend_get(s, op, x->device))
    return TYR_ERR_ARG;
  return select_sorted(s, op, x, x->shape[dim], dim, descending, values, indices);
}

int tyr_topk_at(tyr_site s, tyr_tensor *x, int64_t k, int dim, bool largest, tyr_tensor **values,
                tyr_tensor **indices) {
  const char *op = "tyr_topk";
  if (!outs_ok(s, op, values, indices)) return TYR_ERR_ARG;
  if (!tyr__arg_ok(s, op, "x", x) || !tyr__dim_ok(s, op, x, &dim) ||
      !tyr_backend_get(s, op, x->device))
    return TYR_ERR_ARG;
  if (k < 1 || k > x->shape[dim])
    return tyr_raise(TYR_ERR_ARG, s, op, "k = %lld is outside 1..%lld (the size of dim %d)",
                     (long long)k, (long long)x->shape[dim], dim);
  return select_sorted(s, op, x, k, dim, largest, values, indices);
}

/* ---- multinomial ---------------------------------------------------------- */
tyr_tensor *tyr_multinomial_at(tyr_site s, tyr_tensor *probs, int64_t num_samples,
                               bool replacement) {
  const char *op = "tyr_multinomial";
  if (!tyr__arg_ok(s, op, "probs", probs) || !tyr__is_float(s, op, "probs", probs) ||
      !tyr_backend_get(s, op, probs->device))
    return NULL;
  if (probs->rank != 1 && probs->rank != 2) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, op, "probs is %s: it must be [C] or [B, C]",
              tyr_shape_str(probs->shape, probs->rank, b, sizeof b));
    return NULL;
  }
  int64_t C = probs->shape[probs->rank - 1], B = probs->rank == 2 ? probs->shape[0] : 1;
  if (num_samples < 1 || C < 1 || (!replacement && num_samples > C)) {
    tyr_raise(TYR_ERR_ARG, s, op, "num_samples = %lld: must be >= 1%s (there are %lld categories)",
              (long long)num_samples, replacement ? "" : " and at most C without replacement",
              (long long)C);
    return NULL;
  }
  bool prev = tyr_set_grad_enabled(false);
  tyr_tensor *ph = host_keys(s, op, probs), *out = NULL, *oh = NULL;
  double *w = malloc(sizeof(double) * (size_t)C);
  if (!ph || !w) goto done;
  const double *p = tyr_data_ptr(ph);
  /* validate every row before drawing */
  for (int64_t b = 0; b < B; b++) {
    double tot = 0;
    int64_t nz = 0;
    for (int64_t c = 0; c < C; c++) {
      double v = p[b * C + c];
      if (!(v >= 0) || !isfinite(v)) {
        tyr_raise(TYR_ERR_ARG, s, op,
                  "probs[%lld, %lld] = %g: probabilities must be finite and >= 0", (long long)b,
                  (long long)c, v);
        goto done;
      }
      tot += v;
      nz += v > 0;
    }
    if (!(tot > 0) || (!replacement && nz < num_samples)) {
      tyr_raise(TYR_ERR_ARG, s, op, "row %lld has %lld non-zero categories: %s", (long long)b,
                (long long)nz,
                tot > 0 ? "too few to draw that many samples without replacement"
                        : "a row must not be all zero");
      goto done;
    }
  }
  int64_t oshape[2] = {B, num_samples};
  oh =
      tyr__new(s, op, TYR_I64, TYR_DEVICE_CPU, probs->rank, probs->rank == 2 ? oshape : oshape + 1);
  if (!oh) goto done;
  int64_t *o = tyr_data_ptr(oh);
  uint64_t seed, ctr = tyr_rng_reserve((uint64_t)(B * num_samples), &seed);
  for (int64_t b = 0; b < B; b++) {
    for (int64_t c = 0; c < C; c++) w[c] = p[b * C + c];
    for (int64_t j = 0; j < num_samples; j++) {
      double tot = 0;
      for (int64_t c = 0; c < C; c++) tot += w[c];
      /* u in (0, 1] times the total; the first category whose cumulative
       * weight reaches it (zero weights are never chosen) */
      double u = (double)tyr_philox_uniform(seed, ctr + (uint64_t)(b * num_samples + j)) * tot;
      int64_t pick = -1;
      double acc = 0;
      for (int64_t c = 0; c < C; c++) {
        if (w[c] <= 0) continue;
        acc += w[c];
        pick = c;
        if (acc >= u) break;
      }
      o[b * num_samples + j] = pick;
      if (!replacement) w[pick] = 0;
    }
  }
  out = probs->device.type == TYR_CPU ? oh : tyr_to_device_at(s, oh, probs->device);
  if (out != oh) tyr_tensor_free(oh);
done:
  free(w);
  if (ph) tyr_tensor_free(ph);
  tyr_set_grad_enabled(prev);
  return out;
}
