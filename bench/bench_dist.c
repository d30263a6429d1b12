/* bench_dist: collectives and data parallel, to run under a launcher
 * (bench/bench_dist.sh runs it next to torch.distributed):
 *   mpirun -np 2 ./build/bench/bench_dist [--device cpu|cuda] [--max-mb 64] [--steps 20]
 *                                         [--threads N] [--collectives LIST|none] [--no-step]
 *                                         [--gpt2] [--batch-per-rank B]
 * 1. all-reduce, reduce-scatter and all-gather (f32, sum) by message size
 *    (the larger buffer's bytes, as nccl-tests): time per call (the slowest
 *    rank's) and bus bandwidth as nccl-tests: 2 (N-1)/N bytes / time for
 *    all-reduce, (N-1)/N bytes / time for the other two (--no-step: these
 *    only; --collectives allreduce,reducescatter,allgather picks);
 * 2. a data-parallel step of the shakespeare_cpu GPT (4 x 128, block 64,
 *    global batch 12) with gradients averaged in buckets: step time with
 *    no communication, with every bucket reduced after backward, with
 *    buckets started during backward, the all-reduce time alone, and the
 *    share of it hidden behind backward.  --gpt2: GPT-2 124M's architecture
 *    instead (12 x 12 x 768, block 1024, vocab 65, tanh GELU, bf16 compute on
 *    CUDA, 25 MB buckets), 16 rows per rank (--batch-per-rank). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/autograd.h>
#include <tyr/cuda.h>
#include <tyr/dist.h>
#include <tyr/nn.h>
#include <tyr/ops_create.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static tyr_dist *pg;
static tyr_device dev;

static void sync_dev(void) {
  if (dev.type == TYR_CUDA) tyr_cuda_synchronize();
}

/* seconds of fn over iters calls, the slowest rank's */
static double timed(void (*fn)(void *), void *ctx, int iters) {
  sync_dev();
  tyr_dist_barrier(pg);
  double t0 = now();
  for (int i = 0; i < iters; i++) fn(ctx);
  sync_dev();
  double t = (now() - t0) / iters;
  return tyr_dist_reduce_scalar(pg, t, TYR_DIST_MAX);
}

static void allreduce_once(void *t) {
  tyr_dist_all_reduce(pg, t, TYR_DIST_SUM);
}

typedef struct coll_ctx {
  tyr_tensor *whole, *part; /* N * n and n elements */
} coll_ctx;

static void reduce_scatter_once(void *p) {
  coll_ctx *c = p;
  tyr_dist_reduce_scatter(pg, c->part, c->whole, TYR_DIST_SUM);
}

static void all_gather_once(void *p) {
  coll_ctx *c = p;
  tyr_dist_all_gather(pg, c->whole, c->part);
}

/* time and bus bandwidth of one collective by size, 4 KiB to max_mb MiB */
static void sweep(const char *name, double max_mb, int N, int R) {
  bool ar = !strcmp(name, "allreduce");
  void (*fn)(void *) = ar                               ? allreduce_once
                       : !strcmp(name, "reducescatter") ? reduce_scatter_once
                                                        : all_gather_once;
  for (double kb = 4; kb <= max_mb * 1024 + 0.5; kb *= 4) {
    int64_t n = (int64_t)(kb * 1024 / 4) / N; /* elements per rank's part */
    if (n < 1) continue;
    coll_ctx c = {tyr_keep_e(tyr_zeros_at(TYR_SITE, TYR_F32, dev, 1, (int64_t[]){n * N})), NULL};
    if (!ar) c.part = tyr_keep_e(tyr_zeros_at(TYR_SITE, TYR_F32, dev, 1, (int64_t[]){n}));
    void *arg = ar ? (void *)c.whole : (void *)&c;
    int iters = kb <= 64 ? 200 : kb <= 1024 ? 50 : 10;
    timed(fn, arg, 3);
    double s = timed(fn, arg, iters);
    double bytes = 4.0 * (double)(n * N), f = (ar ? 2.0 : 1.0) * (N - 1) / N;
    if (R == 0)
      printf("tyr %s bytes %.0f time_us %.1f busbw_GBs %.3f\n", name, bytes, s * 1e6,
             N > 1 ? f * bytes / s / 1e9 : 0.0);
    tyr_tensor_free(c.whole);
    if (c.part) tyr_tensor_free(c.part);
  }
}

typedef struct step_ctx {
  tyr_gpt *g;
  tyr_optim *opt;
  tyr_ddp *ddp; /* NULL: no communication */
  tyr_tensor *x, *y;
} step_ctx;

static void train_step(void *p) {
  step_ctx *c = p;
  TYR_SCOPE;
  tyr_backward_e(tyr_gpt_loss_at(TYR_SITE, c->g, c->x, c->y, true));
  if (c->ddp) tyr_ddp_finish(c->ddp);
  tyr_params_clip_grad_norm(&c->g->params, 1.0);
  tyr_optim_step(c->opt, -1);
  tyr_params_zero_grad(&c->g->params);
}

typedef struct comm_ctx {
  tyr_tensor **b;
  int n;
} comm_ctx;

static void comm_only(void *p) {
  comm_ctx *c = p;
  for (int i = 0; i < c->n; i++) tyr_dist_all_reduce(pg, c->b[i], TYR_DIST_AVG);
}

int main(int argc, char **argv) {
  double max_mb = 64;
  int steps = 20, threads = 0;
  bool step = true, gpt2 = false;
  int64_t bpr = 0;
  const char *device = "cpu", *colls = "allreduce";
  for (int i = 1; i < argc; i += 2) {
    if (!strcmp(argv[i], "--no-step") || !strcmp(argv[i], "--gpt2")) {
      if (!strcmp(argv[i], "--gpt2"))
        gpt2 = true;
      else
        step = false;
      i--;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "bench_dist: %s needs a value\n", argv[i]);
      return 2;
    }
    if (!strcmp(argv[i], "--collectives"))
      colls = argv[i + 1];
    else if (!strcmp(argv[i], "--batch-per-rank"))
      bpr = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--device"))
      device = argv[i + 1];
    else if (!strcmp(argv[i], "--max-mb"))
      max_mb = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--steps"))
      steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads"))
      threads = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "bench_dist: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (!tyr_device_parse(device, &dev)) {
    fprintf(stderr, "bench_dist: --device %s: not cpu, cuda or cuda:N\n", device);
    return 2;
  }
  if (!(pg = tyr_dist_init(NULL))) return 1;
  int N = tyr_dist_world_size(pg), R = tyr_dist_rank(pg);
  if (dev.type == TYR_CUDA && !strcmp(device, "cuda")) dev.index = tyr_dist_local_rank(pg);
  if (threads > 0) tyr_set_num_threads(threads);
  if (R == 0)
    printf("bench_dist: %d rank%s, device %s, backend %s, %d threads per rank\n", N,
           N == 1 ? "" : "s", tyr_device_name(dev), tyr_dist_backend_name(pg, dev),
           tyr_get_num_threads());
  /* 1. collectives by size */
  char list[128];
  snprintf(list, sizeof list, "%s", strcmp(colls, "none") ? colls : "");
  for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    if (strcmp(tok, "allreduce") && strcmp(tok, "reducescatter") && strcmp(tok, "allgather")) {
      if (R == 0)
        fprintf(stderr, "bench_dist: --collectives %s: not allreduce, reducescatter or allgather\n",
                tok);
      tyr_dist_free(pg);
      return 2;
    }
    sweep(tok, max_mb, N, R);
  }
  if (!step) {
    tyr_dist_free(pg);
    return 0;
  }
  /* 2. a data-parallel step */
  int64_t Bg = 12, T = gpt2 ? 1024 : 64, b = Bg / N;
  if (gpt2 || bpr > 0) b = bpr > 0 ? bpr : 16, Bg = b * N; /* rows per rank fixed */
  if (Bg % N) {
    if (R == 0) printf("bench_dist: world size %d does not divide batch 12: no step figures\n", N);
    tyr_dist_free(pg);
    return 0;
  }
  tyr_gpt_config gc =
      gpt2 ? tyr_gpt_config_gpt2(65, T, 12, 12, 768) : tyr_gpt_config_gpt2(65, T, 4, 4, 128);
  gc.dropout = 0;
  if (gpt2) {
    tyr_act_kind_parse("gelu_tanh", &gc.act);
    if (dev.type == TYR_CUDA) gc.compute_dtype = TYR_BF16;
  }
  double bucket_mb = gpt2 ? 25 : 0.5;
  tyr_manual_seed(1);
  tyr_gpt g;
  if (tyr_gpt_init(&g, &gc, dev)) return 1;
  tyr_params_group_by_rank(&g.params);
  tyr_optim opt;
  tyr_optim_config oc = tyr_adamw_config(1e-4);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, 0.1};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  if (tyr_optim_init(&opt, &g.params, oc)) return 1;
  step_ctx c = {.g = &g, .opt = &opt};
  c.x = tyr_keep_e(tyr_randint_at(TYR_SITE, TYR_I64, dev, 2, (int64_t[]){b, T}, 0, 65));
  c.y = tyr_keep_e(tyr_randint_at(TYR_SITE, TYR_I64, dev, 2, (int64_t[]){b, T}, 0, 65));
  timed(train_step, &c, 3);
  double t_local = timed(train_step, &c, steps);
  double t_sync = NAN, t_over = NAN, t_comm = NAN;
  int nb = 0, ov = 0;
  if (N > 1 || strcmp(tyr_dist_backend_name(pg, dev), "local")) {
    tyr_ddp_config dc = {.bucket_mb = bucket_mb, .overlap = false};
    c.ddp = tyr_ddp_init(pg, &g.params, &dc);
    timed(train_step, &c, 3);
    t_sync = timed(train_step, &c, steps);
    tyr_ddp_free(c.ddp);
    dc.overlap = true;
    c.ddp = tyr_ddp_init(pg, &g.params, &dc);
    timed(train_step, &c, 3);
    t_over = timed(train_step, &c, steps);
    nb = tyr_ddp_num_buckets(c.ddp);
    ov = tyr_ddp_overlapped_buckets(c.ddp);
    tyr_ddp_free(c.ddp);
    /* the same buckets' all-reduce alone */
    comm_ctx cc = {.b = calloc((size_t)nb, sizeof(tyr_tensor *)), .n = 0};
    double fill = 0, cap = bucket_mb * 1024 * 1024;
    int64_t numel = 0;
    for (int i = g.params.n - 1; i >= -1; i--) {
      int64_t bytes = i >= 0 ? tyr_nbytes(g.params.items[i].t) : 0;
      if (i < 0 || (fill > 0 && fill + (double)bytes > cap)) {
        cc.b[cc.n++] = tyr_keep_e(tyr_zeros_at(TYR_SITE, TYR_F32, dev, 1, (int64_t[]){numel}));
        fill = 0, numel = 0;
        if (i < 0) break;
      }
      fill += (double)bytes;
      numel += tyr_numel(g.params.items[i].t);
    }
    timed(comm_only, &cc, 3);
    t_comm = timed(comm_only, &cc, steps);
    for (int i = 0; i < cc.n; i++) tyr_tensor_free(cc.b[i]);
    free(cc.b);
  }
  if (R == 0) {
    printf("tyr ddp ranks %d batch_per_rank %lld buckets %d started_in_backward %d step_ms_local "
           "%.2f step_ms_sync %.2f step_ms_overlap %.2f allreduce_ms %.2f",
           N, (long long)b, nb, ov, t_local * 1e3, t_sync * 1e3, t_over * 1e3, t_comm * 1e3);
    if (N > 1) {
      double exposed_sync = t_sync - t_local, exposed_over = t_over - t_local;
      double hidden = exposed_sync > 0 ? 1 - exposed_over / exposed_sync : NAN;
      printf(" hidden %.0f%%", 100 * fmax(0, fmin(1, hidden)));
    }
    printf(" tok_s %.0f\n", (double)(Bg * T) / (N > 1 ? t_over : t_local));
  }
  tyr_tensor_free(c.x);
  tyr_tensor_free(c.y);
  tyr_optim_free(&opt);
  tyr_gpt_free(&g);
  tyr_dist_free(pg);
  return 0;
}
