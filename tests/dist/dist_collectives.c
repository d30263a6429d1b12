/* Every collective's values, for every dtype and reduction, sync and async,
 * at the world size mpirun gives (1, 2, 3: sizes that do not divide evenly
 * by the world size are included); then the failure modes:
 *   dist_collectives            the values
 *   dist_collectives mismatch   rank 1 passes a different count: every rank
 *                               must stop with a message naming the op
 *   dist_collectives kill       rank 1 SIGKILLs itself mid-collective
 *   dist_collectives late       rank 1 comes 5 s late to a collective (run
 *                               with TYR_DIST_TIMEOUT=1: rank 0 must stop)
 * Prints "dist_collectives: rank R of N: K checks passed". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tyr/dist.h>
#include <tyr/ops_create.h>

static int g_checks, g_rank;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    g_checks++;                                                                                    \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "dist_collectives: rank %d: %s:%d: ", g_rank, __FILE__, __LINE__);           \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static tyr_tensor *make(tyr_dtype dt, int64_t n) {
  return tyr_keep_e(tyr_empty_at(TYR_SITE, dt, TYR_DEVICE_CPU, 1, (int64_t[]){n}));
}

static void setv(tyr_tensor *t, int64_t i, double v) {
  tyr_set_at(TYR_SITE, t, (int64_t[]){i}, v);
}
static double getv(tyr_tensor *t, int64_t i) {
  return tyr_get_at(TYR_SITE, t, (int64_t[]){i});
}

static const tyr_dtype DT[] = {TYR_F32, TYR_F64, TYR_BF16, TYR_F16, TYR_I64};

/* rank r's value at i: (r + 1) * (i % 7 + 1): exact in every dtype */
static double val(int r, int64_t i) {
  return (double)(r + 1) * (double)(i % 7 + 1);
}

static double expect(tyr_dist_op op, int N, int64_t i) {
  double b = (double)(i % 7 + 1);
  switch (op) {
  case TYR_DIST_SUM:
    return b * N * (N + 1) / 2;
  case TYR_DIST_AVG:
    return b * (N + 1) / 2.0;
  case TYR_DIST_MAX:
    return b * N;
  case TYR_DIST_MIN:
    return b;
  }
  return 0;
}

static void quiet(const tyr_error *e, void *ctx) {
  (void)ctx;
  (void)e;
}

static void run_values(tyr_dist *pg) {
  int N = tyr_dist_world_size(pg), R = tyr_dist_rank(pg);
  const int64_t sizes[] = {1, 7, 10, 1001};
  for (size_t d = 0; d < sizeof DT / sizeof DT[0]; d++)
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
      for (int async = 0; async < 2; async++) {
        tyr_dtype dt = DT[d];
        int64_t n = sizes[si];
        const char *dn = tyr_dtype_name(dt);
        /* all_reduce */
        for (int op = TYR_DIST_SUM; op <= TYR_DIST_MIN; op++) {
          if (op == TYR_DIST_AVG && dt == TYR_I64) continue;
          tyr_tensor *t = make(dt, n);
          for (int64_t i = 0; i < n; i++) setv(t, i, val(R, i));
          if (async) {
            tyr_dist_work *w = tyr_dist_all_reduce_async(pg, t, (tyr_dist_op)op);
            CHECK(w, "all_reduce_async returned NULL");
            tyr_dist_test(w);
            CHECK(tyr_dist_wait(w) == 0, "wait failed");
          } else {
            CHECK(tyr_dist_all_reduce(pg, t, (tyr_dist_op)op) == 0, "all_reduce failed");
          }
          for (int64_t i = 0; i < n; i++)
            CHECK(getv(t, i) == expect((tyr_dist_op)op, N, i),
                  "all_reduce %s %s n=%lld async=%d: [%lld] = %g, expected %g",
                  tyr_dist_op_name((tyr_dist_op)op), dn, (long long)n, async, (long long)i,
                  getv(t, i), expect((tyr_dist_op)op, N, i));
          tyr_tensor_free(t);
        }
        /* broadcast from the last rank */
        {
          tyr_tensor *t = make(dt, n);
          for (int64_t i = 0; i < n; i++) setv(t, i, val(R, i));
          int root = N - 1;
          if (async)
            CHECK(tyr_dist_wait(tyr_dist_broadcast_async(pg, t, root)) == 0, "broadcast");
          else
            CHECK(tyr_dist_broadcast(pg, t, root) == 0, "broadcast");
          for (int64_t i = 0; i < n; i++)
            CHECK(getv(t, i) == val(root, i), "broadcast %s n=%lld: [%lld] = %g, expected %g", dn,
                  (long long)n, (long long)i, getv(t, i), val(root, i));
          tyr_tensor_free(t);
        }
        /* reduce_scatter: in has N*n elements, rank R gets slice R */
        for (int op = TYR_DIST_SUM; op <= TYR_DIST_MIN; op++) {
          if (op == TYR_DIST_AVG && dt == TYR_I64) continue;
          tyr_tensor *in = make(dt, n * N), *out = make(dt, n);
          for (int64_t i = 0; i < n * N; i++) setv(in, i, val(R, i));
          if (async)
            CHECK(tyr_dist_wait(tyr_dist_reduce_scatter_async(pg, out, in, (tyr_dist_op)op)) == 0,
                  "reduce_scatter");
          else
            CHECK(tyr_dist_reduce_scatter(pg, out, in, (tyr_dist_op)op) == 0, "reduce_scatter");
          for (int64_t i = 0; i < n; i++)
            CHECK(getv(out, i) == expect((tyr_dist_op)op, N, R * n + i),
                  "reduce_scatter %s %s n=%lld: [%lld] = %g, expected %g",
                  tyr_dist_op_name((tyr_dist_op)op), dn, (long long)n, (long long)i, getv(out, i),
                  expect((tyr_dist_op)op, N, R * n + i));
          tyr_tensor_free(in);
          tyr_tensor_free(out);
        }
        /* all_gather */
        {
          tyr_tensor *in = make(dt, n), *out = make(dt, n * N);
          for (int64_t i = 0; i < n; i++) setv(in, i, val(R, i));
          if (async)
            CHECK(tyr_dist_wait(tyr_dist_all_gather_async(pg, out, in)) == 0, "all_gather");
          else
            CHECK(tyr_dist_all_gather(pg, out, in) == 0, "all_gather");
          for (int r = 0; r < N; r++)
            for (int64_t i = 0; i < n; i++)
              CHECK(getv(out, r * n + i) == val(r, i), "all_gather %s n=%lld: [%d][%lld] = %g", dn,
                    (long long)n, r, (long long)i, getv(out, r * n + i));
          tyr_tensor_free(in);
          tyr_tensor_free(out);
        }
      }
  /* several collectives in flight at once, waited in reverse order */
  tyr_tensor *ts[4];
  tyr_dist_work *ws[4];
  for (int k = 0; k < 4; k++) {
    ts[k] = make(TYR_F32, 100 + k);
    for (int64_t i = 0; i < 100 + k; i++) setv(ts[k], i, val(R, i) * (k + 1));
    ws[k] = tyr_dist_all_reduce_async(pg, ts[k], TYR_DIST_SUM);
  }
  for (int k = 3; k >= 0; k--) {
    CHECK(tyr_dist_wait(ws[k]) == 0, "wait %d", k);
    for (int64_t i = 0; i < 100 + k; i++)
      CHECK(getv(ts[k], i) == expect(TYR_DIST_SUM, N, i) * (k + 1), "in flight %d [%lld]", k,
            (long long)i);
    tyr_tensor_free(ts[k]);
  }
  double avg = tyr_dist_reduce_scalar(pg, (double)R, TYR_DIST_AVG);
  CHECK(avg == (N - 1) / 2.0, "reduce_scalar avg %g", avg);
  CHECK(tyr_dist_barrier(pg) == 0, "barrier");
  /* argument errors on this rank only: raised before anything is sent */
  tyr_error_handler h;
  void *hctx;
  tyr_error_get_handler(&h, &hctx);
  tyr_error_set_handler(quiet, NULL);
  tyr_tensor *a = make(TYR_F32, 3), *b = make(TYR_F32, 4);
  CHECK(tyr_dist_all_gather(pg, b, a) != 0 || N * 3 == 4, "all_gather 3 -> 4 accepted");
  CHECK(strstr(tyr_error_last()->message, "tyr_dist_all_gather"), "message: %s",
        tyr_error_last()->message);
  tyr_tensor *ii = make(TYR_I64, 3);
  CHECK(tyr_dist_all_reduce(pg, ii, TYR_DIST_AVG) != 0, "avg of i64 accepted");
  tyr_tensor_free(a);
  tyr_tensor_free(b);
  tyr_tensor_free(ii);
  tyr_error_set_handler(h, hctx);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "values";
  tyr_dist *pg = tyr_dist_init(NULL);
  if (!pg) return 1;
  g_rank = tyr_dist_rank(pg);
  int N = tyr_dist_world_size(pg);
  int64_t live = tyr_live_tensors();
  if (!strcmp(mode, "values")) {
    run_values(pg);
    CHECK(tyr_live_tensors() == live, "leaked %lld tensors",
          (long long)(tyr_live_tensors() - live));
  } else if (!strcmp(mode, "mismatch")) {
    tyr_tensor *t = make(TYR_F32, g_rank == 1 ? 12 : 10);
    tyr_dist_all_reduce(pg, t, TYR_DIST_SUM); /* the default handler exits 1 */
    printf("dist_collectives: rank %d: the mismatch was not caught\n", g_rank);
    return 0;
  } else if (!strcmp(mode, "late")) {
    tyr_tensor *t = make(TYR_F32, 10);
    if (g_rank == 1) sleep(5);
    tyr_dist_all_reduce(pg, t, TYR_DIST_SUM);
    printf("dist_collectives: rank %d: no timeout\n", g_rank);
    return 0;
  } else if (!strcmp(mode, "kill")) {
    tyr_tensor *t = make(TYR_F32, 1000);
    for (int step = 0;; step++) {
      if (g_rank == 1 && step == 3) raise(SIGKILL);
      tyr_dist_all_reduce(pg, t, TYR_DIST_SUM);
    }
  }
  printf("dist_collectives: rank %d of %d (%s): %d checks passed\n", g_rank, N,
         tyr_dist_backend_name(pg, TYR_DEVICE_CPU), g_checks);
  tyr_dist_free(pg);
  return 0;
}
