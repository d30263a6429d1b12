/* Tensors: storage with a reference count, views, scopes that own
 * temporaries, live counters, and shape claims from the typed layer. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/internal.h"
#include "tyr/debug.h"
#include "tyr/tensor.h"

static atomic_llong g_live_tensors;
static atomic_llong g_live_bytes;

int64_t tyr_live_tensors(void) {
  return atomic_load(&g_live_tensors);
}
int64_t tyr_live_bytes(void) {
  return atomic_load(&g_live_bytes);
}

/* ---- scopes --------------------------------------------------------------- */
typedef struct tyr_scope {
  tyr_tensor **items;
  int64_t n, cap;
} tyr_scope;

#define TYR_MAX_SCOPE_DEPTH 256
static _Thread_local tyr_scope g_scopes[TYR_MAX_SCOPE_DEPTH];
static _Thread_local int g_depth;

int tyr_scope_depth(void) {
  return g_depth;
}

void tyr_scope_begin(void) {
  if (g_depth >= TYR_MAX_SCOPE_DEPTH) {
    tyr_raise(TYR_ERR_STATE, (tyr_site){0}, "tyr_scope_begin", "more than %d nested scopes",
              TYR_MAX_SCOPE_DEPTH);
    return;
  }
  g_scopes[g_depth].n = 0;
  g_depth++;
}

/* where the scope being ended was opened, for the tensors it frees */
static _Thread_local tyr_site g_free_site;

void tyr_scope_end_at(tyr_site opened) {
  tyr_site prev = g_free_site;
  g_free_site = opened;
  tyr_scope_end();
  g_free_site = prev;
}

void tyr_scope_end(void) {
  if (g_depth <= 0) {
    tyr_raise(TYR_ERR_STATE, (tyr_site){0}, "tyr_scope_end", "no scope is open");
    return;
  }
  tyr_scope *sc = &g_scopes[g_depth - 1];
  /* Release in reverse order of creation; entries may be NULL (kept). */
  for (int64_t i = sc->n - 1; i >= 0; i--) {
    tyr_tensor *t = sc->items[i];
    if (!t) continue;
    t->scope = NULL;
    tyr_tensor_free(t);
  }
  sc->n = 0;
  g_depth--;
  if (g_depth == 0) {
    /* keep the arrays for reuse, but drop them when no scope is open at all
       so that leak checkers see nothing held */
    for (int i = 0; i < TYR_MAX_SCOPE_DEPTH && g_scopes[i].items; i++) {
      free(g_scopes[i].items);
      g_scopes[i].items = NULL;
      g_scopes[i].cap = 0;
    }
  }
}

void tyr__scope_track(tyr_tensor *t) {
  if (g_depth == 0) {
    tyr__unscoped_add(t);
    return;
  }
  tyr_scope *sc = &g_scopes[g_depth - 1];
  if (sc->n == sc->cap) {
    int64_t cap = sc->cap ? sc->cap * 2 : 256;
    tyr_tensor **p = realloc(sc->items, (size_t)cap * sizeof *p);
    if (!p) {
      fprintf(stderr, "tyr: out of memory growing a scope\n");
      abort();
    }
    sc->items = p;
    sc->cap = cap;
  }
  t->scope = sc;
  t->scope_slot = sc->n;
  sc->items[sc->n++] = t;
}

tyr_tensor *tyr_keep_e(tyr_tensor *t) {
  if (!t) return NULL;
  if (t->scope) {
    tyr_scope *sc = t->scope;
    if (t->scope_slot < sc->n && sc->items[t->scope_slot] == t) sc->items[t->scope_slot] = NULL;
    t->scope = NULL;
  }
  return t;
}

/* ---- storage -------------------------------------------------------------- */
static tyr_storage *storage_new(tyr_site s, const char *op, size_t nbytes, tyr_device dev) {
  const tyr_backend *be = tyr_backend_get(s, op, dev);
  if (!be) return NULL;
  tyr_storage *st = tyr__rc_alloc(TYR_RC_STORAGE, sizeof *st);
  if (!st) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  memset(st, 0, sizeof *st);
  st->data = be->alloc(nbytes ? nbytes : 1, dev);
  if (!st->data) {
    tyr__rc_free(TYR_RC_STORAGE, st);
    tyr_raise(TYR_ERR_MEMORY, s, op, "cannot allocate %zu bytes on %s", nbytes,
              tyr_device_name(dev));
    return NULL;
  }
  st->nbytes = nbytes;
  st->refcount = 1;
  st->device = dev;
  atomic_fetch_add(&g_live_bytes, (long long)nbytes);
  return st;
}

static void storage_release(tyr_storage *st) {
  if (!st || --st->refcount > 0) return;
  if (!st->borrowed) {
    const tyr_backend *be = tyr_backend_lookup(st->device);
    if (be) be->free(st->data, st->nbytes, st->device);
    atomic_fetch_sub(&g_live_bytes, (long long)st->nbytes);
  }
  tyr__rc_free(TYR_RC_STORAGE, st);
}

/* ---- tensors -------------------------------------------------------------- */
static bool check_dims(tyr_site s, const char *op, int rank, const int64_t *shape) {
  if (rank < 0 || rank > TYR_MAX_RANK) {
    tyr_raise(TYR_ERR_ARG, s, op, "rank %d is outside 0..%d", rank, TYR_MAX_RANK);
    return false;
  }
  for (int i = 0; i < rank; i++) {
    if (shape[i] < 0) {
      tyr_raise(TYR_ERR_ARG, s, op, "dimension %d is negative (%lld)", i, (long long)shape[i]);
      return false;
    }
  }
  return true;
}

static tyr_tensor *tensor_alloc(void) {
  tyr_tensor *t = tyr__rc_alloc(TYR_RC_TENSOR, sizeof *t);
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  t->refcount = 1;
  t->magic = TYR__TENSOR_LIVE;
  atomic_fetch_add(&g_live_tensors, 1);
  return t;
}

static void set_contiguous_strides(tyr_tensor *t) {
  int64_t st = 1;
  for (int i = t->rank - 1; i >= 0; i--) {
    t->stride[i] = st;
    st *= t->shape[i];
  }
}

tyr_tensor *tyr_empty_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape) {
  const char *op = "tyr_empty";
  if ((unsigned)dt >= TYR_DTYPE_COUNT) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "invalid dtype %d", (int)dt);
    return NULL;
  }
  if (!check_dims(s, op, rank, shape)) return NULL;
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] && n > INT64_MAX / 16 / shape[i]) {
      tyr_raise(TYR_ERR_ARG, s, op, "too many elements");
      return NULL;
    }
    n *= shape[i];
  }
  tyr_storage *st = storage_new(s, op, (size_t)n * tyr_dtype_size(dt), dev);
  if (!st) return NULL;
  tyr_tensor *t = tensor_alloc();
  if (!t) {
    storage_release(st);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  t->storage = st;
  t->origin = s;
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
  set_contiguous_strides(t);
  t->dtype = dt;
  t->device = dev;
  t->site = s;
  tyr__scope_track(t);
  return t;
}

tyr_tensor *tyr_from_buffer_at(tyr_site s, void *data, tyr_dtype dt, int rank,
                               const int64_t *shape) {
  const char *op = "tyr_from_buffer";
  if ((unsigned)dt >= TYR_DTYPE_COUNT) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "invalid dtype %d", (int)dt);
    return NULL;
  }
  if (!check_dims(s, op, rank, shape)) return NULL;
  if (!data) {
    tyr_raise(TYR_ERR_ARG, s, op, "data is NULL");
    return NULL;
  }
  tyr_storage *st = tyr__rc_alloc(TYR_RC_STORAGE, sizeof *st);
  tyr_tensor *t = tensor_alloc();
  if (st) memset(st, 0, sizeof *st);
  if (!st || !t) {
    tyr__rc_free(TYR_RC_STORAGE, st);
    if (t) {
      tyr__rc_free(TYR_RC_TENSOR, t);
      atomic_fetch_sub(&g_live_tensors, 1);
    }
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  st->data = data;
  st->nbytes = (size_t)n * tyr_dtype_size(dt);
  st->refcount = 1;
  st->device = TYR_DEVICE_CPU;
  st->borrowed = true;
  t->storage = st;
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
  set_contiguous_strides(t);
  t->dtype = dt;
  t->device = TYR_DEVICE_CPU;
  t->site = s;
  tyr__scope_track(t);
  return t;
}

tyr_tensor *tyr_view_raw(tyr_tensor *base, int rank, const int64_t *shape, const int64_t *stride,
                         int64_t offset) {
  tyr_tensor *t = tensor_alloc();
  if (!t) {
    tyr_raise(TYR_ERR_MEMORY, (tyr_site){0}, "tyr_view", "out of host memory");
    return NULL;
  }
  t->storage = base->storage;
  t->storage->refcount++;
  t->offset = offset;
  t->rank = rank;
  for (int i = 0; i < rank; i++) {
    t->shape[i] = shape[i];
    t->stride[i] = stride[i];
  }
  t->dtype = base->dtype;
  t->device = base->device;
  t->site = base->site;
  tyr__scope_track(t);
  return t;
}

tyr_tensor *tyr_tensor_retain(tyr_tensor *t) {
  if (t) t->refcount++;
  return t;
}

void tyr_tensor_free(tyr_tensor *t) {
  if (!t) return;
  if (t->magic != TYR__TENSOR_LIVE) { /* freed twice */
    tyr_tensor_check_at(g_free_site, "tyr_tensor_free", "the argument", t);
    return;
  }
  if (t->scope) tyr_keep_e(t); /* the scope's reference is the owner's */
  tyr_tensor_release(t);
}

void tyr_tensor_release(tyr_tensor *t) {
  if (!t) return;
  if (--t->refcount > 0) return;
  if (t->unscoped) tyr__unscoped_remove(t);
  tyr__autograd_release(t);
  storage_release(t->storage);
  t->freed_at = g_free_site;
  tyr__tensor_retire(t);
  atomic_fetch_sub(&g_live_tensors, 1);
}

int64_t tyr_numel(const tyr_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->shape[i];
  return n;
}

int64_t tyr_nbytes(const tyr_tensor *t) {
  return tyr_numel(t) * (int64_t)tyr_dtype_size(t->dtype);
}

bool tyr_is_contiguous(const tyr_tensor *t) {
  int64_t st = 1;
  for (int i = t->rank - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != st) return false;
    st *= t->shape[i];
  }
  return true;
}

void *tyr_data_ptr(const tyr_tensor *t) {
  return (char *)t->storage->data + t->offset * (int64_t)tyr_dtype_size(t->dtype);
}

tyr_tensor *tyr_check_shape_at(tyr_site s, const char *op, const char *arg, tyr_tensor *t, int rank,
                               const int64_t *dims) {
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", arg);
    return NULL;
  }
  bool ok = t->rank == rank;
  for (int i = 0; ok && i < rank; i++) ok = t->shape[i] == dims[i];
  if (ok) return t;
  char a[160], b[160], from[320] = "";
  if (t->origin.file)
    snprintf(from, sizeof from,
             " (it was made as %s%s%s at %s:%d and given to a handle declared %s there or "
             "since)",
             tyr_shape_str(t->shape, t->rank, b, sizeof b), t->origin_op ? " by " : "",
             t->origin_op ? t->origin_op : "", t->origin.file, t->origin.line,
             tyr_shape_str(dims, rank, a, sizeof a));
  tyr_raise(TYR_ERR_SHAPE, s, op, "%s is declared %s but the tensor is %s%s", arg,
            tyr_shape_str(dims, rank, a, sizeof a), tyr_shape_str(t->shape, t->rank, b, sizeof b),
            from);
  return NULL;
}

tyr_tensor *tyr_result_at(tyr_site s, const char *op, tyr_tensor *t) {
  if (t && !t->origin_op) { /* the first typed op to return t made it */
    t->origin_op = op;
    t->origin = s;
  }
  return t;
}

int64_t tyr_dim_at(tyr_site s, int rank, const int64_t *dims, int i) {
  if (i < -rank || i >= rank) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_dim", "dim %d is out of range for a handle of rank %d", i, rank);
    return 0;
  }
  return dims[i < 0 ? i + rank : i];
}

/* ---- element access ------------------------------------------------------- */
double tyr__load_f64(const void *p, tyr_dtype dt) {
  switch (dt) {
  case TYR_F32:
    return *(const float *)p;
  case TYR_F64:
    return *(const double *)p;
  case TYR_BF16:
    return tyr_bf16_to_f32(*(const uint16_t *)p);
  case TYR_F16:
    return tyr_f16_to_f32(*(const uint16_t *)p);
  case TYR_I32:
    return *(const int32_t *)p;
  case TYR_I64:
    return (double)*(const int64_t *)p;
  case TYR_U8:
    return *(const uint8_t *)p;
  case TYR_BOOL:
    return *(const uint8_t *)p != 0;
  default:
    return 0;
  }
}

void tyr__store_f64(void *p, tyr_dtype dt, double v) {
  switch (dt) {
  case TYR_F32:
    *(float *)p = (float)v;
    break;
  case TYR_F64:
    *(double *)p = v;
    break;
  case TYR_BF16:
    *(uint16_t *)p = tyr_f32_to_bf16((float)v);
    break;
  case TYR_F16:
    *(uint16_t *)p = tyr_f32_to_f16((float)v);
    break;
  case TYR_I32:
    *(int32_t *)p = (int32_t)v;
    break;
  case TYR_I64:
    *(int64_t *)p = (int64_t)v;
    break;
  case TYR_U8:
    *(uint8_t *)p = (uint8_t)v;
    break;
  case TYR_BOOL:
    *(uint8_t *)p = v != 0;
    break;
  default:
    break;
  }
}

static bool index_ok(tyr_site s, const char *op, const tyr_tensor *t, const int64_t *idx,
                     int64_t *off) {
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, op, "tensor is NULL");
    return false;
  }
  if (t->device.type != TYR_CPU) {
    tyr_raise(TYR_ERR_DEVICE, s, op, "tensor is on %s; copy it to the cpu first",
              tyr_device_name(t->device));
    return false;
  }
  int64_t o = t->offset;
  for (int i = 0; i < t->rank; i++) {
    if (idx[i] < 0 || idx[i] >= t->shape[i]) {
      char b[160];
      tyr_raise(TYR_ERR_ARG, s, op, "index %lld out of range for dim %d of %s", (long long)idx[i],
                i, tyr_shape_str(t->shape, t->rank, b, sizeof b));
      return false;
    }
    o += idx[i] * t->stride[i];
  }
  *off = o;
  return true;
}

double tyr_get_at(tyr_site s, const tyr_tensor *t, const int64_t *index) {
  int64_t o;
  if (!index_ok(s, "tyr_get", t, index, &o)) return 0;
  return tyr__load_f64((char *)t->storage->data + o * (int64_t)tyr_dtype_size(t->dtype), t->dtype);
}

void tyr_set_at(tyr_site s, tyr_tensor *t, const int64_t *index, double v) {
  int64_t o;
  if (!index_ok(s, "tyr_set", t, index, &o)) return;
  tyr__store_f64((char *)t->storage->data + o * (int64_t)tyr_dtype_size(t->dtype), t->dtype, v);
}

double tyr_item_at(tyr_site s, const tyr_tensor *t) {
  if (!tyr_tensor_check_at(s, "tyr_item", "tensor", t)) return 0;
  if (tyr_numel(t) != 1) {
    char b[160];
    tyr_raise(TYR_ERR_SHAPE, s, "tyr_item", "tensor %s has %lld elements, not 1",
              tyr_shape_str(t->shape, t->rank, b, sizeof b), (long long)tyr_numel(t));
    return 0;
  }
  if (t->device.type != TYR_CPU) {
    double v = 0;
    const tyr_backend *be = tyr_backend_get(s, "tyr_item", t->device);
    if (be && be->read_scalar) v = be->read_scalar(t);
    return v;
  }
  int64_t zero[TYR_MAX_RANK] = {0};
  return tyr_get_at(s, t, zero);
}
