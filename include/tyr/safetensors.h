/* tyr/safetensors.h - reading and writing safetensors files.
 *
 * The format: an 8-byte little-endian header size N, N bytes of UTF-8 JSON
 *
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 *
 * and then the data buffer, in which every tensor's bytes lie at
 * [begin, end) (little-endian, C order).
 *
 * Reading (tyr_safetensors_open) checks everything the format's reference
 * reader checks, and a little more:
 *   - the file is at least 8 bytes; N is at most 100,000,000 and 8 + N is
 *     not beyond the end of the file;
 *   - the header is valid UTF-8, starts with '{' and is one JSON object
 *     (trailing whitespace allowed) without duplicate keys;
 *   - each entry other than "__metadata__" is an object with exactly the
 *     fields "dtype", "shape" and "data_offsets" (the reference reader
 *     ignores unknown fields; Tyr rejects them);
 *   - dtype is one of F64 F32 BF16 F16 I64 I32 U8 BOOL (other safetensors
 *     dtypes such as I8, U16, U32, U64, F8_E4M3 are refused as unsupported);
 *   - shape is an array of at most TYR_MAX_RANK non-negative integers whose
 *     product (times the element size) does not overflow;
 *   - data_offsets is [begin, end] with begin <= end <= the data buffer size,
 *     end - begin == element size * product(shape);
 *   - sorted by offsets, the tensors are contiguous from 0 to the end of the
 *     file: no overlap, no gap, no trailing bytes;
 *   - "__metadata__", when present and not null, is an object of strings;
 *   - names and metadata strings hold no NUL character.
 * Every failure raises TYR_ERR_FORMAT (TYR_ERR_IO for missing or unreadable
 * files) with a message naming the file and, where there is one, the tensor
 * or metadata key.
 *
 * The open file keeps its descriptor and the parsed header; tensors are read
 * with pread when loaded, so a file may be opened once and its tensors loaded
 * one at a time (also from several threads).
 *
 * Writing (tyr_safetensors_save) produces the same bytes as the format's
 * reference writer (the Rust crate behind Python's save_file):
 *   - tensors are ordered by dtype alignment, largest first, in the crate's
 *     order I64, F64, F32, I32, BF16, F16, U8, BOOL, and then by name
 *     (bytewise); the data buffer follows that order, so every tensor starts
 *     at a multiple of its element size;
 *   - the JSON is compact; "__metadata__" comes first when there are metadata
 *     entries (it is left out when there are none), its keys sorted bytewise
 *     (the reference writer uses a hash map, so any order is valid);
 *   - "dtype", "shape", "data_offsets" in that order; strings escaped as the
 *     reference writer does;
 *   - the header is padded with spaces to a multiple of 8 bytes.
 * The file is written to a temporary name in the same directory, fsync'd
 * and renamed over `path` only when complete, and the directory fsync'd
 * (tyr/fileio.h); on failure `path` is untouched and the temporary file is
 * removed, and temporary files a killed writer left are removed by the next
 * save to the same path. */
#ifndef TYR_SAFETENSORS_H
#define TYR_SAFETENSORS_H

#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header the reader accepts (and the writer produces), in bytes. */
#define TYR_SAFETENSORS_MAX_HEADER 100000000ull

typedef struct tyr_safetensors tyr_safetensors;

/* One tensor of an open file. */
typedef struct tyr_safetensors_entry {
  const char *name; /* owned by the file; valid until tyr_safetensors_close */
  tyr_dtype dtype;
  int rank;
  int64_t shape[TYR_MAX_RANK];
  uint64_t begin, end; /* byte offsets in the data buffer */
} tyr_safetensors_entry;

/* Opens and checks a file.  Returns NULL (having raised) on failure. */
tyr_safetensors *tyr_safetensors_open_at(tyr_site s, const char *path);
#define tyr_safetensors_open(path) tyr_safetensors_open_at(TYR_SITE, (path))

/* Closes the file and frees the header.  Tensors already loaded stay valid.
 * NULL is ignored. */
void tyr_safetensors_close(tyr_safetensors *f);

/* The path given to open (a copy owned by f). */
const char *tyr_safetensors_path(const tyr_safetensors *f);

/* Number of tensors, and tensor i in file order: sorted by data offsets
 * (ties, which only zero-sized tensors can have, by name).  Out-of-range
 * indices give NULL. */
int tyr_safetensors_count(const tyr_safetensors *f);
const tyr_safetensors_entry *tyr_safetensors_entry_at(const tyr_safetensors *f, int i);
const char *tyr_safetensors_name(const tyr_safetensors *f, int i);
/* The entry with this name, or NULL when there is none (nothing raised). */
const tyr_safetensors_entry *tyr_safetensors_find(const tyr_safetensors *f, const char *name);

/* Reads one tensor into a new contiguous CPU tensor, owned like any new
 * tensor (by the innermost open scope, else by the caller).  Raises and
 * returns NULL for an unknown name or a read error. */
tyr_tensor *tyr_safetensors_load_at(tyr_site s, tyr_safetensors *f, const char *name);
#define tyr_safetensors_load(f, name) tyr_safetensors_load_at(TYR_SITE, (f), (name))

/* Reads one tensor into an existing tensor of the same dtype and shape, on
 * any device and with any strides (e.g. a model's parameter).  Returns 0,
 * or a non-zero status having raised (dst unchanged unless the failure came
 * from the device copy itself). */
int tyr_safetensors_load_into_at(tyr_site s, tyr_safetensors *f, const char *name, tyr_tensor *dst);
#define tyr_safetensors_load_into(f, name, dst)                                                    \
  tyr_safetensors_load_into_at(TYR_SITE, (f), (name), (dst))

/* The "__metadata__" value for key, or NULL when absent. */
const char *tyr_safetensors_metadata(const tyr_safetensors *f, const char *key);
/* Number of metadata entries and key i, sorted bytewise (NULL when out of
 * range). */
int tyr_safetensors_metadata_count(const tyr_safetensors *f);
const char *tyr_safetensors_metadata_key(const tyr_safetensors *f, int i);

/* Writes n tensors (names[i] -> tensors[i]) and nmeta metadata strings to
 * path.  Tensors may be on any device and have any strides: they are copied
 * to contiguous host bytes first.  Names must be distinct, valid UTF-8, and
 * not "__metadata__"; metadata keys distinct, keys and values valid UTF-8.
 * Returns 0, or a non-zero status having raised (path left as it was). */
int tyr_safetensors_save_at(tyr_site s, const char *path, int n, const char *const *names,
                            tyr_tensor *const *tensors, int nmeta, const char *const *meta_keys,
                            const char *const *meta_values);
#define tyr_safetensors_save(...) tyr_safetensors_save_at(TYR_SITE, __VA_ARGS__)

/* The safetensors name of a dtype ("F32", ...), or NULL for an invalid one. */
const char *tyr_safetensors_dtype_name(tyr_dtype dt);

#ifdef __cplusplus
}
#endif
#endif
