#!/bin/sh
# Text-column read throughput: Tyr's Parquet reader against DuckDB on the
# same files, in the same run.
#
#   bench/parquet_vs_duckdb.sh [BUILD_DIR [WORK_DIR]]
#
# Needs node and the @duckdb/node-api package installed in $DUCKDB_NODE_DIR
# (default /tmp/pqgen: mkdir -p /tmp/pqgen && cd /tmp/pqgen && npm install
# @duckdb/node-api).  Makes (once) ~70 MB of text in a Parquet file per
# codec under WORK_DIR (default /tmp/tyr-bench-parquet) from
# data/tinyshakespeare.txt: 160000 documents of 16 random lines each.
# Then for each file runs build/bench/bench_parquet (cold: fresh buffers per
# run; warm: the heap kept between runs, as DuckDB keeps its buffers) and DuckDB's
# SELECT sum(strlen(text)) FROM read_parquet(...) with 1 thread and with
# all threads, and prints MB/s of string bytes for each.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
WORK=${2:-/tmp/tyr-bench-parquet}
DUCKDB_NODE_DIR=${DUCKDB_NODE_DIR:-/tmp/pqgen}
BENCH=$BUILD/bench/bench_parquet
REPEATS=${REPEATS:-5}

if [ ! -x "$BENCH" ]; then
  echo "no $BENCH: build first (cmake --build $BUILD --target bench_parquet)"
  exit 1
fi
if ! command -v node >/dev/null || [ ! -d "$DUCKDB_NODE_DIR/node_modules/@duckdb/node-api" ]; then
  echo "DuckDB's node package is not in $DUCKDB_NODE_DIR: skipping (see the header of $0)"
  exit 0
fi
mkdir -p "$WORK"

JS=$WORK/duck.cjs
cat >"$JS" <<'JSEOF'
const { createRequire } = require('node:module');
const path = require('node:path');
const req = createRequire(path.join(process.env.DUCKDB_NODE_DIR, 'noop.js'));
const { DuckDBInstance } = req('@duckdb/node-api');
const [mode, a, b, c] = process.argv.slice(2);
(async () => {
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  const q = async (s) => (await con.runAndReadAll(s)).getRowObjects();
  if (mode === 'make') { // make TEXT_FILE OUT_PREFIX
    await q(`CREATE TABLE lines AS SELECT row_number() OVER () - 1 AS n, line
             FROM (SELECT unnest(string_split(content, chr(10))) AS line FROM read_text('${a}'))`);
    const [{ nl }] = await q('SELECT count(*)::INTEGER AS nl FROM lines');
    await q(`CREATE TABLE picks AS SELECT d, k, (hash(d * 16 + k) % ${nl})::BIGINT AS n
             FROM range(160000) t(d), range(16) s(k)`);
    await q(`CREATE TABLE docs AS SELECT p.d::INTEGER AS id, string_agg(l.line, chr(10) ORDER BY p.k) AS text
             FROM picks p JOIN lines l ON p.n = l.n GROUP BY p.d ORDER BY p.d`);
    for (const codec of ['snappy', 'zstd', 'uncompressed'])
      await q(`COPY docs TO '${b}_${codec}.parquet' (FORMAT parquet, COMPRESSION ${codec})`);
    return;
  }
  // time FILE THREADS REPEATS
  await q(`SET threads = ${b}`);
  const sql = `SELECT sum(strlen(text))::BIGINT AS bytes FROM read_parquet('${a}')`;
  await q(sql); // warm-up
  const times = [];
  let bytes = 0n;
  for (let r = 0; r < Number(c); r++) {
    const t0 = process.hrtime.bigint();
    const [row] = await q(sql);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    bytes = row.bytes;
  }
  times.sort((x, y) => x - y);
  const mb = Number(bytes) / 1e6;
  const label = `duckdb sum(strlen(text)), threads=${b}`;
  console.log(`${label.padEnd(34)} best ${times[0].toFixed(3)} s  median ${times[times.length >> 1].toFixed(3)} s  ` +
    `${(mb / times[0]).toFixed(1).padStart(8)} MB/s of strings (median ${(mb / times[times.length >> 1]).toFixed(1)})`);
  console.log(`duckdb: string bytes ${bytes}`);
})();
JSEOF
export DUCKDB_NODE_DIR

if [ ! -f "$WORK/text_zstd.parquet" ]; then
  echo "making the text files under $WORK ..."
  node "$JS" make "$ROOT/data/tinyshakespeare.txt" "$WORK/text"
fi
NPROC=$(nproc)
for codec in snappy zstd uncompressed; do
  f=$WORK/text_$codec.parquet
  echo
  echo "== $codec"
  "$BENCH" "$f" text "$REPEATS"
  "$BENCH" -w "$f" text "$REPEATS" | grep -v '^tyr: string bytes'
  node "$JS" time "$f" 1 "$REPEATS"
  [ "$NPROC" -gt 1 ] && node "$JS" time "$f" "$NPROC" "$REPEATS"
done
