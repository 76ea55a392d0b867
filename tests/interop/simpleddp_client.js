'use strict';
// Interop check of the npm client `simpleddp` against aioserversync's DDPServer.
// Usage: node simpleddp_client.js <ddp url>. Prints one JSON line with what it observed.
const ws = require('isomorphic-ws');
const SimpleDDP = require('simpleddp').default || require('simpleddp');

const url = process.argv[2];
const out = { client: 'simpleddp' };
const watchdog = setTimeout(() => finish(new Error('timed out')), 20000);

function finish(err) {
  clearTimeout(watchdog);
  if (err) out.error = String(err && err.stack ? err.stack : err);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(err ? 1 : 0);
}

(async () => {
  const server = new SimpleDDP({ endpoint: url, SocketConstructor: ws, autoReconnect: false });
  await server.connect();
  out.connected = server.connected === true;

  const sub = server.subscribe('tasks', 'L1');
  await sub.ready();
  const docs = server.collection('tasks').fetch();
  // simpleddp keeps the document id as `id` (not `_id`).
  out.docs = docs.map((d) => ({
    id: d.id,
    text: d.text,
    list: d.list,
    atIsDate: d.at instanceof Date,
    atMs: d.at instanceof Date ? d.at.getTime() : null,
  }));

  const result = await server.call('tasks.add', 'from node', new Date(86400000));
  out.result = {
    text: result.text,
    whenIsDate: result.when instanceof Date,
    whenMs: result.when instanceof Date ? result.when.getTime() : null,
    session: result.session,
  };

  await server.call('tasks.rename', 't1', 'renamed');
  out.afterRename = server.collection('tasks').fetch().find((d) => d.id === 't1').text;

  try {
    await server.call('no.such.method');
    out.unknownMethod = 'no error';
  } catch (e) {
    out.unknownMethod = { error: e.error, reason: e.reason };
  }

  await sub.stop(); // resolves on nosub (remove() does not wait)
  out.afterUnsub = server.collection('tasks').fetch().length;
  await server.disconnect();
  finish();
})().catch(finish);
