/* Per-thread recycling of the small blocks every op allocates: tensor,
 * storage and graph-node structs and the data of tiny tensors.
 *
 * A scope that ends frees many blocks of one size at once, and malloc's
 * per-thread cache keeps only a few of each size, so the next op's
 * allocations took malloc's slow paths: they were most of the host time
 * of an op on a small tensor.  Here each thread keeps up to RC_MAX freed
 * blocks per class and hands them out again.  A thread's blocks are freed
 * when it exits.  Sanitizer builds skip the recycling so that use after
 * free is still caught. */
#include <pthread.h>
#include <stdlib.h>

#include "core/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define RC_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RC_MAX 0
#endif
#endif
#ifndef RC_MAX
#define RC_MAX 4096
#endif

typedef struct rc_block {
  struct rc_block *next;
} rc_block;
typedef struct {
  rc_block *head;
  int n;
} rc_list;

static _Thread_local rc_list g_lists[TYR_RC_COUNT];
static _Thread_local bool g_registered;
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void flush(void *unused) {
  (void)unused;
  for (int c = 0; c < TYR_RC_COUNT; c++) {
    rc_block *b = g_lists[c].head;
    while (b) {
      rc_block *next = b->next;
      free(b);
      b = next;
    }
    g_lists[c].head = NULL;
    g_lists[c].n = 0;
  }
}
static void make_key(void) {
  pthread_key_create(&g_key, flush);
}

void *tyr__rc_alloc(tyr_rc_class c, size_t size) {
  rc_list *l = &g_lists[c];
  rc_block *b = l->head;
  if (!b) return malloc(size);
  l->head = b->next;
  l->n--;
  return b;
}

void tyr__rc_free(tyr_rc_class c, void *p) {
  if (!p) return;
  rc_list *l = &g_lists[c];
  if (l->n >= RC_MAX) {
    free(p);
    return;
  }
  if (!g_registered) { /* free this thread's blocks when it exits */
    pthread_once(&g_once, make_key);
    pthread_setspecific(g_key, &g_registered);
    g_registered = true;
  }
  rc_block *b = p;
  b->next = l->head;
  l->head = b;
  l->n++;
}
