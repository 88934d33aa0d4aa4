// Pool: 50 clients connected at once, each checking its own answers and its own rows.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TARGETS, endPool, newPool, tableName, withClient } from '../lib/target.mjs';

const CLIENTS = 50;
const QUERIES = 10;
const ROWS = 5;

for (const target of TARGETS) {
  describe(`Pool [${target.name}]`, () => {
    test(`${CLIENTS} concurrent clients`, { timeout: 120_000 }, async () => {
      const t = await target.resolve();
      const table = tableName(t, 'pool');
      await withClient(t, (c) => c.query(`CREATE TABLE ${table} (worker int NOT NULL, n int NOT NULL)`));
      const pool = newPool(t, { max: CLIENTS, idleTimeoutMillis: 30_000 });
      try {
        // Every worker holds its client until all of them hold one, so that all 50 are
        // connected (and idle in muxql) at the same time before any query runs.
        let arrived = 0;
        let releaseAll;
        const allHere = new Promise((resolve) => { releaseAll = resolve; });
        const worker = async (w) => {
          const c = await pool.connect();
          try {
            if (++arrived === CLIENTS) releaseAll();
            await allHere;
            for (let i = 0; i < QUERIES; i++) {
              const x = w * 1000 + i;
              const r = await c.query('SELECT $1::int * 2 AS v, $2::text AS who', [x, `w${w}`]);
              assert.deepEqual(r.rows, [{ v: 2 * x, who: `w${w}` }], `[${t.name}] worker ${w} query ${i}`);
            }
            await c.query('BEGIN');
            for (let n = 0; n < ROWS; n++) {
              await c.query(`INSERT INTO ${table} VALUES ($1, $2)`, [w, n]);
            }
            const inside = await c.query(`SELECT count(*)::int AS k FROM ${table} WHERE worker = $1`, [w]);
            assert.equal(inside.rows[0].k, ROWS, `[${t.name}] worker ${w} rows inside its transaction`);
            await c.query('COMMIT');
            const sum = await c.query(`SELECT sum(n)::int AS s FROM ${table} WHERE worker = $1`, [w]);
            assert.equal(sum.rows[0].s, (ROWS * (ROWS - 1)) / 2, `[${t.name}] worker ${w} committed rows`);
          } finally {
            c.release();
          }
        };
        const results = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, w) => worker(w)));
        const failed = results.filter((r) => r.status === 'rejected');
        assert.equal(failed.length, 0,
          `[${t.name}] ${failed.length}/${CLIENTS} workers failed; first: ${failed[0]?.reason?.stack}`);
        assert.equal(pool.totalCount, CLIENTS, `[${t.name}] clients the pool opened`);

        // Pool.query: 200 calls in flight at once over the same 50 clients.
        const answers = await Promise.all(Array.from({ length: 200 }, (_, i) =>
          pool.query('SELECT $1::int + 1 AS v', [i]).then((r) => r.rows[0].v)));
        assert.deepEqual(answers, Array.from({ length: 200 }, (_, i) => i + 1), `[${t.name}] pool.query`);

        const total = await pool.query(`SELECT count(*)::int AS k, count(DISTINCT worker)::int AS w FROM ${table}`);
        assert.deepEqual(total.rows, [{ k: CLIENTS * ROWS, w: CLIENTS }], `[${t.name}] all rows`);
        assert.deepEqual(pool.errors, [], `[${t.name}] pool error events`);
      } finally {
        await endPool(pool);
        await withClient(t, (c) => c.query(`DROP TABLE IF EXISTS ${table}`)).catch(() => {});
      }
    });
  });
}
