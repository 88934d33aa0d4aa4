'use strict';
// muxql for Node.js: the Engine API (native), a Node-hosted proxy, and in-process pooling.

const { ActionKind, PeerKind } = require('../native.js');
const { Engine } = require('./engine.js');
const { createProxy } = require('./proxy.js');
const { createPool } = require('./pool.js');

module.exports = { Engine, ActionKind, PeerKind, createProxy, createPool };
