/* tyr/data.h - token shards on disk and batch iterators over them.
 *
 * Shards.  A shard is a file of uint16 token ids.  Two layouts are read:
 *
 *   TYR_SHARD_LLMC  the llm.c / modded-nanogpt `.bin` layout: a header of
 *                   256 little-endian int32 words, [0] = magic 20240520,
 *                   [1] = version 1, [2] = token count, the rest zero; then
 *                   the tokens as little-endian uint16.  The file size must
 *                   be exactly 1024 + 2 * count.
 *   TYR_SHARD_U16   headerless: the whole file is little-endian uint16
 *                   tokens (nanoGPT's train.bin / val.bin).
 *
 * Files are memory-mapped read-only; nothing is copied.  A source names one
 * file, a directory (every `*.bin` file in it, sorted by name), or a glob(3)
 * pattern (every match, sorted by name).  An empty file, a file with no
 * tokens, or a directory or pattern without files is an error.  Errors name
 * the file and what is wrong, e.g.
 *   "x.bin: token count 1000 needs 2000 bytes after the header, the file has 1500".
 *
 * Writing is atomic: the data go to a temporary name in the same directory,
 * which is renamed over the target when complete.
 *
 * Loaders.  A loader cuts a set of shards into windows of T + 1 tokens and
 * returns batches (x, y) of B windows, x = tokens [p, p + T) and
 * y = tokens [p + 1, p + T + 1) of each window: y is x shifted by one.
 * Both are new int64 CPU tensors of shape [B, T] owned like any tensor (they
 * go to the innermost open scope, or to the caller).
 *
 * The windows of an epoch, for a given T, are listed shard by shard:
 *   - by default window j of a shard starts at token j * T; a window never
 *     crosses the end of a shard (the last < T + 1 tokens of a shard that do
 *     not fill a window are skipped);
 *   - with align_bos, windows start only at tokens equal to bos_token: the
 *     first at the shard's first BOS, each next one at the first BOS at or
 *     after the end of the previous window's inputs (p + T).  The rest of a
 *     document longer than T is skipped; a window may hold several short
 *     documents.
 * Sequential order reads the windows in that order; random order reads them
 * in a permutation drawn from (seed, epoch) with the library's Philox
 * generator: the same seed gives the same batches, and each epoch is a new
 * permutation.  Every window is read once per epoch.
 *
 * Data parallel: the loaders of a group (same source, same options, same
 * seed, same B and T at each call) split the windows between them: a call
 * consumes B * world_size windows and rank r gets windows r, r + W, r + 2W,
 * ...  of them.  Ranks see disjoint windows and together cover the epoch.
 *
 * When an epoch runs out in the middle of a batch, the batch goes on with
 * the first windows of the next epoch; tyr_loader_epoch counts the epochs
 * begun after the first.
 *
 * B and T may change between calls.  A change of T rebuilds the window
 * list; sequential order goes on at the first new window at or after the
 * current token position, random order at the same fraction of the epoch
 * (within an epoch, coverage is exact only while T stays the same). */
#ifndef TYR_DATA_H
#define TYR_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tyr/tensor.h"
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- shards ---------------------------------------------------------------- */
#define TYR_SHARD_MAGIC 20240520
#define TYR_SHARD_VERSION 1
#define TYR_SHARD_HEADER_WORDS 256
#define TYR_SHARD_HEADER_BYTES (TYR_SHARD_HEADER_WORDS * 4)
/* Largest token count one headered shard can hold (the count is an int32). */
#define TYR_SHARD_MAX_TOKENS INT32_MAX

typedef enum tyr_shard_format {
  TYR_SHARD_LLMC = 0, /* 1024-byte header, then uint16 tokens */
  TYR_SHARD_U16 = 1   /* uint16 tokens, no header */
} tyr_shard_format;

/* A set of memory-mapped shards. */
typedef struct tyr_shards tyr_shards;

/* Opens every shard of source (a file, a directory or a glob pattern) and
 * validates it.  NULL on error. */
tyr_shards *tyr_shards_open_at(tyr_site s, const char *source, tyr_shard_format fmt);
#define tyr_shards_open(source, fmt) tyr_shards_open_at(TYR_SITE, (source), (fmt))
/* Unmaps and frees; NULL is ignored. */
void tyr_shards_close(tyr_shards *sh);

/* Number of shard files. */
int tyr_shards_count(const tyr_shards *sh);
/* Tokens over all shards. */
int64_t tyr_shards_total_tokens(const tyr_shards *sh);
/* Shard i: its path, token count and tokens (valid until close). */
const char *tyr_shards_path(const tyr_shards *sh, int i);
int64_t tyr_shards_ntokens(const tyr_shards *sh, int i);
const uint16_t *tyr_shards_tokens(const tyr_shards *sh, int i);

/* Writes n tokens to path atomically.  n must be in [1, TYR_SHARD_MAX_TOKENS]
 * for TYR_SHARD_LLMC and >= 1 for TYR_SHARD_U16.  Returns 0 or the status. */
int tyr_shard_write_at(tyr_site s, const char *path, const uint16_t *tokens, int64_t n,
                       tyr_shard_format fmt);
#define tyr_shard_write(path, tokens, n, fmt)                                                      \
  tyr_shard_write_at(TYR_SITE, (path), (tokens), (n), (fmt))

/* Validates a shard image in memory (what tyr_shards_open does after
 * mapping a file); name is used in messages.  On success sets *tokens (a
 * pointer into data) and *n and returns 0. */
int tyr_shard_parse_at(tyr_site s, const char *name, const void *data, size_t len,
                       tyr_shard_format fmt, const uint16_t **tokens, int64_t *n);

/* ---- loaders --------------------------------------------------------------- */
typedef enum tyr_loader_order {
  TYR_LOADER_SEQUENTIAL = 0, /* windows in file order */
  TYR_LOADER_RANDOM = 1      /* a permutation of the windows per epoch */
} tyr_loader_order;

/* Options; all zero is a sequential loader over llm.c shards, one rank. */
typedef struct tyr_loader_opts {
  tyr_shard_format format;
  tyr_loader_order order;
  uint64_t seed;  /* random order: the permutation's seed */
  int rank;       /* this process's rank in [0, world_size) */
  int world_size; /* number of ranks; 0 means 1 */
  bool align_bos; /* windows start at tokens equal to bos_token */
  int bos_token;  /* in [0, 65535] */
} tyr_loader_opts;

typedef struct tyr_loader tyr_loader;

/* Where a loader is: enough to resume after a restart. */
typedef struct tyr_loader_state {
  int64_t epoch;  /* epochs begun after the first */
  int64_t window; /* next window of the epoch (index in the epoch's order) */
  int64_t T;      /* the sequence length `window` counts in; 0 = none yet */
} tyr_loader_state;

/* Opens the shards of source (see tyr_shards_open).  opts may be NULL. */
tyr_loader *tyr_loader_open_at(tyr_site s, const char *source, const tyr_loader_opts *opts);
#define tyr_loader_open(source, opts) tyr_loader_open_at(TYR_SITE, (source), (opts))
/* Closes the loader and its shards; batches already returned stay valid.
 * NULL is ignored. */
void tyr_loader_close(tyr_loader *l);

/* The next batch: *x and *y become new int64 CPU tensors of shape [B, T].
 * Returns 0, or the status with *x and *y set to NULL and the loader
 * unchanged. */
int tyr_loader_next_at(tyr_site s, tyr_loader *l, int64_t B, int64_t T, tyr_tensor **x,
                       tyr_tensor **y);
#define tyr_loader_next_e(l, B, T, x, y) tyr_loader_next_at(TYR_SITE, (l), (B), (T), (x), (y))

/* Same, into caller buffers of B * T int64 each (row-major [B, T]). */
int tyr_loader_next_into_at(tyr_site s, tyr_loader *l, int64_t B, int64_t T, int64_t *x,
                            int64_t *y);

/* Epochs begun after the first (0 during the first pass). */
int64_t tyr_loader_epoch(const tyr_loader *l);
/* Windows in one epoch for sequence length T (all ranks together); -1 and
 * an error when T < 1.  0 when no window fits. */
int64_t tyr_loader_windows_at(tyr_site s, tyr_loader *l, int64_t T);
/* The loader's shards (owned by l). */
const tyr_shards *tyr_loader_shards(const tyr_loader *l);
/* Back to the first window of epoch 0. */
void tyr_loader_reset(tyr_loader *l);
/* Where l is, to store with a checkpoint and give to tyr_loader_set_state_at. */
tyr_loader_state tyr_loader_get_state(const tyr_loader *l);
/* Returns 0, or the status when the state does not fit this loader's data. */
int tyr_loader_set_state_at(tyr_site s, tyr_loader *l, tyr_loader_state st);
#define tyr_loader_set_state(l, st) tyr_loader_set_state_at(TYR_SITE, (l), (st))

/* The erased call after checking B and T against the declared dims. */
int tyr__loader_next_checked_at(tyr_site s, tyr_loader *l, int64_t B, int64_t T,
                                const int64_t xdims[2], const int64_t ydims[2], tyr_tensor **x,
                                tyr_tensor **y);

#ifdef __cplusplus
}
#endif

/* ---- the typed form ---------------------------------------------------------
 * The batch shape in the C type:
 *
 *     tyr_T(B, T) x, y;
 *     if (tyr_loader_next(loader, B, T, &x, &y)) ...   // 0 or the status
 *
 * x and y must be rank-2 handles.  When B and T and the dims of their types
 * are constants that differ, the build fails; otherwise the dims the types
 * claim are checked at run time (an error names the call).  B and T follow
 * the typed layer's rule: positive and free of side effects.  On error *x
 * and *y are NULL. */
#define tyr__loader_next_rank_error_msg                                                            \
  "tyr_loader_next: x and y must be rank-2 handles, declared tyr_T(B, T)"
TYR_CT_ERROR(tyr__loader_next_rank_error, tyr__loader_next_rank_error_msg);
#define tyr__loader_next_shape_error_msg                                                           \
  "tyr_loader_next: B and T differ from the dims in the type of x or y"
TYR_CT_ERROR(tyr__loader_next_shape_error, tyr__loader_next_shape_error_msg);
#define tyr_loader_next(l, B, T, px, py)                                                           \
  ({                                                                                               \
    __auto_type tyr__px = (px);                                                                    \
    __auto_type tyr__py = (py);                                                                    \
    TYR_RULE_RANK(*tyr__px, 2, tyr__loader_next_rank_error);                                       \
    TYR_RULE_RANK(*tyr__py, 2, tyr__loader_next_rank_error);                                       \
    TYR_RULE(TYR__D0(*tyr__px) == (B) && TYR__D1(*tyr__px) == (T) && TYR__D0(*tyr__py) == (B) &&   \
                 TYR__D1(*tyr__py) == (T),                                                         \
             tyr__loader_next_shape_error);                                                        \
    tyr_tensor *tyr__lx = NULL, *tyr__ly = NULL;                                                   \
    int tyr__lrc = tyr__loader_next_checked_at(                                                    \
        TYR_SITE, (l), (B), (T), (const int64_t[]){TYR__D0(*tyr__px), TYR__D1(*tyr__px)},          \
        (const int64_t[]){TYR__D0(*tyr__py), TYR__D1(*tyr__py)}, &tyr__lx, &tyr__ly);              \
    *tyr__px = (__typeof__(*tyr__px))(tyr__lrc ? NULL : tyr_cast(tyr__lx, B, T));                  \
    *tyr__py = (__typeof__(*tyr__py))(tyr__lrc ? NULL : tyr_cast(tyr__ly, B, T));                  \
    tyr__lrc;                                                                                      \
  })
/* Another name for the typed form. */
#define tyr_loader_next_typed tyr_loader_next

#endif
