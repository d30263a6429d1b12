/* Distributed Muon: each rank orthogonalises whole matrices (dealt by
 * shape) and an all-gather shares them; the result must be bitwise that of
 * one process running Muon on every matrix.  Prints "dist_muon: ... PASS". */
#include <stdio.h>
#include <string.h>

#include <tyr/autograd.h>
#include <tyr/dist.h>
#include <tyr/muon.h>
#include <tyr/ops_create.h>

static void build(tyr_params *ps) {
  tyr_params_init(ps);
  const int64_t shapes[6][2] = {{8, 12}, {8, 12}, {8, 12}, {16, 8}, {16, 8}, {12, 8}};
  tyr_manual_seed(3);
  for (int i = 0; i < 6; i++)
    tyr_params_addf(ps, tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, shapes[i], 0, 0.2),
                    "blocks.%d.weight", i);
  tyr_params_add(ps, "blocks.0.bias",
                 tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (int64_t[]){8}, 0, 0.2));
  tyr_params_add(ps, "wte.weight",
                 tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 2, (int64_t[]){10, 8}, 0, 0.2));
}

static void grads(tyr_params *ps, int step) {
  for (int i = 0; i < ps->n; i++) {
    tyr_tensor *p = ps->items[i].t;
    tyr_zero_grad_e(p);
    tyr_manual_seed(1000 + 10 * step + i);
    p->grad = tyr_keep_e(tyr_randn_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, p->rank, p->shape, 0, 1));
  }
}

int main(int argc, char **argv) {
  tyr_dist *pg = tyr_dist_init(NULL);
  if (!pg) return 1;
  int R = tyr_dist_rank(pg), N = tyr_dist_world_size(pg);
  tyr_params a, b;
  build(&a);
  build(&b);
  tyr_muon_config cfg = tyr_muon_default_config(0.02, 1e-3);
  cfg.weight_decay = 0.1;
  if (argc > 1 && !strcmp(argv[1], "--polar-express")) cfg.ortho = TYR_MUON_POLAR_EXPRESS;
  if (argc > 1 && !strcmp(argv[1], "--normuon")) cfg.normuon = true;
  tyr_muon ma, mb;
  if (tyr_muon_init(&ma, &a, &cfg, pg) || tyr_muon_init(&mb, &b, &cfg, NULL)) return 1;
  for (int step = 0; step < 3; step++) {
    grads(&a, step);
    grads(&b, step);
    if (tyr_muon_step(&ma, 1.0) || tyr_muon_step(&mb, 1.0)) return 1;
  }
  int bad = 0;
  for (int k = 0; k < ma.nmuon; k++) /* state too: what a checkpoint holds */
    if (memcmp(tyr_data_ptr(ma.buf[k]), tyr_data_ptr(mb.buf[k]), (size_t)tyr_nbytes(ma.buf[k])) ||
        (ma.v[k] &&
         memcmp(tyr_data_ptr(ma.v[k]), tyr_data_ptr(mb.v[k]), (size_t)tyr_nbytes(ma.v[k]))))
      bad++, fprintf(stderr, "dist_muon: rank %d: Muon state %d differs\n", R, k);
  for (int i = 0; i < a.n; i++)
    if (memcmp(tyr_data_ptr(a.items[i].t), tyr_data_ptr(b.items[i].t),
               (size_t)tyr_nbytes(a.items[i].t)))
      bad++, fprintf(stderr, "dist_muon: rank %d: '%s' differs from one process\n", R,
                     a.items[i].name);
  bad = (int)tyr_dist_reduce_scalar(pg, bad, TYR_DIST_SUM);
  if (R == 0)
    printf("dist_muon: %d ranks, %d Muon matrices, %d parameters differing from one process: "
           "%s\n",
           N, ma.nmuon, bad, bad ? "FAIL" : "PASS");
  tyr_muon_free(&ma);
  tyr_muon_free(&mb);
  tyr_params_free(&a);
  tyr_params_free(&b);
  tyr_dist_free(pg);
  return bad ? 1 : 0;
}
