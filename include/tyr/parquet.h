/* tyr/parquet.h - a reader for Apache Parquet files.
 *
 * The footer (schema, row groups, column chunks) is read when the file is
 * opened; column data is read one column chunk of one row group at a time
 * with pread, so a file of any size is streamed row group by row group.
 *
 * Supported: flat schemas whose columns are BOOLEAN, INT32, INT64, FLOAT,
 * DOUBLE or BYTE_ARRAY (strings and binary), required or optional (nulls);
 * data pages v1 and v2; PLAIN, PLAIN_DICTIONARY and RLE_DICTIONARY encodings
 * (and RLE for booleans); codecs UNCOMPRESSED, SNAPPY, GZIP and ZSTD.
 * Anything else (nested or repeated columns, INT96 and FIXED_LEN_BYTE_ARRAY,
 * DELTA_* and BYTE_STREAM_SPLIT encodings, LZ4, BROTLI and LZO, encrypted
 * files) is refused with an error naming the feature, the file and the
 * column.  A file with such columns still opens; only reading them fails.
 *
 * Every length and offset in the file is checked: a truncated or corrupt
 * file gives a TYR_ERR_FORMAT error, never a crash.
 *
 * A tyr_parquet_file may be read from several threads at once (reads share
 * no mutable state) as long as none of them closes it or changes its limit. */
#ifndef TYR_PARQUET_H
#define TYR_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Physical types (values as in the Parquet format). */
typedef enum tyr_parquet_type {
  TYR_PARQUET_BOOLEAN = 0,
  TYR_PARQUET_INT32 = 1,
  TYR_PARQUET_INT64 = 2,
  TYR_PARQUET_INT96 = 3,
  TYR_PARQUET_FLOAT = 4,
  TYR_PARQUET_DOUBLE = 5,
  TYR_PARQUET_BYTE_ARRAY = 6,
  TYR_PARQUET_FIXED_LEN_BYTE_ARRAY = 7,
  TYR_PARQUET_GROUP = 8 /* a nested column (not a physical type) */
} tyr_parquet_type;

/* Logical types, from the LogicalType field or the older ConvertedType. */
typedef enum tyr_parquet_logical {
  TYR_PARQUET_LOGICAL_NONE = 0,
  TYR_PARQUET_LOGICAL_STRING, /* UTF-8 text */
  TYR_PARQUET_LOGICAL_ENUM,
  TYR_PARQUET_LOGICAL_JSON,
  TYR_PARQUET_LOGICAL_BSON,
  TYR_PARQUET_LOGICAL_UUID,
  TYR_PARQUET_LOGICAL_DECIMAL,
  TYR_PARQUET_LOGICAL_DATE,
  TYR_PARQUET_LOGICAL_TIME,
  TYR_PARQUET_LOGICAL_TIMESTAMP,
  TYR_PARQUET_LOGICAL_INTEGER, /* see int_bits and int_signed */
  TYR_PARQUET_LOGICAL_FLOAT16,
  TYR_PARQUET_LOGICAL_LIST,
  TYR_PARQUET_LOGICAL_MAP,
  TYR_PARQUET_LOGICAL_OTHER
} tyr_parquet_logical;

typedef enum tyr_parquet_time_unit {
  TYR_PARQUET_UNIT_NONE = 0,
  TYR_PARQUET_MILLIS,
  TYR_PARQUET_MICROS,
  TYR_PARQUET_NANOS
} tyr_parquet_time_unit;

/* One top-level column of the file. */
typedef struct tyr_parquet_column_info {
  const char *name;
  tyr_parquet_type type; /* TYR_PARQUET_GROUP for a nested column */
  tyr_parquet_logical logical;
  bool optional;              /* may hold nulls */
  bool repeated;              /* a repeated (list) column: not readable */
  int int_bits;               /* LOGICAL_INTEGER: 8, 16, 32 or 64 */
  bool int_signed;            /* LOGICAL_INTEGER */
  int scale, precision;       /* LOGICAL_DECIMAL */
  tyr_parquet_time_unit unit; /* LOGICAL_TIME / LOGICAL_TIMESTAMP */
  bool utc;                   /* LOGICAL_TIMESTAMP: adjusted to UTC */
  bool readable;              /* tyr_parquet_read_column can read it */
} tyr_parquet_column_info;

typedef struct tyr_parquet_file tyr_parquet_file;

/* Opens a file and reads its footer.  NULL (after raising TYR_ERR_IO or
 * TYR_ERR_FORMAT) when it is missing, not Parquet, truncated, corrupt or
 * encrypted. */
tyr_parquet_file *tyr_parquet_open_at(tyr_site s, const char *path);
#define tyr_parquet_open(path) tyr_parquet_open_at(TYR_SITE, (path))
/* NULL is ignored. */
void tyr_parquet_close(tyr_parquet_file *f);

/* Footer facts: path, writer, rows, row groups (strings owned by f). */
const char *tyr_parquet_path(const tyr_parquet_file *f);
const char *tyr_parquet_created_by(const tyr_parquet_file *f); /* "" when absent */
int64_t tyr_parquet_num_rows(const tyr_parquet_file *f);
int tyr_parquet_num_row_groups(const tyr_parquet_file *f);
/* Rows of one row group; -1 when rg is out of range. */
int64_t tyr_parquet_row_group_num_rows(const tyr_parquet_file *f, int rg);
int tyr_parquet_num_columns(const tyr_parquet_file *f);
/* Index of the top-level column with that name, or -1 (no error raised). */
int tyr_parquet_column_index(const tyr_parquet_file *f, const char *name);
/* Column metadata; NULL when col is out of range. */
const tyr_parquet_column_info *tyr_parquet_column(const tyr_parquet_file *f, int col);
const char *tyr_parquet_column_name(const tyr_parquet_file *f, int col);
tyr_parquet_type tyr_parquet_column_type(const tyr_parquet_file *f, int col);
tyr_parquet_logical tyr_parquet_column_logical(const tyr_parquet_file *f, int col);

/* Static names of the physical and logical types. */
const char *tyr_parquet_type_name(tyr_parquet_type t);       /* "INT32" */
const char *tyr_parquet_logical_name(tyr_parquet_logical l); /* "STRING" */

/* Largest single buffer a read may allocate (a decompressed page, a
 * column's values or string bytes); larger ones are refused with
 * TYR_ERR_FORMAT instead of exhausting memory on a corrupt or hostile file.
 * Default 4 GiB. */
void tyr_parquet_set_max_alloc(tyr_parquet_file *f, size_t bytes);

/* One column of one row group, decoded.  Row i is null when valid[i] == 0;
 * a null row holds 0 (numbers, false) or the empty string.
 *   BOOLEAN:    bools[i] is 0 or 1
 *   INT32:      i32[i]        INT64: i64[i]
 *   FLOAT:      f32[i]        DOUBLE: f64[i]
 *   BYTE_ARRAY: row i is bytes[offsets[i] .. offsets[i+1]), not
 *               NUL-terminated; offsets has num_rows + 1 entries. */
typedef struct tyr_parquet_column_data {
  tyr_parquet_type type;
  int64_t num_rows;
  int64_t num_nulls;
  uint8_t *valid; /* num_rows entries, 1 = present; always allocated */
  union {
    void *values; /* NULL for BYTE_ARRAY */
    uint8_t *bools;
    int32_t *i32;
    int64_t *i64;
    float *f32;
    double *f64;
  };
  int64_t *offsets; /* BYTE_ARRAY only */
  char *bytes;      /* BYTE_ARRAY only; never NULL for BYTE_ARRAY */
  int64_t nbytes;   /* BYTE_ARRAY only: offsets[num_rows] */
} tyr_parquet_column_data;

/* Reads column col of row group rg into *out (which the caller frees with
 * tyr_parquet_column_data_free).  Returns 0, or a non-zero tyr_status after
 * raising an error naming the file, the column and the row group; *out is
 * then zeroed and nothing is left allocated. */
int tyr_parquet_read_column_at(tyr_site s, tyr_parquet_file *f, int rg, int col,
                               tyr_parquet_column_data *out);
#define tyr_parquet_read_column(f, rg, col, out)                                                   \
  tyr_parquet_read_column_at(TYR_SITE, (f), (rg), (col), (out))
/* Frees the buffers and zeroes *d.  NULL is ignored. */
void tyr_parquet_column_data_free(tyr_parquet_column_data *d);

/* Calls fn for every non-null value of the string (BYTE_ARRAY) column
 * `column` of the file at path, in file order, one column chunk in memory
 * at a time.  str points into the decoded page (no copy), is valid only
 * during the call and is not NUL-terminated.  Stops when fn returns
 * non-zero.  Returns 0 (also after such an early stop) or the status of the
 * error raised; fn has then seen the values of the pages before the
 * damaged one, none of that page. */
int tyr_parquet_foreach_string_at(tyr_site s, const char *path, const char *column,
                                  int (*fn)(const char *str, size_t len, void *ctx), void *ctx);
#define tyr_parquet_foreach_string(path, column, fn, ctx)                                          \
  tyr_parquet_foreach_string_at(TYR_SITE, (path), (column), (fn), (ctx))

#ifdef __cplusplus
}
#endif
#endif
