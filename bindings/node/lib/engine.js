'use strict';
// Engine for JavaScript hosts: the native class, with every error carrying a muxql result
// code. The native side throws its own codes (MUXQL_*); a value of the wrong type is refused
// by the N-API conversion before muxql sees it, and gets MUXQL_INVALID_ARGUMENT here
// (MUXQL_INVALID_CONFIG for the options), its N-API status kept as `napiCode`.

const native = require('../native.js');

function withCode(err, code) {
  if (err instanceof Error && !String(err.code).startsWith('MUXQL_')) {
    err.napiCode = err.code;
    err.code = code;
  }
  return err;
}

/** N-API reads an optional object's fields off any value: refuse what is not an object. */
function checkObject(value) {
  if (value !== undefined && value !== null && typeof value !== 'object') {
    throw Object.assign(new TypeError(`muxql: listener settings must be an object, not ${typeof value}`), {
      code: 'MUXQL_INVALID_ARGUMENT',
    });
  }
}

function call(f) {
  try {
    return f();
  } catch (err) {
    throw withCode(err, 'MUXQL_INVALID_ARGUMENT');
  }
}

/** See native.d.ts for each method. */
class Engine {
  #engine;

  constructor(options) {
    try {
      this.#engine = new native.Engine(options);
    } catch (err) {
      throw withCode(err, 'MUXQL_INVALID_CONFIG');
    }
  }

  get closed() {
    return this.#engine.closed;
  }

  close() {
    this.#engine.close();
  }

  clientOpen(protocol, nowMs, listener) {
    return call(() => {
      checkObject(listener);
      return this.#engine.clientOpen(protocol, nowMs, listener);
    });
  }

  checkListener(protocol, listener) {
    return call(() => {
      checkObject(listener);
      return this.#engine.checkListener(protocol, listener ?? {});
    });
  }

  clientData(id, data, nowMs) {
    return call(() => this.#engine.clientData(id, data, nowMs));
  }

  upstreamData(id, data, nowMs) {
    return call(() => this.#engine.upstreamData(id, data, nowMs));
  }

  clientClosed(id, nowMs) {
    return call(() => this.#engine.clientClosed(id, nowMs));
  }

  upstreamConnected(id, nowMs) {
    return call(() => this.#engine.upstreamConnected(id, nowMs));
  }

  upstreamClosed(id, nowMs) {
    return call(() => this.#engine.upstreamClosed(id, nowMs));
  }

  cancelDone(upstream, nowMs) {
    return call(() => this.#engine.cancelDone(upstream, nowMs));
  }

  handleTimeout(nowMs) {
    return call(() => this.#engine.handleTimeout(nowMs));
  }

  nextDeadline() {
    return call(() => this.#engine.nextDeadline());
  }

  sendBlocked(peer, id, nowMs) {
    return call(() => this.#engine.sendBlocked(peer, id, nowMs));
  }

  sendDrained(peer, id, nowMs) {
    return call(() => this.#engine.sendDrained(peer, id, nowMs));
  }

  poll() {
    return call(() => this.#engine.poll());
  }

  routeTarget(route) {
    return call(() => this.#engine.routeTarget(route));
  }

  stats() {
    return call(() => this.#engine.stats());
  }

  isIdle() {
    return call(() => this.#engine.isIdle());
  }
}

module.exports = { Engine, withCode };
