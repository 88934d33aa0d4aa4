'use strict';
// The native Engine on its own, with no database and no socket: this file plays both the
// client and the upstream server by hand, byte by byte, and checks what the Engine asks for.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const muxql = require('..');

const { Engine, ActionKind, PeerKind } = muxql;

const PG_TARGET = '127.0.0.1:5432';
const MY_TARGET = '127.0.0.1:3306';

function pgRoute(extra = {}) {
  return { protocol: 'postgres', database: 'db', target: PG_TARGET, upstreamUser: 'up', ...extra };
}
function myRoute(extra = {}) {
  return { protocol: 'mysql', database: 'db', target: MY_TARGET, upstreamUser: 'up', upstreamPassword: 'up_pw', ...extra };
}
const USERS = [{ name: 'alice', password: 'alice_pw' }];

/** A PostgreSQL StartupMessage: int32 length, int32 196608 (3.0), key/value pairs, NUL. */
function startup(user, database) {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

/** A typed PostgreSQL message: type byte, int32 length, body. */
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

/** Splits a buffer of PostgreSQL backend messages into [{type, body}]. */
function pgMessages(buf) {
  const out = [];
  let at = 0;
  while (at < buf.length) {
    assert.ok(at + 5 <= buf.length, `truncated message header at ${at} in ${buf.toString('latin1')}`);
    const len = buf.readInt32BE(at + 1);
    out.push({ type: String.fromCharCode(buf[at]), body: buf.subarray(at + 5, at + 1 + len) });
    at += 1 + len;
  }
  return out;
}

/** A MySQL packet: int24 length, sequence id, payload. */
function myPacket(seq, payload) {
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  head[3] = seq;
  return Buffer.concat([head, payload]);
}

/** A MariaDB-like HandshakeV10 with session tracking (muxql requires it), native password. */
function myServerGreeting(version) {
  const caps = 0x01bff7df; // everything muxql may ask for except SSL and compression
  const connId = Buffer.alloc(4);
  connId.writeUInt32LE(77);
  const capsLow = Buffer.alloc(2);
  capsLow.writeUInt16LE(caps & 0xffff);
  const capsHigh = Buffer.alloc(2);
  capsHigh.writeUInt16LE(caps >>> 16);
  return myPacket(0, Buffer.concat([
    Buffer.from([10]), Buffer.from(`${version}\0`), connId,
    Buffer.from('abcdefgh'), Buffer.from([0]), capsLow, Buffer.from([45]), Buffer.from([2, 0]), capsHigh,
    Buffer.from([21]), Buffer.alloc(10), Buffer.from('ijklmnopqrst\0'), Buffer.from('mysql_native_password\0'),
  ]));
}
const myOk = (seq) => myPacket(seq, Buffer.from([0, 0, 0, 2, 0, 0, 0]));

/** An Error thrown by `fn` with `code`; returns it. */
function throwsCode(fn, code, what) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: did not throw`);
  assert.ok(err instanceof Error, `${what}: threw a non-Error ${err}`);
  assert.equal(err.code, code, `${what}: code ${err.code}, message ${err.message}`);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0, `${what}: empty message`);
  return err;
}

const kinds = (actions) => actions.map((a) => a.kind);

describe('Engine: configuration', () => {
  test('ActionKind and PeerKind carry the values of include/muxql.h', () => {
    assert.equal(ActionKind.SendClient, 1);
    assert.equal(ActionKind.SendUpstream, 2);
    assert.equal(ActionKind.ConnectUpstream, 3);
    assert.equal(ActionKind.CloseClient, 4);
    assert.equal(ActionKind.CloseUpstream, 5);
    assert.equal(ActionKind.SendCancel, 6);
    assert.equal(ActionKind.PauseClient, 7);
    assert.equal(ActionKind.ResumeClient, 8);
    assert.equal(ActionKind.PauseUpstream, 9);
    assert.equal(ActionKind.ResumeUpstream, 10);
    assert.equal(ActionKind.StartTls, 11);
    assert.equal(ActionKind.StartUpstreamTls, 12);
    assert.equal(PeerKind.Client, 1);
    assert.equal(PeerKind.Upstream, 2);
  });

  test('a valid configuration builds an open Engine', () => {
    const e = new Engine({ routes: [pgRoute(), myRoute()], users: USERS, auth: 'scram', poolMode: undefined });
    assert.equal(e.closed, false);
    assert.equal(e.routeTarget(0), PG_TARGET);
    assert.equal(e.routeTarget(1), MY_TARGET);
    e.close();
  });

  test('every documented enum value is accepted', () => {
    for (const auth of ['scram', 'md5', 'cleartext', 'trust']) {
      new Engine({ routes: [pgRoute()], users: USERS, auth }).close();
    }
    for (const mysqlAuth of ['caching_sha2_password', 'mysql_native_password']) {
      new Engine({ routes: [myRoute()], users: USERS, mysqlAuth }).close();
    }
    for (const pinPolicy of ['pin', 'reject']) new Engine({ routes: [pgRoute()], pinPolicy }).close();
    for (const poolMode of ['transaction', 'session']) new Engine({ routes: [pgRoute({ poolMode })] }).close();
    new Engine({
      routes: [pgRoute({ poolSize: 3, upstreamDatabase: 'other', clientUser: 'alice', upstreamPassword: 'x' })],
      users: USERS,
      waitTimeoutMs: 1000,
      idleTimeoutMs: 0,
      serverLifetimeMs: 60000,
      connectTimeoutMs: 500,
      clientLoginTimeoutMs: 500,
      statementCacheSize: 16,
      pipelineDepth: 0,
      maxMessage: 1 << 20,
      clientBacklogLimit: 1 << 16,
      scramIterations: 4096,
      rngSeed: '00'.repeat(32),
    }).close();
  });

  test('an unknown auth method is refused with MUXQL_INVALID_CONFIG', () => {
    const err = throwsCode(() => new Engine({ routes: [pgRoute()], users: USERS, auth: 'kerberos' }),
      'MUXQL_INVALID_CONFIG', 'auth kerberos');
    assert.match(err.message, /auth/);
  });

  test('a route with an unknown protocol is refused with MUXQL_INVALID_CONFIG', () => {
    const err = throwsCode(() => new Engine({ routes: [pgRoute({ protocol: 'oracle' })] }),
      'MUXQL_INVALID_CONFIG', 'protocol oracle');
    assert.match(err.message, /oracle/);
  });

  test('no routes at all is refused with MUXQL_INVALID_CONFIG', () => {
    throwsCode(() => new Engine({ routes: [] }), 'MUXQL_INVALID_CONFIG', 'no routes');
  });

  test('other bad settings are refused with MUXQL_INVALID_CONFIG', () => {
    const cases = {
      'unknown mysqlAuth': { routes: [myRoute()], mysqlAuth: 'sha256_password' },
      'unknown pinPolicy': { routes: [pgRoute()], pinPolicy: 'ignore' },
      'unknown poolMode': { routes: [pgRoute({ poolMode: 'statement' })] },
      'unknown clientTls': { routes: [pgRoute()], clientTls: 'maybe' },
      'pool size 0': { routes: [pgRoute({ poolSize: 0 })] },
      'negative waitTimeoutMs': { routes: [pgRoute()], waitTimeoutMs: -1 },
      'negative connectTimeoutMs': { routes: [pgRoute()], connectTimeoutMs: -5 },
      'a timeout of more than a year': { routes: [pgRoute()], idleTimeoutMs: 400 * 24 * 3600 * 1000 },
      'rngSeed not 64 hex digits': { routes: [pgRoute()], rngSeed: 'xyz' },
      'a user configured twice': { routes: [pgRoute()], users: [{ name: 'a', password: '1' }, { name: 'a', password: '2' }] },
      'maxMessage 0': { routes: [pgRoute()], maxMessage: 0 },
      'scramIterations 0': { routes: [pgRoute()], scramIterations: 0 },
    };
    for (const [what, options] of Object.entries(cases)) {
      throwsCode(() => new Engine(options), 'MUXQL_INVALID_CONFIG', what);
    }
  });
});

describe('Engine: PostgreSQL client with auth trust', () => {
  function pgEngine(extra = {}) {
    return new Engine({ routes: [pgRoute()], users: USERS, auth: 'trust', ...extra });
  }

  test('clientOpen returns a safe integer id, distinct per client; nothing to do before the startup', () => {
    const e = pgEngine();
    const a = e.clientOpen('postgres', 10);
    const b = e.clientOpen('postgres', 10);
    for (const id of [a, b]) {
      assert.equal(typeof id, 'number');
      assert.ok(Number.isSafeInteger(id) && id > 0, `id ${id}`);
    }
    assert.notEqual(a, b);
    assert.deepEqual(e.poll(), [], 'a PostgreSQL server waits for the client to speak first');
    assert.equal(e.stats().clientsLoggingIn, 2);
    e.close();
  });

  test('maxLogins: a new connection closes the one logging in the longest, with 53300', () => {
    const e = pgEngine({ maxLogins: 1 });
    const a = e.clientOpen('postgres', 10);
    const b = e.clientOpen('postgres', 11);
    const evicted = e.poll();
    assert.deepEqual(kinds(evicted), [ActionKind.SendClient, ActionKind.CloseClient]);
    assert.equal(evicted[0].id, a, 'the login waiting the longest');
    assert.match(evicted[0].data.toString('latin1'), /C53300\0/);
    assert.equal(e.stats().clientsLoggingIn, 1);
    assert.notEqual(a, b);
    e.close();
  });

  test('maxClients: a client beyond it is refused with 53300, the others stay', () => {
    const e = pgEngine({ maxClients: 2, maxLogins: 0 });
    e.clientOpen('postgres', 10);
    e.clientOpen('postgres', 10);
    assert.deepEqual(e.poll(), []);
    const c = e.clientOpen('postgres', 10);
    const refused = e.poll();
    assert.deepEqual(kinds(refused), [ActionKind.SendClient, ActionKind.CloseClient]);
    assert.equal(refused[0].id, c);
    assert.match(refused[0].data.toString('latin1'), /sorry, too many clients already/);
    assert.equal(e.stats().clientsLoggingIn, 2);
    e.close();
  });

  test('startup: AuthenticationOk at once, ConnectUpstream to route 0, ReadyForQuery once the upstream is ready', () => {
    const e = pgEngine();
    const id = e.clientOpen('postgres', 10);
    e.clientData(id, startup('alice', 'db'), 11);
    const first = e.poll();
    assert.deepEqual(kinds(first), [ActionKind.SendClient, ActionKind.ConnectUpstream], JSON.stringify(first));
    // trust: the login itself succeeds at once (AuthenticationOk, R with code 0) ...
    assert.equal(first[0].id, id);
    assert.deepEqual(pgMessages(first[0].data).map((m) => m.type), ['R']);
    assert.equal(pgMessages(first[0].data)[0].body.readInt32BE(0), 0);
    // ... and the pool opens its first upstream: route 0, data = the target.
    const connect = first[1];
    assert.equal(connect.route, 0);
    assert.ok(Buffer.isBuffer(connect.data));
    assert.equal(connect.data.toString(), PG_TARGET);
    assert.ok(Number.isSafeInteger(connect.id));
    const up = connect.id;
    assert.equal(e.stats().routes[0].upstreams, 1);

    // Connected: muxql logs in upstream as the route's user, to the route's database.
    e.upstreamConnected(up, 12);
    const login = e.poll();
    assert.deepEqual(kinds(login), [ActionKind.SendUpstream]);
    assert.equal(login[0].id, up);
    const sent = login[0].data;
    assert.equal(sent.readInt32BE(0), sent.length);
    assert.equal(sent.readInt32BE(4), 196608);
    assert.match(sent.toString('latin1'), /user\0up\0/);
    assert.match(sent.toString('latin1'), /database\0db\0/);

    // The server accepts: the client gets the parameters and ReadyForQuery now, not before.
    e.upstreamData(up, Buffer.concat([
      pgMsg('R', int32(0)),
      pgMsg('S', Buffer.from('server_version\x0015.4\0')),
      pgMsg('S', Buffer.from('client_encoding\0UTF8\0')),
      pgMsg('K', Buffer.concat([int32(123), int32(456)])),
      pgMsg('Z', Buffer.from('I')),
    ]), 13);
    const ready = e.poll();
    assert.ok(ready.length >= 1);
    assert.ok(ready.every((a) => a.kind === ActionKind.SendClient && a.id === id), JSON.stringify(ready));
    const msgs = pgMessages(Buffer.concat(ready.map((a) => a.data)));
    const types = msgs.map((m) => m.type);
    assert.equal(types.at(-1), 'Z', `last message ${types}`);
    assert.equal(msgs.at(-1).body.toString(), 'I');
    assert.ok(types.includes('K'), `BackendKeyData among ${types}`);
    const key = msgs.find((m) => m.type === 'K').body;
    assert.notDeepEqual([key.readInt32BE(0), key.readInt32BE(4)], [123, 456],
      'the client gets muxql\'s own cancel key, not the upstream\'s');
    const sv = msgs.find((m) => m.type === 'S' && m.body.toString().startsWith('server_version\0'));
    assert.ok(sv, `server_version among ${types}`);
    assert.equal(e.stats().clientsLoggingIn, 0);
    assert.equal(e.stats().routes[0].clients, 1);
    assert.equal(e.isIdle(), true, 'no client holds an upstream yet');

    // A query goes to the upstream as it is; while it runs the client holds the upstream.
    const q = pgMsg('Q', Buffer.from('select 1\0'));
    e.clientData(id, q, 14);
    const relay = e.poll();
    assert.deepEqual(kinds(relay), [ActionKind.SendUpstream]);
    assert.equal(relay[0].id, up);
    assert.deepEqual(relay[0].data, q);
    assert.equal(e.isIdle(), false, 'a client holds an upstream');
    assert.equal(e.stats().routes[0].clientsActive, 1);

    // The answer goes back to the client as it is, and the upstream returns to the pool.
    const answer = Buffer.concat([
      pgMsg('T', Buffer.concat([Buffer.from([0, 1]), Buffer.from('?column?\0'), int32(0), Buffer.from([0, 0]),
        int32(23), Buffer.from([0, 4]), int32(-1), Buffer.from([0, 0])])),
      pgMsg('D', Buffer.concat([Buffer.from([0, 1]), int32(1), Buffer.from('1')])),
      pgMsg('C', Buffer.from('SELECT 1\0')),
      pgMsg('Z', Buffer.from('I')),
    ]);
    e.upstreamData(up, answer, 15);
    const back = e.poll();
    assert.ok(back.every((a) => a.kind === ActionKind.SendClient && a.id === id), JSON.stringify(back));
    assert.deepEqual(Buffer.concat(back.map((a) => a.data)), answer);
    assert.equal(e.isIdle(), true);
    const s = e.stats().routes[0];
    assert.equal(s.queries, 1);
    assert.equal(s.transactions, 1);
    assert.equal(s.upstreamsIdle, 1);
    assert.equal(s.bytesFromClients > 0, true);

    // The client leaves: nothing to do for its upstream (it stays pooled).
    e.clientClosed(id, 16);
    assert.deepEqual(e.poll(), []);
    assert.equal(e.stats().routes[0].clients, 0);
    assert.equal(e.stats().routes[0].upstreams, 1);
    e.close();
  });

  test('an upstream that cannot connect fails the waiting client with a FATAL error', () => {
    const e = pgEngine();
    const id = e.clientOpen('postgres', 10);
    e.clientData(id, startup('alice', 'db'), 11);
    const up = e.poll().find((a) => a.kind === ActionKind.ConnectUpstream).id;
    e.upstreamClosed(up, 12);
    const after = e.poll();
    const toClient = after.filter((a) => a.id === id);
    assert.deepEqual(kinds(toClient), [ActionKind.SendClient, ActionKind.CloseClient], JSON.stringify(after));
    const err = pgMessages(toClient[0].data);
    assert.equal(err[0].type, 'E');
    assert.match(err[0].body.toString('latin1'), /SFATAL/);
    assert.equal(e.stats().errors.upstream, 1, 'counted in errors.upstream');
    e.close();
  });

  test('a login that takes too long is closed by handleTimeout at nextDeadline', () => {
    const e = pgEngine({ clientLoginTimeoutMs: 1000 });
    assert.equal(e.nextDeadline(), null, 'nothing armed on a fresh Engine');
    const id = e.clientOpen('postgres', 100);
    const deadline = e.nextDeadline();
    assert.equal(typeof deadline, 'number');
    assert.ok(Number.isInteger(deadline) && deadline > 100 && deadline <= 1100, `deadline ${deadline}`);
    e.handleTimeout(500);
    assert.deepEqual(e.poll(), [], 'nothing is due before the deadline');
    e.handleTimeout(deadline);
    const out = e.poll();
    assert.deepEqual(kinds(out), [ActionKind.SendClient, ActionKind.CloseClient]);
    assert.ok(out.every((a) => a.id === id));
    assert.match(out[0].data.toString('latin1'), /login timeout/);
    assert.equal(e.stats().errors.timeout, 1, 'a login timeout counts in errors.timeout');
    throwsCode(() => e.clientData(id, Buffer.from('x'), 1200), 'MUXQL_UNKNOWN_ID', 'data for a closed client');
    const next = e.nextDeadline();
    assert.ok(next === null || typeof next === 'number');
    e.close();
  });

  test('sendBlocked and sendDrained accept live ids of both kinds', () => {
    const e = pgEngine();
    const id = e.clientOpen('postgres', 10);
    e.clientData(id, startup('alice', 'db'), 11);
    const up = e.poll().find((a) => a.kind === ActionKind.ConnectUpstream).id;
    e.sendBlocked(PeerKind.Client, id, 12);
    e.sendDrained(PeerKind.Client, id, 13);
    e.sendBlocked(PeerKind.Upstream, up, 14);
    e.sendDrained(PeerKind.Upstream, up, 15);
    for (const a of e.poll()) {
      assert.ok([ActionKind.PauseClient, ActionKind.ResumeClient, ActionKind.PauseUpstream,
        ActionKind.ResumeUpstream].includes(a.kind), `unexpected ${JSON.stringify(a)}`);
    }
    e.close();
  });
});

/**
 * A trust Engine with `clients` PostgreSQL clients logged in over one upstream whose
 * BackendKeyData is (123, 456); returns the ids and each client's cancel key.
 */
function loggedIn(clients, extra = {}) {
  const e = new Engine({ routes: [pgRoute({ poolSize: 1 })], users: USERS, auth: 'trust', ...extra });
  const ids = [];
  for (let i = 0; i < clients; i++) {
    const id = e.clientOpen('postgres', 1);
    e.clientData(id, startup('alice', 'db'), 1);
    ids.push(id);
  }
  const up = e.poll().find((a) => a.kind === ActionKind.ConnectUpstream).id;
  e.upstreamConnected(up, 2);
  e.poll();
  e.upstreamData(up, Buffer.concat([pgMsg('R', int32(0)), pgMsg('K', Buffer.concat([int32(123), int32(456)])),
    pgMsg('Z', Buffer.from('I'))]), 3);
  const out = e.poll();
  const keys = ids.map((id) => {
    const msgs = pgMessages(Buffer.concat(out.filter((a) => a.id === id).map((a) => a.data)));
    const k = msgs.find((m) => m.type === 'K');
    assert.ok(k, `client ${id} got no BackendKeyData`);
    assert.equal(msgs.at(-1).type, 'Z');
    return [k.body.readInt32BE(0), k.body.readInt32BE(4)];
  });
  return { e, ids, up, keys };
}

describe('Engine: cancel and backpressure', () => {
  test('a CancelRequest with a client\'s key becomes SendCancel with the upstream\'s key', () => {
    const { e, ids: [id], up, keys: [[pid, secret]] } = loggedIn(1);
    e.clientData(id, pgMsg('Q', Buffer.from('select pg_sleep(10)\0')), 4);
    assert.deepEqual(kinds(e.poll()), [ActionKind.SendUpstream]);
    // The cancel arrives on a connection of its own (as PostgreSQL clients send it).
    const canceller = e.clientOpen('postgres', 5);
    e.clientData(canceller, Buffer.concat([int32(16), int32(80877102), int32(pid), int32(secret)]), 5);
    const out = e.poll();
    const cancel = out.find((a) => a.kind === ActionKind.SendCancel);
    assert.ok(cancel, JSON.stringify(out));
    assert.equal(cancel.id, up, 'the id of a SendCancel is the upstream running the query');
    assert.equal(cancel.route, 0);
    assert.deepEqual(cancel.data, Buffer.concat([int32(16), int32(80877102), int32(123), int32(456)]));
    assert.ok(out.some((a) => a.kind === ActionKind.CloseClient && a.id === canceller),
      'the cancel connection is closed (PostgreSQL answers nothing)');
    assert.ok(!out.some((a) => a.id === id && a.kind === ActionKind.CloseClient));
    e.cancelDone(up, 6);
    // the server reports the cancel as an error of the running query: relayed as it is
    const answer = Buffer.concat([
      pgMsg('E', Buffer.from('SERROR\0C57014\0Mcanceling statement due to user request\0\0')),
      pgMsg('Z', Buffer.from('I')),
    ]);
    e.upstreamData(up, answer, 7);
    const back = e.poll().filter((a) => a.id === id);
    assert.deepEqual(Buffer.concat(back.map((a) => a.data)), answer);
    e.close();
  });

  test('a CancelRequest with an unknown key sends nothing upstream', () => {
    const { e, ids: [id] } = loggedIn(1);
    e.clientData(id, pgMsg('Q', Buffer.from('select pg_sleep(10)\0')), 4);
    e.poll();
    const canceller = e.clientOpen('postgres', 5);
    e.clientData(canceller, Buffer.concat([int32(16), int32(80877102), int32(1), int32(2)]), 5);
    const out = e.poll();
    assert.ok(!out.some((a) => a.kind === ActionKind.SendCancel), JSON.stringify(out));
    assert.ok(out.some((a) => a.kind === ActionKind.CloseClient && a.id === canceller));
    e.close();
  });

  test('sendBlocked pauses the other side of the pair, sendDrained resumes it', () => {
    const { e, ids: [id], up } = loggedIn(1);
    e.clientData(id, pgMsg('Q', Buffer.from('select 1\0')), 4);
    e.poll();
    e.sendBlocked(PeerKind.Upstream, up, 5);
    assert.deepEqual(e.poll().map((a) => [a.kind, a.id]), [[ActionKind.PauseClient, id]]);
    e.sendDrained(PeerKind.Upstream, up, 6);
    assert.deepEqual(e.poll().map((a) => [a.kind, a.id]), [[ActionKind.ResumeClient, id]]);
    e.sendBlocked(PeerKind.Client, id, 7);
    assert.deepEqual(e.poll().map((a) => [a.kind, a.id]), [[ActionKind.PauseUpstream, up]]);
    e.sendDrained(PeerKind.Client, id, 8);
    assert.deepEqual(e.poll().map((a) => [a.kind, a.id]), [[ActionKind.ResumeUpstream, up]]);
    e.close();
  });

  test('a waiting client that sends more than clientBacklogLimit is paused, and resumed once served', () => {
    // (pipelineDepth 0: b's autocommit queries would otherwise be pipelined behind a's)
    const { e, ids: [a, b], up } = loggedIn(2, { clientBacklogLimit: 1024, pipelineDepth: 0 });
    e.clientData(a, pgMsg('Q', Buffer.from('select pg_sleep(1)\0')), 4);
    assert.deepEqual(e.poll().map((x) => [x.kind, x.id]), [[ActionKind.SendUpstream, up]]);
    // b waits for the only upstream; its queries pile up in the Engine
    const q = pgMsg('Q', Buffer.from(`select '${'x'.repeat(300)}'\0`));
    const seen = [];
    for (let i = 0; i < 8; i++) {
      e.clientData(b, q, 5);
      seen.push(...e.poll());
    }
    assert.ok(seen.some((x) => x.kind === ActionKind.PauseClient && x.id === b), JSON.stringify(seen.map((x) => x.kind)));
    assert.ok(!seen.some((x) => x.kind === ActionKind.SendUpstream), 'b got the busy upstream');
    e.upstreamData(up, Buffer.concat([pgMsg('C', Buffer.from('SELECT 1\0')), pgMsg('Z', Buffer.from('I'))]), 6);
    const out = e.poll();
    assert.ok(out.some((x) => x.kind === ActionKind.SendUpstream && x.id === up), 'b\'s queries go upstream');
    assert.ok(out.some((x) => x.kind === ActionKind.ResumeClient && x.id === b), JSON.stringify(out.map((x) => [x.kind, x.id])));
    e.close();
  });
});

describe('Engine: listener settings', () => {
  /** The authentication request code (R message) a client gets after its startup. */
  function authCode(e, listener) {
    const id = e.clientOpen('postgres', 1, listener);
    e.clientData(id, startup('alice', 'db'), 2);
    const out = e.poll().filter((a) => a.id === id && a.kind === ActionKind.SendClient);
    const msgs = pgMessages(Buffer.concat(out.map((a) => a.data)));
    return { id, first: msgs[0], code: msgs[0].type === 'R' ? msgs[0].body.readInt32BE(0) : null };
  }

  test('each listener may ask for its own authentication', () => {
    const e = new Engine({ routes: [pgRoute()], users: USERS, auth: 'scram' });
    assert.equal(authCode(e).code, 10, 'the Engine\'s scram: AuthenticationSASL');
    assert.equal(authCode(e, null).code, 10);
    assert.equal(authCode(e, {}).code, 10);
    assert.equal(authCode(e, { auth: 'cleartext' }).code, 3, 'AuthenticationCleartextPassword');
    assert.equal(authCode(e, { auth: 'md5' }).code, 5, 'AuthenticationMD5Password');
    assert.equal(authCode(e, { auth: 'trust' }).code, 0, 'AuthenticationOk');
    e.close();
  });

  test('clientTls require: refused with 28000 unless the listener is secure', () => {
    const e = new Engine({ routes: [pgRoute()], users: USERS });
    const plain = authCode(e, { clientTls: 'require' });
    assert.equal(plain.first.type, 'E');
    assert.match(plain.first.body.toString('latin1'), /C28000\0/);
    assert.equal(authCode(e, { secure: true, clientTls: 'require' }).code, 10);
    assert.equal(e.stats().errors.auth, 1, 'the refused login counts as an auth error');
    e.close();
  });

  test('a wrong cleartext password: 28P01, counted in errors.auth', () => {
    const e = new Engine({ routes: [pgRoute()], users: USERS });
    const { id, code } = authCode(e, { auth: 'cleartext' });
    assert.equal(code, 3);
    e.clientData(id, pgMsg('p', Buffer.from('not-the-password\0')), 3);
    const out = e.poll().filter((a) => a.id === id);
    assert.deepEqual(kinds(out), [ActionKind.SendClient, ActionKind.CloseClient]);
    assert.match(out[0].data.toString('latin1'), /C28P01\0/);
    assert.deepEqual(e.stats().errors, { auth: 1, protocol: 0, upstream: 0, timeout: 0 });
    e.close();
  });

  test('unknown listener settings throw MUXQL_INVALID_ARGUMENT', () => {
    const e = new Engine({ routes: [pgRoute()], users: USERS });
    throwsCode(() => e.clientOpen('postgres', 1, { auth: 'kerberos' }), 'MUXQL_INVALID_ARGUMENT', 'auth kerberos');
    throwsCode(() => e.clientOpen('postgres', 1, { clientTls: 'maybe' }), 'MUXQL_INVALID_ARGUMENT', 'clientTls maybe');
    throwsCode(() => e.clientOpen('mysql', 1, { mysqlAuth: 'sha256_password' }), 'MUXQL_INVALID_ARGUMENT', 'mysqlAuth');
    assert.equal(e.stats().clientsLoggingIn, 0, 'a refused clientOpen opens no client');
    e.close();
  });
});

describe('Engine: MySQL client', () => {
  test('the greeting waits until the first upstream has logged in', () => {
    const e = new Engine({ routes: [myRoute()], users: USERS });
    const id = e.clientOpen('mysql', 10);
    assert.ok(Number.isSafeInteger(id) && id > 0);
    // The server speaks first in MySQL, but muxql greets with the real server's version: it
    // opens an upstream before saying anything.
    const first = e.poll();
    assert.deepEqual(kinds(first), [ActionKind.ConnectUpstream], JSON.stringify(first));
    assert.equal(first[0].route, 0);
    assert.equal(first[0].data.toString(), MY_TARGET);
    const up = first[0].id;

    e.upstreamConnected(up, 11);
    assert.deepEqual(e.poll(), [], 'the MySQL server speaks first');
    e.upstreamData(up, myServerGreeting('10.11.99-MariaDB-fake'), 12);
    const response = e.poll();
    assert.deepEqual(kinds(response), [ActionKind.SendUpstream]);
    assert.equal(response[0].data[3], 1, 'HandshakeResponse41 has sequence id 1');
    assert.ok(response[0].data.includes(Buffer.from('up\0')), 'logs in as the route\'s upstream user');
    e.upstreamData(up, myOk(2), 13);
    const trackers = e.poll();
    assert.deepEqual(kinds(trackers), [ActionKind.SendUpstream]);
    assert.equal(trackers[0].data[4], 0x03, 'COM_QUERY');
    assert.match(trackers[0].data.toString('latin1'), /session_track/);
    assert.ok(!trackers.some((a) => a.kind === ActionKind.SendClient), 'no greeting before the login is complete');
    e.upstreamData(up, myOk(1), 14);
    const greeting = e.poll();
    assert.deepEqual(kinds(greeting), [ActionKind.SendClient], JSON.stringify(greeting));
    assert.equal(greeting[0].id, id);
    const g = greeting[0].data;
    assert.equal(g.readUIntLE(0, 3), g.length - 4);
    assert.equal(g[3], 0, 'sequence id 0');
    assert.equal(g[4], 10, 'HandshakeV10');
    assert.equal(g.subarray(5, g.indexOf(0, 5)).toString(), '10.11.99-MariaDB-fake');
    assert.ok(g.includes(Buffer.from('caching_sha2_password\0')), 'default mysqlAuth');

    // A second client is greeted at once now that the pool knows its server.
    const id2 = e.clientOpen('mysql', 15);
    const at_once = e.poll();
    assert.deepEqual(kinds(at_once), [ActionKind.SendClient]);
    assert.equal(at_once[0].id, id2);
    assert.equal(e.stats().routes[0].upstreams, 1);
    e.close();
  });
});

describe('Engine: ids, close, stats', () => {
  test('unknown ids throw MUXQL_UNKNOWN_ID', () => {
    const e = new Engine({ routes: [pgRoute()], users: USERS, auth: 'trust' });
    const live = e.clientOpen('postgres', 1);
    const ghost = live + 12345;
    throwsCode(() => e.clientData(ghost, Buffer.from('x'), 2), 'MUXQL_UNKNOWN_ID', 'clientData');
    throwsCode(() => e.clientClosed(ghost, 2), 'MUXQL_UNKNOWN_ID', 'clientClosed');
    throwsCode(() => e.upstreamData(ghost, Buffer.from('x'), 2), 'MUXQL_UNKNOWN_ID', 'upstreamData');
    throwsCode(() => e.upstreamConnected(ghost, 2), 'MUXQL_UNKNOWN_ID', 'upstreamConnected');
    throwsCode(() => e.upstreamClosed(ghost, 2), 'MUXQL_UNKNOWN_ID', 'upstreamClosed');
    throwsCode(() => e.sendBlocked(PeerKind.Client, ghost, 2), 'MUXQL_UNKNOWN_ID', 'sendBlocked client');
    throwsCode(() => e.sendDrained(PeerKind.Upstream, ghost, 2), 'MUXQL_UNKNOWN_ID', 'sendDrained upstream');
    // the id of a client is no upstream's
    throwsCode(() => e.upstreamConnected(live, 2), 'MUXQL_UNKNOWN_ID', 'client id as upstream id');
    // cancelDone accepts ids it no longer knows (documented)
    e.cancelDone(ghost, 2);
    // a closed client's id is dead
    e.clientClosed(live, 3);
    throwsCode(() => e.clientClosed(live, 4), 'MUXQL_UNKNOWN_ID', 'clientClosed twice');
    throwsCode(() => e.routeTarget(7), 'MUXQL_INVALID_ARGUMENT', 'routeTarget of no route');
    e.close();
  });

  test('after close(): closed is true, every call throws MUXQL_WRONG_STATE, close() again is fine', () => {
    const e = new Engine({ routes: [pgRoute()], users: USERS, auth: 'trust' });
    const id = e.clientOpen('postgres', 1);
    assert.equal(e.closed, false);
    e.close();
    assert.equal(e.closed, true);
    const calls = {
      clientOpen: () => e.clientOpen('postgres', 2),
      clientData: () => e.clientData(id, Buffer.from('x'), 2),
      upstreamData: () => e.upstreamData(id, Buffer.from('x'), 2),
      clientClosed: () => e.clientClosed(id, 2),
      upstreamConnected: () => e.upstreamConnected(id, 2),
      upstreamClosed: () => e.upstreamClosed(id, 2),
      cancelDone: () => e.cancelDone(id, 2),
      handleTimeout: () => e.handleTimeout(2),
      nextDeadline: () => e.nextDeadline(),
      sendBlocked: () => e.sendBlocked(PeerKind.Client, id, 2),
      sendDrained: () => e.sendDrained(PeerKind.Client, id, 2),
      poll: () => e.poll(),
      routeTarget: () => e.routeTarget(0),
      stats: () => e.stats(),
      isIdle: () => e.isIdle(),
    };
    for (const [name, call] of Object.entries(calls)) throwsCode(call, 'MUXQL_WRONG_STATE', name);
    e.close();
    assert.equal(e.closed, true);
  });

  test('stats() has one entry per route with every counter a number', () => {
    const e = new Engine({ routes: [pgRoute(), myRoute({ database: 'mydb' })], users: USERS });
    const s = e.stats();
    for (const k of ['clientsLoggingIn', 'routes', 'errors', 'waitBucketsMs']) assert.ok(k in s, `stats().${k}`);
    assert.equal(s.clientsLoggingIn, 0);
    assert.deepEqual(s.errors, { auth: 0, protocol: 0, upstream: 0, timeout: 0 });
    assert.ok(Array.isArray(s.waitBucketsMs) && s.waitBucketsMs.length > 0);
    assert.ok(s.waitBucketsMs.every((b, i) => Number.isFinite(b) && (i === 0 || b > s.waitBucketsMs[i - 1])),
      `increasing bucket bounds: ${s.waitBucketsMs}`);
    assert.equal(s.routes.length, 2);
    const counters = ['clients', 'clientsActive', 'clientsWaiting', 'clientsPinned', 'upstreams',
      'upstreamsActive', 'upstreamsIdle', 'peakClients', 'peakUpstreams', 'transactions', 'queries',
      'bytesFromClients', 'bytesFromUpstreams', 'waitMs', 'pins', 'upstreamsDiscarded', 'pipelined',
      'pipelinedRetries', 'statements'];
    assert.equal(s.routes[0].database, 'db');
    assert.equal(s.routes[0].protocol, 'postgres');
    assert.equal(s.routes[1].database, 'mydb');
    assert.equal(s.routes[1].protocol, 'mysql');
    for (const r of s.routes) {
      for (const k of counters) assert.equal(r[k], 0, `${r.database}.${k}`);
      assert.deepEqual(r.waitHistogram, new Array(s.waitBucketsMs.length + 1).fill(0),
        `${r.database}.waitHistogram: one count per bucket and one for longer waits`);
    }
    e.clientOpen('postgres', 1);
    e.clientOpen('postgres', 1);
    assert.equal(e.stats().clientsLoggingIn, 2);
    assert.equal(e.isIdle(), true);
    e.close();
  });
});
