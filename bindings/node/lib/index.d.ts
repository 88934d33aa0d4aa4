// Types of the JavaScript layer; the native part's (Engine, ActionKind, PeerKind, the option
// and stats objects) are generated from the Rust side into ../native.d.ts by `npm run build`.
import type { Duplex } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { EngineOptions, Stats } from '../native';

export {
  Engine,
  ActionKind,
  PeerKind,
  Action,
  EngineOptions,
  RouteOptions,
  UserOptions,
  Stats,
  RouteStats,
  ErrorCounts,
  ListenerOptions,
} from '../native';

/** The wire protocol of a listener or an in-process stream. */
export type Protocol = 'postgres' | 'mysql';

/** Where and how a proxy accepts clients (`Proxy.listen`). */
export interface ListenOptions {
  /** Protocol the clients speak. */
  protocol: Protocol;
  /** TCP host (default 127.0.0.1). */
  host?: string;
  /** TCP port (0 or absent: any free port). */
  port?: number;
  /** A Unix socket path instead of host and port. */
  path?: string;
  /**
   * Accept WebSocket connections instead of raw sockets: each binary message carries raw
   * wire bytes of `protocol`, message boundaries mean nothing (the way
   * `@neondatabase/serverless` talks). `path` here restricts the HTTP path (default: any).
   */
  websocket?: boolean | { path?: string };
  /**
   * Terminate TLS on this listener: every connection is TLS from its first byte (wss for
   * WebSocket; ALPN `postgresql` for PostgreSQL 17's direct TLS). It counts as TLS for
   * `clientTls: 'require'`.
   */
  tls?: SecureContextOptions;
  /** PostgreSQL client authentication on this listener (default: the proxy's `auth`). */
  auth?: 'scram' | 'md5' | 'cleartext' | 'trust';
  /** MySQL client authentication on this listener (default: the proxy's `mysqlAuth`). */
  mysqlAuth?: 'caching_sha2_password' | 'mysql_native_password';
  /** Whether a login without TLS is refused here (default: the proxy's `clientTls`). */
  clientTls?: 'off' | 'require';
}

/** Options of `createProxy`: the Engine's options plus the proxy's own. */
export interface ProxyOptions extends EngineOptions {
  /** Longest `close()` waits for clients to leave before closing them, in ms (default 30000). */
  closeTimeoutMs?: number;
}

/** A proxy running in this process's event loop. */
export interface Proxy {
  /** Starts a listener; resolves with its address once it accepts. May be called several times. */
  listen(options: ListenOptions): Promise<AddressInfo | string>;
  /** Stops accepting, waits for clients to leave (at most `closeTimeoutMs`), then closes everything. */
  close(): Promise<void>;
  /** Counters per route. */
  stats(): Stats;
}

/** A Node-hosted muxql proxy in front of the routes' servers. */
export function createProxy(options: ProxyOptions): Proxy;

/**
 * A socket-like Duplex for one logical session of an in-process pool: pass it (or a function
 * returning a new one) as node-postgres's `stream` option, or as mysql2's `stream` option.
 */
export interface MuxqlStream extends Duplex {
  /** Emits 'connect' on the next tick (the session is already open). */
  connect(...args: unknown[]): this;
  /** Accepted for socket compatibility; does nothing. */
  setNoDelay(noDelay?: boolean): this;
  /** Accepted for socket compatibility; does nothing. */
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  /** Accepted for socket compatibility; does nothing. */
  setTimeout(timeout: number, callback?: () => void): this;
  /** Accepted for socket compatibility; does nothing. */
  ref(): this;
  /** Accepted for socket compatibility; does nothing. */
  unref(): this;
}

/** Many logical sessions inside this process over a few real database connections. */
export interface InProcessPool {
  /** A new logical session speaking `protocol` (default postgres). */
  stream(protocol?: Protocol): MuxqlStream;
  /** Closes every session and upstream connection. */
  close(): Promise<void>;
  /** Counters per route. */
  stats(): Stats;
}

/** An in-process pool: sessions are Duplex streams, no listener and no extra network hop. */
export function createPool(options: EngineOptions): InProcessPool;
