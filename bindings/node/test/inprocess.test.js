'use strict';
// createPool: logical sessions inside this process (node-postgres's and mysql2's `stream`
// option) over 4 real connections; every session keeps its own settings.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { spawn } = require('node:child_process');
const pg = require('pg');
const mysql = require('mysql2/promise');
const { createPool } = require('..');

const POOL = 4;
const PG_SESSIONS = 500;
const MY_SESSIONS = 40;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run eval "$(scripts/dbs env DIR)" first (see scripts/test)`);
  return v;
}

function poolOptions() {
  return {
    routes: [
      {
        protocol: 'postgres',
        database: env('MUXQL_PG_DB'),
        target: `127.0.0.1:${env('MUXQL_PG_PORT')}`,
        upstreamUser: env('MUXQL_PG_SCRAM_USER'),
        upstreamPassword: env('MUXQL_PG_PASSWORD'),
        poolSize: POOL,
      },
      {
        protocol: 'mysql',
        database: env('MUXQL_MY_DB'),
        target: `127.0.0.1:${env('MUXQL_MY_PORT')}`,
        upstreamUser: env('MUXQL_MY_USER'),
        upstreamPassword: env('MUXQL_MY_PASSWORD'),
        poolSize: POOL,
      },
    ],
    users: [
      { name: env('MUXQL_PG_SCRAM_USER'), password: env('MUXQL_PG_PASSWORD') },
      { name: env('MUXQL_MY_USER'), password: env('MUXQL_MY_PASSWORD') },
    ],
    auth: 'scram',
  };
}

async function all(n, what, fn) {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => fn(i)));
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 0, `${what}: ${failed.length}/${n} failed; first: ${failed[0]?.reason?.stack}`);
  return results.map((r) => r.value);
}

function barrier(n) {
  let arrived = 0;
  let release;
  const allHere = new Promise((resolve) => {
    release = resolve;
  });
  return () => {
    if (++arrived === n) release();
    return allHere;
  };
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let pool;
const pgTable = `node_${crypto.randomBytes(5).toString('hex')}`;

const pgClient = () => new pg.Client({
  stream: () => pool.stream(),
  user: env('MUXQL_PG_SCRAM_USER'),
  password: env('MUXQL_PG_PASSWORD'),
  database: env('MUXQL_PG_DB'),
});
const myConnection = () => mysql.createConnection({
  stream: () => pool.stream('mysql'),
  user: env('MUXQL_MY_USER'),
  password: env('MUXQL_MY_PASSWORD'),
  database: env('MUXQL_MY_DB'),
});

before(async () => {
  pool = createPool(poolOptions());
  const c = pgClient();
  await c.connect();
  await c.query(`create table ${pgTable} (session int not null, v text not null)`);
  await c.end();
});

after(async () => {
  if (pool) {
    try {
      const c = pgClient();
      await c.connect();
      await c.query(`drop table if exists ${pgTable}`);
      await c.end();
    } finally {
      await pool.close();
    }
  }
});

describe('node-postgres over pool.stream()', () => {
  test(`${PG_SESSIONS} sessions over ${POOL} connections keep their own settings`, { timeout: 90_000 }, async () => {
    const arrive = barrier(PG_SESSIONS);
    const streams = new Set();
    await all(PG_SESSIONS, 'pg sessions', async (i) => {
      const c = new pg.Client({
        stream: () => {
          const s = pool.stream();
          streams.add(s);
          return s;
        },
        user: env('MUXQL_PG_SCRAM_USER'),
        password: env('MUXQL_PG_PASSWORD'),
        database: env('MUXQL_PG_DB'),
      });
      c.on('error', () => {});
      await c.connect();
      try {
        await c.query(`SET application_name = 'c${i}'`);
        await c.query(`SET muxql.test = '${i}'`);
        await c.query(`SET statement_timeout = ${12345 + i}`);
        await arrive(); // every session has set its own values before anyone reads
        for (let k = 0; k < 6; k++) {
          const r = await c.query('select $1::int as i, current_setting($2) as t', [i, 'muxql.test']);
          assert.deepEqual(r.rows, [{ i, t: String(i) }], `session ${i} round ${k}`);
          if (k === 3) {
            await c.query('BEGIN');
            await c.query(`insert into ${pgTable} values ($1, current_setting('application_name'))`, [i]);
            await c.query('COMMIT');
          }
        }
        const r = await c.query(`select current_setting('application_name') as app,
          current_setting('muxql.test') as t, current_setting('statement_timeout') as st`);
        assert.deepEqual(r.rows, [{ app: `c${i}`, t: String(i), st: `${12345 + i}ms` }], `session ${i} settings`);
        const shown = await c.query('SHOW application_name');
        assert.equal(shown.rows[0].application_name, `c${i}`);
      } finally {
        await c.end();
      }
    });
    assert.equal(streams.size, PG_SESSIONS);
    const c = pgClient();
    await c.connect();
    const rows = (await c.query(`select session, v from ${pgTable} order by session`)).rows;
    await c.end();
    assert.equal(rows.length, PG_SESSIONS);
    rows.forEach((row, i) => assert.deepEqual(row, { session: i, v: `c${i}` }, 'application_name seen by the server'));
    const s = pool.stats().routes[0];
    assert.ok(s.peakUpstreams <= POOL, `peakUpstreams ${s.peakUpstreams}`);
    assert.ok(s.peakClients >= PG_SESSIONS, `peakClients ${s.peakClients}`);
    assert.equal(s.clients, 0, `clients left: ${s.clients}`);
  });

  test('large values both ways (backpressure through the Duplex)', { timeout: 60_000 }, async () => {
    await all(4, 'large values', async (i) => {
      const c = pgClient();
      await c.connect();
      try {
        const big = crypto.randomBytes(3 * 1024 * 1024 + i);
        const r = await c.query('select $1::bytea as b, md5($1::bytea) as h', [big]);
        assert.equal(r.rows[0].h, crypto.createHash('md5').update(big).digest('hex'));
        assert.ok(big.equals(r.rows[0].b), 'bytea round trip');
        const many = await c.query('select g, repeat(md5(g::text), 100) as s from generate_series(1, 20000) g');
        assert.equal(many.rowCount, 20000);
        assert.equal(many.rows[19999].s.length, 3200);
        assert.equal(many.rows[12345].s, crypto.createHash('md5').update('12346').digest('hex').repeat(100));
      } finally {
        await c.end();
      }
    });
  });
});

describe('mysql2 over pool.stream(\'mysql\')', () => {
  test(`${MY_SESSIONS} sessions keep their own sql_mode and time_zone`, { timeout: 60_000 }, async () => {
    const arrive = barrier(MY_SESSIONS);
    const modes = ['STRICT_TRANS_TABLES', 'ANSI_QUOTES', 'NO_ZERO_DATE', 'ONLY_FULL_GROUP_BY'];
    await all(MY_SESSIONS, 'mysql2 sessions', async (i) => {
      const c = await myConnection();
      try {
        const mode = modes[i % modes.length];
        const tz = `+${String(i % 13).padStart(2, '0')}:${i % 2 ? '30' : '00'}`;
        await c.query(`SET SESSION sql_mode = '${mode}'`);
        await c.query(`SET SESSION time_zone = '${tz}'`);
        await arrive();
        for (let k = 0; k < 6; k++) {
          const [rows] = await c.execute('SELECT ? AS i, @@SESSION.time_zone AS tz', [i]);
          assert.deepEqual([Number(rows[0].i), rows[0].tz], [i, tz], `session ${i} round ${k}`);
        }
        const [rows] = await c.query('SELECT @@SESSION.sql_mode AS m, @@SESSION.time_zone AS tz');
        assert.deepEqual({ m: rows[0].m, tz: rows[0].tz }, { m: mode, tz }, `session ${i} settings`);
      } finally {
        await c.end();
      }
    });
    const s = pool.stats().routes[1];
    assert.equal(s.protocol, 'mysql');
    assert.ok(s.peakUpstreams <= POOL, `peakUpstreams ${s.peakUpstreams}`);
    assert.ok(s.peakClients >= MY_SESSIONS, `peakClients ${s.peakClients}`);
  });
});

describe('cancel and abandoned sessions in process', () => {
  test('node-postgres cancel() through a pool stream: 57014, the session goes on', { timeout: 30_000 }, async () => {
    const victim = pgClient();
    await victim.connect();
    try {
      const started = Date.now();
      const sleeping = victim.query('select pg_sleep(10)').then(() => null, (e) => e);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(victim.activeQuery, 'the sleep is running');
      // the canceller's Connection gets its stream from the pool too (a CancelRequest session)
      pgClient().cancel(victim, victim.activeQuery);
      const err = await within(5000, 'cancelled pg_sleep', sleeping);
      assert.ok(err, 'pg_sleep(10) finished without an error');
      assert.equal(err.code, '57014', `${err.code}: ${err.message}`);
      assert.ok(Date.now() - started < 5000);
      assert.deepEqual((await victim.query('select 3 as v')).rows, [{ v: 3 }]);
    } finally {
      await victim.end();
    }
  });

  test('mysql2 KILL QUERY between two pool streams', { timeout: 30_000 }, async () => {
    const victim = await myConnection();
    const killer = await myConnection();
    try {
      const started = Date.now();
      const sleeping = victim.query('SELECT SLEEP(10) AS s').then(([rows]) => ({ rows }), (err) => ({ err }));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await killer.query(`KILL QUERY ${victim.threadId}`);
      const outcome = await within(5000, 'killed SLEEP(10)', sleeping);
      assert.ok(Date.now() - started < 5000);
      if (outcome.err) assert.equal(outcome.err.errno, 1317, `${outcome.err.code}: ${outcome.err.message}`);
      else assert.equal(Number(outcome.rows[0].s), 1);
      const [rows] = await victim.query('SELECT 5 AS five');
      assert.equal(Number(rows[0].five), 5);
    } finally {
      await victim.end();
      await killer.end();
    }
  });

  test('streams destroyed mid-query and mid-transaction do not leak upstreams', { timeout: 60_000 }, async () => {
    const streams = [];
    await all(12, 'abandoned sessions', async (i) => {
      const c = new pg.Client({
        stream: () => {
          const st = pool.stream();
          streams.push(st);
          return st;
        },
        user: env('MUXQL_PG_SCRAM_USER'),
        password: env('MUXQL_PG_PASSWORD'),
        database: env('MUXQL_PG_DB'),
      });
      c.on('error', () => {});
      await c.connect();
      if (i % 2) {
        await c.query('BEGIN');
        await c.query(`insert into ${pgTable} values ($1, 'abandoned')`, [100000 + i]);
      } else {
        c.query('select pg_sleep(20)').catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      c.connection.stream.destroy();
    });
    // every upstream comes back: 40 sessions get served within a few seconds
    await within(15_000, 'sessions after abandoned ones', all(40, 'sessions after abandoned ones', async (i) => {
      const c = pgClient();
      await c.connect();
      try {
        assert.deepEqual((await c.query('select $1::int as v', [i])).rows, [{ v: i }]);
      } finally {
        await c.end();
      }
    }));
    const c = pgClient();
    await c.connect();
    const r = await c.query(`select count(*)::int as n from ${pgTable} where v = 'abandoned'`);
    await c.end();
    assert.equal(r.rows[0].n, 0, 'an abandoned transaction was committed');
    const s = pool.stats().routes[0];
    assert.ok(s.upstreams <= POOL && s.peakUpstreams <= POOL, `upstreams ${s.upstreams}, peak ${s.peakUpstreams}`);
  });
});

describe('close', () => {
  test('a process that uses a pool and closes it exits on its own, promptly', { timeout: 30_000 }, async () => {
    const script = `
      const pg = require('pg');
      const mysql = require('mysql2/promise');
      const { createPool } = require(${JSON.stringify(path.join(__dirname, '..'))});
      (async () => {
        const opts = ${JSON.stringify(poolOptions())};
        const pool = createPool(opts);
        const c = new pg.Client({ stream: () => pool.stream(), user: opts.users[0].name,
          password: opts.users[0].password, database: opts.routes[0].database });
        await c.connect();
        await c.query('select 1');
        const m = await mysql.createConnection({ stream: () => pool.stream('mysql'),
          user: opts.users[1].name, password: opts.users[1].password, database: opts.routes[1].database });
        await m.query('select 1');
        await m.end();
        // the pg client stays connected: close() ends it
        c.on('error', () => {});
        await pool.close();
        console.log('closed');
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const child = spawn(process.execPath, ['-e', script], { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const started = Date.now();
    const code = await within(15_000, 'the child process exiting',
      new Promise((resolve) => child.on('exit', (c) => resolve(c)))).catch((e) => {
      child.kill('SIGKILL');
      throw new Error(`${e.message}; its output: ${out}`);
    });
    assert.equal(code, 0, out);
    assert.match(out, /closed/);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  });

  test('a session open when the pool closes sees its stream end', { timeout: 30_000 }, async () => {
    const own = createPool(poolOptions());
    const c = new pg.Client({
      stream: () => own.stream(),
      user: env('MUXQL_PG_SCRAM_USER'),
      password: env('MUXQL_PG_PASSWORD'),
      database: env('MUXQL_PG_DB'),
    });
    c.on('error', () => {});
    const ended = new Promise((resolve) => c.on('end', resolve));
    await c.connect();
    assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }]);
    await own.close();
    await within(5000, 'the client noticing the close', ended);
    await assert.rejects(c.query('select 1'));
  });
});
