'use strict';
// TLS from the Node host to the servers (route option upstreamTls): users that scripts/dbs
// admits only over TLS get in through createProxy and createPool, and a certificate from the
// wrong CA fails the login with an error, not a hang.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');
const mysql = require('mysql2/promise');
const { createProxy, createPool } = require('..');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run eval "$(scripts/dbs env DIR)" first`);
  return v;
}

function pgRoute(user, tls) {
  return {
    protocol: 'postgres',
    database: env('MUXQL_PG_DB'),
    target: `127.0.0.1:${env('MUXQL_PG_PORT')}`,
    upstreamUser: user,
    upstreamPassword: env('MUXQL_PG_PASSWORD'),
    poolSize: 2,
    ...tls,
  };
}

function options(routes, users) {
  return {
    routes,
    users: users.map((name) => ({ name, password: env('MUXQL_PG_PASSWORD') })),
    auth: 'scram',
    waitTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    closeTimeoutMs: 2000,
  };
}

async function pgSsl(port, user) {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user,
    password: env('MUXQL_PG_PASSWORD'),
    database: env('MUXQL_PG_DB'),
  });
  await client.connect();
  try {
    const r = await client.query('SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return r.rows[0];
  } finally {
    await client.end();
  }
}

test('PostgreSQL: verify-full to a TLS-only user, and a client certificate', async () => {
  const user = env('MUXQL_PG_TLS_USER');
  const certUser = env('MUXQL_PG_TLS_CERT_USER');
  const proxy = createProxy(
    options(
      [
        { ...pgRoute(user, { upstreamTls: 'verify-full', upstreamTlsCa: env('MUXQL_TLS_CA') }), clientUser: user },
        {
          ...pgRoute(certUser, {
            upstreamTls: 'verify-ca',
            upstreamTlsCa: env('MUXQL_TLS_CA'),
            upstreamTlsCert: env('MUXQL_TLS_CLIENT_CERT'),
            upstreamTlsKey: env('MUXQL_TLS_CLIENT_KEY'),
          }),
          clientUser: certUser,
        },
      ],
      [user, certUser],
    ),
  );
  try {
    const { port } = await proxy.listen({ protocol: 'postgres' });
    const plain = await pgSsl(port, user);
    assert.equal(plain.ssl, true);
    const withCert = await pgSsl(port, certUser);
    assert.equal(withCert.ssl, true);
    assert.equal(withCert.client_dn, `/CN=${certUser}`);
  } finally {
    await proxy.close();
  }
});

test('PostgreSQL: a certificate from another CA fails the login with 08006', async () => {
  const user = env('MUXQL_PG_TLS_USER');
  const proxy = createProxy(
    options([pgRoute(user, { upstreamTls: 'verify-full', upstreamTlsCa: env('MUXQL_TLS_WRONG_CA') })], [user]),
  );
  try {
    const { port } = await proxy.listen({ protocol: 'postgres' });
    const started = Date.now();
    await assert.rejects(pgSsl(port, user), (err) => err.code === '08006');
    assert.ok(Date.now() - started < 15000);
  } finally {
    await proxy.close();
  }
});

test('PostgreSQL: in-process sessions reach a TLS-only user', async () => {
  const user = env('MUXQL_PG_TLS_USER');
  const pool = createPool(
    options([pgRoute(user, { upstreamTls: 'verify-full', upstreamTlsCa: env('MUXQL_TLS_CA') })], [user]),
  );
  try {
    const clients = Array.from(
      { length: 20 },
      () =>
        new pg.Client({
          stream: () => pool.stream(),
          user,
          password: env('MUXQL_PG_PASSWORD'),
          database: env('MUXQL_PG_DB'),
        }),
    );
    await Promise.all(clients.map((c) => c.connect()));
    const rows = await Promise.all(clients.map((c) => c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')));
    assert.ok(rows.every((r) => r.rows[0].ssl === true));
    await Promise.all(clients.map((c) => c.end()));
    assert.ok(pool.stats().routes[0].peakUpstreams <= 2);
  } finally {
    await pool.close();
  }
});

test('MariaDB: verify-full with a client certificate', async () => {
  const user = env('MUXQL_MY_TLS_CERT_USER');
  const proxy = createProxy({
    routes: [
      {
        protocol: 'mysql',
        database: env('MUXQL_MY_DB'),
        target: `127.0.0.1:${env('MUXQL_MY_PORT')}`,
        upstreamUser: user,
        upstreamPassword: env('MUXQL_MY_PASSWORD'),
        poolSize: 2,
        upstreamTls: 'verify-full',
        upstreamTlsCa: env('MUXQL_TLS_CA'),
        upstreamTlsCert: env('MUXQL_TLS_CLIENT_CERT'),
        upstreamTlsKey: env('MUXQL_TLS_CLIENT_KEY'),
      },
    ],
    users: [{ name: user, password: env('MUXQL_MY_PASSWORD') }],
    waitTimeoutMs: 5000,
    closeTimeoutMs: 2000,
  });
  try {
    const { port } = await proxy.listen({ protocol: 'mysql' });
    const conn = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user,
      password: env('MUXQL_MY_PASSWORD'),
      database: env('MUXQL_MY_DB'),
    });
    const [rows] = await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    assert.notEqual(rows[0].Value, '');
    await conn.end();
  } finally {
    await proxy.close();
  }
});
