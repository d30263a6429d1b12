/* FLUX.2 [klein] 4B text to image, Tyr against its PyTorch twin
 * (bench/torch_flux2.py) in one run.
 *
 *   bench_flux2 [--size N] [--steps S] [--device cuda|cpu] [--config full|tiny]
 *               [--threads N] [--no-torch] [--compile]
 *
 * Both sides build the real architecture (--config full: Qwen3-4B's first 27
 * layers, the 4B transformer, the VAE decoder) with random bf16 weights,
 * run the pipeline once to warm up and once timed: the text encoder on 512
 * tokens, S Euler steps of the transformer on an N x N image, the VAE
 * decode; seconds per stage, the total and the peak memory of each.  The
 * twin is bench/torch_flux2.py bench, run from the repository root with
 * $TYR_PYTHON (default /usr/bin/python3); --compile gives it torch.compile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <tyr/cuda.h>
#include <tyr/models/flux2.h>
#include <tyr/models/flux2_vae.h>
#include <tyr/models/qwen3.h>
#include <tyr/tyr.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static void sync_dev(tyr_device d) {
  if (d.type == TYR_CUDA) tyr_cuda_synchronize();
}

typedef struct times {
  double text, steps, vae, peak_gib;
} times;

/* one pipeline run; 0 or 1 */
static int run_once(tyr_qwen3 *te, const int *layers, tyr_flux2 *fm, tyr_flux2_vae *vae,
                    int64_t size, int steps, tyr_device dev, times *t) {
  TYR_SCOPE;
  const int64_t L = 512, h = size / 16, w = size / 16;
  int64_t *ids = malloc(sizeof(int64_t) * L);
  for (int64_t i = 0; i < L; i++) ids[i] = (i * 7919) % tyr_qwen3_config_of(te)->vocab_size;
  int64_t shape[2] = {1, L};
  tyr_tensor *tid = tyr_from_host_at(TYR_SITE, ids, TYR_I64, dev, 2, shape);
  free(ids);
  sync_dev(dev);
  double t0 = now();
  tyr_tensor *feat = tyr_qwen3_hidden_states(te, tid, NULL, layers, 3);
  if (!feat) return 1;
  sync_dev(dev);
  double t1 = now();
  double *ts = malloc(sizeof(double) * (size_t)(steps + 1));
  tyr_flux2_schedule(steps, h * w, ts);
  tyr_tensor *x = tyr_keep_e(tyr_flux2_noise(fm, 1, h, w, 0));
  for (int k = 0; k < steps; k++) {
    tyr_tensor *nx;
    {
      TYR_SCOPE;
      nx = tyr_flux2_euler_step(fm, x, feat, ts[k], ts[k + 1], h, w);
      if (nx) tyr_keep_e(nx);
    }
    tyr_tensor_free(x);
    if (!nx) return 1;
    x = nx;
  }
  free(ts);
  sync_dev(dev);
  double t2 = now();
  tyr_tensor *img = tyr_flux2_vae_decode(vae, x, h, w);
  tyr_tensor_free(x);
  if (!img) return 1;
  sync_dev(dev);
  double t3 = now();
  t->text = t1 - t0, t->steps = t2 - t1, t->vae = t3 - t2;
  return 0;
}

static double json_num(const char *js, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\": ", key);
  const char *p = strstr(js, k);
  return p ? atof(p + strlen(k)) : NAN;
}

int main(int argc, char **argv) {
  int64_t size = 0;
  int steps = 4, threads = 0, torch = 1, compile = 0;
  const char *device = "cuda", *config = "full";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--size") && v)
      size = atoll(v), i++;
    else if (!strcmp(a, "--steps") && v)
      steps = atoi(v), i++;
    else if (!strcmp(a, "--device") && v)
      device = v, i++;
    else if (!strcmp(a, "--config") && v)
      config = v, i++;
    else if (!strcmp(a, "--threads") && v)
      threads = atoi(v), i++;
    else if (!strcmp(a, "--no-torch"))
      torch = 0;
    else if (!strcmp(a, "--compile"))
      compile = 1;
    else {
      fprintf(stderr,
              "usage: bench_flux2 [--size N] [--steps S] [--device cuda|cpu] [--config full|tiny] "
              "[--threads N] [--no-torch] [--compile]\n");
      return !strcmp(a, "--help") ? 0 : 2;
    }
  }
  tyr_device dev;
  if (!tyr_device_parse(device, &dev)) {
    fprintf(stderr, "bench_flux2: --device must be cpu, cuda or cuda:N: %s\n", device);
    return 2;
  }
  if (dev.type == TYR_CUDA && !tyr_cuda_available()) {
    fprintf(stderr, "bench_flux2: --device %s: no GPU here\n", device);
    return 1;
  }
  const bool tiny = !strcmp(config, "tiny");
  if (!tiny && strcmp(config, "full")) {
    fprintf(stderr, "bench_flux2: --config must be full or tiny: %s\n", config);
    return 2;
  }
  if (!size) size = dev.type == TYR_CUDA ? 1024 : 256;
  if (size % 16 || size < 16 || steps < 1) {
    fprintf(stderr, "bench_flux2: --size must be a positive multiple of 16, --steps positive\n");
    return 2;
  }
  if (threads > 0) tyr_set_num_threads(threads);
  const tyr_dtype dt = tiny ? TYR_F32 : TYR_BF16;
  tyr_qwen3_config qc = tiny ? tyr_qwen3_config_tiny() : tyr_qwen3_config_4b();
  int layers[3];
  tyr_flux2_text_layers(qc.n_layer, layers);
  tyr_flux2_config fc;
  tyr_flux2_vae_config vc;
  tyr_flux2_config_named(tiny ? "tiny" : "klein-4b", &fc);
  tyr_flux2_vae_config_named(tiny ? "tiny" : "flux2", &vc);
  printf("bench_flux2: %s config, %lldx%lld, %d steps, %s, %s weights, %d threads\n", config,
         (long long)size, (long long)size, steps, device, tyr_dtype_name(dt),
         tyr_get_num_threads());
  double tl = now();
  tyr_qwen3 *te = tyr_qwen3_init_random(&qc, layers[2], 1, dt, dev);
  tyr_flux2 fm;
  tyr_flux2_vae vae;
  if (!te || tyr_flux2_init_random(&fm, &fc, dt, dev, 2) ||
      tyr_flux2_vae_init_random(&vae, &vc, dt, dev, 3))
    return 1;
  printf("tyr: random weights in %.1f s\n", now() - tl);
  times warm, t;
  if (run_once(te, layers, &fm, &vae, size, steps, dev, &warm)) return 1;
  if (dev.type == TYR_CUDA) tyr_cuda_reset_peak(dev.index);
  if (run_once(te, layers, &fm, &vae, size, steps, dev, &t)) return 1;
  if (dev.type == TYR_CUDA) {
    tyr_cuda_mem_stats ms;
    tyr_cuda_memory_stats(dev.index, &ms);
    t.peak_gib = (double)ms.peak_allocated / 1073741824.0;
  } else {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    t.peak_gib = (double)ru.ru_maxrss / (1024.0 * 1024.0);
  }
  tyr_qwen3_free(te);
  tyr_flux2_free(&fm);
  tyr_flux2_vae_free(&vae);
  if (dev.type == TYR_CUDA) tyr_cuda_empty_cache();

  times p = {NAN, NAN, NAN, NAN};
  if (torch) {
    const char *py = getenv("TYR_PYTHON") ? getenv("TYR_PYTHON") : "/usr/bin/python3";
    char cmd[1024], line[4096] = "";
    snprintf(cmd, sizeof cmd,
             "%s bench/torch_flux2.py bench --size %lld --steps %d --device %s --config %s%s", py,
             (long long)size, steps, device, config, compile ? " --compile" : "");
    FILE *f = popen(cmd, "r");
    if (f) {
      char buf[4096];
      while (fgets(buf, sizeof buf, f))
        if (buf[0] == '{') snprintf(line, sizeof line, "%s", buf);
      pclose(f);
    }
    if (line[0]) {
      p.text = json_num(line, "text_encoder_s");
      p.steps = json_num(line, "transformer_s");
      p.vae = json_num(line, "vae_s");
      p.peak_gib = json_num(line, "peak_gib");
      if (strstr(line, "text_encoder_error")) printf("twin: %s", line);
    } else {
      printf("twin: no result from: %s\n", cmd);
    }
  }
  const char *who = compile ? "torch.compile" : "torch eager";
  printf("%-22s %10s %14s %8s\n", "stage (s)", "tyr", who, "speedup");
  const char *names[4] = {"text encoder (512 tok)", "transformer steps", "vae decode", "total"};
  double ty[4] = {t.text, t.steps, t.vae, t.text + t.steps + t.vae};
  double py4[4] = {p.text, p.steps, p.vae, p.text + p.steps + p.vae};
  for (int i = 0; i < 4; i++)
    printf("%-22s %10.3f %14.3f %8.2f\n", names[i], ty[i], py4[i], py4[i] / ty[i]);
  printf("%-22s %10.2f %14.2f\n", "peak memory (GiB)", t.peak_gib, p.peak_gib);
  printf("per step: tyr %.3f s, twin %.3f s\n", t.steps / steps, p.steps / steps);
  return 0;
}
