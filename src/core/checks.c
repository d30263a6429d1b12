/* Lifetime checks (tyr/debug.h): dead tensors named with where they were
 * made and freed, checked mode's quarantine of freed tensor structs, and the
 * warning about tensors piling up outside any scope. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tyr/debug.h"

/* ---- checked mode ------------------------------------------------------------ */
static int g_checked = -1; /* -1: not decided yet */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static bool env_flag(const char *name, bool def) {
  const char *v = getenv(name);
  if (!v || !v[0]) return def;
  return strcmp(v, "0") != 0 && strcmp(v, "off") != 0 && strcmp(v, "false") != 0;
}

bool tyr_checked(void) {
  int c = __atomic_load_n(&g_checked, __ATOMIC_RELAXED);
  if (c < 0) {
#ifdef NDEBUG
    c = env_flag("TYR_CHECKED", false);
#else
    c = env_flag("TYR_CHECKED", true);
#endif
    __atomic_store_n(&g_checked, c, __ATOMIC_RELAXED);
  }
  return c;
}

bool tyr_set_checked(bool on) {
  bool prev = tyr_checked();
  __atomic_store_n(&g_checked, on ? 1 : 0, __ATOMIC_RELAXED);
  return prev;
}

/* the most recently freed structs, held back from reuse */
static tyr_tensor **g_quarantine;
static int64_t g_qhead, g_qn;

void tyr__tensor_retire(tyr_tensor *t) {
  t->magic = TYR__TENSOR_DEAD;
  if (!tyr_checked()) {
    tyr__rc_free(TYR_RC_TENSOR, t);
    return;
  }
  tyr_tensor *old = NULL;
  pthread_mutex_lock(&g_mu);
  if (!g_quarantine) g_quarantine = calloc(TYR_CHECKED_QUARANTINE, sizeof *g_quarantine);
  if (!g_quarantine) {
    old = t;
  } else if (g_qn == TYR_CHECKED_QUARANTINE) {
    old = g_quarantine[g_qhead];
    g_quarantine[g_qhead] = t;
    g_qhead = (g_qhead + 1) % TYR_CHECKED_QUARANTINE;
  } else {
    g_quarantine[(g_qhead + g_qn++) % TYR_CHECKED_QUARANTINE] = t;
  }
  pthread_mutex_unlock(&g_mu);
  free(old); /* not recycled: its memory may be checked again until reused by malloc */
}

static void where(tyr_site s, char *buf, size_t n) {
  if (s.file)
    snprintf(buf, n, "%s:%d", s.file, s.line);
  else
    snprintf(buf, n, "(unknown)");
}

bool tyr_tensor_check_at(tyr_site s, const char *op, const char *arg, const tyr_tensor *t) {
  if (!t) {
    tyr_raise(TYR_ERR_ARG, s, op, "%s is NULL", arg);
    return false;
  }
  if (t->magic == TYR__TENSOR_LIVE) return true;
  char made[600], freed[600];
  where(t->site, made, sizeof made);
  if (t->magic == TYR__TENSOR_DEAD) {
    if (t->freed_at.file) {
      where(t->freed_at, freed, sizeof freed);
      tyr_raise(TYR_ERR_STATE, s, op,
                "%s is a tensor used after it was freed: made at %s, freed when the scope opened "
                "at %s ended",
                arg, made, freed);
    } else {
      tyr_raise(TYR_ERR_STATE, s, op,
                "%s is a tensor used after it was freed: made at %s, freed by tyr_tensor_free "
                "(or its last reference's release)",
                arg, made);
    }
  } else {
    tyr_raise(TYR_ERR_STATE, s, op, "%s is not a tensor (freed long ago, or a stray pointer)", arg);
  }
  return false;
}

/* ---- the pile-up warning ------------------------------------------------------- */
#define SITES 1024
typedef struct {
  const char *file;
  int line;
  int64_t n;
} site_count;
static site_count g_sites[SITES];
static int64_t g_unscoped, g_threshold = -1, g_next_warn;

static int64_t threshold(void) {
  if (g_threshold < 0) {
    const char *v = getenv("TYR_UNSCOPED_WARN");
    g_threshold = v && v[0] ? strtoll(v, NULL, 10) : 10000;
    if (g_threshold < 0) g_threshold = 0;
    g_next_warn = g_threshold;
  }
  return g_threshold;
}

int64_t tyr_set_unscoped_warning(int64_t th) {
  pthread_mutex_lock(&g_mu);
  int64_t prev = threshold();
  g_threshold = th > 0 ? th : 0;
  g_next_warn = g_threshold;
  while (g_threshold && g_next_warn <= g_unscoped) g_next_warn *= 2;
  pthread_mutex_unlock(&g_mu);
  return prev;
}

int64_t tyr_unscoped_tensors(void) {
  return __atomic_load_n(&g_unscoped, __ATOMIC_RELAXED);
}

static site_count *site_slot(tyr_site s) {
  uintptr_t h = ((uintptr_t)s.file * 31u + (uintptr_t)s.line) * 0x9E3779B97F4A7C15ull;
  for (int k = 0; k < SITES; k++) {
    site_count *c = &g_sites[(h + (uintptr_t)k) % SITES];
    if ((c->file == s.file && c->line == s.line) || (!c->file && !c->line && !c->n)) return c;
  }
  return NULL; /* table full: this site is not counted */
}

void tyr__unscoped_add(tyr_tensor *t) {
  t->unscoped = true;
  pthread_mutex_lock(&g_mu);
  g_unscoped++;
  site_count *c = site_slot(t->site);
  if (c) {
    c->file = t->site.file;
    c->line = t->site.line;
    c->n++;
  }
  int64_t th = threshold();
  bool warn = th > 0 && g_unscoped >= g_next_warn;
  site_count top = {0};
  if (warn) {
    while (g_next_warn <= g_unscoped) g_next_warn *= 2;
    for (int i = 0; i < SITES; i++)
      if (g_sites[i].n > top.n) top = g_sites[i];
  }
  int64_t n = g_unscoped;
  pthread_mutex_unlock(&g_mu);
  if (warn)
    fprintf(stderr,
            "tyr: warning: %lld tensors made outside any scope are alive (a leak?); %lld of them "
            "were made at %s:%d: open a scope around that code (TYR_SCOPE) or free them "
            "(TYR_UNSCOPED_WARN=0 silences this)\n",
            (long long)n, (long long)top.n, top.file ? top.file : "(unknown)", top.line);
}

void tyr__unscoped_remove(tyr_tensor *t) {
  pthread_mutex_lock(&g_mu);
  g_unscoped--;
  site_count *c = site_slot(t->site);
  if (c && c->n > 0) c->n--;
  pthread_mutex_unlock(&g_mu);
}
