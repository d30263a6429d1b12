/* dtypes, devices, and the half-precision conversions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/tensor.h"

size_t tyr_dtype_size(tyr_dtype dt) {
  switch (dt) {
  case TYR_F32:
    return 4;
  case TYR_F64:
    return 8;
  case TYR_BF16:
    return 2;
  case TYR_F16:
    return 2;
  case TYR_I32:
    return 4;
  case TYR_I64:
    return 8;
  case TYR_U8:
    return 1;
  case TYR_BOOL:
    return 1;
  default:
    return 0;
  }
}

const char *tyr_dtype_name(tyr_dtype dt) {
  static const char *names[] = {"f32", "f64", "bf16", "f16", "i32", "i64", "u8", "bool"};
  return (unsigned)dt < TYR_DTYPE_COUNT ? names[dt] : "invalid-dtype";
}

bool tyr_dtype_is_float(tyr_dtype dt) {
  return dt == TYR_F32 || dt == TYR_F64 || dt == TYR_BF16 || dt == TYR_F16;
}

const char *tyr_device_name(tyr_device d) {
  static _Thread_local char buf[4][32];
  static _Thread_local int k;
  if (d.type == TYR_CPU) return "cpu";
  char *b = buf[k++ & 3];
  snprintf(b, 32, "cuda:%d", d.index);
  return b;
}

bool tyr_device_eq(tyr_device a, tyr_device b) {
  return a.type == b.type && (a.type == TYR_CPU || a.index == b.index);
}

bool tyr_device_parse(const char *s, tyr_device *out) {
  if (!s) return false;
  if (strcmp(s, "cpu") == 0) {
    *out = TYR_DEVICE_CPU;
    return true;
  }
  if (strncmp(s, "cuda", 4) == 0) {
    if (s[4] == 0) {
      *out = TYR_DEVICE_CUDA(0);
      return true;
    }
    if (s[4] == ':' && s[5]) {
      char *end;
      long i = strtol(s + 5, &end, 10);
      if (*end == 0 && i >= 0 && i < 1024) {
        *out = TYR_DEVICE_CUDA((int)i);
        return true;
      }
    }
  }
  return false;
}

typedef union {
  float f;
  uint32_t u;
} f32bits;

float tyr_bf16_to_f32(uint16_t h) {
  f32bits b = {.u = (uint32_t)h << 16};
  return b.f;
}

uint16_t tyr_f32_to_bf16(float f) {
  f32bits b = {.f = f};
  if ((b.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b.u >> 16) | 0x40); /* quiet NaN */
  uint32_t rounding = 0x7fffu + ((b.u >> 16) & 1u);
  return (uint16_t)((b.u + rounding) >> 16);
}

float tyr_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  f32bits b;
  if (exp == 0) {
    if (mant == 0) {
      b.u = sign;
    } else { /* subnormal */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400u));
      b.u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    b.u = sign | 0x7f800000u | (mant << 13);
  } else {
    b.u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return b.f;
}

uint16_t tyr_f32_to_f16(float f) {
  f32bits b = {.f = f};
  uint32_t x = b.u;
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
  if (absx >= 0x477ff000u) return sign | 0x7c00u; /* overflow to inf (incl. rounding) */
  if (absx < 0x38800000u) {                       /* subnormal or zero in f16 */
    if (absx < 0x33000000u) return sign;          /* rounds to zero */
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14 - (e - 127) + 13 ... */
    shift = 113 - e + 13;
    uint32_t r = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return sign | (uint16_t)r;
  }
  uint32_t r = absx + 0xfffu + ((absx >> 13) & 1u); /* round to nearest even */
  r -= 0x38000000u;                                 /* rebias 127 -> 15 */
  return sign | (uint16_t)(r >> 13);
}
