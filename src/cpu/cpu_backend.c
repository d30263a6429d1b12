/* The CPU backend table, memory, fills, copies and random numbers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity */
#endif
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/philox.h"
#include "cpu/cpu.h"
#include "cpu/memory.h"
#include "cpu/parallel.h"

static void cpu_memcpy(void *dst, const void *src, size_t n, tyr_device dev) {
  (void)dev;
  memcpy(dst, src, n);
}
static double cpu_read_scalar(const tyr_tensor *t) {
  return tyr__load_f64((char *)t->storage->data + t->offset * (int64_t)tyr_dtype_size(t->dtype),
                       t->dtype);
}
static void cpu_sync(tyr_device dev) {
  (void)dev;
}

static void cpu_fill(tyr_tensor *out, double v) {
  int64_t n = tyr_numel(out);
  switch (out->dtype) {
  case TYR_F32: {
    float *p = TYR_BASE(out, float) + out->offset, f = (float)v;
    TYR_PAR_FOR(n > 32768, "omp parallel for simd", for (int64_t i = 0; i < n; i++) p[i] = f;);
    break;
  }
  case TYR_F64: {
    double *p = TYR_BASE(out, double) + out->offset;
    for (int64_t i = 0; i < n; i++) p[i] = v;
    break;
  }
  default: {
    size_t es = tyr_dtype_size(out->dtype);
    char *p = (char *)out->storage->data + out->offset * (int64_t)es;
    if (n == 0) break;
    tyr__store_f64(p, out->dtype, v);
    for (int64_t i = 1; i < n; i++) memcpy(p + i * (int64_t)es, p, es);
  }
  }
}

static void cpu_arange(tyr_tensor *out, double start, double step) {
  int64_t n = tyr_numel(out);
  size_t es = tyr_dtype_size(out->dtype);
  char *p = (char *)out->storage->data + out->offset * (int64_t)es;
  /* an explicit fma, so that every compiler and the CUDA backend agree */
  for (int64_t i = 0; i < n; i++)
    tyr__store_f64(p + i * (int64_t)es, out->dtype, fma((double)i, step, start));
}

static void cpu_random(tyr_tensor *out, tyr_random_kind kind, double p0, double p1, uint64_t seed,
                       uint64_t counter) {
  int64_t n = tyr_numel(out);
  size_t es = tyr_dtype_size(out->dtype);
  char *p = (char *)out->storage->data + out->offset * (int64_t)es;
#pragma omp parallel for if (n > 16384)
  for (int64_t i = 0; i < n; i++) {
    /* the same function of (seed, counter + i) as the CUDA backend's */
    double v = tyr__random_value((int)kind, p0, p1, seed, counter + (uint64_t)i);
    if (out->dtype == TYR_F32)
      ((float *)p)[i] = (float)v;
    else if (out->dtype == TYR_F64)
      ((double *)p)[i] = v;
    else
      tyr__store_f64(p + i * (int64_t)es, out->dtype, v);
  }
}

const tyr_backend tyr_cpu_backend = {
    .name = "cpu",
    .alloc = tyr_cpu_alloc,
    .free = tyr_cpu_free,
    .to_host = cpu_memcpy,
    .from_host = cpu_memcpy,
    .read_scalar = cpu_read_scalar,
    .synchronize = cpu_sync,
    .fill = cpu_fill,
    .arange = cpu_arange,
    .copy = tyr_cpu_copy,
    .random = cpu_random,
    .unary = tyr_cpu_unary,
    .unary_backward = tyr_cpu_unary_backward,
    .binary = tyr_cpu_binary,
    .where = tyr_cpu_where,
    .reduce = tyr_cpu_reduce,
    .matmul = tyr_cpu_matmul,
    .matmul_bias = tyr_cpu_matmul_bias,
    .matmul_act = tyr_cpu_matmul_act,
    .matmul_dact = tyr_cpu_matmul_dact,
    .softmax = tyr_cpu_softmax,
    .softmax_backward = tyr_cpu_softmax_backward,
    .layer_norm = tyr_cpu_layer_norm,
    .layer_norm_backward = tyr_cpu_layer_norm_backward,
    .index_select = tyr_cpu_index_select,
    .index_add = tyr_cpu_index_add,
    .gather = tyr_cpu_gather,
    .scatter_add = tyr_cpu_scatter_add,
    .cross_entropy = tyr_cpu_cross_entropy,
    .cross_entropy_backward = tyr_cpu_cross_entropy_backward,
    .cross_entropy_fused = tyr_cpu_cross_entropy_fused,
    .adamw_step = tyr_cpu_adamw_step,
    .sgd_step = tyr_cpu_sgd_step,
    .sum_squares = tyr_cpu_sum_squares,
    .scale_ = tyr_cpu_scale_,
    .sdpa = tyr_cpu_sdpa,
    .sdpa_backward = tyr_cpu_sdpa_backward,
    .rotary = tyr_cpu_rotary,
    .sum_squares_many = tyr_cpu_sum_squares_many,
    .cumsum = tyr_cpu_cumsum,
    .conv2d = tyr_cpu_conv2d,
    .conv2d_backward = tyr_cpu_conv2d_backward,
    .pool2d = tyr_cpu_pool2d,
    .pool2d_backward = tyr_cpu_pool2d_backward,
    .batch_norm = tyr_cpu_batch_norm,
    .batch_norm_backward = tyr_cpu_batch_norm_backward,
};

void tyr_set_num_threads(int n) {
  if (n > 0) {
    omp_set_num_threads(n); /* OpenBLAS stays single-threaded: see matmul.c */
  }
}
int tyr_get_num_threads(void) {
  return omp_get_max_threads();
}

/* The waiting policy for a machine whose other work keeps `load` cores busy
 * (the 1-minute load average before this program starts) out of `ncpu`:
 * spinning pays only while the cores are otherwise free.  Measured with
 * bench/omp_spin.sh (docs/benchmarks.md): on 2 cores shared with other work
 * the old GOMP_SPINCOUNT=1000000 ran train_gpt at 100-450 tok/s, 10000 at
 * 1000-1800 and passive waiting at 2500-4500. */
const char *tyr__cpu_wait_policy(double load, int ncpu, const char **value) {
  if (ncpu < 1) ncpu = 1;
  if (load >= 0.5 * ncpu) {
    *value = "passive";
    return "OMP_WAIT_POLICY";
  }
  *value = "10000";
  return "GOMP_SPINCOUNT";
}

void tyr_cpu_env_setup(char **argv) {
  if (getenv("TYR_NO_ENV_SETUP") || getenv("TYR_ENV_SETUP_DONE")) return;
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  double load = 0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &load) != 1) load = 0;
    fclose(f);
  }
  cpu_set_t set;
  int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  /* the load average counts the whole machine's runnable work: pinned to
     ncpu of its online cores (taskset, a job's cgroup), this program meets
     that share of it on average */
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online > ncpu) load *= (double)ncpu / (double)online;
  const char *value, *name = tyr__cpu_wait_policy(load, ncpu, &value);
  setenv(name, value, 1);
  setenv("TYR_ENV_SETUP_DONE", "1", 1);
  execv("/proc/self/exe", argv);
}
