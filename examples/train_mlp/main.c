/* train_mlp - the tutorial program: a multi-layer perceptron that classifies
 * Fashion-MNIST clothing images (28x28 grey pixels, 10 classes).
 *
 * It reads top to bottom: flags (a table, tyr/flags.h), data (IDX files into tensors, an in-memory
 * dataset, a shuffling batch iterator), the model (two Linear layers with
 * PyTorch's initialisation), the training loop (forward, cross-entropy,
 * backward, AdamW step, cosine learning rate), evaluation on the test set
 * after every epoch, a progress bar, metrics.jsonl, loss.png and
 * accuracy.png, and checkpoints that resume exactly (parameters, optimizer,
 * step, RNG and the iterator's position).
 *
 *   train_mlp                      CPU preset (about a minute on 2 cores)
 *   train_mlp --device cuda        the same on a GPU
 *   train_mlp --preset gpu         wider, longer, on the GPU
 *   train_mlp --resume out/mlp/last.safetensors    go on where it stopped
 *   train_mlp --help               every flag */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tyr/fileio.h>
#include <tyr/tyr.h>

enum { PIXELS = 28 * 28, CLASSES = 10 };

/* ---- flags --------------------------------------------------------------- */
typedef struct config {
  char data[512], out_dir[512], resume[512], device[32];
  int64_t hidden, epochs, batch_size, eval_batch, train_limit, seed, threads, max_steps;
  int64_t log_interval;
  double lr, min_lr, weight_decay;
  bool plot;
} config;

/* The presets; flags after --preset override them. */
static config preset(const char *name) {
  config c = {.data = "/usr/share/datasets/fashion-mnist",
              .out_dir = "out/mlp",
              .device = "cpu",
              .hidden = 256,
              .epochs = 5,
              .batch_size = 128,
              .eval_batch = 1000,
              .seed = 1,
              .log_interval = 100,
              .lr = 2e-3,
              .min_lr = 1e-4,
              .weight_decay = 0.01,
              .plot = true};
  if (!strcmp(name, "gpu")) {
    snprintf(c.device, sizeof c.device, "cuda");
    c.hidden = 1024;
    c.epochs = 15;
  }
  return c;
}

/* Every hyperparameter is a flag with its range, checked before anything
 * is allocated (tyr/flags.h). */
static void parse_args(config *c, int argc, char **argv) {
  int first = 1;
  *c = preset("cpu");
  if (argc > 1 && !strcmp(argv[1], "--preset")) {
    if (argc < 3 || (strcmp(argv[2], "cpu") && strcmp(argv[2], "gpu"))) {
      fprintf(stderr, "train_mlp: --preset %s: not cpu or gpu (see --help)\n",
              argc < 3 ? "" : argv[2]);
      exit(2);
    }
    *c = preset(argv[2]);
    first = 3;
  }
  const tyr_flag flags[] = {
      TYR_FLAG_STRING("data", c->data, "directory with the four Fashion-MNIST .gz files"),
      TYR_FLAG_STRING("out-dir", c->out_dir, "where last.safetensors, metrics.jsonl, plots go"),
      TYR_FLAG_STRING("resume", c->resume, "checkpoint to go on from (out-dir/last.safetensors)"),
      TYR_FLAG_STRING("device", c->device, "cpu, cuda or cuda:N"),
      TYR_FLAG_INT("hidden", &c->hidden, 1, 65536, "width of the hidden layer"),
      TYR_FLAG_INT("epochs", &c->epochs, 1, 10000, "passes over the training set"),
      TYR_FLAG_INT("batch-size", &c->batch_size, 1, 60000, "images per training step"),
      TYR_FLAG_INT("eval-batch", &c->eval_batch, 1, 60000, "images per evaluation batch"),
      TYR_FLAG_DOUBLE("lr", &c->lr, 1e-9, 10, "AdamW learning rate at the start of the decay"),
      TYR_FLAG_DOUBLE("min-lr", &c->min_lr, 0, 10, "learning rate at the last step (cosine)"),
      TYR_FLAG_DOUBLE("weight-decay", &c->weight_decay, 0, 10, "AdamW weight decay (weights)"),
      TYR_FLAG_INT("train-limit", &c->train_limit, 0, 60000, "use the first N images (0: all)"),
      TYR_FLAG_INT("seed", &c->seed, 0, INT64_MAX, "seed of the weights and the shuffling"),
      TYR_FLAG_INT("threads", &c->threads, 0, 1024, "CPU threads (0: all cores)"),
      TYR_FLAG_INT("max-steps", &c->max_steps, 0, INT32_MAX, "stop after N steps (0: no limit)"),
      TYR_FLAG_INT("log-interval", &c->log_interval, 1, INT32_MAX, "steps per log-file line"),
      TYR_FLAG_BOOL("plot", &c->plot, "write loss.png and accuracy.png (--no-plot: don't)"),
  };
  tyr_flags_parse(
      "train_mlp",
      "usage: train_mlp [--preset cpu|gpu] [--flag value ...]\n\n"
      "Trains an MLP on Fashion-MNIST and reports the test accuracy after every epoch.\n"
      "Presets: cpu (the default: hidden 256, 5 epochs, about a minute on 2 cores),\n"
      "gpu (hidden 1024, 15 epochs, --device cuda).  The defaults below are the preset's.",
      flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, first);
  if (c->min_lr > c->lr) {
    fprintf(stderr, "train_mlp: --min-lr %g: must not exceed --lr %g (see --help)\n", c->min_lr,
            c->lr);
    exit(2);
  }
}

/* ---- data ---------------------------------------------------------------- */
/* Images as f32 [N, 784] normalised with the training set's mean and std,
 * labels as i64 [N]. */
static void load_split(const config *c, const char *split, int64_t limit, tyr_tensor **x,
                       tyr_tensor **y) {
  char pi[600], pl[600];
  snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte.gz", c->data, split);
  snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte.gz", c->data, split);
  if (access(pi, R_OK) || access(pl, R_OK)) {
    fprintf(stderr,
            "train_mlp: Fashion-MNIST is not in %s (%s: %s).\n"
            "Install it with\n"
            "  sudo apt-get install dataset-fashion-mnist    (Debian and Ubuntu)\n"
            "or put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from\n"
            "https://github.com/zalandoresearch/fashion-mnist in a directory and pass\n"
            "--data DIR.\n",
            c->data, access(pi, R_OK) ? pi : pl, strerror(errno));
    exit(1);
  }
  TYR_SCOPE;
  tyr_tensor *img = tyr_idx_load(pi), *lab = tyr_idx_load(pl); /* u8 [N, 28, 28], u8 [N] */
  if (img->rank != 3 || img->shape[1] * img->shape[2] != PIXELS || lab->rank != 1 ||
      lab->shape[0] != img->shape[0]) {
    fprintf(stderr, "train_mlp: %s and %s are not Fashion-MNIST images and labels\n", pi, pl);
    exit(1);
  }
  int64_t n = img->shape[0];
  if (limit > 0 && limit < n) n = limit;
  tyr_tensor *flat = tyr_reshape_e(tyr_narrow_e(img, 0, 0, n), n, PIXELS);
  /* pixel / 255, then (p - 0.2860) / 0.3530: the training set's mean and std */
  tyr_tensor *xf = tyr_div_scalar_e(tyr_to_dtype_e(flat, TYR_F32), 255.0);
  *x = tyr_keep_e(tyr_div_scalar_e(tyr_sub_scalar_e(xf, 0.2860), 0.3530));
  *y = tyr_keep_e(tyr_to_dtype_e(tyr_contiguous_e(tyr_narrow_e(lab, 0, 0, n)), TYR_I64));
}

/* ---- the model: logits = fc2(relu(fc1(x))) ------------------------------- */
typedef struct mlp {
  tyr_params params;
  tyr_nn_linear fc1, fc2;
} mlp;

static void mlp_init(mlp *m, int64_t hidden) {
  tyr_params_init(&m->params);
  tyr_nn_linear_init(&m->fc1, &m->params, "fc1", PIXELS, hidden, true, TYR_INIT_PYTORCH);
  tyr_nn_linear_init(&m->fc2, &m->params, "fc2", hidden, CLASSES, true, TYR_INIT_PYTORCH);
}

/* x [B, 784] -> logits [B, 10].  The handles carry the shapes in their
 * types: B and H are run-time values, so the shape rules are checked when
 * each op runs; PIXELS and CLASSES are constants, checked when it compiles. */
static tyr_tensor *mlp_forward(const mlp *m, tyr_tensor *xe) {
  int64_t B = xe->shape[0], H = m->fc1.out;
  tyr_T(B, PIXELS) x = tyr_cast(xe, B, PIXELS);
  tyr_T(H, PIXELS) w1 = tyr_cast(m->fc1.weight, H, PIXELS);
  tyr_T(H) b1 = tyr_cast(m->fc1.bias, H);
  tyr_T(CLASSES, H) w2 = tyr_cast(m->fc2.weight, CLASSES, H);
  tyr_T(CLASSES) b2 = tyr_cast(m->fc2.bias, CLASSES);
  tyr_T(B, H) h = tyr_relu(tyr_linear_bias(x, w1, b1));
  tyr_T(B, CLASSES) logits = tyr_linear_bias(h, w2, b2);
  return tyr_erase(logits);
}

/* Mean loss and accuracy over a dataset, without recording a graph. */
static void evaluate(const mlp *m, tyr_dataset *ds, int64_t batch, tyr_device dev, double *loss,
                     double *acc) {
  TYR_NO_GRAD;
  tyr_batch_iter *it =
      tyr_batch_iter_new(ds, &(tyr_batch_opts){.batch_size = batch, .device = dev});
  double sum = 0;
  int64_t correct = 0, n = 0;
  tyr_tensor *b[2];
  for (int64_t rows; (rows = tyr_batch_next_e(it, b)) > 0;) {
    TYR_SCOPE;
    tyr_tensor *logits = mlp_forward(m, b[0]);
    sum += tyr_item_e(tyr_cross_entropy_e(logits, b[1], -1)) * (double)rows;
    tyr_tensor *hit = tyr_eq_e(tyr_argmax_e(logits, 1, false), b[1]);
    correct += (int64_t)tyr_item_e(tyr_sum_e(tyr_to_dtype_e(hit, TYR_F32)));
    n += rows;
    tyr_tensor_free(b[0]);
    tyr_tensor_free(b[1]);
  }
  tyr_batch_iter_free(it);
  *loss = sum / (double)n;
  *acc = (double)correct / (double)n;
}

/* ---- files ----------------------------------------------------------------- */
static void config_json(const config *c, char *buf, size_t n) {
  snprintf(buf, n,
           "{\"hidden\":%" PRId64 ",\"epochs\":%" PRId64 ",\"batch_size\":%" PRId64
           ",\"lr\":%.17g,\"min_lr\":%.17g,\"weight_decay\":%.17g,\"train_limit\":%" PRId64
           ",\"seed\":%" PRId64 "}",
           c->hidden, c->epochs, c->batch_size, c->lr, c->min_lr, c->weight_decay, c->train_limit,
           c->seed);
}

static void save(const char *path, mlp *m, tyr_optim *opt, int64_t step, tyr_batch_iter *it,
                 const char *cfg) {
  tyr_batch_state st = tyr_batch_iter_get_state(it);
  char pos[64];
  snprintf(pos, sizeof pos, "%" PRId64 " %" PRId64, st.epoch, st.pos);
  tyr_checkpoint_info info = {.step = step,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 2,
                              .keys = {"train_mlp.config", "train_mlp.batches"},
                              .values = {cfg, pos}};
  if (tyr_checkpoint_save(path, &m->params, opt, &info)) exit(1);
}

/* History for the plots, also read back from metrics.jsonl on resume. */
typedef struct history {
  double *step, *loss;       /* every training step */
  double *ep, *tloss, *tacc; /* every evaluation (accuracy in %) */
  int64_t n, ne;
} history;

/* Keeps the lines of metrics.jsonl up to `step` (a resumed run would
 * otherwise repeat the ones written after its checkpoint) and reads them
 * into h; returns the file, open for appending. */
static FILE *metrics_open(const char *path, int64_t step, history *h) {
  FILE *in = fopen(path, "r");
  char tmp[640], line[512];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *out = fopen(tmp, "w");
  if (!out) return NULL;
  while (in && step > 0 && fgets(line, sizeof line, in)) {
    int64_t s;
    double a, b;
    if (sscanf(line, "{\"step\":%" SCNd64, &s) != 1 || s > step || !strchr(line, '\n')) break;
    fputs(line, out);
    if (sscanf(line, "{\"step\":%*d,\"epoch\":%*d,\"test_loss\":%lf,\"test_acc\":%lf", &a, &b) == 2)
      h->ep[h->ne] = (double)s, h->tloss[h->ne] = a, h->tacc[h->ne++] = 100 * b;
    else if (sscanf(line, "{\"step\":%*d,\"epoch\":%*d,\"loss\":%lf", &a) == 1)
      h->step[h->n] = (double)s, h->loss[h->n++] = a;
  }
  if (in) fclose(in);
  if (fflush(out) || fsync(fileno(out)) || fclose(out) || rename(tmp, path)) return NULL;
  return fopen(path, "a");
}

static void plots(const config *c, const history *h) {
  char p[600];
  snprintf(p, sizeof p, "%s/loss.png", c->out_dir);
  tyr_plot_series loss[2] = {{"train loss", h->step, h->loss, h->n, 0x1f77b4},
                             {"test loss", h->ep, h->tloss, h->ne, 0xd62728}};
  /* the test points sit at the step that ended their epoch */
  tyr_plot_png(p, 800, 500, "train_mlp: Fashion-MNIST loss", "step", "cross-entropy", loss, 2);
  snprintf(p, sizeof p, "%s/accuracy.png", c->out_dir);
  tyr_plot_series acc = {"test accuracy", h->ep, h->tacc, h->ne, 0x2ca02c};
  tyr_plot_png(p, 800, 500, "train_mlp: Fashion-MNIST test accuracy", "step", "accuracy (%)", &acc,
               1);
}

/* ---- main ----------------------------------------------------------------- */
int main(int argc, char **argv) {
  tyr_cpu_env_setup(argv);
  config c;
  parse_args(&c, argc, argv);
  tyr_device dev;
  if (!tyr_device_parse(c.device, &dev)) {
    fprintf(stderr, "train_mlp: --device %s: not cpu, cuda or cuda:N (see --help)\n", c.device);
    return 2;
  }
  if (c.threads) tyr_set_num_threads((int)c.threads);
  if (tyr_mkdirs(c.out_dir)) {
    fprintf(stderr, "train_mlp: --out-dir %s: %s\n", c.out_dir, strerror(errno));
    return 1;
  }

  /* data: the tensors stay on the CPU; batches go to the device */
  tyr_tensor *xtr, *ytr, *xte, *yte;
  load_split(&c, "train", c.train_limit, &xtr, &ytr);
  load_split(&c, "t10k", 0, &xte, &yte);
  tyr_dataset *train = tyr_dataset_new(xtr, ytr), *test = tyr_dataset_new(xte, yte);
  tyr_batch_iter *it = tyr_batch_iter_new(train, &(tyr_batch_opts){.batch_size = c.batch_size,
                                                                   .shuffle = true,
                                                                   .seed = (uint64_t)c.seed,
                                                                   .device = dev});

  /* model and optimizer: weight decay on the weights only */
  tyr_manual_seed((uint64_t)c.seed);
  tyr_set_default_device(dev);
  mlp m;
  mlp_init(&m, c.hidden);
  tyr_params_group_by_rank(&m.params);
  tyr_optim_config oc = tyr_adamw_config(c.lr);
  oc.ngroups = 2;
  oc.groups[0] = (tyr_param_group){1.0, c.weight_decay};
  oc.groups[1] = (tyr_param_group){1.0, 0.0};
  tyr_optim opt;
  if (tyr_optim_init(&opt, &m.params, oc)) return 1;
  int64_t per_epoch = tyr_batch_iter_batches(it), total = per_epoch * c.epochs;
  tyr_lr_schedule sch = {
      .kind = TYR_LR_WARMUP_COSINE, .max_lr = c.lr, .min_lr = c.min_lr, .decay_steps = total};

  /* resume: the same config, then parameters, optimizer, step, RNG, and
     the iterator's epoch and position */
  char cfg[512], last[600], mpath[600];
  config_json(&c, cfg, sizeof cfg);
  snprintf(last, sizeof last, "%s/last.safetensors", c.out_dir);
  snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c.out_dir);
  int64_t step = 0;
  if (c.resume[0]) {
    tyr_checkpoint *ck = tyr_checkpoint_open(c.resume);
    const char *saved = tyr_checkpoint_meta(ck, "train_mlp.config");
    const char *pos = tyr_checkpoint_meta(ck, "train_mlp.batches");
    tyr_batch_state st;
    if (!saved || strcmp(saved, cfg) || !pos ||
        sscanf(pos, "%" SCNd64 " %" SCNd64, &st.epoch, &st.pos) != 2) {
      fprintf(stderr, "train_mlp: --resume %s: made with other flags\n  file:  %s\n  flags: %s\n",
              c.resume, saved ? saved : "(none)", cfg);
      return 1;
    }
    tyr_checkpoint_info info;
    if (tyr_checkpoint_load(ck, &m.params, &opt, &info) || tyr_batch_iter_set_state(it, st))
      return 1;
    tyr_checkpoint_close(ck);
    step = info.step;
    fprintf(stderr, "train_mlp: resumed from %s at step %" PRId64 "\n", c.resume, step);
  }
  history h = {.step = malloc(sizeof(double) * (size_t)total),
               .loss = malloc(sizeof(double) * (size_t)total),
               .ep = malloc(sizeof(double) * (size_t)c.epochs),
               .tloss = malloc(sizeof(double) * (size_t)c.epochs),
               .tacc = malloc(sizeof(double) * (size_t)c.epochs)};
  FILE *metrics = metrics_open(mpath, step, &h);
  if (!metrics || !h.step || !h.loss || !h.ep || !h.tloss || !h.tacc) {
    fprintf(stderr, "train_mlp: %s: cannot write (%s)\n", mpath, strerror(errno));
    return 1;
  }
  fprintf(stderr,
          "train_mlp: %" PRId64 " train / %" PRId64 " test images, %" PRId64
          " parameters, %s, %d threads, %" PRId64 " steps\n",
          tyr_dataset_len(train), tyr_dataset_len(test), tyr_params_numel(&m.params),
          tyr_device_name(dev), tyr_get_num_threads(), total);

  /* the loop: one step per batch, an evaluation at the end of each epoch */
  tyr_progress pb;
  tyr_progress_init(&pb, total, "img", c.log_interval);
  int64_t steps_this_run = 0;
  double test_loss = NAN, test_acc = NAN;
  while (step < total) {
    if (c.max_steps && steps_this_run == c.max_steps) {
      save(last, &m, &opt, step, it, cfg);
      tyr_progress_finish(&pb);
      fprintf(stderr, "train_mlp: stopped after --max-steps %" PRId64 "; saved %s\n", c.max_steps,
              last);
      break;
    }
    tyr_tensor *b[2];
    double loss;
    {
      TYR_SCOPE; /* everything made in this step is freed at its end */
      int64_t rows = tyr_batch_next_e(it, b);
      if (rows == 0) continue; /* the end of an epoch: the next call starts the next */
      tyr_tensor *l = tyr_cross_entropy_e(mlp_forward(&m, b[0]), b[1], -1);
      tyr_backward_e(l);
      tyr_optim_step(&opt, tyr_lr_at(&sch, step));
      tyr_optim_zero_grad(&opt);
      loss = tyr_item_e(l);
    }
    if (!isfinite(loss)) {
      tyr_progress_finish(&pb);
      fprintf(stderr, "train_mlp: the loss is %g at step %" PRId64 "; stopping\n", loss, step);
      return 1;
    }
    step++;
    steps_this_run++;
    int64_t epoch = (step - 1) / per_epoch + 1;
    h.step[h.n] = (double)step, h.loss[h.n++] = loss;
    fprintf(metrics, "{\"step\":%" PRId64 ",\"epoch\":%" PRId64 ",\"loss\":%.6f,\"lr\":%.6g}\n",
            step, epoch, loss, tyr_lr_at(&sch, step - 1));
    fflush(metrics);
    tyr_progress_update(&pb, step, (double)c.batch_size, "epoch %" PRId64 " loss %.4f", epoch,
                        loss);
    if (step % per_epoch == 0) {
      evaluate(&m, test, c.eval_batch, dev, &test_loss, &test_acc);
      tyr_progress_finish(&pb);
      fprintf(stderr, "epoch %" PRId64 ": test loss %.4f, test accuracy %.2f%%\n", epoch, test_loss,
              100 * test_acc);
      fprintf(metrics,
              "{\"step\":%" PRId64 ",\"epoch\":%" PRId64 ",\"test_loss\":%.6f,\"test_acc\":%.6f}\n",
              step, epoch, test_loss, test_acc);
      fflush(metrics);
      h.ep[h.ne] = (double)step, h.tloss[h.ne] = test_loss, h.tacc[h.ne++] = 100 * test_acc;
      save(last, &m, &opt, step, it, cfg);
      if (c.plot) plots(&c, &h);
    }
  }
  fclose(metrics);
  if (step == total)
    printf("train_mlp: final test accuracy %.2f%% (test loss %.4f) after %" PRId64
           " epochs; wrote %s\n",
           100 * test_acc, test_loss, c.epochs, c.out_dir);

  tyr_optim_free(&opt);
  tyr_params_free(&m.params);
  tyr_batch_iter_free(it);
  tyr_dataset_free(train);
  tyr_dataset_free(test);
  tyr_tensor_free(xtr), tyr_tensor_free(ytr), tyr_tensor_free(xte), tyr_tensor_free(yte);
  free(h.step), free(h.loss), free(h.ep), free(h.tloss), free(h.tacc);
  return 0;
}
