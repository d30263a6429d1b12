/* TrainCNN: a small residual CNN (include/tyr/models/cnn.h) on Fashion-MNIST.
 *
 *   train_cnn [--preset cpu|gpu] [flags]
 *
 * Reads the gzipped IDX files of the Debian package dataset-fashion-mnist
 * (/usr/share/datasets/fashion-mnist); static shapes (every training batch
 * is [batch, 1, 28, 28], the last partial batch of an epoch is dropped);
 * augmentation by random crops of the zero-padded image and horizontal
 * flips; SGD with Nesterov momentum, warmup and cosine decay; a progress
 * bar; test accuracy after every epoch; checkpoints that resume exactly
 * (the shuffles and crops are functions of the seed, epoch and position);
 * metrics as JSONL; PNGs of the loss, of sample predictions and of the
 * confusion matrix.  --help lists every flag. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tyr/checkpoint.h>
#include <tyr/fileio.h>
#include <tyr/idx.h>
#include <tyr/models/cnn.h>
#include <tyr/optim.h>
#include <tyr/plot.h>
#include <tyr/progress.h>
#include <tyr/tyr.h>

enum { IMG = 28, CLASSES = 10 };
static const char *const CLASS_NAMES[CLASSES] = {"T-SHIRT", "TROUSER", "PULLOVER", "DRESS", "COAT",
                                                 "SANDAL",  "SHIRT",   "SNEAKER",  "BAG",   "BOOT"};

typedef struct config {
  char preset[16], data_dir[1024], out_dir[1024], resume[1024], device[32];
  int64_t epochs, batch_size, eval_batch_size, width, stages, blocks, warmup, crop_pad, threads,
      seed, train_limit, test_limit, max_steps, log_interval;
  double lr, min_lr, momentum, weight_decay, bn_momentum;
  int flip, nesterov, plot;
} config;

static void preset(config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", name);
  snprintf(c->data_dir, sizeof c->data_dir, "/usr/share/datasets/fashion-mnist");
  snprintf(c->out_dir, sizeof c->out_dir, "out/cnn_%s", name);
  snprintf(c->device, sizeof c->device, "cpu");
  c->epochs = 6;
  c->batch_size = 128;
  c->eval_batch_size = 500;
  c->width = 16;
  c->stages = 3;
  c->blocks = 1;
  c->lr = 0.1;
  c->min_lr = 0.0;
  c->momentum = 0.9;
  c->nesterov = 1;
  c->weight_decay = 5e-4;
  c->bn_momentum = 0.1;
  c->warmup = 200;
  c->crop_pad = 0; /* crops slow the first epochs down more than they help in 6 */
  c->flip = 1;
  c->seed = 1;
  c->plot = 1;
  c->log_interval = 50;
  if (strcmp(name, "gpu") == 0) {
    snprintf(c->device, sizeof c->device, "cuda");
    c->epochs = 15;
    c->crop_pad = 2;
    c->width = 32;
    c->blocks = 2;
    c->batch_size = 256;
    c->lr = 0.2;
  }
}

typedef enum { F_INT, F_DBL, F_STR, F_BOOL } ftype;
typedef struct {
  const char *name, *help;
  ftype type;
  size_t off, size;
} flag;
#define FI(n, f, h)                                                                                \
  { n, h, F_INT, offsetof(config, f), 0 }
#define FD(n, f, h)                                                                                \
  { n, h, F_DBL, offsetof(config, f), 0 }
#define FS(n, f, h)                                                                                \
  { n, h, F_STR, offsetof(config, f), sizeof(((config *)0)->f) }
#define FB(n, f, h)                                                                                \
  { n, h, F_BOOL, offsetof(config, f), 0 }
static const flag FLAGS[] = {
    FS("data-dir", data_dir, "directory with the four Fashion-MNIST .gz IDX files"),
    FS("out-dir", out_dir, "directory for checkpoints, metrics.jsonl and the PNGs"),
    FS("resume", resume, "checkpoint to resume from (e.g. out/cnn_cpu/last.safetensors)"),
    FS("device", device, "cpu, cuda or cuda:N"),
    FI("epochs", epochs, "passes over the training set"),
    FI("batch-size", batch_size, "images per training step"),
    FI("eval-batch-size", eval_batch_size, "images per test batch"),
    FI("width", width, "channels of the first stage (doubled at every further stage)"),
    FI("stages", stages, "stages of residual blocks (each after the first halves the size)"),
    FI("blocks", blocks, "residual blocks per stage"),
    FD("lr", lr, "peak learning rate"),
    FD("min-lr", min_lr, "learning rate at the end of the cosine decay"),
    FI("warmup", warmup, "linear warmup steps"),
    FD("momentum", momentum, "SGD momentum"),
    FB("nesterov", nesterov, "Nesterov momentum"),
    FD("weight-decay", weight_decay, "L2 weight decay of the conv and linear weights"),
    FD("bn-momentum", bn_momentum, "BatchNorm running-statistics momentum"),
    FI("crop-pad", crop_pad,
       "augmentation: random crops of the image zero-padded by this (0: off)"),
    FB("flip", flip, "augmentation: random horizontal flips"),
    FI("train-limit", train_limit, "use only the first N training images (0: all)"),
    FI("test-limit", test_limit, "use only the first N test images (0: all)"),
    FI("max-steps", max_steps,
       "stop after this many steps of this run, with a checkpoint (0: none)"),
    FI("log-interval", log_interval, "steps between log lines when stderr is not a terminal"),
    FI("seed", seed, "random seed (initialisation, shuffles, augmentation)"),
    FI("threads", threads, "CPU threads (0: all)"),
    FB("plot", plot, "write loss.png, predictions.png and confusion.png"),
};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

static void usage(FILE *f) {
  fprintf(f, "usage: train_cnn [--preset cpu|gpu] [--flag value ...]\n\n"
             "Trains a small residual CNN on Fashion-MNIST (apt-get install "
             "dataset-fashion-mnist).\n\n");
  config d;
  preset(&d, "cpu");
  for (size_t i = 0; i < NFLAGS; i++) {
    const flag *fl = &FLAGS[i];
    char def[64];
    void *p = (char *)&d + fl->off;
    if (fl->type == F_INT)
      snprintf(def, sizeof def, "%" PRId64, *(int64_t *)p);
    else if (fl->type == F_DBL)
      snprintf(def, sizeof def, "%g", *(double *)p);
    else if (fl->type == F_STR)
      snprintf(def, sizeof def, "%.60s", (char *)p);
    else
      snprintf(def, sizeof def, "%s", *(int *)p ? "on" : "off");
    fprintf(f, "  --%-16s %s (default %s)\n", fl->name, fl->help, def);
  }
  fprintf(f, "  --%-16s %s\n", "preset", "cpu (minutes on 2 cores) or gpu (wider, deeper, longer)");
  fprintf(f, "  --%-16s %s\n", "help", "this text");
  fprintf(f, "\nBoolean flags are switched off with --no-<flag>.\n");
}

static void die_flag(const char *msg, const char *arg) {
  fprintf(stderr, "train_cnn: %s: %s (see --help)\n", msg, arg);
  exit(2);
}

/* "--flag value: rule" */
static void die_range(const char *flag, double v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void die_range(const char *flag, double v, const char *fmt, ...) {
  char rule[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rule, sizeof rule, fmt, ap);
  va_end(ap);
  fprintf(stderr, "train_cnn: %s %.15g: %s (see --help)\n", flag, v, rule);
  exit(2);
}

/* "--flag value: what is wrong" */
static void die_value(const char *flag, const char *value, const char *msg) {
  fprintf(stderr, "train_cnn: %s %s: %s (see --help)\n", flag, value, msg);
  exit(2);
}

static void parse_args(config *c, int argc, char **argv) {
  const char *pre = "cpu";
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--preset") == 0) {
      if (i + 1 >= argc) die_flag("missing value for flag", "--preset");
      pre = argv[++i];
      if (strcmp(pre, "cpu") && strcmp(pre, "gpu")) die_flag("unknown preset", pre);
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strncmp(argv[i], "--", 2) == 0) { /* a flag's value is not a flag */
      for (size_t k = 0; k < NFLAGS; k++)
        if (strcmp(FLAGS[k].name, argv[i] + 2) == 0) {
          if (FLAGS[k].type != F_BOOL) {
            if (i + 1 >= argc) die_flag("missing value for flag", argv[i]);
            i++;
          }
          break;
        }
    }
  preset(c, pre);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--preset") == 0) {
      i++;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) die_flag("unexpected argument", a);
    const char *name = a + 2;
    bool neg = strncmp(name, "no-", 3) == 0;
    const flag *fl = NULL;
    for (size_t k = 0; k < NFLAGS; k++)
      if (strcmp(FLAGS[k].name, name) == 0 ||
          (neg && FLAGS[k].type == F_BOOL && strcmp(FLAGS[k].name, name + 3) == 0))
        fl = &FLAGS[k];
    if (!fl) die_flag("unknown flag", a);
    void *p = (char *)c + fl->off;
    if (fl->type == F_BOOL) {
      *(int *)p = !neg;
      continue;
    }
    if (i + 1 >= argc) die_flag("missing value for flag", a);
    const char *v = argv[++i];
    char *end;
    errno = 0;
    if (fl->type == F_INT) {
      long long x = strtoll(v, &end, 10);
      if (*end || end == v || errno) die_value(a, v, "not an integer");
      *(int64_t *)p = x;
    } else if (fl->type == F_DBL) {
      double x = strtod(v, &end);
      if (*end || end == v || errno || !isfinite(x)) die_value(a, v, "not a finite number");
      *(double *)p = x;
    } else {
      if (strlen(v) >= fl->size) die_value(a, v, "value too long");
      snprintf((char *)p, fl->size, "%s", v);
    }
  }
  /* each range names its flag and the value given */
#define RANGE_I(flag, v, lo, hi)                                                                   \
  if ((v) < (lo) || (v) > (hi))                                                                    \
  die_range(flag, (double)(v), "must be in [%.0f, %.0f]", (double)(lo), (double)(hi))
#define RANGE_D(flag, v, range, ok)                                                                \
  if (!(ok)) die_range(flag, (v), "must be in %s", range)
  RANGE_I("--epochs", c->epochs, 1, 100000);
  RANGE_I("--batch-size", c->batch_size, 2, 60000); /* BatchNorm needs two images */
  RANGE_I("--eval-batch-size", c->eval_batch_size, 1, 100000);
  RANGE_I("--width", c->width, 1, 4096);
  RANGE_I("--stages", c->stages, 1, 4);
  RANGE_I("--blocks", c->blocks, 1, 64);
  RANGE_I("--crop-pad", c->crop_pad, 0, 8);
  RANGE_I("--train-limit", c->train_limit, 0, 1e12);
  RANGE_I("--test-limit", c->test_limit, 0, 1e12);
  RANGE_I("--log-interval", c->log_interval, 1, 1e12);
  RANGE_I("--warmup", c->warmup, 0, 1e12);
  RANGE_I("--max-steps", c->max_steps, 0, 1e12);
  RANGE_I("--seed", c->seed, 0, 9.2e18);
  RANGE_I("--threads", c->threads, 0, 4096);
  RANGE_D("--lr", c->lr, "(0, 10]", c->lr > 0 && c->lr <= 10);
  RANGE_D("--min-lr", c->min_lr, "[0, --lr]", c->min_lr >= 0 && c->min_lr <= c->lr);
  RANGE_D("--momentum", c->momentum, "[0, 1)", c->momentum >= 0 && c->momentum < 1);
  RANGE_D("--weight-decay", c->weight_decay, "[0, 100]",
          c->weight_decay >= 0 && c->weight_decay <= 100);
  RANGE_D("--bn-momentum", c->bn_momentum, "(0, 1]", c->bn_momentum > 0 && c->bn_momentum <= 1);
#undef RANGE_I
#undef RANGE_D
}

/* ---- data ------------------------------------------------------------------ */
typedef struct split {
  uint8_t *images; /* [n, 28, 28] */
  int64_t *labels; /* [n] */
  int64_t n;
} split;

static void load_split(const config *c, const char *img_name, const char *lab_name, int64_t limit,
                       split *out) {
  char ip[1200], lp[1200];
  snprintf(ip, sizeof ip, "%s/%s", c->data_dir, img_name);
  snprintf(lp, sizeof lp, "%s/%s", c->data_dir, lab_name);
  if (access(ip, R_OK) != 0 || access(lp, R_OK) != 0) {
    fprintf(stderr,
            "train_cnn: --data-dir %s: %s or %s is missing (%s).\n"
            "  Fashion-MNIST comes with Debian's package: sudo apt-get install "
            "dataset-fashion-mnist\n",
            c->data_dir, img_name, lab_name, strerror(errno));
    exit(1);
  }
  TYR_SCOPE;
  tyr_tensor *im = tyr_idx_load(ip), *lb = tyr_idx_load(lp);
  if (!im || !lb) exit(1);
  if (im->dtype != TYR_U8 || im->rank != 3 || im->shape[1] != IMG || im->shape[2] != IMG ||
      lb->rank != 1 || lb->shape[0] != im->shape[0] || lb->dtype != TYR_U8) {
    fprintf(stderr, "train_cnn: %s / %s: expected u8 images [n, 28, 28] and u8 labels [n]\n", ip,
            lp);
    exit(1);
  }
  int64_t n = im->shape[0];
  if (limit > 0 && limit < n) n = limit;
  out->n = n;
  out->images = malloc((size_t)(n * IMG * IMG));
  out->labels = malloc(sizeof(int64_t) * (size_t)n);
  memcpy(out->images, tyr_data_ptr(im), (size_t)(n * IMG * IMG));
  const uint8_t *l = tyr_data_ptr(lb);
  for (int64_t i = 0; i < n; i++) {
    if (l[i] >= CLASSES) {
      fprintf(stderr, "train_cnn: %s: label %d at %lld is not a class 0..9\n", lp, l[i],
              (long long)i);
      exit(1);
    }
    out->labels[i] = l[i];
  }
}

/* the training set's mean and standard deviation (Fashion-MNIST's) */
#define PIX_MEAN 0.2860f
#define PIX_STD 0.3530f

/* Position k of epoch e's shuffle: a Fisher-Yates permutation drawn from
 * the counter-based generator, so it depends only on (seed, e). */
static void shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    uint32_t r[4];
    tyr_philox4x32(seed ^ 0xA5A5A5A5ull, (uint64_t)epoch * (uint64_t)n + (uint64_t)i, r);
    int64_t j = (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(i + 1));
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* Batch images [B, 1, 28, 28] (normalised f32) and labels [B]; with aug the
 * crop offsets and flip of image idx in epoch e come from (seed, e, idx). */
static void make_batch(const config *c, const split *d, const int64_t *idx, int64_t B, bool aug,
                       uint64_t seed, int64_t epoch, float *xb, int64_t *yb) {
  for (int64_t b = 0; b < B; b++) {
    const uint8_t *im = d->images + idx[b] * IMG * IMG;
    int dx = 0, dy = 0;
    bool flip = false;
    if (aug) {
      uint32_t r[4];
      tyr_philox4x32(seed ^ 0x3C6EF372ull, (uint64_t)epoch * (uint64_t)d->n + (uint64_t)idx[b], r);
      int span = 2 * (int)c->crop_pad + 1;
      dx = (int)(r[0] % (uint32_t)span) - (int)c->crop_pad;
      dy = (int)(r[1] % (uint32_t)span) - (int)c->crop_pad;
      flip = c->flip && (r[2] & 1);
    }
    float *o = xb + b * IMG * IMG;
    for (int y = 0; y < IMG; y++)
      for (int x = 0; x < IMG; x++) {
        int sy = y + dy, sx = (flip ? IMG - 1 - x : x) + dx;
        float v = (sy >= 0 && sy < IMG && sx >= 0 && sx < IMG) ? im[sy * IMG + sx] / 255.0f : 0.0f;
        o[y * IMG + x] = (v - PIX_MEAN) / PIX_STD;
      }
    yb[b] = d->labels[idx[b]];
  }
}

/* ---- progress, files ---------------------------------------------------------- */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss,
                     double acc, double img_s, double eta, bool tty) {
  char bar[32], e[32];
  tyr_progress_bar(bar, 30, step, steps);
  fprintf(stderr,
          "%sepoch %" PRId64 "/%" PRId64 " [%s] %" PRId64 "/%" PRId64
          " loss %.4f acc %.3f | %.0f img/s | ETA %s%s",
          tty ? "\r" : "", epoch, epochs, bar, step, steps, loss, acc, img_s,
          tyr_format_duration(eta, e, sizeof e), tty ? "   " : "\n");
  fflush(stderr);
}

/* ---- evaluation ----------------------------------------------------------------- */
/* Test accuracy; fills confusion [10 x 10] (rows true) and the predictions. */
static double evaluate(tyr_cnn *m, const config *c, const split *test, tyr_device dev,
                       double *confusion, int64_t *pred) {
  TYR_NO_GRAD;
  tyr_nn_mode_train(&m->mode, false);
  memset(confusion, 0, sizeof(double) * CLASSES * CLASSES);
  int64_t EB = c->eval_batch_size, correct = 0;
  float *xb = malloc(sizeof(float) * (size_t)(EB * IMG * IMG));
  int64_t *yb = malloc(sizeof(int64_t) * (size_t)EB), *idx = malloc(sizeof(int64_t) * (size_t)EB);
  for (int64_t s0 = 0; s0 < test->n; s0 += EB) {
    TYR_SCOPE;
    int64_t B = test->n - s0 < EB ? test->n - s0 : EB;
    for (int64_t b = 0; b < B; b++) idx[b] = s0 + b;
    make_batch(c, test, idx, B, false, 0, 0, xb, yb);
    tyr_T(B, 1, IMG, IMG) x =
        tyr_cast(tyr_from_host_at(TYR_SITE, xb, TYR_F32, dev, 4, (int64_t[]){B, 1, IMG, IMG}), B, 1,
                 IMG, IMG);
    tyr_T(B, CLASSES) logits = tyr_cast(tyr_cnn_forward(m, tyr_erase(x)), B, CLASSES);
    tyr_tensor *am = tyr_to_device_e(tyr_erase(tyr_argmax(logits, -1)), TYR_DEVICE_CPU);
    const int64_t *a = tyr_data_ptr(am);
    for (int64_t b = 0; b < B; b++) {
      pred[s0 + b] = a[b];
      correct += a[b] == yb[b];
      confusion[yb[b] * CLASSES + a[b]] += 1;
    }
  }
  free(xb);
  free(yb);
  free(idx);
  tyr_nn_mode_train(&m->mode, true);
  return test->n ? (double)correct / (double)test->n : 0;
}

static void write_plots(const config *c, const split *test, const int64_t *pred,
                        const double *confusion, const double *sx, const double *sy, int64_t ns) {
  char path[1200];
  int n = test->n < 40 ? (int)test->n : 40;
  const char *caps[40];
  char capbuf[40][32];
  uint32_t rgb[40];
  for (int i = 0; i < n; i++) {
    snprintf(capbuf[i], sizeof capbuf[i], "%s", CLASS_NAMES[pred[i]]);
    caps[i] = capbuf[i];
    rgb[i] = pred[i] == test->labels[i] ? 0x1a7f1a : 0xd62728;
  }
  snprintf(path, sizeof path, "%s/predictions.png", c->out_dir);
  if (n > 0 && tyr_plot_images_png(path, test->images, n, IMG, IMG, 10, 3, caps, rgb,
                                   "TEST PREDICTIONS (RED: WRONG)") == 0)
    fprintf(stderr, "train_cnn: wrote %s\n", path);
  snprintf(path, sizeof path, "%s/confusion.png", c->out_dir);
  if (tyr_plot_heatmap_png(path, confusion, CLASSES, CLASSES, CLASS_NAMES, CLASS_NAMES,
                           "CONFUSION MATRIX (TEST)", "PREDICTED", "TRUE") == 0)
    fprintf(stderr, "train_cnn: wrote %s\n", path);
  if (ns > 1) {
    tyr_plot_series ser = {"TRAIN LOSS", sx, sy, ns, 0x1f77b4};
    snprintf(path, sizeof path, "%s/loss.png", c->out_dir);
    if (tyr_plot_png(path, 900, 500, "TRAINCNN LOSS", "STEP", "LOSS", &ser, 1) == 0)
      fprintf(stderr, "train_cnn: wrote %s\n", path);
  }
}

static void config_json(const config *c, char *buf, size_t n) {
  snprintf(buf, n,
           "{\"width\":%" PRId64 ",\"stages\":%" PRId64 ",\"blocks\":%" PRId64
           ",\"batch_size\":%" PRId64 ",\"epochs\":%" PRId64 ",\"train_limit\":%" PRId64 "}",
           c->width, c->stages, c->blocks, c->batch_size, c->epochs, c->train_limit);
}

int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv); /* thread spinning: see tyr/tensor.h */
  config c;
  parse_args(&c, argc, argv);
  if (c.threads > 0) tyr_set_num_threads((int)c.threads);
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) die_flag("--device must be cpu, cuda or cuda:N", c.device);
  tyr_manual_seed((uint64_t)c.seed);
  uint64_t data_seed = (uint64_t)c.seed * 0x9E3779B97F4A7C15ull + 7;

  split train, test;
  load_split(&c, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", c.train_limit, &train);
  load_split(&c, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", c.test_limit, &test);
  const int64_t B = c.batch_size;
  int64_t steps_per_epoch = train.n / B;
  if (steps_per_epoch < 1) die_flag("--batch-size is larger than the training set", "");
  int64_t total_steps = steps_per_epoch * c.epochs;

  tyr_set_default_device(dev);
  tyr_cnn model;
  tyr_cnn_config mc = {.in_channels = 1,
                       .num_classes = CLASSES,
                       .width = c.width,
                       .stages = c.stages,
                       .blocks = c.blocks};
  if (tyr_cnn_init(&model, &mc)) return 1;
  for (int64_t i = 0; i < mc.stages * mc.blocks; i++) {
    model.blocks[i].bn1.momentum = model.blocks[i].bn2.momentum = c.bn_momentum;
    model.blocks[i].down_bn.momentum = c.bn_momentum;
  }
  model.stem_bn.momentum = c.bn_momentum;
  tyr_params_group_by_rank(&model.params);
  tyr_optim_config oc = tyr_sgd_config(c.lr, c.momentum);
  oc.nesterov = c.nesterov;
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, c.weight_decay};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &model.params, oc)) return 1;
  tyr_lr_schedule sch = {.kind = TYR_LR_WARMUP_COSINE,
                         .max_lr = c.lr,
                         .min_lr = c.min_lr,
                         .warmup = c.warmup,
                         .decay_steps = total_steps};

  if (tyr_mkdirs(c.out_dir)) {
    fprintf(stderr, "train_cnn: --out-dir %s: cannot create (%s)\n", c.out_dir, strerror(errno));
    return 1;
  }
  char path_last[1200], path_metrics[1200], cfg_json[512];
  snprintf(path_last, sizeof path_last, "%s/last.safetensors", c.out_dir);
  snprintf(path_metrics, sizeof path_metrics, "%s/metrics.jsonl", c.out_dir);
  config_json(&c, cfg_json, sizeof cfg_json);

  int64_t step = 0;
  if (c.resume[0]) {
    tyr_checkpoint *ck = tyr_checkpoint_open(c.resume);
    if (!ck) return 1;
    const char *saved = tyr_checkpoint_meta(ck, "train_cnn.config");
    if (!saved || strcmp(saved, cfg_json) != 0) {
      fprintf(stderr,
              "train_cnn: --resume %s: the checkpoint was made with a different config\n  file:  "
              "%s\n  flags: %s\n",
              c.resume, saved ? saved : "(none)", cfg_json);
      return 1;
    }
    tyr_checkpoint_info info;
    if (tyr_checkpoint_load(ck, &model.params, &opt, &info)) return 1;
    step = info.step;
    tyr_checkpoint_close(ck);
    fprintf(stderr, "train_cnn: resumed from %s at step %" PRId64 "\n", c.resume, step);
  }
  /* on resume, the log goes back to the checkpoint's step (lines of later
     steps, and a torn last line, would otherwise be written twice) */
  if (c.resume[0] && tyr_jsonl_truncate(path_metrics, step) < 0) return 1;
  FILE *metrics = fopen(path_metrics, c.resume[0] ? "a" : "w");
  if (!metrics) {
    fprintf(stderr, "train_cnn: %s: cannot open (%s)\n", path_metrics, strerror(errno));
    return 1;
  }
  bool tty = isatty(2);
  fprintf(stderr,
          "train_cnn: preset %s, %" PRId64 " parameters, %.1f MFLOP per image forward, %" PRId64
          " train / %" PRId64 " test images, %" PRId64 " steps of %" PRId64
          " per epoch, device %s, %d threads\n",
          c.preset, tyr_params_numel(&model.params), 2e-6 * tyr_cnn_macs(&model, IMG, IMG), train.n,
          test.n, steps_per_epoch, B, tyr_device_name(dev), tyr_get_num_threads());

  int64_t *perm = malloc(sizeof(int64_t) * (size_t)train.n);
  int64_t *pred = malloc(sizeof(int64_t) * (size_t)(test.n ? test.n : 1));
  float *xb = malloc(sizeof(float) * (size_t)(B * IMG * IMG));
  int64_t *yb = malloc(sizeof(int64_t) * (size_t)B);
  double *sx = malloc(sizeof(double) * (size_t)(total_steps + 1)),
         *sy = malloc(sizeof(double) * (size_t)(total_steps + 1));
  double confusion[CLASSES * CLASSES] = {0}, acc = NAN;
  int64_t ns = 0, steps_this_run = 0, perm_epoch = -1;
  double t_start = now(), t_train = 0, ema_loss = NAN, ema_acc = NAN;
  int64_t live0 = tyr_live_tensors();
  while (step < total_steps) {
    int64_t epoch = step / steps_per_epoch, k = step % steps_per_epoch;
    if (perm_epoch != epoch) {
      shuffle(perm, train.n, data_seed, epoch);
      perm_epoch = epoch;
    }
    double t0 = now(), loss_v, bacc;
    {
      TYR_SCOPE;
      make_batch(&c, &train, perm + k * B, B, true, data_seed, epoch, xb, yb);
      tyr_T(B, 1, IMG, IMG) x =
          tyr_cast(tyr_from_host_at(TYR_SITE, xb, TYR_F32, dev, 4, (int64_t[]){B, 1, IMG, IMG}), B,
                   1, IMG, IMG);
      tyr_T(B) y = tyr_cast(tyr_from_host_at(TYR_SITE, yb, TYR_I64, dev, 1, &B), B);
      tyr_T(B, CLASSES) logits = tyr_cast(tyr_cnn_forward(&model, tyr_erase(x)), B, CLASSES);
      tyr_T0 loss = tyr_cross_entropy(logits, y, -1);
      if (!loss || tyr_backward(loss)) return 1;
      loss_v = tyr_item(loss);
      tyr_optim_step(&opt, tyr_lr_at(&sch, step));
      tyr_optim_zero_grad(&opt);
      tyr_tensor *amc =
          tyr_to_device_e(tyr_erase(tyr_argmax(tyr_detach(logits), -1)), TYR_DEVICE_CPU);
      const int64_t *a = tyr_data_ptr(amc);
      int64_t hit = 0;
      for (int64_t b = 0; b < B; b++) hit += a[b] == yb[b];
      bacc = (double)hit / (double)B;
    }
    if (!isfinite(loss_v)) {
      fprintf(stderr, "\ntrain_cnn: loss is %f at step %" PRId64 "; stopping\n", loss_v, step);
      return 1;
    }
    double dt = now() - t0;
    t_train += dt;
    step++;
    steps_this_run++;
    ema_loss = steps_this_run == 1 ? loss_v : 0.95 * ema_loss + 0.05 * loss_v;
    ema_acc = steps_this_run == 1 ? bacc : 0.95 * ema_acc + 0.05 * bacc;
    sx[ns] = (double)step;
    sy[ns++] = loss_v;
    double img_s = (double)(steps_this_run * B) / t_train;
    fprintf(metrics,
            "{\"step\":%" PRId64 ",\"epoch\":%" PRId64 ",\"loss\":%.6f,\"acc\":%.4f,\"lr\":%.6g,"
            "\"img_s\":%.1f}\n",
            step, epoch + 1, loss_v, bacc, tyr_lr_at(&sch, step - 1), img_s);
    int64_t kk = k + 1;
    if (tty ? (kk % 5 == 0 || kk == steps_per_epoch)
            : (kk % c.log_interval == 0 || kk == steps_per_epoch))
      progress(epoch + 1, c.epochs, kk, steps_per_epoch, ema_loss, ema_acc, img_s,
               (double)(total_steps - step) * B / img_s, tty);
    bool end_epoch = kk == steps_per_epoch, stop = c.max_steps && steps_this_run >= c.max_steps;
    if (end_epoch) {
      acc = evaluate(&model, &c, &test, dev, confusion, pred);
      fprintf(stderr, "%sepoch %" PRId64 ": test accuracy %.4f (%.1f s so far)\n", tty ? "\n" : "",
              epoch + 1, acc, now() - t_start);
      fprintf(metrics,
              "{\"epoch\":%" PRId64 ",\"step\":%" PRId64 ",\"test_acc\":%.6f,\"time_s\":%.2f}\n",
              epoch + 1, step, acc, now() - t_start);
      fflush(metrics);
    }
    if (end_epoch || stop) {
      tyr_checkpoint_info info = {.step = step,
                                  .rng = tyr_rng_get_state(),
                                  .nmeta = 1,
                                  .keys = {"train_cnn.config"},
                                  .values = {cfg_json}};
      if (tyr_checkpoint_save(path_last, &model.params, &opt, &info)) return 1;
    }
    if (stop) break;
  }
  fclose(metrics);
  if (isnan(acc)) acc = evaluate(&model, &c, &test, dev, confusion, pred);
  double elapsed = now() - t_start;
  fprintf(stderr,
          "train_cnn: %" PRId64 " steps in %.1f s (%.0f img/s training), live tensors %" PRId64
          " (%+" PRId64 " since start)\n",
          steps_this_run, elapsed, steps_this_run ? (double)(steps_this_run * B) / t_train : 0.0,
          tyr_live_tensors(), tyr_live_tensors() - live0);
  printf("final: step %" PRId64 " test_acc %.4f time_s %.1f\n", step, acc, elapsed);
  if (c.plot) write_plots(&c, &test, pred, confusion, sx, sy, ns);
  free(perm);
  free(pred);
  free(xb);
  free(yb);
  free(sx);
  free(sy);
  free(train.images);
  free(train.labels);
  free(test.images);
  free(test.labels);
  tyr_optim_free(&opt);
  tyr_cnn_free(&model);
  return 0;
}
