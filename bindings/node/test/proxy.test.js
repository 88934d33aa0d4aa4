'use strict';
// createProxy in front of the real PostgreSQL and MariaDB (scripts/dbs): node-postgres,
// mysql2 and @neondatabase/serverless (over WebSocket) clients, many at once over a pool of 4.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const tls = require('node:tls');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');
const path = require('node:path');
const pg = require('pg');
const mysql = require('mysql2/promise');
const WebSocket = require('ws');
const neon = require('@neondatabase/serverless');
const { createProxy } = require('..');

const POOL = 4;
const CLIENTS = 200;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run eval "$(scripts/dbs env DIR)" first (see scripts/test)`);
  return v;
}

/** Routes and users of the brief: one PostgreSQL and one MariaDB route, pool 4 each. */
function proxyOptions(extra = {}) {
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
    // every client leaves before close(); a stuck one fails the test instead of waiting 30 s
    closeTimeoutMs: 5000,
    ...extra,
  };
}

const pgDirect = () => ({
  host: env('MUXQL_PG_HOST'),
  port: Number(env('MUXQL_PG_PORT')),
  user: env('MUXQL_PG_SCRAM_USER'),
  password: env('MUXQL_PG_PASSWORD'),
  database: env('MUXQL_PG_DB'),
});
const myDirect = () => ({
  host: env('MUXQL_MY_HOST'),
  port: Number(env('MUXQL_MY_PORT')),
  user: env('MUXQL_MY_USER'),
  password: env('MUXQL_MY_PASSWORD'),
  database: env('MUXQL_MY_DB'),
});

const tableName = () => `node_${crypto.randomBytes(5).toString('hex')}`;

/** Rejects with `what` when `promise` has not settled within `ms`. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs `fn(i)` for i in 0..n-1 at once; fails with the first error and how many failed. */
async function all(n, what, fn) {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => fn(i)));
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 0, `${what}: ${failed.length}/${n} failed; first: ${failed[0]?.reason?.stack}`);
  return results.map((r) => r.value);
}

/** A barrier: `arrive()` resolves once `n` callers have arrived. */
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

let proxy; // scram, TCP listeners for both protocols and a WebSocket listener
let cleartextProxy; // cleartext, WebSocket listener (pipelined neon logins)
let pgPort;
let myPort;
let wsScramPort;
let wsCleartextPort;
const pgTable = tableName();
const myTable = tableName();

const pgConfig = (extra = {}) => ({
  host: '127.0.0.1',
  port: pgPort,
  user: env('MUXQL_PG_SCRAM_USER'),
  password: env('MUXQL_PG_PASSWORD'),
  database: env('MUXQL_PG_DB'),
  ...extra,
});
const myConfig = (extra = {}) => ({
  host: '127.0.0.1',
  port: myPort,
  user: env('MUXQL_MY_USER'),
  password: env('MUXQL_MY_PASSWORD'),
  database: env('MUXQL_MY_DB'),
  ...extra,
});

before(async () => {
  proxy = createProxy(proxyOptions());
  cleartextProxy = createProxy(proxyOptions({ auth: 'cleartext' }));
  const a = await proxy.listen({ protocol: 'postgres', host: '127.0.0.1', port: 0 });
  const b = await proxy.listen({ protocol: 'mysql', host: '127.0.0.1', port: 0 });
  const c = await proxy.listen({ protocol: 'postgres', host: '127.0.0.1', port: 0, websocket: true });
  const d = await cleartextProxy.listen({ protocol: 'postgres', host: '127.0.0.1', port: 0, websocket: { path: '/v2' } });
  for (const addr of [a, b, c, d]) {
    assert.equal(typeof addr, 'object', `listen resolved ${addr}`);
    assert.equal(addr.address, '127.0.0.1');
    assert.ok(addr.port > 0);
  }
  [pgPort, myPort, wsScramPort, wsCleartextPort] = [a.port, b.port, c.port, d.port];

  const direct = new pg.Client(pgDirect());
  await direct.connect();
  await direct.query(`create table ${pgTable} (worker int not null, note text not null)`);
  await direct.end();
  const my = await mysql.createConnection(myDirect());
  await my.query(`create table ${myTable} (worker int not null, note varchar(40) not null) engine=InnoDB`);
  await my.end();
});

after(async () => {
  // Whatever happened above, the tables go and the proxies close (close() is idempotent).
  await Promise.allSettled([proxy?.close(), cleartextProxy?.close()]);
  const direct = new pg.Client(pgDirect());
  await direct.connect();
  await direct.query(`drop table if exists ${pgTable}`);
  await direct.end();
  const my = await mysql.createConnection(myDirect());
  await my.query(`drop table if exists ${myTable}`);
  await my.end();
});

describe('node-postgres through the proxy', () => {
  test(`${CLIENTS} concurrent clients over a pool of ${POOL}: named statements and transactions`, { timeout: 90_000 }, async () => {
    const arrive = barrier(CLIENTS);
    await all(CLIENTS, 'pg workers', async (i) => {
      const c = new pg.Client(pgConfig());
      c.on('error', () => {}); // a failure shows up as a rejected query
      await c.connect();
      try {
        await arrive(); // all 200 logged in at the same time
        for (let k = 0; k < 5; k++) {
          const v = i * 10 + k;
          const r = await c.query({ name: 'q1', text: 'select $1::int + 1', values: [v] });
          assert.deepEqual(r.rows, [{ '?column?': v + 1 }], `client ${i} q1 #${k}`);
        }
        await c.query('BEGIN');
        const ins = await c.query(`insert into ${pgTable} (worker, note) values ($1, $2)`, [i, `pg${i}`]);
        assert.equal(ins.rowCount, 1);
        const mine = await c.query(`select worker, note from ${pgTable} where worker = $1`, [i]);
        assert.deepEqual(mine.rows, [{ worker: i, note: `pg${i}` }], `client ${i} sees its own row`);
        const r = await c.query({ name: 'q1', text: 'select $1::int + 1', values: [-i] });
        assert.deepEqual(r.rows, [{ '?column?': 1 - i }], `client ${i} q1 inside its transaction`);
        await c.query('COMMIT');
        const after = await c.query(`select count(*)::int as n from ${pgTable} where worker = $1`, [i]);
        assert.equal(after.rows[0].n, 1, `client ${i} committed row`);
      } finally {
        await c.end();
      }
    });
    const direct = new pg.Client(pgDirect());
    await direct.connect();
    const total = await direct.query(`select count(*)::int as n, count(distinct worker)::int as w from ${pgTable}`);
    await direct.end();
    assert.deepEqual(total.rows, [{ n: CLIENTS, w: CLIENTS }]);
    const s = proxy.stats().routes[0];
    assert.equal(s.protocol, 'postgres');
    assert.ok(s.peakClients >= CLIENTS, `peakClients ${s.peakClients}`);
    assert.ok(s.peakUpstreams <= POOL, `peakUpstreams ${s.peakUpstreams}`);
    assert.ok(s.transactions >= CLIENTS, `transactions ${s.transactions}`);
    assert.equal(s.clients, 0, 'every client left');
  });

  test('a CancelRequest through the proxy\'s port cancels pg_sleep with 57014; neighbours keep working', { timeout: 30_000 }, async () => {
    const victim = new pg.Client(pgConfig());
    await victim.connect();
    const neighbours = await Promise.all(Array.from({ length: 8 }, async () => {
      const c = new pg.Client(pgConfig());
      await c.connect();
      return c;
    }));
    try {
      const started = Date.now();
      const sleeping = victim.query('select pg_sleep(10)').then(() => null, (e) => e);
      let running = true;
      const busy = Promise.all(neighbours.map(async (c, n) => {
        let k = 0;
        while (running || k < 5) {
          const r = await c.query('select $1::int * 2 as v', [n * 1000 + k]);
          assert.equal(r.rows[0].v, 2 * (n * 1000 + k));
          k++;
        }
        return k;
      }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(victim.activeQuery, 'the sleep is running');
      // node-postgres 8.16: Client#cancel(client, query) opens a connection to this client's
      // host and port (the proxy's) and sends a CancelRequest with the victim's key.
      const canceller = new pg.Client(pgConfig());
      canceller.cancel(victim, victim.activeQuery);
      const err = await within(5000, 'cancelled pg_sleep', sleeping);
      const ms = Date.now() - started;
      assert.ok(err, 'pg_sleep(10) finished without an error');
      assert.equal(err.code, '57014', `${err.code}: ${err.message}`);
      assert.ok(ms < 5000, `cancelled after ${ms} ms`);
      running = false;
      const counts = await within(10_000, 'neighbours', busy);
      assert.ok(counts.every((k) => k >= 5), `neighbour query counts ${counts}`);
      // the victim's session goes on
      assert.deepEqual((await victim.query('select 7 as seven')).rows, [{ seven: 7 }]);
    } finally {
      await Promise.all([victim, ...neighbours].map((c) => c.end()));
    }
  });
});

describe('mysql2 through the proxy', () => {
  test(`${CLIENTS} concurrent connections over a pool of ${POOL}: execute and transactions`, { timeout: 90_000 }, async () => {
    const arrive = barrier(CLIENTS);
    await all(CLIENTS, 'mysql2 workers', async (i) => {
      const c = await mysql.createConnection(myConfig());
      try {
        await arrive();
        for (let k = 0; k < 5; k++) {
          const v = i * 10 + k;
          const [rows] = await c.execute('select ? + 1 as v', [v]);
          assert.equal(Number(rows[0].v), v + 1, `connection ${i} execute #${k}`);
        }
        await c.beginTransaction();
        const [ins] = await c.execute(`insert into ${myTable} (worker, note) values (?, ?)`, [i, `my${i}`]);
        assert.equal(ins.affectedRows, 1);
        const [mine] = await c.execute(`select worker, note from ${myTable} where worker = ?`, [i]);
        assert.deepEqual(mine.map((r) => ({ ...r })), [{ worker: i, note: `my${i}` }], `connection ${i} own row`);
        await c.commit();
        const [cnt] = await c.query(`select count(*) as n from ${myTable} where worker = ${i}`);
        assert.equal(Number(cnt[0].n), 1, `connection ${i} committed row`);
      } finally {
        await c.end();
      }
    });
    const direct = await mysql.createConnection(myDirect());
    const [rows] = await direct.query(`select count(*) as n, count(distinct worker) as w from ${myTable}`);
    await direct.end();
    assert.deepEqual([Number(rows[0].n), Number(rows[0].w)], [CLIENTS, CLIENTS]);
    const s = proxy.stats().routes[1];
    assert.equal(s.protocol, 'mysql');
    assert.ok(s.peakClients >= CLIENTS, `peakClients ${s.peakClients}`);
    assert.ok(s.peakUpstreams <= POOL, `peakUpstreams ${s.peakUpstreams}`);
    assert.equal(s.clients, 0, 'every connection left');
  });

  test('KILL QUERY <threadId> from another connection interrupts SELECT SLEEP(10) quickly; the victim stays usable', { timeout: 30_000 }, async () => {
    const victim = await mysql.createConnection(myConfig());
    const killer = await mysql.createConnection(myConfig());
    try {
      assert.ok(Number.isInteger(victim.threadId) && victim.threadId > 0, `threadId ${victim.threadId}`);
      const started = Date.now();
      const sleeping = victim.query('SELECT SLEEP(10) AS s').then(([rows]) => ({ rows }), (err) => ({ err }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      await killer.query(`KILL QUERY ${victim.threadId}`);
      const outcome = await within(5000, 'killed SLEEP(10)', sleeping);
      const ms = Date.now() - started;
      assert.ok(ms < 5000, `SLEEP(10) ended after ${ms} ms`);
      // MariaDB: an interrupted SLEEP() returns 1 (some versions report ER_QUERY_INTERRUPTED, 1317)
      if (outcome.err) assert.equal(outcome.err.errno, 1317, `${outcome.err.code}: ${outcome.err.message}`);
      else assert.equal(Number(outcome.rows[0].s), 1, `SLEEP returned ${JSON.stringify(outcome.rows)}`);
      const [rows] = await victim.query('SELECT 5 AS five');
      assert.equal(Number(rows[0].five), 5);
      const [k] = await killer.execute('SELECT ? AS v', ['still here']);
      assert.equal(k[0].v, 'still here');
    } finally {
      await victim.end();
      await killer.end();
    }
  });
});

describe('@neondatabase/serverless over WebSocket', () => {
  neon.neonConfig.webSocketConstructor = WebSocket;

  const neonSettings = (port, pipelineConnect) => ({
    wsProxy: () => `127.0.0.1:${port}/v2`,
    useSecureWebSocket: false,
    pipelineTLS: false,
    forceDisablePgSSL: true,
    pipelineConnect,
  });
  const neonClient = (port, pipelineConnect) => {
    const c = new neon.Client({
      host: '127.0.0.1',
      user: env('MUXQL_PG_SCRAM_USER'),
      password: env('MUXQL_PG_PASSWORD'),
      database: env('MUXQL_PG_DB'),
    });
    Object.assign(c.neonConfig, neonSettings(port, pipelineConnect));
    c.on('error', () => {});
    return c;
  };

  test('Client, cleartext proxy, pipelined login: queries and a named statement', { timeout: 30_000 }, async () => {
    const c = neonClient(wsCleartextPort, 'password');
    await within(10_000, 'neon connect (pipelined)', c.connect());
    try {
      assert.deepEqual((await c.query('select $1::int * 2 as v, current_user as u', [21])).rows,
        [{ v: 42, u: env('MUXQL_PG_SCRAM_USER') }]);
      for (let i = 0; i < 5; i++) {
        const r = await c.query({ name: 'neon_q1', text: 'select $1::int + 1 as v', values: [i] });
        assert.deepEqual(r.rows, [{ v: i + 1 }]);
      }
    } finally {
      await c.end();
    }
  });

  test('Client, scram proxy, pipelineConnect false: login and queries', { timeout: 30_000 }, async () => {
    const c = neonClient(wsScramPort, false);
    await within(10_000, 'neon connect (scram)', c.connect());
    try {
      assert.deepEqual((await c.query('select $1::text as s', ['scram ok'])).rows, [{ s: 'scram ok' }]);
      await c.query('BEGIN');
      await c.query(`insert into ${pgTable} (worker, note) values ($1, $2)`, [100000, 'neon-scram']);
      assert.deepEqual((await c.query(`select note from ${pgTable} where worker = $1`, [100000])).rows,
        [{ note: 'neon-scram' }]);
      await c.query('ROLLBACK');
      assert.deepEqual((await c.query(`select count(*)::int as n from ${pgTable} where worker = 100000`)).rows,
        [{ n: 0 }]);
    } finally {
      await c.end();
    }
  });

  test('Pool of 40 on the cleartext proxy: 400 queries and transactions', { timeout: 60_000 }, async () => {
    Object.assign(neon.neonConfig, neonSettings(wsCleartextPort, 'password'));
    const pool = new neon.Pool({
      host: '127.0.0.1',
      user: env('MUXQL_PG_SCRAM_USER'),
      password: env('MUXQL_PG_PASSWORD'),
      database: env('MUXQL_PG_DB'),
      max: 40,
    });
    const errors = [];
    pool.on('error', (e) => errors.push(e));
    try {
      const answers = await all(400, 'neon pool.query', (i) =>
        pool.query('select $1::int + 1 as v', [i]).then((r) => r.rows[0].v));
      assert.deepEqual(answers, Array.from({ length: 400 }, (_, i) => i + 1));
      await all(40, 'neon pool transactions', async (w) => {
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          await c.query(`insert into ${pgTable} (worker, note) values ($1, $2)`, [200000 + w, `neon${w}`]);
          const r = await c.query(`select note from ${pgTable} where worker = $1`, [200000 + w]);
          assert.deepEqual(r.rows, [{ note: `neon${w}` }]);
          await c.query('COMMIT');
        } finally {
          c.release();
        }
      });
      const r = await pool.query(`select count(*)::int as n from ${pgTable} where worker >= 200000`);
      assert.equal(r.rows[0].n, 40);
      assert.deepEqual(errors, []);
    } finally {
      await pool.end();
    }
    const s = cleartextProxy.stats().routes[0];
    assert.ok(s.peakUpstreams <= POOL, `peakUpstreams ${s.peakUpstreams}`);
  });
});

// A self-signed certificate for localhost / 127.0.0.1 (EC P-256, valid until 2126), for the
// TLS listeners; clients do not verify it.
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/M+CNOgfIyp3aQLU
ViV2QOTs6vQKLf9vBLx6s6g5/5qhRANCAAR0BFixDIeKoVOVF+kO7wrS5xMnbCHz
C/sPwUW5naCP2BbDMl/c6VhzZ+kZiOR8TTmHnj4d91eXaLOnG1rtgSE+
-----END PRIVATE KEY-----
`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUPwId2OnBmkn9pPb6LqqI4IHSb2kwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEzMDE0MjYxM1oYDzIxMjYxMTA2
MTQyNjEzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAR0BFixDIeKoVOVF+kO7wrS5xMnbCHzC/sPwUW5naCP2BbDMl/c6Vhz
Z+kZiOR8TTmHnj4d91eXaLOnG1rtgSE+o28wbTAdBgNVHQ4EFgQUuPYWY1jJzO1q
13wgwMABiK6+ybUwHwYDVR0jBBgwFoAUuPYWY1jJzO1q13wgwMABiK6+ybUwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgAohcF8/kWPCehsoKOZJte6EK4jqPX4TK9YR5KDhKt3ECIDw/
zeDrTVqRaEpGk17h4neRVuD8deUOOFIXNkcQgH9X
-----END CERTIFICATE-----
`;

/** A TLS socket to 127.0.0.1:port that node-postgres can use as its `stream` (TLS from the first byte). */
function tlsStream(port) {
  const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  s.connect = () => s; // already connecting; node-postgres waits for 'connect'
  return s;
}

describe('other listeners', () => {
  test('a Unix socket listener resolves with its path and serves node-postgres', { timeout: 30_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'muxql-node-'));
    const own = createProxy(proxyOptions());
    try {
      const sock = path.join(dir, '.s.PGSQL.5432');
      const addr = await own.listen({ protocol: 'postgres', path: sock });
      assert.equal(addr, sock);
      const c = new pg.Client(pgConfig({ host: dir, port: 5432 }));
      await c.connect();
      assert.deepEqual((await c.query('select $1::int + 1 as v', [1])).rows, [{ v: 2 }]);
      await c.end();
    } finally {
      await own.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('listeners with their own auth: cleartext WebSocket (pipelined neon), md5 TCP, native-password MySQL', { timeout: 30_000 }, async () => {
    const own = createProxy(proxyOptions());
    try {
      const ws = await own.listen({ protocol: 'postgres', port: 0, websocket: true, auth: 'cleartext' });
      const md5 = await own.listen({ protocol: 'postgres', port: 0, auth: 'md5' });
      const native = await own.listen({ protocol: 'mysql', port: 0, mysqlAuth: 'mysql_native_password' });
      const m = await mysql.createConnection(myConfig({ port: native.port }));
      const [rows] = await m.execute('select ? + 1 as v', [41]);
      assert.equal(Number(rows[0].v), 42);
      await m.end();
      const c = new neon.Client({
        host: '127.0.0.1',
        user: env('MUXQL_PG_SCRAM_USER'),
        password: env('MUXQL_PG_PASSWORD'),
        database: env('MUXQL_PG_DB'),
      });
      Object.assign(c.neonConfig, {
        wsProxy: () => `127.0.0.1:${ws.port}/v2`,
        useSecureWebSocket: false,
        pipelineTLS: false,
        forceDisablePgSSL: true,
        pipelineConnect: 'password',
      });
      c.on('error', () => {});
      await within(10_000, 'pipelined neon login on a cleartext listener', c.connect());
      assert.deepEqual((await c.query('select $1::int as v', [9])).rows, [{ v: 9 }]);
      await c.end();
      const p = new pg.Client(pgConfig({ port: md5.port }));
      await p.connect();
      assert.deepEqual((await p.query('select 8 as v')).rows, [{ v: 8 }]);
      await p.end();
      // the proxy's own auth (scram) still applies elsewhere: a pipelined cleartext login fails
      const tcp = await own.listen({ protocol: 'postgres', port: 0, websocket: true });
      const bad = new neon.Client({
        host: '127.0.0.1',
        user: env('MUXQL_PG_SCRAM_USER'),
        password: env('MUXQL_PG_PASSWORD'),
        database: env('MUXQL_PG_DB'),
      });
      Object.assign(bad.neonConfig, { ...c.neonConfig, wsProxy: () => `127.0.0.1:${tcp.port}/v2` });
      bad.on('error', () => {});
      const err = await within(5000, 'pipelined cleartext login on a scram listener',
        bad.connect().then(() => bad.query('select 1')).then(() => null, (e) => e));
      await bad.end().catch(() => {});
      assert.ok(err, 'a pipelined cleartext login passed a scram listener');
    } finally {
      await own.close();
    }
  });

  test('MySQL over a WebSocket listener (mysql2 on a ws stream)', { timeout: 30_000 }, async () => {
    const own = createProxy(proxyOptions());
    try {
      const { port } = await own.listen({ protocol: 'mysql', host: '127.0.0.1', port: 0, websocket: true });
      const conns = await all(10, 'mysql2 over ws', async (i) => {
        const c = await mysql.createConnection(myConfig({
          stream: () => WebSocket.createWebSocketStream(new WebSocket(`ws://127.0.0.1:${port}/`)),
        }));
        const [rows] = await c.execute('select ? * 2 as v', [i]);
        assert.equal(Number(rows[0].v), 2 * i);
        return c;
      });
      await Promise.all(conns.map((c) => c.end()));
    } finally {
      await own.close();
    }
  });

  test('a TLS listener (TLS from the first byte) serves node-postgres and mysql2', { timeout: 30_000 }, async () => {
    const own = createProxy(proxyOptions());
    try {
      const pgAddr = await own.listen({ protocol: 'postgres', port: 0, tls: { key: TLS_KEY, cert: TLS_CERT } });
      const myAddr = await own.listen({ protocol: 'mysql', port: 0, tls: { key: TLS_KEY, cert: TLS_CERT } });
      const c = new pg.Client(pgConfig({ stream: () => tlsStream(pgAddr.port) }));
      await c.connect();
      assert.deepEqual((await c.query({ name: 'tls_q', text: 'select $1::text as s', values: ['tls'] })).rows, [{ s: 'tls' }]);
      await c.end();
      const m = await mysql.createConnection(myConfig({
        stream: () => tls.connect({ host: '127.0.0.1', port: myAddr.port, rejectUnauthorized: false }),
      }));
      const [rows] = await m.execute('select ? as s', ['tls']);
      assert.equal(rows[0].s, 'tls');
      await m.end();
    } finally {
      await own.close();
    }
  });

  test('wss: @neondatabase/serverless over WebSocket over TLS', { timeout: 30_000 }, async () => {
    const own = createProxy(proxyOptions({ auth: 'cleartext' }));
    try {
      const { port } = await own.listen({ protocol: 'postgres', port: 0, websocket: true, tls: { key: TLS_KEY, cert: TLS_CERT } });
      class Insecure extends WebSocket {
        constructor(url, protocols) {
          super(url, protocols, { rejectUnauthorized: false });
        }
      }
      const c = new neon.Client({
        host: '127.0.0.1',
        user: env('MUXQL_PG_SCRAM_USER'),
        password: env('MUXQL_PG_PASSWORD'),
        database: env('MUXQL_PG_DB'),
      });
      Object.assign(c.neonConfig, {
        wsProxy: () => `127.0.0.1:${port}/v2`,
        useSecureWebSocket: true,
        pipelineTLS: false,
        forceDisablePgSSL: true,
        pipelineConnect: 'password',
        webSocketConstructor: Insecure,
      });
      c.on('error', () => {});
      await within(10_000, 'neon over wss', c.connect());
      assert.deepEqual((await c.query('select $1::int as v', [5])).rows, [{ v: 5 }]);
      await c.end();
    } finally {
      await own.close();
    }
  });
});

describe('failed logins', () => {
  test('node-postgres: a wrong password gets 28P01, an unknown database an error, promptly', { timeout: 30_000 }, async () => {
    const bad = new pg.Client(pgConfig({ password: 'wrong' }));
    bad.on('error', () => {});
    const err = await within(5000, 'wrong password', bad.connect().then(() => null, (e) => e));
    assert.ok(err, 'logged in with a wrong password');
    assert.equal(err.code, '28P01', `${err.code}: ${err.message}`);
    const nodb = new pg.Client(pgConfig({ database: 'node_no_such_db' }));
    nodb.on('error', () => {});
    const err2 = await within(5000, 'unknown database', nodb.connect().then(() => null, (e) => e));
    assert.ok(err2, 'logged in to a database no route names');
    assert.match(String(err2.code), /^(3D000|28000|08004)$/, `${err2.code}: ${err2.message}`);
  });

  test('mysql2: a wrong password gets ER_ACCESS_DENIED_ERROR, promptly', { timeout: 30_000 }, async () => {
    const err = await within(5000, 'wrong password', mysql.createConnection(myConfig({ password: 'wrong' }))
      .then((c) => c.end().then(() => null), (e) => e));
    assert.ok(err, 'logged in with a wrong password');
    assert.equal(err.errno, 1045, `${err.code}: ${err.message}`);
  });

  test('neon: a wrong password in a pipelined login gets 28P01, promptly', { timeout: 30_000 }, async () => {
    const c = new neon.Client({
      host: '127.0.0.1',
      user: env('MUXQL_PG_SCRAM_USER'),
      password: 'wrong',
      database: env('MUXQL_PG_DB'),
    });
    Object.assign(c.neonConfig, {
      wsProxy: () => `127.0.0.1:${wsCleartextPort}/v2`,
      useSecureWebSocket: false,
      pipelineTLS: false,
      forceDisablePgSSL: true,
      pipelineConnect: 'password',
    });
    c.on('error', () => {});
    const err = await within(5000, 'neon wrong password', c.connect().then(() => c.query('select 1')).then(() => null, (e) => e));
    await c.end().catch(() => {});
    assert.ok(err, 'logged in with a wrong password');
    assert.equal(err.code, '28P01', `${err.code}: ${err.message}`);
  });
});

describe('clients that misbehave', () => {
  test('a client vanishing mid-transaction: its work is rolled back, the pool serves others', { timeout: 30_000 }, async () => {
    const c = new pg.Client(pgConfig());
    c.on('error', () => {});
    await c.connect();
    await c.query('BEGIN');
    await c.query(`insert into ${pgTable} (worker, note) values ($1, $2)`, [300000, 'vanished']);
    c.connection.stream.destroy();
    await all(16, 'clients after a vanished one', async (i) => {
      const o = new pg.Client(pgConfig());
      await o.connect();
      try {
        for (let k = 0; k < 5; k++) {
          assert.deepEqual((await o.query('select $1::int as v', [i * 10 + k])).rows, [{ v: i * 10 + k }]);
        }
      } finally {
        await o.end();
      }
    });
    const o = new pg.Client(pgConfig());
    await o.connect();
    const r = await o.query(`select count(*)::int as n from ${pgTable} where worker = 300000`);
    await o.end();
    assert.equal(r.rows[0].n, 0, 'the vanished client\'s insert was committed');
  });

  test('pool of 1: a client vanishing during pg_sleep(30) does not hold the upstream for long', { timeout: 30_000 }, async () => {
    const opts = proxyOptions();
    opts.routes[0].poolSize = 1;
    const own = createProxy(opts);
    try {
      const { port } = await own.listen({ protocol: 'postgres', port: 0 });
      const a = new pg.Client(pgConfig({ port }));
      a.on('error', () => {});
      await a.connect();
      a.query('select pg_sleep(30)').catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 300));
      a.connection.stream.destroy();
      const started = Date.now();
      const b = new pg.Client(pgConfig({ port }));
      await b.connect();
      try {
        const r = await within(10_000, 'a query behind a vanished pg_sleep(30)', b.query('select 1 as one'));
        assert.deepEqual(r.rows, [{ one: 1 }]);
        assert.ok(Date.now() - started < 10_000);
      } finally {
        await b.end();
      }
      const s = own.stats().routes[0];
      assert.ok(s.peakUpstreams <= 1, `peakUpstreams ${s.peakUpstreams}`);
    } finally {
      await own.close();
    }
  });

  test('clients that stop reading large results do not stall their neighbours', { timeout: 60_000 }, async () => {
    // Three slow clients start a large query each and do not read the result: three of the
    // four upstreams stall behind them. Neighbours that come along then share the fourth:
    // none may wait seconds for one query, as a request pipelined behind a stalled result
    // would. (Requests pipelined behind a query in the first milliseconds, before its
    // client's queue fills, do wait for it: README, Known limitations.)
    const SLOW = 3;
    const slows = await Promise.all(Array.from({ length: SLOW }, async () => {
      const c = new pg.Client(pgConfig());
      c.on('error', () => {});
      await c.connect();
      return c;
    }));
    const neighbours = await Promise.all(Array.from({ length: 12 }, async () => {
      const c = new pg.Client(pgConfig());
      await c.connect();
      return c;
    }));
    const bigs = [];
    let stop = false;
    let loops = Promise.resolve();
    try {
      for (const slow of slows) {
        slow.connection.stream.pause();
        bigs.push(slow.query("select g, repeat('y', 2000) || g::text as s from generate_series(1, 20000) g"));
      }
      // Their write queues fill and their upstreams pause.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const lastDone = neighbours.map(() => Date.now());
      const longest = neighbours.map(() => 0);
      loops = Promise.all(neighbours.map(async (c, n) => {
        for (let k = 0; !stop; k++) {
          const v = n * 100000 + k;
          assert.deepEqual((await c.query('select $1::int as v', [v])).rows, [{ v }]);
          const now = Date.now();
          longest[n] = Math.max(longest[n], now - lastDone[n]);
          lastDone[n] = now;
        }
      }));
      await new Promise((resolve) => setTimeout(resolve, 3500));
      const now = Date.now();
      const waits = lastDone.map((t, n) => Math.max(longest[n], now - t));
      const stats = JSON.stringify(proxy.stats().routes[0]);
      stop = true;
      for (const slow of slows) slow.connection.stream.resume();
      for (const r of await within(20_000, 'the large results', Promise.all(bigs))) {
        assert.equal(r.rowCount, 20000);
        assert.equal(r.rows[19999].s, `${'y'.repeat(2000)}20000`);
      }
      await within(10_000, 'the neighbours\' last queries', loops);
      const stalled = waits.filter((ms) => ms > 2000);
      assert.deepEqual(stalled, [], `neighbours waited ${waits.join(', ')} ms for one query while ${SLOW} `
        + `clients did not read (stats then: ${stats})`);
    } finally {
      stop = true;
      for (const slow of slows) slow.connection.stream.resume();
      await Promise.allSettled([...bigs, loops]);
      await Promise.all([...slows, ...neighbours].map((c) => c.end()));
    }
  });

  test('close() after closeTimeoutMs closes clients that do not leave', { timeout: 30_000 }, async () => {
    const own = createProxy(proxyOptions({ closeTimeoutMs: 500 }));
    const { port } = await own.listen({ protocol: 'postgres', port: 0 });
    const c = new pg.Client(pgConfig({ port }));
    c.on('error', () => {});
    const ended = new Promise((resolve) => c.on('end', resolve));
    await c.connect();
    await c.query('BEGIN');
    const started = Date.now();
    const closing = own.close();
    try {
      await within(5000, 'close() with a client that stays (closeTimeoutMs 500)', closing);
      const ms = Date.now() - started;
      assert.ok(ms >= 400, `close() resolved after ${ms} ms, before closeTimeoutMs`);
      await within(5000, 'the client seeing its connection end', ended);
      await assert.rejects(c.query('select 1'));
    } finally {
      // if close() is stuck, let it finish: a proxy left open would keep this process alive
      c.connection.stream.destroy();
      await closing;
    }
  });
});

describe('stats and close', () => {
  test(`stats(): peak upstreams of every route at most ${POOL}`, () => {
    // (the cleartext proxy's MySQL route serves nobody: no upstream at all)
    for (const [name, p, used] of [['scram', proxy, [true, true]], ['cleartext', cleartextProxy, [true, false]]]) {
      const s = p.stats();
      assert.equal(s.routes.length, 2);
      s.routes.forEach((r, i) => {
        const what = `${name} proxy, ${r.protocol} route`;
        assert.ok(r.peakUpstreams <= POOL, `${what}: peakUpstreams ${r.peakUpstreams}`);
        assert.ok(r.peakUpstreams >= (used[i] ? 1 : 0), `${what}: peakUpstreams ${r.peakUpstreams}`);
        assert.ok(r.upstreams <= POOL, `${what}: upstreams ${r.upstreams}`);
      });
    }
  });

  test('close() is graceful: stops accepting, lets a connected client finish, then resolves', { timeout: 30_000 }, async () => {
    const c = new pg.Client(pgConfig());
    await c.connect();
    await c.query('BEGIN');
    let closed = false;
    const closing = proxy.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(closed, false, 'close() resolved while a client is still connected');
    // no new connections
    await assert.rejects(new Promise((resolve, reject) => {
      const s = net.connect(pgPort, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    }), (e) => e.code === 'ECONNREFUSED');
    // the connected client finishes its transaction
    assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }]);
    await c.query('COMMIT');
    await c.end();
    await within(3000, 'close() after the last client left', closing);
    await cleartextProxy.close();
  });

  test('after close() no socket, server or timer of the proxies is left', async () => {
    await proxy.close();
    await cleartextProxy.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // (PipeWrap: the test runner's stdio)
    const left = process.getActiveResourcesInfo().filter((r) => ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'].includes(r));
    assert.deepEqual(left, [], `active resources: ${process.getActiveResourcesInfo()}`);
  });

  test('a process that uses a proxy and closes it exits on its own', { timeout: 30_000 }, async () => {
    const script = `
      const pg = require('pg');
      const { createProxy } = require(${JSON.stringify(path.join(__dirname, '..'))});
      (async () => {
        const opts = ${JSON.stringify(proxyOptions({ closeTimeoutMs: 30000 }))};
        const proxy = createProxy(opts);
        const { port } = await proxy.listen({ protocol: 'postgres', port: 0 });
        await proxy.listen({ protocol: 'postgres', port: 0, websocket: true });
        const c = new pg.Client({ host: '127.0.0.1', port, user: opts.users[0].name,
          password: opts.users[0].password, database: opts.routes[0].database });
        await c.connect();
        await c.query('select 1');
        await c.end();
        await proxy.close();
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
});
