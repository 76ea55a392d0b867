'use strict';
// Interop check of the npm client `ddp.js` against aioserversync's DDPServer. ddp.js has no
// document cache and does not decode EJSON, so this keeps its own Map of raw documents.
// Usage: node ddpjs_client.js <ddp url>. Prints one JSON line with what it observed.
const WebSocket = require('ws');
const DDP = require('ddp.js').default || require('ddp.js');

const url = process.argv[2];
const out = { client: 'ddp.js', results: {}, updated: [] };
const docs = new Map();
const watchdog = setTimeout(() => finish(new Error('timed out')), 20000);

function finish(err) {
  clearTimeout(watchdog);
  if (err) out.error = String(err && err.stack ? err.stack : err);
  out.docs = [...docs.entries()].map(([id, fields]) => Object.assign({ _id: id }, fields));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(err ? 1 : 0);
}

const ddp = new DDP({ endpoint: url, SocketConstructor: WebSocket, autoReconnect: false });
let subId = null;
let addId = null;
let missingId = null;

// ddp.js's event emitter (wolfy87-eventemitter) drops a listener that returns true, so every
// listener here has a block body and returns nothing.
ddp.on('added', (m) => {
  docs.set(m.id, Object.assign({}, m.fields));
});
ddp.on('changed', (m) => {
  const doc = docs.get(m.id);
  if (m.fields) Object.assign(doc, m.fields);
  if (m.cleared) for (const k of m.cleared) delete doc[k];
});
ddp.on('removed', (m) => {
  docs.delete(m.id);
});
ddp.on('updated', (m) => {
  out.updated.push(...m.methods);
});
ddp.on('connected', () => {
  out.connected = true;
  subId = ddp.sub('tasks', ['L2']);
});
ddp.on('ready', (m) => {
  if (!m.subs.includes(subId)) return;
  out.readyDocs = docs.size;
  addId = ddp.method('tasks.add', ['from ddp.js', { $date: 0 }]);
});
ddp.on('result', (m) => {
  out.results[m.id === addId ? 'add' : 'missing'] = m.error ? { error: m.error } : { result: m.result };
  if (m.id === addId) {
    missingId = ddp.method('no.such.method', []);
  } else if (m.id === missingId) {
    ddp.unsub(subId);
  }
});
ddp.on('nosub', (m) => {
  if (m.id !== subId) return;
  out.nosub = m;
  out.ids = { add: addId, missing: missingId };
  finish();
});
