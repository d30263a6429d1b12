/* flux_demo: text to image with FLUX.2 [klein] 4B in Tyr.
 *
 *   flux_demo "a cat sitting on a windowsill, photorealistic" --weights klein/ --out cat.png
 *   flux_demo "a red bicycle" --random-weights tiny --out tiny.png   (no weights needed)
 *
 * Stages: the prompt through Qwen3 (tyr/models/qwen3.h: chat template,
 * padded to 512, hidden states 9, 18, 27 stacked), the rectified-flow
 * transformer for --steps Euler steps from a seeded Philox start
 * (tyr/models/flux2.h), the VAE decoder (tyr/models/flux2_vae.h), then the
 * PNG (or PPM).  Every stage prints its progress and time; the peak memory
 * is printed at the end.  Bad input is refused before anything is loaded;
 * the image is written under a temporary name and renamed, so a failed run
 * leaves no partial file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tyr/cuda.h"
#include "tyr/fileio.h"
#include "tyr/flags.h"
#include "tyr/models/flux2.h"
#include "tyr/models/flux2_vae.h"
#include "tyr/models/qwen3.h"
#include "tyr/plot.h"
#include "tyr/progress.h"
#include "tyr/tyr.h"

static const char *const PROG = "flux_demo";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int fail(const char *fmt, const char *a) {
  fprintf(stderr, "%s: ", PROG);
  fprintf(stderr, fmt, a);
  fprintf(stderr, "\n");
  return 1;
}

/* bytes of memory available to this process (MemAvailable), or 0 */
static double mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

static double peak_rss_gib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

/* The files a weights directory holds: BFL's single files or diffusers'
 * components, the text encoder and the tokenizer.  Lists what is missing. */
typedef struct weights_paths {
  char transformer[4096], vae[4096], text_encoder[4096], tokenizer[4096];
} weights_paths;

static int find_weights(const char *dir, weights_paths *w) {
  if (!is_dir(dir)) return fail("--weights %s: no such directory", dir);
  char missing[2048] = "";
  snprintf(w->transformer, sizeof w->transformer, "%s/flux-2-klein-4b.safetensors", dir);
  if (!is_file(w->transformer)) {
    snprintf(w->transformer, sizeof w->transformer, "%s/transformer", dir);
    if (!is_dir(w->transformer)) strcat(missing, " flux-2-klein-4b.safetensors (or transformer/)");
  }
  snprintf(w->vae, sizeof w->vae, "%s/ae.safetensors", dir);
  if (!is_file(w->vae)) {
    snprintf(w->vae, sizeof w->vae, "%s/vae", dir);
    if (!is_dir(w->vae)) strcat(missing, " ae.safetensors (or vae/)");
  }
  snprintf(w->text_encoder, sizeof w->text_encoder, "%s/text_encoder", dir);
  if (!is_dir(w->text_encoder)) strcat(missing, " text_encoder/");
  snprintf(w->tokenizer, sizeof w->tokenizer, "%s/tokenizer/tokenizer.json", dir);
  if (!is_file(w->tokenizer)) strcat(missing, " tokenizer/tokenizer.json");
  if (missing[0]) {
    fprintf(stderr, "%s: --weights %s: missing:%s (see the README's FLUX.2 section)\n", PROG, dir,
            missing);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  int64_t width = 0, height = 0, steps = 4, seed = 0, max_len = 512, threads = 0;
  char out[1024] = "flux.png", weights[1024] = "", device[32] = "cpu", random_w[16] = "";
  char preset[16] = "";
  bool ppm = false;
  const tyr_flag flags[] = {
      TYR_FLAG_INT("width", &width, 0, 4096,
                   "image width, a multiple of 16 (0: 1024 on the GPU, 256 on the CPU)"),
      TYR_FLAG_INT("height", &height, 0, 4096, "image height, a multiple of 16 (0: as width)"),
      TYR_FLAG_INT("steps", &steps, 1, 1000, "Euler steps of the sampler"),
      TYR_FLAG_INT("seed", &seed, 0, INT64_MAX, "seed of the Philox start noise"),
      TYR_FLAG_STRING("out", out, "the image to write (PNG; PPM with --ppm)"),
      TYR_FLAG_BOOL("ppm", &ppm, "write a binary PPM instead of a PNG"),
      TYR_FLAG_STRING("weights", weights,
                      "directory with the released weights (BFL files or the diffusers layout)"),
      TYR_FLAG_STRING("device", device, "cpu, cuda or cuda:N"),
      TYR_FLAG_STRING("random-weights", random_w,
                      "tiny or full: random weights instead of --weights (tests, speed runs)"),
      TYR_FLAG_INT("max-len", &max_len, 1, 4096, "text tokens the prompt is padded to"),
      TYR_FLAG_INT("threads", &threads, 0, 1024, "CPU threads (0: all)"),
      TYR_FLAG_STRING("preset", preset,
                      "cpu: 256x256 on the CPU; gpu: 1024x1024 on cuda (flags given override it)"),
  };
  const int nflags = sizeof flags / sizeof flags[0];
  const char *head = "usage: flux_demo PROMPT [--flag value ...]\n"
                     "Text to image with FLUX.2 [klein] 4B: Qwen3 text encoder, rectified-flow "
                     "transformer, VAE decoder.";
  const char *prompt = NULL;
  /* the preset first, so that the flags given override it */
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--preset")) {
      if (!strcmp(argv[i + 1], "gpu"))
        snprintf(device, sizeof device, "cuda"), width = height = 1024;
      else if (!strcmp(argv[i + 1], "cpu"))
        snprintf(device, sizeof device, "cpu"), width = height = 256;
      else
        return fail("--preset %s: not cpu or gpu", argv[i + 1]);
    }
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      tyr_flags_usage(stdout, head, flags, nflags);
      return 0;
    }
    if (strncmp(argv[i], "--", 2) != 0) {
      if (prompt) return fail("a second prompt %s: quote the prompt (see --help)", argv[i]);
      prompt = argv[i];
      continue;
    }
    bool neg;
    const tyr_flag *f = tyr_flags_find(flags, nflags, argv[i], &neg);
    if (!f) {
      fprintf(stderr, "%s: %s: unknown flag (see --help)\n", PROG, argv[i]);
      return 2;
    }
    const char *val = NULL;
    if (f->type != TYR_FLAG_T_BOOL) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: %s: a value is missing (see --help)\n", PROG, argv[i]);
        return 2;
      }
      val = argv[++i];
    }
    char err[256];
    if (tyr_flag_set(f, val, neg, err, sizeof err)) {
      fprintf(stderr, "%s: %s %s: %s (see --help)\n", PROG, argv[i - (val ? 1 : 0)], val ? val : "",
              err);
      return 2;
    }
  }
  /* ---- every check before anything is loaded ------------------------------ */
  if (!prompt || !prompt[0]) return fail("%san empty prompt: give one (see --help)", "");
  tyr_device dev;
  if (!tyr_device_parse(device, &dev)) return fail("--device %s: not cpu, cuda or cuda:N", device);
  if (dev.type == TYR_CUDA && (!tyr_cuda_available() || dev.index >= tyr_cuda_device_count()))
    return fail("--device %s: no such GPU here (this build or machine has none)", device);
  if (random_w[0] && strcmp(random_w, "tiny") && strcmp(random_w, "full"))
    return fail("--random-weights %s: not tiny or full", random_w);
  if (random_w[0] && weights[0])
    return fail("--weights %s and --random-weights: give one of them", weights);
  if (!random_w[0] && !weights[0])
    return fail("%sgive --weights DIR (see the README) or --random-weights tiny|full", "");
  if (!width) width = height ? height : dev.type == TYR_CUDA ? 1024 : 256;
  if (!height) height = width;
  if (width % 16 || height % 16 || width < 16 || height < 16) {
    fprintf(stderr, "%s: --width %lld --height %lld: both must be positive multiples of 16\n", PROG,
            (long long)width, (long long)height);
    return 1;
  }
  const bool tiny = !strcmp(random_w, "tiny");
  const int64_t h = height / 16, w = width / 16, N = h * w;
  /* the largest activations: the VAE's last level (128 channels, full size,
     f32 on the CPU) a few times over, and the weights */
  double act =
      6.0 * 128 * (double)width * (double)height * 4 + 64.0 * (double)(N + max_len) * 3072 * 4;
  double wts = tiny ? 0 : 16e9;
  if (dev.type == TYR_CPU) {
    double avail = mem_available();
    if (avail > 0 && act + wts > avail) {
      fprintf(stderr,
              "%s: %lld x %lld needs about %.1f GiB (weights %.1f, activations %.1f), %.1f GiB "
              "are available: choose a smaller --width/--height\n",
              PROG, (long long)width, (long long)height, (act + wts) / 1073741824.0,
              wts / 1073741824.0, act / 1073741824.0, avail / 1073741824.0);
      return 1;
    }
  }
  weights_paths wp = {0};
  if (!random_w[0] && find_weights(weights, &wp)) return 1;
  {
    /* refused now rather than after minutes of work */
    char why[512];
    if (tyr_atomic_check(out, why, sizeof why)) {
      fprintf(stderr, "%s: --out '%s': %s\n", PROG, out, why);
      return 1;
    }
  }
  if (threads) tyr_set_num_threads((int)threads);
  const tyr_dtype storage = tiny ? TYR_F32 : TYR_BF16;
  fprintf(stderr, "%s: \"%s\" %lldx%lld, %lld steps, seed %lld, %s, %s\n", PROG, prompt,
          (long long)width, (long long)height, (long long)steps, (long long)seed,
          tyr_device_name(dev),
          random_w[0] ? (tiny ? "random tiny weights" : "random full weights") : weights);
  if (dev.type == TYR_CUDA) tyr_cuda_reset_peak(dev.index);
  double t_load = now(), t_text = 0, t_steps = 0, t_vae = 0, t0;
  /* ---- load ------------------------------------------------------------------ */
  fprintf(stderr, "[load] text encoder, transformer, VAE ...\n");
  tyr_flux2_config fc;
  tyr_flux2_vae_config vc;
  tyr_flux2_config_named(tiny ? "tiny" : "klein-4b", &fc);
  tyr_flux2_vae_config_named(tiny ? "tiny" : "flux2", &vc);
  tyr_qwen3_config qc = tiny ? tyr_qwen3_config_tiny() : tyr_qwen3_config_4b();
  int layers[3];
  tyr_flux2_text_layers(qc.n_layer, layers);
  tyr_qwen3 *te = NULL;
  tyr_tokenizer *tok = NULL;
  tyr_flux2 fm;
  tyr_flux2_vae vae;
  if (random_w[0]) {
    te = tyr_qwen3_init_random(&qc, layers[2], (uint64_t)seed + 1, storage, dev);
    if (tyr_flux2_init_random(&fm, &fc, storage, dev, (uint64_t)seed + 2) ||
        tyr_flux2_vae_init_random(&vae, &vc, storage, dev, (uint64_t)seed + 3))
      return 1;
  } else {
    /* the transformer's config from its shapes (klein 4B, 9B, ...); the
       text encoder's from its config.json, and only the layers used */
    char qcfg[4200];
    snprintf(qcfg, sizeof qcfg, "%s/config.json", wp.text_encoder);
    if (tyr_flux2_config_from_weights(wp.transformer, &fc) ||
        tyr_flux2_vae_config_from_weights(wp.vae, &vc) || tyr_qwen3_config_from_hf(qcfg, &qc))
      return 1;
    tyr_flux2_text_layers(qc.n_layer, layers);
    if (qc.hidden * 3 != fc.context_dim) {
      fprintf(stderr,
              "%s: --weights %s: the text encoder's 3 x %lld features do not fit the "
              "transformer's %lld-wide context\n",
              PROG, weights, (long long)qc.hidden, (long long)fc.context_dim);
      return 1;
    }
    tok = tyr_tokenizer_load_hf(wp.tokenizer);
    te = tok ? tyr_qwen3_load(wp.text_encoder, layers[2], dev) : NULL;
    if (!te) return 1;
    if (tyr_flux2_load(&fm, wp.transformer, &fc, storage, dev) ||
        tyr_flux2_vae_load(&vae, wp.vae, &vc, storage, dev))
      return 1;
  }
  if (!te || (!random_w[0] && !tok)) return 1;
  t_load = now() - t_load;
  fprintf(stderr, "[load] %.2f s\n", t_load);
  uint8_t *rgb = malloc((size_t)width * (size_t)height * 3);
  if (!rgb) return fail("%sout of memory", "");
  {
    TYR_SCOPE;
    /* ---- text --------------------------------------------------------------- */
    fprintf(stderr, "[text] Qwen3, %lld tokens ...\n", (long long)max_len);
    t0 = now();
    tyr_tensor *feat = NULL, *mask = NULL;
    if (tok) {
      if (tyr_flux2_text_encode(te, tok, prompt, max_len, &feat, &mask)) return 1;
    } else {
      /* random weights have no vocabulary: the chat prompt's bytes are the ids */
      char *chat = tyr_qwen3_chat_prompt(prompt);
      if (!chat) return fail("%sout of memory", "");
      int64_t *ids = calloc((size_t)max_len, sizeof *ids), *mk = calloc((size_t)max_len, 8);
      int64_t n = (int64_t)strlen(chat);
      if (n > max_len)
        fprintf(stderr, "%s: warning: the prompt is %lld tokens, truncated to %lld\n", PROG,
                (long long)n, (long long)max_len);
      for (int64_t i = 0; i < max_len && i < n; i++)
        ids[i] = (unsigned char)chat[i] % qc.vocab_size, mk[i] = 1;
      int64_t shape[2] = {1, max_len};
      tyr_tensor *tid = tyr_from_host_at(TYR_SITE, ids, TYR_I64, dev, 2, shape);
      mask = tyr_from_host_at(TYR_SITE, mk, TYR_I64, dev, 2, shape);
      free(ids), free(mk), free(chat);
      feat = tyr_qwen3_hidden_states(te, tid, mask, layers, 3);
      if (!feat) return 1;
    }
    if (dev.type == TYR_CUDA) tyr_cuda_synchronize();
    t_text = now() - t0;
    fprintf(stderr, "[text] %.2f s\n", t_text);
    /* ---- denoise ------------------------------------------------------------ */
    double *ts = malloc(sizeof(double) * (size_t)(steps + 1));
    double mu = tyr_flux2_schedule((int)steps, N, ts);
    fprintf(stderr, "[transformer] %lld image tokens, mu %.5f\n", (long long)N, mu);
    t0 = now();
    tyr_tensor *x = tyr_flux2_noise(&fm, 1, h, w, (uint64_t)seed);
    if (!x) return 1;
    tyr_keep_e(x);
    tyr_progress pb;
    tyr_progress_init(&pb, steps, "step", 1);
    for (int64_t k = 0; k < steps; k++) {
      tyr_tensor *nx;
      {
        TYR_SCOPE;
        nx = tyr_flux2_euler_step(&fm, x, feat, ts[k], ts[k + 1], h, w);
        if (nx) tyr_keep_e(nx);
      }
      tyr_tensor_free(x);
      if (!nx) return 1;
      x = nx;
      if (dev.type == TYR_CUDA) tyr_cuda_synchronize();
      tyr_progress_update(&pb, k + 1, 1, "t %.4f -> %.4f", ts[k], ts[k + 1]);
    }
    tyr_progress_finish(&pb);
    t_steps = now() - t0;
    fprintf(stderr, "[transformer] %.2f s (%.3f s/step)\n", t_steps, t_steps / (double)steps);
    free(ts);
    /* ---- decode ------------------------------------------------------------- */
    fprintf(stderr, "[vae] decoding %lldx%lld ...\n", (long long)width, (long long)height);
    t0 = now();
    tyr_tensor *img = tyr_flux2_vae_decode(&vae, x, h, w);
    tyr_tensor_free(x);
    if (!img) return 1;
    if (tyr_flux2_image_rgb_at(TYR_SITE, tyr_squeeze_e(tyr_narrow_e(img, 0, 0, 1), 0), rgb))
      return 1;
    t_vae = now() - t0;
    fprintf(stderr, "[vae] %.2f s\n", t_vae);
  }
  if (tyr_image_write(out, rgb, (int)width, (int)height, ppm)) return 1;
  free(rgb);
  double gen = t_text + t_steps + t_vae;
  fprintf(stderr, "wrote %s (%lldx%lld %s)\n", out, (long long)width, (long long)height,
          ppm ? "PPM" : "PNG");
  printf("timing: load %.2f s, text encoder %.2f s, transformer %.2f s (%lld steps), vae %.2f s, "
         "image %.2f s\n",
         t_load, t_text, t_steps, (long long)steps, t_vae, gen);
  if (dev.type == TYR_CUDA) {
    tyr_cuda_mem_stats ms;
    if (!tyr_cuda_memory_stats(dev.index, &ms))
      printf("peak memory: %.2f GiB on %s, %.2f GiB host RSS\n",
             (double)ms.peak_allocated / 1073741824.0, tyr_device_name(dev), peak_rss_gib());
  } else {
    printf("peak memory: %.2f GiB RSS\n", peak_rss_gib());
  }
  tyr_qwen3_free(te);
  if (tok) tyr_tokenizer_free(tok);
  tyr_flux2_free(&fm);
  tyr_flux2_vae_free(&vae);
  return 0;
}
