// Client: connecting (pipelined and server-driven logins), queries, errors on a live client.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  TARGETS, endClient, newClient, recordingWebSocket, rejectsWith, withClient,
} from '../lib/target.mjs';

/** The PasswordMessage of a cleartext password: 'p', int32 length, the password, NUL. */
function passwordMessage(password) {
  const pw = Buffer.from(`${password}\0`);
  const len = Buffer.alloc(4);
  len.writeInt32BE(pw.length + 4);
  return Buffer.concat([Buffer.from('p'), len, pw]);
}

for (const target of TARGETS) {
  describe(`Client [${target.name}]`, () => {
    test('connect, then a parameterised query', async () => {
      const t = await target.resolve();
      await withClient(t, async (c) => {
        const r = await c.query(
          'SELECT $1::int * 2 AS v, current_user AS u, current_database() AS d',
          [21],
        );
        assert.deepEqual(r.rows, [{ v: 42, u: t.user, d: t.database }], `[${t.name}]`);
        assert.equal(r.command, 'SELECT');
        assert.equal(r.rowCount, 1);
        assert.deepEqual(c.errors, []);
      });
    });

    test('a query queued before connect settles', async () => {
      const t = await target.resolve();
      const sent = [];
      const Recording = recordingWebSocket(sent);
      const c = newClient(t, { webSocketConstructor: Recording });
      try {
        const connected = c.connect();
        const q = c.query('SELECT $1::text AS s, $2::int8 AS n', ['pipelined', '9007199254740993']);
        await connected;
        assert.deepEqual((await q).rows, [{ s: 'pipelined', n: '9007199254740993' }], `[${t.name}]`);
        if (t.pipelineConnect === 'password') {
          // The case is only meaningful if the login really was pipelined: startup, the
          // PasswordMessage and the query's Parse all in the first WebSocket message.
          const first = sent[0];
          const shown = JSON.stringify(first.toString('latin1'));
          assert.ok(first.includes(passwordMessage(t.password)),
            `[${t.name}] first message has no PasswordMessage: ${shown}`);
          assert.ok(first.includes('SELECT $1::text AS s'),
            `[${t.name}] first message has no Parse of the query: ${shown}`);
        }
        assert.deepEqual(c.errors, []);
      } finally {
        await endClient(c);
      }
    });

    if (target.name === 'muxql') {
      test('server-driven cleartext login (pipelineConnect false)', async () => {
        const t = await target.resolve();
        const sent = [];
        const Recording = recordingWebSocket(sent);
        await withClient(t, async (c) => {
          assert.deepEqual((await c.query('SELECT 7 AS seven')).rows, [{ seven: 7 }]);
        }, { neon: { pipelineConnect: false }, webSocketConstructor: Recording });
        // startup alone, then the PasswordMessage once muxql asked for a cleartext password
        assert.equal(sent[0].readInt32BE(4), 196608, `[${t.name}] first message is not the startup`);
        assert.equal(sent[0].length, sent[0].readInt32BE(0), `[${t.name}] startup was not sent alone`);
        assert.deepEqual(sent[1], passwordMessage(t.password),
          `[${t.name}] second message is not a cleartext PasswordMessage`);
      });
    }

    test('several statements in one simple query', async () => {
      const t = await target.resolve();
      await withClient(t, async (c) => {
        const rs = await c.query("SELECT 1 AS a; SELECT 'two' AS b, NULL::int AS c; SELECT");
        assert.equal(rs.length, 3, `[${t.name}]`);
        assert.deepEqual(rs[0].rows, [{ a: 1 }]);
        assert.deepEqual(rs[1].rows, [{ b: 'two', c: null }]);
        assert.deepEqual(rs[2].rows, [{}]);
      });
    });

    test('value types round trip', async () => {
      const t = await target.resolve();
      await withClient(t, async (c) => {
        const r = await c.query(
          `SELECT $1::bool AS b, $2::float8 AS f, $3::numeric AS n, $4::bytea AS y,
                  $5::jsonb AS j, $6::timestamptz AS ts, $7::int4[] AS a, $8::text AS t,
                  $9::int AS nul`,
          [true, 1.5, '12345678901234567890.5', Buffer.from([0, 1, 254, 255]),
            JSON.stringify({ k: [1, 'x'] }), new Date('2024-02-29T12:34:56.789Z'), [1, 2, 3],
            'žluťoučký ✓', null],
        );
        const row = r.rows[0];
        assert.equal(row.b, true);
        assert.equal(row.f, 1.5);
        assert.equal(row.n, '12345678901234567890.5');
        assert.deepEqual([...row.y], [0, 1, 254, 255]);
        assert.deepEqual(row.j, { k: [1, 'x'] });
        assert.equal(row.ts.toISOString(), '2024-02-29T12:34:56.789Z');
        assert.deepEqual(row.a, [1, 2, 3]);
        assert.equal(row.t, 'žluťoučký ✓');
        assert.equal(row.nul, null);
        const many = await c.query('SELECT g, md5(g::text) AS h FROM generate_series(1, 500) g');
        assert.equal(many.rowCount, 500, `[${t.name}]`);
        assert.equal(many.rows[499].g, 500);
      });
    });

    test('an error, then a good query on the same client', async () => {
      const t = await target.resolve();
      await withClient(t, async (c) => {
        // simple protocol (no parameters)
        const e1 = await rejectsWith(c.query('SELECT 1/0'), '22012', `[${t.name}] simple 1/0`);
        assert.match(e1.message, /division by zero/);
        assert.deepEqual((await c.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
        // extended protocol (parameters)
        await rejectsWith(c.query('SELECT $1::int / 0', [5]), '22012', `[${t.name}] extended 1/0`);
        assert.deepEqual((await c.query('SELECT $1::int AS v', [2])).rows, [{ v: 2 }]);
        await rejectsWith(c.query('SELEC $1', [1]), '42601', `[${t.name}] syntax error`);
        await rejectsWith(c.query('SELECT * FROM drv_neon_no_such_table'), '42P01',
          `[${t.name}] missing table`);
        assert.deepEqual((await c.query('SELECT $1::text AS v', ['after'])).rows, [{ v: 'after' }]);
        // an error inside a transaction aborts it until ROLLBACK
        await c.query('BEGIN');
        await rejectsWith(c.query('SELECT 1/0'), '22012', `[${t.name}] 1/0 in transaction`);
        await rejectsWith(c.query('SELECT 1'), '25P02', `[${t.name}] after error in transaction`);
        await c.query('ROLLBACK');
        assert.deepEqual((await c.query('SELECT 3 AS v')).rows, [{ v: 3 }]);
        assert.deepEqual(c.errors, [], `[${t.name}] client error events`);
      });
    });
  });
}
