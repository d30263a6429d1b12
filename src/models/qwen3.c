/* The Qwen3 decoder as a text encoder (tyr/models/qwen3.h): config.json
 * read with jansson, the weights memory-mapped from the safetensors shards
 * and kept in their dtype, and the forward to the hidden states of chosen
 * layers. */
#include "tyr/models/qwen3.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/fileio.h"
#include "tyr/safetensors_map.h"
#include "tyr/tyr.h"

static const char *const OP_LOAD = "tyr_qwen3_load";
static const char *const OP_HS = "tyr_qwen3_hidden_states";

/* Tests set this to send right-padded masks through the mask tensor too. */
extern bool tyr__qwen3_mask_always;
bool tyr__qwen3_mask_always;

/* ---- config ------------------------------------------------------------------ */
tyr_qwen3_config tyr_qwen3_config_4b(void) {
  return (tyr_qwen3_config){.vocab_size = 151936,
                            .hidden = 2560,
                            .n_layer = 36,
                            .n_head = 32,
                            .n_kv_head = 8,
                            .head_dim = 128,
                            .intermediate = 9728,
                            .max_position = 40960,
                            .rms_eps = 1e-6,
                            .rope_theta = 1e6,
                            .tie_word_embeddings = true};
}

tyr_qwen3_config tyr_qwen3_config_tiny(void) {
  return (tyr_qwen3_config){.vocab_size = 512,
                            .hidden = 64,
                            .n_layer = 4,
                            .n_head = 4,
                            .n_kv_head = 2,
                            .head_dim = 16,
                            .intermediate = 128,
                            .max_position = 1024,
                            .rms_eps = 1e-6,
                            .rope_theta = 1e6,
                            .tie_word_embeddings = true};
}

int tyr_qwen3_config_check_at(tyr_site s, const tyr_qwen3_config *c) {
  const char *op = "tyr_qwen3_config";
  if (!c) return tyr_raise(TYR_ERR_ARG, s, op, "config is NULL");
  const struct {
    const char *name;
    int64_t v;
  } dims[] = {{"vocab_size", c->vocab_size},    {"hidden", c->hidden},
              {"n_layer", c->n_layer},          {"n_head", c->n_head},
              {"n_kv_head", c->n_kv_head},      {"head_dim", c->head_dim},
              {"intermediate", c->intermediate}};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
    if (dims[i].v <= 0 || dims[i].v > (1ll << 31))
      return tyr_raise(TYR_ERR_ARG, s, op, "%s is %lld: it must be in [1, 2^31]", dims[i].name,
                       (long long)dims[i].v);
  if (c->n_head % c->n_kv_head)
    return tyr_raise(TYR_ERR_ARG, s, op, "n_head %lld is not a multiple of n_kv_head %lld",
                     (long long)c->n_head, (long long)c->n_kv_head);
  if (c->head_dim % 2)
    return tyr_raise(TYR_ERR_ARG, s, op, "head_dim %lld is odd: rotary needs pairs",
                     (long long)c->head_dim);
  if (!(c->rms_eps > 0) || c->rms_eps > 1)
    return tyr_raise(TYR_ERR_ARG, s, op, "rms_eps %g is not in (0, 1]", c->rms_eps);
  if (!(c->rope_theta > 1) || !isfinite(c->rope_theta))
    return tyr_raise(TYR_ERR_ARG, s, op, "rope_theta %g must be a finite number above 1",
                     c->rope_theta);
  if (c->max_position < 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "max_position %lld is negative",
                     (long long)c->max_position);
  return 0;
}

static int json_int(tyr_site s, const char *path, json_t *root, const char *key, int64_t def,
                    int64_t *out) {
  json_t *v = json_object_get(root, key);
  if ((!v || json_is_null(v)) && def > 0) {
    *out = def;
    return 0;
  }
  if (!v) return tyr_raise(TYR_ERR_FORMAT, s, path, "\"%s\" is missing", key);
  if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1ll << 31))
    return tyr_raise(TYR_ERR_FORMAT, s, path, "\"%s\" must be a positive integer", key);
  *out = (int64_t)json_integer_value(v);
  return 0;
}

static int json_num(tyr_site s, const char *path, json_t *v, const char *key, double *out) {
  if (!json_is_number(v)) return tyr_raise(TYR_ERR_FORMAT, s, path, "\"%s\" must be a number", key);
  *out = json_number_value(v);
  return 0;
}

int tyr_qwen3_config_from_hf_at(tyr_site s, const char *path, tyr_qwen3_config *out) {
  const char *op = "tyr_qwen3_config_from_hf";
  if (!path || !out) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", path ? "out" : "path");
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root) {
    struct stat st;
    if (stat(path, &st) != 0) return tyr_raise(TYR_ERR_IO, s, path, "cannot open: no such file");
    return tyr_raise(TYR_ERR_FORMAT, s, path, "line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
  }
  int st = 0;
  tyr_qwen3_config c = {0};
  if (!json_is_object(root)) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path, "not a JSON object");
    goto done;
  }
  const char *mt = json_string_value(json_object_get(root, "model_type"));
  if (!mt || strcmp(mt, "qwen3") != 0) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "model_type is \"%s\": only Qwen3 checkpoints (\"qwen3\") are read",
                   mt ? mt : "(missing)");
    goto done;
  }
  if ((st = json_int(s, path, root, "vocab_size", 0, &c.vocab_size)) ||
      (st = json_int(s, path, root, "hidden_size", 0, &c.hidden)) ||
      (st = json_int(s, path, root, "num_hidden_layers", 0, &c.n_layer)) ||
      (st = json_int(s, path, root, "num_attention_heads", 0, &c.n_head)) ||
      (st = json_int(s, path, root, "num_key_value_heads", c.n_head, &c.n_kv_head)) ||
      (st = json_int(s, path, root, "intermediate_size", 0, &c.intermediate)) ||
      (st = json_int(s, path, root, "head_dim", c.hidden / c.n_head, &c.head_dim)) ||
      (st = json_int(s, path, root, "max_position_embeddings", 40960, &c.max_position)))
    goto done;
  c.rms_eps = 1e-6;
  json_t *eps = json_object_get(root, "rms_norm_eps");
  if (eps && (st = json_num(s, path, eps, "rms_norm_eps", &c.rms_eps))) goto done;
  /* rope_theta at the top (transformers 4) or in rope_parameters (5) */
  c.rope_theta = 10000;
  json_t *rp = json_object_get(root, "rope_parameters");
  json_t *rs = json_object_get(root, "rope_scaling");
  json_t *th = json_object_get(root, "rope_theta");
  if (!th && json_is_object(rp)) th = json_object_get(rp, "rope_theta");
  if (th && (st = json_num(s, path, th, "rope_theta", &c.rope_theta))) goto done;
  const char *rtype = NULL;
  if (json_is_object(rp)) rtype = json_string_value(json_object_get(rp, "rope_type"));
  if (json_is_object(rs)) {
    rtype = json_string_value(json_object_get(rs, "rope_type"));
    if (!rtype) rtype = json_string_value(json_object_get(rs, "type"));
    if (!rtype) rtype = "(unnamed)";
  }
  if (rtype && strcmp(rtype, "default") != 0) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "rope type \"%s\": only the default rotary embedding is computed", rtype);
    goto done;
  }
  const char *act = json_string_value(json_object_get(root, "hidden_act"));
  if (act && strcmp(act, "silu") != 0) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path, "hidden_act \"%s\": only \"silu\" is computed", act);
    goto done;
  }
  if (json_is_true(json_object_get(root, "attention_bias"))) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "attention_bias is true: Qwen3's projections have no biases here");
    goto done;
  }
  json_t *sw = json_object_get(root, "use_sliding_window");
  if (json_is_true(sw)) {
    st = tyr_raise(TYR_ERR_FORMAT, s, path,
                   "use_sliding_window is true: only full attention is computed");
    goto done;
  }
  json_t *tie = json_object_get(root, "tie_word_embeddings");
  c.tie_word_embeddings = !tie || json_is_true(tie);
  if ((st = tyr_qwen3_config_check_at(s, &c))) goto done;
  *out = c;
done:
  json_decref(root);
  return st;
}

/* ---- the model --------------------------------------------------------------- */
typedef struct qwen3_layer {
  tyr_tensor *ln1, *q, *k, *v, *o, *q_norm, *k_norm, *ln2, *gate, *up, *down;
} qwen3_layer;

typedef struct qwen3_map {
  void *addr;
  size_t len;
} qwen3_map;

struct tyr_qwen3 {
  tyr_qwen3_config cfg;
  int64_t n_loaded;
  tyr_device dev;
  tyr_dtype storage;
  tyr_tensor *embed, *norm; /* norm: NULL when the last layers were not loaded */
  qwen3_layer *layers;
  qwen3_map *maps;
  int nmaps;
};

/* The tensors of one layer: name after "layers.N.", where in qwen3_layer,
 * and the shape (dims taken from the config). */
enum { D_H, D_Q, D_KV, D_HD, D_I };
static const struct {
  const char *name;
  size_t off;
  int rank, d0, d1;
} LAYER_TENSORS[] = {
    {"input_layernorm.weight", offsetof(qwen3_layer, ln1), 1, D_H, 0},
    {"self_attn.q_proj.weight", offsetof(qwen3_layer, q), 2, D_Q, D_H},
    {"self_attn.k_proj.weight", offsetof(qwen3_layer, k), 2, D_KV, D_H},
    {"self_attn.v_proj.weight", offsetof(qwen3_layer, v), 2, D_KV, D_H},
    {"self_attn.o_proj.weight", offsetof(qwen3_layer, o), 2, D_H, D_Q},
    {"self_attn.q_norm.weight", offsetof(qwen3_layer, q_norm), 1, D_HD, 0},
    {"self_attn.k_norm.weight", offsetof(qwen3_layer, k_norm), 1, D_HD, 0},
    {"post_attention_layernorm.weight", offsetof(qwen3_layer, ln2), 1, D_H, 0},
    {"mlp.gate_proj.weight", offsetof(qwen3_layer, gate), 2, D_I, D_H},
    {"mlp.up_proj.weight", offsetof(qwen3_layer, up), 2, D_I, D_H},
    {"mlp.down_proj.weight", offsetof(qwen3_layer, down), 2, D_H, D_I},
};
enum { N_LAYER_TENSORS = sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0] };

static int64_t dim_of(const tyr_qwen3_config *c, int d) {
  switch (d) {
  case D_H:
    return c->hidden;
  case D_Q:
    return c->n_head * c->head_dim;
  case D_KV:
    return c->n_kv_head * c->head_dim;
  case D_HD:
    return c->head_dim;
  default:
    return c->intermediate;
  }
}

static tyr_tensor **layer_slot(qwen3_layer *l, int i) {
  return (tyr_tensor **)((char *)l + LAYER_TENSORS[i].off);
}

/* The expected tensors in one list: 0 embed, 1 norm, then layer-major. */
typedef struct qwen3_slot {
  char name[96];
  tyr_tensor **dst;
  int rank;
  int64_t shape[2];
} qwen3_slot;

static int64_t n_slots(const tyr_qwen3 *m) {
  return 2 + m->n_loaded * N_LAYER_TENSORS;
}

static void fill_slots(tyr_qwen3 *m, qwen3_slot *sl) {
  const tyr_qwen3_config *c = &m->cfg;
  snprintf(sl[0].name, sizeof sl[0].name, "embed_tokens.weight");
  sl[0].dst = &m->embed;
  sl[0].rank = 2;
  sl[0].shape[0] = c->vocab_size;
  sl[0].shape[1] = c->hidden;
  snprintf(sl[1].name, sizeof sl[1].name, "norm.weight");
  sl[1].dst = m->n_loaded == c->n_layer ? &m->norm : NULL;
  sl[1].rank = 1;
  sl[1].shape[0] = c->hidden;
  for (int64_t l = 0; l < m->n_loaded; l++)
    for (int i = 0; i < N_LAYER_TENSORS; i++) {
      qwen3_slot *q = &sl[2 + l * N_LAYER_TENSORS + i];
      snprintf(q->name, sizeof q->name, "layers.%lld.%s", (long long)l, LAYER_TENSORS[i].name);
      q->dst = layer_slot(&m->layers[l], i);
      q->rank = LAYER_TENSORS[i].rank;
      q->shape[0] = dim_of(c, LAYER_TENSORS[i].d0);
      q->shape[1] = LAYER_TENSORS[i].rank == 2 ? dim_of(c, LAYER_TENSORS[i].d1) : 0;
    }
}

static tyr_qwen3 *model_new(tyr_site s, const char *op, const tyr_qwen3_config *c,
                            int64_t max_layers, tyr_device dev) {
  if (tyr_qwen3_config_check_at(s, c)) return NULL;
  if (max_layers < 0) {
    tyr_raise(TYR_ERR_ARG, s, op, "max_layers is %lld: it must be 0 (all) or positive",
              (long long)max_layers);
    return NULL;
  }
  tyr_qwen3 *m = calloc(1, sizeof *m);
  if (!m) goto oom;
  m->cfg = *c;
  m->n_loaded = max_layers == 0 || max_layers > c->n_layer ? c->n_layer : max_layers;
  m->dev = dev;
  m->layers = calloc((size_t)m->n_loaded, sizeof *m->layers);
  if (!m->layers) goto oom;
  return m;
oom:
  free(m);
  tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  return NULL;
}

void tyr_qwen3_free(tyr_qwen3 *m) {
  if (!m) return;
  tyr_tensor_free(m->embed);
  tyr_tensor_free(m->norm);
  for (int64_t l = 0; l < m->n_loaded && m->layers; l++)
    for (int i = 0; i < N_LAYER_TENSORS; i++) tyr_tensor_free(*layer_slot(&m->layers[l], i));
  free(m->layers);
  for (int i = 0; i < m->nmaps; i++)
    if (m->maps[i].addr) munmap(m->maps[i].addr, m->maps[i].len);
  free(m->maps);
  free(m);
}

const tyr_qwen3_config *tyr_qwen3_config_of(const tyr_qwen3 *m) {
  return m ? &m->cfg : NULL;
}
int64_t tyr_qwen3_n_loaded(const tyr_qwen3 *m) {
  return m ? m->n_loaded : 0;
}
tyr_device tyr_qwen3_device(const tyr_qwen3 *m) {
  return m ? m->dev : TYR_DEVICE_CPU;
}
tyr_dtype tyr_qwen3_storage(const tyr_qwen3 *m) {
  return m ? m->storage : TYR_F32;
}

/* A message list "a, b, c (and N more)" of up to 8 names. */
typedef struct name_list {
  char buf[1024];
  int n;
} name_list;

static void name_list_add(name_list *l, const char *name) {
  if (l->n < 8) {
    size_t u = strlen(l->buf);
    snprintf(l->buf + u, sizeof l->buf - u, "%s%s", l->n ? ", " : "", name);
  }
  l->n++;
}

static void name_list_end(name_list *l) {
  if (l->n > 8) {
    size_t u = strlen(l->buf);
    snprintf(l->buf + u, sizeof l->buf - u, " (and %d more)", l->n - 8);
  }
}

/* Whether name (prefix stripped) is a tensor of a Qwen3 checkpoint that
 * this model skips: a layer past the loaded ones, the final norm when not
 * all layers are loaded, the LM head. */
static bool skipped_name(const tyr_qwen3 *m, const char *name) {
  if (strcmp(name, "lm_head.weight") == 0) return true;
  if (strcmp(name, "norm.weight") == 0) return m->n_loaded < m->cfg.n_layer;
  long long l;
  int used = 0;
  if (sscanf(name, "layers.%lld.%n", &l, &used) == 1 && used > 0 && l >= m->n_loaded &&
      l < m->cfg.n_layer)
    for (int i = 0; i < N_LAYER_TENSORS; i++)
      if (strcmp(name + used, LAYER_TENSORS[i].name) == 0) return true;
  return false;
}

/* Maps file f read-only; returns the address of its data buffer (NULL
 * having raised). */
static const uint8_t *map_file(tyr_site s, tyr_qwen3 *m, tyr_safetensors *f) {
  const char *path = tyr_safetensors_path(f);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    tyr_raise(TYR_ERR_IO, s, path, "cannot open to map it");
    return NULL;
  }
  struct stat st;
  void *p = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size >= 8)
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    tyr_raise(TYR_ERR_IO, s, path, "cannot map the file");
    return NULL;
  }
  qwen3_map *nm = realloc(m->maps, (size_t)(m->nmaps + 1) * sizeof *nm);
  if (!nm) {
    munmap(p, (size_t)st.st_size);
    tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory");
    return NULL;
  }
  m->maps = nm;
  m->maps[m->nmaps++] = (qwen3_map){p, (size_t)st.st_size};
  uint64_t n;
  memcpy(&n, p, 8); /* little-endian hosts only, as the reader */
  return (const uint8_t *)p + 8 + n;
}

tyr_qwen3 *tyr_qwen3_load_at(tyr_site s, const char *dir, int64_t max_layers, tyr_device dev) {
  if (!dir) {
    tyr_raise(TYR_ERR_ARG, s, OP_LOAD, "dir is NULL");
    return NULL;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  tyr_qwen3_config c;
  if (tyr_qwen3_config_from_hf_at(s, path, &c)) return NULL;
  tyr_qwen3 *m = model_new(s, OP_LOAD, &c, max_layers, dev);
  if (!m) return NULL;
  tyr_safetensors_set *set = NULL;
  qwen3_slot *sl = NULL;
  int nf = 0;
  const uint8_t **data = NULL;
  int64_t ns = n_slots(m);
  sl = calloc((size_t)ns, sizeof *sl);
  const tyr_safetensors_entry **found = calloc((size_t)ns, sizeof *found);
  tyr_safetensors **file = calloc((size_t)ns, sizeof *file);
  if (!sl || !found || !file) {
    tyr_raise(TYR_ERR_MEMORY, s, OP_LOAD, "out of host memory");
    goto fail;
  }
  fill_slots(m, sl);
  set = tyr_safetensors_set_open_at(s, dir);
  if (!set) goto fail;

  /* every name: expected, skipped, or unexpected */
  name_list missing = {0}, unexpected = {0};
  int nt = tyr_safetensors_set_count(set);
  for (int i = 0; i < nt; i++) {
    const char *full = tyr_safetensors_set_name(set, i);
    const char *name = strncmp(full, "model.", 6) == 0 ? full + 6 : full;
    int64_t k = -1;
    long long l;
    int used = 0;
    if (strcmp(name, "embed_tokens.weight") == 0)
      k = 0;
    else if (strcmp(name, "norm.weight") == 0 && sl[1].dst)
      k = 1;
    else if (sscanf(name, "layers.%lld.%n", &l, &used) == 1 && used > 0 && l >= 0 &&
             l < m->n_loaded)
      for (int j = 0; j < N_LAYER_TENSORS; j++)
        if (strcmp(name + used, LAYER_TENSORS[j].name) == 0) k = 2 + l * N_LAYER_TENSORS + j;
    if (k < 0) {
      if (!skipped_name(m, name)) name_list_add(&unexpected, full);
      continue;
    }
    if (found[k]) {
      tyr_raise(TYR_ERR_FORMAT, s, dir, "tensor %s is there with and without the \"model.\" prefix",
                name);
      goto fail;
    }
    file[k] = tyr_safetensors_set_find(set, full, &found[k]);
  }
  for (int64_t k = 0; k < ns; k++)
    if (sl[k].dst && !found[k]) name_list_add(&missing, sl[k].name);
  if (missing.n || unexpected.n) {
    name_list_end(&missing);
    name_list_end(&unexpected);
    tyr_raise(TYR_ERR_FORMAT, s, dir,
              "the checkpoint does not match the Qwen3 config of %s/config.json (%lld of %lld "
              "layers loaded): %d missing%s%s%s; %d unexpected%s%s",
              dir, (long long)m->n_loaded, (long long)c.n_layer, missing.n, missing.n ? ": " : "",
              missing.buf, "", unexpected.n, unexpected.n ? ": " : "", unexpected.buf);
    goto fail;
  }
  /* shapes and dtypes */
  m->storage = found[0]->dtype;
  if (m->storage != TYR_F32 && m->storage != TYR_BF16 && m->storage != TYR_F16) {
    tyr_raise(TYR_ERR_DTYPE, s, dir, "%s is %s: the weights must be F32, BF16 or F16", sl[0].name,
              tyr_dtype_name(m->storage));
    goto fail;
  }
  for (int64_t k = 0; k < ns; k++) {
    if (!sl[k].dst) continue;
    const tyr_safetensors_entry *e = found[k];
    bool ok = e->rank == sl[k].rank;
    for (int d = 0; ok && d < e->rank; d++) ok = e->shape[d] == sl[k].shape[d];
    if (!ok) {
      char got[96], want[96];
      tyr_shape_str(e->shape, e->rank, got, sizeof got);
      tyr_shape_str(sl[k].shape, sl[k].rank, want, sizeof want);
      tyr_raise(TYR_ERR_SHAPE, s, tyr_safetensors_path(file[k]),
                "tensor %s is %s, but the config (%s/config.json) makes it %s", e->name, got, dir,
                want);
      goto fail;
    }
    if (e->dtype != m->storage) {
      tyr_raise(TYR_ERR_DTYPE, s, tyr_safetensors_path(file[k]),
                "tensor %s is %s while %s is %s: one storage dtype is needed", e->name,
                tyr_dtype_name(e->dtype), found[0]->name, tyr_dtype_name(m->storage));
      goto fail;
    }
  }
  /* map the files and make the tensors */
  nf = tyr_safetensors_set_nfiles(set);
  data = calloc((size_t)nf, sizeof *data);
  if (!data) {
    tyr_raise(TYR_ERR_MEMORY, s, OP_LOAD, "out of host memory");
    goto fail;
  }
  for (int64_t k = 0; k < ns; k++) {
    if (!sl[k].dst) continue;
    int fi = 0;
    while (fi < nf && tyr_safetensors_set_file(set, fi) != file[k]) fi++;
    if (fi == nf) {
      tyr_raise(TYR_ERR_STATE, s, OP_LOAD, "%s: file not in the set", sl[k].name);
      goto fail;
    }
    if (!data[fi] && !(data[fi] = map_file(s, m, file[k]))) goto fail;
    const tyr_safetensors_entry *e = found[k];
    const uint8_t *p = data[fi] + e->begin;
    tyr_tensor *t;
    if ((uintptr_t)p % tyr_dtype_size(e->dtype)) {
      t = tyr_safetensors_load_at(s, file[k], e->name); /* misaligned: a copy */
    } else {
      t = tyr_from_buffer_at(s, (void *)p, e->dtype, e->rank, e->shape);
    }
    if (!t) goto fail;
    tyr_keep_e(t);
    if (dev.type != TYR_CPU) {
      tyr_tensor *d = tyr_to_device_at(s, t, dev);
      tyr_tensor_free(t);
      if (!d) goto fail;
      tyr_keep_e(d);
      t = d;
    }
    *sl[k].dst = t;
  }
  /* device copies do not need the mappings */
  if (dev.type != TYR_CPU) {
    for (int i = 0; i < m->nmaps; i++) munmap(m->maps[i].addr, m->maps[i].len);
    m->nmaps = 0;
  }
  free(data);
  free(sl);
  free(found);
  free(file);
  tyr_safetensors_set_close(set);
  return m;
fail:
  free(data);
  free(sl);
  free(found);
  free(file);
  tyr_safetensors_set_close(set);
  tyr_qwen3_free(m);
  return NULL;
}

/* n values of a weight: uniform with mean 0 and std 0.02 (norms: mean 1,
 * std 0.1), from a hash of (seed, tensor, index): the same on every device
 * and thread count, and fast enough for the 4B's 3 billion weights. */
static inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void random_fill(void *buf, int64_t n, tyr_dtype dt, uint64_t seed, uint64_t tensor,
                        bool norm) {
  const float mean = norm ? 1.0f : 0.0f, half = (norm ? 0.1f : 0.02f) * 1.7320508f;
  uint64_t base = splitmix(seed ^ splitmix(tensor));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float u = (float)(splitmix(base + (uint64_t)i) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
    float v = mean + half * (2 * u - 1);
    if (dt == TYR_F32)
      ((float *)buf)[i] = v;
    else if (dt == TYR_BF16)
      ((uint16_t *)buf)[i] = tyr_f32_to_bf16(v);
    else
      ((uint16_t *)buf)[i] = tyr_f32_to_f16(v);
  }
}

tyr_qwen3 *tyr_qwen3_init_random_at(tyr_site s, const tyr_qwen3_config *c, int64_t max_layers,
                                    uint64_t seed, tyr_dtype storage, tyr_device dev) {
  const char *op = "tyr_qwen3_init_random";
  if (storage != TYR_F32 && storage != TYR_BF16 && storage != TYR_F16) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "storage is %s: it must be f32, bf16 or f16",
              tyr_dtype_name(storage));
    return NULL;
  }
  tyr_qwen3 *m = model_new(s, op, c, max_layers, dev);
  if (!m) return NULL;
  m->storage = storage;
  int64_t ns = n_slots(m);
  qwen3_slot *sl = calloc((size_t)ns, sizeof *sl);
  if (!sl) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    tyr_qwen3_free(m);
    return NULL;
  }
  fill_slots(m, sl);
  int st = 0;
  for (int64_t k = 0; k < ns && !st; k++) {
    if (!sl[k].dst) continue;
    int64_t n = sl[k].shape[0] * (sl[k].rank == 2 ? sl[k].shape[1] : 1);
    void *buf = malloc((size_t)n * tyr_dtype_size(storage));
    if (!buf) {
      st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
      break;
    }
    random_fill(buf, n, storage, seed, (uint64_t)k, sl[k].rank == 1);
    TYR_SCOPE;
    tyr_tensor *t = tyr_from_host_at(s, buf, storage, dev, sl[k].rank, sl[k].shape);
    free(buf);
    if (!t) {
      st = TYR_ERR_MEMORY;
      break;
    }
    *sl[k].dst = tyr_keep_e(t);
  }
  free(sl);
  if (st) {
    tyr_qwen3_free(m);
    return NULL;
  }
  return m;
}

int tyr_qwen3_save_hf_at(tyr_site s, const tyr_qwen3 *m, const char *dir) {
  const char *op = "tyr_qwen3_save_hf";
  if (!m || !dir) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", m ? "dir" : "m");
  if (mkdir(dir, 0777) != 0) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
      return tyr_raise(TYR_ERR_IO, s, dir, "cannot make the directory");
  }
  const tyr_qwen3_config *c = &m->cfg;
  char json[2048];
  int len = snprintf(
      json, sizeof json,
      "{\n  \"architectures\": [\"Qwen3ForCausalLM\"],\n  \"model_type\": \"qwen3\",\n"
      "  \"vocab_size\": %lld,\n  \"hidden_size\": %lld,\n  \"num_hidden_layers\": %lld,\n"
      "  \"num_attention_heads\": %lld,\n  \"num_key_value_heads\": %lld,\n  \"head_dim\": %lld,\n"
      "  \"intermediate_size\": %lld,\n  \"max_position_embeddings\": %lld,\n"
      "  \"rms_norm_eps\": %.17g,\n  \"rope_theta\": %.17g,\n  \"hidden_act\": \"silu\",\n"
      "  \"attention_bias\": false,\n  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": "
      "\"%s\"\n}\n",
      (long long)c->vocab_size, (long long)c->hidden, (long long)c->n_layer, (long long)c->n_head,
      (long long)c->n_kv_head, (long long)c->head_dim, (long long)c->intermediate,
      (long long)c->max_position, c->rms_eps, c->rope_theta,
      c->tie_word_embeddings ? "true" : "false",
      m->storage == TYR_BF16  ? "bfloat16"
      : m->storage == TYR_F16 ? "float16"
                              : "float32");
  int64_t ns = n_slots(m);
  qwen3_slot *sl = calloc((size_t)ns, sizeof *sl);
  const char **names = calloc((size_t)ns, sizeof *names);
  tyr_tensor **ts = calloc((size_t)ns, sizeof *ts);
  int st = 0;
  if (!sl || !names || !ts) {
    st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto done;
  }
  fill_slots((tyr_qwen3 *)m, sl);
  int n = 0;
  for (int64_t k = 0; k < ns; k++) {
    if (!sl[k].dst) continue;
    names[n] = sl[k].name;
    ts[n++] = *sl[k].dst;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if ((st = tyr_safetensors_save_at(s, path, n, names, ts, 0, NULL, NULL))) goto done;
  snprintf(path, sizeof path, "%s/config.json", dir);
  st = tyr_file_write_atomic_at(s, path, json, (size_t)len);
done:
  free(sl);
  free(names);
  free(ts);
  return st;
}

/* ---- forward ----------------------------------------------------------------- */
/* w in the compute dtype (a converted copy in the open scope, or w). */
static tyr_tensor *cw(tyr_site s, tyr_tensor *w, tyr_dtype cd) {
  return w->dtype == cd ? w : tyr_to_dtype_at(s, w, cd);
}

/* Attention of one sequence: q [1, Hq, T, D], k, v [1, Hkv, T, D], keys
 * allowed where key_ok[j] (causal as well).  n_valid >= 0 says the mask is
 * n_valid ones then zeros (right padding): valid queries see the keys
 * before them, padded queries every valid key, both without a mask tensor. */
static tyr_tensor *attend(tyr_site s, tyr_tensor *q, tyr_tensor *k, tyr_tensor *v,
                          const uint8_t *key_ok, int64_t T, int64_t n_valid, tyr_device dev) {
  if (n_valid == T) return tyr_sdpa_at(s, q, k, v, &(tyr_sdpa_opts){.causal = true});
  if (n_valid > 0) {
    tyr_tensor *kv = tyr_narrow_at(s, k, 2, 0, n_valid), *vv = tyr_narrow_at(s, v, 2, 0, n_valid);
    tyr_tensor *a = tyr_sdpa_at(s, tyr_narrow_at(s, q, 2, 0, n_valid), kv, vv,
                                &(tyr_sdpa_opts){.causal = true});
    tyr_tensor *b = tyr_sdpa_at(s, tyr_narrow_at(s, q, 2, n_valid, T - n_valid), kv, vv, NULL);
    if (!a || !b) return NULL;
    return tyr_cat_at(s, 2, (tyr_tensor *[]){a, b}, 2);
  }
  uint8_t *mk = malloc((size_t)(T * T));
  if (!mk) {
    tyr_raise(TYR_ERR_MEMORY, s, OP_HS, "out of host memory");
    return NULL;
  }
  for (int64_t i = 0; i < T; i++)
    for (int64_t j = 0; j < T; j++) mk[i * T + j] = j <= i && key_ok[j];
  tyr_tensor *mask = tyr_from_host_at(s, mk, TYR_U8, dev, 2, (int64_t[]){T, T});
  free(mk);
  if (!mask) return NULL;
  return tyr_sdpa_at(s, q, k, v, &(tyr_sdpa_opts){.causal = true, .mask = mask});
}

/* One decoder layer on x [1, T, H]; the result in the open scope. */
static tyr_tensor *layer_forward(tyr_site s, const tyr_qwen3 *m, const qwen3_layer *L,
                                 tyr_tensor *x, tyr_tensor *cos, tyr_tensor *sin,
                                 const uint8_t *key_ok, int64_t n_valid, tyr_dtype cd) {
  const tyr_qwen3_config *c = &m->cfg;
  int64_t T = x->shape[1], D = c->head_dim, Hq = c->n_head, Hk = c->n_kv_head;
  double eps = c->rms_eps;
  tyr_tensor *h = tyr_rms_norm_at(s, x, cw(s, L->ln1, cd), eps);
  tyr_tensor *q = tyr_linear_at(s, h, cw(s, L->q, cd), NULL);
  tyr_tensor *k = tyr_linear_at(s, h, cw(s, L->k, cd), NULL);
  tyr_tensor *v = tyr_linear_at(s, h, cw(s, L->v, cd), NULL);
  if (!q || !k || !v) return NULL;
  q = tyr_rms_norm_at(s, tyr_reshape_at(s, q, 4, (int64_t[]){1, T, Hq, D}), cw(s, L->q_norm, cd),
                      eps);
  k = tyr_rms_norm_at(s, tyr_reshape_at(s, k, 4, (int64_t[]){1, T, Hk, D}), cw(s, L->k_norm, cd),
                      eps);
  v = tyr_reshape_at(s, v, 4, (int64_t[]){1, T, Hk, D});
  if (!q || !k || !v) return NULL;
  q = tyr_rotary_at(s, tyr_contiguous_at(s, tyr_transpose_at(s, q, 1, 2)), cos, sin);
  k = tyr_rotary_at(s, tyr_contiguous_at(s, tyr_transpose_at(s, k, 1, 2)), cos, sin);
  v = tyr_contiguous_at(s, tyr_transpose_at(s, v, 1, 2));
  if (!q || !k || !v) return NULL;
  tyr_tensor *a = attend(s, q, k, v, key_ok, T, n_valid, m->dev);
  if (!a) return NULL;
  a = tyr_reshape_at(s, tyr_contiguous_at(s, tyr_transpose_at(s, a, 1, 2)), 3,
                     (int64_t[]){1, T, Hq * D});
  x = tyr_add_at(s, x, tyr_linear_at(s, a, cw(s, L->o, cd), NULL));
  if (!x) return NULL;
  h = tyr_rms_norm_at(s, x, cw(s, L->ln2, cd), eps);
  tyr_tensor *g = tyr_silu_at(s, tyr_linear_at(s, h, cw(s, L->gate, cd), NULL));
  tyr_tensor *u = tyr_linear_at(s, h, cw(s, L->up, cd), NULL);
  if (!g || !u) return NULL;
  return tyr_add_at(s, x, tyr_linear_at(s, tyr_mul_at(s, g, u), cw(s, L->down, cd), NULL));
}

/* The states of one sequence (ids [1, T] on the model's device); out[i]
 * gets a new tensor the caller owns (states shared between equal indices
 * are retained once per use). */
static int sequence_states(tyr_site s, tyr_qwen3 *m, tyr_tensor *ids, const uint8_t *key_ok,
                           int64_t n_valid, const int *layers, int n, int top, tyr_tensor **out) {
  tyr_dtype cd = m->dev.type == TYR_CPU ? TYR_F32 : m->storage;
  int64_t T = ids->shape[1];
  tyr_tensor *cos = NULL, *sin = NULL, *x = NULL;
  int st = 0;
  {
    TYR_SCOPE;
    if (tyr_rotary_tables_at(s, T, m->cfg.head_dim, m->cfg.rope_theta, cd, m->dev, &cos, &sin))
      return tyr_error_last() ? (int)tyr_error_last()->status : TYR_ERR_ARG;
    tyr_keep_e(cos);
    tyr_keep_e(sin);
    x = tyr_embedding_at(s, m->embed, ids);
    if (x && x->dtype != cd) x = tyr_to_dtype_at(s, x, cd);
    if (x) tyr_keep_e(x);
  }
  if (!x) {
    st = TYR_ERR_ARG;
    goto done;
  }
  int limit = top < m->cfg.n_layer ? top : (int)m->cfg.n_layer;
  for (int l = 0; l <= limit; l++) {
    if (l > 0) {
      tyr_tensor *y;
      {
        TYR_SCOPE;
        y = layer_forward(s, m, &m->layers[l - 1], x, cos, sin, key_ok, n_valid, cd);
        if (y) tyr_keep_e(y);
      }
      if (!y) {
        st = TYR_ERR_ARG;
        goto done;
      }
      tyr_tensor_free(x);
      x = y;
    }
    for (int i = 0; i < n; i++) /* hidden_states[n_layer] is after the final norm (below) */
      if (layers[i] == l && l < m->cfg.n_layer) out[i] = tyr_tensor_retain(x);
  }
  if (top == m->cfg.n_layer) {
    tyr_tensor *y;
    {
      TYR_SCOPE;
      y = tyr_rms_norm_at(s, x, cw(s, m->norm, cd), m->cfg.rms_eps);
      if (y) tyr_keep_e(y);
    }
    if (!y) {
      st = TYR_ERR_ARG;
      goto done;
    }
    for (int i = 0; i < n; i++)
      if (layers[i] == top) out[i] = tyr_tensor_retain(y);
    tyr_tensor_free(y);
  }
done:
  tyr_tensor_free(x);
  tyr_tensor_free(cos);
  tyr_tensor_free(sin);
  return st;
}

tyr_tensor *tyr_qwen3_hidden_states_at(tyr_site s, tyr_qwen3 *m, tyr_tensor *ids, tyr_tensor *mask,
                                       const int *layers, int n) {
  if (!m || !ids || !layers || n <= 0) {
    tyr_raise(TYR_ERR_ARG, s, OP_HS, "%s",
              !m     ? "m is NULL"
              : !ids ? "ids is NULL"
                     : "layers must name at least one hidden state");
    return NULL;
  }
  char sh[96], sh2[96];
  if (ids->rank != 2 || (ids->dtype != TYR_I32 && ids->dtype != TYR_I64)) {
    tyr_raise(TYR_ERR_SHAPE, s, OP_HS, "ids must be [B, T] of i32 or i64, but it is %s %s",
              tyr_shape_str(ids->shape, ids->rank, sh, sizeof sh), tyr_dtype_name(ids->dtype));
    return NULL;
  }
  int64_t B = ids->shape[0], T = ids->shape[1];
  if (B < 1 || T < 1) {
    tyr_raise(TYR_ERR_SHAPE, s, OP_HS, "ids is %s: it needs at least one token",
              tyr_shape_str(ids->shape, ids->rank, sh, sizeof sh));
    return NULL;
  }
  if (m->cfg.max_position > 0 && T > m->cfg.max_position) {
    tyr_raise(TYR_ERR_SHAPE, s, OP_HS, "%lld tokens is more than max_position %lld", (long long)T,
              (long long)m->cfg.max_position);
    return NULL;
  }
  if (mask && (mask->rank != 2 || mask->shape[0] != B || mask->shape[1] != T ||
               tyr_dtype_is_float(mask->dtype))) {
    tyr_raise(TYR_ERR_SHAPE, s, OP_HS,
              "mask must be ids' shape %s of an integer or bool dtype, "
              "but it is %s %s",
              tyr_shape_str(ids->shape, ids->rank, sh, sizeof sh),
              tyr_shape_str(mask->shape, mask->rank, sh2, sizeof sh2), tyr_dtype_name(mask->dtype));
    return NULL;
  }
  int top = 0;
  for (int i = 0; i < n; i++) {
    int64_t limit = m->n_loaded == m->cfg.n_layer ? m->cfg.n_layer : m->n_loaded;
    if (layers[i] < 0 || layers[i] > limit) {
      tyr_raise(TYR_ERR_ARG, s, OP_HS,
                "hidden state %d does not exist: the model holds %lld of %lld layers, so the "
                "indices run from 0 to %lld",
                layers[i], (long long)m->n_loaded, (long long)m->cfg.n_layer, (long long)limit);
      return NULL;
    }
    if (layers[i] > top) top = layers[i];
  }
  /* ids in range, the mask on the host */
  int64_t *hid = malloc((size_t)(B * T) * sizeof *hid);
  uint8_t *ok = malloc((size_t)(B * T));
  tyr_tensor **states = calloc((size_t)(B * n), sizeof *states);
  tyr_tensor *result = NULL;
  if (!hid || !ok || !states) {
    tyr_raise(TYR_ERR_MEMORY, s, OP_HS, "out of host memory");
    goto done;
  }
  {
    TYR_SCOPE;
    TYR_NO_GRAD;
    tyr_tensor *hi = tyr_to_dtype_at(s, tyr_to_device_at(s, ids, TYR_DEVICE_CPU), TYR_I64);
    if (!hi) goto done;
    memcpy(hid, tyr_data_ptr(tyr_contiguous_at(s, hi)), (size_t)(B * T) * sizeof *hid);
    if (mask) {
      tyr_tensor *hm = tyr_to_dtype_at(s, tyr_to_device_at(s, mask, TYR_DEVICE_CPU), TYR_I64);
      if (!hm) goto done;
      const int64_t *pm = tyr_data_ptr(tyr_contiguous_at(s, hm));
      for (int64_t i = 0; i < B * T; i++) ok[i] = pm[i] != 0;
    } else {
      memset(ok, 1, (size_t)(B * T));
    }
  }
  for (int64_t i = 0; i < B * T; i++)
    if (hid[i] < 0 || hid[i] >= m->cfg.vocab_size) {
      tyr_raise(TYR_ERR_ARG, s, OP_HS, "ids[%lld, %lld] is %lld, outside the vocabulary [0, %lld)",
                (long long)(i / T), (long long)(i % T), (long long)hid[i],
                (long long)m->cfg.vocab_size);
      goto done;
    }
  for (int64_t b = 0; b < B; b++) {
    const uint8_t *kb = ok + b * T;
    int64_t nv = 0;
    while (nv < T && kb[nv]) nv++;
    int64_t j = nv;
    while (j < T && !kb[j]) j++;
    if (j < T || nv == 0 || tyr__qwen3_mask_always)
      nv = -1; /* not right padding: the mask tensor */
    int st;
    {
      TYR_SCOPE;
      TYR_NO_GRAD;
      tyr_tensor *row = tyr_from_host_at(s, hid + b * T, TYR_I64, m->dev, 2, (int64_t[]){1, T});
      st = row ? sequence_states(s, m, row, kb, nv, layers, n, top, states + b * n) : 1;
    }
    if (st) goto done;
  }
  {
    TYR_NO_GRAD;
    if (B == 1) {
      /* made in the caller's scope, like any new tensor */
      result = n == 1 ? tyr_clone_at(s, states[0]) : tyr_cat_at(s, n, states, 2);
    } else {
      tyr_tensor **rows = calloc((size_t)B, sizeof *rows);
      if (!rows) {
        tyr_raise(TYR_ERR_MEMORY, s, OP_HS, "out of host memory");
        goto done;
      }
      bool fine = true;
      for (int64_t b = 0; b < B && fine; b++) {
        TYR_SCOPE;
        rows[b] = n == 1 ? states[b * n] : tyr_cat_at(s, n, states + b * n, 2);
        if (rows[b] && n > 1) tyr_keep_e(rows[b]);
        fine = rows[b] != NULL;
      }
      if (fine) result = tyr_cat_at(s, (int)B, rows, 0);
      if (n > 1)
        for (int64_t b = 0; b < B; b++) tyr_tensor_free(rows[b]);
      free(rows);
    }
  }
done:
  if (states)
    for (int64_t i = 0; i < B * n; i++) tyr_tensor_release(states[i]);
  free(states);
  free(hid);
  free(ok);
  return result;
}
