/* The CPU caching allocator.  Training allocates the same sizes every
 * step; returning large blocks to the system and faulting them back in costs
 * more than the ops themselves.  Freed blocks of 64 KiB and up are kept in
 * a small cache and handed out again for the same rounded size; the cache
 * holds at most TYR_CPU_CACHE_MAX bytes. */
#include <pthread.h>
#include <stdlib.h>

#include "cpu/cpu.h"

#define CACHE_MIN ((size_t)64 << 10)
#define CACHE_SLOTS 1024
#define TYR_CPU_CACHE_MAX ((size_t)2 << 30)

static struct {
  void *p;
  size_t n;
} g_cache[CACHE_SLOTS];
static int g_ncache;
static size_t g_cached_bytes;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t round_size(size_t n) {
  if (n < CACHE_MIN) return (n + 63) & ~(size_t)63;
  /* 4 KiB pages, then at most 1/8 waste for big blocks */
  size_t g = (size_t)4096;
  while (g * 64 < n) g *= 2;
  return (n + g - 1) / g * g;
}

void *tyr_cpu_alloc(size_t nbytes) {
  size_t n = round_size(nbytes);
  if (n >= CACHE_MIN) {
    pthread_mutex_lock(&g_lock);
    for (int i = g_ncache - 1; i >= 0; i--)
      if (g_cache[i].n == n) {
        void *p = g_cache[i].p;
        g_cache[i] = g_cache[--g_ncache];
        g_cached_bytes -= n;
        pthread_mutex_unlock(&g_lock);
        return p;
      }
    pthread_mutex_unlock(&g_lock);
  }
  void *p = NULL;
  if (posix_memalign(&p, 64, n) != 0) {
    tyr_cpu_empty_cache(); /* retry once with the cache released */
    if (posix_memalign(&p, 64, n) != 0) return NULL;
  }
  return p;
}

void tyr_cpu_free(void *p, size_t nbytes) {
  if (!p) return;
  size_t n = round_size(nbytes);
  if (n >= CACHE_MIN) {
    pthread_mutex_lock(&g_lock);
    if (g_ncache < CACHE_SLOTS && g_cached_bytes + n <= TYR_CPU_CACHE_MAX) {
      g_cache[g_ncache].p = p;
      g_cache[g_ncache++].n = n;
      g_cached_bytes += n;
      pthread_mutex_unlock(&g_lock);
      return;
    }
    pthread_mutex_unlock(&g_lock);
  }
  free(p);
}

void tyr_cpu_empty_cache(void) {
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < g_ncache; i++) free(g_cache[i].p);
  g_ncache = 0;
  g_cached_bytes = 0;
  pthread_mutex_unlock(&g_lock);
}

size_t tyr_cpu_cached_bytes(void) { return g_cached_bytes; }
