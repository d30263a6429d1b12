/* tyr/idx.h - IDX files: the format of MNIST and Fashion-MNIST.
 *
 * An IDX file is a 4-byte magic (0, 0, type, rank), rank big-endian uint32
 * dims, then the elements row-major, big-endian.  Files compressed with gzip
 * (as the data sets are distributed, e.g. train-images-idx3-ubyte.gz) are
 * read through zlib; whether a file is compressed is seen from its first
 * bytes, not its name.
 *
 * Element types and the dtype of the tensor they are read into:
 *
 *   0x08 unsigned byte  -> TYR_U8
 *   0x09 signed byte    -> TYR_I32 (widened)
 *   0x0B int16          -> TYR_I32 (widened)
 *   0x0C int32          -> TYR_I32
 *   0x0D float32        -> TYR_F32
 *   0x0E float64        -> TYR_F64
 *
 * The rank must be 1..TYR_MAX_RANK.  The data after the header must be
 * exactly what the dims say: fewer bytes is "truncated", more is "trailing
 * data".  Dims whose size exceeds what the file could hold (for gzip, the
 * compressed size times deflate's largest ratio) are refused before any
 * allocation.  Every error names the file, e.g.
 *   "train-images-idx3-ubyte.gz: truncated: the dims [60000, 28, 28] need
 *    47040000 bytes of data, the file has 1000".
 *
 * Ownership: the result is a new contiguous CPU tensor owned like any tensor
 * (it goes to the innermost open scope, or to the caller). */
#ifndef TYR_IDX_H
#define TYR_IDX_H

#include <stddef.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the IDX file at path (gzipped or not) into a new CPU tensor with the
 * file's dims.  NULL, with an error naming the file, on failure. */
tyr_tensor *tyr_idx_load_at(tyr_site s, const char *path);
#define tyr_idx_load(path) tyr_idx_load_at(TYR_SITE, (path))

/* The same from an image of the file in memory (gzipped or not); name is
 * used in messages. */
tyr_tensor *tyr_idx_parse_at(tyr_site s, const char *name, const void *data, size_t len);
#define tyr_idx_parse(name, data, len) tyr_idx_parse_at(TYR_SITE, (name), (data), (len))

/* Writes t (a contiguous CPU tensor of dtype u8, i32, f32 or f64, rank
 * 1..TYR_MAX_RANK) to path as an uncompressed IDX file, atomically (a
 * temporary name in the same directory, fsync, rename).  Returns 0 or the
 * status. */
int tyr_idx_save_at(tyr_site s, const char *path, const tyr_tensor *t);
#define tyr_idx_save(path, t) tyr_idx_save_at(TYR_SITE, (path), (t))

#ifdef __cplusplus
}
#endif
#endif
