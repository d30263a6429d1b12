/* The RLE / bit-packed hybrid encoding of Parquet (definition levels,
 * dictionary indices, RLE booleans):
 *   run := varint header, then
 *     header & 1 == 0: an RLE run of (header >> 1) copies of one value
 *                      stored in ceil(width / 8) little-endian bytes;
 *     header & 1 == 1: (header >> 1) groups of 8 values bit-packed
 *                      LSB first, width bits each.
 * A last bit-packed run may be cut short by the end of the data; only the
 * values actually asked for must be present. */
#include <string.h>

#include "data/parquet_internal.h"

void tyr_pq_rle_init(pq_rle *r, const uint8_t *data, size_t n, int width) {
  memset(r, 0, sizeof *r);
  r->p = data;
  r->end = data + n;
  r->width = width;
}

static int next_run(pq_rle *r) {
  uint64_t h = 0;
  int shift = 0;
  for (;;) {
    if (r->p >= r->end || shift > 63) return -1;
    uint8_t b = *r->p++;
    h |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
    shift += 7;
  }
  uint64_t count = h >> 1;
  size_t avail = (size_t)(r->end - r->p);
  int w = r->width;
  if (h & 1) {
    uint64_t groups = count;
    uint64_t values, bytes;
    if (w == 0) {
      values = groups > ((uint64_t)1 << 40) ? ((uint64_t)1 << 43) : groups * 8;
      bytes = 0;
    } else if (groups <= avail && groups * (uint64_t)w <= avail) {
      values = groups * 8;
      bytes = groups * (uint64_t)w;
    } else { /* cut short: keep the whole values that are there */
      values = (uint64_t)avail * 8 / (uint64_t)w;
      bytes = avail;
    }
    if (values == 0) return -1;
    r->bp = r->p;
    r->bp_end = r->p + bytes;
    r->bp_pos = 0;
    r->bp_left = (int64_t)values;
    r->p += bytes;
  } else {
    size_t vb = ((size_t)w + 7) / 8;
    if (vb > avail || count == 0) return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < vb; i++) v |= (uint32_t)r->p[i] << (8 * i);
    r->p += vb;
    if (w < 32 && (v >> w) != 0) return -1;
    r->run_value = v;
    r->rle_left = (int64_t)count;
  }
  return 0;
}

static void unpack(pq_rle *r, uint32_t *out, int64_t k) {
  int w = r->width;
  if (w == 0) {
    memset(out, 0, (size_t)k * sizeof *out);
    r->bp_pos += k;
    r->bp_left -= k;
    return;
  }
  uint64_t mask = w == 32 ? 0xffffffffu : (((uint64_t)1 << w) - 1);
  size_t nbytes = (size_t)(r->bp_end - r->bp);
  uint64_t bit = (uint64_t)r->bp_pos * (uint64_t)w;
  for (int64_t j = 0; j < k; j++, bit += (uint64_t)w) {
    size_t byte = (size_t)(bit >> 3);
    uint64_t word = 0;
    if (byte + 8 <= nbytes) {
      memcpy(&word, r->bp + byte, 8); /* little-endian host */
    } else {
      memcpy(&word, r->bp + byte, nbytes - byte);
    }
    out[j] = (uint32_t)((word >> (bit & 7)) & mask);
  }
  r->bp_pos += k;
  r->bp_left -= k;
}

int tyr_pq_rle_u32(pq_rle *r, uint32_t *out, int64_t n) {
  while (n > 0) {
    if (r->rle_left > 0) {
      int64_t k = n < r->rle_left ? n : r->rle_left;
      uint32_t v = r->run_value;
      for (int64_t j = 0; j < k; j++) out[j] = v;
      out += k;
      n -= k;
      r->rle_left -= k;
    } else if (r->bp_left > 0) {
      int64_t k = n < r->bp_left ? n : r->bp_left;
      unpack(r, out, k);
      out += k;
      n -= k;
    } else if (next_run(r)) {
      return -1;
    }
  }
  return 0;
}

int tyr_pq_rle_u8(pq_rle *r, uint8_t *out, int64_t n, uint32_t max) {
  uint32_t buf[512];
  while (n > 0) {
    if (r->rle_left > 0) {
      int64_t k = n < r->rle_left ? n : r->rle_left;
      if (r->run_value > max) return -1;
      memset(out, (int)r->run_value, (size_t)k);
      out += k;
      n -= k;
      r->rle_left -= k;
      continue;
    }
    int64_t k = n < 512 ? n : 512;
    if (r->bp_left > 0 && r->bp_left < k) k = r->bp_left;
    if (r->bp_left == 0) {
      if (next_run(r)) return -1;
      continue;
    }
    unpack(r, buf, k);
    uint32_t bad = 0;
    for (int64_t j = 0; j < k; j++) {
      bad |= buf[j] > max;
      out[j] = (uint8_t)buf[j];
    }
    if (bad) return -1;
    out += k;
    n -= k;
  }
  return 0;
}
