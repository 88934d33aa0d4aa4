// Type-checked only (tsc -p tsconfig.json, noEmit): the public API as a TypeScript user sees
// it. Every `@ts-expect-error` line is a misuse the declarations must refuse.
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import * as pg from 'pg';
import * as mysql from 'mysql2/promise';
import {
  Action,
  ActionKind,
  Engine,
  EngineOptions,
  InProcessPool,
  ListenOptions,
  MuxqlStream,
  PeerKind,
  Protocol,
  Proxy,
  ProxyOptions,
  RouteOptions,
  RouteStats,
  Stats,
  UserOptions,
  createPool,
  createProxy,
} from '..';

const route: RouteOptions = {
  protocol: 'postgres',
  database: 'app',
  target: '127.0.0.1:5432',
  upstreamUser: 'app',
  upstreamPassword: 'secret',
  poolSize: 4,
  poolMode: 'transaction',
};
const mysqlRoute: RouteOptions = {
  protocol: 'mysql',
  database: 'app',
  target: '/run/mysqld/mysqld.sock',
  upstreamUser: 'app',
  clientUser: 'app',
  upstreamDatabase: 'app_prod',
  poolMode: 'session',
};
const users: UserOptions[] = [{ name: 'app', password: 'secret' }];

const engineOptions: EngineOptions = {
  routes: [route, mysqlRoute],
  users,
  auth: 'scram',
  mysqlAuth: 'caching_sha2_password',
  pinPolicy: 'reject',
  clientTls: 'off',
  waitTimeoutMs: 120_000,
  idleTimeoutMs: 600_000,
  serverLifetimeMs: 3_600_000,
  connectTimeoutMs: 15_000,
  clientLoginTimeoutMs: 60_000,
  statementCacheSize: 256,
  pipelineDepth: 4,
  maxMessage: 64 << 20,
  clientBacklogLimit: 1 << 20,
  scramIterations: 4096,
  rngSeed: '00'.repeat(32),
  tlsServerEndPoint: Buffer.alloc(32),
};

// ---- Engine (native) ----
const engine = new Engine(engineOptions);
const now = (): number => Math.floor(performance.now());
const id: number = engine.clientOpen('postgres', now());
type ListenerSettings = NonNullable<Parameters<Engine['clientOpen']>[2]>;
const listenerSettings: ListenerSettings = { secure: true, auth: 'cleartext', clientTls: 'require' };
engine.clientOpen('mysql', now(), { mysqlAuth: 'mysql_native_password' });
engine.clientOpen('postgres', now(), listenerSettings);
engine.clientOpen('postgres', now(), null);
// @ts-expect-error: no such auth method
engine.clientOpen('postgres', now(), { auth: 'kerberos' });
const errorCounts: { auth: number; protocol: number; upstream: number; timeout: number } = engine.stats().errors;
const buckets: number[] = engine.stats().waitBucketsMs;
void [errorCounts, buckets];
engine.clientData(id, Buffer.from('x'), now());
const actions: Action[] = engine.poll();
for (const a of actions) {
  const kind: ActionKind = a.kind;
  const target: number = a.id;
  const routeIndex: number | undefined = a.route;
  const data: Buffer | undefined = a.data;
  switch (kind) {
    case ActionKind.SendClient:
    case ActionKind.SendUpstream:
      if (data) data.byteLength.toFixed();
      break;
    case ActionKind.ConnectUpstream:
      engine.routeTarget(routeIndex ?? 0).toUpperCase();
      engine.upstreamConnected(target, now());
      break;
    case ActionKind.StartTls:
    case ActionKind.StartUpstreamTls:
      engine.upstreamClosed(target, now());
      break;
    case ActionKind.SendCancel:
      engine.cancelDone(target, now());
      break;
    default:
      break;
  }
}
engine.sendBlocked(PeerKind.Client, id, now());
engine.sendDrained(PeerKind.Upstream, id, now());
const deadline: number | null = engine.nextDeadline();
if (deadline !== null) engine.handleTimeout(deadline);
const idle: boolean = engine.isIdle();
const closed: boolean = engine.closed;
const engineStats: Stats = engine.stats();
const firstRoute: RouteStats | undefined = engineStats.routes[0];
const peak: number | undefined = firstRoute?.peakUpstreams;
const loggingIn: number = engineStats.clientsLoggingIn;
engine.clientClosed(id, now());
engine.close();
void [idle, closed, peak, loggingIn];

// @ts-expect-error: no such protocol
engine.clientOpen('oracle', now());
// @ts-expect-error: data is a Buffer, not a string
engine.clientData(id, 'bytes', now());
// @ts-expect-error: the time is required
engine.handleTimeout();
// @ts-expect-error: closed is read-only
engine.closed = true;
// @ts-expect-error: routes are required
new Engine({ users });
// @ts-expect-error: no such auth method
new Engine({ routes: [route], auth: 'kerberos' });
// @ts-expect-error: no such pool mode
const badMode: RouteOptions = { ...route, poolMode: 'statement' };
void badMode;

// ---- createProxy ----
const proxyOptions: ProxyOptions = { ...engineOptions, clientTls: undefined, closeTimeoutMs: 5_000 };
const proxy: Proxy = createProxy(proxyOptions);
const tcp: ListenOptions = { protocol: 'postgres', host: '127.0.0.1', port: 6432 };
const ws: ListenOptions = { protocol: 'postgres', port: 0, websocket: { path: '/v2' } };
const unix: ListenOptions = { protocol: 'mysql', path: '/tmp/muxql-test.sock' };
const secure: ListenOptions = {
  protocol: 'mysql',
  port: 0,
  websocket: true,
  tls: { key: 'k', cert: 'c' },
  mysqlAuth: 'mysql_native_password',
  clientTls: 'require',
};
const cleartextWs: ListenOptions = { protocol: 'postgres', port: 0, websocket: true, auth: 'cleartext' };
// @ts-expect-error: no such auth method on a listener either
const kerberos: ListenOptions = { protocol: 'postgres', auth: 'kerberos' };
void kerberos;

// @ts-expect-error: no such protocol
const oracle: ListenOptions = { protocol: 'oracle', port: 1521 };
void oracle;
// @ts-expect-error: the protocol is required
proxy.listen({ port: 0 });
// @ts-expect-error: closeTimeoutMs is a number
createProxy({ ...engineOptions, closeTimeoutMs: '5s' });
// @ts-expect-error: routes are required
createProxy({ closeTimeoutMs: 1 });

async function runProxy(): Promise<void> {
  const address: AddressInfo | string = await proxy.listen(tcp);
  const port = typeof address === 'string' ? 0 : address.port;
  await proxy.listen(ws);
  await proxy.listen(unix);
  await proxy.listen(secure);
  await proxy.listen(cleartextWs);
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'secret', database: 'app' });
  await client.connect();
  await client.end();
  const s: Stats = proxy.stats();
  s.routes.forEach((r: RouteStats) => r.clients.toFixed());
  const done: Promise<void> = proxy.close();
  await done;
}

// ---- createPool ----
const pool: InProcessPool = createPool(engineOptions);
const pgStream: MuxqlStream = pool.stream();
const myStream: MuxqlStream = pool.stream('mysql');
const asDuplex: Duplex = pgStream.setNoDelay(true).setKeepAlive(true, 1000).setTimeout(0).ref().unref().connect();
const protocol: Protocol = 'mysql';
pool.stream(protocol);
void [asDuplex, myStream];

// @ts-expect-error: no such protocol
pool.stream('oracle');
// @ts-expect-error: createPool takes Engine options (no listener settings)
createPool({ routes: [route], port: 5432 });

async function runPool(): Promise<void> {
  const client = new pg.Client({ stream: () => pool.stream(), user: 'app', password: 'secret', database: 'app' });
  await client.connect();
  const r = await client.query<{ v: number }>('select $1::int as v', [1]);
  r.rows[0]?.v.toFixed();
  await client.end();
  const conn = await mysql.createConnection({ stream: () => pool.stream('mysql'), user: 'app', password: 'secret' });
  await conn.execute('select ?', [1]);
  await conn.end();
  const peakUpstreams: number | undefined = pool.stats().routes[0]?.peakUpstreams;
  void peakUpstreams;
  await pool.close();
}

void [runProxy, runPool];
