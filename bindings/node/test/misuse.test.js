'use strict';
// Misuse: wrong argument types and values throw JavaScript errors with a code (never a crash
// of the process), and a client that sends garbage is closed with an error message while the
// other clients of the same Engine (or proxy, or in-process pool) carry on.

const { test, describe, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const pg = require('pg');
const muxql = require('..');

const { Engine, ActionKind, PeerKind, createProxy, createPool } = muxql;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run eval "$(scripts/dbs env DIR)" first (see scripts/test)`);
  return v;
}

function pgRoute(extra = {}) {
  return { protocol: 'postgres', database: 'db', target: '127.0.0.1:5432', upstreamUser: 'up', ...extra };
}
const USERS = [{ name: 'alice', password: 'alice_pw' }];

function startup(user, database) {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}
function pgMsg(type, body = Buffer.alloc(0)) {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const int32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** What `fn` throws: an Error with a string `code` and a non-empty message. */
function throwsWithCode(fn, what, code) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `${what}: did not throw`);
  assert.ok(err instanceof Error, `${what}: threw a non-Error: ${err}`);
  if (code === undefined) {
    // TypeErrors thrown by V8 itself (e.g. "Illegal invocation") carry no code; anything else must.
    if (!(err instanceof TypeError)) {
      assert.equal(typeof err.code, 'string', `${what}: no code on ${err.stack}`);
    }
  } else {
    assert.equal(err.code, code, `${what}: code ${err.code} (${err.message})`);
  }
  assert.ok(typeof err.message === 'string' && err.message.length > 0, `${what}: empty message (code ${err.code})`);
  return err;
}

describe('misuse of the Engine', () => {
  const engine = () => new Engine({ routes: [pgRoute()], users: USERS, auth: 'trust' });

  test('options that are not an object, or lack routes, throw', () => {
    throwsWithCode(() => new Engine(), 'no options');
    throwsWithCode(() => new Engine(undefined), 'undefined options');
    throwsWithCode(() => new Engine(null), 'null options');
    throwsWithCode(() => new Engine({}), 'no routes field');
    throwsWithCode(() => new Engine({ routes: 'all' }), 'routes not an array');
    throwsWithCode(() => new Engine({ routes: [{}] }), 'an empty route');
    throwsWithCode(() => new Engine({ routes: [pgRoute({ target: 5432 })] }), 'target a number');
    throwsWithCode(() => new Engine({ routes: [pgRoute()], users: [{ name: 'x' }] }), 'user without password');
    throwsWithCode(() => new Engine({ routes: [pgRoute()], waitTimeoutMs: '10s' }), 'timeout a string');
    throwsWithCode(() => new Engine({ routes: [pgRoute()], tlsServerEndPoint: 'abc' }), 'tlsServerEndPoint a string');
    throwsWithCode(() => Engine({ routes: [pgRoute()] }), 'Engine called without new');
  });

  test('negative counts are refused, not wrapped around to 2^32 - 1', () => {
    // A negative JavaScript number given for a u32 option must not become 4294967295.
    const cases = {
      'poolSize -1': { routes: [pgRoute({ poolSize: -1 })] },
      'statementCacheSize -1': { routes: [pgRoute()], statementCacheSize: -1 },
      'pipelineDepth -1': { routes: [pgRoute()], pipelineDepth: -1 },
      'clientBacklogLimit -1': { routes: [pgRoute()], clientBacklogLimit: -1 },
    };
    for (const [what, options] of Object.entries(cases)) {
      throwsWithCode(() => new Engine(options).close(), what, 'MUXQL_INVALID_CONFIG');
    }
  });

  test('data that is not a Buffer throws MUXQL_INVALID_ARGUMENT with a message', () => {
    const e = engine();
    const id = e.clientOpen('postgres', 1);
    throwsWithCode(() => e.clientData(id, 'a string', 2), 'string data', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.clientData(id, null, 2), 'null data', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.clientData(id, { length: 3 }, 2), 'object data', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.clientData(id, 42, 2), 'number data', 'MUXQL_INVALID_ARGUMENT');
    // the client is still there and still logs in
    e.clientData(id, startup('alice', 'db'), 3);
    assert.equal(e.poll()[0].kind, ActionKind.SendClient);
    e.close();
  });

  test('a negative time throws MUXQL_INVALID_ARGUMENT', () => {
    const e = engine();
    throwsWithCode(() => e.clientOpen('postgres', -1), 'clientOpen', 'MUXQL_INVALID_ARGUMENT');
    const id = e.clientOpen('postgres', 1);
    throwsWithCode(() => e.clientData(id, Buffer.from('x'), -5), 'clientData', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.handleTimeout(-1), 'handleTimeout', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.clientClosed(id, -1), 'clientClosed', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.cancelDone(1, -1), 'cancelDone', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.sendBlocked(PeerKind.Client, id, -1), 'sendBlocked', 'MUXQL_INVALID_ARGUMENT');
    // the client was not touched by the refused calls
    e.clientClosed(id, 2);
    e.close();
  });

  test('huge, negative and fractional ids throw MUXQL_UNKNOWN_ID', () => {
    const e = engine();
    e.clientOpen('postgres', 1);
    for (const id of [2 ** 53, 2 ** 64, 1e300, Number.MAX_SAFE_INTEGER, -1, -(2 ** 53), 0.5, 7.25]) {
      throwsWithCode(() => e.clientData(id, Buffer.from('x'), 2), `clientData(${id})`, 'MUXQL_UNKNOWN_ID');
      throwsWithCode(() => e.upstreamData(id, Buffer.from('x'), 2), `upstreamData(${id})`, 'MUXQL_UNKNOWN_ID');
      throwsWithCode(() => e.clientClosed(id, 2), `clientClosed(${id})`, 'MUXQL_UNKNOWN_ID');
    }
    e.close();
  });

  test('missing arguments and wrong enum values throw', () => {
    const e = engine();
    throwsWithCode(() => e.clientOpen(), 'clientOpen()');
    throwsWithCode(() => e.clientOpen('postgres'), 'clientOpen without time');
    throwsWithCode(() => e.clientOpen('postgres', 'now'), 'clientOpen with a string time');
    throwsWithCode(() => e.clientOpen('oracle', 1), 'clientOpen oracle', 'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.clientOpen(undefined, 1), 'clientOpen undefined protocol');
    throwsWithCode(() => e.clientOpen('postgres', 1, { auth: 5 }), 'clientOpen with a numeric listener auth');
    throwsWithCode(() => e.clientOpen('postgres', 1, { auth: 'kerberos' }), 'clientOpen listener auth kerberos',
      'MUXQL_INVALID_ARGUMENT');
    throwsWithCode(() => e.clientData(), 'clientData()');
    throwsWithCode(() => e.upstreamData(1), 'upstreamData(1)');
    throwsWithCode(() => e.handleTimeout(), 'handleTimeout()');
    throwsWithCode(() => e.sendBlocked(7, 1, 1), 'sendBlocked with PeerKind 7');
    throwsWithCode(() => e.sendDrained(), 'sendDrained()');
    throwsWithCode(() => e.routeTarget(), 'routeTarget()');
    throwsWithCode(() => Engine.prototype.poll.call({}), 'poll on a plain object');
    throwsWithCode(() => Engine.prototype.clientOpen.call(undefined, 'postgres', 1), 'clientOpen on undefined');
    // still usable afterwards
    const id = e.clientOpen('postgres', 1);
    assert.ok(Number.isSafeInteger(id));
    e.close();
  });

  test('a listener argument that is not an object throws (not silently ignored)', () => {
    const e = engine();
    throwsWithCode(() => e.clientOpen('postgres', 1, 'cleartext'), 'clientOpen listener a string');
    throwsWithCode(() => e.clientOpen('postgres', 1, 5), 'clientOpen listener a number');
    throwsWithCode(() => e.clientOpen('postgres', 1, true), 'clientOpen listener a boolean');
    assert.equal(e.stats().clientsLoggingIn, 0, 'a refused clientOpen opened a client');
    e.close();
  });

  test('odd but well-typed inputs never crash the process', () => {
    const e = engine();
    // Non-finite times: an error with a code, or accepted; either way the Engine keeps working.
    for (const t of [NaN, Infinity, -Infinity, 2 ** 53, 1e300]) {
      try {
        const id = e.clientOpen('postgres', t);
        e.clientData(id, startup('alice', 'db'), t);
        e.handleTimeout(t);
        e.poll();
      } catch (err) {
        assert.ok(err instanceof Error && typeof err.code === 'string', `time ${t}: ${err}`);
      }
    }
    const id = e.clientOpen('postgres', 10);
    e.clientData(id, Buffer.alloc(0), 11); // empty data
    e.clientData(id, new Uint8Array(startup('alice', 'db')), 12); // a Uint8Array, not a Buffer
    assert.equal(e.poll().some((a) => a.id === id && a.kind === ActionKind.SendClient), true);
    e.close();
  });

  test('random bytes from 300 clients: each is closed with an error first, the Engine survives', () => {
    const e = new Engine({
      routes: [pgRoute(), { protocol: 'mysql', database: 'db', target: '127.0.0.1:3306', upstreamUser: 'up' }],
      users: USERS,
      auth: 'trust',
      rngSeed: '5a'.repeat(32),
    });
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const closed = new Set();
    const errored = new Set();
    const ids = [];
    for (let i = 0; i < 300; i++) {
      const protocol = i % 3 === 0 ? 'mysql' : 'postgres';
      const id = e.clientOpen(protocol, 100 + i);
      ids.push(id);
      const junk = Buffer.alloc(8 + (rand() % 600));
      for (let j = 0; j < junk.length; j++) junk[j] = rand() & 0xff;
      if (protocol === 'postgres' && i % 2 === 0) {
        // a complete startup packet with a random request code
        junk.writeInt32BE(8 + (rand() % (junk.length - 7)), 0);
      } else if (protocol === 'postgres') {
        // a length that no startup packet may have (negative, or over the 10000-byte limit);
        // a plausible length would rightly make the Engine wait for the rest
        junk[0] |= 0x01;
      }
      try {
        e.clientData(id, junk, 100 + i);
      } catch (err) {
        assert.fail(`garbage from client ${i} threw ${err.code}: ${err.message}`);
      }
      for (const a of e.poll()) {
        assert.ok(!closed.has(a.id) || a.kind !== ActionKind.SendClient, `data for closed client ${a.id}`);
        if (a.kind === ActionKind.SendClient) errored.add(a.id);
        if (a.kind === ActionKind.CloseClient) {
          assert.ok(errored.has(a.id), `client ${a.id} closed without an error message first`);
          closed.add(a.id);
        }
      }
    }
    const pgIds = ids.filter((_, i) => i % 3 !== 0);
    for (const id of pgIds) assert.ok(closed.has(id), `PostgreSQL client ${id} sent garbage and was not closed`);
    // a fresh client still logs in
    const id = e.clientOpen('postgres', 1000);
    e.clientData(id, startup('alice', 'db'), 1001);
    const out = e.poll();
    assert.ok(out.some((a) => a.id === id && a.kind === ActionKind.SendClient && a.data[0] === 'R'.charCodeAt(0)));
    e.close();
  });
});

describe('garbage from one client does not disturb another', () => {
  test('Engine: a logged-in client sends garbage; it gets an ErrorResponse then CloseClient, its neighbour carries on', () => {
    const e = new Engine({ routes: [pgRoute({ poolSize: 2 })], users: USERS, auth: 'trust' });
    const a = e.clientOpen('postgres', 1);
    const b = e.clientOpen('postgres', 1);
    e.clientData(a, startup('alice', 'db'), 2);
    e.clientData(b, startup('alice', 'db'), 2);
    const connects = e.poll().filter((x) => x.kind === ActionKind.ConnectUpstream);
    assert.ok(connects.length >= 1);
    const up = connects[0].id;
    e.upstreamConnected(up, 3);
    e.poll();
    e.upstreamData(up, Buffer.concat([pgMsg('R', int32(0)), pgMsg('S', Buffer.from('server_version\x0015.4\0')),
      pgMsg('K', Buffer.concat([int32(1), int32(2)])), pgMsg('Z', Buffer.from('I'))]), 4);
    const ready = e.poll();
    for (const id of [a, b]) {
      const data = Buffer.concat(ready.filter((x) => x.id === id && x.kind === ActionKind.SendClient).map((x) => x.data));
      assert.equal(data.at(-6), 'Z'.charCodeAt(0), `client ${id} got ReadyForQuery`);
    }

    e.clientData(a, Buffer.from('this is not the PostgreSQL protocol at all'), 5);
    const out = e.poll();
    const toA = out.filter((x) => x.id === a && (x.kind === ActionKind.SendClient || x.kind === ActionKind.CloseClient));
    assert.deepEqual(toA.map((x) => x.kind), [ActionKind.SendClient, ActionKind.CloseClient], JSON.stringify(out));
    assert.equal(toA[0].data[0], 'E'.charCodeAt(0));
    assert.match(toA[0].data.toString('latin1'), /SFATAL\0/);
    assert.match(toA[0].data.toString('latin1'), /C08P01\0/);
    assert.ok(!out.some((x) => x.id === b && x.kind === ActionKind.CloseClient), 'b was closed too');

    // b runs a query on the (only) upstream and gets its answer
    const q = pgMsg('Q', Buffer.from('select 2\0'));
    e.clientData(b, q, 6);
    const sent = e.poll().filter((x) => x.kind === ActionKind.SendUpstream);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0].data, q);
    const answer = Buffer.concat([pgMsg('C', Buffer.from('SELECT 0\0')), pgMsg('Z', Buffer.from('I'))]);
    e.upstreamData(sent[0].id, answer, 7);
    const back = e.poll().filter((x) => x.id === b);
    assert.deepEqual(Buffer.concat(back.map((x) => x.data)), answer);
    e.close();
  });

  test('Engine: garbage before the MySQL greeting closes that client only', () => {
    const e = new Engine({
      routes: [{ protocol: 'mysql', database: 'db', target: '127.0.0.1:3306', upstreamUser: 'up' }],
      users: USERS,
    });
    const a = e.clientOpen('mysql', 1);
    const b = e.clientOpen('mysql', 1);
    e.poll();
    e.clientData(a, Buffer.from('GET / HTTP/1.1\r\n\r\n'), 2);
    const out = e.poll();
    assert.ok(out.some((x) => x.id === a && x.kind === ActionKind.CloseClient), JSON.stringify(out));
    assert.ok(!out.some((x) => x.id === b && x.kind === ActionKind.CloseClient));
    e.clientClosed(b, 3);
    e.close();
  });

  describe('through createProxy in front of PostgreSQL', () => {
    let proxy;
    after(() => proxy?.close());

    test('a raw socket sending garbage gets an ErrorResponse and is closed; a pg client keeps working', async () => {
      proxy = createProxy({
        routes: [{
          protocol: 'postgres',
          database: env('MUXQL_PG_DB'),
          target: `127.0.0.1:${env('MUXQL_PG_PORT')}`,
          upstreamUser: env('MUXQL_PG_SCRAM_USER'),
          upstreamPassword: env('MUXQL_PG_PASSWORD'),
          poolSize: 2,
        }],
        users: [{ name: env('MUXQL_PG_SCRAM_USER'), password: env('MUXQL_PG_PASSWORD') }],
        auth: 'scram',
        closeTimeoutMs: 2000,
      });
      const addr = await proxy.listen({ protocol: 'postgres', host: '127.0.0.1', port: 0 });
      const client = new pg.Client({
        host: '127.0.0.1',
        port: addr.port,
        user: env('MUXQL_PG_SCRAM_USER'),
        password: env('MUXQL_PG_PASSWORD'),
        database: env('MUXQL_PG_DB'),
      });
      await client.connect();
      try {
        assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
        const { received, closedInMs } = await new Promise((resolve, reject) => {
          const s = net.connect(addr.port, '127.0.0.1');
          const chunks = [];
          const started = Date.now();
          s.on('data', (d) => chunks.push(d));
          s.on('error', reject);
          s.on('close', () => resolve({ received: Buffer.concat(chunks), closedInMs: Date.now() - started }));
          s.on('connect', () => s.write(Buffer.from('\x00\x00\x00\x10garbage-garbage!')));
          setTimeout(() => reject(new Error('the proxy did not close the garbage connection in 5 s')), 5000).unref();
        });
        assert.ok(received.length > 0, 'no error message before the close');
        assert.equal(received[0], 'E'.charCodeAt(0), `got ${JSON.stringify(received.toString('latin1'))}`);
        assert.ok(closedInMs < 5000);
        for (let i = 0; i < 20; i++) {
          assert.deepEqual((await client.query('select $1::int * 3 as v', [i])).rows, [{ v: i * 3 }]);
        }
      } finally {
        await client.end();
      }
    });
  });

  describe('through createPool', () => {
    test('garbage written to one stream ends that stream; another stream of the pool logs in and queries', async () => {
      const pool = createPool({
        routes: [{
          protocol: 'postgres',
          database: env('MUXQL_PG_DB'),
          target: `127.0.0.1:${env('MUXQL_PG_PORT')}`,
          upstreamUser: env('MUXQL_PG_SCRAM_USER'),
          upstreamPassword: env('MUXQL_PG_PASSWORD'),
          poolSize: 2,
        }],
        users: [{ name: env('MUXQL_PG_SCRAM_USER'), password: env('MUXQL_PG_PASSWORD') }],
        auth: 'scram',
      });
      try {
        const bad = pool.stream('postgres');
        const received = await new Promise((resolve, reject) => {
          const chunks = [];
          bad.on('data', (d) => chunks.push(d));
          bad.on('error', reject);
          bad.on('end', () => resolve(Buffer.concat(chunks)));
          bad.write(Buffer.from('\x00\x00\x00\x09\x12\x34\x56\x78\x00'));
          setTimeout(() => reject(new Error('the garbage stream did not end in 5 s')), 5000).unref();
        });
        assert.equal(received[0], 'E'.charCodeAt(0), `got ${JSON.stringify(received.toString('latin1'))}`);
        bad.destroy();
        const client = new pg.Client({
          stream: () => pool.stream(),
          user: env('MUXQL_PG_SCRAM_USER'),
          password: env('MUXQL_PG_PASSWORD'),
          database: env('MUXQL_PG_DB'),
        });
        await client.connect();
        assert.deepEqual((await client.query('select 41 + 1 as v')).rows, [{ v: 42 }]);
        await client.end();
      } finally {
        await pool.close();
      }
    });
  });
});

describe('misuse of createProxy and createPool', () => {
  test('options that are not an object, or invalid, throw with a code', () => {
    throwsWithCode(() => createProxy(), 'createProxy()');
    throwsWithCode(() => createProxy(null), 'createProxy(null)');
    throwsWithCode(() => createProxy({ routes: [] }), 'createProxy with no routes', 'MUXQL_INVALID_CONFIG');
    throwsWithCode(() => createProxy({ routes: [pgRoute()], auth: 'kerberos' }), 'createProxy auth kerberos',
      'MUXQL_INVALID_CONFIG');
    throwsWithCode(() => createPool(), 'createPool()');
    throwsWithCode(() => createPool({ routes: [pgRoute({ protocol: 'oracle' })] }), 'createPool oracle route',
      'MUXQL_INVALID_CONFIG');
  });

  test('listen with an unknown protocol rejects its promise (does not throw synchronously)', async () => {
    const proxy = createProxy({ routes: [pgRoute()], users: USERS, closeTimeoutMs: 100 });
    try {
      let result;
      try {
        result = proxy.listen({ protocol: 'oracle', port: 0 });
      } catch (err) {
        assert.fail(`listen threw synchronously (${err.code}: ${err.message}) instead of returning a rejected promise`);
      }
      assert.ok(result instanceof Promise);
      await assert.rejects(result, (err) => err.code === 'MUXQL_INVALID_ARGUMENT');
    } finally {
      await proxy.close();
    }
  });

  test('listen with an unknown auth rejects; a connecting client never crashes the process', { timeout: 30_000 }, async () => {
    // In a child process: an exception thrown from a connection handler kills its process.
    const script = `
      const net = require('node:net');
      const { createProxy } = require(${JSON.stringify(path.join(__dirname, '..'))});
      (async () => {
        const p = createProxy({ routes: [{ protocol: 'postgres', database: 'db', target: '127.0.0.1:1',
          upstreamUser: 'u' }], closeTimeoutMs: 100 });
        let addr;
        try {
          addr = await p.listen({ protocol: 'postgres', port: 0, auth: 'kerberos' });
        } catch (e) {
          console.log('listen rejected ' + e.code);
          await p.close();
          return;
        }
        console.log('listen resolved');
        await new Promise((resolve) => {
          const s = net.connect(addr.port, '127.0.0.1');
          s.on('error', () => {});
          s.on('close', resolve);
          setTimeout(() => s.destroy(), 1000);
        });
        await p.close();
        console.log('survived a client');
      })();
    `;
    const child = spawn(process.execPath, ['-e', script], { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `the process died: ${out}`);
    assert.match(out, /listen rejected MUXQL_INVALID_ARGUMENT/, out);
  });

  test('pool.stream with an unknown protocol throws; after close() stream() throws MUXQL_WRONG_STATE', async () => {
    const pool = createPool({ routes: [pgRoute()], users: USERS });
    throwsWithCode(() => pool.stream('oracle'), 'stream(oracle)', 'MUXQL_INVALID_ARGUMENT');
    const s = pool.stream();
    assert.equal(typeof s.write, 'function');
    await pool.close();
    await pool.close(); // twice is fine
    throwsWithCode(() => pool.stream(), 'stream() after close', 'MUXQL_WRONG_STATE');
  });

  test('close() twice on a proxy resolves both times; listen after close rejects', async () => {
    const proxy = createProxy({ routes: [pgRoute()], users: USERS, closeTimeoutMs: 100 });
    await proxy.listen({ protocol: 'postgres', port: 0 });
    await Promise.all([proxy.close(), proxy.close()]);
    await proxy.close();
    await assert.rejects(proxy.listen({ protocol: 'postgres', port: 0 }));
  });
});
