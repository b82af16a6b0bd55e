// Checks hasvc through node-postgres: parameters, named prepared
// statements, types (int8 arrives as a string, as node-postgres does for
// PostgreSQL; INTEGER and SMALLINT columns as numbers), SERIAL keys, a
// transaction and an error code. Connection settings come
// from the PG* environment variables. Exits non-zero on a failed check.
const { Client } = require('pg');

function check(ok, what) {
  if (!ok) {
    console.error('FAIL: ' + what);
    process.exit(1);
  }
}

async function main() {
  const c = new Client({ ssl: false });
  await c.connect();
  await c.query('CREATE TABLE nt (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION, raw BYTEA, ok BOOLEAN)');
  for (let i = 1; i <= 10; i++) {
    const r = await c.query({
      name: 'ins',
      text: 'INSERT INTO nt (id, name, score, raw, ok) VALUES ($1, $2, $3, $4, $5)',
      values: [i, 'n' + i, i + 0.5, Buffer.from([0, i]), i % 2 === 0],
    });
    check(r.rowCount === 1 && r.command === 'INSERT', 'insert ' + JSON.stringify(r));
  }
  const r = await c.query('SELECT id, name, score, raw, ok FROM nt WHERE id = $1', [4]);
  check(r.rows.length === 1, 'one row');
  const row = r.rows[0];
  check(row.id === '4', 'int8 as string: ' + JSON.stringify(row.id));
  check(row.name === 'n4' && row.score === 4.5, 'name, score ' + JSON.stringify(row));
  check(Buffer.isBuffer(row.raw) && row.raw.equals(Buffer.from([0, 4])), 'bytea ' + JSON.stringify(row.raw));
  check(row.ok === true, 'bool ' + row.ok);
  check(r.fields.map((f) => f.dataTypeID).join(',') === '20,25,701,17,16', 'types ' + r.fields.map((f) => f.dataTypeID));

  await c.query('CREATE TABLE ser (id SERIAL PRIMARY KEY, n INTEGER, s SMALLINT)');
  const ins = await c.query('INSERT INTO ser (n, s) VALUES ($1, $2), ($3, $4) RETURNING id', [7, 1, 8, 2]);
  check(ins.rows.map((r) => r.id).join(',') === '1,2', 'serial ids ' + JSON.stringify(ins.rows));
  const ints = await c.query('SELECT id, n, s FROM ser ORDER BY id');
  check(ints.rows[1].id === 2 && ints.rows[1].n === 8 && ints.rows[1].s === 2, 'int4/int2 as numbers ' + JSON.stringify(ints.rows));
  check(ints.fields.map((f) => f.dataTypeID).join(',') === '23,23,21', 'int types ' + ints.fields.map((f) => f.dataTypeID));

  const nulls = await c.query('SELECT NULL::text AS t, $1::text AS p', [null]);
  check(nulls.rows[0].t === null && nulls.rows[0].p === null, 'nulls');

  await c.query('BEGIN');
  await c.query('DELETE FROM nt');
  await c.query('ROLLBACK');
  await c.query('BEGIN');
  await c.query('UPDATE nt SET score = 0 WHERE id = $1', [1]);
  await c.query('COMMIT');
  const cnt = await c.query('SELECT count(*) AS n, min(score) AS m FROM nt');
  check(cnt.rows[0].n === '10' && cnt.rows[0].m === 0, 'after transactions ' + JSON.stringify(cnt.rows[0]));

  try {
    await c.query('INSERT INTO nt (id, name) VALUES (1, $1)', ['dup']);
    check(false, 'duplicate accepted');
  } catch (e) {
    check(e.code === '23505', 'unique violation code ' + e.code);
  }
  await c.end();
  console.log('node-postgres ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
