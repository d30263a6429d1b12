/* Page decompression: SNAPPY (raw block format), GZIP (zlib, gzip or zlib
 * header) and ZSTD.  Every codec must produce exactly the page's declared
 * uncompressed size. */
#include <snappy-c.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "data/parquet_internal.h"

static int gunzip(const uint8_t *src, size_t src_n, uint8_t *dst, size_t dst_n, char *err,
                  size_t errn) {
  z_stream z = {0};
  /* 32 + 15: accept a gzip or zlib header, 32 KiB window */
  if (inflateInit2(&z, 32 + MAX_WBITS) != Z_OK) {
    snprintf(err, errn, "GZIP: cannot initialise zlib");
    return -1;
  }
  int rc = Z_OK;
  size_t in_left = src_n, out_left = dst_n;
  z.next_in = (Bytef *)src;
  z.next_out = dst;
  /* zlib counts in uInt: feed huge buffers in pieces */
  while (rc == Z_OK) {
    uInt in_chunk = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
    uInt out_chunk = out_left > 0x40000000u ? 0x40000000u : (uInt)out_left;
    z.avail_in = in_chunk;
    z.avail_out = out_chunk;
    rc = inflate(&z, Z_NO_FLUSH);
    in_left -= in_chunk - z.avail_in;
    out_left -= out_chunk - z.avail_out;
    if (rc == Z_OK && in_chunk == z.avail_in && out_chunk == z.avail_out) {
      rc = Z_BUF_ERROR; /* no progress */
      break;
    }
    if (rc == Z_BUF_ERROR && out_left == 0) break;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    if (out_left == 0 && rc == Z_BUF_ERROR)
      snprintf(err, errn, "GZIP data decompresses to more than the declared %zu bytes", dst_n);
    else
      snprintf(err, errn, "GZIP decompression failed (%s)",
               rc == Z_DATA_ERROR  ? (z.msg ? z.msg : "corrupt data")
               : rc == Z_BUF_ERROR ? "data ends early"
                                   : "zlib error");
    return -1;
  }
  if (out_left != 0) {
    snprintf(err, errn, "GZIP data decompresses to %zu bytes, the page header says %zu",
             dst_n - out_left, dst_n);
    return -1;
  }
  return 0;
}

int tyr_pq_decompress(int codec, const uint8_t *src, size_t src_n, uint8_t *dst, size_t dst_n,
                      char *err, size_t errn) {
  switch (codec) {
  case PQ_CODEC_UNCOMPRESSED:
    if (src_n != dst_n) {
      snprintf(err, errn, "uncompressed page: compressed size %zu differs from size %zu", src_n,
               dst_n);
      return -1;
    }
    if (dst_n) memcpy(dst, src, dst_n);
    return 0;
  case PQ_CODEC_SNAPPY: {
    size_t n = 0;
    if (snappy_uncompressed_length((const char *)src, src_n, &n) != SNAPPY_OK) {
      snprintf(err, errn, "SNAPPY decompression failed (bad length header)");
      return -1;
    }
    if (n != dst_n) {
      snprintf(err, errn, "SNAPPY data decompresses to %zu bytes, the page header says %zu", n,
               dst_n);
      return -1;
    }
    size_t out = dst_n;
    if (snappy_uncompress((const char *)src, src_n, (char *)dst, &out) != SNAPPY_OK ||
        out != dst_n) {
      snprintf(err, errn, "SNAPPY decompression failed (corrupt data)");
      return -1;
    }
    return 0;
  }
  case PQ_CODEC_GZIP:
    return gunzip(src, src_n, dst, dst_n, err, errn);
  case PQ_CODEC_ZSTD: {
    size_t r = ZSTD_decompress(dst, dst_n, src, src_n);
    if (ZSTD_isError(r)) {
      snprintf(err, errn, "ZSTD decompression failed (%s)", ZSTD_getErrorName(r));
      return -1;
    }
    if (r != dst_n) {
      snprintf(err, errn, "ZSTD data decompresses to %zu bytes, the page header says %zu", r,
               dst_n);
      return -1;
    }
    return 0;
  }
  default:
    snprintf(err, errn,
             "compression codec %s is not supported (only UNCOMPRESSED, SNAPPY, GZIP, ZSTD)",
             tyr_pq_codec_name(codec));
    return -1;
  }
}
