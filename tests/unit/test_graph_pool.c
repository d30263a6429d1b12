/* The CUDA graphs' memory pool (src/cuda/graph_pool.h) on any machine: the
 * pool only does arithmetic on addresses, so these tests hand it made-up
 * ones.  Best fit, splitting, merging of idle neighbours, the accounting,
 * segments that outlive their graph, adoption by another graph, the
 * address table, and a random run checked against the pool's invariants
 * after every step.  tests/unit/test_cuda_graph.c checks the same pool
 * inside the allocator on a GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/graph_pool.h"
#include "testutil.h"

#define MB ((size_t)1 << 20)

static void *addr(uintptr_t a) {
  return (void *)a;
}

/* The blocks tcu_gpool_clear and tcu_gpool_release gave back */
typedef struct {
  int n;
  void *base[4096];
  size_t size[4096];
} given;

static void give(void *ctx, void *base, size_t size) {
  given *g = ctx;
  assert_true(g->n < 4096);
  g->base[g->n] = base;
  g->size[g->n] = size;
  g->n++;
}

/* Checks g's invariants: each segment covered by its chunks in address
 * order with no two idle neighbours, n_used right, every idle chunk in the
 * bin of its size and nowhere else, reserved and idle the sums. */
static void check_pool(const tcu_gpool *g) {
  size_t reserved = 0, idle = 0;
  int idle_chunks = 0;
  for (const tcu_gseg *s = g->segs; s; s = s->snext) {
    assert_ptr_equal(s->pool, g);
    assert_ptr_equal(s->first->p, s->base);
    assert_null(s->first->prev);
    char *at = s->base;
    int used = 0;
    for (const tcu_gchunk *c = s->first; c; c = c->next) {
      assert_ptr_equal(c->p, at);
      assert_ptr_equal(c->seg, s);
      assert_true(c->size > 0);
      if (c->next) {
        assert_ptr_equal(c->next->prev, c);
        assert_true(c->used || c->next->used); /* idle neighbours are merged */
        assert_int_equal((size_t)(c->p - s->base) % TCU_GCHUNK_ALIGN, 0);
      }
      if (c->used) {
        used++;
      } else {
        idle += c->size;
        idle_chunks++;
      }
      at += c->size;
    }
    assert_ptr_equal(at, s->base + s->size);
    assert_int_equal(used, s->n_used);
    reserved += s->size;
  }
  int binned = 0;
  for (int b = 0; b < TCU_NCLASS; b++)
    for (const tcu_gchunk *c = g->bins[b]; c; c = c->bnext) {
      size_t r;
      assert_int_equal(tcu_size_class(c->size, &r), b);
      assert_false(c->used);
      assert_ptr_equal(c->seg->pool, g);
      if (c->bnext) assert_ptr_equal(c->bnext->bprev, c);
      binned++;
    }
  assert_int_equal(binned, idle_chunks);
  assert_int_equal(reserved, g->reserved);
  assert_int_equal(idle, g->idle);
}

static void test_size_classes(void **state) {
  (void)state;
  size_t r;
  assert_int_equal(tcu_size_class(1, &r), 0);
  assert_int_equal(r, 512);
  assert_int_equal(tcu_size_class(512, &r), 0);
  assert_int_equal(tcu_size_class(513, &r), 1);
  assert_int_equal(r, 576);
  assert_int_equal(tcu_size_class(MB, &r), tcu_size_class(MB, &r)); /* a power of two is a class */
  assert_int_equal(r, MB);
  for (int c = 0; c < TCU_NCLASS - 8; c++) { /* the last 8 classes pass 2^64 bytes */
    size_t s = tcu_class_size(c);
    assert_int_equal(tcu_size_class(s, &r), c);
    assert_int_equal(r, s);
    if (c > 0) {
      assert_true(s > tcu_class_size(c - 1));
      assert_int_equal(tcu_size_class(tcu_class_size(c - 1) + 1, &r), c); /* rounds up */
      assert_true(s - tcu_class_size(c - 1) <= s / 8);                    /* at most 12.5% */
    }
  }
}

/* A new segment's rest serves later requests; split, then merged back. */
static void test_split_and_merge(void **state) {
  (void)state;
  tcu_gpool g = {0};
  tcu_gchunk *a = NULL;
  assert_true(tcu_gpool_add(&g, addr(0x10000000), 4 * MB, MB, &a));
  assert_ptr_equal(a->p, addr(0x10000000));
  assert_int_equal(a->size, MB);
  assert_int_equal(g.reserved, 4 * MB);
  assert_int_equal(g.idle, 3 * MB);
  tcu_gchunk *b = tcu_gpool_take(&g, MB);
  tcu_gchunk *c = tcu_gpool_take(&g, 2 * MB);
  assert_non_null(b);
  assert_non_null(c);
  assert_ptr_equal(b->p, addr(0x10000000 + MB));
  assert_ptr_equal(c->p, addr(0x10000000 + 2 * MB));
  assert_int_equal(g.idle, 0);
  assert_null(tcu_gpool_take(&g, 512)); /* nothing idle */
  check_pool(&g);
  /* b and c merge into one idle 3 MB chunk once both are free */
  void *base;
  size_t size;
  assert_false(tcu_gpool_release(b, &base, &size));
  assert_false(tcu_gpool_release(c, &base, &size));
  check_pool(&g);
  assert_int_equal(g.idle, 3 * MB);
  tcu_gchunk *d = tcu_gpool_take(&g, 3 * MB);
  assert_non_null(d);
  assert_ptr_equal(d->p, addr(0x10000000 + MB));
  /* all free: one chunk covers the segment */
  assert_false(tcu_gpool_release(a, &base, &size));
  assert_false(tcu_gpool_release(d, &base, &size));
  check_pool(&g);
  assert_null(g.segs->first->next);
  assert_int_equal(g.idle, 4 * MB);
  given gv = {0};
  tcu_gpool_clear(&g, give, &gv);
  assert_int_equal(gv.n, 1);
  assert_ptr_equal(gv.base[0], addr(0x10000000));
  assert_int_equal(gv.size[0], 4 * MB);
  assert_int_equal(g.reserved, 0);
  assert_null(g.segs);
}

/* The smallest idle chunk that fits is taken, from any segment; a rest
   under TCU_GCHUNK_ALIGN stays with the chunk handed out. */
static void test_best_fit(void **state) {
  (void)state;
  tcu_gpool g = {0};
  assert_true(tcu_gpool_add(&g, addr(0x20000000), 8 * MB, 0, NULL));
  assert_true(tcu_gpool_add(&g, addr(0x40000000), 3 * MB, 0, NULL));
  assert_true(tcu_gpool_add(&g, addr(0x60000000), 2 * MB + 1024, 0, NULL));
  assert_int_equal(g.idle, 13 * MB + 1024);
  tcu_gchunk *a = tcu_gpool_take(&g, 2 * MB + 512); /* the third, 512 bytes left over */
  assert_ptr_equal(a->p, addr(0x60000000));
  assert_int_equal(a->size, 2 * MB + 512);
  tcu_gchunk *b = tcu_gpool_take(&g, 512); /* the 512 left over */
  assert_ptr_equal(b->p, addr(0x60000000 + 2 * MB + 512));
  tcu_gchunk *c = tcu_gpool_take(&g, 2 * MB); /* the 3 MB one */
  assert_ptr_equal(c->p, addr(0x40000000));
  tcu_gchunk *d = tcu_gpool_take(&g, MB + 512); /* the 8 MB one, split */
  assert_ptr_equal(d->p, addr(0x20000000));
  assert_int_equal(d->size, MB + 512);
  tcu_gchunk *e = tcu_gpool_take(&g, MB); /* the 3 MB one's last MB */
  assert_ptr_equal(e->p, addr(0x40000000 + 2 * MB));
  check_pool(&g);
  tcu_gchunk *f = tcu_gpool_take(&g, 3 * MB - 512); /* the 8 MB one's rest: 4 MB left */
  assert_ptr_equal(f->p, addr(0x20000000 + MB + 512));
  check_pool(&g);
  assert_int_equal(g.idle, 4 * MB);
  assert_null(tcu_gpool_take(&g, 4 * MB + 512));
  /* a rest under TCU_GCHUNK_ALIGN stays with the chunk: 576 bytes for 512 */
  assert_true(tcu_gpool_add(&g, addr(0x70000000), 576, 0, NULL));
  tcu_gchunk *h = tcu_gpool_take(&g, 512);
  assert_ptr_equal(h->p, addr(0x70000000));
  assert_int_equal(h->size, 576);
  check_pool(&g);
  tcu_gchunk *all[] = {a, b, c, d, e, f, h};
  void *base;
  size_t size;
  for (int i = 0; i < 7; i++) {
    assert_false(tcu_gpool_release(all[i], &base, &size));
    check_pool(&g);
  }
  assert_int_equal(g.idle, g.reserved);
  given gv = {0};
  tcu_gpool_clear(&g, give, &gv);
  assert_int_equal(gv.n, 4);
}

/* A graph freed while tensors hold chunks: idle segments go back at once,
   the others with their last chunk. */
static void test_outlived_graph(void **state) {
  (void)state;
  tcu_gpool g = {0};
  tcu_gchunk *a = NULL, *b, *c = NULL;
  assert_true(tcu_gpool_add(&g, addr(0x10000000), 4 * MB, MB, &a));
  b = tcu_gpool_take(&g, MB);
  assert_true(tcu_gpool_add(&g, addr(0x30000000), 2 * MB, 2 * MB, &c));
  assert_int_equal(c->size, 2 * MB);
  void *base = NULL;
  size_t size = 0;
  assert_false(tcu_gpool_release(c, &base, &size));
  given gv = {0};
  tcu_gpool_clear(&g, give, &gv);
  assert_int_equal(gv.n, 1); /* the idle segment; the other is held by a and b */
  assert_ptr_equal(gv.base[0], addr(0x30000000));
  assert_int_equal(g.reserved, 0);
  assert_int_equal(g.idle, 0);
  assert_null(a->seg->pool);
  assert_false(tcu_gpool_release(a, &base, &size));
  assert_true(tcu_gpool_release(b, &base, &size));
  assert_ptr_equal(base, addr(0x10000000));
  assert_int_equal(size, 4 * MB);
}

/* A chunk of a freed graph's segment, freed during another graph's
   capture: that graph takes the whole segment. */
static void test_adopt(void **state) {
  (void)state;
  tcu_gpool g = {0}, h = {0};
  tcu_gchunk *a = NULL, *b;
  assert_true(tcu_gpool_add(&g, addr(0x10000000), 4 * MB, MB, &a));
  b = tcu_gpool_take(&g, 2 * MB);
  given gv = {0};
  tcu_gpool_clear(&g, give, &gv);
  assert_int_equal(gv.n, 0);
  tcu_gpool_adopt(&h, a);
  assert_int_equal(h.reserved, 4 * MB);
  assert_int_equal(h.idle, MB); /* the segment's last MB */
  check_pool(&h);
  void *base;
  size_t size;
  assert_false(tcu_gpool_release(a, &base, &size));
  assert_int_equal(h.idle, 2 * MB);
  tcu_gchunk *c = tcu_gpool_take(&h, MB); /* back at the segment's start */
  assert_ptr_equal(c->p, addr(0x10000000));
  check_pool(&h);
  assert_false(tcu_gpool_release(b, &base, &size));
  assert_false(tcu_gpool_release(c, &base, &size));
  check_pool(&h);
  assert_int_equal(h.idle, 4 * MB);
  tcu_gpool_clear(&h, give, &gv);
  assert_int_equal(gv.n, 1);
}

/* The address table against a plain array, with deletions in random order */
static void test_gmap(void **state) {
  (void)state;
  enum { N = 5000 };
  static void *keys[N];
  static tcu_gchunk chunks[N];
  static bool in[N];
  tcu_gmap m = {0};
  srand(7);
  for (int i = 0; i < N; i++) {
    /* clustered addresses, as chunks of a few segments are */
    keys[i] = addr(0x700000000000ull + (uintptr_t)(i / 100) * 0x10000000 + (i % 100) * 512);
    assert_true(tcu_gmap_reserve(&m));
    tcu_gmap_put(&m, keys[i], &chunks[i]);
    in[i] = true;
  }
  assert_int_equal(m.count, N);
  for (int step = 0; step < 3 * N; step++) {
    int i = rand() % N;
    if (in[i]) {
      tcu_gmap_del(&m, keys[i]);
    } else {
      assert_true(tcu_gmap_reserve(&m));
      tcu_gmap_put(&m, keys[i], &chunks[i]);
    }
    in[i] = !in[i];
    if (step % 97 == 0)
      for (int k = 0; k < N; k++)
        assert_ptr_equal(tcu_gmap_find(&m, keys[k]), in[k] ? &chunks[k] : NULL);
  }
  size_t count = 0;
  for (int k = 0; k < N; k++) count += in[k];
  assert_int_equal(m.count, count);
  free(m.keys);
  free(m.vals);
}

/* Random takes, releases and new segments (as a capture makes them),
   the invariants checked after each, no two used chunks overlapping. */
static void test_random_run(void **state) {
  (void)state;
  enum { MAXU = 400 };
  tcu_gchunk *used[MAXU];
  int nu = 0;
  tcu_gpool g = {0};
  uintptr_t next_base = 0x100000000ull;
  int n_alloc = 0;
  size_t live = 0, peak = 0;
  srand(11);
  for (int step = 0; step < 20000; step++) {
    int op = rand() % 3;
    if ((op < 2 || nu == 0) && nu < MAXU) {
      size_t n = ((size_t)(rand() % 64) + 1) * TCU_GCHUNK_ALIGN * ((rand() % 4) ? 1 : 64);
      tcu_gchunk *c = tcu_gpool_take(&g, n);
      if (!c) {
        size_t r;
        tcu_size_class(n, &r);
        assert_true(tcu_gpool_add(&g, addr(next_base), r, n, &c));
        next_base += 0x10000000;
      }
      assert_true(c->size >= n && c->size < n + TCU_GCHUNK_ALIGN);
      for (int k = 0; k < nu; k++) /* no overlap */
        assert_true(c->p + c->size <= used[k]->p || used[k]->p + used[k]->size <= c->p);
      used[nu++] = c;
      n_alloc++;
      live += c->size;
      if (live > peak) peak = live;
    } else {
      int k = rand() % nu;
      void *base;
      size_t size;
      live -= used[k]->size;
      assert_false(tcu_gpool_release(used[k], &base, &size));
      used[k] = used[--nu];
    }
    if (step % 50 == 0) check_pool(&g);
  }
  check_pool(&g);
  size_t used_bytes = 0;
  for (int k = 0; k < nu; k++) used_bytes += used[k]->size;
  assert_int_equal(used_bytes + g.idle, g.reserved);
  while (nu > 0) {
    void *base;
    size_t size;
    assert_false(tcu_gpool_release(used[--nu], &base, &size));
  }
  check_pool(&g);
  assert_int_equal(g.idle, g.reserved);
  int nseg = 0;
  for (tcu_gseg *s = g.segs; s; s = s->snext) {
    assert_null(s->first->next); /* all idle: one chunk a segment */
    nseg++;
  }
  /* the working set, at most MAXU chunks, reuses its memory: one new
     segment for many allocations */
  printf("random run: %d allocations, %d segments, %.1f MB reserved, largest working set %.1f MB\n",
         n_alloc, nseg, g.reserved / (double)MB, peak / (double)MB);
  assert_true(nseg * 10 < n_alloc);
  given *gv = calloc(1, sizeof *gv);
  tcu_gpool_clear(&g, give, gv);
  assert_int_equal(gv->n, nseg);
  free(gv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_classes), cmocka_unit_test(test_split_and_merge),
      cmocka_unit_test(test_best_fit),     cmocka_unit_test(test_outlived_graph),
      cmocka_unit_test(test_adopt),        cmocka_unit_test(test_gmap),
      cmocka_unit_test(test_random_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
