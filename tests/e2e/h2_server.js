// h2_server.js: a bespoke HTTPS server for tests/e2e/test_http2.py (Node's built-in http2,
// no npm package): HTTP/2 via ALPN with HTTP/1.1 fallback (allowHTTP1), and the misbehaviour
// nginx cannot be made to show: stream resets before / after the response head, REFUSED_STREAM,
// GOAWAY below a stream's id. Every request is recorded (path, protocol, connection number);
// GET /__stats returns them as JSON, with the most streams each connection had open at once.
// /slow/... answers after 300 ms. HTTP/1.1 Upgrade requests get a 101 and an echo tunnel.
// Usage: node h2_server.js --cert F --key F [--max-streams N] [--port P] [--h1-only 1] ; prints
// "ready PORT" once listening on 127.0.0.1 (port P, else any). --max-streams:
// SETTINGS_MAX_CONCURRENT_STREAMS (streams beyond it are refused). --h1-only: an HTTPS server
// without ALPN, i.e. one that does not speak HTTP/2 (the same requests, recorded the same way).
'use strict';
const fs = require('fs');
const http2 = require('http2');
const https = require('https');
const crypto = require('crypto');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

const seen = [];          // {path, proto, conn}
const counts = {};        // path (without query) -> requests seen
const peak = {};          // connection number -> most streams open at once
let nextConn = 0;
const C = http2.constants;

const tlsOpts = {cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key)};
const server = args['h1-only'] ? https.createServer(tlsOpts) : http2.createSecureServer({
  ...tlsOpts, allowHTTP1: true,
  settings: args['max-streams'] ? {maxConcurrentStreams: parseInt(args['max-streams'], 10)} : {},
});

server.on('connection', (sock) => { sock.appgwConn = ++nextConn; });
server.on('secureConnection', (sock) => { if (!sock.appgwConn) sock.appgwConn = ++nextConn; });

function record(path, proto, sock) {
  const p = path.split('?')[0];
  counts[p] = (counts[p] || 0) + 1;
  seen.push({path, proto, conn: sock ? sock.appgwConn || 0 : 0});
  return counts[p];
}

server.on('stream', (stream, headers) => {
  const path = headers[':path'];
  const sock = stream.session.socket;
  const n = record(path, 'HTTP/2.0', sock);
  const p = path.split('?')[0];
  const conn = sock ? sock.appgwConn || 0 : 0;
  const sess = stream.session;
  sess.appgwOpen = (sess.appgwOpen || 0) + 1;
  peak[conn] = Math.max(peak[conn] || 0, sess.appgwOpen);
  stream.on('close', () => { sess.appgwOpen--; });
  if (p === '/__stats') {
    stream.respond({':status': 200, 'content-type': 'application/json'});
    stream.end(JSON.stringify({seen, counts, peak}));
  } else if (p === '/rst-before') {
    stream.close(C.NGHTTP2_INTERNAL_ERROR);
  } else if (p === '/rst-after') {
    stream.respond({':status': 200, 'content-type': 'application/octet-stream'});
    // close(code) would end the stream cleanly once its data is out: destroy resets it
    stream.write(Buffer.alloc(64 * 1024, 0x61), () => setTimeout(() => stream.destroy(new Error('cut')), 50));
  } else if (p === '/refuse-always' || (p === '/refuse-once' && n === 1)) {
    stream.close(C.NGHTTP2_REFUSED_STREAM);
  } else if (p === '/goaway-once' && n === 1) {
    // nothing at or above this stream will be processed
    stream.session.goaway(C.NGHTTP2_NO_ERROR, stream.id - 2);
  } else if (p.startsWith('/slow/')) {
    setTimeout(() => {
      if (stream.destroyed) return;
      stream.respond({':status': 200, 'content-type': 'text/plain'});
      stream.end('slow ' + p + '\n');
    }, 300);
  } else {
    let len = 0;
    stream.on('data', (d) => { len += d.length; });
    stream.on('end', () => {
      if (stream.destroyed) return;
      stream.respond({':status': 200, 'content-type': 'text/plain', 'x-node': 'yes'});
      stream.end('node ' + p + ' n=' + n + ' body=' + len + '\n');
    });
  }
});

// HTTP/1.1 (allowHTTP1): ordinary requests, and upgrades answered with an echo tunnel.
server.on('request', (req, res) => {
  if (req.httpVersion === '2.0') return; // handled by 'stream'
  if (req.url === '/__stats') { // the test's own look-up: not recorded
    res.writeHead(200, {'content-type': 'application/json'});
    res.end(JSON.stringify({seen, counts, peak}));
    return;
  }
  const n = record(req.url, 'HTTP/' + req.httpVersion, req.socket);
  res.writeHead(200, {'content-type': 'text/plain'});
  res.end('node http1 ' + req.url + ' n=' + n + '\n');
});

server.on('upgrade', (req, sock, head) => {
  record(req.url, 'HTTP/' + req.httpVersion + ' upgrade', sock);
  const accept = crypto.createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
             'Sec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  if (head && head.length) sock.write(head);
  sock.pipe(sock); // echo every byte back
});

server.on('sessionError', () => {});
server.listen(parseInt(args.port || '0', 10), '127.0.0.1', () => { process.stdout.write('ready ' + server.address().port + '\n'); });
