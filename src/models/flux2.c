/* The FLUX.2 [klein] transformer (tyr/models/flux2.h): configs, parameters
 * under the BFL names, loading of the BFL and diffusers layouts, the
 * forward pass and the sampler's schedule, noise and Euler step. */
#include "tyr/models/flux2.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tyr/safetensors_map.h"
#include "tyr/tyr.h"

bool tyr_flux2_config_named(const char *name, tyr_flux2_config *out) {
  tyr_flux2_config c = {.in_channels = 128, .theta = 2000.0, .eps = 1e-6};
  if (!strcmp(name, "klein-4b")) {
    c.hidden = 3072;
    c.heads = 24;
    c.depth = 5;
    c.depth_single = 20;
    c.context_dim = 7680;
    for (int i = 0; i < 4; i++) c.axes_dim[i] = 32;
  } else if (!strcmp(name, "tiny")) {
    c.hidden = 64;
    c.heads = 2;
    c.depth = 1;
    c.depth_single = 2;
    c.context_dim = 192;
    for (int i = 0; i < 4; i++) c.axes_dim[i] = 8;
  } else {
    return false;
  }
  c.mlp_hidden = 3 * c.hidden;
  snprintf(c.name, sizeof c.name, "%s", name);
  *out = c;
  return true;
}

int tyr_flux2_config_check_at(tyr_site s, const tyr_flux2_config *c) {
  const char *op = "tyr_flux2_config_check";
  if (!c) return tyr_raise(TYR_ERR_ARG, s, op, "config is NULL");
  if (c->hidden <= 0 || c->heads <= 0 || c->depth < 0 || c->depth_single < 0 ||
      c->mlp_hidden <= 0 || c->in_channels <= 0 || c->context_dim <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op,
                     "hidden %lld, heads %lld, mlp_hidden %lld, in_channels %lld and context_dim "
                     "%lld must be positive, depth %lld and depth_single %lld not negative",
                     (long long)c->hidden, (long long)c->heads, (long long)c->mlp_hidden,
                     (long long)c->in_channels, (long long)c->context_dim, (long long)c->depth,
                     (long long)c->depth_single);
  if (c->hidden % c->heads)
    return tyr_raise(TYR_ERR_ARG, s, op, "heads %lld do not divide hidden %lld",
                     (long long)c->heads, (long long)c->hidden);
  int64_t sum = 0;
  for (int i = 0; i < 4; i++) {
    if (c->axes_dim[i] <= 0 || c->axes_dim[i] % 2)
      return tyr_raise(TYR_ERR_ARG, s, op, "axes_dim[%d] is %lld: it must be even and positive", i,
                       (long long)c->axes_dim[i]);
    sum += c->axes_dim[i];
  }
  if (sum != c->hidden / c->heads)
    return tyr_raise(TYR_ERR_ARG, s, op, "axes_dim sum to %lld, not the head dim %lld",
                     (long long)sum, (long long)(c->hidden / c->heads));
  if (!(c->theta > 0) || !(c->eps > 0))
    return tyr_raise(TYR_ERR_ARG, s, op, "theta %g and eps %g must be positive", c->theta, c->eps);
  return 0;
}

/* ---- parameters ------------------------------------------------------------ */
static int add(tyr_site s, tyr_flux2 *m, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add(tyr_site s, tyr_flux2 *m, int64_t rows, int64_t cols, const char *fmt, ...) {
  char name[TYR_PARAM_NAME_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  int64_t shape[2] = {rows, cols};
  tyr_tensor *t = tyr_empty_at(s, m->dtype, m->device, cols ? 2 : 1, shape);
  if (!t) return TYR_ERR_MEMORY;
  if (!tyr_params_add_at(s, &m->params, name, t)) {
    tyr_tensor_free(t);
    return TYR_ERR_ARG;
  }
  t->requires_grad = false;
  return 0;
}

/* Every parameter, uninitialised, in the order of the header. */
static int build(tyr_site s, tyr_flux2 *m, const tyr_flux2_config *cfg, tyr_dtype dt,
                 tyr_device dev) {
  memset(m, 0, sizeof *m);
  int st = tyr_flux2_config_check_at(s, cfg);
  if (st) return st;
  if (!tyr_dtype_is_float(dt))
    return tyr_raise(TYR_ERR_DTYPE, s, "tyr_flux2", "dtype %s is not floating", tyr_dtype_name(dt));
  m->cfg = *cfg;
  m->dtype = dt;
  m->device = dev;
  m->compute = dev.type == TYR_CPU && (dt == TYR_BF16 || dt == TYR_F16) ? TYR_F32 : dt;
  tyr_params_init(&m->params);
  const int64_t D = cfg->hidden, M = cfg->mlp_hidden, hd = D / cfg->heads;
  st = add(s, m, D, cfg->in_channels, "img_in.weight");
  if (!st) st = add(s, m, D, cfg->context_dim, "txt_in.weight");
  if (!st) st = add(s, m, D, 256, "time_in.in_layer.weight");
  if (!st) st = add(s, m, D, D, "time_in.out_layer.weight");
  if (!st) st = add(s, m, 6 * D, D, "double_stream_modulation_img.lin.weight");
  if (!st) st = add(s, m, 6 * D, D, "double_stream_modulation_txt.lin.weight");
  if (!st) st = add(s, m, 3 * D, D, "single_stream_modulation.lin.weight");
  static const char *const stream[2] = {"img", "txt"};
  for (int64_t i = 0; i < cfg->depth && !st; i++)
    for (int k = 0; k < 2 && !st; k++) {
      const char *x = stream[k];
      long long b = (long long)i;
      st = add(s, m, 3 * D, D, "double_blocks.%lld.%s_attn.qkv.weight", b, x);
      if (!st) st = add(s, m, hd, 0, "double_blocks.%lld.%s_attn.norm.query_norm.scale", b, x);
      if (!st) st = add(s, m, hd, 0, "double_blocks.%lld.%s_attn.norm.key_norm.scale", b, x);
      if (!st) st = add(s, m, D, D, "double_blocks.%lld.%s_attn.proj.weight", b, x);
      if (!st) st = add(s, m, 2 * M, D, "double_blocks.%lld.%s_mlp.0.weight", b, x);
      if (!st) st = add(s, m, D, M, "double_blocks.%lld.%s_mlp.2.weight", b, x);
    }
  for (int64_t i = 0; i < cfg->depth_single && !st; i++) {
    long long b = (long long)i;
    st = add(s, m, 3 * D + 2 * M, D, "single_blocks.%lld.linear1.weight", b);
    if (!st) st = add(s, m, D, D + M, "single_blocks.%lld.linear2.weight", b);
    if (!st) st = add(s, m, hd, 0, "single_blocks.%lld.norm.query_norm.scale", b);
    if (!st) st = add(s, m, hd, 0, "single_blocks.%lld.norm.key_norm.scale", b);
  }
  if (!st) st = add(s, m, 2 * D, D, "final_layer.adaLN_modulation.1.weight");
  if (!st) st = add(s, m, cfg->in_channels, D, "final_layer.linear.weight");
  if (st) tyr_flux2_free(m);
  return st;
}

void tyr_flux2_free(tyr_flux2 *m) {
  if (!m) return;
  tyr_params_free(&m->params);
  for (int i = 0; i < m->nmaps; i++) munmap(m->maps[i], m->map_sizes[i]);
  free(m->maps);
  free(m->map_sizes);
  memset(m, 0, sizeof *m);
}

/* CPU parameters whose file tensor has their dtype and shape and goes to
 * them unchanged (a rule without split, merge or transform) become views of
 * the file mapped read-only: nothing is copied, the pages are read as the
 * forward first touches them.  The others stay for the copying loader.
 * src_done[i] marks the source tensors (set order) so used.  0, or the status having raised. */
static int map_params(tyr_site s, tyr_flux2 *m, tyr_safetensors_set *set, const tyr_st_rule *rules,
                      int nrules, bool *src_done) {
  int nf = tyr_safetensors_set_nfiles(set);
  uint8_t **data = calloc((size_t)nf, sizeof *data);
  m->maps = calloc((size_t)nf, sizeof *m->maps);
  m->map_sizes = calloc((size_t)nf, sizeof *m->map_sizes);
  if (!data || !m->maps || !m->map_sizes) {
    free(data);
    return tyr_raise(TYR_ERR_MEMORY, s, "tyr_flux2_load", "out of memory");
  }
  for (int f = 0; f < nf; f++) {
    const char *path = tyr_safetensors_path(tyr_safetensors_set_file(set, f));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    void *p = MAP_FAILED;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= 8)
      p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (fd >= 0) close(fd);
    if (p == MAP_FAILED) continue; /* copied instead */
    m->maps[m->nmaps] = p;
    m->map_sizes[m->nmaps++] = (size_t)st.st_size;
    uint64_t n;
    memcpy(&n, p, 8);
    if (n + 8 <= (uint64_t)st.st_size) data[f] = (uint8_t *)p + 8 + n;
  }
  char out[TYR_PARAM_NAME_MAX * 2];
  for (int i = 0; i < tyr_safetensors_set_count(set); i++) {
    const char *name = tyr_safetensors_set_name(set, i);
    const char *to = NULL;
    for (int r = 0; r < nrules && !to; r++) {
      if (!rules[r].to || !tyr_st_pattern_apply(rules[r].from, rules[r].to, name, out, sizeof out))
        continue;
      if (rules[r].split_n > 1 || rules[r].merge_n > 1 || rules[r].fn) break;
      to = out;
    }
    if (!to && !nrules) to = name;
    tyr_param *pa = to ? tyr_params_find(&m->params, to) : NULL;
    if (!pa) continue;
    const tyr_safetensors_entry *e;
    tyr_safetensors *f = tyr_safetensors_set_find(set, name, &e);
    int fi = 0;
    while (fi < nf && tyr_safetensors_set_file(set, fi) != f) fi++;
    tyr_tensor *t = pa->t;
    if (fi == nf || !data[fi] || e->dtype != t->dtype || e->rank != t->rank ||
        memcmp(e->shape, t->shape, sizeof(int64_t) * (size_t)t->rank) ||
        (uint64_t)tyr_nbytes(t) != e->end - e->begin ||
        ((uintptr_t)(data[fi] + e->begin)) % tyr_dtype_size(t->dtype))
      continue;
    tyr_tensor *v = tyr_from_buffer_at(s, data[fi] + e->begin, t->dtype, t->rank, t->shape);
    if (!v) continue;
    tyr_keep_e(v);
    v->requires_grad = false;
    tyr_tensor_free(t);
    pa->t = v;
    src_done[i] = true;
  }
  free(data);
  return 0;
}

tyr_tensor *tyr_flux2_param(const tyr_flux2 *m, const char *name) {
  tyr_param *p = tyr_params_find(&m->params, name);
  return p ? p->t : NULL;
}

int tyr_flux2_init_random_at(tyr_site s, tyr_flux2 *m, const tyr_flux2_config *cfg, tyr_dtype dtype,
                             tyr_device dev, uint64_t seed) {
  int st = build(s, m, cfg, dtype, dev);
  if (st) return st;
  tyr_rng_state saved = tyr_rng_get_state();
  tyr_manual_seed(seed);
  for (int i = 0; i < m->params.n && !st; i++) {
    TYR_SCOPE;
    tyr_tensor *p = m->params.items[i].t;
    tyr_tensor *v = p->rank == 1 ? tyr_ones_at(s, dtype, dev, 1, p->shape)
                                 : tyr_randn_at(s, dtype, dev, 2, p->shape, 0.0,
                                                1.0 / sqrt((double)p->shape[1]));
    st = v ? tyr_copy_at(s, p, v) : TYR_ERR_MEMORY;
  }
  tyr_rng_set_state(saved);
  if (st) tyr_flux2_free(m);
  return st;
}

/* ---- loading ------------------------------------------------------------------ */
/* diffusers' names onto BFL's (merge: the slot of q, k, v in qkv) */
static const tyr_st_rule DIFFUSERS[] = {
    {.from = "x_embedder.weight", .to = "img_in.weight"},
    {.from = "context_embedder.weight", .to = "txt_in.weight"},
    {.from = "time_guidance_embed.timestep_embedder.linear_1.weight",
     .to = "time_in.in_layer.weight"},
    {.from = "time_guidance_embed.timestep_embedder.linear_2.weight",
     .to = "time_in.out_layer.weight"},
    {.from = "double_stream_modulation_img.linear.weight",
     .to = "double_stream_modulation_img.lin.weight"},
    {.from = "double_stream_modulation_txt.linear.weight",
     .to = "double_stream_modulation_txt.lin.weight"},
    {.from = "single_stream_modulation.linear.weight", .to = "single_stream_modulation.lin.weight"},
    {.from = "transformer_blocks.*.attn.to_q.weight",
     .to = "double_blocks.*.img_attn.qkv.weight",
     .merge_n = 3,
     .merge_i = 0},
    {.from = "transformer_blocks.*.attn.to_k.weight",
     .to = "double_blocks.*.img_attn.qkv.weight",
     .merge_n = 3,
     .merge_i = 1},
    {.from = "transformer_blocks.*.attn.to_v.weight",
     .to = "double_blocks.*.img_attn.qkv.weight",
     .merge_n = 3,
     .merge_i = 2},
    {.from = "transformer_blocks.*.attn.norm_q.weight",
     .to = "double_blocks.*.img_attn.norm.query_norm.scale"},
    {.from = "transformer_blocks.*.attn.norm_k.weight",
     .to = "double_blocks.*.img_attn.norm.key_norm.scale"},
    {.from = "transformer_blocks.*.attn.to_out.0.weight",
     .to = "double_blocks.*.img_attn.proj.weight"},
    {.from = "transformer_blocks.*.attn.add_q_proj.weight",
     .to = "double_blocks.*.txt_attn.qkv.weight",
     .merge_n = 3,
     .merge_i = 0},
    {.from = "transformer_blocks.*.attn.add_k_proj.weight",
     .to = "double_blocks.*.txt_attn.qkv.weight",
     .merge_n = 3,
     .merge_i = 1},
    {.from = "transformer_blocks.*.attn.add_v_proj.weight",
     .to = "double_blocks.*.txt_attn.qkv.weight",
     .merge_n = 3,
     .merge_i = 2},
    {.from = "transformer_blocks.*.attn.norm_added_q.weight",
     .to = "double_blocks.*.txt_attn.norm.query_norm.scale"},
    {.from = "transformer_blocks.*.attn.norm_added_k.weight",
     .to = "double_blocks.*.txt_attn.norm.key_norm.scale"},
    {.from = "transformer_blocks.*.attn.to_add_out.weight",
     .to = "double_blocks.*.txt_attn.proj.weight"},
    {.from = "transformer_blocks.*.ff.linear_in.weight", .to = "double_blocks.*.img_mlp.0.weight"},
    {.from = "transformer_blocks.*.ff.linear_out.weight", .to = "double_blocks.*.img_mlp.2.weight"},
    {.from = "transformer_blocks.*.ff_context.linear_in.weight",
     .to = "double_blocks.*.txt_mlp.0.weight"},
    {.from = "transformer_blocks.*.ff_context.linear_out.weight",
     .to = "double_blocks.*.txt_mlp.2.weight"},
    {.from = "single_transformer_blocks.*.attn.to_qkv_mlp_proj.weight",
     .to = "single_blocks.*.linear1.weight"},
    {.from = "single_transformer_blocks.*.attn.to_out.weight",
     .to = "single_blocks.*.linear2.weight"},
    {.from = "single_transformer_blocks.*.attn.norm_q.weight",
     .to = "single_blocks.*.norm.query_norm.scale"},
    {.from = "single_transformer_blocks.*.attn.norm_k.weight",
     .to = "single_blocks.*.norm.key_norm.scale"},
    /* diffusers keeps (scale, shift), BFL (shift, scale) */
    {.from = "norm_out.linear.weight",
     .to = "final_layer.adaLN_modulation.1.weight",
     .split_n = 2,
     .split_i = 0,
     .merge_n = 2,
     .merge_i = 1},
    {.from = "norm_out.linear.weight",
     .to = "final_layer.adaLN_modulation.1.weight",
     .split_n = 2,
     .split_i = 1,
     .merge_n = 2,
     .merge_i = 0},
    {.from = "proj_out.weight", .to = "final_layer.linear.weight"},
};
enum { NDIFFUSERS = sizeof DIFFUSERS / sizeof DIFFUSERS[0] };

/* Lists, before anything is read, the destination parameters nothing fills
 * and the source tensors nothing takes (at most a few of each by name). */
int tyr__flux2_check_names_at(tyr_site s, const char *what, tyr_safetensors_set *set,
                              tyr_params *dst, const tyr_st_rule *rules, int nrules,
                              const char *const *skip_prefixes);
int tyr__flux2_check_names_at(tyr_site s, const char *what, tyr_safetensors_set *set,
                              tyr_params *dst, const tyr_st_rule *rules, int nrules,
                              const char *const *skip_prefixes) {
  int *filled = calloc((size_t)dst->n + 1, sizeof *filled);
  int *needed = calloc((size_t)dst->n + 1, sizeof *needed);
  if (!filled || !needed) {
    free(filled);
    free(needed);
    return tyr_raise(TYR_ERR_MEMORY, s, what, "out of memory");
  }
  for (int i = 0; i < dst->n; i++) needed[i] = 1;
  char unexpected[1024] = "", missing[1024] = "", out[TYR_PARAM_NAME_MAX * 2];
  int nun = 0, nmiss = 0;
  int nsrc = tyr_safetensors_set_count(set);
  for (int i = 0; i < nsrc; i++) {
    const char *name = tyr_safetensors_set_name(set, i);
    bool used = false;
    for (int k = 0; skip_prefixes && skip_prefixes[k] && !used; k++)
      used = !strncmp(name, skip_prefixes[k], strlen(skip_prefixes[k]));
    if (used) continue;
    const tyr_safetensors_entry *e = NULL;
    tyr_safetensors *file = tyr_safetensors_set_find(set, name, &e);
    if (file && e && !tyr_dtype_is_float(e->dtype)) {
      free(filled);
      free(needed);
      return tyr_raise(TYR_ERR_DTYPE, s, what, "%s: tensor %s is %s: weights must be floating",
                       tyr_safetensors_path(file), name, tyr_dtype_name(e->dtype));
    }
    for (int r = 0; r < nrules; r++) {
      if (!tyr_st_pattern_apply(rules[r].from, rules[r].to ? rules[r].to : "", name, out,
                                sizeof out))
        continue;
      used = true;
      if (!rules[r].to) continue;
      tyr_param *p = tyr_params_find(dst, out);
      if (!p) continue;
      int k = (int)(p - dst->items);
      filled[k]++;
      if (rules[r].merge_n > 1) needed[k] = rules[r].merge_n;
    }
    if (!used) {
      tyr_param *p = tyr_params_find(dst, name);
      if (p) {
        filled[p - dst->items]++;
        used = true;
      }
    }
    if (!used) {
      if (nun < 8) {
        size_t l = strlen(unexpected);
        snprintf(unexpected + l, sizeof unexpected - l, "%s%s", nun ? ", " : "", name);
      }
      nun++;
    }
  }
  for (int i = 0; i < dst->n; i++)
    if (filled[i] < needed[i]) {
      if (nmiss < 8) {
        size_t l = strlen(missing);
        snprintf(missing + l, sizeof missing - l, "%s%s", nmiss ? ", " : "", dst->items[i].name);
      }
      nmiss++;
    }
  free(filled);
  free(needed);
  if (!nun && !nmiss) return 0;
  return tyr_raise(TYR_ERR_FORMAT, s, what, "%s: %d tensor(s) missing%s%s%s, %d unexpected%s%s%s",
                   tyr_safetensors_path(tyr_safetensors_set_file(set, 0)), nmiss, nmiss ? " (" : "",
                   missing,
                   nmiss > 8 ? ", ...)"
                   : nmiss   ? ")"
                             : "",
                   nun, nun ? " (" : "", unexpected,
                   nun > 8 ? ", ...)"
                   : nun   ? ")"
                           : "");
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The safetensors file or index a diffusers component directory holds
 * (diffusion_pytorch_model[.safetensors.index.json]); dir itself otherwise. */
void tyr__flux2_component_path(const char *dir, char *out, size_t n);
void tyr__flux2_component_path(const char *dir, char *out, size_t n) {
  static const char *const names[] = {"diffusion_pytorch_model.safetensors.index.json",
                                      "diffusion_pytorch_model.safetensors"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(out, n, "%s/%s", dir, names[i]);
    if (is_file(out)) return;
  }
  snprintf(out, n, "%s", dir);
}

/* The weights at path (a file, a diffusers transformer/ directory or a
 * model root holding one) and whether they have diffusers' names. */
static tyr_safetensors_set *open_weights(tyr_site s, const char *op, const char *path,
                                         bool *diffusers) {
  char where[4096], sub[4096];
  snprintf(where, sizeof where, "%s", path);
  if (is_dir(path)) {
    snprintf(sub, sizeof sub, "%s/transformer", path);
    tyr__flux2_component_path(is_dir(sub) ? sub : path, where, sizeof where);
  } else if (!is_file(path)) {
    tyr_raise(TYR_ERR_IO, s, path, "%s: no such file or directory", op);
    return NULL;
  }
  tyr_safetensors_set *set = tyr_safetensors_set_open_at(s, where);
  if (!set) return NULL;
  *diffusers = false;
  for (int i = 0; i < tyr_safetensors_set_count(set) && !*diffusers; i++) {
    const char *n = tyr_safetensors_set_name(set, i);
    *diffusers = !strncmp(n, "transformer_blocks.", 19) || !strcmp(n, "x_embedder.weight");
  }
  return set;
}

/* dim d of the tensor called name (-1 when absent or of lower rank) */
static int64_t dim_of(tyr_safetensors_set *set, const char *name, int d) {
  const tyr_safetensors_entry *e = NULL;
  if (!tyr_safetensors_set_find(set, name, &e) || !e || e->rank <= d) return -1;
  return e->shape[d];
}
/* 1 + the largest N of names "<prefix>N." */
static int64_t count_blocks(tyr_safetensors_set *set, const char *prefix) {
  int64_t n = 0;
  size_t l = strlen(prefix);
  for (int i = 0; i < tyr_safetensors_set_count(set); i++) {
    const char *name = tyr_safetensors_set_name(set, i);
    long long k;
    if (!strncmp(name, prefix, l) && sscanf(name + l, "%lld.", &k) == 1 && k + 1 > n) n = k + 1;
  }
  return n;
}

int tyr_flux2_config_from_weights_at(tyr_site s, const char *path, tyr_flux2_config *out) {
  const char *op = "tyr_flux2_config_from_weights";
  if (!path || !out) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", path ? "out" : "path");
  bool df = false;
  tyr_safetensors_set *set = open_weights(s, op, path, &df);
  if (!set) return TYR_ERR_IO;
  tyr_flux2_config c;
  tyr_flux2_config_named("klein-4b", &c);
  c.hidden = dim_of(set, df ? "x_embedder.weight" : "img_in.weight", 0);
  c.in_channels = dim_of(set, df ? "x_embedder.weight" : "img_in.weight", 1);
  c.context_dim = dim_of(set, df ? "context_embedder.weight" : "txt_in.weight", 1);
  c.depth = count_blocks(set, df ? "transformer_blocks." : "double_blocks.");
  c.depth_single = count_blocks(set, df ? "single_transformer_blocks." : "single_blocks.");
  int64_t hd = dim_of(set,
                      df ? "single_transformer_blocks.0.attn.norm_q.weight"
                         : "single_blocks.0.norm.query_norm.scale",
                      0);
  if (hd < 0)
    hd = dim_of(set,
                df ? "transformer_blocks.0.attn.norm_q.weight"
                   : "double_blocks.0.img_attn.norm.query_norm.scale",
                0);
  int64_t l2 = dim_of(
      set, df ? "single_transformer_blocks.0.attn.to_out.weight" : "single_blocks.0.linear2.weight",
      1);
  int64_t m2 = dim_of(
      set, df ? "transformer_blocks.0.ff.linear_out.weight" : "double_blocks.0.img_mlp.2.weight",
      1);
  c.mlp_hidden = m2 > 0 ? m2 : l2 - c.hidden;
  const char *file = tyr_safetensors_path(tyr_safetensors_set_file(set, 0));
  int st = 0;
  if (c.hidden <= 0 || c.context_dim <= 0 || hd <= 0 || hd % 8 || c.mlp_hidden <= 0) {
    st =
        tyr_raise(TYR_ERR_FORMAT, s, op,
                  "%s: not FLUX.2 transformer weights (img_in/x_embedder, txt_in/context_embedder, "
                  "the blocks' query norms or MLPs are missing)",
                  file);
  } else {
    c.heads = c.hidden / hd;
    for (int i = 0; i < 4; i++) c.axes_dim[i] = hd / 4;
    tyr_flux2_config k4;
    tyr_flux2_config_named("klein-4b", &k4);
    if (memcmp(&c, &k4, sizeof c) != 0) {
      memset(c.name, 0, sizeof c.name);
      snprintf(c.name, sizeof c.name, "custom");
    }
    st = tyr_flux2_config_check_at(s, &c);
    if (!st) *out = c;
  }
  tyr_safetensors_set_close(set);
  return st;
}

int tyr_flux2_load_at(tyr_site s, tyr_flux2 *m, const char *path, const tyr_flux2_config *cfg,
                      tyr_dtype dtype, tyr_device dev) {
  const char *op = "tyr_flux2_load";
  if (!m || !path) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", m ? "path" : "m");
  memset(m, 0, sizeof *m);
  bool diffusers = false;
  tyr_safetensors_set *set = open_weights(s, op, path, &diffusers);
  if (!set) return TYR_ERR_IO;
  int st = build(s, m, cfg, dtype, dev);
  if (st) goto done;
  const tyr_st_rule *rules = diffusers ? DIFFUSERS : NULL;
  int nrules = diffusers ? NDIFFUSERS : 0;
  tyr_st_rule cast[NDIFFUSERS];
  for (int i = 0; i < nrules; i++) {
    cast[i] = rules[i];
    cast[i].flags |= TYR_ST_CAST;
  }
  st = tyr__flux2_check_names_at(s, op, set, &m->params, cast, nrules, NULL);
  const int nsrc = tyr_safetensors_set_count(set);
  bool *mapped = st ? NULL : calloc((size_t)nsrc + 1, sizeof *mapped);
  if (!st && !mapped) st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of memory");
  if (!st && dev.type == TYR_CPU) st = map_params(s, m, set, cast, nrules, mapped);
  if (!st) {
    /* the rest copied, by exact source names: a mapped tensor is skipped
       (its parameter is a read-only view of the file), any other goes
       through the diffusers rules that match it or to the parameter of its
       own name, cast (bf16 files stay bf16, others become dtype) */
    const size_t cap = (size_t)nsrc * (size_t)(nrules + 1) + 1;
    tyr_st_rule *rest = calloc(cap, sizeof *rest);
    char(*dst)[TYR_PARAM_NAME_MAX * 2] = calloc(cap, sizeof *dst);
    int nr = 0;
    if (!rest || !dst) {
      st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of memory");
    } else {
      char out[TYR_PARAM_NAME_MAX * 2];
      for (int i = 0; i < nsrc; i++) {
        const char *name = tyr_safetensors_set_name(set, i);
        if (mapped[i]) {
          rest[nr++] = (tyr_st_rule){.from = name, .to = NULL};
          continue;
        }
        int before = nr;
        for (int r = 0; r < nrules; r++)
          if (tyr_st_pattern_apply(cast[r].from, cast[r].to, name, out, sizeof out)) {
            snprintf(dst[nr], sizeof dst[nr], "%s", out);
            rest[nr] = cast[r];
            rest[nr].from = name;
            rest[nr].to = dst[nr];
            nr++;
          }
        if (nr == before)
          rest[nr++] = (tyr_st_rule){.from = name, .to = name, .flags = TYR_ST_CAST};
      }
      /* names and counts were checked above: what is mapped is neither
         missing nor unused */
      st = tyr_safetensors_load_mapped_at(s, set, &m->params, rest, nr, TYR_ST_ALLOW_MISSING);
    }
    free(rest);
    free(dst);
  }
  free(mapped);
  if (st) tyr_flux2_free(m);
done:
  tyr_safetensors_set_close(set);
  return st;
}

/* ---- forward -------------------------------------------------------------------- */
static tyr_tensor *W(const tyr_flux2 *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static tyr_tensor *W(const tyr_flux2 *m, const char *fmt, ...) {
  char name[TYR_PARAM_NAME_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  tyr_tensor *p = tyr_flux2_param(m, name);
  /* bf16 storage on the CPU: converted for this block (the caller's scope) */
  return p && p->dtype != m->compute ? tyr_to_dtype_at(TYR_SITE, p, m->compute) : p;
}

/* x [B, T, D] broadcast-multiplied by v [B, D] (each batch row over T) */
static tyr_tensor *bcast(tyr_site s, tyr_tensor *v, const tyr_tensor *x) {
  tyr_tensor *u = tyr_unsqueeze_at(s, v, 1);
  return u ? tyr_expand_at(s, u, 3, x->shape) : NULL;
}
/* (1 + scale) * LN(x) + shift */
static tyr_tensor *modulate(tyr_site s, const tyr_flux2 *m, tyr_tensor *x, tyr_tensor *shift,
                            tyr_tensor *scale) {
  tyr_tensor *n = tyr_layer_norm_at(s, x, NULL, NULL, m->cfg.eps);
  if (!n) return NULL;
  tyr_tensor *y = tyr_mul_at(s, n, bcast(s, tyr_add_scalar_at(s, scale, 1.0), n));
  return y ? tyr_add_at(s, y, bcast(s, shift, y)) : NULL;
}
/* x + gate * y */
static tyr_tensor *gated(tyr_site s, tyr_tensor *x, tyr_tensor *gate, tyr_tensor *y) {
  if (!y) return NULL;
  tyr_tensor *g = tyr_mul_at(s, y, bcast(s, gate, y));
  return g ? tyr_add_at(s, x, g) : NULL;
}
/* silu(a) * b with [a, b] the halves of the last dim */
static tyr_tensor *swiglu(tyr_site s, tyr_tensor *h) {
  int64_t M = h->shape[h->rank - 1] / 2;
  tyr_tensor *a = tyr_narrow_at(s, h, -1, 0, M), *b = tyr_narrow_at(s, h, -1, M, M);
  return a && b ? tyr_mul_at(s, tyr_silu_at(s, a), b) : NULL;
}

/* q, k or v (which 0..2) of a packed qkv [B, T, 3D] as [B, T, H, hd] */
static tyr_tensor *head_split(tyr_site s, const tyr_flux2 *m, tyr_tensor *qkv, int which) {
  const int64_t D = m->cfg.hidden, H = m->cfg.heads;
  tyr_tensor *x = tyr_narrow_at(s, qkv, -1, which * D, D);
  if (!x) return NULL;
  int64_t shape[4] = {qkv->shape[0], qkv->shape[1], H, D / H};
  return tyr_reshape_at(s, tyr_contiguous_at(s, x), 4, shape);
}
/* [B, T, H, hd] -> [B, H, T, hd] with the pairs (2i, 2i+1) of the head dim
 * laid out as halves (evens, then odds), so that rotate-half rotary with
 * per-pair tables rotates each adjacent pair as FLUX does; q and k both get
 * it, so their dot products are unchanged. */
static tyr_tensor *deinterleave(tyr_site s, tyr_tensor *x) {
  const int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], hd = x->shape[3];
  int64_t s5[5] = {B, T, H, hd / 2, 2};
  tyr_tensor *y = tyr_reshape_at(s, tyr_contiguous_at(s, x), 5, s5);
  if (!y) return NULL;
  y = tyr_contiguous_at(s, tyr_permute_n_at(s, y, 5, (const int[]){0, 2, 1, 4, 3}));
  int64_t s4[4] = {B, H, T, hd};
  return y ? tyr_reshape_at(s, y, 4, s4) : NULL;
}
static tyr_tensor *heads_first(tyr_site s, tyr_tensor *x) {
  return tyr_contiguous_at(s, tyr_permute_n_at(s, x, 4, (const int[]){0, 2, 1, 3}));
}

/* Attention over q, k, v [B, T, H, hd] (q, k already normed) with the
 * rotary tables cos/sin [T, hd/2] -> [B, T, D] */
static tyr_tensor *attention(tyr_site s, tyr_tensor *q, tyr_tensor *k, tyr_tensor *v,
                             tyr_tensor *rcos, tyr_tensor *rsin) {
  tyr_tensor *qr = tyr_rotary_at(s, deinterleave(s, q), rcos, rsin);
  tyr_tensor *kr = tyr_rotary_at(s, deinterleave(s, k), rcos, rsin);
  tyr_tensor *vh = heads_first(s, v);
  if (!qr || !kr || !vh) return NULL;
  tyr_tensor *o = tyr_sdpa_at(s, qr, kr, vh, NULL); /* [B, H, T, hd] */
  if (!o) return NULL;
  tyr_tensor *ot = tyr_contiguous_at(s, tyr_permute_n_at(s, o, 4, (const int[]){0, 2, 1, 3}));
  int64_t shape[3] = {q->shape[0], q->shape[1], q->shape[2] * q->shape[3]};
  return ot ? tyr_reshape_at(s, ot, 3, shape) : NULL;
}

/* The rotary tables of the L text tokens followed by the h w image tokens:
 * pair i of the head dim belongs to axis a (axes_dim[a] / 2 pairs each) and
 * turns by pos[a] * theta^(-2 j / axes_dim[a]), j its index in the axis. */
static int rope_tables(tyr_site s, const tyr_flux2 *m, int64_t L, int64_t h, int64_t w,
                       tyr_tensor **cos_out, tyr_tensor **sin_out) {
  const tyr_flux2_config *c = &m->cfg;
  const int64_t T = L + h * w, P = c->hidden / c->heads / 2;
  float *cs = malloc(sizeof(float) * (size_t)(T * P) * 2);
  if (!cs) return tyr_raise(TYR_ERR_MEMORY, s, "tyr_flux2_forward", "out of memory");
  float *sn = cs + T * P;
  for (int64_t t = 0; t < T; t++) {
    int64_t pos[4] = {0, 0, 0, 0};
    if (t < L)
      pos[3] = t;
    else
      pos[1] = (t - L) / w, pos[2] = (t - L) % w;
    int64_t i = 0;
    for (int a = 0; a < 4; a++)
      for (int64_t j = 0; j < c->axes_dim[a] / 2; j++, i++) {
        double f = pow(c->theta, -2.0 * (double)j / (double)c->axes_dim[a]);
        double ang = (double)pos[a] * f;
        cs[t * P + i] = (float)cos(ang);
        sn[t * P + i] = (float)sin(ang);
      }
  }
  int64_t shape[2] = {T, P};
  tyr_tensor *a = tyr_from_host_at(s, cs, TYR_F32, m->device, 2, shape);
  tyr_tensor *b = tyr_from_host_at(s, sn, TYR_F32, m->device, 2, shape);
  free(cs);
  if (!a || !b) return TYR_ERR_MEMORY;
  *cos_out = tyr_to_dtype_at(s, a, m->compute);
  *sin_out = tyr_to_dtype_at(s, b, m->compute);
  return *cos_out && *sin_out ? 0 : TYR_ERR_MEMORY;
}

/* cat(t * 1000 * freqs) as [cos, sin], 256 wide, freqs_i = 10000^(-i/128) */
static tyr_tensor *time_embedding(tyr_site s, const tyr_flux2 *m, tyr_tensor *t) {
  const int64_t B = t->shape[0];
  float *tv = malloc(sizeof(float) * (size_t)B);
  if (!tv) return NULL;
  /* t in the model's dtype first, as the reference does */
  tyr_tensor *tc = tyr_to_dtype_at(
      s, tyr_to_dtype_at(s, tyr_to_device_at(s, t, TYR_DEVICE_CPU), m->dtype), TYR_F32);
  if (!tc || tyr_to_host_at(s, tyr_contiguous_at(s, tc), tv, sizeof(float) * (size_t)B)) {
    free(tv);
    return NULL;
  }
  tyr_tensor *out = NULL;
  float *emb = malloc(sizeof(float) * (size_t)B * 256);
  if (emb) {
    for (int64_t b = 0; b < B; b++)
      for (int i = 0; i < 128; i++) {
        double arg = (double)tv[b] * 1000.0 * exp(-log(10000.0) * i / 128.0);
        emb[b * 256 + i] = (float)cos(arg);
        emb[b * 256 + 128 + i] = (float)sin(arg);
      }
    int64_t shape[2] = {B, 256};
    out = tyr_to_dtype_at(s, tyr_from_host_at(s, emb, TYR_F32, m->device, 2, shape), m->compute);
    free(emb);
  }
  free(tv);
  return out;
}

/* the n chunks of v [B, n D] */
static int chunks(tyr_site s, tyr_tensor *v, int n, int64_t D, tyr_tensor **out) {
  for (int i = 0; i < n; i++)
    if (!(out[i] = tyr_narrow_at(s, v, 1, i * D, D))) return TYR_ERR_SHAPE;
  return 0;
}

/* double block i on the streams x (image) and y (text); 0 or an error */
static int double_block(tyr_site s, tyr_flux2 *m, int64_t i, tyr_tensor *x, tyr_tensor *y,
                        tyr_tensor *const *mi, tyr_tensor *const *mt, tyr_tensor *rcos,
                        tyr_tensor *rsin, tyr_tensor **xo, tyr_tensor **yo) {
  const tyr_flux2_config *c = &m->cfg;
  const int64_t N = x->shape[1], L = y->shape[1];
  long long b = (long long)i;
  tyr_tensor *xq = tyr_linear_at(s, modulate(s, m, x, mi[0], mi[1]),
                                 W(m, "double_blocks.%lld.img_attn.qkv.weight", b), NULL);
  tyr_tensor *yq = tyr_linear_at(s, modulate(s, m, y, mt[0], mt[1]),
                                 W(m, "double_blocks.%lld.txt_attn.qkv.weight", b), NULL);
  if (!xq || !yq) return TYR_ERR_SHAPE;
  tyr_tensor *q[2], *k[2], *v[2];
  tyr_tensor *qkvs[2] = {yq, xq}; /* text first */
  static const char *const stream[2] = {"txt", "img"};
  for (int j = 0; j < 2; j++) {
    q[j] = tyr_rms_norm_at(s, head_split(s, m, qkvs[j], 0),
                           W(m, "double_blocks.%lld.%s_attn.norm.query_norm.scale", b, stream[j]),
                           c->eps);
    k[j] = tyr_rms_norm_at(s, head_split(s, m, qkvs[j], 1),
                           W(m, "double_blocks.%lld.%s_attn.norm.key_norm.scale", b, stream[j]),
                           c->eps);
    v[j] = head_split(s, m, qkvs[j], 2);
    if (!q[j] || !k[j] || !v[j]) return TYR_ERR_SHAPE;
  }
  tyr_tensor *a = attention(s, tyr_cat_at(s, 2, q, 1), tyr_cat_at(s, 2, k, 1),
                            tyr_cat_at(s, 2, v, 1), rcos, rsin);
  if (!a) return TYR_ERR_SHAPE;
  tyr_tensor *ya = tyr_narrow_at(s, a, 1, 0, L), *xa = tyr_narrow_at(s, a, 1, L, N);
  x = gated(s, x, mi[2],
            tyr_linear_at(s, xa, W(m, "double_blocks.%lld.img_attn.proj.weight", b), NULL));
  x = gated(
      s, x, mi[5],
      tyr_linear_at(s,
                    swiglu(s, tyr_linear_at(s, modulate(s, m, x, mi[3], mi[4]),
                                            W(m, "double_blocks.%lld.img_mlp.0.weight", b), NULL)),
                    W(m, "double_blocks.%lld.img_mlp.2.weight", b), NULL));
  y = gated(s, y, mt[2],
            tyr_linear_at(s, ya, W(m, "double_blocks.%lld.txt_attn.proj.weight", b), NULL));
  y = gated(
      s, y, mt[5],
      tyr_linear_at(s,
                    swiglu(s, tyr_linear_at(s, modulate(s, m, y, mt[3], mt[4]),
                                            W(m, "double_blocks.%lld.txt_mlp.0.weight", b), NULL)),
                    W(m, "double_blocks.%lld.txt_mlp.2.weight", b), NULL));
  if (!x || !y) return TYR_ERR_SHAPE;
  *xo = x;
  *yo = y;
  return 0;
}

/* single block i on x = [txt, img] */
static tyr_tensor *single_block(tyr_site s, tyr_flux2 *m, int64_t i, tyr_tensor *x,
                                tyr_tensor *const *ms, tyr_tensor *rcos, tyr_tensor *rsin) {
  const tyr_flux2_config *c = &m->cfg;
  const int64_t D = c->hidden, M = c->mlp_hidden;
  long long b = (long long)i;
  tyr_tensor *h = tyr_linear_at(s, modulate(s, m, x, ms[0], ms[1]),
                                W(m, "single_blocks.%lld.linear1.weight", b), NULL);
  if (!h) return NULL;
  tyr_tensor *qkv = tyr_narrow_at(s, h, -1, 0, 3 * D);
  tyr_tensor *q = tyr_rms_norm_at(s, head_split(s, m, qkv, 0),
                                  W(m, "single_blocks.%lld.norm.query_norm.scale", b), c->eps);
  tyr_tensor *k = tyr_rms_norm_at(s, head_split(s, m, qkv, 1),
                                  W(m, "single_blocks.%lld.norm.key_norm.scale", b), c->eps);
  tyr_tensor *a = attention(s, q, k, head_split(s, m, qkv, 2), rcos, rsin);
  tyr_tensor *mlp = swiglu(s, tyr_narrow_at(s, h, -1, 3 * D, 2 * M));
  if (!a || !mlp) return NULL;
  tyr_tensor *o = tyr_linear_at(s, tyr_cat_at(s, 2, (tyr_tensor *[]){a, mlp}, 2),
                                W(m, "single_blocks.%lld.linear2.weight", b), NULL);
  return gated(s, x, ms[2], o);
}

/* Runs in the caller's scope; the blocks' temporaries are freed block by
 * block (kept tensors are freed once the next block has used them). */
static tyr_tensor *forward(tyr_site s, tyr_flux2 *m, tyr_tensor *img, tyr_tensor *txt,
                           tyr_tensor *t, int64_t h, int64_t w) {
  const tyr_flux2_config *c = &m->cfg;
  const int64_t D = c->hidden, N = img->shape[1], L = txt->shape[1];
  tyr_tensor *temb = time_embedding(s, m, t);
  if (!temb) return NULL;
  tyr_tensor *vec = tyr_linear_at(
      s, tyr_silu_at(s, tyr_linear_at(s, temb, W(m, "time_in.in_layer.weight"), NULL)),
      W(m, "time_in.out_layer.weight"), NULL);
  tyr_tensor *svec = tyr_silu_at(s, vec);
  if (!svec) return NULL;
  tyr_tensor *mi[6], *mt[6], *ms[3], *fm[2];
  if (chunks(s, tyr_linear_at(s, svec, W(m, "double_stream_modulation_img.lin.weight"), NULL), 6, D,
             mi) ||
      chunks(s, tyr_linear_at(s, svec, W(m, "double_stream_modulation_txt.lin.weight"), NULL), 6, D,
             mt) ||
      chunks(s, tyr_linear_at(s, svec, W(m, "single_stream_modulation.lin.weight"), NULL), 3, D,
             ms) ||
      chunks(s, tyr_linear_at(s, svec, W(m, "final_layer.adaLN_modulation.1.weight"), NULL), 2, D,
             fm))
    return NULL;
  tyr_tensor *rcos = NULL, *rsin = NULL;
  if (rope_tables(s, m, L, h, w, &rcos, &rsin)) return NULL;
  tyr_tensor *x = tyr_linear_at(s, img, W(m, "img_in.weight"), NULL);
  tyr_tensor *y = tyr_linear_at(s, txt, W(m, "txt_in.weight"), NULL);
  if (!x || !y) return NULL;
  bool kept = false; /* x and y are the caller's (kept) rather than the scope's */
  for (int64_t i = 0; i < c->depth; i++) {
    tyr_scope_begin();
    tyr_tensor *nx = NULL, *ny = NULL;
    int st = double_block(s, m, i, x, y, mi, mt, rcos, rsin, &nx, &ny);
    if (!st) {
      tyr_keep_e(nx);
      tyr_keep_e(ny);
    }
    tyr_scope_end();
    if (kept) {
      tyr_tensor_free(x);
      tyr_tensor_free(y);
    }
    if (st) return NULL;
    x = nx;
    y = ny;
    kept = true;
  }
  tyr_tensor *xs = tyr_cat_at(s, 2, (tyr_tensor *[]){y, x}, 1);
  if (kept) {
    tyr_tensor_free(x);
    tyr_tensor_free(y);
  }
  if (!xs) return NULL;
  kept = false;
  for (int64_t i = 0; i < c->depth_single; i++) {
    tyr_scope_begin();
    tyr_tensor *n = single_block(s, m, i, xs, ms, rcos, rsin);
    if (n) tyr_keep_e(n);
    tyr_scope_end();
    if (kept) tyr_tensor_free(xs);
    if (!n) return NULL;
    xs = n;
    kept = true;
  }
  tyr_tensor *out = tyr_linear_at(s, modulate(s, m, tyr_narrow_at(s, xs, 1, L, N), fm[0], fm[1]),
                                  W(m, "final_layer.linear.weight"), NULL);
  if (kept) tyr_tensor_free(xs); /* out no longer needs it (a view's storage is shared) */
  return out;
}

tyr_tensor *tyr_flux2_forward_at(tyr_site s, tyr_flux2 *m, tyr_tensor *img, tyr_tensor *txt,
                                 tyr_tensor *t, int64_t h, int64_t w) {
  const char *op = "tyr_flux2_forward";
  if (!m || !img || !txt || !t) {
    tyr_raise(TYR_ERR_ARG, s, op, "a NULL argument");
    return NULL;
  }
  const tyr_flux2_config *c = &m->cfg;
  char a[64], b[64], d[64];
  if (img->rank != 3 || txt->rank != 3 || t->rank != 1 || img->shape[0] != txt->shape[0] ||
      t->shape[0] != img->shape[0] || img->shape[2] != c->in_channels ||
      txt->shape[2] != c->context_dim || h <= 0 || w <= 0 || img->shape[1] != h * w) {
    tyr_raise(TYR_ERR_SHAPE, s, op,
              "img %s, txt %s, t %s, grid %lld x %lld: want img [B, h w = %lld, %lld], txt [B, "
              "L, %lld], t [B]",
              tyr_shape_str(img->shape, img->rank, a, sizeof a),
              tyr_shape_str(txt->shape, txt->rank, b, sizeof b),
              tyr_shape_str(t->shape, t->rank, d, sizeof d), (long long)h, (long long)w,
              (long long)(h * w), (long long)c->in_channels, (long long)c->context_dim);
    return NULL;
  }
  if (!tyr_dtype_is_float(img->dtype) || !tyr_dtype_is_float(txt->dtype)) {
    tyr_raise(TYR_ERR_DTYPE, s, op, "img %s and txt %s must be floating",
              tyr_dtype_name(img->dtype), tyr_dtype_name(txt->dtype));
    return NULL;
  }
  if (!tyr_device_eq(img->device, m->device) || !tyr_device_eq(txt->device, m->device)) {
    tyr_raise(TYR_ERR_DEVICE, s, op, "img and txt must be on the model's device %s",
              tyr_device_name(m->device));
    return NULL;
  }
  TYR_NO_GRAD;
  tyr_tensor *out;
  {
    TYR_SCOPE;
    out = forward(s, m, tyr_to_dtype_at(s, img, m->compute), tyr_to_dtype_at(s, txt, m->compute), t,
                  h, w);
    if (out) tyr_keep_e(out);
  }
  /* back into the caller's scope */
  if (out && tyr_scope_depth() > 0) {
    tyr_tensor *r = tyr_clone_at(s, out);
    tyr_tensor_free(out);
    out = r;
  }
  return out;
}

/* ---- the sampler --------------------------------------------------------------------- */
double tyr_flux2_empirical_mu(int64_t image_tokens, int steps) {
  const double a1 = 8.73809524e-05, b1 = 1.89833333, a2 = 0.00016927, b2 = 0.45666666;
  const double n = (double)image_tokens;
  if (image_tokens > 4300) return a2 * n + b2;
  double m200 = a2 * n + b2, m10 = a1 * n + b1;
  double a = (m200 - m10) / 190.0, b = m200 - 200.0 * a;
  return a * steps + b;
}

double tyr_flux2_schedule(int steps, int64_t image_tokens, double *t) {
  double mu = tyr_flux2_empirical_mu(image_tokens, steps), e = exp(mu);
  for (int i = 0; i <= steps; i++) {
    double x = 1.0 - (double)i / steps;
    t[i] = x <= 0 ? 0.0 : e / (e + (1.0 / x - 1.0));
  }
  return mu;
}

tyr_tensor *tyr_flux2_noise_at(tyr_site s, const tyr_flux2 *m, int64_t B, int64_t h, int64_t w,
                               uint64_t seed) {
  tyr_rng_state saved = tyr_rng_get_state();
  tyr_manual_seed(seed);
  int64_t shape[3] = {B, h * w, m->cfg.in_channels};
  tyr_tensor *z = tyr_randn_at(s, TYR_F32, TYR_DEVICE_CPU, 3, shape, 0.0, 1.0);
  tyr_rng_set_state(saved);
  if (!z) return NULL;
  tyr_tensor *r = tyr_to_device_at(s, tyr_to_dtype_at(s, z, m->compute), m->device);
  return r;
}

tyr_tensor *tyr_flux2_euler_step_at(tyr_site s, tyr_flux2 *m, tyr_tensor *x, tyr_tensor *txt,
                                    double t_cur, double t_next, int64_t h, int64_t w) {
  if (!m || !x) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_flux2_euler_step", "a NULL argument");
    return NULL;
  }
  TYR_NO_GRAD;
  int64_t B = x->shape[0];
  float *tv = malloc(sizeof(float) * (size_t)B);
  if (!tv) return NULL;
  for (int64_t i = 0; i < B; i++) tv[i] = (float)t_cur;
  tyr_tensor *t = tyr_from_host_at(s, tv, TYR_F32, TYR_DEVICE_CPU, 1, &B);
  free(tv);
  tyr_tensor *v = t ? tyr_flux2_forward_at(s, m, x, txt, t, h, w) : NULL;
  return v ? tyr_add_at(s, tyr_to_dtype_at(s, x, v->dtype), tyr_mul_scalar_at(s, v, t_next - t_cur))
           : NULL;
}
