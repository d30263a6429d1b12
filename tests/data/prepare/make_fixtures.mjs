// Writes the fixtures of tests/integration/prepare.sh: the same documents as
// a Parquet file (a "text" column, as in FineWeb shards) and as a text file
// of blank-line separated paragraphs, so that tyr_prepare must give the same
// shards from both.
//
//   mkdir -p /tmp/pqgen && cd /tmp/pqgen && npm install @duckdb/node-api
//   node /path/to/tests/data/prepare/make_fixtures.mjs
//
// The documents are the first paragraphs of data/tinyshakespeare.txt and a
// non-ASCII one.  docs.parquet: columns id (BIGINT) and text (VARCHAR), one
// NULL text (skipped by the reader), several row groups, snappy.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');
const require = createRequire(path.join(process.cwd(), 'noop.js'));
const { DuckDBInstance } = require('@duckdb/node-api');

const text = fs.readFileSync(path.join(root, 'data', 'tinyshakespeare.txt'), 'utf8');
const docs = text.split(/\n[ \t]*\n/).slice(0, 48).map((d) => d.replace(/[\r\n]+$/, ''));
docs.splice(7, 0, 'Ωmega — naïve café, 日本語 ✓');
fs.writeFileSync(path.join(here, 'docs.txt'), docs.join('\n\n') + '\n');

const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
await con.run('SET threads TO 1');
await con.run('CREATE TABLE t (id BIGINT, text VARCHAR)');
let id = 0;
for (const d of docs) {
  if (id === 12) await con.run('INSERT INTO t VALUES ($1, NULL)', [id++]);
  await con.run('INSERT INTO t VALUES ($1, $2)', [id++, d]);
}
const out = path.join(here, 'docs.parquet');
await con.run(`COPY (SELECT * FROM t ORDER BY id) TO '${out}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 16)`);
console.log(`${docs.length} documents (+1 NULL) -> docs.parquet, docs.txt`);
