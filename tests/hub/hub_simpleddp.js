'use strict';
// The npm client `simpleddp` against the hub: log in with a resume token, subscribe to the
// plain publication, write through the stock mutator methods.
// Usage: node hub_simpleddp.js <ddp url> <token>. Prints one JSON line with what it observed.
const ws = require('isomorphic-ws');
const SimpleDDP = require('simpleddp').default || require('simpleddp');

const [url, token] = process.argv.slice(2);
const out = { client: 'simpleddp' };
const watchdog = setTimeout(() => finish(new Error('timed out')), 20000);

function finish(err) {
  clearTimeout(watchdog);
  if (err) out.error = String(err && err.stack ? err.stack : err);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(err ? 1 : 0);
}

const view = (d) => ({ id: d.id, name: d.name, n: d.n, atMs: d.at instanceof Date ? d.at.getTime() : null });

(async () => {
  const server = new SimpleDDP({ endpoint: url, SocketConstructor: ws, autoReconnect: false });
  await server.connect();
  const login = await server.call('login', { resume: token });
  out.login = { id: login.id, type: login.type, expiresIsDate: login.tokenExpires instanceof Date };
  const sub = server.subscribe('items');
  await sub.ready();
  const items = server.collection('items');
  out.initial = items.fetch().map(view);
  out.inserted = await server.call('/items/insert', { _id: 'js1', name: 'from node', at: new Date(86400000) });
  out.afterInsert = items.fetch().map(view);
  out.updated = await server.call('/items/update', { _id: 'js1' }, { $inc: { n: 5 } }, {});
  out.afterUpdate = items.fetch().find((d) => d.id === 'js1').n;
  try {
    await server.call('/items/remove', { name: 'from node' });
    out.nonIdRemove = 'no error';
  } catch (e) {
    out.nonIdRemove = { error: e.error, reason: e.reason };
  }
  out.removed = await server.call('/items/remove', { _id: 'js1' });
  out.afterRemove = items.fetch().map((d) => d.id);
  await sub.stop();
  await server.disconnect();
  finish();
})().catch(finish);
