// Named prepared statements ({name, text, values} query configs): the driver sends Parse with
// the name once per connection and only Bind/Execute afterwards.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TARGETS, endPool, newPool, rejectsWith, withClient } from '../lib/target.mjs';

for (const target of TARGETS) {
  describe(`Prepared [${target.name}]`, () => {
    test('two named statements reused on one client, in and out of transactions', async () => {
      const t = await target.resolve();
      await withClient(t, async (c) => {
        const dbl = (v) => ({ name: 'neon_double', text: 'SELECT $1::int * 2 AS v', values: [v] });
        const cat = (a, b) => ({ name: 'neon_concat', text: 'SELECT $1::text || $2::text AS s', values: [a, b] });
        for (let i = 0; i < 12; i++) {
          if (i === 4) await c.query('BEGIN');
          if (i === 8) await c.query('COMMIT');
          assert.deepEqual((await c.query(dbl(i))).rows, [{ v: 2 * i }], `[${t.name}] neon_double #${i}`);
          assert.deepEqual((await c.query(cat(`a${i}`, 'b'))).rows, [{ s: `a${i}b` }], `[${t.name}] neon_concat #${i}`);
        }
        if (t.name === 'direct') {
          // The driver really prepares them server-side (through muxql the upstream session,
          // and so this view, belongs to whichever client ran last: not checked there).
          const names = (await c.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'neon_%' ORDER BY name")).rows;
          assert.deepEqual(names.map((r) => r.name), ['neon_concat', 'neon_double'], `[${t.name}] pg_prepared_statements`);
        }
        const arr = await c.query({ ...dbl(50), rowMode: 'array' });
        assert.deepEqual(arr.rows, [[100]]);
      });
    });

    test('the same name on 8 concurrent clients', { timeout: 60_000 }, async () => {
      const t = await target.resolve();
      const pool = newPool(t, { max: 8 });
      try {
        const run = async (w) => {
          const c = await pool.connect();
          try {
            for (let i = 0; i < 25; i++) {
              const r = await c.query({
                name: 'neon_shared',
                text: 'SELECT $1::int AS w, $2::int AS i, $1::int * 100 + $2::int AS k',
                values: [w, i],
              });
              assert.deepEqual(r.rows, [{ w, i, k: w * 100 + i }], `[${t.name}] client ${w} execution ${i}`);
            }
          } finally {
            c.release();
          }
        };
        await Promise.all(Array.from({ length: 8 }, (_, w) => run(w)));
        assert.deepEqual(pool.errors, []);
      } finally {
        await endPool(pool);
      }
    });

    test('a failing named statement, then good ones', async () => {
      const t = await target.resolve();
      await withClient(t, async (c) => {
        await rejectsWith(c.query({ name: 'neon_bad_parse', text: 'SELEC $1::int', values: [1] }),
          '42601', `[${t.name}] Parse error`);
        const good = { name: 'neon_good', text: 'SELECT 10 / $1::int AS q', values: [5] };
        assert.deepEqual((await c.query(good)).rows, [{ q: 2 }]);
        // Prepared fine, fails at execution; the statement stays usable.
        await rejectsWith(c.query({ ...good, values: [0] }), '22012', `[${t.name}] Execute error`);
        assert.deepEqual((await c.query({ ...good, values: [2] })).rows, [{ q: 5 }]);
        assert.deepEqual((await c.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
        assert.deepEqual(c.errors, []);
      });
    });
  });
}
