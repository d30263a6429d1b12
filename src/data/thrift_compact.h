/* A bounds-checked reader of the Thrift compact protocol (the encoding of
 * Parquet's footer and page headers).  Errors are sticky: after the first
 * one every read returns zero/false and tyr_thrift_failed() is true, so a
 * struct decoder can read on and check once at the end. */
#ifndef TYR_DATA_THRIFT_COMPACT_H
#define TYR_DATA_THRIFT_COMPACT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Compact protocol wire types. */
enum {
  TYR_THRIFT_STOP = 0,
  TYR_THRIFT_TRUE = 1,
  TYR_THRIFT_FALSE = 2,
  TYR_THRIFT_I8 = 3,
  TYR_THRIFT_I16 = 4,
  TYR_THRIFT_I32 = 5,
  TYR_THRIFT_I64 = 6,
  TYR_THRIFT_DOUBLE = 7,
  TYR_THRIFT_BINARY = 8,
  TYR_THRIFT_LIST = 9,
  TYR_THRIFT_SET = 10,
  TYR_THRIFT_MAP = 11,
  TYR_THRIFT_STRUCT = 12
};

/* Deepest struct/list nesting accepted (Parquet needs about 6). */
#define TYR_THRIFT_MAX_DEPTH 32

typedef struct tyr_thrift {
  const uint8_t *start, *p, *end;
  int depth;
  const char *err;   /* first error (a static string), or NULL */
  size_t err_offset; /* byte offset of the first error */
  int16_t last_id[TYR_THRIFT_MAX_DEPTH + 1];
} tyr_thrift;

typedef struct tyr_thrift_field {
  int16_t id;
  uint8_t type; /* TYR_THRIFT_* ; TRUE/FALSE carry a bool field's value */
} tyr_thrift_field;

void tyr_thrift_init(tyr_thrift *t, const void *data, size_t n);
bool tyr_thrift_failed(const tyr_thrift *t);
/* Records an error (the first one wins); returns false. */
bool tyr_thrift_fail(tyr_thrift *t, const char *why);
/* Bytes consumed so far. */
size_t tyr_thrift_offset(const tyr_thrift *t);

/* Struct traversal:
 *   tyr_thrift_struct_begin(t);
 *   while (tyr_thrift_next_field(t, &f)) switch (f.id) { ... default: tyr_thrift_skip(t, f.type); }
 *   tyr_thrift_struct_end(t);
 * next_field returns false at the STOP byte or on error. */
bool tyr_thrift_struct_begin(tyr_thrift *t);
bool tyr_thrift_next_field(tyr_thrift *t, tyr_thrift_field *f);
void tyr_thrift_struct_end(tyr_thrift *t);

/* Values of a given wire type; a mismatched type is an error.  read_int
 * accepts I8, I16, I32 and I64 and checks the value fits [lo, hi]. */
int64_t tyr_thrift_read_int(tyr_thrift *t, uint8_t type, int64_t lo, int64_t hi);
/* A bool field (type TRUE/FALSE) or, with in_list, a one-byte list element. */
bool tyr_thrift_read_bool(tyr_thrift *t, uint8_t type, bool in_list);
double tyr_thrift_read_double(tyr_thrift *t, uint8_t type);
/* A BINARY/string: points into the buffer. */
bool tyr_thrift_read_binary(tyr_thrift *t, uint8_t type, const uint8_t **data, size_t *len);
/* A LIST or SET header: element type and count.  The count is checked
 * against the bytes left (every element takes at least one byte). */
bool tyr_thrift_read_list(tyr_thrift *t, uint8_t type, uint8_t *elem_type, int64_t *count);
/* Skips one value of the given type (nested values included). */
bool tyr_thrift_skip(tyr_thrift *t, uint8_t type);

#endif
