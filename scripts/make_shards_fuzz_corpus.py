#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_shards.c into
tests/fuzz/corpus/shards/: valid llm.c shards (header bytes 12..19 pick the
fuzzer's loader options), a headerless file and each kind of broken file."""
import os
import struct

d = os.path.join(os.path.dirname(__file__), "..", "tests", "fuzz", "corpus", "shards")
os.makedirs(d, exist_ok=True)


def hdr(magic=20240520, ver=1, count=0, opts=b""):
    h = struct.pack("<3i", magic, ver, count) + opts
    return h + b"\0" * (1024 - len(h))


def toks(ts):
    return struct.pack("<%dH" % len(ts), *ts)


def put(name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


put("valid_seq.bin", hdr(count=300, opts=bytes([3, 15, 0, 1, 0, 0, 0, 9])) + toks([i % 50 for i in range(300)]))
bos = [0 if i % 13 == 0 else 5 + i % 7 for i in range(200)]
put("valid_bos_random.bin", hdr(count=200, opts=bytes([1, 6, 3, 7, 2, 0, 1, 3])) + toks(bos))
put("valid_small.bin", hdr(count=3) + toks([1, 2, 3]))
put("headerless.u16", toks(list(range(64))))
put("bad_magic.bin", hdr(magic=12345, count=2) + toks([1, 2]))
put("bad_version.bin", hdr(ver=2, count=2) + toks([1, 2]))
put("count_mismatch.bin", hdr(count=1000) + toks([1] * 750))
put("truncated_header.bin", hdr(count=2)[:100])
put("odd.u16", b"abc")
