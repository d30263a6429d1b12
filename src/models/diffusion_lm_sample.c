/* Generation with the masked diffusion LM and its live terminal view
 * (tyr/models/diffusion_lm_sample.h). */
#include "tyr/models/diffusion_lm_sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tyr/progress.h"
#include "tyr/tyr.h"

bool tyr_dlm_commit_kind_parse(const char *name, tyr_dlm_commit_kind *out) {
  if (!strcmp(name, "topk"))
    *out = TYR_DLM_COMMIT_TOPK;
  else if (!strcmp(name, "threshold"))
    *out = TYR_DLM_COMMIT_THRESHOLD;
  else
    return false;
  return true;
}

tyr_dlm_sample_opts tyr_dlm_sample_defaults(void) {
  return (tyr_dlm_sample_opts){.commit = TYR_DLM_COMMIT_TOPK,
                               .k = 4,
                               .tau = 0.9,
                               .temperature = 1.0,
                               .seed = 0,
                               .blocks = 1,
                               .overlap = 32};
}

int tyr_dlm_sample_opts_check_at(tyr_site s, const tyr_dlm_sample_opts *o,
                                 const tyr_dlm_config *c) {
  const char *op = "tyr_dlm_sample";
  if (o->commit == TYR_DLM_COMMIT_TOPK && o->k < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "k %lld: must be at least 1", (long long)o->k);
  if (o->commit == TYR_DLM_COMMIT_THRESHOLD && !(o->tau > 0 && o->tau <= 1))
    return tyr_raise(TYR_ERR_ARG, s, op, "tau %g: must be in (0, 1]", o->tau);
  if (!(o->temperature >= 0) || !isfinite(o->temperature))
    return tyr_raise(TYR_ERR_ARG, s, op, "temperature %g: must be >= 0", o->temperature);
  if (o->blocks < 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "blocks %lld: must be at least 1", (long long)o->blocks);
  if (o->overlap < 0 || o->overlap >= c->seq_len)
    return tyr_raise(TYR_ERR_ARG, s, op, "overlap %lld: must be in [0, seq_len %lld)",
                     (long long)o->overlap, (long long)c->seq_len);
  return 0;
}

void tyr_dlm_predict(const float *logits, int64_t S, const int64_t *ids, double temperature,
                     uint64_t seed, uint64_t counter0, int64_t *pred, float *conf) {
  const int V = TYR_DLM_VOCAB;
  double p[TYR_DLM_VOCAB];
  for (int64_t i = 0; i < S; i++) {
    if (ids[i] != TYR_DLM_MASK) continue;
    const float *l = logits + i * V;
    double tmp = temperature > 0 ? temperature : 1.0, mx = -INFINITY, sum = 0;
    for (int j = 1; j < V; j++) mx = fmax(mx, l[j]);
    /* the MASK token is never a prediction */
    for (int j = 1; j < V; j++) sum += p[j] = exp((l[j] - mx) / tmp);
    int pick = 1;
    if (temperature > 0) {
      double u = tyr_philox_uniform(seed, counter0 + (uint64_t)i) * sum, acc = 0;
      pick = V - 1;
      for (int j = 1; j < V; j++) {
        acc += p[j];
        if (u < acc) {
          pick = j;
          break;
        }
      }
    } else {
      for (int j = 2; j < V; j++)
        if (p[j] > p[pick]) pick = j;
    }
    pred[i] = pick;
    conf[i] = (float)(p[pick] / sum);
  }
}

int64_t tyr_dlm_commit(const tyr_dlm_sample_opts *o, int64_t S, int64_t *ids, const int64_t *pred,
                       const float *conf, float *cell_conf) {
  int64_t masked = 0;
  for (int64_t i = 0; i < S; i++) masked += ids[i] == TYR_DLM_MASK;
  if (!masked) return 0;
  int64_t want = o->commit == TYR_DLM_COMMIT_TOPK ? (o->k < masked ? o->k : masked) : masked;
  int64_t n = 0;
  if (o->commit == TYR_DLM_COMMIT_THRESHOLD) { /* every cell at or above tau */
    for (int64_t i = 0; i < S; i++)
      if (ids[i] == TYR_DLM_MASK && conf[i] >= o->tau) {
        ids[i] = pred[i];
        cell_conf[i] = conf[i];
        n++;
      }
    if (n) return n;
    want = 1; /* none reached tau: the most confident one */
  }
  /* the `want` most confident masked cells, ties to the lower index */
  for (int64_t c = 0; c < want; c++) {
    int64_t best = -1;
    for (int64_t i = 0; i < S; i++)
      if (ids[i] == TYR_DLM_MASK && (best < 0 || conf[i] > conf[best])) best = i;
    ids[best] = pred[best];
    cell_conf[best] = conf[best];
    n++;
  }
  return n;
}

/* ---- the live view ------------------------------------------------------------ */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tyr_dlm_view_init(tyr_dlm_view *v, FILE *out, bool color, int width, int frame_ms) {
  memset(v, 0, sizeof *v);
  v->out = out;
  v->color = color;
  v->width = width > 0 ? width : 80;
  v->frame_ms = frame_ms < 0 ? 0 : frame_ms;
}

static const char *colour_of(float c) {
  return c > 0.7f ? "\x1b[32m" : c > 0.4f ? "\x1b[33m" : "\x1b[31m";
}

void tyr_dlm_view_frame(tyr_dlm_view *v, const int64_t *ids, const float *conf, int64_t S,
                        int64_t block, int64_t nblocks, int64_t step, int64_t total,
                        int64_t masked) {
  char bar[32];
  int64_t done = S - masked;
  tyr_progress_bar(bar, 24, done, S);
  if (!v->color) {
    fprintf(v->out, "block %lld/%lld  step %lld/%lld [%s] masked %lld\n", (long long)block,
            (long long)nblocks, (long long)step, (long long)total, bar, (long long)masked);
    fflush(v->out);
    return;
  }
  if (v->frame_ms > 0 && v->last > 0) { /* pace the animation */
    double wait = v->last + v->frame_ms * 1e-3 - now_s();
    if (wait > 0) {
      struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
  FILE *f = v->out;
  if (v->lines > 0) fprintf(f, "\r\x1b[%dA\x1b[J", v->lines); /* back over the last frame */
  fprintf(f, "\x1b[1mblock %lld/%lld  step %lld/%lld\x1b[0m [%s] masked %lld\n", (long long)block,
          (long long)nblocks, (long long)step, (long long)total, bar, (long long)masked);
  int lines = 1;
  const char *cur = NULL;
  for (int64_t i = 0; i < S; i++) {
    const char *col = colour_of(conf[i]);
    if (col != cur) {
      fputs(col, f);
      cur = col;
    }
    int64_t id = ids[i];
    if (id == TYR_DLM_MASK)
      fputs("\xe2\x96\x88", f); /* U+2588 full block */
    else if (id == '\n')
      fputs("\xe2\x86\xb5", f); /* U+21B5 ↵ */
    else if (id < 32 || id >= 127)
      fputs("\xc2\xb7", f); /* U+00B7 · for other control characters */
    else
      fputc((int)id, f);
    if ((i + 1) % v->width == 0 || i == S - 1) {
      fputs("\x1b[0m\n", f);
      cur = NULL;
      lines++;
    }
  }
  fflush(f);
  v->lines = lines;
  v->last = now_s();
}

void tyr_dlm_view_end_block(tyr_dlm_view *v) {
  v->lines = 0;
}

/* ---- generation ---------------------------------------------------------------- */
static int logits_host(tyr_site s, tyr_dlm *m, const int64_t *ids, int64_t t, float *out) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  const int64_t S = m->cfg.seq_len;
  tyr_tensor *x = tyr_from_host_at(s, ids, TYR_I64, m->device, 2, (int64_t[]){1, S});
  tyr_tensor *tt = tyr_from_host_at(s, &t, TYR_I64, m->device, 1, (int64_t[]){1});
  tyr_tensor *l = tyr_dlm_forward_at(s, m, x, tt);
  if (!l) return TYR_ERR_ARG;
  l = tyr_to_dtype_at(s, tyr_to_device_at(s, l, TYR_DEVICE_CPU), TYR_F32);
  if (!l) return TYR_ERR_ARG;
  return tyr_to_host_at(s, l, out, sizeof(float) * (size_t)(S * TYR_DLM_VOCAB));
}

char *tyr_dlm_generate_at(tyr_site s, tyr_dlm *m, const tyr_dlm_sample_opts *o, const char *prompt,
                          tyr_dlm_view *view) {
  const char *op = "tyr_dlm_generate";
  const tyr_dlm_config *c = &m->cfg;
  const int64_t S = c->seq_len, V = TYR_DLM_VOCAB;
  if (tyr_dlm_sample_opts_check_at(s, o, c)) return NULL;
  if (!prompt) prompt = "";
  int64_t plen = (int64_t)strlen(prompt);
  if (plen > S)
    return (tyr_raise(TYR_ERR_ARG, s, op,
                      "the prompt has %lld characters, more than the sequence (%lld)",
                      (long long)plen, (long long)S),
            NULL);
  for (int64_t i = 0; i < plen; i++)
    if ((unsigned char)prompt[i] >= 128)
      return (tyr_raise(TYR_ERR_ARG, s, op,
                        "the prompt's byte %lld (0x%02x) is not ASCII: the vocabulary is 1..127",
                        (long long)i, (unsigned char)prompt[i]),
              NULL);
  size_t cap = (size_t)(plen + o->blocks * S + 1);
  char *text = malloc(cap);
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)S), *pred = malloc(sizeof(int64_t) * (size_t)S);
  float *conf = malloc(sizeof(float) * (size_t)S), *cell = malloc(sizeof(float) * (size_t)S);
  float *logits = malloc(sizeof(float) * (size_t)(S * V));
  if (!text || !ids || !pred || !conf || !cell || !logits) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto fail;
  }
  int64_t n = 0;
  for (int64_t b = 0; b < o->blocks; b++) {
    /* the fixed prefix: the prompt, or the tail of the text so far */
    int64_t fixed = b == 0 ? plen : (n < o->overlap ? n : o->overlap);
    const char *src = b == 0 ? prompt : text + n - fixed;
    for (int64_t i = 0; i < S; i++) {
      ids[i] = i < fixed ? (unsigned char)src[i] : TYR_DLM_MASK;
      cell[i] = 1.0f;
    }
    if (b == 0) {
      memcpy(text, prompt, (size_t)plen);
      n = plen;
    }
    int64_t masked = S - fixed, free_cells = masked;
    int64_t total = o->commit == TYR_DLM_COMMIT_TOPK ? (masked + o->k - 1) / o->k : masked;
    int64_t step = 0;
    if (view) tyr_dlm_view_frame(view, ids, cell, S, b + 1, o->blocks, step, total, masked);
    while (masked > 0) {
      /* the time step whose masking probability is the masked fraction */
      int64_t t = (int64_t)ceil((double)masked / (double)free_cells * (double)c->steps) - 1;
      t = t < 0 ? 0 : t >= c->steps ? c->steps - 1 : t;
      if (logits_host(s, m, ids, t, logits)) goto fail;
      uint64_t counter0 = ((uint64_t)b << 40) + (uint64_t)step * (uint64_t)S;
      tyr_dlm_predict(logits, S, ids, o->temperature, o->seed, counter0, pred, conf);
      masked -= tyr_dlm_commit(o, S, ids, pred, conf, cell);
      step++;
      if (view) {
        for (int64_t i = 0; i < S; i++)
          if (ids[i] == TYR_DLM_MASK) cell[i] = conf[i];
        tyr_dlm_view_frame(view, ids, cell, S, b + 1, o->blocks, step, total, masked);
      }
    }
    if (view) tyr_dlm_view_end_block(view);
    for (int64_t i = fixed; i < S; i++) text[n++] = (char)ids[i];
  }
  text[n] = 0;
  free(ids);
  free(pred);
  free(conf);
  free(cell);
  free(logits);
  return text;
fail:
  free(text);
  free(ids);
  free(pred);
  free(conf);
  free(cell);
  free(logits);
  return NULL;
}
