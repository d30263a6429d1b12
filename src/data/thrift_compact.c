/* Thrift compact protocol decoding, every read bounds-checked. */
#include "data/thrift_compact.h"

#include <string.h>

void tyr_thrift_init(tyr_thrift *t, const void *data, size_t n) {
  memset(t, 0, sizeof *t);
  t->start = t->p = (const uint8_t *)data;
  t->end = t->start + n;
}

bool tyr_thrift_failed(const tyr_thrift *t) {
  return t->err != NULL;
}

bool tyr_thrift_fail(tyr_thrift *t, const char *why) {
  if (!t->err) {
    t->err = why;
    t->err_offset = (size_t)(t->p - t->start);
  }
  t->p = t->end; /* stop everything that follows */
  return false;
}

size_t tyr_thrift_offset(const tyr_thrift *t) {
  return (size_t)(t->p - t->start);
}

static bool read_byte(tyr_thrift *t, uint8_t *b) {
  *b = 0;
  if (t->err) return false;
  if (t->p >= t->end) return tyr_thrift_fail(t, "unexpected end of data");
  *b = *t->p++;
  return true;
}

static bool read_varint(tyr_thrift *t, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b = 0;
    if (!read_byte(t, &b)) return false;
    if (shift == 63 && (b & 0x7e)) return tyr_thrift_fail(t, "varint overflows 64 bits");
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return tyr_thrift_fail(t, "varint longer than 10 bytes");
}

static int64_t zigzag(uint64_t v) {
  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

bool tyr_thrift_struct_begin(tyr_thrift *t) {
  if (t->err) return false;
  if (t->depth >= TYR_THRIFT_MAX_DEPTH) return tyr_thrift_fail(t, "nesting too deep");
  t->depth++;
  t->last_id[t->depth] = 0;
  return true;
}

void tyr_thrift_struct_end(tyr_thrift *t) {
  if (t->depth > 0) t->depth--;
}

bool tyr_thrift_next_field(tyr_thrift *t, tyr_thrift_field *f) {
  uint8_t b = 0;
  if (!read_byte(t, &b)) return false;
  uint8_t type = b & 0x0f;
  if (type == TYR_THRIFT_STOP) {
    if (b != 0) return tyr_thrift_fail(t, "bad field header");
    return false;
  }
  if (type > TYR_THRIFT_STRUCT) return tyr_thrift_fail(t, "unknown field type");
  int delta = b >> 4;
  int64_t id;
  if (delta) {
    id = (int64_t)t->last_id[t->depth] + delta;
  } else {
    uint64_t v;
    if (!read_varint(t, &v)) return false;
    id = zigzag(v);
  }
  if (id < INT16_MIN || id > INT16_MAX) return tyr_thrift_fail(t, "field id out of range");
  t->last_id[t->depth] = (int16_t)id;
  f->id = (int16_t)id;
  f->type = type;
  return true;
}

int64_t tyr_thrift_read_int(tyr_thrift *t, uint8_t type, int64_t lo, int64_t hi) {
  if (t->err) return 0;
  int64_t v;
  if (type == TYR_THRIFT_I8) {
    uint8_t b = 0;
    if (!read_byte(t, &b)) return 0;
    v = (int8_t)b;
  } else if (type == TYR_THRIFT_I16 || type == TYR_THRIFT_I32 || type == TYR_THRIFT_I64) {
    uint64_t u;
    if (!read_varint(t, &u)) return 0;
    v = zigzag(u);
    if (type == TYR_THRIFT_I16 && (v < INT16_MIN || v > INT16_MAX))
      return tyr_thrift_fail(t, "i16 out of range"), 0;
    if (type == TYR_THRIFT_I32 && (v < INT32_MIN || v > INT32_MAX))
      return tyr_thrift_fail(t, "i32 out of range"), 0;
  } else {
    return tyr_thrift_fail(t, "expected an integer field"), 0;
  }
  if (v < lo || v > hi) return tyr_thrift_fail(t, "integer value out of range"), 0;
  return v;
}

bool tyr_thrift_read_bool(tyr_thrift *t, uint8_t type, bool in_list) {
  if (t->err) return false;
  if (in_list) {
    uint8_t b = 0;
    if (!read_byte(t, &b)) return false;
    return b == 1;
  }
  if (type == TYR_THRIFT_TRUE) return true;
  if (type == TYR_THRIFT_FALSE) return false;
  return tyr_thrift_fail(t, "expected a bool field");
}

double tyr_thrift_read_double(tyr_thrift *t, uint8_t type) {
  if (t->err) return 0;
  if (type != TYR_THRIFT_DOUBLE) return tyr_thrift_fail(t, "expected a double field"), 0;
  if (t->end - t->p < 8) return tyr_thrift_fail(t, "unexpected end of data"), 0;
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u |= (uint64_t)t->p[i] << (8 * i);
  t->p += 8;
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

bool tyr_thrift_read_binary(tyr_thrift *t, uint8_t type, const uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  if (t->err) return false;
  if (type != TYR_THRIFT_BINARY) return tyr_thrift_fail(t, "expected a binary field");
  uint64_t n;
  if (!read_varint(t, &n)) return false;
  if (n > (uint64_t)(t->end - t->p)) return tyr_thrift_fail(t, "binary length beyond the data");
  *data = t->p;
  *len = (size_t)n;
  t->p += n;
  return true;
}

bool tyr_thrift_read_list(tyr_thrift *t, uint8_t type, uint8_t *elem_type, int64_t *count) {
  *elem_type = 0;
  *count = 0;
  if (t->err) return false;
  if (type != TYR_THRIFT_LIST && type != TYR_THRIFT_SET)
    return tyr_thrift_fail(t, "expected a list field");
  uint8_t b = 0;
  if (!read_byte(t, &b)) return false;
  uint64_t n = b >> 4;
  if (n == 15 && !read_varint(t, &n)) return false;
  uint8_t et = b & 0x0f;
  if (et == TYR_THRIFT_STOP || et > TYR_THRIFT_STRUCT)
    return tyr_thrift_fail(t, "bad list element type");
  if (n > (uint64_t)(t->end - t->p)) return tyr_thrift_fail(t, "list longer than the data");
  *elem_type = et;
  *count = (int64_t)n;
  return true;
}

bool tyr_thrift_skip(tyr_thrift *t, uint8_t type) {
  if (t->err) return false;
  switch (type) {
  case TYR_THRIFT_TRUE:
  case TYR_THRIFT_FALSE:
    return true; /* a field's value lives in its header */
  case TYR_THRIFT_I8: {
    uint8_t b = 0;
    return read_byte(t, &b);
  }
  case TYR_THRIFT_I16:
  case TYR_THRIFT_I32:
  case TYR_THRIFT_I64: {
    uint64_t v;
    return read_varint(t, &v);
  }
  case TYR_THRIFT_DOUBLE:
    if (t->end - t->p < 8) return tyr_thrift_fail(t, "unexpected end of data");
    t->p += 8;
    return true;
  case TYR_THRIFT_BINARY: {
    const uint8_t *d;
    size_t n;
    return tyr_thrift_read_binary(t, type, &d, &n);
  }
  case TYR_THRIFT_LIST:
  case TYR_THRIFT_SET: {
    uint8_t et;
    int64_t n;
    if (!tyr_thrift_read_list(t, type, &et, &n)) return false;
    if (t->depth >= TYR_THRIFT_MAX_DEPTH) return tyr_thrift_fail(t, "nesting too deep");
    t->depth++;
    for (int64_t i = 0; i < n && !t->err; i++) {
      if (et == TYR_THRIFT_TRUE || et == TYR_THRIFT_FALSE) {
        uint8_t b = 0; /* list elements that are bools take one byte */
        read_byte(t, &b);
      } else {
        tyr_thrift_skip(t, et);
      }
    }
    t->depth--;
    return !t->err;
  }
  case TYR_THRIFT_MAP: {
    uint64_t n;
    if (!read_varint(t, &n)) return false;
    if (n == 0) return true;
    uint8_t kv = 0;
    if (!read_byte(t, &kv)) return false;
    uint8_t kt = kv >> 4, vt = kv & 0x0f;
    if (kt == TYR_THRIFT_STOP || kt > TYR_THRIFT_STRUCT || vt == TYR_THRIFT_STOP ||
        vt > TYR_THRIFT_STRUCT)
      return tyr_thrift_fail(t, "bad map element type");
    if (n > (uint64_t)(t->end - t->p)) return tyr_thrift_fail(t, "map longer than the data");
    if (t->depth >= TYR_THRIFT_MAX_DEPTH) return tyr_thrift_fail(t, "nesting too deep");
    t->depth++;
    for (uint64_t i = 0; i < n && !t->err; i++) {
      uint8_t b = 0;
      if (kt == TYR_THRIFT_TRUE || kt == TYR_THRIFT_FALSE)
        read_byte(t, &b);
      else
        tyr_thrift_skip(t, kt);
      if (vt == TYR_THRIFT_TRUE || vt == TYR_THRIFT_FALSE)
        read_byte(t, &b);
      else
        tyr_thrift_skip(t, vt);
    }
    t->depth--;
    return !t->err;
  }
  case TYR_THRIFT_STRUCT: {
    if (!tyr_thrift_struct_begin(t)) return false;
    tyr_thrift_field f;
    while (tyr_thrift_next_field(t, &f)) tyr_thrift_skip(t, f.type);
    tyr_thrift_struct_end(t);
    return !t->err;
  }
  default:
    return tyr_thrift_fail(t, "unknown type");
  }
}
