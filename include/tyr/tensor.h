/* tyr/tensor.h - the run-time tensor: storage, shape, strides, dtype, device,
 * lifetimes (scopes and reference counts), errors with call sites.
 *
 * This is the erased layer: a `tyr_tensor *` carries its shape at run time
 * only.  The shaped layer in <tyr/typed.h> puts the shape in the C type. */
#ifndef TYR_TENSOR_H
#define TYR_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest rank a tensor may have. */
#define TYR_MAX_RANK 6

typedef enum tyr_dtype {
  TYR_F32 = 0,
  TYR_F64,
  TYR_BF16,
  TYR_F16,
  TYR_I32,
  TYR_I64,
  TYR_U8,
  TYR_BOOL,
  TYR_DTYPE_COUNT
} tyr_dtype;

typedef enum tyr_device_type { TYR_CPU = 0, TYR_CUDA = 1 } tyr_device_type;

typedef struct tyr_device {
  tyr_device_type type;
  int index;
} tyr_device;

#define TYR_DEVICE_CPU ((tyr_device){TYR_CPU, 0})
#define TYR_DEVICE_CUDA(i) ((tyr_device){TYR_CUDA, (i)})

/* Where a call was made: every checked call carries one so that its errors
 * name the caller's file and line. */
typedef struct tyr_site {
  const char *file;
  int line;
} tyr_site;
#define TYR_SITE ((tyr_site){__FILE__, __LINE__})

typedef struct tyr_storage {
  void *data;
  size_t nbytes;
  int refcount;
  tyr_device device;
  bool borrowed; /* data not owned (memory-mapped or user buffer) */
} tyr_storage;

struct tyr_node;
struct tyr_scope;

typedef struct tyr_tensor {
  tyr_storage *storage;
  int64_t offset; /* in elements of dtype */
  int rank;
  int64_t shape[TYR_MAX_RANK];
  int64_t stride[TYR_MAX_RANK]; /* in elements */
  tyr_dtype dtype;
  tyr_device device;
  int refcount;
  /* autograd */
  bool requires_grad;
  struct tyr_tensor *grad;    /* accumulated gradient of a leaf */
  struct tyr_node *grad_fn;   /* the op that made this tensor, or NULL */
  struct tyr_tensor *gradacc; /* gradient being accumulated during backward */
  /* lifetime */
  struct tyr_scope *scope; /* scope that owns one reference, or NULL */
  int64_t scope_slot;
  const char *name; /* optional, not owned */
  /* the typed op that made this tensor and where it was called (set by
   * tyr_result_at, for messages about handles that disagree with it) */
  const char *origin_op;
  tyr_site origin;
  /* checks (tyr/debug.h) */
  uint32_t magic;    /* TYR__TENSOR_LIVE while alive */
  bool graph_freed;  /* a backward freed the graph that made it */
  bool unscoped;     /* made outside any scope */
  tyr_site site;     /* where it was made */
  tyr_site freed_at; /* once freed: where the scope that freed it was opened */
} tyr_tensor;
#define TYR__TENSOR_LIVE 0x54595231u /* "TYR1" */
#define TYR__TENSOR_DEAD 0xdeadbeefu

/* ---- dtypes and devices ---------------------------------------------- */
/* Bytes per element, name ("f32"), whether floating; a device's name and
 * equality. */
size_t tyr_dtype_size(tyr_dtype dt);
const char *tyr_dtype_name(tyr_dtype dt);
bool tyr_dtype_is_float(tyr_dtype dt);
const char *tyr_device_name(tyr_device d); /* "cpu", "cuda:0" */
bool tyr_device_eq(tyr_device a, tyr_device b);
/* Parses "cpu", "cuda", "cuda:1"; false on anything else. */
bool tyr_device_parse(const char *s, tyr_device *out);

/* bf16 / f16 conversions (round to nearest even). */
float tyr_bf16_to_f32(uint16_t h);
uint16_t tyr_f32_to_bf16(float f);
float tyr_f16_to_f32(uint16_t h);
uint16_t tyr_f32_to_f16(float f);

/* ---- errors ------------------------------------------------------------ */
typedef enum tyr_status {
  TYR_OK = 0,
  TYR_ERR_SHAPE,    /* shapes do not follow the op's rule */
  TYR_ERR_ARG,      /* a bad argument (negative dim, rank, dtype, flag) */
  TYR_ERR_DTYPE,    /* dtype not supported or mixed without a cast */
  TYR_ERR_DEVICE,   /* wrong device or device not present */
  TYR_ERR_MEMORY,   /* out of host or device memory */
  TYR_ERR_IO,       /* file missing, unreadable, unwritable */
  TYR_ERR_FORMAT,   /* malformed or truncated file */
  TYR_ERR_AUTOGRAD, /* backward through something that has no gradient */
  TYR_ERR_STATE     /* API misuse (scope mismatch, use after free) */
} tyr_status;

typedef struct tyr_error {
  tyr_status status;
  tyr_site site;
  const char *op;     /* the operation or file involved */
  char message[1024]; /* full text: "file:line: op: what is wrong" */
} tyr_error;

/* Called on every failure.  The default prints the message to stderr and
 * exits with status 1.  An installed handler may return: the failing call
 * then returns NULL (or a non-zero status) having changed nothing. */
typedef void (*tyr_error_handler)(const tyr_error *err, void *ctx);
void tyr_error_set_handler(tyr_error_handler fn, void *ctx);
void tyr_error_get_handler(tyr_error_handler *fn, void **ctx);
/* The last error raised on this thread (valid until the next one). */
const tyr_error *tyr_error_last(void);
void tyr_error_clear(void);
/* Raise an error: formats, calls the handler.  Returns the status. */
tyr_status tyr_raise(tyr_status st, tyr_site site, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *tyr_status_name(tyr_status st);
/* "[32, 768]" into buf; returns buf. */
char *tyr_shape_str(const int64_t *shape, int rank, char *buf, size_t n);

/* ---- lifetimes ----------------------------------------------------------
 * Every tensor made while a scope is open belongs to the innermost scope,
 * which releases it when it ends.  A tensor made outside any scope, or
 * taken out of its scope with tyr_keep, belongs to the caller, who releases
 * it with tyr_tensor_free. */
/* Opens a scope on this thread / ends the innermost one, freeing what it
 * owns / the number open. */
void tyr_scope_begin(void);
void tyr_scope_end(void);
int tyr_scope_depth(void);
/* Detach t from its scope: the caller now owns it.  Returns t. */
tyr_tensor *tyr_keep_e(tyr_tensor *t);
/* Gives up the owner's reference: a tensor still in a scope leaves it (the
 * scope's reference is the one dropped); freed when no other reference
 * (a graph node, a view's storage) remains.  NULL is ignored. */
void tyr_tensor_free(tyr_tensor *t);
/* A second reference, for holders other than the owner (graph nodes);
 * each is given back with tyr_tensor_release. */
tyr_tensor *tyr_tensor_retain(tyr_tensor *t);
void tyr_tensor_release(tyr_tensor *t);
/* Live tensors and bytes of tensor storage, over all devices. */
int64_t tyr_live_tensors(void);
int64_t tyr_live_bytes(void);

/* Ends the innermost scope, which was opened at `opened` (named in the
 * message of a tensor used after this scope freed it). */
void tyr_scope_end_at(tyr_site opened);
static inline tyr_site tyr__scope_begin_site(tyr_site s) {
  tyr_scope_begin();
  return s;
}
static inline void tyr__scope_cleanup(tyr_site *opened) {
  tyr_scope_end_at(*opened);
}
/* Pastes a and b after expanding them (b may be __COUNTER__ or __LINE__). */
#define TYR__CAT_(a, b) a##b
#define TYR__CAT(a, b) TYR__CAT_(a, b)
/* Opens a scope that ends with the enclosing block:
 *   { TYR_SCOPE; ... }
 * Each use declares a guard variable with a name of its own (__COUNTER__),
 * so several in one block, or nested ones, compile cleanly under -Wshadow;
 * scopes end in reverse order of their opening. */
#define TYR_SCOPE                                                                                  \
  __attribute__((cleanup(tyr__scope_cleanup), unused)) tyr_site TYR__CAT(                          \
      tyr__scope_guard_, __COUNTER__) = tyr__scope_begin_site(TYR_SITE)

/* ---- construction and inspection -------------------------------------- */
/* A new uninitialised contiguous tensor.  Checks rank and dims. */
tyr_tensor *tyr_empty_at(tyr_site s, tyr_dtype dt, tyr_device dev, int rank, const int64_t *shape);
/* A view of existing memory (not copied, not freed).  CPU only. */
tyr_tensor *tyr_from_buffer_at(tyr_site s, void *data, tyr_dtype dt, int rank,
                               const int64_t *shape);
/* A view with given shape/strides/offset sharing t's storage (no checks
 * beyond bounds; the shape ops build on it). */
tyr_tensor *tyr_view_raw(tyr_tensor *t, int rank, const int64_t *shape, const int64_t *stride,
                         int64_t offset);

/* Number of elements, of bytes (numel * dtype size), and whether the layout
 * is row-major without gaps. */
int64_t tyr_numel(const tyr_tensor *t);
int64_t tyr_nbytes(const tyr_tensor *t);
bool tyr_is_contiguous(const tyr_tensor *t);
/* Pointer to the first element (CPU tensors; device pointer otherwise). */
void *tyr_data_ptr(const tyr_tensor *t);
/* The value of a one-element tensor as a double (on any device: a GPU
 * tensor's value is copied back, after its kernels finish). */
double tyr_item_at(tyr_site s, const tyr_tensor *t);
#define tyr_item_e(t) tyr_item_at(TYR_SITE, (t))
/* Reads / writes the element at index (rank entries) of a CPU tensor. */
double tyr_get_at(tyr_site s, const tyr_tensor *t, const int64_t *index);
void tyr_set_at(tyr_site s, tyr_tensor *t, const int64_t *index, double v);
#define tyr_get_e(t, ...) tyr_get_at(TYR_SITE, (t), (const int64_t[]){__VA_ARGS__})
#define tyr_set_e(t, v, ...) tyr_set_at(TYR_SITE, (t), (const int64_t[]){__VA_ARGS__}, (v))

/* Checks that t has the given rank and dims (the typed layer's claim). */
tyr_tensor *tyr_check_shape_at(tyr_site s, const char *op, const char *arg, tyr_tensor *t, int rank,
                               const int64_t *dims);

/* Stamps t (when not NULL and not stamped yet) with the typed op that made
 * it and its call site; returns t.  The typed ops' results pass here. */
tyr_tensor *tyr_result_at(tyr_site s, const char *op, tyr_tensor *t);
/* Dim i (negative counts from the end) of the dims a handle's type claims,
 * checked against the rank: the run-time form of tyr_dim. */
int64_t tyr_dim_at(tyr_site s, int rank, const int64_t *dims, int i);

/* ---- random numbers ------------------------------------------------------
 * Philox4x32-10: element i of a random tensor depends only on (seed,
 * counter + i), so every backend and thread count gives the same numbers. */
typedef struct tyr_rng_state {
  uint64_t seed;
  uint64_t counter;
} tyr_rng_state;
/* Seeds the global generator (counter 0); gets / sets its state. */
void tyr_manual_seed(uint64_t seed);
tyr_rng_state tyr_rng_get_state(void);
void tyr_rng_set_state(tyr_rng_state st);
/* Reserve n counters from the global generator; returns the first. */
uint64_t tyr_rng_reserve(uint64_t n, uint64_t *seed);
void tyr_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]);
/* Uniform in (0,1] and standard normal from one counter. */
float tyr_philox_uniform(uint64_t seed, uint64_t counter);
float tyr_philox_normal(uint64_t seed, uint64_t counter);

/* ---- threads ------------------------------------------------------------ */
/* CPU threads for ops (OpenMP); GEMMs are split over the same threads. */
void tyr_set_num_threads(int n);
int tyr_get_num_threads(void);
/* A setting that libgomp reads only when it loads: how long idle OpenMP
 * threads spin before they sleep.  Spinning pays only while the cores are
 * otherwise free, so the choice follows the machine's 1-minute load average
 * at start: below half the available cores, GOMP_SPINCOUNT=10000 (tens of
 * microseconds, enough to bridge the gaps between a small model's ops);
 * from there on, OMP_WAIT_POLICY=passive (measured in docs/benchmarks.md:
 * on a busy machine spinning 1000000 ran train_gpt 4-25x slower than
 * waiting passively).  Nothing is changed when OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT is set.  When it needs setting, the program is started
 * again with the same argv (/proc/self/exe) and this returns in the new
 * process: call it first thing in main().  Nothing happens when
 * TYR_NO_ENV_SETUP is set or the exec fails. */
void tyr_cpu_env_setup(char **argv);

#ifdef __cplusplus
}
#endif
#endif
