#!/usr/bin/env node
'use strict';
// A muxql proxy hosted by Node, configured from flags like the `muxql` command's:
//
//   node examples/proxy.js --listen-pg 127.0.0.1:6432 \
//     --upstream postgres://app:secret@127.0.0.1:5432/app --pool 8
//
//   --listen-pg ADDR       PostgreSQL listener (repeatable): host:port, [v6]:port, a bare port
//                          (127.0.0.1), or a Unix socket path starting with '/'
//   --listen-mysql ADDR    MySQL/MariaDB listener (repeatable), same forms
//   --listen-ws [mysql@]ADDR
//                          WebSocket listener (repeatable): binary messages carry raw
//                          PostgreSQL (default) or MySQL wire bytes
//   --upstream URL         postgres://USER:PASS@HOST[:PORT]/DB (postgresql:// too) or
//                          mysql:// / mariadb:// (repeatable): a route for clients logging in
//                          as USER to DB, served as USER/PASS on HOST:PORT/DB, and a client
//                          user USER/PASS. A host starting with '/' (%2Frun%2Fpostgresql) is a
//                          Unix socket directory for PostgreSQL, the socket file for MySQL.
//   --pool N               upstream connections per route (default 10; --pool-size too)
//   --auth METHOD          PostgreSQL client authentication: scram (default), md5,
//                          cleartext, trust
//   --mysql-auth PLUGIN    caching_sha2_password (default) or mysql_native_password
//   --pool-mode MODE       transaction (default) or session
//   --user NAME:PASS       an extra client user (repeatable)
//
// Prints one line per listener (`listening postgres 127.0.0.1:6432`) once they all accept.
// SIGINT/SIGTERM: stop accepting, wait for clients to leave (10 s at most), exit 0; a second
// signal exits at once. A bad flag: a one-line message and exit code 2.

const path = require('node:path');
const { createProxy } = require(path.join(__dirname, '..'));

const USAGE = 'usage: node examples/proxy.js (--listen-pg ADDR | --listen-mysql ADDR | --listen-ws [mysql@]ADDR)... '
  + '--upstream URL... [--pool N] [--auth scram|md5|cleartext|trust] [--mysql-auth PLUGIN] '
  + '[--pool-mode transaction|session] [--user NAME:PASS]...';

function fail(message) {
  process.stderr.write(`proxy.js: ${message}\n${USAGE}\n`);
  process.exit(2);
}

/** `host:port`, `[v6]:port`, `port` or `/unix/path` as listen options. */
function listenAddress(text, flag) {
  if (text.startsWith('unix:')) return { path: text.slice(5) };
  if (text.startsWith('/')) return { path: text };
  if (/^\d+$/.test(text)) return { host: '127.0.0.1', port: port(text, flag) };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) fail(`${flag}: expected host:port, [v6]:port, a port or a socket path, not ${JSON.stringify(text)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: port(m[3], flag) };
}

function port(text, flag) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`${flag}: bad port ${JSON.stringify(text)}`);
  return n;
}

/** An --upstream URL as a route and a client user. */
function upstream(text, poolSize, poolMode) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return fail(`--upstream: not a URL: ${JSON.stringify(text)}`);
  }
  const scheme = url.protocol.slice(0, -1);
  const protocol = { postgres: 'postgres', postgresql: 'postgres', mysql: 'mysql', mariadb: 'mysql' }[scheme];
  if (!protocol) fail(`--upstream: unknown scheme ${scheme}:// (postgres://, postgresql://, mysql://, mariadb://)`);
  if (url.search) fail('--upstream: query parameters are not supported');
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!user) fail(`--upstream ${text}: no user`);
  if (!database) fail(`--upstream ${text}: no database`);
  const host = decodeURIComponent(url.hostname);
  const defaultPort = protocol === 'postgres' ? 5432 : 3306;
  const p = url.port ? Number(url.port) : defaultPort;
  let target;
  if (host.startsWith('/')) target = protocol === 'postgres' ? `${host}/.s.PGSQL.${p}` : host;
  else target = host.includes(':') ? `[${host.replace(/^\[|\]$/g, '')}]:${p}` : `${host || '127.0.0.1'}:${p}`;
  const route = { protocol, database, target, upstreamUser: user, upstreamPassword: password, poolSize };
  if (poolMode) route.poolMode = poolMode;
  return { route, user: { name: user, password } };
}

function parse(argv) {
  const listeners = [];
  const upstreams = [];
  const extraUsers = [];
  const opts = { pool: 10, auth: undefined, mysqlAuth: undefined, poolMode: undefined };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--listen-pg':
        listeners.push({ protocol: 'postgres', ...listenAddress(value(), flag) });
        break;
      case '--listen-mysql':
        listeners.push({ protocol: 'mysql', ...listenAddress(value(), flag) });
        break;
      case '--listen-ws': {
        const v = value();
        const mysql = v.startsWith('mysql@');
        const addr = listenAddress(mysql ? v.slice(6) : v, flag);
        listeners.push({ protocol: mysql ? 'mysql' : 'postgres', websocket: true, ...addr });
        break;
      }
      case '--upstream':
        upstreams.push(value());
        break;
      case '--pool':
      case '--pool-size': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1) fail(`${flag}: a positive integer, not ${argv[i]}`);
        opts.pool = n;
        break;
      }
      case '--auth':
        opts.auth = value();
        break;
      case '--mysql-auth':
        opts.mysqlAuth = value();
        break;
      case '--pool-mode':
        opts.poolMode = value();
        break;
      case '--user': {
        const v = value();
        const colon = v.indexOf(':');
        if (colon <= 0) fail(`--user: expected NAME:PASS, not ${JSON.stringify(v)}`);
        extraUsers.push({ name: v.slice(0, colon), password: v.slice(colon + 1) });
        break;
      }
      case '-h':
      case '--help':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        fail(`unknown flag ${JSON.stringify(flag)}`);
    }
  }
  if (listeners.length === 0) fail('no listener (--listen-pg, --listen-mysql or --listen-ws)');
  if (upstreams.length === 0) fail('no --upstream');
  const routes = [];
  const users = new Map();
  const addUser = (u) => {
    const known = users.get(u.name);
    if (known !== undefined && known !== u.password) fail(`user ${u.name} is given two different passwords`);
    users.set(u.name, u.password);
  };
  for (const text of upstreams) {
    const { route, user } = upstream(text, opts.pool, opts.poolMode);
    routes.push(route);
    addUser(user);
  }
  extraUsers.forEach(addUser);
  const options = {
    routes,
    users: [...users].map(([name, password]) => ({ name, password })),
    closeTimeoutMs: 10_000,
  };
  if (opts.auth) options.auth = opts.auth;
  if (opts.mysqlAuth) options.mysqlAuth = opts.mysqlAuth;
  return { options, listeners };
}

async function main() {
  const { options, listeners } = parse(process.argv.slice(2));
  let proxy;
  try {
    proxy = createProxy(options);
  } catch (e) {
    fail(`${e.code ?? 'error'}: ${e.message}`);
  }
  for (const l of listeners) {
    const addr = await proxy.listen(l);
    const shown = typeof addr === 'string' ? addr : `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    process.stdout.write(`listening ${l.protocol}${l.websocket ? ' websocket' : ''} ${shown}\n`);
  }
  let stopping = false;
  const stop = (signal) => {
    if (stopping) {
      process.stderr.write(`proxy.js: ${signal} again, exiting now\n`);
      process.exit(0);
    }
    stopping = true;
    proxy.close().then(() => process.exit(0), (e) => {
      process.stderr.write(`proxy.js: close failed: ${e.stack}\n`);
      process.exit(1);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e) => {
  process.stderr.write(`proxy.js: ${e.stack ?? e}\n`);
  process.exit(1);
});
