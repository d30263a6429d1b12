/* Host memory for CPU tensors.
 *
 * Three kinds of block:
 *  - at most 64 bytes (scalars, tiny tensors): recycled per thread
 *    (src/core/recycle.c), since every small op makes one;
 *  - 16 KiB and more: freed blocks are kept in a cache, up to
 *    CACHE_SLOTS blocks and CACHE_BYTES in all (oldest out first), and
 *    handed out again for an allocation of the same size.  Fresh memory is
 *    zeroed by the kernel and mapped page by page, which for a big
 *    elementwise op cost more than the op itself; a training step
 *    allocates the same sizes again and again.  TYR_CPU_CACHE_MB sets the
 *    cache's size (0 turns it off); sanitizer builds turn it off so that
 *    use after free is still caught;
 *  - 2 MiB and more are also aligned to 2 MiB and marked for transparent
 *    huge pages, so that one page fault maps 2 MiB instead of 4 KiB
 *    (faults cost tens of microseconds on some virtual machines).
 * Everything else comes from posix_memalign. */
#include "cpu/memory.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/internal.h"

#define HUGE_BLOCK ((size_t)2 << 20)
#define CACHE_MIN ((size_t)16 << 10)
#define CACHE_SLOTS 512

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_DEFAULT_MB 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_DEFAULT_MB 0
#endif
#endif
#ifndef CACHE_DEFAULT_MB
#define CACHE_DEFAULT_MB 1024
#endif

static struct {
  void *p;
  size_t n;
} g_cache[CACHE_SLOTS];
static int g_ncached;
static size_t g_cached_bytes, g_cache_limit;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void read_limit(void) {
  const char *e = getenv("TYR_CPU_CACHE_MB");
  long mb = e && *e ? strtol(e, NULL, 10) : CACHE_DEFAULT_MB;
  g_cache_limit = mb > 0 ? (size_t)mb << 20 : 0;
}

static size_t block_size(size_t nbytes, size_t *align) {
  *align = nbytes >= HUGE_BLOCK ? HUGE_BLOCK : 64;
  return (nbytes + *align - 1) & ~(*align - 1);
}

/* Takes a cached block of exactly n bytes, or NULL. */
static void *cache_take(size_t n) {
  void *p = NULL;
  pthread_mutex_lock(&g_mu);
  for (int i = g_ncached - 1; i >= 0; i--) {
    if (g_cache[i].n != n) continue;
    p = g_cache[i].p;
    g_cached_bytes -= n;
    memmove(&g_cache[i], &g_cache[i + 1], (size_t)(g_ncached - i - 1) * sizeof g_cache[0]);
    g_ncached--;
    break;
  }
  pthread_mutex_unlock(&g_mu);
  return p;
}

/* Keeps p (n bytes) for reuse, dropping the oldest blocks to make room;
 * false when p does not fit at all. */
static bool cache_put(void *p, size_t n) {
  void *drop[CACHE_SLOTS];
  int ndrop = 0;
  pthread_mutex_lock(&g_mu);
  bool fits = n <= g_cache_limit / 4;
  /* a block from the heap proper (below glibc's mmap threshold) costs
     nothing to give back: keep only what would be unmapped */
  if (fits) {
    while (g_ncached > 0 && (g_ncached == CACHE_SLOTS || g_cached_bytes + n > g_cache_limit)) {
      drop[ndrop++] = g_cache[0].p;
      g_cached_bytes -= g_cache[0].n;
      memmove(&g_cache[0], &g_cache[1], (size_t)(g_ncached - 1) * sizeof g_cache[0]);
      g_ncached--;
    }
    g_cache[g_ncached].p = p;
    g_cache[g_ncached].n = n;
    g_ncached++;
    g_cached_bytes += n;
  }
  pthread_mutex_unlock(&g_mu);
  for (int i = 0; i < ndrop; i++) free(drop[i]);
  return fits;
}

void *tyr_cpu_alloc(size_t nbytes, tyr_device dev) {
  (void)dev;
  if (nbytes <= 64) return tyr__rc_alloc(TYR_RC_DATA64, 64);
  size_t align, n = block_size(nbytes, &align);
  if (n >= CACHE_MIN) {
    pthread_once(&g_once, read_limit);
    void *p = g_cache_limit ? cache_take(n) : NULL;
    if (p) return p;
  }
  void *p = NULL;
  if (posix_memalign(&p, align, n) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  if (align == HUGE_BLOCK) (void)madvise(p, n, MADV_HUGEPAGE);
#endif
  return p;
}

void tyr_cpu_free(void *p, size_t nbytes, tyr_device dev) {
  (void)dev;
  if (!p) return;
  if (nbytes <= 64) {
    tyr__rc_free(TYR_RC_DATA64, p);
    return;
  }
  size_t align, n = block_size(nbytes, &align);
  if (n >= CACHE_MIN) {
    pthread_once(&g_once, read_limit);
    if (g_cache_limit && cache_put(p, n)) return;
  }
  free(p);
}
