// A SPDY/3.1 streaming client cricket did not write: Node's http upgrade and npm's
// spdy-transport (the SPDY stack of node-spdy), speaking Kubernetes remotecommand and
// port-forward on a URL from Exec, Attach or PortForward. Run by tests/clients/streaming_session.py:
//
//   node spdy_client.js exec URL STDIN          stdin "" means none; prints one JSON line
//   node spdy_client.js portforward URL PORT REQUEST
//
// Output: {"protocol", "stdout", "stderr", "status"} or {"data", "error"}; exit 1 with
// {"failure": ...} when the session could not be had.

'use strict';
const http = require('http');
const transport = require('spdy-transport');

function done(obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n');
  process.exit(code);
}

const [mode, url, ...rest] = process.argv.slice(2);
const u = new URL(url);
const protocols = mode === 'portforward'
  ? ['portforward.k8s.io']
  : ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];

setTimeout(() => done({ failure: 'no end within 30 s' }, 1), 30000).unref();

const req = http.request({
  host: u.hostname,
  port: u.port,
  method: 'POST',
  path: u.pathname,
  headers: {
    Connection: 'Upgrade',
    Upgrade: 'SPDY/3.1',
    'X-Stream-Protocol-Version': protocols,
  },
});
req.on('response', (res) => done({ failure: `no upgrade: HTTP ${res.statusCode}` }, 1));
req.on('error', (e) => done({ failure: `request: ${e.message}` }, 1));
req.on('upgrade', (res, socket, head) => {
  if (head && head.length) socket.unshift(head);
  const chosen = res.headers['x-stream-protocol-version'] || 'channel.k8s.io';
  const conn = transport.connection.create(socket, {
    protocol: 'spdy',
    isServer: false,
    headerCompression: true,
  });
  conn.start(3.1);
  conn.on('error', (e) => done({ failure: `connection: ${e.message}` }, 1));
  // Kubernetes servers answer SYN_STREAM with a reply that need not carry :status.
  const open = (headers) => {
    const s = conn.request({ method: 'POST', path: '/', headers });
    s._spdyState.needResponse = false;
    return s;
  };
  const collect = (s) => new Promise((resolve) => {
    const parts = [];
    let over = false;
    const end = () => { if (!over) { over = true; resolve(Buffer.concat(parts)); } };
    s.on('data', (d) => parts.push(d));
    s.on('end', end);
    s.on('close', end);
    s.on('error', end);
  });
  if (mode === 'exec') {
    const stdin = rest[0] || '';
    const error = collect(open({ streamtype: 'error' }));
    let input = null;
    if (stdin !== '') input = open({ streamtype: 'stdin' });
    const stdout = collect(open({ streamtype: 'stdout' }));
    const stderr = collect(open({ streamtype: 'stderr' }));
    // A write sends its stream's SYN_STREAM at once, ahead of the others queued for the next
    // tick; SPDY servers refuse a stream id lower than one already seen (Go's spdystream
    // resets it), so stdin waits until every SYN_STREAM is out, in order.
    if (input) setImmediate(() => { input.write(stdin); input.end(); });
    Promise.all([stdout, stderr]).then(async ([out, err]) => {
      const status = (await error).toString();
      done({ protocol: chosen, stdout: out.toString(), stderr: err.toString(), status }, 0);
    });
  } else if (mode === 'portforward') {
    const [port, request] = rest;
    const errStream = open({ streamtype: 'error', port, requestid: '0' });
    errStream.end();
    const error = collect(errStream);
    const data = open({ streamtype: 'data', port, requestid: '0' });
    const answer = collect(data);
    setImmediate(() => data.write(request));
    Promise.all([answer, error]).then(([d, e]) => done({ data: d.toString(), error: e.toString() }, 0));
  } else {
    done({ failure: `unknown mode ${mode}` }, 1);
  }
});
req.end();
