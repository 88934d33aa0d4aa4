// Targets of the @neondatabase/serverless suite and the helpers every test file shares.
//
// muxql         MUXQL_TEST_WS_URL (ws://HOST:PORT/PATH), a muxql --listen-ws address started with
//               --auth cleartext, and MUXQL_TEST_PG_USER / _PASSWORD / _DB. The driver keeps its
//               default pipelineConnect ('password'): startup, cleartext password and the first
//               query leave in one WebSocket message before muxql has answered anything.
// muxql-scram   MUXQL_TEST_WS_SCRAM_URL, a second muxql --listen-ws address started with
//               --auth scram (same upstream and credentials); used by auth.test.mjs only.
// direct        MUXQL_TEST_PG_DIRECT_URL (postgres://USER:PASS@HOST:PORT/DB), the PostgreSQL
//               server itself, reached through a WebSocket-to-TCP relay that each test process
//               starts on 127.0.0.1. PostgreSQL authenticates with SCRAM/md5, so this target
//               runs with pipelineConnect false (the driver's setting for such servers).
//
// Every variable is required: without one, the cases that need it fail (nothing is skipped).
import net from 'node:net';
import { after } from 'node:test';
import { Client, Pool, neonConfig } from '@neondatabase/serverless';
import WebSocket, { WebSocketServer } from 'ws';

// Node 20 has no global WebSocket; the `ws` package is the documented constructor.
neonConfig.webSocketConstructor = WebSocket;

// Upper bound of any single query; a hang becomes a failing case instead of a stuck run.
export const QUERY_TIMEOUT_MS = 10_000;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; see tests/drivers/README.md (neon)`);
  return v;
}

function wsTarget(name, urlVar, pipelineConnect) {
  return {
    name,
    async resolve() {
      const url = new URL(need(urlVar));
      if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
        throw new Error(`${urlVar} must be a ws:// or wss:// URL, not ${url.href}`);
      }
      return {
        name,
        ws: url,
        user: need('MUXQL_TEST_PG_USER'),
        password: need('MUXQL_TEST_PG_PASSWORD'),
        database: need('MUXQL_TEST_PG_DB'),
        pipelineConnect,
      };
    },
  };
}

let relay; // one WebSocket-to-TCP relay per test process, started on first use
let relayServer;

// Registered while the test file imports this module, so it runs once at the very end.
after(() => {
  if (!relayServer) return undefined;
  for (const c of relayServer.clients) c.terminate();
  return new Promise((resolve) => relayServer.close(() => resolve()));
});

async function startRelay(pgHost, pgPort) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  relayServer = wss;
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', (ws) => {
    const tcp = net.connect(pgPort, pgHost);
    const early = [];
    let open = false;
    tcp.setNoDelay(true);
    tcp.on('connect', () => {
      open = true;
      for (const b of early) tcp.write(b);
      early.length = 0;
    });
    ws.on('message', (m) => (open ? tcp.write(m) : early.push(m)));
    tcp.on('data', (d) => ws.send(d));
    tcp.on('error', () => ws.terminate());
    tcp.on('close', () => ws.close());
    ws.on('error', () => tcp.destroy());
    ws.on('close', () => tcp.destroy());
  });
  return `ws://127.0.0.1:${wss.address().port}/v2`;
}

const direct = {
  name: 'direct',
  async resolve() {
    const url = new URL(need('MUXQL_TEST_PG_DIRECT_URL'));
    relay ??= startRelay(url.hostname, Number(url.port || 5432));
    return {
      name: 'direct',
      ws: new URL(await relay),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.slice(1)),
      pipelineConnect: false,
    };
  },
};

/** The targets every data case runs against. */
export const TARGETS = [direct, wsTarget('muxql', 'MUXQL_TEST_WS_URL', 'password')];
/** muxql with --auth scram (auth.test.mjs). */
export const SCRAM_TARGET = wsTarget('muxql-scram', 'MUXQL_TEST_WS_SCRAM_URL', 'password');

/** Per-client driver settings for a resolved target (`overrides` win). */
export function neonSettings(t, overrides = {}) {
  const path = t.ws.pathname + t.ws.search;
  return {
    wsProxy: () => `${t.ws.host}${path}`,
    useSecureWebSocket: t.ws.protocol === 'wss:',
    pipelineTLS: false,
    forceDisablePgSSL: true,
    pipelineConnect: t.pipelineConnect,
    ...overrides,
  };
}

function clientConfig(t, overrides) {
  return {
    // The host only reaches wsProxy (which ignores it); muxql ignores the path's query too.
    host: t.ws.hostname,
    user: t.user,
    password: t.password,
    database: t.database,
    connectionTimeoutMillis: 10_000,
    query_timeout: QUERY_TIMEOUT_MS,
    ...overrides,
  };
}

/**
 * A Client for target `t`; `neon` overrides driver settings (e.g. pipelineConnect), `cfg` the
 * pg config. An 'error' event (the server closing a pipelined login it rejected) is recorded in
 * `client.errors` instead of crashing the test process.
 */
export function newClient(t, { neon = {}, cfg = {}, webSocketConstructor } = {}) {
  const c = new Client(clientConfig(t, cfg));
  Object.assign(c.neonConfig, neonSettings(t, neon));
  if (webSocketConstructor) c.neonConfig.webSocketConstructor = webSocketConstructor;
  c.errors = [];
  c.on('error', (e) => c.errors.push(e));
  c.closed = false;
  c.on('end', () => { c.closed = true; });
  return c;
}

/** A Pool whose clients all use target `t`'s settings. */
export function newPool(t, poolCfg = {}) {
  const settings = neonSettings(t);
  class TargetClient extends Client {
    constructor(cfg) {
      super(cfg);
      Object.assign(this.neonConfig, settings);
    }
  }
  const pool = new Pool(clientConfig(t, poolCfg));
  pool.Client = TargetClient; // the neon Pool sets its own Client after pg's constructor ran
  pool.errors = [];
  pool.on('error', (e) => pool.errors.push(e));
  return pool;
}

/** A WebSocket class that appends every message it sends (as a Buffer) to `sent`. */
export function recordingWebSocket(sent) {
  return class Recording extends WebSocket {
    send(data, ...rest) {
      sent.push(Buffer.from(data));
      return super.send(data, ...rest);
    }
  };
}

/** A table name unique to this run and target: drv_neon_<target>_<what>_<random>. */
export function tableName(t, what) {
  const rnd = Math.floor(Math.random() * 1e9);
  return `drv_neon_${t.name.replace(/\W/g, '_')}_${what}_${rnd}`;
}

/** Rejects with a clear message if `p` has not settled within `ms`. */
export function within(ms, what, p) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Ends a client, giving up after 5 s: the driver's end() waits for the server forever when a
 * pipelined login was never answered, which would hide the failing case behind a file timeout.
 */
export async function endClient(c) {
  if (c.closed) return; // end() of a client whose connection is gone never settles
  try {
    await within(5_000, 'client.end()', c.end());
  } catch {
    c.connection?.stream?.ws?.terminate?.();
  }
}

/** Ends a pool, giving up after 10 s (see endClient). */
export async function endPool(pool) {
  await within(10_000, 'pool.end()', pool.end()).catch(() => {});
}

/** Runs `fn(client)` on a fresh connected client of `t`, then ends it. */
export async function withClient(t, fn, opts) {
  const c = newClient(t, opts);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    await endClient(c);
  }
}

/** Expects `p` to reject with SQLSTATE `code`; returns the error. */
export async function rejectsWith(p, code, what) {
  let err;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`${what}: succeeded, expected SQLSTATE ${code}`);
  if (err.code !== code) {
    throw new Error(`${what}: expected SQLSTATE ${code}, got ${err.code ?? 'no code'}: ${err.message}`);
  }
  return err;
}
