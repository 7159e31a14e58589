#!/usr/bin/env node
'use strict';
// A fake kube-apiserver for the appgw end-to-end tests (node, stdlib only). It serves what
// the gateway uses, the way kube-apiserver v1.26+ serves it:
//
//   Applications (cluster-scoped)  /apis/applicationconnector.kyma-project.io/v1alpha1/applications[/NAME]
//   Secrets                        /api/v1/namespaces/NS/secrets[/NAME]   (and /api/v1/secrets)
//   /version /healthz /livez /readyz /api /apis /api/v1 /apis/applicationconnector.kyma-project.io[/v1alpha1]
//
//   node server.js --cert PEM --key PEM [--client-ca PEM] [--tokens t1,t2] [--https-port N]
//                  [--http-port N] [--admin-port N] [--start-rv N] [--http1-only]
//
// Listeners (127.0.0.1 only; port 0 = the OS picks):
//   https  TLS, HTTP/2 offered via ALPN and HTTP/1.1 accepted (--http1-only: ALPN offers
//          http/1.1 only, as behind an HTTP/1 load balancer). A client certificate is asked
//          for (optional at the TLS level) and verified against --client-ca. A request is
//          authenticated by `Authorization: Bearer T` with T in the accepted token list, or by a
//          verified client certificate (user = its CN); else 401 with a Status.
//   http   plain HTTP that behaves like `kubectl proxy` in front of the same API: no
//          authentication needed (user "kubectl-proxy"). Closed during an outage as well.
//   admin  plain HTTP for the tests (below); never closed.
// On success one line goes to stdout:  ready {"https":P,"http":R,"admin":Q,"rv":"N"}
//
// Semantics (as kube-apiserver + etcd):
//  - one global resourceVersion counter; every write (create, update, delete) takes the next
//    value; objects carry metadata.resourceVersion, uid, creationTimestamp (Applications also
//    generation). Secret stringData is merged into data (base64) and dropped; type defaults to
//    Opaque. Application spec.encodeUrl gets the CRD default true when absent (config
//    applyCrdDefaults).
//  - list: {"kind":"ApplicationList"|"SecretList","apiVersion",..,"metadata":{"resourceVersion",
//    "continue","remainingItemCount"},"items":[..]}; Secret items carry no kind/apiVersion (typed
//    lists), Application items do (CRDs are unstructured). `limit` paginates only when
//    resourceVersion is absent or "" (a consistent snapshot per continue token, opaque base64
//    like the real one); resourceVersion=0 (or any other value) ignores limit. An expired
//    continue token (older than the compaction point) answers 410 Expired.
//    fieldSelector=metadata.name=X / metadata.namespace=X are honoured; labelSelector ignored.
//  - watch (watch=1|true): HTTP 200, Content-Type application/json, then one JSON event per line
//    {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{..}}, chunked (HTTP/1.1) or DATA
//    frames (HTTP/2). resourceVersion=N: every change after N (no initial events; the
//    sendInitialEvents parameter is ignored, as in 1.26). Absent/""/"0": synthetic ADDED events for
//    the current objects first. N older than the compaction point: 410 — either an HTTP 410
//    Status (config goneStyle "http") or, as the watch cache does, 200 + an ERROR event whose
//    object is a Status with code 410, then the end of the stream (goneStyle "event", default).
//    Bookmarks (allowWatchBookmarks=true) only every bookmarkSeconds (default 60) and 2 s before
//    timeoutSeconds, and only when the resource changed since the watcher's last event (so never
//    rely on them). The stream ends after timeoutSeconds, or after a random 30-60 min without.
//    A watch on a named object (.../NAME?watch=1) is one with fieldSelector=metadata.name=NAME.
//  - get by name; 404 NotFound Status when missing.
//  - rbac "get-only" (the original ClusterRole): list and watch answer 403 Forbidden, get works.
//  - outage: the https and http listeners are closed and every open connection destroyed, so
//    connects are refused (not 503); outage end listens again on the same ports. By default
//    the restart also compacts (a restarted apiserver's watch cache starts at the current
//    revision, so a watch from an older resourceVersion gets 410).
//
// Admin API (JSON in and out; errors 400 {"error": ".."}):
//   GET  /health                 {"ok":true}
//   GET  /state                  rv, compactedRv, config, tokens, outage, object counts, open watches
//   GET  /watches                open watches: [{id,resource,namespace,fromRv,lastRv,proto,auth,started}]
//   GET  /objects                {"applications":[..],"secrets":[..]} as stored
//   GET  /requests?since=SEQ     {"next":SEQ,"requests":[{seq,t,method,path,query,verb,resource,
//                                namespace,name,auth,user,token,proto,alpn,status,note[,listRv,items,
//                                more]}]} (listRv/items/more: a list's metadata.resourceVersion, its
//                                item count, whether a continue token was sent) (auth: token |
//                                cert | proxy | none | bad-token | bad-cert; verb: list | watch | get |
//                                other; note: gone-http | gone-event | continue-expired | forbidden |
//                                unauthorized | not-found | ...; status is the HTTP status sent)
//   POST /requests/reset         forget the request log (seq keeps counting)
//   POST /apply      {"object":{..}} or {"objects":[..]}   create or replace (ADDED/MODIFIED)
//   POST /delete     {"kind":"Application"|"Secret","name":..,"namespace":..} or {"objects":[..]}
//   POST /compact                compaction point := current rv (older watches/continues → 410)
//   POST /closeWatches {"resource"?}   end open watch streams cleanly (like timeoutSeconds)
//   POST /expireWatches {"resource"?}  send ERROR(410) into open watch streams, then end them
//   POST /inject {"what":"garbage"|"oversized"|"raw","resource"?,"data"?,"bytes"?}
//                                garbage: a line that is not JSON; oversized: one syntactically
//                                valid MODIFIED event of `bytes` bytes (default 64 MiB) streamed
//                                with back-pressure; raw: `data` as is. Into every open watch
//                                (of `resource` if given); the stream stays open.
//   POST /config {..}            merge: rbac ("full"|"get-only"), goneStyle ("event"|"http"),
//                                holdLists (bool: list answers wait until false), listDelayMs,
//                                getDelayMs, getDelayByName ({name: ms}), watchDelayMs,
//                                applyCrdDefaults, bookmarkSeconds (for watches started later),
//                                failNextContinues (n: the next n continue requests get 410),
//                                fragmentEvents (bool: every event written in 2-3 pieces),
//                                compactOnRestart
//   POST /tokens {"tokens":[..]} the accepted bearer tokens (replaces the list)
//   POST /outage/start           close listeners and connections (connection refused)
//   POST /outage/end {"compact"?}  listen again on the same ports
//   POST /ops [{"op":..,..},..]  several of the above at once, synchronously, in order (no client
//                                request is handled in between): op = apply | delete | compact |
//                                closeWatches | expireWatches | inject | config | tokens |
//                                outageStart | outageEnd (args as the endpoints' bodies)
//   POST /reset                  no objects, default config, initial tokens, empty request log,
//                                watches closed, compaction point := rv (rv keeps counting)

const fs = require('node:fs');
const http = require('node:http');
const http2 = require('node:http2');
const https = require('node:https');
const crypto = require('node:crypto');
const process = require('node:process');

function option(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  return dflt;
}

function fail(msg) {
  process.stderr.write(`kubeapi: ${msg}\n`);
  process.exit(2);
}

const certFile = option('cert');
const keyFile = option('key');
const clientCaFile = option('client-ca');
const initialTokens = (option('tokens', '') || '').split(',').filter(Boolean);
let httpsPort = Number(option('https-port', '0'));
let plainPort = Number(option('http-port', '0'));
const adminPort = Number(option('admin-port', '0'));
const http1Only = process.argv.includes('--http1-only');
const startRv = Number(option('start-rv', String(100000 + Math.floor(Math.random() * 900000))));
if (!certFile || !keyFile) fail('--cert and --key are required');

const tlsOpts = {
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
  allowHTTP1: true,
  requestCert: true,
  rejectUnauthorized: false, // like kube-apiserver: an unverified certificate is just no identity
};
if (clientCaFile) tlsOpts.ca = fs.readFileSync(clientCaFile);

function log(msg) {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}

// --------------------------------------------------------------------------- resources
const APP_GROUP = 'applicationconnector.kyma-project.io';
const RES = {
  applications: {
    name: 'applications', group: APP_GROUP, kind: 'Application', listKind: 'ApplicationList',
    apiVersion: `${APP_GROUP}/v1alpha1`, namespaced: false, qualified: `applications.${APP_GROUP}`,
  },
  secrets: {
    name: 'secrets', group: '', kind: 'Secret', listKind: 'SecretList', apiVersion: 'v1',
    namespaced: true, qualified: 'secrets',
  },
};
const KIND_TO_RES = { Application: 'applications', Secret: 'secrets' };

// --------------------------------------------------------------------------- state
const DEFAULT_CONFIG = {
  rbac: 'full',
  goneStyle: 'event',
  holdLists: false,
  listDelayMs: 0,
  getDelayMs: 0,
  getDelayByName: {},
  watchDelayMs: 0,
  applyCrdDefaults: true,
  bookmarkSeconds: 60,
  failNextContinues: 0,
  fragmentEvents: false,
  compactOnRestart: true,
};
let config = { ...DEFAULT_CONFIG };
let tokens = [...initialTokens];
let rv = startRv;
let compactedRv = startRv; // a watch or continue from an rv below this → 410
const store = { applications: new Map(), secrets: new Map() }; // key → object
const history = []; // {rv, res, ns, name, type, obj}
const lastChange = { applications: startRv, secrets: startRv }; // rv of the resource's last write
const MAX_HISTORY = 20000;
const watchers = new Set();
let watchSeq = 0;
const snapshots = new Map(); // `${res}|${ns}|${rv}` → sorted [key, obj] list
const pendingLists = [];
let requestLog = [];
let requestSeq = 0;
const MAX_LOG = 50000;
let outage = false;
const listeners = { https: null, http: null };
const sockets = new Set(); // raw sockets of the https and http listeners (not admin)

function now() {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function keyOf(res, ns, name) {
  return RES[res].namespaced ? `${ns}/${name}` : name;
}

function clone(o) {
  return JSON.parse(JSON.stringify(o));
}

function b64(s) {
  return Buffer.from(String(s), 'utf8').toString('base64');
}

// --------------------------------------------------------------------------- writes
function normalise(obj) {
  if (!obj || typeof obj !== 'object') throw new Error('object expected');
  const res = KIND_TO_RES[obj.kind];
  if (!res) throw new Error(`unsupported kind ${JSON.stringify(obj.kind)}`);
  const o = clone(obj);
  o.metadata = o.metadata || {};
  if (!o.metadata.name) throw new Error('metadata.name is required');
  const R = RES[res];
  o.apiVersion = R.apiVersion;
  if (R.namespaced) {
    o.metadata.namespace = o.metadata.namespace || 'default';
  } else {
    delete o.metadata.namespace;
  }
  if (res === 'secrets') {
    const data = { ...(o.data || {}) };
    for (const [k, v] of Object.entries(o.stringData || {})) data[k] = b64(v);
    delete o.stringData;
    o.data = data;
    o.type = o.type || 'Opaque';
  } else {
    o.spec = o.spec || {};
    if (config.applyCrdDefaults && o.spec.encodeUrl === undefined) o.spec.encodeUrl = true;
  }
  return { res, o };
}

function record(res, ns, name, type, obj) {
  history.push({ rv, res, ns, name, type, obj });
  lastChange[res] = rv;
  if (history.length > MAX_HISTORY) {
    const drop = history.splice(0, history.length - MAX_HISTORY);
    compactedRv = Math.max(compactedRv, drop[drop.length - 1].rv);
  }
  for (const w of watchers) {
    if (w.resource !== res) continue;
    if (w.ns !== null && w.ns !== ns) continue;
    if (w.fieldName !== null && w.fieldName !== name) continue;
    sendEvent(w, type, obj, rv);
  }
}

function apply(obj) {
  const { res, o } = normalise(obj);
  const ns = o.metadata.namespace || null;
  const key = keyOf(res, ns, o.metadata.name);
  const prev = store[res].get(key);
  rv += 1;
  o.metadata.resourceVersion = String(rv);
  o.metadata.uid = prev ? prev.metadata.uid : crypto.randomUUID();
  o.metadata.creationTimestamp = prev ? prev.metadata.creationTimestamp : now();
  delete o.metadata.managedFields;
  delete o.metadata.deletionTimestamp;
  if (res === 'applications') {
    const changed = !prev || JSON.stringify(prev.spec) !== JSON.stringify(o.spec);
    o.metadata.generation = prev ? prev.metadata.generation + (changed ? 1 : 0) : 1;
  }
  // field order as the apiserver writes it: apiVersion, kind, metadata, then the rest
  const ordered = { apiVersion: o.apiVersion, kind: o.kind, metadata: o.metadata };
  for (const [k, v] of Object.entries(o)) if (!(k in ordered)) ordered[k] = v;
  store[res].set(key, ordered);
  record(res, ns, o.metadata.name, prev ? 'MODIFIED' : 'ADDED', ordered);
  return ordered;
}

function del(spec) {
  const res = spec.resource || KIND_TO_RES[spec.kind];
  if (!RES[res]) throw new Error(`unsupported kind ${JSON.stringify(spec.kind)}`);
  const ns = RES[res].namespaced ? (spec.namespace || (spec.metadata && spec.metadata.namespace) || 'default') : null;
  const name = spec.name || (spec.metadata && spec.metadata.name);
  const key = keyOf(res, ns, name);
  const prev = store[res].get(key);
  if (!prev) return { deleted: false };
  store[res].delete(key);
  rv += 1;
  const o = clone(prev);
  o.metadata.resourceVersion = String(rv);
  record(res, ns, name, 'DELETED', o);
  return { deleted: true, rv: String(rv) };
}

function compact() {
  compactedRv = rv;
  while (history.length && history[0].rv <= compactedRv) history.shift();
  for (const k of [...snapshots.keys()]) {
    if (Number(k.split('|').pop()) < compactedRv) snapshots.delete(k);
  }
  return { compactedRv: String(compactedRv) };
}

// --------------------------------------------------------------------------- responses
function statusObj(code, reason, message, details) {
  const s = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason };
  if (details) s.details = details;
  s.code = code;
  return s;
}

function baseHeaders(extra) {
  return {
    'content-type': 'application/json',
    'cache-control': 'no-cache, private',
    'audit-id': crypto.randomUUID(),
    ...extra,
  };
}

// the client went away (HTTP/1: the response's socket; HTTP/2: the stream)
function gone(res) {
  if (res.writableEnded || res.destroyed || res.closed) return true;
  if (res.stream) return res.stream.destroyed || res.stream.closed;
  return Boolean(res.socket && res.socket.destroyed);
}

function sendJson(ctx, code, doc, note) {
  const body = JSON.stringify(doc);
  if (gone(ctx.res)) {
    ctx.entry.note = 'client-gone'; // the client gave up before the answer (status stays null)
    return;
  }
  ctx.entry.status = code;
  if (note) ctx.entry.note = note;
  try {
    ctx.res.writeHead(code, baseHeaders({ 'content-length': Buffer.byteLength(body) }));
    ctx.res.end(body);
  } catch (err) {
    log(`write failed: ${err.message}`);
  }
}

function notFoundStatus(R, name) {
  return statusObj(404, 'NotFound', `${R.qualified} "${name}" not found`,
    { name, group: R.group || undefined, kind: R.name });
}

function forbidden(R, verb, user, ns) {
  const where = R.namespaced && ns ? `in the namespace "${ns}"` : 'at the cluster scope';
  return statusObj(403, 'Forbidden',
    `${R.qualified} is forbidden: User "${user}" cannot ${verb} resource "${R.name}" in API group "${R.group}" ${where}`,
    { group: R.group || undefined, kind: R.name });
}

// --------------------------------------------------------------------------- request entry
function tlsSocketOf(req) {
  if (req.stream && req.stream.session) return req.stream.session.socket;
  return req.socket;
}

function authenticate(req, plain) {
  if (plain) return { auth: 'proxy', user: 'kubectl-proxy', token: null };
  const sock = tlsSocketOf(req);
  let certUser = null;
  let badCert = false;
  try {
    const c = sock.getPeerCertificate && sock.getPeerCertificate();
    if (c && c.subject) {
      if (sock.authorized === true) certUser = c.subject.CN || '';
      else badCert = true;
    }
  } catch {
    // no certificate
  }
  const h = req.headers.authorization || '';
  const m = /^bearer\s+(\S+)\s*$/i.exec(h);
  const token = m ? m[1] : null;
  if (certUser !== null) return { auth: 'cert', user: certUser, token };
  if (token !== null) {
    if (tokens.includes(token)) return { auth: 'token', user: 'system:serviceaccount:kyma-system:central-application-gateway', token };
    return { auth: 'bad-token', user: null, token };
  }
  if (badCert) return { auth: 'bad-cert', user: null, token: null };
  return { auth: 'none', user: null, token: null };
}

function newEntry(req, plain) {
  const u = new URL(req.url, 'http://x');
  const query = {};
  for (const [k, v] of u.searchParams) query[k] = v;
  const sock = plain ? null : tlsSocketOf(req);
  const entry = {
    seq: ++requestSeq,
    t: Date.now() / 1000,
    method: req.method,
    path: u.pathname,
    query,
    verb: 'other',
    resource: null,
    namespace: null,
    name: null,
    auth: null,
    user: null,
    token: null,
    proto: req.httpVersion === '2.0' ? 'h2' : `http/${req.httpVersion}`,
    alpn: sock ? (sock.alpnProtocol || null) : null,
    status: null,
    note: null,
  };
  requestLog.push(entry);
  if (requestLog.length > MAX_LOG) requestLog.splice(0, requestLog.length - MAX_LOG);
  return { entry, url: u, query };
}

// --------------------------------------------------------------------------- routing
const APPS_RE = /^\/apis\/applicationconnector\.kyma-project\.io\/v1alpha1\/applications(?:\/([^/]+))?\/?$/;
const SECRETS_NS_RE = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?\/?$/;
const SECRETS_ALL_RE = /^\/api\/v1\/secrets\/?$/;

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function discovery(path) {
  const gv = `${APP_GROUP}/v1alpha1`;
  switch (path) {
    case '/version':
      return { major: '1', minor: '26', gitVersion: 'v1.26.15-appgw-e2e', platform: 'linux/amd64' };
    case '/api':
      return {
        kind: 'APIVersions', versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }],
      };
    case '/apis':
      return {
        kind: 'APIGroupList', apiVersion: 'v1',
        groups: [{ name: APP_GROUP, versions: [{ groupVersion: gv, version: 'v1alpha1' }],
          preferredVersion: { groupVersion: gv, version: 'v1alpha1' } }],
      };
    case '/api/v1':
      return {
        kind: 'APIResourceList', groupVersion: 'v1',
        resources: [{ name: 'secrets', singularName: '', namespaced: true, kind: 'Secret', verbs: VERBS }],
      };
    case `/apis/${APP_GROUP}/v1alpha1`:
      return {
        kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv,
        resources: [{ name: 'applications', singularName: 'application', namespaced: false, kind: 'Application',
          verbs: VERBS }],
      };
    default:
      return null;
  }
}

function handler(plain) {
  return (req, res) => {
    const { entry, url, query } = newEntry(req, plain);
    const ctx = { req, res, entry };
    res.on('error', () => {});
    const a = authenticate(req, plain);
    entry.auth = a.auth;
    entry.user = a.user;
    entry.token = a.token;
    if (a.auth === 'bad-token' || a.auth === 'none' || a.auth === 'bad-cert') {
      sendJson(ctx, 401, statusObj(401, 'Unauthorized', 'Unauthorized'), 'unauthorized');
      return;
    }
    const path = url.pathname;
    if (['/healthz', '/livez', '/readyz'].includes(path)) {
      entry.status = 200;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 2 });
      res.end('ok');
      return;
    }
    const disc = discovery(path);
    if (disc) {
      sendJson(ctx, 200, disc);
      return;
    }
    let res_ = null;
    let ns = null;
    let name = null;
    let m = APPS_RE.exec(path);
    if (m) {
      res_ = 'applications';
      name = m[1] ? decodeURIComponent(m[1]) : null;
    } else if ((m = SECRETS_NS_RE.exec(path))) {
      res_ = 'secrets';
      ns = decodeURIComponent(m[1]);
      name = m[2] ? decodeURIComponent(m[2]) : null;
    } else if (SECRETS_ALL_RE.test(path)) {
      res_ = 'secrets';
    }
    if (!res_) {
      sendJson(ctx, 404, statusObj(404, 'NotFound', 'the server could not find the requested resource',
        { causes: [{ reason: 'UnexpectedServerResponse', message: '404 page not found' }] }), 'no-route');
      return;
    }
    const R = RES[res_];
    entry.resource = res_;
    entry.namespace = ns;
    entry.name = name;
    const isWatch = query.watch === '1' || query.watch === 'true';
    entry.verb = name ? (isWatch ? 'watch' : 'get') : (isWatch ? 'watch' : 'list');
    if (req.method !== 'GET') {
      sendJson(ctx, 405, statusObj(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`), 'method');
      return;
    }
    if (config.rbac === 'get-only' && entry.verb !== 'get') {
      sendJson(ctx, 403, forbidden(R, entry.verb, a.user, ns), 'forbidden');
      return;
    }
    if (entry.verb === 'get') {
      const go = () => {
        const o = store[res_].get(keyOf(res_, ns, name));
        if (!o) sendJson(ctx, 404, notFoundStatus(R, name), 'not-found');
        else sendJson(ctx, 200, o);
      };
      const d = Object.prototype.hasOwnProperty.call(config.getDelayByName || {}, name)
        ? Number(config.getDelayByName[name]) : config.getDelayMs;
      if (d > 0) setTimeout(go, d);
      else go();
      return;
    }
    let fieldName = name; // a watch on a named object: as fieldSelector=metadata.name=NAME
    if (query.fieldSelector) {
      for (const part of query.fieldSelector.split(',')) {
        const fm = /^([^=!]+)==?(.*)$/.exec(part);
        const k = fm ? fm[1] : part;
        const v = fm ? fm[2] : '';
        if (fm && k === 'metadata.name') fieldName = v;
        else if (fm && k === 'metadata.namespace' && R.namespaced) ns = v;
        else {
          sendJson(ctx, 400, statusObj(400, 'BadRequest', `"${k}" is not a known field selector: only "metadata.name", "metadata.namespace"`), 'bad-selector');
          return;
        }
      }
    }
    if (entry.verb === 'watch') {
      const go = () => startWatch(ctx, R, ns, fieldName, query);
      if (config.watchDelayMs > 0) setTimeout(go, config.watchDelayMs);
      else go();
      return;
    }
    const go = () => answerList(ctx, R, ns, fieldName, query);
    if (config.holdLists) {
      pendingLists.push(go);
    } else if (config.listDelayMs > 0) {
      setTimeout(go, config.listDelayMs);
    } else {
      go();
    }
  };
}

// --------------------------------------------------------------------------- list
function currentItems(res, ns, fieldName) {
  const out = [];
  for (const [k, o] of store[res]) {
    if (ns !== null && o.metadata.namespace !== ns) continue;
    if (fieldName !== null && o.metadata.name !== fieldName) continue;
    out.push([k, o]);
  }
  out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return out;
}

function listItem(R, o) {
  if (R.name === 'secrets') {
    const { apiVersion, kind, ...rest } = o; // typed lists: items without TypeMeta
    void apiVersion;
    void kind;
    return rest;
  }
  return o;
}

function encodeContinue(snapRv, start) {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: snapRv, start })).toString('base64');
}

function answerList(ctx, R, ns, fieldName, query) {
  if (gone(ctx.res)) return;
  const res = R.name;
  const limit = Number.parseInt(query.limit || '0', 10) || 0;
  const rvParam = query.resourceVersion;
  let listRv = rv;
  let items;
  let start = '';
  let paginate = false;
  if (query.continue) {
    let tok;
    try {
      tok = JSON.parse(Buffer.from(query.continue, 'base64').toString('utf8'));
    } catch {
      tok = null;
    }
    if (!tok || typeof tok.rv !== 'number' || typeof tok.start !== 'string') {
      sendJson(ctx, 400, statusObj(400, 'BadRequest', 'continue key is not valid: invalid continue token'), 'bad-continue');
      return;
    }
    const snap = snapshots.get(`${res}|${ns}|${fieldName}|${tok.rv}`);
    if (config.failNextContinues > 0 || tok.rv < compactedRv || !snap) {
      if (config.failNextContinues > 0) config.failNextContinues -= 1;
      sendJson(ctx, 410, statusObj(410, 'Expired',
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.'),
      'continue-expired');
      return;
    }
    items = snap;
    listRv = tok.rv;
    start = tok.start;
    paginate = limit > 0;
  } else {
    items = currentItems(res, ns, fieldName);
    paginate = limit > 0 && (rvParam === undefined || rvParam === '');
  }
  let page = items.filter(([k]) => k >= start);
  const meta = { resourceVersion: String(listRv) };
  if (paginate && page.length > limit) {
    const rest = page.length - limit;
    page = page.slice(0, limit);
    meta.continue = encodeContinue(listRv, `${page[page.length - 1][0]}\u0000`);
    meta.remainingItemCount = rest;
    // a consistent snapshot for the continue token (etcd serves the next pages at listRv)
    const sk = `${res}|${ns}|${fieldName}|${listRv}`;
    if (!snapshots.has(sk)) {
      snapshots.set(sk, items);
      if (snapshots.size > 64) snapshots.delete(snapshots.keys().next().value);
    }
  }
  const doc = { kind: R.listKind, apiVersion: R.apiVersion, metadata: meta, items: page.map(([, o]) => listItem(R, o)) };
  ctx.entry.listRv = meta.resourceVersion;
  ctx.entry.items = page.length;
  ctx.entry.more = Boolean(meta.continue);
  sendJson(ctx, 200, doc);
}

// --------------------------------------------------------------------------- watch
function writeRaw(w, data) {
  if (w.closed) return true;
  try {
    return w.res.write(data);
  } catch {
    return true;
  }
}

function writeLine(w, line) {
  if (!config.fragmentEvents || line.length < 8) {
    writeRaw(w, line);
    return;
  }
  const a = 1 + Math.floor(Math.random() * (line.length / 2));
  const b = a + 1 + Math.floor(Math.random() * (line.length - a - 2));
  writeRaw(w, line.slice(0, a));
  writeRaw(w, line.slice(a, b));
  writeRaw(w, line.slice(b));
}

function sendEvent(w, type, obj, evRv) {
  if (w.closed) return;
  const o = { ...obj, apiVersion: RES[w.resource].apiVersion, kind: RES[w.resource].kind };
  const ordered = { apiVersion: o.apiVersion, kind: o.kind, metadata: o.metadata };
  for (const [k, v] of Object.entries(o)) if (!(k in ordered)) ordered[k] = v;
  writeLine(w, `${JSON.stringify({ type, object: ordered })}\n`);
  w.lastRv = evRv;
  w.events += 1;
}

function sendBookmark(w) {
  if (w.closed || !w.bookmarks) return;
  const last = lastChange[w.resource];
  if (last <= w.lastRv) return; // only when the resource changed since the last event
  const R = RES[w.resource];
  const object = { kind: R.kind, apiVersion: R.apiVersion, metadata: { resourceVersion: String(last), creationTimestamp: null } };
  writeLine(w, `${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
  w.lastRv = last;
  w.bookmarksSent += 1;
}

function goneStatus(fromRv) {
  return statusObj(410, 'Expired', `too old resource version: ${fromRv} (${compactedRv})`);
}

function endWatch(w) {
  if (w.closed) return;
  w.closed = true;
  watchers.delete(w);
  for (const t of w.timers) clearTimeout(t);
  for (const t of w.intervals) clearInterval(t);
  try {
    w.res.end();
  } catch {
    // already gone
  }
}

function startWatch(ctx, R, ns, fieldName, query) {
  const { res, entry } = ctx;
  if (gone(res)) return;
  const rvParam = query.resourceVersion;
  let fromRv = null;
  if (rvParam !== undefined && rvParam !== '' && rvParam !== '0') {
    if (!/^\d+$/.test(rvParam)) {
      sendJson(ctx, 400, statusObj(400, 'BadRequest', `resourceVersion: Invalid value: "${rvParam}": strconv.ParseUint: parsing "${rvParam}": invalid syntax`), 'bad-rv');
      return;
    }
    fromRv = Number(rvParam);
    if (fromRv < compactedRv) {
      if (config.goneStyle === 'http') {
        sendJson(ctx, 410, goneStatus(fromRv), 'gone-http');
        return;
      }
      entry.status = 200;
      entry.note = 'gone-event';
      res.writeHead(200, baseHeaders());
      res.end(`${JSON.stringify({ type: 'ERROR', object: goneStatus(fromRv) })}\n`);
      return;
    }
  }
  let timeout = Number.parseInt(query.timeoutSeconds || '0', 10) || 0;
  if (timeout <= 0) timeout = 1800 + Math.floor(Math.random() * 1800);
  const w = {
    id: ++watchSeq,
    resource: R.name,
    ns,
    fieldName,
    fromRv: fromRv === null ? String(rv) : String(fromRv),
    lastRv: fromRv === null ? rv : fromRv,
    res,
    proto: entry.proto,
    auth: entry.auth,
    token: entry.token,
    started: Date.now() / 1000,
    timeoutSeconds: timeout,
    bookmarks: query.allowWatchBookmarks === 'true' || query.allowWatchBookmarks === '1',
    bookmarksSent: 0,
    events: 0,
    closed: false,
    timers: [],
    intervals: [],
    seq: entry.seq,
  };
  entry.status = 200;
  res.writeHead(200, baseHeaders());
  if (typeof res.flushHeaders === 'function') res.flushHeaders();
  watchers.add(w);
  res.on('close', () => endWatch(w));
  if (fromRv === null) {
    for (const [, o] of currentItems(R.name, ns, fieldName)) sendEvent(w, 'ADDED', o, rv);
    w.lastRv = rv;
  } else {
    for (const ev of history) {
      if (ev.rv <= fromRv || ev.res !== R.name) continue;
      if (ns !== null && ev.ns !== ns) continue;
      if (fieldName !== null && ev.name !== fieldName) continue;
      sendEvent(w, ev.type, ev.obj, ev.rv);
    }
  }
  w.timers.push(setTimeout(() => endWatch(w), timeout * 1000));
  if (w.bookmarks) {
    const bm = Math.max(0.2, Number(config.bookmarkSeconds) || 60);
    w.intervals.push(setInterval(() => sendBookmark(w), bm * 1000));
    if (timeout > 3) w.timers.push(setTimeout(() => sendBookmark(w), (timeout - 2) * 1000));
  }
}

function closeWatches(spec) {
  let n = 0;
  for (const w of [...watchers]) {
    if (spec && spec.resource && w.resource !== spec.resource) continue;
    endWatch(w);
    n += 1;
  }
  return { closed: n };
}

function expireWatches(spec) {
  let n = 0;
  for (const w of [...watchers]) {
    if (spec && spec.resource && w.resource !== spec.resource) continue;
    writeRaw(w, `${JSON.stringify({ type: 'ERROR', object: goneStatus(w.lastRv) })}\n`);
    endWatch(w);
    n += 1;
  }
  return { expired: n };
}

async function writeOversized(w, total) {
  const R = RES[w.resource];
  const head = JSON.stringify({
    type: 'MODIFIED',
    object: {
      apiVersion: R.apiVersion,
      kind: R.kind,
      metadata: {
        name: 'oversized-e2e', namespace: R.namespaced ? (w.ns || 'default') : undefined,
        resourceVersion: String(rv), annotations: { pad: '@@PAD@@' },
      },
      spec: {},
    },
  });
  const [pre, post] = head.split('@@PAD@@');
  const padLen = Math.max(0, total - pre.length - post.length - 1);
  const block = 'a'.repeat(1 << 20);
  writeRaw(w, pre);
  let left = padLen;
  while (left > 0 && !w.closed) {
    const piece = left >= block.length ? block : block.slice(0, left);
    left -= piece.length;
    if (!writeRaw(w, piece)) {
      await new Promise((resolve) => {
        const done = () => {
          w.res.off('drain', done);
          w.res.off('close', done);
          resolve();
        };
        w.res.on('drain', done);
        w.res.on('close', done);
      });
    }
  }
  if (!w.closed) writeRaw(w, `${post}\n`);
}

function inject(spec) {
  const what = (spec && spec.what) || 'garbage';
  let n = 0;
  for (const w of [...watchers]) {
    if (spec && spec.resource && w.resource !== spec.resource) continue;
    n += 1;
    if (what === 'garbage') {
      writeRaw(w, 'this is not JSON {"type":"MODIFIED","object":{"metadata":{"name":\u0001 }}\n');
    } else if (what === 'raw') {
      writeRaw(w, String(spec.data || ''));
    } else if (what === 'oversized') {
      writeOversized(w, Number(spec.bytes) || 64 * 1024 * 1024).catch(() => {});
    } else {
      throw new Error(`unknown inject ${what}`);
    }
  }
  return { streams: n };
}

// --------------------------------------------------------------------------- listeners
function trackSockets(server) {
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function openListeners() {
  const s = http1Only
    ? https.createServer({ ...tlsOpts, allowHTTP1: undefined, ALPNProtocols: ['http/1.1'] }, handler(false))
    : http2.createSecureServer(tlsOpts, handler(false));
  if (http1Only) s.keepAliveTimeout = 60000;
  s.on('sessionError', () => {});
  s.on('tlsClientError', () => {});
  s.on('error', (e) => log(`https server error: ${e.message}`));
  trackSockets(s);
  httpsPort = await listen(s, httpsPort);
  listeners.https = s;
  const p = http.createServer(handler(true));
  p.keepAliveTimeout = 60000;
  trackSockets(p);
  plainPort = await listen(p, plainPort);
  listeners.http = p;
}

function outageStart() {
  if (outage) return { outage: true };
  outage = true;
  for (const s of [listeners.https, listeners.http]) if (s) s.close();
  listeners.https = null;
  listeners.http = null;
  for (const w of [...watchers]) {
    w.closed = true;
    watchers.delete(w);
    for (const t of w.timers) clearTimeout(t);
    for (const t of w.intervals) clearInterval(t);
  }
  pendingLists.length = 0;
  for (const sock of [...sockets]) sock.destroy();
  sockets.clear();
  log('outage: listeners closed, connections destroyed');
  return { outage: true };
}

async function outageEnd(spec) {
  if (!outage) return { outage: false };
  const doCompact = spec && spec.compact !== undefined ? Boolean(spec.compact) : config.compactOnRestart;
  if (doCompact) compact();
  await openListeners();
  outage = false;
  log(`outage over: listening again on ${httpsPort}/${plainPort}`);
  return { outage: false, compactedRv: String(compactedRv) };
}

function releaseLists() {
  while (pendingLists.length && !config.holdLists) pendingLists.shift()();
}

function setConfig(c) {
  for (const [k, v] of Object.entries(c || {})) {
    if (!(k in DEFAULT_CONFIG)) throw new Error(`unknown config key ${k}`);
    config[k] = v;
  }
  if (!config.holdLists) releaseLists();
  return { config };
}

function reset() {
  closeWatches();
  store.applications.clear();
  store.secrets.clear();
  history.length = 0;
  compactedRv = rv;
  snapshots.clear();
  config = { ...DEFAULT_CONFIG };
  pendingLists.length = 0;
  tokens = [...initialTokens];
  requestLog = [];
  return { rv: String(rv) };
}

// --------------------------------------------------------------------------- admin
function watchInfo() {
  return [...watchers].map((w) => ({
    id: w.id, resource: w.resource, namespace: w.ns, fieldName: w.fieldName, fromRv: w.fromRv,
    lastRv: String(w.lastRv), proto: w.proto, auth: w.auth, started: w.started, seq: w.seq,
    timeoutSeconds: w.timeoutSeconds, bookmarks: w.bookmarks, bookmarksSent: w.bookmarksSent, events: w.events,
  }));
}

async function runOp(op) {
  switch (op.op) {
    case 'apply':
      if (Array.isArray(op.objects)) return { objects: op.objects.map(apply) };
      return { object: apply(op.object) };
    case 'delete':
      if (Array.isArray(op.objects)) return { results: op.objects.map(del) };
      return del(op);
    case 'compact':
      return compact();
    case 'closeWatches':
      return closeWatches(op);
    case 'expireWatches':
      return expireWatches(op);
    case 'inject':
      return inject(op);
    case 'config':
      return setConfig(op.config || {});
    case 'tokens':
      if (!Array.isArray(op.tokens)) throw new Error('tokens: a list expected');
      tokens = op.tokens.map(String);
      return { tokens: tokens.length };
    case 'outageStart':
      return outageStart();
    case 'outageEnd':
      return outageEnd(op);
    default:
      throw new Error(`unknown op ${JSON.stringify(op.op)}`);
  }
}

function adminRoutes(method, path, q, body) {
  const key = `${method} ${path}`;
  switch (key) {
    case 'GET /health':
      return { ok: true };
    case 'GET /state':
      return {
        rv: String(rv), compactedRv: String(compactedRv), config, tokens, outage,
        https: httpsPort, http: plainPort,
        objects: { applications: store.applications.size, secrets: store.secrets.size },
        watches: watchInfo(), pendingLists: pendingLists.length, requests: requestSeq,
      };
    case 'GET /watches':
      return watchInfo();
    case 'GET /objects':
      return { applications: [...store.applications.values()], secrets: [...store.secrets.values()] };
    case 'GET /requests': {
      const since = Number(q.get('since') || '0');
      return { next: requestSeq + 1, requests: requestLog.filter((e) => e.seq >= since) };
    }
    case 'POST /requests/reset':
      requestLog = [];
      return { next: requestSeq + 1 };
    case 'POST /apply':
      return runOp({ op: 'apply', ...body });
    case 'POST /delete':
      return runOp({ op: 'delete', ...body });
    case 'POST /compact':
      return compact();
    case 'POST /closeWatches':
      return closeWatches(body);
    case 'POST /expireWatches':
      return expireWatches(body);
    case 'POST /inject':
      return inject(body);
    case 'POST /config':
      return setConfig(body);
    case 'POST /tokens':
      return runOp({ op: 'tokens', ...body });
    case 'POST /outage/start':
      return outageStart();
    case 'POST /outage/end':
      return outageEnd(body);
    case 'POST /reset':
      return reset();
    case 'POST /ops':
      return (async () => {
        if (!Array.isArray(body)) throw new Error('a list of ops expected');
        const out = [];
        for (const op of body) out.push(await runOp(op)); // eslint-disable-line no-await-in-loop
        return out;
      })();
    default:
      return undefined;
  }
}

function adminServer() {
  return http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const u = new URL(req.url, 'http://x');
      let body = {};
      const reply = (code, doc) => {
        const b = JSON.stringify(doc);
        res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
        res.end(b);
      };
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim()) body = JSON.parse(text);
        const out = await adminRoutes(req.method, u.pathname, u.searchParams, body);
        if (out === undefined) reply(404, { error: `no admin route ${req.method} ${u.pathname}` });
        else reply(200, out);
      } catch (err) {
        reply(400, { error: err.message });
      }
    });
  });
}

async function main() {
  await openListeners();
  const a = adminServer();
  a.keepAliveTimeout = 60000;
  const ap = await listen(a, adminPort);
  process.stdout.write(`ready ${JSON.stringify({ https: httpsPort, http: plainPort, admin: ap, rv: String(rv) })}\n`);
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
main().catch((err) => fail(err.stack || err.message));
