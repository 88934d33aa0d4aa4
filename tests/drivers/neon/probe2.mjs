import { Client, neonConfig } from '@neondatabase/serverless';
import WebSocket, { WebSocketServer } from 'ws';
import net from 'node:net';
class LogWS extends WebSocket {
  send(d, ...r) { const b = Buffer.from(d); console.log('C>S', b.length, JSON.stringify(b.toString('latin1'))); return super.send(d, ...r); }
  constructor(...a) { super(...a); this.on('message', (m) => console.log('S>C', m.length, JSON.stringify(Buffer.from(m).toString('latin1')))); }
}
neonConfig.webSocketConstructor = LogWS;
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineTLS = false;
let port = process.env.PORT;
if (process.env.DIRECT) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.on('listening', r));
  wss.on('connection', (s) => {
    const t = net.connect(Number(process.env.PGPORT), '127.0.0.1');
    const q = []; let up = false;
    t.on('connect', () => { up = true; q.forEach((b) => t.write(b)); });
    s.on('message', (m) => (up ? t.write(m) : q.push(m)));
    t.on('data', (d) => s.send(d));
    t.on('close', () => s.close()); s.on('close', () => t.destroy());
  });
  port = wss.address().port;
  wss.unref?.();
}
neonConfig.wsProxy = () => '127.0.0.1:' + port + '/v2';
if (process.env.NOPIPE) neonConfig.pipelineConnect = false;
const c = new Client({ host: '127.0.0.1', user: process.env.U || 'muxql_scram', password: process.env.P || 'muxql_pw', database: 'muxql' });
c.on('error', (e) => console.log('client error event:', e.message));
const t0 = Date.now();
c.connect().then(() => console.log('connect resolved', Date.now() - t0), (e) => console.log('connect rejected', e.message));
try {
  console.log((await c.query('SELECT $1::int * 2 AS v', [21])).rows);
} catch (e) { console.log('query ERR after', Date.now() - t0, 'ms', e.code, e.severity, e.message); }
await c.end().catch(() => {});
process.exit(0);
