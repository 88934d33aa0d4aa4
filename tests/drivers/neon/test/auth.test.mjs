// Logins that must fail fail promptly, with an error: never a hang. A pipelined login (the
// driver's default) sends startup, a cleartext PasswordMessage and the first query in one
// WebSocket message, before the server has asked for anything.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SCRAM_TARGET, TARGETS, endClient, newClient, withClient, within } from '../lib/target.mjs';

const PROMPT_MS = 5_000;

/**
 * Connects and runs one query, expecting a FATAL rejection within PROMPT_MS and the connection
 * closed by the server within PROMPT_MS more. Returns the error.
 */
async function expectRejected(tc, t, what, opts) {
  const c = newClient(t, opts);
  // (not events.once: the driver also emits 'error', "Connection terminated unexpectedly", when
  // the server closes a pipelined login it rejected; newClient records that in c.errors)
  const ended = new Promise((resolve) => c.once('end', resolve));
  const started = Date.now();
  let err;
  try {
    await within(PROMPT_MS, `[${t.name}] ${what}`, (async () => {
      await c.connect();
      await c.query('SELECT 1 AS one');
    })());
  } catch (e) {
    err = e;
  }
  const ms = Date.now() - started;
  try {
    assert.ok(err, `[${t.name}] ${what}: login and query succeeded`);
    assert.doesNotMatch(err.message, /no answer within/, `[${t.name}] ${what}`);
    assert.equal(err.severity, 'FATAL', `[${t.name}] ${what}: not a FATAL server error: ${err.stack}`);
    await within(PROMPT_MS, `[${t.name}] ${what}: connection close`, ended);
  } finally {
    await endClient(c);
  }
  tc.diagnostic(`[${t.name}] ${what}: ${err.severity} ${err.code} "${err.message}" after ${ms} ms`);
  return err;
}

for (const target of TARGETS) {
  describe(`Auth [${target.name}]`, () => {
    test('a wrong password is rejected promptly with 28P01', async (tc) => {
      const t = await target.resolve();
      const err = await expectRejected(tc, t, 'wrong password', { cfg: { password: `${t.password}-wrong` } });
      assert.equal(err.code, '28P01', `[${t.name}] ${err.message}`);
      assert.match(err.message, /password authentication failed/);
    });

    if (target.name === 'direct') {
      // Reference for the muxql-scram case below: PostgreSQL itself, asking for SCRAM, given a
      // pipelined cleartext password (08P01 "client selected an invalid SASL authentication
      // mechanism").
      test('a pipelined cleartext login to a SCRAM server is rejected promptly', async (tc) => {
        const t = await target.resolve();
        const err = await expectRejected(tc, t, 'pipelined login', { neon: { pipelineConnect: 'password' } });
        assert.ok(['08P01', '28P01', '28000'].includes(err.code), `[${t.name}] ${err.code}: ${err.message}`);
      });
    }
  });
}

describe(`Auth [${SCRAM_TARGET.name}]`, () => {
  test('a pipelined cleartext login is rejected promptly, not hung', async (tc) => {
    const t = await SCRAM_TARGET.resolve();
    const err = await expectRejected(tc, t, 'pipelined login to --auth scram');
    assert.ok(['08P01', '28P01', '28000'].includes(err.code), `[${t.name}] ${err.code}: ${err.message}`);
  });

  test('SCRAM login without pipelining, then queries', async () => {
    const t = await SCRAM_TARGET.resolve();
    await withClient(t, async (c) => {
      assert.deepEqual((await c.query('SELECT $1::int * 2 AS v', [4])).rows, [{ v: 8 }]);
      assert.deepEqual((await c.query({ name: 'neon_scram', text: 'SELECT $1::text AS s', values: ['ok'] })).rows,
        [{ s: 'ok' }]);
      assert.deepEqual(c.errors, []);
    }, { neon: { pipelineConnect: false } });
  });

  test('SCRAM with a wrong password is rejected promptly with 28P01', async (tc) => {
    const t = await SCRAM_TARGET.resolve();
    const err = await expectRejected(tc, t, 'wrong SCRAM password', {
      neon: { pipelineConnect: false },
      cfg: { password: `${t.password}-wrong` },
    });
    assert.equal(err.code, '28P01', `[${t.name}] ${err.message}`);
  });
});
