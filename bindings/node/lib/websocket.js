'use strict';
// A WebSocket as a byte stream: each binary message carries raw wire bytes and message
// boundaries mean nothing (as @neondatabase/serverless and Neon's wsproxy use it).

const { Duplex } = require('node:stream');

/** Close code for a text message (RFC 6455 section 7.4.1: data it cannot accept). */
const UNSUPPORTED_DATA = 1003;

/**
 * @param {import('ws').WebSocket} ws
 * @returns {Duplex}
 */
function webSocketStream(ws) {
  const stream = new Duplex({
    read() {
      ws.resume();
    },
    write(chunk, _encoding, callback) {
      ws.send(chunk, { binary: true }, (err) => callback(err ?? null));
    },
    final(callback) {
      ws.close(1000);
      callback();
    },
    destroy(err, callback) {
      if (ws.readyState !== ws.CLOSED) ws.terminate();
      callback(err);
    },
  });
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      ws.close(UNSUPPORTED_DATA, 'binary messages only');
      stream.destroy();
      return;
    }
    if (!stream.push(data)) ws.pause();
  });
  ws.on('close', () => {
    stream.push(null);
    stream.destroy();
  });
  ws.on('error', () => stream.destroy());
  return stream;
}

module.exports = { webSocketStream };
