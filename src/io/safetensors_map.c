/* Several safetensors files read as one (transformers' sharded checkpoints)
 * and loading through renaming and reshaping rules; see
 * include/tyr/safetensors_map.h. */
#include "tyr/safetensors_map.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tyr/tyr.h"

typedef struct set_item {
  const char *name; /* owned by the file */
  int file;
} set_item;

struct tyr_safetensors_set {
  char *path;
  tyr_safetensors **files;
  int nfiles;
  set_item *items; /* sorted by name */
  int n;
};

void tyr_safetensors_set_close(tyr_safetensors_set *set) {
  if (!set) return;
  for (int i = 0; i < set->nfiles; i++) tyr_safetensors_close(set->files[i]);
  free(set->files);
  free(set->items);
  free(set->path);
  free(set);
}

int tyr_safetensors_set_count(const tyr_safetensors_set *set) {
  return set ? set->n : 0;
}
const char *tyr_safetensors_set_name(const tyr_safetensors_set *set, int i) {
  return set && i >= 0 && i < set->n ? set->items[i].name : NULL;
}
int tyr_safetensors_set_nfiles(const tyr_safetensors_set *set) {
  return set ? set->nfiles : 0;
}
tyr_safetensors *tyr_safetensors_set_file(const tyr_safetensors_set *set, int i) {
  return set && i >= 0 && i < set->nfiles ? set->files[i] : NULL;
}

static int cmp_item(const void *a, const void *b) {
  return strcmp(((const set_item *)a)->name, ((const set_item *)b)->name);
}

tyr_safetensors *tyr_safetensors_set_find(const tyr_safetensors_set *set, const char *name,
                                          const tyr_safetensors_entry **entry) {
  if (entry) *entry = NULL;
  if (!set || !name) return NULL;
  set_item key = {name, 0};
  const set_item *it = bsearch(&key, set->items, (size_t)set->n, sizeof key, cmp_item);
  if (!it) return NULL;
  if (entry) *entry = tyr_safetensors_find(set->files[it->file], name);
  return set->files[it->file];
}

tyr_tensor *tyr_safetensors_set_load_at(tyr_site s, tyr_safetensors_set *set, const char *name) {
  if (!set) {
    tyr_raise(TYR_ERR_ARG, s, "tyr_safetensors_set_load", "set is NULL");
    return NULL;
  }
  tyr_safetensors *f = tyr_safetensors_set_find(set, name, NULL);
  if (!f) {
    tyr_raise(TYR_ERR_ARG, s, set->path, "no tensor named '%s' (the checkpoint has %d)",
              name ? name : "(null)", set->n);
    return NULL;
  }
  return tyr_safetensors_load_at(s, f, name);
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}
static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int set_add_file(tyr_site s, tyr_safetensors_set *set, const char *path) {
  tyr_safetensors **fs = realloc(set->files, (size_t)(set->nfiles + 1) * sizeof *fs);
  if (!fs) return tyr_raise(TYR_ERR_MEMORY, s, path, "out of host memory");
  set->files = fs;
  tyr_safetensors *f = tyr_safetensors_open_at(s, path);
  if (!f) return TYR_ERR_FORMAT;
  set->files[set->nfiles++] = f;
  return 0;
}

/* transformers' index: {"metadata": {...}, "weight_map": {"name": "file", ...}} */
static int set_open_index(tyr_site s, tyr_safetensors_set *set, const char *index) {
  json_error_t jerr;
  json_t *root = json_load_file(index, 0, &jerr);
  if (!root)
    return tyr_raise(exists(index) ? TYR_ERR_FORMAT : TYR_ERR_IO, s, index, "line %d: %s",
                     jerr.line, jerr.text);
  int st = 0;
  json_t *map = json_object_get(root, "weight_map");
  if (!json_is_object(map)) {
    st = tyr_raise(TYR_ERR_FORMAT, s, index, "no \"weight_map\" object");
    goto done;
  }
  char dir[4096];
  const char *slash = strrchr(index, '/');
  int dlen = slash ? (int)(slash - index) : 1;
  snprintf(dir, sizeof dir, "%.*s", dlen, slash ? index : ".");
  /* the distinct files, in the order they first appear */
  const char **names = calloc(json_object_size(map) + 1, sizeof *names);
  if (!names) {
    st = tyr_raise(TYR_ERR_MEMORY, s, index, "out of host memory");
    goto done;
  }
  int nnames = 0;
  const char *key;
  json_t *val;
  json_object_foreach(map, key, val) {
    const char *file = json_string_value(val);
    if (!file || !file[0] || strchr(file, '/') || strcmp(file, "..") == 0) {
      st = tyr_raise(TYR_ERR_FORMAT, s, index,
                     "weight_map[\"%s\"] is not the name of a file beside the index", key);
      break;
    }
    bool seen = false;
    for (int i = 0; i < nnames && !seen; i++) seen = strcmp(names[i], file) == 0;
    if (!seen) names[nnames++] = file;
  }
  for (int i = 0; !st && i < nnames; i++) {
    char path[4608];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    st = set_add_file(s, set, path);
  }
  /* every tensor of the index in the file it names */
  json_object_foreach(map, key, val) {
    if (st) break;
    const char *file = json_string_value(val);
    int fi = 0;
    while (fi < nnames && strcmp(names[fi], file)) fi++;
    if (!tyr_safetensors_find(set->files[fi], key))
      st = tyr_raise(TYR_ERR_FORMAT, s, index, "tensor '%s' is not in %s, where the index puts it",
                     key, tyr_safetensors_path(set->files[fi]));
  }
  free(names);
done:
  json_decref(root);
  return st;
}

tyr_safetensors_set *tyr_safetensors_set_open_at(tyr_site s, const char *path) {
  const char *op = "tyr_safetensors_set_open";
  if (!path) {
    tyr_raise(TYR_ERR_ARG, s, op, "path is NULL");
    return NULL;
  }
  tyr_safetensors_set *set = calloc(1, sizeof *set);
  if (set) set->path = strdup(path);
  if (!set || !set->path) {
    tyr_safetensors_set_close(set);
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    return NULL;
  }
  int st;
  if (is_dir(path)) {
    char one[4608], index[4608];
    snprintf(one, sizeof one, "%s/model.safetensors", path);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", path);
    if (exists(one))
      st = set_add_file(s, set, one);
    else if (exists(index))
      st = set_open_index(s, set, index);
    else
      st = tyr_raise(TYR_ERR_IO, s, path,
                     "neither model.safetensors nor model.safetensors.index.json is in this "
                     "directory");
  } else if (ends_with(path, ".json")) {
    st = set_open_index(s, set, path);
  } else {
    st = set_add_file(s, set, path);
  }
  if (st) goto fail;
  int total = 0;
  for (int i = 0; i < set->nfiles; i++) total += tyr_safetensors_count(set->files[i]);
  set->items = calloc((size_t)total + 1, sizeof *set->items);
  if (!set->items) {
    tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto fail;
  }
  for (int i = 0; i < set->nfiles; i++)
    for (int k = 0; k < tyr_safetensors_count(set->files[i]); k++)
      set->items[set->n++] = (set_item){tyr_safetensors_name(set->files[i], k), i};
  qsort(set->items, (size_t)set->n, sizeof *set->items, cmp_item);
  for (int i = 1; i < set->n; i++)
    if (strcmp(set->items[i - 1].name, set->items[i].name) == 0) {
      tyr_raise(TYR_ERR_FORMAT, s, path, "tensor '%s' is in both %s and %s", set->items[i].name,
                tyr_safetensors_path(set->files[set->items[i - 1].file]),
                tyr_safetensors_path(set->files[set->items[i].file]));
      goto fail;
    }
  return set;
fail:
  tyr_safetensors_set_close(set);
  return NULL;
}

/* ---- patterns --------------------------------------------------------------- */
#define MAX_STARS 8

static bool match(const char *p, const char *n, const char **caps, size_t *lens, int k) {
  for (;;) {
    if (*p == '*') {
      if (k >= MAX_STARS) return false;
      /* one or more characters other than '.', shortest first */
      size_t len = 0;
      while (n[len] && n[len] != '.') {
        len++;
        caps[k] = n;
        lens[k] = len;
        if (match(p + 1, n + len, caps, lens, k + 1)) return true;
      }
      return false;
    }
    if (*p != *n) return false;
    if (!*p) return true;
    p++;
    n++;
  }
}

bool tyr_st_pattern_apply(const char *from, const char *to, const char *name, char *out,
                          size_t out_size) {
  const char *caps[MAX_STARS];
  size_t lens[MAX_STARS];
  if (!from || !name || !match(from, name, caps, lens, 0)) return false;
  if (!to) return true;
  size_t o = 0;
  int k = 0;
  for (const char *p = to; *p; p++) {
    const char *src = p;
    size_t len = 1;
    if (*p == '*') {
      if (k >= MAX_STARS) return false;
      src = caps[k];
      len = lens[k++];
    }
    if (o + len >= out_size) return false;
    memcpy(out + o, src, len);
    o += len;
  }
  if (o >= out_size) return false;
  out[o] = 0;
  return true;
}

/* ---- loading through rules --------------------------------------------------- */
typedef struct plan_item {
  const char *src;         /* source tensor name */
  const tyr_st_rule *rule; /* NULL: same name, as is */
  int param;               /* index in dst */
} plan_item;

/* The shape a rule makes of a source entry; false (having raised) when the
 * split does not divide it. */
static bool rule_shape(tyr_site s, const char *file, const char *name, const tyr_st_rule *r,
                       const tyr_safetensors_entry *e, int *rank, int64_t *shape) {
  *rank = e->rank;
  memcpy(shape, e->shape, sizeof(int64_t) * (size_t)e->rank);
  if (r && (r->flags & TYR_ST_TRANSPOSE)) {
    if (e->rank < 2) {
      tyr_raise(TYR_ERR_SHAPE, s, file, "tensor '%s' has rank %d: it cannot be transposed", name,
                e->rank);
      return false;
    }
    int64_t t = shape[e->rank - 1];
    shape[e->rank - 1] = shape[e->rank - 2];
    shape[e->rank - 2] = t;
  }
  if (r && r->split_n > 1) {
    int d = r->split_dim;
    if (d < 0 || d >= e->rank || r->split_i < 0 || r->split_i >= r->split_n ||
        shape[d] % r->split_n) {
      char b[160];
      tyr_raise(TYR_ERR_SHAPE, s, file,
                "tensor '%s' %s: cannot take chunk %d of %d along dimension %d", name,
                tyr_shape_str(shape, *rank, b, sizeof b), r->split_i, r->split_n, d);
      return false;
    }
    shape[d] /= r->split_n;
  }
  return true;
}

/* The part of a parameter a rule fills: its shape (false when the merge
 * does not divide it). */
static bool slot_shape(const tyr_st_rule *r, const tyr_tensor *p, int64_t *shape) {
  memcpy(shape, p->shape, sizeof(int64_t) * (size_t)p->rank);
  if (!r || r->merge_n <= 1) return true;
  int d = r->merge_dim;
  if (d < 0 || d >= p->rank || r->merge_i < 0 || r->merge_i >= r->merge_n || r->merge_n > 64 ||
      shape[d] % r->merge_n)
    return false;
  shape[d] /= r->merge_n;
  return true;
}

static int load_one(tyr_site s, tyr_safetensors_set *set, const plan_item *it, tyr_tensor *p) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  const tyr_st_rule *r = it->rule;
  tyr_safetensors *f = tyr_safetensors_set_find(set, it->src, NULL);
  tyr_tensor *x = tyr_safetensors_load_at(s, f, it->src);
  if (!x) return TYR_ERR_IO;
  if (r && (r->flags & TYR_ST_TRANSPOSE)) x = tyr_transpose_at(s, x, x->rank - 2, x->rank - 1);
  if (x && r && r->split_n > 1) {
    int64_t len = x->shape[r->split_dim] / r->split_n;
    x = tyr_narrow_at(s, x, r->split_dim, len * r->split_i, len);
  }
  if (x && x->dtype != p->dtype) x = tyr_to_dtype_at(s, x, p->dtype);
  tyr_tensor *dst = p;
  if (x && r && r->merge_n > 1) {
    int64_t len = p->shape[r->merge_dim] / r->merge_n;
    dst = tyr_narrow_at(s, p, r->merge_dim, len * r->merge_i, len);
  }
  if (x && dst && r && r->fn) x = r->fn(s, it->src, x, dst, r->ctx);
  if (!x || !dst) return TYR_ERR_ARG;
  return tyr_copy_at(s, dst, x);
}

int tyr_safetensors_load_mapped_at(tyr_site s, tyr_safetensors_set *set, tyr_params *dst,
                                   const tyr_st_rule *rules, int nrules, unsigned flags) {
  const char *op = "tyr_safetensors_load_mapped";
  if (!set || !dst) return tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", set ? "dst" : "set");
  if (nrules < 0 || (nrules > 0 && !rules))
    return tyr_raise(TYR_ERR_ARG, s, op, "bad rules (%d, %p)", nrules, (const void *)rules);
  int cap = set->n + 1, n = 0, st = 0;
  plan_item *plan = NULL;
  uint64_t *filled = calloc((size_t)dst->n + 1, sizeof *filled); /* merge slots seen */
  int *whole = calloc((size_t)dst->n + 1, sizeof *whole);        /* unmerged fills */
  int *mn = calloc((size_t)dst->n + 1, sizeof *mn);              /* merge count used */
  if (!filled || !whole || !mn) {
    st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto done;
  }
  char name[TYR_PARAM_NAME_MAX * 2];
  for (int i = 0; i < set->n; i++) {
    const char *src = set->items[i].name;
    const tyr_safetensors_entry *e;
    tyr_safetensors *f = tyr_safetensors_set_find(set, src, &e);
    const char *file = tyr_safetensors_path(f);
    bool matched = false;
    for (int k = 0; k <= nrules; k++) {
      const tyr_st_rule *r = k < nrules ? &rules[k] : NULL;
      if (r) {
        if (!r->from) {
          st = tyr_raise(TYR_ERR_ARG, s, op, "rules[%d].from is NULL", k);
          goto done;
        }
        if (!tyr_st_pattern_apply(r->from, r->to, src, name, sizeof name)) continue;
        matched = true;
        if (!r->to) continue;
      } else {
        if (matched) break;
        snprintf(name, sizeof name, "%s", src);
      }
      tyr_param *pp = tyr_params_find(dst, name);
      if (!pp) {
        if (!r && (flags & TYR_ST_ALLOW_UNUSED)) break;
        st = r ? tyr_raise(TYR_ERR_FORMAT, s, file,
                           "tensor '%s' maps to '%s' (rule %d, \"%s\"), which the model does "
                           "not have",
                           src, name, k, r->from)
               : tyr_raise(TYR_ERR_FORMAT, s, file,
                           "tensor '%s' matches no rule and the model has no parameter of that "
                           "name",
                           src);
        goto done;
      }
      int pi = (int)(pp - dst->items);
      tyr_tensor *p = pp->t;
      int rank;
      int64_t shape[TYR_MAX_RANK], want[TYR_MAX_RANK];
      if (!rule_shape(s, file, src, r, e, &rank, shape)) {
        st = TYR_ERR_SHAPE;
        goto done;
      }
      char a[160], b[160];
      if (!slot_shape(r, p, want)) {
        st = tyr_raise(TYR_ERR_ARG, s, op,
                       "rule %d (\"%s\"): cannot fill chunk %d of %d of '%s' %s", k, r->from,
                       r->merge_i, r->merge_n, name, tyr_shape_str(p->shape, p->rank, b, sizeof b));
        goto done;
      }
      if (!(r && r->fn) &&
          (rank != p->rank || memcmp(shape, want, sizeof(int64_t) * (size_t)rank))) {
        st = tyr_raise(TYR_ERR_SHAPE, s, file, "tensor '%s' becomes %s but '%s' %s %s", src,
                       tyr_shape_str(shape, rank, a, sizeof a), name,
                       r && r->merge_n > 1 ? "needs (one chunk)" : "is",
                       tyr_shape_str(want, p->rank, b, sizeof b));
        goto done;
      }
      if (e->dtype != p->dtype && !(r && (r->flags & TYR_ST_CAST))) {
        st = tyr_raise(TYR_ERR_DTYPE, s, file,
                       "tensor '%s' is %s but '%s' is %s (a rule with TYR_ST_CAST converts it)",
                       src, tyr_dtype_name(e->dtype), name, tyr_dtype_name(p->dtype));
        goto done;
      }
      bool dup;
      if (r && r->merge_n > 1) {
        if (mn[pi] && mn[pi] != r->merge_n) {
          st = tyr_raise(TYR_ERR_ARG, s, op, "rules merge '%s' from both %d and %d chunks", name,
                         mn[pi], r->merge_n);
          goto done;
        }
        mn[pi] = r->merge_n;
        dup = whole[pi] || (filled[pi] >> r->merge_i & 1u);
        filled[pi] |= 1ull << r->merge_i;
      } else {
        dup = whole[pi] || filled[pi];
        whole[pi]++;
      }
      if (dup) {
        st = tyr_raise(TYR_ERR_FORMAT, s, file, "'%s' is filled twice (the second time from '%s')",
                       name, src);
        goto done;
      }
      if (n + 1 >= cap || !plan) {
        cap = cap * 2 + 8;
        plan_item *np = realloc(plan, (size_t)cap * sizeof *np);
        if (!np) {
          st = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
          goto done;
        }
        plan = np;
      }
      plan[n++] = (plan_item){src, r, pi};
    }
  }
  if (!(flags & TYR_ST_ALLOW_MISSING))
    for (int i = 0; i < dst->n; i++) {
      uint64_t all = mn[i] >= 64 ? ~0ull : (1ull << mn[i]) - 1;
      if (whole[i] || (mn[i] && filled[i] == all)) continue;
      st = tyr_raise(TYR_ERR_FORMAT, s, set->path,
                     "parameter '%s' is %s by the checkpoint (%d tensors in %d file%s)",
                     dst->items[i].name, filled[i] ? "only partly filled" : "not filled", set->n,
                     set->nfiles, set->nfiles == 1 ? "" : "s");
      goto done;
    }
  for (int i = 0; i < n; i++)
    if ((st = load_one(s, set, &plan[i], dst->items[plan[i].param].t))) goto done;
done:
  free(plan);
  free(filled);
  free(whole);
  free(mn);
  return st;
}
