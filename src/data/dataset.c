/* In-memory datasets of tensors and batch iterators over them: batches are
 * gathered row by row from a per-epoch permutation table built with
 * Fisher-Yates from Philox numbers keyed by (seed, epoch). */
#include <stdlib.h>
#include <string.h>

#include "tyr/dataset.h"
#include "tyr/ops_create.h"

struct tyr_dataset {
  int n;
  tyr_tensor *t[TYR_DATASET_MAX];
  int64_t len;
};

struct tyr_batch_iter {
  tyr_dataset *d;
  tyr_batch_opts o;
  int64_t epoch, pos;
  int64_t *perm;      /* the epoch's order (shuffle only) */
  int64_t perm_epoch; /* the epoch perm was built for; -1 none */
};

tyr_dataset *tyr_dataset_new_at(tyr_site s, int n, tyr_tensor *const *tensors) {
  const char *op = "tyr_dataset_new";
  if (n < 1 || n > TYR_DATASET_MAX || !tensors) {
    tyr_raise(TYR_ERR_ARG, s, op, "%d tensors: a dataset holds 1 to %d", n, TYR_DATASET_MAX);
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    const tyr_tensor *t = tensors[i];
    char a[96], b[96];
    if (!t) {
      tyr_raise(TYR_ERR_ARG, s, op, "tensor %d is NULL", i);
      return NULL;
    }
    if (t->rank < 1) {
      tyr_raise(TYR_ERR_SHAPE, s, op, "tensor %d is a scalar: examples run along its first dim", i);
      return NULL;
    }
    if (t->device.type != TYR_CPU || !tyr_is_contiguous(t)) {
      tyr_raise(TYR_ERR_ARG, s, op, "tensor %d must be a contiguous CPU tensor (it is %s%s)", i,
                tyr_device_name(t->device), tyr_is_contiguous(t) ? "" : ", not contiguous");
      return NULL;
    }
    if (t->shape[0] != tensors[0]->shape[0]) {
      tyr_raise(TYR_ERR_SHAPE, s, op,
                "tensor %d is %s, tensor 0 is %s: the first dims (examples) differ", i,
                tyr_shape_str(t->shape, t->rank, a, sizeof a),
                tyr_shape_str(tensors[0]->shape, tensors[0]->rank, b, sizeof b));
      return NULL;
    }
  }
  if (tensors[0]->shape[0] < 1) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "the dataset has no examples");
    return NULL;
  }
  tyr_dataset *d = calloc(1, sizeof *d);
  if (!d) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  d->n = n;
  d->len = tensors[0]->shape[0];
  for (int i = 0; i < n; i++) d->t[i] = tyr_tensor_retain(tensors[i]);
  return d;
}

void tyr_dataset_free(tyr_dataset *d) {
  if (!d) return;
  for (int i = 0; i < d->n; i++) tyr_tensor_release(d->t[i]);
  free(d);
}

int64_t tyr_dataset_len(const tyr_dataset *d) {
  return d->len;
}
int tyr_dataset_count(const tyr_dataset *d) {
  return d->n;
}
tyr_tensor *tyr_dataset_tensor(const tyr_dataset *d, int i) {
  return i >= 0 && i < d->n ? d->t[i] : NULL;
}

tyr_batch_iter *tyr_batch_iter_new_at(tyr_site s, tyr_dataset *d, const tyr_batch_opts *opts) {
  const char *op = "tyr_batch_iter_new";
  if (!d || !opts) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", d ? "opts" : "the dataset");
    return NULL;
  }
  if (opts->batch_size < 1) {
    tyr_raise(TYR_ERR_ARG, s, op, "batch_size must be >= 1, got %lld", (long long)opts->batch_size);
    return NULL;
  }
  if (opts->drop_last && opts->batch_size > d->len) {
    tyr_raise(TYR_ERR_ARG, s, op,
              "batch_size %lld is larger than the dataset (%lld examples) with drop_last: "
              "no batch would be made",
              (long long)opts->batch_size, (long long)d->len);
    return NULL;
  }
  tyr_batch_iter *it = calloc(1, sizeof *it);
  int64_t *perm = opts->shuffle ? malloc(sizeof(int64_t) * (size_t)d->len) : NULL;
  if (!it || (opts->shuffle && !perm)) {
    free(it);
    free(perm);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  it->d = d;
  it->o = *opts;
  it->perm = perm;
  it->perm_epoch = -1;
  return it;
}

void tyr_batch_iter_free(tyr_batch_iter *it) {
  if (!it) return;
  free(it->perm);
  free(it);
}

/* The epoch's permutation: Fisher-Yates, swap partner of i from counter
 * (epoch << 32) + i.  The modulo bias is below 2^-32 * N. */
static void build_perm(tyr_batch_iter *it) {
  if (!it->o.shuffle || it->perm_epoch == it->epoch) return;
  int64_t n = it->d->len;
  for (int64_t i = 0; i < n; i++) it->perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    uint32_t r[4];
    tyr_philox4x32(it->o.seed, ((uint64_t)it->epoch << 32) + (uint64_t)i, r);
    uint64_t u = (uint64_t)r[0] << 32 | r[1];
    int64_t j = (int64_t)(u % (uint64_t)(i + 1));
    int64_t t = it->perm[i];
    it->perm[i] = it->perm[j];
    it->perm[j] = t;
  }
  it->perm_epoch = it->epoch;
}

int64_t tyr_batch_iter_peek(const tyr_batch_iter *it) {
  int64_t left = it->d->len - it->pos;
  int64_t b = left < it->o.batch_size ? left : it->o.batch_size;
  if (it->o.drop_last && b < it->o.batch_size) return 0;
  return b;
}

void tyr_batch_iter_next_epoch(tyr_batch_iter *it) {
  it->epoch++;
  it->pos = 0;
}

int64_t tyr_batch_iter_batches(const tyr_batch_iter *it) {
  int64_t n = it->d->len, b = it->o.batch_size;
  return it->o.drop_last ? n / b : (n + b - 1) / b;
}

int64_t tyr_batch_iter_epoch(const tyr_batch_iter *it) {
  return it->epoch;
}

tyr_batch_state tyr_batch_iter_get_state(const tyr_batch_iter *it) {
  return (tyr_batch_state){it->epoch, it->pos};
}

int tyr_batch_iter_set_state_at(tyr_site s, tyr_batch_iter *it, tyr_batch_state st) {
  if (st.epoch < 0 || st.pos < 0 || st.pos > it->d->len)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_batch_iter_set_state",
                     "state (epoch %lld, position %lld) does not fit a dataset of %lld examples",
                     (long long)st.epoch, (long long)st.pos, (long long)it->d->len);
  it->epoch = st.epoch;
  it->pos = st.pos;
  return 0;
}

static int64_t gather(tyr_site s, tyr_batch_iter *it, int64_t b, tyr_tensor **out) {
  build_perm(it);
  const tyr_dataset *d = it->d;
  for (int k = 0; k < d->n; k++) {
    const tyr_tensor *t = d->t[k];
    int64_t shape[TYR_MAX_RANK];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = b;
    tyr_tensor *o = tyr_empty_at(s, t->dtype, TYR_DEVICE_CPU, t->rank, shape);
    if (!o) goto fail;
    size_t row = (size_t)(tyr_nbytes(t) / d->len);
    const char *src = tyr_data_ptr(t);
    char *dst = tyr_data_ptr(o);
    for (int64_t i = 0; i < b; i++) {
      int64_t e = it->o.shuffle ? it->perm[it->pos + i] : it->pos + i;
      memcpy(dst + (size_t)i * row, src + (size_t)e * row, row);
    }
    if (it->o.device.type != TYR_CPU) {
      tyr_tensor *g = tyr_to_device_at(s, o, it->o.device);
      tyr_tensor_free(o);
      if (!g) goto fail;
      o = g;
    }
    out[k] = o;
    continue;
  fail:
    for (int j = 0; j < k; j++) {
      tyr_tensor_free(out[j]);
      out[j] = NULL;
    }
    for (int j = k; j < d->n; j++) out[j] = NULL;
    return -1;
  }
  it->pos += b;
  return b;
}

int64_t tyr_batch_next_at(tyr_site s, tyr_batch_iter *it, tyr_tensor **out) {
  if (!it || !out) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_batch_next", "%s is NULL", it ? "out" : "the iterator");
    return -1;
  }
  int64_t b = tyr_batch_iter_peek(it);
  if (b == 0) {
    for (int k = 0; k < it->d->n; k++) out[k] = NULL;
    tyr_batch_iter_next_epoch(it);
    return 0;
  }
  return gather(s, it, b, out);
}

int64_t tyr__batch_next_checked_at(tyr_site s, tyr_batch_iter *it, int n, const int *rank,
                                   const int64_t (*dims)[6], tyr_tensor **out) {
  const char *op = "tyr_batch_next";
  for (int k = 0; k < n; k++) out[k] = NULL;
  if (!it) {
    tyr_raise(TYR_ERR_ARG, s, op, "the iterator is NULL");
    return -1;
  }
  const tyr_dataset *d = it->d;
  if (n != d->n) {
    tyr_raise(TYR_ERR_ARG, s, op, "%d handles for a dataset of %d tensors", n, d->n);
    return -1;
  }
  for (int k = 0; k < n; k++) {
    const tyr_tensor *t = d->t[k];
    bool ok = rank[k] == t->rank && dims[k][0] == it->o.batch_size;
    for (int i = 1; i < t->rank && ok; i++) ok = dims[k][i] == t->shape[i];
    if (!ok) {
      int64_t want[TYR_MAX_RANK];
      memcpy(want, t->shape, sizeof want);
      want[0] = it->o.batch_size;
      char a[96], b[96];
      tyr_raise(TYR_ERR_SHAPE, s, op, "handle %d is declared %s, the batches of tensor %d are %s",
                k, tyr_shape_str(dims[k], rank[k], a, sizeof a), k,
                tyr_shape_str(want, t->rank, b, sizeof b));
      return -1;
    }
  }
  int64_t b = tyr_batch_iter_peek(it);
  if (b != 0 && b != it->o.batch_size) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "the next batch has %lld rows, not %lld: read the last partial batch with "
              "tyr_batch_next_e (or set drop_last)",
              (long long)b, (long long)it->o.batch_size);
    return -1;
  }
  return tyr_batch_next_at(s, it, out);
}
