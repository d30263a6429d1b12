/* The NCCL path end to end at world size 1 on a GPU (TYR_DIST_NCCL asked
 * for explicitly): every collective and dtype on CUDA tensors, sync and
 * async; data parallel through NCCL buckets against plain AdamW; ZeRO-1 on
 * the GPU against AdamW; Muon in bf16 on the GPU against Muon in f32 on
 * the CPU.  Exits 77 (ctest SKIP) without a GPU or without NCCL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "tyr/autograd.h"
#include "tyr/cuda.h"
#include "tyr/dist.h"
#include "tyr/tyr.h"
#include "tyr/muon.h"
#include "tyr/nn.h"
#include "tyr/ops_create.h"

static tyr_dist *nccl_group(void) {
  tyr_dist_config c;
  memset(&c, 0, sizeof c);
  c.world_size = 1;
  c.backend = TYR_DIST_NCCL;
  tyr_dist *pg = tyr_dist_init(&c);
  assert_non_null(pg);
  assert_string_equal(tyr_dist_backend_name(pg, TYR_DEVICE_CUDA(0)), "nccl");
  return pg;
}

static void host(tyr_tensor *t, double *out) {
  TYR_SCOPE;
  tyr_tensor *c = tyr_to_dtype_e(tyr_to_device_e(t, TYR_DEVICE_CPU), TYR_F64);
  memcpy(out, tyr_data_ptr(c), sizeof(double) * (size_t)tyr_numel(t));
}

static void test_nccl_collectives(void **state) {
  (void)state;
  tyr_dist *pg = nccl_group();
  const tyr_dtype dts[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_F16, TYR_I64};
  for (size_t d = 0; d < 5; d++)
    for (int async = 0; async < 2; async++) {
      TYR_SCOPE;
      double v[6] = {1, -2, 3, 4, -5, 6}, out[12];
      tyr_tensor *src = tyr_from_host_at(TYR_SITE, v, TYR_F64, TYR_DEVICE_CPU, 1, (int64_t[]){6});
      tyr_tensor *t = tyr_to_dtype_e(tyr_to_device_e(src, TYR_DEVICE_CUDA(0)), dts[d]);
      for (int op = TYR_DIST_SUM; op <= TYR_DIST_MIN; op++) {
        if (op == TYR_DIST_AVG && dts[d] == TYR_I64) continue;
        if (async)
          assert_int_equal(tyr_dist_wait(tyr_dist_all_reduce_async(pg, t, (tyr_dist_op)op)), 0);
        else
          assert_int_equal(tyr_dist_all_reduce(pg, t, (tyr_dist_op)op), 0);
        host(t, out);
        for (int k = 0; k < 6; k++) assert_true(out[k] == v[k]);
      }
      assert_int_equal(tyr_dist_broadcast(pg, t, 0), 0);
      tyr_tensor *g = tyr_empty_at(TYR_SITE, dts[d], TYR_DEVICE_CUDA(0), 1, (int64_t[]){6});
      assert_int_equal(tyr_dist_all_gather(pg, g, t), 0);
      host(g, out);
      for (int k = 0; k < 6; k++) assert_true(out[k] == v[k]);
      tyr_tensor *r = tyr_empty_at(TYR_SITE, dts[d], TYR_DEVICE_CUDA(0), 1, (int64_t[]){6});
      assert_int_equal(tyr_dist_reduce_scatter(pg, r, g, TYR_DIST_SUM), 0);
      host(r, out);
      for (int k = 0; k < 6; k++) assert_true(out[k] == v[k]);
    }
  /* avg over one rank is the identity, to the last element (NCCL's ncclAvg
     left the final few of 26912 unscaled) */
  for (int64_t n = 26912; n <= 26915; n++) {
    TYR_SCOPE;
    tyr_tensor *in = tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CUDA(0), 1, (int64_t[]){n}, 0, 1);
    tyr_tensor *out = tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CUDA(0), 1, (int64_t[]){n});
    assert_int_equal(tyr_dist_reduce_scatter(pg, out, in, TYR_DIST_AVG), 0);
    tyr_tensor *d = tyr_to_device_e(tyr_sub_e(out, in), TYR_DEVICE_CPU);
    assert_true(tyr_item_e(tyr_max_e(tyr_abs_e(d))) == 0);
  }
  tyr_dist_free(pg);
}

enum { V = 29, T = 16, B = 4 };

static void batch(int step, tyr_tensor **x, tyr_tensor **y) {
  int64_t bx[B * T], by[B * T];
  for (int i = 0; i < B * T; i++) {
    uint32_t o[4];
    tyr_philox4x32(77, (uint64_t)(step * B * T + i), o);
    bx[i] = o[0] % V, by[i] = o[1] % V;
  }
  *x = tyr_from_host_at(TYR_SITE, bx, TYR_I64, TYR_DEVICE_CUDA(0), 2, (int64_t[]){B, T});
  *y = tyr_from_host_at(TYR_SITE, by, TYR_I64, TYR_DEVICE_CUDA(0), 2, (int64_t[]){B, T});
}

static double max_rel(tyr_gpt *a, tyr_gpt *b) {
  double dd = 0, nn = 0;
  for (int i = 0; i < a->params.n; i++) {
    int64_t n = tyr_numel(a->params.items[i].t);
    double *pa = malloc(sizeof(double) * (size_t)n), *pb = malloc(sizeof(double) * (size_t)n);
    host(a->params.items[i].t, pa);
    host(b->params.items[i].t, pb);
    for (int64_t k = 0; k < n; k++) dd += (pa[k] - pb[k]) * (pa[k] - pb[k]), nn += pa[k] * pa[k];
    free(pa), free(pb);
  }
  return sqrt(dd / nn);
}

/* mode 0: DDP (NCCL buckets) + AdamW; 1: ZeRO-1; 2: Muon bf16 on the GPU vs f32 on the CPU;
 * 3: ZeRO-1 taking gradients averaged already (Muon's DistAdam behind tyr_ddp) */
static void train_pair(int mode) {
  tyr_dist *pg = nccl_group();
  tyr_gpt_config gc = tyr_gpt_config_gpt2(V, T, 2, 2, 32);
  tyr_gpt a, b;
  tyr_manual_seed(5);
  assert_int_equal(tyr_gpt_init(&a, &gc, TYR_DEVICE_CUDA(0)), 0);
  tyr_manual_seed(5);
  assert_int_equal(tyr_gpt_init(&b, &gc, mode == 2 ? TYR_DEVICE_CPU : TYR_DEVICE_CUDA(0)), 0);
  tyr_optim_config oc = tyr_adamw_config(1e-3);
  tyr_optim oa, ob;
  tyr_ddp *ddp = NULL;
  tyr_zero1 *z = NULL;
  tyr_muon ma, mb;
  tyr_muon_config mc = tyr_muon_default_config(0.02, 1e-3);
  if (mode == 0) {
    tyr_ddp_config dc = {.bucket_mb = 0.01, .overlap = true};
    ddp = tyr_ddp_init(pg, &a.params, &dc);
    assert_non_null(ddp);
    assert_true(tyr_ddp_num_buckets(ddp) > 1);
    assert_int_equal(tyr_optim_init(&oa, &a.params, oc), 0);
  } else if (mode == 1 || mode == 3) {
    z = tyr_zero1_init(pg, &a.params, oc);
    assert_non_null(z);
    tyr_zero1_set_grads_averaged(z, mode == 3);
  } else {
    assert_int_equal(tyr_muon_init(&ma, &a.params, &mc, NULL), 0);
    assert_int_equal(tyr_muon_init(&mb, &b.params, &mc, NULL), 0);
  }
  if (mode != 2) assert_int_equal(tyr_optim_init(&ob, &b.params, oc), 0);
  for (int step = 0; step < 5; step++) {
    TYR_SCOPE;
    tyr_tensor *x, *y;
    batch(step, &x, &y);
    assert_int_equal(tyr_backward_e(tyr_gpt_loss_at(TYR_SITE, &a, x, y, true)), 0);
    if (mode == 2) {
      x = tyr_to_device_e(x, TYR_DEVICE_CPU);
      y = tyr_to_device_e(y, TYR_DEVICE_CPU);
    }
    assert_int_equal(tyr_backward_e(tyr_gpt_loss_at(TYR_SITE, &b, x, y, true)), 0);
    if (mode == 1 || mode == 3) /* b's gradients for both: the optimizers alone compared */
      for (int i = 0; i < a.params.n; i++)
        assert_int_equal(tyr_copy_e(a.params.items[i].t->grad, b.params.items[i].t->grad), 0);
    if (mode == 0) {
      assert_int_equal(tyr_ddp_finish(ddp), 0);
      assert_int_equal(tyr_optim_step(&oa, -1), 0);
    } else if (mode == 1 || mode == 3) {
      assert_int_equal(tyr_zero1_step(z, -1, 0, NULL), 0);
    } else {
      assert_int_equal(tyr_muon_step(&ma, 1), 0);
      assert_int_equal(tyr_muon_step(&mb, 1), 0);
    }
    if (mode != 2) assert_int_equal(tyr_optim_step(&ob, -1), 0);
    tyr_params_zero_grad(&a.params);
    tyr_params_zero_grad(&b.params);
  }
  double r = max_rel(&a, &b);
  print_message("mode %s: relative parameter difference %.3g%s\n",
                mode == 0   ? "ddp (nccl)"
                : mode == 1 ? "zero1 (nccl)"
                : mode == 3 ? "zero1, gradients averaged already"
                            : "muon bf16 gpu vs f32 cpu",
                r, ddp ? "" : "");
  if (ddp)
    print_message("buckets %d, overlapped %d\n", tyr_ddp_num_buckets(ddp),
                  tyr_ddp_overlapped_buckets(ddp));
  assert_true(r <= (mode == 2 ? 2e-2 : 1e-6));
  tyr_ddp_free(ddp);
  tyr_zero1_free(z);
  if (mode == 0) tyr_optim_free(&oa);
  if (mode != 2) tyr_optim_free(&ob);
  if (mode == 2) {
    tyr_muon_free(&ma);
    tyr_muon_free(&mb);
  }
  tyr_gpt_free(&a);
  tyr_gpt_free(&b);
  tyr_dist_free(pg);
}

static void test_nccl_ddp(void **state) {
  (void)state;
  train_pair(0);
}
static void test_nccl_zero1(void **state) {
  (void)state;
  train_pair(1);
}
static void test_muon_cuda_bf16(void **state) {
  (void)state;
  train_pair(2);
}
static void test_zero1_grads_averaged_cuda(void **state) {
  (void)state;
  train_pair(3);
}

int main(void) {
  if (!tyr_dist_have_nccl() || !tyr_cuda_available()) {
    printf("SKIP: %s\n", tyr_dist_have_nccl() ? "no GPU" : "built without NCCL");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_nccl_collectives),
      TYR_TEST(test_nccl_ddp),
      TYR_TEST(test_nccl_zero1),
      TYR_TEST(test_muon_cuda_bf16),
      TYR_TEST(test_zero1_grads_averaged_cuda),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
