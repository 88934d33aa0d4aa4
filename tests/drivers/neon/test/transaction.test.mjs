// Transactions: ROLLBACK leaves nothing behind, COMMIT keeps the rows, a savepoint in between.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TARGETS, endClient, newClient, tableName } from '../lib/target.mjs';

for (const target of TARGETS) {
  describe(`Transaction [${target.name}]`, () => {
    test('ROLLBACK, then COMMIT', async () => {
      const t = await target.resolve();
      const table = tableName(t, 'tx');
      const a = newClient(t);
      const b = newClient(t); // another session, to look from outside
      const count = async (c) => (await c.query(`SELECT count(*)::int AS k FROM ${table}`)).rows[0].k;
      try {
        await a.connect();
        await b.connect();
        await a.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);

        await a.query('BEGIN');
        for (let i = 1; i <= 3; i++) {
          const r = await a.query(`INSERT INTO ${table} VALUES ($1, $2)`, [i, `r${i}`]);
          assert.equal(r.command, 'INSERT');
          assert.equal(r.rowCount, 1);
        }
        assert.equal(await count(a), 3, `[${t.name}] rows inside the transaction`);
        assert.equal(await count(b), 0, `[${t.name}] uncommitted rows seen by another session`);
        await a.query('ROLLBACK');
        assert.equal(await count(a), 0, `[${t.name}] rows after ROLLBACK`);
        assert.equal(await count(b), 0, `[${t.name}] rows after ROLLBACK, other session`);

        await a.query('BEGIN');
        await a.query(`INSERT INTO ${table} VALUES (1, 'one'), (2, 'two')`);
        await a.query('SAVEPOINT s1');
        await a.query(`INSERT INTO ${table} VALUES ($1, $2)`, [3, 'three']);
        await a.query('ROLLBACK TO SAVEPOINT s1');
        await a.query(`INSERT INTO ${table} VALUES ($1, $2)`, [4, 'four']);
        const upd = await a.query(`UPDATE ${table} SET v = upper(v) WHERE id <> $1`, [4]);
        assert.equal(upd.rowCount, 2);
        assert.equal(await count(b), 0, `[${t.name}] rows before COMMIT, other session`);
        await a.query('COMMIT');

        const rows = (await b.query(`SELECT id, v FROM ${table} ORDER BY id`)).rows;
        assert.deepEqual(rows, [{ id: 1, v: 'ONE' }, { id: 2, v: 'TWO' }, { id: 4, v: 'four' }],
          `[${t.name}] committed rows`);
        assert.deepEqual([...a.errors, ...b.errors], []);
      } finally {
        await a.query('ROLLBACK').catch(() => {}); // if an assertion left the transaction open
        await a.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
        await endClient(a);
        await endClient(b);
      }
    });
  });
}
