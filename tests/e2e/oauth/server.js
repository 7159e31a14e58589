#!/usr/bin/env node
// OAuth 2.0 authorization server for the appgw end-to-end tests: oidc-provider (a complete,
// strict RFC 6749 / RFC 8705 implementation) with the client_credentials grant only.
//
//   node server.js --clients FILE [--http-port N] [--https-port N] [--cert PEM --key PEM
//                  [--client-ca PEM]] [--ttl SECONDS] [--lenient-methods]
//
// Every option can also come from the environment: OAUTH_CLIENTS, OAUTH_HTTP_PORT,
// OAUTH_HTTPS_PORT, OAUTH_CERT, OAUTH_KEY, OAUTH_CLIENT_CA, OAUTH_TTL, OAUTH_LENIENT_METHODS=1.
//
// Client authentication is strict: sending the secret both ways at once is refused by
// oidc-provider (400 invalid_request), and this wrapper additionally refuses the secret method a
// client is not registered for (401 invalid_client), as strict servers do; --lenient-methods
// turns the latter off. Ports default to 0 (the OS picks); the server listens on 127.0.0.1 only.
//
// FILE is a JSON array of oidc-provider client metadata, e.g.
//   {"client_id": "basic-only", "client_secret": "...", "token_endpoint_auth_method": "client_secret_basic"}
//   {"client_id": "mtls", "token_endpoint_auth_method": "tls_client_auth",
//    "tls_client_auth_subject_dn": "CN=appgw-e2e-client"}
// grant_types defaults to ["client_credentials"], response_types and redirect_uris to [].
// An extra "e2e_ttl" member (seconds) overrides --ttl for that client's access tokens.
//
// With --cert/--key an HTTPS listener is opened as well; it asks every client for a
// certificate (optional at the TLS level) and verifies it against --client-ca; oidc-provider's
// tls_client_auth then requires a verified certificate whose subject DN matches the client's
// tls_client_auth_subject_dn.
//
// On success one line goes to stdout:  ready {"http":PORT,"https":PORT|null,"issuer":"..."}
//
// Test hooks on both listeners (not part of OAuth):
//   GET  /__e2e/stats   {"requests":[{client,auth,status,error,tls_subject,tls_authorized,query}],
//                        (auth: "basic", "post", "both", "tls" (client cert, no secret) or "none")
//                        "issued":{client_id:n}, "tokens":{client_id:[access_token,...]}}
//   POST /__e2e/reset   forgets the recorded requests and tokens (issued tokens stay valid)
// The token endpoint is POST /token.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import process from 'node:process';

import Provider from 'oidc-provider';

function option(name, env, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  if (process.env[env] !== undefined && process.env[env] !== '') return process.env[env];
  return dflt;
}

function fail(msg) {
  process.stderr.write(`oauth server: ${msg}\n`);
  process.exit(2);
}

const clientsFile = option('clients', 'OAUTH_CLIENTS');
const httpPort = Number(option('http-port', 'OAUTH_HTTP_PORT', '0'));
const httpsPort = Number(option('https-port', 'OAUTH_HTTPS_PORT', '0'));
const certFile = option('cert', 'OAUTH_CERT');
const keyFile = option('key', 'OAUTH_KEY');
const clientCaFile = option('client-ca', 'OAUTH_CLIENT_CA');
const defaultTtl = Number(option('ttl', 'OAUTH_TTL', '3600'));
// strict (default): a client registered for client_secret_basic must not use client_secret_post
// and vice versa (RFC 6749 §2.3: one registered method); --lenient-methods accepts either.
const strictMethods = !process.argv.includes('--lenient-methods') && process.env.OAUTH_LENIENT_METHODS !== '1';

if (!clientsFile) fail('--clients FILE (or OAUTH_CLIENTS) is required');
if (!Number.isInteger(defaultTtl) || defaultTtl < 1) fail('--ttl must be a positive integer');
if (Boolean(certFile) !== Boolean(keyFile)) fail('--cert and --key go together');

let rawClients;
try {
  rawClients = JSON.parse(fs.readFileSync(clientsFile, 'utf8'));
} catch (err) {
  fail(`cannot read clients file ${clientsFile}: ${err.message}`);
}
if (!Array.isArray(rawClients)) fail('clients file must hold a JSON array');

const ttlByClient = new Map();
const clients = rawClients.map((c) => {
  const m = { ...c };
  if (m.e2e_ttl !== undefined) {
    ttlByClient.set(m.client_id, Number(m.e2e_ttl));
    delete m.e2e_ttl;
  }
  m.grant_types ??= ['client_credentials'];
  m.response_types ??= [];
  m.redirect_uris ??= [];
  return m;
});

// --------------------------------------------------------------------------- recording
const state = { requests: [], issued: {}, tokens: {} };

function peerCert(ctx) {
  const sock = ctx.req.socket;
  if (!sock || typeof sock.getPeerX509Certificate !== 'function') return undefined;
  try {
    return sock.getPeerX509Certificate();
  } catch {
    return undefined;
  }
}

// "CN=a\nO=b" (node's X509Certificate.subject) or "CN=a, O=b" (registered) → list of RDNs
function dnParts(dn) {
  return dn.split(/\n|,(?=\s*[A-Za-z0-9.]+=)/).map((s) => s.trim()).filter(Boolean);
}

// equal RDN lists, in the same or in reverse order (RFC 4514 strings list the last RDN first)
function sameDn(a, b) {
  const x = dnParts(a);
  const y = dnParts(b);
  if (x.length !== y.length) return false;
  return x.every((v, i) => v === y[i]) || x.every((v, i) => v === y[y.length - 1 - i]);
}

// --------------------------------------------------------------------------- provider
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', kid: 'e2e-sig' };

const configuration = {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'tls_client_auth'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // introspection lets tests ask whether a token the upstream saw is (still) active
    introspection: { enabled: true, allowedPolicy: async () => true },
    mTLS: {
      enabled: true,
      tlsClientAuth: true,
      getCertificate(ctx) {
        return peerCert(ctx);
      },
      certificateAuthorized(ctx) {
        return ctx.req.socket.authorized === true;
      },
      certificateSubjectMatches(ctx, property, expected) {
        const cert = peerCert(ctx);
        if (!cert) return false;
        if (property === 'tls_client_auth_subject_dn') return sameDn(cert.subject, expected);
        if (property === 'tls_client_auth_san_dns') {
          return (cert.subjectAltName || '').split(', ').includes(`DNS:${expected}`);
        }
        return false;
      },
    },
  },
  ttl: {
    ClientCredentials(ctx, token, client) {
      return ttlByClient.get(client.clientId) ?? defaultTtl;
    },
  },
};

function makeProvider(issuer) {
  try {
    return new Provider(issuer, configuration);
  } catch (err) {
    return fail(`bad provider configuration: ${err.message}`);
  }
}

function instrument(provider) {
  // Record every token request (who, how it authenticated, the answer) and, in strict mode,
  // refuse client_secret_basic for a client registered with client_secret_post and vice versa.
  // (oidc-provider itself accepts either secret method for both, and refuses only both at once.)
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__e2e/stats' && ctx.method === 'GET') {
      ctx.type = 'json';
      ctx.body = state;
      return;
    }
    if (ctx.path === '/__e2e/reset' && ctx.method === 'POST') {
      state.requests = [];
      state.issued = {};
      state.tokens = {};
      ctx.status = 204;
      return;
    }
    if (ctx.path !== '/token') {
      await next();
      return;
    }
    const rec = {
      client: null,
      auth: null,
      status: null,
      error: null,
      tls_subject: null,
      tls_authorized: null,
      query: ctx.querystring,
    };
    const cert = peerCert(ctx);
    if (cert) {
      rec.tls_subject = cert.subject.split('\n').join(', ');
      rec.tls_authorized = ctx.req.socket.authorized === true;
    }
    try {
      await next();
    } finally {
      const params = (ctx.oidc && ctx.oidc.params) || {};
      const basic = ctx.get('authorization') !== '';
      const post = params.client_secret !== undefined && params.client_secret !== null;
      rec.auth = basic && post ? 'both' : basic ? 'basic' : post ? 'post' : (cert ? 'tls' : 'none');
      rec.client = (ctx.oidc && ctx.oidc.authorization && ctx.oidc.authorization.clientId)
        || params.client_id || null;
      const client = ctx.oidc && ctx.oidc.client;
      if (strictMethods && ctx.status === 200 && client) {
        const registered = client.clientAuthMethod;
        const used = rec.auth === 'basic' ? 'client_secret_basic' : rec.auth === 'post' ? 'client_secret_post' : null;
        if (used && registered !== used
            && (registered === 'client_secret_basic' || registered === 'client_secret_post')) {
          const issued = ctx.body && ctx.body.access_token;
          if (issued) {
            const t = await provider.ClientCredentials.find(issued).catch(() => undefined);
            if (t) await t.destroy().catch(() => {});
          }
          ctx.status = 401;
          if (basic) ctx.set('WWW-Authenticate', `Basic realm="${provider.issuer}", error="invalid_client"`);
          ctx.body = {
            error: 'invalid_client',
            error_description: `this client is registered for ${registered}, not ${used}`,
          };
        }
      }
      rec.status = ctx.status;
      if (ctx.status === 200 && ctx.body && ctx.body.access_token && client) {
        state.issued[client.clientId] = (state.issued[client.clientId] || 0) + 1;
        (state.tokens[client.clientId] ||= []).push(ctx.body.access_token);
      } else if (ctx.body && typeof ctx.body === 'object') {
        rec.error = ctx.body.error || null;
      }
      state.requests.push(rec);
    }
  });
}

// --------------------------------------------------------------------------- listeners
let callback = null; // set once the HTTP port (and so the issuer) is known
const servers = [];
const handler = (req, res) => callback(req, res);

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

async function main() {
  const h = http.createServer(handler);
  h.keepAliveTimeout = 60000;
  servers.push(h);
  const hp = await listen(h, httpPort);
  const provider = makeProvider(`http://127.0.0.1:${hp}`);
  instrument(provider);
  callback = provider.callback();
  let sp = null;
  if (certFile) {
    const opts = {
      cert: fs.readFileSync(certFile),
      key: fs.readFileSync(keyFile),
      requestCert: true,
      rejectUnauthorized: false, // oidc-provider decides (certificateAuthorized), with an OAuth error
    };
    if (clientCaFile) opts.ca = fs.readFileSync(clientCaFile);
    const s = https.createServer(opts, handler);
    s.keepAliveTimeout = 60000;
    servers.push(s);
    sp = await listen(s, httpsPort);
  }
  process.stdout.write(`ready ${JSON.stringify({ http: hp, https: sp, issuer: `http://127.0.0.1:${hp}` })}\n`);
}

function shutdown() {
  for (const s of servers) {
    s.close();
    if (typeof s.closeAllConnections === 'function') s.closeAllConnections();
  }
  setTimeout(() => process.exit(0), 200).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

main().catch((err) => fail(err.stack || String(err)));
