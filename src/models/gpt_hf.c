/* transformers GPT-2 checkpoints into a tyr_gpt: config.json read with
 * jansson, the weights through the safetensors rules of
 * tyr/safetensors_map.h. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tyr/models/gpt.h"
#include "tyr/safetensors_map.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_gpt_from_hf";

/* key as a positive integer (def when absent or null and def > 0) */
static int get_int(tyr_site s, const char *path, json_t *root, const char *key, int64_t def,
                   int64_t *out) {
  json_t *v = json_object_get(root, key);
  if ((!v || json_is_null(v)) && def > 0) {
    *out = def;
    return 0;
  }
  if (!v) return tyr_raise(TYR_ERR_FORMAT, s, path, "\"%s\" is missing", key);
  if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1ll << 40))
    return tyr_raise(TYR_ERR_FORMAT, s, path, "\"%s\" must be a positive integer", key);
  *out = (int64_t)json_integer_value(v);
  return 0;
}

static int get_bool(tyr_site s, const char *path, json_t *root, const char *key, bool def,
                    bool *out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return 0;
  }
  if (!json_is_boolean(v))
    return tyr_raise(TYR_ERR_FORMAT, s, path, "\"%s\" must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

static bool act_from_hf(const char *name, tyr_act_kind *out) {
  static const struct {
    const char *hf;
    tyr_act_kind k;
  } map[] = {{"gelu_new", TYR_ACT_GELU_TANH},  {"gelu_pytorch_tanh", TYR_ACT_GELU_TANH},
             {"gelu_fast", TYR_ACT_GELU_TANH}, {"gelu", TYR_ACT_GELU},
             {"relu", TYR_ACT_RELU},           {"silu", TYR_ACT_SILU},
             {"swish", TYR_ACT_SILU}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(name, map[i].hf) == 0) {
      *out = map[i].k;
      return true;
    }
  return false;
}

int tyr_gpt_config_from_hf_at(tyr_site s, const char *path, tyr_gpt_config *out) {
  if (!path || !out) return tyr_raise(TYR_ERR_ARG, s, OP, "%s is NULL", path ? "out" : "path");
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root) {
    struct stat st;
    if (stat(path, &st) != 0) return tyr_raise(TYR_ERR_IO, s, path, "cannot open: no such file");
    return tyr_raise(TYR_ERR_FORMAT, s, path, "line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
  }
  int st = 0;
  if (!json_is_object(root)) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path, "not a JSON object");
    goto done;
  }
  const char *mt = json_string_value(json_object_get(root, "model_type"));
  if (!mt || strcmp(mt, "gpt2") != 0) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "model_type is \"%s\": only GPT-2-family checkpoints (\"gpt2\") are read",
                   mt ? mt : "(missing)");
    goto done;
  }
  int64_t vocab, npos, embd, nlayer, nhead, inner;
  if ((st = get_int(s, path, root, "vocab_size", 0, &vocab)) ||
      (st = get_int(s, path, root, "n_embd", 0, &embd)) ||
      (st = get_int(s, path, root, "n_layer", 0, &nlayer)) ||
      (st = get_int(s, path, root, "n_head", 0, &nhead)))
    goto done;
  if (json_object_get(root, "n_positions"))
    st = get_int(s, path, root, "n_positions", 0, &npos);
  else
    st = get_int(s, path, root, "n_ctx", 0, &npos);
  if (st || (st = get_int(s, path, root, "n_inner", 4 * embd, &inner))) goto done;
  tyr_gpt_config c = tyr_gpt_config_gpt2(vocab, npos, nlayer, nhead, embd);
  c.mlp_hidden = inner;
  json_t *eps = json_object_get(root, "layer_norm_epsilon");
  if (eps) {
    if (!json_is_number(eps) || !(json_number_value(eps) > 0) || json_number_value(eps) > 1) {
      st = tyr_raise(TYR_ERR_FORMAT, s, path, "\"layer_norm_epsilon\" must be a number in (0, 1]");
      goto done;
    }
    c.norm_eps = json_number_value(eps);
  }
  json_t *act = json_object_get(root, "activation_function");
  if (act) {
    const char *a = json_string_value(act);
    if (!a || !act_from_hf(a, &c.act)) {
      st = tyr_raise(TYR_ERR_FORMAT, s, path,
                     "activation_function \"%s\" is not one of gelu_new, gelu_pytorch_tanh, "
                     "gelu_fast, gelu, relu, silu, swish",
                     a ? a : "(not a string)");
      goto done;
    }
  }
  bool tied, cross, scale, by_layer;
  if ((st = get_bool(s, path, root, "tie_word_embeddings", true, &tied)) ||
      (st = get_bool(s, path, root, "add_cross_attention", false, &cross)) ||
      (st = get_bool(s, path, root, "scale_attn_weights", true, &scale)) ||
      (st = get_bool(s, path, root, "scale_attn_by_inverse_layer_idx", false, &by_layer)))
    goto done;
  const char *bad = cross      ? "add_cross_attention is true"
                    : !scale   ? "scale_attn_weights is false"
                    : by_layer ? "scale_attn_by_inverse_layer_idx is true"
                               : NULL;
  if (bad) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path, "%s: the GPT cannot compute that model", bad);
    goto done;
  }
  c.tied_head = tied;
  c.dropout = 0;
  if ((st = tyr_gpt_config_check_at(s, &c))) goto done;
  *out = c;
done:
  json_decref(root);
  return st;
}

int tyr_gpt_from_hf_at(tyr_site s, tyr_gpt *g, const char *dir, tyr_device dev) {
  if (!g) return tyr_raise(TYR_ERR_ARG, s, OP, "g is NULL");
  memset(g, 0, sizeof *g);
  if (!dir) return tyr_raise(TYR_ERR_ARG, s, OP, "dir is NULL");
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  tyr_gpt_config c;
  int st = tyr_gpt_config_from_hf_at(s, path, &c);
  if (st) return st;
  tyr_safetensors_set *set = tyr_safetensors_set_open_at(s, dir);
  if (!set) return TYR_ERR_IO;
  /* GPT2LMHeadModel saves "transformer."-prefixed names, GPT2Model bare ones */
  bool prefixed = false;
  for (int i = 0; i < tyr_safetensors_set_count(set) && !prefixed; i++)
    prefixed = strncmp(tyr_safetensors_set_name(set, i), "transformer.", 12) == 0;
  static const struct {
    const char *from, *to;
    unsigned flags;
  } map[] = {
      {"wte.weight", "wte.weight", 0},
      {"wpe.weight", "wpe.weight", 0},
      {"h.*.ln_1.weight", "blocks.*.ln1.weight", 0},
      {"h.*.ln_1.bias", "blocks.*.ln1.bias", 0},
      {"h.*.attn.c_attn.weight", "blocks.*.attn.qkv.weight", TYR_ST_TRANSPOSE},
      {"h.*.attn.c_attn.bias", "blocks.*.attn.qkv.bias", 0},
      {"h.*.attn.c_proj.weight", "blocks.*.attn.proj.weight", TYR_ST_TRANSPOSE},
      {"h.*.attn.c_proj.bias", "blocks.*.attn.proj.bias", 0},
      {"h.*.ln_2.weight", "blocks.*.ln2.weight", 0},
      {"h.*.ln_2.bias", "blocks.*.ln2.bias", 0},
      {"h.*.mlp.c_fc.weight", "blocks.*.mlp.fc.weight", TYR_ST_TRANSPOSE},
      {"h.*.mlp.c_fc.bias", "blocks.*.mlp.fc.bias", 0},
      {"h.*.mlp.c_proj.weight", "blocks.*.mlp.proj.weight", TYR_ST_TRANSPOSE},
      {"h.*.mlp.c_proj.bias", "blocks.*.mlp.proj.bias", 0},
      {"ln_f.weight", "ln_f.weight", 0},
      {"ln_f.bias", "ln_f.bias", 0},
      {"h.*.attn.bias", NULL, 0},        /* the causal mask buffer of older versions */
      {"h.*.attn.masked_bias", NULL, 0}, /* likewise */
  };
  enum { NMAP = sizeof map / sizeof map[0] };
  char from[NMAP + 1][96];
  tyr_st_rule rules[NMAP + 1];
  memset(rules, 0, sizeof rules);
  for (int i = 0; i < NMAP; i++) {
    snprintf(from[i], sizeof from[i], "%s%s", prefixed ? "transformer." : "", map[i].from);
    rules[i].from = from[i];
    rules[i].to = map[i].to;
    rules[i].flags = map[i].flags | TYR_ST_CAST;
  }
  /* the head: tied (a saved copy is skipped) or its own weight */
  rules[NMAP] = (tyr_st_rule){
      .from = "lm_head.weight", .to = c.tied_head ? NULL : "lm_head.weight", .flags = TYR_ST_CAST};
  /* the random initialisation is overwritten: the caller's RNG stream stays as it was */
  tyr_rng_state rng = tyr_rng_get_state();
  st = tyr_gpt_init_at(s, g, &c, dev);
  tyr_rng_set_state(rng);
  if (st) goto done;
  st = tyr_safetensors_load_mapped_at(s, set, &g->params, rules, NMAP + 1, 0);
  if (st) tyr_gpt_free(g);
done:
  tyr_safetensors_set_close(set);
  return st;
}
