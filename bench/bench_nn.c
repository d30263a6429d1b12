/* Times the functional ops on the CPU at GPT-2-small-like sizes:
 * scaled-dot-product attention (forward, and forward + backward), layer
 * norm, softmax over the last and a middle dim, activations alone and in
 * the MLP (tyr_mlp, forward + backward), and cross entropy.
 * Usage: bench_nn [B T] (default 4 256); OMP_NUM_THREADS sets the threads,
 * and TYR_BENCH_ATTN_ROWS=1 times the attention kernels' row-at-a-time
 * fallback instead of the tiled path. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tyr/tyr.h"

extern bool tyr_cpu_attention_force_rows; /* src/cpu/attention.c */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* CPU time of the process (all threads): less disturbed than wall time
 * on a machine shared with other work. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TIME(label, reps, flops, body)                                                             \
  do {                                                                                             \
    {                                                                                              \
      TYR_SCOPE;                                                                                   \
      body;                                                                                        \
    } /* warm up */                                                                                \
    double t0 = now(), c0 = cpu_now();                                                             \
    for (int r_ = 0; r_ < (reps); r_++) {                                                          \
      TYR_SCOPE;                                                                                   \
      body;                                                                                        \
    }                                                                                              \
    double ms = (now() - t0) * 1e3 / (reps), cms = (cpu_now() - c0) * 1e3 / (reps);                \
    if ((flops) > 0)                                                                               \
      printf("%-46s %9.3f ms wall %9.3f ms cpu %7.2f GFLOP per cpu-s\n", label, ms, cms,           \
             (flops) / (cms * 1e6));                                                               \
    else                                                                                           \
      printf("%-46s %9.3f ms wall %9.3f ms cpu\n", label, ms, cms);                                \
  } while (0)

int main(int argc, char **argv) {
  int64_t B = argc > 2 ? atoll(argv[1]) : 4, T = argc > 2 ? atoll(argv[2]) : 256;
  const int64_t H = 12, D = 64, C = H * D, V = 50304;
  tyr_dtype f32 = TYR_F32;
  tyr_device cpu = TYR_DEVICE_CPU;
  const char *rows = getenv("TYR_BENCH_ATTN_ROWS");
  tyr_cpu_attention_force_rows = rows && rows[0] == '1';
  printf("tyr functional ops on the cpu, %d threads: B %lld, T %lld, H %lld, D %lld%s\n",
         tyr_get_num_threads(), (long long)B, (long long)T, (long long)H, (long long)D,
         tyr_cpu_attention_force_rows ? " (attention row at a time)" : "");
  tyr_tensor *q = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 4, (int64_t[]){B, H, T, D}, 0, 1));
  tyr_tensor *k = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 4, (int64_t[]){B, H, T, D}, 0, 1));
  tyr_tensor *v = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 4, (int64_t[]){B, H, T, D}, 0, 1));
  tyr_tensor *k4 = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 4, (int64_t[]){B, 4, T, D}, 0, 1));
  /* useful flops: q k^T and p v, 2 each per multiply-add; half with a causal mask */
  double full = 4.0 * (double)(B * H * T * T * D), causal = full / 2;
  tyr_sdpa_opts co = {.causal = true};
  for (int i = 0; i < 3; i++) { /* let the allocator settle before timing */
    TYR_SCOPE;
    tyr_sdpa_e(q, k, v, &co);
  }
  TIME("sdpa forward, causal", 5, causal, tyr_sdpa_e(q, k, v, &co));
  TIME("sdpa forward, full", 5, full, tyr_sdpa_e(q, k, v, NULL));
  TIME("sdpa forward, causal, 12 q heads / 4 kv heads", 5, causal, tyr_sdpa_e(q, k4, k4, &co));
  TIME("sdpa forward, causal, window 64", 5, 0,
       tyr_sdpa_e(q, k, v, &((tyr_sdpa_opts){.window = 64})));
  tyr_requires_grad_e(q, true);
  tyr_requires_grad_e(k, true);
  tyr_requires_grad_e(v, true);
  /* the backward's five products (scores recomputed, dP, dq, dk, dv) are 2.5x the
     forward's two (with fewer key/value heads than twice the threads it runs in
     two passes that recompute the scores and dP once more) */
  TIME("sdpa forward + backward, causal", 3, causal * 3.5, {
    tyr_backward_e(tyr_sum_e(tyr_sdpa_e(q, k, v, &co)));
    tyr_zero_grad_e(q);
    tyr_zero_grad_e(k);
    tyr_zero_grad_e(v);
  });
  tyr_tensor *x = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 3, (int64_t[]){B, T, C}, 0, 1));
  tyr_tensor *w = tyr_keep_e(tyr_ones_at(TYR_SITE, f32, cpu, 1, &C));
  tyr_tensor *bias = tyr_keep_e(tyr_zeros_at(TYR_SITE, f32, cpu, 1, &C));
  TIME("layer_norm [B, T, 768]", 20, 0, tyr_layer_norm_e(x, w, bias, 1e-5));
  TIME("rms_norm [B, T, 768]", 20, 0, tyr_rms_norm_e(x, w, 1e-5));
  TIME("softmax [B, T, 768] over dim 2", 20, 0, tyr_softmax_e(x, 2));
  TIME("softmax [B, T, 768] over dim 1", 20, 0, tyr_softmax_e(x, 1));
  TIME("dropout p 0.1 [B, T, 768]", 20, 0, tyr_dropout_e(x, 0.1, true));
  /* activations on the MLP's hidden width: element-wise and inside the MLP's
     GEMMs (tyr_mlp: the activation in the first product's epilogue, its
     derivative in the backward product's) */
  tyr_tensor *h = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 3, (int64_t[]){B, T, 4 * C}, 0, 1));
  TIME("gelu [B, T, 3072]", 10, 0, tyr_gelu_e(h));
  TIME("gelu_tanh [B, T, 3072]", 10, 0, tyr_gelu_tanh_e(h));
  TIME("silu [B, T, 3072]", 10, 0, tyr_silu_e(h));
  TIME("tanh [B, T, 3072]", 10, 0, tyr_tanh_e(h));
  tyr_requires_grad_e(h, true);
  TIME("gelu forward + backward [B, T, 3072]", 10, 0, {
    tyr_backward_e(tyr_sum_e(tyr_gelu_e(h)));
    tyr_zero_grad_e(h);
  });
  TIME("gelu_tanh forward + backward [B, T, 3072]", 10, 0, {
    tyr_backward_e(tyr_sum_e(tyr_gelu_tanh_e(h)));
    tyr_zero_grad_e(h);
  });
  tyr_requires_grad_e(h, false);
  tyr_tensor *w1 = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 2, (int64_t[]){4 * C, C}, 0, 0.02));
  tyr_tensor *b1 = tyr_keep_e(tyr_zeros_at(TYR_SITE, f32, cpu, 1, (int64_t[]){4 * C}));
  tyr_tensor *w2 = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 2, (int64_t[]){C, 4 * C}, 0, 0.02));
  tyr_tensor *x2 = tyr_keep_e(tyr_reshape_e(x, B * T, C));
  tyr_requires_grad_e(x2, true);
  tyr_requires_grad_e(w1, true);
  tyr_requires_grad_e(w2, true);
  /* two products forward, four backward (hidden gradient, dw2, dw1, dx): 2 B T C 4C flops each */
  double mlp_flops = 2.0 * 2.0 * (double)(B * T) * (double)C * (double)(4 * C) * 3.0;
  const char *act_names[] = {"gelu", "gelu_tanh"};
  tyr_act_kind acts[] = {TYR_ACT_GELU, TYR_ACT_GELU_TANH};
  for (int a = 0; a < 2; a++) {
    char label[64];
    snprintf(label, sizeof label, "mlp %s forward + backward, 768 -> 3072", act_names[a]);
    TIME(label, 3, mlp_flops, {
      tyr_backward_e(tyr_sum_e(tyr_mlp_e(x2, w1, b1, w2, NULL, acts[a])));
      tyr_zero_grad_e(x2);
      tyr_zero_grad_e(w1);
      tyr_zero_grad_e(w2);
    });
  }
  tyr_tensor *lg = tyr_keep_e(tyr_randn_at(TYR_SITE, f32, cpu, 3, (int64_t[]){B, T, V}, 0, 1));
  tyr_tensor *tg = tyr_keep_e(tyr_randint_at(TYR_SITE, TYR_I64, cpu, 2, (int64_t[]){B, T}, 0, V));
  TIME("cross_entropy [B, T, 50304]", 3, 0, tyr_cross_entropy_e(lg, tg, -100));
  tyr_tensor *all[] = {q, k, v, k4, x, w, bias, h, w1, b1, w2, x2, lg, tg};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tyr_tensor_free(all[i]);
  return 0;
}
