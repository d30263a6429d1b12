/* GPT checkpoints that carry their config: the config as JSON (jansson),
 * tyr_gpt_save and tyr_gpt_load. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tyr/checkpoint.h"
#include "tyr/models/gpt.h"
#include "tyr/tyr.h"

static const char *act_name(tyr_act_kind k) {
  switch (k) {
  case TYR_ACT_GELU:
    return "gelu";
  case TYR_ACT_GELU_TANH:
    return "gelu_tanh";
  case TYR_ACT_RELU2:
    return "relu2";
  case TYR_ACT_RELU:
    return "relu";
  case TYR_ACT_SILU:
    return "silu";
  }
  return "?";
}

int tyr_gpt_config_to_json_at(tyr_site s, const tyr_gpt_config *c, char *buf, size_t n) {
  const char *op = "tyr_gpt_config_to_json";
  if (!c || !buf) return -tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", c ? "buf" : "config");
  /* nanochat's flags only when set: GPT-2 configs keep their JSON */
  char extra[160];
  snprintf(extra, sizeof extra, "%s%s%s%s", c->layer_lambdas ? ",\"layer_lambdas\":true" : "",
           c->zero_init_proj ? ",\"zero_init_proj\":true" : "",
           c->norm_no_weight ? ",\"norm_no_weight\":true" : "",
           c->embed_norm ? ",\"embed_norm\":true" : "");
  int k = snprintf(
      buf, n,
      "{\"vocab_size\":%lld,\"block_size\":%lld,\"n_layer\":%lld,\"n_head\":%lld,"
      "\"n_kv_head\":%lld,\"n_embd\":%lld,\"mlp_hidden\":%lld,\"dropout\":%.17g,\"bias\":%s,"
      "\"tied_head\":%s,\"learned_pos\":%s,\"rope\":%s,\"qk_norm\":%s,\"rope_base\":%.17g,"
      "\"norm\":\"%s\",\"act\":\"%s\",\"logit_softcap\":%.17g,\"init_std\":%.17g,"
      "\"norm_eps\":%.17g,\"compute_dtype\":\"%s\"%s}",
      (long long)c->vocab_size, (long long)c->block_size, (long long)c->n_layer,
      (long long)c->n_head, (long long)c->n_kv_head, (long long)c->n_embd, (long long)c->mlp_hidden,
      c->dropout, c->bias ? "true" : "false", c->tied_head ? "true" : "false",
      c->learned_pos ? "true" : "false", c->rope ? "true" : "false", c->qk_norm ? "true" : "false",
      c->rope_base, c->norm == TYR_NORM_RMS ? "rms" : "layer", act_name(c->act), c->logit_softcap,
      c->init_std, c->norm_eps,
      c->compute_dtype == TYR_BF16  ? "bf16"
      : c->compute_dtype == TYR_F16 ? "f16"
                                    : "f32",
      extra);
  if (k < 0 || (size_t)k >= n)
    return -tyr_raise(TYR_ERR_ARG, s, op, "the buffer (%zu bytes) is too small: %d needed", n,
                      k + 1);
  return k;
}

int tyr_gpt_config_from_json_at(tyr_site s, const char *text, const char *what,
                                tyr_gpt_config *out) {
  if (!what) what = "tyr_gpt_config_from_json";
  if (!text || !out) return tyr_raise(TYR_ERR_ARG, s, what, "%s is NULL", text ? "out" : "json");
  json_error_t jerr;
  json_t *root = json_loads(text, 0, &jerr);
  if (!root)
    return tyr_raise(TYR_ERR_FORMAT, s, what, "the GPT config is not JSON: column %d: %s",
                     jerr.column, jerr.text);
  tyr_gpt_config c = tyr_gpt_config_gpt2(1, 1, 1, 1, 1);
  int st = 0;
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    struct {
      const char *name;
      int64_t *i;
      double *d;
      bool *b;
    } fields[] = {
        {"vocab_size", &c.vocab_size, NULL, NULL},
        {"block_size", &c.block_size, NULL, NULL},
        {"n_layer", &c.n_layer, NULL, NULL},
        {"n_head", &c.n_head, NULL, NULL},
        {"n_kv_head", &c.n_kv_head, NULL, NULL},
        {"n_embd", &c.n_embd, NULL, NULL},
        {"mlp_hidden", &c.mlp_hidden, NULL, NULL},
        {"dropout", NULL, &c.dropout, NULL},
        {"bias", NULL, NULL, &c.bias},
        {"tied_head", NULL, NULL, &c.tied_head},
        {"learned_pos", NULL, NULL, &c.learned_pos},
        {"rope", NULL, NULL, &c.rope},
        {"qk_norm", NULL, NULL, &c.qk_norm},
        {"rope_base", NULL, &c.rope_base, NULL},
        {"logit_softcap", NULL, &c.logit_softcap, NULL},
        {"init_std", NULL, &c.init_std, NULL},
        {"norm_eps", NULL, &c.norm_eps, NULL},
        {"layer_lambdas", NULL, NULL, &c.layer_lambdas},
        {"zero_init_proj", NULL, NULL, &c.zero_init_proj},
        {"norm_no_weight", NULL, NULL, &c.norm_no_weight},
        {"embed_norm", NULL, NULL, &c.embed_norm},
    };
    bool done = false;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0] && !done; f++) {
      if (strcmp(key, fields[f].name)) continue;
      done = true;
      if (fields[f].i && json_is_integer(v))
        *fields[f].i = (int64_t)json_integer_value(v);
      else if (fields[f].d && json_is_number(v))
        *fields[f].d = json_number_value(v);
      else if (fields[f].b && json_is_boolean(v))
        *fields[f].b = json_is_true(v);
      else
        st = tyr_raise(TYR_ERR_FORMAT, s, what, "GPT config field \"%s\" must be %s", key,
                       fields[f].i   ? "an integer"
                       : fields[f].d ? "a number"
                                     : "true or false");
    }
    if (done) {
      if (st) break;
      continue;
    }
    const char *sv = json_string_value(v);
    if (strcmp(key, "norm") == 0 && sv && (!strcmp(sv, "layer") || !strcmp(sv, "rms"))) {
      c.norm = strcmp(sv, "rms") == 0 ? TYR_NORM_RMS : TYR_NORM_LAYER;
    } else if (strcmp(key, "act") == 0 && sv && tyr_act_kind_parse(sv, &c.act)) {
    } else if (strcmp(key, "compute_dtype") == 0 && sv &&
               (!strcmp(sv, "f32") || !strcmp(sv, "bf16") || !strcmp(sv, "f16"))) {
      c.compute_dtype = !strcmp(sv, "bf16") ? TYR_BF16 : !strcmp(sv, "f16") ? TYR_F16 : TYR_F32;
    } else {
      bool known = !strcmp(key, "norm") || !strcmp(key, "act") || !strcmp(key, "compute_dtype");
      st = known
               ? tyr_raise(TYR_ERR_FORMAT, s, what, "GPT config field \"%s\" has a bad value", key)
               : tyr_raise(TYR_ERR_FORMAT, s, what, "unknown GPT config field \"%s\"", key);
      break;
    }
  }
  json_decref(root);
  if (st) return st;
  if ((st = tyr_gpt_config_check_at(s, &c))) return st;
  *out = c;
  return 0;
}

int tyr_gpt_save_at(tyr_site s, tyr_gpt *g, const char *path) {
  if (!g) return tyr_raise(TYR_ERR_ARG, s, "tyr_gpt_save", "g is NULL");
  char cfg[1024];
  if (tyr_gpt_config_to_json_at(s, &g->cfg, cfg, sizeof cfg) < 0) return TYR_ERR_ARG;
  tyr_checkpoint_info info = {.step = 0,
                              .rng = tyr_rng_get_state(),
                              .nmeta = 1,
                              .keys = {TYR_GPT_CONFIG_KEY},
                              .values = {cfg}};
  return tyr_checkpoint_save_at(s, path, &g->params, NULL, &info);
}

int tyr_gpt_load_at(tyr_site s, tyr_gpt *g, const char *path, tyr_device dev) {
  if (!g) return tyr_raise(TYR_ERR_ARG, s, "tyr_gpt_load", "g is NULL");
  memset(g, 0, sizeof *g);
  tyr_checkpoint *ck = tyr_checkpoint_open_at(s, path);
  if (!ck) return TYR_ERR_IO;
  int st;
  tyr_gpt_config c;
  const char *json = tyr_checkpoint_meta(ck, TYR_GPT_CONFIG_KEY);
  if (!json) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "no \"" TYR_GPT_CONFIG_KEY "\" metadata: the file does not say which model it "
                   "holds (build the model and use tyr_checkpoint_load_weights)");
    goto done;
  }
  if ((st = tyr_gpt_config_from_json_at(s, json, path, &c))) goto done;
  tyr_rng_state rng = tyr_rng_get_state(); /* the initial weights are overwritten */
  st = tyr_gpt_init_at(s, g, &c, dev);
  tyr_rng_set_state(rng);
  if (st) goto done;
  if ((st = tyr_checkpoint_load_weights_at(s, ck, &g->params))) tyr_gpt_free(g);
done:
  tyr_checkpoint_close(ck);
  return st;
}
