/* tyr/safetensors_map.h - loading other programs' safetensors checkpoints
 * into a parameter collection: several files read as one (sharded
 * checkpoints), and rules that rename, transpose, split, merge and cast
 * tensors on the way in.
 *
 *   tyr_safetensors_set *set = tyr_safetensors_set_open("gpt2/");
 *   const tyr_st_rule rules[] = {
 *       {.from = "h.*.attn.c_attn.weight", .to = "blocks.*.attn.qkv.weight",
 *        .flags = TYR_ST_TRANSPOSE},
 *       {.from = "h.*.attn.bias", .to = NULL},  // a buffer the model does not need
 *   };
 *   tyr_safetensors_load_mapped(set, &model.params, rules, 2, 0);
 *   tyr_safetensors_set_close(set);
 *
 * Everything is checked before anything is loaded (names, shapes after the
 * transforms, dtypes, that every parameter is filled exactly once): on a
 * mismatch the parameters are unchanged and the error names the file and
 * the tensor. */
#ifndef TYR_SAFETENSORS_MAP_H
#define TYR_SAFETENSORS_MAP_H

#include "tyr/params.h"
#include "tyr/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- several files as one -------------------------------------------------- */
typedef struct tyr_safetensors_set tyr_safetensors_set;

/* Opens a checkpoint: path is a .safetensors file, a
 * "model.safetensors.index.json" (transformers' index of shards: its
 * "weight_map" names each tensor's file, relative to the index), or a
 * directory holding "model.safetensors" or that index.  Every shard is
 * opened and checked; a tensor in two shards, or one the index names in a
 * shard that lacks it, is an error.  Returns NULL (having raised). */
tyr_safetensors_set *tyr_safetensors_set_open_at(tyr_site s, const char *path);
#define tyr_safetensors_set_open(path) tyr_safetensors_set_open_at(TYR_SITE, (path))
/* Closes every file.  NULL is ignored. */
void tyr_safetensors_set_close(tyr_safetensors_set *set);
/* Number of tensors over all files, and tensor i's name (sorted bytewise). */
int tyr_safetensors_set_count(const tyr_safetensors_set *set);
const char *tyr_safetensors_set_name(const tyr_safetensors_set *set, int i);
/* Number of files, and file i (owned by the set). */
int tyr_safetensors_set_nfiles(const tyr_safetensors_set *set);
tyr_safetensors *tyr_safetensors_set_file(const tyr_safetensors_set *set, int i);
/* The file holding name, and its entry (NULL when absent; nothing raised). */
tyr_safetensors *tyr_safetensors_set_find(const tyr_safetensors_set *set, const char *name,
                                          const tyr_safetensors_entry **entry);
/* Reads one tensor into a new CPU tensor (owned like any new tensor). */
tyr_tensor *tyr_safetensors_set_load_at(tyr_site s, tyr_safetensors_set *set, const char *name);
#define tyr_safetensors_set_load(set, name) tyr_safetensors_set_load_at(TYR_SITE, (set), (name))

/* ---- rules ------------------------------------------------------------------ */
enum {
  /* swap the last two dimensions (e.g. [in, out] Conv1D weights to [out, in]) */
  TYR_ST_TRANSPOSE = 1u << 0,
  /* convert to the destination's dtype when it differs (otherwise a
     dtype mismatch is an error) */
  TYR_ST_CAST = 1u << 1,
};

/* A custom transform, applied after the rule's own: returns the tensor to
 * copy into dst (src itself, a view of it, or a new tensor), or NULL having
 * raised.  dst is the destination (or its slot when merging); src's shape
 * must then match it. */
typedef tyr_tensor *(*tyr_st_transform_fn)(tyr_site s, const char *src_name, tyr_tensor *src,
                                           const tyr_tensor *dst, void *ctx);

typedef struct tyr_st_rule {
  /* Source name pattern: each '*' matches one or more characters other
     than '.'; everything else matches itself. */
  const char *from;
  /* Destination parameter name: the k-th '*' becomes what the k-th '*' of
     from matched.  NULL: the matching source tensors are skipped. */
  const char *to;
  unsigned flags; /* TYR_ST_TRANSPOSE, TYR_ST_CAST */
  /* split_n > 1: only chunk split_i of split_n equal chunks of the
     (transposed) source along split_dim goes to the destination */
  int split_dim, split_n, split_i;
  /* merge_n > 1: the result fills chunk merge_i of merge_n equal chunks of
     the destination along merge_dim (several rules fill one parameter) */
  int merge_dim, merge_n, merge_i;
  tyr_st_transform_fn fn; /* optional */
  void *ctx;
} tyr_st_rule;

enum {
  /* source tensors that no rule matches and no parameter of the same name
     takes are skipped (default: an error) */
  TYR_ST_ALLOW_UNUSED = 1u << 0,
  /* parameters that nothing fills keep their values (default: an error) */
  TYR_ST_ALLOW_MISSING = 1u << 1,
};

/* Loads set into dst through rules.  Every rule whose pattern matches a
 * source tensor applies (so three split rules can send one fused tensor to
 * three parameters); a source tensor no rule matches goes to the parameter
 * of the same name, if any.  Each parameter (each merge slot) must be
 * filled exactly once.  Returns 0, or a non-zero status having raised, dst
 * unchanged unless a device copy failed. */
int tyr_safetensors_load_mapped_at(tyr_site s, tyr_safetensors_set *set, tyr_params *dst,
                                   const tyr_st_rule *rules, int nrules, unsigned flags);
#define tyr_safetensors_load_mapped(set, dst, rules, nrules, flags)                                \
  tyr_safetensors_load_mapped_at(TYR_SITE, (set), (dst), (rules), (nrules), (flags))

/* Matches name against a rule pattern and writes the destination name
 * (to's stars replaced) to out; false when the pattern does not match or
 * out is too small. */
bool tyr_st_pattern_apply(const char *from, const char *to, const char *name, char *out,
                          size_t out_size);

#ifdef __cplusplus
}
#endif
#endif
