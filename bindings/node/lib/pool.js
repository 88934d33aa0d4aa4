'use strict';
// createPool: logical sessions inside this process as Duplex streams that drivers use as
// their socket (node-postgres's and mysql2's `stream` option), multiplexed over a few real
// database connections with no extra network hop.

const { Duplex } = require('node:stream');
const { Host } = require('./host.js');
const { checkOptions, checkProtocol } = require('./proxy.js');

/** A socket-like Duplex for one logical session; see index.d.ts. */
class MuxqlStream extends Duplex {
  /**
   * @param {Host} host
   * @param {'postgres' | 'mysql'} protocol
   */
  constructor(host, protocol) {
    super({ allowHalfOpen: false });
    this.host = host;
    this.id = 0;
    /** The Engine asked the host to stop reading from this session: writes wait. */
    this.paused = false;
    /** The callback of a write held while paused. */
    this.held = null;
    this.open = true;
    this.id = host.openClient(this.endpoint(), protocol);
  }

  /** How the host reaches this session. */
  endpoint() {
    return {
      send: (data) => this.push(data),
      finish: () => {
        this.open = false;
        this.push(null);
      },
      pauseReading: () => {
        this.paused = true;
      },
      resumeReading: () => {
        this.paused = false;
        const callback = this.held;
        this.held = null;
        if (callback) callback();
      },
      destroy: () => {
        this.open = false;
        this.destroy();
      },
    };
  }

  _write(chunk, _encoding, callback) {
    if (!this.open) {
      callback();
      return;
    }
    this.host.clientData(this.id, chunk, true);
    if (this.paused) this.held = callback;
    else callback();
  }

  _read() {
    this.host.clientDrained(this.id, true);
  }

  _final(callback) {
    this.leave();
    callback();
  }

  _destroy(err, callback) {
    this.leave();
    callback(err);
  }

  leave() {
    if (!this.open) return;
    this.open = false;
    this.host.clientGone(this.id, true);
    this.push(null);
  }

  connect() {
    process.nextTick(() => this.emit('connect'));
    return this;
  }

  setNoDelay() {
    return this;
  }

  setKeepAlive() {
    return this;
  }

  setTimeout() {
    return this;
  }

  ref() {
    return this;
  }

  unref() {
    return this;
  }
}

/**
 * @param {import('../native').EngineOptions} options
 * @returns {import('./index').InProcessPool}
 */
function createPool(options) {
  checkOptions(options);
  const host = new Host(options, { unref: true });
  return {
    stream(protocol = 'postgres') {
      checkProtocol(protocol);
      if (host.engine.closed) {
        throw Object.assign(new Error('muxql: the pool is closed'), { code: 'MUXQL_WRONG_STATE' });
      }
      return new MuxqlStream(host, protocol);
    },
    async close() {
      if (!host.engine.closed) host.destroy();
    },
    stats: () => host.engine.stats(),
  };
}

module.exports = { createPool, MuxqlStream };
