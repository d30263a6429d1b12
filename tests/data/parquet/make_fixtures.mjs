// Writes the Parquet test fixtures of tests/unit/test_parquet.c and the
// expected values of every row.
//
//   mkdir -p /tmp/pqgen && cd /tmp/pqgen && npm install @duckdb/node-api
//   node /path/to/tests/data/parquet/make_fixtures.mjs [outdir]
//
// (@duckdb/node-api is looked up from the current directory; outdir
// defaults to this script's directory.)
//
// Two writers:
//  * DuckDB (a real writer): the four codecs, PLAIN and dictionary
//    encodings, several row groups, every supported type with NULLs, text,
//    blobs, NaN/-0.0/inf, an all-null chunk, an empty file, and files the
//    reader must refuse (nested and FIXED_LEN_BYTE_ARRAY columns, DELTA_*
//    and BYTE_STREAM_SPLIT encodings, the LZ4_RAW codec).
//  * a small writer below, for what DuckDB 1.5 does not write: DATA_PAGE_V2
//    pages (DuckDB writes v1 page headers even with PARQUET_VERSION v2),
//    several pages per column chunk, REQUIRED columns, a dictionary that
//    falls back to PLAIN within a chunk, RLE-encoded booleans, and
//    BIT_PACKED definition levels (refused).
//
// Expected values go to <table>.expected, one line per row, tab-separated:
//   N = null; BOOLEAN 0/1; INT32/INT64 decimal; FLOAT/DOUBLE the IEEE bits
//   in hex (nan for any NaN); BYTE_ARRAY "x" + the bytes in hex.
// manifest.txt lists "file<TAB>expected<TAB>row groups" for the files the
// reader must read back exactly, and "file<TAB>!error<TAB>substring" for
// the ones it must refuse when reading any column.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] || here);
const require = createRequire(path.join(process.cwd(), 'noop.js'));
const { DuckDBInstance } = require('@duckdb/node-api');

fs.mkdirSync(outdir, { recursive: true });
const manifest = [];

// ---- expected values ------------------------------------------------------

function hexBits(v, type) {
  if (Number.isNaN(v)) return 'nan';
  const dv = new DataView(new ArrayBuffer(8));
  if (type === 'FLOAT') {
    dv.setFloat32(0, v);
    return dv.getUint32(0).toString(16).padStart(8, '0');
  }
  dv.setFloat64(0, v);
  return dv.getBigUint64(0).toString(16).padStart(16, '0');
}

function fmt(v, type) {
  if (v === null || v === undefined) return 'N';
  switch (type) {
    case 'BOOLEAN': return v ? '1' : '0';
    case 'INT32':
    case 'INT64': return v.toString();
    case 'FLOAT':
    case 'DOUBLE': return hexBits(v, type);
    case 'BYTE_ARRAY': {
      const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.bytes ?? v);
      return 'x' + b.toString('hex');
    }
  }
  throw new Error('type ' + type);
}

function writeExpected(name, cols, rows) {
  const lines = [`columns\t${cols.length}`];
  for (const c of cols) lines.push(`${c.name}\t${c.type}`);
  lines.push(`rows\t${rows.length}`);
  for (const r of rows) lines.push(cols.map((c) => fmt(r[c.name], c.type)).join('\t'));
  fs.writeFileSync(path.join(outdir, name), lines.join('\n') + '\n');
}

// ---- DuckDB fixtures --------------------------------------------------------

const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const q = async (sql) => (await con.runAndReadAll(sql)).getRowObjects();
await q('SET threads = 1'); // keeps the small chunks below as row groups

// 200 rows; the expected values come from the table, not from the files.
await q(`CREATE TABLE mixed AS SELECT
  i::INTEGER AS id,
  CASE WHEN i % 7 = 3 THEN NULL ELSE (hash(i) % 2000000000)::BIGINT::INTEGER - 1000000000 END AS i32,
  CASE WHEN i % 11 = 5 THEN NULL
       ELSE (hash(i * 3 + 1) % 9000000000000000000)::BIGINT - 4500000000000000000 END AS i64,
  CASE WHEN i % 13 = 0 THEN NULL WHEN i % 50 = 1 THEN '-0.0'::FLOAT WHEN i % 50 = 2 THEN 'inf'::FLOAT
       WHEN i % 50 = 3 THEN '-inf'::FLOAT WHEN i % 50 = 4 THEN 'nan'::FLOAT WHEN i % 50 = 5 THEN 1e-40::FLOAT
       ELSE ((hash(i * 5) % 2000001)::FLOAT / 64.0 - 15000.0)::FLOAT END AS f,
  CASE WHEN i % 17 = 0 THEN NULL WHEN i % 40 = 1 THEN 5e-324::DOUBLE WHEN i % 40 = 2 THEN 1e300
       ELSE (hash(i * 7) % 1000000007)::DOUBLE / 3.0 - 1e8 END AS d,
  CASE WHEN i % 10 = 9 THEN NULL ELSE hash(i * 11) % 3 = 0 END AS b,
  CASE WHEN i % 9 = 4 THEN NULL WHEN i % 37 = 0 THEN ''
       ELSE repeat(chr(97 + (i % 26)::INTEGER), (i % 20)::INTEGER) || ' row ' || i::VARCHAR
            || CASE WHEN i % 5 = 0 THEN ' ünïcödé ✓ 日本語' ELSE '' END
            || CASE WHEN i % 23 = 0 THEN chr(9) || 'tab' || chr(10) || 'newline' ELSE '' END END AS s,
  CASE WHEN i % 8 = 2 THEN NULL ELSE 'cat_' || (hash(i * 13) % 6)::VARCHAR END AS cat,
  CASE WHEN i % 6 = 1 THEN NULL ELSE ('\\x00\\xFF' || i::VARCHAR)::BLOB END AS bl,
  CASE WHEN i < 50 AND i % 3 = 0 THEN 'sparse ' || i::VARCHAR ELSE NULL END AS sparse
FROM range(200) t(i)`);
const mixedCols = [
  ['id', 'INT32'], ['i32', 'INT32'], ['i64', 'INT64'], ['f', 'FLOAT'], ['d', 'DOUBLE'],
  ['b', 'BOOLEAN'], ['s', 'BYTE_ARRAY'], ['cat', 'BYTE_ARRAY'], ['bl', 'BYTE_ARRAY'], ['sparse', 'BYTE_ARRAY'],
].map(([name, type]) => ({ name, type }));
writeExpected('mixed.expected', mixedCols, await q('SELECT * FROM mixed ORDER BY id'));

// Four pieces of 50 rows: with one thread and ROW_GROUP_SIZE 50 each
// becomes a row group.
const pieces = (t, n, k, sel = '*') =>
  Array.from({ length: k }, (_, j) => `SELECT ${sel} FROM ${t} WHERE id >= ${(j * n) / k} AND id < ${((j + 1) * n) / k}`)
    .join(' UNION ALL ');

async function copy(sql, file, opts) {
  await q(`COPY (${sql}) TO '${path.join(outdir, file)}' (FORMAT parquet, ${opts})`);
}

for (const codec of ['uncompressed', 'snappy', 'gzip', 'zstd']) {
  const file = `mixed_${codec}.parquet`;
  await copy(pieces('mixed', 200, 4), file, `COMPRESSION ${codec}, ROW_GROUP_SIZE 50`);
  manifest.push([file, 'mixed.expected', 4]);
}

// Low-cardinality columns: DuckDB dictionary-encodes every type (with
// PARQUET_VERSION v2 as RLE_DICTIONARY, with v1 as PLAIN_DICTIONARY).
await q(`CREATE TABLE lowcard AS SELECT
  i::INTEGER AS id,
  CASE WHEN i % 7 = 1 THEN NULL ELSE (i % 5)::INTEGER - 2 END AS i32,
  CASE WHEN i % 9 = 2 THEN NULL ELSE (i % 4) * 1000000000007 END AS i64,
  CASE WHEN i % 6 = 3 THEN NULL ELSE ((i % 3) / 4.0)::FLOAT END AS f,
  CASE WHEN i % 8 = 4 THEN NULL ELSE (i % 6) / 7.0 END AS d,
  CASE WHEN i % 5 = 0 THEN NULL ELSE i % 3 = 0 END AS b,
  CASE WHEN i % 4 = 1 THEN NULL ELSE 'word' || (i % 9)::VARCHAR END AS s
FROM range(150) t(i)`);
// The id column would be DELTA-encoded under v2: these files leave it out.
const lowCols = [
  ['i32', 'INT32'], ['i64', 'INT64'], ['f', 'FLOAT'], ['d', 'DOUBLE'], ['b', 'BOOLEAN'], ['s', 'BYTE_ARRAY'],
].map(([name, type]) => ({ name, type }));
writeExpected('lowcard.expected', lowCols, await q('SELECT * EXCLUDE (id) FROM lowcard ORDER BY id'));
for (const [file, opts] of [
  ['lowcard_v1_gzip.parquet', 'COMPRESSION gzip, PARQUET_VERSION v1'],
  ['lowcard_v2_zstd.parquet', 'COMPRESSION zstd, PARQUET_VERSION v2'],
  ['lowcard_v2_snappy.parquet', 'COMPRESSION snappy, PARQUET_VERSION v2'],
]) {
  await copy(pieces('lowcard', 150, 3, '* EXCLUDE (id)'), file, `${opts}, ROW_GROUP_SIZE 50`);
  manifest.push([file, 'lowcard.expected', 3]);
}

await copy('SELECT * FROM mixed WHERE false', 'empty.parquet', 'COMPRESSION zstd');
writeExpected('empty.expected', mixedCols, []);
manifest.push(['empty.parquet', 'empty.expected', 0]);

// Refused: high-cardinality columns under PARQUET_VERSION v2 are written
// DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY and BYTE_STREAM_SPLIT.
await copy('SELECT id, s, d FROM mixed WHERE id < 60 ORDER BY id', 'delta_v2.parquet', 'COMPRESSION zstd, PARQUET_VERSION v2');
manifest.push(['delta_v2.parquet', '!error', 'is not supported']);
await copy('SELECT * FROM lowcard WHERE id < 50 ORDER BY id', 'lz4.parquet', 'COMPRESSION lz4_raw');
manifest.push(['lz4.parquet', '!error', 'codec LZ4_RAW is not supported']);
// Nested (list, struct) and FIXED_LEN_BYTE_ARRAY (uuid, decimal) columns
// beside a flat one: the file opens, only the flat columns read.
await copy(`SELECT id, [id, id + 1] AS l, {'a': id, 'b': s} AS st,
  ('00000000-0000-0000-0000-' || lpad(id::VARCHAR, 12, '0'))::UUID AS u,
  (id / 3)::DECIMAL(30, 2) AS dec, s FROM mixed WHERE id < 20 ORDER BY id`,
  'nested.parquet', 'COMPRESSION snappy');
writeExpected('nested.expected', [{ name: 'id', type: 'INT32' }, { name: 's', type: 'BYTE_ARRAY' }],
  await q('SELECT id, s FROM mixed WHERE id < 20 ORDER BY id'));
manifest.push(['nested.parquet', 'nested.expected', 1]);

// ---- a small Parquet writer for the cases DuckDB does not write -------------

class Thrift {
  constructor() { this.b = []; this.last = [0]; }
  byte(x) { this.b.push(x & 255); }
  varint(n) {
    n = BigInt(n);
    while (n >= 128n) { this.byte(Number(n & 127n) | 128); n >>= 7n; }
    this.byte(Number(n));
  }
  zz(n) { n = BigInt(n); this.varint(n >= 0n ? n << 1n : ((-n) << 1n) - 1n); }
  fh(id, type) {
    const d = id - this.last[this.last.length - 1];
    if (d > 0 && d <= 15) this.byte((d << 4) | type);
    else { this.byte(type); this.zz(id); }
    this.last[this.last.length - 1] = id;
  }
  i32(id, v) { this.fh(id, 5); this.zz(v); }
  i64(id, v) { this.fh(id, 6); this.zz(v); }
  bool(id, v) { this.fh(id, v ? 1 : 2); }
  bin(id, bytes) { this.fh(id, 8); this.varint(bytes.length); for (const x of bytes) this.byte(x); }
  str(id, s) { this.bin(id, Buffer.from(s, 'utf8')); }
  begin(id) { this.fh(id, 12); this.last.push(0); }
  elem() { this.last.push(0); } // a struct element of a list
  end() { this.byte(0); this.last.pop(); }
  list(id, etype, n) {
    this.fh(id, 9);
    if (n < 15) this.byte((n << 4) | etype);
    else { this.byte(0xf0 | etype); this.varint(n); }
  }
  buf() { return Buffer.from(this.b); }
}

const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

// RLE / bit-packed hybrid: RLE runs for 8+ equal values, bit-packing otherwise.
function hybrid(vals, width) {
  const out = [];
  const varint = (n) => { while (n >= 128) { out.push((n & 127) | 128); n = Math.floor(n / 128); } out.push(n); };
  let lit = [];
  const flush = () => {
    if (!lit.length) return;
    while (lit.length % 8) lit.push(0);
    varint(((lit.length / 8) << 1) | 1);
    let acc = 0n, nb = 0n;
    for (const v of lit) {
      acc |= BigInt(v) << nb; nb += BigInt(width);
      while (nb >= 8n) { out.push(Number(acc & 255n)); acc >>= 8n; nb -= 8n; }
    }
    if (nb > 0n) out.push(Number(acc & 255n));
    lit = [];
  };
  for (let i = 0; i < vals.length;) {
    let run = 1;
    while (i + run < vals.length && vals[i + run] === vals[i]) run++;
    if (run >= 8 && lit.length % 8 === 0) {
      flush();
      varint(run << 1);
      for (let k = 0; k < Math.ceil(width / 8); k++) out.push((vals[i] >> (8 * k)) & 255);
      i += run;
    } else { lit.push(vals[i]); i++; }
  }
  flush();
  return Buffer.from(out);
}

function plain(type, vals) {
  const parts = [];
  if (type === 'BOOLEAN') {
    const b = Buffer.alloc(Math.ceil(vals.length / 8));
    vals.forEach((v, i) => { if (v) b[i >> 3] |= 1 << (i & 7); });
    return b;
  }
  for (const v of vals) {
    let b;
    switch (type) {
      case 'INT32': b = Buffer.alloc(4); b.writeInt32LE(v); break;
      case 'INT64': b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v)); break;
      case 'FLOAT': b = Buffer.alloc(4); b.writeFloatLE(v); break;
      case 'DOUBLE': b = Buffer.alloc(8); b.writeDoubleLE(v); break;
      case 'BYTE_ARRAY': { const s = Buffer.from(v, 'utf8'); b = Buffer.concat([u32(s.length), s]); break; }
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}

// Snappy with literals only, and zstd with raw blocks only: valid streams
// for the real decoders, written without a compressor at hand.
function snappyLiteral(data) {
  const out = [];
  let n = data.length;
  while (n >= 128) { out.push((n & 127) | 128); n = Math.floor(n / 128); }
  out.push(n);
  const parts = [Buffer.from(out)];
  for (let p = 0; p < data.length; p += 65536) {
    const chunk = data.subarray(p, p + 65536);
    const len = chunk.length - 1;
    parts.push(Buffer.from([61 << 2, len & 255, len >> 8]), chunk);
  }
  return Buffer.concat(parts);
}
function zstdRaw(data) {
  const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])]; // no content size, 2 MiB window
  let p = 0;
  do {
    const chunk = data.subarray(p, p + 131072);
    p += chunk.length;
    const last = p >= data.length ? 1 : 0;
    const h = last | (chunk.length << 3);
    parts.push(Buffer.from([h & 255, (h >> 8) & 255, (h >> 16) & 255]), chunk);
  } while (p < data.length);
  return Buffer.concat(parts);
}
const CODECS = {
  none: [0, (b) => b],
  snappy: [1, snappyLiteral],
  gzip: [2, (b) => zlib.gzipSync(b, { level: 9 })],
  zstd: [6, zstdRaw],
};
const TYPES = { BOOLEAN: 0, INT32: 1, INT64: 2, FLOAT: 4, DOUBLE: 5, BYTE_ARRAY: 6 };
const ENC = { PLAIN: 0, PLAIN_DICTIONARY: 2, RLE: 3, BIT_PACKED: 4, RLE_DICTIONARY: 8 };

// Deliberate damage for the error fixtures.
const damage = (spec, b) => (spec.damage ? spec.damage(Buffer.from(b)) : b);

// A page: header fields plus body.  spec: {kind: 'dict'|'v1'|'v2', ...}.
function page(col, spec, codec) {
  const [, compress] = CODECS[codec];
  const h = new Thrift();
  if (spec.kind === 'dict') {
    const body = plain(col.type, spec.dict);
    const cbody = damage(spec, compress(body));
    h.i32(1, 2); h.i32(2, body.length); h.i32(3, cbody.length);
    h.begin(7); h.i32(1, spec.dict.length); h.i32(2, ENC.PLAIN); h.end();
    h.end();
    return Buffer.concat([h.buf(), cbody]);
  }
  const vals = spec.vals;
  const present = vals.filter((v) => v !== null);
  const defs = vals.map((v) => (v === null ? 0 : 1));
  let values;
  if (spec.enc === 'PLAIN') values = plain(col.type, present);
  else if (spec.enc === 'RLE') { const r = hybrid(present.map((v) => (v ? 1 : 0)), 1); values = Buffer.concat([u32(r.length), r]); }
  else { // dictionary indices
    const idx = spec.idx ?? present.map((v) => spec.dict.indexOf(v));
    const w = Math.max(0, Math.ceil(Math.log2(Math.max(spec.dict.length, ...idx.map((x) => x + 1)))));
    values = Buffer.concat([Buffer.from([w]), hybrid(idx, w)]);
  }
  const encoding = ENC[spec.enc];
  if (spec.kind === 'v1') {
    let levels = Buffer.alloc(0);
    if (col.optional) {
      if (spec.bitPackedLevels) {
        levels = Buffer.alloc(Math.ceil(defs.length / 8));
        defs.forEach((d, i) => { if (d) levels[i >> 3] |= 0x80 >> (i & 7); });
      } else {
        const r = hybrid(defs, 1);
        levels = Buffer.concat([u32(r.length), r]);
      }
    }
    const body = Buffer.concat([levels, values]);
    const cbody = damage(spec, compress(body));
    h.i32(1, 0); h.i32(2, body.length); h.i32(3, cbody.length + (spec.sizeDelta ?? 0));
    h.begin(5); h.i32(1, vals.length); h.i32(2, encoding);
    h.i32(3, spec.bitPackedLevels ? ENC.BIT_PACKED : ENC.RLE); h.i32(4, ENC.RLE); h.end();
    h.end();
    return Buffer.concat([h.buf(), cbody]);
  }
  // v2: levels uncompressed and without a length prefix; values compressed
  // unless the page says otherwise
  const levels = col.optional ? hybrid(defs, 1) : Buffer.alloc(0);
  const compressed = damage(spec, spec.uncompressedValues ? values : compress(values));
  h.i32(1, 3); h.i32(2, levels.length + values.length); h.i32(3, levels.length + compressed.length);
  h.begin(8);
  h.i32(1, vals.length); h.i32(2, vals.length - present.length + (spec.nullsDelta ?? 0));
  h.i32(3, vals.length); h.i32(4, encoding);
  h.i32(5, levels.length); h.i32(6, 0);
  if (spec.uncompressedValues) h.bool(7, false);
  h.end();
  h.end();
  return Buffer.concat([h.buf(), levels, compressed]);
}

// cols: [{name, type, optional, converted}]; rowGroups: [[pages of col 0], [pages of col 1], ...]
function writeParquet(file, cols, rowGroups, codec) {
  const parts = [Buffer.from('PAR1')];
  let off = 4;
  const rgMeta = [];
  for (const rg of rowGroups) {
    const chunks = [];
    let rows = 0;
    rg.forEach((specs, c) => {
      const col = cols[c];
      const start = off;
      let dictOff = null, dataOff = null, nvals = 0, size = 0, usize = 0;
      for (const spec of specs) {
        const p = page(col, spec, codec);
        if (spec.kind === 'dict') dictOff = off;
        else { if (dataOff === null) dataOff = off; nvals += spec.vals.length; }
        parts.push(p);
        off += p.length;
        size += p.length;
        usize += p.length; // close enough: the reader does not use it
      }
      rows = nvals;
      chunks.push({ col, start, dictOff, dataOff, nvals, size, usize });
    });
    rgMeta.push({ chunks, rows });
  }
  const t = new Thrift();
  t.i32(1, 2);
  t.list(2, 12, cols.length + 1);
  t.elem(); t.str(4, 'schema'); t.i32(5, cols.length); t.end();
  for (const c of cols) {
    t.elem(); t.i32(1, TYPES[c.type]); t.i32(3, c.optional ? 1 : 0); t.str(4, c.name);
    if (c.converted !== undefined) t.i32(6, c.converted);
    t.end();
  }
  t.i64(3, rgMeta.reduce((a, g) => a + g.rows, 0));
  t.list(4, 12, rgMeta.length);
  for (const g of rgMeta) {
    t.elem();
    t.list(1, 12, g.chunks.length);
    for (const k of g.chunks) {
      t.elem();
      t.i64(2, k.start);
      t.begin(3);
      t.i32(1, TYPES[k.col.type]);
      t.list(2, 5, 1); t.zz(ENC.PLAIN);
      t.list(3, 8, 1); t.varint(Buffer.byteLength(k.col.name)); for (const x of Buffer.from(k.col.name)) t.byte(x);
      t.i32(4, CODECS[codec][0]);
      t.i64(5, k.nvals); t.i64(6, k.usize); t.i64(7, k.size); t.i64(9, k.dataOff);
      if (k.dictOff !== null) t.i64(11, k.dictOff);
      t.end();
      t.end();
    }
    t.i64(2, g.chunks.reduce((a, k) => a + k.usize, 0));
    t.i64(3, g.rows);
    t.end();
  }
  t.str(6, 'tyr make_fixtures.mjs');
  t.end();
  const footer = t.buf();
  parts.push(footer, u32(footer.length), Buffer.from('PAR1'));
  fs.writeFileSync(path.join(outdir, file), Buffer.concat(parts));
}

// The hand-built table: 120 rows in 2 row groups of 3 pages each.
const N = 120;
const f32 = (x) => Math.fround(x);
const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'ζήτα', ''];
const hand = Array.from({ length: N }, (_, i) => ({
  id: i,
  i64: i % 5 === 2 ? null : BigInt(i) * 123456789012n - 7000000000000n,
  f: i % 6 === 1 ? null : f32([0.5, -1.25, 3.0, 1e-3][i % 4]),
  d: i * 0.001 - 0.1,
  b: i % 7 === 3 ? null : (i % 3 === 0 || (i >= 20 && i < 30)),
  s: i % 9 === 4 || (i >= 80 && i < 100) ? null : i < 40 || (i >= 60 && i < 80) ? words[i % words.length] : `plain ${i} ${'z'.repeat(i % 13)}`,
  e: i < 60 && i % 2 === 0 ? `e${i}` : null,
}));
const handCols = [
  { name: 'id', type: 'INT32', optional: false },
  { name: 'i64', type: 'INT64', optional: true },
  { name: 'f', type: 'FLOAT', optional: true },
  { name: 'd', type: 'DOUBLE', optional: false },
  { name: 'b', type: 'BOOLEAN', optional: true },
  { name: 's', type: 'BYTE_ARRAY', optional: true, converted: 0 },
  { name: 'e', type: 'BYTE_ARRAY', optional: true, converted: 0 },
];
writeExpected('hand.expected', handCols, hand);

function handRowGroups(kind) {
  const groups = [];
  for (let g = 0; g < 2; g++) {
    const rows = hand.slice(g * 60, (g + 1) * 60);
    const pagesOf = (name) => [0, 1, 2].map((p) => rows.slice(p * 20, (p + 1) * 20).map((r) => r[name]));
    const fdict = [0.5, -1.25, 3.0, 1e-3].map(f32);
    groups.push([
      pagesOf('id').map((vals) => ({ kind, enc: 'PLAIN', vals })),
      pagesOf('i64').map((vals, p) => ({ kind, enc: 'PLAIN', vals, uncompressedValues: p === 1 })),
      [{ kind: 'dict', dict: fdict }, ...pagesOf('f').map((vals) => ({ kind, enc: 'RLE_DICTIONARY', vals, dict: fdict }))],
      pagesOf('d').map((vals) => ({ kind, enc: 'PLAIN', vals })),
      pagesOf('b').map((vals, p) => ({ kind, enc: p === 1 ? 'PLAIN' : 'RLE', vals })),
      // a dictionary for the first two pages, then PLAIN (a writer's
      // fallback when the dictionary grows too large)
      [{ kind: 'dict', dict: words }, ...pagesOf('s').map((vals, p) =>
        p < 2 ? { kind, enc: 'PLAIN_DICTIONARY', vals, dict: words } : { kind, enc: 'PLAIN', vals })],
      pagesOf('e').map((vals) => ({ kind, enc: 'PLAIN', vals })),
    ]);
  }
  return groups;
}
writeParquet('hand_v1_none.parquet', handCols, handRowGroups('v1'), 'none');
manifest.push(['hand_v1_none.parquet', 'hand.expected', 2]);
for (const codec of ['none', 'gzip', 'snappy', 'zstd']) {
  writeParquet(`hand_v2_${codec}.parquet`, handCols, handRowGroups('v2'), codec);
  manifest.push([`hand_v2_${codec}.parquet`, 'hand.expected', 2]);
}

// Refused: BIT_PACKED definition levels (deprecated).
writeParquet('bitpacked_levels.parquet', [handCols[1]],
  [[[{ kind: 'v1', enc: 'PLAIN', vals: hand.slice(0, 40).map((r) => r.i64), bitPackedLevels: true }]]], 'none');
manifest.push(['bitpacked_levels.parquet', '!error', 'definition level encoding BIT_PACKED is not supported']);

// Broken files: each must be refused with an error containing the text.
const i32col = { name: 'x', type: 'INT32', optional: true };
const sixteen = Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? null : 10 * (i % 2)));
const broken = [
  ['bad_dict_index', i32col, 'none', [{ kind: 'dict', dict: [0, 10] },
    { kind: 'v1', enc: 'RLE_DICTIONARY', vals: sixteen, dict: [0, 10], idx: [0, 1, 1, 0, 3, 1, 0, 1, 0, 1, 0, 1] }],
    'dictionary index 3 out of range (the dictionary has 2 entries)'],
  ['bad_no_dict', i32col, 'none', [{ kind: 'v1', enc: 'RLE_DICTIONARY', vals: sixteen, dict: [0, 10] }],
    'dictionary-encoded page without a dictionary page'],
  ['bad_page_size', i32col, 'none', [{ kind: 'v1', enc: 'PLAIN', vals: sixteen, sizeDelta: 1000 }],
    'runs past the end of the column chunk'],
  ['bad_levels', i32col, 'none', [{ kind: 'v1', enc: 'PLAIN', vals: sixteen,
    damage: (b) => { b.writeUInt32LE(1, 0); return b; } }], 'corrupt definition levels'],
  ['bad_string', { name: 's', type: 'BYTE_ARRAY', optional: false }, 'none',
    [{ kind: 'v1', enc: 'PLAIN', vals: ['abc', 'def', 'ghi'], damage: (b) => { b.writeUInt32LE(0xffffff, 7); return b; } }],
    'string 1 of 16777215 bytes runs past the page'],
  ['bad_snappy', i32col, 'snappy', [{ kind: 'v1', enc: 'PLAIN', vals: sixteen, damage: (b) => b.subarray(0, b.length - 5) }],
    'SNAPPY decompression failed'],
  ['bad_gzip', i32col, 'gzip', [{ kind: 'v1', enc: 'PLAIN', vals: sixteen, damage: (b) => { b[b.length - 6] ^= 0x55; return b; } }],
    'GZIP decompression failed'],
  ['bad_zstd', i32col, 'zstd', [{ kind: 'v1', enc: 'PLAIN', vals: sixteen, damage: (b) => b.subarray(0, b.length - 3) }],
    'ZSTD decompression failed'],
  ['bad_v2_nulls', i32col, 'gzip', [{ kind: 'v2', enc: 'PLAIN', vals: sixteen, nullsDelta: 1 }],
    'v2 page header says 5 nulls, its levels hold 4'],
];
for (const [name, col, codec, pages, msg] of broken) {
  writeParquet(`${name}.parquet`, [col], [[pages]], codec);
  manifest.push([`${name}.parquet`, '!error', msg]);
}

fs.writeFileSync(path.join(outdir, 'manifest.txt'),
  '# file\texpected values (or !error)\trow groups (or error substring)\n' +
  manifest.map((m) => m.join('\t')).join('\n') + '\n');
let total = 0;
for (const f of fs.readdirSync(outdir)) if (/\.(parquet|expected)$/.test(f)) total += fs.statSync(path.join(outdir, f)).size;
console.log(`wrote ${manifest.length} Parquet fixtures to ${outdir} (${total} bytes with the expected values)`);
