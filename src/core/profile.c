/* The kernel profiler (tyr/profile.h): a copy of the CPU backend table
 * whose entries time the real ones.  tyr_backend_lookup hands it out while
 * the profiler is on, so every op, its backward and the optimizer are
 * measured without a line of timing code in them. */
#include "tyr/profile.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/profile.h"

bool tyr__profile_on;

enum {
  K_ALLOC,
  K_FREE,
  K_FILL,
  K_ARANGE,
  K_COPY,
  K_RANDOM,
  K_UNARY,
  K_UNARY_BW,
  K_BINARY,
  K_WHERE,
  K_REDUCE,
  K_MATMUL,
  K_MATMUL_BIAS,
  K_MATMUL_ACT,
  K_MATMUL_DACT,
  K_SOFTMAX,
  K_SOFTMAX_BW,
  K_LAYER_NORM,
  K_LAYER_NORM_BW,
  K_INDEX_SELECT,
  K_INDEX_ADD,
  K_GATHER,
  K_SCATTER_ADD,
  K_CE,
  K_CE_BW,
  K_CE_FUSED,
  K_ADAMW,
  K_ADAMW_MANY,
  K_SGD,
  K_SUM_SQUARES,
  K_SUM_SQUARES_MANY,
  K_SCALE,
  K_SDPA,
  K_SDPA_BW,
  K_ROTARY,
  K_CUMSUM,
  K_CONV2D,
  K_CONV2D_BW,
  K_POOL2D,
  K_POOL2D_BW,
  K_BATCH_NORM,
  K_BATCH_NORM_BW,
  K_COUNT
};

static const char *const k_name[K_COUNT] = {"alloc",
                                            "free",
                                            "fill",
                                            "arange",
                                            "copy",
                                            "random",
                                            "unary",
                                            "unary_backward",
                                            "binary",
                                            "where",
                                            "reduce",
                                            "matmul",
                                            "matmul_bias",
                                            "matmul_act",
                                            "matmul_dact",
                                            "softmax",
                                            "softmax_backward",
                                            "layer_norm",
                                            "layer_norm_backward",
                                            "index_select",
                                            "index_add",
                                            "gather",
                                            "scatter_add",
                                            "cross_entropy",
                                            "cross_entropy_backward",
                                            "cross_entropy_fused",
                                            "adamw_step",
                                            "adamw_step_many",
                                            "sgd_step",
                                            "sum_squares",
                                            "sum_squares_many",
                                            "scale_",
                                            "sdpa",
                                            "sdpa_backward",
                                            "rotary",
                                            "cumsum",
                                            "conv2d",
                                            "conv2d_backward",
                                            "pool2d",
                                            "pool2d_backward",
                                            "batch_norm",
                                            "batch_norm_backward"};

/* what the summary groups each kernel under */
enum { C_GEMM, C_ATTN, C_POINTWISE, C_OPTIM, C_MEMORY, C_CONV, C_NCAT };
static const char *const c_name[C_NCAT] = {"GEMMs (matmul)",
                                           "attention (sdpa)",
                                           "elementwise, norms, softmax, loss, copies",
                                           "optimizer and clipping kernels",
                                           "allocation (alloc/free calls)",
                                           "convolutions and pooling"};
static int category(int k) {
  switch (k) {
  case K_MATMUL:
  case K_MATMUL_BIAS:
  case K_MATMUL_ACT:
  case K_MATMUL_DACT:
    return C_GEMM;
  case K_SDPA:
  case K_SDPA_BW:
    return C_ATTN;
  case K_ADAMW:
  case K_ADAMW_MANY:
  case K_SGD:
  case K_SUM_SQUARES:
  case K_SUM_SQUARES_MANY:
  case K_SCALE:
    return C_OPTIM;
  case K_ALLOC:
  case K_FREE:
    return C_MEMORY;
  case K_CONV2D:
  case K_CONV2D_BW:
  case K_POOL2D:
  case K_POOL2D_BW:
  case K_BATCH_NORM:
  case K_BATCH_NORM_BW:
    return C_CONV;
  default:
    return C_POINTWISE;
  }
}

static const char *const un_name[TYR_UN_COUNT] = {
    "neg",        "exp",        "log",        "sqrt",        "rsqrt",       "abs",       "tanh",
    "sigmoid",    "relu",       "relu2",      "gelu",        "gelu_tanh",   "silu",      "softcap",
    "pow",        "add_scalar", "mul_scalar", "rsub_scalar", "rdiv_scalar", "clamp",     "sign",
    "reciprocal", "square",     "sin",        "cos",         "softplus",    "leaky_relu"};
static const char *const bin_name[TYR_BIN_COUNT] = {"add", "sub", "mul", "div", "pow", "max", "min",
                                                    "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
static const char *const red_name[TYR_RED_COUNT] = {"sum", "mean",   "max",
                                                    "min", "argmax", "argmin"};

#define NSUB 32 /* sub-kinds per kernel: the unary/binary/reduce op */

typedef struct {
  int64_t calls;
  double sec, flops;
} stat;

static stat g_stat[TYR_PROF_NPHASE][K_COUNT][NSUB];
static double g_wall[TYR_PROF_NPHASE];
static long g_faults[TYR_PROF_NPHASE];
static int g_phase;
static double g_phase_t0;
static long g_phase_f0;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int t_depth; /* kernels calling kernels count once */
static const tyr_backend *g_inner;
static tyr_backend g_wrapped;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long minor_faults(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static inline double k_begin(void) {
  return t_depth++ == 0 ? now() : 0;
}

static void k_end(int k, int sub, double flops, double t0) {
  if (--t_depth != 0) return;
  double dt = now() - t0;
  if ((unsigned)sub >= NSUB) sub = NSUB - 1;
  pthread_mutex_lock(&g_mu);
  stat *s = &g_stat[g_phase][k][sub];
  s->calls++;
  s->sec += dt;
  s->flops += flops;
  pthread_mutex_unlock(&g_mu);
}

#define TIMED(k, sub, flops, call)                                                                 \
  do {                                                                                             \
    double t0_ = k_begin();                                                                        \
    call;                                                                                          \
    k_end((k), (sub), (flops), t0_);                                                               \
  } while (0)

static double dim(const tyr_tensor *t, int from_end) {
  return (double)t->shape[t->rank - from_end];
}
static double numel_d(const tyr_tensor *t) {
  double n = 1;
  for (int i = 0; i < t->rank; i++) n *= (double)t->shape[i];
  return n;
}
/* 2 M N K (times the batch) for out = a @ b */
static double gemm_flops(const tyr_tensor *out, const tyr_tensor *a) {
  return 2.0 * numel_d(out) * dim(a, 1);
}
/* attention's two products per (query, key) pair, halved when causal */
static double sdpa_flops(const tyr_tensor *q, const tyr_tensor *k, bool causal, int64_t window) {
  double pairs = numel_d(q) / dim(q, 1) * dim(k, 2);
  if (causal || window > 0) pairs *= 0.5;
  return 4.0 * pairs * dim(q, 1);
}

static void *w_alloc(size_t n, tyr_device d) {
  void *p;
  TIMED(K_ALLOC, 0, 0, p = g_inner->alloc(n, d));
  return p;
}
static void w_free(void *p, size_t n, tyr_device d) {
  TIMED(K_FREE, 0, 0, g_inner->free(p, n, d));
}
static void w_fill(tyr_tensor *o, double v) {
  TIMED(K_FILL, 0, 0, g_inner->fill(o, v));
}
static void w_arange(tyr_tensor *o, double a, double b) {
  TIMED(K_ARANGE, 0, 0, g_inner->arange(o, a, b));
}
static void w_copy(tyr_tensor *o, const tyr_tensor *s) {
  TIMED(K_COPY, 0, 0, g_inner->copy(o, s));
}
static void w_random(tyr_tensor *o, tyr_random_kind k, double p0, double p1, uint64_t seed,
                     uint64_t c) {
  TIMED(K_RANDOM, 0, 0, g_inner->random(o, k, p0, p1, seed, c));
}
static void w_unary(tyr_unary_op op, tyr_tensor *o, const tyr_tensor *a, double p0, double p1) {
  TIMED(K_UNARY, op, 0, g_inner->unary(op, o, a, p0, p1));
}
static void w_unary_bw(tyr_unary_op op, tyr_tensor *gi, const tyr_tensor *a, const tyr_tensor *go,
                       double p0, double p1) {
  TIMED(K_UNARY_BW, op, 0, g_inner->unary_backward(op, gi, a, go, p0, p1));
}
static void w_binary(tyr_binary_op op, tyr_tensor *o, const tyr_tensor *a, const tyr_tensor *b) {
  TIMED(K_BINARY, op, 0, g_inner->binary(op, o, a, b));
}
static void w_where(tyr_tensor *o, const tyr_tensor *c, const tyr_tensor *a, const tyr_tensor *b) {
  TIMED(K_WHERE, 0, 0, g_inner->where(o, c, a, b));
}
static void w_reduce(tyr_reduce_op op, tyr_tensor *o, const tyr_tensor *a, int d) {
  TIMED(K_REDUCE, op, 0, g_inner->reduce(op, o, a, d));
}
/* which operands a GEMM reads transposed: 0 a @ b, 1 a @ bT, 2 aT @ b, 3 aT @ bT */
static int gemm_kind(const tyr_tensor *a, const tyr_tensor *b) {
  bool ta = false, tb = false;
  int64_t ld;
  if (a->rank >= 2) tyr_gemm_layout(a, &ta, &ld);
  if (b->rank >= 2) tyr_gemm_layout(b, &tb, &ld);
  return 2 * ta + tb;
}
static const char *const gemm_name[4] = {"a @ b", "a @ bT", "aT @ b", "aT @ bT"};

static void w_matmul(tyr_tensor *o, const tyr_tensor *a, const tyr_tensor *b) {
  TIMED(K_MATMUL, gemm_kind(a, b), gemm_flops(o, a), g_inner->matmul(o, a, b));
}
static void w_matmul_bias(tyr_tensor *o, const tyr_tensor *a, const tyr_tensor *b,
                          const tyr_tensor *bias) {
  TIMED(K_MATMUL_BIAS, gemm_kind(a, b), gemm_flops(o, a), g_inner->matmul_bias(o, a, b, bias));
}
/* the fused activations count only when the backend took them */
static bool w_matmul_act(tyr_tensor *o, tyr_tensor *pre, const tyr_tensor *a, const tyr_tensor *b,
                         const tyr_tensor *bias, tyr_unary_op act) {
  double t0 = k_begin();
  bool done = g_inner->matmul_act(o, pre, a, b, bias, act);
  if (done)
    k_end(K_MATMUL_ACT, gemm_kind(a, b), gemm_flops(o, a), t0);
  else
    t_depth--;
  return done;
}
static bool w_matmul_dact(tyr_tensor *o, const tyr_tensor *a, const tyr_tensor *b,
                          const tyr_tensor *pre, tyr_unary_op act) {
  double t0 = k_begin();
  bool done = g_inner->matmul_dact(o, a, b, pre, act);
  if (done)
    k_end(K_MATMUL_DACT, gemm_kind(a, b), gemm_flops(o, a), t0);
  else
    t_depth--;
  return done;
}
static void w_softmax(tyr_tensor *o, const tyr_tensor *x, bool log) {
  TIMED(K_SOFTMAX, 0, 0, g_inner->softmax(o, x, log));
}
static void w_softmax_bw(tyr_tensor *gx, const tyr_tensor *y, const tyr_tensor *gy, bool log) {
  TIMED(K_SOFTMAX_BW, 0, 0, g_inner->softmax_backward(gx, y, gy, log));
}
static void w_layer_norm(tyr_tensor *y, tyr_tensor *m, tyr_tensor *r, const tyr_tensor *x,
                         const tyr_tensor *w, const tyr_tensor *b, double eps, tyr_tensor *sum,
                         const tyr_tensor *res) {
  TIMED(K_LAYER_NORM, 0, 0, g_inner->layer_norm(y, m, r, x, w, b, eps, sum, res));
}
static void w_layer_norm_bw(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                            const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *m,
                            const tyr_tensor *r, bool add_gx, tyr_tensor *gx_cast) {
  TIMED(K_LAYER_NORM_BW, 0, 0,
        g_inner->layer_norm_backward(gx, gw, gb, gy, x, w, m, r, add_gx, gx_cast));
}
static void w_index_select(tyr_tensor *o, const tyr_tensor *s, int d, const tyr_tensor *i) {
  TIMED(K_INDEX_SELECT, 0, 0, g_inner->index_select(o, s, d, i));
}
static void w_index_add(tyr_tensor *o, int d, const tyr_tensor *i, const tyr_tensor *s) {
  TIMED(K_INDEX_ADD, 0, 0, g_inner->index_add(o, d, i, s));
}
static void w_gather(tyr_tensor *o, const tyr_tensor *s, int d, const tyr_tensor *i) {
  TIMED(K_GATHER, 0, 0, g_inner->gather(o, s, d, i));
}
static void w_scatter_add(tyr_tensor *o, int d, const tyr_tensor *i, const tyr_tensor *s) {
  TIMED(K_SCATTER_ADD, 0, 0, g_inner->scatter_add(o, d, i, s));
}
static void w_ce(tyr_tensor *l, const tyr_tensor *x, const tyr_tensor *t, int64_t ig) {
  TIMED(K_CE, 0, 0, g_inner->cross_entropy(l, x, t, ig));
}
static void w_ce_bw(tyr_tensor *g, const tyr_tensor *x, const tyr_tensor *t, int64_t ig,
                    const tyr_tensor *gl) {
  TIMED(K_CE_BW, 0, 0, g_inner->cross_entropy_backward(g, x, t, ig, gl));
}
static void w_ce_fused(tyr_tensor *l, tyr_tensor *x, const tyr_tensor *t, int64_t ig,
                       const tyr_tensor *sc) {
  TIMED(K_CE_FUSED, 0, 0, g_inner->cross_entropy_fused(l, x, t, ig, sc));
}
static void w_adamw(tyr_tensor *p, const tyr_tensor *g, tyr_tensor *m, tyr_tensor *v, double lr,
                    double b1, double b2, double eps, double wd, int64_t step) {
  TIMED(K_ADAMW, 0, 0, g_inner->adamw_step(p, g, m, v, lr, b1, b2, eps, wd, step));
}
static void w_adamw_many(int n, tyr_tensor *const *p, const tyr_tensor *const *g,
                         tyr_tensor *const *m, tyr_tensor *const *v, const int *grp,
                         const double *lr, const double *wd, double b1, double b2, double eps,
                         int64_t step, const tyr_tensor *hyper) {
  TIMED(K_ADAMW_MANY, 0, 0,
        g_inner->adamw_step_many(n, p, g, m, v, grp, lr, wd, b1, b2, eps, step, hyper));
}
static void w_sgd(tyr_tensor *p, const tyr_tensor *g, tyr_tensor *b, double lr, double mom,
                  double damp, double wd, bool nest, bool first) {
  TIMED(K_SGD, 0, 0, g_inner->sgd_step(p, g, b, lr, mom, damp, wd, nest, first));
}
static double w_sum_squares(const tyr_tensor *t) {
  double r;
  TIMED(K_SUM_SQUARES, 0, 0, r = g_inner->sum_squares(t));
  return r;
}
static double w_sum_squares_many(int n, const tyr_tensor *const *ts) {
  double r;
  TIMED(K_SUM_SQUARES_MANY, 0, 0, r = g_inner->sum_squares_many(n, ts));
  return r;
}
static void w_scale(tyr_tensor *t, double c) {
  TIMED(K_SCALE, 0, 0, g_inner->scale_(t, c));
}
static void w_sdpa(tyr_tensor *o, tyr_tensor *lse, const tyr_tensor *q, const tyr_tensor *k,
                   const tyr_tensor *v, const tyr_tensor *mask, const tyr_tensor *doc, bool causal,
                   int64_t window, double scale) {
  TIMED(K_SDPA, 0, sdpa_flops(q, k, causal, window),
        g_inner->sdpa(o, lse, q, k, v, mask, doc, causal, window, scale));
}
static void w_sdpa_bw(tyr_tensor *dq, tyr_tensor *dk, tyr_tensor *dv, const tyr_tensor *dout,
                      const tyr_tensor *q, const tyr_tensor *k, const tyr_tensor *v,
                      const tyr_tensor *out, const tyr_tensor *lse, const tyr_tensor *mask,
                      const tyr_tensor *doc, bool causal, int64_t window, double scale) {
  /* the backward's useful work is twice the forward's (dq, dk, dv and the
     score gradient), not counting the recomputed scores */
  TIMED(K_SDPA_BW, 0, 2 * sdpa_flops(q, k, causal, window),
        g_inner->sdpa_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, doc, causal, window,
                               scale));
}
static void w_rotary(tyr_tensor *o, const tyr_tensor *x, const tyr_tensor *c, const tyr_tensor *s,
                     bool inv) {
  TIMED(K_ROTARY, 0, 0, g_inner->rotary(o, x, c, s, inv));
}
static void w_cumsum(tyr_tensor *o, const tyr_tensor *x, int d) {
  TIMED(K_CUMSUM, 0, 0, g_inner->cumsum(o, x, d));
}
static void w_conv2d(tyr_tensor *o, const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *b,
                     const tyr_conv_geom *g) {
  TIMED(K_CONV2D, 0, 0, g_inner->conv2d(o, x, w, b, g));
}
static void w_conv2d_bw(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                        const tyr_tensor *x, const tyr_tensor *w, const tyr_conv_geom *g) {
  TIMED(K_CONV2D_BW, 0, 0, g_inner->conv2d_backward(gx, gw, gb, gy, x, w, g));
}
static void w_pool2d(tyr_tensor *o, tyr_tensor *i, const tyr_tensor *x, const tyr_pool_geom *g) {
  TIMED(K_POOL2D, 0, 0, g_inner->pool2d(o, i, x, g));
}
static void w_pool2d_bw(tyr_tensor *gx, const tyr_tensor *gy, const tyr_tensor *i,
                        const tyr_pool_geom *g) {
  TIMED(K_POOL2D_BW, 0, 0, g_inner->pool2d_backward(gx, gy, i, g));
}
static void w_batch_norm(tyr_tensor *y, tyr_tensor *m, tyr_tensor *r, const tyr_tensor *x,
                         const tyr_tensor *w, const tyr_tensor *b, tyr_tensor *rm, tyr_tensor *rv,
                         bool tr, double mom, double eps) {
  TIMED(K_BATCH_NORM, 0, 0, g_inner->batch_norm(y, m, r, x, w, b, rm, rv, tr, mom, eps));
}
static void w_batch_norm_bw(tyr_tensor *gx, tyr_tensor *gw, tyr_tensor *gb, const tyr_tensor *gy,
                            const tyr_tensor *x, const tyr_tensor *w, const tyr_tensor *m,
                            const tyr_tensor *r, bool tr) {
  TIMED(K_BATCH_NORM_BW, 0, 0, g_inner->batch_norm_backward(gx, gw, gb, gy, x, w, m, r, tr));
}

static pthread_once_t g_wrap_once = PTHREAD_ONCE_INIT;
static const tyr_backend *g_wrap_src;

static void build_wrapped(void) {
  const tyr_backend *be = g_wrap_src;
  g_inner = be;
  g_wrapped = *be; /* entries not timed below pass straight through */
#define WRAP(field, fn)                                                                            \
  if (be->field) g_wrapped.field = fn
  WRAP(alloc, w_alloc);
  WRAP(free, w_free);
  WRAP(fill, w_fill);
  WRAP(arange, w_arange);
  WRAP(copy, w_copy);
  WRAP(random, w_random);
  WRAP(unary, w_unary);
  WRAP(unary_backward, w_unary_bw);
  WRAP(binary, w_binary);
  WRAP(where, w_where);
  WRAP(reduce, w_reduce);
  WRAP(matmul, w_matmul);
  WRAP(matmul_bias, w_matmul_bias);
  WRAP(matmul_act, w_matmul_act);
  WRAP(matmul_dact, w_matmul_dact);
  WRAP(softmax, w_softmax);
  WRAP(softmax_backward, w_softmax_bw);
  WRAP(layer_norm, w_layer_norm);
  WRAP(layer_norm_backward, w_layer_norm_bw);
  WRAP(index_select, w_index_select);
  WRAP(index_add, w_index_add);
  WRAP(gather, w_gather);
  WRAP(scatter_add, w_scatter_add);
  WRAP(cross_entropy, w_ce);
  WRAP(cross_entropy_backward, w_ce_bw);
  WRAP(cross_entropy_fused, w_ce_fused);
  WRAP(adamw_step, w_adamw);
  WRAP(adamw_step_many, w_adamw_many);
  WRAP(sgd_step, w_sgd);
  WRAP(sum_squares, w_sum_squares);
  WRAP(sum_squares_many, w_sum_squares_many);
  WRAP(scale_, w_scale);
  WRAP(sdpa, w_sdpa);
  WRAP(sdpa_backward, w_sdpa_bw);
  WRAP(rotary, w_rotary);
  WRAP(cumsum, w_cumsum);
  WRAP(conv2d, w_conv2d);
  WRAP(conv2d_backward, w_conv2d_bw);
  WRAP(pool2d, w_pool2d);
  WRAP(pool2d_backward, w_pool2d_bw);
  WRAP(batch_norm, w_batch_norm);
  WRAP(batch_norm_backward, w_batch_norm_bw);
#undef WRAP
}

const tyr_backend *tyr__profile_wrap(const tyr_backend *be) {
  g_wrap_src = be;
  pthread_once(&g_wrap_once, build_wrapped);
  return g_inner == be ? &g_wrapped : be; /* one backend (the CPU's) is timed */
}

int tyr__profile_phase_set(int p) {
  double t = now();
  long f = minor_faults();
  pthread_mutex_lock(&g_mu);
  int prev = g_phase;
  g_wall[prev] += t - g_phase_t0;
  g_faults[prev] += f - g_phase_f0;
  g_phase = p;
  g_phase_t0 = t;
  g_phase_f0 = f;
  pthread_mutex_unlock(&g_mu);
  return prev;
}

void tyr_profile_reset(void) {
  pthread_mutex_lock(&g_mu);
  memset(g_stat, 0, sizeof g_stat);
  memset(g_wall, 0, sizeof g_wall);
  memset(g_faults, 0, sizeof g_faults);
  g_phase_t0 = now();
  g_phase_f0 = minor_faults();
  pthread_mutex_unlock(&g_mu);
}

bool tyr_profile_enable(bool on) {
  bool prev = tyr__profile_on;
  if (on && !prev) tyr_profile_reset();
  tyr__profile_on = on;
  return prev;
}

bool tyr_profile_enabled(void) {
  return tyr__profile_on;
}

typedef struct {
  int k, sub;
  stat s;
} row;

static int by_time(const void *a, const void *b) {
  double x = ((const row *)a)->s.sec, y = ((const row *)b)->s.sec;
  return (x < y) - (x > y);
}

static void row_name(const row *r, char *buf, size_t n) {
  const char *sub = NULL;
  if (r->k == K_UNARY || r->k == K_UNARY_BW)
    sub = r->sub < TYR_UN_COUNT ? un_name[r->sub] : "?";
  else if (r->k == K_BINARY)
    sub = r->sub < TYR_BIN_COUNT ? bin_name[r->sub] : "?";
  else if (r->k == K_REDUCE)
    sub = r->sub < TYR_RED_COUNT ? red_name[r->sub] : "?";
  else if (r->k == K_MATMUL || r->k == K_MATMUL_BIAS || r->k == K_MATMUL_ACT ||
           r->k == K_MATMUL_DACT)
    sub = gemm_name[r->sub & 3];
  snprintf(buf, n, sub ? "%s %s" : "%s", k_name[r->k], sub);
}

void tyr_profile_print(FILE *f, int steps) {
  static const char *const ph_name[TYR_PROF_NPHASE] = {"forward", "backward", "optimizer"};
  bool totals = steps < 1;
  if (totals) steps = 1;
  if (tyr__profile_on) tyr__profile_phase_set(g_phase); /* count the running phase up to now */
  pthread_mutex_lock(&g_mu);
  double cat[C_NCAT] = {0}, cat_flops[C_NCAT] = {0}, total = 0, kernels = 0;
  if (totals)
    fprintf(f, "profile: totals (kernel times include their threads' waits)\n");
  else
    fprintf(f, "profile: %d step%s, per step (kernel times include their threads' waits)\n", steps,
            steps == 1 ? "" : "s");
  fprintf(f, "  %-34s %10s %7s %9s %9s\n", "phase / kernel", "ms", "%", "calls", "GFLOP/s");
  static row rows[K_COUNT * NSUB];
  for (int p = 0; p < TYR_PROF_NPHASE; p++) {
    int n = 0;
    double ksum = 0;
    for (int k = 0; k < K_COUNT; k++)
      for (int s = 0; s < NSUB; s++)
        if (g_stat[p][k][s].calls) {
          rows[n++] = (row){k, s, g_stat[p][k][s]};
          ksum += g_stat[p][k][s].sec;
          cat[category(k)] += g_stat[p][k][s].sec;
          cat_flops[category(k)] += g_stat[p][k][s].flops;
        }
    if (!n && g_wall[p] == 0) continue;
    double wall = g_wall[p] > 0 ? g_wall[p] : 1e-30;
    total += g_wall[p];
    kernels += ksum;
    fprintf(f, "  %-34s %10.3f %7.1f %9s %9s   (%.0f page faults)\n", ph_name[p],
            g_wall[p] * 1e3 / steps, 100.0, "", "", (double)g_faults[p] / steps);
    qsort(rows, (size_t)n, sizeof rows[0], by_time);
    for (int i = 0; i < n; i++) {
      char name[64], gf[16] = "";
      row_name(&rows[i], name, sizeof name);
      if (rows[i].s.flops > 0 && rows[i].s.sec > 0)
        snprintf(gf, sizeof gf, "%.1f", rows[i].s.flops / rows[i].s.sec * 1e-9);
      fprintf(f, "    %-32s %10.3f %7.1f %9.1f %9s\n", name, rows[i].s.sec * 1e3 / steps,
              100.0 * rows[i].s.sec / wall, (double)rows[i].s.calls / steps, gf);
    }
    fprintf(f, "    %-32s %10.3f %7.1f\n", "host overhead (wall - kernels)",
            (g_wall[p] - ksum) * 1e3 / steps, 100.0 * (g_wall[p] - ksum) / wall);
  }
  double all = total > 0 ? total : 1e-30;
  fprintf(f, "  summary, all phases: %.3f ms per step\n", total * 1e3 / steps);
  for (int c = 0; c < C_NCAT; c++) {
    if (cat[c] == 0) continue;
    char gf[32] = "";
    if (cat_flops[c] > 0) snprintf(gf, sizeof gf, "%.1f", cat_flops[c] / cat[c] * 1e-9);
    fprintf(f, "    %-42s %10.3f %7.1f %9s\n", c_name[c], cat[c] * 1e3 / steps,
            100.0 * cat[c] / all, gf);
  }
  fprintf(f, "    %-42s %10.3f %7.1f\n", "host overhead (dispatch, tape, structs)",
          (total - kernels) * 1e3 / steps, 100.0 * (total - kernels) / all);
  pthread_mutex_unlock(&g_mu);
  fflush(f);
}

static void print_at_exit(void) {
  tyr_profile_print(stderr, 0);
}

__attribute__((constructor)) static void profile_from_env(void) {
  const char *e = getenv("TYR_PROFILE");
  if (e && *e && strcmp(e, "0") != 0) {
    tyr_profile_enable(true);
    atexit(print_at_exit);
  }
}
