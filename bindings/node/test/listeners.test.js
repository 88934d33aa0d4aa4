'use strict';
// Listeners with their own login settings: one proxy whose TCP listener asks for SCRAM while
// its WebSocket listener takes the cleartext password of a pipelined login
// (@neondatabase/serverless with pipelineConnect 'password').

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const pg = require('pg');
const WebSocket = require('ws');
const neon = require('@neondatabase/serverless');
const { createProxy } = require('..');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run eval "$(scripts/dbs env DIR)" first`);
  return v;
}

/** The first authentication request code a PostgreSQL listener sends (10: SASL, 3: cleartext). */
function firstAuthRequest(port) {
  return new Promise((resolve, reject) => {
    const params = Buffer.from(`user\0${env('MUXQL_PG_SCRAM_USER')}\0database\0${env('MUXQL_PG_DB')}\0\0`);
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4);
    const socket = net.connect(port, '127.0.0.1', () => socket.write(Buffer.concat([head, params])));
    let got = Buffer.alloc(0);
    socket.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 9) {
        socket.destroy();
        resolve(got[0] === 0x52 ? got.readInt32BE(5) : -1);
      }
    });
    socket.on('error', reject);
  });
}

test('TCP asks for SCRAM while the WebSocket listener takes a pipelined cleartext login', { timeout: 30_000 }, async () => {
  const user = env('MUXQL_PG_SCRAM_USER');
  const password = env('MUXQL_PG_PASSWORD');
  const proxy = createProxy({
    routes: [
      {
        protocol: 'postgres',
        database: env('MUXQL_PG_DB'),
        target: `127.0.0.1:${env('MUXQL_PG_PORT')}`,
        upstreamUser: user,
        upstreamPassword: password,
        poolSize: 2,
      },
    ],
    users: [{ name: user, password }],
    auth: 'scram',
    closeTimeoutMs: 2000,
  });
  try {
    const tcp = await proxy.listen({ protocol: 'postgres' });
    const ws = await proxy.listen({ protocol: 'postgres', websocket: true, auth: 'cleartext' });
    assert.equal(await firstAuthRequest(tcp.port), 10);

    const client = new pg.Client({ host: '127.0.0.1', port: tcp.port, user, password, database: env('MUXQL_PG_DB') });
    await client.connect();
    assert.equal((await client.query('SELECT 40 + 2 AS v')).rows[0].v, 42);
    await client.end();

    neon.neonConfig.webSocketConstructor = WebSocket;
    const c = new neon.Client({ host: '127.0.0.1', user, password, database: env('MUXQL_PG_DB') });
    Object.assign(c.neonConfig, {
      wsProxy: () => `127.0.0.1:${ws.port}/v2`,
      useSecureWebSocket: false,
      pipelineTLS: false,
      forceDisablePgSSL: true,
      pipelineConnect: 'password',
    });
    await c.connect();
    assert.equal((await c.query('SELECT 40 + 2 AS v')).rows[0].v, 42);
    await c.end();
  } finally {
    await proxy.close();
  }
});

test('a listener that requires TLS it does not terminate is refused', async () => {
  const proxy = createProxy({
    routes: [{ protocol: 'postgres', database: 'd', target: '127.0.0.1:1', upstreamUser: 'u' }],
    closeTimeoutMs: 100,
  });
  try {
    await assert.rejects(proxy.listen({ protocol: 'postgres', clientTls: 'require' }), { code: 'MUXQL_INVALID_ARGUMENT' });
  } finally {
    await proxy.close();
  }
});
