'use strict';
// createProxy: a muxql proxy in this process's event loop (TCP, Unix and WebSocket listeners).

const net = require('node:net');
const tls = require('node:tls');
const http = require('node:http');
const https = require('node:https');
const { WebSocketServer } = require('ws');
const { Host, serveSocket } = require('./host.js');
const { withCode } = require('./engine.js');
const { webSocketStream } = require('./websocket.js');

const DEFAULT_CLOSE_TIMEOUT_MS = 30000;

function checkProtocol(protocol) {
  if (protocol !== 'postgres' && protocol !== 'mysql') {
    throw Object.assign(new TypeError(`muxql: protocol must be 'postgres' or 'mysql', not ${protocol}`), {
      code: 'MUXQL_INVALID_ARGUMENT',
    });
  }
}

/** Refuses options this host cannot honour. */
function checkOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw Object.assign(new TypeError('muxql: options must be an object'), { code: 'MUXQL_INVALID_CONFIG' });
  }
  if (options.clientTls !== undefined && options.clientTls !== 'off') {
    throw Object.assign(
      new Error('muxql: clientTls (TLS negotiated in the protocol) is not terminated by the Node host; use a listener with `tls`'),
      { code: 'MUXQL_INVALID_CONFIG' },
    );
  }
}

/**
 * @param {import('./index').ProxyOptions} options
 * @returns {import('./index').Proxy}
 */
function createProxy(options) {
  checkOptions(options);
  const { closeTimeoutMs = DEFAULT_CLOSE_TIMEOUT_MS, ...engineOptions } = options;
  const host = new Host(engineOptions);
  const servers = [];
  let closing = null;

  /** Checks a listener's options; its settings for the Engine. */
  function listenerSettings(listenOptions) {
    if (listenOptions === null || typeof listenOptions !== 'object') {
      throw Object.assign(new TypeError('muxql: listen options must be an object'), { code: 'MUXQL_INVALID_ARGUMENT' });
    }
    const { protocol, tls: tlsOptions, clientTls = 'off' } = listenOptions;
    checkProtocol(protocol);
    if (clientTls !== 'off' && !(clientTls === 'require' && tlsOptions)) {
      throw Object.assign(
        new Error("muxql: a listener's clientTls is 'off', or 'require' with `tls` (the Node host terminates TLS itself)"),
        { code: 'MUXQL_INVALID_ARGUMENT' },
      );
    }
    // TLS terminated here counts as TLS for the Engine (`clientTls: 'require'` is met).
    const listener = {
      secure: Boolean(tlsOptions),
      auth: listenOptions.auth,
      mysqlAuth: listenOptions.mysqlAuth,
      clientTls,
    };
    try {
      host.engine.checkListener(protocol, listener);
    } catch (err) {
      throw withCode(err, 'MUXQL_INVALID_ARGUMENT');
    }
    return listener;
  }

  async function listen(listenOptions) {
    if (closing) throw Object.assign(new Error('muxql: the proxy is closing'), { code: 'MUXQL_WRONG_STATE' });
    const listener = listenerSettings(listenOptions);
    const { protocol, host: address = '127.0.0.1', port = 0, path, websocket, tls: tlsOptions } = listenOptions;
    let server;
    if (websocket) {
      const http1 = tlsOptions ? https.createServer(tlsOptions) : http.createServer();
      http1.on('request', (_req, res) => {
        res.writeHead(426, { Upgrade: 'websocket' }).end('muxql: WebSocket only\n');
      });
      const wsPath = typeof websocket === 'object' ? websocket.path : undefined;
      const wss = new WebSocketServer({
        server: http1,
        path: wsPath,
        perMessageDeflate: false,
        maxPayload: engineOptions.maxMessage ?? 64 * 1024 * 1024,
      });
      wss.on('connection', (ws) => serveSocket(host, webSocketStream(ws), protocol, listener));
      server = http1;
      server.closeAll = () => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
      };
    } else {
      const onSocket = (socket) => serveSocket(host, socket, protocol, listener);
      server = tlsOptions
        ? tls.createServer({ ALPNProtocols: protocol === 'postgres' ? ['postgresql'] : undefined, ...tlsOptions }, onSocket)
        : net.createServer({ noDelay: true }, onSocket);
      server.on('tlsClientError', () => {});
      server.closeAll = () => {};
    }
    servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        resolve(server.address());
      };
      if (path) server.listen(path, done);
      else server.listen(port, address, done);
    });
  }

  async function close() {
    if (!closing) {
      closing = (async () => {
        // A server's close callback waits for its last connection: stop accepting now, wait
        // for the clients below, and for the callbacks once everything is closed.
        const closed = servers.map((s) => new Promise((resolve) => s.close(() => resolve())));
        let timer;
        const timeout = new Promise((resolve) => {
          timer = setTimeout(resolve, closeTimeoutMs);
        });
        await Promise.race([host.whenNoClients(), timeout]);
        clearTimeout(timer);
        for (const s of servers) s.closeAll();
        host.destroy();
        await Promise.all(closed);
      })();
    }
    return closing;
  }

  return { listen, close, stats: () => host.engine.stats() };
}

module.exports = { createProxy, checkOptions, checkProtocol };
