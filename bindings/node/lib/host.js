'use strict';
// Host: drives one Engine from Node's event loop. Client connections are endpoints (see
// `socketEndpoint` and pool.js); upstream connections are sockets the host opens itself.

const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const { performance } = require('node:perf_hooks');
const { Engine, ActionKind, PeerKind } = require('../native.js');
const { withCode } = require('./engine.js');

/** Milliseconds of a monotonic clock, the Engine's time. */
const now = () => Math.floor(performance.now());

/** Longest a closed client may keep its half-closed socket before it is destroyed, in ms. */
const CLOSE_LINGER_MS = 5000;
/** Longest a cancel's side connection may stay open, in ms (the Engine waits at most 5 s). */
const CANCEL_TIMEOUT_MS = 10000;

/**
 * `tls.connect` options for a route's upstream TLS settings (the Engine's modes: prefer and
 * require without a CA do not check the certificate; verify-ca checks the chain;
 * verify-full also the host name). Files are read once, when the host starts.
 * @param {import('../native').RouteOptions} route
 */
function upstreamTlsOptions(route) {
  const mode = route.upstreamTls ?? 'disable';
  if (mode === 'disable') return null;
  const read = (path) => (path ? fs.readFileSync(path) : undefined);
  const ca = read(route.upstreamTlsCa);
  const checked = mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && ca);
  const { host = 'localhost' } = route.target.startsWith('/') ? {} : connectOptions(route.target);
  return {
    host,
    servername: net.isIP(host) ? undefined : host,
    ca,
    cert: read(route.upstreamTlsCert),
    key: read(route.upstreamTlsKey),
    rejectUnauthorized: Boolean(checked),
    checkServerIdentity: mode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
  };
}

/**
 * A route target (`host:port`, `[v6]:port` or a Unix socket path) as `net.connect` options.
 * @param {string} target
 */
function connectOptions(target) {
  if (target.startsWith('/')) return { path: target };
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(target.slice(colon + 1)) };
}

class Host {
  /**
   * @param {import('../native').EngineOptions} options
   * @param {{ unref?: boolean }} [settings] unref: upstream sockets and timers keep the
   *   process alive only while a client is connected (in-process pools, whose clients are
   *   not sockets and would not keep it alive themselves).
   */
  constructor(options, settings = {}) {
    try {
      /** The native Engine itself: the host's calls are well-typed, so no wrapper. */
      this.engine = new Engine(options);
    } catch (err) {
      throw withCode(err, 'MUXQL_INVALID_CONFIG');
    }
    try {
      /** Per route: options for `tls.connect` when the Engine asks for upstream TLS. */
      this.routeTls = options.routes.map(upstreamTlsOptions);
    } catch (err) {
      this.engine.close();
      throw Object.assign(err, { code: 'MUXQL_INVALID_CONFIG' });
    }
    this.unref = Boolean(settings.unref);
    /** @type {Map<number, {endpoint: any, blocked: boolean}>} */
    this.clients = new Map();
    /** @type {Map<number, {socket: net.Socket, blocked: boolean}>} */
    this.upstreams = new Map();
    /** Side connections of cancels in flight. */
    this.cancels = new Set();
    this.timer = null;
    this.deadline = null;
    this.running = false;
    /** A deferred run is queued. */
    this.scheduled = false;
    /** Called (once each) when no client is left; see `whenNoClients`. */
    this.idleWaiters = [];
  }

  /**
   * A client connected: `endpoint` has send/finish/pauseReading/resumeReading/destroy;
   * `listener` the settings of its listener where they differ from the Engine's.
   */
  openClient(endpoint, protocol, listener) {
    const id = this.engine.clientOpen(protocol, now(), listener);
    this.clients.set(id, { endpoint, blocked: false });
    if (this.clients.size === 1) this.holdProcess(true);
    this.run();
    return id;
  }

  /**
   * Bytes from client `id` (ignored once the Engine closed it). `deferred`: the actions are
   * carried out in a microtask, not before this returns — for endpoints that call from
   * inside their consumer's code (an in-process stream's write), whose consumer must not
   * get data while it is still handling the previous chunk, as no socket would deliver it.
   */
  clientData(id, data, deferred = false) {
    if (!this.clients.has(id)) return;
    this.engine.clientData(id, data, now());
    this.runFrom(deferred);
  }

  /** Client `id`'s endpoint can take more after `send` returned false. */
  clientDrained(id, deferred = false) {
    const c = this.clients.get(id);
    if (!c || !c.blocked) return;
    c.blocked = false;
    this.engine.sendDrained(PeerKind.Client, id, now());
    this.runFrom(deferred);
  }

  /** Client `id` went away on its own. */
  clientGone(id, deferred = false) {
    if (!this.clients.delete(id)) return;
    this.engine.clientClosed(id, now());
    this.runFrom(deferred);
  }

  runFrom(deferred) {
    if (!deferred) {
      this.run();
    } else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.run();
      });
    }
  }

  /** Resolves when no client is connected. */
  whenNoClients() {
    if (this.clients.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  checkIdle() {
    if (this.clients.size > 0) return;
    this.holdProcess(false);
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** In unref mode, whether the upstream sockets and the timer keep the process alive. */
  holdProcess(hold) {
    if (!this.unref) return;
    for (const { socket } of this.upstreams.values()) {
      if (hold) socket.ref();
      else socket.unref();
    }
    if (this.timer) {
      if (hold) this.timer.ref();
      else this.timer.unref();
    }
  }

  /** Whether a new socket or timer should keep the process alive. */
  holding() {
    return !this.unref || this.clients.size > 0;
  }

  /** Closes every connection and the Engine. */
  destroy() {
    const clients = [...this.clients.values()];
    this.clients.clear();
    for (const { endpoint } of clients) endpoint.destroy();
    for (const { socket } of this.upstreams.values()) socket.destroy();
    this.upstreams.clear();
    for (const socket of this.cancels) socket.destroy();
    this.cancels.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.engine.close();
    this.checkIdle();
  }

  /**
   * Carries out every pending action. Not re-entrant: an endpoint that feeds data back while
   * an action is carried out (an in-process stream) only queues it in the Engine, and the
   * loop picks the new actions up after the current batch, keeping each connection's order.
   */
  run() {
    if (this.running || this.engine.closed) return;
    this.running = true;
    try {
      for (;;) {
        const actions = this.engine.poll();
        if (actions.length === 0) break;
        for (const a of actions) this.act(a);
      }
    } finally {
      this.running = false;
    }
    this.arm();
    this.checkIdle();
  }

  act(a) {
    switch (a.kind) {
      case ActionKind.SendClient: {
        const c = this.clients.get(a.id);
        if (c && !c.endpoint.send(a.data) && !c.blocked) {
          c.blocked = true;
          this.engine.sendBlocked(PeerKind.Client, a.id, now());
        }
        break;
      }
      case ActionKind.SendUpstream: {
        const u = this.upstreams.get(a.id);
        if (u && !u.socket.write(a.data) && !u.blocked) {
          u.blocked = true;
          this.engine.sendBlocked(PeerKind.Upstream, a.id, now());
        }
        break;
      }
      case ActionKind.ConnectUpstream:
        this.connectUpstream(a.id, a.data.toString());
        break;
      case ActionKind.CloseClient: {
        const c = this.clients.get(a.id);
        this.clients.delete(a.id);
        if (c) c.endpoint.finish();
        break;
      }
      case ActionKind.CloseUpstream: {
        const u = this.upstreams.get(a.id);
        this.upstreams.delete(a.id);
        if (u) u.socket.destroy();
        break;
      }
      case ActionKind.SendCancel:
        this.sendCancel(a.id, this.engine.routeTarget(a.route), a.data);
        break;
      case ActionKind.PauseClient:
        this.clients.get(a.id)?.endpoint.pauseReading();
        break;
      case ActionKind.ResumeClient:
        this.clients.get(a.id)?.endpoint.resumeReading();
        break;
      case ActionKind.PauseUpstream:
        this.upstreams.get(a.id)?.socket.pause();
        break;
      case ActionKind.ResumeUpstream:
        this.upstreams.get(a.id)?.socket.resume();
        break;
      case ActionKind.StartUpstreamTls:
        this.startUpstreamTls(a.id, a.route);
        break;
      case ActionKind.StartTls: {
        // Only asked for when `clientTls` is set, which this host does not terminate: the
        // client is closed (the option is refused by createProxy and createPool).
        const c = this.clients.get(a.id);
        if (c) {
          this.clients.delete(a.id);
          c.endpoint.destroy();
          this.engine.clientClosed(a.id, now());
        }
        break;
      }
      default:
        throw new Error(`muxql: unknown action ${a.kind}`);
    }
  }

  connectUpstream(id, target) {
    const socket = net.connect(connectOptions(target));
    socket.setNoDelay(true);
    if (!this.holding()) socket.unref();
    const u = { socket, blocked: false };
    this.upstreams.set(id, u);
    socket.on('connect', () => {
      if (this.upstreams.get(id) !== u) return;
      this.engine.upstreamConnected(id, now());
      this.run();
    });
    this.watchUpstream(id, u);
  }

  /**
   * Runs TLS on upstream `id` from now on: writes go through the TLS socket (which holds
   * them until the handshake is done), reads come out of it decrypted.
   */
  startUpstreamTls(id, route) {
    const u = this.upstreams.get(id);
    if (!u) return;
    const options = this.routeTls[route];
    const raw = u.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('drain');
    raw.removeAllListeners('close');
    const secure = tls.connect({ ...options, socket: raw });
    u.socket = secure;
    this.watchUpstream(id, u);
  }

  /** Feeds what upstream `id`'s socket reads to the Engine and reports its end. */
  watchUpstream(id, u) {
    const socket = u.socket;
    socket.on('data', (data) => {
      if (this.upstreams.get(id) !== u) return;
      this.engine.upstreamData(id, data, now());
      this.run();
    });
    socket.on('drain', () => {
      if (this.upstreams.get(id) !== u || !u.blocked) return;
      u.blocked = false;
      this.engine.sendDrained(PeerKind.Upstream, id, now());
      this.run();
    });
    // 'error' is always followed by 'close', which reports it.
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.upstreams.get(id) !== u) return;
      this.upstreams.delete(id);
      this.engine.upstreamClosed(id, now());
      this.run();
    });
  }

  sendCancel(upstream, target, request) {
    const socket = net.connect(connectOptions(target));
    this.cancels.add(socket);
    socket.setTimeout(CANCEL_TIMEOUT_MS, () => socket.destroy());
    socket.on('connect', () => socket.end(request));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.cancels.delete(socket);
      if (this.engine.closed) return;
      this.engine.cancelDone(upstream, now());
      this.run();
    });
  }

  /** One timer for the Engine's next deadline. */
  arm() {
    if (this.engine.closed) return;
    const deadline = this.engine.nextDeadline();
    if (deadline === this.deadline) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.deadline = deadline;
    if (deadline === null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.deadline = null;
      if (this.engine.closed) return;
      this.engine.handleTimeout(now());
      this.run();
    }, Math.max(0, deadline - now()));
    if (!this.holding()) this.timer.unref();
  }
}

/**
 * Serves a client over a stream socket (net.Socket, tls.TLSSocket, or a WebSocket's Duplex)
 * through `host`.
 * @param {Host} host
 * @param {import('node:stream').Duplex & { setNoDelay?: (b: boolean) => void }} socket
 * @param {'postgres' | 'mysql'} protocol
 * @param {import('../native').ListenerOptions} [listener]
 */
function serveSocket(host, socket, protocol, listener) {
  let id = 0;
  let linger = null;
  const endpoint = {
    send: (data) => socket.write(data),
    finish: () => {
      socket.end();
      linger = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS);
      linger.unref();
    },
    pauseReading: () => socket.pause(),
    resumeReading: () => socket.resume(),
    destroy: () => socket.destroy(),
  };
  socket.setNoDelay?.(true);
  socket.on('data', (data) => host.clientData(id, data));
  socket.on('drain', () => host.clientDrained(id));
  socket.on('error', () => {});
  socket.on('close', () => {
    if (linger) clearTimeout(linger);
    host.clientGone(id);
  });
  try {
    id = host.openClient(endpoint, protocol, listener);
  } catch {
    // Settings are checked when the listener starts; a client must never take the process
    // down with it.
    socket.destroy();
    return 0;
  }
  return id;
}

module.exports = { Host, serveSocket, now };
