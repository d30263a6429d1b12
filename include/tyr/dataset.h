/* tyr/dataset.h - an in-memory dataset of tensors and a batch iterator over
 * it (PyTorch's TensorDataset + DataLoader, without worker processes).
 *
 * A dataset holds up to TYR_DATASET_MAX tensors that share their first dim,
 * the number of examples N: e.g. images [N, 784] and labels [N].  They must
 * be contiguous CPU tensors; the dataset keeps a reference to each (the
 * caller may free its own).
 *
 * An iterator cuts an epoch into batches of batch_size examples, in order
 * or (shuffle) in a permutation drawn from (seed, epoch) with the library's
 * Philox generator: the same seed gives the same batches on every machine,
 * each epoch a new permutation, independent of the global generator.  The
 * last batch of an epoch has N % batch_size examples; drop_last leaves it
 * out.  A batch is a set of new tensors [b, ...] (b the batch's rows), one
 * per dataset tensor, with their dtypes, on opts.device, owned like any
 * tensor (they go to the innermost open scope, or to the caller).
 *
 *     tyr_dataset *ds = tyr_dataset_new(x, y);
 *     tyr_batch_iter *it = tyr_batch_iter_new(ds, &(tyr_batch_opts){
 *         .batch_size = 64, .shuffle = true, .seed = 1});
 *     for (int64_t b; (b = tyr_batch_iter_peek(it)) > 0;) {
 *       TYR_SCOPE;
 *       if (b == 64) {                          // a full batch: typed
 *         tyr_T(64, 784) xb; tyr_T(64) yb;
 *         tyr_batch_next(it, &xb, &yb);
 *         ...
 *       } else {                                // the rest: erased
 *         tyr_tensor *out[2];
 *         tyr_batch_next_e(it, out);
 *       }
 *     }
 *     tyr_batch_iter_next_epoch(it);            // or: the next call does it
 *
 * Position.  tyr_batch_iter_get_state / _set_state give and take the epoch
 * and the next example's index in the epoch's order: a checkpoint that
 * stores them resumes at the exact batch (the permutation is rebuilt from
 * the seed and epoch). */
#ifndef TYR_DATASET_H
#define TYR_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "tyr/tensor.h"
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_DATASET_MAX 8

typedef struct tyr_dataset tyr_dataset;

/* A dataset of n tensors (1..TYR_DATASET_MAX) with equal first dims.  NULL,
 * with an error naming the tensor, when they differ, are empty, scalars,
 * not on the CPU or not contiguous. */
tyr_dataset *tyr_dataset_new_at(tyr_site s, int n, tyr_tensor *const *tensors);
#define tyr_dataset_new(...)                                                                       \
  tyr_dataset_new_at(TYR_SITE,                                                                     \
                     (int)(sizeof((tyr_tensor *[]){__VA_ARGS__}) / sizeof(tyr_tensor *)),          \
                     (tyr_tensor *[]){__VA_ARGS__})
/* Releases the dataset's references; NULL is ignored. */
void tyr_dataset_free(tyr_dataset *d);
/* Examples (the shared first dim). */
int64_t tyr_dataset_len(const tyr_dataset *d);
/* Tensors in the dataset, and tensor i (borrowed). */
int tyr_dataset_count(const tyr_dataset *d);
tyr_tensor *tyr_dataset_tensor(const tyr_dataset *d, int i);

typedef struct tyr_batch_opts {
  int64_t batch_size; /* >= 1 */
  bool shuffle;       /* a permutation per epoch, from (seed, epoch) */
  uint64_t seed;
  bool drop_last;    /* leave out the last partial batch of each epoch */
  tyr_device device; /* where batches go (zero: the CPU) */
} tyr_batch_opts;

typedef struct tyr_batch_iter tyr_batch_iter;

/* The iterator keeps a pointer to d, which must outlive it. */
tyr_batch_iter *tyr_batch_iter_new_at(tyr_site s, tyr_dataset *d, const tyr_batch_opts *opts);
/* (variadic so that a compound literal with commas can be the options) */
#define tyr_batch_iter_new(d, ...) tyr_batch_iter_new_at(TYR_SITE, (d), (__VA_ARGS__))
void tyr_batch_iter_free(tyr_batch_iter *it);

/* Rows of the next batch of this epoch; 0 when the epoch is over. */
int64_t tyr_batch_iter_peek(const tyr_batch_iter *it);
/* The next batch: out[i] (one per dataset tensor) become new tensors
 * [b, ...].  Returns b; at the end of an epoch returns 0 with out[] NULL
 * and moves to the next epoch (the next call gives its first batch);
 * -1 with out[] NULL on error. */
int64_t tyr_batch_next_at(tyr_site s, tyr_batch_iter *it, tyr_tensor **out);
#define tyr_batch_next_e(it, out) tyr_batch_next_at(TYR_SITE, (it), (out))
/* Starts the next epoch now (the rest of this one is skipped). */
void tyr_batch_iter_next_epoch(tyr_batch_iter *it);
/* Batches in one epoch (with drop_last, only the full ones). */
int64_t tyr_batch_iter_batches(const tyr_batch_iter *it);
/* Epochs begun after the first. */
int64_t tyr_batch_iter_epoch(const tyr_batch_iter *it);

typedef struct tyr_batch_state {
  int64_t epoch; /* epochs begun after the first */
  int64_t pos;   /* the next example's index in the epoch's order */
} tyr_batch_state;
tyr_batch_state tyr_batch_iter_get_state(const tyr_batch_iter *it);
/* 0, or the status (nothing changed) when pos is outside 0..N or epoch < 0. */
int tyr_batch_iter_set_state_at(tyr_site s, tyr_batch_iter *it, tyr_batch_state st);
#define tyr_batch_iter_set_state(it, st) tyr_batch_iter_set_state_at(TYR_SITE, (it), (st))

/* The erased call after checking the handles' claimed dims: n handles,
 * rank[i] and dims[i] (padded to 6) what handle i's type claims.  Raises
 * when the next batch is not full (a partial batch needs the erased form)
 * or its shape differs from the claim. */
int64_t tyr__batch_next_checked_at(tyr_site s, tyr_batch_iter *it, int n, const int *rank,
                                   const int64_t (*dims)[6], tyr_tensor **out);

#ifdef __cplusplus
}
#endif

/* ---- the typed form ----------------------------------------------------------
 *     tyr_T(B, 784) x;  tyr_T(B) y;
 *     tyr_batch_next(it, &x, &y);     // B rows, or 0 at the end of an epoch
 * For full batches of a dataset of one or two tensors.  The first dims of
 * the handles' types must agree (a build error when they are constants that
 * differ); the batch size, the dataset's other dims, and that the batch is
 * full are checked at run time (an error names the call).  At the end of an
 * epoch it returns 0 with the handles NULL, like the erased form. */
#define tyr__batch_next_dim0_error_msg                                                             \
  "tyr_batch_next: the first dims of the handles (the batch size) differ"
TYR_CT_ERROR(tyr__batch_next_dim0_error, tyr__batch_next_dim0_error_msg);
#define TYR__BATCH_DIMS(p)                                                                         \
  { TYR__DIMS_OF(p) }
#define tyr_batch_next(it, ...) TYR__CAT(TYR__BATCH_NEXT_, TYR__NARGS(__VA_ARGS__))(it, __VA_ARGS__)
#define TYR__BATCH_NEXT_1(it, px)                                                                  \
  ({                                                                                               \
    __auto_type tyr__bx = (px);                                                                    \
    tyr_tensor *tyr__bo[1] = {NULL};                                                               \
    int64_t tyr__brc =                                                                             \
        tyr__batch_next_checked_at(TYR_SITE, (it), 1, (const int[]){tyr_rank(*tyr__bx)},           \
                                   (const int64_t[][6]){TYR__BATCH_DIMS(*tyr__bx)}, tyr__bo);      \
    *tyr__bx = (__typeof__(*tyr__bx))tyr__bo[0];                                                   \
    tyr__brc;                                                                                      \
  })
#define TYR__BATCH_NEXT_2(it, px, py)                                                              \
  ({                                                                                               \
    __auto_type tyr__bx = (px);                                                                    \
    __auto_type tyr__by = (py);                                                                    \
    TYR_RULE(TYR__D0(*tyr__bx) == TYR__D0(*tyr__by), tyr__batch_next_dim0_error);                  \
    tyr_tensor *tyr__bo[2] = {NULL, NULL};                                                         \
    int64_t tyr__brc = tyr__batch_next_checked_at(                                                 \
        TYR_SITE, (it), 2, (const int[]){tyr_rank(*tyr__bx), tyr_rank(*tyr__by)},                  \
        (const int64_t[][6]){TYR__BATCH_DIMS(*tyr__bx), TYR__BATCH_DIMS(*tyr__by)}, tyr__bo);      \
    *tyr__bx = (__typeof__(*tyr__bx))tyr__bo[0];                                                   \
    *tyr__by = (__typeof__(*tyr__by))tyr__bo[1];                                                   \
    tyr__brc;                                                                                      \
  })

#endif
