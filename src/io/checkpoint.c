/* Checkpoints over safetensors. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/checkpoint.h"
#include "tyr/safetensors.h"

int tyr_checkpoint_save_at(tyr_site s, const char *path, tyr_params *model, tyr_optim *opt,
                           const tyr_checkpoint_info *info) {
  const char *op = "tyr_checkpoint_save";
  int nopt = opt ? 2 * opt->n : 0, cap = model->n + nopt;
  const char **names = calloc((size_t)cap + 1, sizeof *names);
  tyr_tensor **ts = calloc((size_t)cap + 1, sizeof *ts);
  char(*buf)[TYR_PARAM_NAME_MAX + 16] = calloc((size_t)nopt + 1, sizeof *buf);
  if (!names || !ts || !buf) {
    free(names);
    free(ts);
    free(buf);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "%s: out of host memory", path);
  }
  int n = 0;
  for (int i = 0; i < model->n; i++) {
    names[n] = model->items[i].name;
    ts[n++] = model->items[i].t;
  }
  if (opt) n += tyr_optim_state_tensors(opt, nopt, names + n, ts + n, buf);
  char vals[4][32];
  const char *keys[TYR_CHECKPOINT_MAX_META + 4], *values[TYR_CHECKPOINT_MAX_META + 4];
  int nm = 0;
  snprintf(vals[0], sizeof vals[0], "%" PRId64, info ? info->step : 0);
  snprintf(vals[1], sizeof vals[1], "%" PRId64, opt ? opt->step : 0);
  tyr_rng_state rng = info ? info->rng : tyr_rng_get_state();
  snprintf(vals[2], sizeof vals[2], "%" PRIu64, rng.seed);
  snprintf(vals[3], sizeof vals[3], "%" PRIu64, rng.counter);
  const char *std_keys[4] = {"tyr.step", "tyr.optim_step", "tyr.rng_seed", "tyr.rng_counter"};
  for (int i = 0; i < 4; i++) {
    keys[nm] = std_keys[i];
    values[nm++] = vals[i];
  }
  for (int i = 0; info && i < info->nmeta && i < TYR_CHECKPOINT_MAX_META; i++) {
    keys[nm] = info->keys[i];
    values[nm++] = info->values[i];
  }
  int st = tyr_safetensors_save_at(s, path, n, names, ts, nm, keys, values);
  free(names);
  free(ts);
  free(buf);
  return st;
}

tyr_checkpoint *tyr_checkpoint_open_at(tyr_site s, const char *path) {
  return tyr_safetensors_open_at(s, path);
}
const char *tyr_checkpoint_meta(const tyr_checkpoint *c, const char *key) {
  return tyr_safetensors_metadata(c, key);
}
void tyr_checkpoint_close(tyr_checkpoint *c) {
  tyr_safetensors_close(c);
}

static int check_entry(tyr_site s, tyr_checkpoint *c, const char *name, const tyr_tensor *t) {
  const char *path = tyr_safetensors_path(c);
  const tyr_safetensors_entry *e = tyr_safetensors_find(c, name);
  if (!e)
    return tyr_raise(TYR_ERR_FORMAT, s, path,
                     "tensor '%s' is missing (was the checkpoint made with another config?)", name);
  char a[160], b[160];
  if (e->dtype != t->dtype || e->rank != t->rank ||
      memcmp(e->shape, t->shape, sizeof(int64_t) * (size_t)t->rank))
    return tyr_raise(TYR_ERR_FORMAT, s, path,
                     "tensor '%s' is %s %s in the file but %s %s in the model", name,
                     tyr_dtype_name(e->dtype), tyr_shape_str(e->shape, e->rank, a, sizeof a),
                     tyr_dtype_name(t->dtype), tyr_shape_str(t->shape, t->rank, b, sizeof b));
  return 0;
}

int tyr_checkpoint_load_weights_at(tyr_site s, tyr_checkpoint *c, tyr_params *model) {
  if (!c || !model)
    return tyr_raise(TYR_ERR_ARG, s, "tyr_checkpoint_load_weights", "%s is NULL",
                     c ? "model" : "checkpoint");
  int st;
  for (int i = 0; i < model->n; i++)
    if ((st = check_entry(s, c, model->items[i].name, model->items[i].t))) return st;
  for (int i = 0; i < model->n; i++)
    if ((st = tyr_safetensors_load_into_at(s, c, model->items[i].name, model->items[i].t)))
      return st;
  return 0;
}

static int parse_i64(tyr_site s, tyr_checkpoint *c, const char *key, int64_t *out) {
  const char *v = tyr_safetensors_metadata(c, key);
  char *end;
  if (!v)
    return tyr_raise(TYR_ERR_FORMAT, s, tyr_safetensors_path(c), "metadata '%s' is missing", key);
  long long x = strtoll(v, &end, 10);
  if (*end || end == v)
    return tyr_raise(TYR_ERR_FORMAT, s, tyr_safetensors_path(c),
                     "metadata '%s' is not an integer: '%s'", key, v);
  *out = x;
  return 0;
}

int tyr_checkpoint_load_at(tyr_site s, tyr_checkpoint *c, tyr_params *model, tyr_optim *opt,
                           tyr_checkpoint_info *info) {
  int st;
  int nopt = opt ? 2 * opt->n : 0;
  const char **names = calloc((size_t)nopt + 1, sizeof *names);
  tyr_tensor **ts = calloc((size_t)nopt + 1, sizeof *ts);
  char(*buf)[TYR_PARAM_NAME_MAX + 16] = calloc((size_t)nopt + 1, sizeof *buf);
  int k = 0;
  if (!names || !ts || !buf) {
    st = tyr_raise(TYR_ERR_MEMORY, s, "tyr_checkpoint_load", "out of host memory");
    goto done;
  }
  if (opt) k = tyr_optim_state_tensors(opt, nopt, names, ts, buf);
  int64_t step, ostep, seed, counter;
  /* validate everything first: nothing changes on a mismatch */
  for (int i = 0; i < model->n; i++)
    if ((st = check_entry(s, c, model->items[i].name, model->items[i].t))) goto done;
  for (int i = 0; i < k; i++)
    if ((st = check_entry(s, c, names[i], ts[i]))) goto done;
  if ((st = parse_i64(s, c, "tyr.step", &step)) ||
      (st = parse_i64(s, c, "tyr.optim_step", &ostep)) ||
      (st = parse_i64(s, c, "tyr.rng_seed", &seed)) ||
      (st = parse_i64(s, c, "tyr.rng_counter", &counter)))
    goto done;
  for (int i = 0; i < model->n; i++)
    if ((st = tyr_safetensors_load_into_at(s, c, model->items[i].name, model->items[i].t)))
      goto done;
  for (int i = 0; i < k; i++)
    if ((st = tyr_safetensors_load_into_at(s, c, names[i], ts[i]))) goto done;
  if (opt) opt->step = ostep;
  tyr_rng_state rng = {(uint64_t)seed, (uint64_t)counter};
  tyr_rng_set_state(rng);
  if (info) {
    memset(info, 0, sizeof *info);
    info->step = step;
    info->rng = rng;
  }
  st = 0;
done:
  free(names);
  free(ts);
  free(buf);
  return st;
}
