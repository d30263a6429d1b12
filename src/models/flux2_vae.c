/* The FLUX.2 autoencoder's decoder (tyr/models/flux2_vae.h): parameters
 * under BFL's names, loading of ae.safetensors and of diffusers' vae/, and
 * the decode from packed latents to images. */
#include "tyr/models/flux2_vae.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tyr/safetensors_map.h"
#include "tyr/tyr.h"

/* shared with src/models/flux2.c */
int tyr__flux2_check_names_at(tyr_site s, const char *what, tyr_safetensors_set *set,
                              tyr_params *dst, const tyr_st_rule *rules, int nrules,
                              const char *const *skip_prefixes);
void tyr__flux2_component_path(const char *dir, char *out, size_t n);

bool tyr_flux2_vae_config_named(const char *name, tyr_flux2_vae_config *out) {
  tyr_flux2_vae_config c = {.z_channels = 32, .eps = 1e-6, .bn_eps = 1e-4};
  if (!strcmp(name, "flux2")) {
    c.ch = 128;
    c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 4, c.ch_mult[3] = 4;
    c.num_res_blocks = 2;
    c.groups = 32;
  } else if (!strcmp(name, "tiny")) {
    c.ch = 16;
    c.ch_mult[0] = 1, c.ch_mult[1] = 1, c.ch_mult[2] = 2, c.ch_mult[3] = 2;
    c.num_res_blocks = 1;
    c.groups = 8;
  } else {
    return false;
  }
  snprintf(c.name, sizeof c.name, "%s", name);
  *out = c;
  return true;
}

static int check_config(tyr_site s, const tyr_flux2_vae_config *c) {
  const char *op = "tyr_flux2_vae";
  if (!c) return tyr_raise(TYR_ERR_ARG, s, op, "config is NULL");
  if (c->z_channels <= 0 || c->ch <= 0 || c->num_res_blocks < 0 || c->groups <= 0)
    return tyr_raise(TYR_ERR_ARG, s, op, "z_channels, ch and groups must be positive");
  for (int i = 0; i < 4; i++)
    if (c->ch_mult[i] <= 0 || (c->ch * c->ch_mult[i]) % c->groups)
      return tyr_raise(TYR_ERR_ARG, s, op,
                       "ch * ch_mult[%d] = %lld is not a multiple of %lld groups", i,
                       (long long)(c->ch * c->ch_mult[i]), (long long)c->groups);
  return 0;
}

static int addp(tyr_site s, tyr_flux2_vae *v, tyr_dtype dt, int rank, const int64_t *shape,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int addp(tyr_site s, tyr_flux2_vae *v, tyr_dtype dt, int rank, const int64_t *shape,
                const char *fmt, ...) {
  char name[TYR_PARAM_NAME_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  tyr_tensor *t = tyr_empty_at(s, dt, v->device, rank, shape);
  if (!t) return TYR_ERR_MEMORY;
  if (!tyr_params_add_at(s, &v->params, name, t)) {
    tyr_tensor_free(t);
    return TYR_ERR_ARG;
  }
  t->requires_grad = false;
  return 0;
}
/* a conv's weight [o, i, k, k] and bias [o] */
static int conv(tyr_site s, tyr_flux2_vae *v, int64_t o, int64_t i, int64_t k, const char *name) {
  int st = addp(s, v, v->dtype, 4, (const int64_t[]){o, i, k, k}, "%s.weight", name);
  return st ? st : addp(s, v, v->dtype, 1, &o, "%s.bias", name);
}
static int norm(tyr_site s, tyr_flux2_vae *v, int64_t c, const char *name) {
  int st = addp(s, v, v->dtype, 1, &c, "%s.weight", name);
  return st ? st : addp(s, v, v->dtype, 1, &c, "%s.bias", name);
}
static int resnet(tyr_site s, tyr_flux2_vae *v, int64_t in, int64_t out, const char *name) {
  char n[TYR_PARAM_NAME_MAX];
  int st;
  snprintf(n, sizeof n, "%s.norm1", name);
  if ((st = norm(s, v, in, n))) return st;
  snprintf(n, sizeof n, "%s.conv1", name);
  if ((st = conv(s, v, out, in, 3, n))) return st;
  snprintf(n, sizeof n, "%s.norm2", name);
  if ((st = norm(s, v, out, n))) return st;
  snprintf(n, sizeof n, "%s.conv2", name);
  if ((st = conv(s, v, out, out, 3, n))) return st;
  if (in != out) {
    snprintf(n, sizeof n, "%s.nin_shortcut", name);
    if ((st = conv(s, v, out, in, 1, n))) return st;
  }
  return 0;
}

static int build(tyr_site s, tyr_flux2_vae *v, const tyr_flux2_vae_config *cfg, tyr_dtype dt,
                 tyr_device dev) {
  memset(v, 0, sizeof *v);
  int st = check_config(s, cfg);
  if (st) return st;
  v->cfg = *cfg;
  v->dtype = dt;
  v->device = dev;
  v->compute = dev.type == TYR_CPU && (dt == TYR_BF16 || dt == TYR_F16) ? TYR_F32 : dt;
  tyr_params_init(&v->params);
  const int64_t z = cfg->z_channels, z4 = 4 * z;
  int64_t c = cfg->ch * cfg->ch_mult[3];
  char n[TYR_PARAM_NAME_MAX];
  st = addp(s, v, TYR_F32, 1, &z4, "bn.running_mean");
  if (!st) st = addp(s, v, TYR_F32, 1, &z4, "bn.running_var");
  if (!st) st = conv(s, v, z, z, 1, "decoder.post_quant_conv");
  if (!st) st = conv(s, v, c, z, 3, "decoder.conv_in");
  if (!st) st = resnet(s, v, c, c, "decoder.mid.block_1");
  if (!st) st = norm(s, v, c, "decoder.mid.attn_1.norm");
  static const char *const qkvo[4] = {"q", "k", "v", "proj_out"};
  for (int i = 0; i < 4 && !st; i++) {
    snprintf(n, sizeof n, "decoder.mid.attn_1.%s", qkvo[i]);
    st = conv(s, v, c, c, 1, n);
  }
  if (!st) st = resnet(s, v, c, c, "decoder.mid.block_2");
  for (int level = 3; level >= 0 && !st; level--) {
    int64_t out = cfg->ch * cfg->ch_mult[level];
    for (int64_t j = 0; j <= cfg->num_res_blocks && !st; j++) {
      snprintf(n, sizeof n, "decoder.up.%d.block.%lld", level, (long long)j);
      st = resnet(s, v, c, out, n);
      c = out;
    }
    if (level && !st) {
      snprintf(n, sizeof n, "decoder.up.%d.upsample.conv", level);
      st = conv(s, v, c, c, 3, n);
    }
  }
  if (!st) st = norm(s, v, c, "decoder.norm_out");
  if (!st) st = conv(s, v, 3, c, 3, "decoder.conv_out");
  if (st) tyr_flux2_vae_free(v);
  return st;
}

void tyr_flux2_vae_free(tyr_flux2_vae *v) {
  if (!v) return;
  tyr_params_free(&v->params);
  memset(v, 0, sizeof *v);
}

int tyr_flux2_vae_init_random_at(tyr_site s, tyr_flux2_vae *v, const tyr_flux2_vae_config *cfg,
                                 tyr_dtype dtype, tyr_device dev, uint64_t seed) {
  int st = build(s, v, cfg, dtype, dev);
  if (st) return st;
  tyr_rng_state saved = tyr_rng_get_state();
  tyr_manual_seed(seed);
  for (int i = 0; i < v->params.n && !st; i++) {
    TYR_SCOPE;
    tyr_param *p = &v->params.items[i];
    tyr_tensor *t = p->t, *r;
    const char *n = p->name;
    size_t l = strlen(n);
    bool is_norm = strstr(n, "norm") != NULL;
    if (!strcmp(n, "bn.running_mean"))
      r = tyr_randn_at(s, t->dtype, dev, 1, t->shape, 0.0, 0.1);
    else if (!strcmp(n, "bn.running_var"))
      r = tyr_rand_at(s, t->dtype, dev, 1, t->shape, 0.5, 1.5);
    else if (is_norm && l > 7 && !strcmp(n + l - 7, ".weight"))
      r = tyr_ones_at(s, t->dtype, dev, 1, t->shape);
    else if (t->rank == 1)
      r = tyr_randn_at(s, t->dtype, dev, 1, t->shape, 0.0, 0.02);
    else
      r = tyr_randn_at(s, t->dtype, dev, 4, t->shape, 0.0,
                       1.0 / sqrt((double)(t->shape[1] * t->shape[2] * t->shape[3])));
    st = r ? tyr_copy_at(s, t, r) : TYR_ERR_MEMORY;
  }
  tyr_rng_set_state(saved);
  if (st) tyr_flux2_vae_free(v);
  return st;
}

/* ---- loading ------------------------------------------------------------------ */
/* diffusers' attention linears [C, C] as 1x1 conv weights [C, C, 1, 1] */
static tyr_tensor *to_1x1(tyr_site s, const char *src_name, tyr_tensor *src, const tyr_tensor *dst,
                          void *ctx) {
  (void)src_name, (void)ctx;
  return tyr_reshape_at(s, src, dst->rank, dst->shape);
}

/* The weights at path: ae.safetensors, a diffusers vae/ directory or a
 * model root holding vae/; whether the names are diffusers'. */
static tyr_safetensors_set *open_vae(tyr_site s, const char *op, const char *path,
                                     bool *diffusers) {
  struct stat sb;
  char where[4096], sub[4096];
  snprintf(where, sizeof where, "%s", path);
  if (stat(path, &sb) != 0) {
    tyr_raise(TYR_ERR_IO, s, path, "%s: no such file or directory", op);
    return NULL;
  }
  if (S_ISDIR(sb.st_mode)) {
    snprintf(sub, sizeof sub, "%s/vae", path);
    bool has_sub = stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode);
    tyr__flux2_component_path(has_sub ? sub : path, where, sizeof where);
  }
  tyr_safetensors_set *set = tyr_safetensors_set_open_at(s, where);
  if (!set) return NULL;
  *diffusers = false;
  for (int i = 0; i < tyr_safetensors_set_count(set) && !*diffusers; i++)
    *diffusers = !strncmp(tyr_safetensors_set_name(set, i), "decoder.mid_block.", 18);
  return set;
}

static int64_t vdim(tyr_safetensors_set *set, const char *name, int d) {
  const tyr_safetensors_entry *e = NULL;
  if (!tyr_safetensors_set_find(set, name, &e) || !e || e->rank <= d) return -1;
  return e->shape[d];
}

int tyr_flux2_vae_config_from_weights_at(tyr_site s, const char *path, tyr_flux2_vae_config *out) {
  const char *op = "tyr_flux2_vae_config_from_weights";
  if (!path || !out) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", path ? "out" : "path");
  bool df = false;
  tyr_safetensors_set *set = open_vae(s, op, path, &df);
  if (!set) return TYR_ERR_IO;
  tyr_flux2_vae_config c;
  tyr_flux2_vae_config_named("flux2", &c);
  c.z_channels = vdim(set, "decoder.conv_in.weight", 1);
  c.ch = vdim(set, "decoder.conv_out.weight", 1);
  int st = 0;
  char n[128];
  for (int l = 0; l < 4 && c.ch > 0; l++) {
    if (df)
      snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv1.weight", 3 - l);
    else
      snprintf(n, sizeof n, "decoder.up.%d.block.0.conv1.weight", l);
    int64_t o = vdim(set, n, 0);
    c.ch_mult[l] = o > 0 && o % c.ch == 0 ? o / c.ch : -1;
  }
  c.num_res_blocks = -1;
  for (int j = 0; j < 16; j++) {
    if (df)
      snprintf(n, sizeof n, "decoder.up_blocks.3.resnets.%d.conv1.weight", j);
    else
      snprintf(n, sizeof n, "decoder.up.0.block.%d.conv1.weight", j);
    if (vdim(set, n, 0) > 0) c.num_res_blocks = j;
  }
  /* GroupNorm's 32 groups; the narrow test models (ch < 64) use ch / 2 */
  c.groups = c.ch >= 64 ? 32 : c.ch / 2;
  bool bad = c.z_channels <= 0 || c.ch <= 0 || c.num_res_blocks < 0 || c.groups <= 0;
  for (int l = 0; l < 4; l++) bad = bad || c.ch_mult[l] <= 0;
  if (bad) {
    st = tyr_raise(TYR_ERR_FORMAT, s, op,
                   "%s: not FLUX.2 VAE weights (decoder.conv_in, conv_out or the up blocks' "
                   "convolutions are missing)",
                   tyr_safetensors_path(tyr_safetensors_set_file(set, 0)));
  } else {
    tyr_flux2_vae_config f;
    tyr_flux2_vae_config_named("flux2", &f);
    if (memcmp(&c, &f, sizeof c) != 0) {
      memset(c.name, 0, sizeof c.name);
      snprintf(c.name, sizeof c.name, "custom");
    }
    if (!(st = check_config(s, &c))) *out = c;
  }
  tyr_safetensors_set_close(set);
  return st;
}

int tyr_flux2_vae_load_at(tyr_site s, tyr_flux2_vae *v, const char *path,
                          const tyr_flux2_vae_config *cfg, tyr_dtype dtype, tyr_device dev) {
  const char *op = "tyr_flux2_vae_load";
  if (!v || !path) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", v ? "path" : "v");
  memset(v, 0, sizeof *v);
  bool diffusers = false;
  tyr_safetensors_set *set = open_vae(s, op, path, &diffusers);
  if (!set) return TYR_ERR_IO;
  int st = build(s, v, cfg, dtype, dev);
  if (st) goto done;
  /* rules: strings kept in one buffer */
  enum { MAXR = 64 };
  char from[MAXR][96], to[MAXR][96]; /* the rules' strings */
  tyr_st_rule rules[MAXR];
  int nr = 0;
#define RULE(f, t, fn_)                                                                            \
  do {                                                                                             \
    snprintf(from[nr], sizeof from[nr], "%s", (f));                                                \
    snprintf(to[nr], sizeof to[nr], "%s", (t));                                                    \
    rules[nr] = (tyr_st_rule){.from = from[nr], .to = to[nr], .flags = TYR_ST_CAST, .fn = (fn_)};  \
    nr++;                                                                                          \
  } while (0)
  if (diffusers) {
    RULE("post_quant_conv.*", "decoder.post_quant_conv.*", NULL);
    RULE("decoder.conv_norm_out.*", "decoder.norm_out.*", NULL);
    for (int r = 0; r < 2; r++) {
      char f[96], t[96];
      snprintf(f, sizeof f, "decoder.mid_block.resnets.%d.*.*", r);
      snprintf(t, sizeof t, "decoder.mid.block_%d.*.*", r + 1);
      RULE(f, t, NULL);
    }
    RULE("decoder.mid_block.attentions.0.group_norm.*", "decoder.mid.attn_1.norm.*", NULL);
    static const char *const a[4][2] = {
        {"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"}};
    for (int i = 0; i < 4; i++) {
      char f[96], t[96];
      snprintf(f, sizeof f, "decoder.mid_block.attentions.0.%s.weight", a[i][0]);
      snprintf(t, sizeof t, "decoder.mid.attn_1.%s.weight", a[i][1]);
      RULE(f, t, to_1x1);
      snprintf(f, sizeof f, "decoder.mid_block.attentions.0.%s.bias", a[i][0]);
      snprintf(t, sizeof t, "decoder.mid.attn_1.%s.bias", a[i][1]);
      RULE(f, t, NULL);
    }
    for (int i = 0; i < 4; i++) {
      char f[96], t[96];
      snprintf(f, sizeof f, "decoder.up_blocks.%d.resnets.*.conv_shortcut.*", i);
      snprintf(t, sizeof t, "decoder.up.%d.block.*.nin_shortcut.*", 3 - i);
      RULE(f, t, NULL);
      for (int k = 0; k < 4; k++) {
        static const char *const parts[4] = {"norm1", "conv1", "norm2", "conv2"};
        snprintf(f, sizeof f, "decoder.up_blocks.%d.resnets.*.%s.*", i, parts[k]);
        snprintf(t, sizeof t, "decoder.up.%d.block.*.%s.*", 3 - i, parts[k]);
        RULE(f, t, NULL);
      }
      snprintf(f, sizeof f, "decoder.up_blocks.%d.upsamplers.0.conv.*", i);
      snprintf(t, sizeof t, "decoder.up.%d.upsample.conv.*", 3 - i);
      RULE(f, t, NULL);
    }
  }
#undef RULE
  static const char *const skip[] = {"encoder.", "quant_conv.", "bn.num_batches_tracked", NULL};
  st = tyr__flux2_check_names_at(s, op, set, &v->params, rules, nr, skip);
  if (!st) {
    /* every other tensor under its own name, cast to the parameter's dtype */
    tyr_st_rule *all = calloc((size_t)(nr + v->params.n), sizeof *all);
    if (!all) {
      st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of memory");
    } else {
      memcpy(all, rules, sizeof(tyr_st_rule) * (size_t)nr);
      int n = nr;
      for (int i = 0; i < v->params.n; i++) {
        const char *pn = v->params.items[i].name;
        if (tyr_safetensors_set_find(set, pn, NULL))
          all[n++] = (tyr_st_rule){.from = pn, .to = pn, .flags = TYR_ST_CAST};
      }
      st = tyr_safetensors_load_mapped_at(s, set, &v->params, all, n, TYR_ST_ALLOW_UNUSED);
      free(all);
    }
  }
  if (st) tyr_flux2_vae_free(v);
done:
  tyr_safetensors_set_close(set);
  return st;
}

/* ---- decode ------------------------------------------------------------------- */
static tyr_tensor *P(const tyr_flux2_vae *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static tyr_tensor *P(const tyr_flux2_vae *v, const char *fmt, ...) {
  char name[TYR_PARAM_NAME_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  tyr_param *p = tyr_params_find(&v->params, name);
  if (!p) return NULL;
  /* bf16 storage on the CPU: converted as it is used */
  return p->t->dtype != v->compute ? tyr_to_dtype_at(TYR_SITE, p->t, v->compute) : p->t;
}

static tyr_tensor *conv_at(tyr_site s, const tyr_flux2_vae *v, tyr_tensor *x, const char *name,
                           int64_t pad) {
  tyr_conv_opts o = TYR_CONV_OPTS(1, pad, 1, 1);
  return tyr_conv2d_at(s, x, P(v, "%s.weight", name), P(v, "%s.bias", name), &o);
}
static tyr_tensor *gn(tyr_site s, const tyr_flux2_vae *v, tyr_tensor *x, const char *name) {
  return tyr_group_norm_at(s, x, v->cfg.groups, P(v, "%s.weight", name), P(v, "%s.bias", name),
                           v->cfg.eps);
}
static tyr_tensor *resblock(tyr_site s, const tyr_flux2_vae *v, tyr_tensor *x, const char *name) {
  char n[TYR_PARAM_NAME_MAX];
  snprintf(n, sizeof n, "%s.norm1", name);
  tyr_tensor *h = tyr_silu_at(s, gn(s, v, x, n));
  snprintf(n, sizeof n, "%s.conv1", name);
  h = conv_at(s, v, h, n, 1);
  snprintf(n, sizeof n, "%s.norm2", name);
  h = tyr_silu_at(s, gn(s, v, h, n));
  snprintf(n, sizeof n, "%s.conv2", name);
  h = conv_at(s, v, h, n, 1);
  if (!h) return NULL;
  snprintf(n, sizeof n, "%s.nin_shortcut", name);
  if (P(v, "%s.weight", n)) x = conv_at(s, v, x, n, 0);
  return x ? tyr_add_at(s, x, h) : NULL;
}
/* single-head attention over the pixels */
static tyr_tensor *attn_block(tyr_site s, const tyr_flux2_vae *v, tyr_tensor *x) {
  const int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], Wd = x->shape[3];
  tyr_tensor *h = gn(s, v, x, "decoder.mid.attn_1.norm");
  tyr_tensor *qkv[3];
  static const char *const n[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; i++) {
    char name[64];
    snprintf(name, sizeof name, "decoder.mid.attn_1.%s", n[i]);
    tyr_tensor *p = conv_at(s, v, h, name, 0);
    if (!p) return NULL;
    int64_t s4[4] = {B, 1, C, H * Wd};
    qkv[i] = tyr_contiguous_at(s, tyr_transpose_at(s, tyr_reshape_at(s, p, 4, s4), 2, 3));
    if (!qkv[i]) return NULL;
  }
  tyr_tensor *o;
  if (v->device.type == TYR_CUDA && C > 256) {
    /* wider than the CUDA attention kernels' head dims: the scores as a
       product (HW x HW, e.g. 16384^2 for a 1024x1024 image) */
    tyr_tensor *sc = tyr_mul_scalar_at(
        s, tyr_matmul_at(s, qkv[0], tyr_transpose_at(s, qkv[1], 2, 3)), 1.0 / sqrt((double)C));
    o = tyr_matmul_at(s, tyr_softmax_at(s, sc, -1), qkv[2]);
  } else {
    o = tyr_sdpa_at(s, qkv[0], qkv[1], qkv[2], NULL); /* [B, 1, HW, C] */
  }
  if (!o) return NULL;
  int64_t s4[4] = {B, C, H, Wd};
  o = tyr_reshape_at(s, tyr_contiguous_at(s, tyr_transpose_at(s, o, 2, 3)), 4, s4);
  o = o ? conv_at(s, v, o, "decoder.mid.attn_1.proj_out", 0) : NULL;
  return o ? tyr_add_at(s, x, o) : NULL;
}

/* x in a scope of its own: returns a kept copy, frees the old kept one */
static tyr_tensor *decode(tyr_site s, tyr_flux2_vae *v, tyr_tensor *tokens, int64_t h, int64_t w) {
  const tyr_flux2_vae_config *c = &v->cfg;
  tyr_tensor *var = tyr_params_find(&v->params, "bn.running_var")->t;
  tyr_tensor *mean =
      tyr_to_dtype_at(s, tyr_params_find(&v->params, "bn.running_mean")->t, v->compute);
  tyr_tensor *sd =
      tyr_to_dtype_at(s, tyr_sqrt_at(s, tyr_add_scalar_at(s, var, c->bn_eps)), v->compute);
  if (!mean || !sd) return NULL;
  tyr_tensor *x = tyr_add_row_at(s, tyr_mul_row_at(s, tokens, sd), mean);
  x = tyr_unpatchify_at(s, x, 2 * h, 2 * w, 2);
  x = conv_at(s, v, x, "decoder.post_quant_conv", 0);
  x = conv_at(s, v, x, "decoder.conv_in", 1);
  x = resblock(s, v, x, "decoder.mid.block_1");
  x = x ? attn_block(s, v, x) : NULL;
  x = resblock(s, v, x, "decoder.mid.block_2");
  if (!x) return NULL;
  for (int level = 3; level >= 0; level--) {
    tyr_scope_begin();
    tyr_tensor *y = x;
    char n[TYR_PARAM_NAME_MAX];
    for (int64_t j = 0; j <= c->num_res_blocks && y; j++) {
      snprintf(n, sizeof n, "decoder.up.%d.block.%lld", level, (long long)j);
      y = resblock(s, v, y, n);
    }
    if (level && y) {
      y = tyr_interpolate_at(s, y, 2 * y->shape[2], 2 * y->shape[3], TYR_INTERP_NEAREST, false);
      snprintf(n, sizeof n, "decoder.up.%d.upsample.conv", level);
      y = y ? conv_at(s, v, y, n, 1) : NULL;
    }
    if (y) tyr_keep_e(y);
    tyr_scope_end();
    if (!y) return NULL;
    /* back into the caller's scope */
    x = tyr_clone_at(s, y);
    tyr_tensor_free(y);
    if (!x) return NULL;
  }
  x = tyr_silu_at(s, gn(s, v, x, "decoder.norm_out"));
  return conv_at(s, v, x, "decoder.conv_out", 1);
}

tyr_tensor *tyr_flux2_vae_decode_at(tyr_site s, tyr_flux2_vae *v, tyr_tensor *tokens, int64_t h,
                                    int64_t w) {
  const char *op = "tyr_flux2_vae_decode";
  if (!v || !tokens) {
    tyr_raise(TYR_ERR_ARG, s, op, "a NULL argument");
    return NULL;
  }
  char a[64];
  if (tokens->rank != 3 || h <= 0 || w <= 0 || tokens->shape[1] != h * w ||
      tokens->shape[2] != 4 * v->cfg.z_channels) {
    tyr_raise(TYR_ERR_SHAPE, s, op, "tokens %s for a %lld x %lld grid: want [B, %lld, %lld]",
              tyr_shape_str(tokens->shape, tokens->rank, a, sizeof a), (long long)h, (long long)w,
              (long long)(h * w), (long long)(4 * v->cfg.z_channels));
    return NULL;
  }
  TYR_NO_GRAD;
  tyr_tensor *t = tyr_to_dtype_at(s, tyr_to_device_at(s, tokens, v->device), v->compute);
  return t ? decode(s, v, tyr_contiguous_at(s, t), h, w) : NULL;
}

int tyr_flux2_image_rgb_at(tyr_site s, tyr_tensor *img, uint8_t *rgb) {
  if (!img || !rgb || img->rank != 3 || img->shape[0] != 3)
    return tyr_raise(TYR_ERR_SHAPE, s, "tyr_flux2_image_rgb", "want an image [3, H, W]");
  TYR_SCOPE;
  tyr_tensor *f =
      tyr_contiguous_at(s, tyr_to_dtype_at(s, tyr_to_device_at(s, img, TYR_DEVICE_CPU), TYR_F32));
  if (!f) return TYR_ERR_MEMORY;
  const int64_t H = img->shape[1], Wd = img->shape[2], n = H * Wd;
  const float *p = tyr_data_ptr(f);
  for (int64_t c = 0; c < 3; c++)
    for (int64_t i = 0; i < n; i++) {
      float x = p[c * n + i];
      x = x != x ? 0.0f : x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
      rgb[i * 3 + c] = (uint8_t)lrintf((x + 1.0f) * 127.5f);
    }
  return 0;
}
