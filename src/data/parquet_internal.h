/* Parquet reader internals: the decoded footer, page headers, the
 * RLE/bit-packed hybrid decoder and decompression (not installed). */
#ifndef TYR_DATA_PARQUET_INTERNAL_H
#define TYR_DATA_PARQUET_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tyr/parquet.h"

/* Enumerations of the Parquet format. */
enum {
  PQ_REQUIRED = 0,
  PQ_OPTIONAL = 1,
  PQ_REPEATED = 2,
};
enum {
  PQ_CODEC_UNCOMPRESSED = 0,
  PQ_CODEC_SNAPPY = 1,
  PQ_CODEC_GZIP = 2,
  PQ_CODEC_LZO = 3,
  PQ_CODEC_BROTLI = 4,
  PQ_CODEC_LZ4 = 5,
  PQ_CODEC_ZSTD = 6,
  PQ_CODEC_LZ4_RAW = 7,
};
enum {
  PQ_ENC_PLAIN = 0,
  PQ_ENC_PLAIN_DICTIONARY = 2,
  PQ_ENC_RLE = 3,
  PQ_ENC_BIT_PACKED = 4,
  PQ_ENC_DELTA_BINARY_PACKED = 5,
  PQ_ENC_DELTA_LENGTH_BYTE_ARRAY = 6,
  PQ_ENC_DELTA_BYTE_ARRAY = 7,
  PQ_ENC_RLE_DICTIONARY = 8,
  PQ_ENC_BYTE_STREAM_SPLIT = 9,
};
enum {
  PQ_PAGE_DATA = 0,
  PQ_PAGE_INDEX = 1,
  PQ_PAGE_DICTIONARY = 2,
  PQ_PAGE_DATA_V2 = 3,
};

const char *tyr_pq_codec_name(int codec);
const char *tyr_pq_encoding_name(int enc);

/* One element of the flattened schema (depth-first order). */
typedef struct pq_schema_el {
  char *name;
  int type; /* physical type, -1 for a group */
  int type_length;
  int repetition; /* -1 when absent (the root) */
  int num_children;
  int converted; /* ConvertedType, -1 when absent */
  int scale, precision;
  /* LogicalType union member (field id), 0 when absent, and its details */
  int logical;
  int int_bits;
  bool int_signed;
  int unit; /* tyr_parquet_time_unit */
  bool utc;
} pq_schema_el;

/* Column chunk metadata, one per leaf column per row group. */
typedef struct pq_chunk {
  int type;
  int codec;
  int64_t num_values;
  int64_t total_uncompressed;
  int64_t total_compressed;
  int64_t data_page_offset;
  int64_t dictionary_page_offset; /* 0 when absent */
  bool has_meta;                  /* ColumnMetaData present */
  bool encrypted;                 /* crypto metadata present */
  bool external;                  /* file_path set: data lives in another file */
} pq_chunk;

typedef struct pq_row_group {
  int64_t num_rows;
  int num_chunks;
  pq_chunk *chunks;
} pq_row_group;

typedef struct pq_meta {
  int64_t num_rows;
  int num_schema;
  pq_schema_el *schema;
  int num_row_groups;
  pq_row_group *row_groups;
  char *created_by;
  bool encrypted; /* encryption_algorithm present (plaintext footer mode) */
} pq_meta;

/* Decodes FileMetaData.  Returns 0, or -1 with a message in err. */
int tyr_pq_parse_meta(const uint8_t *data, size_t n, pq_meta *m, char *err, size_t errn);
void tyr_pq_meta_free(pq_meta *m);

typedef struct pq_page_header {
  int type;
  int32_t uncompressed_size;
  int32_t compressed_size;
  /* data page v1 / v2 and dictionary page */
  int32_t num_values;
  int encoding;
  int def_encoding;   /* v1 */
  int rep_encoding;   /* v1 */
  int32_t num_nulls;  /* v2 */
  int32_t num_rows;   /* v2 */
  int32_t def_length; /* v2 */
  int32_t rep_length; /* v2 */
  bool is_compressed; /* v2, default true */
  bool has_body;      /* the header for its type was present */
} pq_page_header;

/* Decodes a PageHeader at data; *used gets its length.  Returns 0, or -1
 * with a message in err. */
int tyr_pq_parse_page_header(const uint8_t *data, size_t n, pq_page_header *h, size_t *used,
                             char *err, size_t errn);

/* RLE / bit-packed hybrid decoder (levels and dictionary indices). */
typedef struct pq_rle {
  const uint8_t *p, *end;
  int width;          /* bits per value, 0..32 */
  uint32_t run_value; /* current RLE run */
  int64_t rle_left;   /* values left in the RLE run */
  const uint8_t *bp;  /* current bit-packed run */
  const uint8_t *bp_end;
  int64_t bp_pos;  /* values already taken from it */
  int64_t bp_left; /* values left in it */
} pq_rle;

void tyr_pq_rle_init(pq_rle *r, const uint8_t *data, size_t n, int width);
/* Decodes exactly n values into out.  Returns 0, or -1 when the data ends
 * early or is malformed. */
int tyr_pq_rle_u32(pq_rle *r, uint32_t *out, int64_t n);
/* Same for values known to fit a byte (levels, booleans); values above
 * max are an error. */
int tyr_pq_rle_u8(pq_rle *r, uint8_t *out, int64_t n, uint32_t max);

/* Column chunks of at least this many bytes are memory-mapped, smaller
 * ones read with pread (tests lower it to cover both paths). */
extern int64_t tyr__parquet_mmap_min;

/* Decompresses src into exactly dst_n bytes of dst.  Returns 0, or -1 with
 * a message in err. */
int tyr_pq_decompress(int codec, const uint8_t *src, size_t src_n, uint8_t *dst, size_t dst_n,
                      char *err, size_t errn);

#endif
