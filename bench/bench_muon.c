/* bench_muon: Muon steps on two matrices (64 x 128 and 128 x 64) with
 * seeded gradients, timed, with the initial weights, the gradients and the
 * result written to a safetensors file for bench/muon_torch.py, which
 * repeats the steps with torch.optim.Muon (PyTorch 2.9 and later) or the
 * same formulas in torch, and compares.
 *   bench_muon OUT.safetensors [--device cpu|cuda] [--polar-express] [--steps K] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tyr/cuda.h>
#include <tyr/muon.h>
#include <tyr/ops_create.h>
#include <tyr/safetensors.h>

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: bench_muon OUT.safetensors [--device cpu|cuda] [--polar-express] "
                    "[--steps K]\n");
    return 2;
  }
  const char *out = argv[1], *device = "cpu";
  int steps = 3;
  bool pe = false;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--device") && i + 1 < argc)
      device = argv[++i];
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
      steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--polar-express"))
      pe = true;
    else {
      fprintf(stderr, "bench_muon: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  tyr_device dev;
  if (!tyr_device_parse(device, &dev) || steps < 1 || steps > 50) {
    fprintf(stderr, "bench_muon: --device cpu|cuda, --steps 1..50\n");
    return 2;
  }
  const int64_t shapes[2][2] = {{64, 128}, {128, 64}};
  tyr_params ps;
  tyr_params_init(&ps);
  int n = 0;
  const char *names[2 + 2 * 50 + 2];
  tyr_tensor *ts[2 + 2 * 50 + 2];
  char nbuf[2 * 50][32];
  for (int i = 0; i < 2; i++) {
    tyr_manual_seed(10 + i);
    tyr_tensor *w = tyr_randn_at(TYR_SITE, TYR_F32, dev, 2, shapes[i], 0, 0.05);
    tyr_params_addf(&ps, w, "w%d", i);
    names[n] = i ? "w1.init" : "w0.init";
    ts[n++] = tyr_keep_e(tyr_to_device_e(w, TYR_DEVICE_CPU));
  }
  tyr_muon_config cfg = tyr_muon_default_config(0.02, 1e-3);
  cfg.weight_decay = 0.1;
  if (pe) cfg.ortho = TYR_MUON_POLAR_EXPRESS;
  tyr_muon m;
  if (tyr_muon_init(&m, &ps, &cfg, NULL)) return 1;
  double total = 0;
  for (int k = 0; k < steps; k++) {
    for (int i = 0; i < 2; i++) {
      tyr_tensor *w = ps.items[i].t;
      tyr_zero_grad_e(w);
      tyr_manual_seed(100 + 10 * k + i);
      w->grad = tyr_keep_e(tyr_randn_at(TYR_SITE, TYR_F32, dev, 2, w->shape, 0, 1));
      snprintf(nbuf[2 * k + i], sizeof nbuf[0], "w%d.grad.%d", i, k);
      names[n] = nbuf[2 * k + i];
      ts[n++] = tyr_keep_e(tyr_to_device_e(w->grad, TYR_DEVICE_CPU));
    }
    if (dev.type == TYR_CUDA) tyr_cuda_synchronize();
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (tyr_muon_step(&m, 1.0)) return 1;
    if (dev.type == TYR_CUDA) tyr_cuda_synchronize();
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (k > 0 || steps == 1)
      total += (double)(b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec);
  }
  for (int i = 0; i < 2; i++) {
    names[n] = i ? "w1.tyr" : "w0.tyr";
    ts[n++] = tyr_keep_e(tyr_to_device_e(ps.items[i].t, TYR_DEVICE_CPU));
  }
  char st[16];
  snprintf(st, sizeof st, "%d", steps);
  const char *mk[3] = {"steps", "ortho", "device"},
             *mv[3] = {st, pe ? "polar_express" : "newton_schulz", device};
  if (tyr_safetensors_save(out, n, names, ts, 3, mk, mv)) return 1;
  printf("tyr muon %s on %s (%s): %.3f ms per step (2 matrices, mean of steps after the first)\n",
         mv[1], tyr_device_name(dev), dev.type == TYR_CUDA ? "bf16" : "f32",
         1e3 * total / (steps > 1 ? steps - 1 : 1));
  for (int i = 0; i < n; i++) tyr_tensor_free(ts[i]);
  tyr_muon_free(&m);
  tyr_params_free(&ps);
  return 0;
}
